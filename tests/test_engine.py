"""The training engine: schedules, run directory, checkpoints, exact resume, determinism."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from reidlib.data.base import Record, ReIDDataset
from reidlib.engine.checkpoint import load_checkpoint
from reidlib.methods.base import Method, Settings, TrainConfig, parse_overrides
from reidlib.engine.schedule import EpochSchedule, build_optimizer, build_scheduler, warmup_factor_at
from reidlib.data.sampler import item_seed
from reidlib.engine.trainer import Trainer
from reidlib.precision import amp_dtype_for
from reidlib.losses import CrossEntropyLabelSmooth, TripletLoss
from reidlib.models.base import Features, ReIDModel


# ----------------------------------------------------------------------------- fixtures
class TinyData(ReIDDataset):
    """In-memory random images: n_ids identities x per_id images (train), plus a small test split."""

    name = "tiny"

    def __init__(self, n_ids=6, per_id=4, size=(16, 8), seed=0):
        rng = np.random.default_rng(seed)
        self.images = {}
        train = []
        for pid in range(n_ids):
            for j in range(per_id):
                path = f"mem://{pid}/{j}"
                self.images[path] = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                train.append(Record(path, 100 + pid, j % 2))
        super().__init__(train, train[0::per_id], [r for i, r in enumerate(train) if i % per_id])

    def read_image(self, path):
        return self.images[path]


class TinyTrainSet(torch.utils.data.Dataset):
    """Images as tensors, with a random flip and random noise (exercises the seeded RNGs)."""

    def __init__(self, dataset, pid2label):
        self.ds, self.recs = dataset, dataset.train
        self.pids = [pid2label[r.pid] for r in self.recs]

    def __len__(self):
        return len(self.recs)

    def __getitem__(self, i):
        r = self.recs[i]
        x = torch.from_numpy(self.ds.read_image(r.path)).permute(2, 0, 1).float() / 255
        if torch.rand(()) < 0.5:
            x = x.flip(2)
        x = x + 0.05 * torch.randn_like(x) + 0.01 * np.random.rand() + 0.01 * __import__("random").random()
        return {"image": x, "label": self.pids[i], "index": i}


class TinyNet(ReIDModel):
    def __init__(self, num_classes):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(0.2)
        self.classifier = nn.Linear(8, num_classes)

    def forward(self, x):
        f = self.backbone(x)
        return {"logits": self.classifier(self.drop(f)), "feat": f} if self.training else f

    def extract(self, x):
        return Features(global_feat=self.backbone(x))


@dataclass(frozen=True)
class TinySettings(Settings):
    triplet: bool = False
    note: str = ""


class TinyMethod(Method):
    name = "tiny"
    Settings = TinySettings

    @classmethod
    def recipe(cls, profile):
        return TrainConfig(image_size=(16, 8), backbone="none", pretrained=False, epochs=2, batch_p=3, batch_k=2,
                           optimizer="adam", lr=1e-2, backbone_lr_mult=0.5, milestones=(1,), warmup_epochs=1,
                           warmup_factor=0.1, amp=True, num_workers=0, checkpoint_every=1)

    def __init__(self, cfg, num_classes):
        super().__init__(cfg, num_classes)
        self.ce, self.tri = CrossEntropyLabelSmooth(num_classes), TripletLoss(0.3)

    def build_model(self, init=True):
        return TinyNet(self.num_classes)

    def train_dataset(self, dataset, pid2label):
        return TinyTrainSet(dataset, pid2label)

    def loss(self, model, batch, epoch):
        out = model(batch["image"])
        ce, tri = self.ce(out["logits"], batch["label"]), self.tri(out["feat"], batch["label"])
        return ce + tri, {"ce": ce.detach(), "triplet": float(tri.detach())}


def make_trainer(tmp_path, name="run", data=None, cfg=None, **kw):
    data = data or TinyData()
    cfg = cfg or TinyMethod.recipe("smoke")
    return Trainer(TinyMethod(cfg, data.num_train_pids), data, tmp_path / name, device="cpu", progress=False, **kw)


def state(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


# ----------------------------------------------------------------------------- schedules
def test_warmup_step_schedule_hand_values():
    s = EpochSchedule("step", epochs=120, milestones=(40, 70), gamma=0.1, warmup_epochs=10, warmup_factor=0.01)
    assert s(0) == pytest.approx(0.01)
    assert s(5) == pytest.approx(0.01 * 0.5 + 0.5)
    assert s(9) == pytest.approx(0.01 * 0.1 + 0.9)
    assert s(10) == 1.0 and s(39) == 1.0
    assert s(40) == pytest.approx(0.1) and s(69) == pytest.approx(0.1)
    assert s(70) == pytest.approx(0.01) and s(119) == pytest.approx(0.01)
    assert warmup_factor_at(3, 0, 0.01) == 1.0


def test_cosine_schedule_endpoints():
    s = EpochSchedule("cosine", epochs=12, warmup_epochs=2, warmup_factor=0.5)
    assert s(0) == pytest.approx(0.5)
    assert s(2) == pytest.approx(1.0)
    assert s(7) == pytest.approx(0.5)
    assert s(12) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="unknown scheduler"):
        EpochSchedule("poly")
    with pytest.raises(ValueError, match="increasing"):
        EpochSchedule("step", milestones=(70, 40))


def test_per_group_learning_rates_follow_lr_mult_and_schedule():
    cfg = TrainConfig(lr=0.1, optimizer="sgd", backbone_lr_mult=0.1, milestones=(2,), warmup_epochs=2,
                      warmup_factor=0.5, epochs=4)
    model = TinyNet(3)
    method = TinyMethod(cfg, 3)
    opt = build_optimizer(method.param_groups(model), cfg)
    sched = build_scheduler(opt, cfg)
    seen = []
    for _ in range(4):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    expected = [[0.01 * 0.5, 0.1 * 0.5], [0.01 * 0.75, 0.1 * 0.75], [0.001, 0.01], [0.001, 0.01]]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    # backbone params in group 0, everything else in group 1
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in model.backbone.parameters()}
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(method.param_groups(model), cfg.replace(optimizer="lamb"))


def test_amp_dtype_is_fp32_on_cpu():
    assert amp_dtype_for(torch.device("cpu"), True) is None
    assert amp_dtype_for(torch.device("cpu"), False) is None


def test_item_seed_depends_on_every_component():
    base = item_seed(0, 0, 0, 0)
    assert base == item_seed(0, 0, 0, 0)
    assert len({base, item_seed(1, 0, 0, 0), item_seed(0, 1, 0, 0), item_seed(0, 0, 1, 0), item_seed(0, 0, 0, 1)}) == 5


def test_overrides_parse_fields_and_extra():
    cfg = TinyMethod.recipe("smoke")
    c2 = parse_overrides(["epochs=5", "lr=3e-4", "image_size=64,32", "milestones=[3]", "triplet=true", "note=abc"], cfg, TinyMethod)
    assert c2.epochs == 5 and c2.lr == 3e-4 and c2.image_size == (64, 32) and c2.milestones == (3,)
    assert c2.extra["triplet"] is True and c2.extra["note"] == "abc"
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["epochs"], cfg, TinyMethod)


# ----------------------------------------------------------------------------- runs
def test_fit_writes_run_directory(tmp_path):
    tr = make_trainer(tmp_path, profile="smoke", dataset_spec="tiny:mem")
    res = tr.fit()
    run = tmp_path / "run"
    assert res["completed"] and res["epochs_done"] == 2
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "tiny" and cfg["dataset"] == "tiny:mem" and cfg["profile"] == "smoke"
    assert cfg["train_config"]["epochs"] == 2 and cfg["num_classes"] == 6
    assert {"hardware", "reidlib_version", "git_commit", "seed"} <= set(cfg)
    lines = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    epochs = [l for l in lines if l["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    for e in epochs:
        assert math.isfinite(e["loss"]) and e["loss"] == pytest.approx(e["ce"] + e["triplet"], rel=1e-5)
        assert e["images"] == e["iters"] * 6 and e["images_per_s"] > 0
    # warm-up from 0.1x, then the full rate; backbone at half the rate
    assert epochs[0]["lr"] == pytest.approx([5e-4, 1e-3]) and epochs[1]["lr"] == pytest.approx([5e-4, 1e-3])
    ck = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ck["epoch"] == 1 and ck["sampler_epoch"] == 2 and set(ck["rng"]) >= {"python", "numpy", "torch"}
    torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # plain weights-only load works
    from safetensors.torch import load_file

    w = load_file(str(run / "model.safetensors"))
    for k, v in tr.model.state_dict().items():
        assert torch.equal(w[k], v)
    assert json.loads((run / "metrics.json").read_text())["completed"] is True


def test_resume_equals_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path, "straight")
    straight.fit()
    part = make_trainer(tmp_path, "split")
    r1 = part.fit(max_epochs=1)
    assert not r1["completed"] and not (tmp_path / "split" / "model.safetensors").exists()
    resumed = make_trainer(tmp_path, "split", resume=True)
    r2 = resumed.fit()
    assert r2["completed"]
    a, b = state(straight), state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the epoch logs agree too
    la = [json.loads(l) for l in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(l) for l in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    ea = [e["loss"] for e in la if e["event"] == "epoch"]
    eb = [e["loss"] for e in lb if e["event"] == "epoch"]
    assert ea == eb
    # a finished run with resume=True returns its stored metrics without training
    again_tr = make_trainer(tmp_path, "split", resume=True)
    again = again_tr.fit()
    assert again["completed"] and again["epochs_done"] == 2
    assert all(torch.equal(v, a[k]) for k, v in again_tr.model.state_dict().items())


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = make_trainer(tmp_path, "a", seed=3)
    a.fit()
    b = make_trainer(tmp_path, "b", seed=3)
    b.fit()
    c = make_trainer(tmp_path, "c", seed=4)
    c.fit()
    sa, sb, sc = state(a), state(b), state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_existing_run_needs_resume_and_same_recipe(tmp_path):
    make_trainer(tmp_path, "r").fit(max_epochs=1)
    with pytest.raises(FileExistsError, match="resume"):
        make_trainer(tmp_path, "r")._prepare_dir()
    cfg = TinyMethod.recipe("smoke").replace(lr=0.5)
    with pytest.raises(ValueError, match="lr"):
        make_trainer(tmp_path, "r", cfg=cfg, resume=True).fit()
    # loader/checkpoint settings may change on resume
    make_trainer(tmp_path, "r", cfg=TinyMethod.recipe("smoke").replace(checkpoint_every=5), resume=True).fit()


def test_bad_inputs_fail_clearly(tmp_path):
    data = TinyData(n_ids=2)
    with pytest.raises(ValueError, match="at least P=3"):
        make_trainer(tmp_path, "few", data=data).fit()
    with pytest.raises(ValueError, match="classes"):
        Trainer(TinyMethod(TinyMethod.recipe("smoke"), 99), TinyData(), tmp_path / "x", device="cpu")
    with pytest.raises(ValueError, match="unknown sampler"):
        make_trainer(tmp_path, "s", cfg=TinyMethod.recipe("smoke").replace(sampler="weird")).fit()


def test_random_sampler_and_max_iters(tmp_path):
    cfg = TinyMethod.recipe("smoke").replace(sampler="random", max_iters_per_epoch=2, epochs=1)
    tr = make_trainer(tmp_path, "rnd", cfg=cfg)
    # the triplet needs two identities per batch; random batches of 6 from 6 ids almost surely have them
    tr.fit()
    ep = [json.loads(l) for l in (tmp_path / "rnd" / "log.jsonl").read_text().splitlines() if '"epoch"' in l]
    assert ep[0]["iters"] == 2


# ----------------------------------------------------------------------------- real methods, CLI
def test_cli_train_and_evaluate_baseline_on_synthpeds(tmp_path):
    """The real path: SynthPeds smoke, ImageDataset + train transforms, PK sampler, evaluate."""
    from reidlib.cli import main

    out = tmp_path / "b"
    args = ["train", "--method", "baseline", "--data", "synthpeds:smoke", "--out", str(out), "--device", "cpu",
            "--no-progress", "--set", "epochs=2", "max_iters_per_epoch=1", "batch_p=4", "image_size=64,32"]
    assert main(args) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"] == "synthpeds:smoke" and cfg["train_config"]["image_size"] == [64, 32]
    assert cfg["num_classes"] == 100
    assert main(["evaluate", "--run", str(out), "--protocol", "market", "--device", "cpu"]) == 0
    doc = json.loads((out / "eval.json").read_text())
    r = doc["results"][0]
    assert r["protocol"] == "market" and r["method"] == "baseline" and 0.0 <= r["metrics"]["mAP"] <= 1.0
    # resuming a finished run trains nothing and returns at once
    assert main(args + ["--resume"]) == 0
    with pytest.raises(FileExistsError, match="resume"):
        main(args)


def test_load_run_rebuilds_the_trained_model(tmp_path):
    from reidlib.engine.runs import load_run

    with pytest.raises(FileNotFoundError, match="config.json"):
        load_run(tmp_path)


def test_pcb_trains_and_evaluates_through_the_engine(tmp_path):
    """PCB on tiny in-memory images through the real ImageDataset + transforms, then evaluated."""
    from reidlib.engine import load_run, train
    from reidlib.eval import evaluate

    data = TinyData(n_ids=4, per_id=4, size=(96, 32))
    res = train("pcb", "tiny:mem", "smoke", tmp_path / "p", device="cpu", progress=False, dataset=data,
                overrides={"epochs": 1, "batch_p": 2, "batch_k": 4, "image_size": (96, 32), "reduced_dim": 16})
    assert res["completed"] and math.isfinite(res["last_epoch"]["loss"]) and res["last_epoch"]["iters"] == 2
    model, method, rc = load_run(tmp_path / "p")
    assert rc["dataset"] == "tiny:mem" and method.name == "pcb" and not model.training
    results = evaluate(model, data, "market", device="cpu")
    assert "PCB" in results[0].description


def test_relabelled_dataset_adds_labels():
    from reidlib.data.loader import RelabelledDataset

    class Base(torch.utils.data.Dataset):
        pids = [7, 3, 7]

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"pid": self.pids[i], "index": i}

    ds = RelabelledDataset(Base(), {3: 0, 7: 1})
    assert ds.pids == [1, 0, 1] and ds[1] == {"pid": 3, "index": 1, "label": 0} and len(ds) == 3
    with pytest.raises(KeyError, match="pid 7"):
        RelabelledDataset(Base(), {3: 0})
