"""``torchvision.transforms.v2`` pipelines that move part masks with the images.

Inputs are whatever ``transforms.v2`` accepts -- an image alone, or a tuple/dict holding
a ``tv_tensors.Image`` (or a numpy ``HWC``/PIL image, converted by ``ToImage``) and any
number of ``tv_tensors.Mask`` (part masks; region label maps at image resolution):
geometric steps move every mask with the image (nearest-neighbour), photometric steps
touch the image only.  Masks stay integer; images come out float32, ImageNet-normalised.

Note on region label maps: a VPM label map moved by a horizontal flip as a ``Mask``
keeps each pixel's label, whereas the flipped holistic frame would renumber columns
(``col -> n - 1 - col``) when the grid has more than one column.  That is why
:class:`reidlib.data.loader.PartialCropDataset` augments the *holistic* image first and
derives labels, ``theta`` and ``scale_translation`` from the crop afterwards.

Test-time modes (PPCL Sec. 4.2, Table 1a, "Pad" and "Resize" baselines):

* ``"resize"``: the partial image is resized to ``size`` (aspect distorted) -- the usual
  test transform and PPCL's Resize baseline;
* ``"pad"``: :class:`PadToCanvas` -- PPCL pads the partial input with a constant without
  saying where or at which scale.  We scale the crop by ``min(H/h, W/w)`` (aspect kept, the
  crop fits the canvas, as large as possible) and place it **top-aligned, horizontally
  centred** by default (``anchor="top"``): the body parts of top crops -- Partial-iLIDS's
  upper bodies and most of Partial-REID's -- then sit where the holistic images have them.
  The constant is 0 after normalisation (the ImageNet mean colour).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TEST_MODES",
    "ANCHORS",
    "PadToCanvas",
    "ImageOnlyRandomErasing",
    "build_geometric_transform",
    "build_photometric_transform",
    "build_train_transform",
    "build_test_transform",
    "denormalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TEST_MODES = ("resize", "pad")
ANCHORS = ("top", "bottom", "left", "right", "center", "top-left", "top-right", "bottom-left", "bottom-right")


def _size(size) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f"size={size!r}: expected (height, width) positive ints, e.g. (256, 128)")
    return int(size[0]), int(size[1])


def _query_hw(flat_inputs: list[Any]) -> tuple[int, int]:
    """Size of the first image-like input (Image, Video, plain tensor, PIL); masks last."""
    sizes = [TF.get_size(x) for x in flat_inputs if isinstance(x, (tv_tensors.Image, tv_tensors.Video)) or
             (isinstance(x, torch.Tensor) and not isinstance(x, tv_tensors.TVTensor))]
    if not sizes:
        try:
            from PIL import Image as _PIL

            sizes = [TF.get_size(x) for x in flat_inputs if isinstance(x, (_PIL.Image, tv_tensors.Mask))]
        except ImportError:  # pragma: no cover
            sizes = [TF.get_size(x) for x in flat_inputs if isinstance(x, tv_tensors.Mask)]
    if not sizes:
        raise TypeError("PadToCanvas: no image found in the inputs (expected a tv_tensors.Image, tensor or PIL image)")
    return int(sizes[0][0]), int(sizes[0][1])


class PadToCanvas(v2.Transform):
    """Scale an image (and its masks) to fit a ``size`` canvas, aspect kept, and pad with a constant.

    The scale is ``min(H / h, W / w)`` (``upscale=False`` caps it at 1).  ``anchor`` places the
    scaled image: ``"top"`` (top, centred horizontally; default), ``"bottom"``, ``"left"``,
    ``"right"``, ``"center"`` or a corner (``"top-left"``, ...).  Images are filled with
    ``fill``, masks with ``mask_fill``.  This is the "Pad" test baseline (see the module
    docstring).
    """

    def __init__(self, size: Sequence[int], anchor: str = "top", fill: float = 0.0, mask_fill: int = 0, upscale: bool = True):
        super().__init__()
        self.size = _size(tuple(size) if not isinstance(size, int) else size)
        if anchor not in ANCHORS:
            raise ValueError(f"PadToCanvas(anchor={anchor!r}): accepted anchors are {', '.join(map(repr, ANCHORS))}")
        self.anchor = anchor
        self.fill = fill
        self.mask_fill = mask_fill
        self.upscale = upscale

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _query_hw(flat_inputs)
        H, W = self.size
        s = min(H / h, W / w)
        if not self.upscale:
            s = min(s, 1.0)
        nh = max(1, min(H, round(h * s)))
        nw = max(1, min(W, round(w * s)))
        parts = self.anchor.split("-")
        v = "top" if "top" in parts else "bottom" if "bottom" in parts else "center"
        hz = "left" if "left" in parts else "right" if "right" in parts else "center"
        top = 0 if v == "top" else H - nh if v == "bottom" else (H - nh) // 2
        left = 0 if hz == "left" else W - nw if hz == "right" else (W - nw) // 2
        return dict(nh=nh, nw=nw, top=top, left=left)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        H, W = self.size
        nh, nw, top, left = params["nh"], params["nw"], params["top"], params["left"]
        out = self._call_kernel(TF.resize, inpt, [nh, nw], antialias=True)
        fill = self.mask_fill if isinstance(inpt, tv_tensors.Mask) else self.fill
        return self._call_kernel(TF.pad, out, padding=[left, top, W - nw - left, H - nh - top], fill=fill)


class ImageOnlyRandomErasing(v2.RandomErasing):
    """``v2.RandomErasing`` that never touches masks (erasing is an appearance change)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return inpt
        return super().transform(inpt, params)


def build_geometric_transform(size: Sequence[int] | None, flip: float = 0.5, pad: int = 10) -> v2.Compose:
    """Resize to ``size`` (skipped if None), horizontal flip (p=``flip``), pad ``pad`` + random crop back.

    Output: ``tv_tensors.Image`` (uint8 stays uint8) and masks moved alike (padding fills
    images with 0 and masks with 0 = background).
    """
    steps: list = [v2.ToImage()]
    if size is not None:
        size = _size(tuple(size) if not isinstance(size, int) else size)
        steps.append(v2.Resize(list(size), antialias=True))
    if flip > 0:
        steps.append(v2.RandomHorizontalFlip(p=flip))
    if pad > 0:
        if size is None:
            raise ValueError("build_geometric_transform: pad + random crop needs size=(H, W)")
        steps += [v2.Pad(pad, fill=0), v2.RandomCrop(list(size))]
    return v2.Compose(steps)


def build_photometric_transform(random_erasing: float = 0.5) -> v2.Compose:
    """To float in [0, 1], ImageNet normalisation, random erasing (image only).

    Random erasing (Zhong et al. 2020, as in the strong baseline): area 2-40%, aspect
    0.3-3.3, filled with 0 after normalisation (the ImageNet mean colour).
    """
    steps: list = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if random_erasing > 0:
        steps.append(ImageOnlyRandomErasing(p=random_erasing, scale=(0.02, 0.4), ratio=(0.3, 3.3), value=0))
    return v2.Compose(steps)


def build_train_transform(size: Sequence[int], flip: float = 0.5, pad: int = 10, random_erasing: float = 0.5) -> v2.Compose:
    """The strong-baseline recipe (Luo et al. 2019): resize, flip, pad + random crop,
    to float, ImageNet normalisation, random erasing (image only).  Masks move with the image."""
    return v2.Compose([build_geometric_transform(size, flip, pad), build_photometric_transform(random_erasing)])


def build_test_transform(size: Sequence[int], mode: str = "resize", anchor: str = "top") -> v2.Compose:
    """Test transform: ``"resize"`` (to ``size``) or ``"pad"`` (:class:`PadToCanvas`), then normalise."""
    size = _size(tuple(size) if not isinstance(size, int) else size)
    if mode not in TEST_MODES:
        raise ValueError(f"test mode {mode!r} is unknown: accepted modes are {', '.join(map(repr, TEST_MODES))}")
    base = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if mode == "resize":
        return v2.Compose([v2.ToImage(), v2.Resize(list(size), antialias=True), *base[1:]])
    return v2.Compose([*base, PadToCanvas(size, anchor=anchor, fill=0.0)])


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation: ``(..., 3, H, W)`` -> values in [0, 1] (clamped)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype)[:, None, None]
    return (images * std + mean).clamp_(0, 1)
