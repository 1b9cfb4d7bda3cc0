"""The four notebook parameters: validation and clear errors."""

import json

import pytest
import torch

from reidlib.config import (PROFILE_ENV, default_profile, resolve_data_root, resolve_device,
                            resolve_profile, resolve_run)


def test_profiles_accepted():
    assert resolve_profile("smoke") == "smoke"
    assert resolve_profile("full") == "full"


def test_unknown_profile_names_given_and_accepted():
    with pytest.raises(ValueError) as e:
        resolve_profile("fast")
    msg = str(e.value)
    assert "'fast'" in msg and "'smoke'" in msg and "'full'" in msg


def test_default_profile_env(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert default_profile() == "book"
    monkeypatch.setenv(PROFILE_ENV, "full")
    assert default_profile() == "full"


def test_missing_data_root_names_path(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(FileNotFoundError) as e:
        resolve_data_root(missing)
    assert str(missing) in str(e.value) and "SynthPeds" in str(e.value)
    assert resolve_data_root(None) is None
    assert resolve_data_root(tmp_path) == tmp_path


def test_data_root_file_rejected(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="file.txt"):
        resolve_data_root(f)


def test_device_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)


def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError) as e:
        resolve_device("cuda")
    assert "'cuda'" in str(e.value) and "no CUDA GPU" in str(e.value) and "'cpu'" in str(e.value)
    with pytest.raises(RuntimeError, match="cuda:1"):
        resolve_device("cuda:1")


def test_unknown_device():
    with pytest.raises(ValueError, match="'tpu'"):
        resolve_device("tpu")


def test_resolve_run_seeds_and_writes_results(tmp_path, monkeypatch):
    cfg = resolve_run("smoke", "cpu", None, seed=3)
    a = torch.rand(3)
    resolve_run("smoke", "cpu", None, seed=3)
    assert torch.equal(a, torch.rand(3))
    cfg.results_dir = tmp_path
    path = cfg.save_results("99_test", {"x": 1.5})
    assert path == tmp_path / "smoke" / "99_test.json"
    data = json.loads(path.read_text())
    assert data["results"] == {"x": 1.5}
    for key in ("profile", "hardware", "commit", "command", "reidlib", "seed"):
        assert key in data["meta"]
    assert data["meta"]["hardware"]["device"] == "cpu"  # the device is recorded with the hardware


def test_resolve_run_rejects_non_int_seed():
    with pytest.raises(TypeError, match="seed"):
        resolve_run("smoke", "cpu", None, seed="0")
