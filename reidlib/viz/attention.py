"""Where a model looks: Grad-CAM maps on the last feature map of a re-ID network.

Grad-CAM (Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization*, ICCV 2017) weighs the channels of a feature map ``A``
(``(C, h, w)``) by the spatial mean of the gradient of a scalar score ``S``:

    alpha_k = (1 / hw) * sum_{i,j} dS / dA_k[i, j]
    L       = ReLU( sum_k alpha_k * A_k )                       (h, w)

For a model that ends in global average pooling and a linear score ``S = w . GAP(A)``
this is the class activation map of Zhou et al. (2016) divided by ``hw``.

Re-ID test identities are not training classes, so an identity logit means nothing on a
test image.  The book scores an image by the **cosine similarity of its feature to a
reference feature** (:func:`feature_similarity`), e.g. a holistic gallery image of the same
person: the map shows which parts of a (partial) query make it match that image.  Note
that the similarity of an image to its *own* feature has a zero gradient (the cosine is at
its maximum), so use another image as the reference.

>>> maps = grad_cam(model, model.backbone, images, feature_similarity(ref_feats)).maps  # (N, h, w)
>>> rgb = overlay_cam(image, maps[0])                                                  # (H, W, 3)

The gradient is taken with respect to the hooked layer's *output*: a forward hook replaces
that output with a detached leaf tensor that requires grad, so nothing is back-propagated
through the layers before it, parameters' ``.grad`` are untouched, and the call works
inside ``torch.no_grad()``.  One forward pass scores a batch; the model runs in eval mode
(BatchNorm on running statistics), so every image's map depends on that image only.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GradCAMOutput", "grad_cam", "feature_similarity", "overlay_cam"]


class GradCAMOutput(NamedTuple):
    """``maps``: ``(N, h, w)`` (or ``(N, H, W)`` when upsampled), ``scores``: ``(N,)`` the scores
    explained, ``weights``: ``(N, C)`` the channel weights ``alpha``."""

    maps: torch.Tensor
    scores: torch.Tensor
    weights: torch.Tensor


def grad_cam(
    model: nn.Module,
    layer: nn.Module,
    images: torch.Tensor,
    score_fn: Callable[[Any], torch.Tensor],
    *,
    relu: bool = True,
    size: Sequence[int] | None = None,
    normalize: bool = False,
) -> GradCAMOutput:
    """Grad-CAM (Selvaraju et al. 2017, Eq. 1-2) of ``score_fn(model(images))`` on ``layer``'s output.

    Args:
        model: the network; ``model(images)`` runs in eval mode (its flag is restored).
        layer: a sub-module of ``model`` whose output is the ``(N, C, h, w)`` feature map
            (e.g. ``model.backbone``); it must run exactly once per forward pass.
        images: ``(N, 3, H, W)`` input batch.
        score_fn: maps the model's output to one score per image, shape ``(N,)``
            (see :func:`feature_similarity`).
        relu: keep only the positive evidence (Grad-CAM); False returns the signed map.
        size: ``(H, W)`` to upsample the maps to (bilinear), e.g. the input size; None keeps ``(h, w)``.
        normalize: divide each map by its maximum (maps that are all zero stay zero).

    Returns:
        :class:`GradCAMOutput` (maps, scores, channel weights), detached, on the images' device.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"grad_cam: images must be a (N, 3, H, W) tensor, got {shape}")
    captured: list[torch.Tensor] = []

    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"grad_cam: the hooked layer {type(module).__name__} returned {shape}; "
                             f"expected a (N, C, h, w) feature map")
        if captured:
            raise RuntimeError(f"grad_cam: the hooked layer {type(module).__name__} ran more than once in one "
                               f"forward pass; hook a layer that runs once")
        leaf = output.detach().float().requires_grad_(True)
        captured.append(leaf)
        return leaf.to(output.dtype)

    was_training = model.training
    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        with torch.enable_grad():
            out = model(images)
            if not captured:
                raise RuntimeError(f"grad_cam: the layer {type(layer).__name__} did not run during model(images); "
                                   f"pass a sub-module of the model")
            scores = score_fn(out)
            n = images.shape[0]
            if not isinstance(scores, torch.Tensor) or scores.shape != (n,):
                got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise ValueError(f"grad_cam: score_fn must return one score per image, shape ({n},); got {got}")
            act = captured[0]
            (grad,) = torch.autograd.grad(scores.float().sum(), act)
    finally:
        handle.remove()
        model.train(was_training)
    act = act.detach()
    weights = grad.mean(dim=(2, 3))  # (N, C): alpha_k
    cam = torch.einsum("nc,nchw->nhw", weights, act)
    if relu:
        cam = cam.clamp_min(0)
    if size is not None:
        cam = F.interpolate(cam[:, None], size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False)[:, 0]
        if relu:
            cam = cam.clamp_min(0)
    if normalize:
        peak = cam.flatten(1).abs().amax(1).view(-1, 1, 1)
        cam = torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny), torch.zeros_like(cam))
    return GradCAMOutput(cam, scores.detach().float(), weights)


def feature_similarity(reference: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``score_fn``: cosine similarity of each output feature to its reference row.

    ``reference``: ``(N, D)`` (one reference per image) or ``(D,)`` (the same for all); it is
    detached.  The model output must be a ``(N, D)`` feature (a re-ID model's eval-mode
    ``forward``) or a :class:`~reidlib.models.base.Features` (its ``global_feat`` is used).
    """
    ref = reference.detach()
    if ref.dim() not in (1, 2):
        raise ValueError(f"feature_similarity: reference must be (D,) or (N, D), got {tuple(ref.shape)}")

    def score(out) -> torch.Tensor:
        f = getattr(out, "global_feat", out)
        if not isinstance(f, torch.Tensor) or f.dim() != 2:
            got = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"feature_similarity: the model output must be a (N, D) feature, got {got}")
        r = ref.to(f.device, f.dtype)
        r = r.expand_as(f) if r.dim() == 1 else r
        if r.shape != f.shape:
            raise ValueError(f"feature_similarity: reference {tuple(r.shape)} does not match the features {tuple(f.shape)}")
        return F.cosine_similarity(f, r, dim=1)

    return score


def overlay_cam(image, cam, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a map over an image: ``(H, W, 3)`` float in [0, 1].

    ``image``: ``(H, W, 3)`` uint8 or float in [0, 1]; ``cam``: ``(h, w)`` (tensor or array,
    non-negative), resized bilinearly to ``(H, W)`` and scaled by its maximum.
    """
    import matplotlib

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"overlay_cam: image must be (H, W, 3), got {img.shape}")
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    c = torch.as_tensor(np.asarray(cam.detach().cpu() if isinstance(cam, torch.Tensor) else cam), dtype=torch.float32)
    if c.dim() != 2:
        raise ValueError(f"overlay_cam: cam must be (h, w), got {tuple(c.shape)}")
    c = F.interpolate(c[None, None], size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0].clamp_min(0)
    peak = float(c.max())
    c = (c / peak).numpy() if peak > 0 else c.numpy()
    heat = matplotlib.colormaps[cmap](c)[..., :3].astype(np.float32)
    return np.clip((1 - alpha) * img + alpha * heat, 0.0, 1.0)
