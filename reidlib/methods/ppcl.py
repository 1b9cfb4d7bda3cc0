"""PPCL as a training method (registered as ``"ppcl"``): settings, Table 1a's variants, recipes,
the batch recipe, the losses per stage and the stages.

Stages (:meth:`PPCLMethod.stages`, run by :func:`reidlib.engine.runs.train_stages`):

1. ``glrec`` -- GLRec pre-trained on its own, self-supervised (supplementary Sec. 2.1): random
   crops of the training images (strategy ``"ppcl-free"``: 20-80 % of the person's box) and,
   for a share ``1 - p_partial``, the whole frame (the gate's negatives); the loss is
   ``L_R`` = Eq. 1 + the BCE on ``eta``.  The model of this stage is a bare
   :class:`reidlib.models.ppcl.GLRec`.
2. ``backbone`` (``full`` only, when ``backbone_stage`` is set) -- F trained alone with ``L_F``
   on holistic images, the supplementary's "we first train the backbone network for 120
   epochs"; GLRec is loaded from stage 1 and frozen.
3. ``ppcl`` -- Algorithm 1: every batch X of holistic images is cropped (a share
   ``ppcl_p_partial``; the rest stay whole, so that the gate's BCE still sees holistic
   inputs), rectified by GLRec (Eq. 2), ``Y = shuffle(X)`` (a random permutation of the batch,
   drawn on the device), and GLRec, F and CRLoc are trained jointly with Eq. 6.
   ``L_F`` is taken on both the rectified crops and the holistic images.

A chapter that trains several PPCL models trains GLRec once: :meth:`PPCLMethod.glrec_recipe`
is the GLRec stage alone (``glrec_only``), and :meth:`PPCLMethod.ppcl_recipe` is the PPCL stage
of a variant starting from that run (``glrec_weights``).

Table 1a's rows are :data:`PPCL_VARIANTS` (``"r"``: +R, ``"r-l-triplet"``, ``"r-l-cycle"``,
``"ppcl"``); Pad and Resize are the strong baseline with a padding or resizing test transform.
Table 1c's grid sets ``lambda_cyc`` and ``lambda_tri``.  The network is
:class:`reidlib.models.ppcl.PPCL`, the losses are :mod:`reidlib.losses.ppcl`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from reidlib.data.partial import STRATEGIES
from reidlib.losses import CrossEntropyLabelSmooth, TripletLoss
from reidlib.losses.ppcl import backbone_loss, glrec_loss, pp_cycle_loss, pp_triplet_loss, ppcl_total_loss
from reidlib.methods.base import Method, Settings, Stage, TrainConfig, relabelled_image_dataset, setting, weights_path
from reidlib.methods.stnreid import load_reid_init, submodule_weights, weights_file
from reidlib.models.backbones import BACKBONES, load_state_dict_file
from reidlib.models.base import unwrap as _unwrap
from reidlib.models.baseline import Baseline
from reidlib.models.ppcl import MATCH_MODES, PPCL, GLRec, clamp_regions, region_overlaps

__all__ = ["PPCLVariant", "PPCL_VARIANTS", "PPCL_TABLE1C_CELLS", "PPCL_TABLE1C_GRID", "PPCL_BOOK_GRID", "PPCL_STAGES", "PPCLSettings", "PPCLMethod", "load_glrec"]

#: The training stages, in order (``backbone`` only where the recipe sets ``backbone_stage``).
PPCL_STAGES = ("glrec", "backbone", "ppcl")

# Why the GLRec and PPCL stages train without padding (``pad = 0``, flip only): the padding
# augmentation shifts a holistic frame and leaves a constant strip at its border; a partial crop,
# cut inside the person's box and resized, never has one, and no test image does.  The gate then
# learns the strip instead of partiality.  Measured on smoke (GLRec trained with pad = 5): its gate
# was right on 97 % of its padded training items but on 56 % of the same items without padding,
# and it called 88 to 96 % of SynthPeds' holistic test images partial (by split).


@dataclass(frozen=True)
class PPCLVariant:
    """One row of PPCL's Table 1a: which constraints train CRLoc (none: no CRLoc at all, and
    pairs are compared on GLRec's region)."""

    name: str
    label: str
    description: str
    cycle: bool
    triplet: bool

    @property
    def crloc(self) -> bool:
        return self.cycle or self.triplet


#: PPCL Table 1a (Sec. 4.3) as switches of one model and method.
PPCL_VARIANTS: dict[str, PPCLVariant] = {v.name: v for v in (
    PPCLVariant("r", "+R", "GLRec + F, no CRLoc: pairs compared on GLRec's region in both images", False, False),
    PPCLVariant("r-l-triplet", "+R+L w/ PP-Triplet", "CRLoc trained with PP-Triplet only", False, True),
    PPCLVariant("r-l-cycle", "+R+L w/ PP-Cycle", "CRLoc trained with PP-Cycle only", True, False),
    PPCLVariant("ppcl", "PPCL", "CRLoc trained with both constraints", True, True),
)}


#: PPCL Table 1c: every (lambda_cyc, lambda_tri) cell of the paper's grid.
PPCL_TABLE1C_CELLS: tuple[tuple[float, float], ...] = tuple((c, t) for c in (0.1, 1.0, 10.0, 100.0)
                                                           for t in (0.1, 1.0, 10.0, 100.0))

#: The Table 1c cells each profile trains: ``smoke`` the paper's optimum (10, 1) and two
#: neighbours, ``book`` the optimum and its four neighbours (one step along each axis; the book's
#: committed weights), ``full`` the whole grid.
PPCL_TABLE1C_GRID: dict[str, tuple[tuple[float, float], ...]] = {
    "smoke": ((10.0, 1.0), (1.0, 1.0), (10.0, 10.0)),
    "book": ((10.0, 1.0), (1.0, 1.0), (100.0, 1.0), (10.0, 0.1), (10.0, 10.0)),
    "full": PPCL_TABLE1C_CELLS,
}
PPCL_BOOK_GRID = PPCL_TABLE1C_GRID["book"]


@dataclass(frozen=True)
class PPCLSettings(Settings):
    """PPCL's settings (``TrainConfig.extra``).

    ``TrainConfig.backbone``/``pretrained``/``last_stride`` describe F (in every stage, so
    later stages inherit them); GLRec's regressor R is ``glrec_backbone`` (ImageNet weights with
    ``glrec_pretrained``, or the file ``glrec_backbone_weights``).
    """

    stage: str = setting("glrec", choices=PPCL_STAGES)
    glrec_only: bool = setting(False, doc="GLRec stage recipes: train GLRec alone (no later stages)")
    variant: str = setting("ppcl", choices=tuple(PPCL_VARIANTS), doc="Table 1a's row")
    lambda_cyc: float = setting(10.0, min=0.0, doc="Eq. 13's weight of PP-Cycle")
    lambda_tri: float = setting(1.0, min=0.0, doc="Eq. 13's weight of PP-Triplet")
    beta: float = setting(0.5, min=0.0, max=1.0, min_exclusive=True, doc="PP-Triplet's overlap bound")
    alpha: float = setting(0.3, min=0.0, doc="PP-Triplet's margin")
    neg_candidates: int = setting(32, min=1, doc="random regions drawn per negative")
    temperature: float = setting(0.1, min=0.0, min_exclusive=True, doc="Eq. 8 on unit vectors / temperature")
    strategy: str = setting("ppcl-free", doc="the crop strategy (reidlib.data.partial.STRATEGIES)")
    crop_within: str = setting("body", choices=("body", "frame"))
    p_partial: float = setting(0.5, min=0.0, max=1.0, doc="GLRec stage: share of cropped items")
    ppcl_p_partial: float = setting(0.8, min=0.0, max=1.0, doc="PPCL stage: share of cropped items")
    label_smooth: float = setting(0.1, min=0.0, max=1.0)
    margin: float = setting(0.3, min=0.0, doc="L_F's batch-hard triplet margin")
    neck_feat: str = setting("after", choices=("after", "before"))
    glrec_backbone: str = setting("resnet18", choices=BACKBONES)
    glrec_pretrained: bool = False
    glrec_backbone_weights: str | None = None
    glrec_weights: str | None = setting(None, doc="backbone/ppcl stages: the GLRec run (folder or weights file)")
    init_weights: str | None = setting(None, doc="ppcl stage after a backbone stage: that run's whole model")
    reid_weights: str | None = setting(None, doc="F's initial weights from a baseline run")
    backbone_weights: str | None = None
    glrec_lr_mult: float = setting(1.0, min=0.0)
    crloc_lr_mult: float = setting(1.0, min=0.0)
    match: str = setting("auto", choices=("auto",) + MATCH_MODES, doc="auto: crloc, or glrec for the +R variant")
    shortlist: int | None = setting(None, min=1, doc="default matcher: None = all pairs, k = rescore the top k")
    batch_pairs: int = setting(1024, min=1)
    backbone_stage: dict = setting(default_factory=dict, doc="the TrainConfig fields of F's own stage ({}: none)")
    ppcl_stage: dict = setting(default_factory=dict, doc="the TrainConfig fields the PPCL stage changes")

    _method = "ppcl"

    @property
    def variant_info(self) -> PPCLVariant:
        return PPCL_VARIANTS[self.variant]

    @property
    def match_mode(self) -> str:
        if self.match != "auto":
            return self.match
        return "crloc" if self.variant_info.crloc else "glrec"

    def check(self) -> None:
        where = "ppcl settings"
        if self.strategy not in STRATEGIES:
            raise ValueError(f"{where}: unknown strategy {self.strategy!r}: strategy={self.strategy!r} is not one of "
                             f"{', '.join(map(repr, STRATEGIES))}")
        if self.label_smooth >= 1.0:
            raise ValueError(f"{where}: label_smooth={self.label_smooth!r} is out of range; expected a value >= 0 "
                             f"and < 1")
        fields = set(TrainConfig.field_names()) - {"extra"}
        for key in ("backbone_stage", "ppcl_stage"):
            bad = sorted(set(getattr(self, key)) - fields)
            if bad:
                raise ValueError(f"{where}: {key} has unknown TrainConfig fields {bad}; accepted: "
                                 f"{', '.join(sorted(fields))}")
        if self.glrec_only and self.stage != "glrec":
            raise ValueError(f"{where}: glrec_only=True trains the GLRec stage alone, but stage={self.stage!r}; "
                             f"glrec_only belongs to GLRec-stage recipes (PPCLMethod.glrec_recipe)")
        if self.match == "crloc" and not self.variant_info.crloc:
            raise ValueError(f"{where}: match='crloc' needs a trained CRLoc, but variant={self.variant!r} (+R) trains "
                             f"none; use match='glrec' or 'global', or a variant with a constraint "
                             f"({', '.join(repr(v) for v, i in PPCL_VARIANTS.items() if i.crloc)})")


# ----------------------------------------------------------------------------- weights of earlier stages
def load_glrec(glrec: GLRec, path) -> GLRec:
    """GLRec's weights from a GLRec-stage run (its folder or weights file), or the ``glrec.*``
    part of a PPCL model's weights."""
    f, sd = submodule_weights(path, "glrec")
    try:
        glrec.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError(f"{f} does not hold a GLRec with a {glrec.backbone.name} regressor (glrec_backbone): "
                         f"{str(e)[:400]}") from e
    return glrec


# ----------------------------------------------------------------------------- the method
class PPCLMethod(Method):
    """PPCL (see the module docstring and :class:`PPCLSettings`)."""

    name = "ppcl"
    Settings = PPCLSettings

    @classmethod
    def recipe(cls, profile: str, variant: str = "ppcl", **extra) -> TrainConfig:
        """The first stage's (GLRec's) recipe for ``profile``; the later stages' changes are its
        ``backbone_stage`` and ``ppcl_stage`` settings, ``extra`` overrides settings."""
        if variant not in PPCL_VARIANTS:
            raise ValueError(f"unknown PPCL variant {variant!r}; accepted: {', '.join(map(repr, PPCL_VARIANTS))}")
        x = PPCLSettings(variant=variant).to_dict()
        if profile == "full":
            # Supplementary Sec. 2.1.  GLRec: ResNet-18 (ImageNet), SGD at 5e-2 for 60 epochs, then a
            # decay to 5e-5 over the next 100 (the engine has no linear decay: a cosine from epoch 60 to
            # 160, held at 5e-2 before, ends at 0 with the same mean rate), batches of 128.  F: ResNet-50
            # (ImageNet) 120 epochs of Adam at 5e-4, x0.1 every 40, 16 ids x 4; then GLRec, F and CRLoc
            # jointly for 40 epochs of Adam at 5e-4 (batches as F's: the paper does not say).  Input
            # 256x128, the strong baseline's augmentation for F's own stage (flip, pad 10, random erasing),
            # flip only in GLRec's and the joint stage (pad = 0: see the note at the top).
            x.update(glrec_backbone="resnet18", glrec_pretrained=True)
            x["backbone_stage"] = {"epochs": 120, "sampler": "pk", "batch_p": 16, "batch_k": 4, "optimizer": "adam",
                                   "lr": 5e-4, "scheduler": "step", "milestones": (40, 80), "gamma": 0.1,
                                   "warmup_epochs": 0, "warmup_factor": 1.0, "random_erasing": 0.5, "pad": 10}
            x["ppcl_stage"] = {"epochs": 40, "sampler": "pk", "batch_p": 16, "batch_k": 4, "optimizer": "adam",
                               "lr": 5e-4, "scheduler": "step", "milestones": (), "warmup_epochs": 0,
                               "warmup_factor": 1.0, "random_erasing": 0.0}
            cfg = TrainConfig(
                image_size=(256, 128), backbone="resnet50", pretrained=True, last_stride=1, epochs=160, batch_p=16,
                batch_k=8, sampler="random", optimizer="sgd", lr=5e-2, momentum=0.9, weight_decay=5e-4,
                backbone_lr_mult=1.0, scheduler="cosine", milestones=(), warmup_epochs=60, warmup_factor=1.0,
                random_erasing=0.0, flip=0.5, pad=0, checkpoint_every=10, extra=x,
            )
        elif profile == "smoke":
            # CPU seconds on SynthPeds smoke: the quarter-width one-block ResNet from scratch for R and
            # for F, 128x64; GLRec 2 x 20 iterations of 32 random crops (SGD as the supplementary, x0.1
            # for the second), then PPCL 2 x 20 iterations of 8 ids x 4 pairs (Adam 1e-3, x0.1 for the
            # second).  Enough to run every piece, far from converged.
            x.update(glrec_backbone="resnet10s", glrec_pretrained=False)
            x["ppcl_stage"] = {"epochs": 2, "sampler": "pk", "batch_p": 8, "batch_k": 4, "optimizer": "adam",
                               "lr": 1e-3, "milestones": (1,), "max_iters_per_epoch": 20}
            cfg = TrainConfig(
                image_size=(128, 64), backbone="resnet10s", pretrained=False, last_stride=1, epochs=2, batch_p=8,
                batch_k=4, sampler="random", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
                backbone_lr_mult=1.0, scheduler="step", milestones=(1,), gamma=0.1, warmup_epochs=0,
                warmup_factor=1.0, random_erasing=0.0, flip=0.5, pad=0, amp=True, num_workers=0,
                checkpoint_every=0, max_iters_per_epoch=20, extra=x,
            )
        elif profile == "book":
            # CPU minutes on the baseline's budget (116,288 images: 10 epochs of 181-182 PK batches of 64),
            # both stages together:
            #   GLRec: 2 epochs of 88 random batches of 128 crops (the paper's batch; 88 of the 101 batches
            #          an epoch holds) = 176 iterations = 22,528 images;
            #   PPCL:  4 epochs of the 366 PK batches of 8 ids x 4 pairs = 1,464 iterations = 46,848
            #          pairs = 93,696 images (a crop and its holistic image each; Y = shuffle(X) adds none);
            #   total  22,528 + 93,696 = 116,224 images (-0.06 %).
            # GLRec is 19 % of the images, F's own 120-epoch stage is left out: F starts from the
            # SynthPeds-pretrained backbone, as every book model, and R from the same weights (the
            # stand-in for ImageNet's ResNet-18).  GLRec: SGD at 5e-2 (the supplementary), x0.1 for the
            # second epoch; PPCL: Adam at 5e-4 (the supplementary) after a one-epoch warm-up, x0.1 for
            # the last epoch.
            from reidlib.methods.baseline import BOOK_BACKBONE, BOOK_BACKBONE_WEIGHTS, book_recipe_defaults

            x.update(glrec_backbone=BOOK_BACKBONE, glrec_backbone_weights=BOOK_BACKBONE_WEIGHTS,
                     backbone_weights=BOOK_BACKBONE_WEIGHTS)
            x["ppcl_stage"] = {"epochs": 4, "sampler": "pk", "batch_p": 8, "batch_k": 4, "optimizer": "adam",
                               "lr": 5e-4, "milestones": (3,), "warmup_epochs": 1, "warmup_factor": 0.1,
                               "max_iters_per_epoch": None}
            cfg = TrainConfig(
                **book_recipe_defaults(), epochs=2, batch_p=16, batch_k=8, sampler="random", optimizer="sgd",
                lr=5e-2, momentum=0.9, weight_decay=5e-4, backbone_lr_mult=1.0, scheduler="step", milestones=(1,),
                gamma=0.1, warmup_epochs=0, warmup_factor=1.0, random_erasing=0.0, flip=0.5, pad=0,
                max_iters_per_epoch=88, extra=x,
            )
        else:
            raise ValueError(f"unknown profile {profile!r}: PPCL has recipes 'smoke', 'book' and 'full'")
        settings = PPCLSettings.from_dict({**cfg.extra, **extra}, where="PPCLMethod.recipe")
        return cfg.replace(extra=settings.to_dict())

    @classmethod
    def glrec_recipe(cls, profile: str, **extra) -> TrainConfig:
        """GLRec's pre-training alone (supplementary Sec. 2.1) for ``profile``: the GLRec stage of
        :meth:`recipe` with ``glrec_only`` set, so that :meth:`stages` is that one stage.  Its run
        (folder or ``model.safetensors``) is the ``glrec_weights`` of :meth:`ppcl_recipe`: a chapter
        trains GLRec once and starts every variant's PPCL stage from it."""
        return cls.recipe(profile, glrec_only=True, **extra)

    @classmethod
    def backbone_recipe(cls, profile: str, glrec_weights: str | Path, **extra) -> TrainConfig:
        """F's own stage alone (``full``: "we first train the backbone network for 120 epochs"),
        with GLRec loaded from ``glrec_weights`` and frozen; its run is the ``init_weights`` of
        :meth:`ppcl_recipe`.  ``ValueError`` for a profile without that stage."""
        cfg = cls.recipe(profile, **extra)
        if not PPCLSettings.from_dict(cfg.extra).backbone_stage:
            raise ValueError(f"PPCLMethod.backbone_recipe: the {profile!r} recipe has no backbone stage "
                             f"(backbone_stage is empty: F starts from its initial weights in the PPCL stage)")
        return cls.stage_recipe(cfg, "backbone", glrec_weights=glrec_weights)

    @classmethod
    def ppcl_recipe(cls, profile: str, variant: str = "ppcl", glrec_weights: str | Path | None = None,
                    init_weights: str | Path | None = None, **extra) -> TrainConfig:
        """The PPCL stage alone (Algorithm 1) of ``variant`` for ``profile``, starting from the
        pre-trained GLRec ``glrec_weights`` (a :meth:`glrec_recipe` run or its weights file) or,
        after F's own stage, from that run's whole model ``init_weights``
        (:meth:`backbone_recipe`); ``extra`` overrides settings (e.g. Table 1c's ``lambda_cyc`` /
        ``lambda_tri``)."""
        if (glrec_weights is None) == (init_weights is None):
            raise ValueError("PPCLMethod.ppcl_recipe: give exactly one of glrec_weights (a PPCLMethod.glrec_recipe "
                             "run folder or its model.safetensors) and init_weights (a backbone_recipe run)")
        return cls.stage_recipe(cls.recipe(profile, variant, **extra), "ppcl", glrec_weights=glrec_weights,
                                init_weights=init_weights)

    @classmethod
    def stage_recipe(cls, cfg: TrainConfig, stage: str, glrec_weights: str | Path | None = None,
                     init_weights: str | Path | None = None) -> TrainConfig:
        """The recipe of ``stage`` derived from the GLRec stage's recipe ``cfg``: its
        ``backbone_stage`` / ``ppcl_stage`` fields, the stage, and the weights it starts from."""
        if stage not in PPCL_STAGES:
            raise ValueError(f"PPCL stage={stage!r}: accepted stages are {', '.join(map(repr, PPCL_STAGES))}")
        s = PPCLSettings.from_dict(cfg.extra, where="PPCLMethod.stage_recipe")
        if stage == "glrec":
            return cfg
        fields = s.backbone_stage if stage == "backbone" else s.ppcl_stage
        extra = s.replace(stage=stage, glrec_only=False,
                          glrec_weights=None if glrec_weights is None else str(glrec_weights),
                          init_weights=None if init_weights is None else str(init_weights)).to_dict()
        return cfg.replace(**fields, extra=extra)

    @classmethod
    def stages(cls, cfg: TrainConfig) -> list[Stage]:
        """GLRec (seed + 0), [F alone (seed + 1)], PPCL (seed + 2), each from the earlier ones'
        weights; a recipe of a later stage alone, or GLRec's with ``glrec_only``, is one stage."""
        s = PPCLSettings.from_dict(cfg.extra)
        if s.stage != "glrec" or s.glrec_only:
            return [Stage(s.stage, cfg)]
        out = [Stage("glrec", cfg)]
        if s.backbone_stage:
            out.append(Stage("backbone", lambda done: cls.stage_recipe(
                cfg, "backbone", glrec_weights=done["glrec"] / "model.safetensors"), seed_offset=1))
            out.append(Stage("ppcl", lambda done: cls.stage_recipe(
                cfg, "ppcl", init_weights=done["backbone"] / "model.safetensors"), seed_offset=2))
        else:
            out.append(Stage("ppcl", lambda done: cls.stage_recipe(
                cfg, "ppcl", glrec_weights=done["glrec"] / "model.safetensors"), seed_offset=2))
        return out

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        s = self.settings
        self.stage = s.stage
        if s.stage != "glrec" and cfg.sampler != "pk":
            raise ValueError(f"ppcl settings: stage={s.stage!r} trains L_F's batch-hard triplet, which needs "
                             f"identity-balanced batches: sampler='pk' (got sampler={cfg.sampler!r})")
        if s.stage == "backbone" and not s.glrec_weights:
            raise ValueError("ppcl settings: stage='backbone' needs glrec_weights: the GLRec-stage run (folder or "
                             "model.safetensors) that the PPCL stage carries on")
        if s.stage == "ppcl" and not (s.glrec_weights or s.init_weights):
            raise ValueError("ppcl settings: stage='ppcl' needs the pre-trained GLRec (Algorithm 1): glrec_weights "
                             "(a GLRec-stage run) or init_weights (a backbone-stage run)")
        v = s.variant_info
        self.use_cycle = v.cycle and s.stage == "ppcl"
        self.use_triplet = v.triplet and s.stage == "ppcl"
        self.ce = CrossEntropyLabelSmooth(num_classes, epsilon=s.label_smooth)
        self.triplet = TripletLoss(margin=s.margin)

    # -- the model ------------------------------------------------------------------
    def build_model(self, init: bool = True) -> nn.Module:
        c, s = self.cfg, self.settings
        if s.stage == "glrec":
            model = GLRec(s.glrec_backbone, pretrained=bool(s.glrec_pretrained and init),
                          weights=weights_path(s.glrec_backbone_weights) if init else None)
            model.image_size = tuple(c.image_size)
            return model
        from_runs = bool(s.reid_weights or s.init_weights)
        reid = Baseline(
            self.num_classes, backbone=c.backbone, pretrained=bool(c.pretrained and init and not from_runs),
            last_stride=c.last_stride, weights=weights_path(s.backbone_weights) if init and not from_runs else None,
            neck_feat=s.neck_feat, metric="cosine",
        )
        if init and s.reid_weights and not s.init_weights:
            load_reid_init(reid, weights_path(s.reid_weights))
        glrec = GLRec(s.glrec_backbone, pretrained=False)
        if init and s.glrec_weights and not s.init_weights:
            load_glrec(glrec, weights_path(s.glrec_weights))
        v = s.variant_info
        model = PPCL(reid, glrec, image_size=c.image_size, temperature=s.temperature, beta=s.beta,
                     neg_candidates=s.neg_candidates, train_cycle=v.cycle, train_triplet=v.triplet,
                     match=s.match_mode, shortlist=s.shortlist, batch_pairs=s.batch_pairs)
        if init and s.init_weights:
            f = weights_file(weights_path(s.init_weights))
            try:
                model.load_state_dict(load_state_dict_file(f))
            except RuntimeError as e:
                raise ValueError(f"ppcl settings: init_weights={s.init_weights!r} ({f}) does not fit this PPCL model "
                                 f"({c.backbone} F, {s.glrec_backbone} R, {self.num_classes} classes, "
                                 f"{tuple(c.image_size)}): {str(e)[:400]}") from e
        if s.stage == "backbone":
            model.freeze_glrec()
        if s.stage == "backbone" or not v.crloc:  # parameters without a gradient (DDP needs none)
            for p in model.crloc.parameters():
                p.requires_grad_(False)
        return model

    def train_dataset(self, dataset, pid2label: dict[int, int]):
        """GLRec and PPCL stages: partial crops with their known transforms (``strategy``, cut from
        the person's box or the frame: ``crop_within``), resized to the image size, a share whole;
        the PPCL stage also returns the holistic images.  F's own stage: the standard batch."""
        from reidlib.data.loader import PartialCropDataset
        from reidlib.data.transforms import build_geometric_transform, build_photometric_transform

        c, s = self.cfg, self.settings
        if s.stage == "backbone":
            return relabelled_image_dataset(dataset, pid2label, c)
        return PartialCropDataset(
            dataset.train, dataset, strategy=s.strategy, size=c.image_size,
            p_partial=s.p_partial if s.stage == "glrec" else s.ppcl_p_partial,
            transform=build_photometric_transform(c.random_erasing),
            holistic_transform=build_geometric_transform(c.image_size, flip=c.flip, pad=c.pad),
            return_holistic=s.stage == "ppcl", relabel=pid2label, crop_within=s.crop_within,
        )

    def param_groups(self, model: nn.Module) -> list[dict]:
        """GLRec stage: R's backbone (``backbone_lr_mult``) and head; later stages: F's backbone
        (``backbone_lr_mult``), F's head, GLRec (``glrec_lr_mult``), CRLoc (``crloc_lr_mult``)."""
        m, s = _unwrap(model), self.settings

        def trainable(mod):
            return [p for p in mod.parameters() if p.requires_grad]

        if isinstance(m, GLRec):
            return [{"params": trainable(m.backbone), "lr_mult": self.cfg.backbone_lr_mult},
                    {"params": trainable(m.regressor.head), "lr_mult": 1.0}]
        bb = {id(p) for p in m.reid.backbone.parameters()}
        groups = [{"params": trainable(m.reid.backbone), "lr_mult": self.cfg.backbone_lr_mult},
                  {"params": [p for p in trainable(m.reid) if id(p) not in bb], "lr_mult": 1.0},
                  {"params": trainable(m.glrec), "lr_mult": s.glrec_lr_mult},
                  {"params": trainable(m.crloc), "lr_mult": s.crloc_lr_mult}]
        return [g for g in groups if g["params"]]

    # -- the loss ---------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: dict, epoch: int):
        """The stage's loss: ``L_R`` (GLRec stage), ``L_F`` (F's stage) or Eq. 6 (PPCL stage,
        Algorithm 1), with detached logs (no host sync): the terms, the gate's accuracy, the
        IoU of GLRec's region with the true crop and (PPCL) of the cycle's region with it."""
        s = self.settings
        labels = batch["label"]
        if self.stage == "backbone":
            out = model(None, batch["image"])
            total, logs = backbone_loss(out["logits"], out["feat"], labels, self.ce, self.triplet)
            with torch.no_grad():
                logs["acc"] = (out["logits"].argmax(1) == labels).float().mean()
            return total, logs
        st_true = batch["scale_translation"].float()
        is_partial = batch["is_partial"].bool()
        if self.stage == "glrec":
            out = model(batch["image"], rectify=False)
            total, logs = glrec_loss(out["st_raw"], st_true, out["eta_logit"], is_partial)
            self._glrec_logs(logs, out, st_true, is_partial)
            return total, logs
        x_p, x = batch["image"], batch["holistic"]
        perm = torch.randperm(x.shape[0], device=x.device) if (self.use_cycle or self.use_triplet) else None
        out = model(x_p, x, perm=perm)  # Algorithm 1, lines 3-10
        l_r, logs = glrec_loss(out["st_raw"], st_true, out["eta_logit"], is_partial)
        l_f, f_logs = backbone_loss(out["logits"], out["feat"], torch.cat([labels, labels]), self.ce, self.triplet)
        logs.update(f_logs)
        l_cyc = l_tri = None
        if self.use_cycle:
            l_cyc = pp_cycle_loss(out["box_yx"], st_true)
            logs["L_pp_cycle"] = l_cyc.detach()
        if self.use_triplet:
            l_tri = pp_triplet_loss(out["anchor_region"], out["pos_region"], out["neg_region"], s.alpha,
                                    out["neg_valid"])
            logs["L_pp_triplet"] = l_tri.detach()
            logs["neg_valid"] = out["neg_valid"].float().mean().detach()
        total = ppcl_total_loss(l_r, l_f, l_cyc, l_tri, s.lambda_cyc, s.lambda_tri)  # Eq. 6
        self._glrec_logs(logs, out, st_true, is_partial)
        with torch.no_grad():
            logs["acc"] = (out["logits"].argmax(1) == torch.cat([labels, labels])).float().mean()
            if "box_yx" in out:
                logs["cycle_iou"] = region_overlaps(out["box_yx"].detach().float(), st_true)[0].mean()
        return total, logs

    @staticmethod
    def _glrec_logs(logs: dict, out: dict, st_true: torch.Tensor, is_partial: torch.Tensor) -> None:
        with torch.no_grad():
            logs["gate_acc"] = (out["is_partial"] == is_partial).float().mean()
            pred = clamp_regions(out["st_raw"].detach().float())
            logs["glrec_iou"] = region_overlaps(pred, st_true)[0].mean()
