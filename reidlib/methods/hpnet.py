"""HPNet as a training method (registered as ``"hpnet"``): settings, recipes, the batch recipe with
part-mask labels, and the loss.  SANet (:mod:`reidlib.methods.sanet`) extends it.

The batch recipe (:meth:`HPNetMethod.train_dataset`): every training image is read with its part
mask (SynthPeds renders the true one; a real dataset reads it from its mask folder,
:mod:`reidlib.data.datasets`, and names any image without one before training starts), augmented
as a holistic frame (resize, flip, pad + random crop, the mask moved with the image), then -- with
probability ``p_partial`` -- cut to a random partial crop of the person's box
(:class:`reidlib.data.loader.PartialCropDataset`, the mask cut with it), and the mask is
down-sampled to the segmentation heads' size (:class:`reidlib.data.masks.PartMaskLabels`, SANet
Eq. 6's ``DS(M^i)``), which also gives each branch's visibility.

Partial training crops (a decision; the papers do not settle it).  SANet trains on Market-1501
with "flipping, color improvement, and random cropping" (Sec. 4.2), HPNet on holistic images.
"Random cropping" is read here as partial crops of the person, for half of the images
(``p_partial = 0.5``; the other half stay holistic, so that the holistic test set keeps its
training distribution): the AFE exists to adapt to the scale of partial inputs and learns its
routes from identity supervision only, so it must see them; and without crops the segmentation
heads would never learn that a part can be missing.  The crops keep 50-100 % of the person's box
(``crop_ratio``, VPM's range, the book's first partial training crop) from any of the four sides
(``crop_sides``): neither test set's shape is imitated.  HPNet and SANet train on the same items,
so that Table 3's rows differ by their model only.  ``p_partial=0`` gives the holistic reading.

The network is :class:`reidlib.models.hpnet.HPNet`, the losses are :mod:`reidlib.losses.hpnet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reidlib.data.partial import SIDES, CropSpec
from reidlib.losses.hpnet import (
    branch_identity_losses,
    common_parts_triplet_loss,
    hpnet_total_loss,
    part_mask_focal_loss,
)
from reidlib.losses.sanet import branch_triplet_losses, sanet_total_loss
from reidlib.methods.base import Method, Settings, TrainConfig, setting, weights_path
from reidlib.models.base import unwrap
from reidlib.models.hpnet import MASK_POOLING, HPNet, backbone_feature_size

__all__ = ["TRIPLET_FORMS", "HPNetSettings", "HPNetMethod", "profile_recipe"]

#: ``"common"``: HPNet's triplet on the mean distance over commonly visible parts;
#: ``"branch"``: SANet Eq. 6's triplet per branch.
TRIPLET_FORMS = ("common", "branch")


@dataclass(frozen=True)
class HPNetSettings(Settings):
    """HPNet's settings (``TrainConfig.extra``)."""

    global_branch: bool = setting(False, doc="add the whole-body branch (SANet's global branch)")
    mask_pooling: str = setting("hard", choices=MASK_POOLING,
                                doc="hard: f x (m > 0.5) (HPNet); soft: m x f (SANet Eq. 4)")
    triplet: str = setting("common", choices=TRIPLET_FORMS, doc="common: HPNet's; branch: SANet Eq. 6's")
    triplet_weight: float = setting(0.1, min=0.0, doc="0 turns the triplet loss off")
    margin: float = setting(0.3, min=0.0, doc="the triplet margin")
    label_smooth: float = setting(0.1, min=0.0, max=1.0, doc="the identity losses' label smoothing")
    focal_alpha: float = setting(0.25, min=0.0, max=1.0)
    focal_gamma: float = setting(2.0, min=0.0)
    mask_min_fraction: float = setting(0.1, min=0.0, max=1.0, min_exclusive=True,
                                       doc="DS(M^i): a cell is positive when the part covers this share of it")
    seg_channels: int | None = setting(None, min=1, doc="segmentation heads' width (None: max(16, C/8))")
    neck_feat: str = setting("after", choices=("after", "before"), doc="test features after or before the BNNecks")
    normalize: bool = setting(True, doc="L2-normalise each part feature before Eq. 7")
    p_partial: float = setting(0.5, min=0.0, max=1.0, doc="share of training images cut to a partial crop")
    crop_ratio: tuple[float, float] = setting((0.5, 1.0), min=0.0, max=1.0, min_exclusive=True,
                                              doc="the crops' kept area fraction (low, high)")
    crop_sides: tuple[str, ...] = setting(SIDES, doc="the sides a crop may keep")
    crop_within: str = setting("body", choices=("body", "frame"),
                               doc="the crop ratio is of the person's box or of the frame")
    color_jitter: float = setting(0.0, min=0.0, max=1.0, doc="brightness/contrast/saturation jitter (0: none)")
    backbone_weights: str | None = setting(None, doc="an explicit backbone weights file (instead of ImageNet's)")

    _method = "hpnet"

    def check(self) -> None:
        where = self._label()
        if self.label_smooth >= 1.0:
            raise ValueError(f"{where}: label_smooth={self.label_smooth!r} is out of range; "
                             f"expected a value >= 0 and < 1")
        try:
            self.crop_spec()
        except ValueError as e:
            raise ValueError(f"{where}: crop_ratio={self.crop_ratio!r} / crop_sides={self.crop_sides!r}: {e}") from None

    def crop_spec(self) -> CropSpec:
        """The partial crop of the training items."""
        return CropSpec(ratio=tuple(self.crop_ratio), sides=tuple(self.crop_sides), mode="side")


def profile_recipe(profile: str, extra: dict, who: str) -> TrainConfig:
    """The TrainConfig of ``profile`` shared by HPNet and SANet (the same budget and batches, so
    that Table 3's rows differ by their model only); ``extra`` is the method's settings dict."""
    x = dict(extra)
    if profile == "full":
        # SANet Sec. 4.2 (HPNet's own recipe is not in the notes; Table 3's first row trains as
        # SANet): ResNet-50 (ImageNet), 384x128, 150 epochs, SGD at 0.01 for every layer, batches of
        # 64 -- as 16 ids x 4 (the triplet loss needs identity-balanced batches) --, flip, colour
        # jitter ("color improvement", strength ours: 0.2), random (partial) crops.  Open in the
        # paper and set here: last stride 1, momentum 0.9, weight decay 5e-4, x0.1 at epochs 50 and
        # 100, no warm-up, pad 10 + random crop, no random erasing.
        x.update(color_jitter=0.2)
        return TrainConfig(
            image_size=(384, 128), backbone="resnet50", pretrained=True, last_stride=1, epochs=150, batch_p=16,
            batch_k=4, sampler="pk", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, backbone_lr_mult=1.0,
            scheduler="step", milestones=(50, 100), gamma=0.1, warmup_epochs=0, warmup_factor=1.0,
            random_erasing=0.0, flip=0.5, pad=10, checkpoint_every=10, extra=x,
        )
    if profile == "smoke":
        # CPU seconds on SynthPeds smoke: the quarter-width one-block ResNet from scratch, 128x64,
        # 3 epochs of 20 PK batches of 8 ids x 4 (60 iterations, 1,920 images), SGD at 0.05, x0.1
        # for the last epoch.  Enough to run every piece, far from converged.
        return TrainConfig(
            image_size=(128, 64), backbone="resnet10s", pretrained=False, last_stride=1, epochs=3, batch_p=8,
            batch_k=4, sampler="pk", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, backbone_lr_mult=1.0,
            scheduler="step", milestones=(2,), gamma=0.1, warmup_epochs=0, warmup_factor=1.0, random_erasing=0.0,
            flip=0.5, pad=5, amp=True, num_workers=0, checkpoint_every=0, max_iters_per_epoch=20, extra=x,
        )
    if profile == "book":
        # CPU minutes from the SynthPeds-pretrained backbone (layers 1-3 and every layer-4 copy), on
        # the baseline's budget: 10 epochs of the 181-182 PK batches of 16 ids x 4 that the 12,936
        # training images give (the baseline's sampler, batch and epochs: 116,288 images; a partial
        # crop replaces its holistic image and adds none).  SGD as the paper, at the book's SGD rates
        # (VPM's and PCB's: new layers at 0.05, the pretrained ones at a tenth), a one-epoch warm-up
        # and x0.1 for the last 3 epochs (as the baseline); no random erasing (it would hide parts
        # that the mask labels call visible).
        from reidlib.methods.baseline import BOOK_BACKBONE_WEIGHTS, book_recipe_defaults

        x.update(backbone_weights=BOOK_BACKBONE_WEIGHTS)
        return TrainConfig(
            **book_recipe_defaults(), epochs=10, batch_p=16, batch_k=4, sampler="pk", optimizer="sgd", lr=0.05,
            momentum=0.9, weight_decay=5e-4, backbone_lr_mult=0.1, scheduler="step", milestones=(7,), gamma=0.1,
            warmup_epochs=1, warmup_factor=0.1, random_erasing=0.0, flip=0.5, pad=5, extra=x,
        )
    raise ValueError(f"unknown profile {profile!r}: {who} has recipes 'smoke', 'book' and 'full'")


class HPNetMethod(Method):
    """HPNet (see the module docstring)."""

    name = "hpnet"
    Settings = HPNetSettings

    @classmethod
    def recipe(cls, profile: str, **extra) -> TrainConfig:
        """The recipe of ``profile`` with ``extra`` settings."""
        cfg = profile_recipe(profile, HPNetSettings().to_dict(), "HPNet")
        settings = HPNetSettings.from_dict({**cfg.extra, **extra}, where="HPNetMethod.recipe")
        return cfg.replace(extra=settings.to_dict())

    def __init__(self, cfg: TrainConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        s = self.settings
        if s.triplet_weight > 0 and cfg.sampler != "pk":
            raise ValueError(f"{self.name} settings: the triplet loss (triplet_weight={s.triplet_weight}) needs "
                             f"identity-balanced batches: sampler='pk' (got sampler={cfg.sampler!r})")

    # -- the model ------------------------------------------------------------------
    def _backbone_kwargs(self, init: bool) -> dict:
        c, s = self.cfg, self.settings
        return dict(backbone=c.backbone, pretrained=c.pretrained and init, last_stride=c.last_stride,
                    weights=weights_path(s.backbone_weights) if init else None)

    def _branch_kwargs(self) -> dict:
        s = self.settings
        return dict(global_branch=s.global_branch, mask_pooling=s.mask_pooling, seg_channels=s.seg_channels,
                    neck_feat=s.neck_feat, normalize=s.normalize)

    def build_model(self, init: bool = True) -> HPNet:
        model = HPNet(self.num_classes, **self._backbone_kwargs(init), **self._branch_kwargs())
        model.image_size = tuple(self.cfg.image_size)
        return model

    def param_groups(self, model: nn.Module) -> list[dict]:
        """The pretrained layers (1-3 and every layer-4 copy) at ``backbone_lr_mult``, the new ones
        (segmentation heads, BNNecks, classifiers, SANet's AFE) at the full rate."""
        m = unwrap(model)
        pre = [p for mod in m.pretrained_modules() for p in mod.parameters() if p.requires_grad]
        ids = {id(p) for p in pre}
        return [{"params": pre, "lr_mult": self.cfg.backbone_lr_mult},
                {"params": [p for p in m.parameters() if p.requires_grad and id(p) not in ids], "lr_mult": 1.0}]

    # -- the batch recipe -------------------------------------------------------------
    def train_dataset(self, dataset, pid2label: dict[int, int]):
        """Holistic frames and partial crops with their part-mask labels (see the module docstring)."""
        from torchvision.transforms import v2

        from reidlib.data.loader import PartialCropDataset
        from reidlib.data.masks import PartMaskLabels
        from reidlib.data.transforms import build_geometric_transform, build_photometric_transform

        c, s = self.cfg, self.settings
        check = getattr(dataset, "check_masks", None)
        if callable(check):  # a dataset on disk: every training image needs its mask, named before training
            check(("train",))
        photometric = build_photometric_transform(c.random_erasing)
        if s.color_jitter > 0:
            j = s.color_jitter
            photometric = v2.Compose([v2.ColorJitter(brightness=j, contrast=j, saturation=j), photometric])
        base = PartialCropDataset(
            dataset.train, dataset, strategy=s.crop_spec(), size=c.image_size, p_partial=s.p_partial,
            transform=photometric, holistic_transform=build_geometric_transform(c.image_size, flip=c.flip, pad=c.pad),
            with_mask=True, relabel=pid2label, crop_within=s.crop_within,
        )
        feat_size = backbone_feature_size(c.backbone, c.image_size, c.last_stride)
        return PartMaskLabels(base, feat_size, s.mask_min_fraction, with_global=s.global_branch)

    # -- the loss -----------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: dict, epoch: int):
        """Per branch the identity loss and the focal loss of its mask, and the triplet loss
        (HPNet's on commonly visible parts, or SANet Eq. 6's per branch); detached logs."""
        s = self.settings
        out = model(batch["image"])
        labels = batch["label"]
        visible = batch["part_visible"].bool()
        mask_labels = batch["part_labels"]
        l_focal = part_mask_focal_loss(out["mask_logits"], mask_labels, alpha=s.focal_alpha, gamma=s.focal_gamma)
        l_id = branch_identity_losses(out["logits"], labels, visible, epsilon=s.label_smooth)
        logs = {"L_ID": l_id.sum().detach(), "L_focal": l_focal.sum().detach()}
        l_tri = None
        if s.triplet_weight > 0:
            if s.triplet == "common":
                l_tri = common_parts_triplet_loss(out["parts"], visible, labels, margin=s.margin)
            else:
                l_tri = branch_triplet_losses(out["parts"], visible, labels, margin=s.margin)
            logs["L_tri"] = l_tri.sum().detach()
        if s.triplet == "common":
            total = hpnet_total_loss(l_id, l_focal, l_tri, s.triplet_weight)
        else:
            total = sanet_total_loss(l_id, l_tri, l_focal, s.triplet_weight)  # SANet Eq. 6
        with torch.no_grad():
            logs.update(self._diagnostics(out, labels, visible, mask_labels))
        return total, logs

    def _diagnostics(self, out: dict, labels: torch.Tensor, visible: torch.Tensor, mask_labels: torch.Tensor) -> dict:
        """Training-time accuracies (tensors, no host sync): identity accuracy over the visible
        branches, the masks' IoU with their labels, the visibility decisions' accuracy (Eq. 5 vs
        the labels)."""
        hit = (out["logits"].argmax(dim=2) == labels.view(-1, 1)) & visible
        pred = out["masks"] > 0.5
        truth = mask_labels > 0
        return {
            "id_acc": hit.sum().float() / visible.sum().clamp_min(1).float(),
            "mask_iou": (pred & truth).sum().float() / (pred | truth).sum().clamp_min(1).float(),
            "vis_acc": (out["visibility"] == visible).float().mean(),
        }
