"""The one mixed-precision rule of reidlib, used by training, evaluation and the pairwise matchers.

* CUDA GPUs with bf16 support: bf16 autocast (no loss scaling needed);
* other CUDA GPUs: fp16 autocast (the trainer adds a ``GradScaler``);
* the CPU, MPS, or ``enabled=False``: no autocast (fp32).
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["amp_dtype_for", "autocast"]


def amp_dtype_for(device: torch.device | str, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 / fp16 on CUDA (see the module docstring), ``None`` otherwise."""
    device = torch.device(device)
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device | str, enabled: bool = True, dtype: torch.dtype | None = None):
    """``torch.autocast`` with :func:`amp_dtype_for`'s dtype (or ``dtype``), a null context for fp32."""
    device = torch.device(device)
    dtype = dtype if dtype is not None else amp_dtype_for(device, enabled)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
