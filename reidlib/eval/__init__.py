"""reidlib.eval: test protocols, the extract-once evaluator, result records."""

from reidlib.eval.evaluate import EvalImages, Evaluator, evaluate, score_views
from reidlib.eval.protocols import (
    PROTOCOLS,
    AlignedCropProtocol,
    CropSetting,
    CropSweep,
    MarketProtocol,
    MixedProtocol,
    PartialGalleryProtocol,
    PartialQueryProtocol,
    Protocol,
    Setting,
    SingleShotTrials,
    Trial,
    View,
    build_protocol,
)
from reidlib.eval.results import (
    EvalResult,
    format_results,
    load_results,
    metrics_from_cmc,
    results_markdown,
    results_table,
    save_results,
)
from reidlib.provenance import hardware_summary

__all__ = [
    "Evaluator", "evaluate", "EvalImages", "score_views",
    "Protocol", "PROTOCOLS", "build_protocol", "MarketProtocol", "PartialQueryProtocol", "PartialGalleryProtocol",
    "SingleShotTrials", "CropSweep", "AlignedCropProtocol", "MixedProtocol", "CropSetting", "View", "Trial", "Setting",
    "EvalResult", "results_table", "results_markdown", "format_results", "save_results", "load_results",
    "hardware_summary", "metrics_from_cmc",
]
