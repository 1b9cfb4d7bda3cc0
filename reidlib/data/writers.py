"""Write SynthPeds presets to disk in the real datasets' layouts.

Layouts (:data:`LAYOUTS`):

* ``market1501`` -- ``bounding_box_train/``, ``bounding_box_test/``, ``query/`` with Market-1501
  names ``PPPP_cCsS_FFFFFF_BB.jpg`` (pid on 4 digits, camera 1-based, sequence, frame,
  box index).  ``bounding_box_test/`` also holds the distractors (``0000_...``) and a
  few *junk* images (``-1_...``: bad detections, dropped by Market-1501 readers, as in
  the real release).
* ``partial-reid`` -- ``partial_body_images/`` (the partial crops, native size),
  ``occluded_body_images/`` (the holistic frames they were cut from, with the removed
  part behind an occluder; for the occluded preset: the occluded queries) and
  ``whole_body_images/``, names ``NNN_KK.jpg``; identities renumbered 1..N.
* ``partial-ilids`` -- the DSR release: ``Probe/NNN.jpg`` + ``Gallery/NNN.jpg``;
  ``partial-ilids-reid`` -- the other layout: ``partial_body_images/NNN.jpg`` +
  ``whole_body_images/NNN.jpg``.  One probe and one gallery image per identity.
* ``occluded-reid`` -- ``occluded_body_images/NNN/NNN_KK.tif`` + ``whole_body_images/NNN/NNN_KK.tif``.

Part masks are PNGs (labels of :data:`reidlib.data.base.PART_NAMES`, 255 = occluded)
at :func:`mask_path_for` of each image.  JPEG quality is fixed (:data:`JPEG_QUALITY`), so
``(preset, seed, version)`` gives the same files.  ``synthpeds.json`` (the manifest)
records the preset, seed, version, size, layout, counts and the pid renumbering; it is
written first (``"complete": false``) and rewritten at the end, and marks the tree as one
that ``overwrite=True`` (``--overwrite``) may replace.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

JPEG_QUALITY = 95
MANIFEST = "synthpeds.json"
MASK_SUFFIX = "_masks"
LAYOUTS = ("market1501", "partial-reid", "partial-ilids", "partial-ilids-reid", "occluded-reid")
#: the image folders of the layouts (the mask rule keys on them)
IMAGE_FOLDERS = ("bounding_box_train", "bounding_box_test", "query", "partial_body_images",
                 "occluded_body_images", "whole_body_images", "Probe", "Gallery")


def default_workers() -> int:
    """Rendering processes by default: ``min(2, cpus)``."""
    return max(1, min(2, os.cpu_count() or 1))


def mask_path_for(image_path: str | os.PathLike) -> Path:
    """Where the part mask of an image lives.

    The rule: the innermost ancestor folder of the image whose name is one of
    :data:`IMAGE_FOLDERS` gets the suffix ``_masks``, the rest of the path is kept and the
    extension becomes ``.png``; an image outside those folders has its mask in
    ``<parent>_masks/``.  Examples::

        Market/bounding_box_train/0002_c1s1_000151_01.jpg -> Market/bounding_box_train_masks/0002_c1s1_000151_01.png
        Occluded_REID/occluded_body_images/001/001_01.tif -> Occluded_REID/occluded_body_images_masks/001/001_01.png
    """
    p = Path(image_path)
    parts = p.parts
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] in IMAGE_FOLDERS:
            return Path(*parts[:k], parts[k] + MASK_SUFFIX, *parts[k + 1:]).with_suffix(".png")
    return p.parent.with_name(p.parent.name + MASK_SUFFIX) / (p.stem + ".png")


def market_name(pid: int, camid: int, index: int, ext: str = ".jpg") -> str:
    """A Market-1501 file name ``PPPP_cCsS_FFFFFF_BB.jpg`` (camid 0-based; pid -1 -> ``-1_...``)."""
    pid_s = "-1" if pid == -1 else f"{pid:04d}"
    seq = 1 + (index * 7) % 6
    frame = 151 + 25 * index
    return f"{pid_s}_c{camid + 1}s{seq}_{frame:06d}_{1 + index % 3:02d}{ext}"


@dataclass(frozen=True)
class Job:
    split: str
    index: int
    path: str  # relative to the output folder


def default_layout(ds) -> str:
    """The real benchmark a preset imitates: market1501, partial-reid, partial-ilids or occluded-reid."""
    kind, name = ds.preset.kind, ds.preset.name
    if kind == "market":
        return "market1501"
    if name == "partial-ilids-like":
        return "partial-ilids"
    if kind == "occluded":
        return "occluded-reid"
    return "partial-reid"


def _renumber(recs) -> dict[int, int]:
    return {pid: i + 1 for i, pid in enumerate(sorted({r.pid for r in recs if r.pid > 0}))}


def plan(ds, layout: str | None = None) -> tuple[list[Job], dict]:
    """The files a layout writes for dataset ``ds`` and the pid renumbering ``{layout pid: pid}``."""
    layout = layout or default_layout(ds)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; accepted layouts: {', '.join(LAYOUTS)}")
    jobs: list[Job] = []
    pid_map: dict[int, int] = {}
    kind = ds.preset.kind
    if layout == "market1501":
        for split, folder in (("train", "bounding_box_train"), ("gallery", "bounding_box_test"), ("junk", "bounding_box_test"), ("query", "query")):
            for i, r in enumerate(ds.records(split)):
                jobs.append(Job(split, i, f"{folder}/{market_name(r.pid, r.camid, i)}"))
        return jobs, pid_map
    if kind == "market":
        raise ValueError(f"layout {layout!r} is for the partial/occluded presets; preset {ds.preset.name!r} is Market-like: "
                         f"use layout 'market1501'")
    nq, ng = ds.preset.per_id
    remap = _renumber(ds.query)
    pid_map = {v: k for k, v in remap.items()}

    def numbered(split: str, folder: str, single: bool, nested: bool = False, ext: str = ".jpg"):
        seen: dict[int, int] = {}
        for i, r in enumerate(ds.records(split)):
            n = remap[r.pid]
            seen[n] = seen.get(n, 0) + 1
            if single:
                name = f"{n:03d}{ext}"
            else:
                name = f"{n:03d}_{seen[n]:02d}{ext}"
            jobs.append(Job(split, i, f"{folder}/{n:03d}/{name}" if nested else f"{folder}/{name}"))

    if layout == "partial-reid":
        if kind == "partial":
            numbered("query", "partial_body_images", False)
            numbered("query_holistic", "occluded_body_images", False)
        else:
            numbered("query", "occluded_body_images", False)
        numbered("gallery", "whole_body_images", False)
    elif layout in ("partial-ilids", "partial-ilids-reid"):
        if (nq, ng) != (1, 1):
            raise ValueError(f"layout {layout!r} holds one probe and one gallery image per identity; "
                             f"preset {ds.preset.name!r} has {nq} + {ng}: use layout 'partial-reid'")
        qf, gf = ("Probe", "Gallery") if layout == "partial-ilids" else ("partial_body_images", "whole_body_images")
        numbered("query", qf, True)
        numbered("gallery", gf, True)
    elif layout == "occluded-reid":
        numbered("query", "occluded_body_images", False, nested=True, ext=".tif")
        numbered("gallery", "whole_body_images", False, nested=True, ext=".tif")
    return jobs, pid_map


def _save(image: np.ndarray, mask: np.ndarray | None, path: Path, masks: bool) -> None:
    from PIL import Image

    im = Image.fromarray(image)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        im.save(path, format="JPEG", quality=JPEG_QUALITY)
    else:
        im.save(path)
    if masks and mask is not None:
        mp = mask_path_for(path)
        Image.fromarray(mask).save(mp, format="PNG", compress_level=1)


# ---- worker side (one SynthPeds per process) ----
_WORKER: dict = {}


def _worker_init(preset: str, seed: int, size) -> None:
    from reidlib.data.synthpeds import SynthPeds

    _WORKER["ds"] = SynthPeds(preset, seed=seed, size=size, cache_mb=0)


def _worker_run(args) -> int:
    out, masks, chunk = args
    ds = _WORKER["ds"]
    for split, index, rel in chunk:
        s = ds.render(split, index)
        _save(s["image"], s["mask"], Path(out) / rel, masks)
    return len(chunk)


def _start_method() -> str:
    """``fork`` on Linux (workers start at once; they render with numpy/Pillow only), else ``spawn``."""
    import multiprocessing as mp
    import sys

    return "fork" if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods() else "spawn"


_PROBE = ".synthpeds-write-test"


def _written_tree_entries(out: Path) -> list[Path]:
    """The entries of ``out`` if it is a dataset tree written by :func:`write_dataset`; else an error naming it.

    Such a tree holds :data:`MANIFEST` (``"generator": "reidlib SynthPeds"``) and otherwise
    only image folders of :data:`IMAGE_FOLDERS` and their ``_masks`` folders.
    """
    refuse = ("--overwrite / overwrite=True only replaces a dataset tree written by reidlib's SynthPeds writers "
              "('python -m reidlib synth'); delete the folder yourself or choose a new or empty one")
    manifest = out / MANIFEST
    if not manifest.is_file():
        raise FileExistsError(f"output folder {str(out)!r} is not empty and has no {MANIFEST} manifest, so it does not "
                              f"look like a SynthPeds dataset tree; refusing to delete it. {refuse}")
    try:
        generator = json.loads(manifest.read_text()).get("generator")
    except (ValueError, AttributeError, OSError):
        generator = None
    if generator != "reidlib SynthPeds":
        raise FileExistsError(f"output folder {str(out)!r}: {str(manifest)!r} is not a SynthPeds manifest (expected a "
                              f"JSON object with \"generator\": \"reidlib SynthPeds\"); refusing to delete the folder. {refuse}")
    folders = set(IMAGE_FOLDERS) | {f + MASK_SUFFIX for f in IMAGE_FOLDERS}
    entries = sorted(out.iterdir())
    foreign = [e.name for e in entries if e.is_symlink()
               or not ((e.name in (MANIFEST, _PROBE) and e.is_file()) or (e.name in folders and e.is_dir()))]
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(f"output folder {str(out)!r} holds {shown}, which the SynthPeds writers do not write "
                              f"(expected only {MANIFEST} and image folders such as bounding_box_train/, "
                              f"whole_body_images/ and their _masks/); refusing to delete it. {refuse}")
    return entries


def _remove_written_tree(out: Path) -> None:
    """Delete a tree written by :func:`write_dataset` (checked by :func:`_written_tree_entries`), manifest last."""
    import shutil

    entries = _written_tree_entries(out)
    for e in entries:
        if e.is_dir():
            shutil.rmtree(e)
        elif e.name != MANIFEST:
            e.unlink()
    (out / MANIFEST).unlink()


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {str(out)!r} is a file; expected a folder (new or empty)")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"output folder {str(out)!r} is not empty; choose a new folder or pass overwrite=True "
                                  f"(--overwrite) to replace the dataset tree written there before")
        _remove_written_tree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / _PROBE
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"cannot write to output folder {str(out)!r}: {e.strerror or e}; expected a writable folder") from None


def write_dataset(ds, out: str | os.PathLike, layout: str | None = None, workers: int = 1, masks: bool = True,
                  progress: bool = True, overwrite: bool = False, limit: int | None = None) -> dict:
    """Render every image of ``ds`` (a :class:`~reidlib.data.synthpeds.SynthPeds`) into ``out``.

    Args:
        layout: one of :data:`LAYOUTS`; default: the one the preset imitates (:func:`default_layout`).
        workers: rendering processes (1 = in this process).
        masks: also write the part masks (at :func:`mask_path_for`).
        overwrite: replace the dataset tree written in ``out`` before (its files are deleted
            first, so none of an earlier preset remains); a non-empty ``out`` that is not such a
            tree (no ``synthpeds.json`` manifest, or other files in it) is refused, naming it.
        limit: write only the first ``limit`` images of each folder (benchmarks, quick looks).

    Returns the manifest (also written to ``out/synthpeds.json``).
    """
    out = Path(out)
    jobs, pid_map = plan(ds, layout)
    layout = layout or default_layout(ds)
    if limit is not None:
        kept, per = [], {}
        for j in jobs:
            f = j.path.split("/", 1)[0]
            per[f] = per.get(f, 0) + 1
            if per[f] <= limit:
                kept.append(j)
        jobs = kept
    _check_out(out, overwrite)
    # a first manifest, marked incomplete: an interrupted write is still a tree that --overwrite replaces
    (out / MANIFEST).write_text(json.dumps({"generator": "reidlib SynthPeds", "complete": False,
                                            "preset": ds.preset.name, "seed": ds.seed, "layout": layout}, indent=1))
    from tqdm.auto import tqdm

    # folders first (once), so the workers only encode and write files
    for d in sorted({(out / j.path).parent for j in jobs}):
        d.mkdir(parents=True, exist_ok=True)
        if masks:
            mask_path_for(d / "x.jpg").parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(jobs), desc=f"synthpeds {ds.token} -> {layout}", unit="img", disable=not progress)
    items = [(j.split, j.index, j.path) for j in jobs]
    if workers <= 1:
        for split, index, rel in items:
            s = ds.render(split, index)
            _save(s["image"], s["mask"], out / rel, masks)
            bar.update(1)
    else:
        import multiprocessing as mp

        size = max(8, min(64, len(items) // (8 * workers) or 8))
        chunks = [(str(out), masks, items[k:k + size]) for k in range(0, len(items), size)]
        method = _start_method()
        ctx = mp.get_context(method)
        if method == "fork":  # the workers inherit the dataset and its warmed background textures
            for c in range(len(ds.cameras)):
                ds.renderer.background(c)
            _WORKER["ds"] = ds
            init, initargs = None, ()
        else:
            init, initargs = _worker_init, (ds.preset.name, ds.seed, ds.size)
        with ctx.Pool(workers, initializer=init, initargs=initargs) as pool:
            try:
                for n in pool.imap_unordered(_worker_run, chunks):
                    bar.update(n)
            finally:
                _WORKER.pop("ds", None)
    bar.close()
    counts: dict[str, int] = {}
    for j in jobs:
        f = j.path.split("/", 1)[0]
        counts[f] = counts.get(f, 0) + 1
    manifest = {
        "generator": "reidlib SynthPeds", "complete": True, "preset": ds.preset.name, "seed": ds.seed, "version": ds.version,
        "size": list(ds.size), "layout": layout, "jpeg_quality": JPEG_QUALITY, "masks": masks,
        "mask_rule": "innermost image folder F -> F_masks, same relative path, .png (reidlib.data.writers.mask_path_for)",
        "counts": counts, "limit": limit,
        "junk": "market1501 layout: bounding_box_test/-1_* are junk (bad detections), dropped by readers",
        "pid_map": {str(k): v for k, v in sorted(pid_map.items())},
        "dataset": {k: v for k, v in ds.describe().items() if k != "cameras"},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def write_market1501(ds, out, **kw) -> dict:
    """Market-1501 layout (see the module docstring)."""
    return write_dataset(ds, out, layout="market1501", **kw)


def write_partial_reid(ds, out, **kw) -> dict:
    """Partial-REID layout (see the module docstring)."""
    return write_dataset(ds, out, layout="partial-reid", **kw)


def write_partial_ilids(ds, out, variant: str = "dsr", **kw) -> dict:
    """Partial-iLIDS layout: ``variant="dsr"`` (``Probe/`` + ``Gallery/``) or ``"reid"``
    (``partial_body_images/`` + ``whole_body_images/``)."""
    if variant not in ("dsr", "reid"):
        raise ValueError(f"variant={variant!r}: expected 'dsr' (Probe/ + Gallery/) or 'reid' (partial_body_images/ + whole_body_images/)")
    return write_dataset(ds, out, layout="partial-ilids" if variant == "dsr" else "partial-ilids-reid", **kw)


def write_occluded_reid(ds, out, **kw) -> dict:
    """Occluded-REID layout (see the module docstring)."""
    return write_dataset(ds, out, layout="occluded-reid", **kw)
