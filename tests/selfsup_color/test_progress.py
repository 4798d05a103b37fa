"""Progress bars: the right total, drawn on rank zero only, silent when off or not on a terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch.utilities import rank_zero_only

from selfsup_color.data import ColorizationDataModule
from selfsup_color.pretrain.prior_pass import estimate_data_prior
from selfsup_color.progress import PROGRESS_ENV, progress_bar, show_progress

from .data.images import folder_of_pictures


def final_count(stderr: str) -> tuple[int, int]:
    """The last ``n/total`` that a tqdm bar wrote."""
    counts = re.findall(r"(\d+)/(\d+) \[", stderr)
    assert counts, f"no progress bar in {stderr!r}"
    return int(counts[-1][0]), int(counts[-1][1])


def test_a_forced_bar_counts_to_its_total(capsys, monkeypatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert list(progress_bar(range(7), desc="work")) == list(range(7))
    err = capsys.readouterr().err
    assert final_count(err) == (7, 7) and "work" in err


@pytest.mark.parametrize(("setting", "rank"), [("0", 0), ("off", 0), ("auto", 0), (None, 0), ("1", 1)])
def test_silent_when_off_not_a_terminal_or_off_rank_zero(setting, rank, capsys, monkeypatch) -> None:
    if setting is None:
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(PROGRESS_ENV, setting)
    monkeypatch.setattr(rank_zero_only, "rank", rank)
    assert list(progress_bar(range(5))) == list(range(5))  # pytest's captured stderr is no terminal
    assert capsys.readouterr().err == ""
    assert not show_progress()
    assert show_progress(True) is (rank == 0)  # enabled=True overrides the environment, not the rank


def test_a_bad_setting_fails_with_the_variable_name(monkeypatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "sometimes")
    with pytest.raises(ValueError, match=PROGRESS_ENV):
        show_progress()


def test_the_prior_pass_counts_its_images(tmp_path: Path, capsys, monkeypatch) -> None:
    folder_of_pictures(tmp_path / "pictures", 9, size=(40, 36))
    data = ColorizationDataModule(
        train=str(tmp_path / "pictures"), resize=36, crop=32, batch_size=4, num_workers=0, val_fraction=0.0
    )
    data.setup("fit")
    monkeypatch.setenv(PROGRESS_ENV, "1")
    record = estimate_data_prior(data, 7, torch.device("cpu"))
    assert record.n_images == 7
    assert final_count(capsys.readouterr().err) == (7, 7)
