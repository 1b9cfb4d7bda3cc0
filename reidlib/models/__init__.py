"""reidlib.models: one module per method (``baseline``, ``pcb``, ``vpm``, ...) on shared backbones.

Method modules are imported on use (``reidlib.models.baseline``); this package only
re-exports the common interface and the backbone factory.
"""

from reidlib.models.backbones import BACKBONES, build_backbone
from reidlib.models.base import Features, ReIDModel

__all__ = ["BACKBONES", "build_backbone", "Features", "ReIDModel"]
