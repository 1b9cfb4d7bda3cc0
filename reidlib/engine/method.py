"""What a method gives the engine: its model, its batch recipe, its loss and its recipes.

The engine (``reidlib.engine.trainer.Trainer``) supplies everything else: device,
mixed precision, channels_last, loaders, sampler, schedules, checkpoints, logging, DDP.

A method subclasses :class:`Method` and registers itself in
``reidlib.engine.registry.METHODS`` under its CLI name (``--method NAME``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn


@dataclass
class TrainConfig:
    """One training recipe.  ``Method.recipe(profile)`` returns the method's defaults."""

    image_size: tuple[int, int] = (256, 128)  # (H, W)
    backbone: str = "resnet50"
    pretrained: bool = True  # ImageNet weights through torchvision's weights API
    last_stride: int = 1
    epochs: int = 120
    batch_p: int = 16  # identities per batch
    batch_k: int = 4  # images per identity
    sampler: str = "pk"  # "pk" (P identities x K images) | "random" (shuffled, batch_p * batch_k images)
    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9
    backbone_lr_mult: float = 1.0  # lr multiplier of the pretrained backbone vs new layers
    scheduler: str = "step"  # "step" | "cosine"
    milestones: tuple[int, ...] = (40, 70)
    gamma: float = 0.1
    warmup_epochs: int = 10
    warmup_factor: float = 0.01
    random_erasing: float = 0.5
    flip: float = 0.5
    pad: int = 10
    amp: bool = True  # bf16 where supported, fp16 + scaler otherwise, fp32 on CPU
    channels_last: bool = True
    compile: bool = False
    num_workers: int = 2
    checkpoint_every: int = 10  # epochs
    max_iters_per_epoch: int | None = None  # cap, for smoke runs
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific settings

    def replace(self, **kw) -> "TrainConfig":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["image_size"] = tuple(d["image_size"])
        d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    @property
    def batch_size(self) -> int:
        """Images per optimisation step (all processes together): ``batch_p * batch_k``."""
        return self.batch_p * self.batch_k


class Method:
    """Base class of a training method.

    Subclasses set ``name`` and implement :meth:`recipe`, :meth:`build_model`,
    :meth:`train_dataset` and :meth:`loss`.
    """

    name: str = "method"

    def __init__(self, cfg: TrainConfig, num_classes: int):
        self.cfg = cfg
        self.num_classes = num_classes

    @classmethod
    def recipe(cls, profile: str) -> TrainConfig:  # pragma: no cover - abstract
        """The method's default :class:`TrainConfig` for ``"smoke"`` or ``"full"``."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def train_dataset(self, dataset, pid2label: dict[int, int]) -> torch.utils.data.Dataset:  # pragma: no cover
        """The training ``Dataset`` (the batch recipe: transforms, partial crops).

        Items are dicts with at least ``"image"`` (float tensor ``(3, H, W)``) and
        ``"label"`` (int, 0..num_classes-1); the engine's PK sampler needs the dataset to
        expose ``.pids`` (one training label per item).
        """
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:  # pragma: no cover
        """Forward the batch and return ``(total_loss, {name: value})`` for logging.

        Values may be floats or detached 0-d tensors (tensors avoid a GPU sync per step).
        The engine calls this inside autocast with the batch on the device; ``model`` may be
        wrapped (DDP, torch.compile): call it, do not reach into its attributes.  Learnable
        loss parameters belong in the model (the optimizer only sees ``model``'s).
        """
        raise NotImplementedError

    def param_groups(self, model: nn.Module) -> list[dict]:
        """Parameter groups with an ``lr_mult``; default: backbone vs new layers.

        Models expose their backbone as ``model.backbone``.
        """
        backbone = getattr(model, "backbone", None)
        if backbone is None:
            return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_mult": 1.0}]
        bb = {id(p) for p in backbone.parameters()}
        return [
            {"params": [p for p in backbone.parameters() if p.requires_grad], "lr_mult": self.cfg.backbone_lr_mult},
            {"params": [p for p in model.parameters() if p.requires_grad and id(p) not in bb], "lr_mult": 1.0},
        ]


class RelabelledDataset(torch.utils.data.Dataset):
    """Adds ``"label"`` (``pid2label[pid]``) to the items of a dataset that yields ``"pid"``.

    ``.pids`` holds the training label of every item (what the PK sampler groups by).
    """

    def __init__(self, base, pid2label: dict[int, int]):
        self.base = base
        self.pid2label = dict(pid2label)
        try:
            self.pids = [self.pid2label[int(p)] for p in base.pids]
        except KeyError as e:
            raise KeyError(f"training pid {e.args[0]} has no label in pid2label ({len(pid2label)} labels)") from None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index):
        item = dict(self.base[index])
        item["label"] = self.pid2label[int(item["pid"])]
        return item


def relabelled_image_dataset(dataset, pid2label: dict[int, int], cfg: TrainConfig, with_mask: bool = False):
    """The standard training set: ``dataset.train`` images through the training transform
    (resize, flip, pad + crop, random erasing per ``cfg``), labelled ``0..N-1``."""
    from reidlib.data.loader import ImageDataset
    from reidlib.data.transforms import build_train_transform

    tf = build_train_transform(cfg.image_size, flip=cfg.flip, pad=cfg.pad, random_erasing=cfg.random_erasing)
    return ImageDataset(dataset.train, dataset, transform=tf, with_mask=with_mask, relabel=pid2label)
