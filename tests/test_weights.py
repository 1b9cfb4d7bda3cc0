"""The committed-weights store: train, record, verify, load; stale and damaged files are named."""

from __future__ import annotations

import json

import pytest
import torch

import reidlib.weights as W
from reidlib.methods.baseline import BaselineMethod

TINY = dict(epochs=1, max_iters_per_epoch=2, batch_p=4, batch_k=2, image_size=(64, 32), backbone="resnet10s")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A registry of two tiny models (a pretrained backbone and a baseline from it) in tmp_path."""
    wdir = tmp_path / "weights" / "book"
    monkeypatch.setattr(W, "weights_dir", lambda: wdir)
    monkeypatch.setattr(W, "find_project_root", lambda *a: tmp_path)
    lr = {"value": 1e-3}

    def backbone_recipe():
        return BaselineMethod.recipe("smoke").replace(**TINY, pretrained=False)

    def model_recipe():
        cfg = BaselineMethod.recipe("smoke").replace(**TINY, pretrained=True, lr=lr["value"])
        return cfg.replace(extra={**cfg.extra, "backbone_weights": str(wdir / "bb.safetensors")})

    specs = {
        "bb": W.WeightSpec("bb", "baseline", backbone_recipe, "synthpeds:tiny", export="backbone"),
        "ch/base": W.WeightSpec("ch/base", "baseline", model_recipe, "synthpeds:tiny", inputs=("bb",)),
    }
    monkeypatch.setattr(W, "registry", lambda: specs)
    return wdir, lr


def test_train_record_verify_and_load(store):
    wdir, _ = store
    with pytest.raises(W.WeightsError, match="train it first: `python -m reidlib weights train bb`"):
        W.train_weights("ch/base", device="cpu", progress=False)
    rec_bb = W.train_weights("bb", device="cpu", progress=False)
    rec = W.train_weights("ch/base", device="cpu", progress=False)
    man = json.loads((wdir / "manifest.json").read_text())
    assert set(man["models"]) == {"bb", "ch/base"}
    for r in (rec_bb, rec):
        assert {"recipe", "recipe_hash", "command", "commit", "hardware", "wall_time_s", "images_seen", "final_loss",
                "sha256", "bytes", "dtype"} <= set(r)
        assert r["images_seen"] == 2 * 8 and r["dtype"] == "float16"
    assert rec["command"] == "python -m reidlib weights train ch/base" and rec["inputs"]["bb"] == rec_bb["sha256"]
    assert W.verify() == []
    from safetensors.torch import load_file

    sd = load_file(str(wdir / "ch" / "base.safetensors"))
    assert not any(k.startswith("classifier") for k in sd) and all(
        v.dtype == torch.float16 for v in sd.values() if v.is_floating_point())
    assert all(not k.startswith("backbone.") for k in load_file(str(wdir / "bb.safetensors")))  # a bare backbone
    model, method, r = W.load_committed("ch/base", "cpu")
    assert not model.training and method.name == "baseline"
    with pytest.raises(W.WeightsError, match="current; pass --overwrite"):
        W.train_weights("ch/base", device="cpu", progress=False)


def test_stale_damaged_and_missing_files_are_named(store):
    wdir, lr = store
    W.train_weights("bb", device="cpu", progress=False)
    W.train_weights("ch/base", device="cpu", progress=False)
    lr["value"] = 5e-4  # the code's recipe changes
    problems = W.verify()
    assert len(problems) == 1 and "ch/base: stale" in problems[0] and "recipe changed" in problems[0]
    assert "`python -m reidlib weights train ch/base`" in problems[0]
    with pytest.raises(W.WeightsError, match="stale.*python -m reidlib weights train ch/base"):
        W.load_committed("ch/base", "cpu")
    lr["value"] = 1e-3
    assert W.verify() == []
    f = wdir / "bb.safetensors"
    f.write_bytes(f.read_bytes()[:-8] + b"garbage!")
    problems = W.verify()
    assert any(p.startswith("bb: damaged") for p in problems)
    assert any(p.startswith("ch/base: stale") and "another bb" in p for p in problems)  # its input changed
    f.unlink()
    assert W.status("bb")[0] == "missing" and "is missing" in W.status("bb")[1]
    with pytest.raises(W.WeightsError, match="no committed model is named 'nope'"):
        W.load_committed("nope")


def test_evaluate_weights_on_another_seed(store, tmp_path):
    W.train_weights("bb", device="cpu", progress=False)
    W.train_weights("ch/base", device="cpu", progress=False)
    res0, _ = W.evaluate_weights("ch/base", ["market"], device="cpu")
    res1, out = W.evaluate_weights("ch/base", ["market"], seed=1, device="cpu", json_path=tmp_path / "e.json")
    assert res1[0].params["test_seed"] == 1 and res0[0].params["test_seed"] == 0
    assert res0[0].metrics != res1[0].metrics  # another test population
    assert json.loads(out.read_text())["tables"]["weights"] == "ch/base"
    res_f, _ = W.evaluate_weights(str(W.registry()["ch/base"].file), ["market"], device="cpu")
    assert res_f[0].metrics == res0[0].metrics
