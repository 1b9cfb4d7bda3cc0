"""The strong baseline as a training method (registered as ``"baseline"``): its settings, its
recipes and its loss (label-smoothed cross-entropy on the BNNeck logits + batch-hard triplet on
the pooled feature; Luo et al. 2019).  The network is :class:`reidlib.models.baseline.Baseline`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reidlib.losses import CrossEntropyLabelSmooth, TripletLoss
from reidlib.methods.base import Method, Settings, TrainConfig, relabelled_image_dataset, setting, weights_path
from reidlib.models.baseline import Baseline

__all__ = ["BaselineSettings", "BaselineMethod", "BOOK_BACKBONE", "BOOK_BACKBONE_WEIGHTS", "BOOK_TRAIN_SET",
           "book_recipe_defaults"]

#: The book profile's backbone (chosen by measurement: chapter 03, "A pretrained backbone"), its
#: SynthPeds-pretrained weights (the offline stand-in for ImageNet's; ``python -m reidlib weights
#: train backbone``), and the training set of every book model: SynthPeds' Market-1501-shaped
#: preset at the CPU size 128x64 (751 identities, 12,936 images).
BOOK_BACKBONE = "resnet10s"
BOOK_BACKBONE_WEIGHTS = f"weights/book/backbone-{BOOK_BACKBONE}.safetensors"
BOOK_TRAIN_SET = "synthpeds:market@128x64"


def book_recipe_defaults() -> dict:
    """The TrainConfig fields every book recipe shares: the pretrained backbone at 128x64, CPU loaders."""
    return dict(image_size=(128, 64), backbone=BOOK_BACKBONE, pretrained=True, last_stride=1,
                amp=True, channels_last=True, num_workers=0, checkpoint_every=1)


@dataclass(frozen=True)
class BaselineSettings(Settings):
    """The baseline's settings (``TrainConfig.extra``)."""

    label_smooth: float = setting(0.1, min=0.0, max=1.0, doc="cross-entropy label smoothing epsilon")
    margin: float = setting(0.3, min=0.0, doc="triplet margin")
    soft_margin: bool = False
    triplet_weight: float = setting(1.0, min=0.0, doc="0 turns the triplet loss off")
    neck_feat: str = setting("after", choices=("after", "before"), doc="test feature: post- or pre-BNNeck")
    metric: str = setting("euclidean", choices=("euclidean", "cosine"))
    backbone_weights: str | None = setting(None, doc="an explicit backbone weights file (instead of ImageNet's)")

    _method = "baseline"


class BaselineMethod(Method):
    """The strong baseline (see the module docstring)."""

    name = "baseline"
    Settings = BaselineSettings

    @classmethod
    def recipe(cls, profile: str) -> TrainConfig:
        extra = BaselineSettings().to_dict()
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
        if profile == "book":
            # CPU minutes from the SynthPeds-pretrained backbone (the papers start from ImageNet):
            # 10 epochs of PK batches over the 12,936 training images (116k images seen), the tricks as in full,
            # the rate of the paper for a pretrained start, x0.1 for the last 3 epochs.
            return TrainConfig(
                **book_recipe_defaults(), epochs=10, batch_p=16, batch_k=4, optimizer="adam", lr=3.5e-4,
                weight_decay=5e-4, backbone_lr_mult=1.0, scheduler="step", milestones=(7,), gamma=0.1,
                warmup_epochs=1, warmup_factor=0.1, random_erasing=0.5, flip=0.5, pad=5,
                extra={**extra, "backbone_weights": BOOK_BACKBONE_WEIGHTS},
            )
        if profile == "pretrain":
            # the book backbone's pretraining (once): identity classification (+ triplet) of SynthPeds'
            # own pretraining population (preset "pretrain": 751 ids of a seed no evaluation set
            # uses), from scratch, 16 epochs of 12,016 images (192k images seen)
            return TrainConfig(
                image_size=(128, 64), backbone=BOOK_BACKBONE, pretrained=False, last_stride=1, epochs=16,
                batch_p=16, batch_k=4, optimizer="adam", lr=2e-3, weight_decay=5e-4, backbone_lr_mult=1.0,
                scheduler="step", milestones=(12,), gamma=0.1, warmup_epochs=2, warmup_factor=0.1,
                random_erasing=0.5, flip=0.5, pad=5, amp=True, channels_last=True, num_workers=0,
                checkpoint_every=1, extra=extra,
            )
        raise ValueError(f"unknown profile {profile!r}: the baseline has recipes 'smoke', 'book', 'full' "
                         f"(and 'pretrain', the book backbone's pretraining)")

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        s = self.settings
        self.ce = CrossEntropyLabelSmooth(num_classes, epsilon=s.label_smooth)
        self.triplet = TripletLoss(margin=s.margin, soft_margin=s.soft_margin)

    def build_model(self, init: bool = True) -> Baseline:
        c, s = self.cfg, self.settings
        model = Baseline(
            self.num_classes, backbone=c.backbone, pretrained=c.pretrained and init, last_stride=c.last_stride,
            weights=weights_path(s.backbone_weights) if init else None, neck_feat=s.neck_feat, metric=s.metric,
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
        if self.settings.triplet_weight > 0:
            tri = self.triplet(out["feat"], labels)
            total = total + self.settings.triplet_weight * tri
            logs["triplet"] = tri.detach()
        with torch.no_grad():
            logs["acc"] = (out["logits"].argmax(1) == labels).float().mean()
        return total, logs
