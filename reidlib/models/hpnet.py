"""HPNet: human-parsing branches with part visibility (Huang et al., ICME 2020), SANet's baseline.

The recipe is the reference notes' (Sec. 3): the ResNet's stem and layers 1-3 are shared
(:attr:`HPNet.backbone`, whose layer 4 is removed); layer 4 is copied once per part -- head,
upper body, lower body, feet (:data:`reidlib.data.masks.BODY_PARTS`, mask labels 1-4) -- and each
copy (a :class:`PartBranch`, initialised with the backbone's layer-4 weights) carries

* a segmentation head (:class:`SegmentationHead`: conv3x3 to 256 channels, BN, ReLU, conv1x1 to
  one channel, sigmoid) whose mask ``m^i`` is trained with the sigmoid focal loss
  (:func:`reidlib.losses.hpnet.part_mask_focal_loss`);
* the part feature ``F^i``: the global max pool of the feature map under the mask
  (:func:`masked_max_pool`; HPNet binarises the mask, ``f x (m > 0.5)``);
* the visibility of the part: some mask pixel above 0.5 (:func:`part_visibility`, SANet Eq. 5);
* a BNNeck and a bias-free identity classifier.

Two images are compared on the parts visible in both: the mean distance over the commonly
visible parts (SANet Eq. 7, :func:`reidlib.metrics.distance.common_parts_distance` through
:class:`reidlib.metrics.matchers.CommonPartsMatcher`).  ``global_branch=True`` adds a fifth branch
whose mask is the whole body (SANet's global branch, Table 3's "+ Global Branch");
``mask_pooling="soft"`` pools ``m x f`` as SANet Eq. 4 writes it.  SANet
(:mod:`reidlib.models.sanet`) is this model with its AFE module before the branches.  The
losses are in :mod:`reidlib.losses.hpnet`, the method in :mod:`reidlib.methods.hpnet`.

Decisions the papers leave open (the chapter states them):

* "MaxPool" pools over all ``h x w`` positions of the branch's layer-4 map (a global max per
  channel).  Layer 4 ends in a ReLU, so masked-out positions (0) never beat a visible one; an
  empty mask gives the zero vector (and the part is invisible, so no distance uses it).
* Hard pooling (HPNet, the default here) passes no gradient from the identity and triplet
  losses to the segmentation heads: they learn from the focal loss alone.  Soft pooling (SANet
  Eq. 4) lets the identity losses shape the masks too.
* The segmentation head's hidden width is 256 for ResNet-50 (the reference) and scales with the
  backbone: ``max(16, C / 8)`` for a layer 4 of ``C`` channels (:func:`default_seg_channels`;
  16 for the book's quarter-width ``resnet10s``, whose layer 4 has 128 channels), so that the
  heads do not cost more than the network they read.  The last convolution starts with bias 0
  (masks of 0.5 everywhere).
* Visibility threshold: 0.5 on the sigmoid mask, as Eq. 5 (``v^i`` = the number of pixels above
  0.5; visible when ``v^i >= 1``).  The visibility is a decision of the segmentation heads at test
  time; in training the losses use the visibility of the mask labels (see the losses).
* The mask labels (the papers' parser annotations, ``DS(M^i)`` of SANet Eq. 6) are the true part
  masks: SynthPeds renders each training image's, a real dataset reads them from its mask folder
  (one PNG per image, :mod:`reidlib.data.datasets`).  They are moved with the image through the
  flip, the pad-and-crop and the partial crop (:class:`reidlib.data.loader.PartialCropDataset`),
  then down-sampled to the masks' ``h x w`` by :func:`reidlib.data.masks.part_mask_labels`: a cell
  is a positive of a part when the part covers at least 10 % of its pixels (a majority vote would
  erase the head and the feet at the book's 8x4 maps), the whole-body branch's positives are the
  body's, occluded pixels are nobody's.
* Test features: the part features after their BNNeck (``neck_feat="after"``, the strong
  baseline's convention), each L2-normalised (``normalize``), compared with the plain Euclidean
  distance; a pair with no commonly visible part gets ``+inf`` (it ranks after every pair that
  shares a part).  The BNNeck's batch statistics in training include the zero features of
  invisible parts.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn

from reidlib.data.masks import BODY_PARTS
from reidlib.models.backbones import build_backbone
from reidlib.models.base import Features, ReIDModel
from reidlib.models.baseline import init_bnneck

__all__ = [
    "MASK_POOLING",
    "VISIBLE_THRESHOLD",
    "NO_COMMON_DISTANCE",
    "layer_channels",
    "default_seg_channels",
    "backbone_feature_size",
    "part_visibility",
    "masked_max_pool",
    "SegmentationHead",
    "PartBranch",
    "HPNet",
]

#: How a part feature pools its map: under the binarised mask (HPNet) or the mask itself (SANet Eq. 4).
MASK_POOLING = ("hard", "soft")
#: SANet Eq. 5 / HPNet: a mask pixel counts when its probability exceeds 0.5.
VISIBLE_THRESHOLD = 0.5
#: The distance of a pair without a commonly visible part (SANet Eq. 7 is 0/0 there).
NO_COMMON_DISTANCE = math.inf

_FEAT_SIZE_CACHE: dict[tuple, tuple[int, int]] = {}


def layer_channels(layer: nn.Module) -> int:
    """Output channels of a torchvision ResNet stage (a ``Sequential`` of Basic/Bottleneck blocks)."""
    last = layer[-1]
    bn = getattr(last, "bn3", None) or last.bn2
    return int(bn.num_features)


def default_seg_channels(width: int) -> int:
    """The segmentation head's hidden width for a layer 4 of ``width`` channels: 256 for
    ResNet-50's 2048 (the reference), ``max(16, width // 8)`` in general."""
    return max(16, int(width) // 8)


@torch.no_grad()
def backbone_feature_size(backbone: str, image_size: Sequence[int], last_stride: int = 1) -> tuple[int, int]:
    """``(h, w)`` of backbone ``backbone``'s layer-4 map for an input of ``image_size = (H, W)``:
    the size of the masks and of their labels (computed once per key, on a bare CPU backbone)."""
    key = (backbone, int(image_size[0]), int(image_size[1]), int(last_stride))
    if key not in _FEAT_SIZE_CACHE:
        bb = build_backbone(backbone, pretrained=False, last_stride=last_stride).eval()
        t = bb(torch.zeros(1, 3, key[1], key[2]))
        _FEAT_SIZE_CACHE[key] = (int(t.shape[-2]), int(t.shape[-1]))
    return _FEAT_SIZE_CACHE[key]


# ---------------------------------------------------------------------------
# The two equations of the branches
# ---------------------------------------------------------------------------
def part_visibility(masks: torch.Tensor, threshold: float = VISIBLE_THRESHOLD) -> torch.Tensor:
    """SANet Eq. 5: ``v^i = sum_pixels [m^i > 0.5]``; part ``i`` is visible when ``v^i >= 1``
    (HPNet: some mask pixel above 0.5).

    Args:
        masks: ``(N, P, h, w)`` mask probabilities (the sigmoid of the segmentation heads).
        threshold: the pixel threshold (0.5).

    Returns:
        ``(N, P)`` int64 pixel counts ``v^i``; ``v >= 1`` is the visibility flag.
    """
    if masks.dim() != 4:
        raise ValueError(f"part_visibility: masks must be (N, P, h, w), got shape {tuple(masks.shape)}")
    return (masks > threshold).flatten(2).sum(dim=2)


def masked_max_pool(feature_map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SANet Eq. 4: ``F^i = MaxPool(m^i x f^i_Res4)`` -- the global max over the ``h x w``
    positions of the feature map weighted by the branch's mask (HPNet: ``m`` binarised, ``m > 0.5``).

    Args:
        feature_map: ``(N, C, h, w)`` -- the branch's layer-4 map ``f^i``.
        mask: ``(N, h, w)`` -- ``m^i`` in ``[0, 1]``.

    Returns:
        ``(N, C)``.
    """
    if feature_map.dim() != 4 or mask.shape != (feature_map.shape[0], *feature_map.shape[2:]):
        raise ValueError(f"masked_max_pool: expected feature_map (N, C, h, w) and mask (N, h, w) with the same "
                         f"N, h, w; got {tuple(feature_map.shape)} and {tuple(mask.shape)}")
    return (feature_map * mask.unsqueeze(1).to(feature_map.dtype)).amax(dim=(2, 3))


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------
class SegmentationHead(nn.Module):
    """conv3x3 (``mid_channels``) + BN + ReLU, then conv1x1 to one channel: the mask's logits
    ``(N, h, w)`` (the sigmoid is applied by the model and inside the focal loss)."""

    def __init__(self, in_channels: int, mid_channels: int = 256):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(mid_channels)
        self.relu = nn.ReLU(inplace=True)
        self.out = nn.Conv2d(mid_channels, 1, kernel_size=1)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.relu(self.bn(self.conv(x))))[:, 0]


class PartBranch(nn.Module):
    """One branch: a copy of layer 4, its segmentation head, its BNNeck and its classifier."""

    def __init__(self, layer4: nn.Module, width: int, num_classes: int, seg_channels: int):
        super().__init__()
        self.layer4 = layer4
        self.seg = SegmentationHead(width, seg_channels)
        self.neck = nn.BatchNorm1d(width)
        init_bnneck(self.neck)
        self.classifier = nn.Linear(width, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-3 features -> ``(f, mask_logits)``: the layer-4 map and the mask's logits."""
        f = self.layer4(x)
        return f, self.seg(f)


class HPNet(ReIDModel):
    """HPNet (see the module docstring).

    Args:
        num_classes: training identities ``K``.
        backbone: a name of :func:`reidlib.models.backbones.build_backbone`.
        pretrained: ImageNet weights (every layer-4 copy starts from them).
        last_stride: layer 4's stride (1: maps of ``H/16 x W/16``).
        weights: an explicit backbone weights file (instead of ImageNet's).
        global_branch: add the whole-body branch (SANet's global branch) after the four parts.
        mask_pooling: ``"hard"`` (HPNet: ``f x (m > 0.5)``) or ``"soft"`` (SANet Eq. 4: ``m x f``).
        seg_channels: the segmentation heads' hidden width (None: :func:`default_seg_channels`).
        neck_feat: test features after (``"after"``) or before (``"before"``) the BNNeck.
        normalize: L2-normalise each part feature before the test distance.

    ``model(images)`` returns (in training and in eval mode) a dict: ``mask_logits`` and
    ``masks`` ``(N, P, h, w)`` (``P`` = 4, or 5 with the global branch, in the order of
    :attr:`branch_names`), ``parts`` ``(N, P, C)`` (Eq. 4's ``F^i``, for the triplet loss),
    ``neck_parts`` ``(N, P, C)`` (after the BNNecks), ``logits`` ``(N, P, K)``, ``visible_pixels``
    ``(N, P)`` (Eq. 5's ``v^i``) and ``visibility`` ``(N, P)`` bool (``v^i >= 1``).
    """

    def __init__(self, num_classes: int, backbone: str = "resnet50", pretrained: bool = True, last_stride: int = 1,
                 weights: str | None = None, global_branch: bool = False, mask_pooling: str = "hard",
                 seg_channels: int | None = None, neck_feat: str = "after", normalize: bool = True):
        super().__init__()
        who = type(self).__name__
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"{who}: num_classes must be a positive int, got {num_classes!r}")
        if mask_pooling not in MASK_POOLING:
            raise ValueError(f"{who}: mask_pooling={mask_pooling!r}; accepted: {', '.join(map(repr, MASK_POOLING))}")
        if neck_feat not in ("after", "before"):
            raise ValueError(f"{who}: neck_feat must be 'after' (post-BN) or 'before' (pre-BN), got {neck_feat!r}")
        if seg_channels is not None and (not isinstance(seg_channels, int) or seg_channels < 1):
            raise ValueError(f"{who}: seg_channels must be None or a positive int, got {seg_channels!r}")
        bb = build_backbone(backbone, pretrained=pretrained, last_stride=last_stride, weights=weights)
        layer4 = bb.layer4
        bb.layer4 = nn.Identity()  # the backbone ends at layer 3; each branch has its own layer 4
        self.backbone = bb
        self.backbone_name = backbone
        self.last_stride = int(last_stride)
        self.num_classes = num_classes
        self.mid_channels = layer_channels(bb.layer3)
        self.feat_dim = int(bb.out_channels)
        self.global_branch = bool(global_branch)
        self.mask_pooling = mask_pooling
        self.neck_feat = neck_feat
        self.normalize = bool(normalize)
        self.seg_channels = int(seg_channels) if seg_channels is not None else default_seg_channels(self.feat_dim)
        self.branch_names = BODY_PARTS + (("global",) if self.global_branch else ())
        self.branches = nn.ModuleList(
            PartBranch(copy.deepcopy(layer4), self.feat_dim, num_classes, self.seg_channels) for _ in self.branch_names)
        self.image_size: tuple[int, int] | None = None  # the recipe's input size (the evaluator's default)

    @property
    def num_branches(self) -> int:
        return len(self.branches)

    def pretrained_modules(self) -> list[nn.Module]:
        """The modules that start from the backbone's weights: layers 1-3 and every layer-4 copy."""
        return [self.backbone] + [b.layer4 for b in self.branches]

    def feature_size(self, image_size: Sequence[int]) -> tuple[int, int]:
        """``(h, w)`` of the masks for an input of ``image_size``."""
        return backbone_feature_size(self.backbone_name, image_size, self.last_stride)

    # -- forward ------------------------------------------------------------
    def enhance(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Between layer 3 and the branches: nothing in HPNet (SANet's AFE)."""
        return x, {}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        x, aux = self.enhance(self.backbone(images))
        maps, logits = zip(*(b(x) for b in self.branches))
        mask_logits = torch.stack(logits, dim=1)
        # masks, pooling and visibility in float32, also under autocast
        with torch.autocast(device_type=images.device.type, enabled=False):
            masks = torch.sigmoid(mask_logits.float())
            weights = (masks > VISIBLE_THRESHOLD).float() if self.mask_pooling == "hard" else masks
            parts = torch.stack([masked_max_pool(f.float(), weights[:, i]) for i, f in enumerate(maps)], dim=1)
            pixels = part_visibility(masks.detach())
        neck = torch.stack([b.neck(parts[:, i]) for i, b in enumerate(self.branches)], dim=1)
        cls = torch.stack([b.classifier(neck[:, i]) for i, b in enumerate(self.branches)], dim=1)
        return {"mask_logits": mask_logits, "masks": masks, "parts": parts, "neck_parts": neck, "logits": cls,
                "visible_pixels": pixels, "visibility": pixels >= 1, **aux}

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> Features:
        """Part features ``(N, P, C)`` (after or before the BNNecks) and the visibility flags
        ``(N, P)`` in {0, 1} (Eq. 5); SANet adds its routing decisions as ``extra["routes"]``."""
        out = self(images)
        parts = out["neck_parts"] if self.neck_feat == "after" else out["parts"]
        extra = {k: out[k] for k in ("routes",) if k in out}
        return Features(parts=parts.float(), visibility=out["visibility"].float(), extra=extra)

    def matcher(self):
        """SANet Eq. 7: the mean part distance over commonly visible parts (:class:`CommonPartsMatcher`)."""
        from reidlib.metrics.matchers import CommonPartsMatcher

        return CommonPartsMatcher(threshold=0.5, normalize=self.normalize, squared=False, no_common=NO_COMMON_DISTANCE)
