"""VPM: the Visibility-aware Part Model (Sun et al., CVPR 2019).

VPM pre-defines ``p = m x n`` regions on the holistic pedestrian (``m`` rows, ``n``
columns).  On the backbone's feature map ``T`` (``c x h x w``) a *region locator*
(a 1x1 convolution and a softmax) gives every pixel ``g`` a probability of belonging
to each region (Eq. 1); the sum of a region's probability map is its visibility
score ``C_i`` (Eq. 2); the probability-weighted average of ``T`` is the region's
feature ``f_i`` (Eq. 3).  Two images are compared on their shared regions (Eq. 4,
:func:`reidlib.metrics.distance.visibility_weighted_distance` through
:class:`reidlib.metrics.matchers.VisibilityWeightedMatcher`).

Training (Eq. 5-8) lives in :mod:`reidlib.losses.vpm`; the batch recipe and the
ablations of the paper's Table 3 in :class:`VPMMethod`.

Decisions the paper leaves open (documented in the book's chapter 04):

* the region locator's 1x1 convolution has no bias (Eq. 1 is ``softmax(W^T g)``);
* each identity classifier is exactly two fully-connected layers (reduce to
  ``reduce_dim``, then ``K`` classes) with nothing in between, as Sec. 3.3 describes;
* test-time visibility is ``C_i / (h w)`` -- Eq. 2 divided by the number of pixels so that
  it lies in ``[0, 1]``; Eq. 4 is invariant to this common scale;
* features are compared unnormalised (Eq. 4 and Eq. 7 use plain Euclidean distances).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from reidlib.engine.method import Method, TrainConfig
from reidlib.losses.vpm import (
    region_locator_loss,
    region_selective_triplet_loss,
    visible_identity_loss,
    vpm_total_loss,
)
from reidlib.models.backbones import build_backbone
from reidlib.models.base import Features, ReIDModel

__all__ = [
    "region_probabilities",
    "region_visibility",
    "region_features",
    "PartClassifiers",
    "VPM",
    "VPMVariant",
    "VPM_VARIANTS",
    "VPM_CROPS",
    "vpm_crop_spec",
    "VPMMethod",
    "train_vpm",
]


# ---------------------------------------------------------------------------
# The three equations of the model
# ---------------------------------------------------------------------------
def region_probabilities(region_logits: torch.Tensor) -> torch.Tensor:
    """VPM Eq. 1: ``P(R_i | g) = exp(W_i^T g) / sum_j exp(W_j^T g)``.

    Args:
        region_logits: ``(N, p, h, w)`` -- the region locator's 1x1 convolution
            ``W^T g`` at every pixel ``g`` of ``T``.

    Returns:
        ``(N, p, h, w)`` probabilities; they sum to 1 over the ``p`` regions at every pixel.
    """
    if region_logits.dim() != 4:
        raise ValueError(
            f"region_probabilities: region_logits must be (N, p, h, w), got shape {tuple(region_logits.shape)}"
        )
    return region_logits.softmax(dim=1)


def region_visibility(probs: torch.Tensor) -> torch.Tensor:
    """VPM Eq. 2: ``C_i = sum_{g in T} P(R_i | g)``, the visibility score of region ``i``.

    Args:
        probs: ``(N, p, h, w)`` region probabilities (Eq. 1).

    Returns:
        ``(N, p)``; over the regions it sums to ``h * w`` (the number of pixels).
    """
    if probs.dim() != 4:
        raise ValueError(f"region_visibility: probs must be (N, p, h, w), got shape {tuple(probs.shape)}")
    return probs.sum(dim=(2, 3))


def region_features(feature_map: torch.Tensor, probs: torch.Tensor, visibility: torch.Tensor,
                    eps: float = 1e-6) -> torch.Tensor:
    """VPM Eq. 3: ``f_i = sum_{g in T} P(R_i | g) g / C_i`` (probability-weighted pooling).

    The division by ``C_i`` (Eq. 2) keeps the feature's norm independent of the region's
    size.  ``C_i`` is clamped at ``eps`` so that a region whose probabilities underflow
    to zero gives a zero feature rather than NaN.

    Args:
        feature_map: ``(N, c, h, w)`` -- the tensor ``T``.
        probs: ``(N, p, h, w)`` -- Eq. 1.
        visibility: ``(N, p)`` -- Eq. 2 (``probs.sum((2, 3))``).

    Returns:
        ``(N, p, c)`` region features.
    """
    if feature_map.dim() != 4 or probs.dim() != 4 or feature_map.shape[0] != probs.shape[0] \
            or feature_map.shape[2:] != probs.shape[2:]:
        raise ValueError(
            "region_features: expected feature_map (N, c, h, w) and probs (N, p, h, w) with the same N, h, w; "
            f"got {tuple(feature_map.shape)} and {tuple(probs.shape)}"
        )
    if visibility.shape != probs.shape[:2]:
        raise ValueError(
            f"region_features: visibility must be (N, p) = {tuple(probs.shape[:2])}, got {tuple(visibility.shape)}"
        )
    pooled = torch.einsum("nphw,nchw->npc", probs.to(feature_map.dtype), feature_map)
    return pooled / visibility.to(pooled.dtype).clamp_min(eps).unsqueeze(-1)


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------
class PartClassifiers(nn.Module):
    """``p`` independent identity classifiers ``IP_i`` (VPM Sec. 3.3), batched.

    Each is two fully-connected layers: ``c -> reduce_dim`` then ``reduce_dim -> K``
    (the softmax is in the loss).  The ``p`` classifiers are stored as stacked weights
    and applied with one ``einsum`` each, so the cost does not grow with a Python loop.
    Initialisation matches ``nn.Linear``'s default.
    """

    def __init__(self, num_parts: int, in_dim: int, reduce_dim: int, num_classes: int):
        super().__init__()
        self.num_parts, self.in_dim, self.reduce_dim, self.num_classes = num_parts, in_dim, reduce_dim, num_classes
        self.w1 = nn.Parameter(torch.empty(num_parts, in_dim, reduce_dim))
        self.b1 = nn.Parameter(torch.empty(num_parts, reduce_dim))
        self.w2 = nn.Parameter(torch.empty(num_parts, reduce_dim, num_classes))
        self.b2 = nn.Parameter(torch.empty(num_parts, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w, b, fan_in in ((self.w1, self.b1, self.in_dim), (self.w2, self.b2, self.reduce_dim)):
            bound = 1.0 / math.sqrt(fan_in)
            # kaiming_uniform(a=sqrt(5)) as nn.Linear does, on each part's (fan_in x out) matrix
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def reduce(self, parts: torch.Tensor) -> torch.Tensor:
        """First layer: ``(N, p, c) -> (N, p, reduce_dim)``."""
        return torch.einsum("npc,pcr->npr", parts, self.w1) + self.b1

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        """``(N, p, c)`` region features -> ``(N, p, K)`` identity logits."""
        if parts.dim() != 3 or parts.shape[1:] != (self.num_parts, self.in_dim):
            raise ValueError(
                f"PartClassifiers: expected (N, {self.num_parts}, {self.in_dim}), got {tuple(parts.shape)}"
            )
        return torch.einsum("npr,prk->npk", self.reduce(parts), self.w2) + self.b2

    def extra_repr(self) -> str:
        return f"parts={self.num_parts}, {self.in_dim} -> {self.reduce_dim} -> {self.num_classes}"


def _check_parts(parts) -> tuple[int, int]:
    if (not isinstance(parts, (tuple, list)) or len(parts) != 2
            or not all(isinstance(v, int) and v >= 1 for v in parts)):
        raise ValueError(f"VPM: parts must be (m, n) = (rows, columns) of positive ints, e.g. (6, 1); got {parts!r}")
    return int(parts[0]), int(parts[1])


class VPM(ReIDModel):
    """The Visibility-aware Part Model.

    Args:
        num_classes: number of training identities ``K``.
        parts: ``(m, n)`` -- ``m`` rows by ``n`` columns of pre-defined regions
            (``p = m n``); region ``i = r n + c`` is row ``r`` (top = 0), column ``c`` (left = 0),
            the order of :func:`reidlib.data.partial.partial_crop`'s region labels.
        backbone: a name known to :func:`reidlib.models.backbones.build_backbone`.
        pretrained: load ImageNet weights.
        last_stride: stride of the backbone's last stage (1 as in PCB and VPM).
        reduce_dim: width of each identity classifier's first layer.
        weights: an explicit backbone state-dict file (instead of ImageNet weights).
        test_visibility: ``False`` gives MVPM-1 of Table 3: at test time every region
            counts as fully visible (``C_i = 1``), so Eq. 4 averages all local distances.

    In training mode ``model(images)`` returns a dict:
    ``region_logits`` ``(N, p, h, w)`` (``W^T g``, for Eq. 5), ``probs`` ``(N, p, h, w)``
    (Eq. 1), ``visibility`` ``(N, p)`` (Eq. 2), ``parts`` ``(N, p, c)`` (Eq. 3) and
    ``logits`` ``(N, p, K)`` (the identity classifiers, for Eq. 6).
    """

    def __init__(self, num_classes: int, parts: Sequence[int] = (6, 1), backbone: str = "resnet50",
                 pretrained: bool = True, last_stride: int = 1, reduce_dim: int = 256,
                 test_visibility: bool = True, weights: str | None = None):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"VPM: num_classes must be a positive int, got {num_classes!r}")
        self.grid = _check_parts(tuple(parts))
        self.num_parts = self.grid[0] * self.grid[1]
        self.num_classes = num_classes
        self.test_visibility = bool(test_visibility)
        self.backbone = build_backbone(backbone, pretrained=pretrained, last_stride=last_stride, weights=weights)
        self.feat_dim = int(self.backbone.out_channels)
        # Eq. 1: a 1x1 convolution W (no bias: softmax(W^T g)).
        self.locator = nn.Conv2d(self.feat_dim, self.num_parts, kernel_size=1, bias=False)
        nn.init.normal_(self.locator.weight, std=0.001)
        self.classifiers = PartClassifiers(self.num_parts, self.feat_dim, reduce_dim, num_classes)
        self._feat_size_cache: dict[tuple[int, int], tuple[int, int]] = {}

    # -- helpers ----------------------------------------------------------
    @torch.no_grad()
    def feature_size(self, image_size: Sequence[int]) -> tuple[int, int]:
        """``(h, w)`` of ``T`` for an input of ``image_size = (H, W)`` (computed once, cached)."""
        key = (int(image_size[0]), int(image_size[1]))
        if key not in self._feat_size_cache:
            p = next(self.backbone.parameters())
            was_training = self.backbone.training
            self.backbone.eval()
            t = self.backbone(torch.zeros(1, 3, *key, device=p.device, dtype=p.dtype))
            self.backbone.train(was_training)
            self._feat_size_cache[key] = (int(t.shape[-2]), int(t.shape[-1]))
        return self._feat_size_cache[key]

    def locate(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backbone + region locator + feature extractor (Eq. 1-3)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"VPM: images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        t = self.backbone(images)
        region_logits = self.locator(t)
        # The softmax, the pooling and the division run in float32 even under autocast.
        with torch.autocast(device_type=t.device.type, enabled=False):
            probs = region_probabilities(region_logits.float())
            vis = region_visibility(probs)
            parts = region_features(t.float(), probs, vis)
        return {"feature_map": t, "region_logits": region_logits, "probs": probs, "visibility": vis, "parts": parts}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.locate(images)
        out["logits"] = self.classifiers(out["parts"])
        del out["feature_map"]
        return out

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> Features:
        """Region features ``(N, p, c)`` and visibility ``C_i / (h w)`` in ``[0, 1]`` ``(N, p)``.

        With ``test_visibility=False`` (MVPM-1) the visibility is all ones.
        """
        out = self.locate(images)
        h, w = out["probs"].shape[-2:]
        vis = out["visibility"] / float(h * w)
        if not self.test_visibility:
            vis = torch.ones_like(vis)
        return Features(parts=out["parts"], visibility=vis)

    def matcher(self):
        """VPM Eq. 4 (shared-region distance), from :mod:`reidlib.metrics.matchers`."""
        from reidlib.metrics.matchers import VisibilityWeightedMatcher

        return VisibilityWeightedMatcher()


# ---------------------------------------------------------------------------
# Training method: batch recipe, two stages, the ablations of Table 3
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class VPMVariant:
    """One row of VPM's Table 3 as switches of the same model and method.

    triplet: train with the region-selective triplet loss (Eq. 7) in stage 2.
    id_visible_only: Eq. 6 over the visible regions ``V`` only (False: every region
        is supervised by the identity label, whether visible or not).
    triplet_shared_only: Eq. 7 over the shared regions ``V^a & V^p`` (False: all regions
        contribute equally, i.e. ``V`` = all regions in Eq. 7).
    test_visibility: compare with Eq. 4's predicted visibility (False: every region
        counts, ``C_i = 1``, whether visible or not).
    """

    name: str
    description: str
    triplet: bool = True
    id_visible_only: bool = True
    triplet_shared_only: bool = True
    test_visibility: bool = True

    def settings(self) -> dict:
        return {"variant": self.name, "triplet": self.triplet, "id_visible_only": self.id_visible_only,
                "triplet_shared_only": self.triplet_shared_only, "test_visibility": self.test_visibility}


#: VPM Table 3 (Sec. 4.4): the full model, "VPM (no triplet)" and the four Malfunctioned VPMs.
VPM_VARIANTS: dict[str, VPMVariant] = {v.name: v for v in (
    VPMVariant("vpm", "VPM: self-supervision in L_ID, L_tri and at test time"),
    VPMVariant("no-triplet", "VPM (no triplet): trained without the triplet loss", triplet=False),
    VPMVariant("mvpm-1", "MVPM-1: trained as VPM, tested without visibility (all regions, C_i = 1)",
               test_visibility=False),
    VPMVariant("mvpm-2", "MVPM-2: every region contributes equally to the triplet loss", triplet_shared_only=False),
    VPMVariant("mvpm-3", "MVPM-3: every region is supervised by the identity loss", id_visible_only=False),
    VPMVariant("mvpm-4", "MVPM-4: no self-supervision in the identity loss nor the triplet loss",
               id_visible_only=False, triplet_shared_only=False),
)}

#: Training crop strategies (Sec. 4.1/4.3): gamma ~ U[0.5, 1]; names map to
#: :data:`reidlib.data.partial.STRATEGIES` (``"free"``: a rectangle of area gamma anywhere).
VPM_CROPS = ("top", "bottom", "bilateral", "free")


def vpm_crop_spec(crop, ratio=(0.5, 1.0)):
    """The :class:`~reidlib.data.partial.CropSpec` of a VPM training crop name (or a STRATEGIES name)."""
    from reidlib.data.partial import STRATEGIES, CropSpec, get_strategy

    if isinstance(crop, CropSpec):
        return crop
    lo, hi = float(ratio[0]), float(ratio[1])
    if crop in ("top", "bottom", "bilateral"):
        return CropSpec(ratio=(lo, hi), sides=STRATEGIES[f"vpm-{crop}"].sides)
    if crop == "free":
        return CropSpec(ratio=(lo, hi), mode="free")
    if isinstance(crop, str) and crop in STRATEGIES:
        return get_strategy(crop)
    raise ValueError(f"VPM crop={crop!r}: accepted crops are {', '.join(map(repr, VPM_CROPS))} "
                     f"or a name in reidlib.data.partial.STRATEGIES ({', '.join(STRATEGIES)})")


class VPMMethod(Method):
    """VPM as a training method (registered as ``"vpm"``).

    Training follows the paper's two stages (Sec. 4.1): stage 1 pre-trains with the
    cross-entropy losses only (L_R + L_ID); stage 2 starts from stage 1's weights and adds
    the region-selective triplet loss (Eq. 8), with identity-balanced batches (8 ids x 8
    images) for its hard mining.  Each stage is one engine run with its own learning-rate
    schedule (the paper restarts at 0.1 and decays to 0.01 after 30 epochs in both):
    :meth:`stage_recipe` gives a stage's recipe, :func:`train_vpm` runs both.
    :meth:`recipe` is stage 1 (``--set stage=2 init_weights=RUN/model.safetensors`` plus the
    stage-2 fields for stage 2 from the command line).

    Every training image is a partial crop (area ratio gamma ~ U[0.5, 1]) of the augmented
    holistic image, cut by :class:`reidlib.data.loader.PartialCropDataset`, which also gives
    the region labels and visible sets for the model's feature-map size.

    ``extra`` settings: ``parts`` ((6, 1) = (m, n)), ``crop`` ("top" | "bottom" |
    "bilateral" | "free"), ``crop_ratio`` ((0.5, 1.0)), ``reduce_dim`` (256), ``margin``
    (1.0), ``stage`` (1 | 2), ``init_weights`` (stage 2: stage 1's weights file),
    ``variant`` and its switches ``triplet``, ``id_visible_only``, ``triplet_shared_only``,
    ``test_visibility`` (see :data:`VPM_VARIANTS`), ``stage2`` (the fields stage 2 changes),
    ``backbone_weights``.
    """

    name = "vpm"

    @classmethod
    def recipe(cls, profile: str, variant: str = "vpm", **extra) -> TrainConfig:
        """Stage 1's recipe for ``profile``, with ``variant``'s switches and ``extra`` overrides."""
        if variant not in VPM_VARIANTS:
            raise ValueError(f"unknown VPM variant {variant!r}; accepted: {', '.join(VPM_VARIANTS)}")
        x = {"parts": (6, 1), "crop": "top", "crop_ratio": (0.5, 1.0), "reduce_dim": 256, "margin": 1.0,
             "stage": 1, "init_weights": None, "backbone_weights": None, **VPM_VARIANTS[variant].settings()}
        if profile == "full":
            # Sec. 4.1: SGD, lr 0.1 decayed to 0.01 after 30 epochs, 50 epochs of cross-entropy
            # pre-training, then 80 epochs with the triplet loss, batches of 8 ids x 8 images.
            # Open in the paper, set as PCB's authors' recipe: 384x128 input, backbone lr x0.1,
            # momentum 0.9, weight decay 5e-4, flip only (no erasing).
            x["stage2"] = {"epochs": 80, "sampler": "pk", "batch_p": 8, "batch_k": 8}
            cfg = TrainConfig(
                image_size=(384, 128), backbone="resnet50", pretrained=True, last_stride=1,
                epochs=50, batch_p=8, batch_k=8, sampler="random", optimizer="sgd", lr=0.1, momentum=0.9,
                weight_decay=5e-4, backbone_lr_mult=0.1, scheduler="step", milestones=(30,), gamma=0.1,
                warmup_epochs=0, warmup_factor=1.0, random_erasing=0.0, flip=0.5, pad=0, checkpoint_every=10,
                extra=x,
            )
        elif profile == "smoke":
            # CPU seconds on SynthPeds smoke (about 15 s per model on 2 idle cores): a quarter-width
            # one-block ResNet from scratch, 128x64, 60 + 40 iterations of 32 images.  Measured
            # (seed 0, under load): R-1 44.0 / mAP 34.6 on SynthPeds smoke, market protocol;
            # the full-width resnet10 reached 16.0 / 12.3 in the same time (31 iterations).
            x.update(reduce_dim=64)
            x["stage2"] = {"epochs": 2, "sampler": "pk", "batch_p": 8, "batch_k": 4, "lr": 0.02,
                           "milestones": (1,), "max_iters_per_epoch": 20}
            cfg = TrainConfig(
                image_size=(128, 64), backbone="resnet10s", pretrained=False, last_stride=1,
                epochs=3, batch_p=8, batch_k=4, sampler="random", optimizer="sgd", lr=0.05, momentum=0.9,
                weight_decay=5e-4, backbone_lr_mult=1.0, scheduler="step", milestones=(2,), gamma=0.1,
                warmup_epochs=0, warmup_factor=1.0, random_erasing=0.0, flip=0.5, pad=0, amp=True,
                num_workers=0, checkpoint_every=0, max_iters_per_epoch=20, extra=x,
            )
        else:
            raise ValueError(f"unknown profile {profile!r}: VPM has recipes 'smoke' and 'full'")
        unknown = set(extra) - set(x)
        if unknown:
            raise ValueError(f"VPMMethod.recipe: unknown extra settings {sorted(unknown)}; accepted: {sorted(x)}")
        cfg.extra.update(extra)
        cls._validate(cfg)
        return cfg

    @classmethod
    def stage_recipe(cls, cfg: TrainConfig, stage: int, init_weights: str | None = None) -> TrainConfig:
        """The recipe of ``stage`` (1 or 2) derived from a stage-1 recipe ``cfg``.

        Stage 2 applies ``cfg.extra["stage2"]`` (epochs, sampler, batch, ...) and starts from
        ``init_weights`` (stage 1's ``model.safetensors``).  A variant without the triplet
        loss still runs stage 2 (same schedule, cross-entropy only), as "VPM (no triplet)".
        """
        if stage == 1:
            return cfg
        if stage != 2:
            raise ValueError(f"VPM has stages 1 and 2, got stage={stage!r}")
        changes = dict(cfg.extra.get("stage2") or {})
        bad = set(changes) - set(TrainConfig.__dataclass_fields__) - {"extra"}
        if bad:
            raise ValueError(f"VPM extra['stage2'] has unknown TrainConfig fields {sorted(bad)}")
        extra = {**cfg.extra, "stage": 2, "init_weights": None if init_weights is None else str(init_weights)}
        return cfg.replace(**changes, extra=extra)

    @staticmethod
    def _validate(cfg: TrainConfig) -> None:
        x = cfg.extra
        _check_parts(tuple(x.get("parts", (6, 1))))
        vpm_crop_spec(x.get("crop", "top"), x.get("crop_ratio", (0.5, 1.0)))
        if int(x.get("stage", 1)) not in (1, 2):
            raise ValueError(f"VPM extra['stage'] must be 1 or 2, got {x.get('stage')!r}")
        if int(x.get("stage", 1)) == 2 and x.get("triplet", True) and cfg.sampler != "pk":
            raise ValueError("VPM stage 2 (triplet loss) needs identity-balanced batches: sampler='pk'")

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        self._validate(cfg)
        x = cfg.extra
        self.parts = _check_parts(tuple(x.get("parts", (6, 1))))
        self.stage = int(x.get("stage", 1))
        self.use_triplet = bool(x.get("triplet", True)) and self.stage == 2
        self.id_visible_only = bool(x.get("id_visible_only", True))
        self.triplet_shared_only = bool(x.get("triplet_shared_only", True))
        self.margin = float(x.get("margin", 1.0))

    def build_model(self) -> VPM:
        c, x = self.cfg, self.cfg.extra
        init = x.get("init_weights")
        model = VPM(self.num_classes, parts=self.parts, backbone=c.backbone,
                    pretrained=c.pretrained and init is None, last_stride=c.last_stride,
                    reduce_dim=int(x.get("reduce_dim", 256)), test_visibility=bool(x.get("test_visibility", True)),
                    weights=x.get("backbone_weights") if init is None else None)
        if init is not None:
            from reidlib.models.backbones import load_state_dict_file

            sd = load_state_dict_file(init)
            missing, unexpected = model.load_state_dict(sd, strict=False)
            if missing or unexpected:
                raise ValueError(f"VPM init_weights={init!r} does not fit this VPM ({self.parts}, "
                                 f"{self.num_classes} classes): missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model

    def train_dataset(self, dataset, pid2label: dict[int, int]):
        from reidlib.data.loader import PartialCropDataset
        from reidlib.data.transforms import build_geometric_transform, build_photometric_transform

        c, x = self.cfg, self.cfg.extra
        # the feature-map size of the model for the input size (the labels are made for it)
        probe = VPM(1, parts=self.parts, backbone=c.backbone, pretrained=False, last_stride=c.last_stride,
                    reduce_dim=1)
        feat_size = probe.feature_size(c.image_size)
        return PartialCropDataset(
            dataset.train, dataset, strategy=vpm_crop_spec(x.get("crop", "top"), x.get("crop_ratio", (0.5, 1.0))),
            size=c.image_size, grid=self.parts, feat_size=feat_size, p_partial=1.0,
            holistic_transform=build_geometric_transform(c.image_size, flip=c.flip, pad=c.pad),
            transform=build_photometric_transform(c.random_erasing), relabel=pid2label,
        )

    def loss(self, model: nn.Module, batch: dict, epoch: int):
        out = model(batch["image"])
        labels = batch["label"]
        visible = batch["visible"].bool()
        l_r = region_locator_loss(out["region_logits"], batch["region_labels"])
        id_vis = visible if self.id_visible_only else torch.ones_like(visible)
        l_id = visible_identity_loss(out["logits"], labels, id_vis)
        logs = {"L_R": l_r.detach(), "L_ID": l_id.detach()}
        l_tri = None
        if self.use_triplet:
            tri_vis = visible if self.triplet_shared_only else torch.ones_like(visible)
            l_tri = region_selective_triplet_loss(out["parts"], tri_vis, labels, margin=self.margin)
            logs["L_tri"] = l_tri.detach()
        total = vpm_total_loss(l_r, l_id, l_tri)
        with torch.no_grad():
            logs["locator_acc"] = (out["region_logits"].argmax(1) == batch["region_labels"]).float().mean()
            logs["id_acc"] = (out["logits"].float().softmax(2).sum(1).argmax(1) == labels).float().mean()
        return total, logs


def train_vpm(dataset, out_dir, profile: str = "smoke", variant: str = "vpm", device: str = "auto", seed: int = 0,
              resume: bool = True, progress: bool = False, cfg: TrainConfig | None = None, **extra):
    """Train VPM's two stages (Sec. 4.1) with the engine; returns ``(model, info)``.

    ``out_dir/stage1`` and ``out_dir/stage2`` are the two engine runs (``resume=True``
    reuses finished ones).  ``cfg`` (a stage-1 recipe) replaces ``VPMMethod.recipe(profile,
    variant, **extra)``.  ``info`` holds both stages' metrics and the training time.
    """
    import time
    from pathlib import Path

    from reidlib.engine.trainer import Trainer

    out_dir = Path(out_dir)
    cfg1 = cfg if cfg is not None else VPMMethod.recipe(profile, variant, **extra)
    t0 = time.perf_counter()
    m1 = VPMMethod(cfg1, dataset.num_train_pids)
    r1 = Trainer(m1, dataset, out_dir / "stage1", device=device, seed=seed, resume=resume, progress=progress,
                 profile=profile).fit()
    cfg2 = VPMMethod.stage_recipe(cfg1, 2, init_weights=out_dir / "stage1" / "model.safetensors")
    m2 = VPMMethod(cfg2, dataset.num_train_pids)
    t2 = Trainer(m2, dataset, out_dir / "stage2", device=device, seed=seed + 1, resume=resume, progress=progress,
                 profile=profile)
    r2 = t2.fit()
    model = getattr(t2, "model", None)
    if model is None:  # a finished run returned its stored metrics: load its weights
        model = m2.build_model()
        from reidlib.models.backbones import load_state_dict_file

        model.load_state_dict(load_state_dict_file(out_dir / "stage2" / "model.safetensors"))
    model.eval()
    return model, {"stage1": r1, "stage2": r2, "time_s": round(time.perf_counter() - t0, 2), "variant": variant}
