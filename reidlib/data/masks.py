"""Part-mask labels at a feature map's size: SANet Eq. 6's ``DS(M^i)`` (and HPNet's parsing targets).

A part mask (:data:`reidlib.data.base.PART_NAMES`: 0 background, 1 head, 2 upper body, 3 lower
body, 4 feet, 255 occluded) is given at image resolution; the segmentation heads of HPNet and
SANet predict one mask per branch at the resolution of the feature map (``h x w``, 16 times
smaller at ``last_stride=1``).  :func:`part_mask_labels` turns the one into the other, and
:class:`PartMaskLabels` adds the result to the items of a training dataset that yields the
``"mask"`` of each (augmented, possibly cropped) image -- e.g.
:class:`reidlib.data.loader.PartialCropDataset` with ``with_mask=True``, whose masks follow the
flips, the pad-and-crop and the partial crop of their images.

Decision (the papers say "down-sampling" only): a feature cell is a positive of branch ``i`` when
part ``i`` covers at least ``min_fraction`` of the image pixels that the cell pools (the share
computed by adaptive average pooling of the part's one-hot map).  Nearest-neighbour sampling
would read one pixel per cell and a majority vote would erase the small parts: on SynthPeds at
128x64 (8x4 cells of 16x16 pixels) a head covers about 190 pixels and the feet about 75, less
than one cell, so (in a sample of 65 training images) a majority vote keeps the head in 8 % of the
images and the feet in none, while a share of 0.1 (26 pixels) keeps the head in all and the feet
in 92 %.  The whole-body
(global) branch's positives are the cells whose body pixels (labels 1-4) reach that share.
Occluded pixels (255) are positives of no branch: an occluded part is invisible.  A branch is
*visible* in an image when at least one of its cells is a positive (the label form of SANet
Eq. 5).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from reidlib.data.base import PART_NAMES

__all__ = ["BODY_PARTS", "BRANCH_NAMES", "part_mask_labels", "PartMaskLabels"]

#: The body parts that have a branch, in branch order (mask labels 1-4).
BODY_PARTS = PART_NAMES[1:]
#: Branch names: the four parts, then the whole body (SANet's global branch).
BRANCH_NAMES = BODY_PARTS + ("global",)


def part_mask_labels(mask: torch.Tensor, feat_size: Sequence[int], min_fraction: float = 0.1,
                     with_global: bool = True) -> torch.Tensor:
    """SANet Eq. 6's ``DS(M^i)``: binary part-mask labels at the feature map's size.

    Args:
        mask: ``(H, W)`` or ``(N, H, W)`` integer part mask (labels of
            :data:`reidlib.data.base.PART_NAMES`, 255 = occluded).
        feat_size: ``(h, w)`` of the segmentation heads' output.
        min_fraction: a cell is a positive of a part when the part covers at least this share
            of the pixels the cell pools (see the module docstring).
        with_global: add the whole-body branch (labels 1-4 together) after the four parts.

    Returns:
        ``(P, h, w)`` (or ``(N, P, h, w)``) ``uint8`` labels in {0, 1}, ``P = 4`` or ``5`` in
        the order of :data:`BRANCH_NAMES`.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"part_mask_labels: mask must be a torch.Tensor (H, W) of part labels, "
                        f"got {type(mask).__name__}")
    if mask.dim() not in (2, 3) or mask.is_floating_point():
        raise ValueError(f"part_mask_labels: mask must be an integer (H, W) or (N, H, W) label map, got "
                         f"{mask.dtype} of shape {tuple(mask.shape)}")
    if not (len(feat_size) == 2 and all(int(s) >= 1 for s in feat_size)):
        raise ValueError(f"part_mask_labels: feat_size={tuple(feat_size)!r}: expected (h, w) positive ints")
    if not 0.0 < float(min_fraction) <= 1.0:
        raise ValueError(f"part_mask_labels: min_fraction={min_fraction!r} must lie in (0, 1]")
    single = mask.dim() == 2
    m = (mask[None] if single else mask).long()
    parts = torch.arange(1, len(PART_NAMES), device=m.device)  # 1..4
    onehot = (m[:, None] == parts[None, :, None, None]).float()  # (N, 4, H, W)
    if with_global:
        onehot = torch.cat([onehot, onehot.amax(dim=1, keepdim=True)], dim=1)
    share = F.adaptive_avg_pool2d(onehot, (int(feat_size[0]), int(feat_size[1])))
    # a small tolerance: a share of exactly min_fraction must not be lost to float rounding
    labels = (share >= float(min_fraction) - 1e-6).to(torch.uint8)
    return labels[0] if single else labels


class PartMaskLabels(Dataset):
    """A training dataset's items with their part-mask labels at the feature map's size.

    ``base`` yields dicts with a ``"mask"`` (``(H, W)`` part labels, moved with the image by the
    base's transforms); each item gains ``"part_labels"`` (``uint8 (P, h, w)``,
    :func:`part_mask_labels`) and ``"part_visible"`` (``bool (P,)``: the branch has a positive
    cell).  ``keep_mask=False`` drops the full-resolution mask from the item.  ``.pids`` (what the
    PK sampler groups by) is the base's.
    """

    def __init__(self, base: Dataset, feat_size: Sequence[int], min_fraction: float = 0.1, with_global: bool = True,
                 keep_mask: bool = False):
        self.base = base
        self.feat_size = (int(feat_size[0]), int(feat_size[1]))
        self.min_fraction = float(min_fraction)
        self.with_global = bool(with_global)
        self.keep_mask = bool(keep_mask)
        # checks the arguments
        part_mask_labels(torch.zeros(1, 1, dtype=torch.uint8), self.feat_size, self.min_fraction)

    @property
    def pids(self):
        return self.base.pids

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.base[index])
        if "mask" not in item:
            raise KeyError(f"PartMaskLabels: item {index} of {type(self.base).__name__} has no 'mask'; "
                           f"the base dataset must return part masks (with_mask=True)")
        mask = item["mask"]
        mask = mask.as_subclass(torch.Tensor) if isinstance(mask, torch.Tensor) else torch.as_tensor(mask)
        labels = part_mask_labels(mask, self.feat_size, self.min_fraction, self.with_global)
        item["part_labels"] = labels
        item["part_visible"] = labels.flatten(1).any(dim=1).bool()
        if not self.keep_mask:
            del item["mask"]
        return item
