"""Method registry: CLI name -> ``"module:Class"`` (imported lazily)."""

from __future__ import annotations

import importlib

METHODS: dict[str, str] = {
    "baseline": "reidlib.models.baseline:BaselineMethod",
    "pcb": "reidlib.models.pcb:PCBMethod",
    "stnreid": "reidlib.models.stnreid:STNReIDMethod",
    "vpm": "reidlib.models.vpm:VPMMethod",
}


def get_method(name: str):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS)) or '(none)'}")
    mod, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(mod), cls)
