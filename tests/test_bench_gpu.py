"""The prepared GPU check (``python -m reidlib bench gpu``, issue 16) without a GPU: its dry run
writes the full JSON structure from the same code paths, and without ``--dry-run`` a machine
with no CUDA GPU is refused with a message naming ``--dry-run``."""

from __future__ import annotations

import math

import pytest
import torch

from reidlib.bench import gpu
from reidlib.provenance import read_results


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _figures(entry: dict, *keys: str) -> None:
    for k in keys:
        assert _positive(entry.get(k)), (k, entry.get(k), entry)


def _explained(entry: dict) -> bool:
    """A section or item that holds no figures says why: an error or a skip reason."""
    return (entry.get("status") == "error" and bool(entry.get("error"))) or \
        (entry.get("status") == "skipped" and bool(entry.get("reason")))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu_dry.json"
    rc = gpu.main(["--dry-run", "--json", str(out)])
    return rc, read_results(out)


def test_dry_run_writes_every_section(dry_run):
    rc, doc = dry_run
    meta, res = doc["meta"], doc["results"]
    assert rc == 0, {n: e.get("error") for n, e in res["sections"].items()}
    assert meta["commit"] and meta["command"].startswith("python -m reidlib bench gpu --dry-run")
    hw = meta["hardware"]
    assert hw["torch"] == torch.__version__ and hw["device"] == "cpu" and hw["summary"]
    assert meta["bench"] == "gpu" and meta["dry_run"] is True
    assert res["dry_run"] is True and res["complete"] is True and res["device"] == "cpu"
    assert res["plan"]["name"] == "dry-run" and _positive(res["elapsed_s"]) and res["budget_s"] == gpu.DEFAULT_BUDGET_S
    assert list(res["sections"]) == list(gpu.SECTIONS)
    for name, entry in res["sections"].items():
        assert entry["status"] in ("ok", "partial", "error", "skipped"), name
        assert entry["status"] == "ok" or _explained(entry), (name, entry)


def test_dry_run_resnet50_figures(dry_run):
    sec = dry_run[1]["results"]["sections"]["resnet50"]
    assert sec["status"] == "ok"
    v = sec["variants"]
    assert set(v) == {"fp32", "fp32_strict", "amp_channels_last", "amp_channels_last_compile"}
    assert v["fp32_strict"]["tf32"] == {"cudnn_conv": False, "matmul": False}
    for name in ("fp32", "fp32_strict", "amp_channels_last"):
        _figures(v[name], "images_per_s", "step_ms", "ratio_to_fp32")
        assert v[name]["loss_finite"] is True
    assert v["fp32"]["ratio_to_fp32"] == 1.0 and v["amp_channels_last"]["channels_last"] is True
    c = v["amp_channels_last_compile"]
    if c["status"] == "ok":  # the compile child ran (eager backend on the CPU)
        _figures(c, "images_per_s", "compile_s", "ratio_to_fp32")
        assert c["compiled"] is True and c["compile_backend"] == "eager"
    else:
        assert _explained(c), c
    for goal in ("goal_ratio_ge_2", "goal_ratio_ge_2_vs_fp32_strict", "goal_5000_img_s"):
        assert isinstance(sec[goal], bool), goal
    assert sec["goal_5000_img_s"] is (sec["best_images_per_s"] >= gpu.GOAL_IMG_S)
    assert sec["goal_ratio_ge_2"] is (sec["best_ratio_to_fp32"] >= gpu.GOAL_RATIO)


def test_dry_run_methods_cover_the_registry(dry_run):
    from reidlib.methods.registry import METHODS

    sec = dry_run[1]["results"]["sections"]["methods"]
    runs = sec["runs"]
    assert {"baseline", "pcb", "vpm:stage1", "vpm:stage2", "stnreid:stage1"} <= set(runs)
    assert {k.split(":")[0] for k in runs} == set(METHODS)  # every registered method is there
    for key, e in runs.items():
        if e["status"] != "ok":
            assert _explained(e), (key, e)
            continue
        _figures(e, "images_per_s", "loader_wait_s", "gpu_step_s", "gpu_bound_images_per_s", "batch_size", "seconds")
        assert e["bottleneck"] in ("loader", "gpu") and e["loss_finite"] is True
        assert e["steps"] == gpu.DRY.method_steps and e["num_workers"] == 1
    assert runs["vpm:stage2"]["sampler"] == "pk" and runs["vpm:stage1"]["sampler"] == "random"


def test_dry_run_eval_matchers_ddp(dry_run):
    s = dry_run[1]["results"]["sections"]
    ev = s["eval"]
    assert ev["status"] == "ok"
    _figures(ev["extraction"], "images_per_s", "seconds", "images")
    r = ev["rank"]
    _figures(r, "cpu_s", "gpu_s", "speedup")
    assert r["identical"] is True and (r["queries"], r["gallery"]) == gpu.DRY.eval_problem[:2]
    assert gpu.FULL.eval_problem[:2] == (3368, 15913)  # Market-1501 size on the GPU

    m = s["matchers"]
    assert m["status"] == "ok" and m["distances_finite"] is True
    _figures(m["full"], "pairs", "seconds", "pairs_per_s")
    _figures(m["shortlist"], "k", "pairs_scored", "seconds", "pairs_per_s")
    assert m["full"]["pairs"] == m["queries"] * m["gallery"]

    d = s["ddp"]
    if d["status"] == "skipped":  # a torch build without torch.distributed
        assert d["reason"]
        return
    assert d["status"] == "ok" and d["passed"] is True and d["backend"] == "gloo", d
    for step in ("process_group", "train_first_epoch", "resume"):
        assert d[step]["passed"] is True and _positive(d[step]["seconds"]), (step, d[step])
    assert d["train_first_epoch"]["checkpoint_written"] and d["resume"]["epochs_done"] == 2
    assert "--max-epochs 1" in d["train_first_epoch"]["command"] and "--resume" in d["resume"]["command"]


def test_budget_skips_with_a_reason(tmp_path):
    """A budget too small for anything: every section is recorded as skipped, with the reason."""
    out = tmp_path / "g.json"
    assert gpu.main(["--dry-run", "--budget-s", "0.001", "--json", str(out)]) == 0
    res = read_results(out)["results"]
    assert res["complete"] is True
    for name in gpu.SECTIONS:
        e = res["sections"][name]
        assert e["status"] == "skipped" and "time budget" in e["reason"], (name, e)


def test_bad_arguments_name_the_expected_form():
    with pytest.raises(SystemExit, match="--sections='nope'.*resnet50, methods"):
        gpu.main(["--dry-run", "--sections", "nope"])
    with pytest.raises(SystemExit, match="--budget-s=-1.*positive"):
        gpu.main(["--dry-run", "--budget-s", "-1"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: the full check would run")
def test_without_gpu_and_without_dry_run_it_refuses(capsys, tmp_path):
    out = tmp_path / "g.json"
    rc = gpu.main(["--json", str(out)])
    err = capsys.readouterr().err
    assert rc != 0 and "no CUDA GPU" in err and "--dry-run" in err
    assert not out.exists()


def test_registered_as_a_bench():
    from reidlib.cli import BENCHES

    assert BENCHES.get("gpu") == "reidlib.bench.gpu:main"
