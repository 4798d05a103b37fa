"""Seeded splits: one implementation for pretraining, detection and segmentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfsup_color.data.datamodule import split_files
from selfsup_color.data.splits import held_out_count, read_split, seeded_split, write_split
from transfer.detection import data as detection
from transfer.segmentation import data as segmentation

SPLITS = Path(__file__).parents[3] / "experiments" / "results" / "splits"


@pytest.mark.parametrize(("n", "fraction"), [(2, 0.5), (3, 0.01), (10, 0.3), (128, 0.2), (7, 0.99)])
def test_split_is_deterministic_disjoint_and_complete(n: int, fraction: float) -> None:
    items = [f"item{i:03d}" for i in range(n)]
    train, val = seeded_split(items, fraction, seed=5, stream=9)
    assert (train, val) == seeded_split(items, fraction, seed=5, stream=9)
    assert not set(train) & set(val) and sorted(train + val) == items
    assert len(val) == min(max(round(fraction * n), 1), n - 1) == held_out_count(n, fraction)
    assert train == sorted(train) and val == sorted(val)  # the items' order is kept


def test_seed_and_stream_choose_different_splits() -> None:
    items = list(range(100))
    val = seeded_split(items, 0.2, seed=0, stream=1)[1]
    assert val != seeded_split(items, 0.2, seed=1, stream=1)[1]
    assert val != seeded_split(items, 0.2, seed=0, stream=2)[1]


def test_pretraining_split_is_the_one_it_always_was() -> None:
    files = [Path(f"{i}.png") for i in range(10)]
    train, val = split_files(files, 0.3, seed=0)  # written by the code before issue 15
    assert [int(p.stem) for p in train] == [0, 2, 4, 5, 6, 7, 8]
    assert [int(p.stem) for p in val] == [1, 3, 9]


@pytest.mark.parametrize(
    ("name", "split"),
    [("coco128_detection", detection.split_ids), ("coco128_segmentation", segmentation.split_stems)],
)
def test_recipe_split_files_are_reproduced(name: str, split: object) -> None:
    recorded = json.loads((SPLITS / f"{name}.json").read_text())
    everything = list(reversed(recorded["train"] + recorded["val"]))  # the input order must not matter
    train, val = split(everything, 0.2, 0)  # type: ignore[operator]
    assert (train, val) == (recorded["train"], recorded["val"])


@pytest.mark.parametrize(("items", "fraction"), [([1], 0.5), ([1, 2], 0.0), ([1, 2], 1.0)])
def test_impossible_splits_raise(items: list[int], fraction: float) -> None:
    with pytest.raises(ValueError, match=r"split|fraction"):
        seeded_split(items, fraction, seed=0, stream=0)


def test_write_split_reads_back(tmp_path: Path) -> None:
    path = write_split(tmp_path / "a" / "split.json", [3, 1], [2], seed=4)
    assert json.loads(path.read_text()) == {"seed": 4, "train": [3, 1], "val": [2]}
    assert read_split(path) == ([3, 1], [2])
    write_split(path, [3, 1], [1])
    with pytest.raises(ValueError, match="in both train and val"):
        read_split(path)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["split.json"]
