"""Tests of the ab prior: exact counting, smoothing, files, DDP reduction, one-pass estimation."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from selfsup_color.core.bins import Q, ab_bins
from selfsup_color.core.color import rgb_to_lab
from selfsup_color.core.prior import (
    FORMAT_VERSION,
    Prior,
    PriorEstimator,
    estimate_prior,
    load_prior,
    load_prior_table,
    save_prior,
    smooth_prior,
)

CENTRES = ab_bins(dtype=torch.float64).numpy()


def random_rgb(n: int, seed: int, size: int = 24) -> torch.Tensor:
    """``n`` random uint8 colour images."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def gray_rgb(n: int, size: int = 24) -> torch.Tensor:
    """``n`` uint8 images with R = G = B (ab = 0 up to rounding)."""
    levels = torch.linspace(0, 255, n).round().to(torch.uint8)
    return levels.view(n, 1, 1, 1).expand(n, 3, size, size).clone()


def random_ab(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Random ab maps over the whole gamut box, moved away from ties between two nearest bins."""
    rng = np.random.default_rng(seed)
    ab = rng.uniform(-115, 115, size=(n, size, size, 2))
    d = np.linalg.norm(ab[..., None, :] - CENTRES, axis=-1)
    d.sort(axis=-1)
    near_tie = (d[..., 1] - d[..., 0]) < 0.05
    nearest = CENTRES[numpy_nearest(ab)]
    ab[near_tie] = (0.5 * (ab + nearest))[near_tie]
    return torch.from_numpy(ab).permute(0, 3, 1, 2).float()


def numpy_nearest(ab: np.ndarray) -> np.ndarray:
    """Brute-force nearest bin of ``... x 2`` ab values (float64)."""
    return np.argmin(((ab[..., None, :] - CENTRES) ** 2).sum(-1), axis=-1)


def numpy_histogram(ab: torch.Tensor, stride: int) -> np.ndarray:
    """Nearest-bin counts of the strided pixels of ``N x 2 x H x W`` ab maps."""
    sub = ab[..., ::stride, ::stride].double().permute(0, 2, 3, 1).numpy()
    return np.bincount(numpy_nearest(sub).ravel(), minlength=Q)


def numpy_smooth(c: np.ndarray, sigma: float) -> np.ndarray:
    """Independent reference of the smoothing: kernel built bin by bin, columns normalised."""
    k = np.empty((Q, Q))
    for q in range(Q):
        for j in range(Q):
            d2 = (CENTRES[q, 0] - CENTRES[j, 0]) ** 2 + (CENTRES[q, 1] - CENTRES[j, 1]) ** 2
            k[q, j] = math.exp(-d2 / (2 * sigma**2))
    k /= k.sum(axis=0, keepdims=True)
    p = k @ c
    return p / p.sum()


def bin_index(a: int, b: int) -> int:
    return int(np.flatnonzero((CENTRES == (a, b)).all(axis=1))[0])


# Smoothing ---------------------------------------------------------------------------------------


def test_smooth_matches_numpy_double_loop() -> None:
    c = np.random.default_rng(0).integers(0, 1000, Q)
    p = smooth_prior(torch.from_numpy(c), sigma=5.0)
    assert p.dtype == torch.float64
    np.testing.assert_allclose(p.numpy(), numpy_smooth(c.astype(np.float64), 5.0), rtol=1e-12)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-14)


def test_smooth_spreads_a_delta_to_neighbours() -> None:
    j = bin_index(0, 0)
    c = torch.zeros(Q, dtype=torch.int64)
    c[j] = 7
    p = smooth_prior(c, sigma=5.0)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-14)
    for a, b, d2 in ((10, 0, 100), (0, -10, 100), (10, 10, 200), (20, 0, 400)):
        ratio = float(p[bin_index(a, b)] / p[j])
        assert ratio == pytest.approx(math.exp(-d2 / 50), rel=1e-12)
    assert int(p.argmax()) == j


def test_smooth_counts_and_probabilities_agree_sigma_zero_is_identity() -> None:
    c = torch.from_numpy(np.random.default_rng(1).integers(0, 50, Q))
    probs = c.double() / c.sum()
    torch.testing.assert_close(smooth_prior(c), smooth_prior(probs), rtol=1e-13, atol=0)
    torch.testing.assert_close(smooth_prior(c, sigma=0.0), probs, rtol=0, atol=0)


# Counting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 3, 4])
def test_counts_equal_brute_force_histogram(stride: int) -> None:
    ab = random_ab(5, seed=stride)
    est = PriorEstimator(stride=stride)
    est.update_ab(ab)
    np.testing.assert_array_equal(est.counts.numpy(), numpy_histogram(ab, stride))
    pixels = 5 * math.ceil(16 / stride) ** 2
    assert (est.n_images, est.n_pixels, est.n_gray_skipped) == (5, pixels, 0)
    assert est.counts.dtype == torch.int64


def test_incremental_updates_equal_one_update() -> None:
    ab = random_ab(7, seed=10)
    whole, parts = PriorEstimator(), PriorEstimator()
    whole.update_ab(ab)
    for chunk in ab.split([3, 1, 3]):
        parts.update_ab(chunk)
    assert torch.equal(whole.counts, parts.counts)
    assert parts.n_images == 7 and parts.n_pixels == whole.n_pixels
    assert torch.equal(whole.prior(), parts.prior())


def test_update_rgb_equals_update_ab_of_lab() -> None:
    rgb = random_rgb(6, seed=3, size=30)
    from_rgb, from_ab = PriorEstimator(stride=4), PriorEstimator(stride=4)
    from_rgb.update_rgb(rgb)
    from_ab.update_ab(rgb_to_lab(rgb.float() / 255)[:, 1:])
    assert torch.equal(from_rgb.counts, from_ab.counts)
    assert from_rgb.n_pixels == 6 * 8 * 8
    float_rgb = PriorEstimator(stride=4)
    float_rgb.update_rgb(rgb.float() / 255)
    assert torch.equal(float_rgb.counts, from_rgb.counts)


def test_gray_images_are_skipped() -> None:
    est = PriorEstimator()
    est.update_rgb(random_rgb(2, seed=4))
    before = est.counts
    est.update_rgb(gray_rgb(3))
    assert torch.equal(est.counts, before)
    assert (est.n_images, est.n_gray_skipped) == (2, 3)


def test_gray_images_counted_without_skip_gray() -> None:
    est = PriorEstimator(skip_gray=False, stride=4)
    est.update_rgb(gray_rgb(3))
    assert est.n_gray_skipped == 0 and est.n_images == 3
    assert est.counts[bin_index(0, 0)] == est.n_pixels == 3 * 6 * 6


def test_gray_test_looks_at_subsampled_pixels_only() -> None:
    ab = torch.zeros(2, 2, 8, 8)
    ab[0, 0, 4, 4] = 30.0  # on the stride-4 grid: colourful
    ab[1, 1, 3, 5] = 30.0  # off the grid: gray after subsampling
    est = PriorEstimator(stride=4)
    est.update_ab(ab)
    assert (est.n_images, est.n_gray_skipped, est.n_pixels) == (1, 1, 4)
    assert est.counts[bin_index(30, 0)] == 1 and est.counts[bin_index(0, 0)] == 3


def test_state_dict_resumes() -> None:
    a, b = random_rgb(3, seed=5), random_rgb(4, seed=6)
    first = PriorEstimator()
    first.update_rgb(a)
    resumed = PriorEstimator()
    resumed.load_state_dict(first.state_dict())
    resumed.update_rgb(b)
    reference = PriorEstimator()
    reference.update_rgb(torch.cat([a, b]))
    assert torch.equal(resumed.counts, reference.counts)
    assert resumed.state_dict().keys() == reference.state_dict().keys()
    assert resumed.n_images == 7 and resumed.n_pixels == reference.n_pixels
    with pytest.raises(ValueError, match="stride"):
        PriorEstimator(stride=2).load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match="keys"):
        PriorEstimator().load_state_dict({"counts": first.counts})


def test_all_reduce_without_process_group_is_a_no_op() -> None:
    est = PriorEstimator()
    est.update_rgb(random_rgb(2, seed=7))
    counts = est.counts
    assert est.all_reduce() is est
    assert torch.equal(est.counts, counts)
    est.update_rgb(random_rgb(1, seed=8))  # still usable


# Errors ------------------------------------------------------------------------------------------


def test_empty_estimator_has_no_prior() -> None:
    with pytest.raises(ValueError, match="no pixel was counted"):
        PriorEstimator().prior()
    est = PriorEstimator()
    est.update_rgb(gray_rgb(2))
    with pytest.raises(ValueError, match="2 grayscale images skipped"):
        est.prior()


@pytest.mark.parametrize(
    ("method", "x", "error", "message"),
    [
        ("update_ab", torch.zeros(2, 3, 8, 8), ValueError, "N x 2 x H x W"),
        ("update_ab", torch.zeros(2, 8, 8), ValueError, "N x 2 x H x W"),
        ("update_ab", torch.zeros(1, 2, 8, 8, dtype=torch.int64), TypeError, "floating"),
        ("update_ab", torch.full((1, 2, 8, 8), float("nan")), ValueError, "non-finite"),
        ("update_rgb", torch.zeros(2, 2, 8, 8), ValueError, "N x 3 x H x W"),
        ("update_rgb", torch.zeros(1, 3, 8, 8, dtype=torch.int32), TypeError, "floating"),
        ("update_rgb", torch.full((1, 3, 8, 8), 2.0), ValueError, r"\[0, 1\]"),
    ],
)
def test_bad_batches_raise(method: str, x: torch.Tensor, error: type, message: str) -> None:
    est = PriorEstimator()
    with pytest.raises(error, match=message):
        getattr(est, method)(x)
    assert est.n_images == 0 and int(est.counts.sum()) == 0


def test_bad_settings_and_vectors_raise() -> None:
    with pytest.raises(ValueError, match="stride"):
        PriorEstimator(stride=0)
    with pytest.raises(ValueError, match="sigma"):
        PriorEstimator(sigma=-1.0)
    with pytest.raises(ValueError, match="gray_threshold"):
        PriorEstimator(gray_threshold=float("nan"))
    with pytest.raises(ValueError, match="one entry per bin"):
        smooth_prior(torch.ones(Q + 1))
    with pytest.raises(ValueError, match="all zero"):
        smooth_prior(torch.zeros(Q))
    with pytest.raises(ValueError, match="non-negative"):
        smooth_prior(-torch.ones(Q))
    with pytest.raises(ValueError, match="kind"):
        estimate_prior([], kind="lab")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_images"):
        estimate_prior([], max_images=0)


# Files -------------------------------------------------------------------------------------------


def make_record() -> Prior:
    est = PriorEstimator(stride=2)
    est.update_rgb(torch.cat([random_rgb(3, seed=9), gray_rgb(1)]))
    return est.to_record(source="unit test images")


def test_save_load_round_trip(tmp_path: Path) -> None:
    record = make_record()
    path = tmp_path / "prior.json"
    save_prior(record, path)
    loaded = load_prior(path)
    assert torch.equal(loaded.prior, record.prior) and loaded.prior.dtype == torch.float64
    assert record.counts is not None and loaded.counts is not None
    assert torch.equal(loaded.counts, record.counts) and loaded.counts.dtype == torch.int64
    for field in ("sigma", "n_images", "n_pixels", "n_gray_skipped", "stride", "source", "created"):
        assert getattr(loaded, field) == getattr(record, field), field
    assert (loaded.n_images, loaded.n_gray_skipped, loaded.stride) == (3, 1, 2)
    assert loaded.n_pixels == 3 * 12 * 12 and loaded.sigma == 5.0
    assert loaded.source == "unit test images" and loaded.version == FORMAT_VERSION
    assert datetime.fromisoformat(loaded.created or "").tzinfo is not None
    data = json.loads(path.read_text())
    assert isinstance(data["prior"], list) and len(data["prior"]) == Q


def test_unreadable_files_are_recorded_and_older_files_still_load(tmp_path: Path) -> None:
    path = tmp_path / "prior.json"
    save_prior(dataclasses.replace(make_record(), n_unreadable=2), path)
    assert load_prior(path).n_unreadable == 2
    data = json.loads(path.read_text())
    assert data["n_unreadable"] == 2
    del data["n_unreadable"]  # a file written before the count was recorded
    path.write_text(json.dumps(data))
    old = load_prior(path)
    assert old.n_unreadable is None and torch.equal(old.prior, make_record().prior)
    data["n_unreadable"] = 1.5
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="'n_unreadable' has the wrong type"):
        load_prior(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(colour_space="lab"), "unknown key 'colour_space'"),
        (lambda d: d.pop("sigma"), "missing key 'sigma'"),
        (lambda d: d.update(prior=d["prior"][:-1]), f"must hold {Q} numbers"),
        (lambda d: d.update(counts=[0.5] * Q), "only integers"),
        (lambda d: d.update(n_images="3"), "'n_images' has the wrong type"),
        (lambda d: d.update(prior=[2 * v for v in d["prior"]]), "sum to 1"),
        (lambda d: d.update(version=FORMAT_VERSION + 1), "version"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "bad.json"
    save_prior(make_record(), path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        load_prior(path)
    assert str(path) in str(info.value)


def test_load_reference_table(reference_dir: Path, reference_prior: torch.Tensor) -> None:
    path = reference_dir / "imagenet_prior_313.txt"
    table = load_prior_table(path, sigma=5.0)
    assert torch.equal(table.prior, reference_prior)
    assert table.counts is None and table.source == str(path) and table.sigma == 5.0
    assert table.n_images is None and table.created is None


def test_load_table_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "table.txt"
    path.write_text("# header\n" + "0.5\n" * 2)
    with pytest.raises(ValueError, match="one entry per bin") as info:
        load_prior_table(path)
    assert str(path) in str(info.value)
    path.write_text("# header\n0.5\nhalf\n")
    with pytest.raises(ValueError, match="line 3"):
        load_prior_table(path)


# One pass ----------------------------------------------------------------------------------------


def test_estimate_prior_stops_at_max_images() -> None:
    pulled = []

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(5):
            pulled.append(i)
            yield random_rgb(3, seed=20 + i), torch.zeros(3)  # (images, labels) as loaders give

    record = estimate_prior(batches(), kind="rgb", max_images=7, source="five batches")
    assert pulled == [0, 1, 2]
    assert record.n_images == 7 and record.n_gray_skipped == 0 and record.source == "five batches"
    reference = PriorEstimator()
    reference.update_rgb(torch.cat([random_rgb(3, seed=20 + i) for i in range(3)])[:7])
    assert record.counts is not None and torch.equal(record.counts, reference.counts)
    assert torch.equal(record.prior, reference.prior())


def test_estimate_prior_from_ab_without_limit() -> None:
    ab = random_ab(4, seed=30)
    record = estimate_prior(ab.split(3), kind="ab", stride=1, sigma=2.0)
    assert record.n_images == 4 and record.stride == 1 and record.sigma == 2.0
    assert record.counts is not None
    np.testing.assert_array_equal(record.counts.numpy(), numpy_histogram(ab, 1))


# DDP ---------------------------------------------------------------------------------------------

DDP_SPLIT = (5, 3)


def ddp_images() -> torch.Tensor:
    return torch.cat([random_rgb(6, seed=40), gray_rgb(2)])[torch.tensor([0, 6, 1, 2, 3, 4, 7, 5])]


def ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        est = PriorEstimator()
        for batch in ddp_images().split(DDP_SPLIT)[rank].split(2):
            est.update_rgb(batch)
        est.all_reduce()
        torch.save(est.state_dict(), Path(out_dir) / f"rank{rank}.pt")
        with pytest.raises(RuntimeError, match="already all-reduced"):
            est.all_reduce()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)
def test_ddp_all_reduce_equals_single_process(tmp_path: Path) -> None:
    world_size = len(DDP_SPLIT)
    mp.spawn(
        ddp_worker,
        args=(world_size, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world_size,
        join=True,
    )
    single = PriorEstimator()
    single.update_rgb(ddp_images())
    assert single.n_gray_skipped == 2
    for rank in range(world_size):
        reduced = PriorEstimator()
        reduced.load_state_dict(torch.load(tmp_path / f"rank{rank}.pt"))
        assert torch.equal(reduced.counts, single.counts)
        assert (reduced.n_images, reduced.n_pixels, reduced.n_gray_skipped) == (6, 6 * 36, 2)
        assert torch.equal(reduced.prior(), single.prior())


def test_prior_of_real_photos_matches_skimage_histogram(cbsd68_crops: torch.Tensor) -> None:
    """CBSD68: the counted prior equals a histogram of scikit-image's ab, up to bisector flips."""
    from skimage import color

    record = estimate_prior([cbsd68_crops[:4], cbsd68_crops[4:]], source="cbsd68")
    assert record.n_images == 8 and record.n_pixels == 8 * 44 * 44
    lab = np.stack([color.rgb2lab(im) for im in cbsd68_crops.permute(0, 2, 3, 1).numpy()])
    expected = np.bincount(numpy_nearest(lab[:, ::4, ::4, 1:].reshape(-1, 2)), minlength=Q)
    counts = record.counts.numpy()
    # float32 vs float64 ab (|diff| < 1e-3) may move a pixel lying on a bisector to the next bin.
    assert np.abs(counts - expected).sum() <= 2e-3 * counts.sum()
    assert np.allclose(record.prior.numpy(), numpy_smooth(expected / expected.sum(), 5.0), atol=1e-3)
