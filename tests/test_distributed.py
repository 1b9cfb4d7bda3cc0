"""DDP on the CPU (gloo, 2 processes): gradients equal a single process on the union batch,
and the Trainer runs under torchrun-style environment variables."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from reidlib.engine.distributed import DistInfo, init_distributed, wrap_ddp
from reidlib.data.sampler import build_sampler

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoBNNet(nn.Module):
    """No batch norm: per-sample computations, so the union-batch mean decomposes over ranks."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.classifier(self.backbone(x))


def union_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 8, 4, generator=g), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def _env(rank, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def _grad_worker(rank, port, out_dir):
    _env(rank, port)
    info = init_distributed("cpu")
    assert info == DistInfo(rank, WORLD, rank)
    torch.manual_seed(0)
    model = wrap_ddp(NoBNNet(), torch.device("cpu"), info)
    x, y = union_batch()
    shard = slice(rank * 4, rank * 4 + 4)
    F.cross_entropy(model(x[shard]), y[shard]).backward()
    grads = {n: p.grad.clone() for n, p in model.module.named_parameters()}
    torch.save(grads, os.path.join(out_dir, f"grads{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_ddp_gradients_equal_single_process_on_union_batch(tmp_path):
    mp.spawn(_grad_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    torch.manual_seed(0)
    ref = NoBNNet()
    x, y = union_batch()
    F.cross_entropy(ref(x), y).backward()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"grads{rank}.pt", weights_only=True)
        for n, p in ref.named_parameters():
            assert torch.allclose(got[n], p.grad, atol=1e-6, rtol=1e-5), (rank, n)


def _trainer_worker(rank, port, out_dir):
    _env(rank, port)
    import test_engine as te  # the tiny dataset and method of the engine tests

    data = te.TinyData(n_ids=8, per_id=4)
    cfg = te.TinyMethod.recipe("smoke").replace(batch_p=4, batch_k=2, epochs=2)
    trainer = te.Trainer(te.TinyMethod(cfg, data.num_train_pids), data, os.path.join(out_dir, "run"),
                         device="cpu", progress=False)
    assert trainer.info.enabled and trainer.info.world_size == WORLD
    trainer.fit()
    torch.save({k: v.clone() for k, v in trainer.model.state_dict().items()}, os.path.join(out_dir, f"w{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_trainer_under_two_processes(tmp_path):
    mp.spawn(_trainer_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    w0 = torch.load(tmp_path / "w0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "w1.pt", weights_only=True)
    # DDP keeps the replicas identical (parameters; BN running stats are per process)
    for k in w0:
        if "running" not in k and "num_batches" not in k:
            assert torch.allclose(w0[k], w1[k], atol=1e-6), k
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    epochs = [e for e in log if e["event"] == "epoch"]
    assert len(epochs) == 2 and all(e["images"] == e["iters"] * 8 for e in epochs)  # global batch 4x2
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["world_size"] == WORLD
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_distributed_pk_sampler_splits_the_global_batch():
    pids = [i // 4 for i in range(32)]  # 8 ids x 4
    from reidlib.methods.base import TrainConfig

    cfg = TrainConfig(batch_p=4, batch_k=2)
    shards = [list(build_sampler(pids, cfg.sampler, cfg.batch_p, cfg.batch_k, 0, WORLD, r)) for r in range(WORLD)]
    for s in shards:
        assert len(s) % 4 == 0
        for b in range(0, len(s), 4):  # per-rank batch: 2 identities x 2 images
            batch = [pids[i] for i in s[b:b + 4]]
            assert batch[0] == batch[1] and batch[2] == batch[3] and batch[0] != batch[2]
    assert not set(shards[0]) & set(shards[1])
    with pytest.raises(ValueError, match="multiple of 2"):
        build_sampler(pids, "pk", 3, 2, 0, WORLD, 0)
