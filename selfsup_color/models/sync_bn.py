"""BatchNorm whose statistics span all DDP ranks, on any device and backend (gloo included).

PyTorch's ``SyncBatchNorm`` runs on GPUs only. :class:`GlobalBatchNorm2d` sums each channel's
count, sum and sum of squares over the ranks with one differentiable all-reduce, so the forward
pass and the gradients equal those of one process holding the global batch. It subclasses
``BatchNorm2d`` with the same parameters and buffers: checkpoints are interchangeable.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..core.checks import compute_dtype
from ..distributed import rank_world


def _world() -> int:
    return rank_world()[1]


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks; the gradient is summed too (every rank's loss depends on every input)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` with batch statistics over every rank's batch (plain BatchNorm on one process)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or _world() == 1:
            return super().forward(x)
        self._check_input_dim(x)
        channels = x.shape[1]
        xf = x.to(compute_dtype(x))  # float32 for half precision, float64 stays float64
        count = xf.new_full((1,), x.numel() // channels)
        total = _AllReduceSum.apply(torch.cat((xf.sum((0, 2, 3)), xf.square().sum((0, 2, 3)), count)))
        n = total[-1]
        mean = total[:channels] / n
        var = (total[channels:-1] / n - mean.square()).clamp_min(0.0)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * n / (n - 1).clamp_min(1.0))
        shape = (1, channels, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked += 1
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), momentum)


def _swap(module: nn.Module, old: type[nn.Module], new: type[nn.BatchNorm2d]) -> nn.Module:
    if type(module) is old:
        assert isinstance(module, nn.BatchNorm2d)
        swapped = new(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        swapped.load_state_dict(module.state_dict())
        swapped.train(module.training)
        module = swapped
    for name, child in module.named_children():
        module.add_module(name, _swap(child, old, new))
    return module


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` (in place for children) by :class:`GlobalBatchNorm2d`."""
    return _swap(module, nn.BatchNorm2d, GlobalBatchNorm2d)


def revert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`convert_to_global_batchnorm`."""
    return _swap(module, GlobalBatchNorm2d, nn.BatchNorm2d)
