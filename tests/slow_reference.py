"""Slow reference implementations the tests compare the batched code against (plain Python loops)."""

from __future__ import annotations


def slow_batch_hard(dist, valid, labels, margin):
    """Batch-hard triplet loss over the pairs ``valid[a][b]`` allows: per anchor with a positive and
    a negative, ``max(0, hardest positive - hardest negative + margin)``, averaged (0 when none)."""
    n, total, count = len(labels), 0.0, 0
    for a in range(n):
        pos = [dist[a][p] for p in range(n) if p != a and labels[p] == labels[a] and valid[a][p]]
        neg = [dist[a][q] for q in range(n) if labels[q] != labels[a] and valid[a][q]]
        if pos and neg:
            total += max(0.0, max(pos) - min(neg) + margin)
            count += 1
    return total / count if count else 0.0


def check_shortlist_contract(model, qf, gf, k: int, batch_pairs: int = 5) -> None:
    """A pairwise model's shortlist matcher against its full mode: with ``k`` = the gallery size it
    is the full mode; with ``k`` smaller the cheap top-``k`` of every query get their full-mode
    distances and rank before every other gallery image."""
    import math

    import torch

    full = model.matcher(shortlist=None, batch_pairs=batch_pairs)(qf, gf)
    torch.testing.assert_close(model.matcher(shortlist=len(gf), batch_pairs=batch_pairs)(qf, gf), full)
    short = model.matcher(shortlist=k, batch_pairs=batch_pairs)(qf, gf)
    top = torch.topk(model.global_matcher()(qf, gf), k, dim=1, largest=False).indices
    torch.testing.assert_close(short.gather(1, top), full.gather(1, top))
    rest = torch.ones_like(short, dtype=torch.bool).scatter_(1, top, False)
    assert (short.masked_fill(rest, -math.inf).amax(1) < short.masked_fill(~rest, math.inf).amin(1)).all()
