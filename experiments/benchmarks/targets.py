"""Target preparation: ours (on the device) against the reference CPU pipeline, on the same batch.

The reference is what the original training code's Python layers do per batch
(``caffe_traininglayers.py`` of Zhang et al.), step by step: ``skimage.color.rgb2lab`` per image into
the float32 N x 3 x H x W blob, ab subsampled by 4, ``NNEncode``: a
``sklearn.neighbors.NearestNeighbors(n_neighbors=10, algorithm="ball_tree")`` query per pixel,
Gaussian weights (sigma 5) scattered into a dense, pre-allocated P x Q float64 block and copied into
the N x Q x h x w float32 blob; ``PriorBoost``: the rebalancing weight of each pixel's argmax bin over
that dense blob; ``NonGrayMask``. A second, leaner baseline stops at the sparse k-NN output (no dense
block, nearest bin from the k-NN), which is what our pipeline returns; both ratios are printed. Ours
is :class:`selfsup_color.TargetBuilder`, eager and under ``torch.compile``.

Run: ``python -m experiments.benchmarks.targets [--batch 40 --size 176 --repeat 10 --stable_sort]``
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from experiments.benchmarks.common import describe_machine, photo_crops, time_call
from selfsup_color import ColorizationTargets, Q, TargetBuilder, ab_bins, rebalance_weights, soft_encode
from selfsup_color.command import command_parser, parse
from selfsup_color.core import knn
from selfsup_color.core.encode import gaussian_weights
from selfsup_color.core.targets import soft_targets


def skimage_lab(images: np.ndarray) -> np.ndarray:
    """``skimage.color.rgb2lab`` per image of N x H x W x 3 uint8 images (float64, N x H x W x 3)."""
    from skimage import color

    return np.stack([color.rgb2lab(image) for image in images])


def knn_soft_targets(knn: object, points: np.ndarray, sigma: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """The reference's sparse soft encoding of P x 2 ab points: k-NN bins and their Gaussian weights."""
    dist, index = knn.kneighbors(points)  # type: ignore[attr-defined]
    weight = np.exp(-(dist**2) / (2 * sigma**2))
    return index, weight / weight.sum(axis=1, keepdims=True)


def lean_reference(images: np.ndarray, class_weights: np.ndarray, knn: object) -> dict[str, np.ndarray]:
    """The reference's maths with sparse outputs only, on N x H x W x 3 uint8 images."""
    lab = skimage_lab(images)
    ab = lab[:, ::4, ::4, 1:]
    index, weight = knn_soft_targets(knn, ab.reshape(-1, 2))
    nongray = (np.abs(ab) > 5).reshape(len(images), -1).any(axis=1)
    return {
        "lightness": lab[..., 0],
        "ab": ab,
        "index": index,
        "weight": weight,
        "pixel_weight": class_weights[index[:, 0]],
        "nongray": nongray,
    }


class OriginalPipeline:
    """The original training layers' per-batch work on N x H x W x 3 uint8 images, in their order.

    BGR2Lab (per image here, as the issue describes it) into a float32 N x 3 x H x W blob; the
    stride-4 subsampling of ab; NNEnc: flatten to P x 2, k-NN, Gaussian weights, scattered into a
    P x Q float64 block that is allocated once and zeroed per batch, copied into an N x Q x h x w
    float32 blob; PriorBoost: class weight of the argmax bin of that blob; NonGrayMask on ab.
    """

    def __init__(self, class_weights: np.ndarray, knn: object) -> None:
        self.class_weights, self.knn = class_weights, knn
        self.block: np.ndarray | None = None

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        lab = skimage_lab(images).transpose(0, 3, 1, 2).astype(np.float32)
        ab = lab[:, 1:, ::4, ::4]
        n, _, h, w = ab.shape
        points = ab.transpose(0, 2, 3, 1).reshape(-1, 2)
        if self.block is None or self.block.shape[0] != len(points):
            self.block = np.zeros((len(points), Q))
        else:
            self.block[...] = 0
        index, weight = knn_soft_targets(self.knn, points)
        self.block[np.arange(len(points))[:, None], index] = weight
        targets = np.empty((n, Q, h, w), np.float32)
        targets[...] = self.block.reshape(n, h, w, Q).transpose(0, 3, 1, 2)
        pixel_weight = self.class_weights[np.argmax(targets, axis=1)][:, None].astype(np.float32)
        nongray = (np.abs(ab) > 5).sum(axis=(1, 2, 3)) > 0
        return {
            "lightness": lab[:, 0],
            "ab": ab.transpose(0, 2, 3, 1),
            "dense": targets.transpose(0, 2, 3, 1).reshape(-1, Q),
            "pixel_weight": pixel_weight.reshape(-1),
            "nongray": nongray,
        }


def dense(index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """P x k sparse targets -> P x Q dense."""
    out = np.zeros((index.shape[0], Q))
    np.put_along_axis(out, index, weight, axis=1)
    return out


def dense_targets(ref: dict[str, np.ndarray]) -> np.ndarray:
    """P x Q soft targets of a baseline's outputs: the original's dense blob, or the lean k-NN made dense."""
    return ref["dense"] if "dense" in ref else dense(ref["index"], ref["weight"])


def compare(ref: dict[str, np.ndarray], ours: ColorizationTargets) -> str:
    """How far our outputs are from the reference's, as one line."""
    k = ours.targets.index.shape[1]
    index = ours.targets.index.permute(0, 2, 3, 1).reshape(-1, k).cpu().numpy()
    weight = ours.targets.weight.permute(0, 2, 3, 1).reshape(-1, k).cpu().double().numpy()
    target_diff = np.abs(dense_targets(ref) - dense(index, weight)).max(axis=1)
    pixel_weight = ours.pixel_weight.reshape(-1).cpu().double().numpy()
    # Our ab is float32 (|diff| ~2e-4 from skimage's float64): pixels that close to a tie may differ.
    return (
        f"L {np.abs(ref['lightness'] - ours.lightness[:, 0].cpu().double().numpy()).max():.1e}, "
        f"soft targets {target_diff.max():.1e} ({(target_diff > 1e-4).mean():.3%} of pixels > 1e-4), "
        f"pixel weights {(np.abs(ref['pixel_weight'] - pixel_weight) > 1e-5).mean():.3%} differ, "
        f"non-gray mask {int((ref['nongray'] != ours.nongray.cpu().numpy()).sum())} differ"
    )


def encoder_exactness(ref: dict[str, np.ndarray]) -> tuple[float, int]:
    """Largest soft-target difference when our encoder gets the reference's own (float64) ab.

    Pixels whose 10th and 11th nearest bins tie to 1e-3 (in squared distance) are left out: the
    reference's ball tree breaks such ties arbitrarily (gray pixels, ab ~ 0, tie exactly). Returns
    the difference and the number of pixels left out.
    """
    points = ref["ab"].reshape(-1, 2)
    d2 = np.sort(((points[:, None, :] - ab_bins(dtype=torch.float64).numpy()[None]) ** 2).sum(-1), axis=1)
    ties = d2[:, 10] - d2[:, 9] < 1e-3
    ab = torch.from_numpy(ref["ab"]).permute(0, 3, 1, 2)
    ours = soft_encode(ab).permute(0, 2, 3, 1).reshape(-1, Q).double().numpy()
    diff = np.abs(dense_targets(ref) - ours).max(axis=1)
    return float(diff[~ties].max()), int(ties.sum())


def stable_sort_select(
    a: torch.Tensor, b: torch.Tensor, codes: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`~selfsup_color.core.knn.select_bins` by a stable sort of the float32 distances.

    The simplest exact alternative to the selection network: candidate rows are sorted by bin
    index, so a stable sort breaks exact ties to the lower bin, as the network does.
    """
    bins, centre_a, centre_b = knn.decode_codes(codes)
    dist2 = (a.reshape(1, -1) - centre_a).square() + (b.reshape(1, -1) - centre_b).square()
    nearest_first, order = dist2.sort(dim=0, stable=True)
    index = bins.gather(0, order[:k]).long()
    return index, nearest_first[:k] - nearest_first[:1], index[0]


def sorted_soft_targets(
    a: torch.Tensor, b: torch.Tensor, codes: torch.Tensor, class_weights: torch.Tensor, k: int, sigma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`~selfsup_color.core.targets.soft_targets` with :func:`stable_sort_select`."""
    index, excess, nearest = stable_sort_select(a, b, codes, k)
    shape = (k, *a.shape)
    weight = gaussian_weights(excess.view(shape), sigma, dim=0)
    return index.view(shape).movedim(0, 1), weight.movedim(0, 1), class_weights[nearest.view(a.shape)]


class StableSortBuilder(TargetBuilder):
    """:class:`~selfsup_color.TargetBuilder` whose selection stage is :func:`sorted_soft_targets`."""

    def _run(self, stage: Callable[..., Any], *args: Any) -> Any:
        return super()._run(sorted_soft_targets if stage is soft_targets else stage, *args)


def stage_times(builder: TargetBuilder, x: torch.Tensor, sync: object, repeat: int = 10) -> dict[str, float]:
    """Mean time of each stage of ``builder`` on ``x`` (wraps its stage runner)."""
    totals: dict[str, float] = defaultdict(float)
    run = builder._run

    def timed(stage: object, *args: object) -> object:
        start = time.perf_counter()
        out = run(stage, *args)  # type: ignore[arg-type]
        if sync:
            sync()  # type: ignore[operator]
        totals[stage.__name__] += time.perf_counter() - start  # type: ignore[attr-defined]
        return out

    builder._run = timed  # type: ignore[method-assign]
    try:
        for _ in range(repeat):
            builder(x)
    finally:
        del builder._run
    return {name: total / repeat for name, total in totals.items()}


def main() -> None:
    parser = command_parser("python -m experiments.benchmarks.targets", __doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--size", type=int, default=176)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of reference and ours")
    parser.add_argument("--repeat", type=int, default=5, help="runs of ours per round (median)")
    parser.add_argument("--no_compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--stages", action="store_true", help="also print the time of each stage")
    parser.add_argument(
        "--data",
        choices=("photos", "noise"),
        default="photos",
        help="crops of scikit-image's photos, or uniform random pixels (slower for the reference k-NN)",
    )
    parser.add_argument(
        "--stable_sort",
        action="store_true",
        help="also time ours with a stable sort instead of the selection network",
    )
    args = parse(parser, sys.argv[1:], {"--no-compile": "--no_compile", "--stable-sort": "--stable_sort"})
    from sklearn.neighbors import NearestNeighbors

    if args.data == "photos":
        images = photo_crops(args.batch, args.size)
    else:
        images = np.random.default_rng(0).integers(
            0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8
        )
    prior = torch.softmax(torch.randn(Q, generator=torch.Generator().manual_seed(0)) * 3, 0).double()
    class_weights = rebalance_weights(prior, 0.5)
    knn = NearestNeighbors(n_neighbors=10, algorithm="ball_tree").fit(ab_bins(dtype=torch.float64).numpy())
    # N x 3 x H x W view of the decoded N x H x W x 3 images: channels-last memory, no copy.
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)

    print(f"{args.data}: batch {args.batch} x {args.size} x {args.size} uint8; {describe_machine()}")
    original = OriginalPipeline(class_weights.numpy(), knn)
    baselines = {
        "original layers (skimage + sklearn, dense)": lambda: original(images),
        "lean reference (sparse outputs)": lambda: lean_reference(images, original.class_weights, knn),
    }
    ref = original(images)
    exact, ties = encoder_exactness(ref)
    print(f"our encoder on the reference's ab: soft targets within {exact:.1e} ({ties} ties left out)")

    variants = [("ours, eager", False)] + ([] if args.no_compile else [("ours, torch.compile", True)])
    builders = [("", TargetBuilder)] + ([(" + stable sort", StableSortBuilder)] if args.stable_sort else [])
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    runs = []
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else None
        x = batch.to(device)
        for (name, compiled), (selection, make) in itertools.product(variants, builders):
            builder = make(class_weights, compile=compiled).to(device)
            time_call(lambda b=builder, x=x: b(x), 1, warmup=2, sync=sync)  # compile and warm up
            runs.append((f"{name}{selection} ({device})", builder, x, sync))

    # Interleave the baselines and ours, round by round, so that drifting machine speed hits all alike.
    t_base: dict[str, list[float]] = {name: [] for name in baselines}
    times: dict[str, list[float]] = {label: [] for label, *_ in runs}
    for _ in range(args.rounds):
        for name, run_baseline in baselines.items():
            t_base[name].append(time_call(run_baseline, 1, warmup=0))
        for label, builder, x, sync in runs:
            times[label].append(time_call(lambda b=builder, x=x: b(x), args.repeat, warmup=0, sync=sync))
    for name, t in t_base.items():
        print(f"{name:<44} {statistics.median(t) * 1e3:9.2f} ms")
    original_times, lean_times = t_base.values()
    print(f"{'':<44} {'':>12} {'x original':>10} {'x lean':>7}")
    for label, builder, x, sync in runs:
        ms = statistics.median(times[label]) * 1e3
        ratios = [
            statistics.median(r / t for r, t in zip(base, times[label], strict=True))
            for base in (original_times, lean_times)
        ]
        print(f"{label:<44} {ms:9.2f} ms {ratios[0]:9.1f}x {ratios[1]:6.1f}x")
        print(f"    |diff| to the original: {compare(ref, builder(x))}")
        if args.stages:
            stages = stage_times(builder, x, sync)
            print("    " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in stages.items()))


if __name__ == "__main__":
    main()
