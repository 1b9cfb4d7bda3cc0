"""STNReID: localisation net (Table 1), the Eq. 1-2 sampler, Eq. 5-6, pairwise matching, two stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.losses.stnreid import stn_loss, stnreid_loss
from reidlib.models.stnreid import (
    LocalizationNet,
    affine_sample,
    box_iou_pairs,
    theta_to_box,
)
from slow_reference import check_shortlist_contract


# ---------------------------------------------------------------------------------
# localisation net
# ---------------------------------------------------------------------------------
def test_localization_net_table1_shapes_256x128():
    net = LocalizationNet((256, 128))
    x = torch.randn(2, 6, 256, 128)
    shapes = []
    for layer in net.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            shapes.append(tuple(x.shape[1:]))
    # Table 1: Conv1 128x64x16, MaxPool 64x32x16, Conv2 32x16x32, MaxPool 16x8x32 (C, H, W here)
    assert shapes == [(16, 128, 64), (16, 64, 32), (32, 32, 16), (32, 16, 8)]
    assert net.flat_dim == 4096
    fcs = [m for m in net.regressor if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in fcs] == [(4096, 512), (512, 128), (128, 32), (32, 6)]
    # ReLU after FC1-3, none after FC4
    assert isinstance(net.regressor[-1], nn.Linear)
    assert sum(isinstance(m, nn.ReLU) for m in net.regressor) == 3
    theta = net(torch.randn(2, 3, 256, 128), torch.randn(2, 3, 256, 128))
    assert theta.shape == (2, 2, 3)


def test_localization_net_parameter_count_256x128():
    net = LocalizationNet((256, 128))
    conv1 = 7 * 7 * 6 * 16  # no bias: BatchNorm follows
    bn1 = 2 * 16
    conv2 = 3 * 3 * 16 * 32
    bn2 = 2 * 32
    fc1 = 4096 * 512 + 512
    fc2 = 512 * 128 + 128
    fc3 = 128 * 32 + 32
    fc4 = 32 * 6 + 6
    expected = conv1 + bn1 + conv2 + bn2 + fc1 + fc2 + fc3 + fc4
    assert expected == 2_177_062
    assert sum(p.numel() for p in net.parameters()) == expected


def test_localization_net_scales_to_smoke_size():
    net = LocalizationNet((128, 64))
    assert net.flat_dim == 32 * 8 * 4
    assert net(torch.randn(3, 3, 128, 64), torch.randn(3, 3, 128, 64)).shape == (3, 2, 3)


def test_localization_net_identity_init():
    torch.manual_seed(0)
    net = LocalizationNet((64, 32))
    theta = net(torch.randn(4, 3, 64, 32), torch.rand(4, 3, 64, 32))
    ident = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(4, 2, 3)
    assert torch.equal(theta, ident)
    assert torch.count_nonzero(net.regressor[-1].weight) == 0


def test_localization_net_bad_input():
    net = LocalizationNet((64, 32))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 3, 64, 32\)"):
        net(torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="same shape"):
        net(torch.randn(1, 3, 64, 32), torch.randn(2, 3, 64, 32))


# ---------------------------------------------------------------------------------
# Eq. 1-2 sampler and boxes
# ---------------------------------------------------------------------------------
def test_identity_theta_warp_reproduces_input():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 16, 8)
    theta = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3)
    out = affine_sample(img, theta)
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


def test_warp_with_crop_theta_reproduces_crop():
    """partial_crop's theta (crop -> holistic) sampled at native size gives back the crop."""
    from reidlib.data.partial import partial_crop

    rng = np.random.default_rng(0)
    img = torch.rand(3, 32, 16)
    pc = partial_crop(img, spec="stnreid", rng=rng, crop_box=(0, 8, 16, 32))
    theta = torch.from_numpy(pc.theta)[None]
    out = affine_sample(img[None], theta, size=pc.image.shape[-2:])
    torch.testing.assert_close(out[0], pc.image, atol=1e-5, rtol=0)
    box = theta_to_box(theta, (32, 16))[0]
    torch.testing.assert_close(box, torch.tensor([0.0, 8.0, 16.0, 32.0]))


def test_theta_to_box_and_iou():
    theta = torch.tensor([[[0.5, 0.0, -0.5], [0.0, 1.0, 0.0]]])  # left half
    box = theta_to_box(theta, (20, 10))
    torch.testing.assert_close(box, torch.tensor([[0.0, 0.0, 5.0, 20.0]]))
    iou = box_iou_pairs(box, torch.tensor([[0.0, 0.0, 10.0, 20.0]]))
    torch.testing.assert_close(iou, torch.tensor([0.5]))
    assert box_iou_pairs(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[2.0, 2, 3, 3]])).item() == 0.0


# ---------------------------------------------------------------------------------
# Eq. 5-6
# ---------------------------------------------------------------------------------
def test_stn_loss_is_squared_l2_mean():
    fp = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    fa = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # (1 + 4 + 9 + 16) / 2
    assert stn_loss(fp, fa).item() == pytest.approx(15.0)
    with pytest.raises(ValueError, match="same shape"):
        stn_loss(fp, fa[:, :1])


def test_stnreid_loss_equals_hand_written_combination():
    torch.manual_seed(0)
    n, c, d = 6, 3, 5
    out = {f"{a}_{k}": torch.randn(n, c if a == "logits" else d) for k in "hpa" for a in ("logits", "feat")}
    y = torch.tensor([0, 0, 1, 1, 2, 2])

    def tri(f, labels):  # a simple margin ranking stand-in with a tuple return
        dist = torch.cdist(f, f)
        same = labels[:, None] == labels[None]
        ap = (dist * same).amax(1)
        an = torch.where(same, torch.full_like(dist, 1e9), dist).amin(1)
        return F.relu(ap - an + 0.3).mean(), dist

    total, terms = stnreid_loss(out, y, F.cross_entropy, tri)
    ref = 0.0
    for k in "hpa":
        ref = ref + F.cross_entropy(out[f"logits_{k}"], y) + tri(out[f"feat_{k}"], y)[0]
    ref = ref + ((out["feat_p"] - out["feat_a"]) ** 2).sum(1).mean()
    torch.testing.assert_close(total, ref)
    assert terms["stn"] == pytest.approx(float(((out["feat_p"] - out["feat_a"]) ** 2).sum(1).mean()))
    # ID only (Table 2's Ep1)
    total_id, terms_id = stnreid_loss(out, y, F.cross_entropy)
    ref_id = sum(F.cross_entropy(out[f"logits_{k}"], y) for k in "hpa") + ((out["feat_p"] - out["feat_a"]) ** 2).sum(1).mean()
    torch.testing.assert_close(total_id, ref_id)
    assert "tri_h" not in terms_id
    with pytest.raises(KeyError, match="feat_a"):
        stnreid_loss({k: v for k, v in out.items() if k != "feat_a"}, y, F.cross_entropy)


# ---------------------------------------------------------------------------------
# the model, pairwise matching
# ---------------------------------------------------------------------------------
SIZE = (32, 16)


def _tiny_model(seed: int = 0, **kw):
    from reidlib.models.baseline import Baseline
    from reidlib.models.stnreid import STNReID

    torch.manual_seed(seed)
    reid = Baseline(5, backbone="resnet10", pretrained=False)
    model = STNReID(reid, image_size=SIZE, **kw)
    with torch.no_grad():  # a non-identity STN, so that the warp matters
        model.stn.regressor[-1].weight.normal_(0, 0.05)
        model.stn.regressor[-1].bias.copy_(torch.tensor([0.7, 0.05, 0.1, -0.05, 0.6, -0.2]))
    return model.eval()


def _reference_pairwise(model, q_imgs, g_imgs):
    """The unbatched loop: one (query, gallery) pair at a time."""
    out = torch.empty(len(q_imgs), len(g_imgs))
    with torch.no_grad():
        for i in range(len(q_imgs)):
            fq = F.normalize(model.reid.extract(q_imgs[i:i + 1]).global_feat, dim=1)
            for j in range(len(g_imgs)):
                theta = model.stn(q_imgs[i:i + 1], g_imgs[j:j + 1])
                grid = F.affine_grid(theta, [1, 3, *SIZE], align_corners=False)
                a = F.grid_sample(g_imgs[j:j + 1], grid, align_corners=False)
                fa = F.normalize(model.reid.extract(a).global_feat, dim=1)
                out[i, j] = ((fq - fa) ** 2).sum()
    return out


def test_training_forward_outputs():
    model = _tiny_model().train()
    h, p = torch.randn(4, 3, *SIZE), torch.randn(4, 3, *SIZE)
    out = model(h, p)
    for k in "hpa":
        assert out[f"logits_{k}"].shape == (4, 5)
        assert out[f"feat_{k}"].shape == (4, model.reid.feat_dim)
    assert out["theta"].shape == (4, 2, 3) and out["affined"].shape == h.shape
    torch.testing.assert_close(out["affined"], affine_sample(h, out["theta"]))
    with pytest.raises(TypeError, match="partial"):
        model(h)


def test_pairwise_matcher_equals_unbatched_reference():
    model = _tiny_model()
    torch.manual_seed(1)
    q_imgs, g_imgs = torch.rand(3, 3, *SIZE), torch.rand(5, 3, *SIZE)
    qf, gf = model.extract(q_imgs), model.extract(g_imgs)
    ref = _reference_pairwise(model, q_imgs, g_imgs)
    for bp in (1, 4, 64):  # batch boundaries inside and across query rows
        dist = model.matcher(shortlist=None, batch_pairs=bp)(qf, gf)
        torch.testing.assert_close(dist, ref, atol=1e-5, rtol=1e-4)
    # the STN changes the distances (the test would be vacuous otherwise)
    no_stn = model.global_matcher()(qf, gf)
    assert (no_stn - ref).abs().max() > 1e-3


def test_shortlist_with_k_equal_gallery_size_is_full_mode():
    model = _tiny_model()
    torch.manual_seed(2)
    qf, gf = model.extract(torch.rand(3, 3, *SIZE)), model.extract(torch.rand(6, 3, *SIZE))
    # k < G: the shortlisted entries are the full-mode distances of the cheap top-k, ranked first
    check_shortlist_contract(model, qf, gf, k=2)


def test_default_matcher_uses_model_shortlist():
    model = _tiny_model(shortlist=10, batch_pairs=32)
    m = model.matcher()
    assert m.shortlist == 10 and m.batch_pairs == 32
    assert model.matcher(shortlist=None).shortlist is None


# ---------------------------------------------------------------------------------
# two stages
# ---------------------------------------------------------------------------------
def _stage_cfg(tmp_path, stage: int, **extra):
    from reidlib.methods.stnreid import STNReIDMethod

    cfg = STNReIDMethod.stage_recipe("smoke", stage=stage, setting="Ep1", **extra)
    return cfg.replace(image_size=SIZE)


def test_stage1_trains_the_stn_and_stage2_freezes_it(tmp_path):
    from reidlib.engine.checkpoint import save_weights
    from reidlib.methods.stnreid import STNReIDMethod

    torch.manual_seed(0)
    m1 = STNReIDMethod(_stage_cfg(tmp_path, 1), num_classes=4)
    model1 = m1.build_model().train()
    batch = {"holistic": torch.randn(8, 3, *SIZE), "image": torch.randn(8, 3, *SIZE),
             "label": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
             "theta": torch.tensor([[1.0, 0, 0], [0, 0.5, -0.5]]).expand(8, 2, 3)}
    loss, logs = m1.loss(model1, batch, 0)
    loss.backward()
    assert model1.stn.regressor[-1].weight.grad.abs().sum() > 0  # stage 1: the STN learns
    assert {"id_h", "id_p", "id_a", "stn", "box_iou"} <= set(logs)
    assert logs["box_iou"] == pytest.approx(0.5)  # identity box vs the top half
    weights = save_weights(tmp_path / "s1" / "model.safetensors", model1)

    m2 = STNReIDMethod(_stage_cfg(tmp_path, 2, stn_weights=str(tmp_path / "s1"), triplet=True), num_classes=4)
    model2 = m2.build_model()
    model2.train()
    assert not model2.stn.training and model2.reid.training
    for a, b in zip(model2.stn.state_dict().values(), model1.stn.state_dict().values()):
        torch.testing.assert_close(a, b)
    before = {k: v.clone() for k, v in model2.stn.state_dict().items()}
    opt = torch.optim.Adam([{"params": g["params"]} for g in m2.param_groups(model2)], lr=1e-2)
    loss2, logs2 = m2.loss(model2, batch, 0)
    assert "tri_a" in logs2
    loss2.backward()
    assert all(p.grad is None and not p.requires_grad for p in model2.stn.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model2.reid.parameters())
    opt.step()
    for k, v in model2.stn.state_dict().items():  # weights and BatchNorm statistics unchanged
        torch.testing.assert_close(v, before[k])
    assert weights.is_file()


def test_method_errors_and_recipes(tmp_path):
    from reidlib.methods.stnreid import CONFRONTATION_SETTINGS, STNReIDMethod, load_stn

    with pytest.raises(ValueError, match="stn_weights"):
        STNReIDMethod(_stage_cfg(tmp_path, 2), num_classes=4)
    with pytest.raises(ValueError, match="Merge Mode trains nothing"):
        STNReIDMethod(_stage_cfg(tmp_path, 2, mode="merge", stn_weights="x"), num_classes=4)
    with pytest.raises(ValueError, match="Ep1"):
        STNReIDMethod.stage_recipe("smoke", setting="Ep9")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_stn(tmp_path, SIZE)
    full = STNReIDMethod.recipe("full")
    assert full.image_size == (256, 128) and full.batch_size == 32 and full.lr == 2e-4
    assert full.extra["stage"] == 1 and not full.pretrained and not full.extra["triplet"]
    from reidlib.methods.baseline import BaselineMethod

    for prof in ("smoke", "full"):  # the ReID module is the baseline's network
        b, r = BaselineMethod.recipe(prof), STNReIDMethod.recipe(prof)
        assert (r.backbone, r.image_size, r.last_stride) == (b.backbone, b.image_size, b.last_stride)
    ep5 = STNReIDMethod.stage_recipe("full", stage=2, setting="Ep5")
    assert ep5.pretrained and ep5.extra["triplet"] and ep5.extra["label_smooth"] == 0.1
    assert list(CONFRONTATION_SETTINGS) == ["Ep1", "Ep2", "Ep3", "Ep4", "Ep5"]


def test_train_dataset_items_on_tiny_synthpeds():
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.methods.stnreid import STNReIDMethod

    ds = SynthPeds("tiny", seed=0)
    cfg = STNReIDMethod.recipe("smoke")
    method = STNReIDMethod(cfg, ds.num_train_pids)
    tr = method.train_dataset(ds, ds.relabel_train())
    torch.manual_seed(0)
    item = tr[0]
    assert item["image"].shape == item["holistic"].shape == (3, *cfg.image_size)
    assert item["theta"].shape == (2, 3) and 0.38 <= item["ratio"] <= 0.82
    # "remove 20-60 % of the body": the crop lies in the person's box (from the part mask),
    # which is smaller than SynthPeds' frame, and the ratio is a fraction of that box
    assert cfg.extra["crop_within"] == "body"
    bx0, by0, bx1, by1 = item["body_box"].tolist()
    x0, y0, x1, y1 = item["box"].tolist()
    assert bx0 <= x0 < x1 <= bx1 and by0 <= y0 < y1 <= by1
    assert (bx1 - bx0) * (by1 - by0) < 0.9 * cfg.image_size[0] * cfg.image_size[1]
    assert item["ratio"] == pytest.approx((x1 - x0) * (y1 - y0) / ((bx1 - bx0) * (by1 - by0)))
    # the crop is the holistic region theta points at (up to resampling): warping the holistic
    # image with the true theta gives the crop, much closer than the holistic image itself
    warped = affine_sample(item["holistic"][None], item["theta"][None])[0]
    err = (warped - item["image"]).abs().mean()
    assert err < 0.25 * (item["holistic"] - item["image"]).abs().mean()


def _write_run(run_dir, method: str, cfg, num_classes: int, model) -> None:
    import json

    from reidlib.engine.checkpoint import save_weights

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"method": method, "num_classes": num_classes,
                                                     "train_config": cfg.to_dict()}))
    save_weights(run_dir / "model.safetensors", model)


def test_load_run_model_and_merge_mode(tmp_path):
    import shutil

    from reidlib.engine.runs import load_run
    from reidlib.methods.baseline import BaselineMethod
    from reidlib.methods.stnreid import STNReIDMethod
    from reidlib.models.stnreid import STNReID, merge_mode

    def load_run_model(run):
        return load_run(run).model

    def load_merge_mode(stn_run, reid_run):
        return merge_mode(load_run(stn_run).model, load_run(reid_run).model)

    torch.manual_seed(0)
    cfg1 = _stage_cfg(tmp_path, 1)
    s1 = STNReIDMethod(cfg1, 4).build_model()
    with torch.no_grad():
        s1.stn.regressor[-1].bias.add_(0.1)
    _write_run(tmp_path / "s1", "stnreid", cfg1, 4, s1)
    cfg2 = _stage_cfg(tmp_path, 2, stn_weights=str(tmp_path / "s1"))
    s2 = STNReIDMethod(cfg2, 4).build_model()
    _write_run(tmp_path / "s2", "stnreid", cfg2, 4, s2)
    shutil.copytree(tmp_path / "s1", tmp_path / "s1_copy")
    shutil.rmtree(tmp_path / "s1")  # a finished run does not need the earlier stage's files
    back = load_run_model(tmp_path / "s2")
    assert isinstance(back, STNReID) and not back.training
    for (k, a), b in zip(back.state_dict().items(), s2.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)

    bcfg = BaselineMethod.recipe("smoke").replace(image_size=SIZE)
    base = BaselineMethod(bcfg, 7).build_model()
    _write_run(tmp_path / "base", "baseline", bcfg, 7, base)
    mm = load_merge_mode(tmp_path / "s1_copy", tmp_path / "base")
    assert mm.stn_frozen and not any(p.requires_grad for p in mm.stn.parameters())
    torch.testing.assert_close(mm.stn.regressor[-1].bias, s1.stn.regressor[-1].bias)
    torch.testing.assert_close(mm.reid.classifier.weight, base.classifier.weight)
    with pytest.raises(ValueError, match="not an STNReID run"):
        load_merge_mode(tmp_path / "base", tmp_path / "base")


def test_reid_module_initialised_from_a_baseline_run(tmp_path):
    """Table 2's "PT" stand-in / Pipeline Mode's start: the ReID module loads a baseline run
    (its classifier is skipped when the number of identities differs)."""
    from reidlib.methods.baseline import BaselineMethod
    from reidlib.methods.stnreid import STNReIDMethod, load_reid_init

    torch.manual_seed(0)
    bcfg = BaselineMethod.recipe("smoke").replace(image_size=SIZE)
    base = BaselineMethod(bcfg, 9).build_model()
    _write_run(tmp_path / "base", "baseline", bcfg, 9, base)
    method = STNReIDMethod(_stage_cfg(tmp_path, 1, reid_weights=str(tmp_path / "base")), num_classes=4)
    model = method.build_model()
    for k, v in base.state_dict().items():
        if not k.startswith("classifier"):
            torch.testing.assert_close(model.reid.state_dict()[k], v, msg=k)
    assert model.reid.classifier.weight.shape == (4, base.feat_dim)
    from reidlib.models.baseline import Baseline

    other = Baseline(4, backbone="resnet18", pretrained=False)  # another backbone: a clear error
    with pytest.raises(ValueError, match="do not fit the ReID module"):
        load_reid_init(other, tmp_path / "base")


def test_full_recipe_model_trains_one_step_at_paper_size(tmp_path, monkeypatch):
    """The full profile's stage 1 (Ep1: ResNet-50 from scratch, 256x128, Table 1's STN with its
    4096-wide flatten) builds and takes one Eq. 6 step on CPU; Ep2 (ImageNet start) without cached
    weights stops with a message naming the missing file, not a hang or a silent fallback."""
    from reidlib.models.backbones import WeightsUnavailableError
    from reidlib.methods.stnreid import STNReIDMethod

    torch.manual_seed(0)
    cfg = STNReIDMethod.recipe("full")
    method = STNReIDMethod(cfg, num_classes=3)
    model = method.build_model().train()
    assert model.stn.flat_dim == 4096 and model.image_size == (256, 128)
    assert model.reid.feat_dim == 2048  # ResNet-50
    opt = torch.optim.Adam([{"params": g["params"], "lr": cfg.lr * g["lr_mult"]} for g in method.param_groups(model)])
    batch = {"holistic": torch.randn(4, 3, 256, 128), "image": torch.randn(4, 3, 256, 128),
             "label": torch.tensor([0, 0, 1, 2]), "theta": torch.tensor([[1.0, 0, 0], [0, 0.5, -0.5]]).expand(4, 2, 3)}
    loss, logs = method.loss(model, batch, 0)
    assert torch.isfinite(loss) and {"id_h", "id_p", "id_a", "stn"} <= set(logs)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert not torch.equal(model.stn.regressor[-1].bias, torch.tensor([1.0, 0, 0, 0, 1, 0]))  # the STN moved

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr("reidlib.models.backbones.network_reachable", lambda *a, **k: False)
    ep2 = STNReIDMethod(STNReIDMethod.stage_recipe("full", stage=1, setting="Ep2"), num_classes=3)
    with pytest.raises(WeightsUnavailableError, match=r"resnet50-.*\.pth"):
        ep2.build_model()


def test_theta_regression_loss_exact():
    from reidlib.losses.stnreid import theta_regression_loss

    t = torch.tensor([[[1.0, 0, 0], [0, 1, 0]], [[0.5, 0, 0.5], [0, 1, 0]]])
    true = torch.tensor([[[1.0, 0, 0], [0, 1, 0]], [[0.5, 0, -0.5], [0, 0.5, 0]]])
    assert theta_regression_loss(t, true).item() == pytest.approx((0 + (1.0 + 0.25)) / 2)
    with pytest.raises(ValueError, match=r"\(N, 2, 3\)"):
        theta_regression_loss(t.view(2, 6), true.view(2, 6))


def test_oracle_stn_target_trains_only_the_stn(tmp_path):
    from reidlib.methods.stnreid import STNReIDMethod

    torch.manual_seed(0)
    m = STNReIDMethod(_stage_cfg(tmp_path, 1, stn_target="oracle"), num_classes=4)
    model = m.build_model().train()
    true = torch.tensor([[1.0, 0, 0], [0, 0.5, -0.5]]).expand(8, 2, 3)
    batch = {"holistic": torch.randn(8, 3, *SIZE), "image": torch.randn(8, 3, *SIZE),
             "label": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), "theta": true}
    loss, logs = m.loss(model, batch, 0)
    assert set(logs) == {"theta_mse", "box_iou"}
    assert loss.item() == pytest.approx(0.5 ** 2 + 0.5 ** 2)  # the untrained STN predicts the identity
    loss.backward()
    assert model.stn.regressor[-1].bias.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.reid.parameters())  # the ReID module is not trained
    with pytest.raises(ValueError, match="stage-1 setting"):
        STNReIDMethod(_stage_cfg(tmp_path, 2, stn_target="oracle", stn_weights="x"), num_classes=4)
    with pytest.raises(ValueError, match="stn_target='boxes'"):
        STNReIDMethod(_stage_cfg(tmp_path, 1, stn_target="boxes"), num_classes=4)
