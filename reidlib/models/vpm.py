"""VPM: the Visibility-aware Part Model (Sun et al., CVPR 2019).

VPM pre-defines ``p = m x n`` regions on the holistic pedestrian (``m`` rows, ``n``
columns).  On the backbone's feature map ``T`` (``c x h x w``) a *region locator*
(a 1x1 convolution and a softmax) gives every pixel ``g`` a probability of belonging
to each region (Eq. 1); the sum of a region's probability map is its visibility
score ``C_i`` (Eq. 2); the probability-weighted average of ``T`` is the region's
feature ``f_i`` (Eq. 3).  Two images are compared on their shared regions (Eq. 4,
:func:`reidlib.metrics.distance.visibility_weighted_distance` through
:class:`reidlib.metrics.matchers.VisibilityWeightedMatcher`).

Training (Eq. 5-8) lives in :mod:`reidlib.losses.vpm`; the batch recipe, the two stages and
the ablations of the paper's Table 3 in :mod:`reidlib.methods.vpm`.

Decisions the paper leaves open (documented in the book's chapter 04):

* the region locator's 1x1 convolution has no bias (Eq. 1 is ``softmax(W^T g)``);
* each identity classifier is exactly two fully-connected layers (reduce to
  ``reduce_dim``, then ``K`` classes) with nothing in between, as Sec. 3.3 describes;
* test-time visibility is ``C_i / (h w)`` -- Eq. 2 divided by the number of pixels so that
  it lies in ``[0, 1]``; Eq. 4 is invariant to this common scale;
* features are compared unnormalised (Eq. 4 and Eq. 7 use plain Euclidean distances).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from reidlib.models.backbones import build_backbone
from reidlib.models.base import Features, ReIDModel

__all__ = [
    "region_probabilities",
    "region_visibility",
    "region_features",
    "PartClassifiers",
    "VPM",
]


# ---------------------------------------------------------------------------
# The three equations of the model
# ---------------------------------------------------------------------------
def region_probabilities(region_logits: torch.Tensor) -> torch.Tensor:
    """VPM Eq. 1: ``P(R_i | g) = exp(W_i^T g) / sum_j exp(W_j^T g)``.

    Args:
        region_logits: ``(N, p, h, w)`` -- the region locator's 1x1 convolution
            ``W^T g`` at every pixel ``g`` of ``T``.

    Returns:
        ``(N, p, h, w)`` probabilities; they sum to 1 over the ``p`` regions at every pixel.
    """
    if region_logits.dim() != 4:
        raise ValueError(
            f"region_probabilities: region_logits must be (N, p, h, w), got shape {tuple(region_logits.shape)}"
        )
    return region_logits.softmax(dim=1)


def region_visibility(probs: torch.Tensor) -> torch.Tensor:
    """VPM Eq. 2: ``C_i = sum_{g in T} P(R_i | g)``, the visibility score of region ``i``.

    Args:
        probs: ``(N, p, h, w)`` region probabilities (Eq. 1).

    Returns:
        ``(N, p)``; over the regions it sums to ``h * w`` (the number of pixels).
    """
    if probs.dim() != 4:
        raise ValueError(f"region_visibility: probs must be (N, p, h, w), got shape {tuple(probs.shape)}")
    return probs.sum(dim=(2, 3))


def region_features(feature_map: torch.Tensor, probs: torch.Tensor, visibility: torch.Tensor,
                    eps: float = 1e-6) -> torch.Tensor:
    """VPM Eq. 3: ``f_i = sum_{g in T} P(R_i | g) g / C_i`` (probability-weighted pooling).

    The division by ``C_i`` (Eq. 2) keeps the feature's norm independent of the region's
    size.  ``C_i`` is clamped at ``eps`` so that a region whose probabilities underflow
    to zero gives a zero feature rather than NaN.

    Args:
        feature_map: ``(N, c, h, w)`` -- the tensor ``T``.
        probs: ``(N, p, h, w)`` -- Eq. 1.
        visibility: ``(N, p)`` -- Eq. 2 (``probs.sum((2, 3))``).

    Returns:
        ``(N, p, c)`` region features.
    """
    if feature_map.dim() != 4 or probs.dim() != 4 or feature_map.shape[0] != probs.shape[0] \
            or feature_map.shape[2:] != probs.shape[2:]:
        raise ValueError(
            "region_features: expected feature_map (N, c, h, w) and probs (N, p, h, w) with the same N, h, w; "
            f"got {tuple(feature_map.shape)} and {tuple(probs.shape)}"
        )
    if visibility.shape != probs.shape[:2]:
        raise ValueError(
            f"region_features: visibility must be (N, p) = {tuple(probs.shape[:2])}, got {tuple(visibility.shape)}"
        )
    pooled = torch.einsum("nphw,nchw->npc", probs.to(feature_map.dtype), feature_map)
    return pooled / visibility.to(pooled.dtype).clamp_min(eps).unsqueeze(-1)


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------
class PartClassifiers(nn.Module):
    """``p`` independent identity classifiers ``IP_i`` (VPM Sec. 3.3), batched.

    Each is two fully-connected layers: ``c -> reduce_dim`` then ``reduce_dim -> K``
    (the softmax is in the loss).  The ``p`` classifiers are stored as stacked weights
    and applied with one ``einsum`` each, so the cost does not grow with a Python loop.
    Initialisation matches ``nn.Linear``'s default.
    """

    def __init__(self, num_parts: int, in_dim: int, reduce_dim: int, num_classes: int):
        super().__init__()
        self.num_parts, self.in_dim, self.reduce_dim, self.num_classes = num_parts, in_dim, reduce_dim, num_classes
        self.w1 = nn.Parameter(torch.empty(num_parts, in_dim, reduce_dim))
        self.b1 = nn.Parameter(torch.empty(num_parts, reduce_dim))
        self.w2 = nn.Parameter(torch.empty(num_parts, reduce_dim, num_classes))
        self.b2 = nn.Parameter(torch.empty(num_parts, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w, b, fan_in in ((self.w1, self.b1, self.in_dim), (self.w2, self.b2, self.reduce_dim)):
            bound = 1.0 / math.sqrt(fan_in)
            # kaiming_uniform(a=sqrt(5)) as nn.Linear does, on each part's (fan_in x out) matrix
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def reduce(self, parts: torch.Tensor) -> torch.Tensor:
        """First layer: ``(N, p, c) -> (N, p, reduce_dim)``."""
        return torch.einsum("npc,pcr->npr", parts, self.w1) + self.b1

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        """``(N, p, c)`` region features -> ``(N, p, K)`` identity logits."""
        if parts.dim() != 3 or parts.shape[1:] != (self.num_parts, self.in_dim):
            raise ValueError(
                f"PartClassifiers: expected (N, {self.num_parts}, {self.in_dim}), got {tuple(parts.shape)}"
            )
        return torch.einsum("npr,prk->npk", self.reduce(parts), self.w2) + self.b2

    def extra_repr(self) -> str:
        return f"parts={self.num_parts}, {self.in_dim} -> {self.reduce_dim} -> {self.num_classes}"


def check_grid(parts) -> tuple[int, int]:
    if (not isinstance(parts, (tuple, list)) or len(parts) != 2
            or not all(isinstance(v, int) and v >= 1 for v in parts)):
        raise ValueError(f"VPM: parts must be (m, n) = (rows, columns) of positive ints, e.g. (6, 1); got {parts!r}")
    return int(parts[0]), int(parts[1])


class VPM(ReIDModel):
    """The Visibility-aware Part Model.

    Args:
        num_classes: number of training identities ``K``.
        parts: ``(m, n)`` -- ``m`` rows by ``n`` columns of pre-defined regions
            (``p = m n``); region ``i = r n + c`` is row ``r`` (top = 0), column ``c`` (left = 0),
            the order of :func:`reidlib.data.partial.partial_crop`'s region labels.
        backbone: a name known to :func:`reidlib.models.backbones.build_backbone`.
        pretrained: load ImageNet weights.
        last_stride: stride of the backbone's last stage (1 as in PCB and VPM).
        reduce_dim: width of each identity classifier's first layer.
        weights: an explicit backbone state-dict file (instead of ImageNet weights).
        test_visibility: ``False`` gives MVPM-1 of Table 3: at test time every region
            counts as fully visible (``C_i = 1``), so Eq. 4 averages all local distances.

    In training mode ``model(images)`` returns a dict:
    ``region_logits`` ``(N, p, h, w)`` (``W^T g``, for Eq. 5), ``probs`` ``(N, p, h, w)``
    (Eq. 1), ``visibility`` ``(N, p)`` (Eq. 2), ``parts`` ``(N, p, c)`` (Eq. 3) and
    ``logits`` ``(N, p, K)`` (the identity classifiers, for Eq. 6).
    """

    def __init__(self, num_classes: int, parts: Sequence[int] = (6, 1), backbone: str = "resnet50",
                 pretrained: bool = True, last_stride: int = 1, reduce_dim: int = 256,
                 test_visibility: bool = True, weights: str | None = None):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"VPM: num_classes must be a positive int, got {num_classes!r}")
        self.grid = check_grid(tuple(parts))
        self.num_parts = self.grid[0] * self.grid[1]
        self.num_classes = num_classes
        self.test_visibility = bool(test_visibility)
        self.backbone = build_backbone(backbone, pretrained=pretrained, last_stride=last_stride, weights=weights)
        self.feat_dim = int(self.backbone.out_channels)
        # Eq. 1: a 1x1 convolution W (no bias: softmax(W^T g)).
        self.locator = nn.Conv2d(self.feat_dim, self.num_parts, kernel_size=1, bias=False)
        nn.init.normal_(self.locator.weight, std=0.001)
        self.classifiers = PartClassifiers(self.num_parts, self.feat_dim, reduce_dim, num_classes)
        self._feat_size_cache: dict[tuple[int, int], tuple[int, int]] = {}

    # -- helpers ----------------------------------------------------------
    @torch.no_grad()
    def feature_size(self, image_size: Sequence[int]) -> tuple[int, int]:
        """``(h, w)`` of ``T`` for an input of ``image_size = (H, W)`` (computed once, cached)."""
        key = (int(image_size[0]), int(image_size[1]))
        if key not in self._feat_size_cache:
            p = next(self.backbone.parameters())
            was_training = self.backbone.training
            self.backbone.eval()
            t = self.backbone(torch.zeros(1, 3, *key, device=p.device, dtype=p.dtype))
            self.backbone.train(was_training)
            self._feat_size_cache[key] = (int(t.shape[-2]), int(t.shape[-1]))
        return self._feat_size_cache[key]

    def locate(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backbone + region locator + feature extractor (Eq. 1-3)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"VPM: images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        t = self.backbone(images)
        region_logits = self.locator(t)
        # The softmax, the pooling and the division run in float32 even under autocast.
        with torch.autocast(device_type=t.device.type, enabled=False):
            probs = region_probabilities(region_logits.float())
            vis = region_visibility(probs)
            parts = region_features(t.float(), probs, vis)
        return {"feature_map": t, "region_logits": region_logits, "probs": probs, "visibility": vis, "parts": parts}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.locate(images)
        out["logits"] = self.classifiers(out["parts"])
        del out["feature_map"]
        return out

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> Features:
        """Region features ``(N, p, c)`` and visibility ``C_i / (h w)`` in ``[0, 1]`` ``(N, p)``.

        With ``test_visibility=False`` (MVPM-1) the visibility is all ones.
        """
        out = self.locate(images)
        h, w = out["probs"].shape[-2:]
        vis = out["visibility"] / float(h * w)
        if not self.test_visibility:
            vis = torch.ones_like(vis)
        return Features(parts=out["parts"], visibility=vis)

    def matcher(self):
        """VPM Eq. 4 (shared-region distance), from :mod:`reidlib.metrics.matchers`."""
        from reidlib.metrics.matchers import VisibilityWeightedMatcher

        return VisibilityWeightedMatcher()
