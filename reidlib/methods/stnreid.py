"""STNReID's two-stage training as a method (registered as ``"stnreid"``; Section 3.2).

* stage 1 (``stage=1``): end-to-end training of STN + a *weak* ReID module (Table 2's Ep1: no
  ImageNet weights, ID loss only) to get a strong STN;
* stage 2 (``stage=2``): the STN from stage 1 is frozen; Pipeline Mode trains (fine-tunes) a
  strong ReID module behind it with Eq. 6 (Table 2's Ep5 settings).  Merge Mode needs no
  training: :func:`reidlib.models.stnreid.merge_mode` puts the frozen STN in front of an
  independently trained ReID model (the baseline).

The networks and Eq. 1-2 are in :mod:`reidlib.models.stnreid`, Eq. 5-6 in
:mod:`reidlib.losses.stnreid`.  Earlier stages' weights are read only when a stage starts
(``build_model(init=True)``): a finished run's ``model.safetensors`` holds everything, so it
loads after its inputs have moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from reidlib.losses import CrossEntropyLabelSmooth, TripletLoss
from reidlib.losses.stnreid import stnreid_loss, theta_regression_loss
from reidlib.methods.base import Method, Settings, TrainConfig, weights_path
from reidlib.methods.base import setting as _field  # one of the settings is named `setting`
from reidlib.models.base import unwrap as _unwrap
from reidlib.models.baseline import Baseline
from reidlib.models.stnreid import STNReID, LocalizationNet, box_iou_pairs, theta_to_box

__all__ = ["CONFRONTATION_SETTINGS", "STN_MODES", "STN_TARGETS", "STNReIDSettings", "STNReIDMethod",
           "weights_file", "submodule_weights", "load_stn", "load_reid_init"]

#: Table 2's five settings of the ReID module (PT: ImageNet init, LS: label smoothing, L_Tri).
CONFRONTATION_SETTINGS: dict[str, dict] = {
    "Ep1": {"pretrained": False, "label_smooth": 0.0, "triplet": False},
    "Ep2": {"pretrained": True, "label_smooth": 0.0, "triplet": False},
    "Ep3": {"pretrained": True, "label_smooth": 0.1, "triplet": False},
    "Ep4": {"pretrained": True, "label_smooth": 0.0, "triplet": True},
    "Ep5": {"pretrained": True, "label_smooth": 0.1, "triplet": True},
}

#: Stage 2's modes: Pipeline Mode trains, Merge Mode does not (built with ``merge_mode``).
STN_MODES = ("pipeline", "merge")
#: What teaches the STN in stage 1: Eq. 6 (the paper) or the true theta (an oracle, chapter 05).
STN_TARGETS = ("features", "oracle")


@dataclass(frozen=True)
class STNReIDSettings(Settings):
    """STNReID's settings (``TrainConfig.extra``).

    ``stn_target``: ``"features"`` (the paper: Eq. 6, whose ``L_STN`` compares features) or
    ``"oracle"`` (not the paper: the STN alone regresses the true ``theta`` of each crop,
    :func:`reidlib.losses.stnreid.theta_regression_loss`; the ReID module is not trained).
    ``crop_within``: what a training crop removes 20-60 % of: ``"body"`` (the person's box, the way
    the partial test sets are cut) or ``"frame"`` (see :class:`reidlib.data.loader.PartialCropDataset`).
    ``reid_weights``: initial weights of the ReID module (a baseline run), which replace ImageNet's
    (the smoke profile's stand-in for Table 2's ``PT``).
    """

    stage: int = _field(1, choices=(1, 2))
    mode: str = _field("pipeline", choices=STN_MODES)
    setting: str = _field("Ep1", choices=tuple(CONFRONTATION_SETTINGS), doc="Table 2's row")
    stn_weights: str | None = _field(None, doc="stage 2: the stage-1 run (folder or weights file)")
    reid_weights: str | None = None
    label_smooth: float = _field(0.0, min=0.0, max=1.0)
    triplet: bool = False
    margin: float = _field(0.3, min=0.0)
    stn_weight: float = _field(1.0, min=0.0, doc="weight of L_STN in Eq. 6")
    strategy: str = _field("stnreid", doc="the partial-crop strategy (reidlib.data.partial.STRATEGIES)")
    neck_feat: str = _field("after", choices=("after", "before"))
    metric: str = _field("euclidean", choices=("euclidean", "cosine"))
    backbone_weights: str | None = None
    shortlist: int | None = _field(None, min=1, doc="default matcher: None = all pairs, k = rescore the top k")
    batch_pairs: int = _field(256, min=1)
    stn_lr_mult: float = _field(1.0, min=0.0)
    crop_within: str = _field("body", choices=("body", "frame"))
    stn_target: str = _field("features", choices=STN_TARGETS)

    _method = "stnreid"

    def check(self) -> None:
        if self.stage == 2 and self.mode == "merge":
            raise ValueError("stnreid settings: Merge Mode trains nothing: build it with "
                             "reidlib.models.stnreid.merge_mode(stage-1 STN, trained ReID model); "
                             "use mode='pipeline' to train stage 2")
        if self.stn_target == "oracle" and self.stage != 1:
            raise ValueError("stnreid settings: stn_target='oracle' trains an STN: it is a stage-1 setting "
                             "(stage 2 freezes the STN)")


# ----------------------------------------------------------------------------- weights of earlier stages
def weights_file(path) -> Path:
    """``path`` itself (a weights file) or the ``model.safetensors`` of a run folder."""
    p = Path(path)
    if p.is_dir():
        f = p / "model.safetensors"
        if not f.is_file():
            raise FileNotFoundError(f"{p} is a folder without model.safetensors; expected a finished training run "
                                    f"folder (runs/...) or a weights file")
        return f
    if not p.is_file():
        raise FileNotFoundError(f"weights not found: {p}; expected a training run folder holding model.safetensors "
                                f"or a .safetensors/.pth weights file")
    return p


def submodule_weights(path, prefix: str) -> tuple[Path, dict]:
    """The weights file of ``path`` (:func:`weights_file`) and its state dict; when its keys hold
    ``<prefix>.`` ones (a whole model's weights), only those, with the prefix removed."""
    from reidlib.models.backbones import load_state_dict_file

    f = weights_file(path)
    sd = load_state_dict_file(f)
    head = prefix + "."
    if any(k.startswith(head) for k in sd):
        sd = {k[len(head):]: v for k, v in sd.items() if k.startswith(head)}
    return f, sd


def load_stn(path, input_size: Sequence[int] = (256, 128)) -> LocalizationNet:
    """The localisation net of a stage-1 run (its folder or weights file; ``stn.*`` keys of an
    :class:`STNReID` state dict, or a bare :class:`LocalizationNet` state dict)."""
    net = LocalizationNet(input_size)
    return _load_stn_into(net, path)


def _load_stn_into(net: LocalizationNet, path) -> LocalizationNet:
    f, sd = submodule_weights(path, "stn")
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError(f"{f} does not hold a LocalizationNet for {net.input_size} images (STNReID stage-1 "
                         f"weights expected): {e}") from e
    return net


def load_reid_init(reid: nn.Module, path) -> nn.Module:
    """Initialise the ReID module from a run's weights (a baseline run, or the ``reid.*`` part of
    an STNReID run).  The classifier is skipped when its number of identities differs."""
    f, sd = submodule_weights(path, "reid")
    own = reid.state_dict()
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if any(not k.startswith("classifier") for k in skipped):
        raise ValueError(f"{f}: tensors {skipped[:5]} do not fit the ReID module {type(reid).__name__} "
                         f"(another backbone or image size?)")
    sd = {k: v for k, v in sd.items() if k not in skipped}
    missing, unexpected = reid.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.startswith("classifier")] + list(unexpected)
    if bad:
        raise ValueError(f"{f} does not hold weights of {type(reid).__name__}: missing/unexpected keys {bad[:6]}")
    return reid


# ----------------------------------------------------------------------------- the method
class STNReIDMethod(Method):
    """STNReID's two-stage training (see the module docstring and :class:`STNReIDSettings`).

    Recipes: :meth:`recipe` gives stage 1 with Table 2's Ep1 settings; :meth:`stage_recipe`
    any stage / setting.  Each recipe is one run: stage 2 names its stage-1 run
    (``stn_weights``), and Merge Mode trains nothing, so the chapter chooses the pairing.
    """

    name = "stnreid"
    Settings = STNReIDSettings

    @classmethod
    def recipe(cls, profile: str) -> TrainConfig:
        return cls.stage_recipe(profile, stage=1, setting="Ep1")

    @classmethod
    def stage_recipe(cls, profile: str, stage: int = 1, setting: str = "Ep1", **extra) -> TrainConfig:
        """The recipe of ``stage`` with Table 2's ``setting`` (``"Ep1"`` .. ``"Ep5"``) for the ReID module.

        Stage 1 is Ep1 in the paper, stage 2 is Ep5; ``extra`` keys override the settings.
        """
        if setting not in CONFRONTATION_SETTINGS:
            raise ValueError(f"unknown setting {setting!r}: Table 2's settings are {', '.join(CONFRONTATION_SETTINGS)}")
        if stage not in (1, 2):
            raise ValueError(f"stage={stage!r}: STNReID trains in stage 1 or 2")
        s = CONFRONTATION_SETTINGS[setting]
        from reidlib.methods.baseline import BaselineMethod

        # the ReID module is the strong baseline's network: same backbone, input size and last stride
        # (so that Merge Mode and the baseline-initialised settings load its weights)
        base = BaselineMethod.recipe(profile) if profile in ("smoke", "book", "full") else None
        book_init = {}
        if profile == "book" and s["pretrained"]:
            # Table 2's "PT" in the book: the SynthPeds-pretrained backbone (ImageNet's stand-in)
            from reidlib.methods.baseline import BOOK_BACKBONE_WEIGHTS

            book_init = {"backbone_weights": BOOK_BACKBONE_WEIGHTS}
        x = STNReIDSettings.from_dict({"stage": stage, "setting": setting, "label_smooth": s["label_smooth"],
                                       "triplet": s["triplet"], **book_init, **extra},
                                      where="STNReIDMethod.stage_recipe").to_dict()
        if profile == "full":
            # Section 4 "Settings": ResNet-50, 256x128, batch 32 = 8 ids x 4, Adam, 2e-4 for 150 epochs
            # then 2e-5 for 150, weight decay 5e-4, flip + crop + generated partials.
            return TrainConfig(
                image_size=base.image_size, backbone=base.backbone, pretrained=s["pretrained"],
                last_stride=base.last_stride, epochs=300, batch_p=8, batch_k=4, optimizer="adam", lr=2e-4, weight_decay=5e-4,
                scheduler="step", milestones=(150,), gamma=0.1, warmup_epochs=0, warmup_factor=1.0,
                random_erasing=0.0, flip=0.5, pad=10, checkpoint_every=10, extra=x,
            )
        if profile == "smoke":
            # CPU seconds on SynthPeds smoke (~25 s per stage on 2 cores): the baseline's tiny ResNet,
            # 200 iterations (4 x 50) of 8 ids x 2 images, the rate / 10 for the last 50.  Enough for
            # the STN to beat the identity transform on held-out crops, far from converged (chapter 05).
            return TrainConfig(
                image_size=base.image_size, backbone=base.backbone, pretrained=s["pretrained"],
                last_stride=base.last_stride, epochs=4, batch_p=8, batch_k=2, optimizer="adam", lr=1e-3, weight_decay=5e-4,
                scheduler="step", milestones=(3,), gamma=0.1, warmup_epochs=0, warmup_factor=1.0,
                random_erasing=0.0, flip=0.5, pad=5, num_workers=0, checkpoint_every=2,
                max_iters_per_epoch=50, extra=x,
            )
        if profile == "book":
            # CPU minutes on the baseline's budget: 5 epochs of the 366 PK batches of 8 ids x 4 pairs
            # (58,560 pairs: 117,120 images, a holistic image and its partial crop each; the baseline
            # sees 116,288), Adam at the strong baseline's book rate (the paper's 2e-4 is of its order)
            # after a one-epoch warm-up, x0.1 for the last epoch.  "PT" settings start from the
            # SynthPeds-pretrained backbone, Ep1 from scratch, as in Table 2.
            from reidlib.methods.baseline import book_recipe_defaults

            return TrainConfig(
                **{**book_recipe_defaults(), "pretrained": s["pretrained"]}, epochs=5, batch_p=8, batch_k=4,
                optimizer="adam", lr=3.5e-4, weight_decay=5e-4, scheduler="step", milestones=(4,), gamma=0.1,
                warmup_epochs=1, warmup_factor=0.1, random_erasing=0.0, flip=0.5, pad=5, extra=x,
            )
        raise ValueError(f"unknown profile {profile!r}: STNReID has recipes 'smoke', 'book' and 'full'")

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        s = self.settings
        if s.stage == 2 and not s.stn_weights:
            raise ValueError("stnreid settings: stage 2 needs stn_weights: the stage-1 STNReID run "
                             "(folder or model.safetensors) whose STN is frozen")
        self.stage = s.stage
        self.stn_target = s.stn_target
        self.ce = CrossEntropyLabelSmooth(num_classes, epsilon=s.label_smooth)
        self.triplet = TripletLoss(margin=s.margin) if s.triplet else None

    def build_model(self, init: bool = True) -> STNReID:
        c, s = self.cfg, self.settings
        init_reid = weights_path(s.reid_weights) if init else None
        reid = Baseline(
            self.num_classes, backbone=c.backbone, pretrained=bool(c.pretrained and init and not init_reid),
            last_stride=c.last_stride, weights=weights_path(s.backbone_weights) if init else None, neck_feat=s.neck_feat,
            metric=s.metric,
        )
        if init_reid:
            load_reid_init(reid, init_reid)
        stn = LocalizationNet(c.image_size)
        if self.stage == 2 and init:
            _load_stn_into(stn, weights_path(s.stn_weights))
        return STNReID(reid, stn=stn, image_size=c.image_size, freeze_stn=self.stage == 2,
                       shortlist=s.shortlist, batch_pairs=s.batch_pairs, metric=s.metric)

    def train_dataset(self, dataset, pid2label: dict[int, int]):
        """Holistic images (flip, pad + crop) and a partial crop of each (``strategy``, cut from the
        body box or the frame: ``crop_within``), resized to the image size."""
        from reidlib.data.loader import PartialCropDataset
        from reidlib.data.transforms import build_geometric_transform, build_photometric_transform

        c, s = self.cfg, self.settings
        return PartialCropDataset(
            dataset.train, dataset, strategy=s.strategy, size=c.image_size, p_partial=1.0,
            transform=build_photometric_transform(c.random_erasing),
            holistic_transform=build_geometric_transform(c.image_size, flip=c.flip, pad=c.pad),
            return_holistic=True, relabel=pid2label, crop_within=s.crop_within,
        )

    def param_groups(self, model: nn.Module) -> list[dict]:
        """Two groups: the ReID module (``lr_mult`` 1) and the STN (``stn_lr_mult``, default 1;
        absent when the STN is frozen)."""
        m = _unwrap(model)
        groups = [{"params": [p for p in m.reid.parameters() if p.requires_grad], "lr_mult": 1.0}]
        stn = [p for p in m.stn.parameters() if p.requires_grad]
        if stn:
            groups.append({"params": stn, "lr_mult": self.settings.stn_lr_mult})
        return groups

    def loss(self, model: nn.Module, batch: dict, epoch: int):
        """Eq. 6 on the batch (or the oracle's theta regression); logs its terms and the IoU of
        the STN's box with the true crop box (detached tensors: no host sync)."""
        size = batch["holistic"].shape[-2:]
        if self.stn_target == "oracle":  # not the paper: the STN alone, on the true theta
            if isinstance(model, nn.parallel.DistributedDataParallel):
                raise RuntimeError("stn_target='oracle' trains the STN outside the model's forward: "
                                   "run it in one process (not under torchrun/DDP)")
            theta = _unwrap(model).predict_theta(batch["image"], batch["holistic"])
            total = theta_regression_loss(theta, batch["theta"])
            terms = {"theta_mse": total.detach()}
        else:
            out = model(batch["holistic"], batch["image"])
            total, terms = stnreid_loss(out, batch["label"], self.ce, self.triplet, self.settings.stn_weight)
            theta = out["theta"]
            terms["acc_p"] = (out["logits_p"].argmax(1) == batch["label"]).float().mean()
        with torch.no_grad():
            pred = theta_to_box(theta.detach().float(), size)
            true = theta_to_box(batch["theta"].float(), size)
            terms["box_iou"] = box_iou_pairs(pred, true).mean()
        terms.pop("total", None)
        return total, terms

