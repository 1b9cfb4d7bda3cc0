"""Learning-rate schedules: linear warm-up, then step or cosine decay (per epoch).

:class:`EpochSchedule` is a picklable-free callable (plain numbers only) so that the
``LambdaLR`` state dict it lives in loads with ``torch.load(weights_only=True)``.
Per-group learning rates come from the groups' ``lr_mult`` (backbone vs new layers):
``lr(group, epoch) = base_lr * lr_mult * factor(epoch)``.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import torch

SCHEDULERS = ("step", "cosine")


def warmup_factor_at(epoch: int, warmup_epochs: int, warmup_factor: float) -> float:
    """Linear warm-up (Goyal et al. 2017; strong baseline Eq. 1): ``warmup_factor`` at epoch 0,
    rising linearly to 1 at ``warmup_epochs``; 1 afterwards."""
    if epoch >= warmup_epochs or warmup_epochs <= 0:
        return 1.0
    alpha = epoch / warmup_epochs
    return warmup_factor * (1.0 - alpha) + alpha


class EpochSchedule:
    """``factor(epoch)``: warm-up times step decay (``gamma ** #milestones passed``) or cosine.

    The cosine decay runs from 1 at the end of the warm-up to 0 at ``epochs``.
    """

    def __init__(self, kind: str = "step", epochs: int = 120, milestones=(40, 70), gamma: float = 0.1,
                 warmup_epochs: int = 0, warmup_factor: float = 0.01):
        if kind not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {kind!r}; accepted: {', '.join(SCHEDULERS)}")
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}")
        self.kind = kind
        self.epochs = int(epochs)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.warmup_epochs = int(warmup_epochs)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, epoch: int) -> float:
        w = warmup_factor_at(epoch, self.warmup_epochs, self.warmup_factor)
        if self.kind == "step":
            return w * self.gamma ** bisect_right(self.milestones, epoch)
        span = max(1, self.epochs - self.warmup_epochs)
        t = min(max(epoch - self.warmup_epochs, 0), span) / span
        return w * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` stepped once per epoch with :class:`EpochSchedule` built from a ``TrainConfig``.

    The optimizer's groups must already hold ``lr = cfg.lr * lr_mult``.
    """
    sched = EpochSchedule(cfg.scheduler, cfg.epochs, cfg.milestones, cfg.gamma, cfg.warmup_epochs, cfg.warmup_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=sched)


def build_optimizer(param_groups: list[dict], cfg) -> torch.optim.Optimizer:
    """Adam or SGD (momentum, nesterov off) over groups with ``lr_mult``: ``lr = cfg.lr * lr_mult``."""
    groups = []
    for g in param_groups:
        g = dict(g)
        g["params"] = [p for p in g["params"] if p.requires_grad]
        if not g["params"]:
            continue
        mult = float(g.get("lr_mult", 1.0))
        g["lr_mult"] = mult
        g["lr"] = cfg.lr * mult
        groups.append(g)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; accepted: 'adam', 'sgd'")
