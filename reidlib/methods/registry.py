"""The method registry: CLI name -> ``"module:Class"`` (imported lazily)."""

from __future__ import annotations

import importlib

METHODS: dict[str, str] = {
    "baseline": "reidlib.methods.baseline:BaselineMethod",
    "hpnet": "reidlib.methods.hpnet:HPNetMethod",
    "pcb": "reidlib.methods.pcb:PCBMethod",
    "ppcl": "reidlib.methods.ppcl:PPCLMethod",
    "sanet": "reidlib.methods.sanet:SANetMethod",
    "stnreid": "reidlib.methods.stnreid:STNReIDMethod",
    "vpm": "reidlib.methods.vpm:VPMMethod",
}


def get_method(name: str):
    """The :class:`~reidlib.methods.base.Method` class registered as ``name``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS)) or '(none)'}")
    mod, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(mod), cls)
