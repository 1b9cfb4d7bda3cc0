"""The strong baseline ("bag of tricks", Luo et al. 2019): ResNet + GAP + BNNeck.

Training: the pooled feature ``f_t`` goes to the batch-hard triplet loss (margin 0.3); the
BNNeck (BatchNorm1d with its bias frozen at 0) gives ``f_i``, which goes to a bias-free
classifier trained with label-smoothed cross-entropy (eps 0.1).  Testing: the post-BN
feature ``f_i``, L2-normalised, compared with the squared euclidean distance (on unit
vectors this ranks exactly like the cosine distance, ``|a-b|^2 = 2 - 2 cos``).

This is VPM's "baseline", STNReID's "Baseline" and PPCL's "Resize" model.  How partial
images are fed at test time (resize vs pad) is a test transform, not a model detail.
"""

from __future__ import annotations

import torch
from torch import nn

from reidlib.models.backbones import build_backbone
from reidlib.models.base import Features, ReIDModel


def init_bnneck(bn: nn.BatchNorm1d) -> None:
    """BNNeck (Luo et al. 2019, Sec. 4.6): weight 1, bias 0 and frozen (no shift)."""
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    bn.bias.requires_grad_(False)


class Baseline(ReIDModel):
    """ResNet backbone -> global average pooling -> BNNeck -> bias-free classifier.

    ``model(images)`` in training mode returns ``{"logits": (N, num_classes), "feat": (N, C)}``
    (``feat`` = pre-BN pooled feature, for the triplet loss).  ``extract`` returns
    ``Features(global_feat=...)``: the post-BN feature (``neck_feat="before"``: the pre-BN
    one); the matcher L2-normalises it.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool = True,
        last_stride: int = 1,
        weights: str | None = None,
        neck_feat: str = "after",
        metric: str = "euclidean",
    ):
        super().__init__()
        if neck_feat not in ("after", "before"):
            raise ValueError(f"neck_feat must be 'after' (post-BN) or 'before' (pre-BN), got {neck_feat!r}")
        self.backbone = build_backbone(backbone, pretrained=pretrained, last_stride=last_stride, weights=weights)
        dim = self.backbone.out_channels
        self.feat_dim = dim
        self.num_classes = num_classes
        self.neck_feat = neck_feat
        self.metric = metric
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.bottleneck = nn.BatchNorm1d(dim)
        init_bnneck(self.bottleneck)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        return self.gap(self.backbone(images)).flatten(1)

    def forward(self, images: torch.Tensor):
        feat = self.pooled(images)
        bn = self.bottleneck(feat)
        if self.training:
            return {"logits": self.classifier(bn), "feat": feat}
        return bn if self.neck_feat == "after" else feat

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> Features:
        feat = self.pooled(images)
        f = self.bottleneck(feat) if self.neck_feat == "after" else feat
        return Features(global_feat=f.float())

    def matcher(self):
        """Squared euclidean (or cosine) on L2-normalised features (:class:`GlobalMatcher`)."""
        from reidlib.metrics.matchers import GlobalMatcher

        return GlobalMatcher(metric=self.metric, normalize=True)
