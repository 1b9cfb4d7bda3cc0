"""SynthPeds: the procedural pedestrian benchmark embedded in reidlib (the book's default data).

>>> from reidlib.data.synthpeds import SynthPeds
>>> ds = SynthPeds("smoke", seed=0)                        # 128x64, 100 training ids
>>> img = ds.read_image(ds.train[0].path)                  # rendered on the fly, RGB uint8
>>> part = SynthPeds("partial-reid-like", size="smoke")    # partial test set, 128x64 holistic frames

Modules: :mod:`.calibration` (version and the difficulty knobs), :mod:`.identity`
(region prototypes, identity table), :mod:`.render` (the renderer and cameras),
:mod:`.dataset` (presets, layouts, :class:`SynthPeds`).
"""

from .calibration import CALIBRATION, SYNTHPEDS_VERSION, Calibration
from .dataset import (
    ID_SLICES, NUM_CAMERAS, PRESETS, SIZES, SPLITS, Preset, SynthPeds, dataset_for_uri, read_uri, read_uri_mask,
)
from .identity import REGIONS

__all__ = [
    "SynthPeds", "PRESETS", "Preset", "SIZES", "SPLITS", "NUM_CAMERAS", "ID_SLICES", "REGIONS",
    "SYNTHPEDS_VERSION", "CALIBRATION", "Calibration", "read_uri", "read_uri_mask", "dataset_for_uri",
]
