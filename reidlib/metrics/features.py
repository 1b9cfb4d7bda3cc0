"""``Features``: what a model's ``extract`` returns and what a matcher compares.

It lives beside the matchers (:mod:`reidlib.metrics.matchers`), below the models, so that
metrics never import models; :mod:`reidlib.models.base` re-exports it as part of the common
model interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import torch

__all__ = ["Features"]


@dataclass
class Features:
    """Test-time features of a batch of N images; unused fields stay None.

    global_feat: ``(N, D)``
    parts:       ``(N, P, D)`` part features
    visibility:  ``(N, P)`` visibility scores in [0, 1] (VPM's C_i, SANet's visible flags)
    images:      ``(N, 3, H, W)`` kept for pairwise matchers (STNReID, PPCL)
    extra:       any further tensors, keyed by name
    """

    global_feat: Optional[torch.Tensor] = None
    parts: Optional[torch.Tensor] = None
    visibility: Optional[torch.Tensor] = None
    images: Optional[torch.Tensor] = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                return v.shape[0]
        for v in self.extra.values():
            return v.shape[0]
        return 0

    @property
    def device(self) -> torch.device:
        """The device of the first tensor it holds (the CPU when it holds none)."""
        for v in (self.global_feat, self.parts, self.visibility, self.images, *self.extra.values()):
            if isinstance(v, torch.Tensor):
                return v.device
        return torch.device("cpu")

    def _map(self, fn) -> "Features":
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "extra":
                kw["extra"] = {k: fn(t) for k, t in v.items()}
            else:
                kw[f.name] = fn(v) if isinstance(v, torch.Tensor) else v
        return Features(**kw)

    def to(self, device) -> "Features":
        return self._map(lambda t: t.to(device))

    def float(self) -> "Features":
        return self._map(lambda t: t.float() if t.is_floating_point() else t)

    def __getitem__(self, idx) -> "Features":
        return self._map(lambda t: t[idx])

    @staticmethod
    def cat(items: list["Features"]) -> "Features":
        first = items[0]
        kw = {}
        for f in fields(first):
            v = getattr(first, f.name)
            if f.name == "extra":
                kw["extra"] = {k: torch.cat([it.extra[k] for it in items]) for k in v}
            elif isinstance(v, torch.Tensor):
                kw[f.name] = torch.cat([getattr(it, f.name) for it in items])
            else:
                kw[f.name] = None
        return Features(**kw)
