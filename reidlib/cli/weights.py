"""``python -m reidlib weights``: the book's committed reference weights.

    python -m reidlib weights list                 # every model, its file and whether it is current
    python -m reidlib weights train NAME           # train one (resumes an interrupted run)
    python -m reidlib weights train --all          # every missing or stale one, inputs first
    python -m reidlib weights verify               # load every file, check its recipe hash (CI)
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    w = sub.add_parser("weights", help="the book's committed weights: list, train, verify",
                       description="The book profile's committed weights (weights/book/).")
    wsub = w.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    wsub.add_parser("list", help="every committed model and its state").set_defaults(func=_list)
    t = wsub.add_parser("train", help="train committed models and write their files and records")
    t.add_argument("names", nargs="*", help="model names (see `weights list`)")
    t.add_argument("--all", action="store_true", help="every model that is missing or stale, inputs first")
    t.add_argument("--overwrite", action="store_true", help="train even when the file is current")
    t.add_argument("--device", default="auto")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_train)
    v = wsub.add_parser("verify", help="load every file; check recipe hashes, contents and inputs")
    v.add_argument("names", nargs="*", help="only these models (default: all)")
    v.set_defaults(func=_verify)


def _list(args) -> int:
    from reidlib.weights import read_manifest, registry, status

    manifest = read_manifest()
    for name, spec in registry().items():
        state, why = status(name, manifest)
        rec = manifest["models"].get(name, {})
        extra = f"{rec.get('wall_time_s', 0):.0f} s, {rec.get('images_seen', 0):,} images" if rec else ""
        print(f"{state:8s} {name:40s} {extra}" + (f"  ({why})" if why else ""))
    return 0


def _train(args) -> int:
    from reidlib.engine.trainer import TrainingInterrupted
    from reidlib.weights import WeightsError, read_manifest, registry, status, train_weights

    reg = registry()
    if args.all == bool(args.names):
        print("weights train: give model names or --all", file=sys.stderr)
        return 2
    names = list(reg) if args.all else args.names
    for n in names:
        if n not in reg:
            print(f"weights train: unknown model {n!r}; the book's models: {', '.join(reg)}", file=sys.stderr)
            return 2
    for n in names:  # the registry lists inputs before the models that start from them
        if args.all and not args.overwrite and status(n, read_manifest())[0] == "ok":
            print(f"{n}: current")
            continue
        try:
            rec = train_weights(n, device=args.device, progress=not args.no_progress, overwrite=args.overwrite)
        except WeightsError as e:
            print(f"weights train: {e}", file=sys.stderr)
            return 1
        except TrainingInterrupted as e:  # SIGINT/SIGTERM: a checkpoint was written; the same command resumes
            print(f"weights train: {e}; run `python -m reidlib weights train {n}` again to continue", file=sys.stderr)
            return 130
        print(f"{n}: {rec['wall_time_s']:.0f} s of training, {rec['images_seen']:,} images, final loss "
              f"{rec['final_loss']:.4f}, {rec['bytes'] / 1e6:.2f} MB")
    return 0


def _verify(args) -> int:
    from reidlib.weights import registry, verify, weights_dir

    problems = verify(args.names or None)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    total = sum(f.stat().st_size for f in weights_dir().rglob("*.safetensors"))
    print(f"weights verify: {len(args.names or registry())} models current; {total / 1e6:.1f} MB in {weights_dir()}")
    return 0
