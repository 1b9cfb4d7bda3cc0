"""Readers for the real re-ID datasets (torchreid convention) and the dataset factory.

Every reader subclasses :class:`reidlib.data.base.ReIDDataset`: ``Market1501(root)``
exposes ``.train``, ``.query`` and ``.gallery`` as lists of
:class:`~reidlib.data.base.Record` ``(path, pid, camid)``.

``root`` is the dataset's own folder, or a folder holding it under one of its usual
names (``Market1501.dirnames``; one level of nesting as in fast-reid's
``market1501/Market-1501-v15.09.15`` is also found).

Rules (reference notes, Sec. 1-2):

* Market-1501, DukeMTMC-reID, Occluded-Duke: file names match ``([-\\d]+)_c(\\d)``;
  pid -1 (Market's "junk" images) is dropped -- the only images a reader skips, with
  non-image files (``Thumbs.db``); pid 0 (distractors) stays in the gallery; cameras
  ``c1..cK`` become camids ``0..K-1``.
* Partial-REID, Partial-iLIDS, Occluded-REID: pid = the leading number of the file name
  (``001_01.jpg``, ``001.jpg``); every query gets camid 0 and every gallery image camid 1
  (nothing is removed from the ranking lists; fast-reid's reading of the image index as a
  camera is a quirk we do not follow).  They have no training split (``train == []``).
* Each split's image and identity counts are compared with a full copy's; a difference
  is a ``warnings.warn`` naming the split, what was found and what was expected.
* Part masks: :func:`reidlib.data.writers.mask_path_for` (the SynthPeds writers' rule): the
  innermost image folder ``F`` of the path (``bounding_box_train``, ``query``,
  ``occluded_body_images``, ...) becomes ``F_masks``, the rest of the path is kept and the
  extension becomes ``.png`` (``query/0001_c1s1_001051_00.jpg`` ->
  ``query_masks/0001_c1s1_001051_00.png``); :meth:`read_mask` returns it when the file
  exists, else None.

Part-mask layout (what HPNet and SANet train on; the papers take them from a human parser, the
book's SynthPeds writers write the true ones).  One mask per image, in the parallel ``_masks``
folder, with the image's stem and the extension ``.png``::

    Market-1501-v15.09.15/
        bounding_box_train/0002_c1s1_000451_03.jpg
        bounding_box_train_masks/0002_c1s1_000451_03.png
        query/...            query_masks/...
        bounding_box_test/...  bounding_box_test_masks/...
    Occluded_REID/
        occluded_body_images/001/001_01.tif
        occluded_body_images_masks/001/001_01.png     (sub-folders kept)

Each mask is a single-channel (mode L or P) PNG of the image's size whose pixels are part labels
(:data:`reidlib.data.base.PART_NAMES`): 0 background, 1 head, 2 upper body, 3 lower body, 4 feet,
255 occluded.  ``reader(root, masks=True)`` (or :meth:`FolderDataset.check_masks`) checks, when
the dataset is read, that every image has its mask, and otherwise raises ``FileNotFoundError``
naming the images without one and the mask file each was expected at (file existence only; a
corrupt mask is named when it is read).  Training datasets that need masks
(:class:`reidlib.data.loader.PartialCropDataset` / ``ImageDataset`` with ``with_mask=True``)
name a missing mask the same way.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np

from reidlib.data.base import ReIDDataset, Record
from reidlib.data.writers import mask_path_for  # the one mask rule, owned by the writers

__all__ = [
    "IMAGE_EXTENSIONS",
    "mask_path_for",
    "read_mask_file",
    "FolderDataset",
    "Market1501",
    "DukeMTMCreID",
    "OccludedDuke",
    "PartialREID",
    "PartialiLIDS",
    "OccludedREID",
    "DATASETS",
    "build_dataset",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MARKET_PATTERN = re.compile(r"([-\d]+)_c(\d)")
LEADING_PID_PATTERN = re.compile(r"^(\d+)")


def read_mask_file(path: str | Path) -> np.ndarray:
    """Read a single-channel PNG part mask as ``(H, W)`` uint8; a corrupt file raises naming it."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            if im.mode not in ("L", "P", "I", "I;16", "1"):
                raise ValueError(f"mask file {p} has mode {im.mode!r}; expected a single-channel (L/P) PNG of part labels")
            return np.asarray(im).astype(np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise OSError(f"cannot decode mask file {p}: {e} (expected a single-channel PNG)") from e


def _list_images(folder: Path, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


class FolderDataset(ReIDDataset):
    """A dataset read from a folder tree (base of the readers below).

    Subclasses set ``dirnames`` (the usual folder names), ``layouts`` (alternative tuples
    of sub-folders that identify the dataset folder) and ``expected`` (``split ->
    (images, ids)`` of a full copy), and implement :meth:`_read`.

    ``masks=True``: every image must have its part mask (the layout is in the module docstring);
    :meth:`check_masks` raises naming each image without one and the mask path it expected.
    """

    dirnames: ClassVar[tuple[str, ...]] = ()
    layouts: ClassVar[tuple[tuple[str, ...], ...]] = ()
    expected: ClassVar[dict[str, tuple[int, int]]] = {}

    def __init__(self, root: str | Path, check_counts: bool = True, masks: bool = False):
        self.root = Path(root).expanduser()
        self.dataset_dir, self.layout = self.resolve_dir(self.root)
        train, query, gallery = self._read(self.dataset_dir, self.layout)
        super().__init__(train, query, gallery)
        if check_counts:
            self.check_counts()
        if masks:
            self.check_masks()

    # -- locating the folder ------------------------------------------------------
    def layout_text(self) -> str:
        return " or ".join("{" + ", ".join(f"{d}/" for d in lay) + "}" for lay in self.layouts)

    def resolve_dir(self, root: Path) -> tuple[Path, tuple[str, ...]]:
        """The dataset folder (``root`` itself or ``root/<usual name>[/<usual name>]``) and its layout."""
        cls = type(self)
        root = Path(root).expanduser()
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(
                f"{cls.__name__}: {str(root)!r} is a file, not a folder; expected the dataset folder "
                f"(holding {self.layout_text()}) or a folder holding it as one of {', '.join(cls.dirnames)}"
            )
        if not root.is_dir():
            raise FileNotFoundError(
                f"{cls.__name__}: folder {str(root)!r} does not exist; expected the dataset folder "
                f"(holding {self.layout_text()}) or a folder holding it as one of {', '.join(cls.dirnames)}"
            )
        candidates = [root] + [root / n for n in cls.dirnames] + [root / a / b for a in cls.dirnames for b in cls.dirnames]
        for c in candidates:
            for lay in self.layouts:
                if all((c / d).is_dir() for d in lay):
                    return c, lay
        raise FileNotFoundError(
            f"{cls.__name__}: no dataset found at {str(root)!r}: expected sub-folders {self.layout_text()} "
            f"there or under {str(root)!r}/<name> with <name> one of {', '.join(cls.dirnames)}"
        )

    # -- reading --------------------------------------------------------------------
    def _read(self, d: Path, layout: tuple[str, ...]) -> tuple[list[Record], list[Record], list[Record]]:  # pragma: no cover
        raise NotImplementedError

    def check_counts(self) -> list[str]:
        """Compare each split with a full copy; warn (and return the messages) on any difference."""
        msgs = []
        for split, (n_img, n_ids) in self.expected.items():
            recs = getattr(self, split)
            found = (len(recs), len({r.pid for r in recs}))
            if found != (n_img, n_ids):
                msgs.append(
                    f"{type(self).__name__} at {self.dataset_dir}: split {split!r} has {found[0]} images / {found[1]} ids, "
                    f"expected {n_img} images / {n_ids} ids for a full copy (incomplete or modified copy?)"
                )
        for m in msgs:
            warnings.warn(m, stacklevel=3)
        return msgs

    def read_mask(self, path: str) -> np.ndarray | None:
        """The part mask at :func:`mask_path_for` ``(path)`` if that file exists, else None."""
        mp = mask_path_for(path)
        return read_mask_file(mp) if mp.is_file() else None

    def mask_path(self, path: str) -> Path:
        """Where the part mask of image ``path`` is expected (:func:`mask_path_for`)."""
        return mask_path_for(path)

    def missing_masks(self, splits: tuple[str, ...] = ("train", "query", "gallery")) -> list[tuple[str, str, Path]]:
        """``(split, image path, expected mask path)`` of every image of ``splits`` without its mask file."""
        out = []
        for split in splits:
            if split not in ("train", "query", "gallery"):
                raise ValueError(f"{type(self).__name__}.missing_masks: unknown split {split!r}; "
                                 f"accepted: 'train', 'query', 'gallery'")
            for rec in getattr(self, split):
                mp = mask_path_for(rec.path)
                if not mp.is_file():
                    out.append((split, rec.path, mp))
        return out

    def check_masks(self, splits: tuple[str, ...] = ("train", "query", "gallery")) -> None:
        """Every image of ``splits`` has its part mask (see the module docstring for the layout);
        otherwise ``FileNotFoundError`` naming the images without one and where each mask was expected."""
        missing = self.missing_masks(tuple(splits))
        if not missing:
            return
        total = sum(len(getattr(self, s)) for s in splits)
        shown = "\n".join(f"    {img} -> expected mask {mp}" for _, img, mp in missing[:5])
        more = f"\n    ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{type(self).__name__} at {self.dataset_dir}: {len(missing)} of {total} images of "
            f"{'/'.join(splits)} have no part mask:\n{shown}{more}\n"
            f"(one single-channel PNG of part labels per image, same stem, in the parallel '<folder>_masks' "
            f"folder: see reidlib.data.datasets)")


# ---------------------------------------------------------------------------------
# Market-1501 style (bounding_box_train / query / bounding_box_test)
# ---------------------------------------------------------------------------------
class _MarketStyle(FolderDataset):
    num_cams: ClassVar[int] = 6
    pattern_text: ClassVar[str] = "<pid>_c<camera>s<seq>_<frame>_<box>.jpg, e.g. 0001_c1s1_000151_00.jpg"
    layouts = (("bounding_box_train", "query", "bounding_box_test"),)

    def _name_error(self, f: Path, why: str) -> ValueError:
        return ValueError(
            f"{type(self).__name__}: cannot parse file name {str(f)!r}: {why}; expected {self.pattern_text} "
            f"(regex {MARKET_PATTERN.pattern}, the pid an integer >= -1)"
        )

    def _parse(self, folder: Path) -> list[Record]:
        out = []
        for f in _list_images(folder):
            m = MARKET_PATTERN.search(f.name)
            if m is None:
                raise self._name_error(f, "no '<pid>_c<camera>' in it")
            try:
                pid = int(m.group(1))
            except ValueError:
                raise self._name_error(f, f"the pid {m.group(1)!r} is not an integer") from None
            cam = int(m.group(2))
            if pid == -1:  # junk images (Market-1501): dropped by convention
                continue
            if pid < 0 or not (1 <= cam <= self.num_cams):
                raise ValueError(
                    f"{type(self).__name__}: file {str(f)!r} has pid {pid} and camera c{cam}; expected pid >= -1 and "
                    f"cameras c1..c{self.num_cams}"
                )
            out.append(Record(str(f), pid, cam - 1))
        return out

    def _read(self, d, layout):
        train_dir, query_dir, gallery_dir = (d / x for x in layout)
        return self._parse(train_dir), self._parse(query_dir), self._parse(gallery_dir)


class Market1501(_MarketStyle):
    """Market-1501 (Zheng et al. 2015): 6 cameras; junk (pid -1) dropped, distractors (pid 0) kept."""

    name = "market1501"
    dirnames = ("Market-1501-v15.09.15", "Market-1501", "market1501", "Market1501")
    num_cams = 6
    expected = {"train": (12936, 751), "query": (3368, 750), "gallery": (15913, 751)}


class DukeMTMCreID(_MarketStyle):
    """DukeMTMC-reID (Zheng et al. 2017): names ``0001_c2_f0046182.jpg``, 8 cameras."""

    name = "dukemtmc-reid"
    dirnames = ("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid", "DukeMTMC", "dukemtmc")
    num_cams = 8
    pattern_text = "<pid>_c<camera>_f<frame>.jpg, e.g. 0001_c2_f0046182.jpg"
    expected = {"train": (16522, 702), "query": (2228, 702), "gallery": (17661, 1110)}


class OccludedDuke(DukeMTMCreID):
    """Occluded-Duke (Miao et al. 2019): DukeMTMC-reID's naming, occluded queries."""

    name = "occluded-duke"
    dirnames = ("Occluded_Duke", "Occluded-Duke", "occluded_duke", "OccludedDuke", "Occluded-DukeMTMC")
    expected = {"train": (15618, 702), "query": (2210, 519), "gallery": (17661, 1110)}


# ---------------------------------------------------------------------------------
# partial / occluded test sets (query camid 0, gallery camid 1, no training split)
# ---------------------------------------------------------------------------------
class _PartialStyle(FolderDataset):
    recursive: ClassVar[bool] = False
    pattern_text: ClassVar[str] = "<pid>_<index>.jpg, e.g. 001_01.jpg"

    def _parse(self, folder: Path, camid: int) -> list[Record]:
        out = []
        for f in _list_images(folder, recursive=self.recursive):
            m = LEADING_PID_PATTERN.match(f.stem)
            if m is None:
                raise ValueError(
                    f"{type(self).__name__}: cannot parse file name {str(f)!r}: expected {self.pattern_text} "
                    f"(the identity is the leading number)"
                )
            out.append(Record(str(f), int(m.group(1)), camid))
        return out

    def _query_gallery_dirs(self, d: Path, layout) -> tuple[Path, Path]:
        return d / layout[0], d / layout[1]

    def _read(self, d, layout):
        q, g = self._query_gallery_dirs(d, layout)
        return [], self._parse(q, 0), self._parse(g, 1)


class PartialREID(_PartialStyle):
    """Partial-REID (Zheng et al. 2015): 60 ids x (5 partial + 5 whole-body), test only.

    Args:
        root: the dataset folder or its parent.
        query: ``"partial"`` -- ``partial_body_images/`` as the query set (DSR, fast-reid,
            the four papers of the book), or ``"occluded"`` -- ``occluded_body_images/``
            (HPNet, PVPM).  The gallery is always ``whole_body_images/``.
    """

    name = "partial-reid"
    dirnames = ("Partial-REID", "Partial_REID", "PartialREID", "partial_reid", "partial-reid", "Partial-REID_Dataset")
    QUERY_DIRS = {"partial": "partial_body_images", "occluded": "occluded_body_images"}
    expected = {"query": (300, 60), "gallery": (300, 60)}

    def __init__(self, root: str | Path, query: str = "partial", check_counts: bool = True, masks: bool = False):
        if query not in self.QUERY_DIRS:
            raise ValueError(f"PartialREID(query={query!r}): accepted values are 'partial' (partial_body_images/) "
                             f"and 'occluded' (occluded_body_images/)")
        self.query_kind = query
        self.layouts = ((self.QUERY_DIRS[query], "whole_body_images"),)
        super().__init__(root, check_counts=check_counts, masks=masks)


class PartialiLIDS(_PartialStyle):
    """Partial-iLIDS (Zheng et al. 2011; He et al. 2018): 119 ids x (1 partial probe + 1 whole).

    Both layouts are read: ``Probe/`` + ``Gallery/`` (DSR's release) and
    ``partial_body_images/`` + ``whole_body_images/``.  The probes keep the upper body.
    """

    name = "partial-ilids"
    dirnames = ("Partial-iLIDS", "Partial_iLIDS", "PartialiLIDS", "partial_ilids", "partial-ilids", "Partial-iLIDS_Dataset")
    layouts = (("Probe", "Gallery"), ("partial_body_images", "whole_body_images"))
    pattern_text = "<pid>.jpg or <pid>_<index>.jpg, e.g. 001.jpg"
    expected = {"query": (119, 119), "gallery": (119, 119)}


class OccludedREID(_PartialStyle):
    """Occluded-REID (Zhuo et al. 2018): 200 ids x (5 occluded + 5 whole), ``<pid>/<pid>_NN.tif``."""

    name = "occluded-reid"
    dirnames = ("Occluded_REID", "OccludedREID", "Occluded-REID", "occluded_reid", "occluded-reid")
    layouts = (("occluded_body_images", "whole_body_images"),)
    recursive = True
    pattern_text = "<pid>/<pid>_<index>.tif, e.g. 001/001_01.tif"
    expected = {"query": (1000, 200), "gallery": (1000, 200)}


# ---------------------------------------------------------------------------------
# factory
# ---------------------------------------------------------------------------------
#: spec name -> reader class (``build_dataset("<name>:<path>")``)
DATASETS: dict[str, type[FolderDataset]] = {
    "market1501": Market1501,
    "dukemtmc-reid": DukeMTMCreID,
    "occluded-duke": OccludedDuke,
    "partial-reid": PartialREID,
    "partial-ilids": PartialiLIDS,
    "occluded-reid": OccludedREID,
}
_ALIASES = {
    "market": "market1501", "market-1501": "market1501",
    "duke": "dukemtmc-reid", "dukemtmcreid": "dukemtmc-reid", "dukemtmc": "dukemtmc-reid",
    "occluded_duke": "occluded-duke", "occludedduke": "occluded-duke",
    "partial_reid": "partial-reid", "partialreid": "partial-reid",
    "partial_ilids": "partial-ilids", "partialilids": "partial-ilids",
    "occluded_reid": "occluded-reid", "occludedreid": "occluded-reid",
}


def build_dataset(spec: str, root: str | Path | None = None, **kwargs) -> ReIDDataset:
    """A dataset from a spec string.

    * ``"synthpeds:<preset>[@HxW]"`` -- ``reidlib.data.synthpeds.SynthPeds(preset, size=HxW, **kwargs)``
      (e.g. ``"synthpeds:smoke"``, ``"synthpeds:partial-reid-like"``, ``"synthpeds:market@128x64"``);
    * ``"<name>:<path>"`` -- a real dataset, ``<name>`` one of :data:`DATASETS`
      (``"market1501:/data/Market-1501-v15.09.15"``, ``"partial-reid:/data"``); or
      ``"<name>"`` with ``root=`` given.

    Extra keyword arguments go to the class (``query="occluded"`` for Partial-REID,
    ``seed=`` for SynthPeds).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"dataset spec {spec!r}: expected 'synthpeds:<preset>' or '<name>:<path>' with <name> one of {', '.join(DATASETS)}")
    name, _, arg = spec.partition(":")
    key = name.strip().lower()
    if key == "synthpeds":
        if not arg:
            raise ValueError(f"dataset spec {spec!r}: expected 'synthpeds:<preset>', e.g. 'synthpeds:smoke'")
        from reidlib.data.synthpeds import SynthPeds  # lazy: written concurrently, heavier import

        preset, _, size = arg.partition("@")  # "market@128x64": a preset at another size
        if size:
            kwargs.setdefault("size", size)
        return SynthPeds(preset, **kwargs)
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(
            f"dataset spec {spec!r}: unknown dataset {name!r}; accepted names are 'synthpeds', {', '.join(map(repr, DATASETS))}"
        )
    path = arg or root
    if not path:
        raise ValueError(f"dataset spec {spec!r}: no folder given; use '{key}:<path>' or build_dataset({key!r}, root=<path>)")
    return DATASETS[key](path, **kwargs)
