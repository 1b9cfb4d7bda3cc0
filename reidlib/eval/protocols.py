"""Test protocols: which images are queries, which are gallery, which camera rule, how many trials.

Partial re-ID papers score the same features in different ways (reference notes, Sec. 2):
partial images as queries or as the gallery, all-gallery ranking or single-shot trials,
Market's same-camera rule or none.  Each way is a :class:`Protocol` object that says what
it does (:meth:`Protocol.describe`, printed with every result) and turns a dataset into
*settings* (one result each, e.g. one per crop ratio), each a list of *trials*
(scores averaged over them).  A trial names two :class:`View` s -- a split of the dataset,
a subset of it, an optional partial crop, an optional camera override -- so the
evaluator can extract each (split, crop) once and reuse it everywhere.

Protocols (``PROTOCOLS`` / :func:`build_protocol` names):

* ``market`` -- all-gallery CMC and mAP with Market-1501's rules.
* ``partial-query`` -- partial images (the dataset's query split) as queries, the holistic
  gallery; query camera 0, gallery camera 1 (nothing removed); all-gallery CMC and mAP.
* ``partial-gallery`` -- PPCL Table 3: roles swapped, holistic queries, partial gallery.
* ``single-shot-trials`` -- DSR's 25 trials on Partial-REID (the j-th partial image vs the
  i-th whole image of every identity, 60 x 60 each, CMC averaged), or HPNet's random
  single-gallery-shot with ``repeats`` seeded repeats.
* ``crop-sweep`` -- VPM Table 1: the test queries cropped to area ratio gamma, holistic
  gallery, Market rules; one setting per gamma.
* ``aligned-crop`` -- queries *and* gallery cropped the same way (e.g. both to their top half):
  the aligned test of chapter 03's oracle, which measures how much identity a crop carries
  when nothing is misaligned; Market rules; one setting per gamma.
* ``mixed`` -- PPCL Table 1b: a share of the query images and a share of the gallery
  images are partial crops; Market rules; one setting per (query share, gallery share).

Crops are drawn with :func:`reidlib.data.partial.partial_crop` from a generator seeded by
``(seed, strategy, image index)``: every method sees the same crops, whatever the order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from reidlib.data.partial import STRATEGIES, CropSpec, get_strategy

__all__ = [
    "CropSetting",
    "View",
    "Trial",
    "Setting",
    "Protocol",
    "MarketProtocol",
    "PartialQueryProtocol",
    "PartialGalleryProtocol",
    "SingleShotTrials",
    "CropSweep",
    "AlignedCropProtocol",
    "MixedProtocol",
    "PROTOCOLS",
    "build_protocol",
]


# ---------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CropSetting:
    """A deterministic partial crop of every image of a split.

    strategy: a name in :data:`reidlib.data.partial.STRATEGIES`.
    ratio: a fixed area ratio gamma (replaces the strategy's range; sides and mode kept),
        or None for the strategy's own random ratio.
    seed: with the strategy name and the image index, seeds each image's generator.
    """

    strategy: str
    ratio: float | None = None
    seed: int = 0

    def __post_init__(self):
        get_strategy(self.strategy)  # validates the name
        if self.ratio is not None and not (0.0 < float(self.ratio) <= 1.0):
            raise ValueError(f"CropSetting.ratio={self.ratio!r}: expected an area ratio in (0, 1]")

    def spec(self) -> CropSpec:
        base = get_strategy(self.strategy)
        if self.ratio is None:
            return base
        return CropSpec(ratio=(float(self.ratio), float(self.ratio)), sides=base.sides, mode=base.mode)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of image ``index`` (independent of the ratio: a sweep keeps the drawn sides)."""
        return np.random.default_rng([int(self.seed), zlib.crc32(self.strategy.encode()), int(index)])

    def describe(self) -> str:
        r = f"gamma={self.ratio:g}" if self.ratio is not None else "gamma ~ U[{:g}, {:g}]".format(*get_strategy(self.strategy).ratio)
        return f"{self.strategy} crop, {r}, seed {self.seed}"


@dataclass(frozen=True, eq=False)
class View:
    """Images of one split of the dataset, as a query or gallery set.

    split: ``"query"``, ``"gallery"`` or ``"train"`` (an attribute of the dataset).
    indices: positions in that split (None: all of it, in order).
    crop: crop applied to the images (None: holistic).
    cropped: with ``crop``, a boolean per selected image saying which are cropped
        (None: all of them).
    camid: a camera id given to every image (None: the records' own).
    """

    split: str
    indices: np.ndarray | None = None
    crop: CropSetting | None = None
    cropped: np.ndarray | None = None
    camid: int | None = None


@dataclass
class Trial:
    query: View
    gallery: View


@dataclass
class Setting:
    """One reported result: its label (e.g. ``"gamma=0.5"``; ``""`` for a single setting) and its trials."""

    label: str
    trials: list[Trial]
    params: dict = field(default_factory=dict)


def _split(dataset, name: str) -> list:
    recs = getattr(dataset, name, None)
    if recs is None or not isinstance(recs, (list, tuple)):
        raise ValueError(f"dataset {getattr(dataset, 'name', dataset)!r} has no record list {name!r}; expected .train/.query/.gallery")
    return recs


def _need_images(dataset, name: str, who: str) -> list:
    recs = _split(dataset, name)
    if not recs:
        raise ValueError(f"protocol {who!r}: the {name!r} split of dataset {getattr(dataset, 'name', '?')!r} is empty")
    return recs


class Protocol:
    """Base class: a ``name``, :meth:`describe` and :meth:`settings`."""

    name = "protocol"

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def settings(self, dataset) -> list[Setting]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.name}: {self.describe()}>"


# ---------------------------------------------------------------------------------------
# all-gallery protocols
# ---------------------------------------------------------------------------------------
class MarketProtocol(Protocol):
    """Market-1501's all-gallery evaluation."""

    name = "market"

    def describe(self) -> str:
        return ("all-gallery ranking, dataset query vs gallery; gallery images with the query's pid AND camera are "
                "removed; queries without a true match skipped; CMC + non-interpolated mAP (torchreid)")

    def settings(self, dataset) -> list[Setting]:
        _need_images(dataset, "query", self.name), _need_images(dataset, "gallery", self.name)
        return [Setting("", [Trial(View("query"), View("gallery"))])]


class PartialQueryProtocol(Protocol):
    """Partial images as queries, holistic gallery, no camera filtering."""

    name = "partial-query"

    def describe(self) -> str:
        return ("partial images (the dataset's query split) as queries vs the whole-body gallery; query camera 0, "
                "gallery camera 1 (nothing removed); all-gallery CMC + mAP")

    def settings(self, dataset) -> list[Setting]:
        _need_images(dataset, "query", self.name), _need_images(dataset, "gallery", self.name)
        return [Setting("", [Trial(View("query", camid=0), View("gallery", camid=1))])]


class PartialGalleryProtocol(Protocol):
    """PPCL Table 3: partial images as the gallery, holistic images as queries."""

    name = "partial-gallery"

    def describe(self) -> str:
        return ("roles swapped (PPCL Table 3): whole-body images as queries vs the partial images as the gallery; "
                "query camera 0, gallery camera 1; all-gallery CMC + mAP")

    def settings(self, dataset) -> list[Setting]:
        _need_images(dataset, "query", self.name), _need_images(dataset, "gallery", self.name)
        return [Setting("", [Trial(View("gallery", camid=0), View("query", camid=1))])]


# ---------------------------------------------------------------------------------------
# single-shot trials
# ---------------------------------------------------------------------------------------
def _by_pid(records: Sequence) -> dict[int, list[int]]:
    """pid -> positions in the split, in record order (pid 0 / -1 excluded)."""
    out: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        if r.pid > 0:
            out.setdefault(int(r.pid), []).append(i)
    return out


class SingleShotTrials(Protocol):
    """Single-gallery-shot trials, CMC (and mAP) averaged over trials.

    mode ``"dsr"`` (DSR, He et al. 2018, on Partial-REID): trial ``(i, j)`` uses the j-th
    partial image of every identity as queries and its i-th whole image as the gallery
    (image order = record order); ``5 x 5 = 25`` trials of ``60 x 60`` on Partial-REID.  An
    identity with fewer images sits out the trials it cannot fill.

    mode ``"random"`` (HPNet's random single-gallery-shot): every partial image is a query;
    the gallery holds one whole image per identity drawn at random; ``repeats`` draws from
    ``np.random.default_rng([seed, repeat])``.

    Cameras: query 0, gallery 1 (nothing removed).
    """

    name = "single-shot-trials"

    def __init__(self, mode: str = "dsr", repeats: int = 100, seed: int = 0):
        if mode not in ("dsr", "random"):
            raise ValueError(f"SingleShotTrials mode={mode!r}: accepted modes are 'dsr' and 'random'")
        if not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be a positive int, got {repeats!r}")
        self.mode, self.repeats, self.seed = mode, repeats, int(seed)

    def describe(self) -> str:
        if self.mode == "dsr":
            return ("DSR single-shot trials: trial (i, j) = the j-th partial image vs the i-th whole image of every "
                    "identity (one gallery image per id); CMC and mAP averaged over all (i, j); cameras 0/1")
        return (f"HPNet random single-gallery-shot: all partial queries vs one random whole image per identity, "
                f"{self.repeats} repeats (seed {self.seed}), averaged; cameras 0/1")

    def settings(self, dataset) -> list[Setting]:
        q = _by_pid(_need_images(dataset, "query", self.name))
        g = _by_pid(_need_images(dataset, "gallery", self.name))
        pids = sorted(set(q) & set(g))
        if not pids:
            raise ValueError(f"protocol {self.name!r}: query and gallery of {getattr(dataset, 'name', '?')!r} share no identity")
        trials = []
        if self.mode == "dsr":
            nq = max(len(q[p]) for p in pids)
            ng = max(len(g[p]) for p in pids)
            for i in range(ng):
                for j in range(nq):
                    qi = [q[p][j] for p in pids if len(q[p]) > j and len(g[p]) > i]
                    gi = [g[p][i] for p in pids if len(q[p]) > j and len(g[p]) > i]
                    if qi:
                        trials.append(Trial(View("query", np.asarray(qi), camid=0), View("gallery", np.asarray(gi), camid=1)))
            label = f"{len(trials)} trials"
        else:
            qi = np.asarray([i for p in pids for i in q[p]])
            for r in range(self.repeats):
                rng = np.random.default_rng([self.seed, r])
                gi = np.asarray([g[p][int(rng.integers(len(g[p])))] for p in pids])
                trials.append(Trial(View("query", qi, camid=0), View("gallery", gi, camid=1)))
            label = f"{self.repeats} repeats"
        return [Setting(label, trials, {"mode": self.mode})]


# ---------------------------------------------------------------------------------------
# crop protocols (Market-style test sets)
# ---------------------------------------------------------------------------------------
class CropSweep(Protocol):
    """VPM Table 1: queries cropped to area ratio gamma, holistic gallery, Market rules.

    Args:
        ratios: the gammas (VPM: 0.5, 0.6, ..., 1.0).
        strategy: the crop strategy (its sides/mode; the ratio is fixed per setting), e.g.
            ``"vpm-top"`` (keep the top), ``"vpm-bilateral"`` (top or bottom).
        seed: crop seed (the same crops for every method).
    """

    name = "crop-sweep"

    def __init__(self, ratios: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0), strategy: str = "vpm-top", seed: int = 0):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown crop strategy {strategy!r}: accepted names are {', '.join(map(repr, STRATEGIES))}")
        self.ratios = tuple(float(r) for r in ratios)
        if not self.ratios:
            raise ValueError("crop-sweep needs at least one ratio")
        for r in self.ratios:
            if not 0.0 < r <= 1.0:
                raise ValueError(f"crop-sweep ratio {r!r}: expected area ratios in (0, 1]")
        self.strategy, self.seed = strategy, int(seed)

    def describe(self) -> str:
        sides = "/".join(get_strategy(self.strategy).sides)
        return (f"VPM Table 1 style: every query cropped to area ratio gamma in {{{', '.join(f'{r:g}' for r in self.ratios)}}} "
                f"({self.strategy}: keeps the {sides} side; seed {self.seed}), holistic gallery, Market rules "
                f"(same pid + same camera removed), all-gallery CMC + mAP")

    def settings(self, dataset) -> list[Setting]:
        _need_images(dataset, "query", self.name), _need_images(dataset, "gallery", self.name)
        return [
            Setting(f"gamma={r:g}", [Trial(View("query", crop=CropSetting(self.strategy, r, self.seed)), View("gallery"))],
                    {"gamma": r})
            for r in self.ratios
        ]


class AlignedCropProtocol(CropSweep):
    """Query and gallery images cropped alike (same strategy and gamma), Market rules.

    Not a paper's protocol: with both sides cut to, say, their top half, nothing is misaligned
    and no region is unshared, so a model trained on such crops measures the identity that the
    crop itself carries (chapter 03's aligned oracle).  Args as :class:`CropSweep`.
    """

    name = "aligned-crop"

    def __init__(self, ratios: Sequence[float] = (0.5,), strategy: str = "vpm-top", seed: int = 0):
        super().__init__(ratios, strategy, seed)

    def describe(self) -> str:
        sides = "/".join(get_strategy(self.strategy).sides)
        return (f"aligned crops: query and gallery images both cropped to area ratio gamma in "
                f"{{{', '.join(f'{r:g}' for r in self.ratios)}}} ({self.strategy}: keeps the {sides} side; seed "
                f"{self.seed}), Market rules (same pid + same camera removed), all-gallery CMC + mAP")

    def settings(self, dataset) -> list[Setting]:
        _need_images(dataset, "query", self.name), _need_images(dataset, "gallery", self.name)
        return [
            Setting(f"gamma={r:g}", [Trial(View("query", crop=CropSetting(self.strategy, r, self.seed)),
                                           View("gallery", crop=CropSetting(self.strategy, r, self.seed)))],
                    {"gamma": r, "aligned": True})
            for r in self.ratios
        ]


class MixedProtocol(Protocol):
    """PPCL Table 1b: a share of partial images in the query set and in the gallery.

    For each ``(query_share, gallery_share)`` a seeded random subset of that share of the
    query images and of the gallery images is replaced by partial crops (``strategy``'s
    random ratio, default PPCL's free crop with gamma in [0.2, 0.8]); Market rules otherwise.
    Which images are cropped depends only on ``seed`` and the share.

    Args:
        query_shares, gallery_shares: a share in [0, 1] or a sequence (the grid of both).
    """

    name = "mixed"

    def __init__(self, query_shares: "float | Sequence[float]" = 0.5, gallery_shares: "float | Sequence[float]" = 0.5,
                 strategy: str = "ppcl-free", seed: int = 0):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown crop strategy {strategy!r}: accepted names are {', '.join(map(repr, STRATEGIES))}")

        def shares(v, what):
            v = (v,) if isinstance(v, (int, float)) else tuple(v)
            if not v or any(not 0.0 <= float(s) <= 1.0 for s in v):
                raise ValueError(f"mixed {what}={v!r}: expected shares in [0, 1]")
            return tuple(float(s) for s in v)

        self.query_shares = shares(query_shares, "query_shares")
        self.gallery_shares = shares(gallery_shares, "gallery_shares")
        self.strategy, self.seed = strategy, int(seed)

    def describe(self) -> str:
        lo, hi = get_strategy(self.strategy).ratio
        return (f"PPCL Table 1b style: a share of the query images and of the gallery images replaced by partial crops "
                f"({self.strategy}, gamma ~ U[{lo:g}, {hi:g}], seed {self.seed}); query shares "
                f"{', '.join(f'{s:.0%}' for s in self.query_shares)}, gallery shares "
                f"{', '.join(f'{s:.0%}' for s in self.gallery_shares)}; Market rules, all-gallery CMC + mAP")

    def _pick(self, n: int, share: float, which: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, which, 1_000_003])
        order = rng.permutation(n)  # the same order for every share: larger shares contain smaller ones
        out = np.zeros(n, dtype=bool)
        out[order[: int(round(share * n))]] = True
        return out

    def settings(self, dataset) -> list[Setting]:
        nq = len(_need_images(dataset, "query", self.name))
        ng = len(_need_images(dataset, "gallery", self.name))
        crop = CropSetting(self.strategy, None, self.seed)
        out = []
        for qs in self.query_shares:
            for gs in self.gallery_shares:
                qv = View("query", crop=crop, cropped=self._pick(nq, qs, 0))
                gv = View("gallery", crop=crop, cropped=self._pick(ng, gs, 1))
                out.append(Setting(f"query {qs:.0%} / gallery {gs:.0%} partial", [Trial(qv, gv)],
                                   {"query_share": qs, "gallery_share": gs}))
        return out


PROTOCOLS: dict[str, type] = {
    "market": MarketProtocol,
    "partial-query": PartialQueryProtocol,
    "partial-gallery": PartialGalleryProtocol,
    "single-shot-trials": SingleShotTrials,
    "crop-sweep": CropSweep,
    "aligned-crop": AlignedCropProtocol,
    "mixed": MixedProtocol,
}


def build_protocol(spec: "str | Protocol", **kwargs) -> Protocol:
    """A protocol from its name in :data:`PROTOCOLS` (keyword arguments to its constructor) or itself."""
    if isinstance(spec, Protocol):
        if kwargs:
            raise ValueError(f"build_protocol: keyword arguments {sorted(kwargs)} given with a Protocol object")
        return spec
    if isinstance(spec, str):
        if spec not in PROTOCOLS:
            raise ValueError(f"unknown protocol {spec!r}: accepted names are {', '.join(map(repr, PROTOCOLS))}")
        return PROTOCOLS[spec](**kwargs)
    raise TypeError(f"protocol must be a name or a Protocol, got {spec!r}")
