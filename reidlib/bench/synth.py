"""``python -m reidlib bench synth``: SynthPeds rendering and writing speed.

    python -m reidlib bench synth [--n 300] [--workers 2] [--full] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time

from reidlib.data.writers import default_workers

MARKET_TARGET_S = 180.0  # the market preset on disk in under 3 minutes on a 2-core machine


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the workers)."""
    import resource

    me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Images per second: rendering alone (one process) and rendering + JPEG/PNG writing
    (``--workers`` processes), at 128x64 and 256x128, and the extrapolated (or, with
    ``--full``, measured) time to write the whole ``market`` preset."""
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.data.writers import write_dataset
    from reidlib.provenance import hardware_summary, write_results

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m reidlib bench synth", description=main.__doc__)
    ap.add_argument("--n", type=int, default=300, help="images per measurement (default 300)")
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--full", action="store_true", help="also write the whole market preset (about 32k images)")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    a = ap.parse_args(argv)
    rows = []
    market = SynthPeds("market")
    total_market = len(market.train) + len(market.query) + len(market.gallery) + len(market.junk)
    for size in ("smoke", "market"):
        ds = SynthPeds("market", size=size)
        for i in range(5):  # warm the background caches
            ds.render("train", i)
        t0 = time.perf_counter()
        for i in range(a.n):
            ds.render("train", 1000 + i)
        render_rate = a.n / (time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            per = max(1, a.n // 3)
            c0 = _cpu_seconds()
            t0 = time.perf_counter()
            man = write_dataset(ds, tmp, workers=a.workers, progress=False, overwrite=True, limit=per)
            dt = time.perf_counter() - t0
            cpu = _cpu_seconds() - c0
        n = sum(man["counts"].values())
        write_rate = n / dt
        cpu_ms = 1000.0 * cpu / n
        rows.append({"size": f"{ds.size[0]}x{ds.size[1]}", "render_img_s_1proc": round(render_rate, 1),
                     "write_img_s": round(write_rate, 1), "workers": a.workers, "images_written": n,
                     "write_cpu_ms_per_img": round(cpu_ms, 2),
                     "market_est_s": round(total_market / write_rate, 1),
                     "market_est_idle_s": round(total_market * cpu_ms / 1000.0 / max(1, min(a.workers, os.cpu_count() or 1)), 1)})
    full = None
    if a.full:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            write_dataset(market, tmp, workers=a.workers, progress=True, overwrite=True)
            full = round(time.perf_counter() - t0, 1)
    print(f"SynthPeds bench on {hardware_summary()} (shared CPU: other processes may slow it down)")
    print(f"{'size':>9s} | {'render img/s (1 proc)':>21s} | {'write img/s (' + str(a.workers) + ' procs)':>20s} | "
          f"{'CPU ms/img (write)':>18s} | {'market est.':>11s} | {'market est. idle':>16s}")
    for r in rows:
        print(f"{r['size']:>9s} | {r['render_img_s_1proc']:21.1f} | {r['write_img_s']:20.1f} | "
              f"{r['write_cpu_ms_per_img']:18.2f} | {r['market_est_s']:9.1f} s | {r['market_est_idle_s']:14.1f} s")
    print("market est.: at the measured write rate; market est. idle: CPU time per image x images / workers "
          "(what idle cores would take; the CPU time does not depend much on other load)")
    print(f"market preset: {total_market} images (incl. {len(market.junk)} junk); target < {MARKET_TARGET_S:.0f} s"
          + (f"; measured full write: {full} s" if full is not None else " (estimated from the 256x128 row; --full measures it)"))
    res = {"load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
           "rows": rows, "market_images": total_market, "market_full_write_s": full, "target_s": MARKET_TARGET_S}
    if a.json:
        write_results(a.json, res, command="python -m reidlib bench synth " + shlex.join(argv), device="cpu",
                      bench="synth")
        print(f"saved {a.json}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
