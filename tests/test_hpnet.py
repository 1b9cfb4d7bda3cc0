"""HPNet: the mask labels (SANet Eq. 6's DS), Eq. 4 and Eq. 5 on hand-made tensors, visibility from a
known mask, the focal / identity / triplet losses against slow references, the method's batch recipe
on SynthPeds (masks follow flips and crops) and on a small tree on disk, a 2-iteration training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reidlib.data.masks import BRANCH_NAMES, PartMaskLabels, part_mask_labels
from reidlib.losses.hpnet import (
    batch_hard_masked,
    branch_identity_losses,
    common_parts_triplet_loss,
    hpnet_total_loss,
    part_mask_focal_loss,
)
from reidlib.models.hpnet import HPNet, backbone_feature_size, default_seg_channels, masked_max_pool, part_visibility
from slow_reference import slow_batch_hard

SIZE = (64, 32)  # a 4 x 2 map with resnet10s at last stride 1


def _tiny(**kw) -> HPNet:
    torch.manual_seed(0)
    return HPNet(6, backbone="resnet10s", pretrained=False, **kw)


class _FixedMask(torch.nn.Module):
    """A segmentation head that always answers the same logits ``(h, w)``."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], *self.logits.shape).to(x.dtype)


# ----------------------------------------------------------------------------- mask labels
def test_part_mask_labels_by_share_of_each_cell():
    """DS(M^i): a cell is a positive of a part when the part covers >= min_fraction of its pixels;
    the global branch is the body (labels 1-4); occluded pixels (255) are nobody's."""
    m = torch.zeros(8, 4, dtype=torch.uint8)  # 2 x 1 cells of 4 x 4 pixels
    m[0, 0] = 1                 # head: 1 of 16 pixels of the top cell (6.25 %)
    m[1, :2] = 1                # ... now 3 of 16 (18.75 %)
    m[4:8, :] = 2               # upper: the whole bottom cell
    m[0, 3] = 255               # an occluded pixel
    lab = part_mask_labels(m, (2, 1), min_fraction=0.1)
    assert lab.dtype == torch.uint8 and lab.shape == (5, 2, 1)
    assert lab[:, :, 0].tolist() == [[1, 0], [0, 1], [0, 0], [0, 0], [1, 1]]
    assert part_mask_labels(m, (2, 1), min_fraction=0.2)[0].flatten().tolist() == [0, 0]  # 18.75 % < 20 %
    m2 = m.clone()
    m2[1, 2] = 1  # exactly 4 / 16 = 0.25
    assert part_mask_labels(m2, (2, 1), min_fraction=0.25)[0].flatten().tolist() == [1, 0]
    assert part_mask_labels(m, (2, 1), with_global=False).shape == (4, 2, 1)
    batch = part_mask_labels(torch.stack([m, m2]), (2, 1))
    assert batch.shape == (2, 5, 2, 1) and torch.equal(batch[0], lab)
    occluded = torch.full((8, 4), 255, dtype=torch.uint8)
    assert part_mask_labels(occluded, (2, 1)).sum() == 0  # an occluded image: every branch invisible
    with pytest.raises(ValueError, match="integer"):
        part_mask_labels(m.float(), (2, 1))
    with pytest.raises(ValueError, match=r"min_fraction=0.0 must lie in \(0, 1\]"):
        part_mask_labels(m, (2, 1), min_fraction=0.0)
    assert BRANCH_NAMES == ("head", "upper", "lower", "feet", "global")


def test_part_mask_labels_dataset_wrapper():
    class Base(torch.utils.data.Dataset):
        pids = [3, 3]

        def __len__(self):
            return 2

        def __getitem__(self, i):
            m = torch.zeros(8, 4, dtype=torch.uint8)
            m[:4] = 4 if i else 0
            return {"image": torch.zeros(3, 8, 4), "mask": m, "label": 0}

    ds = PartMaskLabels(Base(), (2, 1))
    assert ds.pids == [3, 3] and len(ds) == 2
    it = ds[1]
    assert "mask" not in it and it["part_labels"].shape == (5, 2, 1)
    assert it["part_visible"].dtype == torch.bool and it["part_visible"].tolist() == [False, False, False, True, True]
    assert ds[0]["part_visible"].tolist() == [False] * 5
    assert "mask" in PartMaskLabels(Base(), (2, 1), keep_mask=True)[0]


# ----------------------------------------------------------------------------- Eq. 4, Eq. 5
def test_eq4_masked_max_pool_exact():
    f = torch.tensor([[[[1.0, 5.0], [3.0, 2.0]], [[4.0, 0.0], [1.0, 7.0]]]])  # (1, 2, 2, 2)
    m = torch.tensor([[[1.0, 0.0], [0.5, 1.0]]])
    torch.testing.assert_close(masked_max_pool(f, m), torch.tensor([[2.0, 7.0]]))  # max(1, 0, 1.5, 2), max(4, 0, .5, 7)
    torch.testing.assert_close(masked_max_pool(f, torch.zeros(1, 2, 2)), torch.zeros(1, 2))  # empty mask: zero
    with pytest.raises(ValueError, match="same N, h, w"):
        masked_max_pool(f, torch.zeros(1, 3, 2))


def test_eq5_part_visibility_exact():
    masks = torch.tensor([[[[0.2, 0.6], [0.9, 0.5]], [[0.5, 0.1], [0.0, 0.4]]]])  # (1, 2, 2, 2)
    v = part_visibility(masks)
    assert v.tolist() == [[2, 0]]  # 0.5 is not above 0.5
    assert (v >= 1).tolist() == [[True, False]]


def test_hpnet_visibility_and_features_from_a_known_mask():
    """A branch whose mask is empty is invisible and (hard pooling) has the zero feature; a branch
    whose mask keeps one cell pools exactly that cell."""
    model = _tiny().eval()
    h, w = model.feature_size(SIZE)
    assert (h, w) == (4, 2)
    empty = torch.full((h, w), -10.0)
    one = empty.clone()
    one[1, 0] = 10.0
    model.branches[0].seg = _FixedMask(empty)
    model.branches[2].seg = _FixedMask(one)
    x = torch.randn(3, 3, *SIZE)
    out = model(x)
    assert out["visibility"][:, 0].tolist() == [False] * 3 and out["visibility"][:, 2].tolist() == [True] * 3
    assert out["visible_pixels"][:, 2].tolist() == [1, 1, 1]
    assert torch.equal(out["parts"][:, 0], torch.zeros_like(out["parts"][:, 0]))
    f2 = model.branches[2].layer4(model.backbone(x))
    torch.testing.assert_close(out["parts"][:, 2], f2[:, :, 1, 0])
    feats = model.extract(x)
    assert feats.visibility[:, 0].tolist() == [0.0] * 3 and feats.parts.shape == (3, 4, model.feat_dim)


def test_hpnet_shapes_and_settings():
    model = _tiny()
    assert model.branch_names == ("head", "upper", "lower", "feet") and model.num_branches == 4
    assert model.seg_channels == default_seg_channels(128) == 16 and default_seg_channels(2048) == 256
    out = model(torch.randn(4, 3, *SIZE))
    assert out["mask_logits"].shape == (4, 4, 4, 2) and out["logits"].shape == (4, 4, 6)
    assert out["parts"].shape == out["neck_parts"].shape == (4, 4, 128)
    assert _tiny(global_branch=True)(torch.randn(2, 3, *SIZE))["masks"].shape == (2, 5, 4, 2)
    assert isinstance(model.backbone.layer4, torch.nn.Identity)  # every layer 4 is a branch's
    assert backbone_feature_size("resnet10s", (128, 64)) == (8, 4)
    assert model.matcher().describe().startswith("SANet Eq. 7")
    with pytest.raises(ValueError, match="mask_pooling='max'"):
        _tiny(mask_pooling="max")
    with pytest.raises(ValueError, match="num_classes"):
        HPNet(0, backbone="resnet10s", pretrained=False)


def test_layer4_copies_start_from_the_backbone_weights(tmp_path):
    from safetensors.torch import save_file

    from reidlib.models.backbones import build_backbone

    torch.manual_seed(3)
    bb = build_backbone("resnet10s", pretrained=False)
    f = tmp_path / "bb.safetensors"
    save_file({k: v.contiguous() for k, v in bb.state_dict().items()}, str(f))
    model = HPNet(4, backbone="resnet10s", pretrained=False, weights=str(f))
    for br in model.branches:
        for (k, a), b in zip(br.layer4.state_dict().items(), bb.layer4.state_dict().values()):
            assert torch.equal(a, b), k
    assert torch.equal(model.backbone.layer3[0].conv1.weight, bb.layer3[0].conv1.weight)


# ----------------------------------------------------------------------------- losses
def test_focal_loss_against_a_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2, 2) * 2
    labels = (torch.rand(2, 3, 2, 2) > 0.6).to(torch.uint8)
    labels[:, 2] = 0  # a branch without positives: divided by 1
    got = part_mask_focal_loss(logits, labels)
    for i in range(3):
        total, npos = 0.0, 0
        for x, y in zip(logits[:, i].flatten().tolist(), labels[:, i].flatten().tolist()):
            p = 1.0 / (1.0 + math.exp(-x))
            ce = -math.log(p) if y else -math.log(1.0 - p)
            p_t = p if y else 1.0 - p
            a_t = 0.25 if y else 0.75
            total += a_t * (1.0 - p_t) ** 2 * ce
            npos += y
        assert got[i].item() == pytest.approx(total / max(1, npos), rel=1e-5)
    g0 = part_mask_focal_loss(logits, labels, alpha=0.5, gamma=0.0)  # gamma 0, alpha 0.5: half the BCE
    bce = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").sum((0, 2, 3))
    torch.testing.assert_close(g0, 0.5 * bce / labels.float().sum((0, 2, 3)).clamp_min(1))
    with pytest.raises(ValueError, match="same shape"):
        part_mask_focal_loss(logits, labels[:, :2])


def test_identity_losses_over_visible_branches_only():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, 5, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3])
    vis = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    got = branch_identity_losses(logits, labels, vis, epsilon=0.1)
    from reidlib.losses.cross_entropy import cross_entropy_label_smooth

    for i in range(2):
        rows = vis[:, i]
        ref = cross_entropy_label_smooth(logits[rows, i], labels[rows], 0.1)
        torch.testing.assert_close(got[i], ref)
    assert got[2].item() == 0.0  # no visible image
    got.sum().backward()
    assert torch.equal(logits.grad[~vis], torch.zeros_like(logits.grad[~vis]))  # invisible: no gradient


def test_common_parts_triplet_against_a_slow_reference():
    torch.manual_seed(1)
    parts = torch.randn(6, 4, 8)
    vis = torch.rand(6, 4) > 0.3
    vis[5] = False  # an image with no visible part: never mined, never an anchor
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    dist = [[0.0] * 6 for _ in range(6)]
    valid = [[False] * 6 for _ in range(6)]
    for a in range(6):
        for b in range(6):
            common = [i for i in range(4) if vis[a, i] and vis[b, i]]
            if common:
                valid[a][b] = True
                dist[a][b] = sum((parts[a, i] - parts[b, i]).norm().item() for i in common) / len(common)
    ref = slow_batch_hard(dist, valid, labels.tolist(), 0.3)
    assert common_parts_triplet_loss(parts, vis, labels, 0.3).item() == pytest.approx(ref, rel=1e-4, abs=1e-6)
    none = batch_hard_masked(torch.rand(1, 3, 3), torch.zeros(1, 3, 3, dtype=torch.bool), torch.tensor([0, 0, 1]), 0.3)
    assert none.tolist() == [0.0]
    total = hpnet_total_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5]), torch.tensor(3.0))
    assert total.item() == pytest.approx(1 + 2 + 0.5 + 0.5 + 0.3)


# ----------------------------------------------------------------------------- the method
def _method(**extra):
    from reidlib.methods.hpnet import HPNetMethod

    cfg = HPNetMethod.recipe("smoke", **extra).replace(image_size=SIZE, batch_p=4, batch_k=2, epochs=1,
                                                       max_iters_per_epoch=2)
    return HPNetMethod, cfg


def test_masks_follow_flips_and_crops_on_synthpeds():
    from reidlib.data.synthpeds import SynthPeds

    ds = SynthPeds("tiny", seed=0)
    cls, cfg = _method(p_partial=0.0)
    m = cls(cfg.replace(flip=0.0, pad=0), ds.num_train_pids)
    m_flip = cls(cfg.replace(flip=1.0, pad=0), ds.num_train_pids)
    a, b = m.train_dataset(ds, ds.relabel_train()), m_flip.train_dataset(ds, ds.relabel_train())
    for i in range(4):
        la, lb = a[i]["part_labels"], b[i]["part_labels"]
        assert la.shape == (4, 4, 2) and torch.equal(lb, la.flip(-1))  # the labels move with the flipped image
        torch.testing.assert_close(b[i]["image"], a[i]["image"].flip(-1))
    # top crops of half the body: the feet are never visible, the labels are the crop's own mask's
    cls, cfg = _method(p_partial=1.0, crop_ratio=(0.5, 0.5), crop_sides=("top",))
    crops = cls(cfg, ds.num_train_pids).train_dataset(ds, ds.relabel_train())
    keep = PartMaskLabels(crops.base, (4, 2), with_global=False, keep_mask=True)
    torch.manual_seed(0)
    for i in range(6):
        it = keep[i]
        assert it["is_partial"] and it["ratio"] == pytest.approx(0.5, abs=0.05)
        assert not it["part_visible"][3]  # feet
        assert torch.equal(it["part_labels"], part_mask_labels(it["mask"].as_subclass(torch.Tensor), (4, 2),
                                                               with_global=False))
        assert not (it["mask"] == 4).any()


def test_recipes_and_settings_errors():
    from reidlib.methods.hpnet import HPNetMethod, HPNetSettings
    from reidlib.methods.registry import get_method

    assert get_method("hpnet") is HPNetMethod
    full = HPNetMethod.recipe("full")
    assert (full.image_size, full.backbone, full.epochs) == ((384, 128), "resnet50", 150)
    assert (full.lr, full.optimizer) == (0.01, "sgd")
    assert full.batch_size == 64 and full.sampler == "pk" and full.extra["color_jitter"] == 0.2
    s = HPNetSettings.from_dict(full.extra)
    assert (s.mask_pooling, s.triplet, s.triplet_weight, s.global_branch) == ("hard", "common", 0.1, False)
    assert (s.focal_alpha, s.focal_gamma) == (0.25, 2.0)
    smoke = HPNetMethod.recipe("smoke")
    assert smoke.backbone == "resnet10s" and not smoke.pretrained and smoke.image_size == (128, 64)
    assert smoke.epochs * smoke.max_iters_per_epoch == 60
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        HPNetMethod.recipe("huge")
    with pytest.raises(ValueError, match=r"mask_pooling='max'.*'hard', 'soft'"):
        HPNetSettings(mask_pooling="max")
    with pytest.raises(ValueError, match=r"crop_sides=\('middle',\).*'top', 'bottom', 'left', 'right'"):
        HPNetSettings(crop_sides=("middle",))
    with pytest.raises(ValueError, match=r"label_smooth=1.0 is out of range"):
        HPNetSettings(label_smooth=1.0)
    with pytest.raises(ValueError, match=r"unknown extra settings \['focal_gama'\].*did you mean 'focal_gamma'"):
        HPNetMethod.recipe("smoke", focal_gama=1.0)
    with pytest.raises(ValueError, match="sampler='pk'"):
        HPNetMethod(smoke.replace(sampler="random"), 4)


def test_param_groups_put_every_layer4_copy_with_the_backbone():
    cls, cfg = _method()
    m = cls(cfg.replace(backbone_lr_mult=0.1), 6)
    model = m.build_model()
    pre, new = m.param_groups(model)
    assert pre["lr_mult"] == 0.1 and new["lr_mult"] == 1.0
    ids = {id(p) for p in pre["params"]}
    assert all(id(p) in ids for b in model.branches for p in b.layer4.parameters())
    assert not any(id(p) in ids for b in model.branches for p in b.seg.parameters())
    assert len(pre["params"]) + len(new["params"]) == len([p for p in model.parameters() if p.requires_grad])


def test_two_iteration_training_through_train_stages(tmp_path):
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.engine.runs import load_run, train_stages

    ds = SynthPeds("tiny", seed=0)
    cls, cfg = _method()
    fit = train_stages(cls, cfg, ds, tmp_path / "run", device="cpu", progress=False)
    logs = fit.metrics["main"]["last_epoch"]
    assert {"L_ID", "L_focal", "L_tri", "id_acc", "mask_iou", "vis_acc"} <= set(logs)
    assert all(math.isfinite(v) for v in logs.values() if isinstance(v, float))
    model = fit.model
    assert isinstance(model, HPNet) and not model.training and model.image_size == SIZE
    x = torch.randn(3, 3, *SIZE)
    d = model.matcher()(model.extract(x), model.extract(x))
    back = load_run(tmp_path / "run").model
    torch.testing.assert_close(back.matcher()(back.extract(x), back.extract(x)), d)
