"""Strict, safe checkpoint loading: ``weights_only`` unpickling and a report of mismatched keys."""

from __future__ import annotations

import pickle
import re
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


def read_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint dict, unpickled with ``weights_only=True``; clear errors for bad files.

    ``mmap=True`` maps the tensors instead of reading them (cheap for a look at the metadata).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:  # torch's text advises unsafe loading: name the object instead
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        what = f" ({found[1]})" if found else ""
        raise ValueError(
            f"cannot read checkpoint {path}: it holds Python objects{what} that only unsafe unpickling, "
            "which can run code, would build"
        ) from error
    except Exception as error:
        raise ValueError(f"cannot read checkpoint {path} ({type(error).__name__}: {error})") from error
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a Lightning checkpoint: it holds {describe_payload(ckpt)}")
    return ckpt


def describe_payload(payload: Any) -> str:
    """What an unpickled file holds, in a few words (for errors about files that are not checkpoints)."""
    if isinstance(payload, dict) and payload and all(isinstance(v, Tensor) for v in payload.values()):
        return f"a bare state dict ({len(payload)} tensors, e.g. {next(iter(payload))!r}) and no 'state_dict'"
    if isinstance(payload, dict):
        return f"a dict without 'state_dict' (keys {sorted(map(str, payload))[:10]})"
    return f"a {type(payload).__name__}"


def non_finite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """The dotted names of the floating-point tensors in ``tree`` (nested dicts, lists) with a NaN or inf.

    One synchronisation per device, whatever the number of tensors.
    """
    named: list[tuple[str, Tensor]] = []

    def collect(node: Any, name: str) -> None:
        if isinstance(node, Tensor):
            if node.is_floating_point() or node.is_complex():
                named.append((name, node))
        elif isinstance(node, dict):
            for key, value in node.items():
                collect(value, f"{name}.{key}" if name else str(key))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                collect(value, f"{name}.{i}" if name else str(i))

    collect(tree, prefix)
    bad: set[str] = set()
    for device in {t.device for _, t in named}:
        group = [(name, t) for name, t in named if t.device == device]
        finite = torch.stack([torch.isfinite(t.detach()).all() for _, t in group]).tolist()
        bad.update(name for (name, _), ok in zip(group, finite, strict=True) if not ok)
    return [name for name, _ in named if name in bad]
