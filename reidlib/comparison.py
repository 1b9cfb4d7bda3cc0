"""Chapter 08's support: every method of the book side by side, on every protocol.

* :data:`COMPARED` -- the methods compared and the chapter model each one is (one model per
  method, the same on every protocol: a reader does not know in advance which side of a person a
  crop keeps); :func:`load_compared` loads them without training anything: the committed book
  weights (profiles ``book`` and ``smoke``), or the chapters' finished runs (``full``); a missing
  model is named, with the command that makes it;
* :func:`comparison_columns` -- the protocols as the columns of one table (each column one
  setting: a test set, a protocol and, for the crop sweep, one gamma);
* :func:`isolated_matching_cost` -- :func:`reidlib.eval.costs.matching_cost` of a compared model in
  a fresh Python process (``python -m reidlib.comparison FOLDER``) that loads only the model and
  the features, so that its peak memory is the matching's own;
* :func:`kendall_matrix` -- Kendall's tau between the methods' orderings under two protocols;
  :func:`headline_flips` -- the papers' headline comparisons, and the protocols under which the
  measured order is the other way round.

The whole-book scoreboard is :func:`reidlib.chapters.book_claim_rows` and
:func:`reidlib.chapters.scoreboard_html`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from reidlib.config import RunConfig, find_project_root
from reidlib.eval.costs import MatchCost, load_features, matching_cost, save_features
from reidlib.metrics.features import Features
from reidlib.eval.protocols import (CropSweep, MixedProtocol, PartialGalleryProtocol, PartialQueryProtocol, Protocol,
                                    SingleShotTrials)

__all__ = ["Compared", "COMPARED", "LoadedMethod", "load_compared", "Column", "comparison_columns", "HEADLINES",
           "Headline", "kendall_matrix", "headline_flips", "isolated_matching_cost"]


@dataclass(frozen=True)
class Compared:
    """One compared method: its row ``label``, the chapter and model name of its weights
    (``<chapter>/<model>`` in the registry of :mod:`reidlib.weights`; ``<model>-<hash>`` run
    folders under ``runs/<chapter>/full``), the test mode, and whether its matcher scores pairs
    with a network (then it ranks a shortlist, :class:`~reidlib.metrics.matchers.PairwiseMatcher`)."""

    label: str
    chapter: str
    model: str
    test_mode: str = "resize"
    pairwise: bool = False
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.chapter}/{self.model}"


#: the book's methods, each the model its chapter reports as the method (VPM: the bilateral
#: model, trained on top and bottom crops: the one VPM model that does not assume which side a
#: crop keeps; STNReID: Pipeline Mode; PPCL: the full model, +R+L with both losses)
COMPARED: tuple[Compared, ...] = (
    Compared("Pad", "03_holistic_models_fail", "baseline", test_mode="pad",
             note="the strong baseline; a crop is padded to the input's aspect ratio"),
    Compared("Resize", "03_holistic_models_fail", "baseline", note="the strong baseline; a crop is resized to the input"),
    Compared("PCB", "03_holistic_models_fail", "pcb", note="six horizontal stripes, every stripe compared"),
    Compared("VPM", "04_vpm", "vpm-bilateral-p6", note="six regions, trained on top and bottom crops"),
    Compared("STNReID", "05_stnreid", "stage2-PM", pairwise=True, note="Pipeline Mode: the STN warps the gallery image"),
    Compared("PPCL", "06_ppcl", "ppcl", pairwise=True, note="+R+L, PP-Cycle and PP-Triplet"),
    Compared("HPNet", "07_sanet", "hpnet", note="four part branches with masks (the reference recipe)"),
    Compared("SANet", "07_sanet", "sanet", note="HPNet's branches, a global branch and the AFE"),
)


@dataclass
class LoadedMethod:
    """A compared method's model (eval mode), its input size, and where it came from."""

    entry: Compared
    model: object
    image_size: tuple[int, int]
    source: str
    train_time_s: float | None = None
    ref: dict | None = None  # {"weights": key} or {"run": RUN_DIR}: how a fresh process loads it again


def _newest_finished_run(root: Path, model: str) -> Path | None:
    from reidlib.engine.runs import RunDir

    runs = [d for d in sorted(root.glob(f"{model}-*")) if d.is_dir() and RunDir(d).is_finished()]
    return max(runs, key=lambda d: (d / "model.safetensors").stat().st_mtime) if runs else None


def load_compared(cfg: RunConfig, entries: Sequence[Compared] = COMPARED) -> tuple[dict, dict]:
    """Load every compared method, training nothing: ``(loaded, missing)``, ``loaded[label]`` a
    :class:`LoadedMethod` and ``missing[label]`` why it could not be loaded and the command that
    makes it.

    Profiles ``book`` and ``smoke`` read the committed book weights (:func:`reidlib.weights.load_committed`;
    the smoke profile checks the chapter's code on them, on the smaller smoke test sets); ``full``
    reads the newest finished run ``runs/<chapter>/full/<model>-<hash>`` that the chapter's
    notebook trained with ``profile="full"``. Two entries of one model (Pad and Resize) share it."""
    from reidlib.engine.runs import load_run
    from reidlib.weights import WeightsError, load_committed, registry

    root = find_project_root()
    loaded, missing, cache = {}, {}, {}
    for e in entries:
        if e.key in cache:
            src = cache[e.key]
            if isinstance(src, LoadedMethod):
                loaded[e.label] = LoadedMethod(e, src.model, src.image_size, src.source, src.train_time_s, src.ref)
            else:
                missing[e.label] = src
            continue
        if cfg.profile in ("book", "smoke"):
            spec = registry().get(e.key)
            if spec is None:
                why = f"{e.key} is not in the registry of committed weights (reidlib.weights.registry)"
            else:
                try:
                    model, _, rec = load_committed(e.key, str(cfg.device))
                    size = tuple(int(v) for v in spec.config().image_size)
                    cache[e.key] = LoadedMethod(e, model, size, f"committed weights {spec.file.relative_to(root)}",
                                                rec.get("wall_time_s"), {"weights": e.key})
                except WeightsError as err:
                    why = str(err)
        else:
            run_root = root / "runs" / e.chapter / cfg.profile
            d = _newest_finished_run(run_root, e.model)
            if d is None:
                why = (f"no finished run {run_root.relative_to(root)}/{e.model}-<hash>: run "
                       f"notebooks/{e.chapter}.ipynb with profile={cfg.profile!r} first (this chapter trains nothing)")
            else:
                run = load_run(d, str(cfg.device))
                size = tuple(int(v) for v in run.config["train_config"]["image_size"])
                cache[e.key] = LoadedMethod(e, run.model, size, f"finished run {d.relative_to(root)}", None, {"run": str(d)})
        if e.key not in cache:
            cache[e.key] = why
            missing[e.label] = why
        else:
            c = cache[e.key]
            loaded[e.label] = LoadedMethod(e, c.model, c.image_size, c.source, c.train_time_s, c.ref)
    return loaded, missing


@dataclass(frozen=True)
class Column:
    """One column of the comparison: ``key``, a short ``label``, the test set (a
    :class:`~reidlib.chapters.ChapterData` key: ``"market"`` is the holistic test split) and a
    protocol with one setting."""

    key: str
    label: str
    dataset: str
    protocol: Protocol
    group: str


def comparison_columns(gammas: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0), repeats: int = 100,
                       seed: int = 0) -> list[Column]:
    """The protocols of the field as columns (reference notes, Sec. 2): partial queries against
    the whole gallery on both look-alikes; DSR's 25 single-shot trials and HPNet's random
    single-gallery-shot (``repeats``) on the Partial-REID look-alike; partial images as the
    gallery (PPCL Table 3) on both; the occluded test set; the crop sweep of the holistic test
    queries at every gamma (VPM Table 1: top crops); a mixed gallery (PPCL Table 1b's middle
    cell: half of the queries and half of the gallery are free crops)."""
    pq = PartialQueryProtocol()
    cols = [
        Column("reid-all", "P-REID all", "partial-reid", pq, "partial query, all gallery"),
        Column("ilids-all", "P-iLIDS all", "partial-ilids", pq, "partial query, all gallery"),
        Column("reid-dsr", "P-REID DSR 25", "partial-reid", SingleShotTrials("dsr"), "single shot"),
        Column("reid-random", f"P-REID random x{repeats}", "partial-reid", SingleShotTrials("random", repeats, seed),
               "single shot"),
        Column("reid-gallery", "P-REID as gallery", "partial-reid", PartialGalleryProtocol(), "partial gallery"),
        Column("ilids-gallery", "P-iLIDS as gallery", "partial-ilids", PartialGalleryProtocol(), "partial gallery"),
        Column("occluded", "occluded", "occluded", pq, "occluded"),
    ]
    cols += [Column(f"crop-{g:g}", f"crop {g:g}", "market", CropSweep((g,), "vpm-top", seed), "crop sweep")
             for g in gammas]
    cols.append(Column("mixed", "mixed 50/50", "market", MixedProtocol(0.5, 0.5, seed=seed), "mixed"))
    return cols


@dataclass(frozen=True)
class Headline:
    """A paper's headline comparison: ``winner`` beats ``loser`` in ``paper``'s ``table``, under the
    protocol of column ``column`` (the one the paper used, on our look-alike)."""

    winner: str
    loser: str
    paper: str
    table: str
    dataset: str
    column: str
    reported_as: tuple[str, str] | None = None  # the two rows' names in the paper's table, where they differ
    setting: tuple = ()  # (key, value) pairs that pick the reported rows (e.g. (("gamma", 0.5),))

    @property
    def text(self) -> str:
        return f"{self.winner} > {self.loser}"


#: the comparisons the papers lead with, each on the protocol of its table (reidlib.reported
#: holds the reported numbers: :func:`reidlib.reported.reported`)
HEADLINES: tuple[Headline, ...] = (
    Headline("VPM", "PCB", "vpm", "Table 1", "Market-1501", "crop-0.5", setting=(("gamma", 0.5),)),
    # STNReID's own baseline is its ReID module without the STN: a global model fed resized crops
    Headline("STNReID", "Resize", "stnreid", "Table 3", "Partial-REID", "reid-all",
             reported_as=("STNReID (PM)", "STNReID (PM) w/o STN")),
    Headline("PPCL", "VPM", "ppcl", "Table 2", "Partial-REID", "reid-all"),
    Headline("PPCL", "STNReID", "ppcl", "Table 2", "Partial-REID", "reid-all"),
    Headline("SANet", "HPNet", "sanet", "Table 1", "Partial-REID", "reid-all"),
    Headline("SANet", "PPCL", "sanet", "Table 1", "Partial-REID", "reid-all"),
    Headline("SANet", "VPM", "sanet", "Table 1", "Partial-REID", "reid-all"),
)


def kendall_matrix(table):
    """Kendall's tau-b between every two columns of ``table`` (methods x protocols, one score per
    cell; higher is better): how much two protocols agree on the ordering of the methods, from 1
    (the same order) to -1 (reversed). Methods missing in either column are left out of that pair;
    a pair with fewer than three methods in common, or a constant column, gives NaN."""
    import numpy as np
    import pandas as pd
    from scipy.stats import kendalltau

    cols = list(table.columns)
    out = pd.DataFrame(np.nan, index=cols, columns=cols, dtype=float)
    for a in cols:
        for b in cols:
            both = pd.DataFrame({"a": table[a], "b": table[b]}).dropna()
            if len(both) >= 3 and both["a"].nunique() > 1 and both["b"].nunique() > 1:
                out.loc[a, b] = float(kendalltau(both["a"], both["b"]).statistic)
    return out


def headline_flips(table, n_query: Mapping[str, int], headlines: Sequence[Headline] = HEADLINES) -> list[dict]:
    """For each headline comparison whose two methods are in ``table`` (methods x columns, Rank-1 in
    points): the measured difference under the paper's own protocol, and every column where the
    measured order is the other way round -- ``flips`` (beyond one binomial standard error of the
    difference, :func:`reidlib.claims.noise_points` on the column's ``n_query``) and ``ties``
    (reversed, but within that noise)."""
    from reidlib.claims import noise_points
    from reidlib.reported import reported

    rows = []
    for h in headlines:
        if h.winner not in table.index or h.loser not in table.index:
            continue
        rep = {r.method: r.metrics.get("R-1") for r in reported(paper=h.paper, table=h.table, dataset=h.dataset)
               if all(r.setting.get(k) == v for k, v in h.setting)}
        name_w, name_l = h.reported_as or (h.winner, h.loser)
        rep_w, rep_l = rep.get(name_w), rep.get(name_l)
        flips, ties, diffs = [], [], {}
        for col in table.columns:
            a, b = table.loc[h.winner, col], table.loc[h.loser, col]
            if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
                continue
            d = float(a - b)
            diffs[col] = d
            if d < 0:
                (flips if -d > noise_points(a, b, n_query[col]) else ties).append(col)
        rows.append({"comparison": h.text, "paper": h.paper, "table": h.table, "column": h.column,
                     "reported": None if rep_w is None or rep_l is None else float(rep_w - rep_l),
                     "measured": diffs.get(h.column), "diffs": diffs, "flips": flips, "ties": ties})
    return rows


def _load_model(ref: dict, device: str):
    if "weights" in ref:
        from reidlib.weights import load_committed

        return load_committed(ref["weights"], device)[0]
    if "run" in ref:
        from reidlib.engine.runs import load_run

        return load_run(ref["run"], device).model
    raise ValueError(f"model reference {ref!r}: expected {{'weights': '<chapter>/<model>'}} or {{'run': RUN_DIR}}")


def _matcher_of(model, shortlist):
    """``shortlist``: ``"model"`` for the model's own matcher, else the shortlist of its pairwise one."""
    return model.matcher() if shortlist == "model" else model.matcher(shortlist=shortlist)


def isolated_matching_cost(ref: dict, query: Features, gallery: Features, shortlists: Sequence = ("model",),
                           n_query: int = 1000, n_gallery: int = 10000, max_pairs: int | None = None,
                           device: str = "cpu", threads: int | None = None, timeout: float = 600) -> list[MatchCost]:
    """:func:`matching_cost` of the model ``ref`` (``{"weights": key}`` of the committed weights or
    ``{"run": RUN_DIR}``), one per entry of ``shortlists``, in one fresh process that loads only
    the model and the features, with ``threads`` torch threads (default: this process's). An entry
    is ``"model"`` (the model's own matcher) or a pairwise matcher's ``k`` (None: every pair); each
    peak is measured above the process's level when that matching starts (after
    ``malloc_trim`` where glibc has it). A failure in the child raises ``RuntimeError`` with its
    output."""
    with tempfile.TemporaryDirectory(prefix="reidlib-cost-") as tmp:
        save_features(query, Path(tmp) / "query.pt")
        save_features(gallery, Path(tmp) / "gallery.pt")
        job = {"ref": ref, "shortlists": list(shortlists), "n_query": n_query, "n_gallery": n_gallery,
               "max_pairs": max_pairs, "device": str(device), "threads": threads or torch.get_num_threads()}
        (Path(tmp) / "job.json").write_text(json.dumps(job))
        proc = subprocess.run([sys.executable, "-m", "reidlib.comparison", tmp], capture_output=True, text=True,
                              timeout=timeout)
        out = Path(tmp) / "cost.json"
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"the matching-cost process for {ref} failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        return [MatchCost(**rec) for rec in json.loads(out.read_text())]


def _main(folder: str) -> None:
    d = Path(folder)
    job = json.loads((d / "job.json").read_text())
    torch.set_num_threads(int(job["threads"]))
    model = _load_model(job["ref"], job["device"])
    qf, gf = load_features(d / "query.pt"), load_features(d / "gallery.pt")
    out = []
    for sl in job["shortlists"]:
        matcher = _matcher_of(model, sl)
        ppq = None if sl == "model" else (job["n_gallery"] if sl is None else min(int(sl), job["n_gallery"]))
        mc = matching_cost(matcher, qf, gf, job["n_query"], job["n_gallery"], max_pairs=job["max_pairs"],
                           pairs_per_query=ppq, device=job["device"])
        out.append({k: getattr(mc, k) for k in ("seconds", "n_query", "n_gallery", "queries_run", "peak_bytes",
                                                "peak_how", "matcher", "notes")})
    (d / "cost.json").write_text(json.dumps(out))


if __name__ == "__main__":  # python -m reidlib.comparison FOLDER (written by isolated_matching_cost)
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m reidlib.comparison FOLDER (a job folder written by isolated_matching_cost)")
    _main(sys.argv[1])
