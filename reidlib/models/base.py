"""The common model interface.

Every method's model is an ``nn.Module`` with two modes:

* ``model.train()``: ``model(images, **batch_extras)`` returns a ``dict`` of whatever its
  losses need (logits, features, region scores, ...).
* ``model.eval()``: ``model.extract(images)`` returns a :class:`Features` -- a global
  feature, or part features with visibility scores, or (for pairwise methods) whatever the
  matcher needs -- and ``model.matcher()`` returns the :class:`reidlib.metrics.matchers.Matcher`
  that turns query and gallery :class:`Features` into a distance matrix.
"""

from __future__ import annotations

import torch
from torch import nn

from reidlib.metrics.features import Features  # the common interface's feature container

__all__ = ["Features", "ReIDModel", "unwrap"]


class ReIDModel(nn.Module):
    """Base class of every method's model (see the module docstring)."""

    def extract(self, images: torch.Tensor) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError

    def matcher(self):  # pragma: no cover - abstract
        raise NotImplementedError


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
