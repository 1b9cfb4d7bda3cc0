"""reidlib.losses: identity and metric losses (each method's own losses live beside these)."""

from reidlib.losses.cross_entropy import CrossEntropyLabelSmooth, cross_entropy_label_smooth
from reidlib.losses.triplet import TripletLoss, hard_example_mining, pairwise_euclidean, triplet_loss_batch_hard

__all__ = [
    "CrossEntropyLabelSmooth",
    "cross_entropy_label_smooth",
    "TripletLoss",
    "triplet_loss_batch_hard",
    "hard_example_mining",
    "pairwise_euclidean",
]
