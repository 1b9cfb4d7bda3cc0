"""Chapter support: the plumbing every chapter notebook shares, in one place.

* :func:`chapter_data` -- the training set and the partial test sets of a run config: SynthPeds
  presets (``data_root=None``) or the real datasets under ``data_root``, with their display names
  and the training set's dataset spec;
* :class:`Chapter` -- a chapter's run store (training runs reused by recipe hash, in
  ``runs/<chapter>/<profile>/``; in the book profile the committed weights of
  :mod:`reidlib.weights`), its training records (with their per-epoch logs), and a cache of
  evaluators keyed by the names the chapter gives its models (features are extracted once per
  model and test set);
* :func:`chapter_results` -- the evaluation records of another chapter's results file;
* the same test sets drawn with another SynthPeds seed (:meth:`ChapterData.with_seed`,
  :meth:`Chapter.on_seed`: new test identities, cameras and backgrounds for the models trained on
  the chapter's seed), and :func:`scoreboard_frame`, the "What reproduced" table of
  :mod:`reidlib.claims` rows.

Crops for figures come from :func:`reidlib.data.partial.side_crop`; locator checks from
:mod:`reidlib.eval.locator`.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from reidlib.config import RunConfig, find_project_root
from reidlib.engine.runs import RunStore, load_run, read_log, train_stages
from reidlib.eval.evaluate import Evaluator
from reidlib.eval.results import EvalResult, load_results

__all__ = ["ChapterData", "chapter_data", "holistic_test_subset", "BOOK_TEST_IDS", "Chapter", "chapter_results", "scoreboard_frame",
           "scoreboard_html", "scoreboard_by_chapter", "book_claim_rows", "CHAPTER_TITLES", "TEST_SETS"]

#: the chapters that reproduce papers, by notebook name, as the book's pages title them
CHAPTER_TITLES = {"03_holistic_models_fail": "3. Why holistic models fail", "04_vpm": "4. VPM",
                  "05_stnreid": "5. STNReID", "06_ppcl": "6. PPCL", "07_sanet": "7. SANet"}

#: the partial test sets by key: (SynthPeds look-alike preset, real dataset name, display name of the real one)
TEST_SETS = {
    "partial-reid": ("partial-reid-like", "partial-reid", "Partial-REID"),
    "partial-ilids": ("partial-ilids-like", "partial-ilids", "Partial-iLIDS"),
    # the occluded variant: SANet's stand-in for Partial-iLIDS-O (whose occluded release is not
    # public in a standard layout); real data: Occluded-REID
    "occluded": ("occluded-reid-like", "occluded-reid", "Occluded-REID"),
}


@dataclass
class ChapterData:
    """The datasets of a chapter: ``train`` (Market-1501 or its SynthPeds stand-in), the partial
    test sets by key, their display names (``names[key]``; ``"market"`` for the training set)
    and ``train_spec``, the training set's dataset spec (recorded with every run)."""

    train: Any
    tests: dict
    names: dict
    train_spec: str
    seed: int | None = None  # the SynthPeds seed of the test sets (None: real datasets)
    test_ids: int | None = None  # the holistic test split keeps this many identities (None: all)

    def __getitem__(self, key: str):
        return self.train if key == "market" else self.tests[key]

    def with_seed(self, seed: int) -> "ChapterData":
        """The same SynthPeds presets and sizes drawn with ``seed``: its test populations (the
        ``"market"`` key is the holistic query/gallery of ``SynthPeds(<size>, seed=seed)``; its train
        split is never used) under display names ending in ``(test seed <seed>)``. Models keep the
        training set they were trained on; only :meth:`Chapter.on_seed` uses this, for evaluation.
        Real datasets have one test set: ``ValueError``."""
        if self.seed is None:
            raise ValueError("ChapterData.with_seed: other test seeds exist for SynthPeds only (data_root=None); "
                             f"these datasets are {self.train_spec!r}")
        from reidlib.data.synthpeds import SynthPeds

        def redraw(ds):
            return SynthPeds(ds.preset.name, seed=int(seed), size=tuple(ds.size), version=ds.version, cache_mb=ds.cache_mb)

        suffix = f" (test seed {int(seed)})"
        train = redraw(self.train)
        if self.test_ids is not None:
            train = holistic_test_subset(train, self.test_ids)
        return ChapterData(train, {k: redraw(v) for k, v in self.tests.items()},
                           {k: v + suffix for k, v in self.names.items()}, self.train_spec, int(seed), self.test_ids)

    def with_test_ids(self, n_ids: int) -> "ChapterData":
        """The same datasets with the holistic test split (``"market"``) cut to its first ``n_ids``
        identities (:func:`holistic_test_subset`; kept by :meth:`with_seed`) and its display name
        saying so: a chapter's costly studies on a smaller holistic test."""
        train = holistic_test_subset(self.train, n_ids)
        name = re.sub(r"(, )?\d+ test ids", "", self.names.get("market", "market")).replace(" ()", "")
        name = name[:-1] + f", {n_ids} test ids)" if name.endswith(")") else f"{name} ({n_ids} test ids)"
        return ChapterData(train, dict(self.tests), {**self.names, "market": name}, self.train_spec, self.seed, int(n_ids))


#: the book profile's holistic test split: the first 250 of SynthPeds market's 750 test identities
#: (about 1,100 queries and 5,300 gallery images), a third of the evaluation cost, so that every
#: chapter builds from the committed weights within CI's budget; the full split is one
#: ``python -m reidlib evaluate --weights NAME`` away
BOOK_TEST_IDS = 250


def holistic_test_subset(dataset, n_ids: int):
    """A shallow copy of ``dataset`` whose query and gallery splits keep the ``n_ids`` smallest
    test identities of the query split (all their images) and the same share of the gallery's
    distractor and junk images (pid <= 0, the first ones); the training split is untouched."""
    import copy as _copy

    if n_ids < 1:
        raise ValueError(f"holistic_test_subset: n_ids={n_ids!r}; expected a positive number of identities")
    pids = sorted({r.pid for r in dataset.query if r.pid > 0})
    keep = set(pids[:n_ids])
    share = min(1.0, n_ids / max(1, len(pids)))
    others = [i for i, r in enumerate(dataset.gallery) if r.pid <= 0]
    keep_other = set(others[:round(share * len(others))])
    out = _copy.copy(dataset)
    out.query = [r for r in dataset.query if r.pid in keep]
    out.gallery = [r for i, r in enumerate(dataset.gallery) if r.pid in keep or i in keep_other]
    return out


def chapter_data(cfg: RunConfig, tests: Sequence[str] = ("partial-reid", "partial-ilids")) -> ChapterData:
    """The datasets for ``cfg`` (the notebook's :func:`reidlib.config.resolve_run`): SynthPeds at the
    profile's size, or the real datasets in ``cfg.data_root``."""
    unknown = [t for t in tests if t not in TEST_SETS]
    if unknown:
        raise ValueError(f"chapter_data: unknown test sets {unknown}; accepted: {', '.join(TEST_SETS)}")
    if cfg.uses_synthpeds:
        from reidlib.data.synthpeds import SynthPeds

        if cfg.profile == "book":
            # the book's CPU scale: the Market-1501-shaped preset at 128x64 (751 training ids;
            # reidlib.methods.baseline.BOOK_TRAIN_SET), its rendered images cached in memory
            # (its holistic test split: BOOK_TEST_IDS identities)
            train = holistic_test_subset(SynthPeds("market", seed=cfg.seed, size="smoke", cache_mb=1024), BOOK_TEST_IDS)
            size, names_market, spec = "smoke", f"SynthPeds market (128x64, {BOOK_TEST_IDS} test ids)", "synthpeds:market@128x64"
        else:
            size = "smoke" if cfg.profile == "smoke" else "market"
            train = SynthPeds(size, seed=cfg.seed)
            names_market, spec = f"SynthPeds {size}", f"synthpeds:{size}"
        test_sets = {k: SynthPeds(TEST_SETS[k][0], seed=cfg.seed, size=size) for k in tests}
        names = {"market": names_market, **{k: TEST_SETS[k][0] for k in tests}}
        return ChapterData(train, test_sets, names, spec, cfg.seed, BOOK_TEST_IDS if cfg.profile == "book" else None)
    else:
        from reidlib.data.datasets import build_dataset

        train = build_dataset("market1501", root=cfg.data_root)
        test_sets = {k: build_dataset(TEST_SETS[k][1], root=cfg.data_root) for k in tests}
        names = {"market": "Market-1501", **{k: TEST_SETS[k][2] for k in tests}}
        spec = f"market1501:{cfg.data_root}"
    return ChapterData(train, test_sets, names, spec)


@dataclass
class TrainRecord:
    """How a chapter got one model: its run folder, whether a finished run was reused, the
    seconds of training in its logs, and the seconds this call took."""

    name: str
    run_dir: Path
    reused: bool
    train_time_s: float
    seconds_this_call: float
    recipe: dict = field(default_factory=dict)
    log: list = field(default_factory=list)  # the per-epoch training records (every stage)

    @property
    def committed(self) -> bool:
        """Loaded from the book's committed weights (``weights/book/``) rather than a run folder."""
        return self.run_dir.suffix == ".safetensors"

    def describe(self) -> str:
        if self.committed:
            return f"committed weights ({self.run_dir.name}), trained once in {self.train_time_s:.0f} s"
        return "reused a finished run" if self.reused else f"trained in {self.train_time_s:.0f} s"


class Chapter:
    """A chapter's runs, training records and cached evaluators (see the module docstring)."""

    def __init__(self, chapter: str, cfg: RunConfig, data: ChapterData | None = None, batch_size: int = 128,
                 retrain: bool = False):
        self.chapter, self.cfg, self.data = chapter, cfg, data
        self.retrain = bool(retrain)  # book profile: train locally instead of loading the committed weights
        self.root = find_project_root()
        self.runs = RunStore(self.root / "runs" / chapter / cfg.profile, device=str(cfg.device), profile=cfg.profile)
        self.trained: dict[str, TrainRecord] = {}
        self.batch_size = batch_size
        self._evaluators: dict[tuple[str, str, str], Evaluator] = {}
        self._models: dict[str, Any] = {}
        self.test_seed: int | None = None  # set on the evaluation-only views of on_seed

    def on_seed(self, seed: int) -> "Chapter":
        """This chapter on the test sets of SynthPeds seed ``seed`` (:meth:`ChapterData.with_seed`):
        a view that shares the models, runs and training records (the models stay those trained on
        the chapter's seed), with its own evaluator cache. It evaluates; it never trains."""
        view = copy.copy(self)
        view.data = self.data.with_seed(seed)
        view._evaluators = {}
        view.test_seed = int(seed)
        return view

    # -- training ----------------------------------------------------------------
    def with_test_ids(self, n_ids: int) -> "Chapter":
        """This chapter on the first ``n_ids`` identities of its holistic test split
        (:meth:`ChapterData.with_test_ids`): a view that shares the models, runs and training
        records, with its own evaluator cache; :meth:`on_seed` of it keeps the subset."""
        view = copy.copy(self)
        view.data = self.data.with_test_ids(n_ids)
        view._evaluators = {}
        return view

    def fit(self, name: str, method_cls, recipe, dataset=None, inputs: Sequence[str | Path] = ()) -> Any:
        """Train ``method_cls`` with ``recipe`` on ``dataset`` (default: the chapter's training set),
        or reuse the finished run of the same recipe, dataset, seed and ``inputs`` (files the
        recipe starts from, e.g. another run's weights: their contents are part of the run's key).
        Returns the model (eval mode); ``self.trained[name]`` says how it was got."""
        if self.test_seed is not None:
            raise RuntimeError(f"Chapter {self.chapter!r}: the view on test seed {self.test_seed} (on_seed) only "
                               f"evaluates; fit {name!r} on the chapter itself")
        t0 = time.perf_counter()
        if self.cfg.profile == "book" and not self.retrain:
            # the book evaluates its committed weights; a missing or stale file stops the chapter
            # with one message naming it and the command that retrains it
            from reidlib.weights import load_committed, registry

            key = f"{self.chapter}/{name}"
            model, _, rec = load_committed(key, str(self.cfg.device), recipe=recipe)
            self.trained[name] = TrainRecord(name, registry()[key].file, True, rec["wall_time_s"],
                                             round(time.perf_counter() - t0, 1), recipe.to_dict(), rec.get("log", []))
            self._models[name] = model
            return model
        dataset = dataset if dataset is not None else self.data.train
        spec = self.data.train_spec if self.data is not None and dataset is self.data.train else getattr(dataset, "name", None)
        d = self.runs.path(name, method_cls, recipe, spec, self.cfg.seed, inputs)
        fit = train_stages(method_cls, recipe, dataset, d, seed=self.cfg.seed, device=str(self.cfg.device),
                           resume=d.exists(), progress=False, profile=self.cfg.profile, dataset_spec=spec)
        self.trained[name] = TrainRecord(name, d, fit.reused, fit.train_time_s, round(time.perf_counter() - t0, 1),
                                         recipe.to_dict(), [e for sd in fit.stage_dirs.values() for e in read_log(sd)])
        self._models[name] = fit.model
        return fit.model

    def input_ref(self, name: str) -> str:
        """How a later recipe names model ``name``'s weights as its starting point (e.g. STNReID's
        stage 2 names stage 1's STN): the committed file, relative to the project root (as the
        registry's recipes name it), or the run folder."""
        d = self.trained[name].run_dir
        if self.trained[name].committed and d.is_relative_to(self.root):
            return str(d.relative_to(self.root))
        return str(d)

    def add_model(self, name: str, model) -> Any:
        """Register a model the chapter built itself (e.g. Merge Mode) under ``name``."""
        self._models[name] = model
        return model

    def model(self, name: str):
        return self._models[name]

    def run_dir(self, name: str) -> Path:
        return self.trained[name].run_dir

    def load(self, name: str, run_dir: str | Path):
        """A finished run from elsewhere (e.g. chapter 3's baseline), under ``name``."""
        model = load_run(run_dir, str(self.cfg.device)).model
        self._models[name] = model
        return model

    # -- evaluation -----------------------------------------------------------------
    def evaluator(self, model_name: str, dataset_key: str, model=None, test_mode: str = "resize",
                  image_size: Sequence[int] | None = None) -> Evaluator:
        """The :class:`Evaluator` of a named model on a named dataset (one per pair and test mode:
        features are extracted once and scored by any protocol or matcher)."""
        key = (model_name, dataset_key, test_mode)
        if key not in self._evaluators:
            model = model if model is not None else self._models[model_name]
            self._models.setdefault(model_name, model)
            self._evaluators[key] = Evaluator(model, self.data[dataset_key], device=self.cfg.device,
                                              batch_size=self.batch_size, test_mode=test_mode,
                                              image_size=image_size)
        return self._evaluators[key]

    def evaluate(self, model_name: str, dataset_key: str, protocol, method: str | None = None, matcher=None,
                 model=None, test_mode: str = "resize", image_size: Sequence[int] | None = None) -> list[EvalResult]:
        """Score a named model on a named dataset under ``protocol`` (with ``matcher`` instead of
        the model's own, on the cached features); results carry the dataset's display name."""
        ev = self.evaluator(model_name, dataset_key, model=model, test_mode=test_mode, image_size=image_size)
        if matcher is not None:
            feats = {"query": ev.features("query"), "gallery": ev.features("gallery")}
            ev = Evaluator(feats, self.data[dataset_key], device=self.cfg.device, matcher=matcher)
        t0 = time.perf_counter()
        results = ev.evaluate(protocol, method=method or model_name, profile=self.cfg.profile)
        for r in results:
            r.dataset = self.data.names.get(dataset_key, r.dataset)
            r.params["seconds"] = time.perf_counter() - t0
        return results

    # -- results ---------------------------------------------------------------------
    def training_summary(self) -> dict:
        return {n: {"run_dir": str(t.run_dir.relative_to(self.root)) if t.run_dir.is_relative_to(self.root) else str(t.run_dir),
                    "reused": t.reused, "train_time_s": t.train_time_s, "seconds_this_call": t.seconds_this_call}
                for n, t in self.trained.items()}


def chapter_results(cfg: RunConfig, chapter: str) -> list[EvalResult] | None:
    """The evaluation records of another chapter's results file for this profile, or None when the
    file does not exist (that chapter has not run)."""
    path = cfg.results_path(chapter)
    if not path.exists():
        return None
    return load_results(path)[0]


def scoreboard_frame(rows: Sequence[Mapping], link=None):
    """The "What reproduced" table of :func:`reidlib.claims.evaluate_claims` rows (pandas): one row
    per claim with ``claim`` (our reading; the source after it), ``reported``, ``measured`` (on the
    chapter's seed), ``✓/✗`` (all test seeds; ``—`` for a row whose ``holds`` is None: not measured),
    ``seeds`` (held on k of n) and ``evidence``, indexed by ``id``. ``link(row) -> str`` adds a
    ``chapter`` column (e.g. an HTML link to the chapter)."""
    import pandas as pd

    from reidlib.claims import MARK

    records = []
    for r in rows:
        rec = {"id": r["id"]}
        if link is not None:
            rec["chapter"] = link(r)
        rec.update({"claim": f"{r['statement']} ({r['paper']} {r['where']})", "reported": r["reported"],
                    "measured": r["measured"], "✓/✗": "—" if r["holds"] is None else MARK[bool(r["holds"])],
                    "seeds": r["seeds_held"],
                    "evidence": r["evidence"]})
        records.append(rec)
    cols = ["id"] + (["chapter"] if link is not None else []) + ["claim", "reported", "measured", "✓/✗", "seeds", "evidence"]
    return pd.DataFrame.from_records(records, columns=cols).set_index("id")


def scoreboard_html(rows: Sequence[Mapping], compact: bool = False) -> str:
    """:func:`scoreboard_frame` as an HTML table whose first column links each claim to its
    chapter's "What reproduced" section (the pages of the built book sit side by side).
    ``compact``: only the claim, ✓/✗ and the seeds (the chapter's section has the numbers and the
    evidence)."""
    import html

    frame = scoreboard_frame(rows)
    if compact:
        frame = frame[["claim", "✓/✗", "seeds"]]
    shown = frame.map(lambda v: html.escape(str(v)))
    shown.index = [html.escape(i) for i in frame.index]
    shown.insert(0, "chapter", [f'<a href="{r["chapter"]}.html#what-reproduced">'
                                f'{html.escape(CHAPTER_TITLES.get(r["chapter"], r["chapter"]))}</a>' for r in rows])
    return shown.to_html(escape=False)


def scoreboard_by_chapter(rows: Sequence[Mapping], chapters: Sequence[str], board: Mapping | None = None):
    """The count of claims per chapter: held (✓), failed (✗) and not run; with ``board`` (the
    claims file, :func:`reidlib.claims.read_claims`) also each chapter's test seeds, seconds and
    when it wrote its rows."""
    import pandas as pd

    from reidlib.claims import MARK

    out = []
    for ch in chapters:
        mine = [r for r in rows if r["chapter"] == ch]
        rec = {"chapter": CHAPTER_TITLES.get(ch, ch), "claims": len(mine),
               MARK[True]: sum(r["holds"] is True for r in mine), MARK[False]: sum(r["holds"] is False for r in mine),
               "not run": sum(r["holds"] is None for r in mine)}
        if board is not None:
            info = board.get("chapters", {}).get(ch, {})
            rec.update({"test seeds": ", ".join(map(str, info.get("seeds", []))) or "–",
                        "seconds": info.get("seconds") or "–", "written": info.get("written", "–")})
        out.append(rec)
    return pd.DataFrame(out).set_index("chapter")


def book_claim_rows(claims_path, chapters: Sequence[str]) -> list[dict]:
    """Every claim of ``chapters`` (:data:`reidlib.claims.CLAIMS`, in their order), each with its
    row from the claims file at ``claims_path``, or a row with ``holds=None`` ("not run") when
    the chapter has not written it for this profile."""
    from reidlib.claims import CLAIMS, read_claims
    from reidlib.reported import PAPERS

    board = read_claims(claims_path)
    found = {r["id"]: r for r in board["rows"] if r.get("id") in CLAIMS}
    rows = []
    for cid, c in CLAIMS.items():
        if c.chapter not in chapters:
            continue
        rows.append(found.get(cid) or {
            "id": cid, "chapter": c.chapter, "paper": PAPERS[c.paper].label, "where": c.where,
            "statement": c.statement, "quote": c.quote, "reported": c.reported, "measured": "not run",
            "holds": None, "seeds_held": "–", "evidence": f"no row in {Path(claims_path).name}: run the chapter"})
    return rows
