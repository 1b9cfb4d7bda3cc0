"""``python -m reidlib bench eval``: speed and memory of :func:`reidlib.metrics.evaluate_rank`.

1. A Market-1501-sized problem (3,368 queries of 750 identities x 15,913 gallery images
   with 2,798 pid-0 distractors, 6 cameras; features = identity centre + noise): the
   distance matrix is given, ``evaluate_rank`` is timed (median of ``--repeats``).
2. The slow reference (torchreid's per-query Python loop over an argsorted matrix) on
   the same matrix -- on a subset of queries when ``--ref-queries`` is smaller than
   the query count, extrapolated linearly (the table says so) -- and the results are
   checked to agree on that subset.
3. The same on the GPU when CUDA is available.
4. Memory: a 10,000 x 100,000 problem whose distances are produced block by block by a
   callable (the full 4 GB matrix never exists), run in a fresh subprocess; the peak
   resident-memory growth is reported against the 2 GB target.

``--json PATH`` writes the one results schema (:func:`reidlib.provenance.write_results`):
the command, the commit and the hardware (the GPU's when CUDA is used) in ``meta``, the
measurements in ``results``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time

import numpy as np
import torch

from reidlib.eval.costs import resident_bytes
from reidlib.metrics.distance import euclidean_squared
from reidlib.metrics.rank import evaluate_rank
from reidlib.provenance import write_results

MARKET_Q, MARKET_G, MARKET_IDS, MARKET_DISTRACTORS, MARKET_CAMS = 3368, 15913, 750, 2798, 6


def synthetic_problem(num_query: int, num_gallery: int, num_ids: int, num_distractors: int, num_cams: int,
                      dim: int = 64, noise: float = 1.2, seed: int = 0):
    """Random features with an identity/camera structure: ``(qf, gf, q_pids, g_pids, q_cams, g_cams)``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids + 1, dim)).astype(np.float32)
    q_pids = rng.integers(1, num_ids + 1, num_query)
    g_pids = np.concatenate([np.zeros(num_distractors, dtype=np.int64),
                             rng.integers(1, num_ids + 1, num_gallery - num_distractors)])
    q_cams = rng.integers(0, num_cams, num_query)
    g_cams = rng.integers(0, num_cams, num_gallery)
    qf = centres[q_pids] + noise * rng.standard_normal((num_query, dim)).astype(np.float32)
    gf = centres[g_pids] + noise * rng.standard_normal((num_gallery, dim)).astype(np.float32)
    gf[:num_distractors] = noise * 1.5 * rng.standard_normal((num_distractors, dim)).astype(np.float32)
    return torch.from_numpy(qf), torch.from_numpy(gf), q_pids, g_pids, q_cams, g_cams


def reference_loop(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50):
    """torchreid's pure-Python evaluation (``eval_market1501``), with a stable argsort."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap = [], []
    for i in range(num_q):
        order = indices[i]
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        raw = matches[i][keep]
        if not np.any(raw):
            continue
        cmc = raw.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        tmp = np.asarray([x / (k + 1.0) for k, x in enumerate(raw.cumsum())]) * raw
        all_ap.append(tmp.sum() / raw.sum())
    return np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc), float(np.mean(all_ap))


def _time(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` runs (and the last output)."""
    return _time_cpu(fn, repeats)[0::2]


def _time_cpu(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall time, median process CPU time (all threads) and the last output."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(times)), float(np.median(cpu)), out


def memory_check(num_query: int, num_gallery: int, memory_budget: int, dim: int = 64) -> dict:
    """Run in a fresh process: peak RSS growth of a chunked ``num_query x num_gallery`` evaluation."""
    qf, gf, qp, gp, qc, gc = synthetic_problem(num_query, num_gallery, max(10, num_gallery // 20),
                                               num_gallery // 10, 6, dim=dim, seed=1)
    base = resident_bytes()
    if base is None:
        raise SystemExit("bench eval's memory check reads /proc/self/statm, which this system does not have")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    cmc, mAP = evaluate_rank(lambda s, e: euclidean_squared(qf[s:e], gf), qp, gp, qc, gc,
                             memory_budget=memory_budget)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "queries": num_query, "gallery": num_gallery, "memory_budget_MiB": memory_budget / 2**20,
        "features_MiB": (qf.numel() + gf.numel()) * 4 / 2**20,
        "full_distmat_would_be_GiB": num_query * num_gallery * 4 / 2**30,
        "peak_rss_growth_MiB": (max(peak, peak_before) - base) / 2**20,
        "seconds": dt, "rank1": float(cmc[0]), "mAP": mAP,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m reidlib bench eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    p.add_argument("--ref-queries", type=int, default=400,
                   help="queries the slow reference runs on (extrapolated to all); 0 skips it")
    p.add_argument("--mem-queries", type=int, default=10_000)
    p.add_argument("--mem-gallery", type=int, default=100_000)
    p.add_argument("--mem-budget-mib", type=float, default=256)
    p.add_argument("--skip-memory", action="store_true", help="skip the large memory check")
    p.add_argument("--json", metavar="PATH", help="save the results as JSON")
    p.add_argument("--_memory-child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._memory_child:
        print(json.dumps(memory_check(a.mem_queries, a.mem_gallery, int(a.mem_budget_mib * 2**20))))
        return 0

    rows = []
    out: dict = {}
    qf, gf, qp, gp, qc, gc = synthetic_problem(MARKET_Q, MARKET_G, MARKET_IDS, MARKET_DISTRACTORS, MARKET_CAMS)
    D = euclidean_squared(qf, gf)
    evaluate_rank(D[:50], qp[:50], gp, qc[:50], gc)  # warm-up
    load = os.getloadavg()[0]
    t_cpu, t_proc, (cmc, mAP) = _time_cpu(lambda: evaluate_rank(D, qp, gp, qc, gc), a.repeats)
    rows.append(("evaluate_rank, CPU (distmat given)", f"{MARKET_Q}x{MARKET_G}", t_cpu,
                 f"R-1 {cmc[0]:.4f} mAP {mAP:.4f}; target <= 1 s; process CPU time {t_proc:.3f} s "
                 f"on {torch.get_num_threads()} threads; load average {load:.1f} on {os.cpu_count()} cores"))
    out["market_cpu_s"] = t_cpu
    out["market_cpu_process_s"] = t_proc
    out["load_average"] = load
    out["market_rank1"], out["market_mAP"] = float(cmc[0]), mAP

    if a.ref_queries:
        n = min(a.ref_queries, MARKET_Q)
        Dn = D.numpy()
        t0 = time.perf_counter()
        cmc_ref, map_ref = reference_loop(Dn[:n], qp[:n], gp, qc[:n], gc)
        t_ref_sub = time.perf_counter() - t0
        cmc_sub, map_sub = evaluate_rank(D[:n], qp[:n], gp, qc[:n], gc)
        agree = bool(np.array_equal(cmc_sub, cmc_ref) and abs(map_sub - map_ref) < 1e-9)
        t_ref = t_ref_sub * MARKET_Q / n
        note = ("measured on all queries" if n == MARKET_Q else
                f"measured on {n} queries ({t_ref_sub:.2f} s), extrapolated x{MARKET_Q / n:.1f}")
        rows.append(("reference loop (torchreid-style numpy)", f"{MARKET_Q}x{MARKET_G}", t_ref,
                     f"{note}; agrees on the subset: {agree}"))
        rows.append(("speed-up vs reference", "", None, f"x{t_ref / t_cpu:.1f}"))
        out.update(reference_s=t_ref, reference_extrapolated=n != MARKET_Q, reference_queries=n,
                   reference_agrees=agree, speedup=t_ref / t_cpu)
        if not agree:
            print("ERROR: evaluate_rank disagrees with the reference loop on the subset", file=sys.stderr)

    if torch.cuda.is_available():
        Dg = D.cuda()
        evaluate_rank(Dg, qp, gp, qc, gc)  # warm-up
        t_gpu, (cmc_g, map_g) = _time(lambda: evaluate_rank(Dg, qp, gp, qc, gc), a.repeats)
        rows.append(("evaluate_rank, GPU", f"{MARKET_Q}x{MARKET_G}", t_gpu,
                     f"{torch.cuda.get_device_name(0)}; same result: {bool(np.array_equal(cmc_g, cmc)) and abs(map_g - mAP) < 1e-9}"))
        out["market_gpu_s"] = t_gpu
    else:
        rows.append(("evaluate_rank, GPU", "", None, "no CUDA device"))

    if not a.skip_memory:
        cmd = [sys.executable, "-m", "reidlib", "bench", "eval", "--_memory-child",
               "--mem-queries", str(a.mem_queries), "--mem-gallery", str(a.mem_gallery),
               "--mem-budget-mib", str(a.mem_budget_mib)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return res.returncode
        m = json.loads(res.stdout.strip().splitlines()[-1])
        ok = m["peak_rss_growth_MiB"] <= 2048
        rows.append(("memory: chunked distances (callable)", f"{m['queries']}x{m['gallery']}", m["seconds"],
                     f"peak RSS growth {m['peak_rss_growth_MiB']:.0f} MiB (target <= 2048: {'ok' if ok else 'FAILED'}); "
                     f"full matrix would be {m['full_distmat_would_be_GiB']:.1f} GiB; budget {m['memory_budget_MiB']:.0f} MiB"))
        out["memory"] = m

    w = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{w}}  {'size':>13}  {'seconds':>8}  notes")
    for name, size, t, note in rows:
        ts = f"{t:8.3f}" if t is not None else f"{'-':>8}"
        print(f"{name:<{w}}  {size:>13}  {ts}  {note}")
    if a.json:
        write_results(a.json, out, command="python -m reidlib bench eval " + shlex.join(argv),
                      device="cuda" if torch.cuda.is_available() else "cpu", bench="eval")
        print(f"saved {a.json}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
