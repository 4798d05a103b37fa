"""The prior, colorize and evaluate verbs as functions: out checked first, unreadable files counted."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from selfsup_color.core.prior import load_prior
from selfsup_color.data import UnreadableImageWarning
from selfsup_color.pretrain import commands

from ..data.images import folder_of_pictures


def test_prior_records_how_many_files_were_unreadable(tmp_path: Path, capsys) -> None:
    folder_of_pictures(tmp_path / "photos", 6, size=(40, 36))
    broken = [tmp_path / "photos" / "broken.jpg", tmp_path / "photos" / "class0" / "empty.png"]
    broken[0].write_text("not a JPEG")
    broken[1].write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        commands.prior(str(tmp_path / "photos"), tmp_path / "out", resize=36, crop=32, workers=0)
    unreadable = [str(w.message) for w in caught if w.category is UnreadableImageWarning]
    assert sorted(message.split(": ")[0] for message in unreadable) == sorted(
        f"skipping unreadable image {path}" for path in broken
    )
    record = load_prior(tmp_path / "out" / "prior.json")
    assert (record.n_images, record.n_unreadable) == (6, 2)
    assert "prior of 6 images" in (printed := capsys.readouterr().out) and "2 unreadable" in printed


@pytest.mark.parametrize("verb", ["prior", "colorize", "evaluate"])
def test_an_unusable_out_folder_fails_before_the_work(tmp_path: Path, verb: str) -> None:
    """Nothing is read (the data and checkpoint do not even exist): the folder is checked first."""
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    out, missing = blocker / "out", tmp_path / "missing"
    calls = {
        "prior": lambda: commands.prior(str(missing), out),
        "colorize": lambda: commands.colorize([str(missing)], missing / "x.ckpt", out),
        "evaluate": lambda: commands.evaluate([str(missing)], {"x": missing / "x.ckpt"}, out),
    }
    with pytest.raises(NotADirectoryError, match=f"cannot write to the output folder {out} "):
        calls[verb]()
