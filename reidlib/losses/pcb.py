"""PCB's identity loss (Sun et al. 2018, Sec. 3.1)."""

from __future__ import annotations

import torch

from reidlib.losses.cross_entropy import cross_entropy_label_smooth

__all__ = ["pcb_id_loss"]


def pcb_id_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """PCB Sec. 3.1: the sum over stripes of each stripe classifier's cross-entropy.

    ``logits``: ``(N, P, num_classes)``; ``epsilon`` > 0 smooths the labels (not in PCB).
    """
    n, p, c = logits.shape
    per_part = cross_entropy_label_smooth(logits.reshape(n * p, c), labels.repeat_interleave(p), epsilon)
    return per_part * p  # mean over the N*P rows times P = sum over stripes of the per-stripe means
