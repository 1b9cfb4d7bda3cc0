"""Batch-hard triplet loss (Hermans et al. 2017), torchreid semantics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` euclidean distances ``sqrt(clamp(|a|^2 + |b|^2 - 2 a.b, 1e-12))`` (torchreid's form)."""
    sq = x.pow(2).sum(dim=1, keepdim=True)
    d2 = sq + sq.t() - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()


def hard_example_mining(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each anchor: the largest distance to a positive and the smallest to a negative.

    Hermans et al. 2017 ("In defense of the triplet loss"), batch-hard mining, Eq. 5:
    the anchor itself counts among its positives (distance ~1e-6), as in torchreid.
    Every anchor needs at least one negative in the batch.
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    if bool(same.all(dim=1).any()):
        raise ValueError(
            "batch-hard triplet loss needs at least one other identity in the batch for every anchor; "
            f"got labels {labels.tolist()[:16]}{'...' if labels.numel() > 16 else ''} "
            "(use the PK identity sampler: P >= 2 identities x K images)"
        )
    dist_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    dist_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    return dist_ap, dist_an


def triplet_loss_batch_hard(
    features: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.3,
    soft_margin: bool = False,
    normalize: bool = False,
) -> torch.Tensor:
    """Batch-hard triplet loss, averaged over anchors.

    Hermans et al. 2017, Eq. 5: ``mean_a [m + max_p D(a,p) - min_n D(a,n)]_+`` with
    euclidean ``D``; with ``soft_margin`` the hinge is replaced by ``log(1 + exp(.))``
    (their "soft-margin" variant).  torchreid's ``TripletLoss`` (margin 0.3 in the strong
    baseline, Luo et al. 2019) computes the same value.

    Args:
        features: ``(B, D)`` embeddings (computed in float32).
        labels: ``(B,)`` identity labels.
        margin: the hinge margin (ignored with ``soft_margin``).
        soft_margin: use the softplus form instead of the hinge.
        normalize: L2-normalise the features first.
    """
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"features must be (batch, dim) and labels (batch,), got {tuple(features.shape)} and {tuple(labels.shape)}"
        )
    x = features.float()
    if normalize:
        x = F.normalize(x, dim=1)
    dist_ap, dist_an = hard_example_mining(pairwise_euclidean(x), labels)
    if soft_margin:
        return F.softplus(dist_ap - dist_an).mean()
    return F.relu(dist_ap - dist_an + margin).mean()


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_loss_batch_hard` (torchreid's ``TripletLoss(margin=0.3)``)."""

    def __init__(self, margin: float = 0.3, soft_margin: bool = False, normalize: bool = False):
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.soft_margin = bool(soft_margin)
        self.normalize = bool(normalize)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return triplet_loss_batch_hard(features, labels, self.margin, self.soft_margin, self.normalize)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, soft_margin={self.soft_margin}, normalize={self.normalize}"
