"""``python -m reidlib bench match --method stnreid``: the cost of pairwise matching.

A pairwise model (STNReID) scores every (query, gallery) pair with a network forward, so
its matching cost grows with ``Q x G`` instead of ``Q + G`` feature extractions.  This
benchmark measures, on a SynthPeds partial set (partial crops as queries, whole-body
gallery):

1. feature extraction (global features + kept images) for the queries and the gallery;
2. seconds of matching against the gallery size for the full pairwise mode (every pair)
   and the shortlist mode (global-feature ranking, STN rescoring of the top ``k``; ``k`` in
   ``--ks``), each a median of ``--repeats`` runs;
3. the accuracy (Rank-1/5, mAP, torchreid rules) of the full mode, of each shortlist and of
   the global features alone ("w/o STN") on the largest gallery, and what the shortlist
   loses against the full mode.

The model: ``--model quick`` (default) trains stage 1 for ``--train-iters`` iterations on
SynthPeds ``smoke`` first (a barely trained model: the accuracies show the *agreement*
between the modes, not what STNReID can reach); ``--model random`` keeps the initial
ReID module with a randomly perturbed STN; ``--model RUN_DIR`` loads a finished run.
The JSON output (``--json PATH``) is the one results schema
(:func:`reidlib.provenance.write_results`): the command, the commit, the hardware and the
seed in ``meta``, the settings, timings and accuracies in ``results``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _parse_ints(s: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--{what}={s!r}: expected comma-separated positive integers, e.g. 50,100,200") from None
    if not vals or min(vals) < 1:
        raise SystemExit(f"--{what}={s!r}: expected comma-separated positive integers, e.g. 50,100,200")
    return vals


def _parse_size(s: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size={s!r}: expected HxW, e.g. 128x64") from None
    return h, w


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, repeats: int, device: torch.device):
    times, out = [], None
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def build_model(method_name: str, model_spec: str, size, train_iters: int, device, seed: int):
    """The benchmarked model and a sentence saying what it is."""
    from reidlib.methods.registry import get_method

    cls = get_method(method_name)
    if model_spec not in ("quick", "random"):
        from reidlib.engine.runs import load_run

        return load_run(model_spec, device).model, f"trained run {model_spec}"
    cfg = cls.recipe("smoke").replace(image_size=tuple(size), pretrained=False)
    if model_spec == "random":
        from reidlib.data.synthpeds import SynthPeds

        torch.manual_seed(seed)
        model = cls(cfg, SynthPeds("smoke", seed=seed).num_train_pids).build_model().to(device).eval()
        stn = getattr(model, "stn", None)
        if stn is not None:  # the identity-initialised STN would make every mode equal the global ranking
            with torch.no_grad():
                stn.regressor[-1].weight.normal_(0, 0.02)
                stn.regressor[-1].bias.add_(torch.empty(6).uniform_(-0.15, 0.15))
        return model, "untrained ReID module, randomly perturbed STN (random init, seed %d)" % seed
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.engine.trainer import Trainer

    ds = SynthPeds("smoke", seed=seed, size=tuple(size))
    cfg = cfg.replace(epochs=1, max_iters_per_epoch=train_iters, milestones=(10**6,))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cls(cfg, ds.num_train_pids), ds, Path(tmp) / "run", device=str(device), seed=seed,
                          progress=False)
        trainer.fit()
        model = trainer.model.eval()
    return model, f"stage 1 trained for {train_iters} iterations on SynthPeds smoke ({cfg.batch_size} images/iter)"


@torch.no_grad()
def extract_all(model, records, source, size, device, batch_size: int = 64):
    from reidlib.data.loader import ImageDataset, build_loader
    from reidlib.data.transforms import build_test_transform
    from reidlib.models.base import Features

    loader = build_loader(ImageDataset(records, source, build_test_transform(size)), batch_size, device=device)
    feats = [model.extract(b["image"].to(device)) for b in loader]
    return Features.cat(feats)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m reidlib bench match", description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default="stnreid", help="a registered pairwise method (default: stnreid)")
    p.add_argument("--data", default="partial-reid-like", choices=("partial-reid-like", "partial-ilids-like"),
                   help="the SynthPeds partial preset")
    p.add_argument("--size", default="128x64", help="image size HxW (default 128x64; 256x128 = the paper's)")
    p.add_argument("--queries", type=int, default=20, help="partial queries (first N of the preset)")
    p.add_argument("--gallery-sizes", default="25,50,100,200", help="comma-separated gallery sizes")
    p.add_argument("--ks", default="10,50", help="shortlist sizes k")
    p.add_argument("--batch-pairs", type=int, default=256, help="pairs per batched STN + ReID forward")
    p.add_argument("--model", default="quick", help="'quick' (short stage-1 training), 'random', or a run folder")
    p.add_argument("--train-iters", type=int, default=20, help="stage-1 iterations for --model quick")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per setting (median)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="save the results as JSON")
    a = p.parse_args(argv)

    from reidlib.config import resolve_device
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.metrics.rank import evaluate_rank_detailed
    from reidlib.provenance import write_results

    device = resolve_device(a.device)
    size = _parse_size(a.size)
    sizes, ks = sorted(set(_parse_ints(a.gallery_sizes, "gallery-sizes"))), _parse_ints(a.ks, "ks")
    ds = SynthPeds(a.data, seed=a.seed, size=size)
    if max(sizes) > len(ds.gallery):
        raise SystemExit(f"--gallery-sizes: {max(sizes)} exceeds the {len(ds.gallery)} gallery images of "
                         f"SynthPeds {a.data}; use sizes up to {len(ds.gallery)}")
    if not 1 <= a.queries <= len(ds.query):
        raise SystemExit(f"--queries={a.queries}: SynthPeds {a.data} has {len(ds.query)} partial queries")

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    model, model_desc = build_model(a.method, a.model, size, a.train_iters, device, a.seed)
    t_model = time.perf_counter() - t0
    if not hasattr(model, "matcher") or not hasattr(model, "global_matcher"):
        raise SystemExit(f"method {a.method!r}: its model has no pairwise matcher (matcher(shortlist=...), global_matcher())")

    # gallery: a seeded shuffle, so that every prefix mixes the query identities with others
    order = np.random.default_rng(a.seed).permutation(len(ds.gallery))
    g_recs = [ds.gallery[i] for i in order[: max(sizes)]]
    q_recs = ds.query[: a.queries]
    t_q, qf = _timed(lambda: extract_all(model, q_recs, ds, size, device), 1, device)
    t_g, gf = _timed(lambda: extract_all(model, g_recs, ds, size, device), 1, device)
    q_pids = np.array([r.pid for r in q_recs]); g_pids = np.array([r.pid for r in g_recs])
    q_cams = np.array([r.camid for r in q_recs]); g_cams = np.array([r.camid for r in g_recs])

    rows, timing = [], []
    warm = model.matcher(shortlist=None, batch_pairs=a.batch_pairs)
    warm(qf[:1], gf[: min(4, len(gf))])  # warm-up (allocations, cuDNN)
    dists = {}
    for G in sizes:
        gsub = gf[:G]
        entry = {"gallery": G, "pairs_full": a.queries * G}
        t, d = _timed(lambda: warm(qf, gsub), a.repeats, device)
        entry["full_s"] = t
        entry["full_pairs_per_s"] = a.queries * G / max(t, 1e-9)
        if G == max(sizes):
            dists["full"] = d
        t, d = _timed(lambda: model.global_matcher()(qf, gsub), a.repeats, device)
        entry["global_s"] = t
        if G == max(sizes):
            dists["global (w/o STN)"] = d
        for k in ks:
            if k >= G:
                entry[f"shortlist{k}_s"] = None  # k >= G is the full mode
                continue
            m = model.matcher(shortlist=k, batch_pairs=a.batch_pairs)
            t, d = _timed(lambda: m(qf, gsub), a.repeats, device)
            entry[f"shortlist{k}_s"] = t
            if G == max(sizes):
                dists[f"shortlist k={k}"] = d
        timing.append(entry)

    acc = {}
    for name, d in dists.items():
        r = evaluate_rank_detailed(d, q_pids, g_pids, q_cams, g_cams, max_rank=min(50, d.shape[1]))
        acc[name] = {"rank1": r.rank(1), "rank5": r.rank(min(5, len(r.cmc))), "mAP": float(r.mAP),
                     "valid_queries": r.num_valid}
    for name in list(acc):
        if name.startswith("shortlist"):
            acc[name]["rank1_lost_vs_full"] = acc["full"]["rank1"] - acc[name]["rank1"]
            acc[name]["mAP_lost_vs_full"] = acc["full"]["mAP"] - acc[name]["mAP"]
            top = int(name.split("=")[1])
            acc[name]["same_top1_as_full"] = float(
                (dists[name].argmin(1) == dists["full"].argmin(1)).float().mean())
            acc[name]["k"] = top

    print(f"STNReID pairwise matching on SynthPeds {a.data} at {size[0]}x{size[1]}, {a.queries} partial queries, "
          f"device {device}")
    print(f"model: {model_desc} (built in {t_model:.1f} s); 1-min load average {load_before[0]:.1f} -> "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work slows the timings)")
    print(f"extraction: queries {t_q:.2f} s, gallery of {len(g_recs)} {t_g:.2f} s")
    head = f"{'gallery':>8} {'pairs':>8} {'global s':>9} {'full s':>9} {'pairs/s':>9} " + " ".join(f"{'top-' + str(k) + ' s':>9}" for k in ks)
    print(head)
    for e in timing:
        ss = " ".join(f"{e[f'shortlist{k}_s']:9.3f}" if e[f"shortlist{k}_s"] is not None else f"{'(=full)':>9}" for k in ks)
        print(f"{e['gallery']:>8} {e['pairs_full']:>8} {e['global_s']:9.4f} {e['full_s']:9.3f} {e['full_pairs_per_s']:9.0f} {ss}")
    print(f"accuracy on the gallery of {max(sizes)} (Rank-1 / Rank-5 / mAP, %):")
    for name, r in acc.items():
        extra = ""
        if "rank1_lost_vs_full" in r:
            extra = (f"   lost vs full: R-1 {100 * r['rank1_lost_vs_full']:+.1f}, mAP {100 * r['mAP_lost_vs_full']:+.1f}; "
                     f"same top-1 as full {100 * r['same_top1_as_full']:.0f}%")
        print(f"  {name:<18} {100 * r['rank1']:5.1f} / {100 * r['rank5']:5.1f} / {100 * r['mAP']:5.1f}{extra}")

    if a.json:
        out = {
            "method": a.method, "data": f"SynthPeds {a.data} (seed {a.seed})", "image_size": list(size),
            "queries": a.queries, "gallery_sizes": sizes, "ks": ks, "batch_pairs": a.batch_pairs, "repeats": a.repeats,
            "model": model_desc, "model_build_s": t_model, "extract_queries_s": t_q, "extract_gallery_s": t_g,
            "timing": timing, "accuracy": acc,
            "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        }
        write_results(a.json, out, command="python -m reidlib bench match " + shlex.join(argv), device=device,
                      seed=a.seed, bench="match")
        print(f"saved {a.json}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
