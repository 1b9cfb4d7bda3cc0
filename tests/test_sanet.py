"""SANet: the AFE's wiring (Fig. 3a), shapes and gradients for every setting, hard routing at test equals
the argmax path, the fixed FE, determinism, Eq. 6 and Eq. 7 against slow references, Table 3's variants,
settings errors, recipes and budgets, the batch recipe on a tree on disk, a 2-iteration training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reidlib.losses.sanet import branch_triplet_losses, sanet_total_loss
from reidlib.metrics.distance import common_parts_distance
from reidlib.models.sanet import AFE, SANet, afe_connections, scale_sizes, scale_transform
from slow_reference import slow_batch_hard

SIZE = (64, 32)  # layer 3 at 4 x 2 with resnet10s; the AFE's scales 4x2, 2x1, 1x1


def _tiny(seed: int = 0, **kw) -> SANet:
    torch.manual_seed(seed)
    return SANet(6, backbone="resnet10s", pretrained=False, **kw)


def _reachable(num_layers: int) -> torch.Tensor:
    r = torch.zeros(num_layers, 3, dtype=torch.bool)
    for l, layer in enumerate(afe_connections(num_layers)):
        r[l, :len(layer)] = True
    return r


# ----------------------------------------------------------------------------- Fig. 3a
@pytest.mark.parametrize("layers", [3, 5, 7])
def test_afe_connection_pattern(layers):
    """The documented wiring: the entry at scale 0; layer l has the cells at scales 0..min(l, 2);
    a cell at scale s sends up (s-1), keep (s) and down (s+1) where those scales exist."""
    conn = afe_connections(layers)
    assert [len(layer) for layer in conn] == [min(l + 1, 3) for l in range(layers)]
    assert sum(len(layer) for layer in conn) == {3: 6, 5: 12, 7: 18}[layers]
    for layer in conn:
        for s, targets in enumerate(layer):
            assert targets == tuple(t for t in (s - 1, s, s + 1) if 0 <= t <= 2)
    for l in range(1, layers):  # every cell is reached from the layer before, and only from its neighbours
        for s in range(len(conn[l])):
            senders = [p for p, targets in enumerate(conn[l - 1]) if s in targets]
            assert senders and all(abs(p - s) <= 1 for p in senders)
    if layers >= 3:  # the text's example: c_2 receives from c_1 (down) and c_2 (keep), and sends up to c_1
        assert 1 in conn[1][0] and 1 in conn[1][1] and 0 in conn[2][1]
    afe = AFE(8, num_layers=layers)
    assert [len(layer) for layer in afe.cells] == [len(layer) for layer in conn]
    with pytest.raises(ValueError, match="positive int"):
        afe_connections(0)


def test_scale_sizes_and_transforms():
    assert scale_sizes(8, 4) == [(8, 4), (4, 2), (2, 1)] and scale_sizes(6, 2) == [(6, 2), (3, 1), (2, 1)]
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert scale_transform(x, (4, 4)) is x
    torch.testing.assert_close(scale_transform(x, (2, 2)), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert scale_transform(x, (8, 8)).shape == (1, 1, 8, 8)


# ----------------------------------------------------------------------------- shapes and gradients
@pytest.mark.parametrize("mode,hard", [("fixed", True), ("adaptive", True), ("adaptive", False)])
@pytest.mark.parametrize("layers", [3, 5, 7])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_afe_shape_and_gradient_flow(mode, hard, layers, kernel):
    torch.manual_seed(0)
    afe = AFE(8, num_layers=layers, kernel_size=kernel, mode=mode, gumbel_hard=hard).train()
    x = torch.randn(3, 8, 8, 4, requires_grad=True)
    out, aux = afe(x)
    assert out.shape == x.shape
    assert aux["gates"].shape == (3, layers, 3, 3) and aux["routes"].shape == aux["cell_active"].shape == (3, layers, 3)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    first = afe.cells[0][0]  # the entry cell is always active
    assert first.base[0].weight.grad.abs().sum() > 0
    if mode == "adaptive":
        assert first.gate_conv.weight.grad.abs().sum() > 0  # the gates learn through the Gumbel softmax
    if mode == "fixed" or not hard:  # every reachable cell carries a share of every image
        for layer in afe.cells:
            for cell in layer:
                assert cell.base[0].weight.grad.abs().sum() > 0
    else:  # one path per image: exactly one active cell per layer
        assert (aux["cell_active"].sum(dim=2) == 1).all()


def test_sanet_outputs_and_table3_switches():
    x = torch.randn(4, 3, *SIZE)
    for afe, glob, p in (("none", False, 4), ("none", True, 5), ("fixed", True, 5), ("adaptive", True, 5)):
        model = _tiny(afe=afe, global_branch=glob)
        out = model(x)
        assert out["parts"].shape == (4, p, 128) and out["mask_logits"].shape == (4, p, 4, 2)
        assert ("routes" in out) == (afe != "none") and (model.afe is None) == (afe == "none")
        f = model.eval().extract(x)
        assert f.parts.shape == (4, p, 128) and f.visibility.shape == (4, p)
        assert ("routes" in f.extra) == (afe != "none")
    assert _tiny().branch_names[-1] == "global" and _tiny().mask_pooling == "soft"
    fixed = _tiny(afe="fixed")
    assert all(c.gate_conv is None for layer in fixed.afe.cells for c in layer)
    with pytest.raises(ValueError, match="afe='dynamic'"):
        _tiny(afe="dynamic")
    with pytest.raises(ValueError, match="positive odd int"):
        _tiny(afe_kernel=2)
    with pytest.raises(ValueError, match="tau"):
        _tiny(tau=0.0)


# ----------------------------------------------------------------------------- routing at test
def test_hard_routing_at_test_is_the_argmax_path():
    """Eval mode: in every layer one cell is active, its gate row is one-hot, and the path is the
    one a hand-run argmax traversal takes (Eq. 1 argmax, Eq. 2, Eq. 3), output included."""
    model = _tiny(seed=2).eval()
    with torch.no_grad():  # gates far from uniform, so that the images take different paths
        for layer in model.afe.cells:
            for cell in layer:
                cell.gate_conv.weight.normal_(0, 0.5)
    x = torch.randn(6, 3, *SIZE)
    with torch.no_grad():
        feat3 = model.backbone(x)
        out, aux = model.afe(feat3)
    gates, routes, active = aux["gates"], aux["routes"], aux["cell_active"]
    assert (active.sum(dim=2) == 1).all()
    rows = gates[active]  # (N * L, 3): the active cells' rows
    assert torch.equal(rows.sum(1), torch.ones(rows.shape[0])) and set(rows.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(gates[~active], torch.zeros_like(gates[~active]))
    assert torch.equal(routes[~active], torch.full_like(routes[~active], -1))
    sizes = scale_sizes(*feat3.shape[-2:])
    with torch.no_grad():
        for n in range(x.shape[0]):
            f, s = feat3[n:n + 1], 0
            for l, layer in enumerate(model.afe.cells):
                assert bool(active[n, l, s])
                cell = layer[s]
                logits = cell.gate_conv(f).amax(dim=(2, 3))[0]
                t = cell.targets[int(logits.argmax())]
                assert int(routes[n, l, s]) == t
                f, s = scale_transform(cell.refine(f), sizes[t]), t
            ref = feat3[n:n + 1] + scale_transform(f, sizes[0])
            torch.testing.assert_close(out[n:n + 1], ref, atol=1e-5, rtol=1e-5)
    assert len({tuple(r) for r in routes.flatten(1).tolist()}) > 1  # the images do not all take one path
    torch.testing.assert_close(model.extract(x).extra["routes"], routes)


def test_fixed_fe_activates_every_path():
    model = _tiny(afe="fixed").eval()
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        feat3 = model.backbone(x)
        out, aux = model.afe(feat3)
    reach = _reachable(5)
    assert torch.equal(aux["cell_active"], reach.expand(2, 5, 3))
    expected = torch.zeros(5, 3, 3)
    for l, layer in enumerate(afe_connections(5)):
        for s, targets in enumerate(layer):
            expected[l, s, list(targets)] = 1.0
    assert torch.equal(aux["gates"], expected.expand(2, 5, 3, 3)) and (aux["routes"] == -1).all()
    sizes = scale_sizes(*feat3.shape[-2:])
    with torch.no_grad():  # every path summed, by hand
        feats = {0: feat3}
        for layer in model.afe.cells:
            nxt = {}
            for s, cell in enumerate(layer):
                r = cell.refine(feats[s])
                for t in cell.targets:
                    nxt[t] = nxt.get(t, 0) + scale_transform(r, sizes[t])
            feats = nxt
        ref = feat3 + sum(scale_transform(v, sizes[0]) for v in feats.values())
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_determinism_at_test_time():
    x = torch.randn(5, 3, *SIZE)
    a, b = _tiny(seed=7).eval(), _tiny(seed=7).eval()
    fa, fb = a.extract(x), b.extract(x)
    assert torch.equal(fa.parts, fb.parts) and torch.equal(fa.visibility, fb.visibility)
    assert torch.equal(fa.extra["routes"], a.extract(x).extra["routes"])
    part = a.extract(x[:2])  # independent of the batch an image is in
    torch.testing.assert_close(part.parts, fa.parts[:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.matcher()(fa, fa), b.matcher()(fb, fb))
    a.train()  # in training the Gumbel samples follow torch's generator
    torch.manual_seed(1)
    g1 = a(x)["gates"]
    torch.manual_seed(1)
    assert torch.equal(a(x)["gates"], g1)


# ----------------------------------------------------------------------------- Eq. 7
def _slow_eq7(qp, qv, gp, gv, normalize=True):
    out = torch.empty(qp.shape[0], gp.shape[0])
    for i in range(qp.shape[0]):
        for j in range(gp.shape[0]):
            common = [k for k in range(qp.shape[1]) if qv[i, k] > 0.5 and gv[j, k] > 0.5]
            if not common:
                out[i, j] = math.inf
                continue
            d = []
            for k in common:
                a, b = qp[i, k], gp[j, k]
                if normalize:
                    a, b = a / a.norm(), b / b.norm()
                d.append((a - b).norm().item())
            out[i, j] = sum(d) / len(d)
    return out


def test_eq7_distance_equals_a_slow_reference_over_commonly_visible_parts():
    torch.manual_seed(0)
    qp, gp = torch.randn(4, 5, 16), torch.randn(6, 5, 16)
    qv = (torch.rand(4, 5) > 0.4).float()
    gv = (torch.rand(6, 5) > 0.4).float()
    qv[0] = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])
    gv[0] = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0])  # (q0, g0): no commonly visible part
    from reidlib.models.base import Features

    matcher = _tiny().matcher()
    got = matcher(Features(parts=qp, visibility=qv), Features(parts=gp, visibility=gv))
    ref = _slow_eq7(qp, qv, gp, gv)
    assert math.isinf(got[0, 0]) and got[0, 0] > 0  # documented: +inf, ranks after every comparable pair
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(common_parts_distance(qp, qv, gp, gv), _slow_eq7(qp, qv, gp, gv, normalize=False),
                               atol=1e-4, rtol=1e-4)
    # an invisible part contributes nothing: change its features, the distances stay
    qp2 = qp.clone()
    qp2[qv < 0.5] = 100.0 * torch.randn_like(qp2[qv < 0.5])
    torch.testing.assert_close(matcher(Features(parts=qp2, visibility=qv), Features(parts=gp, visibility=gv)), got)


# ----------------------------------------------------------------------------- Eq. 6
def test_eq6_total_and_branch_triplet_against_a_slow_reference():
    torch.manual_seed(2)
    parts = torch.randn(8, 5, 6)
    vis = torch.rand(8, 5) > 0.25
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    got = branch_triplet_losses(parts, vis, labels, margin=0.3)
    for i in range(5):
        dist = [[(parts[a, i] - parts[b, i]).norm().item() for b in range(8)] for a in range(8)]
        valid = [[bool(vis[a, i] and vis[b, i]) for b in range(8)] for a in range(8)]
        assert got[i].item() == pytest.approx(slow_batch_hard(dist, valid, labels.tolist(), 0.3), rel=1e-4, abs=1e-6)
    l_id, l_tri, l_foc = torch.tensor([1.0, 2, 3, 4, 5]), torch.tensor([1.0, 1, 1, 1, 6]), torch.full((5,), 0.5)
    assert sanet_total_loss(l_id, l_tri, l_foc).item() == pytest.approx(15 + 0.1 * 10 + 2.5)
    assert sanet_total_loss(l_id, None, l_foc).item() == pytest.approx(17.5)


# ----------------------------------------------------------------------------- the method
def test_variants_settings_and_errors():
    from reidlib.methods.registry import get_method
    from reidlib.methods.sanet import SANET_VARIANTS, SANetMethod, SANetSettings

    assert get_method("sanet") is SANetMethod
    assert [v.label for v in SANET_VARIANTS.values()] == ["HPNet", "+ Global Branch", "+ Fixed FE", "SANet"]
    for name, v in SANET_VARIANTS.items():
        cfg = SANetMethod.recipe("smoke", name)
        model = SANetMethod(cfg, 6).build_model()
        assert model.afe_mode == v.afe and model.global_branch == v.global_branch and cfg.extra["variant"] == name
    t4 = SANetMethod(SANetMethod.recipe("smoke", afe_layers=3, afe_kernel=5), 6).build_model()
    assert t4.afe.num_layers == 3 and t4.afe.cells[0][0].base[0].kernel_size == (5, 5)
    with pytest.raises(ValueError, match=r"afe_layers=4 is not one of 3, 5, 7"):
        SANetSettings(afe_layers=4)
    with pytest.raises(ValueError, match=r"afe_kernel=2 is not one of 1, 3, 5"):
        SANetSettings(afe_kernel=2)
    with pytest.raises(ValueError, match=r"tau=0.0 is out of range"):
        SANetSettings(tau=0.0)
    with pytest.raises(ValueError, match=r"variant='sanet' \(SANet\) is afe='adaptive'.*got afe='fixed'"):
        SANetSettings(afe="fixed")
    with pytest.raises(ValueError, match=r"unknown variant 'best'"):
        SANetSettings(variant="best")
    with pytest.raises(ValueError, match="unknown SANet variant 'pcb'"):
        SANetMethod.recipe("smoke", "pcb")
    with pytest.raises(ValueError, match=r"unknown extra settings \['afe_layer'\].*did you mean 'afe_layers'"):
        SANetMethod.recipe("smoke", afe_layer=3)
    with pytest.raises(ValueError, match="unknown profile"):
        SANetMethod.recipe("huge")
    s = SANetSettings()
    assert (s.mask_pooling, s.triplet, s.triplet_weight, s.afe_layers, s.afe_kernel) == ("soft", "branch", 0.1, 5, 3)


def test_book_recipes_budget_matches_the_baseline():
    """HPNet's and SANet's book recipes: 10 epochs of the baseline's PK batches of 16 x 4 (the
    comment's 116,288 images), the pretrained book backbone, the book's shared fields."""
    from reidlib.data.sampler import build_sampler
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.methods.baseline import BOOK_BACKBONE_WEIGHTS, BaselineMethod, book_recipe_defaults
    from reidlib.methods.hpnet import HPNetMethod
    from reidlib.methods.sanet import SANET_VARIANTS, SANetMethod

    pids = [r.pid for r in SynthPeds("market", seed=0, size="smoke").train]

    def images(cfg):
        n = len(build_sampler(pids, cfg.sampler, cfg.batch_p, cfg.batch_k, 0)) // cfg.batch_size
        return cfg.epochs * cfg.batch_size * min(n, cfg.max_iters_per_epoch or n)

    base = images(BaselineMethod.recipe("book"))
    recipes = [HPNetMethod.recipe("book")] + [SANetMethod.recipe("book", v) for v in SANET_VARIANTS]
    for cfg in recipes:
        assert images(cfg) == base and abs(images(cfg) - 116_288) <= 10 * 64
        assert cfg.extra["backbone_weights"] == BOOK_BACKBONE_WEIGHTS and cfg.sampler == "pk"
        assert all(getattr(cfg, k) == v for k, v in book_recipe_defaults().items())
    full = SANetMethod.recipe("full")
    assert (full.image_size, full.epochs, full.lr, full.batch_size) == ((384, 128), 150, 0.01, 64)
    assert full.backbone == "resnet50" and full.pretrained


def _market_tree(root):
    from PIL import Image

    d = root / "Market-1501-v15.09.15"
    names = {"bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg",
                                    "0007_c6s3_085567_02.jpg", "0007_c1s3_085667_01.jpg"],
             "query": ["0001_c1s1_001051_00.jpg"], "bounding_box_test": ["0001_c4s1_000551_01.jpg"]}
    rng = np.random.default_rng(0)
    for folder, files in names.items():
        (d / folder).mkdir(parents=True)
        for n in files:
            Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)).save(d / folder / n)
    return d


def test_batch_recipe_on_a_dataset_on_disk_names_missing_masks(tmp_path):
    from PIL import Image

    from reidlib.data.datasets import Market1501, mask_path_for
    from reidlib.methods.sanet import SANetMethod

    d = _market_tree(tmp_path)
    ds = Market1501(d, check_counts=False)
    method = SANetMethod(SANetMethod.recipe("smoke").replace(image_size=SIZE), ds.num_train_pids)
    first = ds.train[0].path
    with pytest.raises(FileNotFoundError) as e:
        method.train_dataset(ds, ds.relabel_train())
    msg = str(e.value)
    assert "4 of 4 images of train have no part mask" in msg and first in msg
    assert str(mask_path_for(first)) in msg and "bounding_box_train_masks" in msg
    for r in ds.train:
        mp = mask_path_for(r.path)
        mp.parent.mkdir(exist_ok=True)
        m = np.zeros((128, 64), np.uint8)
        m[:16], m[16:64], m[64:112], m[112:] = 1, 2, 3, 4
        Image.fromarray(m).save(mp)
    it = method.train_dataset(ds, ds.relabel_train())[0]
    assert it["part_labels"].shape == (5, 4, 2) and it["image"].shape == (3, *SIZE)
    assert it["part_visible"].dtype == torch.bool


@pytest.mark.parametrize("variant", ["sanet", "fixed-fe"])
def test_two_iteration_training_through_train_stages(tmp_path, variant):
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.engine.runs import load_run, train_stages
    from reidlib.methods.sanet import SANetMethod

    ds = SynthPeds("tiny", seed=0)
    cfg = SANetMethod.recipe("smoke", variant).replace(image_size=SIZE, batch_p=4, batch_k=2, epochs=1,
                                                       max_iters_per_epoch=2)
    out = tmp_path / "run"
    fit = train_stages(SANetMethod, cfg, ds, out, device="cpu", progress=False)
    logs = fit.metrics["main"]["last_epoch"]
    assert {"L_ID", "L_tri", "L_focal", "id_acc", "mask_iou", "vis_acc"} <= set(logs)
    assert ("route_scale" in logs) == (variant == "sanet")
    model = fit.model
    assert isinstance(model, SANet) and not model.training
    x = torch.randn(3, 3, *SIZE)
    f = model.extract(x)
    d = model.matcher()(f, f)
    assert d.shape == (3, 3) and not torch.isnan(d).any()
    again = train_stages(SANetMethod, cfg, ds, out, device="cpu", resume=True, progress=False)
    assert again.reused
    back = load_run(out).model
    torch.testing.assert_close(back.matcher()(back.extract(x), back.extract(x)), d)


# --------------------------------------------------------------------------- Fig. 4a's paths and the part study
def test_route_path_follows_the_hand_traversal_and_its_depth():
    """route_path reads the scale of the one active cell per layer and the last cell's target; the
    depth is the mean of the path after the entry.  The fixed FE (several active cells) has none."""
    from reidlib.models.sanet import route_path

    model = _tiny(seed=2).eval()
    with torch.no_grad():
        for layer in model.afe.cells:
            for cell in layer:
                cell.gate_conv.weight.normal_(0, 0.5)
        aux = model.afe(model.backbone(torch.randn(5, 3, *SIZE)))[1]
    path, depth = route_path(aux["routes"], aux["cell_active"])
    L = aux["routes"].shape[1]
    assert path.shape == (5, L + 1) and path[:, 0].eq(0).all()
    for n in range(5):
        s = 0
        for l in range(L):
            assert int(path[n, l]) == s
            s = int(aux["routes"][n, l, s])
        assert int(path[n, L]) == s
        assert math.isclose(float(depth[n]), sum(path[n, 1:].tolist()) / L, rel_tol=1e-6)
    # hand-made: a 2-layer path 0 -> 1 -> out 2 has depth (1 + 2) / 2
    routes = torch.tensor([[[1, -1, -1], [-1, 2, -1]]])
    active = torch.tensor([[[True, False, False], [False, True, False]]])
    p, d = route_path(routes, active)
    assert p.tolist() == [[0, 1, 2]] and float(d[0]) == 1.5
    # every cell active (the fixed FE): no single path
    p, d = route_path(torch.full((1, 2, 3), -1), torch.ones(1, 2, 3, dtype=torch.bool))
    assert (p[:, :2] == -1).all() and math.isnan(float(d[0]))
    with pytest.raises(ValueError, match=r"\(N, L, S\)"):
        route_path(routes[0], active[0])


def test_mask_iou_exact_values():
    from reidlib.eval.parts import mask_iou

    a = torch.zeros(2, 2, 4, 4, dtype=torch.bool)
    b = torch.zeros_like(a)
    a[0, 0, :2] = True  # 8 pixels
    b[0, 0, 1:3] = True  # 8 pixels, 4 shared
    a[1, 1, 0, 0] = b[1, 1, 0, 0] = True
    iou = mask_iou(a, b)
    assert iou[0, 0] == pytest.approx(4 / 12) and iou[1, 1] == 1.0
    assert math.isnan(float(iou[0, 1])) and math.isnan(float(iou[1, 0]))  # both empty
    with pytest.raises(ValueError, match="one shape"):
        mask_iou(a, b[:, :1])


class _QueueHeads(torch.nn.Module):
    """A stand-in part model whose masks are given label maps, served in call order."""

    branch_names = ("head", "upper", "lower", "feet", "global")

    def __init__(self, labels):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.labels, self.i = labels, 0

    def feature_size(self, image_size):
        return (image_size[0] // 16, image_size[1] // 16)

    def forward(self, x):
        m = torch.stack(self.labels[self.i:self.i + len(x)]).float()
        self.i += len(x)
        return {"masks": m, "visibility": m.flatten(2).amax(2) > 0.5}


def test_crop_part_study_on_synthpeds_truth():
    """One record per (image, ratio), a ratio of 1 being the whole frame; the crops are those of
    CropSetting cut from the person's box (a slow re-derivation below), so a model whose heads
    output exactly those labels scores IoU 1 and agrees on every visibility flag; a smaller crop
    never shows more parts than the whole frame."""
    from reidlib.data.masks import part_mask_labels
    from reidlib.data.partial import partial_crop
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.eval.parts import crop_part_study
    from reidlib.eval.protocols import CropSetting

    ds, size, ratios, n = SynthPeds("tiny", seed=0), (128, 64), (0.3, 1.0), 4
    fs = (size[0] // 16, size[1] // 16)
    labels = []
    for r in ratios:
        st = CropSetting("partial-reid-like", r, 3)
        for i, rec in enumerate(ds.query[:n]):
            img, mask = ds.read_image(rec.path), ds.read_mask(rec.path)
            if r >= 1.0:
                c = partial_crop(img, mask=mask, out_size=size, crop_box=(0, 0, img.shape[1], img.shape[0]))
            else:
                c = partial_crop(img, mask=mask, spec=st.spec(), rng=st.rng(i), out_size=size,
                                 box=ds.ground_truth(rec.path)["person_box"])
            labels.append(part_mask_labels(torch.from_numpy(np.ascontiguousarray(c.mask)), fs))
    model = _QueueHeads(labels)
    rows = crop_part_study(model, ds, ratios, size, max_images=n, seed=3, batch_size=3)
    assert len(rows) == 2 * n and [r["ratio"] for r in rows] == [0.3] * n + [1.0] * n
    assert all(r["side"] is None for r in rows[n:]) and all(r["side"] in ("top", "bottom", "left", "right") for r in rows[:n])
    for r in rows:
        for b in model.branch_names:
            assert r[f"visible.{b}"] == r[f"true_visible.{b}"]
            assert math.isnan(r[f"iou.{b}"]) or r[f"iou.{b}"] == 1.0
        assert "path" not in r  # no AFE
    shown = lambda r: sum(r[f"true_visible.{b}"] for b in model.branch_names[:4])  # noqa: E731
    assert all(shown(rows[i]) <= shown(rows[n + i]) for i in range(n))
    assert any(shown(rows[i]) < shown(rows[n + i]) for i in range(n))
    with pytest.raises(ValueError, match="within='person'"):
        crop_part_study(model, ds, (1.0,), size, within="person")


def test_crop_part_study_reads_sanet_paths():
    from reidlib.data.synthpeds import SynthPeds
    from reidlib.eval.parts import crop_part_study

    model = _tiny(seed=1, afe_layers=3).eval()
    rows = crop_part_study(model, SynthPeds("tiny", seed=0), (0.5, 1.0), (128, 64), max_images=3)
    assert len(rows) == 6
    for r in rows:
        steps = [int(v) for v in r["path"].split("-")]
        assert len(steps) == 4 and steps[0] == 0 and all(abs(a - b) <= 1 for a, b in zip(steps, steps[1:]))
        assert r["depth"] == pytest.approx(sum(steps[1:]) / 3)
        assert set(k[4:] for k in r if k.startswith("iou.")) == set(model.branch_names)
