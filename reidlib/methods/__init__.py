"""reidlib.methods: each method's typed settings, recipes per profile, loss and training stages.

One module per method (``baseline``, ``pcb``, ``vpm``, ``stnreid``, ``ppcl``, ``hpnet``, ``sanet``);
:mod:`reidlib.methods.base` holds :class:`TrainConfig`, :class:`Settings`, :class:`Method` and :class:`Stage`; the registry
maps CLI names to classes.  Methods import data, models and losses, never the engine.
"""

from reidlib.methods.base import Method, Settings, Stage, TrainConfig, parse_overrides, recipe_hash
from reidlib.methods.registry import METHODS, get_method

__all__ = ["Method", "Settings", "Stage", "TrainConfig", "parse_overrides", "recipe_hash", "METHODS", "get_method"]
