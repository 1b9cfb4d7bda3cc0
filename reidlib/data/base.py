"""The common dataset interface (torchreid convention).

Every dataset -- a real reader or SynthPeds -- exposes ``.train``, ``.query`` and
``.gallery`` as lists of :class:`Record`, which unpack as ``(path, pid, camid)``,
and knows how to read an image (and, when it has them, its part masks).

``path`` is a file path for datasets on disk; for SynthPeds rendered on the fly it
is a URI ``synthpeds://<preset>/s<seed>/v<version>/<split>/<index>`` so that any
worker can render the image from the record alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

# Part labels of the pixel masks (SANet's parts).  Occluded pixels carry OCCLUDED.
PART_NAMES = ("background", "head", "upper", "lower", "feet")
BACKGROUND, HEAD, UPPER, LOWER, FEET = range(5)
OCCLUDED = 255


class Record(NamedTuple):
    """One image: ``path, pid, camid = record``."""

    path: str
    pid: int
    camid: int


class ReIDDataset:
    """Base class: subclasses fill ``train``, ``query``, ``gallery`` in ``__init__``."""

    name: str = "dataset"

    def __init__(self, train: list[Record], query: list[Record], gallery: list[Record]):
        self.train = list(train)
        self.query = list(query)
        self.gallery = list(gallery)

    # -- statistics (torchreid names) --------------------------------------
    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({r.camid for r in self.train})

    def relabel_train(self) -> dict[int, int]:
        """Map training pids to 0..N-1 (for the classifiers), sorted by pid."""
        return {pid: i for i, pid in enumerate(sorted({r.pid for r in self.train}))}

    # -- reading -------------------------------------------------------------
    def read_image(self, path: str) -> np.ndarray:
        """RGB uint8 array ``(H, W, 3)``.  A corrupt file raises naming the file."""
        return read_image_file(path)

    def read_mask(self, path: str) -> np.ndarray | None:
        """Part mask ``(H, W)`` uint8 with labels :data:`PART_NAMES` (255 = occluded), or None."""
        return None

    def summary(self) -> str:
        def line(name, recs):
            return f"  {name:<8s}| {len({r.pid for r in recs}):5d} ids | {len(recs):6d} images | {len({r.camid for r in recs}):3d} cameras"

        return "\n".join([f"{self.name}", line("train", self.train), line("query", self.query), line("gallery", self.gallery)])

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return self.summary()


def read_image_file(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8; a missing or corrupt file raises naming the file."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise OSError(f"cannot decode image file {p}: {e} (expected a readable JPEG/PNG/TIFF)") from e
