"""docs/results.md from docs/results/summary.json (figures written to docs/results/).

Tables, curves and contrasts are computed from the summary only; the prose between them comes from
``experiments/results/commentary.md`` (one ``## key`` section per part), written by hand after
reading the numbers. A part whose stages have not run yet shows the command that runs them.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from experiments.paths import REPO
from experiments.results.stages import ALEXNET_ARMS, ARMS, PRETEXTS, RANDOM, SPLITS, SUPERVISED
from experiments.results.stats import gap_share, summarize, welch_contrast
from selfsup_color.data.decode import load_rgb

DOCS = REPO / "docs"
FIGURES = DOCS / "results"
COMMENTARY = REPO / "experiments" / "results" / "commentary.md"
LABELS = {arm.name: arm.label for arm in (*ARMS, *ALEXNET_ARMS)} | {"gray": "gray (ab = 0)"}
ALEXNET_CONTRAST = ((ALEXNET_ARMS[0].name, ALEXNET_ARMS[1].name),)
"""The colorization AlexNet against its rescaled random baseline."""
CONTRASTS = (*((p.name, RANDOM.name) for p in PRETEXTS), (PRETEXTS[0].name, PRETEXTS[1].name))
"""Each pretext against random init, and the full method against no rebalancing."""
MIN_GAP = 2.0
"""Below 2 points between random init and supervised, the share of the gap closed is not shown."""

Block = dict[str, dict[str, list[float]]]
"""arm -> column (a tap or a metric) -> one value per seed."""


def commentary() -> dict[str, str]:
    """``## key`` sections of the commentary file, by key."""
    if not COMMENTARY.is_file():
        return {}
    parts = re.split(r"^## (\w+)\s*$", COMMENTARY.read_text(), flags=re.MULTILINE)
    return {key: body.strip() + "\n" for key, body in zip(parts[1::2], parts[2::2], strict=True)}


def pending(stage: str) -> str:
    return f"_Not run yet: `python -m experiments.results --only {stage}`._\n"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def renamed(block: Block, names: dict[str, str]) -> Block:
    """``block`` with its columns renamed by ``names``, in the order of ``names``."""
    return {arm: {names[m]: values[m] for m in names if m in values} for arm, values in block.items()}


def columns(block: Block) -> list[str]:
    out: list[str] = []
    for arm in block.values():
        out += [c for c in arm if c not in out]
    return out


def spread_table(block: Block, seeds: dict[str, list[int]], digits: int = 1) -> str:
    """Mean ± sd per arm and column, with the number of seeds."""
    cols = columns(block)
    rows = []
    for arm, values in block.items():
        cells = []
        for c in cols:
            if c not in values:
                cells.append("-")
                continue
            s = summarize(values[c])
            cells.append(f"{s.mean:.{digits}f}" + ("" if s.sd is None else f" ± {s.sd:.{digits}f}"))
        rows.append([LABELS.get(arm, arm), str(len(seeds.get(arm, []))), *cells])
    return table(["arm", "seeds", *cols], rows)


def contrast_table(block: Block, pairs: Sequence[tuple[str, str]] = CONTRASTS, digits: int = 1) -> str:
    """Difference of means with its 95% Welch interval per column; bold where it excludes 0."""
    cols = columns(block)
    rows = []
    for a, b in pairs:
        if a not in block or b not in block:
            continue
        cells = []
        for c in cols:
            x, y = block[a].get(c, []), block[b].get(c, [])
            if len(x) < 2 or len(y) < 2:
                cells.append("-")
                continue
            k = welch_contrast(x, y)
            text = f"{k.difference:+.{digits}f} [{k.low:+.{digits}f}, {k.high:+.{digits}f}]"
            cells.append(f"**{text}**" if k.excludes_zero else text)
        rows.append([f"{a} - {b}", *cells])
    if not rows:
        return ""
    return "Differences of means with 95% Welch intervals (bold: the interval excludes 0):\n\n" + table(
        ["contrast", *cols], rows
    )


def gap_table(block: Block) -> str:
    """Share of the random-to-supervised gap each pretext closes per layer, from the means."""
    if RANDOM.name not in block or SUPERVISED.name not in block:
        return ""
    cols = columns(block)
    rnd = {c: summarize(block[RANDOM.name][c]).mean for c in cols}
    sup = {c: summarize(block[SUPERVISED.name][c]).mean for c in cols}
    rows = []
    for p in PRETEXTS:
        if p.name not in block:
            continue
        shares = [gap_share(summarize(block[p.name][c]).mean, rnd[c], sup[c], MIN_GAP) for c in cols]
        rows.append([LABELS[p.name], *("-" if s is None else f"{100 * s:.0f}%" for s in shares)])
    return (
        "Share of the gap from random init to supervised closed per layer, (pretext - random) / "
        f"(supervised - random) from the means (negative: below random init; '-': a gap under {MIN_GAP:.0f} "
        "points):\n\n" + table(["pretext", *cols], rows)
    )


def curves(block: Block, path: Path, title: str, ylabel: str) -> Path:
    """Per-layer means with ±1 sd error bars, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfsup_color.viz import save_figure

    cols = columns(block)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for i, (arm, values) in enumerate(block.items()):
        xs = [j + (i - len(block) / 2) * 0.04 for j, c in enumerate(cols) if c in values]
        stats = [summarize(values[c]) for c in cols if c in values]
        label = f"{LABELS.get(arm, arm)} (n = {stats[0].n})"
        ax.errorbar(
            xs, [s.mean for s in stats], yerr=[s.sd or 0.0 for s in stats], marker="o", capsize=3, label=label
        )
    ax.set_xticks(range(len(cols)), cols)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def figure_link(path: Path) -> str:
    return f"![{path.name}](results/{path.name})\n"


def copy_figure(src: Path, name: str) -> str:
    """Copy ``src`` to docs/results/``name`` (re-encoded as JPEG for a .jpg name) and link it."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    if name.endswith(".jpg"):
        load_rgb(src).save(FIGURES / name, quality=90)  # transparent figures on white
    else:
        shutil.copyfile(src, FIGURES / name)
    return figure_link(FIGURES / name)


def per_layer_section(
    block: Block,
    seeds: dict[str, list[int]],
    stage: str,
    title: str,
    name: str,
    gaps: bool = True,
    pairs: Sequence[tuple[str, str]] = CONTRASTS,
) -> str:
    """Mean ± sd, contrasts, gap shares (unless ``gaps`` is False) and curves of one probe."""
    if not block:
        return pending(stage)
    text = spread_table(block, seeds) + "\n" + contrast_table(block, pairs)
    shares = gap_table(block) if gaps else ""
    text += ("\n" + shares if shares else "") + "\n"
    return text + figure_link(curves(block, FIGURES / name, title, "top-1 (%), mean ± sd over seeds"))


def cbsd68_section(summary: dict[str, Any], root: Path | None) -> str:
    block, about = summary["imagenette"]["cbsd68"], summary["cbsd68_about"]
    if not block:
        return pending("cbsd68")
    names = {
        "auc": "AuC (%)",
        "rebalanced_auc": "rebalanced AuC (%), CBSD68 prior",
        "rebalanced_auc_imagenet_prior": "rebalanced AuC (%), ImageNet prior",
        "colourfulness": "colourfulness",
        "psnr": "PSNR (dB)",
    }
    shown = renamed(block, names)
    text = (
        f"{about['images']} photos, {about['pixels']:,} pixels, each colorized at full resolution with the "
        f"network seeing L at shorter side {about['process_size']} px (its training crop). The truth's "
        f"colourfulness is {about['truth_colourfulness']:.1f}.\n\n"
    )
    text += spread_table(shown, summary["seeds"]["imagenette/cbsd68"], digits=1)
    # gray has no seed: it enters as a constant, so its contrasts are the pretext's one-sample intervals
    constant = {m: values * 2 for m, values in shown.get("gray", {}).items()}
    pairs = [(p.name, "gray") for p in PRETEXTS] + [(PRETEXTS[0].name, p.name) for p in PRETEXTS[1:]]
    text += "\n" + contrast_table(shown | ({"gray": constant} if constant else {}), pairs)
    grid = root / "cbsd68" / "grid.png" if root else None
    if grid and grid.is_file():
        text += "\nSix photos evenly spaced in file-name order (not chosen by result), every network:\n\n"
        text += copy_figure(grid, "cbsd68_grid.jpg")
    elif (FIGURES / "cbsd68_grid.jpg").is_file():
        text += "\n" + figure_link(FIGURES / "cbsd68_grid.jpg")
    return text


def coco_section(summary: dict[str, Any]) -> str:
    parts = []
    names = {
        "map": "mAP@[.5:.95] (%)",
        "map_50": "mAP@0.5 (%)",
        "miou": "mIoU (%)",
        "pixel_acc": "pixel acc. (%)",
    }
    for task in ("detection", "segmentation"):
        split = SPLITS / f"coco128_{task}.json"
        ids = json.loads(split.read_text())
        about = (
            f"**{task}** (split: [{split.relative_to(REPO)}](../{split.relative_to(REPO)}), "
            f"{len(ids['train'])} train / {len(ids['val'])} val images)\n\n"
        )
        block = summary["coco128"][task]
        if not block:
            parts.append(about + pending(f"{task}/rebalanced/seed0"))
            continue
        shown = renamed(block, names)
        body = spread_table(shown, summary["seeds"][f"coco128/{task}"], digits=2) + "\n"
        parts.append(about + body + contrast_table(shown, CONTRASTS[:3], digits=2))
    return "\n".join(parts)


def alexnet_section(summary: dict[str, Any]) -> str:
    """The CPU miniature of the paper's pipeline: rescaled linear probes and multi-label mAP."""
    block, seeds = summary["alexnet"], summary["seeds"]
    text = "**Linear probes on Imagenette (96 px), both networks rescaled**\n\n"
    text += per_layer_section(
        block["imagenette_linear_top1"], seeds["alexnet/imagenette_linear_top1"],
        "alexnet-linear/alexnet/seed0", "AlexNet linear probes, Imagenette val (3,925 images)",
        "linear_imagenette96_alexnet.png", gaps=False, pairs=ALEXNET_CONTRAST,
    )  # fmt: skip
    text += "\n**Multi-label classification on COCO128 from fc7 (VOC07 protocol, detection's split)**\n\n"
    multilabel = block["coco128_multilabel"]
    if not multilabel:
        return text + pending("alexnet-multilabel/alexnet/seed0")
    shown = renamed(multilabel, {"map": "mAP, 10 crops (%)", "map_1crop": "mAP, 1 crop (%)"})
    text += spread_table(shown, seeds["alexnet/coco128_multilabel"]) + "\n"
    return text + contrast_table(shown, ALEXNET_CONTRAST)


def priors_section(summary: dict[str, Any], root: Path | None) -> str:
    rows = [
        [name, str(s.get("images", "-")), f"{s['entropy_bits']:.2f}", str(s["bins_for_90_percent"]),
         f"{s['max_weight_lam_0.5']:.2f}"]
        for name, s in summary["priors"].items()
    ]  # fmt: skip
    if not rows:
        return pending("priors")
    text = table(
        ["data", "images", "entropy (bits)", "bins holding 90% of pixels", "largest weight (lam 0.5)"], rows
    )
    source = root / "priors" / "priors.png" if root else None
    if source and source.is_file():
        return text + "\n" + copy_figure(source, "priors.png")
    return text + ("\n" + figure_link(FIGURES / "priors.png") if (FIGURES / "priors.png").is_file() else "")


def provenance(summary: dict[str, Any], root: Path | None) -> str:
    minutes = summary["compute_minutes"]
    if not minutes:
        return "_No stage has run yet._\n"
    text = "Compute per kind of stage (wall-time minutes on the 2-core machine, summed over its stages):\n\n"
    text += table(["stage", "minutes"], [[k, f"{v:.1f}"] for k, v in minutes.items()])
    text += f"\nTotal: {sum(minutes.values()) / 60:.1f} h.\n"
    manifest = root / "manifest.json" if root else None
    if manifest and manifest.is_file():
        rows = []
        for name, record in json.loads(manifest.read_text()).items():
            took = f"{record['seconds'] / 60:.1f}" if "seconds" in record else "-"
            when = str(record.get("started", "found on disk"))
            when += f" ({record['note']})" if record.get("note") else ""
            rows.append([name, f"`{record.get('code', '-')}`", when, took])
        text += "\nEvery stage:\n\n" + table(["stage", "code", "started (UTC)", "minutes"], rows)
    return text


def render(summary_path: Path, root: Path | None = None, out: Path = DOCS / "results.md") -> Path:
    """Write ``out`` (docs/results.md) from ``summary_path``; figures that only exist as stage outputs
    (the CBSD68 grid, the priors) are copied from the results root ``root`` when given."""
    summary = json.loads(summary_path.read_text())
    notes = commentary()
    seeds = summary["seeds"]
    imagenette, hymenoptera = summary["imagenette"], summary["hymenoptera"]
    sections: list[tuple[str, str, Callable[[], str]]] = [
        ("0. How the recipe was chosen", "recipe", lambda: ""),
        ("1. Linear probes on Imagenette (64 px)", "imagenette", lambda: per_layer_section(
            imagenette["linear_top1"], seeds["imagenette/linear_top1"], "linear/rebalanced/seed0",
            "linear probes, Imagenette val (3,925 images)", "linear_imagenette64.png")),
        ("2. kNN on Imagenette (64 px)", "knn", lambda: per_layer_section(
            imagenette["knn_top1"], seeds["imagenette/knn_top1"], "knn/rebalanced/seed0",
            "kNN (k = 20), Imagenette val", "knn_imagenette64.png")),
        ("3. Linear probes on hymenoptera (unseen data)", "hymenoptera", lambda: per_layer_section(
            hymenoptera["linear_top1"], seeds["hymenoptera/linear_top1"], "hymenoptera/rebalanced/seed0",
            "linear probes, hymenoptera val (153 images)", "linear_hymenoptera.png", gaps=False)),
        ("4. Colorization quality on CBSD68", "cbsd68", lambda: cbsd68_section(summary, root)),
        ("5. Transfer to COCO128", "coco128", lambda: coco_section(summary)),
        ("6. The ab prior of each data set", "priors", lambda: priors_section(summary, root)),
        ("7. The paper's pipeline in miniature: the colorization AlexNet on the CPU", "alexnet",
         lambda: alexnet_section(summary)),
    ]  # fmt: skip
    FIGURES.mkdir(parents=True, exist_ok=True)
    text = notes.get("intro", "# Results\n")
    for title, key, body in sections:
        text += f"\n## {title}\n\n{notes.get(key, '')}\n{body()}"
    text += f"\n## How these numbers were made\n\n{notes.get('provenance', '')}\n{provenance(summary, root)}"
    out.write_text(text)
    return out
