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

from reidlib.engine.method import Method, TrainConfig, relabelled_image_dataset
from reidlib.losses import CrossEntropyLabelSmooth, TripletLoss
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


class BaselineMethod(Method):
    """The strong baseline as a training method (registered as ``"baseline"``).

    ``extra`` settings: ``label_smooth`` (0.1), ``margin`` (0.3), ``soft_margin`` (False),
    ``triplet_weight`` (1.0), ``neck_feat`` ("after"), ``metric`` ("euclidean"),
    ``backbone_weights`` (explicit weights file, or None).
    """

    name = "baseline"

    @classmethod
    def recipe(cls, profile: str) -> TrainConfig:
        extra = {"label_smooth": 0.1, "margin": 0.3, "soft_margin": False, "triplet_weight": 1.0,
                 "neck_feat": "after", "metric": "euclidean", "backbone_weights": None}
        if profile == "full":
            # Luo et al. 2019, Sec. 3 / reference recipe
            return TrainConfig(
                image_size=(256, 128), backbone="resnet50", pretrained=True, last_stride=1,
                epochs=120, batch_p=16, batch_k=4, optimizer="adam", lr=3.5e-4, weight_decay=5e-4,
                backbone_lr_mult=1.0, scheduler="step", milestones=(40, 70), gamma=0.1,
                warmup_epochs=10, warmup_factor=0.01, random_erasing=0.5, flip=0.5, pad=10,
                checkpoint_every=10, extra=extra,
            )
        if profile == "smoke":
            # CPU minutes on SynthPeds smoke (100 ids x 12 images, ~16 PK batches per epoch):
            # a quarter-width one-block ResNet ("resnet10s") from scratch (no ImageNet weights
            # offline), 20 epochs, Adam 2e-3 with a 2-epoch warm-up and x0.1 at epoch 15; the
            # tricks as in full.  SynthPeds' difficulty was calibrated once on this recipe
            # (tools/calibrate_synthpeds.py, results/calibration/synthpeds_v1.json).
            return TrainConfig(
                image_size=(128, 64), backbone="resnet10s", pretrained=False, last_stride=1,
                epochs=20, batch_p=16, batch_k=4, optimizer="adam", lr=2e-3, weight_decay=5e-4,
                backbone_lr_mult=1.0, scheduler="step", milestones=(15,), gamma=0.1,
                warmup_epochs=2, warmup_factor=0.1, random_erasing=0.5, flip=0.5, pad=5,
                amp=True, channels_last=True, num_workers=0, checkpoint_every=5, extra=extra,
            )
        raise ValueError(f"unknown profile {profile!r}: the baseline has recipes 'smoke' and 'full'")

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        x = cfg.extra
        self.ce = CrossEntropyLabelSmooth(num_classes, epsilon=float(x.get("label_smooth", 0.1)))
        self.triplet = TripletLoss(margin=float(x.get("margin", 0.3)), soft_margin=bool(x.get("soft_margin", False)))
        self.triplet_weight = float(x.get("triplet_weight", 1.0))

    def build_model(self) -> Baseline:
        c = self.cfg
        model = Baseline(
            self.num_classes, backbone=c.backbone, pretrained=c.pretrained, last_stride=c.last_stride,
            weights=c.extra.get("backbone_weights"), neck_feat=c.extra.get("neck_feat", "after"),
            metric=c.extra.get("metric", "euclidean"),
        )
        model.image_size = tuple(c.image_size)  # the evaluator's default input size
        return model

    def train_dataset(self, dataset, pid2label: dict[int, int]):
        return relabelled_image_dataset(dataset, pid2label, self.cfg)

    def loss(self, model: nn.Module, batch: dict, epoch: int):
        out = model(batch["image"])
        labels = batch["label"]
        ce = self.ce(out["logits"], labels)
        logs = {"ce": ce.detach()}
        total = ce
        if self.triplet_weight > 0:
            tri = self.triplet(out["feat"], labels)
            total = total + self.triplet_weight * tri
            logs["triplet"] = tri.detach()
        with torch.no_grad():
            logs["acc"] = (out["logits"].argmax(1) == labels).float().mean()
        return total, logs
