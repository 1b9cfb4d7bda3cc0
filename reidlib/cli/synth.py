"""``python -m reidlib synth``: write a SynthPeds preset to disk (its speed: ``python -m reidlib bench synth``,
:mod:`reidlib.bench.synth`).

    python -m reidlib synth --preset smoke --out data/synth-smoke --seed 0 [--layout market1501] [--workers 2]
    python -m reidlib synth --preset tiny --out data/synth-smoke --overwrite   # replaces the tree written before
"""

from __future__ import annotations

from reidlib.data.writers import default_workers

import sys
import time


def _run(args) -> int:
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.data.writers import default_layout, write_dataset

    try:
        ds = SynthPeds(args.preset, seed=args.seed, size=args.size)
        layout = args.layout or default_layout(ds)
        t0 = time.perf_counter()
        man = write_dataset(ds, args.out, layout=layout, workers=args.workers, masks=not args.no_masks,
                            progress=not args.quiet, overwrite=args.overwrite, limit=args.limit)
    except (ValueError, OSError) as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    n = sum(man["counts"].values())
    print(f"wrote {n} images of SynthPeds {ds.token} (seed {ds.seed}, v{ds.version}) in the {layout} layout to {args.out} "
          f"in {dt:.1f} s ({n / max(dt, 1e-9):.0f} images/s)")
    for folder, c in man["counts"].items():
        print(f"  {folder:24s} {c:6d}")
    return 0


def register(sub) -> None:
    # no reidlib.data import here: building the parser must stay cheap (reidlib.data imports torch);
    # the preset and layout names are validated by SynthPeds / the writers, which name the accepted ones
    p = sub.add_parser("synth", help="write a SynthPeds preset to disk in a real dataset's layout",
                       description="Render a SynthPeds preset and write it in the layout of the real benchmark it imitates "
                                   "(images as JPEG, part masks as PNG beside them, synthpeds.json manifest).")
    p.add_argument("--preset", default="smoke",
                   help="SynthPeds preset: tiny, smoke, market, partial-reid-like, partial-ilids-like, occluded-reid-like (default: smoke)")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0)")
    p.add_argument("--size", default=None, help="'smoke' (128x64), 'market' (256x128) or HxW; default: the preset's")
    p.add_argument("--layout", default=None,
                   help="market1501, partial-reid, partial-ilids, partial-ilids-reid or occluded-reid (default: the layout the preset imitates)")
    p.add_argument("--workers", type=int, default=default_workers(), help="rendering processes (default: min(2, cpus))")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of each folder")
    p.add_argument("--no-masks", action="store_true", help="do not write the part masks")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset tree written before by this command (its files are deleted first; "
                        "a folder holding anything else is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
