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
   notebooks) and ``jupyter-book build -W`` renders them into ``_build/html``.  Staging tags
   papermill's injected-parameters cell ``remove-cell`` and adds a "Run this page yourself"
   note under each chapter's title (the repository address is ``repository.url`` of
   ``_config.yml``, the one place it is set).
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


def repository_url() -> str:
    """``repository.url`` of ``_config.yml``: the repository button's and launch buttons' address."""
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text()) or {}
    url = (cfg.get("repository") or {}).get("url")
    if not url:
        raise SystemExit(f"[build_book] {ROOT / '_config.yml'}: repository.url is not set; expected the address "
                         f"of this book's repository (e.g. https://github.com/<owner>/<name>)")
    return str(url).rstrip("/")


RUN_LOCALLY = """:::{{admonition}} Run this page yourself
:class: note dropdown

The launch buttons at the top open this notebook on Binder or Colab from
<{url}>; they work only where that repository is public, and those services
have neither the real datasets nor, on Binder, a GPU. To run it on your machine:

```bash
git clone {url} && cd {name}
make env                                   # .venv with torch, reidlib, papermill
.venv/bin/jupyter lab notebooks/{nb}        # or, headless:
.venv/bin/papermill notebooks/{nb} out.ipynb -p profile book   # smoke | book | full
```

`book` evaluates the committed weights on the CPU in minutes, `smoke` trains every model from
scratch in seconds, `full` runs the papers' recipes (a GPU; `-p data_root <folder>` for the real
datasets). See [How to use this book](../book/how_to_use.md).
:::"""


def prepare_for_book(nb_path: Path, out: Path, url: str) -> None:
    """Copy an executed notebook into the staged sources, ready to render.

    Papermill's injected-parameters cell gets ``remove-cell`` (it only repeats the parameters),
    and a collapsed "Run this page yourself" note goes right under the title cell.
    """
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    title = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")), None)
    if title is None:
        raise SystemExit(f"[build_book] {nb_path}: no markdown cell starting with a '# ' title; every chapter opens with one")
    note = nbformat.v4.new_markdown_cell(RUN_LOCALLY.format(url=url, name=url.rsplit("/", 1)[-1], nb=nb_path.name))
    note.metadata["tags"] = ["run-locally"]
    nb.cells.insert(title + 1, note)
    nbformat.write(nb, out)


def stage() -> None:
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, SRC / name)
    shutil.copytree(ROOT / "book", SRC / "book")
    (SRC / "notebooks").mkdir()
    url = repository_url()
    for nb in toc_notebooks():
        executed = EXECUTED / nb.relative_to(ROOT)
        if not executed.exists():
            raise SystemExit(f"[build_book] {executed} is missing: execute {nb.relative_to(ROOT)} first "
                             f"(python tools/build_book.py --only {nb.stem[:2]})")
        prepare_for_book(executed, SRC / "notebooks" / nb.name, url)


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
