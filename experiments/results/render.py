"""docs/results.md from the stage outputs under the results root, figures copied to docs/results/.

Tables and figures are computed from the stage outputs only; the prose between them comes from
``experiments/results/commentary.md`` (one ``## key`` section per part), written by hand after
reading the numbers. A stage that has not run yet shows the command that runs it.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

from PIL import Image

from experiments.paths import REPO
from experiments.results.stages import CBSD68_PROCESS_SIZE, PRETEXTS, SPLITS
from experiments.results.stats import gap_share
from transfer.report import Result, chart, read_results

DOCS = REPO / "docs"
FIGURES = DOCS / "results"
COMMENTARY = REPO / "experiments" / "results" / "commentary.md"
RANDOM, SUPERVISED = "random init", "supervised from scratch"
MIN_GAP = 0.02
"""Below 2 points between random init and supervised, the share of the gap closed is not shown."""


def commentary() -> dict[str, str]:
    """``## key`` sections of the commentary file, by key."""
    if not COMMENTARY.is_file():
        return {}
    parts = re.split(r"^## (\w+)\s*$", COMMENTARY.read_text(), flags=re.MULTILINE)
    return {key: body.strip() + "\n" for key, body in zip(parts[1::2], parts[2::2], strict=True)}


def pending(stage: str) -> str:
    return f"_Not run yet: `python -m experiments.results --only {stage}`._\n"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def figure(src: Path, name: str) -> str:
    """Copy ``src`` to docs/results/``name`` (re-encoded as JPEG for a .jpg name: photo grids stay
    small in the repository) and return its markdown image link."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    if name.endswith(".jpg"):
        with Image.open(src) as image:
            image.convert("RGB").save(FIGURES / name, quality=90)
    else:
        shutil.copyfile(src, FIGURES / name)
    return f"![{name}](results/{name})\n"


def linear_rows(root: Path) -> list[Result]:
    """The CIFAR-10 probe results: each pretext, then random init and supervised (from the first run)."""
    rows: list[Result] = []
    baselines: list[Result] = []
    for i, pretext in enumerate(PRETEXTS):
        path = root / "linear" / pretext.name / "linear_cifar10.json"
        if not path.is_file():
            continue
        results = read_results(path)
        rows.append(replace(results[0], encoder=pretext.label))
        if i == 0:
            for r in results[1:]:
                label = RANDOM if r.config.get("encoder", {}).get("init") == "random" else SUPERVISED
                baselines.append(replace(r, encoder=label))
    return rows + baselines


def gap_closed(value: float, random: float, supervised: float) -> str:
    """Share of the random -> supervised gap a pretext closes, in percent ('-' for gaps under MIN_GAP)."""
    share = gap_share(value, random, supervised, MIN_GAP)
    return "-" if share is None else f"{100 * share:.0f}%"


def linear_section(root: Path) -> str:
    results = linear_rows(root)
    if not results:
        return pending("linear/rebalanced")
    layers = results[0].layers()
    top1 = [[r.encoder, *(pct(r.metrics.get(layer, {}).get("top1")) for layer in layers)] for r in results]
    text = "**Top-1 accuracy (%) of a linear probe per layer, CIFAR-10 test split (10,000 images)**\n\n"
    text += table(["pretraining", *layers], top1)
    by_label = {r.encoder: r for r in results}
    if RANDOM in by_label and SUPERVISED in by_label:
        rnd, sup = by_label[RANDOM].metrics, by_label[SUPERVISED].metrics
        rows = []
        for r in results:
            if r.encoder in (RANDOM, SUPERVISED):
                continue
            cells = [gap_closed(r.metrics[x]["top1"], rnd[x]["top1"], sup[x]["top1"]) for x in layers]
            mean = sum(r.metrics[x]["top1"] for x in layers) / len(layers)
            mean_rnd = sum(rnd[x]["top1"] for x in layers) / len(layers)
            mean_sup = sum(sup[x]["top1"] for x in layers) / len(layers)
            rows.append([r.encoder, *cells, gap_closed(mean, mean_rnd, mean_sup)])
        text += (
            "\n**Share of the gap from random init to supervised closed by each pretext** "
            "((pretext - random) / (supervised - random), top-1; negative: below random init; "
            f"'-': supervised is less than {100 * MIN_GAP:.0f} points above random init there)\n\n"
        )
        text += table(["pretraining", *layers, "mean over layers"], rows)
    text += "\n" + figure(chart(results, root / "linear" / "linear_cifar10_all.png"), "linear_cifar10.png")
    return text


def cbsd68_section(root: Path) -> str:
    path = root / "cbsd68" / "scores.json"
    if not path.is_file():
        return pending("cbsd68")
    record = json.loads(path.read_text())
    labels = {"gray": "gray (ab = 0)", **{p.name: p.label for p in PRETEXTS}}
    rows = [
        [labels.get(name, name), f"{s['auc']:.3f}", f"{s['rebalanced_auc']:.3f}", f"{s['colourfulness']:.1f}",
         f"{s['psnr']:.2f}"]
        for name, s in record["scores"].items()
    ]  # fmt: skip
    rows.append(["ground truth", "1", "1", f"{record['truth_colourfulness']:.1f}", "-"])
    text = (
        f"{record['images']} photos, {record['pixels']:,} pixels, each colorized at full resolution with the "
        f"network seeing L at shorter side {CBSD68_PROCESS_SIZE} px. AuC over ab error thresholds 0-150; "
        "rebalanced AuC weights each pixel by the inverse of CBSD68's own smoothed ab prior; colourfulness "
        "(Hasler and Suesstrunk) and PSNR (RGB) are means over photos.\n\n"
    )
    text += table(["method", "AuC", "rebalanced AuC", "colourfulness", "PSNR (dB)"], rows)
    grid = root / "cbsd68" / "grid.png"
    if grid.is_file():
        text += "\nSix photos evenly spaced in file-name order (not chosen by result):\n\n"
        text += figure(grid, "cbsd68_grid.jpg")
    return text


def coco_section(root: Path) -> str:
    parts = []
    for task, metrics in (("detection", ("map", "map_50")), ("segmentation", ("miou", "pixel_acc"))):
        path = root / task / f"{task}_coco128.json"
        split = SPLITS / f"coco128_{task}.json"
        ids = json.loads(split.read_text())
        about = (
            f"Split: [{split.relative_to(REPO)}](../{split.relative_to(REPO)}) "
            f"({len(ids['train'])} train / {len(ids['val'])} val images).\n\n"
        )
        if not path.is_file():
            parts.append(f"**{task}**\n\n{about}{pending(task)}")
            continue
        results = read_results(path)
        rows = [
            [
                PRETEXTS[0].label if i == 0 else RANDOM,
                *(pct(next(iter(r.metrics.values())).get(m)) for m in metrics),
            ]
            for i, r in enumerate(results)
        ]
        names = {
            "map": "mAP@[.5:.95] (%)",
            "map_50": "mAP@0.5 (%)",
            "miou": "mIoU (%)",
            "pixel_acc": "pixel acc. (%)",
        }
        parts.append(f"**{task}**\n\n{about}" + table(["encoder", *(names[m] for m in metrics)], rows))
    return "\n".join(parts)


def priors_section(root: Path) -> str:
    path = root / "priors" / "priors.json"
    if not path.is_file():
        return pending("priors")
    rows = [
        [name, str(s.get("images", "-")), f"{s['entropy_bits']:.2f}", str(s["bins_for_90_percent"]),
         f"{s['max_weight_lam_0.5']:.2f}"]
        for name, s in json.loads(path.read_text()).items()
    ]  # fmt: skip
    text = table(
        ["data", "images", "entropy (bits)", "bins holding 90% of pixels", "largest weight (lam 0.5)"], rows
    )
    return text + "\n" + figure(root / "priors" / "priors.png", "priors.png")


def provenance(root: Path) -> str:
    path = root / "manifest.json"
    if not path.is_file():
        return "_No stage has run yet._\n"
    rows = []
    for name, record in json.loads(path.read_text()).items():
        minutes = f"{record['seconds'] / 60:.1f}" if "seconds" in record else "-"
        when = record.get("started", "found on disk")
        if record.get("note"):
            when += f" ({record['note']})"
        rows.append([name, f"`{record.get('code', '-')}`", str(when), minutes])
    return table(["stage", "code", "started (UTC)", "minutes"], rows)


def render(root: Path, out: Path = DOCS / "results.md") -> Path:
    """Write ``out`` (docs/results.md) from the outputs under ``root``."""
    notes = commentary()
    sections = [
        ("1. Representation quality on CIFAR-10", "cifar10", linear_section(root)),
        ("2. Colorization quality on CBSD68", "cbsd68", cbsd68_section(root)),
        ("3. Transfer to COCO128", "coco128", coco_section(root)),
        ("4. The ab prior of each data set", "priors", priors_section(root)),
    ]
    text = notes.get("intro", "# Results\n")
    for title, key, body in sections:
        text += f"\n## {title}\n\n{notes.get(key, '')}\n{body}"
    text += f"\n## How these numbers were made\n\n{notes.get('provenance', '')}\n{provenance(root)}"
    out.write_text(text)
    return out
