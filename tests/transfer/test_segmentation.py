"""Segmentation transfer: metrics against brute force, both readers, paired geometry, training, a full run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix as sk_confusion

from transfer.common import OptimConfig
from transfer.encoder import EncoderConfig, build_encoder, parameters_up_to
from transfer.segmentation import (
    SegmentationConfig,
    SegmentationDataConfig,
    SegmentationModelConfig,
    run_segmentation,
)
from transfer.segmentation.data import (
    IGNORE_INDEX,
    PairTransform,
    SegmentationFiles,
    coco_style,
    pair_files,
    read_classes,
    read_pair,
    write_split,
)
from transfer.segmentation.metrics import ConfusionMatrix, confusion_matrix, mean_iou, pixel_accuracy
from transfer.segmentation.model import SegmentationNet, default_taps
from transfer.segmentation.module import SegmentationModule, pixel_cross_entropy
from transfer.segmentation.run import SegmentationData, load_pairs
from transfer.trainer import TrainerSpec

RANDOM_ENCODER = EncoderConfig(init="random", arch="eccv16", arch_options={"width": 0.25})


# ---------------------------------------------------------------- metrics


def brute_force(pred: np.ndarray, target: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    """Confusion, mIoU over classes in target or prediction, and pixel accuracy, by loops."""
    conf = np.zeros((k, k), dtype=np.int64)
    for p, t in zip(pred.ravel(), target.ravel(), strict=True):
        if t != IGNORE_INDEX:
            conf[t, p] += 1
    ious = []
    for c in range(k):
        tp, fp, fn = conf[c, c], conf[:, c].sum() - conf[c, c], conf[c, :].sum() - conf[c, c]
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    return conf, float(np.mean(ious)), float(np.trace(conf) / conf.sum())


def test_metrics_match_brute_force_with_ignore_and_absent_class() -> None:
    gen = np.random.default_rng(0)
    k = 6  # class 4: predicted, never true (IoU 0, counted); class 5: nowhere (left out)
    target = gen.integers(0, 4, size=(3, 17, 13))
    pred = np.where(gen.random(target.shape) < 0.6, target, gen.integers(0, 5, size=target.shape))
    target[gen.random(target.shape) < 0.2] = IGNORE_INDEX
    conf = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), k)
    ref_conf, ref_miou, ref_acc = brute_force(pred, target, k)
    keep = target != IGNORE_INDEX
    assert torch.equal(conf, torch.from_numpy(ref_conf))
    assert np.array_equal(ref_conf, sk_confusion(target[keep], pred[keep], labels=list(range(k))))
    assert conf[5].sum() == 0 and conf[:, 5].sum() == 0 and conf[4].sum() == 0 and conf[:, 4].sum() > 0
    assert mean_iou(conf) == pytest.approx(ref_miou, abs=1e-12)
    assert pixel_accuracy(conf) == pytest.approx(ref_acc, abs=1e-12)


def test_metrics_hand_example_and_edge_cases() -> None:
    target = torch.tensor([[0, 0, 1, 255], [2, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 0], [2, 2, 0, 3]])
    conf = confusion_matrix(pred, target, 4)
    # IoU: class 0: 1/(1+1+1), class 1: 1/2, class 2: 2/3; class 3 absent everywhere counted: left out
    assert mean_iou(conf) == pytest.approx((1 / 3 + 1 / 2 + 2 / 3) / 3)
    assert pixel_accuracy(conf) == pytest.approx(4 / 6)
    perfect = confusion_matrix(target.clamp(max=2), target.clamp(max=2), 4)
    assert mean_iou(perfect) == 1.0 and pixel_accuracy(perfect) == 1.0
    nothing = confusion_matrix(pred, torch.full_like(target, 255), 4)
    assert math.isnan(mean_iou(nothing)) and math.isnan(pixel_accuracy(nothing))
    with pytest.raises(ValueError, match="target holds values outside"):
        confusion_matrix(pred, target.clamp(max=4), 4)


def test_confusion_metric_sums_batches_and_takes_logits() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 5, 6, 7, generator=gen)
    target = torch.randint(0, 5, (4, 6, 7), generator=gen)
    target[:, 0] = IGNORE_INDEX
    metric = ConfusionMatrix(5)
    metric.update(logits[:2], target[:2])
    metric.update(logits[2:].argmax(1), target[2:])
    assert torch.equal(metric.compute(), confusion_matrix(logits.argmax(1), target, 5))


def test_pixel_cross_entropy_ignores_and_never_nan() -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0] = IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    assert pixel_cross_entropy(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    empty = pixel_cross_entropy(logits, torch.full_like(target, IGNORE_INDEX))
    empty.backward()
    assert empty.item() == 0.0 and logits.grad is not None


# ---------------------------------------------------------------- COCO-style reader


def test_coco_class_mapping(coco128: Path) -> None:
    labels = read_classes(coco128 / "masks_classes.json")
    table = {int(k): v for k, v in json.loads((coco128 / "masks_classes.json").read_text()).items()}
    assert labels.num_classes == len(table) - 1 and 0 not in labels.ids
    assert labels.names[0] == "person" and list(labels.ids) == sorted(labels.ids)
    pairs = pair_files(coco128 / "images", coco128 / "masks")
    assert len(pairs) == 100
    raw = np.asarray(Image.open(pairs[0].mask))
    _, mask = read_pair(pairs[0], labels)
    mapped = np.asarray(mask)
    assert (mapped[raw == 0] == IGNORE_INDEX).all() and (raw == 0).any()
    for category in np.unique(raw[raw > 0]):
        assert (mapped[raw == category] == labels.ids.index(int(category))).all()
    assert labels(np.array([12, 1, 0, 250])).tolist() == [IGNORE_INDEX, 0, IGNORE_INDEX, IGNORE_INDEX]


def palette(index: np.ndarray) -> np.ndarray:
    """A distinct colour per class index (ignore included)."""
    idx = index.astype(np.int64)
    return np.stack([(idx * 37) % 256, (idx * 91 + 40) % 256, (idx * 53 + 80) % 256], -1).astype(np.uint8)


def interior(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels whose (2r+1)^2 neighbourhood holds one label."""
    h, w = mask.shape
    same = np.zeros((h, w), dtype=bool)
    same[radius : h - radius, radius : w - radius] = True
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = np.roll(mask, (dy, dx), axis=(0, 1))
            same &= shifted == mask
    return same


def agreement(image: torch.Tensor, mask: torch.Tensor) -> tuple[float, int]:
    """Share of interior pixels whose colour is their class's palette colour, and their count."""
    labels = mask.numpy()
    inside = interior(labels)
    diff = np.abs(image.permute(1, 2, 0).numpy().astype(int) - palette(labels).astype(int)).max(-1)
    return float((diff[inside] <= 3).mean()), int(inside.sum())


def test_image_and_mask_stay_aligned(coco128: Path, tmp_path: Path) -> None:
    """A synthetic image painted with its mask's class colours still matches after resize/crop/flip."""
    labels = read_classes(coco128 / "masks_classes.json")
    (tmp_path / "images").mkdir()
    shutil.copytree(coco128 / "masks", tmp_path / "masks")
    for pair in pair_files(coco128 / "images", coco128 / "masks")[:3]:
        mapped = labels(np.asarray(Image.open(pair.mask)))
        Image.fromarray(palette(mapped)).save(tmp_path / "images" / f"{pair.stem}.png")
    pairs = pair_files(tmp_path / "images", tmp_path / "masks")
    assert len(pairs) == 3
    train = SegmentationFiles(pairs, labels, PairTransform(resize=200, size=72, train=True))
    misaligned = []
    for seed in range(6):
        torch.manual_seed(seed)
        for image, mask in train:
            assert image.dtype == torch.uint8 and image.shape == (3, 72, 72)
            assert mask.dtype == torch.int64 and mask.shape == (72, 72)
            share, count = agreement(image, mask)
            assert count > 500 and share > 0.99
            misaligned.append(agreement(image.flip(-1), mask)[0])
    assert min(misaligned) < 0.9  # the check would catch an image flipped without its mask
    # validation: centred window larger than the resized image -> padding with ignore
    image, mask = SegmentationFiles(pairs, labels, PairTransform(resize=240, size=400, train=False))[0]
    assert (Image.open(pairs[0].image).size, mask.shape) == ((640, 480), (400, 400))  # 320 x 240 centred
    assert agreement(image[:, 80:320, 40:360], mask[80:320, 40:360])[0] > 0.99
    border = torch.ones_like(mask, dtype=torch.bool)
    border[80:320, 40:360] = False
    assert (mask[border] == IGNORE_INDEX).all() and (image[:, border] == 0).all()


def test_split_is_seeded_disjoint_and_written(coco128: Path, tmp_path: Path) -> None:
    args = (coco128 / "images", coco128 / "masks", coco128 / "masks_classes.json")
    first = coco_style(*args, val_fraction=0.25, seed=3)
    again = coco_style(*args, val_fraction=0.25, seed=3)
    other = coco_style(*args, val_fraction=0.25, seed=4)
    train, val = [p.stem for p in first.train], [p.stem for p in first.val]
    assert (len(train), len(val)) == (75, 25) and not set(train) & set(val)
    assert [p.stem for p in again.val] == val and [p.stem for p in other.val] != val
    split = write_split(tmp_path / "split.json", train, val)
    read_back = coco_style(*args, split_file=split)
    assert [p.stem for p in read_back.train] == train and [p.stem for p in read_back.val] == val
    write_split(split, train, val[:1] + train[:1])
    with pytest.raises(ValueError, match="in both train and val"):
        coco_style(*args, split_file=split)


# ---------------------------------------------------------------- VOC-style reader


def make_voc(root: Path) -> dict[str, np.ndarray]:
    """A tiny VOCdevkit/VOC2012 with 2 train and 1 val image; returns the written masks."""
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True)
    masks = {}
    for i, name in enumerate(["2007_000001", "2007_000002", "2007_000003"]):
        mask = np.zeros((30, 40), dtype=np.uint8)
        mask[5:20, 10:30] = 15 + i
        mask[4, 9:31] = 255
        Image.fromarray(np.full((30, 40, 3), 60 * i, dtype=np.uint8)).save(
            base / "JPEGImages" / f"{name}.jpg"
        )
        pal = Image.fromarray(mask, mode="P")
        pal.putpalette([v for c in range(256) for v in (c, 255 - c, (7 * c) % 256)])
        pal.save(base / "SegmentationClass" / f"{name}.png")
        masks[name] = mask
    (base / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n2007_000002\n")
    (base / "ImageSets/Segmentation/val.txt").write_text("2007_000003\n")
    return masks


def test_voc_reader(tmp_path: Path) -> None:
    masks = make_voc(tmp_path)
    config = SegmentationDataConfig(format="voc", root=str(tmp_path), val_size=None, val_batch_size=1)
    pairs = load_pairs(config)
    assert pairs.labels.num_classes == 21 and pairs.labels.names[15] == "person"
    assert [p.stem for p in pairs.train] == ["2007_000001", "2007_000002"]
    image, mask = SegmentationFiles(pairs.val, pairs.labels, PairTransform(None, None, False))[0]
    assert image.shape == (3, 30, 40) and torch.equal(mask, torch.from_numpy(masks["2007_000003"]).long())
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit[/\\]VOC2012"):
        load_pairs(SegmentationDataConfig(format="voc", root=str(tmp_path / "nowhere")))


# ---------------------------------------------------------------- model and training


def test_default_taps_and_logits_at_input_size() -> None:
    assert default_taps({"a": 2, "b": 4, "c": 8, "d": 8}) == ["a", "b", "d"]
    net = SegmentationNet(build_encoder(RANDOM_ENCODER, "all"), 7, fusion="concat", width=8)
    assert net.taps == ("conv1", "conv2", "conv7")
    logits = net(torch.randint(0, 256, (2, 3, 50, 70), dtype=torch.uint8))
    assert logits.shape == (2, 7, 50, 70)


def one_step(coco128: Path, freeze_at: str) -> tuple[SegmentationNet, dict[str, torch.Tensor], float]:
    """Train one SGD step on 2 coco128 images; returns the net, its state before, and the loss."""
    from lightning.pytorch import Trainer

    torch.manual_seed(0)
    pairs = coco_style(
        coco128 / "images", coco128 / "masks", coco128 / "masks_classes.json", val_fraction=0.5, max_images=4
    )
    config = SegmentationDataConfig(root=str(coco128), resize=72, crop=64, batch_size=2, num_workers=0)
    net = SegmentationNet(build_encoder(RANDOM_ENCODER, freeze_at), pairs.labels.num_classes, width=16)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    module = SegmentationModule(net, pairs.labels.num_classes, OptimConfig(lr=0.1))
    trainer = Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=SegmentationData(pairs, config))
    return net, before, float(trainer.callback_metrics["train/loss"])


def changed(net: SegmentationNet, before: dict[str, torch.Tensor], prefix: str) -> dict[str, bool]:
    return {k: not torch.equal(v, before[k]) for k, v in net.state_dict().items() if k.startswith(prefix)}


def test_one_step_frozen_encoder(coco128: Path) -> None:
    net, before, loss = one_step(coco128, "all")
    assert math.isfinite(loss) and loss > 0
    assert not any(changed(net, before, "encoder.").values())  # weights and BatchNorm statistics
    head = {k: v for k, v in changed(net, before, "head.").items() if "num_batches" not in k}
    assert all(head.values())


def test_one_step_partly_frozen_encoder(coco128: Path) -> None:
    net, before, loss = one_step(coco128, "conv4")
    assert math.isfinite(loss)
    frozen = parameters_up_to(net.encoder.net, "conv4")
    deeper = parameters_up_to(net.encoder.net, "conv7") - frozen
    moved = changed(net, before, "encoder.net.")
    assert frozen and not any(moved[f"encoder.net.{n}"] for n in frozen)
    blocks = {n.split(".")[0] for n in frozen}  # conv1..conv4: their BatchNorm statistics stay too
    assert not any(v for k, v in moved.items() if k.split(".")[2] in blocks)
    assert moved["encoder.net.conv7.6.running_mean"]  # trainable blocks do update theirs
    assert deeper and all(moved[f"encoder.net.{n}"] for n in deeper)


# ---------------------------------------------------------------- configuration and full run


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"data\.crop"):
        SegmentationDataConfig(root="x", crop=0)
    with pytest.raises(ValueError, match=r"data\.format"):
        SegmentationDataConfig(root="x", format="ade")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model\.fusion"):
        SegmentationModelConfig(fusion="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"optim\.lr"):
        SegmentationConfig(optim=OptimConfig(lr=0))
    assert SegmentationConfig().optim == OptimConfig()


def test_run_segmentation_end_to_end(coco128: Path, tmp_path: Path) -> None:
    data = SegmentationDataConfig(
        root=str(coco128),
        max_images=4,
        val_fraction=0.5,
        resize=72,
        crop=64,
        val_resize=64,
        val_size=64,
        batch_size=2,
        num_workers=0,
    )
    config = SegmentationConfig(SegmentationModelConfig(width=16, freeze_at="conv2"))
    csv = {"class_path": "lightning.pytorch.loggers.CSVLogger"}
    trainer = TrainerSpec(
        {
            "max_steps": 2,
            "accelerator": "cpu",
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "logger": csv,
        }
    )
    result = run_segmentation(RANDOM_ENCODER, data, config, trainer, tmp_path, "coco128")
    assert result.task == "segmentation" and result.dataset == "coco128"
    scores = result.metrics["head"]
    assert set(scores) == {"miou", "pixel_acc"} and all(0.0 <= v <= 1.0 for v in scores.values())
    assert result.config["val_pixels"] > 0 and result.config["num_classes"] == 129
    split = json.loads((tmp_path / "split.json").read_text())
    assert len(split["train"]) == len(split["val"]) == 2 and not set(split["train"]) & set(split["val"])
    assert (tmp_path / "scores.json").is_file()
    assert [Path(p).name for p in result.examples] == [f"segmentation_{stem}.png" for stem in split["val"]]
    assert all(Path(p).is_file() for p in result.examples)  # drawn as in test_examples.py
    (log,) = tmp_path.glob("segmentation-coco128-random_init_eccv16/version_0/metrics.csv")
    assert {"train/loss", "val/loss", "val/miou", "val/pixel_acc"} <= set(
        log.read_text().split("\n")[0].split(",")
    )
