"""Backbones (last stride, offline-safe weights loading), the strong baseline and PCB."""

from __future__ import annotations

import socket
import time

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18

from reidlib.methods.base import TrainConfig
from reidlib.methods.registry import get_method
from reidlib.models import backbones as B
from reidlib.methods.baseline import BaselineMethod
from reidlib.models.baseline import Baseline
from reidlib.models.base import Features
from reidlib.losses.pcb import pcb_id_loss
from reidlib.methods.pcb import PCBMethod
from reidlib.models.pcb import PCB, stripe_pool


# ----------------------------------------------------------------------------- backbones
@pytest.mark.parametrize("last_stride,hw", [(1, (8, 4)), (2, (4, 2))])
def test_resnet10_last_stride(last_stride, hw):
    bb = B.build_backbone("resnet10", pretrained=False, last_stride=last_stride)
    assert bb.out_channels == 512
    assert bb(torch.zeros(1, 3, 128, 64)).shape == (1, 512, *hw)


def test_resnet50_shape_with_last_stride_1():
    bb = B.build_backbone("resnet50", pretrained=False, last_stride=1).eval()
    with torch.no_grad():
        assert bb(torch.zeros(1, 3, 256, 128)).shape == (1, 2048, 16, 8)


def test_unknown_backbone_and_bad_stride():
    with pytest.raises(ValueError, match="resnet50"):
        B.build_backbone("vgg16")
    with pytest.raises(ValueError, match="last_stride"):
        B.build_backbone("resnet10", pretrained=False, last_stride=3)


def test_offline_without_cache_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    probed = []
    monkeypatch.setattr(B, "network_reachable", lambda url, timeout=3.0: probed.append(url) or False)
    t0 = time.perf_counter()
    with pytest.raises(B.WeightsUnavailableError) as e:
        B.build_backbone("resnet18", pretrained=True)
    assert time.perf_counter() - t0 < 10  # fails at once, does not hang on a download
    msg = str(e.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "pretrained=False" in msg
    assert probed == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]
    # from scratch needs neither cache nor network
    B.build_backbone("resnet18", pretrained=False)


def test_weights_load_from_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(url, timeout=3.0):
        raise AssertionError("the cache must be checked before probing the network")

    monkeypatch.setattr(B, "network_reachable", no_network)
    torch.manual_seed(5)
    ref = resnet18().state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(ref, cache / "resnet18-f37072fd.pth")
    bb = B.build_backbone("resnet18", pretrained=True, last_stride=1)
    for k, v in bb.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_weights_from_explicit_files(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(6)
    ref = resnet18().state_dict()
    torch.save({"state_dict": {"module." + k: v for k, v in ref.items()}}, tmp_path / "w.pth")
    save_file({k: v.contiguous() for k, v in ref.items()}, str(tmp_path / "w.safetensors"))
    for f in ("w.pth", "w.safetensors"):
        bb = B.build_backbone("resnet18", weights=tmp_path / f)
        assert all(torch.equal(v, ref[k]) for k, v in bb.state_dict().items())
    with pytest.raises(ValueError, match="do not fit backbone resnet50"):
        B.build_backbone("resnet50", weights=tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        B.build_backbone("resnet18", weights=tmp_path / "nope.pth")


def test_network_probe_is_false_for_a_closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    assert B.network_reachable(f"http://127.0.0.1:{port}/x.pth", timeout=1.0) is False


# ----------------------------------------------------------------------------- baseline
def small_baseline(n=5, **kw):
    torch.manual_seed(0)
    return Baseline(n, backbone="resnet10", pretrained=False, **kw)


def test_baseline_forward_and_bnneck():
    m = small_baseline()
    x = torch.randn(4, 3, 64, 32)
    out = m(x)
    assert out["logits"].shape == (4, 5) and out["feat"].shape == (4, 512)
    assert m.classifier.bias is None
    assert m.bottleneck.bias.requires_grad is False and torch.all(m.bottleneck.bias == 0)
    # the classifier sees the post-BN feature; the triplet the pre-BN one
    assert torch.allclose(out["logits"], m.classifier(m.bottleneck(out["feat"])), atol=1e-6)
    # one Adam step leaves the frozen bias at 0
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=0.1)
    out["logits"].sum().backward()
    opt.step()
    assert torch.all(m.bottleneck.bias == 0)


def test_baseline_extract_is_post_bn_and_matcher():
    from reidlib.metrics.matchers import GlobalMatcher

    m = small_baseline().eval()
    x = torch.randn(3, 3, 64, 32)
    f = m.extract(x)
    assert isinstance(f, Features) and f.global_feat.shape == (3, 512)
    with torch.no_grad():
        assert torch.allclose(f.global_feat, m.bottleneck(m.pooled(x)))
    mt = m.matcher()
    assert isinstance(mt, GlobalMatcher) and mt.normalize and mt.metric == "euclidean"
    d = mt(f, f)
    assert d.shape == (3, 3) and torch.allclose(d.diagonal(), torch.zeros(3), atol=1e-5)
    with pytest.raises(ValueError, match="neck_feat"):
        small_baseline(neck_feat="middle")


def test_baseline_recipes():
    full = BaselineMethod.recipe("full")
    assert (full.image_size, full.backbone, full.pretrained, full.last_stride) == ((256, 128), "resnet50", True, 1)
    assert (full.batch_p, full.batch_k, full.optimizer, full.lr, full.weight_decay) == (16, 4, "adam", 3.5e-4, 5e-4)
    assert (full.epochs, full.milestones, full.gamma, full.warmup_epochs, full.warmup_factor) == (120, (40, 70), 0.1, 10, 0.01)
    assert full.random_erasing == 0.5 and full.extra["label_smooth"] == 0.1 and full.extra["margin"] == 0.3
    smoke = BaselineMethod.recipe("smoke")
    assert smoke.image_size == (128, 64) and smoke.pretrained is False
    with pytest.raises(ValueError, match="smoke"):
        BaselineMethod.recipe("huge")
    assert get_method("baseline") is BaselineMethod and get_method("pcb") is PCBMethod


def test_baseline_method_loss_is_ce_plus_triplet():
    cfg = BaselineMethod.recipe("smoke")
    method = BaselineMethod(cfg, 4)
    torch.manual_seed(0)
    model = method.build_model()
    batch = {"image": torch.randn(8, 3, 64, 32), "label": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])}
    torch.manual_seed(1)
    total, logs = method.loss(model, batch, 0)
    assert total.requires_grad and float(total.detach()) == pytest.approx(float(logs["ce"] + logs["triplet"]), rel=1e-6)
    # the parameter groups split backbone and new layers (BNNeck bias excluded: frozen)
    groups = method.param_groups(model)
    n_new = sum(p.numel() for p in groups[1]["params"])
    dim = model.backbone.out_channels  # 128 for the smoke recipe's resnet10s
    assert dim == 128
    assert n_new == dim * 4 + dim  # classifier + BN weight


# ----------------------------------------------------------------------------- PCB
def test_stripe_pool_matches_loop():
    x = torch.randn(2, 5, 12, 4)
    got = stripe_pool(x, 6)
    ref = torch.stack([x[:, :, 2 * i:2 * i + 2].mean(dim=(2, 3)) for i in range(6)], dim=1)
    assert torch.allclose(got, ref, atol=1e-6)
    with pytest.raises(ValueError, match="parts=6"):
        stripe_pool(torch.randn(1, 5, 4, 2), 6)


def test_pcb_shapes_features_and_loss():
    torch.manual_seed(0)
    m = PCB(7, parts=6, reduced_dim=32, backbone="resnet10", pretrained=False)
    x = torch.randn(4, 3, 96, 32)  # 6x2 map with last stride 1
    out = m(x)
    assert out["logits"].shape == (4, 6, 7) and out["parts"].shape == (4, 6, 512) and out["feat"].shape == (4, 6 * 512)
    m.eval()
    f = m.extract(x)
    assert f.parts.shape == (4, 6, 512) and torch.allclose(f.parts.norm(dim=2), torch.ones(4, 6), atol=1e-5)
    assert torch.equal(f.global_feat, f.parts.flatten(1))
    from reidlib.metrics.matchers import PCBMatcher

    assert isinstance(m.matcher(), PCBMatcher) and m.matcher()(f, f).shape == (4, 4)
    # each stripe's classifier is its own linear layer on the reduced feature
    m.train()
    m.dropout.p = 0.0
    with torch.no_grad():
        o = m(x)
        g = o["parts"]
        h = m.reduce(g.transpose(1, 2).unsqueeze(3)).squeeze(3).transpose(1, 2)
        for i in range(6):
            ref = F.linear(h[:, i], m.classifier_weight[i], m.classifier_bias[i])
            assert torch.allclose(o["logits"][:, i], ref, atol=1e-5)


def test_pcb_id_loss_is_sum_of_part_losses():
    logits = torch.randn(5, 6, 9)
    y = torch.randint(0, 9, (5,))
    ref = sum(F.cross_entropy(logits[:, i], y) for i in range(6))
    assert float(pcb_id_loss(logits, y)) == pytest.approx(float(ref), rel=1e-6)


def test_pcb_recipes_and_triplet_option():
    full = PCBMethod.recipe("full")
    assert full.image_size == (384, 128) and full.optimizer == "sgd" and full.lr == 0.1 and full.backbone_lr_mult == 0.1
    assert full.epochs == 60 and full.milestones == (40,) and full.extra["parts"] == 6 and full.extra["reduced_dim"] == 256
    with pytest.raises(ValueError, match="sampler=pk"):
        PCBMethod(full.replace(extra={**full.extra, "triplet": True}), 10)
    cfg = PCBMethod.recipe("smoke")
    cfg = cfg.replace(sampler="pk", extra={**cfg.extra, "triplet": True, "reduced_dim": 16})
    method = PCBMethod(cfg, 4)
    torch.manual_seed(0)
    model = method.build_model()
    batch = {"image": torch.randn(8, 3, 96, 32), "label": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])}
    total, logs = method.loss(model, batch, 0)
    assert float(total.detach()) == pytest.approx(float(logs["ce"] + logs["triplet"]), rel=1e-5)


def test_narrow_resnet_shapes_and_errors():
    import pytest
    import torch

    from reidlib.models.backbones import build_backbone, narrow_resnet

    bb = build_backbone("resnet10s", pretrained=False, last_stride=1)
    assert bb.out_channels == 128
    assert bb(torch.zeros(2, 3, 128, 64)).shape == (2, 128, 8, 4)
    assert build_backbone("resnet10s", pretrained=False, last_stride=2)(torch.zeros(1, 3, 128, 64)).shape == (1, 128, 4, 2)
    net = narrow_resnet((8, 16, 32, 64), (2, 1, 1, 1))
    assert len(net.layer1) == 2 and net.layer4[0].conv2.out_channels == 64
    with pytest.raises(ValueError, match="4 positive widths"):
        narrow_resnet((8, 16, 32), (1, 1, 1))
