"""Each pretext composes the pure functions of ``selfsup_color.core``; its registry key is the loss name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from selfsup_color import pretexts
from selfsup_color.core.bins import Q, ab_bins
from selfsup_color.core.decode import DEFAULT_TEMPERATURE, annealed_mean
from selfsup_color.core.loss import classification_loss, regression_loss
from selfsup_color.core.prior import PriorEstimator
from selfsup_color.core.rebalance import rebalance_weights
from selfsup_color.core.targets import OUTPUT_STRIDE, ColorizationTargets, TargetBuilder
from selfsup_color.models import ARCHITECTURES, build_model
from selfsup_color.pretexts import (
    PRETEXTS,
    ClassificationPretext,
    Pretext,
    RegressionPretext,
    build_pretext,
    pretext_for_outputs,
    register_pretext,
)

REDUCTIONS = ("batch", "mean", "sum", "none")


@pytest.fixture(scope="module")
def prepared() -> ColorizationTargets:
    """Targets of 3 random 16 x 16 images (the last one gray), with non-uniform rebalancing weights."""
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8, generator=gen)
    rgb[2] = rgb[2, :1]  # R = G = B: grayscale, no loss
    prior = torch.rand(Q, generator=gen, dtype=torch.float64) + 0.01
    targets = TargetBuilder(rebalance_weights(prior / prior.sum(), 0.5))(rgb)
    assert targets.nongray.tolist() == [True, True, False]
    assert targets.pixel_weight.max() > 2 * targets.pixel_weight.min()
    return targets


@pytest.fixture()
def restore_registry() -> Iterator[None]:
    saved = dict(PRETEXTS)
    yield
    PRETEXTS.clear()
    PRETEXTS.update(saved)


def test_the_registry_is_keyed_by_the_loss_names() -> None:
    assert list(PRETEXTS) == ["classification", "regression"]
    classification, regression = build_pretext("classification"), build_pretext("regression")
    assert isinstance(classification, ClassificationPretext) and isinstance(regression, RegressionPretext)
    assert (classification.num_outputs, classification.default_lam) == (313, 0.5)  # the paper's
    assert (regression.num_outputs, regression.default_lam) == (2, 1.0)  # its unweighted L2 baseline
    with pytest.raises(ValueError, match=r"registered pretexts \(classification, regression\), got 'hinge'"):
        build_pretext("hinge")


def test_one_default_stride_serves_targets_prior_and_networks() -> None:
    assert OUTPUT_STRIDE == 4
    assert TargetBuilder().stride == PriorEstimator().stride == OUTPUT_STRIDE
    strides = {name: cls.output_stride for name, cls in ARCHITECTURES.items()}
    assert strides == {"eccv16": OUTPUT_STRIDE, "alexnet": 8, "timm": OUTPUT_STRIDE}  # alexnet: its prototxt
    ab = TargetBuilder()(torch.zeros(1, 3, 32, 24, dtype=torch.uint8)).ab
    assert ab.shape[-2:] == (32 // OUTPUT_STRIDE, 24 // OUTPUT_STRIDE)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_classification_loss_is_the_pure_function(prepared: ColorizationTargets, reduction: str) -> None:
    logits = torch.randn(3, Q, 4, 4, generator=torch.Generator().manual_seed(1))
    t = prepared
    expected = classification_loss(logits, t.targets, t.pixel_weight, t.nongray, reduction)
    torch.testing.assert_close(ClassificationPretext().loss(logits, t, reduction), expected, rtol=0, atol=0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_loss_is_the_pure_function(prepared: ColorizationTargets, reduction: str) -> None:
    pred = 40 * torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    expected = regression_loss(pred, prepared.ab, prepared.pixel_weight, prepared.nongray, reduction)
    torch.testing.assert_close(RegressionPretext().loss(pred, prepared, reduction), expected, rtol=0, atol=0)


def test_regression_loss_against_a_brute_force_sum(prepared: ColorizationTargets) -> None:
    pred = 40 * torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    total = 0.0
    for n in range(2):  # the gray image adds nothing
        for i in range(4):
            for j in range(4):
                squared = sum(float(pred[n, c, i, j] - prepared.ab[n, c, i, j]) ** 2 for c in range(2))
                total += 0.5 * squared * float(prepared.pixel_weight[n, i, j])
    assert float(RegressionPretext().loss(pred, prepared)) == pytest.approx(total / 3, rel=1e-5)


@pytest.mark.parametrize("temperature", [DEFAULT_TEMPERATURE, 1.0, 0.1])
def test_classification_decodes_by_the_annealed_mean(temperature: float) -> None:
    logits = torch.randn(2, Q, 3, 5, generator=torch.Generator().manual_seed(4))
    expected = annealed_mean(logits, temperature)
    torch.testing.assert_close(ClassificationPretext().decode(logits, temperature), expected, rtol=0, atol=0)
    assert torch.equal(ClassificationPretext().decode(logits), annealed_mean(logits, DEFAULT_TEMPERATURE))
    peaked = torch.zeros(1, Q, 1, 1)
    peaked[0, 100] = 100.0  # all the mass on bin 100
    torch.testing.assert_close(ClassificationPretext().decode(peaked)[0, :, 0, 0], ab_bins()[100])


def test_regression_decodes_to_its_output() -> None:
    pred = torch.randn(2, 2, 3, 5, dtype=torch.float64)
    assert torch.equal(RegressionPretext().decode(pred, temperature=0.01), pred)  # the temperature is unused
    half = RegressionPretext().decode(pred.bfloat16())
    assert half.dtype == torch.float32 and torch.equal(half, pred.bfloat16().float())
    with pytest.raises(ValueError, match="pred_ab"):
        RegressionPretext().decode(torch.zeros(2, Q, 3, 5))


def test_network_options_give_each_pretext_its_output_channels() -> None:
    options = {"width": 0.0625}
    assert ClassificationPretext().network_options(options) == options  # Q is every architecture's default
    assert RegressionPretext().network_options(options) == {**options, "num_outputs": 2}
    assert RegressionPretext().network_options(None) == {"num_outputs": 2}
    assert options == {"width": 0.0625}  # not modified
    for pretext in (ClassificationPretext(), RegressionPretext()):
        net = build_model("eccv16", **pretext.network_options(options))
        assert net(torch.zeros(1, 1, 16, 16)).shape == (1, pretext.num_outputs, 4, 4)
    with pytest.raises(ValueError, match=r"num_outputs=2 disagrees with the 'classification' pretext"):
        ClassificationPretext().network_options({"num_outputs": 2})


def test_a_bare_networks_pretext_is_found_by_its_output_channels(restore_registry: None) -> None:
    assert isinstance(pretext_for_outputs(Q), ClassificationPretext)
    assert isinstance(pretext_for_outputs(2), RegressionPretext)
    assert pretext_for_outputs(10) is None

    @register_pretext
    class Other(RegressionPretext):
        name = "other_ab"

    assert build_pretext("other_ab").__class__ is Other
    with pytest.raises(ValueError, match="pretexts regression, other_ab all output 2 channels"):
        pretext_for_outputs(2)


def test_register_pretext_refuses_taken_names_and_bad_outputs(restore_registry: None) -> None:
    class Clash(RegressionPretext):
        name = "classification"

    class NoOutputs(RegressionPretext):
        name = "no_outputs"
        num_outputs = 0

    with pytest.raises(ValueError, match="'classification' is already registered"):
        register_pretext(Clash)
    with pytest.raises(ValueError, match="num_outputs must be a positive integer"):
        register_pretext(NoOutputs)
    assert list(PRETEXTS) == ["classification", "regression"]
    assert register_pretext(RegressionPretext) is RegressionPretext  # registering again is a no-op
    assert issubclass(RegressionPretext, Pretext)


def test_a_new_file_in_the_package_registers_its_pretext(
    restore_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pretext is one new file: dropped beside the built-in ones, it is found without an import line."""
    (tmp_path / "huber_ab.py").write_text(
        "from selfsup_color.pretexts.base import register_pretext\n"
        "from selfsup_color.pretexts.regression import RegressionPretext\n\n\n"
        "@register_pretext\n"
        "class HuberPretext(RegressionPretext):\n"
        "    name = 'huber_ab'\n"
    )
    monkeypatch.setattr(pretexts, "__path__", [*pretexts.__path__, str(tmp_path)])
    assert "huber_ab" not in PRETEXTS
    pretexts.import_pretext_files()
    assert type(build_pretext("huber_ab")).__name__ == "HuberPretext"
    sys.modules.pop("selfsup_color.pretexts.huber_ab")
