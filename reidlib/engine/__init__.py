"""reidlib.engine: the trainer, schedules, checkpoints, DDP helpers and the method registry."""

from reidlib.engine.method import Method, TrainConfig
from reidlib.engine.registry import METHODS, get_method
from reidlib.engine.trainer import Trainer, parse_overrides, train

__all__ = ["Method", "TrainConfig", "METHODS", "get_method", "Trainer", "parse_overrides", "train"]
