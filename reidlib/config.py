"""Run settings shared by notebooks and the command line: profile, device, data root.

Notebooks take four papermill parameters (``profile``, ``device``, ``data_root``,
``seed``) and pass them through :func:`resolve_run` which validates them and
returns a :class:`RunConfig`.  Every bad value fails with one message naming what
was given and what is accepted.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILES = ("smoke", "book", "full")
PROFILE_ENV = "REIDLIB_PROFILE"
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def default_profile() -> str:
    """The notebook default: ``$REIDLIB_PROFILE`` if set, else ``"book"`` (the committed weights,
    evaluated; what the rendered book shows)."""
    return os.environ.get(PROFILE_ENV, "book")


def resolve_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(
            f"unknown profile {profile!r}: accepted profiles are {', '.join(map(repr, PROFILES))} "
            f"('smoke' = CI seconds, 'book' = the rendered book: committed CPU-trained weights, "
            f"'full' = paper-scale on a GPU)"
        )
    return profile


def resolve_device(device: str = "auto"):
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into a ``torch.device``.

    ``auto`` picks CUDA, then MPS, then the CPU.  Asking for CUDA without a GPU is an
    error (never a silent fall back to the CPU).
    """
    import torch

    if not isinstance(device, str):
        if isinstance(device, torch.device):
            device = str(device)
        else:
            raise TypeError(f"device must be a string such as 'auto', got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} was requested but no CUDA GPU is available on this machine; "
                f"accepted devices here: 'auto' or 'cpu' (accepted forms: {', '.join(DEVICES)})"
            )
        if device.startswith("cuda:"):
            idx = device.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
                raise RuntimeError(
                    f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                    f"use 'cuda:0' .. 'cuda:{torch.cuda.device_count() - 1}' or 'auto'"
                )
        return torch.device(device)
    if device == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise RuntimeError(f"device='mps' was requested but MPS is not available; use 'auto' or 'cpu'")
        return torch.device("mps")
    raise ValueError(f"unknown device {device!r}: accepted forms are {', '.join(DEVICES)}")


def resolve_data_root(data_root: str | os.PathLike | None) -> Path | None:
    """``None`` means the embedded SynthPeds benchmark; otherwise the folder must exist."""
    if data_root is None or data_root == "":
        return None
    p = Path(data_root).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"data_root={str(data_root)!r} does not exist. Give None to use the embedded SynthPeds "
            f"benchmark, or a folder holding the real datasets under their usual names "
            f"(e.g. <data_root>/Market-1501-v15.09.15, <data_root>/Partial-REID, <data_root>/Partial-iLIDS)"
        )
    if not p.is_dir():
        raise NotADirectoryError(f"data_root={str(data_root)!r} is a file; expected a folder of datasets")
    return p


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class RunConfig:
    profile: str
    device: Any  # torch.device
    data_root: Path | None
    seed: int
    results_dir: Path = field(default_factory=lambda: Path("results"))

    @property
    def uses_synthpeds(self) -> bool:
        return self.data_root is None

    def metadata(self, command: str | None = None) -> dict:
        """The ``meta`` block of this run's results files (:func:`reidlib.provenance.provenance`):
        command, commit, profile, hardware (a dict for ``self.device``, whose ``"device"`` names it),
        reidlib version, date and seed, plus ``data`` (``"synthpeds"`` or the data root)."""
        from reidlib.provenance import provenance

        return provenance(command=command, profile=self.profile, device=self.device, seed=self.seed,
                          data=self._data_name())

    def save_results(self, chapter: str, results, command: str | None = None, tables: dict | None = None) -> Path:
        """Write ``results/<profile>/<chapter>.json`` in the one results schema
        (:func:`reidlib.provenance.write_results`): ``{"schema", "meta", "results": results[, "tables"]}``.

        ``command`` defaults to the papermill call of the chapter; ``tables`` holds named extra tables.
        """
        from reidlib.provenance import write_results

        command = command or f"papermill notebooks/{chapter}.ipynb -p profile {self.profile}"
        return write_results(self.results_path(chapter), results, command=command, profile=self.profile,
                             device=self.device, seed=self.seed, tables=tables, data=self._data_name())

    def _data_name(self) -> str:
        return "synthpeds" if self.data_root is None else str(self.data_root)

    def results_path(self, chapter: str) -> Path:
        """``results/<profile>/<chapter>.json`` (the folder is created)."""
        d = self.results_dir / self.profile
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{chapter}.json"


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding ``_config.yml`` (the book root), searched upwards from ``start``."""
    p = (start or Path.cwd()).resolve()
    for q in (p, *p.parents):
        if (q / "_config.yml").exists() and (q / "reidlib").is_dir():
            return q
    return p


def resolve_run(profile: str, device: str = "auto", data_root=None, seed: int = 0) -> RunConfig:
    """Validate the four notebook parameters; seed everything; return a :class:`RunConfig`.

    Results go to ``<project root>/results/<profile>/``.
    """
    profile = resolve_profile(profile)
    dev = resolve_device(device)
    root = resolve_data_root(data_root)
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    seed_everything(seed)
    return RunConfig(profile=profile, device=dev, data_root=root, seed=seed,
                     results_dir=find_project_root() / "results")

