"""``python -m reidlib bench gpu``: the prepared GPU check -- every GPU path of reidlib in one short run.

Made for a session that is lent a GPU for a few minutes: one command (``bash
tools/gpu_check.sh``, which runs ``python -m reidlib bench gpu --json
results/bench/gpu_<gpu-name>.json``) measures, in one process of about 4-8 minutes on one
H200, the five sections below and writes one results file to commit.

1. ``resnet50`` -- the strong baseline's ResNet-50 (:class:`reidlib.models.baseline.Baseline`,
   no ImageNet weights) at 256x128, batch 64, training steps (loss, backward, Adam) on
   synthetic input: images/s in fp32 (contiguous, no autocast; TF32 as PyTorch's defaults
   leave it, recorded), with :mod:`reidlib.precision`'s autocast (bf16 where supported) +
   channels_last, and that plus ``torch.compile`` (in a child process with a timeout, run
   after the other sections: compiling is the slowest step); each one's ratio to fp32 and
   the goals ``goal_ratio_ge_2`` (best ratio >= 2) and ``goal_5000_img_s``.
2. ``methods`` -- each registered method's ``full`` recipe (every name in
   :data:`reidlib.methods.registry.METHODS`; VPM's stage 2 from
   :meth:`~reidlib.methods.vpm.VPMMethod.stage_recipe`; the first stage of other multi-stage
   methods): 50 training steps on SynthPeds ``market`` rendered on the fly by DataLoader
   worker processes, through the engine's sampler, batch recipe, autocast and
   channels_last.  Images/s, the time blocked in ``next(iterator)`` (loader wait) against
   the time of the step itself (copy, forward, backward, optimizer step, up to
   ``torch.cuda.synchronize``), and ``bottleneck``: ``"loader"`` or ``"gpu"``.  A method whose
   batch recipe cannot be built on this data is skipped with the reason.
3. ``eval`` -- at Market-1501 size (3,368 queries x 15,913 gallery): feature extraction of
   19,281 images by a ResNet-50 baseline in eval mode (autocast, channels_last; random
   images already on the device: the model's rate, not the loader's), and
   :func:`reidlib.metrics.rank.evaluate_rank` on the GPU against the CPU path on the same
   distance matrix (:func:`reidlib.bench.eval.synthetic_problem`): both times and
   ``identical`` (the CMC curves equal, the mAPs within 1e-9).
4. ``matchers`` -- STNReID (``full`` recipe, random init) pairwise matching on SynthPeds
   ``partial-reid-like`` (20 partial queries x 200 whole-body gallery images at 256x128):
   pairs/s for every pair and for the shortlist (``k = 10``).
5. ``ddp`` -- under ``torchrun --standalone --nproc_per_node=1``: a process-group check
   (NCCL on the GPU: join, ``all_reduce``, one DDP backward), then ``python -m reidlib train``
   (baseline, ``synthpeds:tiny``, smoke profile, 2 epochs of 2 iterations) stopped after one
   epoch (``--max-epochs 1``) and resumed (``--resume``) to the end; pass/fail and seconds.
   (One process: the trainer itself joins no process group, ``WORLD_SIZE=1``; the first
   check is what exercises NCCL.)

Each section is independent: an exception is recorded in its entry (``"status": "error"``,
``"error"``, the traceback's tail) and the next section runs.  ``--budget-s`` (default 420)
bounds the whole run: a section (or method, or the compile step) that would start without
the time it needs left is recorded as skipped with the reason.  The results file is
rewritten after every section (``"complete": false`` until the end), so a run killed from
outside still leaves what it measured.

``--dry-run`` runs the same code on the CPU at tiny sizes (every recipe with the narrow
``resnet10s`` backbone instead of ResNet-50, at a quarter of its image size, batches of 4,
2 steps, SynthPeds ``tiny``, a 200 x 1,000 ranking problem,
``torch.compile(backend="eager")``, DDP with gloo) in about a minute on 2 cores; it is what
the tests run.  Without ``--dry-run`` and without a CUDA GPU the command stops at once.

The JSON (``--json PATH``) is the one results schema
(:func:`reidlib.provenance.write_results`): ``meta`` holds the command, the commit and the
hardware (GPU name, memory, driver, torch and CUDA versions); ``results`` holds ``dry_run``,
``device``, ``budget_s``, ``elapsed_s``, ``complete``, ``plan`` (every size used) and
``sections`` (one entry per section above, each with ``status`` ``"ok"`` | ``"partial"`` |
``"error"`` | ``"skipped"``, ``seconds``, and its figures or its ``error`` / ``reason``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from reidlib.bench.eval import MARKET_CAMS, MARKET_DISTRACTORS, MARKET_G, MARKET_IDS, MARKET_Q

__all__ = ["SECTIONS", "Plan", "FULL", "DRY", "main"]

#: the sections, in the order they run
SECTIONS = ("resnet50", "methods", "eval", "matchers", "ddp")
DEFAULT_BUDGET_S = 420.0
GOAL_RATIO = 2.0  # mixed precision (+ compile) vs fp32
GOAL_IMG_S = 5000.0  # ResNet-50 256x128 training images/s
NUM_CLASSES = 751  # Market-1501's training identities (the classifier size of the synthetic-input models)
CHILD_MARK = "GPU_CHECK_CHILD "  # the line a child process prints its JSON on


@dataclass(frozen=True)
class Plan:
    """Every size the check uses: :data:`FULL` on a GPU, :data:`DRY` on the CPU (``--dry-run``)."""

    name: str
    backbone: str | None  # instead of every recipe's ResNet-50 (the dry run's narrow resnet10s); None = the recipe's
    # 1. resnet50
    r50_size: tuple[int, int]
    r50_batch: int
    r50_warmup: int
    r50_steps: int
    compile_backend: str
    compile_timeout_s: float
    # 2. methods
    data_preset: str
    method_scale: int  # each recipe's image size is divided by this
    method_batch: tuple[int, int] | None  # (P, K) instead of the recipe's; None = the recipe's
    method_warmup: int
    method_steps: int
    # 3. eval
    eval_problem: tuple[int, int, int, int, int]  # queries, gallery, ids, distractors, cameras
    eval_repeats: int
    extract_images: int
    extract_batch: int
    extract_size: tuple[int, int]
    # 4. matchers
    match_data: str
    match_size: tuple[int, int]
    match_queries: int
    match_gallery: int
    match_k: int
    match_repeats: int
    # 5. ddp
    ddp_data: str
    ddp_overrides: tuple[str, ...]
    child_timeout_s: float
    # seconds a section needs at least (it is skipped when less of the budget is left)
    need_s: tuple[tuple[str, float], ...]


_DDP_SET = ("epochs=2", "max_iters_per_epoch=2", "batch_p=4", "batch_k=4", "num_workers=0")

FULL = Plan(
    name="full", backbone=None, r50_size=(256, 128), r50_batch=64, r50_warmup=10, r50_steps=40,
    compile_backend="inductor", compile_timeout_s=240.0,
    data_preset="market", method_scale=1, method_batch=None, method_warmup=5, method_steps=50,
    eval_problem=(MARKET_Q, MARKET_G, MARKET_IDS, MARKET_DISTRACTORS, MARKET_CAMS), eval_repeats=3,
    extract_images=MARKET_Q + MARKET_G, extract_batch=256,
    extract_size=(256, 128),
    match_data="partial-reid-like", match_size=(256, 128), match_queries=20, match_gallery=200, match_k=10,
    match_repeats=3,
    ddp_data="synthpeds:tiny", ddp_overrides=_DDP_SET, child_timeout_s=120.0,
    need_s=(("resnet50", 20.0), ("methods", 30.0), ("method", 15.0), ("eval", 15.0), ("matchers", 10.0),
            ("ddp", 30.0), ("compile", 45.0)),
)

DRY = Plan(
    name="dry-run", backbone="resnet10s", r50_size=(64, 32), r50_batch=4, r50_warmup=1, r50_steps=2,
    compile_backend="eager", compile_timeout_s=90.0,
    data_preset="tiny", method_scale=4, method_batch=(2, 2), method_warmup=1, method_steps=2,
    eval_problem=(200, 1000, 50, 100, 6), eval_repeats=1, extract_images=16, extract_batch=8, extract_size=(64, 32),
    match_data="partial-reid-like", match_size=(64, 32), match_queries=4, match_gallery=16, match_k=4,
    match_repeats=1,
    ddp_data="synthpeds:tiny", ddp_overrides=_DDP_SET, child_timeout_s=90.0,
    need_s=(("resnet50", 1.0), ("methods", 1.0), ("method", 1.0), ("eval", 1.0), ("matchers", 1.0),
            ("ddp", 1.0), ("compile", 1.0)),
)


# ----------------------------------------------------------------------------- small helpers
def _train_step(method, model, batch, opt, scaler, device, dtype):
    """One optimisation step as the trainer takes it (autocast with ``dtype``, scaled backward)."""
    from reidlib.precision import autocast

    with autocast(device, enabled=dtype is not None, dtype=dtype):
        loss, _ = method.loss(model, batch, 0)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss.detach()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "") if dtype is not None else "float32"


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device):
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _tail(text: str, n: int = 2000) -> str:
    return text if len(text) <= n else "..." + text[-n:]


def _error_entry(e: BaseException) -> dict:
    return {"status": "error", "error": f"{type(e).__name__}: {e}",
            "traceback_tail": _tail("".join(traceback.format_exception(type(e), e, e.__traceback__)), 1500)}


def _repo_root() -> Path:
    import reidlib

    return Path(reidlib.__file__).resolve().parent.parent


def _child_env() -> dict:
    """The environment of the child processes: this reidlib first on ``PYTHONPATH``; in the dry run
    one CPU thread per process (as the dry run itself uses)."""
    env = dict(os.environ)
    if torch.get_num_threads() == 1:
        env["OMP_NUM_THREADS"] = "1"
    root = str(_repo_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run_child(cmd: list[str], timeout: float, shown: str | None = None) -> dict:
    """Run ``cmd``; ``{"command", "returncode", "seconds", "child" (its JSON line, if any), "output_tail"}``."""
    t0 = time.perf_counter()
    out = {"command": shown or shlex.join(cmd)}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, timeout), env=_child_env(),
                           cwd=_repo_root())
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        text += (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        out.update(returncode=None, seconds=round(time.perf_counter() - t0, 2),
                   error=f"timed out after {timeout:.0f} s", output_tail=_tail(text))
        return out
    out.update(returncode=r.returncode, seconds=round(time.perf_counter() - t0, 2))
    for line in r.stdout.splitlines():
        if line.startswith(CHILD_MARK):
            out["child"] = json.loads(line[len(CHILD_MARK):])
    if r.returncode != 0:
        out["output_tail"] = _tail(r.stdout + r.stderr)
    return out


# ----------------------------------------------------------------------------- 1. resnet50
def resnet50_throughput(device: torch.device, plan: Plan, amp: bool, channels_last: bool,
                        compile_backend: str | None = None, tf32: bool | None = None) -> dict:
    """Training images/s of the strong baseline's ResNet-50 on synthetic input (no loader).

    The baseline's ``full`` recipe (no ImageNet weights) at ``plan.r50_size``, its loss
    (label-smoothed CE + batch-hard triplet on PK-structured labels) and its optimizer;
    ``amp``: :mod:`reidlib.precision`'s autocast; ``compile_backend``: ``torch.compile``
    with that backend (the first warm-up step, which compiles, is reported apart); ``tf32``:
    TF32 for convolutions and matmuls on (True) or off (False) during the measurement (None:
    as PyTorch's defaults leave it: on for cuDNN convolutions, off for matmuls).
    """
    if tf32 is not None:
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            return resnet50_throughput(device, plan, amp, channels_last, compile_backend, None)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    from reidlib.engine.schedule import build_optimizer
    from reidlib.methods.baseline import BaselineMethod
    from reidlib.precision import amp_dtype_for

    cfg = _with_backbone(BaselineMethod.recipe("full").replace(pretrained=False, image_size=tuple(plan.r50_size)),
                         plan)
    method = BaselineMethod(cfg, NUM_CLASSES)
    torch.manual_seed(0)
    model = method.build_model(init=False).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(method.param_groups(model), cfg)
    dtype = amp_dtype_for(device, enabled=amp)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    run_model = torch.compile(model, backend=compile_backend) if compile_backend else model
    b = plan.r50_batch
    x = torch.randn(b, 3, *plan.r50_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    k = 4 if b >= 8 else 2  # images per identity (the triplet loss needs positives and negatives)
    y = (torch.arange(b, device=device) // k) % NUM_CLASSES
    batch = {"image": x, "label": y}

    def step():
        return _train_step(method, run_model, batch, opt, scaler, device, dtype)

    _reset_peak(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - t0
    for _ in range(plan.r50_warmup - 1):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(plan.r50_steps):
        loss = step()
    _sync(device)
    dt = time.perf_counter() - t0
    out = {
        "images_per_s": b * plan.r50_steps / dt, "step_ms": 1000 * dt / plan.r50_steps,
        "first_step_s": first, "dtype": _dtype_name(dtype), "channels_last": channels_last,
        "compiled": bool(compile_backend), "compile_backend": compile_backend,
        "loss_finite": bool(torch.isfinite(loss).item()), "peak_memory_gib": _peak_gib(device),
        "tf32": {"cudnn_conv": bool(torch.backends.cudnn.allow_tf32),
                 "matmul": bool(torch.backends.cuda.matmul.allow_tf32)},
    }
    del run_model, model, opt, x
    _free(device)
    return out


def _baseline_full():
    from reidlib.methods.baseline import BaselineMethod

    return BaselineMethod.recipe("full")


def _resnet50_goals(sec: dict) -> None:
    """Ratios to fp32 and the goal booleans, from what ``sec["variants"]`` measured."""
    variants = sec.get("variants", {})
    base = variants.get("fp32", {}).get("images_per_s")
    strict = variants.get("fp32_strict", {}).get("images_per_s")
    best_name, best = None, None
    for name, v in variants.items():
        rate = v.get("images_per_s")
        if base and rate:
            v["ratio_to_fp32"] = rate / base
        if strict and rate:
            v["ratio_to_fp32_strict"] = rate / strict
        if not name.startswith("fp32") and rate and (best is None or rate > best):
            best_name, best = name, rate
    sec["goal_basis"] = best_name
    sec["best_images_per_s"] = best
    sec["best_ratio_to_fp32"] = best / base if best and base else None
    sec["goal_ratio_ge_2"] = (best / base >= GOAL_RATIO) if best and base else None
    sec["goal_5000_img_s"] = (best >= GOAL_IMG_S) if best else None
    sec["goal_ratio_ge_2_vs_fp32_strict"] = (best / strict >= GOAL_RATIO) if best and strict else None
    sec["goals"] = {"goal_ratio_ge_2": f"the best mixed-precision variant >= {GOAL_RATIO:g} x fp32 (PyTorch's "
                                       f"default TF32 settings)",
                    "goal_ratio_ge_2_vs_fp32_strict": f"the same against fp32 with TF32 off everywhere",
                    "goal_5000_img_s": f"the best variant >= {GOAL_IMG_S:g} training images/s"}


def section_resnet50(ctx: "Check") -> dict:
    dev, plan = ctx.device, ctx.plan
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    sec = {
        "model": f"reidlib Baseline: {_with_backbone(_baseline_full(), plan).backbone} (random init), last stride 1, "
                 f"BNNeck; the baseline's full recipe",
        "loss": "label-smoothed cross-entropy + batch-hard triplet", "optimizer": "adam",
        "input": "synthetic images already on the device (no loader)",
        "variants_are": {"fp32": "contiguous, no autocast, TF32 as PyTorch's defaults leave it",
                         "fp32_strict": "the same with TF32 off for convolutions and matmuls",
                         "amp_channels_last": "reidlib.precision's autocast (bf16 where supported) + channels_last",
                         "amp_channels_last_compile": "the same + torch.compile (a child process)"},
        "image_size": list(plan.r50_size), "batch": plan.r50_batch, "warmup_steps": plan.r50_warmup,
        "steps": plan.r50_steps,
        "tf32": {"cudnn_conv": bool(torch.backends.cudnn.allow_tf32),
                 "matmul": bool(torch.backends.cuda.matmul.allow_tf32)},
        "variants": {},
    }
    sec["variants"]["fp32"] = resnet50_throughput(dev, plan, amp=False, channels_last=False)
    sec["variants"]["fp32_strict"] = resnet50_throughput(dev, plan, amp=False, channels_last=False, tf32=False)
    sec["variants"]["amp_channels_last"] = resnet50_throughput(dev, plan, amp=True, channels_last=dev.type == "cuda"
                                                               or ctx.dry_run)
    sec["variants"]["amp_channels_last_compile"] = {
        "status": "pending", "reason": "measured after the other sections (compiling takes the longest)"}
    _resnet50_goals(sec)
    if ctx.dry_run:
        sec["note"] = "dry run on the CPU: no autocast there (fp32); the goals are computed but mean nothing"
    return sec


def step_compile(ctx: "Check") -> None:
    """The ``torch.compile`` variant of section 1, in a child process with a timeout."""
    sec = ctx.results["sections"].get("resnet50")
    if not sec or sec.get("status") not in ("ok", "partial"):
        return
    entry: dict
    left = ctx.remaining()
    need = ctx.need("compile")
    if left < need:
        entry = {"status": "skipped", "reason": f"time budget: {left:.1f} s left of --budget-s {ctx.budget_s:g}, "
                                                f"compiling needs about {need:.0f} s or more"}
    elif ctx.skip_compile:
        entry = {"status": "skipped", "reason": "--skip-compile"}
    else:
        timeout = min(ctx.plan.compile_timeout_s, left)
        cmd = [sys.executable, "-m", "reidlib.bench.gpu", "--_compile-child", "--device", str(ctx.device)]
        if ctx.dry_run:
            cmd.append("--dry-run")
        r = _run_child(cmd, timeout)
        if r.get("returncode") == 0 and "child" in r:
            entry = {"status": "ok", **r["child"], "process_s": r["seconds"]}
        else:
            entry = {"status": "error", "error": r.get("error") or f"the compile child exited with {r['returncode']}",
                     "command": r["command"], "output_tail": r.get("output_tail", "")}
        if ctx.dry_run:
            entry["note"] = ("dry run: torch.compile(backend='eager') exercises the path (dynamo tracing) "
                             "without inductor's code generation; the GPU run uses inductor")
    sec["variants"]["amp_channels_last_compile"] = entry
    _resnet50_goals(sec)
    if entry.get("status") == "error" and sec["status"] == "ok":
        sec["status"] = "partial"


# ----------------------------------------------------------------------------- 2. methods
def method_configs(plan: Plan) -> list[tuple[str, object, object, str | None]]:
    """``(key, method class, TrainConfig, note)`` of every recipe to measure: each registered
    method's ``full`` recipe, plus VPM's stage 2 (a class of None: the note says why the method
    could not be set up).  The key is the method's name, with ``:stageN`` for a recipe whose
    settings name a stage (VPM, STNReID)."""
    from reidlib.methods.registry import METHODS, get_method

    out = []
    for name in METHODS:
        try:
            cls = get_method(name)
            cfg = cls.recipe("full")
            recipes = [cfg]
            if name == "vpm":  # stage 2's recipe, derived without stage 1's weights (the model is built init=False)
                recipes.append(cls.stage_recipe(cfg, 2, init_weights=None))
            later = [s.name for s in cls.stages(cfg)[len(recipes):]]
        except Exception as e:  # noqa: BLE001 - recorded, the other methods still run
            out.append((name, None, None, f"{type(e).__name__}: {e}"))
            continue
        for i, c in enumerate(recipes):
            stage = (c.extra or {}).get("stage")
            key = f"{name}:stage{stage}" if stage is not None else name
            note = (f"not measured: the later stages {later} (they start from an earlier stage's weights)"
                    if later and i == len(recipes) - 1 else None)
            out.append((key, cls, _scaled(c, plan), note))
    return out


def _with_backbone(cfg, plan: Plan):
    """The recipe with the plan's backbone (the dry run's narrow ``resnet10s``), else unchanged."""
    return cfg.replace(backbone=plan.backbone) if plan.backbone and plan.backbone != cfg.backbone else cfg


def _scaled(cfg, plan: Plan):
    """The recipe at the plan's size (the dry run's quarter-size images, small batches, narrow backbone)."""
    cfg = _with_backbone(cfg, plan)
    kw = {}
    if plan.method_scale != 1:
        h, w = cfg.image_size
        kw["image_size"] = (max(16, h // plan.method_scale), max(16, w // plan.method_scale))
    if plan.method_batch is not None:
        kw["batch_p"], kw["batch_k"] = plan.method_batch
    return cfg.replace(**kw) if kw else cfg


def train_steps(cls, cfg, dataset, device: torch.device, warmup: int, steps: int, workers: int,
                seed: int = 0) -> dict:
    """``warmup + steps`` training steps of ``cls(cfg)`` on ``dataset`` rendered by ``workers``
    DataLoader processes: images/s, loader wait vs step time, the bottleneck."""
    from torch.utils.data import DataLoader

    from reidlib.data.sampler import EpochTaggedSampler, SeededItems, build_sampler
    from reidlib.engine.schedule import build_optimizer
    from reidlib.engine.trainer import move_batch
    from reidlib.precision import amp_dtype_for

    pid2label = dataset.relabel_train()
    method = cls(cfg, len(pid2label))
    try:  # the batch recipe: a method whose items need what this data lacks is skipped
        train_set = method.train_dataset(dataset, pid2label)
        pids = getattr(train_set, "pids", None)
        if pids is None:
            raise TypeError(f"{type(train_set).__name__} has no .pids (one training label per item) for the sampler")
        train_set[0]
    except Exception as e:  # noqa: BLE001
        return {"status": "skipped", "reason": f"its batch recipe cannot be built on {getattr(dataset, 'name', 'the data')}: "
                                               f"{type(e).__name__}: {e}"}
    cuda = device.type == "cuda"
    dtype = amp_dtype_for(device, cfg.amp)
    channels_last = bool(cfg.channels_last and cuda)
    torch.manual_seed(seed)
    _reset_peak(device)
    model = method.build_model(init=False).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(method.param_groups(model), cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    sampler = EpochTaggedSampler(build_sampler(list(pids), cfg.sampler, cfg.batch_p, cfg.batch_k, seed))
    loader = DataLoader(SeededItems(train_set, seed), batch_size=cfg.batch_size, sampler=sampler,
                        num_workers=workers, pin_memory=cuda, drop_last=True, persistent_workers=False,
                        prefetch_factor=2 if workers > 0 else None)
    epoch = 0
    sampler.set_epoch(epoch)
    it = iter(loader)
    wait = gpu = 0.0
    step_times, losses = [], []
    t_first = t_start = None
    t_all = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            t_start = time.perf_counter()
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:  # a short epoch: the next one
            epoch += 1
            sampler.set_epoch(epoch)
            it = iter(loader)
            batch = next(it)
        t1 = time.perf_counter()
        batch = move_batch(batch, device, channels_last)
        loss = _train_step(method, model, batch, opt, scaler, device, dtype)
        _sync(device)
        t2 = time.perf_counter()
        if i == 0:
            t_first = t1 - t_all
        if i >= warmup:
            wait += t1 - t0
            gpu += t2 - t1
            step_times.append(t2 - t1)
        if i in (warmup, warmup + steps - 1):
            losses.append(loss.detach())
    wall = time.perf_counter() - t_start
    del it, loader
    n = cfg.batch_size * steps
    out = {
        "status": "ok", "method": method.name, "image_size": list(cfg.image_size), "backbone": cfg.backbone,
        "batch_size": cfg.batch_size, "batch_pk": [cfg.batch_p, cfg.batch_k], "sampler": cfg.sampler,
        "optimizer": cfg.optimizer, "dtype": _dtype_name(dtype), "channels_last": channels_last,
        "num_workers": workers, "warmup_steps": warmup, "steps": steps,
        "first_batch_s": t_first, "wall_s": wall, "images_per_s": n / wall,
        "loader_wait_s": wait, "gpu_step_s": gpu,
        "loader_wait_ms_per_step": 1000 * wait / steps, "gpu_step_ms_per_step": 1000 * gpu / steps,
        "gpu_step_ms_median": 1000 * float(np.median(step_times)),
        "loader_wait_fraction": wait / max(wait + gpu, 1e-12),
        "gpu_bound_images_per_s": n / max(gpu, 1e-12),
        "bottleneck": "loader" if wait > gpu else "gpu",
        "loss_first": float(losses[0]), "loss_last": float(losses[-1]),
        "loss_finite": all(math.isfinite(float(v)) for v in losses),
        "peak_memory_gib": _peak_gib(device),
    }
    del model, opt
    _free(device)
    return out


def _loader_failure(e: BaseException) -> bool:
    """Whether ``e`` looks like a DataLoader worker failure (killed worker, no shared memory)."""
    text = f"{type(e).__name__}: {e}".lower()
    return any(w in text for w in ("dataloader worker", "shared memory", "shm", "bus error", "worker process"))


def _shm_free_gib():
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return round(st.f_bavail * st.f_frsize / 2**30, 2)


def section_methods(ctx: "Check") -> dict:
    from reidlib.data.synthpeds import SynthPeds

    plan, dev = ctx.plan, ctx.device
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    data = SynthPeds(plan.data_preset, seed=0)
    sec = {"data": f"SynthPeds {plan.data_preset} (seed 0, {data.size[0]}x{data.size[1]}), rendered on the fly",
           "data_build_s": time.perf_counter() - t0, "num_workers": ctx.workers, "cpu_count": os.cpu_count(),
           "shm_free_gib": _shm_free_gib(),
           "warmup_steps": plan.method_warmup, "steps": plan.method_steps,
           "timing": "loader wait = time blocked in next(iterator); GPU step = copy + forward + backward + "
                     "optimizer step up to torch.cuda.synchronize; bottleneck = the larger of the two",
           "runs": {}}
    if plan.method_scale != 1 or plan.method_batch or plan.backbone:
        sec["note"] = (f"dry run: each full recipe with backbone {plan.backbone}, at 1/{plan.method_scale} of its "
                       f"image size, batches of {plan.method_batch}")
    errors = 0
    for key, cls, cfg, note in method_configs(plan):
        left, need = ctx.remaining(), ctx.need("method")
        if cls is None:
            entry = {"status": "error", "error": f"the method cannot be set up: {note}"}
        elif left < need:
            entry = {"status": "skipped", "reason": f"time budget: {left:.1f} s left of --budget-s "
                                                    f"{ctx.budget_s:g}, a method needs about {need:.0f} s"}
        else:
            t = time.perf_counter()
            try:
                entry = train_steps(cls, cfg, data, dev, plan.method_warmup, plan.method_steps, ctx.workers)
            except Exception as e:  # noqa: BLE001 - recorded, the other methods still run
                entry = _error_entry(e)
                _free(dev)
                if ctx.workers > 0 and _loader_failure(e):  # e.g. a small /dev/shm: measure it in-process instead
                    try:
                        retry = train_steps(cls, cfg, data, dev, plan.method_warmup, plan.method_steps, 0)
                        retry["retried_without_workers"] = entry["error"]
                        entry = retry
                    except Exception as e2:  # noqa: BLE001
                        entry["retry_without_workers_error"] = f"{type(e2).__name__}: {e2}"
                        _free(dev)
            entry["seconds"] = time.perf_counter() - t
            if note:
                entry["note"] = note
        errors += entry["status"] == "error"
        sec["runs"][key] = entry
        ctx.log(f"  methods/{key}: " + _short(entry))
    if errors:
        sec["status"] = "partial" if errors < len(sec["runs"]) else "error"
        if sec["status"] == "error":
            sec["error"] = "every method failed (see runs)"
    return sec


# ----------------------------------------------------------------------------- 3. eval
def section_eval(ctx: "Check") -> dict:
    from reidlib.bench.eval import _time_cpu, synthetic_problem
    from reidlib.methods.baseline import BaselineMethod
    from reidlib.metrics.distance import euclidean_squared
    from reidlib.metrics.rank import evaluate_rank
    from reidlib.precision import amp_dtype_for, autocast

    plan, dev = ctx.plan, ctx.device
    sec: dict = {}
    # feature extraction: the model's rate on images already on the device
    cfg = _with_backbone(BaselineMethod.recipe("full").replace(pretrained=False, image_size=tuple(plan.extract_size)),
                         plan)
    model = BaselineMethod(cfg, NUM_CLASSES).build_model(init=False).to(dev).eval()
    cl = dev.type == "cuda"
    if cl:
        model = model.to(memory_format=torch.channels_last)
    dtype = amp_dtype_for(dev)
    x = torch.rand(plan.extract_batch, 3, *plan.extract_size, device=dev)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    n_batches = math.ceil(plan.extract_images / plan.extract_batch)

    def extract(n):
        feats = None
        with torch.no_grad(), autocast(dev, enabled=dtype is not None, dtype=dtype):
            for _ in range(n):
                feats = model.extract(x).global_feat
        return feats

    _reset_peak(dev)
    extract(2)  # warm-up (cuDNN's algorithm search)
    _sync(dev)
    t0 = time.perf_counter()
    f = extract(n_batches)
    _sync(dev)
    dt = time.perf_counter() - t0
    sec["extraction"] = {
        "model": f"reidlib Baseline {cfg.backbone} (random init), eval mode, BNNeck feature",
        "images": n_batches * plan.extract_batch,
        "batch": plan.extract_batch, "image_size": list(plan.extract_size), "dtype": _dtype_name(dtype),
        "channels_last": cl, "input": "random images already on the device", "feature_dim": int(f.shape[1]),
        "seconds": dt, "images_per_s": n_batches * plan.extract_batch / dt, "peak_memory_gib": _peak_gib(dev),
    }
    del model, x, f
    _free(dev)

    # ranking: the same distance matrix on the CPU and on the device
    q, g, ids, distractors, cams = plan.eval_problem
    qf, gf, qp, gp, qc, gc = synthetic_problem(q, g, ids, distractors, cams)
    D = euclidean_squared(qf, gf)
    evaluate_rank(D[:50], qp[:50], gp, qc[:50], gc)  # warm-up
    t_cpu, t_cpu_proc, (cmc_c, map_c) = _time_cpu(lambda: evaluate_rank(D, qp, gp, qc, gc), plan.eval_repeats)
    Dd = D.to(dev)
    evaluate_rank(Dd[:50], qp[:50], gp, qc[:50], gc)  # warm-up (kernels, allocator)
    t_dev, _, (cmc_d, map_d) = _time_cpu(lambda: evaluate_rank(Dd, qp, gp, qc, gc), plan.eval_repeats)
    cmc_c, cmc_d = np.asarray(cmc_c), np.asarray(cmc_d)
    same_cmc = bool(np.array_equal(cmc_c, cmc_d))
    map_diff = abs(float(map_c) - float(map_d))
    sec["rank"] = {
        "queries": q, "gallery": g, "identities": ids, "distractors": distractors, "cameras": cams,
        "distmat": "squared euclidean of reidlib.bench.eval.synthetic_problem's features (64-d), seed 0",
        "repeats": plan.eval_repeats, "cpu_s": t_cpu, "cpu_process_s": t_cpu_proc, "cpu_threads": torch.get_num_threads(),
        "gpu_s": t_dev, "gpu_path_device": str(Dd.device) + (" (dry run: the CPU stands in)" if ctx.dry_run else ""),
        "speedup": t_cpu / max(t_dev, 1e-12),
        "identical": same_cmc and map_diff <= 1e-9, "identical_rule": "CMC arrays equal and |mAP_gpu - mAP_cpu| <= 1e-9",
        "cmc_max_abs_diff": float(np.max(np.abs(cmc_c - cmc_d))) if cmc_c.shape == cmc_d.shape else None,
        "mAP_abs_diff": map_diff, "rank1": float(cmc_c[0]), "mAP": float(map_c),
    }
    del Dd
    _free(dev)
    if not sec["rank"]["identical"]:
        sec["status"] = "partial"
        sec["error"] = "evaluate_rank gives different results on the GPU and on the CPU (see rank)"
    return sec


# ----------------------------------------------------------------------------- 4. matchers
def section_matchers(ctx: "Check") -> dict:
    from reidlib.bench.match import _timed, extract_all
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.methods.stnreid import STNReIDMethod

    plan, dev = ctx.plan, ctx.device
    cfg = _with_backbone(STNReIDMethod.recipe("full"), plan)
    if tuple(cfg.image_size) != tuple(plan.match_size):
        cfg = cfg.replace(image_size=tuple(plan.match_size))
    torch.manual_seed(0)
    model = STNReIDMethod(cfg, NUM_CLASSES).build_model(init=False).to(dev).eval()
    ds = SynthPeds(plan.match_data, seed=0, size=tuple(plan.match_size))
    q_recs = ds.query[: plan.match_queries]
    order = np.random.default_rng(0).permutation(len(ds.gallery))[: plan.match_gallery]
    g_recs = [ds.gallery[i] for i in order]
    t0 = time.perf_counter()
    qf = extract_all(model, q_recs, ds, tuple(plan.match_size), dev)
    gf = extract_all(model, g_recs, ds, tuple(plan.match_size), dev)
    t_extract = time.perf_counter() - t0
    Q, G, k = len(q_recs), len(g_recs), plan.match_k
    full = model.matcher(shortlist=None)
    short = model.matcher(shortlist=k)
    _reset_peak(dev)
    full(qf[:1], gf[: min(4, G)])  # warm-up (allocations, cuDNN)
    t_full, d_full = _timed(lambda: full(qf, gf), plan.match_repeats, dev)
    t_short, d_short = _timed(lambda: short(qf, gf), plan.match_repeats, dev)
    t_glob, _ = _timed(lambda: model.global_matcher()(qf, gf), plan.match_repeats, dev)
    sec = {
        "model": f"STNReID full recipe ({cfg.backbone} ReID module + STN), random init",
        "image_size": list(plan.match_size),
        "data": f"SynthPeds {plan.match_data} (seed 0): first {Q} partial queries x {G} whole-body gallery images",
        "queries": Q, "gallery": G, "batch_pairs": model.batch_pairs, "amp": bool(model.amp),
        "repeats": plan.match_repeats, "extract_s": t_extract, "global_s": t_glob,
        "full": {"pairs": Q * G, "seconds": t_full, "pairs_per_s": Q * G / max(t_full, 1e-12)},
        "shortlist": {"k": k, "pairs_scored": Q * k, "seconds": t_short,
                      "pairs_per_s": Q * k / max(t_short, 1e-12),
                      "ranked_pairs_per_s": Q * G / max(t_short, 1e-12),
                      "speedup_vs_full": t_full / max(t_short, 1e-12)},
        "distances_finite": bool(torch.isfinite(d_full).all().item() and torch.isfinite(d_short).all().item()),
        "peak_memory_gib": _peak_gib(dev),
    }
    del model, qf, gf
    _free(dev)
    return sec


# ----------------------------------------------------------------------------- 5. ddp
def section_ddp(ctx: "Check") -> dict:
    import importlib.util

    from reidlib.engine.runs import RunDir

    if not torch.distributed.is_available() or importlib.util.find_spec("torch.distributed.run") is None:
        return {"status": "skipped", "reason": "torch.distributed / torchrun (torch.distributed.run) is not "
                                               "available in this torch build"}
    plan, dev = ctx.plan, ctx.device
    backend = "nccl" if dev.type == "cuda" else "gloo"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    shown_launcher = "torchrun --standalone --nproc_per_node=1"
    device_arg = "cuda" if dev.type == "cuda" else "cpu"
    sec: dict = {"backend": backend, "launcher": f"{shown_launcher} (python -m torch.distributed.run)",
                 "note": "one process: the trainer joins no process group (WORLD_SIZE=1); the process_group "
                         f"check joins one with {backend} itself"}

    def timeout() -> float:
        return max(1.0, min(plan.child_timeout_s, ctx.remaining()))

    pg = _run_child(launcher + ["-m", "reidlib.bench.gpu", "--_ddp-child", "--device", device_arg], timeout(),
                    shown=f"{shown_launcher} -m reidlib.bench.gpu --_ddp-child --device {device_arg}")
    child = pg.pop("child", None) or {}
    pg["passed"] = pg.get("returncode") == 0 and bool(child.get("passed"))
    pg.update({k: v for k, v in child.items() if k != "passed"})
    sec["process_group"] = pg

    with tempfile.TemporaryDirectory(prefix="reidlib-gpu-ddp-") as tmp:
        out = Path(tmp) / "run"
        args = ["-m", "reidlib", "train", "--method", "baseline", "--data", plan.ddp_data, "--profile", "smoke",
                "--set", *plan.ddp_overrides, "--out", str(out), "--device", device_arg, "--no-progress"]
        shown = shown_launcher + " " + shlex.join(args).replace(str(out), "TMP/run")
        first = _run_child(launcher + args + ["--max-epochs", "1"], timeout(), shown=shown + " --max-epochs 1")
        rd = RunDir(out)
        first["checkpoint_written"] = rd.has_checkpoint()
        first["stopped_unfinished"] = not rd.is_finished()
        first["passed"] = first.get("returncode") == 0 and first["checkpoint_written"] and first["stopped_unfinished"]
        first.pop("child", None)
        sec["train_first_epoch"] = first
        if first["passed"]:
            res = _run_child(launcher + args + ["--resume"], timeout(), shown=shown + " --resume")
            res.pop("child", None)
            metrics = rd.read_metrics() if rd.is_finished() else {}
            res["finished"] = rd.is_finished()
            res["epochs_done"] = metrics.get("epochs_done")
            res["completed"] = metrics.get("completed")
            res["passed"] = res.get("returncode") == 0 and res["finished"] and bool(res["completed"])
        else:
            res = {"passed": False, "reason": "not run: the first call failed"}
        sec["resume"] = res
    sec["passed"] = bool(pg["passed"] and first["passed"] and res["passed"])
    sec["seconds_total"] = sum(float(s.get("seconds") or 0) for s in (pg, first, res))
    if not sec["passed"]:
        failed = [n for n, s in (("process_group", pg), ("train_first_epoch", first), ("resume", res))
                  if not s["passed"]]
        sec["status"] = "error"
        sec["error"] = "failed: " + ", ".join(failed) + " (see their returncode / output_tail)"
    return sec


def _ddp_child(device_name: str) -> int:
    """Under torchrun: join the process group (NCCL on CUDA, gloo on the CPU), ``all_reduce``,
    one DDP backward; prints one JSON line."""
    import torch.distributed as dist
    from torch import nn

    dev = torch.device(device_name)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    t0 = time.perf_counter()
    dist.init_process_group(backend=backend)
    t_init = time.perf_counter() - t0
    world, rank = dist.get_world_size(), dist.get_rank()
    t = torch.full((4,), float(rank + 1), device=dev)
    dist.all_reduce(t)
    reduce_ok = bool(torch.allclose(t.cpu(), torch.full((4,), world * (world + 1) / 2)))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4)).to(dev)
    ddp = nn.parallel.DistributedDataParallel(net, device_ids=[local] if dev.type == "cuda" else None)
    loss = ddp(torch.randn(4, 3, 16, 8, device=dev)).square().mean()
    loss.backward()
    grads_ok = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())
    dist.barrier()
    dist.destroy_process_group()
    print(CHILD_MARK + json.dumps({"passed": reduce_ok and grads_ok, "backend": backend, "world_size": world,
                                   "init_s": t_init, "all_reduce_ok": reduce_ok, "ddp_backward_ok": grads_ok}),
          flush=True)
    return 0 if reduce_ok and grads_ok else 1


def _compile_child(device_name: str, dry_run: bool) -> int:
    plan = DRY if dry_run else FULL
    dev = torch.device(device_name)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    res = resnet50_throughput(dev, plan, amp=True, channels_last=dev.type == "cuda" or dry_run,
                              compile_backend=plan.compile_backend)
    res["compile_s"] = res.pop("first_step_s")  # the first step compiles
    print(CHILD_MARK + json.dumps(res), flush=True)
    return 0


# ----------------------------------------------------------------------------- the check
def _short(entry: dict) -> str:
    s = entry.get("status", "ok")
    if s == "skipped":
        return "skipped: " + entry.get("reason", "")
    if s == "error":
        return "ERROR: " + entry.get("error", "")
    if "images_per_s" in entry:
        return (f"{entry['images_per_s']:.0f} img/s, loader wait {entry['loader_wait_ms_per_step']:.1f} ms/step vs "
                f"step {entry['gpu_step_ms_per_step']:.1f} ms ({entry['bottleneck']}-bound)")
    return s


class Check:
    """One run of the check: the plan, the budget, the results (written after every section)."""

    RUNNERS = {"resnet50": section_resnet50, "methods": section_methods, "eval": section_eval,
               "matchers": section_matchers, "ddp": section_ddp}

    def __init__(self, plan: Plan, device: torch.device, budget_s: float, json_path: str | None, command: str,
                 dry_run: bool, workers: int, sections: list[str], skip_compile: bool = False, quiet: bool = False):
        self.plan, self.device, self.budget_s = plan, device, float(budget_s)
        self.json_path, self.command, self.dry_run = json_path, command, dry_run
        self.workers, self.selected, self.skip_compile, self.quiet = workers, sections, skip_compile, quiet
        self.t0 = time.perf_counter()
        self.results = {"dry_run": dry_run, "device": str(device), "budget_s": self.budget_s, "elapsed_s": 0.0,
                        "complete": False, "plan": asdict(plan), "num_workers": workers, "sections": {}}

    def remaining(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def need(self, what: str) -> float:
        return dict(self.plan.need_s).get(what, 1.0)

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def save(self) -> None:
        self.results["elapsed_s"] = time.perf_counter() - self.t0
        if self.json_path:
            from reidlib.provenance import write_results

            write_results(self.json_path, self.results, command=self.command, device=self.device, bench="gpu",
                          dry_run=self.dry_run)

    def run_section(self, name: str) -> None:
        left, need = self.remaining(), self.need(name)
        if name not in self.selected:
            entry = {"status": "skipped", "reason": f"not selected (--sections {','.join(self.selected)})"}
        elif left < need:
            entry = {"status": "skipped", "reason": f"time budget: {left:.1f} s left of --budget-s {self.budget_s:g}, "
                                                    f"this section needs about {need:.0f} s"}
        else:
            self.log(f"[{name}] ...")
            t = time.perf_counter()
            try:
                entry = self.RUNNERS[name](self)
                entry.setdefault("status", "ok")
            except Exception as e:  # noqa: BLE001 - recorded, the next section runs
                entry = _error_entry(e)
                _free(self.device)
            entry["seconds"] = time.perf_counter() - t
        self.results["sections"][name] = entry
        self.log(f"[{name}] {entry['status']} ({entry.get('seconds', 0):.1f} s)"
                 + (f": {entry.get('error') or entry.get('reason')}" if entry["status"] in ("error", "skipped") else ""))
        self.save()

    def run(self) -> dict:
        for name in SECTIONS:
            self.run_section(name)
        if "resnet50" in self.selected:
            self.log("[resnet50] torch.compile ...")
            t = time.perf_counter()
            try:
                step_compile(self)
            except Exception as e:  # noqa: BLE001
                self.results["sections"]["resnet50"]["variants"]["amp_channels_last_compile"] = _error_entry(e)
            sec = self.results["sections"].get("resnet50", {})
            c = sec.get("variants", {}).get("amp_channels_last_compile", {})
            if "seconds" in sec:
                sec["seconds"] += time.perf_counter() - t
            self.log(f"[resnet50] torch.compile: {c.get('status')}"
                     + (f" {c['images_per_s']:.0f} img/s" if c.get("images_per_s") else "")
                     + (f": {c.get('error') or c.get('reason')}" if c.get("status") in ("error", "skipped") else ""))
        self.results["complete"] = True
        self.save()
        return self.results


def summary(results: dict) -> str:
    """A few lines of the main figures."""
    s = results["sections"]
    lines = [f"bench gpu ({'dry run, ' if results['dry_run'] else ''}{results['device']}): "
             f"{results['elapsed_s']:.0f} s of {results['budget_s']:g} s"]
    r = s.get("resnet50", {})
    for name, v in r.get("variants", {}).items():
        if v.get("images_per_s"):
            lines.append(f"  resnet50 {name:<26} {v['images_per_s']:8.0f} img/s  x{v.get('ratio_to_fp32', 1):.2f}  "
                         f"({v.get('dtype')})")
    if "goal_ratio_ge_2" in r:
        lines.append(f"  goals: ratio >= 2: {r['goal_ratio_ge_2']}, >= 5000 img/s: {r['goal_5000_img_s']}")
    for key, e in s.get("methods", {}).get("runs", {}).items():
        lines.append(f"  {key:<16} {_short(e)}")
    ev = s.get("eval", {})
    if "extraction" in ev:
        lines.append(f"  extraction {ev['extraction']['images_per_s']:.0f} img/s; evaluate_rank "
                     f"{ev['rank']['queries']}x{ev['rank']['gallery']}: CPU {ev['rank']['cpu_s']:.3f} s, "
                     f"GPU path {ev['rank']['gpu_s']:.3f} s, identical {ev['rank']['identical']}")
    m = s.get("matchers", {})
    if "full" in m:
        lines.append(f"  STNReID pairs/s: full {m['full']['pairs_per_s']:.0f}, shortlist k={m['shortlist']['k']} "
                     f"{m['shortlist']['pairs_per_s']:.0f} ({m['shortlist']['speedup_vs_full']:.1f}x faster)")
    d = s.get("ddp", {})
    if "passed" in d:
        lines.append(f"  DDP ({d['backend']}): passed {d['passed']} in {d['seconds_total']:.1f} s")
    for name in SECTIONS:
        e = s.get(name, {})
        if e.get("status") in ("error", "partial", "skipped"):
            lines.append(f"  {name}: {e['status']}" + (f" -- {e.get('error') or e.get('reason')}"
                                                       if e.get("error") or e.get("reason") else ""))
    return "\n".join(lines)


def _parse_sections(s: str) -> list[str]:
    names = [v.strip() for v in s.split(",") if v.strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        raise SystemExit(f"--sections={s!r}: expected comma-separated names from {', '.join(SECTIONS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m reidlib bench gpu", description=__doc__.split("\n\n")[0],
                                epilog="Sections: " + ", ".join(SECTIONS) + ". See the module docstring "
                                       "(reidlib/bench/gpu.py) for what each measures.")
    p.add_argument("--json", metavar="PATH", help="write the results here (rewritten after every section)")
    p.add_argument("--dry-run", action="store_true",
                   help="the same code on the CPU at tiny sizes (what the tests run); no GPU needed")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                   help=f"total time budget in seconds (default {DEFAULT_BUDGET_S:g}); sections that would start "
                        f"without the time they need are recorded as skipped")
    p.add_argument("--sections", default=",".join(SECTIONS), type=_parse_sections,
                   help="comma-separated sections to run (default: all): " + ", ".join(SECTIONS))
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers of the methods section (default: min(8, CPU count); dry run: 1)")
    p.add_argument("--skip-compile", action="store_true", help="do not measure the torch.compile variant")
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_compile-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_ddp-child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._ddp_child:
        return _ddp_child(a.device or "cpu")
    if a._compile_child:
        return _compile_child(a.device or "cpu", a.dry_run)
    if a.budget_s <= 0:
        raise SystemExit(f"--budget-s={a.budget_s:g}: expected a positive number of seconds, e.g. 420")
    if a.workers is not None and a.workers < 0:
        raise SystemExit(f"--workers={a.workers}: expected 0 or more DataLoader worker processes")

    if a.dry_run:
        device, plan = torch.device("cpu"), DRY
        workers = 1 if a.workers is None else a.workers
    else:
        if not torch.cuda.is_available():
            print("bench gpu: no CUDA GPU: run with --dry-run to test the check (the same code on the CPU at tiny "
                  "sizes), or run it on a machine with an NVIDIA GPU (bash tools/gpu_check.sh)", file=sys.stderr)
            return 2
        device, plan = torch.device("cuda", torch.cuda.current_device()), FULL
        workers = min(8, os.cpu_count() or 1) if a.workers is None else a.workers

    from reidlib.provenance import hardware_summary

    command = "python -m reidlib bench gpu " + shlex.join(argv)
    threads = torch.get_num_threads()
    if a.dry_run:
        # one thread: on a small shared CPU, OpenMP threads waiting for busy cores make a step 100x slower
        torch.set_num_threads(1)
    check = Check(plan, device, a.budget_s, a.json, command, a.dry_run, workers, a.sections, a.skip_compile)
    check.results["torch_threads"] = torch.get_num_threads()
    check.log(f"bench gpu: {hardware_summary(device)}; plan {plan.name}, budget {a.budget_s:g} s, "
              f"{workers} loader workers" + (f"; writing {a.json}" if a.json else ""))
    try:
        results = check.run()
    except KeyboardInterrupt:
        check.results["interrupted"] = True
        check.save()
        print(f"bench gpu: interrupted; what was measured is in {a.json or '(no --json given)'}", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)
    print(summary(results))
    if a.json:
        print(f"saved {a.json}")
    bad = [n for n, e in results["sections"].items() if e.get("status") in ("error", "partial")]
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
