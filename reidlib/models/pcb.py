"""PCB, the Part-based Convolutional Baseline (Sun et al. 2018), optionally with a triplet loss.

ResNet (layer 4 stride 1) -> the feature map is cut into ``parts`` horizontal stripes, each
average-pooled to a column vector ``g_i`` (2048-d for ResNet-50) -> a shared 1x1 conv
reduces it to ``h_i`` (256-d) + BN + ReLU -> one classifier per stripe; the loss is the sum
of the stripes' cross-entropies.  VPM's comparison ("PCB + triplet") adds a batch-hard
triplet loss; here it acts on the concatenated stripe features ``[g_1 .. g_p]``.

Test feature: the stripe features ``g_i``, each L2-normalised, concatenated
(``Features(parts=(N, p, C), global_feat=(N, p*C))``), compared by
:class:`reidlib.metrics.matchers.PCBMatcher`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reidlib.models.backbones import build_backbone
from reidlib.models.base import Features, ReIDModel


def stripe_pool(fmap: torch.Tensor, parts: int) -> torch.Tensor:
    """PCB Sec. 3.1: average-pool the ``(N, C, H, W)`` map over ``parts`` horizontal stripes -> ``(N, parts, C)``.

    Uneven heights follow ``adaptive_avg_pool2d``'s split (stripes may overlap by a row).
    """
    if fmap.shape[2] < parts:
        raise ValueError(f"the feature map has {fmap.shape[2]} rows, fewer than parts={parts}; use taller images")
    return F.adaptive_avg_pool2d(fmap, (parts, 1)).squeeze(3).transpose(1, 2)


class PCB(ReIDModel):
    """PCB with ``parts`` stripes; training forward returns
    ``{"logits": (N, parts, num_classes), "feat": (N, parts * C), "parts": (N, parts, C)}``."""

    def __init__(
        self,
        num_classes: int,
        parts: int = 6,
        reduced_dim: int = 256,
        backbone: str = "resnet50",
        pretrained: bool = True,
        last_stride: int = 1,
        weights: str | None = None,
        dropout: float = 0.5,
        metric: str = "euclidean",
    ):
        super().__init__()
        if parts < 1:
            raise ValueError(f"parts must be >= 1, got {parts}")
        self.backbone = build_backbone(backbone, pretrained=pretrained, last_stride=last_stride, weights=weights)
        c = self.backbone.out_channels
        self.parts = parts
        self.num_classes = num_classes
        self.metric = metric
        self.dropout = nn.Dropout(p=dropout)
        self.reduce = nn.Sequential(
            nn.Conv2d(c, reduced_dim, kernel_size=1, bias=False),
            nn.BatchNorm2d(reduced_dim),
            nn.ReLU(inplace=True),
        )
        nn.init.kaiming_normal_(self.reduce[0].weight, mode="fan_out", nonlinearity="relu")
        # one classifier per stripe, batched: weight (parts, num_classes, reduced_dim)
        self.classifier_weight = nn.Parameter(torch.randn(parts, num_classes, reduced_dim) * 0.001)
        self.classifier_bias = nn.Parameter(torch.zeros(parts, num_classes))

    def stripes(self, images: torch.Tensor) -> torch.Tensor:
        """The stripe features ``g_i``: ``(N, parts, C)``."""
        return stripe_pool(self.backbone(images), self.parts)

    def forward(self, images: torch.Tensor):
        g = self.stripes(images)  # (N, P, C)
        if not self.training:
            return F.normalize(g.float(), dim=2).flatten(1)
        h = self.reduce(self.dropout(g).transpose(1, 2).unsqueeze(3))  # (N, R, P, 1)
        h = h.squeeze(3).transpose(1, 2)  # (N, P, R)
        logits = torch.einsum("npr,pcr->npc", h, self.classifier_weight) + self.classifier_bias
        return {"logits": logits, "feat": g.flatten(1), "parts": g}

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> Features:
        parts = F.normalize(self.stripes(images).float(), dim=2)
        return Features(global_feat=parts.flatten(1), parts=parts)

    def matcher(self):
        from reidlib.metrics.matchers import PCBMatcher

        return PCBMatcher(metric=self.metric)
