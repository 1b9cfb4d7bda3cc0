"""Ranking metrics: CMC, mAP and mINP, exactly as torchreid's ``evaluate_rank``.

The conventions (torchreid's Market-1501 evaluation, kept bit-for-bit on tie-free input):

* per query, gallery images with the **same pid and the same camera** as the query are
  removed from its ranking (same-camera images of other identities, and distractors
  with pid 0, stay);
* a query left with no true match is skipped; CMC, mAP and mINP average over the
  remaining *valid* queries;
* CMC: Rank-k is 1 if a true match is among the first k kept items;
* AP is **not** interpolated: the mean, over the true matches, of the precision at the
  rank of each true match (Market's official code uses a trapezoidal AP instead, which
  differs slightly);
* ``max_rank`` is cut to the gallery size.  (When the same-camera removal leaves a query
  fewer than ``max_rank`` images, torchreid's Python path would stack curves of unequal
  length; here the curve simply stays at 1 after the first match.)

**Ties.**  Equal distances are ordered by gallery index (a *stable* sort of each row).
torchreid's ``np.argsort`` is not stable, so on input with ties the two can differ; on
tie-free input they agree exactly.

**How it is computed (no row is sorted).**  The CMC and the AP need only the ranks of
the true matches.  Write ``key(k) = (d_k, k)``; the rank (0-based, in the kept list) of
the m-th true match ``t_m`` (true matches sorted by key) is
``r_m = (m - 1) + n_m`` where ``n_m`` is the number of kept *non-matches* whose key is
smaller than ``t_m``.  Per chunk of queries, the (few) true-match distances of each
query are sorted; every non-match is placed among them with one ``searchsorted``
(exact ties resolved by index), and a per-query histogram of the positions, cumulated,
gives all ``n_m`` at once.  Cost: ``O(Q G log T)`` for ``T`` true matches per query;
memory: a few bytes per element of one ``(chunk, G)`` block, the chunk being chosen
from a memory budget.  The distance matrix may be a tensor, a numpy array, or a
callable ``fn(start, stop) -> (stop - start, G)`` block, so the full matrix never has
to exist.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
import torch

__all__ = [
    "evaluate_rank",
    "evaluate_rank_detailed",
    "RankResult",
    "DistanceSource",
    "choose_chunk_size",
    "DEFAULT_MEMORY_BUDGET",
]

#: Distances: a ``(Q, G)`` tensor or array, or ``fn(start, stop) -> (stop - start, G)``.
DistanceSource = Union[torch.Tensor, np.ndarray, Callable[[int, int], "torch.Tensor | np.ndarray"]]

#: Default working-memory budget of one chunk (bytes).
DEFAULT_MEMORY_BUDGET = 256 * 2**20
# Bytes of working memory per element of a (chunk, G) block: the distance block when it
# is converted/produced (4-8), two boolean masks (2), the int64 searchsorted positions (8),
# the int64 histogram index (8), temporaries (8).
_BYTES_PER_ELEMENT = 40


@dataclass
class RankResult:
    """Everything :func:`evaluate_rank_detailed` measures.

    cmc:        ``(max_rank,)`` float32, averaged over valid queries.
    mAP:        mean average precision over valid queries.
    mINP:       mean inverse negative penalty (Ye et al., AGW) over valid queries.
    first_rank: ``(Q,)`` int64, 0-based rank of the first true match; -1 for invalid queries.
    ap:         ``(Q,)`` float64 average precision; NaN for invalid queries.
    inp:        ``(Q,)`` float64 INP = #true matches / (1 + rank of the hardest one); NaN if invalid.
    num_matches: ``(Q,)`` int64 number of true matches (after the same-camera removal).
    valid:      ``(Q,)`` bool, the query has at least one true match.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    first_rank: np.ndarray
    ap: np.ndarray
    inp: np.ndarray
    num_matches: np.ndarray
    valid: np.ndarray

    @property
    def num_valid(self) -> int:
        return int(self.valid.sum())

    def rank(self, k: int) -> float:
        """Rank-k accuracy (``cmc[k - 1]``)."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank k={k} is outside 1..{len(self.cmc)} (max_rank cut to the gallery size)")
        return float(self.cmc[k - 1])


def _from_numpy(a: np.ndarray) -> torch.Tensor:
    """Zero-copy view of a (possibly read-only) array; the metrics never write to it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(a))


def _as_1d_long(x, name: str, n: int | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x
    else:
        a = np.asarray(x)
        if a.dtype.kind not in "iu" and a.size:
            raise TypeError(f"{name} must hold integers (pids / camera ids), got dtype {a.dtype}")
        t = torch.from_numpy(a.astype(np.int64))  # a copy: small, and never a read-only view
    if t.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of ints, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must hold integers (pids / camera ids), got dtype {t.dtype}")
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} entries but the distance matrix has {n} along that axis")
    return t.long()


def choose_chunk_size(num_gallery: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Queries per chunk so that one ``(chunk, G)`` working block fits ``memory_budget`` bytes."""
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return max(1, int(memory_budget // (_BYTES_PER_ELEMENT * max(1, num_gallery))))


class _Blocks:
    """Uniform access to the distance source, block by block of query rows."""

    def __init__(self, distmat: DistanceSource, num_query: int | None, num_gallery: int | None):
        self.fn = None
        if callable(distmat) and not isinstance(distmat, (torch.Tensor, np.ndarray)):
            if num_query is None or num_gallery is None:
                raise ValueError(
                    "distmat is a callable fn(start, stop) -> (stop - start, G) block: pass num_query and "
                    "num_gallery too (or give the pids, whose lengths define them)"
                )
            self.fn, self.Q, self.G = distmat, int(num_query), int(num_gallery)
            self.device = None
            return
        if isinstance(distmat, np.ndarray):
            if distmat.dtype == object:
                raise TypeError("distmat is a numpy object array; expected a numeric (Q, G) array")
            distmat = _from_numpy(distmat)
        if not isinstance(distmat, torch.Tensor):
            raise TypeError(
                f"distmat must be a (Q, G) torch.Tensor, numpy array or a callable fn(start, stop), got {type(distmat).__name__}"
            )
        if distmat.ndim != 2:
            raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {tuple(distmat.shape)}")
        self.t = distmat
        self.Q, self.G = distmat.shape
        self.device = distmat.device

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        if self.fn is None:
            return self.t[start:stop]
        block = self.fn(start, stop)
        if isinstance(block, np.ndarray):
            block = _from_numpy(block)
        if not isinstance(block, torch.Tensor) or tuple(block.shape) != (stop - start, self.G):
            raise ValueError(
                f"the distance callable returned {type(block).__name__} of shape "
                f"{tuple(getattr(block, 'shape', ()))} for rows {start}:{stop}; expected ({stop - start}, {self.G})"
            )
        return block


def _true_match_ranks(
    d: torch.Tensor, true: torch.Tensor, nonmatch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based ranks of every true match of each row, in the kept list (ties by index).

    Args:
        d: ``(B, G)`` distances.
        true: ``(B, G)`` bool, the true matches (kept, same pid).
        nonmatch: ``(B, G)`` bool, the kept non-matches (other pids).

    Returns:
        ``ranks (B, T)`` int64 sorted ascending per row (entries ``m >= count`` are padding)
        and ``count (B,)`` int64.
    """
    B, G = d.shape
    dev = d.device
    count = true.sum(1)
    T = int(count.max()) if B else 0
    if T == 0:
        return torch.zeros(B, 0, dtype=torch.long, device=dev), count
    # gather the true matches into a padded (B, T) table, row-major order = ascending index
    rows, cols = true.nonzero(as_tuple=True)
    start = torch.cumsum(count, 0) - count
    pos = torch.arange(rows.numel(), device=dev) - start[rows]
    thr = torch.full((B, T), float("inf"), dtype=d.dtype, device=dev)
    thr[rows, pos] = d[rows, cols]
    idx = torch.full((B, T), G, dtype=torch.long, device=dev)  # padding sorts after real entries
    idx[rows, pos] = cols
    # sort each row's true matches by (distance, index): stable sort of index-ordered entries
    thr, order = torch.sort(thr, dim=1, stable=True)
    idx = idx.gather(1, order)
    # c_k = number of true matches whose key is below the key of item k (items are non-matches);
    # a +inf sentinel column (index G) keeps every position a valid gather index
    thr = torch.cat([thr, thr.new_full((B, 1), float("inf"))], 1)
    idx = torch.cat([idx, idx.new_full((B, 1), G)], 1)
    c = torch.searchsorted(thr, d.contiguous(), right=False)  # thresholds with distance < d_k
    # exact ties: thresholds with distance == d_k come first when their index is smaller
    tie = (thr.gather(1, c) == d) & nonmatch
    if bool(tie.any()):
        tr, tc = tie.nonzero(as_tuple=True)
        eq_before = ((thr[tr] == d[tr, tc].unsqueeze(1)) & (idx[tr] < tc.unsqueeze(1))).sum(1)
        c[tr, tc] += eq_before.to(c.dtype)
    del tie
    # histogram of c over the non-matches, per row; n_m = #non-matches with c <= m - 1
    rowoff = torch.arange(0, B * (T + 2), T + 2, device=dev, dtype=c.dtype).unsqueeze(1)
    flat = torch.where(nonmatch, c + rowoff, rowoff + (T + 1)).view(-1)
    hist = torch.bincount(flat, minlength=B * (T + 2)).view(B, T + 2)[:, :T]
    n = torch.cumsum(hist, 1)
    ranks = n + torch.arange(T, device=dev).unsqueeze(0)
    return ranks, count


def evaluate_rank_detailed(
    distmat: DistanceSource,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    device: "str | torch.device | None" = None,
    check_finite: bool = True,
) -> RankResult:
    """CMC, mAP, mINP and per-query ranks/APs (conventions in the module docstring).

    Args:
        distmat: ``(Q, G)`` distances (smaller = more similar) as a tensor / numpy array,
            or a callable ``fn(start, stop)`` returning the rows ``start:stop``.
        q_pids, g_pids, q_camids, g_camids: 1-D integer sequences.
        max_rank: length of the CMC curve, cut to the gallery size.
        chunk_size: queries per block; default from ``memory_budget``.
        memory_budget: bytes of working memory per block (default 256 MiB).
        device: where to compute (default: the distance matrix's device; for a callable, the
            device of the blocks it returns).
        check_finite: raise on NaN distances (``+inf`` is allowed and ranks last, ties by index).

    Raises:
        ValueError: bad shapes, or no query has a true match.
    """
    qp = _as_1d_long(q_pids, "q_pids", None)
    gp = _as_1d_long(g_pids, "g_pids", None)
    src = _Blocks(distmat, qp.shape[0], gp.shape[0])
    Q, G = src.Q, src.G
    qp = _as_1d_long(qp, "q_pids", Q)
    gp = _as_1d_long(gp, "g_pids", G)
    qc = _as_1d_long(q_camids, "q_camids", Q)
    gc = _as_1d_long(g_camids, "g_camids", G)
    if G == 0:
        raise ValueError("the gallery is empty (distmat has 0 columns)")
    if not isinstance(max_rank, int) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive int, got {max_rank!r}")
    max_rank = min(max_rank, G)
    # the device: given, else the matrix's, else (callables) that of the first block
    dev = torch.device(device) if device is not None else src.device
    if chunk_size is None:
        chunk_size = choose_chunk_size(G, memory_budget)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")

    first = torch.full((Q,), -1, dtype=torch.long)
    ap = torch.full((Q,), float("nan"), dtype=torch.float64)
    inp = torch.full((Q,), float("nan"), dtype=torch.float64)
    nmatch = torch.zeros(Q, dtype=torch.long)
    for s in range(0, Q, chunk_size):
        e = min(Q, s + chunk_size)
        d = src(s, e)
        if dev is None:
            dev = d.device
        d = d.to(dev)
        if qp.device != dev:
            qp, gp, qc, gc = qp.to(dev), gp.to(dev), qc.to(dev), gc.to(dev)
        if not d.is_floating_point():
            d = d.double() if d.dtype == torch.int64 else d.float()
        elif d.dtype in (torch.float16, torch.bfloat16):
            d = d.float()
        # one reduction first (NaN propagates through the sum; +inf and -inf together also give NaN)
        if check_finite and bool(torch.isnan(d.sum())) and bool(torch.isnan(d).any()):
            raise ValueError(f"distmat rows {s}:{e} contain NaN; distances must be numbers (+inf is allowed)")
        same_pid = qp[s:e, None] == gp[None, :]
        true = same_pid & (qc[s:e, None] != gc[None, :])
        nonmatch = ~same_pid
        del same_pid
        ranks, count = _true_match_ranks(d, true, nonmatch)
        del true, nonmatch, d
        T = ranks.shape[1]
        valid = count > 0
        nmatch[s:e] = count.cpu()
        if T == 0:
            continue
        m = torch.arange(1, T + 1, device=dev, dtype=torch.float64).unsqueeze(0)
        inside = m <= count.unsqueeze(1)
        prec = (m / (ranks.double() + 1.0)).masked_fill(~inside, 0.0)
        cnt = count.double().clamp(min=1)
        ap_c = prec.sum(1) / cnt
        last = ranks.gather(1, (count - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        inp_c = count.double() / (last.double() + 1.0)
        first_c = ranks[:, 0]
        ap[s:e] = torch.where(valid, ap_c, torch.nan).cpu()
        inp[s:e] = torch.where(valid, inp_c, torch.nan).cpu()
        first[s:e] = torch.where(valid, first_c, -1).cpu()

    valid = nmatch > 0
    nv = int(valid.sum())
    if nv == 0:
        raise ValueError(
            f"no valid query: none of the {Q} queries has a true match in the gallery once same-pid "
            f"same-camera images are removed (check the pids and camera ids)"
        )
    fr = first[valid]
    hits = torch.bincount(fr[fr < max_rank], minlength=max_rank)[:max_rank]
    cmc = (torch.cumsum(hits, 0).double() / nv).numpy().astype(np.float32)
    return RankResult(
        cmc=cmc,
        mAP=float(ap[valid].mean()),
        mINP=float(inp[valid].mean()),
        first_rank=first.numpy(),
        ap=ap.numpy(),
        inp=inp.numpy(),
        num_matches=nmatch.numpy(),
        valid=valid.numpy(),
    )


def evaluate_rank(
    distmat: DistanceSource,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    **kwargs,
) -> tuple[np.ndarray, float]:
    """torchreid's ``evaluate_rank`` (Market-1501 rules): returns ``(cmc, mAP)``.

    ``cmc`` is a float32 array of length ``min(max_rank, G)``; ``mAP`` a float.  Keyword
    arguments (``chunk_size``, ``memory_budget``, ``device``) go to
    :func:`evaluate_rank_detailed`.  Ties are ordered by gallery index.
    """
    r = evaluate_rank_detailed(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, **kwargs)
    return r.cmc, r.mAP
