"""reidlib.engine: the trainer, the run store, schedules, checkpoints and DDP helpers.

The engine trains any :class:`reidlib.methods.base.Method`; it imports methods, never the other way.
"""

from reidlib.engine.runs import FitResult, LoadedRun, RunDir, RunStore, load_run, read_log, train_stages
from reidlib.engine.trainer import Trainer, TrainingInterrupted, train

__all__ = ["Trainer", "TrainingInterrupted", "train", "RunDir", "RunStore", "FitResult", "LoadedRun", "load_run",
           "read_log", "train_stages"]
