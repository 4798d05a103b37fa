"""The encoder every transfer evaluation sees: a colorization network's named feature taps on L only.

Sources (:class:`EncoderConfig`):

- ``ckpt_path``: a pretraining checkpoint (Lightning ``.ckpt`` written by ``selfsup-color fit``) or
  exported weights (:func:`export_encoder`). Loading is strict: every key and shape of the network
  must match, or a :class:`~selfsup_color.checkpoints.KeyReport` names what is missing, unexpected
  or of another shape. Files are read with ``torch.load(weights_only=True)``.
- ``init="random"``: the same architecture, randomly initialised (the baseline every table shows).
  Its architecture comes from ``arch``/``arch_options`` or, if given, from the checkpoint.

:class:`LightnessEncoder` wraps the network: RGB in (uint8 or [0, 1] floats), CIE L computed on the
device, feature maps of the requested taps out. It can freeze the network up to a tap; frozen parts
stay in eval mode (BatchNorm statistics frozen too) whatever ``train()`` is called with.

``postprocess`` (:mod:`transfer.postprocess`) prepares the network after loading, random baselines too:
BatchNorm absorption, or absorption then data-dependent rescaling on a fixed batch of builtin photos.
Exported weights record what was done to them and load into the same (BatchNorm-free) structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from selfsup_color.checkpoints import KeyReport, load_state_strict, read_checkpoint
from selfsup_color.core.color import rgb_to_lightness
from selfsup_color.models import ColorizationNet, build_model
from selfsup_color.pretexts import build_pretext

from .postprocess import POSTPROCESS, Postprocess, absorb_batchnorm, postprocess

EXPORT_FORMAT = "selfsup-color-encoder/1"
"""The ``format`` field of exported encoder weights."""
NET_PREFIX = "net."
"""Where the network's weights live in a pretraining checkpoint's ``state_dict``."""


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder to evaluate.

    Args:
        ckpt_path: pretraining ``.ckpt`` or exported ``.pt`` weights; None with ``init="random"``.
        init: ``"pretrained"`` (load the checkpoint's weights) or ``"random"`` (same architecture,
            new random weights: the baseline).
        arch, arch_options: the architecture when there is no checkpoint (``build_model`` names).
            With a checkpoint they must be left unset or agree with it.
        seed: seeds the random initialisation.
        postprocess: after loading, ``"absorb_bn"`` folds BatchNorms into the layers before them;
            ``"rescale"`` also rescales every layer to unit-variance outputs on builtin photos
            (Krähenbühl et al. 2016, within-layer); ``"calibrate"`` instead equalises the layers'
            gradient-to-weight ratios (between-layer, the authors' ``magic_init -cs`` call; needs a
            network whose BatchNorms all fold). Applies to the random baseline too.
    """

    ckpt_path: str | None = None
    init: Literal["pretrained", "random"] = "pretrained"
    arch: str | None = None
    arch_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    postprocess: Postprocess = "none"

    def __post_init__(self) -> None:
        if self.postprocess not in POSTPROCESS:
            raise ValueError(f"encoder.postprocess must be one of {POSTPROCESS}, got {self.postprocess!r}")
        if self.init not in ("pretrained", "random"):
            raise ValueError(f"encoder.init must be 'pretrained' or 'random', got {self.init!r}")
        if self.init == "pretrained" and not self.ckpt_path:
            raise ValueError("encoder.init='pretrained' needs encoder.ckpt_path (a .ckpt or exported .pt)")
        if not self.ckpt_path and not self.arch:
            raise ValueError("a random encoder without a checkpoint needs encoder.arch (e.g. 'eccv16')")

    @property
    def label(self) -> str:
        """A short name for tables: ``run/last.ckpt`` (or the file's name), or ``random init (...)``."""
        suffix = "" if self.postprocess == "none" else f", {self.postprocess}"
        if self.init == "random":
            source = self.arch or checkpoint_name(str(self.ckpt_path)) + " architecture"
            return f"random init ({source}{suffix})"
        return checkpoint_name(str(self.ckpt_path)) + (f" ({self.postprocess})" if suffix else "")


def checkpoint_name(path: str) -> str:
    """``<run>/<file>`` for a file in a run's ``checkpoints/`` folder, else the file's name."""
    file = Path(path)
    return f"{file.parent.parent.name}/{file.name}" if file.parent.name == "checkpoints" else file.name


@dataclass(frozen=True)
class LoadedWeights:
    """A network's architecture and weights as found in a file."""

    arch: str
    arch_options: dict[str, Any]
    state_dict: dict[str, Tensor]
    source: str
    step: int | None = None
    postprocess: dict[str, Any] | None = None
    """What :func:`~transfer.postprocess.postprocess` did to exported weights (None: nothing)."""


def read_weights(path: str | Path) -> LoadedWeights:
    """The network weights in a pretraining checkpoint or exported file; ValueError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"cannot read encoder checkpoint {path} ({type(error).__name__}: {error})"
        ) from error
    if isinstance(data, dict) and data.get("format") == EXPORT_FORMAT:
        return LoadedWeights(
            data["arch"],
            dict(data["arch_options"]),
            data["state_dict"],
            str(path),
            data.get("step"),
            data.get("postprocess"),
        )
    ckpt = read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters", {})
    if "arch" not in hparams:
        raise ValueError(
            f"{path} is not a selfsup-color pretraining checkpoint (no 'arch' hyperparameter); "
            f"pass a .ckpt from `selfsup-color fit` or weights from `selfsup-transfer export`"
        )
    state = {k[len(NET_PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(NET_PREFIX)}
    if not state:
        raise ValueError(f"{path} holds no network weights (no '{NET_PREFIX}*' keys in its state_dict)")
    return LoadedWeights(
        hparams["arch"],
        build_pretext(hparams.get("loss", "classification")).network_options(hparams.get("arch_options")),
        state,
        str(path),
        ckpt.get("global_step"),
    )


def load_network(config: EncoderConfig) -> tuple[ColorizationNet, KeyReport | None]:
    """The configured network and, when weights were loaded, their (clean) key report."""
    weights = read_weights(config.ckpt_path) if config.ckpt_path else None
    arch = weights.arch if weights else str(config.arch)
    options = dict(weights.arch_options) if weights else dict(config.arch_options)
    if (
        weights
        and config.arch
        and (config.arch, config.arch_options) != (arch, options | config.arch_options)
    ):
        raise ValueError(
            f"encoder.arch={config.arch!r} with options {config.arch_options} disagrees with "
            f"{weights.source}, which holds {arch!r} with options {options}; leave them unset"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = build_model(arch, **options)
    if config.init == "random" or weights is None:
        rank_zero_info(f"Encoder: {arch} {options}, random init (seed {config.seed})")
        prepare(net, config.postprocess)
        return net, None
    if weights.postprocess and weights.postprocess.get("absorbed"):
        absorb_batchnorm(net)  # the file's structure: BatchNorms folded away
    report = load_state_strict(net, net.upgrade_state_dict(weights.state_dict), weights.source)
    rank_zero_info(f"Encoder: {arch} {options} from {weights.source} (step {weights.step}): {report}")
    prepare(net, config.postprocess)
    return net, report


def prepare(net: ColorizationNet, mode: str) -> dict[str, Any]:
    """:func:`~transfer.postprocess.postprocess` with its outcome logged."""
    record = postprocess(net, mode)
    if mode != "none":
        rank_zero_info(
            f"Encoder post-processing {mode}: {len(record['absorbed'])} BatchNorms absorbed, "
            f"{len(record['kept'])} kept {record['kept']}"
            + (f", {len(record['rescaled'])} layers rescaled" if "rescaled" in record else "")
            + (f", gradient ratios calibrated in {record['rounds']} rounds" if "rounds" in record else "")
        )
    return record


def save_weights(
    net: ColorizationNet, arch: str, arch_options: dict[str, Any], out: str | Path, **info: Any
) -> Path:
    """Write ``net``'s weights in the exported format that :class:`EncoderConfig` reads."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"format": EXPORT_FORMAT, "arch": arch, "arch_options": dict(arch_options)}
    torch.save({**record, "state_dict": net.state_dict(), **info}, out)
    return out


def export_encoder(checkpoint: str | Path, out: str | Path, postprocess: Postprocess = "none") -> Path:
    """Write the network of a pretraining checkpoint as standalone weights (no optimiser, no prior),
    after ``postprocess`` (see :class:`EncoderConfig`); the file records what was done."""
    net, _ = load_network(EncoderConfig(ckpt_path=str(checkpoint)))  # strict: refuses a broken file
    weights = read_weights(checkpoint)
    previous = weights.postprocess or {}
    record = prepare(net, postprocess)
    absorbed = [*previous.get("absorbed", []), *record.get("absorbed", [])]
    if absorbed:  # how load_network knows the file's structure
        record["absorbed"] = absorbed
    if previous:
        record["previous"] = previous
    return save_weights(
        net,
        weights.arch,
        weights.arch_options,
        out,
        step=weights.step,
        source=str(checkpoint),
        postprocess=record,
    )


def evaluating(net: nn.Module) -> dict[nn.Module, bool]:
    """Put ``net`` in eval mode and return every module's previous mode (for :func:`restore_modes`).

    Module by module, because a frozen part may be in eval mode inside a training network.
    """
    modes = {module: module.training for module in net.modules()}
    net.eval()
    return modes


def restore_modes(modes: dict[nn.Module, bool]) -> None:
    for module, training in modes.items():
        module.training = training


def parameters_up_to(net: ColorizationNet, tap: str) -> set[str]:
    """Names of the parameters that the feature map ``tap`` depends on (found by autograd, any net)."""
    params = dict(net.named_parameters())
    size = 8 * max(net.tap_strides().values())
    flags = {name: p.requires_grad for name, p in params.items()}
    modes = evaluating(net)
    try:
        for p in params.values():
            p.requires_grad_(True)
        with torch.enable_grad():
            feature = net.forward_features(torch.full((1, 1, size, size), 50.0), [tap])[tap]
            grads = torch.autograd.grad(feature.sum(), list(params.values()), allow_unused=True)
    finally:
        restore_modes(modes)
        for name, p in params.items():
            p.requires_grad_(flags[name])
    return {name for name, grad in zip(params, grads, strict=True) if grad is not None}


def modules_up_to(net: ColorizationNet, tap: str) -> set[str]:
    """Names of the modules that run to compute the feature map ``tap`` (found with forward hooks)."""
    ran: set[str] = set()
    hooks = [
        module.register_forward_hook(lambda *_, name=name: ran.add(name))
        for name, module in net.named_modules()
    ]
    modes = evaluating(net)
    try:
        with torch.no_grad():
            size = 8 * max(net.tap_strides().values())
            net.forward_features(torch.full((1, 1, size, size), 50.0), [tap])
    finally:
        restore_modes(modes)
        for hook in hooks:
            hook.remove()
    ran.discard("")  # the network itself
    return ran


class LightnessEncoder(nn.Module):
    """RGB batch in, the named feature maps of its lightness out: how transfer heads see a network.

    Args:
        net: a :class:`~selfsup_color.models.ColorizationNet`.
        freeze_at: freeze every parameter that the tap ``freeze_at`` depends on (that part also stays
            in eval mode); ``"all"`` freezes the whole network, None nothing.
    """

    def __init__(self, net: ColorizationNet, freeze_at: str | None = "all") -> None:
        super().__init__()
        self.net = net
        self.tap_names: tuple[str, ...] = tuple(net.tap_names)
        if freeze_at is not None and freeze_at != "all":
            net.select_taps([freeze_at])  # KeyError naming the valid taps
        self.freeze_at = freeze_at
        frozen = (
            set()
            if freeze_at is None
            else {n for n, _ in net.named_parameters()}
            if freeze_at == "all"
            else parameters_up_to(net, freeze_at)
        )
        if freeze_at != "all":  # the colorization head feeds no tap: never trained here (and DDP needs
            used = parameters_up_to(net, net.tap_names[-1])  # every trainable parameter to get a gradient)
            frozen |= {n for n, _ in net.named_parameters() if n not in used}
        for name, param in net.named_parameters():
            param.requires_grad_(name not in frozen)
        if freeze_at is None:
            before: set[str] = set()
        elif freeze_at == "all":
            before = {name for name, _ in net.named_modules()}
        else:
            before = modules_up_to(net, freeze_at)
        self._frozen_modules = [
            module
            for name, module in net.named_modules()
            if name in before  # parameter-free layers too, e.g. BatchNorm without affine parameters
            or (
                any(True for _ in module.parameters(recurse=False))
                and all(not p.requires_grad for p in module.parameters(recurse=False))
            )
        ]
        self.train(self.training)

    def train(self, mode: bool = True) -> LightnessEncoder:
        super().train(mode)
        for module in self._frozen_modules if hasattr(self, "_frozen_modules") else []:
            module.eval()
        return self

    def freeze_beyond(self, taps: Sequence[str]) -> None:
        """Stop training the parameters none of ``taps`` depends on (deeper blocks a head never reads).

        DDP needs every trainable parameter to get a gradient, and SGD would only decay unused ones.
        """
        deepest = self.net.select_taps(list(taps))[-1]
        used = parameters_up_to(self.net, deepest)
        for name, param in self.net.named_parameters():
            if name not in used:
                param.requires_grad_(False)

    @property
    def fully_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.net.parameters())

    def tap_channels(self) -> dict[str, int]:
        return self.net.tap_channels()

    def tap_strides(self) -> dict[str, int]:
        return self.net.tap_strides()

    def forward(self, rgb: Tensor, taps: Sequence[str] | str | None = None) -> dict[str, Tensor]:
        """Feature maps of ``taps`` (all if None) for ``rgb``: N x 3 x H x W uint8, or floats in [0, 1]."""
        if self.fully_frozen:
            with torch.no_grad():
                return lightness_features(self.net, rgb, taps)
        return lightness_features(self.net, rgb, taps)


def lightness_features(net: Any, rgb: Tensor, taps: Sequence[str] | str | None = None) -> dict[str, Tensor]:
    """The taps of ``net`` for an RGB batch: its lightness as pretraining computes it, through the net."""
    return net.forward_features(rgb_to_lightness(rgb, check=False), taps)


def build_encoder(config: EncoderConfig, freeze_at: str | None = "all") -> LightnessEncoder:
    """:func:`load_network` wrapped in a :class:`LightnessEncoder`."""
    net, _ = load_network(config)
    return LightnessEncoder(net, freeze_at)
