"""The pretext interface and its registry: what a colorization pretext task defines, in one place.

A pretext says how many channels the network outputs, the loss of those outputs against the
prepared targets, how they decode to ab and its default class rebalancing (the stride is the
network's: ``ColorizationNet.output_stride``). The Lightning module, transfer and colorize ask it
instead of branching on its name; the maths stays in the pure functions of
:mod:`selfsup_color.core`, which a pretext only composes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from torch import Tensor

from ..core.bins import Q
from ..core.decode import DEFAULT_TEMPERATURE
from ..core.loss import Reduction
from ..core.targets import ColorizationTargets


class Pretext(ABC):
    """A colorization pretext task: the network's outputs, their loss and their decoding to ab.

    Subclasses set the class attributes and implement :meth:`loss` and :meth:`decode`;
    :func:`register_pretext` makes one available as ``--model.loss <name>``.

    Attributes:
        name: the registry key, saved as the ``loss`` hyperparameter of checkpoints.
        num_outputs: channels of the network's output (N x num_outputs x h x w, at the network's
            ``output_stride``, where the module also builds the targets).
        default_lam: class-rebalancing strength when ``lam`` is not given: 0.5 rebalances as the
            paper, 1 weighs every pixel 1. The ab prior is estimated whatever it is (the rebalanced
            AuC needs it).

    Examples:
        >>> import torch
        >>> pretext = build_pretext("regression")
        >>> pretext.decode(torch.zeros(1, 2, 8, 8)).shape
        torch.Size([1, 2, 8, 8])
    """

    name: ClassVar[str]
    num_outputs: ClassVar[int]
    default_lam: ClassVar[float] = 1.0

    @abstractmethod
    def loss(self, output: Tensor, targets: ColorizationTargets, reduction: Reduction = "batch") -> Tensor:
        """The loss of the network's ``output`` against ``targets``, weighted by their ``pixel_weight``
        and ``nongray`` mask and reduced by ``reduction`` (see :mod:`selfsup_color.core.loss`)."""

    @abstractmethod
    def decode(self, output: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
        """Predicted ab, N x 2 x h x w in float32 or wider, from the network's ``output``.

        ``temperature`` is the annealed mean's; pretexts that predict ab directly ignore it.
        """

    def network_options(self, arch_options: Mapping[str, Any] | None) -> dict[str, Any]:
        """``arch_options`` plus this pretext's ``num_outputs``.

        Left implicit at Q (every architecture's default), so records of classification networks keep
        the options the user gave. Raises ValueError if ``arch_options`` sets another ``num_outputs``.
        """
        options = dict(arch_options or {})
        given = options.get("num_outputs", self.num_outputs)
        if given != self.num_outputs:
            raise ValueError(
                f"arch_options.num_outputs={given} disagrees with the {self.name!r} pretext, whose network "
                f"outputs {self.num_outputs} channels; leave num_outputs unset"
            )
        if self.num_outputs != Q:
            options["num_outputs"] = self.num_outputs
        return options


PRETEXTS: dict[str, type[Pretext]] = {}
"""Pretext name (the ``loss`` hyperparameter) -> pretext class."""

P = TypeVar("P", bound=type[Pretext])


def register_pretext(cls: P) -> P:
    """Class decorator: make ``cls`` available as ``loss=cls.name``; ValueError if the name is taken."""
    taken = PRETEXTS.get(cls.name)
    if taken is not None and taken is not cls:
        raise ValueError(f"a pretext named {cls.name!r} is already registered ({taken.__name__})")
    if not isinstance(cls.num_outputs, int) or cls.num_outputs < 1:
        raise ValueError(f"{cls.__name__}.num_outputs must be a positive integer, got {cls.num_outputs!r}")
    PRETEXTS[cls.name] = cls
    return cls


def build_pretext(name: str) -> Pretext:
    """The pretext registered as ``name``; ValueError listing the registered names if unknown."""
    if name not in PRETEXTS:
        raise ValueError(
            f"loss must be one of the registered pretexts ({', '.join(PRETEXTS)}), got {name!r}; "
            "a new pretext is registered with selfsup_color.pretexts.register_pretext"
        )
    return PRETEXTS[name]()


def pretext_for_outputs(num_outputs: int) -> Pretext | None:
    """The registered pretext whose network outputs ``num_outputs`` channels, None if there is none.

    For networks that carry no pretext (a bare ``ColorizationNet``); raises ValueError when several
    pretexts output that many channels.
    """
    matches = [cls for cls in PRETEXTS.values() if cls.num_outputs == num_outputs]
    if len(matches) > 1:
        names = ", ".join(cls.name for cls in matches)
        raise ValueError(
            f"pretexts {names} all output {num_outputs} channels: decode with the pretext itself "
            "(pass the ColorizationModule, which has one, rather than its bare network)"
        )
    return matches[0]() if matches else None
