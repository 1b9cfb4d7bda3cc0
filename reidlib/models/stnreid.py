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

Two-stage training (Section 3.2) lives in :class:`reidlib.methods.stnreid.STNReIDMethod`:

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
* Training partials remove 20-60 % of the *body*: the crop is cut from the person's box (the
  part mask's, on SynthPeds, whose frames leave a margin around the person), as the partial
  test sets are, not from the whole frame (``extra["crop_within"]``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidlib.models.base import Features, ReIDModel
from reidlib.precision import autocast

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


def _paired_distance(a: torch.Tensor, b: torch.Tensor, metric: str, normalize: bool) -> torch.Tensor:
    """Distance between matching rows of ``a`` and ``b`` (``(B, D)`` -> ``(B,)``), with the
    conventions of :class:`reidlib.metrics.matchers.GlobalMatcher` (squared euclidean or
    ``1 - cos``, optionally on L2-normalised features)."""
    a, b = a.float(), b.float()
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    if metric == "euclidean":
        return (a - b).pow(2).sum(1)
    if metric == "cosine":
        return 1.0 - (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1)
    raise ValueError(f"unknown metric {metric!r}: accepted metrics are 'euclidean' and 'cosine'")


class STNReID(ReIDModel):
    """STN module + ReID module (Fig. 2).

    Args:
        reid: the ReID module, a :class:`reidlib.models.baseline.Baseline` (any model whose
            training forward returns ``{"logits", "feat"}`` and whose ``extract`` gives
            ``Features.global_feat`` works).
        stn: the localisation network (default: a fresh :class:`LocalizationNet` for ``image_size``).
        image_size: ``(H, W)`` of the images (partial crops are resized to it).
        freeze_stn: stage 2 -- the STN's parameters get ``requires_grad=False``, it stays in
            eval mode (its BatchNorm statistics do not move) and runs without autograd.
        shortlist: the default matcher's mode: None = every (query, gallery) pair is scored;
            ``k`` = global-feature ranking, then STN rescoring of the top ``k``.
        batch_pairs: pairs per batched STN + ReID forward in the matcher.
        metric, normalize: the feature distance (default: the ReID module's).
        amp: run the pair passes under autocast on CUDA (bf16 where supported, else fp16).

    Training forward: ``model(holistic, partial)`` returns ``logits_k``/``feat_k`` for
    ``k`` in ``h, p, a`` (holistic, partial, affined), ``theta`` ``(N, 2, 3)`` and the
    ``affined`` images.  The three image kinds go through the ReID module as one batch.
    """

    def __init__(self, reid: nn.Module, stn: Optional[LocalizationNet] = None, image_size: Sequence[int] = (256, 128),
                 freeze_stn: bool = False, shortlist: Optional[int] = None, batch_pairs: int = 256,
                 metric: Optional[str] = None, normalize: bool = True, amp: bool = True):
        super().__init__()
        self.amp = bool(amp)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.stn = stn if stn is not None else LocalizationNet(self.image_size)
        if self.stn.input_size != self.image_size:
            raise ValueError(f"STNReID: the STN was built for {self.stn.input_size} images, the model for {self.image_size}")
        self.reid = reid
        self.shortlist = shortlist
        self.batch_pairs = int(batch_pairs)
        self.metric = metric if metric is not None else getattr(reid, "metric", "euclidean")
        self.normalize = bool(normalize)
        self.stn_frozen = False
        if freeze_stn:
            self.freeze_stn()

    # -- stage 2 -------------------------------------------------------------
    def freeze_stn(self) -> "STNReID":
        """Freeze the STN module (Section 3.2, stage 2): no gradients, BatchNorm in eval mode."""
        self.stn_frozen = True
        for p in self.stn.parameters():
            p.requires_grad_(False)
        self.stn.eval()
        return self

    def train(self, mode: bool = True) -> "STNReID":
        super().train(mode)
        if self.stn_frozen:
            self.stn.eval()
        return self

    # -- the STN module ----------------------------------------------------
    def predict_theta(self, partial: torch.Tensor, holistic: torch.Tensor) -> torch.Tensor:
        """``theta = f_loc(I_{h,p})`` ``(N, 2, 3)`` (no autograd when the STN is frozen)."""
        if self.stn_frozen:
            with torch.no_grad():
                return self.stn(partial, holistic)
        return self.stn(partial, holistic)

    def affine(self, partial: torch.Tensor, holistic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The STN module ``f_STN``: ``(I_a, theta)`` for the pairs ``(partial[i], holistic[i])``."""
        theta = self.predict_theta(partial, holistic)
        return affine_sample(holistic, theta), theta

    # -- training ------------------------------------------------------------
    def forward(self, holistic: torch.Tensor, partial: Optional[torch.Tensor] = None):
        if partial is None:
            raise TypeError("STNReID.forward(holistic, partial): training needs the partial images too; "
                            "use extract() at test time")
        if holistic.shape != partial.shape:
            raise ValueError(f"STNReID: holistic {tuple(holistic.shape)} and partial {tuple(partial.shape)} batches "
                             f"must have the same shape (partial crops are resized to the image size)")
        affined, theta = self.affine(partial, holistic)
        n = holistic.shape[0]
        out = self.reid(torch.cat([holistic, partial, affined.to(holistic.dtype)]))  # Eq. 3 for I_h, I_p, I_a
        if not isinstance(out, dict) or "logits" not in out or "feat" not in out:
            raise TypeError(f"STNReID: the ReID module's training forward must return a dict with 'logits' and 'feat', "
                            f"got {type(out).__name__} (is it in training mode?)")
        res = {"theta": theta, "affined": affined}
        for i, k in enumerate(("h", "p", "a")):
            res[f"logits_{k}"] = out["logits"][i * n:(i + 1) * n]
            res[f"feat_{k}"] = out["feat"][i * n:(i + 1) * n]
        return res

    # -- test time -----------------------------------------------------------
    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> Features:
        """The global features (ReID module alone) and the images, for pairwise matching."""
        return Features(images=images, global_feat=self.reid.extract(images).global_feat.float())

    @torch.no_grad()
    def pair_distance(self, q: Features, g: Features) -> torch.Tensor:
        """Distances of the pairs ``(q[b], g[b])``, batched: ``(B,)``.

        For every pair: ``theta = f_loc(I_g, I_q)`` with the query as the partial image,
        ``I_a`` sampled from the gallery image, and ``d(f_q, f_{I_a})``.
        """
        if q.images is None or g.images is None or q.global_feat is None:
            raise ValueError("STNReID.pair_distance needs Features with images (both sides) and the query's "
                             "global_feat, as STNReID.extract returns them")
        dev = next(self.stn.parameters()).device
        qi, gi = q.images.to(dev), g.images.to(dev)
        with autocast(dev, self.amp):  # the pair passes dominate test time: bf16/fp16 on GPUs
            affined, _ = self.affine(qi.to(gi.dtype), gi)
            fa = self.reid.extract(affined).global_feat
        return _paired_distance(q.global_feat.to(dev), fa, self.metric, self.normalize)

    def global_matcher(self):
        """The ReID module alone ("w/o STN" in Tables 2 and 3)."""
        from reidlib.metrics.matchers import GlobalMatcher

        return GlobalMatcher(metric=self.metric, normalize=self.normalize)

    def matcher(self, shortlist: "Optional[int] | str" = "default", batch_pairs: Optional[int] = None, progress: bool = False):
        """The pairwise matcher: full ``Q x G`` (``shortlist=None``) or the top-``k`` shortlist of
        the global features rescored (``shortlist=k``); ``"default"`` takes the model's setting."""
        from reidlib.metrics.matchers import PairwiseMatcher

        k = self.shortlist if shortlist == "default" else shortlist
        return PairwiseMatcher(self.pair_distance, batch_pairs=batch_pairs or self.batch_pairs, shortlist=k,
                               cheap=self.global_matcher(), progress=progress)


def merge_mode(stn: "LocalizationNet | STNReID", reid: nn.Module, **kw) -> STNReID:
    """Merge Mode (Section 3.2, Fig. 3b): a frozen STN in front of an independently trained
    ReID model, with no further training.  ``stn`` is a :class:`LocalizationNet` or a (stage-1)
    :class:`STNReID` model, whose STN is taken."""
    if isinstance(stn, STNReID):
        stn = stn.stn
    if not isinstance(stn, LocalizationNet):
        raise ValueError(f"merge_mode: the STN comes from a {type(stn).__name__}, not an STNReID run's model "
                         f"or a LocalizationNet")
    return STNReID(reid, stn=stn, image_size=stn.input_size, freeze_stn=True, **kw).eval()
