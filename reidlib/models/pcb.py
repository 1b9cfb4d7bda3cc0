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

from reidlib.engine.method import Method, TrainConfig, relabelled_image_dataset
from reidlib.losses import TripletLoss, cross_entropy_label_smooth
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


def pcb_id_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """PCB Sec. 3.1: the sum over stripes of each stripe classifier's cross-entropy.

    ``logits``: ``(N, P, num_classes)``; ``epsilon`` > 0 smooths the labels (not in PCB).
    """
    n, p, c = logits.shape
    per_part = cross_entropy_label_smooth(logits.reshape(n * p, c), labels.repeat_interleave(p), epsilon)
    return per_part * p  # mean over the N*P rows times P = sum over stripes of the per-stripe means


class PCBMethod(Method):
    """PCB as a training method (registered as ``"pcb"``).

    ``extra`` settings: ``parts`` (6), ``reduced_dim`` (256), ``dropout`` (0.5), ``triplet``
    (False; True = VPM's "PCB + triplet", needs ``sampler="pk"``), ``margin`` (0.3),
    ``label_smooth`` (0.0), ``metric``, ``backbone_weights``.
    """

    name = "pcb"

    @classmethod
    def recipe(cls, profile: str) -> TrainConfig:
        extra = {"parts": 6, "reduced_dim": 256, "dropout": 0.5, "triplet": False, "margin": 0.3,
                 "label_smooth": 0.0, "metric": "euclidean", "backbone_weights": None}
        if profile == "full":
            # Sun et al. 2018 (the authors' code, which VPM's Table 1 reuses): 384x128, SGD,
            # lr 0.1 new layers / 0.01 backbone, x0.1 at epoch 40, 60 epochs, batch 64.
            return TrainConfig(
                image_size=(384, 128), backbone="resnet50", pretrained=True, last_stride=1,
                epochs=60, batch_p=16, batch_k=4, sampler="random", optimizer="sgd", lr=0.1,
                momentum=0.9, weight_decay=5e-4, backbone_lr_mult=0.1, scheduler="step",
                milestones=(40,), gamma=0.1, warmup_epochs=0, warmup_factor=1.0,
                random_erasing=0.0, flip=0.5, pad=0, checkpoint_every=10, extra=extra,
            )
        if profile == "smoke":
            # CPU minutes on SynthPeds smoke, with the baseline's smoke backbone (resnet10s from
            # scratch) and length (20 epochs); SGD as in PCB's recipe, at a rate for training
            # from scratch.
            return TrainConfig(
                image_size=(128, 64), backbone="resnet10s", pretrained=False, last_stride=1,
                epochs=20, batch_p=16, batch_k=4, sampler="random", optimizer="sgd", lr=0.05,
                momentum=0.9, weight_decay=5e-4, backbone_lr_mult=1.0, scheduler="step",
                milestones=(15,), gamma=0.1, warmup_epochs=1, warmup_factor=0.1,
                random_erasing=0.0, flip=0.5, pad=5, num_workers=0, checkpoint_every=5,
                extra={**extra, "reduced_dim": 128},
            )
        raise ValueError(f"unknown profile {profile!r}: PCB has recipes 'smoke' and 'full'")

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        x = cfg.extra
        self.use_triplet = bool(x.get("triplet", False))
        if self.use_triplet and cfg.sampler != "pk":
            raise ValueError("PCB + triplet needs identity-balanced batches: set sampler=pk "
                             "(e.g. --set triplet=true sampler=pk)")
        self.triplet = TripletLoss(margin=float(x.get("margin", 0.3)))
        self.epsilon = float(x.get("label_smooth", 0.0))

    def build_model(self) -> PCB:
        c, x = self.cfg, self.cfg.extra
        model = PCB(self.num_classes, parts=int(x.get("parts", 6)), reduced_dim=int(x.get("reduced_dim", 256)),
                    backbone=c.backbone, pretrained=c.pretrained, last_stride=c.last_stride,
                    weights=x.get("backbone_weights"), dropout=float(x.get("dropout", 0.5)),
                    metric=x.get("metric", "euclidean"))
        model.image_size = tuple(c.image_size)  # the evaluator's default input size
        return model

    def train_dataset(self, dataset, pid2label: dict[int, int]):
        return relabelled_image_dataset(dataset, pid2label, self.cfg)

    def loss(self, model: nn.Module, batch: dict, epoch: int):
        out = model(batch["image"])
        labels = batch["label"]
        ce = pcb_id_loss(out["logits"], labels, self.epsilon)
        logs = {"ce": ce.detach()}
        total = ce
        if self.use_triplet:
            tri = self.triplet(out["feat"], labels)
            total = total + tri
            logs["triplet"] = tri.detach()
        with torch.no_grad():
            logs["acc"] = (out["logits"].float().softmax(2).sum(1).argmax(1) == labels).float().mean()
        return total, logs
