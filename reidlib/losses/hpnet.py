"""HPNet's training losses (the reference notes' recipe, Sec. 3), and the parts SANet Eq. 6 shares.

Per branch (part) ``i``: an identity loss on the BNNeck'd feature, and the focal loss of its
segmentation head against the down-sampled mask labels (:func:`reidlib.data.masks.part_mask_labels`);
across the parts: a batch-hard triplet loss on the mean distance over the commonly visible parts
(weight 0.1).  SANet (:mod:`reidlib.losses.sanet`) uses the same identity and focal losses and a
triplet loss per branch.

Decisions (the recipe names the losses, not their normalisation):

* :func:`part_mask_focal_loss`: torchvision's ``sigmoid_focal_loss`` (gamma 2, alpha 0.25) summed
  over a branch's pixels in the batch and divided by that branch's positive pixels (at least 1) --
  RetinaNet's normalisation, per branch, since Eq. 6 sums one focal term per branch.
* :func:`branch_identity_losses`: label-smoothed cross-entropy (epsilon 0.1, the strong baseline's)
  averaged over the images where the branch is visible *in its mask labels*: a part that a crop
  removed or an occluder hides has no identity to learn (VPM Eq. 6 makes the same choice).  In
  training the visibility is the labels'; the predicted one (Eq. 5) decides at test time only.
* :func:`common_parts_triplet_loss`: the distance of a pair is the mean Euclidean distance over
  the parts visible (labels) in both (the kernel of VPM Eq. 7,
  :func:`reidlib.losses.vpm.shared_region_distances`), on the features before the BNNecks; each
  anchor takes its farthest positive and nearest negative among the images it shares a part with
  (itself excluded), margin 0.3; anchors without both are left out.
* Everything is computed without a host synchronisation (no ``.item()``, no data-dependent
  ``if``): an empty set gives 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from reidlib.losses.vpm import shared_region_distances

__all__ = [
    "part_mask_focal_loss",
    "branch_identity_losses",
    "batch_hard_masked",
    "common_parts_triplet_loss",
    "hpnet_total_loss",
]


def part_mask_focal_loss(mask_logits: torch.Tensor, mask_labels: torch.Tensor, alpha: float = 0.25,
                         gamma: float = 2.0) -> torch.Tensor:
    """SANet Eq. 6's ``L_Focal(m^i, DS(M^i))`` (HPNet's parsing loss): the sigmoid focal loss
    (Lin et al. 2017, Eq. 5) of each branch's mask, normalised by its positive pixels.

    ``L^i = sum_{n, pixels} FL(m^i, y^i) / max(1, sum_{n, pixels} y^i)`` with
    ``FL = -alpha_t (1 - p_t)^gamma log p_t`` (``torchvision.ops.sigmoid_focal_loss``).

    Args:
        mask_logits: ``(N, P, h, w)`` -- the segmentation heads' logits (``m^i`` is their sigmoid).
        mask_labels: ``(N, P, h, w)`` in {0, 1} -- ``DS(M^i)``.
        alpha, gamma: the focal loss's weights (0.25, 2).

    Returns:
        ``(P,)``: one loss per branch.
    """
    if mask_logits.dim() != 4 or mask_labels.shape != mask_logits.shape:
        raise ValueError(
            "part_mask_focal_loss: expected mask_logits and mask_labels of the same shape (N, P, h, w); got "
            f"{tuple(mask_logits.shape)} and {tuple(mask_labels.shape)} (the labels must be made at the masks' "
            "size, see HPNet.feature_size)")
    y = mask_labels.float()
    fl = sigmoid_focal_loss(mask_logits.float(), y, alpha=alpha, gamma=gamma, reduction="none")
    return fl.sum(dim=(0, 2, 3)) / y.sum(dim=(0, 2, 3)).clamp_min(1.0)


def branch_identity_losses(logits: torch.Tensor, labels: torch.Tensor, visible: torch.Tensor,
                           epsilon: float = 0.1) -> torch.Tensor:
    """SANet Eq. 6's ``L_ID(f^i_p)`` (HPNet's per-part identity loss): label-smoothed
    cross-entropy of each branch's classifier over the images where the branch is visible.

    Args:
        logits: ``(N, P, K)``; labels: ``(N,)`` in ``0..K-1``; visible: ``(N, P)`` bool.
        epsilon: the label smoothing (0: plain cross-entropy).

    Returns:
        ``(P,)``: per branch the mean over its visible images (0 where none is visible).
        Invisible entries contribute neither value nor gradient.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:1] or visible.shape != logits.shape[:2]:
        raise ValueError("branch_identity_losses: expected logits (N, P, K), labels (N,), visible (N, P); got "
                         f"{tuple(logits.shape)}, {tuple(labels.shape)}, {tuple(visible.shape)}")
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"branch_identity_losses: epsilon must lie in [0, 1), got {epsilon!r}")
    logp = F.log_softmax(logits.float(), dim=2)
    idx = labels.long().view(-1, 1, 1).expand(-1, logits.shape[1], 1)
    nll = -logp.gather(2, idx).squeeze(2)
    ce = (1.0 - epsilon) * nll - epsilon * logp.mean(dim=2)
    vis = visible.bool()
    ce = torch.where(vis, ce, ce.new_zeros(()))
    return ce.sum(dim=0) / vis.sum(dim=0).clamp_min(1).to(ce.dtype)


def batch_hard_masked(dist: torch.Tensor, valid: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet hinge ``[D(a, p) - D(a, n) + margin]_+`` (Hermans et al. 2017) on pairs
    that are ``valid``, for ``B`` distance matrices at once.

    Args:
        dist: ``(B, N, N)`` distances; valid: ``(B, N, N)`` bool (a pair that is not valid is never
            mined); labels: ``(N,)``.

    Returns:
        ``(B,)``: the mean over the anchors that have a valid positive (not themselves) and a valid
        negative; 0 (with a zero gradient) where there is none.
    """
    n = labels.shape[0]
    same = labels.view(-1, 1) == labels.view(1, -1)
    eye = torch.eye(n, dtype=torch.bool, device=dist.device)
    pos = same & ~eye & valid
    neg = ~same & valid
    d_ap = torch.where(pos, dist, dist.new_full((), float("-inf"))).amax(dim=-1)
    d_an = torch.where(neg, dist, dist.new_full((), float("inf"))).amin(dim=-1)
    ok = pos.any(dim=-1) & neg.any(dim=-1)
    hinge = torch.where(ok, F.relu(torch.where(ok, d_ap - d_an, dist.new_zeros(())) + margin), dist.new_zeros(()))
    return hinge.sum(dim=-1) / ok.sum(dim=-1).clamp_min(1).to(hinge.dtype)


def common_parts_triplet_loss(parts: torch.Tensor, visible: torch.Tensor, labels: torch.Tensor,
                              margin: float = 0.3) -> torch.Tensor:
    """HPNet's triplet loss: batch-hard on ``D^{ab} = sum_{i in V^a & V^b} ||F^a_i - F^b_i|| / |V^a & V^b|``,
    the mean distance over the parts visible in both images.

    Args:
        parts: ``(N, P, D)`` part features (before the BNNecks); visible: ``(N, P)`` bool (the mask
            labels' visibility); labels: ``(N,)``.

    Returns:
        a scalar (see :func:`batch_hard_masked`); pairs that share no part are never mined.
    """
    if labels.shape != parts.shape[:1]:
        raise ValueError(f"common_parts_triplet_loss: labels must be (N,) = ({parts.shape[0]},), "
                         f"got {tuple(labels.shape)}")
    dist, shared = shared_region_distances(parts, visible.bool())
    return batch_hard_masked(dist[None], (shared > 0)[None], labels, margin)[0]


def hpnet_total_loss(l_id: torch.Tensor, l_focal: torch.Tensor, l_tri: torch.Tensor | None,
                     triplet_weight: float = 0.1) -> torch.Tensor:
    """HPNet's objective: ``sum_i (L_ID^i + L_Focal^i) + 0.1 L_tri`` (``l_tri=None``: no triplet)."""
    total = l_id.sum() + l_focal.sum()
    return total if l_tri is None else total + triplet_weight * l_tri
