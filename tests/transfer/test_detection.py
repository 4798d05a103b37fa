"""Detection transfer: COCO/VOC readers, Faster R-CNN on a frozen or partly frozen encoder, mAP, a run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from PIL import Image
from torch.utils.data import DataLoader

from selfsup_color.data.splits import read_split
from transfer.common import OptimConfig
from transfer.detection.data import (
    VOC_CLASSES,
    coco_dataset,
    collate_detection,
    read_coco,
    resized_size,
    split_ids,
    voc_dataset,
    write_split,
)
from transfer.detection.model import build_detector, default_taps
from transfer.detection.module import DetectionModule, box_metric
from transfer.detection.run import DetectionConfig, DetectionDataConfig, DetectionModelConfig, run_detection
from transfer.encoder import EncoderConfig, build_encoder
from transfer.trainer import TrainerSpec

TINY = {"min_size": 96, "max_size": 160}
CHEAP = {"fpn_channels": 64, "box_batch_size_per_image": 64, "rpn_post_nms_top_n_train": 300}
RANDOM_ECCV16 = EncoderConfig(init="random", arch="eccv16", arch_options={"width": 0.25})


@pytest.fixture(scope="module")
def coco_json(coco128: Path) -> dict:
    return json.loads((coco128 / "annotations" / "instances.json").read_text())


def _objects(coco_json: dict, image_id: int) -> list[dict]:
    return [a for a in coco_json["annotations"] if a["image_id"] == image_id]


# --- COCO reader ---------------------------------------------------------------------------------


def test_coco_boxes_counts_scale_and_labels(coco128: Path, coco_json: dict) -> None:
    index = read_coco(coco128 / "annotations" / "instances.json", coco128 / "images")
    assert index.num_classes == 80 and index.class_names[0] == "person"
    label_of = {c["id"]: i + 1 for i, c in enumerate(sorted(coco_json["categories"], key=lambda c: c["id"]))}
    assert label_of[90] == 80  # COCO ids have gaps: 1..90 -> 1..80
    train = coco_dataset(index, [9, 315, 250, 86], **TINY)
    val = coco_dataset(index, [315], keep_ignored=True, **TINY)
    meta = {im["id"]: im for im in coco_json["images"]}
    for k, image_id in enumerate(train.image_ids):
        image, target = train[k]
        width, height = meta[image_id]["width"], meta[image_id]["height"]
        new_w, new_h = resized_size(width, height, 96, 160)
        assert image.dtype == torch.uint8 and image.shape == (3, new_h, new_w)
        assert min(new_w, new_h) == 96 or max(new_w, new_h) == 160
        kept = [a for a in _objects(coco_json, image_id) if not a["iscrowd"]]
        assert target["image_id"] == image_id and len(target["boxes"]) == len(kept)
        expected = [
            [x * new_w / width, y * new_h / height, (x + w) * new_w / width, (y + h) * new_h / height]
            for x, y, w, h in (a["bbox"] for a in kept)
        ]
        torch.testing.assert_close(target["boxes"], torch.tensor(expected).reshape(-1, 4))
        assert target["labels"].tolist() == [label_of[a["category_id"]] for a in kept]
        assert target["labels"].dtype == torch.int64
    assert len(_objects(coco_json, 315)) == 40 and len(train[1][1]["boxes"]) == 38  # 2 crowd boxes dropped
    assert train[2][1]["boxes"].shape == (0, 4)  # image 250 has no objects
    _, crowd = val[0]
    assert (
        len(crowd["boxes"]) == 40 and crowd["iscrowd"].sum() == 2 and crowd["iscrowd"][-2:].tolist() == [1, 1]
    )


def test_flip_mirrors_image_and_boxes(coco128: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = read_coco(coco128 / "annotations" / "instances.json", coco128 / "images")
    plain, target = coco_dataset(index, [25], **TINY)[0]
    monkeypatch.setattr(random, "random", lambda: 0.0)
    flipped, flipped_target = coco_dataset(index, [25], flip=True, **TINY)[0]
    width = plain.shape[-1]
    assert torch.equal(flipped, plain.flip(-1))
    b = target["boxes"]
    torch.testing.assert_close(
        flipped_target["boxes"], torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1)
    )


def test_split_is_deterministic_disjoint_and_stated(tmp_path: Path) -> None:
    ids = list(range(100, 228))
    train, val = split_ids(ids[::-1], 0.2, seed=3)
    assert (train, val) == split_ids(ids, 0.2, seed=3)  # order of the input does not matter
    assert len(val) == 26 and not set(train) & set(val) and sorted(train + val) == ids
    assert split_ids(ids, 0.2, seed=4)[1] != val
    path = write_split(tmp_path / "split.json", train, val, seed=3)
    assert read_split(path, ids) == (train, val)
    with pytest.raises(ValueError, match="not in the data"):
        read_split(path, ids[:50])


# --- VOC -----------------------------------------------------------------------------------------


def _voc_xml(width: int, height: int, objects: list[tuple[str, int, tuple[int, int, int, int]]]) -> str:
    parts = [
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>"
        f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, difficult, (x1, y1, x2, y2) in objects
    ]
    size = f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
    return f"<annotation>{size}{''.join(parts)}</annotation>"


def make_voc(root: Path) -> dict[str, list]:
    base = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True)
    layout = {
        "000005": [("chair", 0, (11, 21, 40, 45)), ("person", 1, (1, 1, 20, 30))],
        "000007": [("car", 0, (5, 6, 60, 40))],
        "000009": [("tvmonitor", 0, (30, 10, 64, 48)), ("dog", 0, (2, 3, 10, 12))],
    }
    rng = np.random.default_rng(0)
    for stem, objects in layout.items():
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
            base / "JPEGImages" / f"{stem}.jpg"
        )
        (base / "Annotations" / f"{stem}.xml").write_text(_voc_xml(64, 48, objects))
    (base / "ImageSets/Main/trainval.txt").write_text("000005\n000007\n")
    (base / "ImageSets/Main/test.txt").write_text("000009\n")
    return layout


def test_voc_layout_read_through_torchvision(tmp_path: Path) -> None:
    layout = make_voc(tmp_path)
    train = voc_dataset(tmp_path, ["2007-trainval"], min_size=96, max_size=200)
    assert train.num_classes == 20 and train.image_ids == [5, 7]
    image, target = train[0]
    assert image.shape == (3, 96, 128)  # 48 x 64 doubled
    chair = VOC_CLASSES.index("chair") + 1
    assert target["labels"].tolist() == [chair]  # the difficult person is dropped for training
    torch.testing.assert_close(
        target["boxes"], torch.tensor([[10.0, 20.0, 40.0, 45.0]]) * 2
    )  # 1-based -> 0-based
    test = voc_dataset(tmp_path, ["2007-test"], keep_ignored=True, min_size=48, max_size=64)
    _, target = test[0]
    assert target["labels"].tolist() == [VOC_CLASSES.index(n) + 1 for n, _, _ in layout["000009"]]
    assert target["iscrowd"].tolist() == [0, 0]
    with_difficult = voc_dataset(tmp_path, ["2007-trainval"], keep_ignored=True, min_size=48, max_size=64)
    assert with_difficult[0][1]["iscrowd"].tolist() == [0, 1]
    Image.new("RGB", (50, 48)).save(tmp_path / "VOCdevkit/VOC2007/JPEGImages/000007.jpg")
    with pytest.raises(ValueError, match=r"000007\.jpg is 50 x 48 but its annotations say 64 x 48"):
        train[1]


def test_voc_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit/VOC2012.*data\.root"):
        voc_dataset(tmp_path, ["2012-train"])
    make_voc(tmp_path)
    with pytest.raises(FileNotFoundError, match="'val'"):
        voc_dataset(tmp_path, ["2007-val"])  # no ImageSets/Main/val.txt


# --- model and one training step -----------------------------------------------------------------


def test_default_taps() -> None:
    encoder = build_encoder(RANDOM_ECCV16)
    assert default_taps(encoder, "fpn") == ["conv2", "conv7"]  # conv1 has stride 2; conv3..7 share 8
    assert default_taps(encoder, "c4") == ["conv7"]
    detector = build_detector(encoder, 80, head="fpn", **TINY)
    assert detector.backbone.level_names == ["conv2", "conv7", "pool16", "pool32", "pool64"]
    assert detector.rpn.anchor_generator.sizes == ((32,), (64,), (128,), (256,), (512,))
    assert detector.roi_heads.box_predictor.cls_score.out_features == 81
    assert detector.transform.image_mean == [0.0] * 3 and detector.transform.image_std == [1.0] * 3
    with pytest.raises(ValueError, match="c4 head reads one tap"):
        build_detector(encoder, 80, head="c4", taps=["conv2", "conv7"])


@pytest.fixture(scope="module")
def two_images(coco128: Path) -> tuple[list[torch.Tensor], list[dict]]:
    index = read_coco(coco128 / "annotations" / "instances.json", coco128 / "images")
    return collate_detection([*coco_dataset(index, [9, 25], **TINY)])


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _one_step(head: str, freeze_at: str | None, batch: tuple) -> tuple[DetectionModule, dict, dict]:
    encoder = build_encoder(RANDOM_ECCV16, freeze_at=freeze_at)
    module = DetectionModule(build_detector(encoder, 80, head=head, **TINY, **CHEAP), OptimConfig(lr=0.01))
    optimizer = module.configure_optimizers()["optimizer"]
    before = _snapshot(module.detector)
    module.train()
    loss = module.training_step(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    optimizer.step()
    return module, before, _snapshot(module.detector)


@pytest.mark.parametrize("head", ["fpn", "c4"])
def test_training_step_trains_heads_not_frozen_encoder(head: str, two_images: tuple) -> None:
    module, before, after = _one_step(head, "all", two_images)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    encoder = {name for name in before if name.startswith("backbone.encoder.")}
    assert encoder and not changed & encoder
    assert all(p.grad is None for p in module.detector.backbone.encoder.parameters())
    assert {
        "rpn.head.conv.0.0.weight",
        "roi_heads.box_head.fc6.weight",
        "roi_heads.box_predictor.cls_score.weight",
    } <= changed
    if head == "fpn":
        assert any(name.startswith("backbone.fpn.") for name in changed)
    trained = {
        id(p) for group in module.configure_optimizers()["optimizer"].param_groups for p in group["params"]
    }
    assert trained == {id(p) for p in module.detector.parameters() if p.requires_grad}


def test_training_step_with_freeze_at_trains_deeper_encoder(two_images: tuple) -> None:
    module, before, after = _one_step("c4", "conv3", two_images)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    prefix = "backbone.encoder.net."
    shallow = {n for n in before if n.startswith(tuple(f"{prefix}conv{i}." for i in (1, 2, 3)))}
    deep = {n for n in before if n.startswith(tuple(f"{prefix}conv{i}." for i in (4, 5, 6, 7)))}
    assert shallow and not changed & shallow
    head = [
        p
        for n, p in module.detector.named_parameters()
        if n.startswith((f"{prefix}conv8.", f"{prefix}logits."))
    ]
    assert head and not any(p.requires_grad for p in head)  # the colorization head is unused: not trained
    assert deep and {f"{prefix}conv7.0.weight", f"{prefix}conv4.0.weight"} <= changed
    assert "roi_heads.box_head.fc6.weight" in changed
    bn = module.detector.backbone.encoder.net.conv7
    assert not any(m.training for m in bn.modules() if isinstance(m, torch.nn.BatchNorm2d))  # norm_eval


# --- evaluation ----------------------------------------------------------------------------------


def test_map_of_perfect_predictions_is_one() -> None:
    targets = [
        {"boxes": torch.tensor([[10.0, 10, 50, 60], [30, 5, 90, 40]]), "labels": torch.tensor([1, 3])},
        {
            "boxes": torch.tensor([[0.0, 0, 20, 20], [40, 40, 80, 90]]),
            "labels": torch.tensor([2, 1]),
            "iscrowd": torch.tensor([0, 1]),  # an ignored region nobody detects costs nothing
        },
    ]
    keep = [torch.tensor([True, True]), torch.tensor([True, False])]
    predictions = [
        {"boxes": t["boxes"][k], "labels": t["labels"][k], "scores": torch.ones(int(k.sum()))}
        for t, k in zip(targets, keep, strict=True)
    ]
    metric = box_metric()
    metric.update(predictions, targets)
    scores = metric.compute()
    assert scores["map"] == pytest.approx(1.0) and scores["map_50"] == pytest.approx(1.0)
    metric = box_metric()
    metric.update([{**p, "boxes": p["boxes"] + 15} for p in predictions], targets)
    assert metric.compute()["map"] < 0.5  # shifted boxes score lower


def test_module_validation_map_in_unit_interval(two_images: tuple) -> None:
    images, targets = two_images
    encoder = build_encoder(RANDOM_ECCV16)
    detector = build_detector(encoder, 80, head="c4", box_score_thresh=0.0, **TINY)
    module = DetectionModule(detector, OptimConfig())
    loader = DataLoader(list(zip(images, targets, strict=True)), batch_size=2, collate_fn=collate_detection)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    scores = trainer.validate(module, loader, verbose=False)[0]
    assert 0.0 <= scores["val/map"] <= scores["val/map_50"] <= 1.0


# --- config and end to end -----------------------------------------------------------------------


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"data\.root"):
        DetectionDataConfig()
    with pytest.raises(ValueError, match=r"data\.max_size"):
        DetectionDataConfig(root="x", min_size=200, max_size=100)
    with pytest.raises(ValueError, match=r"data\.format"):
        DetectionDataConfig(root="x", format="yolo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model\.head"):
        DetectionModelConfig(head="rcnn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model\.rcnn_options.*'box_head'"):
        DetectionModelConfig(rcnn_options={"box_head": None, "box_batch_size_per_image": 64})
    with pytest.raises(ValueError, match=r"optim\.lr"):
        DetectionConfig(optim=OptimConfig(lr=0))
    with pytest.raises(ValueError, match=r"optim\.milestones"):
        OptimConfig(milestones=[5, 2])
    assert DetectionConfig().optim.lr == 0.02


def test_run_detection_end_to_end(coco128: Path, tmp_path: Path) -> None:
    split = write_split(tmp_path / "ids.json", [9, 25], [30, 34])
    data = DetectionDataConfig(root=str(coco128), split_file=str(split), batch_size=2, num_workers=0, **TINY)
    config = DetectionConfig(
        DetectionModelConfig(
            head="fpn",
            freeze_at="all",
            fpn_channels=64,
            warmup_steps=1,
            rcnn_options={"box_batch_size_per_image": 64},
        ),
        OptimConfig(lr=0.01),
    )
    trainer = TrainerSpec(
        {"max_steps": 2, "accelerator": "cpu", "enable_progress_bar": False, "logger": False}
    )
    result = run_detection(RANDOM_ECCV16, data, config, trainer, tmp_path / "run", "coco128")
    assert result.task == "detection" and result.dataset == "coco128"
    assert set(result.metrics["head"]) == {"map", "map_50"}
    assert all(0.0 <= v <= 1.0 for v in result.metrics["head"].values())
    assert result.config["steps"] == 2 and result.config["val_images"] == 2
    stated = json.loads((tmp_path / "run" / "split.json").read_text())
    assert stated["train"] == [9, 25] and stated["val"] == [30, 34]
    assert [Path(p).name for p in result.examples] == ["detection_30.png", "detection_34.png"]
    assert all(Path(p).is_file() for p in result.examples)  # drawn as in test_examples.py
