"""Example pictures of detection and segmentation: what is drawn where, written, embedded and logged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup_color.pretrain.loggers import SafeWandbLogger
from transfer.detection.data import coco_dataset, read_coco
from transfer.detection.examples import (
    PREDICTION_COLOUR,
    TRUTH_COLOUR,
    detection_examples,
    draw_detections,
)
from transfer.detection.model import build_detector
from transfer.encoder import EncoderConfig, build_encoder
from transfer.examples import save_examples
from transfer.report import Result, read_results, write_report
from transfer.segmentation.data import IGNORE_INDEX, PairTransform, SegmentationFiles, coco_style
from transfer.segmentation.examples import (
    PANEL_GAP,
    class_colours,
    draw_segmentation,
    overlay_mask,
    segmentation_examples,
)
from transfer.segmentation.model import SegmentationNet

RANDOM_ECCV16 = EncoderConfig(init="random", arch="eccv16", arch_options={"width": 0.25})

VOC_COLOURS = {
    1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128), 7: (128, 128, 128), 8: (64, 0, 0),
    9: (192, 0, 0), 15: (192, 128, 128), 20: (0, 64, 128),
}  # fmt: skip
"""Entries of PASCAL VOC's published colour map (aeroplane 1, ..., person 15, tvmonitor 20)."""


def read_png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def pixel(image: torch.Tensor, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image[:, y, x])


# ---------------------------------------------------------------- drawing


def test_class_colours_follow_the_voc_colour_map() -> None:
    colours = class_colours(21)
    assert colours.dtype == torch.uint8 and colours.shape == (21, 3)
    for entry, rgb in VOC_COLOURS.items():
        assert tuple(colours[entry - 1].tolist()) == rgb  # class k gets entry k + 1


def test_boxes_are_drawn_where_they_are_in_their_colours() -> None:
    image = torch.full((3, 80, 120), 90, dtype=torch.uint8)
    truth = {"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([2])}
    prediction = {
        "boxes": torch.tensor([[60.0, 20.0, 110.0, 70.0], [5.0, 65.0, 30.0, 78.0]]),
        "labels": torch.tensor([1, 1]),
        "scores": torch.tensor([0.9, 0.1]),  # the second is under the threshold: not drawn
    }
    drawn = draw_detections(image, prediction, truth, ("cat", "dog"), score_thresh=0.3)
    assert drawn.shape == image.shape and drawn.dtype == torch.uint8
    assert pixel(drawn, 30, 60) == TRUTH_COLOUR  # bottom edge of the true box
    assert pixel(drawn, 85, 70) == PREDICTION_COLOUR  # bottom edge of the predicted box
    assert pixel(drawn, 17, 78) == (90, 90, 90) and pixel(drawn, 5, 72) == (90, 90, 90)  # low score
    changed = (drawn != image).any(0)
    inside = torch.zeros_like(changed)
    inside[10:61, 10:51] = inside[20:71, 60:111] = True  # the two drawn boxes (and their labels)
    assert changed.any() and not (changed & ~inside).any()


def test_mask_overlay_blends_classes_and_leaves_ignored_pixels() -> None:
    image = torch.randint(0, 256, (3, 16, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mask = torch.full((16, 20), IGNORE_INDEX)
    mask[:8, :10], mask[8:, 10:] = 0, 3
    colours = class_colours(4)
    out = overlay_mask(image, mask, colours, alpha=0.5)
    expected = image.float().clone()
    for k in (0, 3):
        where = mask == k
        expected[:, where] = 0.5 * image[:, where].float() + 0.5 * colours[k].float()[:, None]
    assert (out.float() - expected).abs().max() <= 1  # rounding only
    ignored = mask == IGNORE_INDEX
    assert torch.equal(out[:, ignored], image[:, ignored])


def test_segmentation_picture_is_three_framed_panels() -> None:
    image = torch.randint(0, 256, (3, 12, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    truth = torch.full((12, 10), IGNORE_INDEX)
    truth[:4] = 1
    predicted = torch.zeros(12, 10, dtype=torch.int64)
    picture = draw_segmentation(image, predicted, truth, class_colours(2))
    g = PANEL_GAP
    assert picture.shape == (3, 12 + 2 * g, 3 * 10 + 4 * g)
    panels = [picture[:, g : g + 12, g + i * (10 + g) : g + i * (10 + g) + 10] for i in range(3)]
    assert torch.equal(panels[0], image)
    assert (panels[1] != image).any(0).all()  # every pixel has a predicted class
    assert (panels[2][:, :4] != image[:, :4]).any(0).all() and torch.equal(panels[2][:, 4:], image[:, 4:])
    assert (picture[:, :g] == 255).all()  # white frame


# ---------------------------------------------------------------- on COCO128


def test_detection_examples_on_coco128(coco128: Path, tmp_path: Path) -> None:
    index = read_coco(coco128 / "annotations" / "instances.json", coco128 / "images")
    val = coco_dataset(index, [30, 34, 9], keep_ignored=True, min_size=96, max_size=160)
    torch.manual_seed(0)
    encoder = build_encoder(RANDOM_ECCV16, freeze_at="all")
    detector = build_detector(encoder, 80, head="fpn", min_size=96, max_size=160, fpn_channels=64)
    detector.train()
    paths = detection_examples(detector, val, tmp_path / "examples", count=2)
    assert detector.training  # left as it was
    assert [p.name for p in paths] == ["detection_30.png", "detection_34.png"]
    for path, k in zip(paths, range(2), strict=True):
        image, truth = val[k]
        picture = read_png(path)
        assert picture.shape == image.shape
        x0, _, x1, y1 = (int(v) for v in truth["boxes"][0].round())
        x1, y1 = min(x1, image.shape[2] - 1), min(y1, image.shape[1] - 1)
        changed = (picture != image).any(0)
        assert changed[y1, (x0 + x1) // 2] or changed[y1 - 1, (x0 + x1) // 2]  # the box's bottom edge
        assert TRUTH_COLOUR in {pixel(picture, (x0 + x1) // 2, y) for y in (y1 - 1, y1)}


def test_segmentation_examples_on_coco128(coco128: Path, tmp_path: Path) -> None:
    pairs = coco_style(
        coco128 / "images", coco128 / "masks", coco128 / "masks_classes.json", val_fraction=0.5, max_images=6
    )
    val = SegmentationFiles(pairs.val, pairs.labels, PairTransform(64, 64, False))
    torch.manual_seed(0)
    net = SegmentationNet(build_encoder(RANDOM_ECCV16, "all"), pairs.labels.num_classes, width=16)
    paths = segmentation_examples(net, val, tmp_path / "examples", count=2)
    assert [p.name for p in paths] == [f"segmentation_{pair.stem}.png" for pair in pairs.val[:2]]
    g = PANEL_GAP
    for path, k in zip(paths, range(2), strict=True):
        image, truth = val[k]
        picture = read_png(path)
        assert picture.shape == (3, 64 + 2 * g, 3 * 64 + 4 * g)
        panels = [picture[:, g : g + 64, g + i * (64 + g) : g + i * (64 + g) + 64] for i in range(3)]
        assert torch.equal(panels[0], image)
        labelled = truth != IGNORE_INDEX
        assert labelled.any()
        differs = (panels[2] != image).any(0)
        assert differs[labelled].float().mean() > 0.9 and not differs[~labelled].any()


# ---------------------------------------------------------------- report and wandb


def test_report_embeds_the_examples_relative_to_itself(tmp_path: Path) -> None:
    picture = torch.zeros(3, 8, 8, dtype=torch.uint8)
    paths = save_examples({"detection_1": picture, "detection_2": picture}, tmp_path / "encoder" / "examples")
    result = Result("detection", "coco128", "mine", {"head": {"map": 0.1}}, examples=[str(p) for p in paths])
    plain = Result("detection", "coco128", "random", {"head": {"map": 0.0}})
    report = write_report([result, plain], tmp_path, "detection_coco128")
    text = report["md"].read_text()
    links = [line[line.index("(") + 1 : -1] for line in text.splitlines() if line.startswith("![")]
    assert links == ["encoder/examples/detection_1.png", "encoder/examples/detection_2.png"]
    assert all((tmp_path / link).is_file() for link in links) and "examples: mine" in text
    assert "examples: random" not in text
    assert [r.examples for r in read_results(report["json"])] == [result.examples, []]
    old = json.loads(report["json"].read_text())
    del old["results"][1]["examples"]  # a result written before examples existed still reads
    report["json"].write_text(json.dumps(old))
    assert read_results(report["json"])[1].examples == []


def test_examples_are_logged_to_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    wandb.finish()
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    logger = SafeWandbLogger(save_dir=str(tmp_path / "logs"))
    black, light = torch.zeros(3, 8, 8, dtype=torch.uint8), torch.full((3, 8, 8), 200, dtype=torch.uint8)
    pictures = {"a": black, "b": light}
    save_examples(pictures, tmp_path / "examples", logger, "detection/examples")
    run = Path(logger.experiment.dir).parent
    wandb.finish()
    logged = sorted((run / "files" / "media" / "images" / "detection").glob("examples_*.png"))
    assert len(logged) == 2
    assert sorted(read_png(p).float().mean().item() for p in logged) == [0.0, 200.0]
