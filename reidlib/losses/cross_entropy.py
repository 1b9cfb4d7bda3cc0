"""Cross-entropy with label smoothing (the strong baseline's ID loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cross_entropy_label_smooth(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Label-smoothed cross-entropy, averaged over the batch.

    Szegedy et al. 2016 ("Rethinking the Inception architecture", Sec. 7), as used by the
    strong baseline (Luo et al. 2019, Eq. 2): the one-hot target ``q`` becomes
    ``(1 - eps) * q + eps / N`` and the loss is ``-sum_i q_i log p_i`` (torchreid's
    ``CrossEntropyLoss(label_smooth=True)`` semantics: smoothing mass spread over all
    ``N`` classes, the true class included).

    Args:
        logits: ``(B, N)`` unnormalised scores (any float dtype; computed in float32).
        targets: ``(B,)`` integer labels in ``0..N-1``.
        epsilon: smoothing weight in ``[0, 1)``; 0 gives plain cross-entropy.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, num_classes), got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must be ({logits.shape[0]},) labels, got shape {tuple(targets.shape)}")
    n = logits.shape[1]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= n):
        raise ValueError(f"targets must lie in 0..{n - 1}, got range {int(targets.min())}..{int(targets.max())}")
    log_probs = F.log_softmax(logits.float(), dim=1)
    nll = -log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    uniform = -log_probs.mean(dim=1)
    return ((1.0 - epsilon) * nll + epsilon * uniform).mean()


class CrossEntropyLabelSmooth(nn.Module):
    """Module form of :func:`cross_entropy_label_smooth` (torchreid's signature).

    Args:
        num_classes: number of training identities (checked against the logits).
        epsilon: smoothing weight, 0.1 in the strong baseline.
    """

    def __init__(self, num_classes: int, epsilon: float = 0.1):
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
        self.num_classes = int(num_classes)
        self.epsilon = float(epsilon)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 2 and logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[1]} classes, the loss was built for {self.num_classes}")
        return cross_entropy_label_smooth(logits, targets, self.epsilon)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, epsilon={self.epsilon}"
