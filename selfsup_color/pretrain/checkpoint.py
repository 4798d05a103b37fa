"""Rebuild a pretraining module from its checkpoint, strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from ..checkpoints import load_state_strict, read_checkpoint
from .module import ColorizationModule


def load_pretraining_module(path: str | Path, map_location: Any = "cpu") -> ColorizationModule:
    """The :class:`ColorizationModule` saved in ``path`` (its hyperparameters, then strict weights)."""
    ckpt = read_checkpoint(path, map_location)
    hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if not k.startswith("_")}
    if "arch" not in hparams:
        raise ValueError(f"{path} was not written by selfsup-color pretraining (no 'arch' hyperparameter)")
    hparams["compile_net"] = hparams["compile_targets"] = False
    module = ColorizationModule(**hparams)
    state = module.net.upgrade_state_dict(ckpt["state_dict"], prefix="net.")
    report = load_state_strict(module, state, str(path))
    rank_zero_info(f"Loaded {path} (step {ckpt.get('global_step')}): {report}")
    return module.eval()
