"""PPCL: Part-Part Correspondence Learning (He et al., CVPR 2021).

A partial image ``x^p`` goes through the *gated layout rectifier* GLRec (R + G + T,
:class:`GLRec`): the regressor R predicts where the crop lies in a holistic frame (n = 4
degrees of freedom, scale and translation) and a confidence ``eta`` that the input is
partial; the gate G keeps holistic inputs (``eta < 0.5``) unchanged; the warp T places a
partial input at its predicted place in a holistic-sized canvas, ``x^r`` (Eq. 2).  The
backbone F (the strong baseline, :class:`reidlib.models.baseline.Baseline`) turns ``x^r``
into a feature map ``h_x^r`` (Eq. 3).  The *corresponding region locator* CRLoc
(:class:`CRLoc`, Eq. 7 / 9) reads the correlation softmax (Eq. 8) between the anchor region
of ``h_x^r`` and a reference map ``h_y`` and outputs the corresponding region of ``h_y``.
At test time the distance of a pair is the cosine distance between the two corresponding
regions' pooled features (Sec. 3.4, 4.1), computed from cached feature maps only (the
paper's time analysis): :meth:`PPCL.extract` caches them, :meth:`PPCL.matcher` returns a
:class:`reidlib.metrics.matchers.PairwiseMatcher` batched over pairs, over every pair or a
shortlist of a global matcher, as STNReID's.  The losses are in :mod:`reidlib.losses.ppcl`;
the stages and recipes in :mod:`reidlib.methods.ppcl`.

Regions.  Every box is a 4-vector ``(sx, sy, tx, ty)`` in the normalised ``[-1, 1]``
coordinates of ``F.affine_grid(..., align_corners=False)`` (pixel edges at +-1): the region
covers ``[tx - sx, tx + sx] x [ty - sy, ty + sy]``, i.e. ``frame = s * local + t`` -- exactly
:func:`reidlib.data.partial.box_to_scale_translation`'s crop transform, so GLRec's target is
the crop's own ``scale_translation``.  Normalised coordinates are the same on an image and
on its feature map, so one box serves both (:func:`region_to_box` gives pixels).

Choices where the paper is open (the chapter states them):

* R is a ResNet (``resnet18`` in ``full``) with layer 4 at stride 2, global average pooling
  and two FC layers (256, ReLU, then n + 1 = 5 outputs).  The last layer starts at zero with
  the bias of the identity transform, so an untrained R rectifies nothing.  ``eta`` is the
  sigmoid of the fifth output.  R's raw output is what Eq. 1 regresses; the warp and the
  regions use it with the scales clamped to ``[0.05, 1]`` (:func:`clamp_regions`).
* T pads with zeros (the normalised images' mean colour) outside the crop.
* The anchor region is the region of ``h_x^r`` where GLRec put the crop (the whole map when
  the gate says holistic), resampled at the feature map's own size, so that a holistic
  anchor is the map itself.  Regions are read with ``grid_sample`` (bilinear), not
  ``roi_align``: the box then receives gradients (PP-Cycle's second step and PP-Triplet's
  positive depend on CRLoc's first box).
* Eq. 8 on L2-normalised channel vectors divided by a temperature (0.1): on raw ReLU
  features the softmax is one-hot and passes no gradient.  The correlation is laid out as
  Rocco et al.'s: one channel per anchor position ``u``, a softmax map over the reference
  positions ``v``, which L_l reads with three 3x3 convolutions (128, 64, 32 channels, BN,
  ReLU) and one FC layer.  Its four outputs are squashed into a box inside the map:
  ``s = 0.1 + 0.9 sigmoid(a)``, ``t = (1 - s) tanh(b)`` (a corresponding region lies in the
  reference image).
* Y = shuffle(X): ``h_y = h_x[perm]``; F runs once on ``[x^r; x]`` (in eval mode this is
  Eq. 3 exactly; in training the BatchNorm statistics are those of the joint batch).
* Pairs at test time: the anchor is the query, unless the gate calls the query holistic and
  the gallery image partial (PPCL Table 3), then the gallery image is.  A holistic anchor's
  corresponding region is the whole reference map (the gate's purpose: holistic pairs are
  compared as the baseline compares them).
* Region features: average pooling, then the BNNeck (``neck_feat="after"``), cosine distance.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidlib.data.partial import scale_translation_to_theta
from reidlib.models.backbones import build_backbone
from reidlib.models.base import Features, ReIDModel
from reidlib.precision import autocast

__all__ = [
    "IDENTITY_REGION", "GATE_THRESHOLD", "MATCH_MODES", "identity_regions", "clamp_regions", "inverse_regions",
    "sample_region", "region_to_box", "region_overlaps", "sample_negative_regions", "gate", "warp_to_layout",
    "Regressor", "GLRec", "correlation_softmax", "RegionLocator", "CRLoc", "PPCL",
]

#: The identity region ``(sx, sy, tx, ty)``: the whole frame.
IDENTITY_REGION = (1.0, 1.0, 0.0, 0.0)
#: PPCL Sec. 3.1: an input with ``eta < 0.5`` is holistic and passes the gate unchanged.
GATE_THRESHOLD = 0.5
#: How a pair is compared: the global features of the rectified images; the region GLRec
#: predicts, in both images ("+R", Fig. 6's blue box); CRLoc's corresponding region (PPCL).
MATCH_MODES = ("global", "glrec", "crloc")
#: The smallest region side (a fraction of the frame) the warp and the regions use.
MIN_SCALE = 0.05


# ----------------------------------------------------------------------------- regions
def identity_regions(n: int, like: torch.Tensor) -> torch.Tensor:
    """``(n, 4)`` identity regions on ``like``'s device and dtype."""
    return like.new_tensor(IDENTITY_REGION).expand(n, 4)


def _check_regions(st: torch.Tensor, who: str) -> None:
    if st.dim() != 2 or st.shape[1] != 4:
        raise ValueError(f"{who}: expected regions of shape (N, 4) (sx, sy, tx, ty), got {tuple(st.shape)}")


def clamp_regions(st: torch.Tensor, min_scale: float = MIN_SCALE) -> torch.Tensor:
    """The regions with their scales clamped to ``[min_scale, 1]`` (a crop is never larger than
    its frame, nor empty); translations unchanged."""
    _check_regions(st, "clamp_regions")
    return torch.cat([st[:, :2].clamp(min_scale, 1.0), st[:, 2:]], dim=1)


def inverse_regions(st: torch.Tensor) -> torch.Tensor:
    """The inverse transform: ``frame = s * local + t`` becomes ``local = frame / s - t / s``."""
    _check_regions(st, "inverse_regions")
    s, t = st[:, :2], st[:, 2:]
    return torch.cat([1.0 / s, -t / s], dim=1)


def sample_region(maps: torch.Tensor, st: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The regions ``st`` ``(N, 4)`` of ``maps`` ``(N, C, H, W)`` (images or feature maps) read
    as ``(N, C, *size)`` maps: ``grid_sample`` (bilinear, zeros outside, ``align_corners=False``)
    at the regular grid of each region.  The identity region at the map's own size gives the
    map back; differentiable in the maps and the regions.  The grid and the sampling are in
    float32 (a bf16 grid would misplace points by up to 1/128 of the frame); the result has
    the maps' dtype."""
    _check_regions(st, "sample_region")
    if maps.dim() != 4 or st.shape[0] != maps.shape[0]:
        raise ValueError(f"sample_region: expected maps (N, C, H, W) and regions (N, 4), got {tuple(maps.shape)} "
                         f"and {tuple(st.shape)}")
    n, c = maps.shape[:2]
    theta = scale_translation_to_theta(st.float())
    grid = F.affine_grid(theta, [n, c, int(size[0]), int(size[1])], align_corners=False)
    out = F.grid_sample(maps.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(maps.dtype)


def region_to_box(st: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Regions ``(N, 4)`` as pixel boxes ``(N, 4)`` ``x1, y1, x2, y2`` in a frame of ``size =
    (H, W)`` (edges: ``x = (u + 1) W / 2``), the convention of
    :func:`reidlib.models.stnreid.theta_to_box`."""
    _check_regions(st, "region_to_box")
    h, w = size
    sx, sy, tx, ty = st.unbind(1)
    return torch.stack([(tx - sx + 1) * (w / 2), (ty - sy + 1) * (h / 2),
                        (tx + sx + 1) * (w / 2), (ty + sy + 1) * (h / 2)], dim=1)


def region_overlaps(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(IoU, IoMin)`` of regions ``a`` and ``b`` (``(..., 4)``, broadcast): intersection over
    union, and intersection over the smaller region's area (the overlap's share of the region
    it covers most)."""
    a_lo, a_hi = a[..., 2:] - a[..., :2], a[..., 2:] + a[..., :2]
    b_lo, b_hi = b[..., 2:] - b[..., :2], b[..., 2:] + b[..., :2]
    inter = (torch.minimum(a_hi, b_hi) - torch.maximum(a_lo, b_lo)).clamp(min=0).prod(-1)
    area_a = (a_hi - a_lo).clamp(min=0).prod(-1)
    area_b = (b_hi - b_lo).clamp(min=0).prod(-1)
    iou = inter / (area_a + area_b - inter).clamp(min=1e-12)
    iomin = inter / torch.minimum(area_a, area_b).clamp(min=1e-12)
    return iou, iomin


def sample_negative_regions(positive: torch.Tensor, beta: float = 0.5, candidates: int = 32,
                            min_scale: float = 0.2, generator: Optional[torch.Generator] = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """PPCL Sec. 3.3 (Algorithm 1, line 10): a negative region ``h_{y*}`` for each positive region.

    The negative is drawn at random inside the reference map under the paper's two
    principles, with ``beta = 0.5``: (1) its overlap (IoU) with the positive is below
    ``beta``; (2) the overlapped area is below ``beta`` of either region (intersection over the
    smaller area: a region mostly inside the other -- one "involved in another" -- is refused
    even when their IoU is small).

    Batched, without host syncs: ``candidates`` random regions per positive (sides uniform in
    ``[min_scale, 1]``, placed uniformly inside the map), the first one that keeps both
    principles is taken.  Returns ``(negatives (B, 4), valid (B,) bool)``; ``valid`` is False
    where no candidate qualified (a positive covering nearly the whole map leaves no room:
    the triplet term of that sample is left out).
    """
    _check_regions(positive, "sample_negative_regions")
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"sample_negative_regions: beta={beta!r}; expected 0 < beta <= 1")
    if candidates < 1 or not 0.0 < min_scale <= 1.0:
        raise ValueError(f"sample_negative_regions: candidates={candidates!r} must be >= 1 and "
                         f"min_scale={min_scale!r} in (0, 1]")
    b = positive.shape[0]
    pos = positive.detach().float()
    r = torch.rand(b, candidates, 4, device=pos.device, generator=generator)
    s = min_scale + (1.0 - min_scale) * r[..., :2]
    t = (1.0 - s) * (2.0 * r[..., 2:] - 1.0)
    cand = torch.cat([s, t], dim=-1)  # (B, K, 4)
    iou, iomin = region_overlaps(cand, pos[:, None, :])
    ok = (iou < beta) & (iomin < beta)
    first = ok.to(torch.uint8).argmax(dim=1)  # the first qualifying candidate (0 when none)
    neg = cand.gather(1, first[:, None, None].expand(b, 1, 4)).squeeze(1)
    return neg.to(positive.dtype), ok.any(dim=1)


# ----------------------------------------------------------------------------- GLRec
def gate(st: torch.Tensor, eta: torch.Tensor, threshold: float = GATE_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """PPCL Sec. 3.1, the gate G: an input with ``eta < threshold`` (0.5) is holistic.

    Returns ``(regions, is_partial)``: the predicted regions, replaced by the identity (the
    whole frame) for holistic inputs, and the ``(N,)`` boolean decision.
    """
    _check_regions(st, "gate")
    part = eta >= threshold
    return torch.where(part[:, None], st, identity_regions(st.shape[0], st)), part


def warp_to_layout(images: torch.Tensor, st: torch.Tensor, is_partial: torch.Tensor) -> torch.Tensor:
    """PPCL Sec. 3.1, the warp T: ``x^r = T(x^p, t)``.

    A partial input is placed where its region ``st`` lies in a holistic frame of the same
    size: every output point ``h`` reads the crop at ``(h - t) / s`` (bilinear, zeros outside
    the crop).  Inputs with ``is_partial`` False are returned unchanged (bit for bit).
    """
    if images.dim() != 4 or st.shape != (images.shape[0], 4) or is_partial.shape != (images.shape[0],):
        raise ValueError(f"warp_to_layout: expected images (N, C, H, W), regions (N, 4) and is_partial (N,), got "
                         f"{tuple(images.shape)}, {tuple(st.shape)} and {tuple(is_partial.shape)}")
    warped = sample_region(images, inverse_regions(clamp_regions(st)), images.shape[-2:])
    return torch.where(is_partial[:, None, None, None], warped.to(images.dtype), images)


class Regressor(nn.Module):
    """PPCL's R: ``[t; eta] = R(x^p)``, ``R: R^{h x w x c} -> R^{n + 1}`` with n = 4.

    A ResNet (layer 4 at stride 2) -> global average pooling -> FC 256 + ReLU -> FC 5.
    ``forward`` returns ``(t (N, 4), eta_logit (N,))``; ``eta = sigmoid(eta_logit)``.
    """

    def __init__(self, backbone: str = "resnet18", pretrained: bool = False, weights=None, hidden: int = 256):
        super().__init__()
        self.backbone = build_backbone(backbone, pretrained=pretrained, last_stride=2, weights=weights)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Linear(self.backbone.out_channels, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, 5))
        self.reset_head()

    def reset_head(self) -> None:
        """The last FC layer at zero weights and the identity bias (``t = (1, 1, 0, 0)``, ``eta = 0.5``)."""
        last = self.head[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([*IDENTITY_REGION, 0.0]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.gap(self.backbone(x)).flatten(1)).float()
        return out[:, :4], out[:, 4]


class GLRec(nn.Module):
    """The gated layout rectifier (R + G + T, Sec. 3.1).

    ``forward(x)`` returns a dict: ``st_raw`` (R's ``t``, what Eq. 1 regresses), ``eta_logit``,
    ``eta``, ``is_partial`` (G's decision), ``st`` (the region used downstream: R's ``t`` with
    clamped scales, the identity for holistic inputs) and, with ``rectify=True``, the
    rectified images ``rectified`` (Eq. 2).
    """

    def __init__(self, backbone: str = "resnet18", pretrained: bool = False, weights=None,
                 threshold: float = GATE_THRESHOLD):
        super().__init__()
        self.regressor = Regressor(backbone, pretrained=pretrained, weights=weights)
        self.threshold = float(threshold)

    @property
    def backbone(self) -> nn.Module:
        return self.regressor.backbone

    def forward(self, x: torch.Tensor, rectify: bool = True) -> dict:
        """PPCL Eq. 2: ``x^r = T(G(R(x^p)))``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"GLRec: expected images (N, 3, H, W), got {tuple(x.shape)}")
        st_raw, eta_logit = self.regressor(x)
        eta = torch.sigmoid(eta_logit)
        st, part = gate(clamp_regions(st_raw), eta, self.threshold)
        out = {"st_raw": st_raw, "eta_logit": eta_logit, "eta": eta, "is_partial": part, "st": st}
        if rectify:
            out["rectified"] = warp_to_layout(x, st, part)
        return out


# ----------------------------------------------------------------------------- CRLoc
def correlation_softmax(anchor: torch.Tensor, reference: torch.Tensor, temperature: float = 0.1,
                        normalize: bool = True) -> torch.Tensor:
    """PPCL Eq. 8, the fusion layer L_f:
    ``L_f(h_x^r, h_y)[u, v] = exp(h_x^r(u) h_y(v)^T) / sum_v exp(h_x^r(u) h_y(v)^T)``.

    ``anchor`` ``(B, C, ha, wa)``, ``reference`` ``(B, C, h, w)`` -> ``(B, ha * wa, h, w)``:
    channel ``u`` (an anchor position, row-major) holds the softmax over the reference
    positions ``v``.  With ``normalize`` the channel vectors are L2-normalised and the dot
    products divided by ``temperature`` (see the module docstring); computed in float32.
    """
    if anchor.dim() != 4 or reference.dim() != 4 or anchor.shape[:2] != reference.shape[:2]:
        raise ValueError(f"correlation_softmax: expected anchor (B, C, ha, wa) and reference (B, C, h, w) with the "
                         f"same B and C, got {tuple(anchor.shape)} and {tuple(reference.shape)}")
    if temperature <= 0:
        raise ValueError(f"correlation_softmax: temperature={temperature!r} must be > 0")
    b, c, h, w = reference.shape
    a = anchor.float().flatten(2)  # (B, C, U)
    r = reference.float().flatten(2)  # (B, C, V)
    if normalize:
        a, r = F.normalize(a, dim=1), F.normalize(r, dim=1)
    scores = torch.bmm(a.transpose(1, 2), r)  # (B, U, V)
    if normalize:
        scores = scores / temperature
    return scores.softmax(dim=2).view(b, -1, h, w)


class RegionLocator(nn.Module):
    """PPCL's L_l: the correlation map -> the corresponding region's coordinates in ``h_y``.

    Three 3x3 convolutions (``widths``, BN, ReLU) and one FC layer (the time analysis: "3
    convolutional layers and 1 fully-connected layer") give ``(a_x, a_y, b_x, b_y)``, squashed
    into a region inside the map: ``s = min_scale + (1 - min_scale) sigmoid(a)``,
    ``t = (1 - s) tanh(b)``.  The FC layer starts at zero (a centred region of side 0.55).
    """

    def __init__(self, in_channels: int, feat_size: Sequence[int], widths: Sequence[int] = (128, 64, 32),
                 min_scale: float = 0.1):
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"RegionLocator: L_l has 3 convolutions, got widths={tuple(widths)}")
        if not 0.0 < min_scale < 1.0:
            raise ValueError(f"RegionLocator: min_scale={min_scale!r} must lie in (0, 1)")
        layers, c = [], int(in_channels)
        for wdt in widths:
            layers += [nn.Conv2d(c, wdt, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(wdt), nn.ReLU(inplace=True)]
            c = wdt
        self.convs = nn.Sequential(*layers)
        self.feat_size = (int(feat_size[0]), int(feat_size[1]))
        self.fc = nn.Linear(c * self.feat_size[0] * self.feat_size[1], 4)
        self.min_scale = float(min_scale)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, corr: torch.Tensor) -> torch.Tensor:
        if tuple(corr.shape[-2:]) != self.feat_size:
            raise ValueError(f"RegionLocator: built for {self.feat_size} maps, got a correlation of shape "
                             f"{tuple(corr.shape)}")
        raw = self.fc(self.convs(corr).flatten(1)).float()
        s = self.min_scale + (1.0 - self.min_scale) * torch.sigmoid(raw[:, :2])
        t = (1.0 - s) * torch.tanh(raw[:, 2:])
        return torch.cat([s, t], dim=1)


class CRLoc(nn.Module):
    """The corresponding region locator (Sec. 3.1): ``h_{x->y} = L(h_x^r, h_y)``.

    ``forward(anchor, reference)``: the anchor region ``(B, C, h, w)`` (read at the map size
    ``feat_size``) and the reference map ``(B, C, h, w)`` -> the corresponding region of the
    reference ``(B, 4)``.
    """

    def __init__(self, feat_size: Sequence[int], temperature: float = 0.1, normalize: bool = True,
                 widths: Sequence[int] = (128, 64, 32), min_scale: float = 0.1):
        super().__init__()
        self.feat_size = (int(feat_size[0]), int(feat_size[1]))
        if temperature <= 0:
            raise ValueError(f"CRLoc: temperature={temperature!r} must be > 0")
        self.temperature = float(temperature)
        self.normalize = bool(normalize)
        self.locator = RegionLocator(self.feat_size[0] * self.feat_size[1], self.feat_size, widths, min_scale)

    def forward(self, anchor: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """PPCL Eq. 7 / Eq. 9: ``L(h_x^r, h_y) = L_l(L_f(h_x^r, h_y))``."""
        if tuple(anchor.shape[-2:]) != self.feat_size or tuple(reference.shape[-2:]) != self.feat_size:
            raise ValueError(f"CRLoc: built for {self.feat_size} maps, got anchor {tuple(anchor.shape)} and reference "
                             f"{tuple(reference.shape)}")
        return self.locator(correlation_softmax(anchor, reference, self.temperature, self.normalize))


# ----------------------------------------------------------------------------- the network
class PPCL(ReIDModel):
    """GLRec + F + CRLoc (Fig. 2).

    Args:
        reid: F, a :class:`reidlib.models.baseline.Baseline` (its backbone gives the feature
            maps, its BNNeck and classifier L_F's logits).
        glrec: the :class:`GLRec` (default: a fresh one with a ``resnet18`` R).
        image_size: ``(H, W)`` of the inputs (partial crops are resized to it).
        temperature, corr_normalize: Eq. 8 (see :func:`correlation_softmax`).
        beta, neg_candidates: PP-Triplet's negative sampling (:func:`sample_negative_regions`).
        train_cycle, train_triplet: what the training forward computes (Table 1a's variants).
        match: the default matcher's comparison, one of :data:`MATCH_MODES`.
        shortlist, batch_pairs, amp: the pairwise matcher (see :meth:`matcher`).

    Training forward: ``model(partial, holistic, perm)`` (Algorithm 1): GLRec's outputs, the
    logits and pooled features of ``[x^r; x]`` for L_F, and, with ``perm`` (Y = X[perm]), the
    anchor, positive and negative regions and CRLoc's regions ``box_xy`` (in ``h_y``) and
    ``box_yx`` (back in ``h_x``).  ``model(None, holistic)``: F alone (the backbone stage).
    """

    def __init__(self, reid: nn.Module, glrec: Optional[GLRec] = None, image_size: Sequence[int] = (256, 128),
                 temperature: float = 0.1, corr_normalize: bool = True, beta: float = 0.5, neg_candidates: int = 32,
                 train_cycle: bool = True, train_triplet: bool = True, match: str = "crloc",
                 shortlist: Optional[int] = None, batch_pairs: int = 1024, amp: bool = True):
        super().__init__()
        for name in ("backbone", "gap", "bottleneck", "classifier"):
            if not hasattr(reid, name):
                raise TypeError(f"PPCL: F must be a reidlib.models.baseline.Baseline (it needs .{name}), got "
                                f"{type(reid).__name__}")
        if match not in MATCH_MODES:
            raise ValueError(f"PPCL: match={match!r}; accepted: {', '.join(map(repr, MATCH_MODES))}")
        self.reid = reid
        self.glrec = glrec if glrec is not None else GLRec()
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.feat_size = self._probe_feat_size()
        self.crloc = CRLoc(self.feat_size, temperature=temperature, normalize=corr_normalize)
        self.beta = float(beta)
        self.neg_candidates = int(neg_candidates)
        self.train_cycle = bool(train_cycle)
        self.train_triplet = bool(train_triplet)
        self.match = match
        self.shortlist = shortlist
        self.batch_pairs = int(batch_pairs)
        self.amp = bool(amp)
        self.glrec_frozen = False

    def _probe_feat_size(self) -> tuple[int, int]:
        p = next(self.reid.backbone.parameters())
        was = self.reid.backbone.training
        self.reid.backbone.eval()
        with torch.no_grad():
            t = self.reid.backbone(torch.zeros(1, 3, *self.image_size, device=p.device, dtype=p.dtype))
        self.reid.backbone.train(was)
        return int(t.shape[-2]), int(t.shape[-1])

    @property
    def backbone(self) -> nn.Module:
        return self.reid.backbone

    def freeze_glrec(self) -> "PPCL":
        """GLRec without gradients and in eval mode (F's backbone stage trains F alone)."""
        self.glrec_frozen = True
        for p in self.glrec.parameters():
            p.requires_grad_(False)
        self.glrec.eval()
        return self

    def train(self, mode: bool = True) -> "PPCL":
        super().train(mode)
        if self.glrec_frozen:
            self.glrec.eval()
        return self

    # -- pieces ------------------------------------------------------------------
    def feature_maps(self, rectified: torch.Tensor, holistic: Optional[torch.Tensor] = None) -> torch.Tensor:
        """PPCL Eq. 3 / Eq. 10: ``h_x^r = F(x^r), h_x = F(x)`` in one pass over ``[x^r; x]``
        (``h_y = F(y)`` is ``h_x[perm]``: Y = shuffle(X) holds the same images)."""
        x = rectified if holistic is None else torch.cat([rectified, holistic.to(rectified.dtype)])
        return self.reid.backbone(x)

    def anchor_regions(self, maps: torch.Tensor, st: torch.Tensor) -> torch.Tensor:
        """``h_x^r`` restricted to where GLRec put the crop (the whole map for holistic inputs),
        at the map's size."""
        return sample_region(maps, st, self.feat_size)

    def correspond(self, anchor: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CRLoc's region of ``reference`` for ``anchor`` and that region's features."""
        box = self.crloc(anchor, reference)
        return box, sample_region(reference, box, self.feat_size)

    def cycle(self, anchor: torch.Tensor, h_x: torch.Tensor, h_y: torch.Tensor):
        """PPCL Eq. 4-5: ``h_{x->y} = L(h_x^r, h_y)``, then ``h_{y->x} = L(h_{x->y}, h_x)``.

        Returns ``(box_xy, h_{x->y}, box_yx)`` (``box_yx`` is None when PP-Cycle is off)."""
        box_xy, pos = self.correspond(anchor, h_y)
        box_yx = self.crloc(pos, h_x) if self.train_cycle else None
        return box_xy, pos, box_yx

    def _neck(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.reid.bottleneck(pooled) if getattr(self.reid, "neck_feat", "after") == "after" else pooled

    # -- training ------------------------------------------------------------------
    def forward(self, partial: Optional[torch.Tensor] = None, holistic: Optional[torch.Tensor] = None,
                perm: Optional[torch.Tensor] = None) -> dict:
        if partial is None:
            if holistic is None:
                raise TypeError("PPCL.forward(partial, holistic, perm): give the partial crops and their holistic "
                                "images (or holistic alone to train F); use extract() at test time")
            return self.reid(holistic)
        if holistic is not None and holistic.shape != partial.shape:
            raise ValueError(f"PPCL: partial {tuple(partial.shape)} and holistic {tuple(holistic.shape)} batches must "
                             f"have the same shape (crops are resized to the image size)")
        n = partial.shape[0]
        out = dict(self.glrec(partial))
        maps = self.feature_maps(out["rectified"], holistic)
        pooled = self.reid.gap(maps).flatten(1)
        out["logits"] = self.reid.classifier(self.reid.bottleneck(pooled))
        out["feat"] = pooled
        if perm is None or holistic is None:
            return out
        if perm.shape != (n,):
            raise ValueError(f"PPCL: perm must be a permutation of the batch, shape ({n},), got {tuple(perm.shape)}")
        h_r, h_x = maps[:n], maps[n:]
        h_y = h_x[perm]
        anchor = self.anchor_regions(h_r, out["st"])
        box_xy, pos, box_yx = self.cycle(anchor, h_x, h_y)
        out.update(anchor_region=anchor, box_xy=box_xy, pos_region=pos, perm=perm)
        if box_yx is not None:
            out["box_yx"] = box_yx
        if self.train_triplet:
            neg_box, valid = sample_negative_regions(box_xy, self.beta, self.neg_candidates)
            out.update(neg_box=neg_box, neg_valid=valid, neg_region=sample_region(h_y, neg_box, self.feat_size))
        return out

    # -- test time -----------------------------------------------------------------
    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> Features:
        """GLRec, then F on the rectified images: the global feature (the shortlist's and the
        ``"global"`` comparison's) and, for the pairwise matcher, ``extra``: the feature map
        ``fmap`` ``(N, C, h, w)``, GLRec's region ``region`` ``(N, 4)`` (identity when holistic),
        ``eta`` and the gate's ``partial`` decision."""
        g = self.glrec(images)
        maps = self.reid.backbone(g["rectified"])
        feat = self._neck(self.reid.gap(maps).flatten(1))
        return Features(global_feat=feat.float(), extra={"fmap": maps, "region": g["st"].float(),
                                                         "eta": g["eta"].float(), "partial": g["is_partial"]})

    @torch.no_grad()
    def pair_regions(self, q: Features, g: Features, match: Optional[str] = None) -> dict:
        """The corresponding regions of the pairs ``(q[b], g[b])``, batched.

        Returns ``anchor_is_query`` ``(B,)`` (False where the query is holistic and the gallery
        image partial: then the gallery image is the anchor), ``anchor_region`` (GLRec's region
        of the anchor, in its rectified frame), ``reference_region`` (the corresponding region of
        the other image: CRLoc's for ``match="crloc"``, the anchor's own for ``"glrec"``) and the
        two regions' feature maps ``anchor`` and ``reference``.
        """
        match = self.match if match is None else match
        if match not in ("glrec", "crloc"):
            raise ValueError(f"PPCL.pair_regions: match={match!r}; accepted: 'glrec', 'crloc' (the 'global' "
                             f"comparison has no regions)")
        for side, f in (("query", q), ("gallery", g)):
            missing = [k for k in ("fmap", "region", "partial") if k not in f.extra]
            if missing:
                raise ValueError(f"PPCL.pair_regions: the {side} Features lack extra {missing}; extract them with "
                                 f"PPCL.extract")
        dev = next(self.crloc.parameters()).device
        qm, gm = q.extra["fmap"].to(dev), g.extra["fmap"].to(dev)
        qr, gr = q.extra["region"].to(dev), g.extra["region"].to(dev)
        qp, gp = q.extra["partial"].to(dev).bool(), g.extra["partial"].to(dev).bool()
        swap = ~qp & gp
        a_map = torch.where(swap[:, None, None, None], gm, qm)
        r_map = torch.where(swap[:, None, None, None], qm, gm)
        a_reg = torch.where(swap[:, None], gr, qr)
        a_part = torch.where(swap, gp, qp)
        with autocast(dev, self.amp):
            anchor = self.anchor_regions(a_map, a_reg)
            if match == "crloc":
                r_reg = self.crloc(anchor, r_map).float()
                r_reg = torch.where(a_part[:, None], r_reg, identity_regions(r_reg.shape[0], r_reg))
            else:
                r_reg = a_reg
            reference = sample_region(r_map, r_reg, self.feat_size)
        return {"anchor_is_query": ~swap, "anchor_region": a_reg, "reference_region": r_reg,
                "anchor": anchor, "reference": reference}

    @torch.no_grad()
    def pair_distance(self, q: Features, g: Features, match: Optional[str] = None) -> torch.Tensor:
        """``(B,)`` cosine distances (Sec. 4.1) between the corresponding regions of the pairs
        ``(q[b], g[b])`` (pooled, through the BNNeck)."""
        r = self.pair_regions(q, g, match)
        a = self._neck(r["anchor"].float().mean(dim=(2, 3)))
        b = self._neck(r["reference"].float().mean(dim=(2, 3)))
        return 1.0 - (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(dim=1)

    def global_matcher(self):
        """Cosine distance between the rectified images' global features (the shortlist's ranking)."""
        from reidlib.metrics.matchers import GlobalMatcher

        return GlobalMatcher(metric="cosine", normalize=True)

    def matcher(self, shortlist: "Optional[int] | str" = "default", batch_pairs: Optional[int] = None,
                progress: bool = False, match: Optional[str] = None):
        """The matcher for ``match`` (default: the model's): ``"global"`` gives the
        :class:`GlobalMatcher`; ``"glrec"``/``"crloc"`` a :class:`PairwiseMatcher` over every pair
        (``shortlist=None``) or over the top-``k`` of the global features (``shortlist=k``);
        ``"default"`` takes the model's setting."""
        from reidlib.metrics.matchers import PairwiseMatcher

        match = self.match if match is None else match
        if match not in MATCH_MODES:
            raise ValueError(f"PPCL.matcher: match={match!r}; accepted: {', '.join(map(repr, MATCH_MODES))}")
        if match == "global":
            return self.global_matcher()
        k = self.shortlist if shortlist == "default" else shortlist

        def pair_fn(qi: Features, gi: Features) -> torch.Tensor:
            return self.pair_distance(qi, gi, match)

        return PairwiseMatcher(pair_fn, batch_pairs=batch_pairs or self.batch_pairs, shortlist=k,
                               cheap=self.global_matcher(), progress=progress)
