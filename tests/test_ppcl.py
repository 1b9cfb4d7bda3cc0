"""PPCL: GLRec (R + G + T, Eq. 1-2), CRLoc (Eq. 7-9), PP-Cycle (Eq. 11), PP-Triplet (Eq. 12),
Eq. 6 / 13, the pairwise matcher, the method's stages and a smoke training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reidlib.losses.ppcl import (
    crloc_loss,
    gate_loss,
    glrec_loss,
    grid_points,
    pp_cycle_loss,
    pp_triplet_loss,
    ppcl_total_loss,
    rectifier_loss,
    region_distance,
)
from reidlib.models.ppcl import (
    CRLoc,
    GLRec,
    correlation_softmax,
    gate,
    inverse_regions,
    region_overlaps,
    region_to_box,
    sample_negative_regions,
    sample_region,
    warp_to_layout,
)
from slow_reference import check_shortlist_contract

SIZE = (64, 32)  # a 4 x 2 feature map with resnet10s at last stride 1


def _regions(n: int, lo: float = 0.3, hi: float = 0.8) -> torch.Tensor:
    s = lo + (hi - lo) * torch.rand(n, 2)
    t = (1 - s) * (2 * torch.rand(n, 2) - 1)
    return torch.cat([s, t], 1)


# ----------------------------------------------------------------------------- regions, T and G
def test_identity_region_and_warp_give_the_input_back():
    torch.manual_seed(0)
    x = torch.rand(3, 5, 8, 4)
    ident = torch.tensor([[1.0, 1.0, 0.0, 0.0]]).expand(3, 4)
    torch.testing.assert_close(sample_region(x, ident, (8, 4)), x, atol=1e-6, rtol=0)
    img = torch.rand(3, 3, *SIZE)
    out = warp_to_layout(img, ident, torch.ones(3, dtype=torch.bool))  # a "partial" input at the identity
    torch.testing.assert_close(out, img, atol=1e-5, rtol=0)


def test_warp_places_a_crop_at_its_region_of_the_frame():
    """T: the top half of a frame, stretched to the frame's size, goes back to the top half;
    the bottom half stays empty (zeros)."""
    torch.manual_seed(0)
    frame = torch.rand(1, 3, 16, 8)
    crop = F.interpolate(frame[..., :8, :], size=(16, 8), mode="nearest")  # rows repeated twice
    st = torch.tensor([[1.0, 0.5, 0.0, -0.5]])  # the crop covers y in [-1, 0]
    out = warp_to_layout(crop, st, torch.tensor([True]))
    torch.testing.assert_close(out[..., :8, :], frame[..., :8, :], atol=0.35, rtol=0)
    assert (out[..., :8, :] - frame[..., :8, :]).abs().mean() < 0.1
    assert torch.equal(out[..., 8:, :], torch.zeros_like(out[..., 8:, :]))
    # warping back (the region of the crop in the frame) gives the stretched crop again
    back = sample_region(out, st, (16, 8))
    assert (back - crop).abs().mean() < 0.1
    torch.testing.assert_close(inverse_regions(inverse_regions(st)), st)


def test_region_to_box_pixels():
    st = torch.tensor([[0.5, 1.0, -0.5, 0.0], [1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(region_to_box(st, (20, 10)), torch.tensor([[0.0, 0, 5, 20], [0, 0, 10, 20]]))


def test_gate_passes_holistic_inputs_unchanged():
    torch.manual_seed(0)
    g = GLRec("resnet10s").eval()
    last = g.regressor.head[-1]
    with torch.no_grad():  # a clearly non-identity transform; eta decided by the bias
        last.bias.copy_(torch.tensor([0.5, 0.6, 0.2, -0.3, -3.0]))
    x = torch.randn(4, 3, *SIZE)
    out = g(x)
    assert not out["is_partial"].any() and (out["eta"] < 0.5).all()
    assert torch.equal(out["rectified"], x)  # bit for bit
    torch.testing.assert_close(out["st"], torch.tensor([[1.0, 1.0, 0.0, 0.0]]).expand(4, 4))
    torch.testing.assert_close(out["st_raw"], torch.tensor([[0.5, 0.6, 0.2, -0.3]]).expand(4, 4))
    with torch.no_grad():
        last.bias[4] = 3.0  # now partial: the input is warped (Eq. 2)
    out = g(x)
    assert out["is_partial"].all()
    torch.testing.assert_close(out["rectified"], warp_to_layout(x, out["st_raw"], out["is_partial"]))
    assert not torch.allclose(out["rectified"], x)


def test_gate_function():
    st = torch.tensor([[0.5, 0.5, 0.1, 0.2], [0.4, 0.9, 0.0, 0.0]])
    regions, part = gate(st, torch.tensor([0.7, 0.2]))
    assert part.tolist() == [True, False]
    torch.testing.assert_close(regions, torch.tensor([[0.5, 0.5, 0.1, 0.2], [1.0, 1.0, 0.0, 0.0]]))
    _, part = gate(st, torch.tensor([0.5, 0.4999]))  # eta < 0.5 is holistic, 0.5 is partial
    assert part.tolist() == [True, False]


# ----------------------------------------------------------------------------- Eq. 1, the BCE
def test_eq1_rectifier_loss_exact():
    pred = torch.tensor([[1.0, 0.5, 0.0, -0.5], [0.5, 0.5, 0.5, 0.5]])
    true = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    # (0.25 + 0.25 + 0) / 2
    assert rectifier_loss(pred, true).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        rectifier_loss(pred[:, :3], true[:, :3])


def test_gate_bce_and_glrec_loss():
    logit = torch.tensor([0.0, 2.0, -1.0])
    target = torch.tensor([True, False, False])
    p = torch.sigmoid(logit)
    ref = -(math.log(p[0]) + math.log(1 - p[1]) + math.log(1 - p[2])) / 3
    assert gate_loss(logit, target).item() == pytest.approx(ref, rel=1e-5)
    t = torch.zeros(3, 4)
    total, terms = glrec_loss(t + 0.5, t, logit, target)
    assert total.item() == pytest.approx(4 * 0.25 + ref, rel=1e-5)
    assert set(terms) == {"L_R_eq1", "L_R_bce"}


# ----------------------------------------------------------------------------- Eq. 8, CRLoc
def test_eq8_correlation_softmax_exact():
    a = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # (1, C=2, 1, 2): u0 = (1, 0), u1 = (0, 2)
    r = torch.tensor([[[[1.0, 0.0, 1.0]], [[0.0, 1.0, 1.0]]]])  # (1, 2, 1, 3): v = (1,0), (0,1), (1,1)
    out = correlation_softmax(a, r, normalize=False)
    assert out.shape == (1, 2, 1, 3)
    ref0 = torch.softmax(torch.tensor([1.0, 0.0, 1.0]), 0)
    ref1 = torch.softmax(torch.tensor([0.0, 2.0, 2.0]), 0)
    torch.testing.assert_close(out[0, 0, 0], ref0)
    torch.testing.assert_close(out[0, 1, 0], ref1)
    # normalised: cosines / temperature, every channel a distribution over v
    outn = correlation_softmax(a, r, temperature=0.5)
    c = 1 / math.sqrt(2)
    torch.testing.assert_close(outn[0, 1, 0], torch.softmax(torch.tensor([0.0, 1.0, c]) / 0.5, 0))
    torch.testing.assert_close(outn.sum(dim=(2, 3)), torch.ones(1, 2))
    with pytest.raises(ValueError, match="same B and C"):
        correlation_softmax(a, r[:, :1])


def test_crloc_shapes_and_regions_inside_the_map():
    torch.manual_seed(0)
    crloc = CRLoc((4, 2))
    assert sum(isinstance(m, torch.nn.Conv2d) for m in crloc.modules()) == 3
    assert sum(isinstance(m, torch.nn.Linear) for m in crloc.modules()) == 1
    with torch.no_grad():
        crloc.locator.fc.weight.normal_(0, 1.0)
    box = crloc(torch.randn(6, 16, 4, 2), torch.randn(6, 16, 4, 2))
    assert box.shape == (6, 4)
    s, t = box[:, :2], box[:, 2:]
    assert (s > 0.1 - 1e-6).all() and (s <= 1).all() and ((t.abs() + s) <= 1 + 1e-6).all()
    with pytest.raises(ValueError, match=r"built for \(4, 2\)"):
        crloc(torch.randn(1, 16, 4, 2), torch.randn(1, 16, 8, 4))


def test_crloc_on_a_map_with_itself_finds_the_region_near_its_own_box():
    """Trained briefly on random maps with Eq. 11's grid loss (anchor = a region of the map itself),
    CRLoc locates regions of fresh maps: the located region overlaps the true one."""
    torch.manual_seed(0)
    crloc = CRLoc((8, 4))
    opt = torch.optim.Adam(crloc.parameters(), 3e-3)
    for _ in range(200):
        maps, box = torch.randn(32, 16, 8, 4), _regions(32)
        loss = pp_cycle_loss(crloc(sample_region(maps, box, (8, 4)), maps), box)
        opt.zero_grad()
        loss.backward()
        opt.step()
    crloc.eval()
    with torch.no_grad():
        maps, box = torch.randn(64, 16, 8, 4), _regions(64)
        iou = region_overlaps(crloc(sample_region(maps, box, (8, 4)), maps), box)[0]
    assert iou.mean() > 0.7 and (iou > 0.5).float().mean() > 0.9


# ----------------------------------------------------------------------------- Eq. 11
def test_eq11_cycle_loss_is_zero_for_an_exact_inverse():
    box = _regions(5)
    assert pp_cycle_loss(box, box.clone()).item() == 0.0
    # the region found by warping x -> y with a region and back with its inverse is the start
    y_of_x = torch.tensor([[0.5, 0.5, 0.2, -0.1]])
    composed = torch.cat([y_of_x[:, :2] * inverse_regions(y_of_x)[:, :2],
                          y_of_x[:, :2] * inverse_regions(y_of_x)[:, 2:] + y_of_x[:, 2:]], 1)
    assert pp_cycle_loss(composed, torch.tensor([[1.0, 1.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-12)


def test_eq11_cycle_loss_exact_value_for_a_known_pair_of_boxes():
    """Grid 2 x 2 (points +-0.5): pred (0.5, 1, 0.1, 0), target (1, 1, 0, 0.2).
    x error: -0.5 g_x + 0.1 in {0.35, -0.15}; y error: -0.2.
    mean of (ex^2 + ey^2) = ((0.35^2 + 0.04) * 2 + (0.15^2 + 0.04) * 2) / 4 = 0.1125."""
    pred = torch.tensor([[0.5, 1.0, 0.1, 0.0]])
    true = torch.tensor([[1.0, 1.0, 0.0, 0.2]])
    torch.testing.assert_close(grid_points((2, 2)), torch.tensor([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]))
    assert pp_cycle_loss(pred, true, grid_size=(2, 2)).item() == pytest.approx(0.1125, rel=1e-6)
    # the default 8 x 8 grid: closed form ds^2 E[g^2] + dt^2 per axis, E[g^2] = (1 - 1/64) / 3
    e_g2 = (1 - 1 / 64) / 3
    assert pp_cycle_loss(pred, true).item() == pytest.approx(0.25 * e_g2 + 0.01 + 0.04, rel=1e-5)
    # the loss teaches the cycle's region, not its target
    p = pred.clone().requires_grad_(True)
    t = true.clone().requires_grad_(True)
    pp_cycle_loss(p, t).backward()
    assert p.grad.abs().sum() > 0 and t.grad is None


# ----------------------------------------------------------------------------- Eq. 12, negatives
def test_region_overlaps_exact():
    a = torch.tensor([0.5, 1.0, -0.5, 0.0])  # left half of the map: [-1, 0] x [-1, 1], area 2
    b = torch.tensor([1.0, 0.5, 0.0, -0.5])  # top half: [-1, 1] x [-1, 0], area 2
    iou, iomin = region_overlaps(a, b)  # the top-left quarter, area 1, is shared
    assert iou.item() == pytest.approx(1 / 3) and iomin.item() == pytest.approx(0.5)
    inner = torch.tensor([0.25, 0.25, -0.5, 0.0])  # inside a
    iou, iomin = region_overlaps(a, inner)
    assert iou.item() == pytest.approx(1 / 8) and iomin.item() == pytest.approx(1.0)


def test_negative_sampling_respects_both_principles():
    torch.manual_seed(0)
    pos = torch.cat([_regions(500, 0.1, 0.9), torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.95, 0.95, 0.0, 0.0]])])
    for beta in (0.5, 0.3):
        neg, valid = sample_negative_regions(pos, beta=beta, candidates=32)
        assert neg.shape == pos.shape and valid.dtype == torch.bool
        iou, iomin = region_overlaps(neg, pos)
        assert (iou[valid] < beta).all(), "principle 1: overlap below beta"
        assert (iomin[valid] < beta).all(), "principle 2: no region mostly inside the other"
        assert ((neg[:, 2:].abs() + neg[:, :2]) <= 1 + 1e-6).all()  # inside the reference map
        assert valid[:500].float().mean() > 0.8
        assert not valid[500:].any()  # a positive as large as the map leaves no negative
    # a small IoU is not enough: a small region inside the positive is refused (principle 2)
    big = torch.tensor([[0.9, 0.9, 0.0, 0.0]])
    assert region_overlaps(torch.tensor([[0.2, 0.2, 0.0, 0.0]]), big)[0].item() < 0.5
    neg, valid = sample_negative_regions(big.expand(200, 4), candidates=64)
    assert (region_overlaps(neg, big)[1][valid] < 0.5).all()
    with pytest.raises(ValueError, match="beta"):
        sample_negative_regions(pos, beta=0.0)


def test_eq12_pp_triplet_exact():
    c = torch.zeros(2, 2, 1, 1)
    anchor = c.clone()
    anchor[:, 0] = 1  # every anchor vector (1, 0)
    pos = c.clone()
    pos[0, 0], pos[1, 1] = 1, 1  # sample 0 = anchor (d 0), sample 1 orthogonal (d 2)
    neg = c.clone()
    neg[:, 1] = 1  # orthogonal (d 2)
    torch.testing.assert_close(region_distance(anchor, pos), torch.tensor([0.0, 2.0]))
    # hinge: [0 - 2 + 0.3]_+ = 0 and [2 - 2 + 0.3]_+ = 0.3
    assert pp_triplet_loss(anchor, pos, neg, margin=0.3).item() == pytest.approx(0.15)
    valid = torch.tensor([False, True])
    assert pp_triplet_loss(anchor, pos, neg, 0.3, valid).item() == pytest.approx(0.3)
    none = pp_triplet_loss(anchor, pos, neg, 0.3, torch.tensor([False, False]))
    assert none.item() == 0.0
    # a magnitude does not change the normalised distances
    torch.testing.assert_close(region_distance(3 * anchor, pos), region_distance(anchor, pos))


def test_eq13_and_eq6():
    l_r, l_f, l_c, l_t = (torch.tensor(v) for v in (1.0, 2.0, 0.5, 0.25))
    assert crloc_loss(l_c, l_t).item() == pytest.approx(10 * 0.5 + 0.25)
    assert crloc_loss(None, l_t, 10, 2).item() == pytest.approx(0.5)
    assert crloc_loss(None, None) is None
    assert ppcl_total_loss(l_r, l_f, l_c, l_t).item() == pytest.approx(1 + 2 + 5 + 0.25)
    assert ppcl_total_loss(l_r, l_f, l_c, None, lambda_cyc=1).item() == pytest.approx(3.5)
    assert ppcl_total_loss(l_r, l_f).item() == pytest.approx(3.0)


# ----------------------------------------------------------------------------- the model, matching
def _tiny_model(seed: int = 0, **kw):
    from reidlib.models.baseline import Baseline
    from reidlib.models.ppcl import PPCL

    torch.manual_seed(seed)
    reid = Baseline(5, backbone="resnet10s", pretrained=False, metric="cosine")
    model = PPCL(reid, GLRec("resnet10s"), image_size=SIZE, **kw)
    with torch.no_grad():  # GLRec: varied regions, some inputs partial, some holistic; CRLoc: varied boxes
        head = model.glrec.regressor.head[-1]
        head.weight.normal_(0, 0.2)
        head.bias.copy_(torch.tensor([0.6, 0.7, 0.1, -0.2, 0.15]))
        model.crloc.locator.fc.weight.normal_(0, 0.3)
    return model.eval()


def _reference_pair_distance(model, qf, gf, match):
    """The slow loop: one (query, gallery) pair at a time, written from the definitions."""
    fs = model.feat_size
    t = model.crloc.temperature

    def region(m, st):
        sx, sy, tx, ty = st.tolist()
        theta = torch.tensor([[[sx, 0.0, tx], [0.0, sy, ty]]])
        grid = F.affine_grid(theta, [1, m.shape[1], *fs], align_corners=False)
        return F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def vec(m):
        return F.normalize(model.reid.bottleneck(m.mean(dim=(2, 3))), dim=1)[0]

    out = torch.empty(len(qf), len(gf))
    with torch.no_grad():
        for i in range(len(qf)):
            for j in range(len(gf)):
                qp, gp = bool(qf.extra["partial"][i]), bool(gf.extra["partial"][j])
                a, r = (gf, j), (qf, i)
                if qp or not gp:
                    a, r = (qf, i), (gf, j)
                a_map, r_map = a[0].extra["fmap"][a[1]][None], r[0].extra["fmap"][r[1]][None]
                a_reg, a_part = a[0].extra["region"][a[1]], bool(a[0].extra["partial"][a[1]])
                anchor = region(a_map, a_reg)
                if match == "glrec":
                    r_reg = a_reg
                elif not a_part:
                    r_reg = torch.tensor([1.0, 1.0, 0.0, 0.0])
                else:
                    u = F.normalize(anchor.flatten(2)[0], dim=0)  # (C, U)
                    v = F.normalize(r_map.flatten(2)[0], dim=0)  # (C, V)
                    corr = torch.softmax(u.t() @ v / t, dim=1).view(1, -1, *fs)
                    r_reg = model.crloc.locator(corr)[0]
                out[i, j] = 1 - (vec(anchor) * vec(region(r_map, r_reg))).sum()
    return out


def test_extract_features_and_mixed_gate():
    model = _tiny_model()
    torch.manual_seed(1)
    f = model.extract(torch.rand(6, 3, *SIZE))
    assert f.global_feat.shape == (6, model.reid.feat_dim)
    assert f.extra["fmap"].shape == (6, model.reid.feat_dim, *model.feat_size)
    assert f.extra["region"].shape == (6, 4) and f.extra["partial"].dtype == torch.bool
    assert model.feat_size == (4, 2)


def test_pairwise_matcher_equals_slow_reference():
    model = _tiny_model()
    torch.manual_seed(1)
    qf, gf = model.extract(torch.rand(4, 3, *SIZE)), model.extract(torch.rand(5, 3, *SIZE))
    part = torch.cat([qf.extra["partial"], gf.extra["partial"]])
    assert part.any() and not part.all()  # holistic and partial images, so every anchor case occurs
    assert (~qf.extra["partial"]).any() and gf.extra["partial"].any()  # some pairs swap the anchor
    for match in ("crloc", "glrec"):
        ref = _reference_pair_distance(model, qf, gf, match)
        for bp in (1, 3, 64):  # batch boundaries inside and across query rows
            dist = model.matcher(shortlist=None, batch_pairs=bp, match=match)(qf, gf)
            torch.testing.assert_close(dist, ref, atol=1e-5, rtol=1e-4)
    # the regions matter (the test would be vacuous otherwise)
    glob = model.matcher(match="global")(qf, gf)
    assert (glob - _reference_pair_distance(model, qf, gf, "crloc")).abs().max() > 1e-3


def test_holistic_pairs_reduce_to_the_global_distance():
    model = _tiny_model()
    with torch.no_grad():
        model.glrec.regressor.head[-1].weight.zero_()
        model.glrec.regressor.head[-1].bias[4] = -5.0  # every image holistic
    torch.manual_seed(2)
    qf, gf = model.extract(torch.rand(3, 3, *SIZE)), model.extract(torch.rand(4, 3, *SIZE))
    torch.testing.assert_close(model.matcher(shortlist=None)(qf, gf), model.global_matcher()(qf, gf),
                               atol=1e-5, rtol=1e-4)


def test_shortlist_with_k_equal_gallery_size_is_all_pairs():
    model = _tiny_model()
    torch.manual_seed(3)
    qf, gf = model.extract(torch.rand(3, 3, *SIZE)), model.extract(torch.rand(6, 3, *SIZE))
    check_shortlist_contract(model, qf, gf, k=2)
    m = _tiny_model(shortlist=4, batch_pairs=32).matcher()
    assert m.shortlist == 4 and m.batch_pairs == 32


def test_pair_regions_for_figures():
    model = _tiny_model()
    torch.manual_seed(1)
    qf, gf = model.extract(torch.rand(2, 3, *SIZE)), model.extract(torch.rand(2, 3, *SIZE))
    r = model.pair_regions(qf, gf)
    assert r["reference_region"].shape == (2, 4) and r["anchor"].shape[-2:] == model.feat_size
    with pytest.raises(ValueError, match="no regions"):
        model.pair_regions(qf, gf, match="global")
    with pytest.raises(ValueError, match="lack extra"):
        model.pair_regions(qf, type(qf)(global_feat=gf.global_feat))


def test_determinism():
    x = torch.rand(3, 3, *SIZE, generator=torch.Generator().manual_seed(5))
    a, b = _tiny_model(seed=7), _tiny_model(seed=7)
    fa, fb = a.extract(x), b.extract(x)
    assert torch.equal(fa.extra["fmap"], fb.extra["fmap"]) and torch.equal(fa.extra["region"], fb.extra["region"])
    assert torch.equal(a.matcher(shortlist=None)(fa, fa), b.matcher(shortlist=None)(fb, fb))
    # extraction does not depend on the batch an image comes in
    f1 = a.extract(x[:1])
    torch.testing.assert_close(f1.extra["fmap"], fa.extra["fmap"][:1], atol=1e-5, rtol=1e-5)
    # the training forward (negatives, Y = shuffle(X)) is reproducible under a seed
    a.train()
    outs = []
    for _ in range(2):
        torch.manual_seed(11)
        perm = torch.randperm(3)
        outs.append(a(x, x.flip(0), perm=perm))
    for k in ("box_xy", "box_yx", "neg_box", "neg_valid", "logits"):
        assert torch.equal(outs[0][k], outs[1][k]), k


def test_training_forward_outputs():
    model = _tiny_model().train()
    x_p, x = torch.randn(4, 3, *SIZE), torch.randn(4, 3, *SIZE)
    perm = torch.tensor([2, 0, 3, 1])
    out = model(x_p, x, perm=perm)
    assert out["logits"].shape == (8, 5) and out["feat"].shape == (8, model.reid.feat_dim)
    for k in ("anchor_region", "pos_region", "neg_region"):
        assert out[k].shape == (4, model.reid.feat_dim, *model.feat_size)
    assert out["box_xy"].shape == out["box_yx"].shape == out["neg_box"].shape == (4, 4)
    # h_y = h_x[perm]: the positive region is read from the shuffled holistic maps
    h_x = model.reid.backbone(torch.cat([out["rectified"], x]))[4:]
    torch.testing.assert_close(out["pos_region"], sample_region(h_x[perm], out["box_xy"], model.feat_size),
                               atol=1e-5, rtol=1e-4)
    without = model(x_p, x)  # no perm: GLRec and L_F's outputs only
    assert "box_xy" not in without and without["logits"].shape == (8, 5)
    assert model(None, x)["logits"].shape == (4, 5)  # F alone
    with pytest.raises(TypeError, match="partial crops"):
        model()
    with pytest.raises(ValueError, match="permutation"):
        model(x_p, x, perm=torch.arange(3))


# ----------------------------------------------------------------------------- the method
def _method(stage: str = "ppcl", variant: str = "ppcl", tmp_path=None, **extra):
    from reidlib.methods.ppcl import PPCLMethod

    cfg = PPCLMethod.recipe("smoke", variant=variant, **extra).replace(image_size=SIZE)
    if stage == "glrec":
        return PPCLMethod(cfg, 4)
    glrec = tmp_path / "glrec.safetensors"
    if not glrec.exists():
        from reidlib.engine.checkpoint import save_weights

        torch.manual_seed(0)
        save_weights(glrec, PPCLMethod(cfg, 4).build_model())
    return PPCLMethod(PPCLMethod.stage_recipe(cfg, stage, glrec_weights=glrec), 4)


def _batch(n: int = 8):
    torch.manual_seed(0)
    st = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.6, 0.5, 0.2, -0.4]]).repeat(n // 2, 1)
    return {"image": torch.randn(n, 3, *SIZE), "holistic": torch.randn(n, 3, *SIZE),
            "label": torch.arange(n) // 2, "scale_translation": st,
            "is_partial": torch.tensor([False, True]).repeat(n // 2)}


def test_registered_and_recipes():
    from reidlib.methods.ppcl import PPCL_VARIANTS, PPCLMethod
    from reidlib.methods.registry import get_method

    assert get_method("ppcl") is PPCLMethod
    assert list(PPCL_VARIANTS) == ["r", "r-l-triplet", "r-l-cycle", "ppcl"]
    full = PPCLMethod.recipe("full")
    x = full.extra
    assert (x["lambda_cyc"], x["lambda_tri"], x["beta"]) == (10.0, 1.0, 0.5)
    assert full.optimizer == "sgd" and full.lr == 5e-2 and full.epochs == 160 and full.batch_size == 128
    assert x["glrec_backbone"] == "resnet18" and x["glrec_pretrained"] and full.backbone == "resnet50"
    assert [s.name for s in PPCLMethod.stages(full)] == ["glrec", "backbone", "ppcl"]
    bb = PPCLMethod.stage_recipe(full, "backbone", glrec_weights="g.safetensors")
    assert bb.epochs == 120 and bb.lr == 5e-4 and bb.milestones == (40, 80) and bb.batch_size == 64
    assert bb.extra["stage"] == "backbone" and bb.extra["glrec_weights"] == "g.safetensors"
    pp = PPCLMethod.stage_recipe(full, "ppcl", init_weights="b.safetensors")
    assert pp.epochs == 40 and pp.optimizer == "adam" and pp.lr == 5e-4 and pp.sampler == "pk"
    smoke = PPCLMethod.recipe("smoke")
    assert [s.name for s in PPCLMethod.stages(smoke)] == ["glrec", "ppcl"]
    assert smoke.image_size == (128, 64) and smoke.backbone == "resnet10s" and not smoke.pretrained
    # a later stage's recipe alone is one stage
    one = PPCLMethod.stage_recipe(smoke, "ppcl", glrec_weights="g")
    assert [s.name for s in PPCLMethod.stages(one)] == ["ppcl"]


def test_book_recipe_budget_matches_the_baseline():
    """The comment's arithmetic: GLRec 2 x 88 x 128 crops + PPCL 4 x 366 x 32 pairs x 2 images
    = 116,224, within 1 % of the baseline's 10 epochs of PK batches of 64 (counted alike)."""
    from reidlib.data.sampler import build_sampler
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.methods.baseline import BOOK_BACKBONE_WEIGHTS, BaselineMethod
    from reidlib.methods.ppcl import PPCLMethod

    pids = [r.pid for r in SynthPeds("market", seed=0, size="smoke").train]

    def images(cfg, per_item):
        n = len(build_sampler(pids, cfg.sampler, cfg.batch_p, cfg.batch_k, 0)) // cfg.batch_size
        return per_item * cfg.epochs * cfg.batch_size * min(n, cfg.max_iters_per_epoch or n)

    g = PPCLMethod.recipe("book")
    p = PPCLMethod.stage_recipe(g, "ppcl", glrec_weights="x")
    ours = images(g, 1) + images(p, 2)
    assert images(g, 1) == 2 * 88 * 128 and images(p, 2) == 4 * 366 * 32 * 2 and ours == 116_224
    base = images(BaselineMethod.recipe("book"), 1)
    assert abs(ours / base - 1) < 0.01
    assert g.extra["backbone_weights"] == g.extra["glrec_backbone_weights"] == BOOK_BACKBONE_WEIGHTS
    assert p.pretrained and p.image_size == (128, 64)


def test_settings_errors_name_the_key_and_accepted_values(tmp_path):
    from reidlib.methods.ppcl import PPCLMethod, PPCLSettings

    with pytest.raises(ValueError, match=r"variant='r\+'.*'r', 'r-l-triplet', 'r-l-cycle', 'ppcl'"):
        PPCLSettings(variant="r+")
    with pytest.raises(ValueError, match=r"beta=0\.0 is out of range"):
        PPCLSettings(beta=0.0)
    with pytest.raises(ValueError, match=r"strategy='diagonal'.*'ppcl-free'"):
        PPCLSettings(strategy="diagonal")
    with pytest.raises(ValueError, match=r"match=.*'auto', 'global', 'glrec', 'crloc'"):
        PPCLSettings(match="best")
    with pytest.raises(ValueError, match="match='crloc' needs a trained CRLoc"):
        PPCLSettings(variant="r", match="crloc")
    with pytest.raises(ValueError, match=r"ppcl_stage has unknown TrainConfig fields \['epoch'\]"):
        PPCLSettings(ppcl_stage={"epoch": 3})
    with pytest.raises(ValueError, match=r"label_smooth=1\.0 is out of range"):
        PPCLSettings(label_smooth=1.0)
    with pytest.raises(ValueError, match=r"glrec_backbone='resnet99'.*'resnet18'"):
        PPCLSettings(glrec_backbone="resnet99")
    with pytest.raises(ValueError, match=r"stage='final'.*'glrec', 'backbone', 'ppcl'"):
        PPCLSettings(stage="final")
    with pytest.raises(ValueError, match=r"unknown extra settings \['lambda_cycle'\].*did you mean 'lambda_cyc'"):
        PPCLMethod.recipe("smoke", lambda_cycle=1.0)
    with pytest.raises(ValueError, match="unknown PPCL variant"):
        PPCLMethod.recipe("smoke", variant="pad")
    with pytest.raises(ValueError, match="unknown profile"):
        PPCLMethod.recipe("huge")
    cfg = PPCLMethod.recipe("smoke")
    with pytest.raises(ValueError, match="needs the pre-trained GLRec"):
        PPCLMethod(PPCLMethod.stage_recipe(cfg, "ppcl"), 4)
    with pytest.raises(ValueError, match="sampler='pk'"):
        PPCLMethod(PPCLMethod.stage_recipe(cfg, "ppcl", glrec_weights="g").replace(sampler="random"), 4)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        PPCLMethod(PPCLMethod.stage_recipe(cfg, "ppcl", glrec_weights=str(tmp_path)), 4).build_model()


@pytest.mark.parametrize("variant", ["r", "r-l-triplet", "r-l-cycle", "ppcl"])
def test_variants_train_one_step(tmp_path, variant):
    from reidlib.methods.ppcl import PPCL_VARIANTS

    m = _method("ppcl", variant, tmp_path)
    model = m.build_model().train()
    assert model.match == ("crloc" if PPCL_VARIANTS[variant].crloc else "glrec")
    loss, logs = m.loss(model, _batch(), 0)
    assert torch.isfinite(loss)
    v = PPCL_VARIANTS[variant]
    assert ("L_pp_cycle" in logs) == v.cycle and ("L_pp_triplet" in logs) == v.triplet
    assert {"L_R_eq1", "L_R_bce", "L_F_ce", "L_F_tri", "gate_acc", "glrec_iou"} <= set(logs)
    assert all(isinstance(t, torch.Tensor) and not t.requires_grad for t in logs.values())
    loss.backward()
    crloc_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.crloc.parameters())
    assert crloc_grad == v.crloc
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.glrec.parameters())  # jointly trained
    groups = m.param_groups(model)
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_glrec_stage_loss_and_loading(tmp_path):
    from reidlib.methods.ppcl import load_glrec

    m = _method("glrec")
    g = m.build_model().train()
    assert isinstance(g, GLRec)
    batch = _batch()
    loss, logs = m.loss(g, batch, 0)
    # the untrained R predicts the identity with eta = 0.5: Eq. 1 = (0.4^2 + 0.5^2 + 0.2^2 + 0.4^2) / 2, BCE = log 2
    assert logs["L_R_eq1"].item() == pytest.approx((0.16 + 0.25 + 0.04 + 0.16) / 2, rel=1e-5)
    assert logs["L_R_bce"].item() == pytest.approx(math.log(2), rel=1e-5)
    assert logs["gate_acc"].item() == pytest.approx(0.5)  # eta = 0.5 counts as partial
    loss.backward()
    assert g.regressor.head[-1].bias.grad.abs().sum() > 0
    pm = _method("ppcl", tmp_path=tmp_path)
    model = pm.build_model()
    ref = GLRec("resnet10s")
    load_glrec(ref, tmp_path / "glrec.safetensors")
    for (k, a), b in zip(model.glrec.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(ValueError, match="does not hold a GLRec with a resnet18"):
        load_glrec(GLRec("resnet18"), tmp_path / "glrec.safetensors")


def test_train_dataset_items_on_tiny_synthpeds(tmp_path):
    from reidlib.data.synthpeds import SynthPeds

    ds = SynthPeds("tiny", seed=0)
    m = _method("glrec")
    tr = m.train_dataset(ds, ds.relabel_train())
    torch.manual_seed(0)
    items = [tr[i] for i in range(8)]
    assert {bool(it["is_partial"]) for it in items} == {True, False}  # p_partial = 0.5: the gate's both classes
    for it in items:
        assert it["image"].shape == (3, *SIZE) and it["scale_translation"].shape == (4,)
        if not it["is_partial"]:
            assert it["scale_translation"].tolist() == [1.0, 1.0, 0.0, 0.0]
        else:
            assert 0.17 <= it["ratio"] <= 0.83  # ppcl-free: 20-80 % of the person's box
    pm = _method("ppcl", tmp_path=tmp_path)
    it = pm.train_dataset(ds, ds.relabel_train())[0]
    assert it["holistic"].shape == (3, *SIZE) and "label" in it


def test_smoke_training_through_train_stages(tmp_path):
    """Two iterations (one per stage) on SynthPeds tiny; the run is reused and loads back."""
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.engine.runs import load_run, train_stages
    from reidlib.methods.ppcl import PPCLMethod
    from reidlib.models.ppcl import PPCL

    ds = SynthPeds("tiny", seed=0)
    cfg = PPCLMethod.recipe("smoke").replace(image_size=SIZE, batch_p=4, batch_k=2, epochs=1, max_iters_per_epoch=1)
    cfg = cfg.replace(extra={**cfg.extra, "ppcl_stage": {**cfg.extra["ppcl_stage"], "batch_p": 4, "batch_k": 2,
                                                          "epochs": 1, "max_iters_per_epoch": 1}})
    out = tmp_path / "run"
    fit = train_stages(PPCLMethod, cfg, ds, out, device="cpu", progress=False)
    assert (out / "glrec" / "model.safetensors").exists() and (out / "ppcl" / "model.safetensors").exists()
    assert {"L_R_eq1", "glrec_iou"} <= set(fit.metrics["glrec"]["last_epoch"])
    assert {"L_pp_cycle", "L_pp_triplet", "L_F_tri", "cycle_iou"} <= set(fit.metrics["ppcl"]["last_epoch"])
    model = fit.model
    assert isinstance(model, PPCL) and not model.training
    x = torch.rand(4, 3, *SIZE)
    f = model.extract(x)
    d = model.matcher()(f, f)
    assert d.shape == (4, 4) and torch.isfinite(d).all()
    again = train_stages(PPCLMethod, cfg, ds, out, device="cpu", resume=True, progress=False)
    assert again.reused
    for a, b in zip(model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    back = load_run(out).model
    torch.testing.assert_close(back.matcher()(back.extract(x), back.extract(x)), d)


def test_glrec_once_then_each_variant_from_it(tmp_path):
    """A chapter trains GLRec once (glrec_recipe: one stage) and starts each variant's PPCL stage
    from that run (ppcl_recipe); full's F stage is its own recipe (backbone_recipe)."""
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.engine.runs import train_stages
    from reidlib.methods.ppcl import PPCLMethod, PPCLSettings

    g = PPCLMethod.glrec_recipe("smoke")
    assert [s.name for s in PPCLMethod.stages(g)] == ["glrec"] and g.extra["glrec_only"]
    assert g.replace(extra={**g.extra, "glrec_only": False}) == PPCLMethod.recipe("smoke")
    p = PPCLMethod.ppcl_recipe("smoke", "r-l-cycle", glrec_weights="runs/g", lambda_cyc=1.0)
    assert [s.name for s in PPCLMethod.stages(p)] == ["ppcl"]
    assert p.extra["stage"] == "ppcl" and not p.extra["glrec_only"] and p.extra["glrec_weights"] == "runs/g"
    assert p.extra["variant"] == "r-l-cycle" and p.extra["lambda_cyc"] == 1.0 and p.sampler == "pk"
    assert p == PPCLMethod.stage_recipe(PPCLMethod.recipe("smoke", "r-l-cycle", lambda_cyc=1.0), "ppcl",
                                        glrec_weights="runs/g")
    # the GLRec-only flag leaves no trace in a later stage derived from it
    assert PPCLMethod.stage_recipe(g, "ppcl", glrec_weights="runs/g").extra["glrec_only"] is False
    with pytest.raises(ValueError, match="exactly one of glrec_weights"):
        PPCLMethod.ppcl_recipe("smoke")
    with pytest.raises(ValueError, match="glrec_only=True trains the GLRec stage alone"):
        PPCLSettings(stage="ppcl", glrec_only=True)
    with pytest.raises(ValueError, match="no backbone stage"):
        PPCLMethod.backbone_recipe("smoke", "runs/g")
    bb = PPCLMethod.backbone_recipe("full", "runs/g")
    assert bb.extra["stage"] == "backbone" and bb.epochs == 120 and [s.name for s in PPCLMethod.stages(bb)] == ["backbone"]
    assert PPCLMethod.ppcl_recipe("full", init_weights="runs/b").extra["init_weights"] == "runs/b"
    # one iteration each on SynthPeds tiny: GLRec's run, then a variant's PPCL stage from its folder
    ds = SynthPeds("tiny", seed=0)
    tiny = dict(image_size=SIZE, batch_p=4, batch_k=2, epochs=1, max_iters_per_epoch=1)
    g = g.replace(**tiny)
    glrec_fit = train_stages(PPCLMethod, g, ds, tmp_path / "glrec", device="cpu", progress=False)
    assert isinstance(glrec_fit.model, GLRec) and (tmp_path / "glrec" / "model.safetensors").exists()
    p = PPCLMethod.ppcl_recipe("smoke", "ppcl", glrec_weights=str(tmp_path / "glrec")).replace(**tiny)
    fit = train_stages(PPCLMethod, p, ds, tmp_path / "ppcl", device="cpu", progress=False)
    assert {"L_pp_cycle", "L_pp_triplet"} <= set(fit.metrics["ppcl"]["last_epoch"])
