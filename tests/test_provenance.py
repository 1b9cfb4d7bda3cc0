"""reidlib.provenance: commit, hardware, the one JSON conversion, atomic writes, the one results schema."""

from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import reidlib
from reidlib.provenance import (
    RESULTS_SCHEMA,
    git_commit,
    hardware,
    hardware_summary,
    jsonable,
    provenance,
    read_results,
    write_json,
    write_results,
)

COMMIT_RE = re.compile(r"^[0-9a-f]{40}(\+dirty)?$")


def test_git_commit_format():
    c = git_commit()
    assert c == "unknown" or COMMIT_RE.match(c), c


def test_git_commit_outside_git(tmp_path):
    # a folder that is no git checkout (GIT_CEILING_DIRECTORIES is not needed: tmp is outside the repo)
    probe = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True)
    if probe.returncode == 0:  # pragma: no cover - tmp inside some checkout
        pytest.skip("the temporary folder is inside a git checkout")
    assert git_commit(tmp_path) == "unknown"


def test_git_commit_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):  # pragma: no cover - no git
        pytest.skip("git is not available")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "a.txt").write_text("1")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}")
    git("add", "a.txt", "results/r.json")
    git("commit", "-q", "-m", "one")
    clean = git_commit(tmp_path)
    assert re.match(r"^[0-9a-f]{40}$", clean)
    (tmp_path / "untracked.txt").write_text("x")  # untracked files do not count
    assert git_commit(tmp_path) == clean
    (tmp_path / "results" / "r.json").write_text('{"a": 1}')  # nor the outputs that runs write
    assert git_commit(tmp_path) == clean
    assert git_commit(tmp_path / "results") == clean  # from a subfolder too
    (tmp_path / "a.txt").write_text("2")
    assert git_commit(tmp_path) == clean + "+dirty"


def test_hardware_cpu():
    hw = hardware("cpu")
    for key in ("summary", "device", "platform", "machine", "processor", "cpu_count", "torch_threads", "python",
                "torch", "torchvision"):
        assert key in hw
    assert hw["device"] == "cpu" and hw["torch"] == torch.__version__
    assert hw["summary"].startswith("cpu: ") and f"torch {torch.__version__}" in hw["summary"]
    assert hardware_summary("cpu") == hw["summary"] == hardware()["summary"]
    assert "gpu" not in hw
    with pytest.raises(ValueError, match="'auto'"):
        hardware("auto")


def test_hardware_cuda_fields(monkeypatch):
    """The CUDA branch, with torch.cuda answering as an H200 would (no GPU needed)."""
    from types import SimpleNamespace

    import reidlib.provenance as prov

    props = SimpleNamespace(name="NVIDIA H200", total_memory=int(139.8 * 2**30))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(prov, "_nvidia_driver", lambda i: "570.1")
    hw = hardware("cuda")
    assert hw["gpu"] == "NVIDIA H200" and hw["gpu_count"] == 1 and hw["gpu_memory_gib"] == 139.8
    assert hw["cuda"] == "12.8" and hw["driver"] == "570.1" and hw["device"] == "cuda"
    assert hw["summary"] == f"cuda: NVIDIA H200 (140 GiB), CUDA 12.8; torch {torch.__version__}"


@dataclass
class _Point:
    x: int
    where: Path


def test_jsonable_exact_conversions():
    assert jsonable({1: np.float32(0.5), (2, 3): np.int64(7), "b": np.bool_(True)}) == {"1": 0.5, "(2, 3)": 7, "b": True}
    assert jsonable((1, [2, (3,)])) == [1, [2, [3]]]
    assert jsonable(np.arange(4).reshape(2, 2)) == [[0, 1], [2, 3]]
    assert jsonable(torch.tensor([[1.5, float("nan")]])) == [[1.5, None]]
    assert jsonable(torch.tensor(3)) == 3
    assert jsonable(Path("a/b.json")) == "a/b.json"
    assert jsonable(torch.device("cpu")) == "cpu" and jsonable(torch.float16) == "torch.float16"
    assert jsonable(_Point(1, Path("p"))) == {"x": 1, "where": "p"}
    assert jsonable([float("nan"), float("inf"), -math.inf, np.float64("nan")]) == [None, "inf", "-inf", None]
    assert jsonable({"s": "x", "n": None, "t": True, "i": 3, "f": 1.25}) == {"s": "x", "n": None, "t": True, "i": 3, "f": 1.25}
    with pytest.raises(TypeError, match="set"):
        jsonable({"a": {1, 2}})
    with pytest.raises(TypeError, match="object"):
        jsonable(object())


def test_write_json_atomic_round_trip(tmp_path):
    p = tmp_path / "new" / "sub" / "x.json"
    obj = {"a": np.float64(1.5), "t": torch.arange(3), "p": Path("q")}
    assert write_json(p, obj) == p
    text = p.read_text()
    assert text.endswith("}\n") and text.startswith("{\n  \"a\"")
    assert json.loads(text) == {"a": 1.5, "t": [0, 1, 2], "p": "q"}
    write_json(p, {"b": 2})  # replaces
    assert json.loads(p.read_text()) == {"b": 2}
    with pytest.raises(TypeError):
        write_json(p, {"bad": object()})
    assert json.loads(p.read_text()) == {"b": 2}  # a failed write leaves the old file
    assert sorted(f.name for f in p.parent.iterdir()) == ["x.json"]  # no temporary file left behind


def test_provenance_fields():
    meta = provenance(command="pytest", profile="smoke", device="cpu", seed=3, bench="x")
    assert list(meta)[:7] == ["command", "commit", "profile", "hardware", "reidlib", "created", "seed"]
    assert meta["command"] == "pytest" and meta["profile"] == "smoke" and meta["seed"] == 3 and meta["bench"] == "x"
    assert meta["reidlib"] == reidlib.__version__ and meta["hardware"]["device"] == "cpu"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", meta["created"])
    over = provenance(commit="abc", hardware={"summary": "elsewhere"})
    assert over["commit"] == "abc" and over["hardware"] == {"summary": "elsewhere"}


class _Row:
    def __init__(self, v):
        self.v = v

    def to_dict(self):
        return {"v": self.v}


def test_write_read_results_round_trip(tmp_path):
    p = write_results(tmp_path / "r.json", [_Row(1), {"v": np.int32(2)}], command="pytest", profile="smoke",
                      device="cpu", seed=0, tables={"toy": {"ap": np.array([0.5, 1.0])}}, bench="unit")
    doc = read_results(p)
    assert doc["schema"] == RESULTS_SCHEMA
    assert doc["results"] == [{"v": 1}, {"v": 2}] and doc["tables"] == {"toy": {"ap": [0.5, 1.0]}}
    assert doc["meta"]["command"] == "pytest" and doc["meta"]["bench"] == "unit"
    assert doc["meta"]["hardware"]["summary"] == hardware_summary("cpu")
    d = read_results(write_results(tmp_path / "d.json", {"x": 1.5}))
    assert d["results"] == {"x": 1.5} and "tables" not in d
    with pytest.raises(TypeError, match="item #1"):
        write_results(tmp_path / "bad.json", [{"v": 1}, 3])


def test_read_results_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing.json"))):
        read_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match=re.escape(str(bad)) + " is not valid JSON"):
        read_results(bad)
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(ValueError, match=re.escape(str(lst)) + ".*expected an object"):
        read_results(lst)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"meta": {}, "results": []}))
    with pytest.raises(ValueError, match=re.escape(str(old)) + " has no 'schema' key; expected schema 'reidlib-results-v1'"):
        read_results(old)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something-v9", "meta": {}, "results": []}))
    with pytest.raises(ValueError, match=re.escape(str(other)) + " has schema 'something-v9'"):
        read_results(other)
    nometa = tmp_path / "nometa.json"
    nometa.write_text(json.dumps({"schema": RESULTS_SCHEMA, "results": []}))
    with pytest.raises(ValueError, match=re.escape(str(nometa)) + ": 'meta' is missing"):
        read_results(nometa)
    nores = tmp_path / "nores.json"
    nores.write_text(json.dumps({"schema": RESULTS_SCHEMA, "meta": {}}))
    with pytest.raises(ValueError, match=re.escape(str(nores)) + ": 'results' is missing"):
        read_results(nores)
