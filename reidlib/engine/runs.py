"""The run store: one layout for a training run's folder, and the rules for reusing it.

Layout of a run folder::

    config.json            the method, the recipe (TrainConfig), the dataset, the profile, the seed,
                           hardware, versions, the git commit
    log.jsonl              one JSON object per line: {"event": "start" | "epoch" | "resume" | "interrupt" | "end", ...}
    checkpoints/last.pt    the latest checkpoint (reidlib.engine.checkpoint; weights_only=True)
    model.safetensors      final weights (written when the last epoch is done)
    metrics.json           final training metrics

A run is *finished* when ``model.safetensors`` and ``metrics.json`` are there.  A method with
several stages (:meth:`reidlib.methods.base.Method.stages`) trains one run folder per stage
under its folder (``stage1/``, ``stage2/``) and writes ``pipeline.json`` naming them.

Rules (:class:`RunDir`, used by :class:`reidlib.engine.trainer.Trainer`):

* a finished run is never replaced silently: training into it fails unless ``overwrite``
  (``--overwrite``) is given; with ``resume`` it is reused as it is;
* ``resume`` on a folder that does not exist fails; it continues from the last checkpoint only
  when the seed, the dataset and the recipe are those of the run, and says what differs;
* :class:`RunStore` keeps a chapter's runs in folders named by the recipe's hash, so that a
  finished run of the same recipe is reused and a changed recipe trains a new one;
* :func:`load_run` rebuilds a finished run's model from its own folder alone (the weights of
  earlier stages or runs are inside ``model.safetensors``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from reidlib.methods.base import RUNTIME_FIELDS, Method, TrainConfig, recipe_hash
from reidlib.methods.registry import get_method

__all__ = ["RunDir", "RunStore", "FitResult", "LoadedRun", "load_run", "read_log", "train_stages",
           "identity_differences", "file_digest", "PIPELINE_FILE"]

PIPELINE_FILE = "pipeline.json"


class RunDir:
    """A run folder (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    log_path = property(lambda self: self.path / "log.jsonl")
    checkpoint_path = property(lambda self: self.path / "checkpoints" / "last.pt")
    weights_path = property(lambda self: self.path / "model.safetensors")
    metrics_path = property(lambda self: self.path / "metrics.json")

    def is_finished(self) -> bool:
        return self.weights_path.is_file() and self.metrics_path.is_file()

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def read_json(self, name: str) -> dict:
        f = self.path / name
        try:
            return json.loads(f.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{f} is missing: {self.path} is not a (finished) reidlib run folder") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{f} is not valid JSON ({e}); the run folder {self.path} is damaged") from None

    def read_config(self) -> dict:
        return self.read_json("config.json")

    def read_metrics(self) -> dict:
        return self.read_json("metrics.json")

    def clear(self) -> None:
        """Delete the run (``--overwrite``); a folder that is not a run folder is refused."""
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise NotADirectoryError(f"{self.path} is a file, not a run folder")
        known = {"config.json", "log.jsonl", "checkpoints", "model.safetensors", "metrics.json", "eval.json",
                 PIPELINE_FILE}
        stray = sorted(p.name for p in self.path.iterdir() if p.name not in known and not p.name.startswith("stage"))
        if not (self.config_path.exists() or (self.path / PIPELINE_FILE).exists()) or stray:
            raise FileExistsError(f"refusing to delete {self.path}: it does not look like a reidlib run folder "
                                  f"(unexpected entries {stray[:5]}); remove it yourself or choose another --out")
        shutil.rmtree(self.path)


def run_identity(method: str, cfg: TrainConfig, dataset: str | None, dataset_summary: Mapping | None,
                 seed: int) -> dict:
    """What decides what a run computes: compared when a run is resumed."""
    return {"method": method, "seed": int(seed), "dataset": dataset,
            "dataset_summary": dict(dataset_summary or {}),
            "recipe": {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}}


def identity_differences(saved: Mapping, now: Mapping) -> list[str]:
    """``"key: run has A, now B"`` for every difference between two :func:`run_identity` dicts
    (the recipe compared field by field, the method settings key by key)."""
    out = []
    for k in ("method", "seed", "dataset", "dataset_summary"):
        if saved.get(k) != now.get(k):
            out.append(f"{k}: the run has {saved.get(k)!r}, now {now.get(k)!r}")
    a, b = saved.get("recipe", {}), now.get("recipe", {})
    for k in sorted(set(a) | set(b)):
        if k == "extra":
            xa, xb = a.get("extra") or {}, b.get("extra") or {}
            out += [f"{k}: the run has {xa.get(k)!r}, now {xb.get(k)!r}" for k in sorted(set(xa) | set(xb))
                    if xa.get(k) != xb.get(k)]
        elif a.get(k) != b.get(k):
            out.append(f"{k}: the run has {a.get(k)!r}, now {b.get(k)!r}")
    return out


def saved_identity(config: Mapping) -> dict:
    """:func:`run_identity` of a run's ``config.json``."""
    tc = {k: v for k, v in config.get("train_config", {}).items() if k not in RUNTIME_FIELDS}
    return {"method": config.get("method"), "seed": config.get("seed"), "dataset": config.get("dataset"),
            "dataset_summary": config.get("dataset_summary", {}), "recipe": tc}


def read_log(run_dir: str | os.PathLike) -> list[dict]:
    """A run's per-epoch records (an epoch logged twice, by a resumed run, keeps its last record)."""
    epochs: dict[int, dict] = {}
    for line in RunDir(run_dir).log_path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "epoch":
            epochs[rec["epoch"]] = rec
    return [epochs[e] for e in sorted(epochs)]


# ----------------------------------------------------------------------------- loading
class LoadedRun:
    """A finished run rebuilt: ``model`` (eval mode), ``method``, ``config`` (its config.json),
    ``path``.  Unpacks as ``model, method, config``."""

    def __init__(self, model, method: Method, config: dict, path: Path):
        self.model, self.method, self.config, self.path = model, method, config, path

    def __iter__(self):
        return iter((self.model, self.method, self.config))


def final_run_dir(path: str | os.PathLike) -> Path:
    """The folder of a run, or of the last stage of a multi-stage run (``pipeline.json``)."""
    p = Path(path)
    if p.is_file():
        raise NotADirectoryError(f"{p} is a file; expected a run folder (the --out of `python -m reidlib train`)")
    pipe = p / PIPELINE_FILE
    if pipe.is_file() and not (p / "config.json").is_file():
        stages = json.loads(pipe.read_text()).get("stages") or []
        if not stages:
            raise ValueError(f"{pipe} lists no stages")
        return p / stages[-1]
    return p


def load_run(run_dir: str | os.PathLike, device: str = "cpu") -> LoadedRun:
    """Rebuild a finished run's model from ``config.json`` + ``model.safetensors`` (eval mode).

    Nothing outside the folder is read: the model is built without initial weights
    (``build_model(init=False)``) and the run's own weights fill it, so a run loads offline and
    after the runs it started from have moved.
    """
    from reidlib.config import resolve_device
    from reidlib.engine.checkpoint import load_weights

    run = RunDir(final_run_dir(run_dir))
    if not run.config_path.is_file():
        raise FileNotFoundError(f"{run.path} is not a reidlib run folder: {run.config_path} is missing "
                                f"(expected the --out folder of `python -m reidlib train`)")
    if not run.weights_path.is_file():
        raise FileNotFoundError(f"{run.weights_path} is missing: the run in {run.path} has not finished "
                                f"(continue it with `python -m reidlib train ... --out {run.path} --resume`)")
    rc = run.read_config()
    try:
        cls = get_method(rc["method"])
        cfg = TrainConfig.from_dict(rc["train_config"], where=f"{run.config_path}: train_config")
        method = cls(cfg, int(rc["num_classes"]))
    except KeyError as e:
        raise ValueError(f"{run.config_path} lacks the key {e.args[0]!r} (method, train_config, num_classes "
                         f"expected)") from None
    model = method.build_model(init=False)
    load_weights(run.weights_path, model)
    return LoadedRun(model.to(resolve_device(device)).eval(), method, rc, run.path)


# ----------------------------------------------------------------------------- stages
@dataclass
class FitResult:
    """What training (or reusing) a method's runs gives: the final model (eval mode), the run
    folder, whether every stage was already finished, the metrics per stage, the epoch logs."""

    model: Any
    run_dir: Path
    reused: bool
    metrics: dict
    stage_dirs: dict = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return all(m.get("completed") for m in self.metrics.values())

    def log(self, stage: str | None = None) -> list[dict]:
        return read_log(self.stage_dirs[stage or list(self.stage_dirs)[-1]])

    @property
    def train_time_s(self) -> float:
        """Seconds of training over every stage (from the epoch logs; reused runs included)."""
        return round(sum(e["time_s"] for d in self.stage_dirs.values() for e in read_log(d)), 1)


def train_stages(method_cls: type[Method], cfg: TrainConfig, dataset, out_dir: str | os.PathLike, *, seed: int = 0,
                 device: str = "auto", resume: bool = False, overwrite: bool = False, progress: bool = True,
                 profile: str | None = None, dataset_spec: str | None = None,
                 max_epochs: int | None = None) -> FitResult:
    """Train every stage of ``method_cls`` for the recipe ``cfg`` into ``out_dir``.

    One stage trains into ``out_dir`` itself; several train into ``out_dir/<stage>`` (each
    starting from the earlier ones' folders) and ``pipeline.json`` names them.  ``resume``:
    finished stages are reused and an interrupted one continues (``out_dir`` must exist).
    ``max_epochs`` stops the current stage early (resume later).
    """
    from reidlib.engine.trainer import Trainer

    out = Path(out_dir)
    stages = method_cls.stages(cfg)
    multi = len(stages) > 1
    if resume and not out.exists():
        raise FileNotFoundError(f"cannot resume {out}: the folder does not exist (train without --resume to start it)")
    if overwrite and out.exists():
        RunDir(out).clear()
    if multi:
        out.mkdir(parents=True, exist_ok=True)
        pipe = {"method": method_cls.name, "stages": [s.name for s in stages]}
        (out / PIPELINE_FILE).write_text(json.dumps(pipe, indent=2) + "\n")
    done: dict[str, Path] = {}
    metrics: dict[str, dict] = {}
    reused = True
    trainer = None
    for stage in stages:
        d = out / stage.name if multi else out
        stage_cfg = stage.config(done)
        method = method_cls(stage_cfg, dataset.num_train_pids)
        was_finished = RunDir(d).is_finished()
        trainer = Trainer(method, dataset, d, device=device, seed=seed + stage.seed_offset,
                          resume=resume and (d.exists() or not multi), progress=progress, profile=profile,
                          dataset_spec=dataset_spec)
        metrics[stage.name] = trainer.fit(max_epochs=max_epochs)
        reused = reused and was_finished
        done[stage.name] = d
        if not metrics[stage.name]["completed"]:
            break
    return FitResult(model=trainer.model.eval(), run_dir=out, reused=reused, metrics=metrics, stage_dirs=done)


class RunStore:
    """A chapter's training runs, in folders named ``<name>-<hash>`` after their recipe, dataset
    and seed: a finished run of the same recipe is reused, a changed recipe trains a new one,
    an interrupted one resumes.

    >>> store = RunStore("runs/03_holistic_models_fail/smoke")
    >>> fit = store.fit("baseline", BaselineMethod, BaselineMethod.recipe("smoke"), data, seed=0, dataset_spec="synthpeds:smoke")
    """

    def __init__(self, root: str | os.PathLike, device: str = "auto", profile: str | None = None,
                 progress: bool = False):
        self.root = Path(root)
        self.device, self.profile, self.progress = device, profile, progress

    def path(self, name: str, method_cls: type[Method], cfg: TrainConfig, dataset_spec: str | None,
             seed: int, inputs: Sequence[str | os.PathLike] = ()) -> Path:
        """``<root>/<name>-<hash>``; ``inputs`` (files the recipe starts from, e.g. another run's
        weights) join the key by their contents, so a retrained input gives a new run."""
        parts = [method_cls.name, dataset_spec, int(seed)] + ([file_digest(p) for p in inputs] if inputs else [])
        return self.root / f"{name}-{recipe_hash(cfg, *parts)}"

    def fit(self, name: str, method_cls: type[Method], cfg: TrainConfig, dataset, *, seed: int = 0,
            dataset_spec: str | None = None, inputs: Sequence[str | os.PathLike] = ()) -> FitResult:
        d = self.path(name, method_cls, cfg, dataset_spec, seed, inputs)
        return train_stages(method_cls, cfg, dataset, d, seed=seed, device=self.device, resume=d.exists(),
                            progress=self.progress, profile=self.profile, dataset_spec=dataset_spec)


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's contents (a missing file is an error naming it)."""
    import hashlib

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing (expected a weights file another run wrote)")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
