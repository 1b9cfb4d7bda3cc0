"""Checkpoints that load with ``torch.load(weights_only=True)`` and resume bit-exactly.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only:

``format``      ``"reidlib-checkpoint-v1"``
``epoch``       the last finished epoch (0-based)
``model``       the model's state dict (unwrapped from DDP / torch.compile)
``optimizer``   ``optimizer.state_dict()``
``scheduler``   ``LambdaLR.state_dict()``
``scaler``      ``GradScaler.state_dict()`` (empty when disabled)
``rng``         ``{"python": [...], "numpy": {...}, "torch": uint8 tensor, "cuda": [uint8 tensors]}``
``sampler_epoch`` the epoch the sampler will be set to next
``config``      the ``TrainConfig`` as a dict

Final weights are also written as ``model.safetensors`` in the run directory.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reidlib.models.base import unwrap

FORMAT = "reidlib-checkpoint-v1"


def get_rng_state() -> dict:
    """Python, NumPy, torch (CPU and CUDA) generator states as lists/tensors (no pickled objects)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": int(version), "state": list(internal), "gauss": gauss},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, *, epoch: int, model: nn.Module, optimizer, scheduler, scaler,
                    config: dict, sampler_epoch: int, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": FORMAT,
        "epoch": int(epoch),
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": get_rng_state(),
        "sampler_epoch": int(sampler_epoch),
        "config": config,
        "extra": extra or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a wrong file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise OSError(f"cannot load checkpoint {path} with torch.load(weights_only=True): {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a reidlib checkpoint (expected a dict with format={FORMAT!r})")
    return ckpt


def save_weights(path: str | os.PathLike, model: nn.Module) -> Path:
    """The model's state dict as safetensors (contiguous copies; shared tensors are cloned)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in unwrap(model).state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(sd, str(tmp))
    os.replace(tmp, path)
    return path


def load_weights(path: str | os.PathLike, model: nn.Module, strict: bool = True) -> nn.Module:
    """Load ``model.safetensors`` (or a weights-only torch file) into ``model``."""
    from reidlib.models.backbones import load_state_dict_file

    sd = load_state_dict_file(path)
    try:
        unwrap(model).load_state_dict(sd, strict=strict)
    except RuntimeError as e:
        raise ValueError(f"weights in {path} do not fit the model {type(unwrap(model)).__name__}: {e}") from e
    return model
