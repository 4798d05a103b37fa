"""Strict state loading: key reports and refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from selfsup_color.checkpoints import (
    compare_state,
    describe_payload,
    load_state_strict,
    non_finite_tensors,
    read_checkpoint,
)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))


def test_matching_state_loads_exactly() -> None:
    src, dst = _net(), _net()
    report = load_state_strict(dst, src.state_dict(), "src")
    assert report.ok and str(report) == "all keys matched"
    for a, b in zip(src.parameters(), dst.parameters(), strict=True):
        assert torch.equal(a, b)


def test_report_names_missing_unexpected_and_shape_mismatches() -> None:
    state = _net().state_dict()
    state.pop("2.bias")
    state["extra.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(8, 1, 3, 3)
    report = compare_state(_net(), state)
    assert report.missing == ["2.bias"]
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == ["0.weight (8, 1, 3, 3) vs (4, 1, 3, 3)"]
    dst = _net()
    before = [p.clone() for p in dst.parameters()]
    with pytest.raises(KeyError, match=r"missing: 2\.bias.*unexpected: extra\.weight.*shape mismatch"):
        load_state_strict(dst, state, "bad.ckpt")
    unchanged = all(torch.equal(a, b) for a, b in zip(before, dst.parameters(), strict=True))
    assert unchanged, "a refused load changed weights"


def test_read_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt"):
        read_checkpoint(tmp_path / "nope.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*garbage\.ckpt"):
        read_checkpoint(garbage)
    plain = tmp_path / "plain.pt"
    torch.save(_net().state_dict(), plain)
    with pytest.raises(
        ValueError, match=r"not a Lightning checkpoint: it holds a bare state dict \(4 tensors"
    ):
        read_checkpoint(plain)
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "obj": _net()}, pickled)
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*Python objects \(torch.nn.modules"):
        read_checkpoint(pickled)


def test_non_finite_tensors_names_each_bad_tensor_like_a_brute_force_scan() -> None:
    generator = torch.Generator().manual_seed(0)
    tree: dict = {"state_dict": {}, "optimizer_states": [{"state": {}}]}
    flat: dict[str, torch.Tensor] = {}
    for i in range(40):
        tensor = torch.randn(int(torch.randint(1, 6, (1,), generator=generator)), generator=generator)
        kind = int(torch.randint(0, 4, (1,), generator=generator))
        if kind:
            tensor[int(torch.randint(0, len(tensor), (1,), generator=generator))] = (
                math.nan,
                math.inf,
                -math.inf,
            )[kind - 1]
        if i % 2:
            tree["state_dict"][f"net.w{i}"] = tensor
            flat[f"state_dict.net.w{i}"] = tensor
        else:
            tree["optimizer_states"][0]["state"][i] = {"exp_avg": tensor, "step": torch.tensor(3)}
            flat[f"optimizer_states.0.state.{i}.exp_avg"] = tensor
    expected = [name for name, t in flat.items() if not all(math.isfinite(x) for x in t.tolist())]
    assert 0 < len(expected) < len(flat)
    assert sorted(non_finite_tensors(tree)) == sorted(expected)
    assert non_finite_tensors({"counts": torch.tensor([1, 2]), "lr": 1e6}) == []


def test_a_bare_state_dict_is_described() -> None:
    state = _net().state_dict()
    assert describe_payload(state) == "a bare state dict (4 tensors, e.g. '0.weight') and no 'state_dict'"
    assert describe_payload([1]) == "a list"
