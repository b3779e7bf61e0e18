"""Redundancy-weighted feature aggregation (WFA): one feature per group of text features.

The texts of one patch are encoded separately; WFA pools their features into one feature per
patch, either with the precomputed redundancy weights of :mod:`bigearthnet_txt.redundancy`
(``mode="uniqueness"``) or with a learned score per text, softmax-normalised within the group
(``mode="attention"``). Groups are given by an index, so a batch may hold groups of any size
(including one) in any order; everything uses ``index_add_``/``scatter_reduce`` and needs no
extension.
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("uniqueness", "attention")


def _num_groups(group_index: torch.Tensor, num_groups: int | None) -> int:
    if num_groups is not None:
        return int(num_groups)
    return int(group_index.max()) + 1 if group_index.numel() else 0


def _check(features: torch.Tensor, group_index: torch.Tensor, mask: torch.Tensor | None) -> None:
    if features.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if group_index.shape != features.shape[:1]:
        raise ValueError(
            f"group_index must be [N]={features.shape[0]}, got {tuple(group_index.shape)}"
        )
    if group_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"group_index must be int64 or int32, got {group_index.dtype}")
    if mask is not None and (mask.shape != group_index.shape or mask.dtype != torch.bool):
        raise ValueError("mask must be a bool tensor of shape [N]")


def weighted_pool(
    features: torch.Tensor,
    group_index: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor | None = None,
    num_groups: int | None = None,
) -> torch.Tensor:
    """Weighted mean of the features of each group.

    ``out[g] = sum_i w_i x_i / sum_i w_i`` over the unmasked rows ``i`` of group ``g``. The
    precomputed redundancy weights already sum to 1 per group, so without a mask this is
    ``sum_i w_i x_i``; with a mask the kept weights are renormalised. Where the kept weights sum
    to 0 the group gets the plain mean of its kept rows; a group with no kept rows gets zeros.

    Args:
        features: ``[N, D]`` float text features.
        group_index: ``[N]`` int64 (or int32) group of each row, in ``0 .. G-1``.
        weights: ``[N]`` non-negative weights (any float dtype; cast to ``features.dtype``).
        mask: optional ``[N]`` bool, ``True`` for rows to use.
        num_groups: ``G``; defaults to ``group_index.max() + 1``.

    Returns:
        ``[G, D]`` tensor of ``features.dtype``.
    """
    _check(features, group_index, mask)
    g = _num_groups(group_index, num_groups)
    index = group_index.long()
    w = weights.to(features.dtype)
    keep = torch.ones_like(w) if mask is None else mask.to(features.dtype)
    w = w * keep
    total = features.new_zeros(g).index_add_(0, index, w)
    count = features.new_zeros(g).index_add_(0, index, keep)
    w = torch.where(total[index] > 0, w, keep)
    norm = torch.where(total > 0, total, count).clamp_min(torch.finfo(features.dtype).tiny)
    pooled = features.new_zeros(g, features.shape[1]).index_add_(0, index, features * w[:, None])
    return pooled / norm[:, None]


def group_softmax(
    scores: torch.Tensor,
    group_index: torch.Tensor,
    mask: torch.Tensor | None = None,
    num_groups: int | None = None,
) -> torch.Tensor:
    """Softmax of ``scores`` within each group.

    Args:
        scores: ``[N]`` float scores.
        group_index: ``[N]`` int64 (or int32) group of each row, in ``0 .. G-1``.
        mask: optional ``[N]`` bool; masked rows get probability 0.
        num_groups: ``G``; defaults to ``group_index.max() + 1``.

    Returns:
        ``[N]`` tensor of ``scores.dtype``; the kept rows of each group sum to 1.
    """
    g = _num_groups(group_index, num_groups)
    index = group_index.long()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    shift = scores.detach().new_full((g,), float("-inf"))
    shift = shift.scatter_reduce(0, index, scores.detach(), reduce="amax", include_self=True)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    e = torch.exp(scores - shift[index])
    denom = e.new_zeros(g).index_add_(0, index, e)
    return e / denom[index].clamp_min(torch.finfo(e.dtype).tiny)


class WeightedFeatureAggregation(nn.Module):
    """Pool the text features of each group (patch) into one feature.

    Modes:
        ``"uniqueness"``: weights are the precomputed redundancy weights (``redundancy_weight``
        column), see :func:`weighted_pool`. No parameters.
        ``"attention"``: a ``Linear(dim, 1)`` scores every text; the scores are softmax-normalised
        within each group and the features averaged with them. Learned end to end.

    Args:
        mode: ``"uniqueness"`` or ``"attention"``.
        dim: feature size ``D`` for ``"attention"`` (``None``: inferred from the first batch,
            ``nn.LazyLinear``; create the optimiser after one forward pass then).
    """

    def __init__(self, mode: str = "uniqueness", dim: int | None = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        if mode == "attention":
            self.score = nn.Linear(dim, 1) if dim is not None else nn.LazyLinear(1)

    def forward(
        self,
        features: torch.Tensor,
        group_index: torch.Tensor,
        weights: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        num_groups: int | None = None,
    ) -> torch.Tensor:
        """Pool ``[N, D]`` features into ``[G, D]``.

        Args:
            features: ``[N, D]`` float text features.
            group_index: ``[N]`` int64 (or int32) group of each row, in ``0 .. G-1``.
            weights: ``[N]`` float redundancy weights; required in ``"uniqueness"`` mode,
                ignored in ``"attention"`` mode.
            mask: optional ``[N]`` bool, ``True`` for rows to use.
            num_groups: ``G``; defaults to ``group_index.max() + 1``. Groups without kept rows
                get zeros.

        Returns:
            ``[G, D]`` tensor of ``features.dtype``.
        """
        if self.mode == "uniqueness":
            if weights is None:
                raise ValueError("uniqueness mode needs the precomputed weights")
            return weighted_pool(features, group_index, weights, mask, num_groups)
        _check(features, group_index, mask)
        alpha = group_softmax(self.score(features).squeeze(-1), group_index, mask, num_groups)
        g = _num_groups(group_index, num_groups)
        return features.new_zeros(g, features.shape[1]).index_add_(
            0, group_index.long(), features * alpha[:, None]
        )

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
