"""Results of transfer evaluations: one JSON, one markdown table and one PNG chart per evaluation.

A :class:`Result` holds one encoder's scores on one task: a row per layer (tap) for probes, or a
single row (``"head"``) for detection and segmentation. An evaluation run writes the encoder and its
baselines together (:func:`write_report`), so every table and chart shows them side by side;
:func:`gather` merges the JSON files of several runs into one table (``selfsup-transfer report``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULT_FORMAT = "selfsup-transfer-result/1"


@dataclass
class Result:
    """One encoder's scores on one task.

    Args:
        task: ``linear``, ``knn``, ``finetune``, ``detection`` or ``segmentation``.
        dataset: the data's name (e.g. ``cifar10``).
        encoder: a label for tables (``cifar10_cpu.ckpt``, ``random init (eccv16)``, ...).
        metrics: layer -> metric -> value; metric values are fractions (0.53), not percentages.
        config: what produced it (for the record).
        examples: PNG files of example predictions (detection, segmentation), shown in the report.
    """

    task: str
    dataset: str
    encoder: str
    metrics: dict[str, dict[str, float]]
    config: dict[str, Any] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def layers(self) -> list[str]:
        return list(self.metrics)

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for values in self.metrics.values():
            names += [name for name in values if name not in names]
        return names


def result_to_json(result: Result) -> dict[str, Any]:
    return {"format": RESULT_FORMAT, **asdict(result)}


def result_from_json(data: dict[str, Any], source: str = "result") -> Result:
    """A :class:`Result` from its JSON form; ValueError naming ``source`` when it is not one."""
    if not isinstance(data, dict) or data.get("format") != RESULT_FORMAT:
        raise ValueError(f"{source} is not a selfsup-transfer result (format {RESULT_FORMAT!r})")
    fields = {k: v for k, v in data.items() if k != "format"}
    try:
        return Result(**fields)
    except TypeError as error:
        raise ValueError(f"{source}: malformed result ({error})") from error


def read_results(path: str | Path) -> list[Result]:
    """The results in a JSON file written by :func:`write_report` (a list) or a single result."""
    path = Path(path)
    data = json.loads(path.read_text())
    items = data["results"] if isinstance(data, dict) and "results" in data else [data]
    return [result_from_json(item, f"{path} item {i}") for i, item in enumerate(items)]


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}"


def markdown_table(results: Sequence[Result], metric: str | None = None) -> str:
    """Rows: task, dataset, encoder; columns: layers (one metric) or metrics (single-row results).

    Values are shown in percent with one decimal. For per-layer results the metric defaults to the
    first one (top-1 for probes); for single-row results every metric gets a column.
    """
    if not results:
        return "(no results)\n"
    per_layer = any(len(r.metrics) > 1 for r in results)
    if per_layer:
        metric = metric or results[0].metric_names()[0]
        columns: list[str] = []
        for r in results:
            columns += [layer for layer in r.layers() if layer not in columns]
        header = ["task", "data", "encoder", *columns]
        rows = [
            [r.task, r.dataset, r.encoder, *(_cell(r.metrics.get(c, {}).get(metric)) for c in columns)]
            for r in results
        ]
        title = f"{metric} (%) per layer"
    else:
        metrics: list[str] = []
        for r in results:
            metrics += [m for m in r.metric_names() if m not in metrics]
        header = ["task", "data", "encoder", *metrics]
        rows = [
            [
                r.task,
                r.dataset,
                r.encoder,
                *(_cell(next(iter(r.metrics.values()), {}).get(m)) for m in metrics),
            ]
            for r in results
        ]
        title = "scores (%)"
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def chart(results: Sequence[Result], path: str | Path, metric: str | None = None) -> Path:
    """Grouped bars: per layer (or per metric for single-row results), one bar per encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfsup_color.viz import save_figure

    per_layer = any(len(r.metrics) > 1 for r in results)
    metric = metric or (results[0].metric_names()[0] if results else "")
    if per_layer:
        groups: list[str] = []
        for r in results:
            groups += [layer for layer in r.layers() if layer not in groups]
        values = [[r.metrics.get(g, {}).get(metric, math.nan) for g in groups] for r in results]
        ylabel = f"{metric} (%)"
    else:
        groups = []
        for r in results:
            groups += [m for m in r.metric_names() if m not in groups]
        values = [[next(iter(r.metrics.values()), {}).get(g, math.nan) for g in groups] for r in results]
        ylabel = "score (%)"
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) + 2) + 2.5, 3.6))
    width = 0.8 / max(1, len(results))
    for i, (r, row) in enumerate(zip(results, values, strict=True)):
        xs = [g + (i - (len(results) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [100 * v for v in row], width, label=r.encoder)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    if results:
        ax.set_title(f"{results[0].task} on {results[0].dataset}")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    saved = save_figure(fig, path)
    plt.close(fig)
    return saved


def examples_markdown(results: Sequence[Result], folder: str | Path) -> str:
    """The results' example pictures as markdown images, linked relative to ``folder`` (the report's)."""
    parts = []
    for r in results:
        relative = [Path(os.path.relpath(Path(p).resolve(), Path(folder).resolve())) for p in r.examples]
        links = [f"![{path.stem}]({path.as_posix()})" for path in relative]
        if links:
            parts.append(f"**examples: {r.encoder}**\n\n" + "\n\n".join(links) + "\n")
    return "\n".join(parts)


def write_report(results: Sequence[Result], out_dir: str | Path, name: str) -> dict[str, Path]:
    """Write ``name``.json, ``name``.md and ``name``.png under ``out_dir``; returns their paths.

    The markdown holds the table and then each result's example pictures (:func:`examples_markdown`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md", "png": out / f"{name}.png"}
    paths["json"].write_text(json.dumps({"results": [result_to_json(r) for r in results]}, indent=2))
    examples = examples_markdown(results, out)
    paths["md"].write_text(markdown_table(results) + (f"\n{examples}" if examples else ""))
    chart(results, paths["png"])
    return paths


def gather(paths: Sequence[str | Path]) -> str:
    """One markdown document of the results in ``paths``, a table per (task, dataset) pair."""
    results = [r for path in paths for r in read_results(path)]
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.task, r.dataset), []).append(r)
    parts = [
        f"## {task} on {dataset}\n\n{markdown_table(group)}" for (task, dataset), group in groups.items()
    ]
    return "\n".join(parts) if parts else "(no results)\n"
