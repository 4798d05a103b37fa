"""Strict, safe checkpoint loading: ``weights_only`` unpickling and a report of mismatched keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class KeyReport:
    """How a state dict lines up with a module: keys missing, unexpected, or of another shape."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        if self.ok:
            return "all keys matched"
        parts = []
        for name, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", self.mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{name}: {shown}")
        return "; ".join(parts)


def compare_state(module: nn.Module, state: dict[str, Tensor]) -> KeyReport:
    """The :class:`KeyReport` of loading ``state`` into ``module`` (nothing is loaded)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    return KeyReport(missing, unexpected, mismatched)


def load_state_strict(module: nn.Module, state: dict[str, Tensor], source: str) -> KeyReport:
    """Load ``state`` into ``module`` only if every key and shape matches; else raise with the report."""
    report = compare_state(module, state)
    if not report.ok:
        raise KeyError(f"checkpoint {source} does not fit {type(module).__name__}: {report}")
    module.load_state_dict(state, strict=True)
    return report


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A Lightning checkpoint dict, unpickled with ``weights_only=True``; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read checkpoint {path} ({type(error).__name__}: {error})") from error
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        keys = sorted(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict'; found {keys})")
    return ckpt
