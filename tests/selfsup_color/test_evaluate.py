"""Colorization scores on photos: the error table against the core metrics, oracle and gray methods."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from selfsup_color import Q, auc, nearest_bin, rebalanced_auc, smooth_prior
from selfsup_color.core.color import rgb_to_ab
from selfsup_color.evaluate import GRAY, ErrorTable, evaluate_photos, spread, write_evaluation

from .data.images import decoded_files, png_declaring


def random_ab(seed: int, shape: tuple[int, ...] = (2, 2, 9, 7), scale: float = 40.0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def test_error_table_matches_core_metrics_over_batches() -> None:
    truth, pred = random_ab(0), random_ab(1)
    table = ErrorTable()
    table.update(pred[:1], truth[:1])  # two updates equal one pass over the whole batch
    table.update(pred[1:], truth[1:])
    assert table.auc() == pytest.approx(float(auc(pred, truth)), abs=1e-12)
    prior = torch.rand(Q, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.01
    assert table.rebalanced_auc(prior) == pytest.approx(float(rebalanced_auc(pred, truth, prior)), abs=1e-12)
    counts = torch.bincount(nearest_bin(truth).reshape(-1), minlength=Q).double()
    assert torch.equal(table.truth_counts(), counts)
    with pytest.raises(ValueError, match="shape"):
        table.rebalanced_auc(prior[:5])


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("astronaut", "chelsea", "coffee"):
        path = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).resize((96, 64)).save(path)
        paths.append(path)
    return paths


def ab_of(path: Path) -> torch.Tensor:
    """The ground-truth ab of a photo, as training computes it (from its 8-bit codes)."""
    return rgb_to_ab(torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1)[None])


def test_oracle_is_perfect_and_gray_matches_the_core_metrics(photos: list[Path], tmp_path: Path) -> None:
    truths = iter([ab_of(p) for p in photos])
    evaluation = evaluate_photos({"oracle": lambda lightness: next(truths)}, photos, grid_paths=photos[1:])
    oracle, gray = evaluation.scores["oracle"], evaluation.scores[GRAY]
    assert list(evaluation.scores) == [GRAY, "oracle"]
    assert oracle["auc"] == pytest.approx(1.0, abs=1e-3)
    assert oracle["rebalanced_auc"] == pytest.approx(1.0, abs=1e-3)
    assert oracle["psnr"] > 40
    assert oracle["colourfulness"] == pytest.approx(evaluation.truth_colourfulness, rel=1e-2)
    # gray: pool every pixel of the three photos and score with the core functions
    ab = torch.cat([ab_of(p).flatten(2) for p in photos], dim=2)[..., None]
    zeros = torch.zeros_like(ab)
    prior = smooth_prior(torch.bincount(nearest_bin(ab).reshape(-1), minlength=Q).double())
    assert gray["auc"] == pytest.approx(float(auc(zeros, ab)), abs=1e-9)
    assert gray["rebalanced_auc"] == pytest.approx(float(rebalanced_auc(zeros, ab, prior)), abs=1e-9)
    assert torch.allclose(evaluation.prior, prior)
    assert evaluation.images == 3 and evaluation.pixels == 3 * 96 * 64
    assert [len(v) for v in evaluation.thumbnails.values()] == [2, 2, 2]  # input, oracle, truth
    written = write_evaluation(evaluation, tmp_path / "out", {"data": "three photos"})
    assert [p.name for p in written] == ["scores.json", "scores.md", "grid.png"]
    assert "| gray (ab = 0) |" in written[1].read_text()


def test_unreadable_files_are_skipped_and_nothing_readable_fails(photos: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="broken.jpg"):
        evaluation = evaluate_photos({}, [broken, photos[0]])
    assert evaluation.images == 1
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 1 files"):
        evaluate_photos({}, [broken])
    with pytest.raises(ValueError, match="built-in baseline"):
        evaluate_photos({GRAY: lambda x: x}, photos)


def test_spread_is_even_and_content_blind() -> None:
    paths = [Path(f"{i:02d}.png") for i in range(10)]
    assert spread(list(reversed(paths)), 3) == [paths[0], paths[3], paths[6]]
    assert spread(paths, 20) == paths


def test_unreadable_and_oversized_files_are_skipped_and_listed(
    photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = decoded_files(monkeypatch)
    bomb = png_declaring(tmp_path / "bomb.png", 20_000, 5_000)  # 100 megapixels declared
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluation = evaluate_photos({}, [photos[0], bomb, broken, photos[1]])
    assert [str(w.message).split(":")[0] for w in caught] == [f"skipping {bomb}", f"skipping {broken}"]
    assert evaluation.images == 2 and evaluation.unreadable == [bomb, broken]
    assert str(bomb) not in decoded and str(photos[0]) in decoded
    json_path, md_path = write_evaluation(evaluation, tmp_path / "out", {"data": "four files"})
    record = json.loads(json_path.read_text())
    assert record["n_unreadable"] == 2 and record["unreadable"] == [str(bomb), str(broken)]
    assert f"2 file(s) skipped (unreadable or too large): {bomb}, {broken}" in md_path.read_text()
    with pytest.warns(UserWarning, match=r"96 x 64"), pytest.raises(ValueError, match="none of the 1 files"):
        evaluate_photos({}, photos[:1], max_pixels=96 * 64 - 1)
