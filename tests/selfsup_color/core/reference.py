"""Independent brute-force references for the encoding tests (numpy, float64, all 313 bins)."""

from __future__ import annotations

import numpy as np
import torch


def brute_force_knn(ab: np.ndarray, bins: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """P x 2 points -> (P x k indices, P x k squared distances), ties broken by bin index."""
    d2 = ((ab[:, None, :] - bins[None]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")
    return order[:, :k], np.take_along_axis(d2, order, axis=1)


def brute_force_soft_encode(ab: np.ndarray, bins: np.ndarray, k: int = 10, sigma: float = 5.0) -> np.ndarray:
    """P x 2 points -> P x Q dense soft targets, plus nothing else."""
    index, d2 = brute_force_knn(ab, bins, k)
    weight = np.exp(-(d2[:, :k] - d2[:, :1]) / (2 * sigma**2))
    weight /= weight.sum(axis=1, keepdims=True)
    dense = np.zeros((len(ab), len(bins)))
    np.put_along_axis(dense, index, weight, axis=1)
    return dense


def near_ties(ab: np.ndarray, bins: np.ndarray, k: int, tol: float = 1e-3) -> np.ndarray:
    """Points whose k-th and (k+1)-th nearest bins are within ``tol`` (squared distance) of a tie."""
    d2 = np.sort(((ab[:, None, :] - bins[None]) ** 2).sum(-1), axis=1)
    return (d2[:, k] - d2[:, k - 1]) < tol


def to_points(ab: torch.Tensor) -> np.ndarray:
    """N x 2 x H x W -> P x 2 (float64 numpy), pixel order N, H, W."""
    return ab.permute(0, 2, 3, 1).reshape(-1, 2).double().numpy()


def dense_points(dense: torch.Tensor) -> np.ndarray:
    """N x Q x H x W -> P x Q (float64 numpy)."""
    return dense.permute(0, 2, 3, 1).reshape(-1, dense.shape[1]).double().numpy()
