"""The run store and the command line on bad input: typed settings, refusing to overwrite a finished
run, resume checks, interrupted runs, corrupt weights, runs that load after their inputs moved."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch

from reidlib.cli import main
from reidlib.engine.runs import RunDir, RunStore, load_run, read_log, train_stages
from reidlib.engine.trainer import Trainer, TrainingInterrupted
from reidlib.methods.base import TrainConfig, parse_overrides
from reidlib.methods.baseline import BaselineMethod
from reidlib.methods.registry import get_method

from test_engine import TinyData, TinyMethod, make_trainer, state

TRAIN = ["train", "--method", "baseline", "--data", "synthpeds:tiny", "--device", "cpu", "--no-progress",
         "--set", "epochs=2", "max_iters_per_epoch=1", "batch_p=4", "batch_k=2", "image_size=64,32"]


def _train_args(out, *extra, sets=()):
    args = TRAIN + list(sets)
    return args + ["--out", str(out), *extra]


# ----------------------------------------------------------------------------- typed settings
@pytest.mark.parametrize("item, key", [("epoch=1", "epoch"), ("lable_smooth=0.2", "lable_smooth")])
def test_unknown_keys_fail_naming_the_key(item, key, tmp_path):
    with pytest.raises(ValueError, match=f"unknown setting '{key}'"):
        main(_train_args(tmp_path / "r", sets=[item]))
    assert not (tmp_path / "r").exists()  # nothing started


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        parse_overrides(["epoch=1"], BaselineMethod.recipe("smoke"), BaselineMethod)
    with pytest.raises(ValueError, match="did you mean 'label_smooth'"):
        parse_overrides(["lable_smooth=0.2"], BaselineMethod.recipe("smoke"), BaselineMethod)


@pytest.mark.parametrize("item, match", [
    ("epochs=abc", "epochs='abc' is not an integer"),
    ("lr=fast", "lr='fast' is not a number"),
    ("epochs=-1", r"epochs=-1 is out of range; expected a value >= 1"),
    ("lr=0", r"lr=0.0 is out of range; expected a value > 0.0"),
    ("label_smooth=2", r"label_smooth=2.0 is out of range; expected a value <= 1.0"),
    ("neck_feat=middle", "unknown neck_feat 'middle'"),
    ("sampler=weird", "unknown sampler 'weird'"),
    ("image_size=64", "image_size=64 is not a sequence of 2 values"),
    ("triplet_weight=yes", "triplet_weight='yes' is not a number"),
])
def test_bad_values_fail_before_any_work(item, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        main(_train_args(tmp_path / "r", sets=[item]))
    assert not (tmp_path / "r").exists()


def test_settings_types_and_round_trip():
    cfg = parse_overrides(["label_smooth=0", "backbone_weights=/w.pth", "epochs=3"], BaselineMethod.recipe("smoke"),
                          BaselineMethod)
    assert cfg.extra["label_smooth"] == 0.0 and isinstance(cfg.extra["label_smooth"], float)
    assert cfg.extra["backbone_weights"] == "/w.pth" and cfg.epochs == 3
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        TrainConfig.from_dict({**cfg.to_dict(), "epoch": 3})
    with pytest.raises(ValueError, match="unknown extra settings \\['partz'\\]"):
        get_method("vpm")(get_method("vpm").recipe("smoke").replace(extra={"partz": (2, 1)}), 4)


def test_every_registered_recipe_is_valid():
    from reidlib.methods.registry import METHODS

    for name in METHODS:
        cls = get_method(name)
        for profile in ("smoke", "full"):
            cfg = cls.recipe(profile)
            settings = cls.Settings.from_dict(cfg.extra)
            assert settings.to_dict().keys() == cfg.extra.keys(), name  # one default per key, all recorded


# ----------------------------------------------------------------------------- finished runs, resume
def test_a_finished_run_is_never_overwritten_silently(tmp_path):
    out = tmp_path / "b"
    assert main(_train_args(out)) == 0
    w = (out / "model.safetensors").read_bytes()
    shutil.rmtree(out / "checkpoints")  # a finished run without its checkpoints is still finished
    with pytest.raises(FileExistsError, match="finished run.*--overwrite"):
        main(_train_args(out))
    assert (out / "model.safetensors").read_bytes() == w
    assert main(_train_args(out, "--resume")) == 0  # reused as it is
    assert (out / "model.safetensors").read_bytes() == w
    assert main(_train_args(out, "--overwrite", sets=["lr=1e-3"])) == 0  # replaced
    assert json.loads((out / "config.json").read_text())["train_config"]["lr"] == 1e-3


def test_resume_refuses_another_seed_dataset_or_recipe(tmp_path):
    out = tmp_path / "b"
    assert main(_train_args(out, "--max-epochs", "1")) == 0
    assert not (out / "model.safetensors").exists()
    with pytest.raises(ValueError, match="seed: the run has 0, now 1"):
        main(_train_args(out, "--resume", "--seed", "1"))
    with pytest.raises(ValueError, match="lr: the run has 0.002, now 0.01"):
        main(_train_args(out, "--resume", sets=["lr=0.01"]))
    with pytest.raises(ValueError, match="dataset: the run has 'synthpeds:tiny', now 'synthpeds:smoke'"):
        main(_train_args(out, "--resume") + ["--data", "synthpeds:smoke"])
    assert main(_train_args(out, "--resume")) == 0
    assert RunDir(out).is_finished()


def test_resume_of_a_missing_folder_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(_train_args(tmp_path / "nowhere", "--resume"))
    assert not (tmp_path / "nowhere").exists()


def test_a_signal_writes_a_checkpoint_and_resume_continues_exactly(tmp_path):
    """SIGINT in the middle of an epoch: the step finishes, a checkpoint is written, and the resumed
    run ends with the weights of an uninterrupted one."""

    class Interrupting(TinyMethod):
        steps = 0

        def loss(self, model, batch, epoch):
            Interrupting.steps += 1
            if Interrupting.steps == 3:  # epoch 1 (0-based), second step of that epoch
                os.kill(os.getpid(), signal.SIGINT)
            return super().loss(model, batch, epoch)

    data = TinyData()
    straight = make_trainer(tmp_path, "straight")
    straight.fit()
    cfg = TinyMethod.recipe("smoke")
    tr = Trainer(Interrupting(cfg, data.num_train_pids), data, tmp_path / "cut", device="cpu", progress=False)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup / CI, Python's default handler in a terminal
    with pytest.raises(TrainingInterrupted, match="continue with --resume"):
        tr.fit()
    ck = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert ck["extra"]["partial"]["iters"] >= 1 and not (tmp_path / "cut" / "model.safetensors").exists()
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back
    resumed = make_trainer(tmp_path, "cut", data=data, resume=True)
    resumed.fit()
    a, b = state(straight), state(resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [e["loss"] for e in read_log(tmp_path / "straight")] == [e["loss"] for e in read_log(tmp_path / "cut")]


# ----------------------------------------------------------------------------- loading runs
def test_corrupt_weights_name_the_file(tmp_path):
    out = tmp_path / "b"
    assert main(_train_args(out)) == 0
    (out / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(OSError, match="model.safetensors.*not a valid safetensors file"):
        load_run(out)
    with pytest.raises(NotADirectoryError, match="is a file"):
        load_run(out / "model.safetensors")


def test_evaluate_works_after_the_runs_inputs_moved(tmp_path):
    """A VPM two-stage run and an STNReID stage-2 run evaluate from their own folders after the
    runs they started from are gone."""
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.methods.stnreid import STNReIDMethod
    from reidlib.methods.vpm import VPMMethod

    data = SynthPeds("tiny", seed=0)
    tiny = {"epochs": 1, "max_iters_per_epoch": 1, "batch_p": 4, "batch_k": 2, "image_size": (64, 32)}
    vcfg = VPMMethod.recipe("smoke", parts=(2, 1)).replace(**tiny)
    vcfg = vcfg.replace(extra={**vcfg.extra, "stage2": {**vcfg.extra["stage2"], **tiny}})
    train_stages(VPMMethod, vcfg, data, tmp_path / "vpm", device="cpu", progress=False, dataset_spec="synthpeds:tiny")
    s1 = STNReIDMethod.stage_recipe("smoke", 1, "Ep1").replace(**tiny)
    train_stages(STNReIDMethod, s1, data, tmp_path / "s1", device="cpu", progress=False, dataset_spec="synthpeds:tiny")
    s2 = STNReIDMethod.stage_recipe("smoke", 2, "Ep5", stn_weights=str(tmp_path / "s1"),
                                    reid_weights=str(tmp_path / "s1")).replace(**tiny)
    train_stages(STNReIDMethod, s2, data, tmp_path / "s2", device="cpu", progress=False, dataset_spec="synthpeds:tiny")
    shutil.move(tmp_path / "s1", tmp_path / "elsewhere")
    shutil.rmtree(tmp_path / "vpm" / "stage1")
    for run in ("vpm", "s2"):
        assert main(["evaluate", "--run", str(tmp_path / run), "--protocol", "partial-query",
                     "--data", "synthpeds:partial-reid-like", "--device", "cpu"]) == 0
        doc = json.loads((tmp_path / run / "eval.json").read_text())
        assert doc["results"][0]["protocol"] == "partial-query"


# ----------------------------------------------------------------------------- the run store
def test_run_store_reuses_by_recipe_hash(tmp_path):
    data = TinyData()
    store = RunStore(tmp_path, device="cpu")
    cfg = TinyMethod.recipe("smoke")
    first = store.fit("tiny", TinyMethod, cfg, data, dataset_spec="tiny:mem")
    again = store.fit("tiny", TinyMethod, cfg, data, dataset_spec="tiny:mem")
    assert not first.reused and again.reused and again.run_dir == first.run_dir
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))
    other = store.fit("tiny", TinyMethod, cfg.replace(lr=5e-3), data, dataset_spec="tiny:mem")
    assert other.run_dir != first.run_dir and not other.reused
    # runtime-only fields do not change the key; the seed does
    assert store.path("tiny", TinyMethod, cfg.replace(num_workers=3), "tiny:mem", 0) == first.run_dir
    assert store.path("tiny", TinyMethod, cfg, "tiny:mem", 1) != first.run_dir
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({first.run_dir.name, other.run_dir.name})


def test_clear_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="does not look like a reidlib run folder"):
        RunDir(tmp_path).clear()
    assert (tmp_path / "notes.txt").exists()
