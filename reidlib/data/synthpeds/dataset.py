"""SynthPeds presets, split layouts and the :class:`SynthPeds` dataset."""

from __future__ import annotations

import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Union

import numpy as np

from ..base import Record, ReIDDataset
from .calibration import CALIBRATION, SYNTHPEDS_VERSION
from .identity import IdentitySpace, identity_space
from .render import Renderer, make_cameras

# ---------------------------------------------------------------------------------
# the identity table: one sequence per seed, presets take disjoint slices of it
# ---------------------------------------------------------------------------------
#: (offset, count) of identity-table slices; pid = table index + 1.
ID_SLICES = {
    "market-train": (0, 751),         # smoke / tiny training ids are a prefix of it
    "market-test": (751, 750),        # smoke / tiny test ids are a prefix of it
    "partial-reid-like": (1501, 60),
    "partial-ilids-like": (1561, 119),
    "occluded-reid-like": (1680, 200),
    "distractors": (1880, 400),       # identities of distractor / junk images (pid 0 / -1)
}
N_TABLE = 2280
NUM_CAMERAS = 6

#: named output sizes (H, W)
SIZES = {"smoke": (128, 64), "market": (256, 128)}

SPLITS = ("train", "query", "gallery", "junk", "query_holistic")
_SPLIT_CODE = {"train": 1, "query": 2, "gallery": 3, "junk": 4, "query_holistic": 2}  # a partial query is a crop of its holistic source

_MODE_CODES = ("normal", "distractor", "junk", "occluded", "source", "whole")


@dataclass(frozen=True)
class Preset:
    """A SynthPeds benchmark's shape.  ``kind``: ``market`` (train/query/gallery with
    distractors), ``partial`` (partial-crop queries, whole-body gallery) or ``occluded``."""

    name: str
    kind: str
    size: tuple[int, int]
    description: str
    train_ids: tuple[int, int] = (0, 0)
    test_ids: tuple[int, int] = (0, 0)
    n_train: int = 0
    n_query: int = 0
    n_gallery: int = 0  # including distractors
    n_distractors: int = 0
    n_junk: int = 0
    query_per_id: tuple[int, int] = (1, 6)
    gallery_other_cams: bool = False  # gallery avoids the id's query cameras (smoke)
    per_id: tuple[int, int] = (0, 0)  # partial/occluded: (queries, gallery) per id
    crop: str | None = None  # partial: crop strategy name in reidlib.data.partial.STRATEGIES
    seed: int | None = None  # a population of its own: this seed only (the pretraining preset)


#: The seed of the pretraining population (``"pretrain"``): no other preset may use it, so the
#: pretrained backbone has seen no identity of any evaluation set, whatever its seed.
PRETRAIN_SEED = 1_000_003


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("tiny", "market", SIZES["smoke"], "a few ids for unit tests",
           train_ids=(0, 8), test_ids=(751, 8), n_train=32, n_query=12, n_gallery=36, n_distractors=4, n_junk=2,
           query_per_id=(1, 2), gallery_other_cams=True),
    Preset("smoke", "market", SIZES["smoke"], "CI-sized Market-like benchmark: 100 training ids",
           train_ids=(0, 100), test_ids=(751, 100), n_train=1200, n_query=150, n_gallery=660, n_distractors=60,
           n_junk=8, query_per_id=(1, 2), gallery_other_cams=True),
    Preset("market", "market", SIZES["market"], "Market-1501's shape and size",
           train_ids=(0, 751), test_ids=(751, 750), n_train=12936, n_query=3368, n_gallery=15913,
           n_distractors=2793, n_junk=160, query_per_id=(1, 6)),
    Preset("partial-reid-like", "partial", SIZES["market"], "Partial-REID-like: 60 ids x (5 partial + 5 whole)",
           test_ids=ID_SLICES["partial-reid-like"], per_id=(5, 5), crop="partial-reid-like"),
    Preset("partial-ilids-like", "partial", SIZES["market"], "Partial-iLIDS-like: 119 ids x (1 upper-body probe + 1 whole)",
           test_ids=ID_SLICES["partial-ilids-like"], per_id=(1, 1), crop="partial-ilids-like"),
    Preset("occluded-reid-like", "occluded", SIZES["market"], "Occluded-REID-like: 200 ids x (5 occluded + 5 whole)",
           test_ids=ID_SLICES["occluded-reid-like"], per_id=(5, 5)),
    Preset("pretrain", "market", SIZES["smoke"],
           "the pretraining population (the offline stand-in for ImageNet): 751 ids of its own seed, 128x64",
           train_ids=(0, 751), test_ids=(751, 100), n_train=12016, n_query=150, n_gallery=660, n_distractors=60,
           n_junk=8, query_per_id=(1, 2), gallery_other_cams=True, seed=PRETRAIN_SEED),
)}

URI_RE = re.compile(r"^synthpeds://(?P<token>[a-z0-9-]+(?:@\d+x\d+)?)/s(?P<seed>\d+)/v(?P<version>\d+)/(?P<split>[a-z_]+)/(?P<index>\d+)$")


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown SynthPeds preset {name!r}; accepted presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def _resolve_size(preset: Preset, size) -> tuple[int, int]:
    if size is None:
        return preset.size
    if isinstance(size, str):
        if size in SIZES:
            return SIZES[size]
        m = re.fullmatch(r"(\d+)x(\d+)", size)
        if m:
            size = (int(m.group(1)), int(m.group(2)))
        else:
            raise ValueError(f"size={size!r}: expected one of {', '.join(map(repr, SIZES))}, 'HxW' or a (H, W) tuple")
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size={size!r}: expected one of {', '.join(map(repr, SIZES))}, 'HxW' or a (H, W) tuple") from None
    if h < 32 or w < 16 or h % 2 or w % 2:
        raise ValueError(f"size={size!r}: expected (H, W) with H >= 32, W >= 16, both even")
    return (h, w)


def _allocate(total: int, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, what: str) -> np.ndarray:
    """Random integer counts with ``lo <= c <= hi`` and ``sum(c) == total``."""
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    if not (lo.sum() <= total <= hi.sum()):
        raise ValueError(f"cannot lay out {what}: {total} images do not fit per-id bounds summing to [{lo.sum()}, {hi.sum()}]")
    c = lo.copy()
    w = rng.gamma(2.0, 1.0, size=len(c))
    while c.sum() < total:
        room = hi - c
        p = np.where(room > 0, w, 0.0)
        add = rng.multinomial(total - c.sum(), p / p.sum())
        c += np.minimum(add, room)
    return c


@dataclass
class _Split:
    ident: np.ndarray  # identity-table index
    pid: np.ndarray
    camid: np.ndarray  # the record camid
    cam: np.ndarray  # the camera model that renders it
    mode: np.ndarray  # index into _MODE_CODES

    @staticmethod
    def build(rows: list[tuple[int, int, int, int, str]]) -> "_Split":
        if not rows:
            z = np.zeros(0, dtype=np.int64)
            return _Split(z, z, z, z, z)
        a = np.array([(i, p, c, m, _MODE_CODES.index(mo)) for i, p, c, m, mo in rows], dtype=np.int64)
        return _Split(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4])

    def __len__(self) -> int:
        return len(self.pid)


def _layout_market(p: Preset, rng: np.random.Generator) -> dict[str, _Split]:
    cams_all = np.arange(NUM_CAMERAS)
    out: dict[str, _Split] = {}
    # training: each id seen by 2..6 cameras, at least one image per camera
    off, n = p.train_ids
    kmax = max(1, min(NUM_CAMERAS, p.n_train // max(1, n)))
    k = np.minimum(rng.choice([2, 3, 4, 5, 6], size=n, p=[0.1, 0.2, 0.25, 0.25, 0.2]), kmax)
    lo = np.maximum(k, min(4, p.n_train // max(1, n)))  # >= 4 images per id where the budget allows (PK sampling)
    counts = _allocate(p.n_train, lo, np.full(n, 10 * max(1, p.n_train // max(1, n))), rng, f"{p.name} train")
    rows = []
    for i in range(n):
        cams = np.sort(rng.choice(cams_all, k[i], replace=False))
        cc = np.concatenate([cams, rng.choice(cams, counts[i] - k[i])]) if counts[i] > k[i] else cams[: counts[i]]
        for c in np.sort(cc):
            rows.append((off + i, off + i + 1, int(c), int(c), "normal"))
    out["train"] = _Split.build(rows)
    # test: queries from distinct cameras of the id; gallery over the id's cameras
    off, n = p.test_ids
    n_real = p.n_gallery - p.n_distractors
    qlo, qhi = p.query_per_id
    kmin = qhi + 1 if p.gallery_other_cams else 2
    kmax = max(kmin, min(NUM_CAMERAS, n_real // max(1, n) + (qhi if p.gallery_other_cams else 0)))
    k = np.clip(rng.choice([2, 3, 4, 5, 6], size=n, p=[0.05, 0.1, 0.2, 0.3, 0.35]), kmin, kmax)
    q = _allocate(p.n_query, np.full(n, qlo), np.minimum(qhi, k - (1 if p.gallery_other_cams else 0)), rng, f"{p.name} query")
    gcams_list, qrows = [], []
    for i in range(n):
        cams = rng.choice(cams_all, k[i], replace=False)
        qc = np.sort(cams[: q[i]])
        gcams_list.append(np.sort(cams[q[i]:]) if p.gallery_other_cams else np.sort(cams))
        for c in qc:
            qrows.append((off + i, off + i + 1, int(c), int(c), "normal"))
    glo = np.array([len(g) for g in gcams_list])
    g = _allocate(n_real, glo, np.full(n, 20 * max(1, n_real // max(1, n))), rng, f"{p.name} gallery")
    doff, dn = ID_SLICES["distractors"]
    grows = []
    for _ in range(p.n_distractors):
        c = int(rng.integers(NUM_CAMERAS))
        grows.append((doff + int(rng.integers(dn)), 0, c, c, "distractor"))
    for i in range(n):
        gc = gcams_list[i]
        cc = np.concatenate([gc, rng.choice(gc, g[i] - len(gc))]) if g[i] > len(gc) else gc
        for c in np.sort(cc):
            grows.append((off + i, off + i + 1, int(c), int(c), "normal"))
    out["query"] = _Split.build(qrows)
    out["gallery"] = _Split.build(grows)
    jrows = []
    for _ in range(p.n_junk):
        c = int(rng.integers(NUM_CAMERAS))
        jrows.append((doff + int(rng.integers(dn)), -1, c, c, "junk"))
    out["junk"] = _Split.build(jrows)
    return out


def _layout_partial(p: Preset, rng: np.random.Generator) -> dict[str, _Split]:
    off, n = p.test_ids
    nq, ng = p.per_id
    qmode = "source" if p.kind == "partial" else "occluded"
    qrows, grows = [], []
    for i in range(n):
        for _ in range(nq):  # query camid 0, gallery camid 1 (as the real readers do); rendered by varied cameras
            qrows.append((off + i, off + i + 1, 0, 2 * int(rng.integers(3)), qmode))
        for _ in range(ng):
            grows.append((off + i, off + i + 1, 1, 1 + 2 * int(rng.integers(3)), "whole"))
    return {"train": _Split.build([]), "query": _Split.build(qrows), "gallery": _Split.build(grows),
            "junk": _Split.build([])}


Index = Union[int, np.integer]


class SynthPeds(ReIDDataset):
    """SynthPeds: a procedural pedestrian benchmark with ground-truth identities, cameras and part masks.

    Args:
        preset: one of :data:`PRESETS` -- ``"tiny"`` (unit tests), ``"smoke"`` (100 training
            ids, 128x64), ``"market"`` (Market-1501's shape and size, 256x128),
            ``"partial-reid-like"``, ``"partial-ilids-like"``, ``"occluded-reid-like"``.
        seed: the benchmark seed (identities, cameras, layout, every image); default 0.  The
            ``"pretrain"`` preset has its own seed (:data:`PRETRAIN_SEED`), which no other preset
            may use: the pretrained backbone never sees an evaluation identity.
        size: output size: ``None`` (the preset's own), ``"smoke"`` (128x64), ``"market"``
            (256x128), ``"HxW"`` or ``(H, W)``.  E.g. ``SynthPeds("partial-reid-like", size="smoke")``
            gives the partial test set at the smoke size.  Partial crops keep their native size.
        version: must equal :data:`SYNTHPEDS_VERSION` (older versions are not kept).
        cache_mb: memory budget (MiB) of the LRU cache of rendered images (64 MiB holds the
            whole smoke training set at 128x64); 0 disables it.

    ``train`` / ``query`` / ``gallery`` are lists of :class:`Record` whose ``path`` is a URI
    ``synthpeds://<preset>[@HxW]/s<seed>/v<version>/<split>/<index>``; :meth:`read_image`
    and :meth:`read_mask` render from it.  pids: the identity-table index + 1 (training
    pids 1..N; test and partial pids are disjoint from them), distractors 0, junk -1;
    camids 0..5 (partial/occluded sets: query 0, gallery 1).  ``junk`` (pid -1, bad
    detections, written by the Market-1501 writer) is not part of ``gallery``.
    """

    name = "synthpeds"

    def __init__(self, preset: str = "smoke", seed: int | None = None, size=None, version: int = SYNTHPEDS_VERSION,
                 cache_mb: float = 64.0):
        self.preset = _preset(preset)
        fixed = self.preset.seed
        if seed is None:
            seed = fixed if fixed is not None else 0
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed={seed!r}: expected a non-negative int")
        if fixed is not None and seed != fixed:
            raise ValueError(f"SynthPeds preset {preset!r} is a population of its own: its seed is {fixed}, got seed={seed}")
        if fixed is None and seed == PRETRAIN_SEED:
            raise ValueError(f"seed={seed} is reserved for the pretraining population (preset 'pretrain'); "
                             f"choose another seed for {preset!r}")
        if version != SYNTHPEDS_VERSION:
            raise ValueError(f"SynthPeds version {version!r} is not available: this reidlib renders version {SYNTHPEDS_VERSION} only")
        self.seed = int(seed)
        self.version = SYNTHPEDS_VERSION
        self.size = _resolve_size(self.preset, size)
        self.token = self.preset.name if self.size == self.preset.size else f"{self.preset.name}@{self.size[0]}x{self.size[1]}"
        self.name = f"synthpeds-{self.token}"
        self._code = zlib.crc32(self.preset.name.encode())
        self.identities: IdentitySpace = identity_space(self.seed, N_TABLE)
        self.cameras = make_cameras(self.seed, NUM_CAMERAS)
        self.renderer = Renderer(self.seed, self.size, self.identities, self.cameras)
        lrng = np.random.default_rng([self.seed, 7010, self._code, SYNTHPEDS_VERSION])
        self._splits = (_layout_market if self.preset.kind == "market" else _layout_partial)(self.preset, lrng)
        self._splits["query_holistic"] = self._splits["query"] if self.preset.kind == "partial" else _Split.build([])
        self._cache: OrderedDict = OrderedDict()
        self._cache_bytes = 0
        self.cache_mb = float(cache_mb)
        super().__init__(self.records("train"), self.records("query"), self.records("gallery"))
        self.junk = self.records("junk")

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_cache"] = OrderedDict()
        d["_cache_bytes"] = 0
        return d

    # -- records and URIs --------------------------------------------------------
    def uri(self, split: str, index: Index) -> str:
        return f"synthpeds://{self.token}/s{self.seed}/v{self.version}/{split}/{int(index)}"

    def records(self, split: str) -> list[Record]:
        s = self._split(split)
        return [Record(self.uri(split, i), int(s.pid[i]), int(s.camid[i])) for i in range(len(s))]

    def num_images(self, split: str) -> int:
        return len(self._split(split))

    def _split(self, split: str) -> _Split:
        if split not in SPLITS:
            raise ValueError(f"unknown SynthPeds split {split!r}; accepted: {', '.join(SPLITS)}")
        return self._splits[split]

    def locate(self, path: str) -> tuple[str, int]:
        """``(split, index)`` of a URI of this dataset; a bad or foreign URI raises naming it."""
        m = URI_RE.match(str(path))
        if not m:
            raise ValueError(f"not a SynthPeds URI: {path!r}; expected synthpeds://<preset>[@HxW]/s<seed>/v<version>/<split>/<index>")
        if (m["token"], int(m["seed"]), int(m["version"])) != (self.token, self.seed, self.version):
            raise ValueError(f"URI {path!r} belongs to another SynthPeds dataset than {self.uri('<split>', 0).rsplit('/', 2)[0]!r}; "
                             f"use reidlib.data.synthpeds.read_uri() for any URI")
        split, index = m["split"], int(m["index"])
        self._check(split, index, path)
        return split, index

    def _check(self, split: str, index: Index, what=None) -> None:
        n = len(self._split(split))
        if not (0 <= int(index) < n):
            raise IndexError(f"{what or split}: index {int(index)} is out of range for split {split!r} of {self.token} ({n} images)")

    # -- rendering ---------------------------------------------------------------
    def rng(self, split: str, index: Index) -> np.random.Generator:
        """The per-image generator: a pure function of (seed, preset, split, index, version)."""
        return np.random.default_rng([self.seed, _SPLIT_CODE[split], int(index), SYNTHPEDS_VERSION, self._code])

    def attributes(self, ident: int) -> dict:
        """The attribute dict of identity-table row ``ident`` (pid - 1 for real identities)."""
        return self.identities.attributes(self.identities.table[int(ident)])

    def render(self, split: str, index: Index, clean: bool = False, layers: bool = False) -> dict:
        """Render image ``index`` of ``split`` (uncached): ``{"image", "mask", "info"}``.

        For a partial preset, ``query`` items are crops (native size, via
        :func:`reidlib.data.partial.partial_crop`) of the ``query_holistic`` item with the same
        index.  ``clean=True`` skips the camera degradations and ``layers=True`` adds the
        background layer (tests; see :meth:`Renderer.render`)."""
        self._check(split, index)
        s = self._splits[split]
        i = int(index)
        mode = _MODE_CODES[int(s.mode[i])]
        spec = None
        if mode == "source":
            from ..partial import get_strategy

            spec = get_strategy(self.preset.crop)
        r_mode = "normal" if mode == "whole" else mode  # whole-body images: no occluder
        out = self.renderer.render(self.rng(split, i), self.attributes(s.ident[i]), int(s.cam[i]),
                                   mode=r_mode, crop_spec=spec, clean=clean, allow_occluder=(mode != "whole"),
                                   layers=layers)
        info = out["info"]
        info.update(pid=int(s.pid[i]), camid=int(s.camid[i]), split=split, index=i, uri=self.uri(split, i), mode=mode)
        if mode == "source" and split == "query":
            from ..partial import partial_crop

            pb, cb = info["person_box"], info["crop_box"]
            pc = partial_crop(out["image"], out["mask"], box=pb,
                              crop_box=(cb[0] - pb[0], cb[1] - pb[1], cb[2] - pb[0], cb[3] - pb[1]))
            n_person = int(np.count_nonzero(pc.mask))
            info.update(
                holistic_occluded_fraction=info["occluded_fraction"],
                occluded_fraction=int(np.count_nonzero(pc.mask == 255)) / max(1, n_person),
                holistic_split="query_holistic", holistic_index=i, holistic_uri=self.uri("query_holistic", i),
                holistic_size=tuple(out["image"].shape[:2]), crop_ratio=float(pc.ratio),
                scale_translation=tuple(float(v) for v in pc.scale_translation),
            )
            out = {"image": np.ascontiguousarray(pc.image), "mask": np.ascontiguousarray(pc.mask), "info": info}
        m = out["mask"]
        info["visible_parts"] = sorted(int(v) for v in np.unique(m) if 0 < v < 255)
        return out

    def sample(self, split: str, index: Index) -> dict:
        """Like :meth:`render`, through the LRU cache (do not modify the returned arrays)."""
        key = (split, int(index))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        out = self.render(split, index)
        nbytes = out["image"].nbytes + out["mask"].nbytes
        budget = self.cache_mb * 2**20
        if nbytes <= budget:
            self._cache[key] = out
            self._cache_bytes += nbytes
            while self._cache_bytes > budget:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old["image"].nbytes + old["mask"].nbytes
        return out

    def read_image(self, path: str) -> np.ndarray:
        """Render the image of a URI: RGB uint8 ``(H, W, 3)`` (a fresh copy, free to modify)."""
        return self.sample(*self.locate(path))["image"].copy()

    def read_mask(self, path: str) -> np.ndarray:
        """The part mask of a URI: uint8 ``(H, W)``, labels of :data:`reidlib.data.base.PART_NAMES`, 255 = occluded."""
        return self.sample(*self.locate(path))["mask"].copy()

    def ground_truth(self, split_or_path: str, index: Index | None = None) -> dict:
        """Everything known about one image: pid, camid, uri, identity attributes, viewpoint,
        person box ``(x0, y0, x1, y1)`` (x1/y1 exclusive), occluder kind and occluded fraction,
        visible parts; for partial queries also ``crop_box`` (in the holistic image),
        ``crop_side`` (the kept side), ``crop_ratio``, ``holistic_split`` / ``holistic_index`` /
        ``holistic_uri`` and ``holistic_size``.  Call as ``ground_truth(split, index)`` or
        ``ground_truth(uri)``."""
        if index is None:
            split, index = self.locate(split_or_path)
        else:
            split = split_or_path
        out = self.sample(split, index)
        s = self._splits[split]
        gt = dict(out["info"])
        gt["identity"] = int(s.ident[int(index)])
        gt["attributes"] = self.attributes(s.ident[int(index)])
        gt["size"] = tuple(out["image"].shape[:2])
        return gt

    def describe(self) -> dict:
        """The manifest: preset, seed, version, size, counts."""
        return {
            "preset": self.preset.name, "seed": self.seed, "version": self.version, "size": list(self.size),
            "kind": self.preset.kind, "description": self.preset.description,
            "counts": {s: {"images": self.num_images(s), "ids": len({int(p) for p in self._splits[s].pid if p > 0})}
                       for s in ("train", "query", "gallery", "junk")},
            "distractors": int(np.count_nonzero(self._splits["gallery"].pid == 0)),
            "cameras": [c.as_dict() for c in self.cameras],
            "calibration": CALIBRATION.as_dict(),
        }


_URI_CACHE: OrderedDict = OrderedDict()


def dataset_for_uri(uri: str) -> SynthPeds:
    """The (cached) :class:`SynthPeds` a URI belongs to."""
    m = URI_RE.match(str(uri))
    if not m:
        raise ValueError(f"not a SynthPeds URI: {uri!r}; expected synthpeds://<preset>[@HxW]/s<seed>/v<version>/<split>/<index>")
    key = (m["token"], int(m["seed"]), int(m["version"]))
    if key not in _URI_CACHE:
        name, _, size = m["token"].partition("@")
        _URI_CACHE[key] = SynthPeds(name, seed=key[1], size=size or None, version=key[2])
        while len(_URI_CACHE) > 8:
            _URI_CACHE.popitem(last=False)
    return _URI_CACHE[key]


def read_uri(uri: str) -> np.ndarray:
    """Render the image of any SynthPeds URI (RGB uint8)."""
    return dataset_for_uri(uri).read_image(uri)


def read_uri_mask(uri: str) -> np.ndarray:
    """The part mask of any SynthPeds URI."""
    return dataset_for_uri(uri).read_mask(uri)
