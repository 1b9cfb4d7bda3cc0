"""PPCL's losses (He et al., "Partial Person Re-identification with Part-Part Correspondence
Learning", CVPR 2021).

* :func:`rectifier_loss` -- Eq. 1, GLRec's self-supervised regression of the crop's known
  transform; :func:`gate_loss` -- the binary cross-entropy on ``eta`` that Eq. 1 omits "for
  simplicity"; :func:`glrec_loss` -- their sum, the ``L_R`` of Eq. 6.
* :func:`backbone_loss` -- ``L_F``: label-smoothed cross-entropy + batch-hard triplet
  (Sec. 3.4, 4.2), with the strong baseline's modules.
* :func:`pp_cycle_loss` -- Eq. 11, the MSE of the grid points transformed by the region
  found after x -> y -> x and by the true region (Rocco et al.'s grid loss).
* :func:`pp_triplet_loss` -- Eq. 12, anchor region vs CRLoc's region vs a negative region
  (:func:`reidlib.models.ppcl.sample_negative_regions`), margin ``alpha``.
* :func:`crloc_loss` -- Eq. 13; :func:`ppcl_total_loss` -- Eq. 6.

Regions are ``(sx, sy, tx, ty)`` (``frame = s * local + t``, normalised coordinates), as in
:mod:`reidlib.models.ppcl`.

Choices where the paper is open:

* Eq. 1's squared norm is summed over the 4 degrees of freedom and averaged over the batch;
  holistic items regress the identity ``(1, 1, 0, 0)``.
* Eq. 11's grid: the ``8 x 8`` cell centres of the anchor's own ``[-1, 1]^2`` frame; the
  error of a point is its squared euclidean distance, averaged over points and the batch.
  The target of the cycle is where the crop really lies in ``x`` (the crop's known region):
  x^p's content, sent to y and back, should land on x^p.
* Eq. 12's ``||.||_2^2`` is taken between region *maps* with L2-normalised channel vectors,
  averaged over positions (``2 - 2 cos`` per position, in ``[0, 4]``), and the bracket is a
  hinge; ``alpha`` defaults to 0.3 (the strong baseline's margin; the paper gives none).
  Samples without a valid negative are left out of the mean.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

__all__ = [
    "rectifier_loss", "gate_loss", "glrec_loss", "backbone_loss", "grid_points", "transform_grid_points",
    "pp_cycle_loss", "region_distance", "pp_triplet_loss", "crloc_loss", "ppcl_total_loss",
]


def _check_regions(t: torch.Tensor, name: str, who: str) -> None:
    if t.dim() != 2 or t.shape[1] != 4:
        raise ValueError(f"{who}: {name} must be (N, 4) regions (sx, sy, tx, ty), got shape {tuple(t.shape)}")


def rectifier_loss(t_pred: torch.Tensor, t_true: torch.Tensor) -> torch.Tensor:
    """PPCL Eq. 1: ``L_R = 1/B sum_i ||R(x_i^p) - t||_2^2``.

    ``t_pred``: R's output ``(B, 4)``; ``t_true``: the crop's known transform ``(B, 4)``
    (:func:`reidlib.data.partial.partial_crop`'s ``scale_translation``).
    """
    _check_regions(t_pred, "t_pred", "rectifier_loss")
    if t_true.shape != t_pred.shape:
        raise ValueError(f"rectifier_loss: t_pred {tuple(t_pred.shape)} and t_true {tuple(t_true.shape)} differ")
    return (t_pred.float() - t_true.float()).pow(2).sum(dim=1).mean()


def gate_loss(eta_logit: torch.Tensor, is_partial: torch.Tensor) -> torch.Tensor:
    """The binary cross-entropy on GLRec's confidence ``eta = sigmoid(eta_logit)`` that the
    input is partial (Sec. 3.1: "jointly optimized with a standard binary cross-entropy loss")."""
    if eta_logit.dim() != 1 or is_partial.shape != eta_logit.shape:
        raise ValueError(f"gate_loss: expected eta_logit (B,) and is_partial (B,), got {tuple(eta_logit.shape)} "
                         f"and {tuple(is_partial.shape)}")
    return F.binary_cross_entropy_with_logits(eta_logit.float(), is_partial.float())


def glrec_loss(t_pred: torch.Tensor, t_true: torch.Tensor, eta_logit: torch.Tensor,
               is_partial: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """``L_R`` as it enters Eq. 6: Eq. 1 (:func:`rectifier_loss`) + the gate's BCE
    (:func:`gate_loss`).  Returns the sum and its terms (detached)."""
    l_eq1 = rectifier_loss(t_pred, t_true)
    l_bce = gate_loss(eta_logit, is_partial)
    return l_eq1 + l_bce, {"L_R_eq1": l_eq1.detach(), "L_R_bce": l_bce.detach()}


def backbone_loss(logits: torch.Tensor, feat: torch.Tensor, labels: torch.Tensor,
                  id_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  triplet_loss: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None
                  ) -> tuple[torch.Tensor, dict]:
    """``L_F`` (Sec. 3.4, 4.2): softmax cross-entropy on the logits + the batch-hard triplet on
    the pooled features (``id_loss``: :class:`reidlib.losses.CrossEntropyLabelSmooth`,
    ``triplet_loss``: :class:`reidlib.losses.TripletLoss`, or None for CE only)."""
    ce = id_loss(logits, labels)
    terms = {"L_F_ce": ce.detach()}
    total = ce
    if triplet_loss is not None:
        tri = triplet_loss(feat, labels)
        if isinstance(tri, (tuple, list)):
            tri = tri[0]
        total = total + tri
        terms["L_F_tri"] = tri.detach()
    return total, terms


def grid_points(grid_size: tuple[int, int] = (8, 8), device=None) -> torch.Tensor:
    """The ``(P, 2)`` ``(x, y)`` cell centres of a regular ``rows x cols`` grid on ``[-1, 1]^2``."""
    rows, cols = int(grid_size[0]), int(grid_size[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"grid_points: grid_size={grid_size!r}; expected two positive ints")
    ys = (torch.arange(rows, device=device, dtype=torch.float32) * 2 + 1) / rows - 1
    xs = (torch.arange(cols, device=device, dtype=torch.float32) * 2 + 1) / cols - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def transform_grid_points(st: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Points ``(P, 2)`` of a region's local frame mapped into its frame: ``s * p + t`` ->
    ``(N, P, 2)``."""
    _check_regions(st, "st", "transform_grid_points")
    st = st.float()
    return st[:, None, :2] * points[None].to(st.device) + st[:, None, 2:]


def pp_cycle_loss(st_cycle: torch.Tensor, st_target: torch.Tensor,
                  grid_size: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """PPCL Eq. 11: ``L_pp_cycle = l(h_{x->y->x}, h_x)``, ``l`` the MSE of the transformed grid points.

    ``st_cycle``: the region of ``h_x`` found after x -> y -> x (CRLoc's ``box_yx``);
    ``st_target``: where the anchor really lies in ``h_x`` (the crop's region).  The grid's
    points (:func:`grid_points`) are mapped by both; the loss is the mean over points and the
    batch of their squared distance.  An exact inverse (the cycle back on the crop) gives 0.
    """
    _check_regions(st_cycle, "st_cycle", "pp_cycle_loss")
    if st_target.shape != st_cycle.shape:
        raise ValueError(f"pp_cycle_loss: st_cycle {tuple(st_cycle.shape)} and st_target {tuple(st_target.shape)} differ")
    pts = grid_points(grid_size, st_cycle.device)
    d = transform_grid_points(st_cycle, pts) - transform_grid_points(st_target.detach(), pts)
    return d.pow(2).sum(dim=2).mean()


def region_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 12's ``||a - b||_2^2`` between region maps ``(B, C, h, w)``: the mean over positions
    of the squared distance of the L2-normalised channel vectors (``(B,)``, in ``[0, 4]``)."""
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"region_distance: expected two (B, C, h, w) region maps of one shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a, b = F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1)
    return (a - b).pow(2).sum(dim=1).mean(dim=(1, 2))


def pp_triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.3,
                    valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """PPCL Eq. 12: ``1/B sum_i [||h_x^r - h_{x->y}||_2^2 - ||h_x^r - h_{y*}||_2^2 + alpha]_+``.

    ``anchor`` (the anchor region of ``h_x^r``), ``positive`` (CRLoc's region ``h_{x->y}``) and
    ``negative`` (``h_{y*}``) are ``(B, C, h, w)`` region maps (:func:`region_distance`);
    ``margin`` is ``alpha``; ``valid`` ``(B,)`` keeps the samples that have a negative (the
    mean runs over them; 0 with grad when none has).
    """
    if margin < 0:
        raise ValueError(f"pp_triplet_loss: margin (alpha) must be >= 0, got {margin}")
    hinge = F.relu(region_distance(anchor, positive) - region_distance(anchor, negative) + margin)
    if valid is None:
        return hinge.mean()
    if valid.shape != hinge.shape:
        raise ValueError(f"pp_triplet_loss: valid must be ({hinge.shape[0]},), got {tuple(valid.shape)}")
    w = valid.to(hinge.dtype)
    return (hinge * w).sum() / w.sum().clamp(min=1.0)


def crloc_loss(l_cycle: Optional[torch.Tensor], l_triplet: Optional[torch.Tensor], lambda_cyc: float = 10.0,
               lambda_tri: float = 1.0) -> Optional[torch.Tensor]:
    """PPCL Eq. 13: ``L_L = lambda_cyc L_pp_cycle + lambda_tri L_pp_triplet`` (a term that is
    None -- its constraint switched off -- counts 0; None when both are)."""
    terms = [lam * l for lam, l in ((lambda_cyc, l_cycle), (lambda_tri, l_triplet)) if l is not None]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def ppcl_total_loss(l_r: torch.Tensor, l_f: torch.Tensor, l_cycle: Optional[torch.Tensor] = None,
                    l_triplet: Optional[torch.Tensor] = None, lambda_cyc: float = 10.0,
                    lambda_tri: float = 1.0) -> torch.Tensor:
    """PPCL Eq. 6: ``L = L_R + L_F + lambda_cyc L_pp_cycle + lambda_tri L_pp_triplet``
    (the last two are Eq. 13's ``L_L``, :func:`crloc_loss`); the paper's weights are
    ``lambda_cyc = 10``, ``lambda_tri = 1`` (Table 1c)."""
    total = l_r + l_f
    l_l = crloc_loss(l_cycle, l_triplet, lambda_cyc, lambda_tri)
    return total if l_l is None else total + l_l
