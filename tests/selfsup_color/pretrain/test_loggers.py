"""wandb is offline without a key, its failures never stop a run, and files go out as artifacts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from selfsup_color.pretrain.cli import run_lightning_cli
from selfsup_color.pretrain.loggers import SafeWandbLogger, log_files, wandb_offline_by_default

from ..wandb_records import finished_run_records, md5_base64
from .conftest import tiny_config, write_config


@pytest.mark.parametrize(
    ("env", "netrc", "offline"),
    [
        ({}, False, True),
        ({}, True, False),
        ({"WANDB_API_KEY": "x"}, False, False),
        ({"WANDB_MODE": "offline", "WANDB_API_KEY": "x"}, False, True),
        ({"WANDB_MODE": "online"}, False, False),
    ],
)
def test_offline_unless_a_key_or_mode_says_otherwise(
    env, netrc, offline, tmp_path: Path, monkeypatch
) -> None:
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path))
    if netrc:
        (tmp_path / ".netrc").write_text("machine api.wandb.ai login user password key\n")
    assert wandb_offline_by_default() is offline


def test_logging_failures_warn_once_and_training_goes_on(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("network gone")

    monkeypatch.setattr(WandbLogger, "log_metrics", broken)
    monkeypatch.setattr(WandbLogger, "log_image", broken)
    logger = SafeWandbLogger(save_dir=str(tmp_path), offline=True)
    with pytest.warns(RuntimeWarning, match="wandb log_metrics failed .*network gone.*training goes on"):
        logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.log_metrics({"train/loss": 1.0}, step=1)  # the second failure is silent
    with pytest.warns(RuntimeWarning, match="wandb log_image failed"):
        logger.log_image("grid", [], step=0)


def test_wandb_mode_disabled_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    logger = SafeWandbLogger(save_dir=str(tmp_path))
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.log_hyperparams({"lr": 0.1})
    logger.finalize("success")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [] and os.environ["WANDB_MODE"] == "disabled"


def manifest_digests(run_folder: Path) -> dict[str, dict[str, str]]:
    """Artifact name -> {file name: base64 MD5} from the artifact records of an offline run."""
    records = finished_run_records(next(run_folder.glob("run-*.wandb")))
    return {
        r.artifact.name: {entry.path: entry.digest for entry in r.artifact.manifest.contents}
        for r in records.get("artifact", [])
    } | {f"type:{r.artifact.name}": {"": r.artifact.type} for r in records.get("artifact", [])}


@pytest.fixture()
def no_key(tmp_path: Path, monkeypatch) -> Iterator[None]:
    """No API key, no wandb run left open by an earlier test (a new logger would reuse it)."""
    import wandb

    wandb.finish()
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc, and wandb's staging folder in tmp
    yield
    wandb.finish()


def test_log_files_writes_an_artifact_manifest_offline(tmp_path: Path, no_key) -> None:
    files = [tmp_path / "a.json", tmp_path / "b.png"]
    files[0].write_text('{"x": 1}\n')
    files[1].write_bytes(bytes(range(256)))
    logger = SafeWandbLogger(save_dir=str(tmp_path / "logs"))
    assert log_files(logger, "results of run/1", "result", files)
    logger.experiment.finish()
    run = next((tmp_path / "logs" / "wandb").glob("offline-run-*"))
    logged = manifest_digests(run)
    assert logged["results-of-run-1"] == {f.name: md5_base64(f) for f in files}
    assert logged["type:results-of-run-1"] == {"": "result"}


def test_log_files_is_a_no_op_elsewhere(tmp_path: Path, no_key, monkeypatch) -> None:
    path = tmp_path / "a.txt"
    path.write_text("a")
    assert not log_files(None, "a", "result", [path])
    assert not log_files(CSVLogger(tmp_path), "a", "result", [path])
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert not log_files(SafeWandbLogger(save_dir=str(tmp_path / "logs")), "a", "result", [path])
    assert not (tmp_path / "logs" / "wandb").exists()  # rank 1 never even started a run


def test_a_missing_file_warns_and_the_run_goes_on(tmp_path: Path, no_key) -> None:
    logger = SafeWandbLogger(save_dir=str(tmp_path / "logs"))
    with pytest.warns(RuntimeWarning, match="wandb log_files failed"):
        assert not log_files(logger, "a", "result", [tmp_path / "missing.json"])
    logger.experiment.finish()


def test_log_model_without_a_key_logs_checkpoints_and_the_prior_offline(
    photo_dirs, tmp_path: Path, no_key
) -> None:
    """``--trainer.logger.init_args.log_model true`` (the docs' advice) raised MisconfigurationException."""
    root = tmp_path / "run"
    config = tiny_config(*photo_dirs, root)
    del config["trainer"]["logger"]  # the default logger: SafeWandbLogger, offline without a key
    argv = ["fit", "--config", str(write_config(tmp_path / "run.yaml", config))]
    with pytest.warns(UserWarning, match="log_model=True keeps checkpoints as offline artifacts"):
        run_lightning_cli([*argv, "--trainer.logger.init_args.log_model", "true"])
    import wandb

    wandb.finish()
    run = next((root / "wandb").glob("offline-run-*"))
    run_id = run.name.rsplit("-", 1)[1]
    logged = manifest_digests(run)
    prior = run / "files" / "prior"
    assert logged[f"prior-{run_id}"] == {p: md5_base64(prior / p) for p in ("prior.json", "prior.png")}
    checkpoints = {md5_base64(p) for p in (root / "checkpoints").glob("*.ckpt")}
    assert logged[f"type:model-{run_id}"] == {"": "model"}
    assert set(logged[f"model-{run_id}"]) == {"model.ckpt"}
    assert logged[f"model-{run_id}"]["model.ckpt"] in checkpoints
