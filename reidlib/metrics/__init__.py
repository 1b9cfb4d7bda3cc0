"""reidlib.metrics: ranking metrics (torchreid-exact), batched distances, matchers."""

from reidlib.metrics.distance import (
    METRICS,
    common_parts_distance,
    compute_distance_matrix,
    cosine_distance,
    euclidean_squared,
    pcb_distance,
    visibility_weighted_distance,
)
from reidlib.metrics.rank import RankResult, choose_chunk_size, evaluate_rank, evaluate_rank_detailed

__all__ = [
    "evaluate_rank",
    "evaluate_rank_detailed",
    "RankResult",
    "choose_chunk_size",
    "METRICS",
    "euclidean_squared",
    "cosine_distance",
    "compute_distance_matrix",
    "pcb_distance",
    "visibility_weighted_distance",
    "common_parts_distance",
]
