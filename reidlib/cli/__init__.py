"""``python -m reidlib``: the command line.

Each sub-command is a module of this package listed in :data:`COMMANDS` (``info``,
``train`` + ``evaluate``, ``synth``, ``weights``); it exposes ``register(subparsers)`` which adds its
parser and sets ``func``.  Benchmarks (``python -m reidlib bench NAME``) live in
:mod:`reidlib.bench` and are listed in :data:`BENCHES` as ``"module:function"``; the
function takes the argument list (``list[str]``) and writes its JSON (``--json PATH``)
with :func:`reidlib.provenance.write_results`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from reidlib import __version__

# sub-command modules, each with register(subparsers)
COMMANDS: list[str] = [
    "reidlib.cli.info",
    "reidlib.cli.weights",
    "reidlib.cli.train",
    "reidlib.cli.synth",
]

# name -> "module:function(argv) -> int"
BENCHES: dict[str, str] = {
    "train": "reidlib.bench.train:main",
    "synth": "reidlib.bench.synth:main",
    "eval": "reidlib.bench.eval:main",
    "match": "reidlib.bench.match:main",
    "gpu": "reidlib.bench.gpu:main",
}


def _bench(args) -> int:
    name = args.name
    if name not in BENCHES:
        print(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHES)) or '(none)'}", file=sys.stderr)
        return 2
    mod, fn = BENCHES[name].split(":")
    return int(getattr(importlib.import_module(mod), fn)(args.bench_args) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reidlib",
        description="reidlib: partial person re-identification -- data, training, evaluation, benchmarks.",
    )
    p.add_argument("--version", action="version", version=f"reidlib {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMANDS:
        importlib.import_module(modname).register(sub)
    b = sub.add_parser("bench", help="run a benchmark (speed/memory targets)",
                       description="Benchmarks: " + (", ".join(sorted(BENCHES)) or "(none yet)"))
    b.add_argument("name", help="benchmark name: " + (", ".join(sorted(BENCHES)) or "(none yet)"))
    b.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    b.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)
