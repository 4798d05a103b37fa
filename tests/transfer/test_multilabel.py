"""Multi-label transfer (PASCAL VOC07 classification style): targets, AP, loss, crops, freezing, a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from PIL import Image
from sklearn.metrics import average_precision_score
from torch.nn import functional as F
from torch.utils.data import DataLoader

from selfsup_color.data.decode import load_rgb
from tests.transfer.test_detection import _voc_xml
from transfer.cli import main
from transfer.common import OptimConfig
from transfer.detection.data import VOC_CLASSES, Annotation, split_ids
from transfer.encoder import EncoderConfig, build_encoder
from transfer.multilabel.data import MultilabelDataConfig, MultilabelImages, collate_multilabel, image_labels
from transfer.multilabel.metrics import IGNORED, average_precision, class_ap, mean_average_precision
from transfer.multilabel.module import HEAD_BIAS, MultilabelFineTune, masked_bce
from transfer.multilabel.run import MultilabelConfig, load_records

TINY_ECCV16 = EncoderConfig(init="random", arch="eccv16", arch_options={"width": 0.0625})

# --- average precision ---------------------------------------------------------------------------


def brute_force_ap(scores: list[int], positive: list[bool]) -> float:
    """AP from its definition: sum over thresholds of recall gained x precision, ties pessimistic.

    Scores are integers; a positive's key is its score minus 1/2, so it ranks after a tied negative
    (the protocol's ``- 1e-5 * target``, exactly). Every distinct key is a threshold.
    """
    keys = [s - 0.5 * p for s, p in zip(scores, positive, strict=True)]
    total, ap, recall = sum(positive), 0.0, 0.0
    for threshold in sorted(set(keys), reverse=True):
        chosen = [p for k, p in zip(keys, positive, strict=True) if k >= threshold]
        new_recall = sum(chosen) / total
        ap += (new_recall - recall) * sum(chosen) / len(chosen)
        recall = new_recall
    return ap


def test_ap_of_hand_computed_rankings() -> None:
    assert class_ap(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0])) == pytest.approx(5 / 6)
    assert class_ap(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == pytest.approx(
        0.5
    )  # tie: negative first
    # two tied positives and a tied negative: one threshold at precision 2/3 (not (1/2 + 2/3) / 2)
    assert class_ap(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([1, 1, 0])) == pytest.approx(2 / 3)
    # an ignored pair is left out of the ranking: here it would have come first as a negative
    assert class_ap(torch.tensor([0.9, 0.8]), torch.tensor([IGNORED, 1])) == 1.0
    assert math.isnan(class_ap(torch.tensor([0.9, 0.8]), torch.tensor([0, IGNORED])))


def test_ap_matches_sklearn_with_the_protocols_tie_break_and_brute_force() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        n, k = int(torch.randint(2, 50, (1,), generator=generator)), 4
        scores = torch.randint(0, 8, (n, k), generator=generator)  # many ties
        targets = torch.randint(-1, 2, (n, k), generator=generator)
        ours = average_precision(scores.double() / 10, targets)
        for c in range(k):
            kept = targets[:, c] != IGNORED
            y, s = (targets[kept, c] == 1).numpy(), scores[kept, c].numpy() / 10
            if not y.any():
                assert math.isnan(ours[c])
                continue
            # train_cls.py: average_precision_score(gt, score - 1e-5 * gt) on the pairs not ignored
            assert ours[c].item() == pytest.approx(average_precision_score(y, s - 1e-5 * y), abs=1e-12)
            assert ours[c].item() == pytest.approx(brute_force_ap(scores[kept, c].tolist(), y.tolist()))


def test_map_averages_the_classes_with_a_positive() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.1, 0.3, 0.2]])
    targets = torch.tensor([[1, 0, 0], [0, 0, IGNORED], [1, 1, 0]])
    value, scored = mean_average_precision(scores, targets)
    assert scored == 2 and value == pytest.approx((5 / 6 + 1 / 2) / 2)  # class 2: no positive
    with pytest.raises(ValueError, match="0, 1 or -1"):
        average_precision(scores, torch.full((3, 3), 2))


# --- loss -----------------------------------------------------------------------------------------


def test_masked_bce_sums_kept_pairs_over_the_batch_size() -> None:
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    targets = torch.tensor(
        [[1, 0, IGNORED, 0], [0, 1, 1, 0], [IGNORED, IGNORED, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
    )
    loss = masked_bce(logits, targets)
    x, t = logits.detach().double().numpy(), (targets == 1).double().numpy()
    sigmoid = 1 / (1 + np.exp(-x))
    per_pair = -(t * np.log(sigmoid) + (1 - t) * np.log(1 - sigmoid))
    assert loss.item() == pytest.approx((per_pair * (targets != IGNORED).numpy()).sum() / 5, rel=1e-6)
    loss.backward()
    assert (logits.grad[targets == IGNORED] == 0).all() and (logits.grad[targets != IGNORED] != 0).all()
    plain = torch.randint(0, 2, (5, 4))
    expected = F.binary_cross_entropy_with_logits(logits, plain.float(), reduction="sum") / 5
    torch.testing.assert_close(masked_bce(logits, plain), expected)


# --- targets and data ---------------------------------------------------------------------------


def test_image_labels_follow_vocs_classification_ground_truth() -> None:
    box = (0.0, 0.0, 1.0, 1.0)
    objects = [
        Annotation(box, 3, ignored=True),  # class 3: only difficult -> ignored
        Annotation(box, 5, ignored=True),
        Annotation(box, 5, ignored=False),  # class 5: one not difficult -> present
        Annotation(box, 1),
    ]
    assert image_labels(objects, 6).tolist() == [1, 0, IGNORED, 0, 1, 0]
    assert image_labels([], 3).tolist() == [0, 0, 0]


VOC_LAYOUT = {
    "000005": [("chair", 0), ("person", 1), ("chair", 1)],
    "000007": [("car", 0), ("car", 0), ("dog", 1)],
    "000009": [("tvmonitor", 0), ("dog", 0)],
    "000012": [("person", 1)],
}


def make_voc(root: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """A tiny VOCdevkit/VOC2007: pictures (PNG data under VOC's .jpg names: exact pixels), XML, sets."""
    base = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, objects in VOC_LAYOUT.items():
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(base / "JPEGImages" / f"{stem}.jpg", format="PNG")
        boxes = [(name, difficult, (2, 3, 20, 30)) for name, difficult in objects]
        (base / "Annotations" / f"{stem}.xml").write_text(_voc_xml(*size, boxes))
    (base / "ImageSets/Main/trainval.txt").write_text("000005\n000007\n")
    (base / "ImageSets/Main/test.txt").write_text("000009\n000012\n")
    return base


def voc_ground_truth(stem: str) -> list[int]:
    """The devkit's rule: 1 any non-difficult, 0 (here ignored) only difficult, -1 (here 0) none."""
    out = []
    for name in VOC_CLASSES:
        flags = [difficult for n, difficult in VOC_LAYOUT[stem] if n == name]
        out.append(IGNORED if flags and all(flags) else 1 if flags else 0)
    return out


def test_voc_records_give_the_devkits_labels(tmp_path: Path) -> None:
    make_voc(tmp_path)
    data = MultilabelDataConfig(format="voc", root=str(tmp_path), crop=32, eval_crops=3, num_workers=0)
    train, val, classes = load_records(data)
    assert (
        classes == VOC_CLASSES
        and [r.image_id for r in train] == [5, 7]
        and [r.image_id for r in val] == [9, 12]
    )
    for records in (train, val):
        for record in records:
            assert image_labels(record.objects, 20).tolist() == voc_ground_truth(record.path.stem)
    batch = collate_multilabel([MultilabelImages(val, 20, 32, crops=3)[i] for i in range(2)])
    assert batch["rgb"].shape == (2, 3, 3, 32, 32) and batch["rgb"].dtype == torch.uint8
    assert batch["target"].tolist() == [voc_ground_truth("000009"), voc_ground_truth("000012")]
    assert batch["index"].tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match="'val'"):
        load_records(MultilabelDataConfig(format="voc", root=str(tmp_path), val_set="2007-val"))


def test_crops_scale_place_and_mirror_the_picture(tmp_path: Path) -> None:
    base = make_voc(tmp_path, size=(40, 40))
    train, _, _ = load_records(MultilabelDataConfig(format="voc", root=str(tmp_path)))
    whole = torch.from_numpy(np.asarray(load_rgb(base / "JPEGImages" / "000005.jpg")).copy())
    # scale fixed at 1 and a crop as large as the image: every draw is the picture or its mirror image
    fixed = MultilabelImages(train, 20, crop=40, min_scale=1.0, max_scale=1.0)
    seen = set()
    for epoch in range(6):
        fixed.set_epoch(epoch)
        crop = fixed[0][0]
        mirrored = torch.equal(crop, whole.flip(1))
        assert mirrored or torch.equal(crop, whole)
        seen.add(mirrored)
    assert seen == {True, False}
    # scale 0.5 of a 40-pixel side with a 24 crop is raised to 24: the crop is the whole picture, resized
    small = MultilabelImages(train, 20, crop=24, min_scale=0.5, max_scale=0.5)[0][0].float()
    resized = torch.from_numpy(
        np.asarray(
            load_rgb(base / "JPEGImages" / "000005.jpg").resize((24, 24), Image.Resampling.BILINEAR)
        ).copy()
    )
    assert min((small - resized.float()).abs().mean(), (small - resized.flip(1).float()).abs().mean()) < 2.0
    # training crops change with the epoch; evaluation crops are fixed draws, different from each other
    jitter = MultilabelImages(train, 20, crop=16)
    first = jitter[1][0]
    jitter.set_epoch(1)
    assert not torch.equal(first, jitter[1][0])
    evaluation = MultilabelImages(train, 20, crop=16, crops=4)
    crops = evaluation[1][0]
    assert torch.equal(crops, evaluation[1][0]) and not torch.equal(crops[0], crops[1])


def test_coco_targets_and_split_are_detections(coco128: Path, tmp_path: Path) -> None:
    data = MultilabelDataConfig(root=str(coco128), val_fraction=0.2, split_seed=0)
    train, val, classes = load_records(data)
    coco = json.loads((coco128 / "annotations" / "instances.json").read_text())
    assert len(classes) == 80
    assert ([r.image_id for r in train], [r.image_id for r in val]) == split_ids(
        [im["id"] for im in coco["images"]], 0.2, 0
    )
    position = {c["id"]: i for i, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}
    for record in train + val:
        expected = [0] * 80
        for crowd in (1, 0):  # crowd first, so that a plain object overrides it
            for a in coco["annotations"]:
                if a["image_id"] == record.image_id and a["iscrowd"] == crowd:
                    expected[position[a["category_id"]]] = IGNORED if crowd else 1
        assert image_labels(record.objects, 80).tolist() == expected
    crowded = [a["image_id"] for a in coco["annotations"] if a["iscrowd"]]
    assert 315 in crowded  # crowd regions present, each beside a plain object of its category (stays 1)


# --- module ---------------------------------------------------------------------------------------


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize(
    ("freeze_at", "trained"),
    [("conv5", {"conv6", "conv7"}), (None, {f"conv{i}" for i in range(1, 8)}), ("conv7", set())],
)
def test_freeze_at_trains_what_follows_the_tap(freeze_at: str | None, trained: set[str]) -> None:
    net = build_encoder(TINY_ECCV16, freeze_at)
    net.freeze_beyond(["conv7"])
    module = MultilabelFineTune(net, "conv7", 2, 5, OptimConfig(lr=0.1), dropout=0.0)
    assert module.head[-1].bias.eq(HEAD_BIAS).all() and module.head[-1].weight.std() < 0.02
    optimizer = module.configure_optimizers()["optimizer"]
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, pytest.approx(0.2)]  # biases at 2x
    before = _snapshot(module)
    module.train()
    rgb = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    masked_bce(module(rgb), torch.tensor([[1, 0, 0, IGNORED, 1]] * 4)).backward()
    optimizer.step()
    changed = {
        name.split(".")[2]
        for name, p in module.named_parameters()
        if name.startswith("encoder.") and not torch.equal(p, before[name])
    }
    assert changed == trained
    assert not torch.equal(module.head[-1].weight, before["head.1.weight"])


def test_validation_averages_the_crops_scores() -> None:
    torch.manual_seed(0)  # the head's initialisation
    generator = torch.Generator().manual_seed(0)  # conv2: scores far apart, float noise cannot reorder them
    module = MultilabelFineTune(build_encoder(TINY_ECCV16, None), "conv2", 2, 3, OptimConfig())
    rgb = torch.randint(0, 256, (6, 4, 3, 24, 24), dtype=torch.uint8, generator=generator)
    targets = torch.tensor(
        [[1, 0, 0], [0, 1, 0], [1, 1, IGNORED], [0, 0, 1], [1, 0, 1], [0, 1, 0]], dtype=torch.int8
    )
    batches = [
        {"rgb": rgb[i : i + 2], "target": targets[i : i + 2], "index": torch.arange(i, i + 2)}
        for i in (0, 2, 4)
    ]
    loader = DataLoader(batches, batch_size=None)  # the batches as they are
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    scores = trainer.validate(module, dataloaders=loader, verbose=False)[0]
    assert scores["val/conv2/map"] != scores["val/conv2/map_1crop"]  # the two figures tell crops apart
    module.eval()
    with torch.no_grad():
        per_crop = torch.stack([module(rgb[:, c]) for c in range(4)], 1).double()
    for name, logits in (("map", per_crop.mean(1)), ("map_1crop", per_crop[:, 0])):
        aps = []
        for c in range(3):
            kept = targets[:, c] != IGNORED
            y = (targets[kept, c] == 1).numpy()
            aps.append(average_precision_score(y, logits[kept, c].numpy()))  # no ties in these scores
        assert scores[f"val/conv2/{name}"] == pytest.approx(np.mean(aps), abs=1e-6)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"data\.min_scale"):
        MultilabelDataConfig(root="r", min_scale=2.0, max_scale=1.0)
    with pytest.raises(ValueError, match=r"data\.eval_crops"):
        MultilabelDataConfig(root="r", eval_crops=0)
    with pytest.raises(ValueError, match=r"multilabel\.dropout"):
        MultilabelConfig(dropout=1.0)
    with pytest.raises(ValueError, match=r"multilabel\.schedule"):
        MultilabelConfig(schedule="iteration")  # type: ignore[arg-type]
    protocol = MultilabelConfig()
    assert (protocol.optim.lr, protocol.optim.weight_decay, protocol.optim.gamma) == (0.001, 1e-6, 0.5)
    assert protocol.gradient_clip_val == 10.0 and protocol.bias_lr_mult == 2.0


def test_step_schedule_counts_optimizer_steps() -> None:
    optim = OptimConfig(lr=1.0, milestones=[2], gamma=0.5)
    module = MultilabelFineTune(build_encoder(TINY_ECCV16, "all"), "conv7", 1, 2, optim, schedule="step")
    config = module.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == "step" and len(config["optimizer"].param_groups) == 2


# --- the command end to end -----------------------------------------------------------------------


def test_cli_on_coco128_writes_the_report_with_the_baseline(coco128: Path, tmp_path: Path, capsys) -> None:
    args = [
        "multilabel", "--encoder.init", "random", "--encoder.arch", "eccv16",
        "--encoder.arch_options", "{width: 0.0625}", "--dataset", "coco128",
        "--out_dir", str(tmp_path / "out"),
        "--data.root", str(coco128), "--data.crop", "48", "--data.resize", "64", "--data.eval_crops", "2",
        "--data.batch_size", "8", "--data.num_workers", "0", "--data.max_val_images", "12",
        "--multilabel.max_steps", "2", "--multilabel.freeze_at", "conv5",
        "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    assert main(args) == 0
    out = tmp_path / "out"
    results = json.loads((out / "multilabel_coco128.json").read_text())["results"]
    assert [r["encoder"] for r in results] == ["random init (eccv16)"] * 2  # the encoder, then the baseline
    for r in results:
        assert set(r["metrics"]["conv7"]) == {"map", "map_1crop"}
        assert 0.0 < r["metrics"]["conv7"]["map"] <= 1.0
        assert r["config"]["steps"] == 2 and r["config"]["val_images"] == 12
    assert results[0]["metrics"] == results[1]["metrics"]  # same random init, same seed: same run
    assert (out / "multilabel_coco128.md").is_file() and (out / "multilabel_coco128.png").is_file()
    assert len(json.loads((out / "encoder" / "split.json").read_text())["val"]) == 12
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["multilabel"]["freeze_at"] == "conv5" and config["data"]["eval_crops"] == 2
    capsys.readouterr()


RECIPES = sorted((Path(__file__).resolve().parents[2] / "experiments" / "transfer").glob("multilabel_*.yaml"))


def test_the_recipes_are_there() -> None:
    names = {p.stem for p in RECIPES}
    assert names == {f"multilabel_voc07_{s}" for s in ("fc7", "pool5", "all")} | {"multilabel_coco128_cpu"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_parses_strictly(recipe: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["multilabel", "--config", str(recipe), "--print_config"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err[-2000:]
    config = yaml.safe_load(capsys.readouterr().out)
    written = yaml.safe_load(recipe.read_text())
    for section in ("data", "multilabel", "trainer"):
        for key, value in written[section].items():
            parsed = config[section][key]
            parsed = {k: parsed[k] for k in value} if isinstance(value, dict) else parsed  # + defaults
            assert parsed == value, f"{recipe.name}: {section}.{key}"
    if "voc07" in recipe.name:  # the official solver: 80000 iterations, lr halved every 10000
        assert config["multilabel"]["optim"]["milestones"] == list(range(10000, 80000, 10000))


def test_a_batch_of_unreadable_files_is_skipped(tmp_path: Path) -> None:
    base = make_voc(tmp_path)
    (base / "JPEGImages" / "000005.jpg").write_bytes(b"not an image")
    train, _, _ = load_records(MultilabelDataConfig(format="voc", root=str(tmp_path)))
    images = MultilabelImages(train, 20, crop=16)
    with pytest.warns(UserWarning, match=r"skipping unreadable image .*000005\.jpg"):
        batch = collate_multilabel([images[0]])
    assert batch["rgb"].shape[0] == 0 and batch["index"].numel() == 0
    module = MultilabelFineTune(build_encoder(TINY_ECCV16, None), "conv7", 1, 20, OptimConfig())
    assert module.training_step(batch, 0) is None
    module.validation_step(batch, 0)
    assert module._scores == []
    kept = collate_multilabel([images[0], images[1]])  # the readable one stays
    assert kept["index"].tolist() == [1] and kept["target"].shape == (1, 20)
