"""SynthPeds: the procedural pedestrian benchmark embedded in reidlib (the book's default data).

Real re-ID datasets cannot be downloaded here, so the book runs on SynthPeds: rendered
pedestrians with ground-truth identities, cameras, person boxes and pixel part masks.

>>> from reidlib.data.synthpeds import SynthPeds
>>> ds = SynthPeds("smoke", seed=0)                        # 128x64, 100 training ids
>>> path, pid, camid = ds.train[0]                         # path = "synthpeds://smoke/s0/v1/train/0"
>>> img, mask = ds.read_image(path), ds.read_mask(path)    # rendered on the fly: RGB uint8, part labels
>>> part = SynthPeds("partial-reid-like", size="smoke")    # partial test set, 128x64 holistic frames
>>> gt = part.ground_truth("query", 0)                     # crop_box, holistic_index, person_box, ...

Presets (:data:`PRESETS`; ``size=None`` keeps the preset's own size, ``"smoke"`` = 128x64,
``"market"`` = 256x128, or ``"HxW"`` / ``(H, W)``):

================== ========== ===================================================================
preset             size       splits
================== ========== ===================================================================
tiny               128x64     8 train ids x 4; 8 test ids: 12 queries, 32 + 4 distractors (tests)
smoke              128x64     100 train ids, 1,200 images; 100 test ids: 150 queries, 600 + 60
                              distractors (gallery from the other cameras)
market             256x128    Market-1501: train 12,936 / 751 ids; query 3,368 / 750;
                              gallery 15,913 incl. 2,793 distractors (pid 0); 6 cameras; 160 junk
partial-reid-like  256x128    60 ids x (5 partial crops, camid 0 + 5 whole, camid 1); crops keep
                              30-80 % of the person box from a random side, native size
partial-ilids-like 256x128    119 ids x (1 upper-body crop, 50-80 % kept + 1 whole)
occluded-reid-like 256x128    200 ids x (5 occluded, camid 0 + 5 whole, camid 1)
================== ========== ===================================================================

Identities: pid = identity-table index + 1, one table per seed shared by all presets
(:data:`ID_SLICES`): training pids 1..751 (smoke/tiny: a prefix), test pids 752..1501,
then the partial / occluded sets -- disjoint from each other and from every Market-like id.
Distractors have pid 0, junk (bad detections, :attr:`SynthPeds.junk`, not in the gallery) -1.

Ground truth: :meth:`SynthPeds.ground_truth` (``(split, index)`` or a URI) gives pid, camid,
the person box ``(x0, y0, x1, y1)``, viewpoint, occluder kind and occluded fraction, visible
parts, the identity's attributes and, for partial queries, the crop box in the holistic
image, the kept side and ratio and the holistic image (``query_holistic`` split, same index).
:meth:`SynthPeds.render` returns ``{"image", "mask", "info"}`` uncached.  Masks use the part
labels of :mod:`reidlib.data.base` (0 background, 1 head, 2 upper, 3 lower, 4 feet, 255
occluded person pixels).

Determinism: an image is a pure function of ``(preset, seed, split, index, version)``
(per-image generator :meth:`SynthPeds.rng`), so loader workers render in any order.
:data:`SYNTHPEDS_VERSION` changes whenever the output does; the difficulty knobs live in
:data:`CALIBRATION` (:mod:`.calibration`).  On disk: :mod:`reidlib.data.writers` and
``python -m reidlib synth``.

Modules: :mod:`.calibration` (version and the difficulty knobs), :mod:`.identity`
(region prototypes, identity table), :mod:`.render` (the renderer and cameras),
:mod:`.dataset` (presets, layouts, :class:`SynthPeds`).
"""

from .calibration import CALIBRATION, SYNTHPEDS_VERSION, Calibration
from .dataset import (
    ID_SLICES, NUM_CAMERAS, PRESETS, PRETRAIN_SEED, SIZES, SPLITS, Preset, SynthPeds, dataset_for_uri, read_uri,
    read_uri_mask,
)
from .identity import REGIONS

__all__ = [
    "SynthPeds", "PRESETS", "PRETRAIN_SEED", "Preset", "SIZES", "SPLITS", "NUM_CAMERAS", "ID_SLICES", "REGIONS",
    "SYNTHPEDS_VERSION", "CALIBRATION", "Calibration", "read_uri", "read_uri_mask", "dataset_for_uri",
]
