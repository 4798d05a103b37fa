"""docs/results/summary.json: every per-seed number of the stage outputs, in one machine-readable file.

Layout (values in percent, lists in the order of ``seeds``; an arm or seed whose stage has not run
is absent)::

    {"imagenette": {"linear_top1": {ARM: {TAP: [...]}}, "knn_top1": {...},
                    "cbsd68": {ARM: {METRIC: [...]}}},
     "hymenoptera": {"linear_top1": {...}},
     "alexnet": {"imagenette_linear_top1": {ARM: {TAP: [...]}}, "coco128_multilabel": {ARM: {...}}},
     "coco128": {"detection": {ARM: {"map": [...], "map_50": [...]}}, "segmentation": {...}},
     "seeds": {BLOCK: {ARM: [seed, ...]}}, "cbsd68_about": {...}, "priors": {...},
     "recipes": {...}, "commits": {STAGE: commit}, "compute_minutes": {STAGE KIND: minutes}}

ARM is one of ``rebalanced``, ``lam1``, ``l2``, ``random``, ``supervised`` (CBSD68 adds ``gray``); the
``alexnet`` block (the CPU miniature of the paper's pipeline) has ``alexnet`` and ``alexnet-random``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.paths import REPO
from experiments.results.stages import (
    ALEXNET_ARMS,
    ALEXNET_LINEAR_RECIPE,
    ALEXNET_RECIPE,
    ARMS,
    CBSD68_PROCESS_SIZE,
    FROM_FC7,
    HYMENOPTERA_RECIPE,
    KNN_RECIPE,
    LINEAR_RECIPE,
    MULTILABEL_RECIPE,
    PRETEXTS,
    PRETRAIN_RECIPE,
    RANDOM,
    SPLITS,
    SUPERVISED,
    TRANSFER,
    Arm,
    run_dir,
)
from transfer.report import Result, read_results

SUMMARY = REPO / "docs" / "results" / "summary.json"
CBSD68_METRICS = ("auc", "rebalanced_auc", "rebalanced_auc_imagenet_prior", "colourfulness", "psnr")
PERCENT_METRICS = {"auc", "rebalanced_auc", "rebalanced_auc_imagenet_prior"}
"""CBSD68 metrics stored as fractions by ``selfsup-color evaluate``, given here in percent."""


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _arm_results(
    root: Path, kind: str, output: str, arms: tuple[Arm, ...] = ARMS
) -> dict[str, dict[int, Result]]:
    """arm -> seed -> the encoder's result of stage ``kind`` (supervised: the random seed-0 stage's
    second row for ``linear``, its own stages otherwise)."""
    found: dict[str, dict[int, Result]] = defaultdict(dict)
    for arm in arms:
        for seed in arm.seeds:
            path = run_dir(root, kind, arm.name, seed) / output
            if path.is_file():
                found[arm.name][seed] = read_results(path)[0]
    random0 = run_dir(root, kind, RANDOM.name, 0) / output
    if kind == "linear" and random0.is_file() and len(rows := read_results(random0)) > 1:
        found[SUPERVISED.name][0] = rows[1]
    return found


def _percent(value: float) -> float:
    return round(100.0 * value, 2)


def _per_seed(
    root: Path,
    kind: str,
    output: str,
    cells: Callable[[Result], dict[str, float]],
    arms: tuple[Arm, ...] = ARMS,
) -> tuple[dict, dict]:
    """(arm -> column -> [value per seed in percent], arm -> [seeds]); ``cells`` picks a result's columns."""
    values: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, list[int]] = {}
    for arm, by_seed in _arm_results(root, kind, output, arms).items():
        order = sorted(by_seed)
        rows = [cells(by_seed[s]) for s in order]
        values[arm] = {column: [_percent(row[column]) for row in rows] for column in rows[0]}
        seeds[arm] = order
    return values, seeds


def per_layer(
    root: Path, kind: str, output: str, metric: str, arms: tuple[Arm, ...] = ARMS
) -> tuple[dict, dict]:
    """(arm -> tap -> [value per seed], arm -> [seeds]) of a per-layer evaluation."""
    return _per_seed(root, kind, output, lambda r: {t: r.metrics[t][metric] for t in r.layers()}, arms)


def whole_network(
    root: Path, kind: str, output: str, metrics: tuple[str, ...], arms: tuple[Arm, ...] = ARMS
) -> tuple[dict, dict]:
    """(arm -> metric -> [value per seed], arm -> [seeds]) of a single-row evaluation (detection, ...)."""
    return _per_seed(
        root, kind, output, lambda r: {m: next(iter(r.metrics.values()))[m] for m in metrics}, arms
    )


def cbsd68(root: Path) -> tuple[dict, dict, dict]:
    """(arm -> metric -> [value per seed], arm -> [seeds], about) of the CBSD68 evaluations."""
    own, imagenet = root / "cbsd68" / "scores.json", root / "cbsd68-imagenet-prior" / "scores.json"
    if not own.is_file():
        return {}, {}, {}
    record = json.loads(own.read_text())
    scores = {name: dict(s) for name, s in record["scores"].items()}
    if imagenet.is_file():
        for name, s in json.loads(imagenet.read_text())["scores"].items():
            scores[name]["rebalanced_auc_imagenet_prior"] = s["rebalanced_auc"]
    values: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, list[int]] = {}
    order = ["gray", *(arm.name for arm in ARMS)]

    def rank(name: str) -> tuple[int, int]:
        arm, _, seed = name.partition("/seed")
        return (order.index(arm) if arm in order else len(order), int(seed or 0))

    for name in sorted(scores, key=rank):
        arm, _, seed = name.partition("/seed")
        for metric, value in scores[name].items():
            if metric in CBSD68_METRICS:
                shown = _percent(value) if metric in PERCENT_METRICS else round(value, 2)
                values.setdefault(arm, {}).setdefault(metric, []).append(shown)
        seeds.setdefault(arm, []).append(int(seed) if seed else 0)
    about = {
        "images": record["images"],
        "pixels": record["pixels"],
        "truth_colourfulness": round(record["truth_colourfulness"], 2),
        "process_size": CBSD68_PROCESS_SIZE,
    }
    return values, seeds, about


def manifest_figures(root: Path) -> tuple[dict[str, str], dict[str, float]]:
    """(stage -> commit it started from, stage kind -> minutes summed over its stages)."""
    path = root / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    commits = {name: str(record.get("code", "-")) for name, record in manifest.items()}
    minutes: dict[str, float] = defaultdict(float)
    for name, record in manifest.items():
        if "seconds" in record:
            minutes[name.split("/")[0]] += record["seconds"] / 60
    return commits, {kind: round(m, 1) for kind, m in minutes.items()}


def recipes() -> dict[str, Any]:
    return {
        "pretrain": _relative(PRETRAIN_RECIPE),
        "pretrain_overrides": {arm.name: list(arm.overrides or ()) for arm in PRETEXTS},
        "linear": _relative(LINEAR_RECIPE),
        "knn": _relative(KNN_RECIPE),
        "hymenoptera": _relative(HYMENOPTERA_RECIPE),
        "detection": _relative(TRANSFER / "detection_coco128_cpu.yaml"),
        "segmentation": _relative(TRANSFER / "segmentation_coco128_cpu.yaml"),
        "coco128_splits": _relative(SPLITS),
        "alexnet_pretrain": _relative(ALEXNET_RECIPE),
        "alexnet_linear": _relative(ALEXNET_LINEAR_RECIPE),
        "alexnet_multilabel": _relative(MULTILABEL_RECIPE),
        "alexnet_multilabel_overrides": list(FROM_FC7),
        "alexnet_transfer_options": list(ALEXNET_ARMS[0].transfer),
        "cbsd68_process_size": CBSD68_PROCESS_SIZE,
    }


def collect(root: Path) -> dict[str, Any]:
    """Every per-seed number under the results root ``root``."""
    linear, linear_seeds = per_layer(root, "linear", "linear_imagenette64.json", "top1")
    knn, knn_seeds = per_layer(root, "knn", "knn_imagenette64.json", "top1")
    hymenoptera, hymenoptera_seeds = per_layer(root, "hymenoptera", "linear_hymenoptera.json", "top1")
    detection, detection_seeds = whole_network(root, "detection", "detection_coco128.json", ("map", "map_50"))
    segmentation, segmentation_seeds = whole_network(
        root, "segmentation", "segmentation_coco128.json", ("miou", "pixel_acc")
    )
    colour, colour_seeds, about = cbsd68(root)
    alex_linear, alex_linear_seeds = per_layer(
        root, "alexnet-linear", "linear_imagenette96.json", "top1", ALEXNET_ARMS
    )
    alex_multilabel, alex_multilabel_seeds = whole_network(
        root, "alexnet-multilabel", "multilabel_coco128.json", ("map", "map_1crop"), ALEXNET_ARMS
    )
    priors = root / "priors" / "priors.json"
    commits, minutes = manifest_figures(root)
    return {
        "imagenette": {"linear_top1": linear, "knn_top1": knn, "cbsd68": colour},
        "hymenoptera": {"linear_top1": hymenoptera},
        "coco128": {"detection": detection, "segmentation": segmentation},
        "alexnet": {"imagenette_linear_top1": alex_linear, "coco128_multilabel": alex_multilabel},
        "seeds": {
            "imagenette/linear_top1": linear_seeds,
            "imagenette/knn_top1": knn_seeds,
            "imagenette/cbsd68": colour_seeds,
            "hymenoptera/linear_top1": hymenoptera_seeds,
            "coco128/detection": detection_seeds,
            "coco128/segmentation": segmentation_seeds,
            "alexnet/imagenette_linear_top1": alex_linear_seeds,
            "alexnet/coco128_multilabel": alex_multilabel_seeds,
        },
        "cbsd68_about": about,
        "priors": json.loads(priors.read_text()) if priors.is_file() else {},
        "recipes": recipes(),
        "commits": commits,
        "compute_minutes": minutes,
    }


def write_summary(root: Path, out: Path = SUMMARY) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(collect(root), indent=1) + "\n")
    return out
