"""The results script: its stages, resuming, the runner's manifest, and the page it renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from experiments.results import __main__ as runner
from experiments.results import render as render_module
from experiments.results.stages import PRETEXTS, SPLITS, Stage, pretrain_stage, recipe_steps, stages
from transfer.report import Result, write_report


def fake_checkpoint(path: Path, step: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "global_step": step}, path)
    return path


def test_stages_cover_every_part_of_the_page_in_order(tmp_path: Path) -> None:
    names = [s.name for s in stages(tmp_path)]
    assert names == [
        "priors", "pretrain/rebalanced", "pretrain/lam1", "pretrain/l2", "cbsd68",
        "linear/rebalanced", "linear/lam1", "linear/l2", "detection", "segmentation",
    ]  # fmt: skip
    by_name = {s.name: s for s in stages(tmp_path)}
    assert "--model.lam" in by_name["pretrain/lam1"].command
    assert by_name["pretrain/l2"].command[-4:] == ("--model.loss", "regression", "--model.lam", "1.0")
    assert "--baselines=[random,supervised]" in by_name["linear/rebalanced"].command
    assert "--baselines=[]" in by_name["linear/l2"].command
    assert str(SPLITS / "coco128_detection.json") in by_name["detection"].command
    assert not any(s.done() for s in stages(tmp_path))


def test_pretraining_resumes_from_its_last_checkpoint_until_the_recipe_is_done(tmp_path: Path) -> None:
    stage = pretrain_stage(tmp_path, PRETEXTS[1])
    assert "--ckpt_path" not in stage.command
    last = fake_checkpoint(tmp_path / "pretrain" / "lam1" / "checkpoints" / "last.ckpt", 500)
    stage = pretrain_stage(tmp_path, PRETEXTS[1])
    assert stage.command[-2:] == ("--ckpt_path", str(last)) and not stage.done()
    fake_checkpoint(last, recipe_steps())
    assert pretrain_stage(tmp_path, PRETEXTS[1]).done()


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


def probe_result(encoder: str, top1: list[float], init: str = "pretrained") -> Result:
    metrics = {f"conv{i + 1}": {"top1": v, "top5": min(1.0, v + 0.3)} for i, v in enumerate(top1)}
    return Result("linear", "cifar10", encoder, metrics, {"encoder": {"init": init}})


def test_render_writes_tables_figures_and_pending_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, docs = tmp_path / "results", tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setattr(render_module, "FIGURES", docs / "results")
    rows = {"rebalanced": [0.50, 0.41], "lam1": [0.40, 0.30], "l2": [0.20, 0.35]}
    for name, top1 in rows.items():
        results = [probe_result("last.ckpt", top1)]
        if name == "rebalanced":
            results += [
                probe_result("random init (x)", [0.30, 0.30], "random"),
                probe_result("sup", [0.70, 0.31]),
            ]
        write_report(results, root / "linear" / name, "linear_cifar10")
    (root / "priors").mkdir(parents=True)
    prior_row = {"entropy_bits": 4.5, "bins_for_90_percent": 30, "max_weight_lam_0.5": 6.0}
    (root / "priors" / "priors.json").write_text(json.dumps({"CIFAR-10 train": {"images": 9, **prior_row}}))
    Image.new("RGB", (4, 4)).save(root / "priors" / "priors.png")
    page = render_module.render(root, docs / "results.md").read_text()
    assert "| colorization, rebalanced (lam = 0.5) | 50.0 | 41.0 |" in page
    assert "| random init | 30.0 | 30.0 |" in page and "| supervised from scratch | 70.0 | 31.0 |" in page
    # conv1: (50 - 30) / (70 - 30) = 50%; conv2: a 1-point gap is not shown; the mean: (45.5-30)/(50.5-30)
    assert "| colorization, rebalanced (lam = 0.5) | 50% | - | 76% |" in page
    assert "| L2 regression on ab | -25% | - | -12% |" in page
    assert "`python -m experiments.results --only cbsd68`" in page
    assert "`python -m experiments.results --only detection`" in page
    assert "| CIFAR-10 train | 9 | 4.50 | 30 | 6.00 |" in page
    assert (docs / "results" / "linear_cifar10.png").stat().st_size > 1000
    assert (docs / "results" / "priors.png").is_file() and "![priors.png](results/priors.png)" in page
