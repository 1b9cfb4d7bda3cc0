"""SANet's training loss (Chen et al., BMVC 2023, Sec. 3.3, Eq. 6).

``L = sum_{i=1}^{5} (L_ID(f^i_p) + 0.1 L_Tri(f^i_p) + L_Focal(m^i, DS(M^i)))`` over the four part
branches and the global branch.  ``L_ID`` and ``L_Focal`` are HPNet's
(:func:`reidlib.losses.hpnet.branch_identity_losses`,
:func:`reidlib.losses.hpnet.part_mask_focal_loss`); ``DS(M^i)`` is
:func:`reidlib.data.masks.part_mask_labels`.

Decisions: ``L_Tri`` is taken per branch (Eq. 6 writes it inside the sum over branches, on each
branch's feature): a batch-hard triplet loss (margin 0.3, Euclidean, on the features before the
BNNecks) among the images where that branch is visible in its mask labels
(:func:`branch_triplet_losses`); like ``L_ID`` it leaves out the images whose part is not there.
"""

from __future__ import annotations

import torch

from reidlib.losses.hpnet import batch_hard_masked, branch_identity_losses, part_mask_focal_loss

__all__ = ["branch_triplet_losses", "sanet_total_loss", "branch_identity_losses", "part_mask_focal_loss"]


def branch_triplet_losses(parts: torch.Tensor, visible: torch.Tensor, labels: torch.Tensor,
                          margin: float = 0.3) -> torch.Tensor:
    """SANet Eq. 6's ``L_Tri(f^i_p)``: a batch-hard triplet loss per branch, among the images where
    the branch is visible.

    Args:
        parts: ``(N, P, D)`` branch features (before the BNNecks); visible: ``(N, P)`` bool;
            labels: ``(N,)``.

    Returns:
        ``(P,)`` (see :func:`reidlib.losses.hpnet.batch_hard_masked`).
    """
    if parts.dim() != 3 or visible.shape != parts.shape[:2] or labels.shape != parts.shape[:1]:
        raise ValueError("branch_triplet_losses: expected parts (N, P, D), visible (N, P), labels (N,); got "
                         f"{tuple(parts.shape)}, {tuple(visible.shape)}, {tuple(labels.shape)}")
    x = parts.float().transpose(0, 1)  # (P, N, D)
    sq = (x * x).sum(-1)
    d2 = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * x @ x.transpose(-1, -2)
    dist = d2.clamp_min(1e-12).sqrt()  # Euclidean, safe to differentiate at 0
    v = visible.bool().transpose(0, 1)  # (P, N)
    valid = v.unsqueeze(-1) & v.unsqueeze(-2)
    return batch_hard_masked(dist, valid, labels, margin)


def sanet_total_loss(l_id: torch.Tensor, l_tri: torch.Tensor | None, l_focal: torch.Tensor,
                     triplet_weight: float = 0.1) -> torch.Tensor:
    """SANet Eq. 6: ``L = sum_i (L_ID(f^i_p) + 0.1 L_Tri(f^i_p) + L_Focal(m^i, DS(M^i)))``.

    Args:
        l_id, l_tri, l_focal: ``(P,)`` per-branch terms (``l_tri=None``: no triplet term).
        triplet_weight: 0.1 in the paper ("the other losses' [weights] to 1").
    """
    total = l_id.sum() + l_focal.sum()
    return total if l_tri is None else total + triplet_weight * l_tri.sum()
