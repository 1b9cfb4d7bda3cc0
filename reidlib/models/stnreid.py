"""STNReID: a pairwise spatial transformer in front of a ReID network (Luo et al. 2019).

The STN module looks at a partial image ``I_p`` and a holistic image ``I_h`` together
(6 channels), predicts the 2D affine transform ``theta`` (:class:`LocalizationNet`, the
paper's Table 1) and samples from ``I_h`` the *affined image* ``I_a`` that should show the
same body region as ``I_p`` (:func:`affine_sample`, Eq. 1-2).  The ReID module (the strong
baseline, :mod:`reidlib.models.baseline`) extracts the global features of the three images
(Eq. 3); training uses Eq. 6 (:mod:`reidlib.losses.stnreid`).

Test time is pairwise: every (partial query, holistic gallery) pair gets its own theta and
its own affined image, and the distance is the distance between the query's feature and
the affined image's feature (:meth:`STNReID.pair_distance`).  :meth:`STNReID.matcher`
returns a :class:`reidlib.metrics.matchers.PairwiseMatcher` batched over pairs, either
over the full ``Q x G`` grid or as a shortlist (global-feature ranking, then STN
rescoring of the top-k).

Two-stage training (Section 3.2) lives in :class:`STNReIDMethod`:

* stage 1 (``extra["stage"] = 1``): end-to-end training of STN + a *weak* ReID module
  (Table 2's Ep1: no ImageNet weights, ID loss only) to get a strong STN;
* stage 2 (``extra["stage"] = 2``): the STN from stage 1 is frozen; Pipeline Mode trains
  (fine-tunes) a strong ReID module behind it with Eq. 6 (Table 2's Ep5 settings), while
  Merge Mode (:func:`merge_mode`) needs no training at all: it puts the frozen STN in
  front of an independently trained ReID model (the baseline).

Choices where the paper is open (see the chapter ``05_stnreid``):

* Table 1 lists padding (1, 1) for the 7x7 Conv1, but a 7x7/2 convolution with padding 1
  on 256x128 gives 126x62, not the listed 128x64, and the listed Flatten size (4096 =
  16x8x32) needs 128x64.  We keep the listed output sizes: Conv1 uses padding 3.
* The convolutions have no bias (each is followed by BatchNorm, as the text says).
* ``affine_grid``/``grid_sample`` use ``align_corners=False`` (torch's default and the
  convention of :func:`reidlib.data.partial.partial_crop`'s ``theta``), bilinear sampling,
  zero padding outside the holistic image.
* ``L_STN`` compares the ReID module's training feature (the triplet loss' feature).
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidlib.models.base import Features, ReIDModel

IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _conv_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


class LocalizationNet(nn.Module):
    """STNReID's localisation network (Table 1): ``theta = f_loc(I_{h,p})``.

    Input: the holistic and partial images concatenated on channels ``(N, 6, H, W)``
    (:meth:`forward` takes the two images and concatenates them).  Layers::

        Conv1 7x7/16, stride 2 (+BN+ReLU) -> MaxPool 2x2/2
        Conv2 3x3/32, stride 2 (+BN+ReLU) -> MaxPool 2x2/2
        Flatten -> FC1 512 (+ReLU) -> FC2 128 (+ReLU) -> FC3 32 (+ReLU) -> FC4 6

    For 256x128 inputs the flatten size is 16x8x32 = 4096 as in the paper; for other
    sizes it is computed from ``input_size``.  FC4 starts with zero weights and the
    identity bias ``[1, 0, 0, 0, 1, 0]`` (the paper's initial theta), so an untrained STN
    samples the whole holistic image.
    """

    def __init__(self, input_size: Sequence[int] = (256, 128), in_channels: int = 6):
        super().__init__()
        if len(input_size) != 2 or min(input_size) < 16:
            raise ValueError(f"LocalizationNet: input_size must be (H, W) with H, W >= 16, got {tuple(input_size)}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        h, w = self.input_size
        h, w = _conv_out(h, 7, 2, 3) // 2, _conv_out(w, 7, 2, 3) // 2
        h, w = _conv_out(h, 3, 2, 1) // 2, _conv_out(w, 3, 2, 1) // 2
        if h < 1 or w < 1:
            raise ValueError(f"LocalizationNet: input_size {self.input_size} is too small for Table 1's four downsamplings")
        self.feature_size = (32, h, w)
        self.flat_dim = 32 * h * w
        self.regressor = nn.Sequential(
            nn.Linear(self.flat_dim, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, 32),
            nn.ReLU(inplace=True),
            nn.Linear(32, 6),  # FC4: regression, no ReLU
        )
        self.reset_theta()

    def reset_theta(self) -> None:
        """Zero FC4's weight and set its bias to the identity transform."""
        last = self.regressor[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(IDENTITY_THETA))

    def forward(self, partial: torch.Tensor, holistic: torch.Tensor) -> torch.Tensor:
        """``theta`` ``(N, 2, 3)`` for the pairs ``(partial[i], holistic[i])``.

        Both inputs are ``(N, 3, H, W)`` at this net's ``input_size``.
        """
        if partial.shape != holistic.shape:
            raise ValueError(
                f"LocalizationNet: partial and holistic batches must have the same shape, got "
                f"{tuple(partial.shape)} and {tuple(holistic.shape)}"
            )
        if partial.dim() != 4 or tuple(partial.shape[-2:]) != self.input_size or 2 * partial.shape[1] != self.in_channels:
            raise ValueError(
                f"LocalizationNet: expected images of shape (N, {self.in_channels // 2}, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(partial.shape)}"
            )
        x = torch.cat([holistic, partial], dim=1)  # I_{h,p}: (N, 6, H, W)
        x = self.features(x).flatten(1)
        return self.regressor(x).view(-1, 2, 3)


def affine_sample(holistic: torch.Tensor, theta: torch.Tensor, size: Optional[Sequence[int]] = None) -> torch.Tensor:
    """STNReID Eq. 1-2: the affined image ``I_a = f_STN(I_{h,p})`` sampled from ``I_h``.

    Eq. 1, the grid generator: every target point ``(x^t, y^t)`` of the regular grid of
    the affined image (normalised coordinates in [-1, 1]) is mapped to the source point
    ``(x^s, y^s) = A_theta (x^t, y^t, 1)^T`` of the holistic image (``F.affine_grid``);
    Eq. 2, the sampler: ``I_a`` is read from ``I_h`` at those points by bilinear
    interpolation (``F.grid_sample``; zeros outside the image; ``align_corners=False``).

    ``holistic``: ``(N, C, H, W)``; ``theta``: ``(N, 2, 3)``; ``size``: the affined
    image's ``(H, W)`` (default: the holistic image's).  Differentiable in both.
    """
    if holistic.dim() != 4 or theta.shape != (holistic.shape[0], 2, 3):
        raise ValueError(
            f"affine_sample: expected holistic (N, C, H, W) and theta (N, 2, 3), got "
            f"{tuple(holistic.shape)} and {tuple(theta.shape)}"
        )
    n, c, h, w = holistic.shape
    out_h, out_w = (h, w) if size is None else (int(size[0]), int(size[1]))
    grid = F.affine_grid(theta.to(holistic.dtype), [n, c, out_h, out_w], align_corners=False)
    return F.grid_sample(holistic, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def theta_to_box(theta: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The holistic-image region that ``theta`` samples, as pixel boxes ``(N, 4)`` ``x1, y1, x2, y2``.

    The affined image's corners (normalised ``(+-1, +-1)``, i.e. pixel edges with
    ``align_corners=False``) are mapped through ``theta``; the box is their bounding box
    in the pixel frame of a holistic image of ``size = (H, W)`` (edges: ``x = (u + 1) W / 2``).
    For a pure scale + translation theta (what the STN learns for crops) the box is exact.
    """
    if theta.dim() != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"theta_to_box: expected theta of shape (N, 2, 3), got {tuple(theta.shape)}")
    h, w = size
    corners = theta.new_tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    src = torch.einsum("nij,kj->nki", theta, corners)  # (N, 4, 2) in [-1, 1] units
    x = (src[..., 0] + 1) * (w / 2)
    y = (src[..., 1] + 1) * (h / 2)
    return torch.stack([x.amin(1), y.amin(1), x.amax(1), y.amax(1)], dim=1)


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows of two ``(N, 4)`` ``x1, y1, x2, y2`` box tensors (``(N,)``)."""
    if a.shape != b.shape or a.dim() != 2 or a.shape[1] != 4:
        raise ValueError(f"box_iou_pairs: expected two (N, 4) boxes, got {tuple(a.shape)} and {tuple(b.shape)}")
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = lambda t: (t[:, 2:] - t[:, :2]).clamp(min=0).prod(1)  # noqa: E731
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
