"""Batched distances between query and gallery features.

Every function takes query features first and gallery features second and returns a
``(Q, G)`` tensor (smaller = more similar) on the features' device.  Part-based
distances never build the ``(Q, G, P)`` tensor of per-part distances: they loop over
the (few) parts and over blocks of queries, so the working memory is a few ``(chunk, G)``
blocks (``chunk`` from ``memory_budget``).

Conventions (torchreid's): ``"euclidean"`` is the **squared** Euclidean distance
``|q|^2 + |g|^2 - 2 q.g`` (no square root, no clamp, so tiny negative values can occur
for near-identical features); ``"cosine"`` is ``1 - cos``.
"""

from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn.functional as F

__all__ = [
    "euclidean_squared",
    "cosine_distance",
    "compute_distance_matrix",
    "pcb_distance",
    "visibility_weighted_distance",
    "common_parts_distance",
    "METRICS",
]

METRICS = ("euclidean", "cosine")
_DEFAULT_BUDGET = 256 * 2**20

NoCommon = Union[float, str]


def _check_pair(q: torch.Tensor, g: torch.Tensor, ndim: int, what: str) -> None:
    for name, t in (("query", q), ("gallery", g)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{what}: {name} features must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != ndim:
            form = "(N, D)" if ndim == 2 else "(N, P, D)"
            raise ValueError(f"{what}: {name} features have shape {tuple(t.shape)}; expected {form}")
    if q.shape[1:] != g.shape[1:]:
        raise ValueError(
            f"{what}: query features {tuple(q.shape)} and gallery features {tuple(g.shape)} differ "
            f"beyond the first (batch) dimension"
        )


def euclidean_squared(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``|q|^2 + |g|^2 - 2 q.g`` (torchreid's "euclidean").

    Args:
        q: ``(Q, D)``; g: ``(G, D)``.  Half precision is computed in float32.
    Returns:
        ``(Q, G)``, not clamped at 0 and without square root (as torchreid).
    """
    _check_pair(q, g, 2, "euclidean_squared")
    if q.dtype in (torch.float16, torch.bfloat16):
        q = q.float()
    if g.dtype in (torch.float16, torch.bfloat16):
        g = g.float()
    qq = q.pow(2).sum(1, keepdim=True)
    gg = g.pow(2).sum(1).unsqueeze(0)
    return torch.addmm(qq + gg, q, g.t(), beta=1.0, alpha=-2.0)


def cosine_distance(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``1 - cos(q, g)`` (torchreid's "cosine"); ``(Q, D), (G, D) -> (Q, G)``."""
    _check_pair(q, g, 2, "cosine_distance")
    if q.dtype in (torch.float16, torch.bfloat16):
        q = q.float()
    if g.dtype in (torch.float16, torch.bfloat16):
        g = g.float()
    return 1.0 - F.normalize(q, dim=1) @ F.normalize(g, dim=1).t()


def compute_distance_matrix(q: torch.Tensor, g: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """torchreid's ``compute_distance_matrix``: ``metric`` in :data:`METRICS`."""
    if metric == "euclidean":
        return euclidean_squared(q, g)
    if metric == "cosine":
        return cosine_distance(q, g)
    raise ValueError(f"unknown metric {metric!r}: accepted metrics are {', '.join(map(repr, METRICS))}")


def pcb_distance(qparts: torch.Tensor, gparts: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """PCB's test distance: each stripe feature L2-normalised, stripes concatenated.

    PCB (Sun et al. 2018) represents an image by its ``p`` stripe features, each
    L2-normalised, concatenated into one vector; images are compared with the usual
    metric on that vector.  With the squared Euclidean metric this is the sum over stripes
    of ``2 - 2 cos``.

    Args:
        qparts: ``(Q, P, D)``; gparts: ``(G, P, D)``.
    """
    _check_pair(qparts, gparts, 3, "pcb_distance")
    q = F.normalize(qparts.float(), dim=2).flatten(1)
    g = F.normalize(gparts.float(), dim=2).flatten(1)
    return compute_distance_matrix(q, g, metric)


def _part_distance(q: torch.Tensor, g: torch.Tensor, squared: bool) -> torch.Tensor:
    d = euclidean_squared(q, g)
    return d if squared else d.clamp_min_(0).sqrt_()


def _chunk(Q: int, G: int, memory_budget: int, buffers: int = 4) -> int:
    return max(1, int(memory_budget // (4 * buffers * max(1, G))))


def _check_vis(vis: torch.Tensor, n: int, p: int, name: str, what: str) -> None:
    if not isinstance(vis, torch.Tensor) or tuple(vis.shape) != (n, p):
        raise ValueError(
            f"{what}: {name} visibility has shape {tuple(getattr(vis, 'shape', ()))}; expected ({n}, {p}) "
            f"(one score per image and part)"
        )


def _resolve_no_common(no_common: NoCommon, what: str) -> float | None:
    """``None`` means "mean over all parts"; else the constant."""
    if isinstance(no_common, str):
        if no_common == "mean":
            return None
        if no_common == "inf":
            return math.inf
        raise ValueError(f"{what}: no_common={no_common!r}; expected a number, 'inf' or 'mean'")
    return float(no_common)


def visibility_weighted_distance(
    qparts: torch.Tensor,
    qvis: torch.Tensor,
    gparts: torch.Tensor,
    gvis: torch.Tensor,
    *,
    squared: bool = False,
    no_common: NoCommon = math.inf,
    memory_budget: int = _DEFAULT_BUDGET,
) -> torch.Tensor:
    """VPM Eq. 4: ``D^{kl} = sum_i C_i^k C_i^l D_i^{kl} / sum_i C_i^k C_i^l``.

    ``D_i^{kl} = ||f_i^k - f_i^l||`` is the Euclidean distance between the i-th region
    features of images k and l, and ``C_i`` the region visibility scores (VPM, Sun et al.
    CVPR 2019, Sec. 3.2): regions visible on both images dominate the distance, a region
    missing from either contributes little.

    Args:
        qparts: ``(Q, P, D)`` region features; qvis: ``(Q, P)`` visibility scores ``C_i >= 0``.
        gparts: ``(G, P, D)``; gvis: ``(G, P)``.
        squared: use squared region distances instead of VPM's plain Euclidean norm.
        no_common: the distance of a pair with ``sum_i C_i^k C_i^l == 0`` (no region scored
            visible on both): ``inf`` (default; such pairs rank last), a number, or ``"mean"``
            (the unweighted mean of the region distances).
        memory_budget: bytes of working memory (queries are processed in blocks).

    Returns:
        ``(Q, G)`` float32.
    """
    what = "visibility_weighted_distance (VPM Eq. 4)"
    _check_pair(qparts, gparts, 3, what)
    Q, P, _ = qparts.shape
    G = gparts.shape[0]
    _check_vis(qvis, Q, P, "query", what)
    _check_vis(gvis, G, P, "gallery", what)
    if bool((qvis < 0).any()) or bool((gvis < 0).any()):
        raise ValueError(f"{what}: visibility scores must be >= 0")
    fallback = _resolve_no_common(no_common, what)
    qparts, gparts = qparts.float(), gparts.float()
    qvis, gvis = qvis.float(), gvis.float()
    return _weighted_part_mean(qparts, gparts, qvis, gvis, fallback, squared, memory_budget)


def common_parts_distance(
    qparts: torch.Tensor,
    qvis: torch.Tensor,
    gparts: torch.Tensor,
    gvis: torch.Tensor,
    *,
    threshold: float = 0.5,
    squared: bool = False,
    no_common: NoCommon = math.inf,
    memory_budget: int = _DEFAULT_BUDGET,
) -> torch.Tensor:
    """SANet Eq. 7 (HPNet's test distance): the mean distance over commonly visible parts.

    ``D = sum_i 1^i Dist(F_q^i, F_g^i) / sum_i 1^i`` with ``1^i = 1`` when part ``i`` is
    visible on both images (SANet, BMVC 2023, Sec. 3.3; HPNet, Huang et al. 2020).
    ``Dist`` is the Euclidean distance.  SANet's visibility is a pixel count
    ``v^i >= 1``; here a part is visible when its score is ``> threshold`` (give 0/1
    flags, or pixel counts with ``threshold=0.5``).

    Two images sharing no visible part are not comparable under Eq. 7 (0/0).  Decision:
    such a pair gets ``no_common`` -- ``inf`` by default, so it ranks after every pair
    that shares a part (ties among them broken by gallery index); a number, or
    ``"mean"`` (the mean over all parts, as if all were visible), can be given instead.

    Args:
        qparts: ``(Q, P, D)``; qvis: ``(Q, P)``; gparts: ``(G, P, D)``; gvis: ``(G, P)``.
        threshold: a part is visible when its score exceeds it.
        squared: use squared Euclidean part distances.
        no_common: see above.
        memory_budget: bytes of working memory.

    Returns:
        ``(Q, G)`` float32.
    """
    what = "common_parts_distance (SANet Eq. 7)"
    _check_pair(qparts, gparts, 3, what)
    Q, P, _ = qparts.shape
    G = gparts.shape[0]
    _check_vis(qvis, Q, P, "query", what)
    _check_vis(gvis, G, P, "gallery", what)
    fallback = _resolve_no_common(no_common, what)
    qparts, gparts = qparts.float(), gparts.float()
    qv, gv = (qvis > threshold).float(), (gvis > threshold).float()
    return _weighted_part_mean(qparts, gparts, qv, gv, fallback, squared, memory_budget)


def _weighted_part_mean(qparts: torch.Tensor, gparts: torch.Tensor, qw: torch.Tensor, gw: torch.Tensor,
                        fallback: float | None, squared: bool, memory_budget: int) -> torch.Tensor:
    """``sum_i w^q_i w^g_i D_i / sum_i w^q_i w^g_i`` over parts, in query blocks (VPM Eq. 4 and,
    with 0/1 weights, SANet Eq. 7 share this kernel).  Pairs whose weights sum to 0 get
    ``fallback``, or the unweighted mean of the part distances when ``fallback`` is None."""
    Q, P, _ = qparts.shape
    G = gparts.shape[0]
    out = torch.empty(Q, G, dtype=torch.float32, device=qparts.device)
    step = _chunk(Q, G, memory_budget)
    for s in range(0, Q, step):
        e = min(Q, s + step)
        num = torch.zeros(e - s, G, device=qparts.device)
        den = torch.zeros(e - s, G, device=qparts.device)
        plain = torch.zeros(e - s, G, device=qparts.device) if fallback is None else None
        for i in range(P):
            di = _part_distance(qparts[s:e, i], gparts[:, i], squared)
            w = qw[s:e, i, None] * gw[None, :, i]
            num.addcmul_(w, di)
            den.add_(w)
            if plain is not None:
                plain.add_(di)
        none = den <= 0
        blk = num.div_(den.clamp_min(torch.finfo(den.dtype).tiny))
        if plain is not None:
            blk = torch.where(none, plain / P, blk)
        else:
            blk.masked_fill_(none, fallback)
        out[s:e] = blk
    return out
