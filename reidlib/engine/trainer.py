"""The training engine: one :class:`Trainer` for every method.

The method (:class:`reidlib.engine.method.Method`) gives the model, the training set, the
loss and the recipe (:class:`TrainConfig`); the trainer gives the rest:

* device auto-selection (:func:`reidlib.config.resolve_device`), DDP under ``torchrun``;
* mixed precision: bf16 autocast on CUDA GPUs that support it, fp16 + ``GradScaler`` on
  other GPUs, fp32 on the CPU; ``channels_last`` on CUDA; optional ``torch.compile``;
* loaders with pinned memory and (persistent) workers, the PK identity sampler;
* seeded determinism: every training item is drawn with its random generators seeded from
  ``(seed, rank, epoch, position)``, so augmentations do not depend on workers, and a
  resumed run continues exactly like an uninterrupted one (checked on the CPU by a test);
* warm-up + step/cosine schedules, per-group learning rates (``lr_mult``);
* tqdm progress (loss, images/s), a JSON-lines log, checkpoints, final weights.

Run directory layout (``out_dir``)::

    config.json            TrainConfig, method, dataset, profile, seed, hardware, versions, git commit
    log.jsonl              one JSON object per line: {"event": "start" | "epoch" | "end", ...}
    checkpoints/last.pt    the latest checkpoint (see reidlib.engine.checkpoint)
    model.safetensors      final weights (written when the last epoch is done)
    metrics.json           final training metrics (evaluation results are added by `evaluate`)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

import reidlib
from reidlib.config import resolve_device, seed_everything
from reidlib.engine.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    save_weights,
    set_rng_state,
    unwrap,
)
from reidlib.engine.distributed import DistInfo, all_reduce_mean, barrier, init_distributed, wrap_ddp
from reidlib.engine.method import Method, TrainConfig
from reidlib.engine.schedule import build_optimizer, build_scheduler

CHECKPOINT_NAME = "checkpoints/last.pt"
# settings that may change when a run is resumed (they do not change what is computed)
RESUME_FREE_KEYS = {"num_workers", "checkpoint_every", "compile"}


# ----------------------------------------------------------------------------- precision
def amp_dtype_for(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype the engine uses: bf16 on CUDA GPUs with bf16 support, fp16 on other
    GPUs, ``None`` (fp32, no autocast) on the CPU/MPS or when disabled."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------- data
def item_seed(seed: int, rank: int, epoch: int, position: int) -> int:
    """The seed of one training item: a hash of ``(seed, rank, epoch, position)``."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank, epoch, position]).generate_state(1)[0])


class EpochTaggedSampler(Sampler):
    """Wraps an index sampler so that it yields ``(epoch, position, index)`` keys."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for pos, idx in enumerate(self.sampler):
            yield (self.epoch, pos, int(idx))

    def __len__(self) -> int:
        return len(self.sampler)


class SeededItems(Dataset):
    """Reads ``(epoch, position, index)`` keys: seeds Python, NumPy and torch from
    :func:`item_seed` and returns ``base[index]``.  In the main process the generators'
    states are restored afterwards, so data loading never disturbs the training RNG."""

    def __init__(self, base: Dataset, seed: int, rank: int = 0):
        self.base = base
        self.seed = seed
        self.rank = rank

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        epoch, pos, index = key
        s = item_seed(self.seed, self.rank, epoch, pos)
        in_worker = torch.utils.data.get_worker_info() is not None
        if not in_worker:
            saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)
        try:
            return self.base[index]
        finally:
            if not in_worker:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])


class ShuffleSampler(Sampler):
    """A seeded random permutation per epoch (``set_epoch``), sharded over processes."""

    def __init__(self, n: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.n, self.seed, self.num_replicas, self.rank = n, seed, num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        per = self.n // self.num_replicas
        return iter(perm[self.rank * per:(self.rank + 1) * per])

    def __len__(self) -> int:
        return self.n // self.num_replicas


def build_sampler(pids: list[int], cfg: TrainConfig, seed: int, info: DistInfo) -> Sampler:
    """The PK identity sampler (``cfg.sampler == "pk"``) or a seeded shuffle (``"random"``)."""
    if cfg.sampler == "random":
        return ShuffleSampler(len(pids), seed, info.world_size, info.rank)
    if cfg.sampler != "pk":
        raise ValueError(f"unknown sampler {cfg.sampler!r}; accepted: 'pk', 'random'")
    n_ids = len(set(pids))
    if n_ids < cfg.batch_p:
        raise ValueError(
            f"the PK sampler needs at least P={cfg.batch_p} training identities, the training set has {n_ids}; "
            f"lower batch_p (e.g. --set batch_p={max(2, n_ids)})"
        )
    from reidlib.data import sampler as S

    if info.enabled:
        # every rank takes whole PK batches of batch_p / world identities (the global batch is split)
        if cfg.batch_p % info.world_size:
            raise ValueError(f"batch_p={cfg.batch_p} identities cannot be split over {info.world_size} processes; "
                             f"use a multiple of {info.world_size}")
        return S.DistributedRandomIdentitySampler(
            pids, cfg.batch_size // info.world_size, cfg.batch_k, seed=seed,
            num_replicas=info.world_size, rank=info.rank)
    return S.RandomIdentitySampler(pids, cfg.batch_size, cfg.batch_k, seed=seed)


def move_batch(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if k == "image" and channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


# ----------------------------------------------------------------------------- metadata
def git_commit(path: Path | None = None) -> str | None:
    """The git commit of the reidlib checkout, or None outside a repository."""
    where = path or Path(reidlib.__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware_info(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_count"] = torch.cuda.device_count()
        info["cuda"] = torch.version.cuda
    return info


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.device):
        return str(o)
    return repr(o)


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """Train ``method`` on ``dataset.train`` into the run directory ``out_dir``.

    Args:
        method: a :class:`Method` instance (recipe in ``method.cfg``, ``num_classes`` = number
            of training identities).
        dataset: a :class:`reidlib.data.base.ReIDDataset`.
        out_dir: the run directory (created).  An existing checkpoint there is an error
            unless ``resume=True``.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"``; under torchrun each process
            takes ``cuda:LOCAL_RANK``.
        seed: seeds model initialisation, the sampler and every augmentation.
        resume: continue from ``out_dir/checkpoints/last.pt`` when it exists (a finished run
            returns its stored metrics at once; ``trainer.model`` then holds its final weights).

    After :meth:`fit`, ``trainer.model`` is the trained model (unwrapped, on ``device``).
        progress: tqdm bars (main process only).
        profile, dataset_spec: recorded in ``config.json``.
    """

    def __init__(self, method: Method, dataset, out_dir: str | os.PathLike, device: str = "auto", seed: int = 0,
                 resume: bool = False, progress: bool = True, profile: str | None = None,
                 dataset_spec: str | None = None):
        self.method = method
        self.cfg: TrainConfig = method.cfg
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.seed = int(seed)
        self.resume = resume
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
        return self.out_dir / CHECKPOINT_NAME

    def _log(self, record: dict) -> None:
        if self.info.is_main:
            with open(self.out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record, default=_json_default) + "\n")

    def run_config(self) -> dict:
        return {
            "method": self.method.name,
            "num_classes": self.method.num_classes,
            "train_config": self.cfg.to_dict(),
            "dataset": self.dataset_spec or getattr(self.dataset, "name", type(self.dataset).__name__),
            "dataset_summary": {
                "train_ids": len(self.pid2label), "train_images": len(self.dataset.train),
                "query_images": len(self.dataset.query), "gallery_images": len(self.dataset.gallery),
            },
            "profile": self.profile,
            "seed": self.seed,
            "world_size": self.info.world_size,
            "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32",
            "channels_last": self.channels_last,
            "hardware": hardware_info(self.device),
            "reidlib_version": reidlib.__version__,
            "git_commit": git_commit(),
        }

    # -- setup ---------------------------------------------------------------
    def _prepare_dir(self) -> dict | None:
        """Create the run directory; return the checkpoint to resume from (or None)."""
        ckpt = None
        if self.checkpoint_path.exists():
            if not self.resume:
                raise FileExistsError(
                    f"{self.out_dir} already holds a run ({self.checkpoint_path}); pass resume=True "
                    f"(--resume) to continue it, or choose another output folder"
                )
            ckpt = load_checkpoint(self.checkpoint_path)
            saved = ckpt["config"]
            now = self.cfg.to_dict()
            diff = sorted(k for k in (set(saved) | set(now)) - RESUME_FREE_KEYS if saved.get(k) != now.get(k))
            if diff:
                raise ValueError(
                    f"cannot resume {self.out_dir}: its recipe differs in {', '.join(diff)} "
                    f"(saved {[saved.get(k) for k in diff]}, now {[now.get(k) for k in diff]})"
                )
        if self.info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if ckpt is None:
                (self.out_dir / "log.jsonl").unlink(missing_ok=True)
                write_json(self.out_dir / "config.json", self.run_config())
        barrier(self.info)
        return ckpt

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
        sampler = EpochTaggedSampler(build_sampler(list(pids), cfg, self.seed, self.info))
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
        ckpt = self._prepare_dir()
        if ckpt is not None and ckpt["epoch"] + 1 >= cfg.epochs and (self.out_dir / "metrics.json").exists():
            # a finished run: nothing to train; expose its final weights as self.model
            model = method.build_model()
            model.load_state_dict(ckpt["model"])
            self.model = model.to(self.device)
            return json.loads((self.out_dir / "metrics.json").read_text())

        model = method.build_model().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(method.param_groups(model), cfg)
        scheduler = build_scheduler(optimizer, cfg)
        scaler = torch.amp.GradScaler("cuda" if self.device.type == "cuda" else "cpu",
                                      enabled=self.amp_dtype == torch.float16)
        start_epoch = 0
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt["scaler"]:
                scaler.load_state_dict(ckpt["scaler"])
            start_epoch = ckpt["epoch"] + 1
            self._log({"event": "resume", "epoch": start_epoch})
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
        for epoch in range(start_epoch, end_epoch):
            last = self._train_epoch(epoch, train_model, optimizer, scheduler, scaler, loader, sampler, per_rank)
            scheduler.step()
            self._log({"event": "epoch", **last})
            finished = epoch + 1 == cfg.epochs
            if finished or epoch + 1 == end_epoch or (cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0):
                if info.is_main:
                    save_checkpoint(self.checkpoint_path, epoch=epoch, model=model, optimizer=optimizer,
                                    scheduler=scheduler, scaler=scaler, config=cfg.to_dict(),
                                    sampler_epoch=epoch + 1)
                barrier(info)
        train_time = time.perf_counter() - t_start
        done = end_epoch == cfg.epochs
        result = {
            "method": method.name, "epochs_done": end_epoch, "epochs": cfg.epochs, "completed": done,
            "train_time_s_this_call": round(train_time, 3), "last_epoch": last, "run_dir": str(self.out_dir),
        }
        if info.is_main and done:
            save_weights(self.out_dir / "model.safetensors", model)
            write_json(self.out_dir / "metrics.json", result)
            self._log({"event": "end", **{k: v for k, v in result.items() if k != "last_epoch"}})
        barrier(info)
        self.model = model
        return result

    def _iters(self, loader: DataLoader) -> int:
        n = len(loader)
        return min(n, self.cfg.max_iters_per_epoch) if self.cfg.max_iters_per_epoch else n

    def _train_epoch(self, epoch, model, optimizer, scheduler, scaler, loader, sampler, per_rank) -> dict:
        cfg, method = self.cfg, self.method
        sampler.set_epoch(epoch)
        model.train()
        n_iters = self._iters(loader)
        sums: dict[str, torch.Tensor] = {}
        n_images = 0
        bar = None
        it = -1
        if self.progress and self.info.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_iters, desc=f"{method.name} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       dynamic_ncols=True)
        lrs = [g["lr"] for g in optimizer.param_groups]
        t0 = time.perf_counter()
        for it, batch in enumerate(loader):
            if it >= n_iters:
                break
            batch = move_batch(batch, self.device, self.channels_last)
            with autocast_context(self.device, self.amp_dtype):
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
                    bar.set_postfix(loss=f"{float(loss):.3f}", img_s=f"{n_images * self.info.world_size / max(dt, 1e-9):.0f}")
        if bar is not None:
            bar.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
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


def parse_overrides(overrides: dict | list[str] | None, cfg: TrainConfig) -> TrainConfig:
    """Apply ``key=value`` overrides: TrainConfig fields by name, anything else into ``extra``.

    Values are parsed as JSON where possible (``3e-4``, ``true``, ``[40, 70]``), ``a,b`` as a
    tuple of numbers, else kept as strings.
    """
    if not overrides:
        return cfg
    if isinstance(overrides, (list, tuple)):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value (e.g. epochs=10, lr=3e-4)")
            k, v = item.split("=", 1)
            pairs[k.strip()] = _parse_value(v.strip())
        overrides = pairs
    fields = set(TrainConfig.__dataclass_fields__)
    kw, extra = {}, dict(cfg.extra)
    for k, v in overrides.items():
        if k.startswith("extra."):
            extra[k[6:]] = v
        elif k in fields and k != "extra":
            if k in ("image_size", "milestones"):
                v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
            kw[k] = v
        else:
            extra[k] = v
    return cfg.replace(**kw, extra=extra)


def _parse_value(s: str):
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    if "," in s:
        try:
            return tuple(json.loads(x) for x in s.split(","))
        except json.JSONDecodeError:
            pass
    if s.lower() in ("none", "null"):
        return None
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    return s


def train(method_name: str, data_spec: str | None = None, profile: str = "smoke", out: str | os.PathLike = "runs/run",
          resume: bool = False, overrides: dict | list[str] | None = None, device: str = "auto", seed: int = 0,
          progress: bool = True, dataset=None, max_epochs: int | None = None) -> dict:
    """Train a registered method: ``train("baseline", "synthpeds:smoke", "smoke", "runs/b0")``.

    ``data_spec`` defaults to ``"synthpeds:smoke"``; a ``dataset`` object (a ReIDDataset) is used
    instead when given (``data_spec`` is then only recorded).  ``overrides``: ``{"epochs": 10}``
    or ``["epochs=10", "triplet=true"]`` (see :func:`parse_overrides`).  ``max_epochs`` stops this
    call early (resume later).  Returns :meth:`Trainer.fit`'s metrics.
    """
    from reidlib.config import resolve_profile
    from reidlib.engine.registry import get_method

    cls = get_method(method_name)
    cfg = parse_overrides(overrides, cls.recipe(resolve_profile(profile)))
    if dataset is None:
        from reidlib.data.datasets import build_dataset

        data_spec = data_spec or "synthpeds:smoke"
        dataset = build_dataset(data_spec)
    method = cls(cfg, dataset.num_train_pids)
    trainer = Trainer(method, dataset, out, device=device, seed=seed, resume=resume, progress=progress,
                      profile=profile, dataset_spec=data_spec)
    return trainer.fit(max_epochs=max_epochs)


def load_run(run_dir: str | os.PathLike, device: str = "cpu"):
    """Rebuild a finished run's model from ``config.json`` + ``model.safetensors`` (eval mode).

    Returns ``(model, method, run_config)``.  The backbone is built without ImageNet weights
    (the run's own weights replace them), so this works offline.
    """
    from reidlib.engine.checkpoint import load_weights
    from reidlib.engine.registry import get_method

    run = Path(run_dir)
    cfg_path, w_path = run / "config.json", run / "model.safetensors"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run} is not a reidlib run directory: {cfg_path} is missing "
                                f"(expected the --out folder of `python -m reidlib train`)")
    if not w_path.is_file():
        raise FileNotFoundError(f"{w_path} is missing: the run in {run} has not finished "
                                f"(continue it with `python -m reidlib train ... --out {run} --resume`)")
    rc = json.loads(cfg_path.read_text())
    cls = get_method(rc["method"])
    cfg = TrainConfig.from_dict(rc["train_config"])
    cfg = cfg.replace(pretrained=False, extra={**cfg.extra, "backbone_weights": None})
    method = cls(cfg, int(rc["num_classes"]))
    model = method.build_model()
    load_weights(w_path, model)
    return model.to(resolve_device(device)).eval(), method, rc
