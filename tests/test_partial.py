"""reidlib.data.partial: crop boxes, transforms, VPM labels, strategies, errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reidlib.data.partial import (
    STRATEGIES,
    CropSpec,
    box_to_scale_translation,
    get_strategy,
    partial_crop,
    region_labels,
    visible_regions,
    scale_translation_to_theta,
    theta_to_scale_translation,
)


def _img(h=60, w=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_keep_top_half_6x1_exact():
    img = _img(60, 24)
    pc = partial_crop(img, spec=CropSpec(ratio=(0.5, 0.5), sides=("top",)), rng=np.random.default_rng(0), grid=(6, 1), feat_size=(6, 2))
    assert pc.box == (0, 0, 24, 30)
    assert pc.side == "top"
    assert pc.ratio == pytest.approx(0.5)
    np.testing.assert_array_equal(pc.image, img[:30])
    # the crop's 6 feature rows cover holistic rows 0..0.5: regions 0,0,1,1,2,2
    np.testing.assert_array_equal(pc.region_labels, np.array([[0, 0], [0, 0], [1, 1], [1, 1], [2, 2], [2, 2]]))
    assert pc.region_labels.dtype == np.int64
    np.testing.assert_array_equal(pc.visible, [True, True, True, False, False, False])
    np.testing.assert_allclose(pc.scale_translation, [1.0, 0.5, 0.0, -0.5])
    np.testing.assert_allclose(pc.theta, [[1.0, 0.0, 0.0], [0.0, 0.5, -0.5]])
    assert pc.scale_translation.dtype == np.float32 and pc.theta.dtype == np.float32


def test_keep_bottom_and_right_exact():
    img = _img(40, 20)
    pc = partial_crop(img, spec=CropSpec(ratio=(0.25, 0.25), sides=("bottom",)), rng=np.random.default_rng(0), grid=(4, 1), feat_size=(4, 1))
    assert pc.box == (0, 30, 20, 40)
    np.testing.assert_array_equal(pc.region_labels, [[3], [3], [3], [3]])
    np.testing.assert_array_equal(pc.visible, [False, False, False, True])
    pc = partial_crop(img, spec=CropSpec(ratio=(0.5, 0.5), sides=("right",)), rng=np.random.default_rng(0), grid=(2, 2), feat_size=(4, 2))
    assert pc.box == (10, 0, 20, 40)
    # right half: column 1 of a 2x2 grid -> regions 1 (top) and 3 (bottom)
    np.testing.assert_array_equal(pc.region_labels, [[1, 1], [1, 1], [3, 3], [3, 3]])
    np.testing.assert_array_equal(pc.visible, [False, True, False, True])
    np.testing.assert_allclose(pc.scale_translation, [0.5, 1.0, 0.5, 0.0])


def test_left_with_mask_and_resize():
    img = _img(40, 20)
    mask = np.repeat(np.arange(40, dtype=np.uint8)[:, None], 20, axis=1)
    pc = partial_crop(img, mask, spec=CropSpec(ratio=(0.5, 0.5), sides=("left",)), rng=np.random.default_rng(0), out_size=(16, 8))
    assert pc.box == (0, 0, 10, 40)
    assert pc.image.shape == (16, 8, 3) and pc.image.dtype == np.uint8
    assert pc.mask.shape == (16, 8)
    # nearest resize keeps only original labels, monotone in rows
    assert set(np.unique(pc.mask)) <= set(range(40))
    assert (np.diff(pc.mask[:, 0].astype(int)) >= 0).all()
    assert pc.region_labels is None and pc.visible is None


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_theta_reproduces_crop_native(name):
    img = _img(48, 20, seed=3)
    rng = np.random.default_rng(5)
    for _ in range(5):
        pc = partial_crop(img, spec=name, rng=rng)
        x0, y0, x1, y1 = pc.box
        hol = torch.from_numpy(img).permute(2, 0, 1)[None].double()
        theta = torch.from_numpy(pc.theta)[None].double()
        grid = F.affine_grid(theta, (1, 3, y1 - y0, x1 - x0), align_corners=False)
        out = F.grid_sample(hol, grid, mode="bilinear", align_corners=False)
        ref = torch.from_numpy(np.ascontiguousarray(pc.image)).permute(2, 0, 1)[None].double()
        torch.testing.assert_close(out, ref, atol=1e-3, rtol=0)  # float32 theta
        # scale_translation and theta agree; theta_to_scale_translation inverts
        np.testing.assert_allclose(theta_to_scale_translation(pc.theta), pc.scale_translation)
        np.testing.assert_allclose(scale_translation_to_theta(pc.scale_translation), pc.theta)


def test_theta_reproduces_resized_crop_close():
    img = np.random.default_rng(1).random((64, 32, 3)).astype(np.float32)
    # smooth image so the bilinear resize and grid_sample agree closely
    img = torch.nn.functional.avg_pool2d(torch.from_numpy(img).permute(2, 0, 1)[None], 5, 1, 2)[0].permute(1, 2, 0).numpy()
    pc = partial_crop(img, spec=CropSpec((0.5, 0.5), sides=("bottom",)), rng=np.random.default_rng(0), out_size=(64, 32))
    hol = torch.from_numpy(img).permute(2, 0, 1)[None]
    grid = F.affine_grid(torch.from_numpy(pc.theta)[None], (1, 3, 64, 32), align_corners=False)
    out = F.grid_sample(hol, grid, align_corners=False)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - pc.image)[4:-4, 4:-4].mean() < 0.02


def test_torch_chw_input_matches_numpy():
    img = _img(30, 12)
    t = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    a = partial_crop(img, spec="stnreid", rng=np.random.default_rng(7), out_size=(20, 10))
    b = partial_crop(t, spec="stnreid", rng=np.random.default_rng(7), out_size=(20, 10))
    assert a.box == b.box
    assert isinstance(b.image, torch.Tensor) and b.image.shape == (3, 20, 10)
    np.testing.assert_array_equal(b.image.permute(1, 2, 0).numpy(), a.image)


def test_person_box_frame():
    img = _img(100, 60)
    box = (10, 20, 50, 100)  # 40 x 80 body box
    pc = partial_crop(img, spec=CropSpec((0.5, 0.5), sides=("top",)), rng=np.random.default_rng(0), box=box, grid=(4, 1), feat_size=(4, 1))
    assert pc.box == (10, 20, 50, 60)  # top half of the body box, image pixels
    assert pc.frame == (10, 20, 50, 100)
    np.testing.assert_allclose(pc.scale_translation, [1.0, 0.5, 0.0, -0.5])
    np.testing.assert_array_equal(pc.region_labels[:, 0], [0, 0, 1, 1])
    np.testing.assert_array_equal(pc.image, img[20:60, 10:50])


def test_fixed_crop_box():
    img = _img(20, 10)
    pc = partial_crop(img, crop_box=(2, 4, 8, 14), grid=(2, 1), feat_size=(2, 1))  # feat_h == m
    assert pc.box == (2, 4, 8, 14) and pc.side is None
    assert pc.ratio == pytest.approx(60 / 200)
    np.testing.assert_allclose(pc.scale_translation, box_to_scale_translation((2, 4, 8, 14), 10, 20))
    # centre rows of the crop map to holistic y = 6.5 and 11.5 of 20 -> regions 0, 1
    np.testing.assert_array_equal(pc.region_labels[:, 0], [0, 1])


def test_region_labels_batched_matches_loop():
    rng = np.random.default_rng(0)
    sts, boxes_seen = [], []
    for _ in range(16):
        pc = partial_crop(_img(48, 16), spec="ppcl-free", rng=rng)
        sts.append(pc.scale_translation)
        boxes_seen.append(pc.box)
    st = torch.from_numpy(np.stack(sts))
    # batched torch boxes -> the same scale/translation
    boxes = torch.tensor([pc_box for pc_box in boxes_seen])
    torch.testing.assert_close(box_to_scale_translation(boxes, 16, 48), st)
    lab = region_labels(st, (6, 2), (12, 4))
    assert lab.shape == (16, 12, 4) and lab.dtype == torch.int64
    for i in range(16):
        # slow reference: map each feature-pixel centre to the holistic frame
        sx, sy, tx, ty = sts[i].astype(np.float64)
        ref = np.zeros((12, 4), dtype=np.int64)
        for r in range(12):
            for c in range(4):
                yn = sy * ((r + 0.5) / 12 * 2 - 1) + ty
                xn = sx * ((c + 0.5) / 4 * 2 - 1) + tx
                row = min(5, max(0, int(np.floor((yn + 1) / 2 * 6))))
                col = min(1, max(0, int(np.floor((xn + 1) / 2 * 2))))
                ref[r, c] = row * 2 + col
        np.testing.assert_array_equal(lab[i].numpy(), ref)
    vis = visible_regions(lab, 12)
    assert vis.shape == (16, 12)
    for i in range(16):
        assert set(torch.nonzero(vis[i]).flatten().tolist()) == set(lab[i].unique().tolist())


def test_determinism_and_ratio_ranges():
    img = _img(128, 64)
    for name, spec in STRATEGIES.items():
        a = [partial_crop(img, spec=name, rng=np.random.default_rng(11)).box for _ in range(3)]
        assert len(set(a)) == 1
        rng = np.random.default_rng(0)
        ratios, sides = [], set()
        for _ in range(300):
            pc = partial_crop(img, spec=spec, rng=rng)
            ratios.append(pc.ratio)
            sides.add(pc.side)
            x0, y0, x1, y1 = pc.box
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 128
            if spec.mode == "side":
                assert pc.side in spec.sides
                if pc.side == "top":
                    assert y0 == 0 and (x0, x1) == (0, 64)
                if pc.side == "bottom":
                    assert y1 == 128 and (x0, x1) == (0, 64)
                if pc.side == "left":
                    assert x0 == 0 and (y0, y1) == (0, 128)
                if pc.side == "right":
                    assert x1 == 64 and (y0, y1) == (0, 128)
        lo, hi = spec.ratio
        tol = 2.5 / 64  # pixel rounding (free crops round both sides)
        assert min(ratios) >= lo - tol and max(ratios) <= hi + tol, name
        # spread: the samples cover most of the range
        assert max(ratios) - min(ratios) > 0.8 * (hi - lo) - tol, name
        if spec.mode == "side":
            assert sides == set(spec.sides), name


def test_named_strategies_follow_papers():
    assert STRATEGIES["vpm-top"].ratio == (0.5, 1.0) and STRATEGIES["vpm-top"].sides == ("top",)
    assert STRATEGIES["vpm-bottom"].sides == ("bottom",)
    assert set(STRATEGIES["vpm-bilateral"].sides) == {"top", "bottom"}
    assert STRATEGIES["stnreid"].ratio == (0.4, 0.8) and len(STRATEGIES["stnreid"].sides) == 4
    assert STRATEGIES["ppcl-free"].mode == "free"
    assert STRATEGIES["partial-ilids-like"].sides == ("top",)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(ratio=(0.0, 0.5)), ["(0.0, 0.5)", "0 < low <= high <= 1"]),
        (dict(ratio=(0.5, 1.2)), ["1.2", "0 < low <= high <= 1"]),
        (dict(ratio=(0.8, 0.5)), ["(0.8, 0.5)"]),
        (dict(ratio=(0.5, 1.0), sides=("up",)), ["'up'", "'top'", "'right'"]),
        (dict(ratio=(0.5, 1.0), mode="diagonal"), ["'diagonal'", "'side'", "'free'"]),
    ],
)
def test_bad_specs(kw, words):
    with pytest.raises(ValueError) as e:
        CropSpec(**kw)
    for w in words:
        assert w in str(e.value)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown crop strategy 'vpm-left'.*'vpm-top'"):
        get_strategy("vpm-left")
    img = _img(20, 10)
    with pytest.raises(ValueError, match=r"mask of shape \(5, 5\)"):
        partial_crop(img, np.zeros((5, 5), np.uint8), spec="vpm-top")
    with pytest.raises(ValueError, match="grid"):
        partial_crop(img, spec="vpm-top", grid=(0, 1))
    with pytest.raises(ValueError, match="feat_size"):
        partial_crop(img, spec="vpm-top", feat_size=(4, 2))
    with pytest.raises(ValueError, match=r"feat_size=\(4, 1\) is smaller than grid=\(6, 1\)"):
        partial_crop(img, spec="vpm-top", grid=(6, 1), feat_size=(4, 1))
    with pytest.raises(ValueError, match="crop_box"):
        partial_crop(img, crop_box=(0, 0, 11, 5))
    with pytest.raises(ValueError, match="box"):
        partial_crop(img, spec="vpm-top", box=(5, 5, 5, 9))


# ---------------------------------------------------------------------------------
# PartialCropDataset (reidlib.data.loader)
# ---------------------------------------------------------------------------------
from reidlib.data.base import ReIDDataset, Record  # noqa: E402
from reidlib.data.loader import PartialCropDataset, build_loader  # noqa: E402
from reidlib.data.transforms import build_geometric_transform, build_photometric_transform, denormalize  # noqa: E402


class _Mem(ReIDDataset):
    """In-memory images whose colour encodes the pixel row (to check crops end to end)."""

    def __init__(self, n=6, h=64, w=32):
        recs = [Record(f"mem://{i}", i // 2, i % 2) for i in range(n)]
        super().__init__(recs, [], [])
        yy = np.repeat(np.arange(h)[:, None], w, 1)
        self.img = np.stack([yy * 4, np.full_like(yy, 50), np.full_like(yy, 100)], -1).astype(np.uint8)
        self.mask = (yy // 16 + 1).astype(np.uint8)

    def read_image(self, path):
        return self.img.copy()

    def read_mask(self, path):
        return self.mask.copy()


def test_partial_crop_dataset_signals():
    src = _Mem()
    ds = PartialCropDataset(src.train, src, "vpm-top", size=(64, 32), grid=(4, 1), feat_size=(8, 4),
                            holistic_transform=build_geometric_transform((64, 32), flip=0.0, pad=0),
                            transform=build_photometric_transform(0.0), with_mask=True, return_holistic=True,
                            relabel=src.relabel_train())
    assert ds.pids == [0, 0, 1, 1, 2, 2]
    torch.manual_seed(0)
    for i in range(len(ds)):
        it = ds[i]
        assert it["image"].shape == (3, 64, 32) and it["image"].dtype == torch.float32
        assert it["label"] == i // 2 and it["is_partial"] and it["side"] == 0  # top
        x0, y0, x1, y1 = it["box"].tolist()
        assert (x0, y0, x1) == (0, 0, 32) and 32 <= y1 <= 64
        # the top row of the crop is holistic row 0; the bottom row is about holistic row y1 - 1
        rows = (denormalize(it["image"])[0] * 255 / 4)
        assert abs(rows[0, 16].item() - 0) < 1.5 and abs(rows[-1, 16].item() - (y1 - 1)) < 1.5
        # theta reproduces the crop from the returned holistic image
        g = F.affine_grid(it["theta"][None], (1, 3, 64, 32), align_corners=False)
        rec = F.grid_sample(it["holistic"][None], g, align_corners=False)[0]
        assert (rec - it["image"]).abs()[:, 2:-2].mean() < 0.05
        # labels: rows of a top crop with ratio r cover regions 0..ceil(4r)-1
        lab = it["region_labels"]
        assert lab.shape == (8, 4) and (lab[:, 0] == lab[:, 3]).all()
        assert lab[0, 0] == 0 and (lab.diff(dim=0) >= 0).all()
        assert torch.equal(it["visible"], torch.isin(torch.arange(4), lab.unique()))
        # mask moved with the crop: mask label (row // 16 + 1) matches the image's row colour
        m = it["mask"]
        assert m.shape == (64, 32)
        r = rows[:, 16]
        expect = r.round().long() // 16 + 1
        near_edge = ((r / 16 - (r / 16).round()).abs() * 16) < 1.5  # bilinear vs nearest at label edges
        assert torch.equal(m[:, 16].long()[~near_edge], expect[~near_edge])
        assert (~near_edge).sum() > 32


def test_partial_crop_dataset_p_partial_and_loader():
    src = _Mem(n=8)
    ds = PartialCropDataset(src.train, src, "stnreid", size=(32, 16), grid=(6, 1), feat_size=(12, 2), p_partial=0.0)
    it = ds[0]
    assert not it["is_partial"] and it["visible"].all() and it["side"] == -1
    np.testing.assert_allclose(it["scale_translation"].numpy(), [1, 1, 0, 0])
    ds = PartialCropDataset(src.train, src, "stnreid", size=(32, 16), grid=(6, 1), feat_size=(12, 2), p_partial=0.5)
    dl = build_loader(ds, batch_size=4, num_workers=0, device="cpu", seed=0)
    torch.manual_seed(3)
    b = next(iter(dl))
    assert b["image"].shape == (4, 3, 32, 16) and b["theta"].shape == (4, 2, 3)
    assert b["region_labels"].shape == (4, 12, 2) and b["visible"].shape == (4, 6)
    # reproducible under torch.manual_seed
    torch.manual_seed(3)
    b2 = next(iter(build_loader(ds, batch_size=4, device="cpu", seed=0)))
    assert torch.equal(b["box"], b2["box"]) and torch.equal(b["image"], b2["image"])
    with pytest.raises(ValueError, match="p_partial=1.5"):
        PartialCropDataset(src.train, src, "stnreid", size=(32, 16), p_partial=1.5)


# ---------------------------------------------------------------------------------
# crops of the body box (crop_within="body")
# ---------------------------------------------------------------------------------
from reidlib.data.loader import body_box  # noqa: E402


def test_body_box_exact():
    m = torch.zeros(10, 6, dtype=torch.uint8)
    m[2:7, 1:4] = 2  # upper body
    m[7, 3] = 4  # a foot pixel
    m[0, 5] = 255  # an occluder pixel is not body
    assert body_box(m) == (1, 2, 4, 8)
    assert body_box(torch.zeros(10, 6, dtype=torch.uint8)) == (0, 0, 6, 10)  # no body: the whole frame
    with pytest.raises(ValueError, match=r"\(H, W\) part mask"):
        body_box(torch.zeros(1, 10, 6))


class _Body(_Mem):
    """_Mem with the body in rows 16-47, columns 8-23 only (background elsewhere)."""

    def __init__(self, n=6, masks=True):
        super().__init__(n)
        self.mask[:] = 0
        self.mask[16:48, 8:24] = 2
        self.masks = masks

    def read_mask(self, path):
        return self.mask.copy() if self.masks else None


def test_partial_crop_dataset_body_crops():
    src = _Body()
    ds = PartialCropDataset(src.train, src, "stnreid", size=(64, 32), return_holistic=True, crop_within="body",
                            holistic_transform=build_geometric_transform((64, 32), flip=0.0, pad=0),
                            transform=build_photometric_transform(0.0))
    torch.manual_seed(0)
    sides = set()
    for _ in range(4):
        for i in range(len(ds)):
            it = ds[i]
            assert it["body_box"].tolist() == [8, 16, 24, 48]
            x0, y0, x1, y1 = it["box"].tolist()
            assert 8 <= x0 < x1 <= 24 and 16 <= y0 < y1 <= 48  # inside the body box
            area = (x1 - x0) * (y1 - y0) / (16 * 32)
            assert 0.4 - 1 / 16 <= area <= 0.8 + 1 / 16 and abs(area - it["ratio"]) < 1e-6
            sides.add(it["side"])
            # theta refers to the whole holistic image: it reproduces the crop from it
            g = F.affine_grid(it["theta"][None], (1, 3, 64, 32), align_corners=False)
            rec = F.grid_sample(it["holistic"][None], g, align_corners=False)[0]
            assert (rec - it["image"]).abs()[:, 2:-2].mean() < 0.05
            np.testing.assert_allclose(it["scale_translation"].numpy(),
                                       [(x1 - x0) / 32, (y1 - y0) / 64, (x0 + x1) / 32 - 1, (y0 + y1) / 64 - 1], atol=1e-6)
    assert sides == {0, 1, 2, 3}
    # an item that is not made partial is the whole frame (identity transform) in either convention
    whole = PartialCropDataset(src.train, src, "stnreid", size=(64, 32), crop_within="body", p_partial=0.0,
                               holistic_transform=build_geometric_transform((64, 32), flip=0.0, pad=0))
    it = whole[0]
    assert not it["is_partial"] and it["box"].tolist() == [0, 0, 32, 64] and it["body_box"].tolist() == [8, 16, 24, 48]
    np.testing.assert_allclose(it["theta"].numpy(), [[1, 0, 0], [0, 1, 0]])
    # a source without part masks: its image is the body box
    nomask = PartialCropDataset(src.train, _Body(masks=False), "stnreid", size=(64, 32), crop_within="body",
                                holistic_transform=build_geometric_transform((64, 32), flip=0.0, pad=0))
    assert nomask[0]["body_box"].tolist() == [0, 0, 32, 64]
    # the frame convention is unchanged: the crop spans the image on three sides
    frame = PartialCropDataset(src.train, src, "stnreid", size=(64, 32),
                               holistic_transform=build_geometric_transform((64, 32), flip=0.0, pad=0))
    it = frame[0]
    assert "body_box" not in it
    x0, y0, x1, y1 = it["box"].tolist()
    assert sum([x0 == 0, y0 == 0, x1 == 32, y1 == 64]) >= 3
    with pytest.raises(ValueError, match="crop_within='torso'"):
        PartialCropDataset(src.train, src, "stnreid", size=(64, 32), crop_within="torso")
