"""The one partial-crop operation and the papers' named crop strategies.

A *partial* image is a rectangle cut out of a *holistic* frame.  :func:`partial_crop`
cuts it and returns, besides the crop, every self-supervision signal the methods of
the book train with -- all derived from the same integer box:

* ``box`` -- ``(x0, y0, x1, y1)`` in holistic pixels (``x1``/``y1`` exclusive);
* ``scale_translation`` -- PPCL's 4-DOF transform ``(sx, sy, tx, ty)`` with
  ``holistic_norm = s * crop_norm + t`` in the ``[-1, 1]`` normalised coordinates of
  ``F.affine_grid(..., align_corners=False)`` (pixel *edges* at -1 and +1);
* ``theta`` -- the same transform as STNReID's ``(2, 3)`` affine matrix, so that
  ``F.grid_sample(holistic, F.affine_grid(theta, crop_shape, align_corners=False),
  align_corners=False)`` reproduces the crop (exactly, at native size);
* ``region_labels`` / ``visible`` -- VPM's self-supervision: the holistic frame is
  divided into ``p = m x n`` regions (``m`` rows, ``n`` columns, numbered row-major
  ``i = row * n + col``); every pixel of the crop's feature map gets the index of the
  region its centre falls in (:func:`region_labels`), and ``visible`` flags the
  regions present in that map.

Decisions (the papers leave them open):

* ``ratio`` is VPM's gamma, the **area** ratio of the crop to the holistic frame.  For a
  side crop (a full-width or full-height strip) it equals the kept fraction of the
  height (top/bottom) or width (left/right).  The sampled ratio is rounded to whole
  pixels; :attr:`PartialCrop.ratio` reports the realised area fraction.
* ``side`` names the side of the holistic frame that is **kept** (the crop is anchored
  to that edge): ``"top"`` keeps the top (removes the bottom), as in VPM (Top) and in
  Partial-iLIDS, whose probes are upper bodies.
* ``box=`` (a person box in the image): the holistic frame *is* that box (clipped to the
  image) -- the ratio applies to the body box, the crop is cut inside it, and
  ``scale_translation``/``theta``/``region_labels`` refer to the box frame (so
  ``grid_sample`` on ``image[y0:y1, x0:x1]`` reproduces the crop).
  :attr:`PartialCrop.box` is always in the pixel coordinates of the given image.
* VPM (Bilateral) is "top crop + bottom crop" (VPM Sec. 4.3): each sample keeps either
  the top or the bottom, at random.  It is a side crop over ``("top", "bottom")``.
* PPCL's crop sampling is not specified beyond "randomly crop" and a 0.2 - 0.8 input
  ratio (PPCL Sec. 4.3, Table 1b): ``"ppcl-free"`` draws the area ratio in [0.2, 0.8],
  the height fraction log-uniformly in [ratio, 1] (width fraction = ratio / height
  fraction, so the aspect is symmetric between tall and wide crops) and a uniform
  position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

__all__ = [
    "SIDES",
    "CROP_MODES",
    "CropSpec",
    "PartialCrop",
    "STRATEGIES",
    "get_strategy",
    "sample_box",
    "partial_crop",
    "box_to_scale_translation",
    "scale_translation_to_theta",
    "theta_to_scale_translation",
    "region_labels",
    "visible_regions",
    "side_box",
    "side_crop",
]

SIDES = ("top", "bottom", "left", "right")
CROP_MODES = ("side", "free")


@dataclass(frozen=True)
class CropSpec:
    """How to draw a partial crop.

    ratio: ``(low, high)`` bounds of the kept **area** fraction gamma, ``0 < low <= high <= 1``,
        drawn uniformly.  ``(r, r)`` gives a fixed ratio.
    sides: for ``mode="side"``, the sides that may be **kept** (one is drawn uniformly).
    mode: ``"side"`` -- a full-width (top/bottom) or full-height (left/right) strip anchored
        to the drawn side; ``"free"`` -- a rectangle of area ratio gamma anywhere in the frame.
    """

    ratio: tuple[float, float]
    sides: tuple[str, ...] = SIDES
    mode: str = "side"

    def __post_init__(self):
        r = self.ratio
        if isinstance(r, (int, float)):
            object.__setattr__(self, "ratio", (float(r), float(r)))
            r = self.ratio
        if not (isinstance(r, (tuple, list)) and len(r) == 2):
            raise ValueError(f"CropSpec.ratio={r!r}: expected a (low, high) pair with 0 < low <= high <= 1")
        lo, hi = float(r[0]), float(r[1])
        if not (0.0 < lo <= hi <= 1.0):
            raise ValueError(
                f"CropSpec.ratio={tuple(r)!r} is invalid: expected (low, high) with 0 < low <= high <= 1 "
                f"(the kept area fraction)"
            )
        object.__setattr__(self, "ratio", (lo, hi))
        if self.mode not in CROP_MODES:
            raise ValueError(f"CropSpec.mode={self.mode!r} is unknown: accepted modes are {', '.join(map(repr, CROP_MODES))}")
        sides = (self.sides,) if isinstance(self.sides, str) else tuple(self.sides)
        if not sides:
            raise ValueError(f"CropSpec.sides is empty: give one or more of {', '.join(map(repr, SIDES))}")
        for s in sides:
            if s not in SIDES:
                raise ValueError(f"CropSpec.sides contains {s!r}: accepted sides are {', '.join(map(repr, SIDES))}")
        object.__setattr__(self, "sides", sides)


#: The papers' crop strategies (training) and the test-set look-alikes (SynthPeds).
STRATEGIES: dict[str, CropSpec] = {
    # VPM Sec. 4.1: gamma ~ U[0.5, 1]; Sec. 4.3: top crop keeps the top regions,
    # bottom crop keeps the bottom regions, bilateral = top crop + bottom crop.
    "vpm-top": CropSpec(ratio=(0.5, 1.0), sides=("top",)),
    "vpm-bottom": CropSpec(ratio=(0.5, 1.0), sides=("bottom",)),
    "vpm-bilateral": CropSpec(ratio=(0.5, 1.0), sides=("top", "bottom")),
    # STNReID Sec. 4.1: random direction, remove 20% - 60% -> keep 40% - 80%.
    "stnreid": CropSpec(ratio=(0.4, 0.8), sides=SIDES),
    # PPCL Sec. 3/4: a free random crop; input ratio 0.2 - 0.8 (Table 1b, Sec. 4.3).
    "ppcl-free": CropSpec(ratio=(0.2, 0.8), mode="free"),
    # Test-set look-alikes (our choice of ranges, not a paper's): Partial-REID crops from
    # any side, typically about half the body (PPCL supp. Sec. 3); Partial-iLIDS probes keep
    # the upper body (VPM Sec. 4.1), here the top 50-80%.
    "partial-reid-like": CropSpec(ratio=(0.3, 0.8), sides=SIDES),
    "partial-ilids-like": CropSpec(ratio=(0.5, 0.8), sides=("top",)),
}


def get_strategy(spec: "str | CropSpec") -> CropSpec:
    """A :class:`CropSpec` from itself or from a name in :data:`STRATEGIES`."""
    if isinstance(spec, CropSpec):
        return spec
    if isinstance(spec, str):
        if spec not in STRATEGIES:
            raise ValueError(f"unknown crop strategy {spec!r}: accepted names are {', '.join(map(repr, STRATEGIES))}")
        return STRATEGIES[spec]
    raise TypeError(f"crop spec must be a CropSpec or a strategy name, got {spec!r}")


@dataclass
class PartialCrop:
    """The result of :func:`partial_crop` (see the module docstring for the conventions)."""

    image: "np.ndarray | torch.Tensor"
    mask: "np.ndarray | torch.Tensor | None"
    box: tuple[int, int, int, int]
    ratio: float
    side: str | None
    scale_translation: np.ndarray  # (4,) float32: sx, sy, tx, ty
    theta: np.ndarray  # (2, 3) float32
    region_labels: np.ndarray | None = None  # (feat_h, feat_w) int64
    visible: np.ndarray | None = None  # (p,) bool
    frame: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))  # the holistic frame (x0, y0, x1, y1) in image pixels


# ---------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------
def _strip(frac: float, size: int) -> int:
    """Whole pixels of a strip of ``frac`` of ``size`` (at least one)."""
    return int(min(size, max(1, round(frac * size))))


def side_box(width: int, height: int, side: str, gamma: float) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` that keeps the ``side`` strip (``"top"``, ``"bottom"``,
    ``"left"``, ``"right"``) of area ratio ``gamma`` of a ``width x height`` frame."""
    if side not in SIDES:
        raise ValueError(f"side={side!r}: accepted sides are {', '.join(map(repr, SIDES))}")
    if side in ("top", "bottom"):
        h = _strip(gamma, height)
        return (0, 0, width, h) if side == "top" else (0, height - h, width, height)
    w = _strip(gamma, width)
    return (0, 0, w, height) if side == "left" else (width - w, 0, width, height)


def side_crop(image, side: str, gamma: float):
    """``image`` with only its ``side`` strip of area ratio ``gamma`` kept (``gamma >= 1``: the
    image itself) -- a deterministic partial crop, for figures and explorers."""
    if gamma >= 1:
        return image
    h, w = _hw(image)
    return partial_crop(image, crop_box=side_box(w, h, side, gamma)).image


def sample_box(width: int, height: int, spec: "CropSpec | str", rng: np.random.Generator) -> tuple[tuple[int, int, int, int], str | None]:
    """Draw a crop box ``(x0, y0, x1, y1)`` inside a ``width x height`` frame, and its kept side."""
    spec = get_strategy(spec)
    lo, hi = spec.ratio
    gamma = float(rng.uniform(lo, hi)) if hi > lo else lo
    if spec.mode == "side":
        side = spec.sides[int(rng.integers(len(spec.sides)))] if len(spec.sides) > 1 else spec.sides[0]
        return side_box(width, height, side, gamma), side
    # free: height fraction log-uniform in [gamma, 1], width fraction gamma / height fraction
    fh = math.exp(float(rng.uniform(math.log(gamma), 0.0))) if gamma < 1 else 1.0
    fw = gamma / fh
    h, w = _strip(fh, height), _strip(fw, width)
    y0 = int(rng.integers(height - h + 1))
    x0 = int(rng.integers(width - w + 1))
    return (x0, y0, x0 + w, y0 + h), None


# ---------------------------------------------------------------------------------
# geometry: crop <-> holistic
# ---------------------------------------------------------------------------------
def box_to_scale_translation(box, width: int, height: int):
    """PPCL's 4-DOF transform ``(sx, sy, tx, ty)`` of a crop box in a ``width x height`` frame.

    PPCL Sec. 3.1 (GLRec, n = 4: scaling and translation): ``holistic = s * crop + t`` in
    normalised ``[-1, 1]`` coordinates with pixel edges at +-1 (``align_corners=False``):
    ``s = (x1 - x0) / W``, ``t = (x0 + x1) / W - 1`` (and likewise in y).

    ``box``: ``(x0, y0, x1, y1)`` -> numpy ``(4,)`` float32; or a torch ``(..., 4)`` batch of
    boxes -> torch ``(..., 4)`` on the same device (for building targets on the GPU, with
    :func:`region_labels`).
    """
    if isinstance(box, torch.Tensor):
        b = box.to(torch.float32)
        x0, y0, x1, y1 = b.unbind(-1)
        return torch.stack([(x1 - x0) / width, (y1 - y0) / height, (x0 + x1) / width - 1.0, (y0 + y1) / height - 1.0], -1)
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array(
        [(x1 - x0) / width, (y1 - y0) / height, (x0 + x1) / width - 1.0, (y0 + y1) / height - 1.0],
        dtype=np.float32,
    )


def scale_translation_to_theta(st: "np.ndarray | torch.Tensor"):
    """STNReID's affine ``theta`` ``(..., 2, 3)`` = ``[[sx, 0, tx], [0, sy, ty]]`` from ``(..., 4)``."""
    if isinstance(st, torch.Tensor):
        sx, sy, tx, ty = st.unbind(-1)
        z = torch.zeros_like(sx)
        return torch.stack([torch.stack([sx, z, tx], -1), torch.stack([z, sy, ty], -1)], -2)
    st = np.asarray(st, dtype=np.float32)
    sx, sy, tx, ty = np.moveaxis(st, -1, 0)
    z = np.zeros_like(sx)
    return np.stack([np.stack([sx, z, tx], -1), np.stack([z, sy, ty], -1)], -2).astype(np.float32)


def theta_to_scale_translation(theta: "np.ndarray | torch.Tensor"):
    """``(..., 4)`` ``(sx, sy, tx, ty)`` of a scale+translation ``theta`` ``(..., 2, 3)`` (shear ignored)."""
    if isinstance(theta, torch.Tensor):
        return torch.stack([theta[..., 0, 0], theta[..., 1, 1], theta[..., 0, 2], theta[..., 1, 2]], -1)
    theta = np.asarray(theta)
    return np.stack([theta[..., 0, 0], theta[..., 1, 1], theta[..., 0, 2], theta[..., 1, 2]], -1).astype(np.float32)


# ---------------------------------------------------------------------------------
# VPM self-supervision
# ---------------------------------------------------------------------------------
def _check_grid(grid) -> tuple[int, int]:
    if isinstance(grid, int):
        grid = (grid, 1)
    if not (isinstance(grid, (tuple, list)) and len(grid) == 2 and all(isinstance(g, (int, np.integer)) and g >= 1 for g in grid)):
        raise ValueError(f"grid={grid!r}: expected (m rows, n cols) of positive ints, e.g. (6, 1) for VPM's p = 6")
    return int(grid[0]), int(grid[1])


def _check_size(size, name: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, (int, np.integer)) and s >= 1 for s in size)):
        raise ValueError(f"{name}={size!r}: expected (height, width) positive ints")
    return int(size[0]), int(size[1])


def region_labels(scale_translation: "torch.Tensor | np.ndarray", grid: tuple[int, int], feat_size: tuple[int, int]) -> torch.Tensor:
    """VPM Sec. 3.3 (self-supervision, ROI projection): the region label map L of a batch of crops.

    The holistic frame is divided into ``p = m x n`` equal rectangles, numbered row-major
    (``i = row * n + col``).  Each pixel ``g`` of a crop's ``feat_h x feat_w`` feature map
    gets the label of the region that its centre, mapped into the holistic frame with
    ``holistic = s * crop + t``, falls in.  (This is VPM's projection of the region
    rectangles onto T, with the rounding done at the pixel centres.)

    scale_translation: ``(N, 4)`` (or ``(4,)``) ``(sx, sy, tx, ty)``.
    Returns ``(N, feat_h, feat_w)`` int64 (or ``(feat_h, feat_w)`` for a single crop), on
    the input's device.
    """
    m, n = _check_grid(grid)
    fh, fw = _check_size(feat_size, "feat_size")
    if fh < m or fw < n:
        raise ValueError(
            f"feat_size={(fh, fw)} is smaller than grid={(m, n)}: a holistic feature map could not show every "
            f"region; expected feat_h >= m and feat_w >= n (VPM: 24x8 maps for p = 6x1)"
        )
    st = torch.as_tensor(scale_translation, dtype=torch.float64)
    single = st.dim() == 1
    st = st.reshape(-1, 4)
    dev = st.device
    # feature-pixel centres in crop-normalised coordinates
    cy = (torch.arange(fh, device=dev, dtype=torch.float64) * 2 + 1) / fh - 1
    cx = (torch.arange(fw, device=dev, dtype=torch.float64) * 2 + 1) / fw - 1
    hy = st[:, 1:2] * cy + st[:, 3:4]  # (N, fh) holistic-normalised
    hx = st[:, 0:1] * cx + st[:, 2:3]  # (N, fw)
    row = torch.floor((hy + 1) / 2 * m).clamp_(0, m - 1).long()
    col = torch.floor((hx + 1) / 2 * n).clamp_(0, n - 1).long()
    labels = row[:, :, None] * n + col[:, None, :]
    return labels[0] if single else labels


def visible_regions(labels: torch.Tensor, num_regions: int) -> torch.Tensor:
    """VPM's visible set V as a mask: ``(N, p)`` bool, True where region i occurs in L."""
    lab = labels.reshape(labels.shape[0], -1) if labels.dim() == 3 else labels.reshape(1, -1)
    vis = torch.zeros(lab.shape[0], num_regions, dtype=torch.bool, device=labels.device)
    vis.scatter_(1, lab, True)
    return vis if labels.dim() == 3 else vis[0]


# ---------------------------------------------------------------------------------
# the crop
# ---------------------------------------------------------------------------------
def _hw(image) -> tuple[int, int]:
    if isinstance(image, torch.Tensor):
        if image.dim() not in (2, 3):
            raise ValueError(f"image tensor of shape {tuple(image.shape)}: expected (C, H, W) or (H, W)")
        return int(image.shape[-2]), int(image.shape[-1])
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"image array of shape {image.shape}: expected (H, W, C) or (H, W)")
        return int(image.shape[0]), int(image.shape[1])
    raise TypeError(f"image must be a numpy (H, W, C) array or a torch (C, H, W) tensor, got {type(image).__name__}")


def _slice(a, y0, y1, x0, x1):
    if isinstance(a, torch.Tensor):
        return a[..., y0:y1, x0:x1]
    return a[y0:y1, x0:x1]


def _resize(a, size: tuple[int, int], nearest: bool):
    """Resize numpy HWC/HW or torch CHW/HW to ``size`` (H, W); bilinear+antialias, or nearest."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    mode = InterpolationMode.NEAREST if nearest else InterpolationMode.BILINEAR
    is_np = isinstance(a, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(a)) if is_np else a
    two_d = t.dim() == 2
    if is_np:
        t = t[None] if two_d else t.permute(2, 0, 1)
    elif two_d:
        t = t[None]
    out = TF.resize(t, list(size), interpolation=mode, antialias=not nearest)
    if is_np:
        out = out[0] if two_d else out.permute(1, 2, 0)
        return np.ascontiguousarray(out.numpy())
    return out[0] if two_d else out


def partial_crop(
    image,
    mask=None,
    spec: "CropSpec | str" = STRATEGIES["vpm-top"],
    rng: np.random.Generator | None = None,
    out_size: tuple[int, int] | None = None,
    grid: tuple[int, int] | None = None,
    feat_size: tuple[int, int] | None = None,
    box: Sequence[int] | None = None,
    crop_box: Sequence[int] | None = None,
) -> PartialCrop:
    """Cut a partial crop out of a holistic image and derive its self-supervision signals.

    Args:
        image: numpy ``(H, W, C)``/``(H, W)`` (any dtype) or torch ``(C, H, W)``/``(H, W)``.
        mask: optional part mask ``(H, W)`` (numpy or torch), cut and resized (nearest) with the image.
        spec: a :class:`CropSpec` or a name in :data:`STRATEGIES`.
        rng: the random generator (``np.random.default_rng(seed)`` for reproducible crops);
            a fresh unseeded one if None.
        out_size: ``(H, W)`` to resize the crop to (bilinear, antialiased); None keeps its native size.
        grid: VPM's ``(m, n)`` region grid of the holistic frame (``int m`` means ``(m, 1)``);
            None: no region labels.
        feat_size: ``(h, w)`` of the feature map the labels are for; default: the output image size.
        box: optional person box ``(x0, y0, x1, y1)`` in the image: the holistic frame is that box
            (clipped to the image) and the ratio applies to it.
        crop_box: a fixed crop box ``(x0, y0, x1, y1)`` relative to the frame (no sampling; ``spec``
            is ignored and ``side`` is None).

    Returns:
        :class:`PartialCrop`.  ``visible`` is the set of labels present in ``region_labels``.
    """
    H, W = _hw(image)
    if mask is not None:
        if not isinstance(mask, (np.ndarray, torch.Tensor)) or tuple(mask.shape) != (H, W):
            raise ValueError(f"mask of shape {tuple(getattr(mask, 'shape', ()))} does not match the image size (H, W) = ({H}, {W}); expected an (H, W) label map")
    # the holistic frame
    if box is None:
        fx0, fy0, fx1, fy1 = 0, 0, W, H
    else:
        if len(box) != 4:
            raise ValueError(f"box={tuple(box)!r}: expected (x0, y0, x1, y1) in image pixels")
        fx0, fy0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
        fx1, fy1 = min(W, int(round(box[2]))), min(H, int(round(box[3])))
        if fx1 - fx0 < 1 or fy1 - fy0 < 1:
            raise ValueError(f"box={tuple(box)!r} is empty inside the {W}x{H} image; expected x0 < x1, y0 < y1 overlapping the image")
    fw_, fh_ = fx1 - fx0, fy1 - fy0
    if crop_box is not None:
        cx0, cy0, cx1, cy1 = (int(v) for v in crop_box)
        if not (0 <= cx0 < cx1 <= fw_ and 0 <= cy0 < cy1 <= fh_):
            raise ValueError(f"crop_box={tuple(crop_box)!r} is not inside the {fw_}x{fh_} frame; expected 0 <= x0 < x1 <= W, 0 <= y0 < y1 <= H")
        side = None
    else:
        spec = get_strategy(spec)
        if rng is None:
            rng = np.random.default_rng()
        (cx0, cy0, cx1, cy1), side = sample_box(fw_, fh_, spec, rng)
    ratio = (cx1 - cx0) * (cy1 - cy0) / float(fw_ * fh_)
    iy0, iy1, ix0, ix1 = fy0 + cy0, fy0 + cy1, fx0 + cx0, fx0 + cx1
    crop = _slice(image, iy0, iy1, ix0, ix1)
    cmask = _slice(mask, iy0, iy1, ix0, ix1) if mask is not None else None
    if out_size is not None:
        out_size = _check_size(out_size, "out_size")
        crop = _resize(crop, out_size, nearest=False)
        if cmask is not None:
            cmask = _resize(cmask, out_size, nearest=True)
    st = box_to_scale_translation((cx0, cy0, cx1, cy1), fw_, fh_)
    theta = scale_translation_to_theta(st)
    labels = visible = None
    if grid is not None:
        m, n = _check_grid(grid)
        fs = feat_size if feat_size is not None else (out_size if out_size is not None else (cy1 - cy0, cx1 - cx0))
        lab = region_labels(torch.from_numpy(st), (m, n), fs)
        visible = visible_regions(lab, m * n).numpy()
        labels = lab.numpy()
    elif feat_size is not None:
        raise ValueError(f"feat_size={feat_size!r} was given without grid: region labels need grid=(m, n)")
    return PartialCrop(
        image=crop, mask=cmask, box=(ix0, iy0, ix1, iy1), ratio=ratio, side=side,
        scale_translation=st, theta=theta, region_labels=labels, visible=visible,
        frame=(fx0, fy0, fx1, fy1),
    )
