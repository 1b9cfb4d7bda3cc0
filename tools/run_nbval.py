#!/usr/bin/env python
"""Run every chapter in the smoke profile, then validate the light chapters with nbval.

``--execute-all`` executes every chapter of the book with papermill in the ``smoke`` profile
(each model trained from scratch in seconds: the training code of every chapter stays
exercised) into ``_build/executed-smoke/``.  Committed notebooks carry no outputs, so the
reference outputs that nbval compares against are those papermill runs; chapters not executed
yet are executed first, once.  nbval then re-runs each light chapter with ``--nbval-lax``:
every cell must run, and cells marked ``# NBVAL_CHECK_OUTPUT`` must print exactly what
papermill's run printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_book  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chapters", nargs="+", default=["00", "01", "02"])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--executed-dir", default=str(build_book.BUILD / "executed-smoke"),
                    help="where papermill's runs go (default _build/executed-smoke; the book's own is _build/executed)")
    ap.add_argument("--execute-all", action="store_true",
                    help="first execute every chapter of the book in --profile (smoke: the training check)")
    args = ap.parse_args(argv)
    build_book.EXECUTED = Path(args.executed_dir).resolve()
    if args.execute_all:
        build_book.execute(build_book.toc_notebooks(), args.profile, "auto")
    nbs = [nb for nb in build_book.toc_notebooks() if any(nb.name.startswith(c) for c in args.chapters)]
    missing = [nb for nb in nbs if not (build_book.EXECUTED / nb.relative_to(ROOT)).exists()]
    if missing:
        build_book.execute(missing, args.profile, "auto")
    targets = [str(build_book.EXECUTED / nb.relative_to(ROOT)) for nb in nbs]
    if not targets:
        print("run_nbval: no notebooks matched", args.chapters, file=sys.stderr)
        return 1
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
           "--rootdir", str(build_book.EXECUTED), *targets]
    print("run_nbval:", " ".join(cmd), flush=True)
    env = dict(os.environ, REIDLIB_STATIC_WIDGETS="1")  # as in the book build
    env.pop("MPLBACKEND", None)
    return subprocess.call(cmd, cwd=str(ROOT / "notebooks"), env=env)


if __name__ == "__main__":
    raise SystemExit(main())
