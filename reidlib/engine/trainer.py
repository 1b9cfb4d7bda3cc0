"""The training engine: one :class:`Trainer` for every method.

The method (:class:`reidlib.methods.base.Method`) gives the model, the training set, the
loss and the recipe (:class:`~reidlib.methods.base.TrainConfig`); the trainer gives the rest:

* device auto-selection (:func:`reidlib.config.resolve_device`), DDP under ``torchrun``;
* mixed precision (:mod:`reidlib.precision`): bf16 autocast on CUDA GPUs that support it,
  fp16 + ``GradScaler`` on other GPUs, fp32 on the CPU; ``channels_last`` on CUDA; optional
  ``torch.compile``;
* loaders with pinned memory and (persistent) workers, the PK identity sampler;
* seeded determinism: every training item is drawn with its random generators seeded from
  ``(seed, rank, epoch, position)`` (:mod:`reidlib.data.sampler`), so augmentations do not
  depend on workers, and a resumed run continues exactly like an uninterrupted one (checked
  on the CPU by a test), also from the middle of an epoch;
* warm-up + step/cosine schedules, per-group learning rates (``lr_mult``);
* tqdm progress (loss, images/s), a JSON-lines log, checkpoints, final weights;
* SIGINT / SIGTERM: the current step finishes, a checkpoint is written, and
  :class:`TrainingInterrupted` is raised (``--resume`` continues from there).

The run folder's layout and the rules for reusing it are :mod:`reidlib.engine.runs`'.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

import reidlib
from reidlib.config import resolve_device, seed_everything
from reidlib.data.sampler import EpochTaggedSampler, SeededItems, build_sampler
from reidlib.engine.checkpoint import load_checkpoint, save_checkpoint, save_weights, set_rng_state
from reidlib.engine.distributed import all_reduce_mean, barrier, init_distributed, wrap_ddp
from reidlib.engine.runs import RunDir, identity_differences, run_identity, saved_identity
from reidlib.engine.schedule import build_optimizer, build_scheduler
from reidlib.methods.base import RUNTIME_FIELDS, Method, TrainConfig
from reidlib.precision import amp_dtype_for, autocast
from reidlib.provenance import git_commit, hardware, write_json

__all__ = ["Trainer", "TrainingInterrupted", "train", "move_batch"]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint; ``--resume`` continues it."""


class _StopRequest:
    """SIGINT/SIGTERM handlers (main thread only) that ask the training loop to stop after the
    current step; a second signal interrupts at once.  The previous handlers come back on exit."""

    def __init__(self):
        self.requested = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def move_batch(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if k == "image" and channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """Train ``method`` on ``dataset.train`` into the run folder ``out_dir``.

    Args:
        method: a :class:`Method` instance (recipe in ``method.cfg``, ``num_classes`` = number
            of training identities).
        dataset: a :class:`reidlib.data.base.ReIDDataset`.
        out_dir: the run folder (created; layout in :mod:`reidlib.engine.runs`).
        device: ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"``; under torchrun each process
            takes ``cuda:LOCAL_RANK``.
        seed: seeds model initialisation, the sampler and every augmentation.
        resume: continue the run in ``out_dir`` from its last checkpoint (the folder must exist;
            seed, dataset and recipe must be the run's).  A finished run is returned as it is
            (``trainer.model`` then holds its final weights).
        overwrite: delete an existing run in ``out_dir`` first (without it, an existing run is an
            error unless ``resume``).
        progress: tqdm bars (main process only).
        profile, dataset_spec: recorded in ``config.json``.

    After :meth:`fit`, ``trainer.model`` is the trained model (unwrapped, on ``device``).
    """

    def __init__(self, method: Method, dataset, out_dir: str | os.PathLike, device: str = "auto", seed: int = 0,
                 resume: bool = False, progress: bool = True, profile: str | None = None,
                 dataset_spec: str | None = None, overwrite: bool = False):
        self.method = method
        self.cfg: TrainConfig = method.cfg
        self.dataset = dataset
        self.run = RunDir(out_dir)
        self.out_dir = self.run.path
        self.seed = int(seed)
        self.resume = resume
        self.overwrite = overwrite
        self.progress = progress
        self.profile = profile
        self.dataset_spec = dataset_spec
        self.pid2label = dataset.relabel_train()
        if method.num_classes != len(self.pid2label):
            raise ValueError(
                f"method {method.name!r} was built for {method.num_classes} classes but the training set of "
                f"{getattr(dataset, 'name', 'the dataset')} has {len(self.pid2label)} identities"
            )
        dev = resolve_device(device)
        self.info = init_distributed(dev.type)
        if self.info.enabled and dev.type == "cuda":
            dev = torch.device("cuda", self.info.local_rank)
        self.device = dev
        self.amp_dtype = amp_dtype_for(dev, self.cfg.amp)
        self.channels_last = bool(self.cfg.channels_last and dev.type == "cuda")
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels

    # -- paths ---------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run.checkpoint_path

    def _log(self, record: dict) -> None:
        if self.info.is_main:
            with open(self.run.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    @property
    def dataset_name(self) -> str:
        return self.dataset_spec or getattr(self.dataset, "name", type(self.dataset).__name__)

    def dataset_summary(self) -> dict:
        return {"train_ids": len(self.pid2label), "train_images": len(self.dataset.train),
                "query_images": len(self.dataset.query), "gallery_images": len(self.dataset.gallery)}

    def identity(self) -> dict:
        return run_identity(self.method.name, self.cfg, self.dataset_name, self.dataset_summary(), self.seed)

    def run_config(self) -> dict:
        return {
            "method": self.method.name,
            "num_classes": self.method.num_classes,
            "train_config": self.cfg.to_dict(),
            "dataset": self.dataset_name,
            "dataset_summary": self.dataset_summary(),
            "profile": self.profile,
            "seed": self.seed,
            "world_size": self.info.world_size,
            "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32",
            "channels_last": self.channels_last,
            "hardware": hardware(self.device),
            "reidlib_version": reidlib.__version__,
            "git_commit": git_commit(),
        }

    # -- setup ---------------------------------------------------------------
    def _check_identity(self) -> None:
        if not self.run.config_path.is_file():
            return
        diff = identity_differences(saved_identity(self.run.read_config()), self.identity())
        if diff:
            raise ValueError(f"cannot resume {self.out_dir}: it was trained with other settings -- "
                             + "; ".join(diff) + " (train into another folder, or pass --overwrite to replace it)")

    def _prepare_dir(self) -> tuple[str, dict | None]:
        """Check the run folder against ``resume``/``overwrite``; return ``("finished", None)``,
        ``("resume", checkpoint)`` or ``("fresh", None)``."""
        run, where = self.run, self.out_dir
        if self.overwrite and self.info.is_main:
            run.clear()
        barrier(self.info)
        finished, ckpt_file = run.is_finished(), run.has_checkpoint()
        if finished or ckpt_file:
            if not self.resume:
                what = "a finished run" if finished else f"an unfinished run ({run.checkpoint_path})"
                raise FileExistsError(
                    f"{where} already holds {what}; pass resume=True (--resume) to "
                    + ("reuse it" if finished else "continue it") + ", overwrite=True (--overwrite) to replace it, "
                    "or choose another output folder"
                )
            self._check_identity()
            if finished:
                return "finished", None
            ckpt = load_checkpoint(run.checkpoint_path)
            saved, now = ckpt["config"], self.cfg.to_dict()
            diff = sorted(k for k in (set(saved) | set(now)) - RUNTIME_FIELDS if saved.get(k) != now.get(k))
            if diff:
                raise ValueError(
                    f"cannot resume {where}: its recipe differs in {', '.join(diff)} "
                    f"(saved {[saved.get(k) for k in diff]}, now {[now.get(k) for k in diff]})"
                )
            return "resume", ckpt
        if self.resume:
            if not where.is_dir():
                raise FileNotFoundError(f"cannot resume {where}: the folder does not exist "
                                        f"(train without --resume to start the run)")
            self._check_identity()
        if self.info.is_main:
            where.mkdir(parents=True, exist_ok=True)
            run.log_path.unlink(missing_ok=True)
            write_json(run.config_path, self.run_config())
        barrier(self.info)
        return "fresh", None

    def _loader(self, train_set: Dataset) -> tuple[DataLoader, EpochTaggedSampler, int]:
        cfg = self.cfg
        pids = getattr(train_set, "pids", None)
        if pids is None:
            raise TypeError(f"{type(train_set).__name__} (the training set of {self.method.name!r}) must expose "
                            f".pids, one training label per item, for the sampler")
        if cfg.batch_size % self.info.world_size:
            raise ValueError(f"batch {cfg.batch_p}x{cfg.batch_k}={cfg.batch_size} is not divisible by "
                             f"the {self.info.world_size} processes")
        per_rank = cfg.batch_size // self.info.world_size
        sampler = EpochTaggedSampler(build_sampler(list(pids), cfg.sampler, cfg.batch_p, cfg.batch_k, self.seed,
                                                   self.info.world_size, self.info.rank))
        if len(sampler) < per_rank:
            raise ValueError(f"the sampler yields {len(sampler)} images per epoch, fewer than one batch of "
                             f"{per_rank}; lower batch_p/batch_k")
        workers = int(cfg.num_workers)
        loader = DataLoader(
            SeededItems(train_set, self.seed, self.info.rank), batch_size=per_rank, sampler=sampler,
            num_workers=workers, pin_memory=self.device.type == "cuda", drop_last=True,
            persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
        )
        return loader, sampler, per_rank

    # -- training --------------------------------------------------------------
    def fit(self, max_epochs: int | None = None) -> dict:
        """Train (or continue) to ``cfg.epochs``; ``max_epochs`` stops this call earlier (a
        checkpoint is written where it stops, so ``resume=True`` continues exactly).

        Returns the final metrics (also written to ``metrics.json``).
        """
        cfg, method, info = self.cfg, self.method, self.info
        seed_everything(self.seed)
        state, ckpt = self._prepare_dir()
        if state == "finished":
            # a finished run: nothing to train; expose its final weights as self.model
            from reidlib.engine.checkpoint import load_weights

            model = method.build_model(init=False)
            load_weights(self.run.weights_path, model)
            self.model = model.to(self.device)
            return self.run.read_metrics()

        model = method.build_model(init=ckpt is None).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(method.param_groups(model), cfg)
        scheduler = build_scheduler(optimizer, cfg)
        scaler = torch.amp.GradScaler("cuda" if self.device.type == "cuda" else "cpu",
                                      enabled=self.amp_dtype == torch.float16)
        start_epoch, partial = 0, {}
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt["scaler"]:
                scaler.load_state_dict(ckpt["scaler"])
            start_epoch = ckpt["epoch"] + 1
            partial = (ckpt.get("extra") or {}).get("partial") or {}
            self._log({"event": "resume", "epoch": start_epoch, "iteration": partial.get("iters", 0)})
        train_model = wrap_ddp(model, self.device, info)
        if cfg.compile:
            train_model = torch.compile(train_model)

        train_set = method.train_dataset(self.dataset, self.pid2label)
        loader, sampler, per_rank = self._loader(train_set)
        if ckpt is not None:
            set_rng_state(ckpt["rng"])  # after model building: continue the interrupted stream
        else:
            self._log({"event": "start", "method": method.name, "epochs": cfg.epochs,
                       "iters_per_epoch": self._iters(loader), "batch_size": cfg.batch_size,
                       "device": str(self.device), "amp_dtype": str(self.amp_dtype)})

        end_epoch = cfg.epochs if max_epochs is None else min(cfg.epochs, start_epoch + int(max_epochs))
        t_start = time.perf_counter()
        last: dict[str, Any] = {}
        save = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        with _StopRequest() as stop:
            for epoch in range(start_epoch, end_epoch):
                resumed = epoch == start_epoch and bool(partial)
                last = self._train_epoch(epoch, train_model, optimizer, scaler, loader, sampler, per_rank, stop, save,
                                         partial if resumed else {}, ckpt["rng"] if resumed else None)
                scheduler.step()
                self._log({"event": "epoch", **last})
                finished = epoch + 1 == cfg.epochs
                if finished or epoch + 1 == end_epoch or (cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0):
                    self._checkpoint(epoch, save)
        train_time = time.perf_counter() - t_start
        done = end_epoch == cfg.epochs
        result = {
            "method": method.name, "epochs_done": end_epoch, "epochs": cfg.epochs, "completed": done,
            "train_time_s_this_call": round(train_time, 3), "last_epoch": last, "run_dir": str(self.out_dir),
        }
        if info.is_main and done:
            save_weights(self.run.weights_path, model)
            write_json(self.run.metrics_path, result)
            self._log({"event": "end", **{k: v for k, v in result.items() if k != "last_epoch"}})
        barrier(self.info)
        self.model = model
        return result

    def _checkpoint(self, epoch: int, save: dict, partial: dict | None = None) -> None:
        """Checkpoint after ``epoch`` (0-based, -1: none finished) and, mid-epoch, the partial one."""
        if self.info.is_main:
            save_checkpoint(self.checkpoint_path, epoch=epoch, config=self.cfg.to_dict(), sampler_epoch=epoch + 1,
                            extra={"partial": partial} if partial else None, **save)
        barrier(self.info)

    def _iters(self, loader: DataLoader) -> int:
        n = len(loader)
        return min(n, self.cfg.max_iters_per_epoch) if self.cfg.max_iters_per_epoch else n

    def _train_epoch(self, epoch, model, optimizer, scaler, loader, sampler, per_rank, stop, save,
                     partial: dict, rng: dict | None = None) -> dict:
        cfg, method = self.cfg, self.method
        sampler.set_epoch(epoch)
        start_iter = int(partial.get("iters", 0))
        sampler.skip(start_iter * per_rank)
        model.train()
        n_iters = self._iters(loader)
        sums: dict[str, torch.Tensor] = {k: torch.tensor(v, device=self.device)
                                         for k, v in (partial.get("sums") or {}).items()}
        n_images = int(partial.get("images", 0))
        t_before = float(partial.get("time_s", 0.0))
        bar = None
        it = start_iter - 1
        if self.progress and self.info.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_iters, initial=start_iter, desc=f"{method.name} epoch {epoch + 1}/{cfg.epochs}",
                       leave=False, dynamic_ncols=True)
        lrs = [g["lr"] for g in optimizer.param_groups]
        t0 = time.perf_counter()
        batches = iter(loader)  # (making the iterator draws a base seed from torch's generator)
        if rng is not None:
            # resumed mid-epoch: the generators continue from the interrupted step, after the
            # iterator's draw, as in the uninterrupted run
            set_rng_state(rng)
        for it, batch in enumerate(batches, start=start_iter):
            if it >= n_iters:
                break
            batch = move_batch(batch, self.device, self.channels_last)
            with autocast(self.device, enabled=self.amp_dtype is not None, dtype=self.amp_dtype):
                loss, logs = method.loss(model, batch, epoch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            logs = {"loss": loss.detach(), **logs}
            for k, v in logs.items():
                v = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                sums[k] = sums.get(k, 0.0) + v
            n_images += per_rank
            if bar is not None:
                bar.update(1)
                if it % 5 == 0 or it + 1 == n_iters:
                    dt = time.perf_counter() - t0
                    seen = (it + 1 - start_iter) * per_rank * self.info.world_size
                    bar.set_postfix(loss=f"{float(loss):.3f}", img_s=f"{seen / max(dt, 1e-9):.0f}")
            if stop.requested and it + 1 < n_iters:
                self._interrupt(epoch, it + 1, sums, n_images, t_before + time.perf_counter() - t0, save, stop, bar)
        if bar is not None:
            bar.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = t_before + time.perf_counter() - t0
        n_done = min(it + 1, n_iters) if n_iters else 0
        out: dict[str, Any] = {"epoch": epoch, "iters": n_done, "lr": lrs}
        for k, v in sums.items():
            v = all_reduce_mean(torch.as_tensor(v, dtype=torch.float32, device=self.device) / max(n_done, 1), self.info)
            out[k] = float(v)
            if not math.isfinite(out[k]):
                raise FloatingPointError(f"{method.name}: {k} is {out[k]} in epoch {epoch + 1}; "
                                         f"lower the learning rate (now {lrs}) or disable amp")
        out["images"] = n_images * self.info.world_size
        out["time_s"] = round(dt, 3)
        out["images_per_s"] = round(out["images"] / max(dt, 1e-9), 2)
        return out

    def _interrupt(self, epoch, iters, sums, n_images, time_s, save, stop, bar) -> None:
        """Write a mid-epoch checkpoint (``iters`` steps of ``epoch`` done) and stop."""
        if bar is not None:
            bar.close()
        partial = {"epoch": epoch, "iters": iters, "images": n_images, "time_s": round(time_s, 3),
                   "sums": {k: float(v) for k, v in sums.items()}}
        self._checkpoint(epoch - 1, save, partial)
        self._log({"event": "interrupt", "signal": stop.requested, "epoch": epoch, "iteration": iters})
        raise TrainingInterrupted(
            f"{stop.requested}: training of {self.method.name} stopped after step {iters} of epoch {epoch + 1}; "
            f"checkpoint written to {self.checkpoint_path} (continue with --resume)")


def train(method_name: str, data_spec: str | None = None, profile: str = "smoke", out: str | os.PathLike = "runs/run",
          resume: bool = False, overrides: dict | list[str] | None = None, device: str = "auto", seed: int = 0,
          progress: bool = True, dataset=None, max_epochs: int | None = None, overwrite: bool = False):
    """Train a registered method (every stage): ``train("baseline", "synthpeds:smoke", "smoke", "runs/b0")``.

    The overrides are validated before anything else happens.  ``data_spec`` defaults to
    ``"synthpeds:smoke"``; a ``dataset`` object (a ReIDDataset) is used instead when given
    (``data_spec`` is then only recorded).  ``overrides``: ``{"epochs": 10}`` or
    ``["epochs=10", "triplet=true"]`` (:func:`reidlib.methods.base.parse_overrides`).
    ``max_epochs`` stops this call early (resume later).  Returns the last stage's metrics
    (:meth:`Trainer.fit`), with ``"stages"`` naming every stage's metrics when there are several.
    """
    from reidlib.config import resolve_profile
    from reidlib.engine.runs import train_stages
    from reidlib.methods.base import parse_overrides
    from reidlib.methods.registry import get_method

    cls = get_method(method_name)
    cfg = parse_overrides(overrides, cls.recipe(resolve_profile(profile)), cls)
    if dataset is None:
        from reidlib.data.datasets import build_dataset

        data_spec = data_spec or "synthpeds:smoke"
        dataset = build_dataset(data_spec)
    fit = train_stages(cls, cfg, dataset, out, seed=seed, device=device, resume=resume, overwrite=overwrite,
                       progress=progress, profile=profile, dataset_spec=data_spec, max_epochs=max_epochs)
    result = dict(list(fit.metrics.values())[-1])
    if len(fit.metrics) > 1:
        result["stages"] = fit.metrics
    return result
