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


# ----------------------------------------------------------------------------- the book's registry
def _images_per_epoch(cfg, pids):
    from reidlib.data.sampler import build_sampler

    n = len(build_sampler(pids, cfg.sampler, cfg.batch_p, cfg.batch_k, 0)) // cfg.batch_size
    return cfg.batch_size * min(n, cfg.max_iters_per_epoch or n)


def _book_images(spec, pids):
    """Images one book model sees: every stage's epochs x its batches (a pair counts two images)."""
    from reidlib.methods.registry import get_method

    cls, cfg = get_method(spec.method), spec.config()
    if spec.method == "ppcl":
        # a joint stage of pairs (x^p, x), after the GLRec pre-training it starts from (single crops)
        joint = 2 * cfg.epochs * _images_per_epoch(cfg, pids)
        glrec = W.registry()[spec.inputs[-1]].config()
        return joint + glrec.epochs * _images_per_epoch(glrec, pids)
    stages = [cfg]
    if spec.method == "vpm":
        stages.append(cls.stage_recipe(cfg, 2, "stage1/model.safetensors"))
    per_item = 2 if spec.method == "stnreid" else 1
    return sum(per_item * c.epochs * _images_per_epoch(c, pids) for c in stages)


def test_book_registry_budgets_are_equal():
    """Methods that a chapter compares see as many training images as chapter 3's baseline
    (within 1 %), on the training set every book model names."""
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.methods.baseline import BOOK_TRAIN_SET

    reg = W.registry()
    ds = SynthPeds("market", seed=0, size="smoke")
    pids = [r.pid for r in ds.train]
    base = _book_images(reg["03_holistic_models_fail/baseline"], pids)
    assert abs(base - 116_288) <= 2 * 64 * 10  # the PK sampler gives 181 or 182 batches per epoch
    for name, spec in reg.items():
        if name.startswith("backbone") or name == "06_ppcl/glrec":  # components, counted where they are used
            continue
        assert spec.data == BOOK_TRAIN_SET, name
        assert spec.config().pretrained or spec.config().extra.get("setting") == "Ep1", name
        assert abs(_book_images(spec, pids) / base - 1) < 0.01, (name, _book_images(spec, pids))


def test_book_registry_matches_the_chapters():
    """Every committed chapter model is the recipe its chapter asks for (the chapters call the
    same recipe functions), and the Fig. 4 region counts are the profile's."""
    from reidlib.methods.stnreid import STNReIDMethod
    from reidlib.methods.vpm import FIG4_P, VPMMethod

    reg = W.registry()
    for p in FIG4_P["book"]:
        assert reg[f"04_vpm/vpm-top-p{p}"].config() == VPMMethod.recipe("book", parts=(p, 1))
    assert reg["04_vpm/vpm-top-p6-mvpm-2"].config() == VPMMethod.recipe("book", "mvpm-2")
    pm = reg["05_stnreid/stage2-PM"]
    assert pm.inputs == ("backbone-resnet10s", "05_stnreid/stage1-Ep1")
    assert pm.config() == STNReIDMethod.stage_recipe(
        "book", stage=2, setting="Ep5", stn_weights="weights/book/05_stnreid/stage1-Ep1.safetensors")
    # PPCL: every joint stage starts from the one committed GLRec; Table 1c's book cells
    from reidlib.methods.ppcl import PPCL_TABLE1C_GRID, PPCL_VARIANTS, PPCLMethod

    glrec = "weights/book/06_ppcl/glrec.safetensors"
    assert reg["06_ppcl/glrec"].config() == PPCLMethod.glrec_recipe("book")
    for v in PPCL_VARIANTS:
        assert reg[f"06_ppcl/{v}"].inputs == ("backbone-resnet10s", "06_ppcl/glrec")
        assert reg[f"06_ppcl/{v}"].config() == PPCLMethod.ppcl_recipe("book", v, glrec_weights=glrec)
    cells = [n for n in reg if n.startswith("06_ppcl/ppcl-cyc")]
    assert len(cells) == len(PPCL_TABLE1C_GRID["book"]) - 1  # (10, 1) is the "ppcl" variant
    assert reg["06_ppcl/ppcl-cyc10-tri0.1"].config() == PPCLMethod.ppcl_recipe("book", "ppcl", glrec_weights=glrec,
                                                                                lambda_cyc=10.0, lambda_tri=0.1)
    # SANet (chapter 07, a draft): the committed ones are the chapter's recipe calls
    from reidlib.methods.hpnet import HPNetMethod
    from reidlib.methods.sanet import SANET_BOOK_NAMES, SANET_TABLE4_BOOK, SANetMethod

    want = {"07_sanet/hpnet": HPNetMethod.recipe("book")}
    want.update({f"07_sanet/{n}": SANetMethod.recipe("book", v) for v, n in SANET_BOOK_NAMES.items()})
    want.update({f"07_sanet/{n}": SANetMethod.recipe("book", **kw) for n, kw in SANET_TABLE4_BOOK.items()})
    for name in (n for n in reg if n.startswith("07_sanet/")):
        assert reg[name].config() == want[name], name
    assert {n.split("/")[1] for n in reg if n.startswith("07_sanet/")} == set(W.SANET_COMMITTED)
    # Table 2's Ep1 starts from scratch, the "PT" settings from the pretrained backbone
    assert reg["05_stnreid/stage1-Ep1"].inputs == () and not reg["05_stnreid/stage1-Ep1"].config().pretrained
    assert reg["05_stnreid/stage1-Ep5"].config().extra["backbone_weights"] == "weights/book/backbone-resnet10s.safetensors"
