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
import shlex
import sys


def register(sub) -> None:
    from reidlib.methods.registry import METHODS

    t = sub.add_parser("train", help="train a method (checkpoints, resume, DDP under torchrun)",
                       description="Train a registered method into a run directory.")
    t.add_argument("--method", required=True, help=f"method name: {', '.join(sorted(METHODS))}")
    t.add_argument("--data", default="synthpeds:smoke",
                   help="dataset spec: synthpeds:<preset> or <name>:<path> (default synthpeds:smoke)")
    t.add_argument("--profile", default="smoke", choices=("smoke", "book", "full"), help="recipe profile (default smoke)")
    t.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (same seed, data and recipe); "
                        "a finished run is reused")
    t.add_argument("--overwrite", action="store_true", help="delete the run in --out first and train it again")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="recipe overrides: TrainConfig fields (epochs=10 lr=3e-4 image_size=256,128) or method "
                        "settings (triplet=true)")
    t.add_argument("--max-epochs", type=_positive_int, default=None, help="stop this call after N epochs (resume later)")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="evaluate a trained run or committed weights under test protocols",
                       description="Evaluate the final weights of a run directory.")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory written by `train`")
    src.add_argument("--weights", help="a committed model's name (`python -m reidlib weights list`) or its .safetensors file")
    e.add_argument("--protocol", nargs="+", default=["market"],
                   help="protocol names (market, partial-query, partial-gallery, single-shot-trials, crop-sweep, ...)")
    e.add_argument("--data", default=None,
                   help="dataset spec, e.g. synthpeds:partial-ilids-like (default: the dataset the run or the "
                        "weights' manifest record was trained on: its test split)")
    e.add_argument("--seed", type=int, default=None,
                   help="SynthPeds seed of the test set (new identities, never seen in training; default: 0)")
    e.add_argument("--device", default="auto")
    e.add_argument("--test-mode", default="resize", choices=("resize", "pad"), help="partial inputs: resize or pad")
    e.add_argument("--batch-size", type=int, default=128)
    e.add_argument("--json", default=None, help="write the results here (default: <run>/eval.json; with --weights: "
                                                "print only)")
    e.set_defaults(func=_evaluate)


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _train(args) -> int:
    from reidlib.engine.trainer import TrainingInterrupted, train

    if args.resume and args.overwrite:
        raise SystemExit("train: --resume and --overwrite exclude each other (continue the run, or replace it)")
    try:
        res = train(args.method, args.data, args.profile, args.out, resume=args.resume, overrides=args.set,
                    device=args.device, seed=args.seed, progress=not args.no_progress, max_epochs=args.max_epochs,
                    overwrite=args.overwrite)
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        return 130
    last = res.get("last_epoch") or {}
    state = "finished" if res["completed"] else "stopped (resume with --resume)"
    print(f"{args.method}: {state} after {res['epochs_done']}/{res['epochs']} epochs in {args.out}; "
          f"last epoch loss {last.get('loss', float('nan')):.4f}, {last.get('images_per_s', 0):.1f} images/s")
    return 0


def _evaluate(args) -> int:
    from reidlib.eval import format_results
    from reidlib.eval.evaluate import evaluate_run

    cmd = "python -m reidlib " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.weights:
        from reidlib.weights import evaluate_weights

        results, out = evaluate_weights(args.weights, args.protocol, args.data, seed=args.seed, device=args.device,
                                        test_mode=args.test_mode, batch_size=args.batch_size, json_path=args.json,
                                        command=cmd)
    else:
        results, out = evaluate_run(args.run, args.protocol, args.data, args.device, args.test_mode, args.batch_size,
                                    args.json, command=cmd, seed=args.seed)
    print(format_results(results))
    if out is not None:
        print(f"\nresults written to {out}")
    return 0
