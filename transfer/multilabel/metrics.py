"""Average precision per class and its mean, the way Krähenbühl's VOC classification protocol scores.

The protocol (philkr/voc-classification ``src/train_cls.py``, used by richzhang/colorization
``feature_learning_tests/run_classification_test_conv1.sh``) scores each class with scikit-learn's
``average_precision_score`` on the (image, class) pairs that are not ignored, after subtracting 1e-5
from the scores of positives "to make AP work for tied scores". That is the non-interpolated AP
(not VOC07's 11-point one): the sum over score thresholds of the recall gained times the precision
there, with a positive tied with a negative ranked after it (pessimistic ties).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

IGNORED = -1
"""Target value of an ignored (image, class) pair: VOC's "difficult only" (0 in its ground truth)."""


def average_precision(scores: Tensor, targets: Tensor) -> Tensor:
    """AP of every class: float64 K, NaN for a class without a positive.

    Args:
        scores: N x K, higher means more likely present (logits, probabilities: any monotone score).
        targets: N x K, 1 present, 0 absent, :data:`IGNORED` left out of that class's ranking.

    Ties are broken pessimistically: at equal scores negatives rank first, and tied positives count
    as one threshold, as scikit-learn does after the protocol's ``- 1e-5 * target`` (exactly, without
    the epsilon's effect on scores closer than 1e-5).
    """
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"scores and targets must both be N x K, got {tuple(scores.shape)}, {tuple(targets.shape)}"
        )
    bad = ~((targets == 0) | (targets == 1) | (targets == IGNORED))
    if bad.any():
        raise ValueError(f"targets must be 0, 1 or {IGNORED} (ignored), got {targets[bad][0].item()}")
    return torch.tensor(
        [class_ap(scores[:, k], targets[:, k]) for k in range(scores.shape[1])], dtype=torch.float64
    )


def class_ap(scores: Tensor, targets: Tensor) -> float:
    """AP of one class (see :func:`average_precision`); NaN without a positive."""
    kept = targets != IGNORED
    score = scores[kept].double()
    positive = targets[kept] == 1
    total = int(positive.sum())
    if total == 0:
        return math.nan
    # rank by score (descending), negatives before positives at equal scores
    order = torch.argsort(positive.to(torch.int8), stable=True)
    order = order[torch.argsort(score[order], descending=True, stable=True)]
    ranked_score, ranked_positive = score[order], positive[order]
    true_positives = torch.cumsum(ranked_positive, 0).double()
    seen = torch.arange(1, len(order) + 1, dtype=torch.float64)
    # a threshold ends where (score, positive) changes: tied positives form one threshold
    ends = torch.ones(len(order), dtype=torch.bool)
    ends[:-1] = (ranked_score[1:] != ranked_score[:-1]) | (ranked_positive[1:] != ranked_positive[:-1])
    gained = torch.diff(true_positives[ends], prepend=torch.zeros(1, dtype=torch.float64))
    precision = true_positives[ends] / seen[ends]
    return float((gained * precision).sum() / total)


def mean_average_precision(scores: Tensor, targets: Tensor) -> tuple[float, int]:
    """(mAP over the classes with at least one positive, how many such classes)."""
    ap = average_precision(scores, targets)
    scored = ap[~torch.isnan(ap)]
    return (float(scored.mean()) if len(scored) else math.nan), len(scored)
