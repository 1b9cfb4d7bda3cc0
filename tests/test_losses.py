"""Label-smoothed cross-entropy and batch-hard triplet loss against slow references and hand values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reidlib.losses import CrossEntropyLabelSmooth, TripletLoss, cross_entropy_label_smooth, triplet_loss_batch_hard


def ref_ce_label_smooth(logits, targets, eps):
    """torchreid's formula written out per sample: q = (1-eps) onehot + eps/N; -sum q log p."""
    n, c = logits.shape
    total = 0.0
    for i in range(n):
        logp = torch.log_softmax(logits[i].double(), 0)
        for j in range(c):
            q = (1 - eps) * (1.0 if j == int(targets[i]) else 0.0) + eps / c
            total += -q * float(logp[j])
    return total / n


def ref_batch_hard(x, labels, margin, soft=False):
    n = x.shape[0]
    losses = []
    for a in range(n):
        ap = max(math.sqrt(max(float(((x[a] - x[p]) ** 2).sum()), 1e-12)) for p in range(n) if labels[p] == labels[a])
        an = min(math.sqrt(max(float(((x[a] - x[q]) ** 2).sum()), 1e-12)) for q in range(n) if labels[q] != labels[a])
        losses.append(math.log1p(math.exp(ap - an)) if soft else max(0.0, ap - an + margin))
    return sum(losses) / n


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_ce_label_smooth_matches_reference(eps):
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(7, 5, generator=g) * 3, torch.randint(0, 5, (7,), generator=g)
    got = CrossEntropyLabelSmooth(5, epsilon=eps)(logits, targets)
    assert float(got) == pytest.approx(ref_ce_label_smooth(logits, targets, eps), rel=1e-6)


def test_ce_label_smooth_hand_values():
    # uniform logits: -log(1/N) whatever the smoothing
    assert float(cross_entropy_label_smooth(torch.zeros(3, 4), torch.tensor([0, 1, 3]), 0.1)) == pytest.approx(math.log(4))
    # eps = 0 is plain cross-entropy
    lg, t = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    assert float(cross_entropy_label_smooth(lg, t, 0.0)) == pytest.approx(float(F.cross_entropy(lg, t)))
    # two classes, logits (0, log 3): p = (1/4, 3/4); target 1, eps .1: -(0.95 log .75 + 0.05 log .25)
    v = cross_entropy_label_smooth(torch.tensor([[0.0, math.log(3)]]), torch.tensor([1]), 0.1)
    assert float(v) == pytest.approx(-(0.95 * math.log(0.75) + 0.05 * math.log(0.25)), rel=1e-6)


def test_ce_label_smooth_bad_input():
    with pytest.raises(ValueError, match="0..3"):
        cross_entropy_label_smooth(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="classes"):
        CrossEntropyLabelSmooth(5)(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="epsilon"):
        CrossEntropyLabelSmooth(5, epsilon=1.0)


@pytest.mark.parametrize("soft", [False, True])
def test_triplet_matches_loop_reference(soft):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 6, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    got = TripletLoss(margin=0.3, soft_margin=soft)(x, labels)
    assert float(got) == pytest.approx(ref_batch_hard(x, labels, 0.3, soft), rel=1e-5)


def test_triplet_hand_values():
    # 1-D points 0, 2 (id 0) and 1, 3 (id 1): every anchor has d_ap = 2 and d_an = 1
    x = torch.tensor([[0.0], [2.0], [1.0], [3.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert float(triplet_loss_batch_hard(x, y, margin=0.3)) == pytest.approx(1.3, rel=1e-6)
    assert float(triplet_loss_batch_hard(x, y, soft_margin=True)) == pytest.approx(math.log1p(math.e), rel=1e-6)
    # well separated clusters: zero loss
    x2 = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    assert float(triplet_loss_batch_hard(x2, y, margin=0.3)) == 0.0
    # normalised: [1,0],[2,0] -> same unit vector; [0,1],[0,3] -> same; d_ap ~ 0, d_an = sqrt 2
    x3 = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    assert float(triplet_loss_batch_hard(x3, y, margin=2.0, normalize=True)) == pytest.approx(2.0 - math.sqrt(2), abs=1e-5)


def test_triplet_gradient_and_errors():
    x = torch.randn(8, 4, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    TripletLoss(margin=10.0)(x, y).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="other identity"):
        triplet_loss_batch_hard(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, dim"):
        triplet_loss_batch_hard(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=-1)
