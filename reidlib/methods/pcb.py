"""PCB as a training method (registered as ``"pcb"``): settings, recipes and the loss (the sum
of the stripe classifiers' cross-entropies, :func:`reidlib.losses.pcb.pcb_id_loss`, plus VPM's
optional triplet).  The network is :class:`reidlib.models.pcb.PCB`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reidlib.losses import TripletLoss
from reidlib.losses.pcb import pcb_id_loss
from reidlib.methods.base import Method, Settings, TrainConfig, relabelled_image_dataset, setting, weights_path
from reidlib.models.pcb import PCB

__all__ = ["PCBSettings", "PCBMethod"]


@dataclass(frozen=True)
class PCBSettings(Settings):
    """PCB's settings (``TrainConfig.extra``)."""

    parts: int = setting(6, min=1, doc="horizontal stripes")
    reduced_dim: int = setting(256, min=1)
    dropout: float = setting(0.5, min=0.0, max=1.0)
    triplet: bool = setting(False, doc="VPM's 'PCB + triplet' (needs sampler='pk')")
    margin: float = setting(0.3, min=0.0)
    label_smooth: float = setting(0.0, min=0.0, max=1.0)
    metric: str = setting("euclidean", choices=("euclidean", "cosine"))
    backbone_weights: str | None = None

    _method = "pcb"


class PCBMethod(Method):
    """PCB (see the module docstring)."""

    name = "pcb"
    Settings = PCBSettings

    @classmethod
    def recipe(cls, profile: str) -> TrainConfig:
        extra = PCBSettings().to_dict()
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
        if profile == "book":
            # the baseline's book budget from the same pretrained backbone: 10 epochs of 182
            # batches of 64 (116k images, as many as the baseline's PK batches give); SGD as in
            # PCB's recipe, the backbone at a tenth of the new layers' rate
            from reidlib.methods.baseline import BOOK_BACKBONE_WEIGHTS, book_recipe_defaults

            return TrainConfig(
                **book_recipe_defaults(), epochs=10, batch_p=16, batch_k=4, sampler="random", optimizer="sgd",
                lr=0.05, momentum=0.9, weight_decay=5e-4, backbone_lr_mult=0.1, scheduler="step", milestones=(7,),
                gamma=0.1, warmup_epochs=1, warmup_factor=0.1, random_erasing=0.0, flip=0.5, pad=5,
                max_iters_per_epoch=182, extra={**extra, "reduced_dim": 128, "backbone_weights": BOOK_BACKBONE_WEIGHTS},
            )
        raise ValueError(f"unknown profile {profile!r}: PCB has recipes 'smoke', 'book' and 'full'")

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        s = self.settings
        if s.triplet and cfg.sampler != "pk":
            raise ValueError("PCB + triplet needs identity-balanced batches: set sampler=pk "
                             "(e.g. --set triplet=true sampler=pk)")
        self.triplet = TripletLoss(margin=s.margin)

    def build_model(self, init: bool = True) -> PCB:
        c, s = self.cfg, self.settings
        model = PCB(self.num_classes, parts=s.parts, reduced_dim=s.reduced_dim, backbone=c.backbone,
                    pretrained=c.pretrained and init, last_stride=c.last_stride,
                    weights=weights_path(s.backbone_weights) if init else None, dropout=s.dropout, metric=s.metric)
        model.image_size = tuple(c.image_size)  # the evaluator's default input size
        return model

    def train_dataset(self, dataset, pid2label: dict[int, int]):
        return relabelled_image_dataset(dataset, pid2label, self.cfg)

    def loss(self, model: nn.Module, batch: dict, epoch: int):
        out = model(batch["image"])
        labels = batch["label"]
        ce = pcb_id_loss(out["logits"], labels, self.settings.label_smooth)
        logs = {"ce": ce.detach()}
        total = ce
        if self.settings.triplet:
            tri = self.triplet(out["feat"], labels)
            total = total + tri
            logs["triplet"] = tri.detach()
        with torch.no_grad():
            logs["acc"] = (out["logits"].float().softmax(2).sum(1).argmax(1) == labels).float().mean()
        return total, logs
