"""Committed reference weights: the ``book`` profile's models, trained once on a CPU.

The rendered book evaluates these weights live; it never trains them silently.  Each entry of
:func:`registry` names one model: its method, its ``book`` recipe, its training set and seed, and
the committed weights it starts from (the SynthPeds-pretrained backbone).  Its file is
``weights/book/<name>.safetensors`` (fp16; no classifier head unless the book needs it) and its
record in ``weights/book/manifest.json`` holds the recipe and its hash, the command that
reproduces it, the commit, the hardware, the wall time, the images seen and the final training
loss.

* ``python -m reidlib weights train NAME`` (or ``--all``, ``make weights``) trains a model (tqdm,
  resume: the run lives in ``runs/weights/``) and writes its file and record;
* ``python -m reidlib weights verify`` loads every file and checks that its recipe hash is what
  the current code's recipe gives, that its contents are those recorded, and that the weights it
  started from are the committed ones;
* :func:`load_committed` gives a chapter the model of a name, or stops with one message naming
  the file and the command that retrains it (:class:`WeightsError`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from reidlib.config import find_project_root
from reidlib.engine.runs import RunStore, file_digest, read_log
from reidlib.methods.base import TrainConfig, recipe_hash
from reidlib.methods.registry import get_method

__all__ = ["WeightSpec", "WeightsError", "registry", "weights_dir", "read_manifest", "status", "verify",
           "train_weights", "load_committed", "export_state_dict"]

MANIFEST = "manifest.json"

FORMAT = "reidlib-weights-manifest-v1"


class WeightsError(RuntimeError):
    """A committed weights file is missing, stale or damaged; the message names it and the fix."""


@dataclass(frozen=True)
class WeightSpec:
    """One committed model (see the module docstring).

    ``export``: ``"model"`` (the whole model without its identity classifier unless ``keep_head``)
    or ``"backbone"`` (the backbone alone, loadable as ``backbone_weights``).
    """

    name: str
    method: str
    recipe: Callable[[], TrainConfig]
    data: str
    seed: int = 0
    inputs: tuple[str, ...] = ()
    export: str = "model"
    keep_head: bool = False
    description: str = ""

    @property
    def file(self) -> Path:
        return weights_dir() / f"{self.name}.safetensors"

    @property
    def command(self) -> str:
        return f"python -m reidlib weights train {self.name}"

    def config(self) -> TrainConfig:
        return self.recipe()

    def key(self, input_digests: dict[str, str]) -> str:
        """The recipe hash: the recipe, the method, the data, the seed and the inputs' contents."""
        return recipe_hash(self.config(), self.method, self.data, self.seed,
                           [input_digests[n] for n in self.inputs])


def weights_dir() -> Path:
    return find_project_root(Path(__file__).parent) / "weights" / "book"


def registry() -> dict[str, WeightSpec]:
    """Every committed model of the book, by name (chapter models are ``<chapter>/<model>``)."""
    from reidlib.methods.baseline import BOOK_BACKBONE, BOOK_TRAIN_SET
    from reidlib.methods.ppcl import PPCL_BOOK_GRID, PPCL_VARIANTS, PPCLMethod
    from reidlib.methods.sanet import SANET_BOOK_NAMES, SANET_TABLE4_BOOK, SANET_VARIANTS
    from reidlib.methods.stnreid import CONFRONTATION_SETTINGS
    from reidlib.methods.vpm import FIG4_P

    backbone = f"backbone-{BOOK_BACKBONE}"

    def book(method: str, **kw) -> Callable[[], TrainConfig]:
        return lambda: get_method(method).recipe("book", **kw)

    specs = [
        WeightSpec(backbone, "baseline", lambda: get_method("baseline").recipe("pretrain"), "synthpeds:pretrain",
                   export="backbone",
                   description="the SynthPeds-pretrained backbone (identity classification of the pretraining population)"),
        WeightSpec("03_holistic_models_fail/baseline", "baseline", book("baseline"), BOOK_TRAIN_SET, inputs=(backbone,),
                   description="the strong baseline (chapter 03)"),
        WeightSpec("03_holistic_models_fail/pcb", "pcb", book("pcb"), BOOK_TRAIN_SET, inputs=(backbone,),
                   description="PCB (chapter 03)"),
    ]
    # chapter 04: VPM (Table 1 and Fig. 4: p regions of the top crop; Table 2: the training crops;
    # Table 3: the ablations; Fig. 5: a 3 x 2 grid of free crops; the p = 1 control)
    vpm = [("vpm-top-p6", {}, "VPM, top crops, p = 6 (Tables 1-3)")]
    vpm += [(f"vpm-top-p{p}", {"parts": (p, 1)}, f"VPM, top crops, p = {p} (Fig. 4)") for p in FIG4_P['book'] if p != 6]
    vpm += [(f"vpm-{c}-p6", {"crop": c}, f"VPM, {c} crops (Table 2)") for c in ("bottom", "bilateral")]
    vpm += [(f"vpm-top-p6-{v}", {"variant": v}, f"{v} (Table 3)") for v in ("no-triplet", "mvpm-2", "mvpm-3", "mvpm-4")]
    vpm += [("vpm-free-3x2", {"parts": (3, 2), "crop": "free"}, "VPM, 3 x 2 regions, free crops (Fig. 5)"),
            ("vpm-top-p1", {"parts": (1, 1)}, "the control: one region (a global model) on VPM's crops and budget")]
    # chapter 03's aligned oracle: a global model (VPM with one region) trained on top halves
    # only, tested on top halves against top halves (the identity a top half carries)
    specs.append(WeightSpec("03_holistic_models_fail/oracle-top-half", "vpm",
                            book("vpm", parts=(1, 1), crop="top", crop_ratio=(0.5, 0.5)), BOOK_TRAIN_SET,
                            inputs=(backbone,), description="the aligned oracle: a global model of top halves (chapter 03)"))
    specs += [WeightSpec(f"04_vpm/{n}", "vpm", book("vpm", **kw), BOOK_TRAIN_SET, inputs=(backbone,),
                         description=f"{d} (chapter 04)") for n, kw, d in vpm]
    # chapter 05: STNReID stage 1 under Table 2's five settings, Pipeline Mode's stage 2 behind
    # Ep1's STN, and the oracle STN (regresses the true crop)
    stn1 = "05_stnreid/stage1-Ep1"

    def stn(stage, setting, **kw):
        return lambda: get_method("stnreid").stage_recipe("book", stage=stage, setting=setting, **kw)

    specs += [WeightSpec(f"05_stnreid/stage1-{ep}", "stnreid", stn(1, ep), BOOK_TRAIN_SET,
                         inputs=(backbone,) if CONFRONTATION_SETTINGS[ep]["pretrained"] else (),
                         description=f"STNReID stage 1, Table 2's {ep} (chapter 05)") for ep in CONFRONTATION_SETTINGS]
    specs += [
        WeightSpec("05_stnreid/stage2-PM", "stnreid", stn(2, "Ep5", stn_weights=f"weights/book/{stn1}.safetensors"),
                   BOOK_TRAIN_SET, inputs=(backbone, stn1),
                   description="STNReID stage 2, Pipeline Mode: Ep5's ReID module behind Ep1's frozen STN (chapter 05)"),
        WeightSpec("05_stnreid/stage1-oracle", "stnreid", stn(1, "Ep1", stn_target="oracle"), BOOK_TRAIN_SET,
                   description="an STN regressing the true crop of each training image (chapter 05)"),
    ]
    # chapter 06: PPCL's GLRec pre-trained once; the joint stage of Table 1a's four variants and
    # of Table 1c's book cells (the optimum (10, 1) is the "ppcl" variant) starts from it
    glrec = "06_ppcl/glrec"
    specs.append(WeightSpec(glrec, "ppcl", lambda: PPCLMethod.glrec_recipe("book"), BOOK_TRAIN_SET, inputs=(backbone,),
                            description="PPCL's GLRec, pre-trained alone on random crops (chapter 06)"))

    def ppcl(variant, **kw):
        return lambda: PPCLMethod.ppcl_recipe("book", variant, glrec_weights=f"weights/book/{glrec}.safetensors", **kw)

    specs += [WeightSpec(f"06_ppcl/{v}", "ppcl", ppcl(v), BOOK_TRAIN_SET, inputs=(backbone, glrec),
                         description=f"PPCL's joint stage, Table 1a's {info.label} (chapter 06)")
              for v, info in PPCL_VARIANTS.items()]
    specs += [WeightSpec(f"06_ppcl/ppcl-cyc{c:g}-tri{t:g}", "ppcl", ppcl("ppcl", lambda_cyc=float(c), lambda_tri=float(t)),
                         BOOK_TRAIN_SET, inputs=(backbone, glrec),
                         description=f"PPCL, Table 1c's cell lambda_cyc = {c:g}, lambda_tri = {t:g} (chapter 06)")
              for c, t in PPCL_BOOK_GRID if (c, t) != (10.0, 1.0)]
    # chapter 07: HPNet (the reference recipe, Table 1's baseline), Table 3's four rows (trained
    # as SANet; "sanet" is also Table 4's default cell) and Table 4's other settings.  The chapter
    # is a draft (drafts/07_sanet.ipynb) until all nine are trained: the registry holds those whose
    # weights are committed (SANET_COMMITTED); drafts/README.md names the others.
    sanet = [WeightSpec("07_sanet/hpnet", "hpnet", book("hpnet"), BOOK_TRAIN_SET, inputs=(backbone,),
                        description="HPNet, the reference recipe (chapter 07)")]
    sanet += [WeightSpec(f"07_sanet/{SANET_BOOK_NAMES[v]}", "sanet", book("sanet", variant=v), BOOK_TRAIN_SET,
                         inputs=(backbone,), description=f"SANet Table 3's {info.label} (chapter 07)")
              for v, info in SANET_VARIANTS.items()]
    sanet += [WeightSpec(f"07_sanet/{name}", "sanet", book("sanet", **kw), BOOK_TRAIN_SET, inputs=(backbone,),
                         description=f"SANet Table 4's {name} (chapter 07)") for name, kw in SANET_TABLE4_BOOK.items()]
    specs += [s for s in sanet if s.name.split("/", 1)[1] in SANET_COMMITTED]
    return {s.name: s for s in specs}


#: Chapter 07's models whose book weights are trained and committed so far (the others: drafts/README.md).
SANET_COMMITTED = ("hpnet", "global", "fixed-fe", "sanet", "t3-hpnet", "sanet-layers3", "sanet-layers7", "sanet-k1", "sanet-k5")


def _get(name: str) -> WeightSpec:
    reg = registry()
    if name not in reg:
        raise WeightsError(f"no committed model is named {name!r}; the book's models: {', '.join(reg)}")
    return reg[name]


# ----------------------------------------------------------------------------- the manifest
def read_manifest(root: Path | None = None) -> dict:
    """``{"format", "models": {name: record}}`` of ``weights/book/manifest.json`` (empty when absent)."""
    path = (root or weights_dir()) / MANIFEST
    if not path.exists():
        return {"format": FORMAT, "models": {}}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path} is not valid JSON ({e}); restore it from git") from None
    if doc.get("format") != FORMAT or not isinstance(doc.get("models"), dict):
        raise WeightsError(f"{path}: expected {{'format': {FORMAT!r}, 'models': {{name: record}}}}")
    return doc


def _write_manifest(doc: dict) -> None:
    from reidlib.provenance import write_json

    doc = {"format": FORMAT, "models": dict(sorted(doc["models"].items()))}
    write_json(weights_dir() / MANIFEST, doc)


def status(name: str, manifest: dict | None = None) -> tuple[str, str]:
    """``("ok" | "missing" | "stale" | "damaged", why)`` of a committed model."""
    spec = _get(name)
    rec = (manifest or read_manifest())["models"].get(name)
    f = spec.file
    if rec is None or not f.is_file():
        what = f"{f} is missing" if not f.is_file() else f"{f} has no record in {weights_dir() / MANIFEST}"
        return "missing", what
    if file_digest(f) != rec.get("sha256"):
        return "damaged", f"{f} does not hold the recorded contents (sha256 differs from the manifest)"
    digests = {}
    for dep in spec.inputs:
        dspec = _get(dep)
        if not dspec.file.is_file():
            return "stale", f"{name} starts from {dep}, whose file {dspec.file} is missing"
        digests[dep] = file_digest(dspec.file)
        if rec.get("inputs", {}).get(dep) != digests[dep]:
            return "stale", f"{name} was trained from another {dep} than the committed one"
    now = spec.key(digests)
    if rec.get("recipe_hash") != now:
        return "stale", (f"{name}'s recipe changed: the file was trained with recipe hash {rec.get('recipe_hash')}, "
                         f"the current code's recipe gives {now}")
    return "ok", ""


def verify(names=None) -> list[str]:
    """Problems of the committed models (empty: every file loads and is current)."""
    from safetensors.torch import load_file

    manifest = read_manifest()
    problems = []
    for name in names or registry():
        state, why = status(name, manifest)
        if state == "ok":
            try:
                load_file(str(_get(name).file))
            except Exception as e:  # noqa: BLE001 - reported with the file's name
                state, why = "damaged", f"{_get(name).file} does not load: {e}"
        if state != "ok":
            problems.append(f"{name}: {state}: {why}; retrain with `{_get(name).command}`")
    unknown = sorted(set(manifest["models"]) - set(registry()))
    problems += [f"{n}: the manifest records a model the registry does not know (remove its record and file)"
                 for n in unknown]
    return problems


# ----------------------------------------------------------------------------- training
def is_head(key: str) -> bool:
    """Whether a state-dict key belongs to an identity classifier (``classifier``, ``classifiers``,
    ``classifier_weight``, ``reid.classifier``): training-only tensors the test does not use."""
    return any(part.startswith("classifier") for part in key.split("."))


def export_state_dict(model: torch.nn.Module, export: str = "model", keep_head: bool = False) -> dict:
    """The tensors a committed file holds: floating tensors in fp16; ``export="backbone"``: the
    backbone's alone (its own key names); otherwise the model without ``classifier`` tensors
    unless ``keep_head``."""
    sd = model.state_dict()
    if export == "backbone":
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    elif export != "model":
        raise ValueError(f"export={export!r}: accepted 'model' or 'backbone'")
    elif not keep_head:
        sd = {k: v for k, v in sd.items() if not is_head(k)}
    return {k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).cpu().contiguous().clone()
            for k, v in sd.items()}


def train_weights(name: str, device: str = "auto", progress: bool = True, overwrite: bool = False) -> dict:
    """Train (or resume) one committed model and write its file and manifest record."""
    from safetensors.torch import save_file

    from reidlib.config import resolve_device
    from reidlib.data.datasets import build_dataset
    from reidlib.provenance import git_commit, hardware

    spec = _get(name)
    manifest = read_manifest()
    if not overwrite and status(name, manifest)[0] == "ok":
        raise WeightsError(f"{spec.file} is committed and current; pass --overwrite to train it again")
    digests = {}
    for dep in spec.inputs:
        state, why = status(dep, manifest)
        if state != "ok":
            raise WeightsError(f"{name} starts from {dep}, which is {state} ({why}); train it first: "
                               f"`{_get(dep).command}`")
        digests[dep] = file_digest(_get(dep).file)
    cls, cfg = get_method(spec.method), spec.config()
    dataset = build_dataset(spec.data, cache_mb=1024) if spec.data.startswith("synthpeds:") else build_dataset(spec.data)
    store = RunStore(find_project_root(Path(__file__).parent) / "runs" / "weights", device=device, profile="book",
                     progress=progress)
    t0 = time.perf_counter()
    fit = store.fit(name.replace("/", "--"), cls, cfg, dataset, seed=spec.seed, dataset_spec=spec.data,
                    inputs=[_get(d).file for d in spec.inputs])
    log = [e for d in fit.stage_dirs.values() for e in read_log(d)]
    sd = export_state_dict(fit.model, spec.export, spec.keep_head)
    spec.file.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(spec.file), metadata={"name": name, "recipe_hash": spec.key(digests)})
    record = {
        "method": spec.method, "description": spec.description, "data": spec.data, "seed": spec.seed,
        "export": spec.export, "classifier": spec.keep_head, "num_classes": dataset.num_train_pids,
        "recipe": cfg.to_dict(), "recipe_hash": spec.key(digests), "inputs": digests,
        "command": spec.command, "commit": git_commit(ignore=("results", "weights")), "hardware": hardware(resolve_device(device)),
        "wall_time_s": fit.train_time_s, "seconds_this_call": round(time.perf_counter() - t0, 1),
        "images_seen": int(sum(e["images"] for e in log)), "epochs": len(log),
        "final_loss": log[-1]["loss"] if log else None, "dtype": "float16",
        "bytes": spec.file.stat().st_size, "sha256": file_digest(spec.file),
        "log": [{k: e[k] for k in e if k not in ("event",)} for e in log],  # per-epoch training records
    }
    manifest = read_manifest()
    manifest["models"][name] = record
    _write_manifest(manifest)
    return record


# ----------------------------------------------------------------------------- loading
def load_committed(name: str, device: str = "cpu", recipe: TrainConfig | None = None):
    """The committed model ``name`` in eval mode (fp16 weights in an fp32 model).

    ``recipe``: the recipe the caller would train (a chapter's); it must be the registry's.  A
    missing, stale or damaged file raises :class:`WeightsError` naming it and the command that
    retrains it.
    """
    from safetensors.torch import load_file

    from reidlib.config import resolve_device

    spec = _get(name)
    if recipe is not None and recipe.to_dict() != spec.config().to_dict():
        raise WeightsError(f"the recipe asked for differs from {name}'s book recipe in the registry "
                           f"(reidlib.weights.registry): train it with retrain=True, or update the registry")
    manifest = read_manifest()
    state, why = status(name, manifest)
    if state != "ok":
        raise WeightsError(f"{name}: {state}: {why}. Retrain it with `{spec.command}` "
                           f"(or run the chapter with retrain=True to train it locally)")
    rec = manifest["models"][name]
    cls = get_method(spec.method)
    method = cls(spec.config(), int(rec["num_classes"]))
    model = method.build_model(init=False)
    sd = load_file(str(spec.file))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    bad = [k for k in missing if spec.keep_head or not is_head(k)] + list(unexpected)
    if bad:
        raise WeightsError(f"{spec.file} does not fit {type(model).__name__}: keys {bad[:6]}")
    return model.to(resolve_device(device)).eval(), method, rec


def evaluate_weights(weights: str, protocols, data: str | None = None, seed: int | None = None, device: str = "auto",
                     test_mode: str = "resize", batch_size: int = 128, json_path=None, command: str | None = None):
    """Evaluate a committed model (its name, or its ``.safetensors`` file) under ``protocols`` on
    ``data`` (default: the test split of the dataset its manifest record names), with the test
    set of SynthPeds seed ``seed`` (new identities) when given.  Returns ``(results, path or None)``."""
    from safetensors import safe_open

    from reidlib.data.datasets import build_dataset
    from reidlib.eval.evaluate import evaluate
    from reidlib.eval.results import save_results

    name = weights
    if weights.endswith(".safetensors") or Path(weights).is_file():
        p = Path(weights)
        if not p.is_file():
            raise WeightsError(f"weights file {p} not found")
        with safe_open(str(p), "pt") as f:
            name = (f.metadata() or {}).get("name")
        if not name:
            raise WeightsError(f"{p} has no 'name' in its metadata: it is not a committed book model "
                               f"(evaluate a training run with --run instead)")
        if _get(name).file.resolve() != p.resolve():
            raise WeightsError(f"{p} says it is {name!r}, whose committed file is {_get(name).file}")
    model, method, rec = load_committed(name, device)
    spec = data or rec["data"]
    dataset = build_dataset(spec, **({"seed": seed} if seed is not None else {}))
    results = evaluate(model, dataset, list(protocols), method=method.name, profile="book", device=device,
                       test_mode=test_mode, batch_size=batch_size, image_size=tuple(rec["recipe"]["image_size"]))
    for r in results:
        r.params.update(weights=name, test_seed=getattr(dataset, "seed", None))
    out = None
    if json_path:
        out = save_results(json_path, results, command=command, profile="book",
                           extra={"weights": name, "data": spec, "seed": seed})
    return results, out
