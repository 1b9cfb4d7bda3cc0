"""STNReID's losses (Luo et al., "STNReID: Deep Convolutional Networks with Pairwise
Spatial Transformer Networks for Partial Person Re-identification").

* :func:`stn_loss` -- Eq. 5, the squared L2 distance between the partial image's and the
  affined image's global features; it is the only signal that teaches the STN module.
* :func:`stnreid_loss` -- Eq. 6, the total: the ReID loss ``L_R`` on the holistic, the
  partial and the affined image plus ``L_STN``.

``L_R`` (Eq. 4) is "any ReID loss"; here it is the ID loss (cross-entropy, optionally
label-smoothed: :class:`reidlib.losses.CrossEntropyLabelSmooth`) plus, optionally, the
batch-hard triplet loss (:class:`reidlib.losses.TripletLoss`) -- the switches of the
paper's Table 2 (``LS``, ``L_ID``, ``L_Tri``).

Not in the paper: :func:`theta_regression_loss` trains the STN on the true transform of each
training crop (an *oracle* that SynthPeds' known crop boxes allow), to measure what the
localisation network can learn with a given schedule, apart from how well Eq. 5 teaches it.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

IMAGE_KINDS = ("h", "p", "a")  # holistic, partial, affined


def stn_loss(f_partial: torch.Tensor, f_affined: torch.Tensor) -> torch.Tensor:
    """STNReID Eq. 5: ``L_STN(I_p, I_a) = ||f_{I_p} - f_{I_a}||_2^2``.

    The squared L2 norm is summed over the feature dimension and averaged over the batch
    of pairs.  ``f_partial`` and ``f_affined`` are ``(N, D)`` global features of the
    partial images and of the affined images sampled for them.
    """
    if f_partial.shape != f_affined.shape or f_partial.dim() != 2:
        raise ValueError(
            f"stn_loss: expected two (N, D) feature tensors of the same shape, got "
            f"{tuple(f_partial.shape)} (partial) and {tuple(f_affined.shape)} (affined)"
        )
    return (f_partial - f_affined).pow(2).sum(dim=1).mean()


def stnreid_loss(
    outputs: dict,
    labels: torch.Tensor,
    id_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    triplet_loss: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    stn_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """STNReID Eq. 6: ``L = L_R(I_h) + L_R(I_p) + L_R(I_a) + L_STN(I_p, I_a)``.

    ``outputs`` is the training output of :class:`reidlib.models.stnreid.STNReID`: for each
    image kind ``k`` in ``("h", "p", "a")`` the logits ``logits_k`` ``(N, C)`` and the
    global feature ``feat_k`` ``(N, D)``.  ``L_R(I) = id_loss(p_I, y) [+ triplet_loss(f_I, y)]``
    (Eq. 4).  ``triplet_loss`` may return a tensor or a tuple whose first item is the loss
    (the batch-hard triplet also returns its distances).  ``stn_weight`` scales ``L_STN``
    (1.0 is the paper's Eq. 6).

    Returns the total loss and a dict of its terms (detached 0-d tensors: no host sync) for logging.
    """
    missing = [f"{n}_{k}" for k in IMAGE_KINDS for n in ("logits", "feat") if f"{n}_{k}" not in outputs]
    if missing:
        raise KeyError(f"stnreid_loss: the model output lacks {missing}; got keys {sorted(outputs)}")
    total = outputs["feat_h"].new_zeros(())
    terms: dict[str, torch.Tensor] = {}
    for k in IMAGE_KINDS:
        lid = id_loss(outputs[f"logits_{k}"], labels)
        total = total + lid
        terms[f"id_{k}"] = lid.detach()
        if triplet_loss is not None:
            ltri = triplet_loss(outputs[f"feat_{k}"], labels)
            if isinstance(ltri, (tuple, list)):
                ltri = ltri[0]
            total = total + ltri
            terms[f"tri_{k}"] = ltri.detach()
    lstn = stn_loss(outputs["feat_p"], outputs["feat_a"])
    total = total + stn_weight * lstn
    terms["stn"] = lstn.detach()
    terms["total"] = total.detach()
    return total, terms


def theta_regression_loss(theta: torch.Tensor, theta_true: torch.Tensor) -> torch.Tensor:
    """Not in the paper (an oracle for the chapter's study): ``||theta - theta*||^2``.

    The squared error over the six affine parameters, averaged over the batch; ``theta_true``
    is the crop's own transform (:func:`reidlib.data.partial.partial_crop`'s ``theta``).  Both
    are ``(N, 2, 3)``.
    """
    if theta.shape != theta_true.shape or theta.dim() != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(
            f"theta_regression_loss: expected two (N, 2, 3) affine batches, got {tuple(theta.shape)} "
            f"(predicted) and {tuple(theta_true.shape)} (true)"
        )
    return (theta - theta_true.to(theta.dtype)).pow(2).sum(dim=(1, 2)).mean()
