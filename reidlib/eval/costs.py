"""What a method costs at test time, measured on this machine (chapter 08's cost table).

* :func:`feature_bytes` -- the bytes one image's stored features take (every tensor of its
  :class:`~reidlib.metrics.features.Features` row: a global vector, parts and visibility, or
  the kept image a pairwise matcher needs);
* :func:`extraction_cost` -- seconds of ``model.extract`` per 1,000 images (batches of real
  test images, after one warm-up batch; decoding and transforms are not counted);
* :func:`matching_cost` -- seconds to rank ``n_query`` queries against ``n_gallery`` gallery
  images with a matcher, on real features tiled to that size (a query's row of distances does
  not depend on the other queries, so a matcher too slow to run on every query -- a pairwise
  one scoring every pair -- runs on the first ``max_pairs`` pairs' worth of queries and is
  scaled by the share of queries it ran: the record says so);
* :class:`PeakMemory` -- the peak memory of a block above its level at entry: CUDA's
  ``max_memory_allocated`` on a GPU, the process's resident set sampled by a thread on a CPU;
* :func:`save_features` / :func:`load_features` -- features to a file and back, for a fresh
  process that times a matching (:func:`reidlib.comparison.isolated_matching_cost`: on a CPU a
  process keeps the memory it freed and reuses it, so only a fresh one shows what a matching needs).

Timings are wall-clock seconds of one process on the machine that ran them
(:func:`reidlib.provenance.hardware_summary` records it); compare them within one run only.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field

import torch

from reidlib.metrics.features import Features
from reidlib.metrics.matchers import ROW_KEY

__all__ = ["feature_bytes", "resident_bytes", "extraction_cost", "matching_cost", "tile_features", "PeakMemory", "MatchCost",
           "save_features", "load_features"]


def _tensors(f: Features):
    extra = [v for k, v in f.extra.items() if k != ROW_KEY]  # row ids are bookkeeping, not stored features
    for v in (f.global_feat, f.parts, f.visibility, f.images, *extra):
        if isinstance(v, torch.Tensor):
            yield v


def feature_bytes(f: Features, dtype: torch.dtype | None = None) -> float:
    """Bytes per image of the features ``f`` (mean over its rows): every tensor's row size at its
    own element size, or at ``dtype``'s (e.g. ``torch.float16`` for a gallery stored in half
    precision). ``f`` with no rows: ``ValueError``."""
    n = len(f)
    if n == 0:
        raise ValueError("feature_bytes: the Features hold no rows")
    total = 0
    for t in _tensors(f):
        size = torch.empty((), dtype=dtype).element_size() if dtype is not None and t.is_floating_point() else t.element_size()
        total += t.numel() * size
    return total / n


def tile_features(f: Features, n: int) -> Features:
    """``n`` rows of ``f``, repeating its rows in order (a gallery of ``n`` real feature rows)."""
    if len(f) == 0:
        raise ValueError("tile_features: the Features hold no rows")
    return f[torch.arange(n) % len(f)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resident_bytes() -> int | None:
    """This process's resident set in bytes (``/proc/self/statm``), or None where there is no
    ``/proc`` (not Linux)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _trim() -> None:
    """Give the memory this process freed back to the system (glibc's ``malloc_trim``; elsewhere
    nothing), so that a peak measured from here is the block's own."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of a ``with`` block above the level at its entry, in bytes (``.peak``).

    On CUDA: ``torch.cuda.max_memory_allocated`` (reset at entry). On a CPU: the resident set
    of this process (``/proc/self/statm``), sampled every ``interval`` seconds by a thread, from
    its level after the freed memory is given back (``malloc_trim``);
    where ``/proc`` is missing (not Linux) ``peak`` stays None and ``how`` says so.
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.002):
        self.device = torch.device(device)
        self.interval = float(interval)
        self.peak: float | None = None
        self.how = ""
        self._stop = threading.Event()

    def _watch(self) -> None:
        while not self._stop.is_set():
            r = resident_bytes()
            if r is not None:
                self._max = max(self._max, r)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.how = "CUDA max_memory_allocated above the entry level"
            return self
        _trim()
        self._base = resident_bytes()
        if self._base is None:
            self.how = "not measured (no /proc/self/statm on this system)"
            return self
        self._max = self._base
        self.how = f"resident set of the process above the entry level, sampled every {self.interval * 1000:g} ms"
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = float(torch.cuda.max_memory_allocated(self.device) - self._base)
            return
        if self._base is None:
            return
        self._stop.set()
        self._thread.join()
        r = resident_bytes()
        self.peak = float(max(self._max, r if r is not None else 0) - self._base)


@torch.no_grad()
def extraction_cost(model, images: torch.Tensor, batch_size: int = 64, device: torch.device | str = "cpu",
                    amp: bool = True, repeats: int = 3) -> dict:
    """Seconds of ``model.extract`` per 1,000 images on ``images`` (``(N, 3, H, W)``, already
    transformed), in batches of ``batch_size`` after one warm-up batch, the median of ``repeats``
    passes (a machine shared with other work makes single timings noisy); with the features'
    bytes per image and the peak memory of the timed passes. Returns ``{"s_per_1000", "images",
    "bytes_per_image", "peak_bytes", "peak_how", "repeats"}``."""
    from reidlib.precision import autocast

    if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError(f"extraction_cost: images of shape {tuple(images.shape)}; expected (N, 3, H, W) with N >= 1")
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    try:
        with autocast(device, amp):
            first = model.extract(images[:batch_size].to(device))
        _sync(device)
        times = []
        with PeakMemory(device) as mem:
            for _ in range(max(1, int(repeats))):
                t0 = time.perf_counter()
                for s in range(0, len(images), batch_size):
                    with autocast(device, amp):
                        model.extract(images[s:s + batch_size].to(device))
                _sync(device)
                times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    dt = sorted(times)[len(times) // 2]
    return {"s_per_1000": 1000.0 * dt / len(images), "images": int(len(images)), "repeats": len(times),
            "bytes_per_image": feature_bytes(first.float()), "peak_bytes": mem.peak, "peak_how": mem.how}


@dataclass
class MatchCost:
    """One matching measurement: seconds for ``n_query x n_gallery`` (``scaled`` from
    ``queries_run`` queries when fewer ran), the peak memory of what ran, and the matcher."""

    seconds: float
    n_query: int
    n_gallery: int
    queries_run: int
    peak_bytes: float | None
    peak_how: str
    matcher: str
    notes: list = field(default_factory=list)

    @property
    def scaled(self) -> bool:
        return self.queries_run < self.n_query

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "n_query": self.n_query, "n_gallery": self.n_gallery,
                "queries_run": self.queries_run, "scaled": self.scaled, "peak_bytes": self.peak_bytes,
                "peak_how": self.peak_how, "matcher": self.matcher, "notes": list(self.notes)}


def matching_cost(matcher, query: Features, gallery: Features, n_query: int = 1000, n_gallery: int = 10000,
                  max_pairs: int | None = None, pairs_per_query: int | None = None,
                  device: torch.device | str = "cpu", repeats: int = 3, repeat_below_s: float = 2.0) -> MatchCost:
    """Time ``matcher`` ranking ``n_query`` queries against ``n_gallery`` gallery images, the rows
    of ``query`` and ``gallery`` tiled to those sizes (:func:`tile_features`).

    ``pairs_per_query``: the network passes one query costs the matcher (a pairwise matcher:
    ``n_gallery`` for every pair, ``k`` for a shortlist; None for a matcher without pair passes).
    With ``max_pairs``, only ``ceil(max_pairs / pairs_per_query)`` queries run (at least one) and
    the seconds are scaled to ``n_query`` (rows are independent); the record says how many ran.
    A matching that takes under ``repeat_below_s`` runs ``repeats`` times and the median counts.
    """
    if n_query < 1 or n_gallery < 1:
        raise ValueError(f"matching_cost: n_query={n_query}, n_gallery={n_gallery}; expected positive sizes")
    device = torch.device(device)
    run_q = n_query
    if max_pairs is not None and pairs_per_query:
        run_q = max(1, min(n_query, math.ceil(max_pairs / pairs_per_query)))
    qf, gf = tile_features(query, run_q).to(device), tile_features(gallery, n_gallery).to(device)
    warm = min(run_q, 2)
    matcher(qf[torch.arange(warm)], gf[torch.arange(min(n_gallery, 64))])  # warm-up (allocations, kernels)
    _sync(device)
    times = []
    with PeakMemory(device) as mem:
        while True:
            t0 = time.perf_counter()
            d = matcher(qf, gf)
            _sync(device)
            times.append(time.perf_counter() - t0)
            if len(times) >= max(1, int(repeats)) or times[0] >= repeat_below_s:
                break
            del d
    dt = sorted(times)[len(times) // 2]
    if tuple(d.shape) != (run_q, n_gallery):
        raise ValueError(f"{matcher.describe()} returned distances of shape {tuple(d.shape)}; expected {(run_q, n_gallery)}")
    notes = [] if len(times) == 1 else [f"median of {len(times)} runs"]
    if run_q < n_query:
        notes.append(f"ran {run_q} of {n_query} queries ({run_q * pairs_per_query:,} pair passes); seconds scaled "
                     f"by {n_query / run_q:g}")
    return MatchCost(dt * n_query / run_q, n_query, n_gallery, run_q, mem.peak, mem.how, matcher.describe(), notes)


_FIELDS = ("global_feat", "parts", "visibility", "images")


def save_features(f: Features, path) -> None:
    """Write ``f``'s tensors (without row ids) to ``path`` for :func:`load_features`."""
    doc = {k: getattr(f, k).cpu() for k in _FIELDS if isinstance(getattr(f, k), torch.Tensor)}
    doc["extra"] = {k: v.cpu() for k, v in f.extra.items() if k != ROW_KEY}
    torch.save(doc, path)


def load_features(path) -> Features:
    """The :class:`Features` that :func:`save_features` wrote (loaded with ``weights_only=True``)."""
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - say which file and what was expected
        raise ValueError(f"{path}: not a features file written by reidlib.eval.costs.save_features ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("extra"), dict):
        raise ValueError(f"{path}: expected a dict of tensors with an 'extra' dict (save_features)")
    return Features(**{k: doc.get(k) for k in _FIELDS}, extra=dict(doc["extra"]))
