"""VPM's training losses (Sun et al., CVPR 2019, Sec. 3.3, Eq. 5-8).

All three use the *self-supervision* that the partial crop produces
(:func:`reidlib.data.partial.partial_crop`): a region label for every pixel of the
feature map ``T`` and the set ``V`` of regions visible in the crop.

Normalisation (the paper writes sums and leaves the scale open): Eq. 5 is averaged over
the pixels and the images of the batch; Eq. 6 is summed over an image's visible regions
(as PCB sums its stripes' losses) and averaged over the images; Eq. 7 is averaged over the
anchors that have a valid positive and negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "region_locator_loss",
    "visible_identity_loss",
    "shared_region_distances",
    "region_selective_triplet_loss",
    "vpm_total_loss",
]


def region_locator_loss(region_logits: torch.Tensor, region_labels: torch.Tensor,
                        ignore_index: int = -1) -> torch.Tensor:
    """VPM Eq. 5: ``L_R = -sum_{g in T} 1_{i = L} log P(R_i | g)`` (pixel-wise cross-entropy).

    Args:
        region_logits: ``(N, p, h, w)`` -- ``W^T g``; ``log P(R_i|g)`` is their log-softmax (Eq. 1).
        region_labels: ``(N, h, w)`` int64 region label ``L`` of each pixel, ``0..p-1``
            (pixels labelled ``ignore_index`` are left out).

    Returns:
        the mean over labelled pixels (a scalar).
    """
    if region_logits.dim() != 4 or region_labels.dim() != 3 \
            or region_labels.shape != (region_logits.shape[0], *region_logits.shape[2:]):
        raise ValueError(
            "region_locator_loss: expected region_logits (N, p, h, w) and region_labels (N, h, w) with the same "
            f"N, h, w; got {tuple(region_logits.shape)} and {tuple(region_labels.shape)} (region labels must be "
            "made for the model's feature-map size, see VPM.feature_size)"
        )
    p = region_logits.shape[1]
    lab = region_labels.long()
    bad = (lab != ignore_index) & ((lab < 0) | (lab >= p))
    if bool(bad.any()):
        raise ValueError(f"region_locator_loss: region labels must lie in 0..{p - 1} (or {ignore_index}); "
                         f"got values {sorted(set(lab[bad].unique().tolist()))[:5]}")
    return F.cross_entropy(region_logits.float(), lab, ignore_index=ignore_index)


def visible_identity_loss(logits: torch.Tensor, labels: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """VPM Eq. 6: ``L_ID = -sum_{i in V} log softmax(IP_i(f_i))_y`` -- visible regions only.

    Args:
        logits: ``(N, p, K)`` outputs of the ``p`` identity classifiers ``IP_i``.
        labels: ``(N,)`` identity labels ``y`` in ``0..K-1``.
        visible: ``(N, p)`` bool, the visible set ``V`` of each image (all True for
            MVPM-3/-4, which supervise every region).

    Returns:
        per image the sum over its visible regions, averaged over the images (a scalar).
        Invisible regions contribute nothing, neither value nor gradient.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:1] or visible.shape != logits.shape[:2]:
        raise ValueError(
            "visible_identity_loss: expected logits (N, p, K), labels (N,), visible (N, p); got "
            f"{tuple(logits.shape)}, {tuple(labels.shape)}, {tuple(visible.shape)}"
        )
    n, p, k = logits.shape
    ce = F.cross_entropy(logits.float().reshape(n * p, k), labels.long().repeat_interleave(p),
                         reduction="none").reshape(n, p)
    # where(), not multiplication: a masked region's loss (even inf/nan) cannot leak in.
    ce = torch.where(visible.bool(), ce, ce.new_zeros(()))
    return ce.sum(dim=1).mean()


def _pairwise_euclidean(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``(p, N, D) -> (p, N, N)`` Euclidean distances (not squared), safe to differentiate at 0."""
    sq = (x * x).sum(-1)
    d2 = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * x @ x.transpose(-1, -2)
    return d2.clamp_min(eps).sqrt()


def shared_region_distances(parts: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distance inside VPM Eq. 7 for every pair of a batch.

    ``D^{kl} = sum_{i in V^k & V^l} ||f^k_i - f^l_i|| / |V^k & V^l|``.

    Args:
        parts: ``(N, p, D)`` region features.
        visible: ``(N, p)`` bool visible sets.

    Returns:
        ``(dist, shared)``: ``dist`` ``(N, N)`` (0 where no region is shared) and
        ``shared`` ``(N, N)`` the number of shared regions ``|V^k & V^l|``.
    """
    if parts.dim() != 3 or visible.shape != parts.shape[:2]:
        raise ValueError(f"shared_region_distances: expected parts (N, p, D) and visible (N, p); got "
                         f"{tuple(parts.shape)} and {tuple(visible.shape)}")
    local = _pairwise_euclidean(parts.float().transpose(0, 1))  # (p, N, N)
    v = visible.float()
    both = torch.einsum("ip,jp->pij", v, v)  # (p, N, N): 1 where region shared
    shared = both.sum(0)
    dist = (local * both).sum(0) / shared.clamp_min(1.0)
    return dist, shared


def region_selective_triplet_loss(parts: torch.Tensor, visible: torch.Tensor, pids: torch.Tensor,
                                  margin: float = 1.0) -> torch.Tensor:
    """VPM Eq. 7: ``L_tri = [D^{ap} - D^{an} + alpha]_+`` over shared regions, batch-hard mined.

    ``D^{ap}`` and ``D^{an}`` are :func:`shared_region_distances`; as in the paper's
    training (Sec. 4.1, "hard mining strategy [9]") each anchor takes its farthest positive
    and its nearest negative.  Pairs that share no region have no distance and are never
    mined; anchors left without a positive or a negative are dropped.  ``alpha = 1``
    in the paper.  For MVPM-2/-4 pass ``visible`` all True (every region counts).

    Args:
        parts: ``(N, p, D)``; visible: ``(N, p)`` bool; pids: ``(N,)`` identities.

    Returns:
        mean over the valid anchors (0 with a zero gradient if there is none).
    """
    if pids.shape != parts.shape[:1]:
        raise ValueError(f"region_selective_triplet_loss: pids must be (N,) = ({parts.shape[0]},), "
                         f"got {tuple(pids.shape)}")
    dist, shared = shared_region_distances(parts, visible)
    n = parts.shape[0]
    same = pids.view(-1, 1) == pids.view(1, -1)
    eye = torch.eye(n, dtype=torch.bool, device=parts.device)
    valid = shared > 0
    pos = same & ~eye & valid
    neg = ~same & valid
    d_ap = torch.where(pos, dist, dist.new_full((), float("-inf"))).amax(dim=1)
    d_an = torch.where(neg, dist, dist.new_full((), float("inf"))).amin(dim=1)
    ok = pos.any(dim=1) & neg.any(dim=1)
    if not bool(ok.any()):
        return parts.sum() * 0.0
    return F.relu(d_ap[ok] - d_an[ok] + margin).mean()


def vpm_total_loss(l_r: torch.Tensor, l_id: torch.Tensor, l_tri: torch.Tensor | None = None) -> torch.Tensor:
    """VPM Eq. 8: ``L = L_R + L_ID + L_tri`` (``l_tri=None`` in the cross-entropy-only stage)."""
    total = l_r + l_id
    return total if l_tri is None else total + l_tri
