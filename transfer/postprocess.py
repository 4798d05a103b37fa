"""Preparing a trained network for transfer: BatchNorm absorption and data-dependent rescaling.

The authors prepare their colorization AlexNet in ``train_alexnet/postprocess_model.sh``
(richzhang/colorization): ``resources/batch_norm_absorb.py`` folds each BatchNorm into the convolution
before it, then ``resources/magic_init/magic_init_mod.py`` rescales the layers (Krähenbühl et al. 2016,
"Data-dependent initializations of convolutional neural networks"). Here both work on any
:class:`~selfsup_color.models.ColorizationNet`, over the part of it that computes its taps:

- :func:`absorb_batchnorm`: a BatchNorm (eval statistics, with or without affine parameters) whose input is
  the output of the convolution, transposed convolution or linear layer called just before it is folded
  into that layer (``torch.nn.utils.fuse_conv_bn_weights``) and replaced by ``nn.Identity``; the layer
  gains a bias if it had none. Pairs are found by running the network with forward hooks on its leaf
  modules, not by ``torch.fx`` tracing: the taps go through ``forward_features`` and, for timm backbones,
  ``forward_intermediates``, whose Python control flow tracing does not follow; hooks see the modules
  that really run, in order, for any network. Taps are checked unchanged afterwards. A BatchNorm after
  anything else stays: eccv16's follow a ReLU and are themselves the taps, so folding one into the next
  convolution would change the tap, and is not exact at that convolution's zero-padded border anyway.
- :func:`rescale_layers`: Krähenbühl et al.'s within-layer normalisation (Section 3.1; the step that
  ``magic_init``'s ``initializeLayer`` ends with), layer by layer in forward order on a batch of real
  images: each convolution or linear layer's weights are divided, per output channel, by the standard
  deviation of that channel's output, and its bias set so that the channel's mean is ``mean``; later
  layers see the already rescaled earlier ones. A BatchNorm that could not be absorbed gets its eval
  statistics from the batch, so that it normalises what it now receives.
- :func:`calibrate_gradient_ratios`: what the authors' call (``magic_init_mod.py -l <model> -cs``) does to a
  loaded network: it skips the within-layer step and runs only ``calibrateGradientRatio`` (Section 3.2,
  between-layer): one factor per layer, iterated, so that every layer's ratio
  ``sqrt(mean(grad W ** 2) / mean(W ** 2))`` under a random Gaussian gradient at the deepest tap is the
  same (and the deepest tap's per-channel std moves towards 1). Like ``magic_init``, it needs a network
  without BatchNorms.

:func:`postprocess` applies a mode (:data:`POSTPROCESS`) and returns a record of what it did, which
exported weights keep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from selfsup_color.core.color import rgb_to_lightness
from selfsup_color.data.builtin import BUILTIN_PHOTOS, builtin_photo
from selfsup_color.models import ColorizationNet

Postprocess = Literal["none", "absorb_bn", "rescale", "calibrate"]
"""``none``; ``absorb_bn``: fold BatchNorms; ``rescale``: fold them, then normalise every layer's outputs;
``calibrate``: fold them, then equalise the layers' gradient-to-weight ratios (the authors' ``-cs`` call)."""
POSTPROCESS: tuple[str, ...] = get_args(Postprocess)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
FOLDABLE = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
"""Layers a following BatchNorm folds into, and that :func:`rescale_layers` rescales."""
CALIBRATION = {"photos": "builtin:train", "crops": 32, "size": 96, "seed": 0}
"""The batch :func:`calibration_batch` draws by default (recorded in exported files)."""
CONSTANT_STD = 1e-6
"""A channel whose standard deviation on the batch is at most this is constant: only its mean is set."""


def calibration_batch(crops: int = 32, size: int = 96, seed: int = 0, split: str = "train") -> Tensor:
    """``crops`` RGB crops (uint8, ``crops x 3 x size x size``) of scikit-image's ``builtin`` photos.

    Photo ``i % len(photos)`` of ``split`` (``train``: the batch that calibrates; ``val``: photos it never
    saw), at a position drawn by ``random.Random(seed)``: the same batch on every machine.
    """
    names = BUILTIN_PHOTOS[split]
    photos = [builtin_photo(name) for name in names]
    rng = random.Random(seed)
    batch = []
    for index in range(crops):
        photo = photos[index % len(photos)]
        top = rng.randrange(photo.shape[0] - size + 1)
        left = rng.randrange(photo.shape[1] - size + 1)
        batch.append(np.ascontiguousarray(photo[top : top + size, left : left + size, :3]))
    return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class Call:
    """One call of a leaf module while the taps are computed."""

    name: str
    module: nn.Module
    input: Tensor | None
    output: Any


def leaf_calls(net: ColorizationNet, lightness: Tensor) -> list[Call]:
    """The leaf modules that run (eval mode, no gradients) to compute all taps of ``lightness``, in order."""
    calls: list[Call] = []

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            first = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
            calls.append(Call(name, module, first, output))

        return hook

    hooks = [
        module.register_forward_hook(record(name))
        for name, module in net.named_modules()
        if name and not any(True for _ in module.children())
    ]
    training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net.forward_features(lightness)
    finally:
        net.train(training)
        for hook in hooks:
            hook.remove()
    return calls


def probe_lightness(net: ColorizationNet) -> Tensor:
    """A small deterministic lightness image with structure at every scale (for structural checks)."""
    size = 8 * max(net.tap_strides().values())
    ramp = torch.linspace(0, 1, size)
    pattern = torch.sin(37 * ramp[:, None] * ramp[None, :]) * torch.cos(11 * ramp)[None, :]
    return (50 + 45 * pattern).expand(2, 1, size, size).clone()


def batchnorm_pairs(
    net: ColorizationNet, lightness: Tensor | None = None
) -> tuple[list[tuple[str, str]], list[str]]:
    """``(layer, batchnorm)`` names where the BatchNorm takes the output of the layer called just before it,
    and the names of the other BatchNorms that run for the taps (which cannot be absorbed)."""
    calls = leaf_calls(net, probe_lightness(net) if lightness is None else lightness)
    pairs, kept = [], []
    for before, call in zip([None, *calls], calls, strict=False):
        if not isinstance(call.module, BATCHNORMS):
            continue
        if before is not None and isinstance(before.module, FOLDABLE) and call.input is before.output:
            pairs.append((before.name, call.name))
        else:
            kept.append(call.name)
    return pairs, kept


def fold_batchnorm(layer: nn.Module, norm: nn.Module) -> None:
    """Fold ``norm``'s eval transform into ``layer``'s weight and bias (which it creates if absent)."""
    if norm.running_mean is None:
        raise ValueError(f"{norm} keeps no running statistics: there is nothing fixed to absorb")
    channels = norm.num_features
    weight = norm.weight if norm.weight is not None else torch.ones(channels)
    bias = norm.bias if norm.bias is not None else torch.zeros(channels)
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            fused_w, fused_b = nn.utils.fuse_linear_bn_weights(
                layer.weight, layer.bias, norm.running_mean, norm.running_var, norm.eps, weight, bias
            )
        else:
            if isinstance(layer, TRANSPOSED) and layer.groups != 1:
                raise ValueError(f"cannot fold a BatchNorm into a grouped transposed convolution {layer}")
            fused_w, fused_b = nn.utils.fuse_conv_bn_weights(
                layer.weight,
                layer.bias,
                norm.running_mean,
                norm.running_var,
                norm.eps,
                weight,
                bias,
                transpose=isinstance(layer, TRANSPOSED),
            )
    layer.weight = fused_w
    layer.bias = fused_b


def absorb_batchnorm(net: ColorizationNet) -> dict[str, list]:
    """Fold every BatchNorm that directly follows a layer into it (replacing it by ``nn.Identity``).

    Returns ``{"absorbed": [[layer, batchnorm], ...], "kept": [batchnorm, ...]}``. Raises RuntimeError
    (leaving ``net`` folded) when a tap changed: the layer's output was also used elsewhere.
    """
    probe = probe_lightness(net)
    pairs, kept = batchnorm_pairs(net, probe)
    if not pairs:
        return {"absorbed": [], "kept": kept}
    before = taps_of(net, probe)
    for layer, norm in pairs:
        fold_batchnorm(net.get_submodule(layer), net.get_submodule(norm))
        net.set_submodule(norm, nn.Identity())
    after = taps_of(net, probe)
    for tap, value in before.items():
        if not torch.allclose(after[tap], value, rtol=1e-4, atol=1e-5 * float(value.abs().max())):
            raise RuntimeError(
                f"absorbing BatchNorms {pairs} changed tap {tap!r} of {type(net).__name__}: a layer's output "
                "feeds more than its BatchNorm; use postprocess 'none' for this network"
            )
    return {"absorbed": [list(pair) for pair in pairs], "kept": kept}


def taps_of(net: ColorizationNet, lightness: Tensor) -> dict[str, Tensor]:
    """All taps of ``lightness`` in eval mode, without gradients (the mode restored after)."""
    training = net.training
    net.eval()
    try:
        with torch.no_grad():
            return net.forward_features(lightness)
    finally:
        net.train(training)


def channel_statistics(values: Tensor, channel_dim: int) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) standard deviation over every other dimension, in float64."""
    flat = values.movedim(channel_dim, 0).reshape(values.shape[channel_dim], -1).double()
    return flat.mean(dim=1), flat.std(dim=1, correction=0)


def output_channel_dim(layer: nn.Module) -> int:
    """The output-channel dimension of ``layer``'s outputs (last for linear layers, 1 otherwise)."""
    return -1 if isinstance(layer, nn.Linear) else 1


def scale_output_channels(layer: nn.Module, scale: Tensor) -> None:
    """Multiply output channel ``c`` of ``layer``'s weight by ``scale[c]`` (any conv, grouped too, linear)."""
    weight = layer.weight
    with torch.no_grad():
        if isinstance(layer, TRANSPOSED):
            groups = layer.groups
            view = weight.view(groups, weight.shape[0] // groups, weight.shape[1], *weight.shape[2:])
            factor = scale.view(groups, 1, weight.shape[1], *([1] * (weight.dim() - 2)))
            view.mul_(factor.to(weight.dtype))
        else:
            weight.mul_(scale.view(-1, *([1] * (weight.dim() - 1))).to(weight.dtype))


def rescale_layers(net: ColorizationNet, rgb: Tensor, mean: float = 0.0) -> list[str]:
    """Krähenbühl et al.'s within-layer normalisation of every layer that computes the taps, on ``rgb``.

    In forward order: each convolution / linear layer's output channels get standard deviation 1 and mean
    ``mean`` on the batch (weights divided by the channel's std, bias ``(b - mu) / std + mean``; a constant
    channel keeps its weights; a layer without bias keeps its means); each remaining BatchNorm takes its
    running mean and variance from its input on the batch. One forward pass: hooks rescale each layer as it
    runs and hand the next layers the output the rescaled layer gives. Returns the names of the modules
    changed, in order.
    """
    order: list[str] = []

    def rescale(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
            if name in order:
                raise ValueError(f"module {name!r} runs more than once: its outputs cannot be rescaled")
            order.append(name)
            dim = output_channel_dim(module)
            mu, std = channel_statistics(output, dim)
            scale = torch.where(std > CONSTANT_STD, 1 / std, torch.ones_like(std))
            scale_output_channels(module, scale)
            shape = [1] * output.dim()
            shape[dim] = -1
            if module.bias is None:
                return output * scale.view(shape).to(output.dtype)
            module.bias.copy_(((module.bias.double() - mu) * scale + mean).to(module.bias.dtype))
            return ((output.double() - mu.view(shape)) * scale.view(shape) + mean).to(output.dtype)

        return hook

    def renormalise(name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            if module.running_mean is None:
                return
            order.append(name)
            mu, std = channel_statistics(inputs[0], 1)
            module.running_mean.copy_(mu.to(module.running_mean.dtype))
            module.running_var.copy_(std.square().to(module.running_var.dtype))

        return hook

    hooks = []
    for name, module in net.named_modules():
        if isinstance(module, FOLDABLE):
            hooks.append(module.register_forward_hook(rescale(name)))
        elif isinstance(module, BATCHNORMS):
            hooks.append(module.register_forward_pre_hook(renormalise(name)))
    try:
        taps_of(net, rgb_to_lightness(rgb, check=False))
    finally:
        for hook in hooks:
            hook.remove()
    return order


def gradient_ratios(net: ColorizationNet, lightness: Tensor, generator: torch.Generator) -> dict[str, float]:
    """``sqrt(mean(grad ** 2) / mean(weight ** 2))`` of every layer that computes the taps, for a standard
    Gaussian gradient at the deepest tap (eval mode; ``requires_grad`` flags and ``.grad`` restored)."""
    layers = {c.name: c.module for c in leaf_calls(net, lightness) if isinstance(c.module, FOLDABLE)}
    weights = [layer.weight for layer in layers.values()]
    flags = [w.requires_grad for w in weights]
    training = net.training
    net.eval()
    try:
        for weight in weights:
            weight.requires_grad_(True)
        with torch.enable_grad():
            top = net.forward_features(lightness, [net.tap_names[-1]])[net.tap_names[-1]]
            noise = torch.randn(top.shape, generator=generator).to(top)
            grads = torch.autograd.grad(top, weights, noise)
    finally:
        net.train(training)
        for weight, flag in zip(weights, flags, strict=True):
            weight.requires_grad_(flag)
    return {
        name: float((grad.double().square().mean() / layer.weight.detach().double().square().mean()).sqrt())
        for (name, layer), grad in zip(layers.items(), grads, strict=True)
    }


def calibrate_gradient_ratios(
    net: ColorizationNet, rgb: Tensor, iterations: int = 10, tolerance: float = 0.01, seed: int = 0
) -> list[dict[str, float]]:
    """Krähenbühl et al.'s between-layer scale calibration (``magic_init``'s ``calibrateGradientRatio``).

    Each round: the layers' :func:`gradient_ratios` ``r_k``; the target ``t`` is their geometric mean times
    ``output_std ** (1 / layers)`` (``output_std``: the deepest tap's mean per-channel standard deviation);
    then, in forward order, each layer's bias is multiplied by how much the mean absolute value of its
    input changed since the last round, and its weight and bias by ``sqrt(r_k / t)``. For a positively
    homogeneous network (convolutions, ReLUs, pooling) one round equalises the ratios and takes
    ``output_std`` to its square root (towards 1); each round draws a new gradient, so the ratios keep
    a few percent of noise. Stops when every
    ``|log(r_k / t)| < tolerance`` (``magic_init``: ``|log r_k / log t - 1| < 0.01``, which depends on the
    gradient's units). ValueError when BatchNorms remain (fold them first). Returns each round's ratios.
    """
    lightness = rgb_to_lightness(rgb, check=False)
    remaining = [c.name for c in leaf_calls(net, lightness) if isinstance(c.module, BATCHNORMS)]
    if remaining:
        raise ValueError(
            f"BatchNorms {remaining} remain: the gradient-ratio calibration needs a network without"
        )
    generator = torch.Generator().manual_seed(seed)
    input_scale: dict[str, float] = {}
    history: list[dict[str, float]] = []

    def scales_and_output(factors: dict[str, float] | None) -> float:
        """Record each layer's mean |input| (first rescaling it when ``factors``); the output's std."""

        def pre_hook(name: str):
            def hook(module: nn.Module, inputs: tuple) -> None:
                current = float(inputs[0].abs().mean())
                if factors is not None:
                    with torch.no_grad():
                        if module.bias is not None:
                            module.bias.mul_(current / input_scale[name] * factors[name])
                        module.weight.mul_(factors[name])
                input_scale[name] = current

            return hook

        hooks = [
            module.register_forward_pre_hook(pre_hook(name))
            for name, module in net.named_modules()
            if isinstance(module, FOLDABLE)
        ]
        try:
            top = taps_of(net, lightness)[net.tap_names[-1]]
        finally:
            for hook in hooks:
                hook.remove()
        return float(channel_statistics(top, 1)[1].mean())

    output_std = scales_and_output(None)
    for _ in range(iterations):
        ratios = gradient_ratios(net, lightness, generator)
        history.append(ratios)
        logs = torch.tensor(list(ratios.values()), dtype=torch.float64).log()
        target = float((logs.mean() + np.log(output_std) / len(ratios)).exp())
        if bool(((logs - np.log(target)).abs() < tolerance).all()):
            break
        output_std = scales_and_output({name: float(np.sqrt(r / target)) for name, r in ratios.items()})
    return history


def postprocess(
    net: ColorizationNet, mode: str, rgb: Tensor | None = None, mean: float = 0.0
) -> dict[str, Any]:
    """Apply ``mode`` (:data:`POSTPROCESS`) to ``net`` in place; a record of what was done.

    ``rescale`` and ``calibrate`` absorb the BatchNorms first (as ``postprocess_model.sh`` does), then run
    :func:`rescale_layers` or :func:`calibrate_gradient_ratios` on ``rgb`` (default:
    :func:`calibration_batch`).
    """
    if mode not in POSTPROCESS:
        raise ValueError(f"postprocess must be one of {POSTPROCESS}, got {mode!r}")
    record: dict[str, Any] = {"mode": mode}
    if mode == "none":
        return record
    record |= absorb_batchnorm(net)
    if mode == "none" or mode == "absorb_bn":
        return record
    batch = calibration_batch() if rgb is None else rgb
    record["calibration"] = dict(CALIBRATION) if rgb is None else {"photos": "given", "crops": len(rgb)}
    if mode == "rescale":
        record["rescaled"] = rescale_layers(net, batch, mean)
        record["mean"] = mean
    else:
        history = calibrate_gradient_ratios(net, batch)
        record["rounds"] = len(history)
        record["ratios"] = history[-1]
    return record
