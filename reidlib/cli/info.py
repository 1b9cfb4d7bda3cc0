"""``python -m reidlib info``: versions, the device that ``auto`` picks, the commit."""

from __future__ import annotations


def environment_report() -> dict:
    """reidlib / Python / torch / torchvision versions, the ``auto`` device, CPU threads, GPU and commit."""
    import reidlib
    from reidlib.config import resolve_device
    from reidlib.provenance import git_commit, hardware

    dev = resolve_device("auto")
    hw = hardware(dev)
    info = {
        "reidlib": reidlib.__version__,
        "python": hw["python"],
        "torch": hw["torch"],
        "torchvision": hw["torchvision"],
        "device": str(dev),
        "cpu_threads": hw["torch_threads"],
    }
    if "gpu" in hw:
        info["gpu"] = hw["gpu"]
    info["hardware"] = hw["summary"]
    info["commit"] = git_commit()
    return info


def _run(args) -> int:
    for k, v in environment_report().items():
        print(f"{k:12s} {v}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="print versions and the device 'auto' selects")
    p.set_defaults(func=_run)
