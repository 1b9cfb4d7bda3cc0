"""``python -m reidlib info``: versions and the device that ``auto`` picks."""

from __future__ import annotations


def environment_report() -> dict:
    import platform

    import torch
    import torchvision

    import reidlib
    from reidlib.config import resolve_device

    dev = resolve_device("auto")
    info = {
        "reidlib": reidlib.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(dev),
        "cpu_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def hardware_string() -> str:
    """A one-line description of the hardware, recorded with every result."""
    import os
    import platform

    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    return f"CPU {platform.machine()} x{os.cpu_count()} ({platform.processor() or 'unknown'}), torch {torch.__version__}"


def _run(args) -> int:
    for k, v in environment_report().items():
        print(f"{k:12s} {v}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="print versions and the device 'auto' selects")
    p.set_defaults(func=_run)
