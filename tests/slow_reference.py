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
