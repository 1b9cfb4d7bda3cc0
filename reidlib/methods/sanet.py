"""SANet as a training method (registered as ``"sanet"``): settings, Table 3's rows as variants,
Table 4's settings, recipes, and the loss (Eq. 6).

SANet is HPNet's method (:mod:`reidlib.methods.hpnet`: the same batch recipe -- holistic frames and
partial crops with their part-mask labels -- and the same recipes and budgets) with SANet's model
(:class:`reidlib.models.sanet.SANet`: the AFE and the global branch), Eq. 4's soft mask pooling
and Eq. 6's per-branch triplet loss.

Table 3's rows (:data:`SANET_VARIANTS`) switch the model's components and nothing else: the
"hpnet" row is HPNet's architecture (four part branches, no AFE) trained and pooled as SANet
trains (Eq. 4, Eq. 6), so that each row adds one component; the reference recipe's HPNet
(binarised pooling, the triplet on commonly visible parts) is the ``"hpnet"`` method.  Table 4's
rows set ``afe_layers`` (3, 5, 7) and ``afe_kernel`` (1, 3, 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from reidlib.methods.base import TrainConfig, setting
from reidlib.methods.hpnet import TRIPLET_FORMS, HPNetMethod, HPNetSettings, profile_recipe
from reidlib.models.hpnet import MASK_POOLING
from reidlib.models.sanet import AFE_MODES, SANet

__all__ = ["SANetVariant", "SANET_VARIANTS", "SANET_BOOK_NAMES", "SANET_TABLE4_BOOK", "AFE_LAYERS", "AFE_KERNELS",
           "SANetSettings", "SANetMethod"]

#: Table 4's choices.
AFE_LAYERS = (3, 5, 7)
AFE_KERNELS = (1, 3, 5)


@dataclass(frozen=True)
class SANetVariant:
    """One row of SANet's Table 3 as switches of the same model."""

    name: str
    label: str
    description: str
    afe: str
    global_branch: bool

    def settings(self) -> dict:
        return {"variant": self.name, "afe": self.afe, "global_branch": self.global_branch}


#: SANet Table 3 (Sec. 4.4), in the paper's order.
SANET_VARIANTS: dict[str, SANetVariant] = {v.name: v for v in (
    SANetVariant("hpnet", "HPNet", "four part branches, no AFE (trained as SANet)", "none", False),
    SANetVariant("global", "+ Global Branch", "the whole-body branch added, no AFE", "none", True),
    SANetVariant("fixed-fe", "+ Fixed FE", "a static feature enhancement: every scale path active", "fixed", True),
    SANetVariant("sanet", "SANet", "the adaptive feature enhancement (AFE): gated scale paths", "adaptive", True),
)}


#: The chapter's (and the committed weights') name of each Table 3 row: Table 3's "HPNet" row is
#: ``t3-hpnet`` (HPNet's architecture trained as SANet), apart from the reference HPNet ``hpnet``.
SANET_BOOK_NAMES = {"hpnet": "t3-hpnet", "global": "global", "fixed-fe": "fixed-fe", "sanet": "sanet"}

#: Table 4's settings other than the default cell (5 layers, 3x3: the ``sanet`` model), by name.
SANET_TABLE4_BOOK: dict[str, dict] = {
    **{f"sanet-layers{n}": {"afe_layers": n} for n in AFE_LAYERS if n != 5},
    **{f"sanet-k{k}": {"afe_kernel": k} for k in AFE_KERNELS if k != 3},
}


@dataclass(frozen=True)
class SANetSettings(HPNetSettings):
    """SANet's settings: HPNet's (with SANet's defaults) and the AFE's.  ``variant`` names a row of
    Table 3 and must agree with ``afe`` and ``global_branch``."""

    global_branch: bool = setting(True, doc="the whole-body branch (Table 3's '+ Global Branch')")
    mask_pooling: str = setting("soft", choices=MASK_POOLING, doc="soft: m x f (Eq. 4); hard: f x (m > 0.5)")
    triplet: str = setting("branch", choices=TRIPLET_FORMS, doc="branch: Eq. 6's per-branch triplet")
    variant: str = setting("sanet", choices=tuple(SANET_VARIANTS), doc="Table 3's row")
    afe: str = setting("adaptive", choices=AFE_MODES, doc="none | fixed (every path) | adaptive (gated)")
    afe_layers: int = setting(5, choices=AFE_LAYERS, doc="the AFE's layers (Table 4)")
    afe_kernel: int = setting(3, choices=AFE_KERNELS, doc="the cells' base kernel (Table 4)")
    tau: float = setting(1.0, min=0.0, min_exclusive=True, doc="the Gumbel-softmax temperature")
    gumbel_hard: bool = setting(True, doc="straight-through one-hot Gumbel samples in training")
    afe_residual: bool = setting(True, doc="the AFE adds to layer 3's features")

    _method = "sanet"

    def check(self) -> None:
        super().check()
        v = SANET_VARIANTS[self.variant]
        if (self.afe, self.global_branch) != (v.afe, v.global_branch):
            rows = ", ".join(f"{n}: afe={w.afe!r}, global_branch={w.global_branch}" for n, w in SANET_VARIANTS.items())
            raise ValueError(
                f"sanet settings: variant={self.variant!r} ({v.label}) is afe={v.afe!r}, "
                f"global_branch={v.global_branch}, but got afe={self.afe!r}, global_branch={self.global_branch}; "
                f"choose the variant of those switches ({rows})")


class SANetMethod(HPNetMethod):
    """SANet (see the module docstring)."""

    name = "sanet"
    Settings = SANetSettings

    @classmethod
    def recipe(cls, profile: str, variant: str = "sanet", **extra) -> TrainConfig:
        """The recipe of ``profile`` for Table 3's row ``variant``, with ``extra`` settings (e.g.
        Table 4's ``afe_layers=3`` or ``afe_kernel=5``)."""
        if variant not in SANET_VARIANTS:
            raise ValueError(f"unknown SANet variant {variant!r}; accepted: {', '.join(map(repr, SANET_VARIANTS))}")
        x = SANetSettings(**SANET_VARIANTS[variant].settings()).to_dict()
        cfg = profile_recipe(profile, x, "SANet")
        settings = SANetSettings.from_dict({**cfg.extra, **extra}, where="SANetMethod.recipe")
        return cfg.replace(extra=settings.to_dict())

    def build_model(self, init: bool = True) -> SANet:
        s = self.settings
        model = SANet(self.num_classes, **self._backbone_kwargs(init), **self._branch_kwargs(), afe=s.afe,
                      afe_layers=s.afe_layers, afe_kernel=s.afe_kernel, tau=s.tau, gumbel_hard=s.gumbel_hard,
                      afe_residual=s.afe_residual)
        model.image_size = tuple(self.cfg.image_size)
        return model

    def _diagnostics(self, out: dict, labels, visible, mask_labels) -> dict:
        """HPNet's accuracies and, with the adaptive AFE, ``route_scale``: the mean scale (0-2) that
        the active cells send to (how deep the images' paths go)."""
        logs = super()._diagnostics(out, labels, visible, mask_labels)
        if self.settings.afe == "adaptive":
            r = out["routes"]
            sent = r >= 0
            logs["route_scale"] = (r.clamp_min(0) * sent).sum().float() / sent.sum().clamp_min(1).float()
        return logs
