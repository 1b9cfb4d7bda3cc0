"""reidlib.data: datasets (real readers and SynthPeds), partial crops, samplers, transforms, loaders.

>>> from reidlib.data import build_dataset, partial_crop, STRATEGIES
>>> ds = build_dataset("synthpeds:smoke")               # or "market1501:/data", "partial-reid:/data"

``SynthPeds`` (and its module) are imported lazily, on first use.
"""

from reidlib.data.base import (
    BACKGROUND, FEET, HEAD, LOWER, OCCLUDED, PART_NAMES, UPPER, ReIDDataset, Record, read_image_file,
)
from reidlib.data.datasets import (
    DATASETS, DukeMTMCreID, FolderDataset, Market1501, OccludedDuke, OccludedREID, PartialiLIDS, PartialREID,
    build_dataset, mask_path_for, read_mask_file,
)
from reidlib.data.loader import ImageDataset, PartialCropDataset, build_loader
from reidlib.data.partial import (
    CROP_MODES, SIDES, STRATEGIES, CropSpec, PartialCrop, box_to_scale_translation, get_strategy, partial_crop,
    region_labels, visible_regions, sample_box, scale_translation_to_theta, theta_to_scale_translation,
)
from reidlib.data.sampler import DistributedRandomIdentitySampler, RandomIdentitySampler
from reidlib.data.transforms import (
    IMAGENET_MEAN, IMAGENET_STD, TEST_MODES, ImageOnlyRandomErasing, PadToCanvas, build_geometric_transform,
    build_photometric_transform, build_test_transform, build_train_transform, denormalize,
)

__all__ = [
    # base
    "Record", "ReIDDataset", "read_image_file", "PART_NAMES", "BACKGROUND", "HEAD", "UPPER", "LOWER", "FEET", "OCCLUDED",
    # readers
    "FolderDataset", "Market1501", "DukeMTMCreID", "OccludedDuke", "PartialREID", "PartialiLIDS", "OccludedREID",
    "DATASETS", "build_dataset", "mask_path_for", "read_mask_file", "SynthPeds",
    # partial crops
    "CropSpec", "PartialCrop", "STRATEGIES", "SIDES", "CROP_MODES", "get_strategy", "sample_box", "partial_crop",
    "box_to_scale_translation", "scale_translation_to_theta", "theta_to_scale_translation", "region_labels",
    "visible_regions",
    # sampling, transforms, loading
    "RandomIdentitySampler", "DistributedRandomIdentitySampler",
    "IMAGENET_MEAN", "IMAGENET_STD", "TEST_MODES", "PadToCanvas", "ImageOnlyRandomErasing", "build_geometric_transform",
    "build_photometric_transform", "build_train_transform", "build_test_transform", "denormalize",
    "ImageDataset", "PartialCropDataset", "build_loader",
]


def __getattr__(name):  # lazy SynthPeds
    if name == "SynthPeds":
        from reidlib.data.synthpeds import SynthPeds

        return SynthPeds
    raise AttributeError(f"module 'reidlib.data' has no attribute {name!r}")
