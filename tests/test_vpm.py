"""VPM (Sun et al., CVPR 2019): Eq. 1-8 on hand-made tensors, self-supervision, model, method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reidlib.data.partial import partial_crop
from reidlib.losses.vpm import (
    region_locator_loss,
    region_selective_triplet_loss,
    shared_region_distances,
    visible_identity_loss,
    vpm_total_loss,
)
from reidlib.models.vpm import PartClassifiers, region_features, region_probabilities, region_visibility


# ---------------------------------------------------------------------------
# Eq. 1-3 on hand-made tensors
# ---------------------------------------------------------------------------
def test_eq1_softmax_over_regions():
    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])  # (1, p=2, h=1, w=2)
    probs = region_probabilities(logits)
    # pixel 0: equal logits -> 1/2, 1/2; pixel 1: e^{log 3} / (3 + 1) = 3/4
    assert torch.allclose(probs[0, :, 0, 0], torch.tensor([0.5, 0.5]))
    assert torch.allclose(probs[0, :, 0, 1], torch.tensor([0.75, 0.25]))
    with pytest.raises(ValueError, match=r"\(N, p, h, w\)"):
        region_probabilities(torch.zeros(2, 3, 4))


def _hand_probs():
    # p = 2 regions on a 2 x 2 map: region 0 owns the top row, region 1 the bottom row,
    # except pixel (1, 1), split 0.5 / 0.5.
    p0 = torch.tensor([[1.0, 1.0], [0.0, 0.5]])
    return torch.stack([p0, 1 - p0])[None]  # (1, 2, 2, 2)


def test_eq2_visibility_exact():
    c = region_visibility(_hand_probs())
    assert torch.equal(c, torch.tensor([[2.5, 1.5]]))
    assert c.sum().item() == 4.0  # h * w


def test_eq3_weighted_pooling_exact():
    probs = _hand_probs()
    t = torch.tensor([[[1.0, 3.0], [10.0, 20.0]], [[2.0, 0.0], [0.0, 4.0]]])[None]  # (1, c=2, 2, 2)
    f = region_features(t, probs, region_visibility(probs))
    # region 0: (1*1 + 1*3 + 0*10 + .5*20) / 2.5 = 14 / 2.5 ; channel 1: (2 + 0 + 0 + 2) / 2.5
    # region 1: (0 + 0 + 1*10 + .5*20) / 1.5 = 20 / 1.5     ; channel 1: (0 + 0 + 0 + 2) / 1.5
    want = torch.tensor([[[14 / 2.5, 4 / 2.5], [20 / 1.5, 2 / 1.5]]])
    assert torch.allclose(f, want)
    # norm invariance (the division by C_i): a uniform region of value v pools to v
    probs1 = torch.zeros(1, 2, 3, 3)
    probs1[:, 0, :2] = 1
    probs1[:, 1, 2:] = 1
    t1 = torch.full((1, 4, 3, 3), 7.0)
    assert torch.allclose(region_features(t1, probs1, region_visibility(probs1)), torch.full((1, 2, 4), 7.0))


def test_eq3_bad_shapes():
    with pytest.raises(ValueError, match="same N, h, w"):
        region_features(torch.zeros(1, 4, 3, 3), torch.zeros(1, 2, 2, 3), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"visibility must be \(N, p\)"):
        region_features(torch.zeros(1, 4, 3, 3), torch.zeros(1, 2, 3, 3), torch.zeros(1, 3))


def test_eq4_shared_region_distance_exact():
    """Eq. 4 through the matcher VPM's model returns (implemented in reidlib.metrics)."""
    from reidlib.models.base import Features

    from reidlib.metrics.matchers import VisibilityWeightedMatcher

    matcher = VisibilityWeightedMatcher()
    # query: region 0 visible (C=1), region 1 half (C=.5); gallery: (1, 1) and (0, 1)
    q = Features(parts=torch.tensor([[[0.0, 0.0], [0.0, 0.0]]]), visibility=torch.tensor([[1.0, 0.5]]))
    g = Features(parts=torch.tensor([[[3.0, 4.0], [6.0, 8.0]], [[3.0, 4.0], [6.0, 8.0]]]),
                 visibility=torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    d = matcher(q, g).double()
    assert d.shape == (1, 2)
    # local distances: 5 and 10.  g0: (1*1*5 + .5*1*10) / (1 + .5) = 10 / 1.5 ; g1: (.5*10) / .5 = 10
    assert torch.allclose(d, torch.tensor([[10 / 1.5, 10.0]], dtype=torch.float64), atol=1e-5)


# ---------------------------------------------------------------------------
# Self-supervision: label maps of known crops (the shared crop operation)
# ---------------------------------------------------------------------------
def test_region_labels_top_half_crop():
    img = np.zeros((96, 32, 3), np.uint8)
    c = partial_crop(img, crop_box=(0, 0, 32, 48), out_size=(96, 32), grid=(6, 1), feat_size=(12, 4))
    # the top half holds regions 0, 1, 2, each stretched over 4 of the 12 rows
    want = np.repeat(np.arange(3), 4)[:, None].repeat(4, axis=1)
    assert np.array_equal(c.region_labels, want)
    assert c.region_labels.dtype == np.int64
    assert c.visible.tolist() == [True, True, True, False, False, False]


def test_region_labels_bottom_crop_3x2():
    img = np.zeros((96, 32, 3), np.uint8)
    c = partial_crop(img, crop_box=(0, 32, 32, 96), out_size=(96, 32), grid=(3, 2), feat_size=(6, 2))
    # bottom two thirds: rows 1 and 2 of the 3 x 2 grid -> labels 2,3 then 4,5
    assert c.region_labels.tolist() == [[2, 3]] * 3 + [[4, 5]] * 3
    assert c.visible.tolist() == [False, False, True, True, True, True]


def test_region_labels_holistic():
    img = np.zeros((64, 32, 3), np.uint8)
    c = partial_crop(img, crop_box=(0, 0, 32, 64), out_size=(64, 32), grid=(2, 1), feat_size=(4, 2))
    assert c.region_labels.tolist() == [[0, 0], [0, 0], [1, 1], [1, 1]]
    assert c.visible.all()


# ---------------------------------------------------------------------------
# Eq. 5 and 6
# ---------------------------------------------------------------------------
def test_eq5_region_loss_matches_manual():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 2, generator=g)
    labels = torch.randint(0, 3, (2, 4, 2), generator=g)
    want = -logits.log_softmax(1).gather(1, labels[:, None]).mean()
    assert torch.allclose(region_locator_loss(logits, labels), want)
    # a perfect locator (huge margin on the right region) has ~zero loss
    perfect = F.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 100
    assert region_locator_loss(perfect, labels).item() < 1e-6
    with pytest.raises(ValueError, match="feature-map size"):
        region_locator_loss(logits, labels[:, :3])
    with pytest.raises(ValueError, match=r"0\.\.2"):
        region_locator_loss(logits, labels + 3)


def test_eq6_identity_loss_exact_and_masked():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 5, generator=g)
    labels = torch.tensor([0, 3, 4])
    visible = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=torch.bool)
    ref = 0.0
    for n in range(3):
        for i in range(4):
            if visible[n, i]:
                ref += -logits[n, i].log_softmax(-1)[labels[n]].item()
    assert visible_identity_loss(logits, labels, visible).item() == pytest.approx(ref / 3, rel=1e-5)
    # changing the invisible regions' logits does not change the loss
    changed = logits.clone()
    changed[~visible] = torch.randn(int((~visible).sum()), 5, generator=g) * 50
    assert torch.equal(visible_identity_loss(changed, labels, visible), visible_identity_loss(logits, labels, visible))


def test_eq6_no_gradient_into_invisible_regions():
    torch.manual_seed(0)
    clf = PartClassifiers(num_parts=4, in_dim=6, reduce_dim=3, num_classes=5)
    parts = torch.randn(3, 4, 6, requires_grad=True)
    visible = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 1]], dtype=torch.bool)
    loss = visible_identity_loss(clf(parts), torch.tensor([0, 3, 4]), visible)
    loss.backward()
    assert torch.count_nonzero(parts.grad[~visible]) == 0
    assert bool((parts.grad[visible].abs().sum(-1) > 0).all())
    # region 2 is visible only in image 1, so its classifier gets gradient only from image 1
    assert clf.w1.grad[2].abs().sum() > 0


def test_part_classifiers_equal_per_part_linear_layers():
    torch.manual_seed(0)
    clf = PartClassifiers(num_parts=3, in_dim=5, reduce_dim=4, num_classes=7)
    x = torch.randn(2, 3, 5)
    out = clf(x)
    for i in range(3):
        ref = (x[:, i] @ clf.w1[i] + clf.b1[i]) @ clf.w2[i] + clf.b2[i]
        assert torch.allclose(out[:, i], ref, atol=1e-6)
    assert out.shape == (2, 3, 7)


# ---------------------------------------------------------------------------
# Eq. 7: the region-selective triplet loss against a loop reference
# ---------------------------------------------------------------------------
def _triplet_reference(parts, visible, pids, margin):
    n, p, _ = parts.shape
    losses = []
    for a in range(n):
        hardest_pos, hardest_neg = None, None
        for j in range(n):
            if j == a:
                continue
            shared = [i for i in range(p) if visible[a, i] and visible[j, i]]
            if not shared:
                continue
            d = sum(torch.linalg.vector_norm(parts[a, i] - parts[j, i]).item() for i in shared) / len(shared)
            if pids[j] == pids[a]:
                hardest_pos = d if hardest_pos is None else max(hardest_pos, d)
            else:
                hardest_neg = d if hardest_neg is None else min(hardest_neg, d)
        if hardest_pos is not None and hardest_neg is not None:
            losses.append(max(0.0, hardest_pos - hardest_neg + margin))
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eq7_region_selective_triplet_equals_loop(seed):
    g = torch.Generator().manual_seed(seed)
    n, p, d = 8, 4, 5
    parts = torch.randn(n, p, d, generator=g)
    visible = torch.rand(n, p, generator=g) > 0.4
    visible[0] = torch.tensor([True, False, False, False])
    visible[1] = torch.tensor([False, True, True, False])  # shares nothing with image 0
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for margin in (0.3, 1.0):
        got = region_selective_triplet_loss(parts, visible, pids, margin=margin).item()
        assert got == pytest.approx(_triplet_reference(parts, visible, pids, margin), rel=1e-4, abs=1e-5)


def test_eq7_shared_distance_exact_and_all_visible_is_mean_of_local():
    parts = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[3.0, 4.0], [0.0, 1.0]]])
    dist, shared = shared_region_distances(parts, torch.tensor([[True, True], [True, False]]))
    assert shared.tolist() == [[2, 1], [1, 1]]
    assert dist[0, 1].item() == pytest.approx(5.0, rel=1e-5)  # only region 0 shared
    dist_all, _ = shared_region_distances(parts, torch.ones(2, 2, dtype=torch.bool))
    assert dist_all[0, 1].item() == pytest.approx(3.0, rel=1e-5)  # (5 + 1) / 2


def test_eq7_no_shared_regions_gives_zero_loss_with_grad():
    parts = torch.randn(4, 2, 3, requires_grad=True)
    visible = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=torch.bool)
    pids = torch.tensor([0, 0, 1, 1])  # positives never share a region
    loss = region_selective_triplet_loss(parts, visible, pids)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(parts.grad) == 0


def test_eq7_gradient_finite_with_duplicate_images():
    x = torch.randn(1, 3, 4)
    parts = torch.cat([x, x, x + 1, x + 1]).requires_grad_(True)
    loss = region_selective_triplet_loss(parts, torch.ones(4, 3, dtype=torch.bool), torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert torch.isfinite(parts.grad).all()


def test_eq8_total():
    a, b, c = torch.tensor(1.5), torch.tensor(2.0), torch.tensor(0.25)
    assert vpm_total_loss(a, b, c).item() == 3.75
    assert vpm_total_loss(a, b).item() == 3.5


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------
from reidlib.models.vpm import VPM  # noqa: E402


@pytest.mark.parametrize("parts", [(6, 1), (3, 2), (2, 1)])
def test_model_shapes_and_visibility_sums(parts):
    torch.manual_seed(0)
    p = parts[0] * parts[1]
    model = VPM(num_classes=7, parts=parts, backbone="resnet10", pretrained=False, reduce_dim=16)
    x = torch.randn(2, 3, 96, 32)
    assert model.feature_size((96, 32)) == (6, 2)
    model.train()
    out = model(x)
    assert out["region_logits"].shape == (2, p, 6, 2)
    assert out["probs"].shape == (2, p, 6, 2)
    assert out["parts"].shape == (2, p, 512)
    assert out["logits"].shape == (2, p, 7)
    # Eq. 2: the visibility scores of an image sum to the number of pixels h * w
    assert torch.allclose(out["visibility"].sum(1), torch.full((2,), 12.0))
    model.eval()
    feats = model.extract(x)
    assert feats.parts.shape == (2, p, 512) and feats.visibility.shape == (2, p)
    assert feats.global_feat is None
    # test-time visibility is C_i / (h w): in [0, 1], summing to 1
    assert torch.allclose(feats.visibility.sum(1), torch.ones(2))
    assert bool(((feats.visibility >= 0) & (feats.visibility <= 1)).all())


def test_model_eval_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = VPM(num_classes=3, parts=(3, 1), backbone="resnet10", pretrained=False, reduce_dim=8).eval()
    x = torch.randn(3, 3, 64, 32)
    a = model.extract(x)
    b = model.extract(x[1:2])
    assert torch.allclose(a.parts[1:2], b.parts, atol=1e-5)
    assert torch.allclose(a.visibility[1:2], b.visibility, atol=1e-6)


def test_model_mvpm1_ignores_visibility_at_test():
    torch.manual_seed(0)
    model = VPM(num_classes=3, parts=(3, 1), backbone="resnet10", pretrained=False, reduce_dim=8,
                test_visibility=False).eval()
    f = model.extract(torch.randn(2, 3, 64, 32))
    assert torch.equal(f.visibility, torch.ones(2, 3))


def test_model_bad_input():
    with pytest.raises(ValueError, match=r"parts must be \(m, n\)"):
        VPM(num_classes=3, parts=(0, 1), backbone="resnet10", pretrained=False)
    with pytest.raises(ValueError, match="unknown backbone"):
        VPM(num_classes=3, backbone="vgg", pretrained=False)
    model = VPM(num_classes=3, parts=(2, 1), backbone="resnet10", pretrained=False)
    with pytest.raises(ValueError, match=r"images must be \(N, 3, H, W\)"):
        model(torch.zeros(3, 64, 32))


def test_model_labels_from_crop_match_feature_map():
    """The crop op's labels, made for model.feature_size, fit the locator's output and train it."""
    torch.manual_seed(0)
    model = VPM(num_classes=3, parts=(3, 2), backbone="resnet10", pretrained=False, reduce_dim=8)
    fs = model.feature_size((96, 32))
    img = np.random.default_rng(0).integers(0, 255, (192, 64, 3), dtype=np.uint8)
    c = partial_crop(img, crop_box=(0, 0, 64, 128), out_size=(96, 32), grid=(3, 2), feat_size=fs)
    x = torch.from_numpy(c.image).permute(2, 0, 1)[None].float() / 255
    out = model(x)
    loss = region_locator_loss(out["region_logits"], torch.from_numpy(c.region_labels)[None])
    loss.backward()
    assert model.locator.weight.grad.abs().sum() > 0


def test_model_matcher_is_eq4():
    from reidlib.metrics.matchers import VisibilityWeightedMatcher

    model = VPM(num_classes=3, parts=(2, 1), backbone="resnet10", pretrained=False)
    assert isinstance(model.matcher(), VisibilityWeightedMatcher)


# ---------------------------------------------------------------------------
# The method: recipes, Table 3 variants, the loss on a batch, two stages
# ---------------------------------------------------------------------------
from reidlib.methods.base import TrainConfig  # noqa: E402
from reidlib.methods.vpm import VPM_VARIANTS, VPMMethod, vpm_crop_spec  # noqa: E402


def _tiny_cfg(**extra) -> TrainConfig:
    cfg = VPMMethod.recipe("smoke", **extra)
    return cfg.replace(image_size=(64, 32))


def _batch(method: VPMMethod, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = method.build_model()
    fs = model.feature_size(method.cfg.image_size)
    p = method.parts[0] * method.parts[1]
    vis = torch.rand(n, p, generator=g) > 0.3
    vis[:, 0] = True
    labels = torch.randint(0, p, (n, *fs), generator=g)
    return model, {
        "image": torch.randn(n, 3, *method.cfg.image_size, generator=g),
        "label": torch.arange(n) // 2,
        "region_labels": labels,
        "visible": vis,
    }


def test_registered_and_recipes():
    from reidlib.methods.registry import get_method

    assert get_method("vpm") is VPMMethod
    full = VPMMethod.recipe("full")
    assert full.optimizer == "sgd" and full.lr == 0.1 and full.milestones == (30,) and full.epochs == 50
    s2 = VPMMethod.stage_recipe(full, 2, init_weights="w.safetensors")
    assert s2.epochs == 80 and s2.sampler == "pk" and (s2.batch_p, s2.batch_k) == (8, 8)
    assert s2.extra["stage"] == 2 and s2.extra["init_weights"] == "w.safetensors"
    assert full.extra["margin"] == 1.0 and tuple(full.extra["parts"]) == (6, 1)
    with pytest.raises(ValueError, match="unknown VPM variant"):
        VPMMethod.recipe("smoke", variant="mvpm-9")
    with pytest.raises(ValueError, match="unknown extra settings"):
        VPMMethod.recipe("smoke", partz=(2, 1))
    with pytest.raises(ValueError, match="accepted crops"):
        VPMMethod.recipe("smoke", crop="diagonal")
    with pytest.raises(ValueError, match="sampler='pk'"):
        VPMMethod(s2.replace(sampler="random"), 10)


def test_crop_specs():
    assert vpm_crop_spec("top").sides == ("top",) and vpm_crop_spec("top").ratio == (0.5, 1.0)
    assert vpm_crop_spec("bilateral").sides == ("top", "bottom")
    assert vpm_crop_spec("free").mode == "free"


@pytest.mark.parametrize("name", list(VPM_VARIANTS))
def test_table3_variants_build_and_train_one_step(name):
    torch.manual_seed(0)
    cfg = _tiny_cfg(variant=name, parts=(3, 1))
    v = VPM_VARIANTS[name]
    assert cfg.extra["variant"] == name and cfg.extra["triplet"] == v.triplet
    for stage in (1, 2):
        m = VPMMethod(VPMMethod.stage_recipe(cfg, stage), num_classes=4)
        model, batch = _batch(m)
        assert model.test_visibility == v.test_visibility
        loss, logs = m.loss(model.train(), batch, epoch=0)
        assert torch.isfinite(loss)
        assert ("L_tri" in logs) == (stage == 2 and v.triplet)
        loss.backward()


def test_variant_switches_change_the_loss_as_defined():
    """MVPM-3 supervises every region in L_ID; MVPM-2 uses every region in Eq. 7."""
    torch.manual_seed(0)
    base = VPMMethod(VPMMethod.stage_recipe(_tiny_cfg(parts=(3, 1)), 2), 4)
    model, batch = _batch(base)
    model.train()
    out = model(batch["image"])
    allv = torch.ones_like(batch["visible"])
    _, logs = base.loss(model, batch, 0)
    torch.manual_seed(0)
    assert logs["L_ID"].item() == pytest.approx(
        visible_identity_loss(out["logits"], batch["label"], batch["visible"]).item(), rel=1e-4)
    m3 = VPMMethod(VPMMethod.stage_recipe(_tiny_cfg(parts=(3, 1), variant="mvpm-3"), 2), 4)
    _, logs3 = m3.loss(model, batch, 0)
    assert logs3["L_ID"].item() == pytest.approx(
        visible_identity_loss(out["logits"], batch["label"], allv).item(), rel=1e-4)
    m2 = VPMMethod(VPMMethod.stage_recipe(_tiny_cfg(parts=(3, 1), variant="mvpm-2"), 2), 4)
    _, logs2 = m2.loss(model, batch, 0)
    assert logs2["L_tri"].item() == pytest.approx(
        region_selective_triplet_loss(out["parts"], allv, batch["label"], 1.0).item(), rel=1e-4)
    assert logs["L_tri"].item() == pytest.approx(
        region_selective_triplet_loss(out["parts"], batch["visible"], batch["label"], 1.0).item(), rel=1e-4)


def test_train_dataset_items_carry_labels_for_the_feature_map():
    from reidlib.data.synthpeds import SynthPeds

    ds = SynthPeds("tiny", seed=0)
    m = VPMMethod(_tiny_cfg(parts=(3, 2), crop="bottom"), ds.num_train_pids)
    tr = m.train_dataset(ds, ds.relabel_train())
    item = tr[0]
    fs = m.build_model().feature_size((64, 32))
    assert item["image"].shape == (3, 64, 32)
    assert item["region_labels"].shape == fs and item["visible"].shape == (6,)
    # bottom crops keep the bottom row of regions
    assert bool(item["visible"][4:].all())
    assert set(item["region_labels"].unique().tolist()) == set(item["visible"].nonzero().flatten().tolist())


def test_two_stage_training_runs(tmp_path):
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.engine.runs import train_stages

    def train_vpm(ds, out, cfg, device):
        fit = train_stages(VPMMethod, cfg, ds, out, device=device, resume=out.exists(), progress=False)
        return fit.model, fit.metrics

    ds = SynthPeds("tiny", seed=0)
    cfg = _tiny_cfg(parts=(2, 1)).replace(batch_p=4, batch_k=2, epochs=1, max_iters_per_epoch=1)
    cfg.extra["stage2"] = {**cfg.extra["stage2"], "batch_p": 4, "batch_k": 2, "epochs": 1, "max_iters_per_epoch": 1}
    model, info = train_vpm(ds, tmp_path, cfg=cfg, device="cpu")
    assert (tmp_path / "stage1" / "model.safetensors").exists() and (tmp_path / "stage2" / "model.safetensors").exists()
    assert "L_tri" in info["stage2"]["last_epoch"] and "L_tri" not in info["stage1"]["last_epoch"]
    f = model.extract(torch.randn(2, 3, 64, 32))
    assert f.parts.shape[:2] == (2, 2)
    # a second call reuses both finished runs and returns the same weights
    model2, _ = train_vpm(ds, tmp_path, cfg=cfg, device="cpu")
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
