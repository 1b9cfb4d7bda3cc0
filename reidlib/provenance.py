"""Where a number came from: the commit, the hardware, the command -- and the one results schema.

Every run record of reidlib (notebook results, evaluation results, benchmarks, training
runs) is written through this module:

* :func:`git_commit` -- the checkout's ``HEAD`` (``+dirty`` when tracked files differ);
* :func:`hardware` / :func:`hardware_summary` -- the machine as a dict / one line;
* :func:`jsonable` / :func:`write_json` -- the one JSON conversion, written atomically;
* :func:`provenance` -- the ``meta`` block: command, commit, profile, hardware, versions, date, seed;
* :func:`write_results` / :func:`read_results` -- the one results file::

      {"schema": "reidlib-results-v1",
       "meta": provenance(...),
       "results": [...] or {...},
       "tables": {name: JSON, ...}}        # optional: named extra tables / values

It imports only the standard library, numpy, torch and ``reidlib.__version__``, so that
any part of reidlib (and the tools) can use it without an import circle.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from reidlib import __version__

__all__ = [
    "RESULTS_SCHEMA",
    "git_commit",
    "hardware",
    "hardware_summary",
    "jsonable",
    "write_json",
    "provenance",
    "write_results",
    "read_results",
]

RESULTS_SCHEMA = "reidlib-results-v1"


# ----------------------------------------------------------------------------- commit
def git_commit(root: Path | None = None, ignore: Sequence[str] = ("results",)) -> str:
    """The ``HEAD`` sha of the git checkout at ``root`` (default: the reidlib package's folder).

    ``+dirty`` is appended when tracked files differ from ``HEAD`` (untracked files do not
    count, nor the folders in ``ignore``: by default ``results/``, the outputs that runs write,
    so that a book build from a clean commit records that commit in every results file it
    writes; the weights store also ignores ``weights/``, which it writes); ``"unknown"`` outside
    a git checkout or without git.
    """
    where = Path(root) if root is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        sha = head.stdout.strip()
        if head.returncode != 0 or not sha:
            return "unknown"
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                 *(f":(top,exclude){p}" for p in ignore)], cwd=where,
                                capture_output=True, text=True, timeout=10)
        return sha + ("+dirty" if status.returncode == 0 and status.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- hardware
def _nvidia_driver(index: int) -> str | None:
    """The NVIDIA driver version from ``nvidia-smi`` (None when it is missing or fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader", "-i", str(index)],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = r.stdout.strip().splitlines()
    return lines[0].strip() if r.returncode == 0 and lines else None


def hardware(device=None) -> dict:
    """The machine a result was measured on, for ``device`` (a ``torch.device`` or its name; None = the CPU).

    Keys: ``summary`` (one line, e.g. ``"cpu: x86_64, 2 cores; torch 2.x"`` or
    ``"cuda: NVIDIA H200 (139 GiB), CUDA 12.x; torch 2.x"``), ``device``, ``platform``,
    ``machine``, ``processor``, ``cpu_count``, ``torch_threads``, ``python``, ``torch``,
    ``torchvision``; on a CUDA device also ``gpu``, ``gpu_count``, ``gpu_memory_gib``,
    ``cuda`` and ``driver`` (from ``nvidia-smi``; None when unavailable).
    """
    try:
        dev = torch.device("cpu") if device is None else torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"hardware(device={device!r}): expected a torch.device or a device name such as 'cpu', "
                         f"'cuda', 'cuda:1' ('auto' is resolved first: reidlib.config.resolve_device)") from None
    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        tv = None
    info = {
        "summary": "",
        "device": str(dev),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": tv,
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        info.update(gpu=props.name, gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    driver=_nvidia_driver(index))
        info["summary"] = (f"cuda: {props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}; "
                           f"torch {torch.__version__}")
    else:
        info["summary"] = f"{dev.type}: {info['machine']}, {info['cpu_count']} cores; torch {torch.__version__}"
    return info


def hardware_summary(device=None) -> str:
    """One line describing the machine (``hardware(device)["summary"]``)."""
    return hardware(device)["summary"]


# ----------------------------------------------------------------------------- JSON
def jsonable(obj):
    """``obj`` converted to plain JSON types (dict, list, str, int, float, bool, None).

    Dict keys become strings; tuples and lists become lists; numpy arrays and scalars,
    torch tensors (``.tolist()``), ``Path``, ``torch.device`` and ``torch.dtype`` (``str``)
    and dataclass instances (``dataclasses.asdict``) are converted; non-finite floats
    become ``None`` (NaN), ``"inf"`` or ``"-inf"``.  Any other type raises ``TypeError``
    naming it.
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return jsonable(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, (Path, torch.device, torch.dtype)):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    raise TypeError(f"cannot convert an object of type {type(obj).__module__}.{type(obj).__qualname__} to JSON: "
                    f"expected dict, list, tuple, str, int, float, bool, None, a numpy array/scalar, a torch "
                    f"tensor, Path, torch.device/dtype or a dataclass")


def write_json(path, obj) -> Path:
    """Write ``jsonable(obj)`` to ``path`` (indent 2, trailing newline) atomically; returns the path.

    The parent folder is created; the text goes to a temporary file in the same folder,
    which then replaces ``path`` (a reader never sees a half-written file).
    """
    p = Path(path)
    text = json.dumps(jsonable(obj), indent=2) + "\n"  # convert first: a TypeError leaves no file behind
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


# ----------------------------------------------------------------------------- provenance + results
def provenance(command: str | None = None, profile: str | None = None, device=None, seed: int | None = None,
               **extra) -> dict:
    """The ``meta`` block of a results file.

    ``{"command", "commit", "profile", "hardware": hardware(device), "reidlib", "created"
    (UTC, ISO 8601 to the second), "seed", **extra}``.  A key of ``extra`` replaces the
    standard field of that name (e.g. ``commit=`` for a record measured at another commit,
    ``hardware=`` for one measured elsewhere); the replaced field is then not computed.
    """
    meta = {
        "command": command,
        "commit": extra.pop("commit") if "commit" in extra else git_commit(),
        "profile": profile,
        "hardware": extra.pop("hardware") if "hardware" in extra else hardware(device),
        "reidlib": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
    }
    meta.update(extra)
    return meta


def _results_payload(results):
    if isinstance(results, dict):
        return results
    if isinstance(results, (list, tuple)):
        out = []
        for i, r in enumerate(results):
            if isinstance(r, dict):
                out.append(r)
            elif callable(getattr(r, "to_dict", None)):
                out.append(r.to_dict())
            else:
                raise TypeError(f"write_results: results item #{i} is {type(r).__name__}; expected a dict or an "
                                f"object with .to_dict() (e.g. reidlib.eval.EvalResult)")
        return out
    raise TypeError(f"write_results: results is {type(results).__name__}; expected a list (of dicts or objects "
                    f"with .to_dict()) or a dict")


def write_results(path, results, *, command: str | None = None, profile: str | None = None, device=None,
                  seed: int | None = None, tables: dict | None = None, **meta_extra) -> Path:
    """Write a results file ``{"schema", "meta", "results"[, "tables"]}`` (see the module docstring).

    Args:
        results: a list of dicts or of objects with ``.to_dict()`` (``EvalResult``), or a dict.
        command, profile, device, seed, **meta_extra: go to :func:`provenance` (``meta``).
        tables: named extra tables / values (``{name: JSON}``), stored under ``"tables"``.

    Returns the path (written atomically by :func:`write_json`; the folder is created).
    """
    if tables is not None and not isinstance(tables, dict):
        raise TypeError(f"write_results: tables is {type(tables).__name__}; expected a dict {{name: table}}")
    doc = {
        "schema": RESULTS_SCHEMA,
        "meta": provenance(command=command, profile=profile, device=device, seed=seed, **meta_extra),
        "results": _results_payload(results),
    }
    if tables:
        doc["tables"] = tables
    return write_json(path, doc)


def read_results(path) -> dict:
    """Read a results file written by :func:`write_results`: the parsed document.

    Raises (naming the file): ``FileNotFoundError`` when it is missing; ``ValueError`` when
    it is not valid JSON, not a JSON object, has no or another ``"schema"`` than
    :data:`RESULTS_SCHEMA`, or lacks ``"meta"`` (an object) or ``"results"`` (a list or an object).
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"results file not found: {p}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"results file {p} is a folder; expected a JSON file written by write_results") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"results file {p} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"results file {p} holds a JSON {type(doc).__name__}; expected an object "
                         f'{{"schema": {RESULTS_SCHEMA!r}, "meta": ..., "results": ...}}')
    schema = doc.get("schema")
    if schema != RESULTS_SCHEMA:
        found = "no 'schema' key" if "schema" not in doc else f"schema {schema!r}"
        raise ValueError(f"results file {p} has {found}; expected schema {RESULTS_SCHEMA!r} "
                         f"(written by reidlib.provenance.write_results)")
    if not isinstance(doc.get("meta"), dict):
        raise ValueError(f"results file {p}: 'meta' is missing or not an object; expected the provenance block "
                         f"(command, commit, profile, hardware, ...)")
    if not isinstance(doc.get("results"), (list, dict)):
        raise ValueError(f"results file {p}: 'results' is missing or not a list/object")
    if "tables" in doc and not isinstance(doc["tables"], dict):
        raise ValueError(f"results file {p}: 'tables' is {type(doc['tables']).__name__}; expected an object {{name: table}}")
    return doc
