"""The kNN probe: cosine similarity to the training features, k nearest, temperature-weighted votes.

As in Wu et al. (2018) and later self-supervised work: features are L2-normalised; each query's k
most similar training items vote for their class with weight exp(similarity / temperature). One
score per tap; cheap enough to run during pretraining (:class:`~.callback.KNNProbeCallback`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import functional as F

from selfsup_color.distributed import rank_world

DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07


def knn_scores(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = DEFAULT_K,
    temperature: float = DEFAULT_TEMPERATURE,
    chunk: int = 1024,
) -> Tensor:
    """Class scores (M x C) of ``queries`` (M x D) from their ``k`` most cosine-similar ``bank`` rows."""
    if k < 1 or temperature <= 0:
        raise ValueError(f"need k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    if bank.shape[0] == 0:
        raise ValueError("the kNN bank is empty: no training features")
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, bank.shape[0])
    scores = []
    for block in F.normalize(queries.float(), dim=1).split(chunk):
        similarity, index = (block @ bank.t()).topk(k, dim=1)
        votes = torch.zeros(block.shape[0], num_classes, device=block.device)
        scores.append(votes.scatter_add_(1, bank_labels[index], (similarity / temperature).exp()))
    return torch.cat(scores) if scores else torch.zeros(0, num_classes, device=bank.device)


def topk_accuracy(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Fraction of rows whose label is among the ``k`` best scores, for each k (``top1``, ``top5``)."""
    out = {}
    for k in ks:
        best = scores.topk(min(k, scores.shape[1]), dim=1).indices
        hits = (best == labels[:, None]).any(dim=1).float()
        out[f"top{k}"] = hits.mean().item() if len(labels) else 0.0
    return out


def gather_rows(rows: Tensor) -> Tensor:
    """Concatenate every rank's ``rows`` (any row counts) along dim 0; ``rows`` itself without DDP."""
    if rank_world()[1] == 1:
        return rows
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    longest = int(max(c.item() for c in counts))
    padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[: rows.shape[0]] = rows
    parts = [torch.zeros_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[: int(c.item())] for part, c in zip(parts, counts, strict=True)])


def knn_probe(
    bank: dict[str, Tensor],
    bank_labels: Tensor,
    queries: dict[str, Tensor],
    query_labels: Tensor,
    num_classes: int,
    k: int = DEFAULT_K,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, dict[str, float]]:
    """Top-1/top-5 per tap of the queries' kNN classification against the bank (all ranks' rows)."""
    labels = gather_rows(bank_labels)
    truth = gather_rows(query_labels)
    out = {}
    for name in bank:
        scores = knn_scores(
            gather_rows(bank[name]), labels, gather_rows(queries[name]), num_classes, k, temperature
        )
        out[name] = topk_accuracy(scores, truth)
    return out
