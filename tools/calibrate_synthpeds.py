#!/usr/bin/env python
"""Record SynthPeds' difficulty calibration on the global baseline.

SynthPeds' difficulty knobs (``reidlib.data.synthpeds.CALIBRATION``) were calibrated once:
the strong baseline's ``smoke`` recipe is trained on the ``smoke`` preset and scored under
the Market protocol; its holistic Rank-1 should land clearly below a perfect score, in the
75-90 band.  This script re-runs that check and writes
``results/calibration/synthpeds_v<version>.json`` in the one results schema
(:func:`reidlib.provenance.write_results`: command, commit and hardware in ``meta``, the
record in ``results``, earlier trials in ``tables["history"]``).
It never changes the knobs; the generator is frozen per version.

    python tools/calibrate_synthpeds.py [--seed 0] [--threads 1] [--out runs/calibration]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = (0.75, 0.90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "calibration"))
    ap.add_argument("--history", default=None,
                    help="JSON list of earlier calibration trials to keep in the record")
    args = ap.parse_args(argv)

    import shutil

    import torch

    from reidlib.data.synthpeds import CALIBRATION, SYNTHPEDS_VERSION, SynthPeds
    from reidlib.engine import train
    from reidlib.engine.runs import load_run
    from reidlib.eval import evaluate
    from reidlib.methods.baseline import BaselineMethod
    from reidlib.provenance import write_results

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) / f"synthpeds_v{SYNTHPEDS_VERSION}_seed{args.seed}"
    if out.exists():
        shutil.rmtree(out)
    data = SynthPeds("smoke", seed=args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    train("baseline", dataset=data, data_spec="synthpeds:smoke", profile="smoke", out=out,
          seed=args.seed, progress=False, device="cpu")
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    model, _, _ = load_run(out, "cpu")
    result = evaluate(model, data, ["market"], device="cpu", method="baseline", profile="smoke")[0]
    r1 = float(result["R-1"])
    record = {
        "synthpeds_version": SYNTHPEDS_VERSION,
        "preset": "smoke",
        "seed": args.seed,
        "recipe": BaselineMethod.recipe("smoke").to_dict(),
        "protocol": "market",
        "metrics": {k: float(result[k]) for k in ("R-1", "R-5", "R-10", "mAP")},
        "target_rank1": list(TARGET),
        "in_target": TARGET[0] <= r1 <= TARGET[1],
        "train_seconds": round(t_train, 1),
        "train_cpu_seconds": round(c_train, 1),
        "torch_threads": torch.get_num_threads(),
        "calibration": CALIBRATION.as_dict(),
    }
    tables = {"history": json.loads(Path(args.history).read_text())} if args.history else None
    dest = ROOT / "results" / "calibration" / f"synthpeds_v{SYNTHPEDS_VERSION}.json"
    command = shlex.join(["python", "tools/calibrate_synthpeds.py", *(argv if argv is not None else sys.argv[1:])])
    write_results(dest, record, command=command, profile="smoke", device="cpu", seed=args.seed, tables=tables)
    print(f"smoke baseline on SynthPeds v{SYNTHPEDS_VERSION}: R-1 {100 * r1:.1f}, mAP {100 * result['mAP']:.1f} "
          f"(target R-1 {100 * TARGET[0]:.0f}-{100 * TARGET[1]:.0f}); written to {dest.relative_to(ROOT)}")
    return 0 if record["in_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
