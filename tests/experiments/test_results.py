"""The results driver: its stages (parsed by the real CLIs), resuming, the manifest, summary.json
and the page rendered from it."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats as scipy_stats

from experiments.results import __main__ as runner
from experiments.results import render as render_module
from experiments.results.stages import (
    ARMS,
    PRETEXTS,
    RANDOM,
    SEEDS,
    SUPERVISED,
    Stage,
    pretrain_stage,
    recipe_steps,
    stages,
    supervised_weights,
)
from experiments.results.summary import collect, write_summary
from transfer.report import Result, write_report


def fake_checkpoint(path: Path, step: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "global_step": step}, path)
    return path


def test_every_arm_and_seed_has_its_stages_in_a_usable_order(tmp_path: Path) -> None:
    plan = stages(tmp_path)
    names = [s.name for s in plan]
    assert len(names) == len(set(names))
    pretexts = [p.name for p in PRETEXTS]
    assert pretexts == ["rebalanced", "lam1", "l2"] and [a.name for a in ARMS][3:] == ["random", "supervised"]
    for kind in ("pretrain", "linear", "knn", "hymenoptera", "detection", "segmentation"):
        arms = pretexts if kind == "pretrain" else [a.name for a in ARMS]
        if kind in ("detection", "segmentation"):
            arms = arms[:-1]
        for arm in arms:
            seeds = (0,) if arm == "supervised" and kind != "linear" else SEEDS
            if arm == "supervised" and kind == "linear":
                continue  # trained and probed by linear/random/seed0
            assert {f"{kind}/{arm}/seed{s}" for s in seeds} <= set(names), (kind, arm)
    # pretrainings first; linear/random/seed0 (which trains the supervised arm) before every stage reading it
    first_linear = names.index("linear/random/seed0")
    assert all(n.startswith(("priors", "pretrain/")) for n in names[:first_linear])
    readers = [i for i, s in enumerate(plan) if str(supervised_weights(tmp_path)) in s.command]
    assert readers and min(readers) > first_linear
    assert "--baselines=[supervised]" in plan[first_linear].command
    assert sum("--baselines=[supervised]" in s.command for s in plan) == 1
    # COCO128 is seed-major: every arm's seed 0 before any seed 1
    coco = [n for n in names if n.startswith(("detection/", "segmentation/"))]
    assert [n.rsplit("seed", 1)[1] for n in coco] == sorted(n.rsplit("seed", 1)[1] for n in coco)
    by_name = {s.name: s for s in plan}
    lam1 = by_name["pretrain/lam1/seed2"].command
    assert lam1[lam1.index("--seed_everything") + 1] == "2" and lam1[lam1.index("--data.seed") + 1] == "2"
    assert lam1[lam1.index("--model.lam") + 1] == "1.0"
    assert "--model.loss" in by_name["pretrain/l2/seed0"].command
    assert not any(s.done() for s in plan)


@pytest.mark.parametrize("name", ["linear/random/seed0", "knn/random/seed1", "hymenoptera/supervised/seed0",
                                  "detection/l2/seed2", "segmentation/rebalanced/seed1"])  # fmt: skip
def test_transfer_commands_parse_strictly(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transfer.cli import build_parser

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    stage = {s.name: s for s in stages(tmp_path)}[name]
    assert stage.command[0] == "selfsup-transfer"
    config = build_parser(stage.command[1]).parse_args(list(stage.command[2:]))
    seed = int(name.rsplit("seed", 1)[1])
    assert config.seed_everything == seed and str(config.out_dir) == str(stage.output.parent)
    if "/random/" in name:
        assert config.encoder.init == "random" and config.encoder.seed == seed
        assert config.encoder.arch == "eccv16" and config.encoder.arch_options == {"width": 0.25}
    else:
        assert config.encoder.ckpt_path and config.encoder.init == "pretrained"
    assert config.baselines == (["supervised"] if name == "linear/random/seed0" else [])


def test_pretraining_command_is_the_recipe_with_the_arm_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from selfsup_color.cli import main

    stage = pretrain_stage(tmp_path, PRETEXTS[1], 1)
    with pytest.raises(SystemExit):
        main([*stage.command[1:], "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["seed_everything"] == 1 and config["data"]["seed"] == 1
    assert config["model"]["lam"] == 1.0 and config["model"]["lr"] == 1e-3
    assert config["trainer"]["max_steps"] == recipe_steps()


def test_pretraining_resumes_from_its_last_checkpoint_until_the_recipe_is_done(tmp_path: Path) -> None:
    stage = pretrain_stage(tmp_path, PRETEXTS[1], 2)
    assert "--ckpt_path" not in stage.command
    last = fake_checkpoint(tmp_path / "pretrain" / "lam1" / "seed2" / "checkpoints" / "last.ckpt", 500)
    stage = pretrain_stage(tmp_path, PRETEXTS[1], 2)
    assert stage.command[-2:] == ("--ckpt_path", str(last)) and not stage.done()
    fake_checkpoint(last, recipe_steps())
    assert pretrain_stage(tmp_path, PRETEXTS[1], 2).done()
    assert not pretrain_stage(tmp_path, PRETEXTS[1], 1).done()


def test_runner_records_the_stage_and_stops_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    ok = Stage("demo", (sys.executable, "-c", f"open({str(out)!r}, 'w').write('x')"), out)
    record = runner.run_stage(ok, tmp_path)
    assert out.read_text() == "x" and record["command"] == list(ok.command) and record["seconds"] >= 0
    bad = Stage(
        "broken", (sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"), tmp_path / "never"
    )
    with pytest.raises(SystemExit, match="broken failed \\(exit code 3"):
        runner.run_stage(bad, tmp_path)
    assert "boom" in (tmp_path / "logs" / "broken.log").read_text()


def per_layer_result(task: str, dataset: str, top1: list[float]) -> Result:
    metrics = {f"conv{i + 1}": {"top1": v, "top5": min(1.0, v + 0.3)} for i, v in enumerate(top1)}
    return Result(task, dataset, "x", metrics)


# linear top-1 (fractions) per arm and seed, two layers
LINEAR = {
    "rebalanced": [[0.40, 0.45], [0.42, 0.47], [0.41, 0.49]],
    "lam1": [[0.44, 0.40], [0.45, 0.41], [0.43, 0.42]],
    "l2": [[0.35, 0.33], [0.36, 0.30], [0.34, 0.36]],
    "random": [[0.35, 0.30], [0.36, 0.29], [0.34, 0.31]],
}
SUPERVISED_TOP1 = [0.45, 0.60]


def fake_results_root(root: Path) -> None:
    """Stage outputs as the real commands write them, for every arm and seed."""
    for arm, per_seed in LINEAR.items():
        for seed, top1 in enumerate(per_seed):
            rows = [per_layer_result("linear", "imagenette64", top1)]
            if (arm, seed) == ("random", 0):
                rows.append(per_layer_result("linear", "imagenette64", SUPERVISED_TOP1))
            write_report(rows, root / "linear" / arm / f"seed{seed}", "linear_imagenette64")
            knn = [v - 0.05 for v in top1]
            write_report([per_layer_result("knn", "imagenette64", knn)], root / "knn" / arm / f"seed{seed}",
                         "knn_imagenette64")  # fmt: skip
            boxes = {"all": {"map": 0.01 * (seed + 1), "map_50": 0.02}}
            detection = Result("detection", "coco128", "x", boxes)
            write_report([detection], root / "detection" / arm / f"seed{seed}", "detection_coco128")
    supervised_knn = per_layer_result("knn", "imagenette64", [0.5, 0.55])
    write_report([supervised_knn], root / "knn" / "supervised" / "seed0", "knn_imagenette64")
    for prior, folder in ((0.5, "cbsd68"), (0.25, "cbsd68-imagenet-prior")):
        scores = {"gray": {"auc": 0.9, "rebalanced_auc": prior, "colourfulness": 0.0, "psnr": 23.0}}
        for arm in ("rebalanced", "lam1"):
            for seed in SEEDS:
                scores[f"{arm}/seed{seed}"] = {
                    "auc": 0.88 + 0.01 * seed, "rebalanced_auc": prior + 0.1, "colourfulness": 20.0 + seed,
                    "psnr": 22.0,
                }  # fmt: skip
        record = {"images": 68, "pixels": 1000, "truth_colourfulness": 37.5, "scores": scores}
        (root / folder).mkdir(parents=True)
        (root / folder / "scores.json").write_text(json.dumps(record))
    Image.new("RGB", (8, 8), "red").save(root / "cbsd68" / "grid.png")
    manifest = {
        "pretrain/rebalanced/seed0": {"code": "abc1234", "seconds": 360.0},
        "pretrain/lam1/seed0": {"code": "abc1234", "seconds": 300.0},
        "linear/random/seed0": {"code": "def5678", "seconds": 120.0},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_summary_holds_every_per_seed_number(tmp_path: Path) -> None:
    root = tmp_path / "results"
    fake_results_root(root)
    summary = collect(root)
    linear = summary["imagenette"]["linear_top1"]
    assert set(linear) == {"rebalanced", "lam1", "l2", "random", "supervised"}
    assert linear["rebalanced"]["conv2"] == [45.0, 47.0, 49.0]
    assert linear["supervised"] == {"conv1": [45.0], "conv2": [60.0]}
    assert summary["seeds"]["imagenette/linear_top1"]["supervised"] == [0]
    assert summary["seeds"]["imagenette/linear_top1"]["random"] == [0, 1, 2]
    assert summary["imagenette"]["knn_top1"]["l2"]["conv1"] == pytest.approx([30.0, 31.0, 29.0])
    assert summary["hymenoptera"]["linear_top1"] == {} and summary["coco128"]["segmentation"] == {}
    assert summary["coco128"]["detection"]["random"]["map"] == [1.0, 2.0, 3.0]
    cbsd = summary["imagenette"]["cbsd68"]
    assert cbsd["gray"]["rebalanced_auc"] == [50.0]
    assert cbsd["gray"]["rebalanced_auc_imagenet_prior"] == [25.0]
    assert cbsd["lam1"]["auc"] == [88.0, 89.0, 90.0] and cbsd["lam1"]["colourfulness"] == [20.0, 21.0, 22.0]
    assert summary["seeds"]["imagenette/cbsd68"]["rebalanced"] == [0, 1, 2]
    assert summary["cbsd68_about"]["truth_colourfulness"] == 37.5
    assert summary["commits"]["linear/random/seed0"] == "def5678"
    assert summary["compute_minutes"] == {"pretrain": 11.0, "linear": 2.0}
    assert summary["recipes"]["pretrain_overrides"]["lam1"][:2] == ["--model.lam", "1.0"]


def test_render_shows_spread_contrasts_and_gap_shares_from_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, docs = tmp_path / "results", tmp_path / "docs"
    fake_results_root(root)
    monkeypatch.setattr(render_module, "FIGURES", docs / "results")
    summary = write_summary(root, docs / "results" / "summary.json")
    page = render_module.render(summary, root, docs / "results.md").read_text()
    rebalanced = 100 * np.array(LINEAR["rebalanced"])
    mean, sd = rebalanced.mean(0), rebalanced.std(0, ddof=1)
    cells = f"{mean[0]:.1f} ± {sd[0]:.1f} | {mean[1]:.1f} ± {sd[1]:.1f}"
    assert f"| colorization, rebalanced (lam = 0.5) | 3 | {cells} |" in page
    assert "| supervised from scratch | 1 | 45.0 | 60.0 |" in page
    for a, b in (("rebalanced", "random"), ("rebalanced", "lam1"), ("l2", "random")):
        x, y = 100 * np.array(LINEAR[a]), 100 * np.array(LINEAR[b])
        cells = []
        for layer in range(2):
            ci = scipy_stats.ttest_ind(x[:, layer], y[:, layer], equal_var=False).confidence_interval(0.95)
            diff = x[:, layer].mean() - y[:, layer].mean()
            text = f"{diff:+.1f} [{ci.low:+.1f}, {ci.high:+.1f}]"
            cells.append(f"**{text}**" if ci.low > 0 or ci.high < 0 else text)
        assert f"| {a} - {b} | {cells[0]} | {cells[1]} |" in page
    # gap share from the means: conv1 gap 45 - 35 = 10 points; conv2 30 -> 60
    random = 100 * np.mean(LINEAR["random"], 0)
    shares = (100 * np.mean(LINEAR["lam1"], 0) - random) / (100 * np.array(SUPERVISED_TOP1) - random)
    assert (
        f"| colorization, no rebalancing (lam = 1) | {100 * shares[0]:.0f}% | {100 * shares[1]:.0f}% |"
        in page
    )
    assert "`python -m experiments.results --only hymenoptera/rebalanced/seed0`" in page
    assert "`python -m experiments.results --only segmentation/rebalanced/seed0`" in page
    assert "| gray (ab = 0) | 1 | 90.0 | 50.0 | 25.0 | 0.0 | 23.0 |" in page
    row = "| colorization, rebalanced (lam = 0.5) | 3 | 89.0 ± 1.0 | 60.0 ± 0.0 | 35.0 ± 0.0 | 21.0 ± 1.0 |"
    assert page.index("| gray (ab = 0)") < page.index(row)
    # CBSD68: equal arms; a metric without spread gives the point 0 as its interval (not bold);
    # [88, 89, 90] twice: se = sqrt(2/3), df = 4, t = 2.776, half-width 2.27
    zero, spread = "+0.0 [+0.0, +0.0]", "+0.0 [-2.3, +2.3]"
    assert f"| rebalanced - lam1 | {spread} | {zero} | {zero} | {spread} | {zero} |" in page
    # gray enters as a constant: rebalanced AuC [88, 89, 90] - 90 is -1.0 with the one-sample interval
    assert "| rebalanced - gray | -1.0 [-3.5, +1.5] | **+10.0 [+10.0, +10.0]** |" in page
    assert "| pretrain | 11.0 |" in page and "Total: 0.2 h." in page
    for name in ("linear_imagenette64.png", "knn_imagenette64.png", "cbsd68_grid.jpg"):
        assert (docs / "results" / name).stat().st_size > 500 and f"(results/{name})" in page
    assert not (docs / "results" / "linear_hymenoptera.png").exists()


def test_driver_command_lines_are_printable(tmp_path: Path) -> None:
    """--list prints each stage's command as a shell line a user can paste."""
    for stage in stages(tmp_path)[:12]:
        assert shlex.split(shlex.join(stage.command)) == list(stage.command)
    assert RANDOM in ARMS and SUPERVISED.seeds == (0,)


@pytest.mark.parametrize("name", ["cbsd68", "cbsd68-imagenet-prior"])
def test_cbsd68_commands_parse_strictly(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from selfsup_color.cli import main

    stage = {s.name: s for s in stages(tmp_path)}[name]
    with pytest.raises(SystemExit):
        main([*stage.command[1:], "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    expected = {f"{arm.name}/seed{seed}" for arm in PRETEXTS for seed in arm.seeds}
    assert set(config["ckpt_path"]) == expected and config["process_size"] == 64
    assert config["inputs"] == [str(Path(__file__).resolve().parents[2] / "data" / "cbsd68")]


def test_alexnet_miniature_is_summarised_and_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_module, "FIGURES", tmp_path / "figures")
    root = tmp_path / "results"
    for seed in SEEDS:
        for arm, base in (("alexnet", 0.40), ("alexnet-random", 0.30)):
            top1 = [base + 0.01 * seed, base + 0.05 + 0.01 * seed]
            write_report([per_layer_result("linear", "imagenette96", top1)],
                         root / "alexnet-linear" / arm / f"seed{seed}", "linear_imagenette96")  # fmt: skip
            scores = {"fc7": {"map": base / 2 + 0.01 * seed, "map_1crop": base / 2}}
            write_report([Result("multilabel", "coco128", "x", scores)],
                         root / "alexnet-multilabel" / arm / f"seed{seed}", "multilabel_coco128")  # fmt: skip
    summary = collect(root)["alexnet"]
    assert summary["imagenette_linear_top1"]["alexnet"]["conv2"] == pytest.approx([45.0, 46.0, 47.0])
    assert summary["coco128_multilabel"]["alexnet-random"]["map"] == pytest.approx([15.0, 16.0, 17.0])
    assert collect(root)["imagenette"]["linear_top1"] == {}  # the miniature stays out of the main study
    (tmp_path / "summary.json").write_text(json.dumps(collect(root)))
    page = render_module.render(tmp_path / "summary.json", root, out=tmp_path / "results.md").read_text()
    section = page.split("## 7.")[1]
    assert "colorization AlexNet, rescaled | 3 |" in section and "random AlexNet, rescaled | 3 |" in section
    # +10 points at conv1 with sd 1 each side: the Welch interval excludes 0, so it is bold
    assert "| alexnet - alexnet-random | **+10.0 [" in section
    assert (
        "mAP, 10 crops (%)" in section
        and (tmp_path / "figures" / "linear_imagenette96_alexnet.png").is_file()
    )
