"""``python -m reidlib train`` and ``python -m reidlib evaluate``.

Examples::

    python -m reidlib train --method baseline --data synthpeds:smoke --profile smoke --out runs/baseline-smoke
    python -m reidlib train --method pcb --data market1501:/data/Market-1501-v15.09.15 --profile full \\
        --out runs/pcb --set triplet=true sampler=pk
    torchrun --nproc_per_node=4 -m reidlib train --method baseline --data market1501:/data/M --profile full --out runs/b
    python -m reidlib evaluate --run runs/baseline-smoke --protocol market
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def register(sub) -> None:
    from reidlib.engine.registry import METHODS

    t = sub.add_parser("train", help="train a method (checkpoints, resume, DDP under torchrun)",
                       description="Train a registered method into a run directory.")
    t.add_argument("--method", required=True, help=f"method name: {', '.join(sorted(METHODS))}")
    t.add_argument("--data", default="synthpeds:smoke",
                   help="dataset spec: synthpeds:<preset> or <name>:<path> (default synthpeds:smoke)")
    t.add_argument("--profile", default="smoke", choices=("smoke", "full"), help="recipe profile (default smoke)")
    t.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="recipe overrides: TrainConfig fields (epochs=10 lr=3e-4 image_size=256,128) or method "
                        "settings (triplet=true)")
    t.add_argument("--max-epochs", type=int, default=None, help="stop this call after N epochs (resume later)")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="evaluate a trained run under test protocols",
                       description="Evaluate the final weights of a run directory.")
    e.add_argument("--run", required=True, help="run directory written by `train`")
    e.add_argument("--protocol", nargs="+", default=["market"],
                   help="protocol names (market, partial-query, partial-gallery, single-shot-trials, crop-sweep, ...)")
    e.add_argument("--data", default=None, help="dataset spec (default: the run's training dataset)")
    e.add_argument("--device", default="auto")
    e.add_argument("--test-mode", default="resize", choices=("resize", "pad"), help="partial inputs: resize or pad")
    e.add_argument("--batch-size", type=int, default=128)
    e.add_argument("--json", default=None, help="write the results here (default: <run>/eval.json)")
    e.set_defaults(func=_evaluate)


def _train(args) -> int:
    from reidlib.engine.trainer import train

    res = train(args.method, args.data, args.profile, args.out, resume=args.resume, overrides=args.set,
                device=args.device, seed=args.seed, progress=not args.no_progress, max_epochs=args.max_epochs)
    last = res.get("last_epoch") or {}
    state = "finished" if res["completed"] else "stopped (resume with --resume)"
    print(f"{args.method}: {state} after {res['epochs_done']}/{res['epochs']} epochs in {args.out}; "
          f"last epoch loss {last.get('loss', float('nan')):.4f}, {last.get('images_per_s', 0):.1f} images/s")
    return 0


def evaluate_run(run: str, protocols, data: str | None = None, device: str = "auto", test_mode: str = "resize",
                 batch_size: int = 128, json_path: str | None = None, command: str | None = None):
    """Evaluate a finished run; results are saved to ``json_path`` (default ``<run>/eval.json``)."""
    try:
        from reidlib.eval import evaluate, save_results
    except ImportError as e:  # pragma: no cover - only while reidlib.eval is missing
        raise RuntimeError(f"`evaluate` needs reidlib.eval.evaluate, which cannot be imported here: {e}") from e
    from reidlib.data.datasets import build_dataset
    from reidlib.engine.trainer import load_run

    model, method, rc = load_run(run, device)
    spec = data or rc.get("dataset")
    if not spec or ":" not in str(spec):
        raise ValueError(f"the run {run} does not record a dataset spec ({spec!r}); pass --data, e.g. synthpeds:smoke")
    dataset = build_dataset(spec)
    results = evaluate(model, dataset, list(protocols), method=method.name, profile=rc.get("profile"),
                       device=device, test_mode=test_mode, batch_size=batch_size,
                       image_size=tuple(rc["train_config"]["image_size"]))
    out = Path(json_path) if json_path else Path(run) / "eval.json"
    save_results(out, results, command=command, profile=rc.get("profile"), extra={"run": str(run), "data": spec})
    return results, out


def _evaluate(args) -> int:
    from reidlib.eval import format_results

    cmd = "python -m reidlib " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results, out = evaluate_run(args.run, args.protocol, args.data, args.device, args.test_mode, args.batch_size,
                                args.json, command=cmd)
    print(format_results(results))
    print(f"\nresults written to {out}")
    return 0
