"""One dialect for every verb: ``--help`` lists them, ``--print_config`` round-trips through ``--config``,
unknown keys fail, and the previous release's flags still work with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from selfsup_color.cli import FUNCTION_VERBS, LIGHTNING_VERBS, main
from selfsup_color.command import rename_flags

VERB_ARGS = {
    "prior": ["--data", "builtin", "--out", "runs/p", "--batch_size", "8"],
    "colorize": ["--ckpt_path", "a.ckpt", "--out", "runs/c", "--process_size", "0", "x.png", "y/"],
    "evaluate": ["--ckpt_path.ours", "a.ckpt", "--ckpt_path.l2", "b.ckpt", "--out", "runs/e", "z/"],
}


def test_help_lists_every_verb_and_no_predict(capsys) -> None:
    assert main(["--help"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert listed == {*LIGHTNING_VERBS, *FUNCTION_VERBS, "quickstart"}
    assert main(["predict"]) == 2
    assert "unknown verb 'predict'" in capsys.readouterr().err


@pytest.mark.parametrize("verb", FUNCTION_VERBS)
def test_print_config_round_trips_and_unknown_keys_fail(verb: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([verb, *VERB_ARGS[verb], "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert "config" not in config
    if verb == "evaluate":
        assert config["ckpt_path"] == {"ours": "a.ckpt", "l2": "b.ckpt"} and config["inputs"] == ["z/"]
    (tmp_path / "c.yaml").write_text(printed)
    with pytest.raises(SystemExit):
        main([verb, "--config", str(tmp_path / "c.yaml"), "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == config  # the printed config reads back the same

    config["proces_size"] = 3  # a typo of a real key fails and names it
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--config", str(tmp_path / "bad.yaml")])
    assert exit_info.value.code not in (0, None)
    assert "proces_size" in capsys.readouterr().err


def test_old_flags_are_renamed_with_a_warning() -> None:
    renamed = {"--ckpt": "--ckpt_path.", "--process-size": "--process_size"}
    with pytest.warns(FutureWarning, match="--process-size is deprecated; use --process_size"):
        argv = rename_flags(
            ["--process-size=3", "--ckpt", "a=x.ckpt", "--ckpt", "b=y.ckpt", "p/"], renamed, "t"
        )
    assert argv == ["--process_size", "3", "--ckpt_path.a", "x.ckpt", "--ckpt_path.b", "y.ckpt", "p/"]
    with pytest.raises(SystemExit, match="NAME=PATH"):
        rename_flags(["--ckpt", "x.ckpt"], renamed, "t")
    assert rename_flags(["--ckpt_path", "x"], renamed, "t") == ["--ckpt_path", "x"]  # new flags untouched


def test_errors_end_in_one_line_unless_debug(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["colorize", "--ckpt_path", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "o"), "x.png"]
    monkeypatch.delenv("SELFSUP_COLOR_DEBUG", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert (
        err[0]
        == f"selfsup-color: error: FileNotFoundError: checkpoint {tmp_path / 'missing.ckpt'} does not exist"
    )
    assert "--debug" in err[1] and len(err) == 2  # no traceback
    with pytest.raises(FileNotFoundError):
        main([*argv, "--debug"])
    monkeypatch.setenv("SELFSUP_COLOR_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(argv)
