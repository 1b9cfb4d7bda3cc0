#!/usr/bin/env python
"""Execute every chapter once with papermill, then build the HTML book from those outputs.

    python tools/build_book.py [--profile book|smoke|full] [--only 00 03] [--no-execute] [--no-build]

The default profile is ``book`` (``$REIDLIB_PROFILE`` overrides it): every chapter evaluates the
committed weights of ``weights/book/`` and trains nothing; a missing or stale file stops the
chapter with a message naming it and the command that retrains it.

1. Each notebook listed in ``_toc.yml`` runs with papermill (cwd ``notebooks/``), with
   ``profile`` injected, into ``_build/executed/notebooks/``.  Timings go to
   ``_build/executed/timings.json``.
2. The book sources are staged in ``_build/src`` (config, toc, ``book/``, the executed
   notebooks) and ``jupyter-book build -W`` renders them into ``_build/html``.
The committed notebooks are never modified.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
EXECUTED = BUILD / "executed"
SRC = BUILD / "src"


def toc_files() -> list[str]:
    """Every ``file:`` entry of ``_toc.yml`` (without extension), in order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return files


def toc_notebooks() -> list[Path]:
    return [ROOT / f"{f}.ipynb" for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


def check_figures(path: Path) -> None:
    """Fail when a chapter that draws figures produced none (e.g. a non-inline MPLBACKEND)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    draws = any("plt." in c.source or "show_interactive" in c.source or "plot_" in c.source
                for c in nb.cells if c.cell_type == "code")
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if draws and images == 0:
        raise SystemExit(f"[build_book] {path} draws figures but its outputs hold no image: is MPLBACKEND "
                         f"set to a non-inline backend ({os.environ.get('MPLBACKEND')!r})?")


def execute(notebooks: list[Path], profile: str, device: str) -> dict:
    import papermill as pm

    # the kernels inherit this environment: a non-interactive MPLBACKEND (e.g. Agg) would
    # replace the inline backend, and the executed notebooks would hold no figures
    os.environ.pop("MPLBACKEND", None)
    # static figures only (reidlib.viz.widgets.STATIC_ENV): no kernel behind widgets in the
    # rendered book, and building widgets headless is where executions stalled
    os.environ["REIDLIB_STATIC_WIDGETS"] = "1"

    timings = {}
    tpath = EXECUTED / "timings.json"
    if tpath.exists():
        timings = json.loads(tpath.read_text())
    for nb in notebooks:
        out = EXECUTED / nb.relative_to(ROOT)
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"[build_book] executing {nb.relative_to(ROOT)} (profile={profile}, device={device})", flush=True)
        t0 = time.perf_counter()
        pm.execute_notebook(
            str(nb), str(out), parameters={"profile": profile, "device": device},
            cwd=str(nb.parent), kernel_name="python3", progress_bar=False, log_output=False,
            execution_timeout=900,
        )
        dt = time.perf_counter() - t0
        check_figures(out)
        timings[nb.stem] = {"seconds": round(dt, 1), "profile": profile}
        print(f"[build_book] {nb.stem}: {dt:.1f} s", flush=True)
        tpath.write_text(json.dumps(timings, indent=2) + "\n")
    return timings


def stage() -> None:
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, SRC / name)
    shutil.copytree(ROOT / "book", SRC / "book")
    (SRC / "notebooks").mkdir()
    for nb in toc_notebooks():
        executed = EXECUTED / nb.relative_to(ROOT)
        if not executed.exists():
            raise SystemExit(f"[build_book] {executed} is missing: execute {nb.relative_to(ROOT)} first "
                             f"(python tools/build_book.py --only {nb.stem[:2]})")
        shutil.copy2(executed, SRC / "notebooks" / nb.name)


def build() -> None:
    stage()
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(SRC), "--path-output", str(ROOT), "-W", "--keep-going"]
    print("[build_book]", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    print(f"[build_book] HTML book in {BUILD / 'html' / 'index.html'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=os.environ.get("REIDLIB_PROFILE", "book"), choices=["smoke", "book", "full"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", nargs="*", help="chapter number prefixes to execute (default: all)")
    ap.add_argument("--no-execute", action="store_true", help="reuse _build/executed")
    ap.add_argument("--no-build", action="store_true", help="execute only")
    ap.add_argument("--executed-dir", default=None,
                    help="where the executed notebooks go (default _build/executed; with --no-build only)")
    args = ap.parse_args(argv)
    if args.executed_dir:
        if not args.no_build:
            ap.error("--executed-dir goes with --no-build (the HTML book renders _build/executed)")
        global EXECUTED
        EXECUTED = Path(args.executed_dir).resolve()
    nbs = toc_notebooks()
    if args.only:
        nbs = [nb for nb in nbs if any(nb.name.startswith(p) for p in args.only)]
    if not args.no_execute:
        execute(nbs, args.profile, args.device)
    if not args.no_build:
        build()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
