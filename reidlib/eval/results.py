"""Evaluation results: what was measured, on what, how -- as a table and as JSON.

An :class:`EvalResult` records the protocol (name, setting, description), the dataset
(with the SynthPeds version when it applies), the method, the profile, the hardware and
the metrics (Rank-1/3/5/10, mAP, mINP as fractions in [0, 1]; the number of valid queries).
:func:`results_table` shows them in percent (as the papers do);
:func:`save_results` / :func:`load_results` write and read them in the one results schema
of :mod:`reidlib.provenance` (``{"schema", "meta": {command, commit, profile, hardware, ...},
"results": [EvalResult.to_dict(), ...], "tables": {...}}``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from reidlib.provenance import hardware as _hardware
from reidlib.provenance import read_results, write_results

__all__ = [
    "EvalResult",
    "RANKS",
    "metrics_from_cmc",
    "results_table",
    "results_markdown",
    "format_results",
    "save_results",
    "load_results",
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


def _hardware_meta(hardware, device, results: list[EvalResult]) -> dict:
    """``meta["hardware"]``: the given dict, a given summary string, or the machine's dict for ``device``
    (default: the device type that the first result's hardware summary names, ``"cuda: ..."`` -> cuda)."""
    if isinstance(hardware, dict):
        return hardware
    if device is None and results and results[0].hardware:
        kind = results[0].hardware.split(":", 1)[0].strip()
        device = kind if kind in ("cpu", "cuda", "mps") else None
    info = _hardware(device)
    if isinstance(hardware, str) and hardware != info["summary"]:
        return {"summary": hardware}  # measured elsewhere: record only what was given
    return info


def save_results(path, results: Sequence[EvalResult], command: str | None = None, commit: str | None = None,
                 profile: str | None = None, hardware: str | dict | None = None, extra: dict | None = None,
                 device=None) -> Path:
    """Write evaluation results in the one results schema (:func:`reidlib.provenance.write_results`).

    The file is ``{"schema", "meta", "results": [EvalResult.to_dict(), ...], "tables": extra}``;
    ``meta`` is :func:`reidlib.provenance.provenance` with ``commit`` (default: the checkout's),
    ``profile`` (default: the first result's) and ``hardware`` (a dict; a string is the one-line
    summary of the machine; default: the machine's, for ``device`` or the device type the
    results name).  ``extra`` holds named extra tables / values.  The folder is created.
    """
    results = list(results)
    for i, r in enumerate(results):
        if not isinstance(r, EvalResult):
            raise TypeError(f"save_results: item #{i} is {type(r).__name__}; expected EvalResult")
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"save_results: extra is {type(extra).__name__}; expected a dict {{name: table}}")
    meta = {"hardware": _hardware_meta(hardware, device, results)}
    if commit is not None:
        meta["commit"] = commit
    return write_results(path, results, command=command,
                         profile=profile if profile is not None else (results[0].profile if results else None),
                         tables=extra or None, **meta)


def load_results(path) -> tuple[list[EvalResult], dict]:
    """Read a file written by :func:`save_results`: ``(results, info)``.

    ``info`` is the file's ``meta`` (command, commit, profile, hardware, reidlib, created,
    seed, ...) with one more key, ``"tables"``: the named extra tables (``{}`` when there
    are none).  Errors name the file (:func:`reidlib.provenance.read_results`); an entry
    of ``results`` that is not an :class:`EvalResult` record is an error naming its index.
    """
    p = Path(path)
    doc = read_results(p)
    if not isinstance(doc["results"], list):
        raise ValueError(f"results file {p}: 'results' is an object; expected a list of EvalResult records "
                         f"(written by reidlib.eval.save_results)")
    results = []
    for i, d in enumerate(doc["results"]):
        try:
            results.append(EvalResult.from_dict(d))
        except TypeError as e:
            raise ValueError(f"results file {p}: results[{i}] is not an EvalResult record ({e})") from None
    info = dict(doc["meta"])
    info["tables"] = doc.get("tables", {})
    return results, info
