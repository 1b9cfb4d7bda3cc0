"""Matchers: query and gallery :class:`~reidlib.models.base.Features` -> ``(Q, G)`` distances.

A model's ``matcher()`` returns one of these; the evaluation calls
``matcher(query_features, gallery_features)`` and ranks the result.

* :class:`GlobalMatcher` -- one global vector per image (euclidean / cosine).
* :class:`PCBMatcher` -- PCB's normalised, concatenated stripes.
* :class:`VisibilityWeightedMatcher` -- VPM Eq. 4.
* :class:`CommonPartsMatcher` -- SANet Eq. 7 (HPNet's mean over commonly visible parts).
* :class:`PairwiseMatcher` -- a learned function of a (query, gallery) pair (STNReID,
  PPCL), batched over pairs, optionally only on a shortlist from a cheap matcher;
  :func:`memoize_pairs` makes one that scores each pair of a split's rows once, across the
  trials of a protocol (:func:`with_row_ids` marks the rows).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from reidlib.metrics.distance import (
    METRICS,
    common_parts_distance,
    compute_distance_matrix,
    pcb_distance,
    visibility_weighted_distance,
)
from reidlib.metrics.features import Features

__all__ = [
    "Matcher",
    "GlobalMatcher",
    "PCBMatcher",
    "VisibilityWeightedMatcher",
    "CommonPartsMatcher",
    "PairwiseMatcher",
    "memoize_pairs",
    "with_row_ids",
    "ROW_KEY",
]


def _need(f: Features, attr: str, who: str, side: str) -> torch.Tensor:
    if not isinstance(f, Features):
        raise TypeError(f"{who}: {side} must be a reidlib.models.base.Features, got {type(f).__name__}")
    v = getattr(f, attr)
    if v is None:
        raise ValueError(f"{who}: {side} Features has no {attr!r} (it is None); this matcher needs Features.{attr}")
    return v


class Matcher:
    """Base class: ``matcher(qf, gf) -> (Q, G)`` distance tensor (smaller = more similar)."""

    name = "matcher"

    def __call__(self, qf: Features, gf: Features) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


class GlobalMatcher(Matcher):
    """Distances between ``Features.global_feat`` (torchreid conventions).

    Args:
        metric: ``"euclidean"`` (squared) or ``"cosine"``.
        normalize: L2-normalise the features first (the usual test-time setting).
    """

    name = "global"

    def __init__(self, metric: str = "euclidean", normalize: bool = True):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}: accepted metrics are {', '.join(map(repr, METRICS))}")
        self.metric = metric
        self.normalize = bool(normalize)

    def __call__(self, qf: Features, gf: Features) -> torch.Tensor:
        q = _need(qf, "global_feat", "GlobalMatcher", "query").float()
        g = _need(gf, "global_feat", "GlobalMatcher", "gallery").float()
        if self.normalize:
            q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
        return compute_distance_matrix(q, g, self.metric)

    def describe(self) -> str:
        return f"global {self.metric}{' on L2-normalised features' if self.normalize else ''}"


class PCBMatcher(Matcher):
    """PCB: stripes L2-normalised and concatenated (``Features.parts``), then ``metric``."""

    name = "pcb"

    def __init__(self, metric: str = "euclidean"):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}: accepted metrics are {', '.join(map(repr, METRICS))}")
        self.metric = metric

    def __call__(self, qf: Features, gf: Features) -> torch.Tensor:
        return pcb_distance(_need(qf, "parts", "PCBMatcher", "query"), _need(gf, "parts", "PCBMatcher", "gallery"), self.metric)

    def describe(self) -> str:
        return f"PCB: L2-normalised stripes concatenated, {self.metric}"


class VisibilityWeightedMatcher(Matcher):
    """VPM Eq. 4 on ``Features.parts`` and ``Features.visibility`` (see
    :func:`reidlib.metrics.distance.visibility_weighted_distance`).

    Args:
        normalize: L2-normalise each region feature first.
        squared, no_common: passed to the distance.
    """

    name = "vpm"

    def __init__(self, normalize: bool = False, squared: bool = False, no_common=math.inf):
        self.normalize, self.squared, self.no_common = bool(normalize), bool(squared), no_common

    def __call__(self, qf: Features, gf: Features) -> torch.Tensor:
        who = "VisibilityWeightedMatcher"
        qp, gp = _need(qf, "parts", who, "query"), _need(gf, "parts", who, "gallery")
        qv, gv = _need(qf, "visibility", who, "query"), _need(gf, "visibility", who, "gallery")
        if self.normalize:
            qp, gp = F.normalize(qp.float(), dim=2), F.normalize(gp.float(), dim=2)
        return visibility_weighted_distance(qp, qv, gp, gv, squared=self.squared, no_common=self.no_common)

    def describe(self) -> str:
        return "VPM Eq. 4: visibility-weighted mean of region distances"


class CommonPartsMatcher(Matcher):
    """SANet Eq. 7: mean part distance over commonly visible parts (see
    :func:`reidlib.metrics.distance.common_parts_distance`).

    Args:
        threshold: a part is visible when ``Features.visibility > threshold``.
        normalize: L2-normalise each part feature first.
        squared, no_common: passed to the distance.
    """

    name = "common-parts"

    def __init__(self, threshold: float = 0.5, normalize: bool = False, squared: bool = False, no_common=math.inf):
        self.threshold, self.normalize, self.squared, self.no_common = float(threshold), bool(normalize), bool(squared), no_common

    def __call__(self, qf: Features, gf: Features) -> torch.Tensor:
        who = "CommonPartsMatcher"
        qp, gp = _need(qf, "parts", who, "query"), _need(gf, "parts", who, "gallery")
        qv, gv = _need(qf, "visibility", who, "query"), _need(gf, "visibility", who, "gallery")
        if self.normalize:
            qp, gp = F.normalize(qp.float(), dim=2), F.normalize(gp.float(), dim=2)
        return common_parts_distance(qp, qv, gp, gv, threshold=self.threshold, squared=self.squared, no_common=self.no_common)

    def describe(self) -> str:
        return f"SANet Eq. 7: mean part distance over commonly visible parts (visible: score > {self.threshold})"


PairFn = Callable[[Features, Features], torch.Tensor]


class PairwiseMatcher(Matcher):
    """A learned pair distance, batched over (query, gallery) pairs.

    ``pair_fn(q_items, g_items) -> (B,)`` receives two :class:`Features` of ``B`` rows
    each (row ``b`` of both forms pair ``b``) and returns their distances.

    Full mode (``shortlist=None``): every ``Q x G`` pair is scored, ``batch_pairs`` at a
    time (query-major order).

    Shortlist mode (``shortlist=k``): ``cheap`` (default :class:`GlobalMatcher`) ranks the
    gallery for each query; only its ``k`` nearest are rescored with ``pair_fn``.  The
    other entries must still rank *after* every rescored one, in the cheap order, so
    that the full ranking (and hence mAP) stays defined.  ``fill="offset"`` (default):
    ``d = cheap - min(cheap over the query's non-shortlisted) + max(rescored of the
    query) + 1``; ``fill="inf"``: ``+inf`` (they then tie, and the tie goes by gallery
    index).  With ``k >= G`` the result equals full mode.

    Args:
        pair_fn: the pair distance.
        batch_pairs: pairs per ``pair_fn`` call.
        shortlist: ``k`` or None.
        cheap: the matcher that makes the shortlist.
        fill: ``"offset"`` or ``"inf"``.
        progress: show a tqdm bar over pair batches.
    """

    name = "pairwise"

    def __init__(
        self,
        pair_fn: PairFn,
        batch_pairs: int = 1024,
        shortlist: int | None = None,
        cheap: Matcher | None = None,
        fill: str = "offset",
        progress: bool = False,
    ):
        if not callable(pair_fn):
            raise TypeError(f"pair_fn must be callable (q_items, g_items) -> (B,) distances, got {pair_fn!r}")
        if not isinstance(batch_pairs, int) or batch_pairs < 1:
            raise ValueError(f"batch_pairs must be a positive int, got {batch_pairs!r}")
        if shortlist is not None and (not isinstance(shortlist, int) or shortlist < 1):
            raise ValueError(f"shortlist must be None or a positive int k, got {shortlist!r}")
        if fill not in ("offset", "inf"):
            raise ValueError(f"fill={fill!r}: accepted values are 'offset' and 'inf'")
        self.pair_fn = pair_fn
        self.batch_pairs = batch_pairs
        self.shortlist = shortlist
        self.cheap = cheap if cheap is not None else GlobalMatcher()
        self.fill = fill
        self.progress = progress

    def _score(self, qf: Features, gf: Features, qi: torch.Tensor, gi: torch.Tensor) -> torch.Tensor:
        """Distances of the pairs ``(qi[b], gi[b])``, ``batch_pairs`` at a time."""
        n = qi.numel()
        out = torch.empty(n, dtype=torch.float32)
        starts = range(0, n, self.batch_pairs)
        if self.progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="pairs", unit="batch")
        for s in starts:
            e = min(n, s + self.batch_pairs)
            d = self.pair_fn(qf[qi[s:e]], gf[gi[s:e]])
            if not isinstance(d, torch.Tensor) or d.shape != (e - s,):
                raise ValueError(
                    f"pair_fn returned {type(d).__name__} of shape {tuple(getattr(d, 'shape', ()))} for "
                    f"{e - s} pairs; expected a ({e - s},) tensor of distances"
                )
            out[s:e] = d.detach().float().cpu()
        return out

    @torch.no_grad()
    def __call__(self, qf: Features, gf: Features) -> torch.Tensor:
        Q, G = len(qf), len(gf)
        if self.shortlist is None or self.shortlist >= G:
            qi = torch.arange(Q).repeat_interleave(G)
            gi = torch.arange(G).repeat(Q)
            return self._score(qf, gf, qi, gi).view(Q, G)
        k = self.shortlist
        cheap = self.cheap(qf, gf).float().cpu()
        top = torch.topk(cheap, k, dim=1, largest=False, sorted=True).indices  # (Q, k)
        qi = torch.arange(Q).repeat_interleave(k)
        gi = top.reshape(-1)
        rescored = self._score(qf, gf, qi, gi).view(Q, k)
        short = torch.zeros(Q, G, dtype=torch.bool)
        short.scatter_(1, top, True)
        if self.fill == "inf":
            out = torch.full((Q, G), math.inf)
        else:
            rest_min = cheap.masked_fill(short, math.inf).min(1, keepdim=True).values
            top_max = rescored.max(1, keepdim=True).values
            out = cheap - rest_min + top_max + 1.0
        out.scatter_(1, top, rescored)
        return out

    def describe(self) -> str:
        if self.shortlist is None:
            return "pairwise: every query-gallery pair scored"
        return (f"pairwise on a shortlist: top-{self.shortlist} of [{self.cheap.describe()}] rescored, "
                f"the rest after them ({self.fill})")


#: the ``Features.extra`` key of :func:`with_row_ids`: one id per row of a split's features
ROW_KEY = "row"


def with_row_ids(features: Features, offset: int = 0) -> Features:
    """``features`` with ``extra[ROW_KEY]`` set to ``offset + arange(N)`` (in place; returned): ids
    that follow the rows through the subsets a protocol's trials take. Give the query and the
    gallery split different offsets (e.g. 0 and 1 << 32) when both are matched."""
    features.extra[ROW_KEY] = offset + torch.arange(len(features), dtype=torch.long, device=features.device)
    return features


def memoize_pairs(matcher: PairwiseMatcher) -> PairwiseMatcher:
    """A :class:`PairwiseMatcher` with ``matcher``'s shortlist, cheap matcher and batch size whose
    pair function scores each (query row, gallery row) pair once and looks it up afterwards.

    The rows are those marked by :func:`with_row_ids`; pairs without ids (e.g. the features of a
    cropped view, which are other images) are scored every time. The result equals
    ``matcher``'s whenever its pair distance is a deterministic function of the two rows (a
    network in eval mode): the point is a protocol of many trials over the same images (HPNet's
    100 single-gallery-shot repeats), whose shortlists revisit the same pairs."""
    if not isinstance(matcher, PairwiseMatcher):
        raise TypeError(f"memoize_pairs: expected a PairwiseMatcher, got {type(matcher).__name__}")
    keys = torch.empty(0, dtype=torch.long)
    vals = torch.empty(0, dtype=torch.float32)
    scored = [0]

    def pair_fn(q: Features, g: Features) -> torch.Tensor:
        nonlocal keys, vals
        qr, gr = q.extra.get(ROW_KEY), g.extra.get(ROW_KEY)
        if qr is None or gr is None:
            scored[0] += len(q)
            return matcher.pair_fn(q, g)
        k = (qr.cpu() << 32) | (gr.cpu() & 0xFFFFFFFF)
        pos = torch.searchsorted(keys, k).clamp(max=max(len(keys) - 1, 0))
        known = (keys[pos] == k) if len(keys) else torch.zeros(len(k), dtype=torch.bool)
        out = torch.empty(len(k), dtype=torch.float32)
        out[known] = vals[pos[known]]
        new = (~known).nonzero().flatten()
        if len(new):
            d = matcher.pair_fn(q[new.to(qr.device)], g[new.to(gr.device)]).detach().float().cpu()
            out[new] = d
            keys, order = torch.sort(torch.cat([keys, k[new]]))
            vals = torch.cat([vals, d])[order]
            scored[0] += len(new)
        return out

    memo = PairwiseMatcher(pair_fn, batch_pairs=matcher.batch_pairs, shortlist=matcher.shortlist, cheap=matcher.cheap,
                           fill=matcher.fill, progress=matcher.progress)
    memo.pairs_scored = scored  # a one-item list: the pair passes actually run so far
    memo.describe_base = matcher.describe
    return memo
