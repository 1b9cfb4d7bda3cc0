"""Evaluation results: what was measured, on what, how -- as a table and as JSON.

An :class:`EvalResult` records the protocol (name, setting, description), the dataset
(with the SynthPeds version when it applies), the method, the profile, the hardware and
the metrics (Rank-1/3/5/10, mAP, mINP as fractions in [0, 1]; the number of valid queries).
:func:`results_table` shows them in percent (as the papers do);
:func:`save_results` / :func:`load_results` write and read JSON with the command, the
profile, the hardware and the git commit.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "EvalResult",
    "RANKS",
    "metrics_from_cmc",
    "results_table",
    "results_markdown",
    "format_results",
    "save_results",
    "load_results",
    "describe_hardware",
    "git_commit",
]

RANKS = (1, 3, 5, 10)
METRIC_COLUMNS = ("R-1", "R-3", "R-5", "R-10", "mAP", "mINP")


def metrics_from_cmc(cmc: np.ndarray, mAP: float, mINP: float, n_valid: float, ranks=RANKS) -> dict:
    """The metrics dict: ``R-k`` = ``cmc[k - 1]`` (the last value when the gallery is shorter)."""
    cmc = np.asarray(cmc, dtype=np.float64)
    m = {f"R-{k}": float(cmc[min(k, len(cmc)) - 1]) for k in ranks}
    nv = float(n_valid)
    m.update({"mAP": float(mAP), "mINP": float(mINP), "n_valid": int(nv) if nv.is_integer() else nv})
    return m


@dataclass
class EvalResult:
    """One reported score (see the module docstring).  Metrics are fractions in [0, 1]."""

    protocol: str
    description: str
    dataset: str
    method: str
    metrics: dict
    setting: str = ""
    dataset_version: str | None = None
    profile: str | None = None
    hardware: str | None = None
    cmc: list = field(default_factory=list)
    n_query: int | None = None
    n_gallery: int | None = None
    n_trials: int = 1
    params: dict = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def row(self, percent: bool = True) -> dict:
        r = {"protocol": self.protocol, "setting": self.setting, "dataset": self.dataset, "method": self.method}
        for c in METRIC_COLUMNS:
            v = self.metrics.get(c)
            r[c] = None if v is None else (round(100 * v, 1) if percent else v)
        r["valid queries"] = self.metrics.get("n_valid")
        r["trials"] = self.n_trials
        return r

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        return cls(**d)

    def __str__(self) -> str:
        m = self.metrics
        s = f" [{self.setting}]" if self.setting else ""
        return (f"{self.method} on {self.dataset}, {self.protocol}{s}: R-1 {100 * m['R-1']:.1f}  R-3 {100 * m['R-3']:.1f}  "
                f"R-5 {100 * m['R-5']:.1f}  R-10 {100 * m['R-10']:.1f}  mAP {100 * m['mAP']:.1f}  mINP {100 * m['mINP']:.1f}  "
                f"({m['n_valid']:g} valid queries)\n  protocol: {self.description}")


def results_table(results: Sequence[EvalResult], percent: bool = True):
    """A pandas ``DataFrame``, one row per result (metrics in percent unless ``percent=False``)."""
    import pandas as pd

    return pd.DataFrame([r.row(percent) for r in results])


def results_markdown(results: Sequence[EvalResult], percent: bool = True) -> str:
    """The table as markdown (pipe table; no extra dependency)."""
    rows = [r.row(percent) for r in results]
    if not rows:
        return ""
    cols = list(rows[0])
    fmt = lambda v: "" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def format_results(results: Sequence[EvalResult]) -> str:
    """The markdown table followed by each protocol's description (printed with every result)."""
    seen: dict[str, str] = {}
    for r in results:
        seen.setdefault(r.protocol, r.description)
    notes = "\n".join(f"- {name}: {desc}" for name, desc in seen.items())
    hw = sorted({r.hardware for r in results if r.hardware})
    return results_markdown(results) + "\n\nProtocols:\n" + notes + (f"\n\nHardware: {'; '.join(hw)}" if hw else "")


def describe_hardware(device=None) -> str:
    """E.g. ``"cpu: x86_64, 2 cores; torch 2.x"`` or ``"cuda: NVIDIA H100 (80 GB); torch 2.x"``."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(dev)
        return f"cuda: {p.name} ({p.total_memory / 2**30:.0f} GiB); torch {torch.__version__}"
    return f"{dev.type}: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}"


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The project's commit (``+dirty`` when tracked files changed; :func:`reidlib.config.git_commit`), None outside git."""
    from reidlib.config import find_project_root
    from reidlib.config import git_commit as _commit

    c = _commit(Path(cwd) if cwd is not None else find_project_root(Path(__file__).parent))
    return None if c == "unknown" else c


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None if np.isnan(o) else ("inf" if o > 0 else "-inf")
    return o


def save_results(path, results: Sequence[EvalResult], command: str | None = None, commit: str | None = None,
                 profile: str | None = None, hardware: str | None = None, extra: dict | None = None) -> Path:
    """Write ``{"command", "commit", "profile", "hardware", "created", "results": [...], **extra}`` as JSON.

    ``commit`` defaults to :func:`git_commit`; ``profile`` and ``hardware`` to those of the
    first result.  The parent folder is created.
    """
    results = list(results)
    for i, r in enumerate(results):
        if not isinstance(r, EvalResult):
            raise TypeError(f"save_results: item #{i} is {type(r).__name__}; expected EvalResult")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": command,
        "commit": commit if commit is not None else git_commit(p.parent if p.parent.exists() else None),
        "profile": profile if profile is not None else (results[0].profile if results else None),
        "hardware": hardware if hardware is not None else (results[0].hardware if results else None),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results": [r.to_dict() for r in results],
    }
    if extra:
        clash = set(extra) & set(doc)
        if clash:
            raise ValueError(f"save_results: extra keys {sorted(clash)} clash with the standard keys {sorted(doc)}")
        doc.update(extra)
    p.write_text(json.dumps(_jsonable(doc), indent=2) + "\n")
    return p


def load_results(path) -> tuple[list[EvalResult], dict]:
    """Read a file written by :func:`save_results`: ``(results, the other top-level fields)``."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"results file not found: {p}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"results file {p} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ValueError(f"results file {p}: expected a JSON object with a 'results' list (written by save_results)")
    results = [EvalResult.from_dict(d) for d in doc["results"]]
    return results, {k: v for k, v in doc.items() if k != "results"}
