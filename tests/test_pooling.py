"""Redundancy-weighted feature aggregation (WFA) in both modes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigearthnet_txt import pooling
from bigearthnet_txt.pooling import MODES, WeightedFeatureAggregation, group_softmax, weighted_pool
from bigearthnet_txt.redundancy import weights_batch


def hand_weighted_mean(features, groups, weights, mask, num_groups):
    """Loop version of the uniqueness pooling: renormalised weights, mean fallback, zeros if
    empty."""
    out = torch.zeros(num_groups, features.shape[1], dtype=features.dtype)
    for g in range(num_groups):
        rows = [i for i in range(len(groups)) if groups[i] == g and mask[i]]
        if not rows:
            continue
        w = weights[rows].to(features.dtype)
        if float(w.sum()) <= 0:
            w = torch.ones(len(rows), dtype=features.dtype)
        out[g] = (w[:, None] * features[rows]).sum(0) / w.sum()
    return out


def test_uniqueness_mode_equals_hand_computation_with_real_weights():
    texts = [
        "Is there any arable land in the image? yes",
        "Is there any pastures in the image? no",
        "Is there any arable land in the image? yes",
        (
            "Identify the location of the <ref>largest connected region of pastures</ref>. "
            "[0.64 0.0, 1.0 0.71]"
        ),
        "The image shows broad-leaved forest.",
        (
            "Which classes share a boundary? a) Broad-leaved forest and Pastures, b) Urban fabric, "
            "d) Arable land d"
        ),
    ]
    patch = ["p1", "p1", "p1", "p1", "p2", "p2"]
    w = torch.from_numpy(weights_batch(texts, patch))
    x = torch.randn(6, 5, dtype=torch.float64)
    index = torch.tensor([0, 0, 0, 0, 1, 1])
    pooled = WeightedFeatureAggregation("uniqueness")(x, index, w)
    expected = torch.stack([(w[:4, None] * x[:4]).sum(0), (w[4:, None] * x[4:]).sum(0)])
    torch.testing.assert_close(pooled, expected)
    assert pooled.shape == (2, 5) and pooled.dtype == torch.float64


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=8),
    seed=st.integers(0, 2**16),
    masked=st.floats(0.0, 0.9),
)
def test_uniqueness_mode_with_mask_matches_loop(sizes, seed, masked):
    gen = torch.Generator().manual_seed(seed)
    groups = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    groups = groups[torch.randperm(len(groups), generator=gen)]
    n = len(groups)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    w = torch.rand(n, generator=gen, dtype=torch.float64) * (torch.rand(n, generator=gen) > 0.3)
    mask = torch.rand(n, generator=gen) >= masked
    num_groups = len(sizes) + 1
    got = weighted_pool(x, groups, w, mask=mask, num_groups=num_groups)
    torch.testing.assert_close(got, hand_weighted_mean(x, groups, w, mask, num_groups))
    assert torch.all(got[-1] == 0)


def test_uniqueness_mode_needs_weights_and_checks_shapes():
    module = WeightedFeatureAggregation("uniqueness")
    with pytest.raises(ValueError):
        module(torch.randn(3, 2), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError):
        module(torch.randn(3, 2), torch.zeros(2, dtype=torch.int64), torch.ones(3))
    with pytest.raises(ValueError):
        WeightedFeatureAggregation("mean")


def test_group_of_one_returns_its_feature_in_both_modes():
    x = torch.randn(4, 6)
    index = torch.tensor([0, 1, 1, 2])
    w = torch.tensor([1.0, 0.25, 0.75, 1.0])
    torch.manual_seed(0)
    for module, kwargs in (
        (WeightedFeatureAggregation("uniqueness"), {"weights": w}),
        (WeightedFeatureAggregation("attention", dim=6), {}),
    ):
        pooled = module(x, index, **kwargs)
        torch.testing.assert_close(pooled[0], x[0])
        torch.testing.assert_close(pooled[2], x[3])


def test_attention_mode_is_softmax_of_linear_scores():
    torch.manual_seed(1)
    module = WeightedFeatureAggregation("attention", dim=4).double()
    x = torch.randn(7, 4, dtype=torch.float64)
    index = torch.tensor([2, 0, 2, 1, 0, 2, 2])
    pooled = module(x, index)
    scores = module.score(x).squeeze(-1)
    for g in range(3):
        rows = (index == g).nonzero().squeeze(-1)
        alpha = torch.softmax(scores[rows], dim=0)
        torch.testing.assert_close(pooled[g], (alpha[:, None] * x[rows]).sum(0))


def test_attention_mode_masks_rows_and_passes_gradients():
    torch.manual_seed(2)
    module = WeightedFeatureAggregation("attention", dim=3)
    x = torch.randn(6, 3, requires_grad=True)
    index = torch.tensor([0, 0, 0, 1, 1, 2])
    mask = torch.tensor([True, False, True, True, True, False])
    pooled = module(x, index, mask=mask, num_groups=4)
    assert pooled.shape == (4, 3)
    assert torch.all(pooled[2] == 0) and torch.all(pooled[3] == 0)
    alpha = torch.softmax(module.score(x[[0, 2]]).squeeze(-1), dim=0)
    torch.testing.assert_close(pooled[0], (alpha[:, None] * x[[0, 2]]).sum(0))

    pooled[:2].pow(2).sum().backward()
    assert module.score.weight.grad is not None and module.score.weight.grad.abs().sum() > 0
    assert module.score.bias.grad is not None
    assert torch.all(x.grad[[1, 5]] == 0)
    assert torch.all(torch.isfinite(x.grad)) and x.grad[[0, 2, 3, 4]].abs().sum() > 0


def test_group_softmax_is_stable_and_sums_to_one():
    scores = torch.tensor([1000.0, 1001.0, -1000.0, 5.0])
    index = torch.tensor([0, 0, 1, 1])
    p = group_softmax(scores, index)
    assert torch.all(torch.isfinite(p))
    torch.testing.assert_close(torch.zeros(2).index_add_(0, index, p), torch.ones(2))


def test_inputs_are_checked_once_with_an_accurate_message(monkeypatch):
    calls = []
    check = pooling._check
    monkeypatch.setattr(pooling, "_check", lambda *a: calls.append(1) or check(*a))
    features, groups = torch.randn(4, 3), torch.tensor([0, 0, 1, 1], dtype=torch.int32)
    for mode in MODES:
        calls.clear()
        WeightedFeatureAggregation(mode, dim=3)(features, groups, torch.full((4,), 0.5))
        assert len(calls) == 1, mode
    with pytest.raises(TypeError, match="int64 or int32, got torch.float32"):
        WeightedFeatureAggregation()(features, groups.float(), torch.ones(4))
