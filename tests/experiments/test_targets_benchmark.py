"""The target-preparation benchmark's baselines compute what they claim, and agree with ours."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from experiments.benchmarks.targets import OriginalPipeline, compare, dense_targets, lean_reference
from selfsup_color import Q, TargetBuilder, ab_bins, rebalance_weights


def test_original_layers_and_lean_reference_agree_with_each_other_and_with_ours() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    images[1] = images[1, :, :, :1]  # a grayscale image: mask 0
    prior = torch.softmax(torch.randn(Q, generator=torch.Generator().manual_seed(1)) * 3, 0).double()
    weights = rebalance_weights(prior, 0.5).numpy()
    knn = NearestNeighbors(n_neighbors=10, algorithm="ball_tree").fit(ab_bins(dtype=torch.float64).numpy())

    original = OriginalPipeline(weights, knn)
    first = original(images)
    block = original.block
    again = original(images)  # the pre-allocated block is zeroed and reused, as the original does
    assert original.block is block and np.array_equal(first["dense"], again["dense"])

    lean = lean_reference(images, weights, knn)
    assert first["dense"].shape == (3 * 6 * 6, Q)
    assert np.allclose(first["dense"].sum(1), 1.0, atol=1e-6)
    assert np.abs(first["dense"] - dense_targets(lean)).max() < 1e-6  # float32 blob against float64
    assert np.allclose(first["pixel_weight"], lean["pixel_weight"], rtol=1e-6)
    assert np.abs(first["lightness"] - lean["lightness"]).max() < 1e-4
    assert first["nongray"].tolist() == [True, False, True] == lean["nongray"].tolist()

    ours = TargetBuilder(torch.from_numpy(weights))(torch.from_numpy(images).permute(0, 3, 1, 2))
    line = compare(first, ours)  # "L 4.6e-05, soft targets ... non-gray mask 0 differ"
    assert float(line.split(",")[0].split()[1]) < 1e-3
    assert line.endswith("non-gray mask 0 differ")


def test_stable_sort_variant_selects_the_networks_bins() -> None:
    from experiments.benchmarks.targets import StableSortBuilder

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    images[1] = 128  # gray: ab = 0 lies at exact distance ties between bins
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    network, stable = TargetBuilder()(batch), StableSortBuilder()(batch)
    assert torch.equal(network.targets.index.sort(1).values, stable.targets.index.sort(1).values)
    # The same weights, summed in another order for the normalisation: a float32 ulp or two apart.
    torch.testing.assert_close(network.targets.to_dense(), stable.targets.to_dense(), rtol=1e-6, atol=3e-7)
    assert torch.equal(network.pixel_weight, stable.pixel_weight)
