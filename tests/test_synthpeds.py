"""SynthPeds: shapes, masks, determinism, preset counts, disjoint ids, region collisions."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from reidlib.data.base import FEET, HEAD, LOWER, OCCLUDED, UPPER, Record
from reidlib.data.synthpeds import ID_SLICES, PRESETS, REGIONS, SYNTHPEDS_VERSION, SynthPeds, read_uri, read_uri_mask


@pytest.fixture(scope="module")
def tiny():
    return SynthPeds("tiny", seed=0)


def test_records_shapes_dtypes(tiny):
    assert isinstance(tiny.train[0], Record)
    path, pid, camid = tiny.train[0]
    assert path == f"synthpeds://tiny/s0/v{SYNTHPEDS_VERSION}/train/0"
    img, mask = tiny.read_image(path), tiny.read_mask(path)
    assert img.shape == (128, 64, 3) and img.dtype == np.uint8
    assert mask.shape == (128, 64) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, HEAD, UPPER, LOWER, FEET, OCCLUDED}
    big = SynthPeds("tiny", size="market")
    assert big.read_image(big.gallery[-1].path).shape == (256, 128, 3)
    assert big.train[0].path.startswith("synthpeds://tiny@256x128/s0/")


def test_all_parts_present_and_ordered(tiny):
    # whole-body, un-occluded person: every part is there, head above upper above lower above feet
    seen = 0
    for i in range(len(tiny.train)):
        s = tiny.sample("train", i)
        if s["info"]["occluder"] or s["info"]["mode"] != "normal":
            continue
        m = s["mask"]
        assert {HEAD, UPPER, LOWER, FEET} <= set(np.unique(m)), i
        rows = np.arange(m.shape[0])[:, None]
        mean_row = [float((rows * (m == k)).sum() / (m == k).sum()) for k in (HEAD, UPPER, LOWER, FEET)]
        assert mean_row == sorted(mean_row), (i, mean_row)
        x0, y0, x1, y1 = s["info"]["person_box"]
        ys, xs = np.nonzero(m)
        assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1
        seen += 1
    assert seen >= 20


def test_mask_consistent_with_image(tiny):
    """Clean render: pixels away from the person and occluders ARE the background layer,
    the person's interior pixels mostly are not."""
    from scipy.ndimage import binary_dilation, binary_erosion

    for split, i in [("train", 0), ("train", 5), ("query", 1), ("gallery", 7), ("gallery", 0)]:
        out = tiny.render(split, i, clean=True, layers=True)
        img, mask, bg, sup = out["image"], out["mask"], out["background"], out["support"]
        assert not np.any(mask[~sup]), "person labels outside the drawn support"
        far = ~binary_dilation(sup, iterations=1)
        np.testing.assert_array_equal(img[far], bg[far])
        inner = binary_erosion((mask > 0) & (mask != OCCLUDED), iterations=1)
        if inner.sum() > 50:
            differs = np.abs(img[inner].astype(int) - bg[inner].astype(int)).sum(1) > 0
            assert differs.mean() > 0.9


def test_deterministic_and_order_independent(tiny):
    a = [tiny.render("train", i)["image"].tobytes() for i in range(6)]
    other = SynthPeds("tiny", seed=0)
    b = [other.render("train", i)["image"].tobytes() for i in reversed(range(6))][::-1]
    assert a == b
    clone = pickle.loads(pickle.dumps(other))
    assert clone.render("train", 3)["mask"].tobytes() == tiny.render("train", 3)["mask"].tobytes()
    assert read_uri(tiny.train[2].path).tobytes() == a[2]
    assert read_uri_mask(tiny.train[2].path).tobytes() == tiny.read_mask(tiny.train[2].path).tobytes()
    # a different seed gives different images
    assert SynthPeds("tiny", seed=1).render("train", 0)["image"].tobytes() != a[0]
    assert len(set(a)) == 6


def test_market_counts_exact():
    m = SynthPeds("market")
    assert (len(m.train), m.num_train_pids) == (12936, 751)
    assert (len(m.query), len({r.pid for r in m.query})) == (3368, 750)
    assert len(m.gallery) == 15913
    gpids = {r.pid for r in m.gallery}
    assert 0 in gpids and len(gpids - {0}) == 750 and {r.pid for r in m.query} == gpids - {0}
    assert sorted({r.pid for r in m.train}) == list(range(1, 752))
    for recs in (m.train, m.query, m.gallery):
        assert {r.camid for r in recs} == set(range(6))
    assert all(r.pid == -1 for r in m.junk) and len(m.junk) > 0
    # every query has a true match in another camera (Market rule keeps it valid)
    g = {}
    for r in m.gallery:
        g.setdefault(r.pid, set()).add(r.camid)
    assert all(g[q.pid] - {q.camid} for q in m.query)
    # training ids are seen by at least 2 cameras
    tc = {}
    for r in m.train:
        tc.setdefault(r.pid, set()).add(r.camid)
    assert min(len(v) for v in tc.values()) >= 2


def test_smoke_and_partial_counts():
    s = SynthPeds("smoke")
    assert (len(s.train), s.num_train_pids) == (1200, 100)
    assert len({r.pid for r in s.query}) == 100 and 100 <= len(s.query) <= 200
    assert sum(r.pid == 0 for r in s.gallery) > 0
    # smoke: the gallery avoids the query's cameras
    qc = {}
    for r in s.query:
        qc.setdefault(r.pid, set()).add(r.camid)
    assert all(r.camid not in qc[r.pid] for r in s.gallery if r.pid > 0)
    shapes = {"partial-reid-like": (60, 5, 5), "partial-ilids-like": (119, 1, 1), "occluded-reid-like": (200, 5, 5)}
    for name, (n, nq, ng) in shapes.items():
        d = SynthPeds(name, size="smoke")
        assert len(d.train) == 0
        assert len({r.pid for r in d.query}) == n and len(d.query) == n * nq and len(d.gallery) == n * ng
        assert {r.camid for r in d.query} == {0} and {r.camid for r in d.gallery} == {1}


def test_ids_disjoint_between_sets():
    sets = {name: SynthPeds(name) for name in ("market", "partial-reid-like", "partial-ilids-like", "occluded-reid-like")}
    smoke = SynthPeds("smoke")
    train = {r.pid for r in sets["market"].train}
    test = {r.pid for r in sets["market"].query}
    assert not train & test
    assert {r.pid for r in smoke.train} <= train and {r.pid for r in smoke.query} <= test
    parts = [{r.pid for r in sets[n].query} for n in ("partial-reid-like", "partial-ilids-like", "occluded-reid-like")]
    for i, p in enumerate(parts):
        assert not p & (train | test)
        for q in parts[i + 1:]:
            assert not p & q
    # distractor identities are not those of any labelled identity
    off, n = ID_SLICES["distractors"]
    m = sets["market"]
    assert all(off <= m._splits["gallery"].ident[i] < off + n for i, r in enumerate(m.gallery) if r.pid == 0)


def test_region_collisions_identity_is_a_combination():
    """No single body region identifies a person: each region prototype is shared by many ids."""
    s = SynthPeds("smoke")
    ids = sorted({r.pid for r in s.train} | {r.pid for r in s.query})
    table = s.identities.table[np.asarray(ids) - 1]
    for j, region in enumerate(REGIONS):
        _, inv, counts = np.unique(table[:, j], return_inverse=True, return_counts=True)
        shared = (counts[inv] > 1).mean()
        assert shared >= 0.9, (region, shared)
        assert counts.max() < len(ids) / 2, region  # and no region is nearly constant
    # the combination is unique, and two identities differ in >= 2 regions (whole table)
    full = s.identities.table[:, :4]
    eq = (full[:, None, :] == full[None, :, :]).sum(-1)
    np.fill_diagonal(eq, 0)
    assert eq.max() <= 2


def test_partial_crops_native_and_consistent():
    for name, side in (("partial-reid-like", None), ("partial-ilids-like", "top")):
        d = SynthPeds(name, size="smoke")
        for i in range(6):
            gt = d.ground_truth("query", i)
            hol = d.sample("query_holistic", i)
            q = d.sample("query", i)
            x0, y0, x1, y1 = gt["crop_box"]
            assert q["image"].shape == (y1 - y0, x1 - x0, 3)  # native size, not resized
            np.testing.assert_array_equal(q["image"], hol["image"][y0:y1, x0:x1])
            np.testing.assert_array_equal(q["mask"], hol["mask"][y0:y1, x0:x1])
            assert hol["image"].shape == (128, 64, 3) and gt["holistic_size"] == (128, 64)
            assert gt["holistic_uri"] == d.uri("query_holistic", i)
            px0, py0, px1, py1 = gt["person_box"]
            kept = (y1 - y0) / (py1 - py0) if gt["crop_side"] in ("top", "bottom") else (x1 - x0) / (px1 - px0)
            lo, hi = (0.3, 0.8) if side is None else (0.5, 0.8)
            assert lo - 0.05 <= kept <= hi + 0.05
            if side:
                assert gt["crop_side"] == side and y0 == py0
            assert gt["occluded_fraction"] < 0.05  # the crop keeps the unoccluded part
            assert gt["holistic_occluded_fraction"] > 0


def test_occluded_queries_marked():
    d = SynthPeds("occluded-reid-like", size="smoke")
    for i in range(15):
        gt = d.ground_truth("query", i)
        assert gt["occluder"] is not None and gt["occluded_fraction"] > 0.02
        assert np.any(d.read_mask(d.query[i].path) == OCCLUDED)
    for i in range(5):  # whole-body gallery: no occluder
        assert d.ground_truth("gallery", i)["occluder"] is None


def test_viewpoint_shows_backpack_and_print():
    s = SynthPeds("smoke")
    for i in range(80):
        gt = s.ground_truth("train", i)
        a = gt["attributes"]
        assert gt["backpack_visible"] == (a["carried"]["kind"] == "backpack" and gt["view"] in ("back", "side"))
        assert gt["print_visible"] == (a["upper"]["pattern"] == "print" and gt["view"] == "front")
    assert {s.ground_truth("train", i)["view"] for i in range(40)} == {"front", "back", "side"}


def test_bad_input_errors(tiny):
    with pytest.raises(ValueError, match="accepted presets: tiny, smoke, market"):
        SynthPeds("duke")
    with pytest.raises(ValueError, match="size="):
        SynthPeds("tiny", size="huge")
    with pytest.raises(ValueError, match="version"):
        SynthPeds("tiny", version=99)
    with pytest.raises(ValueError, match="not a SynthPeds URI"):
        tiny.read_image("/tmp/x.jpg")
    with pytest.raises(IndexError, match="out of range"):
        tiny.read_image("synthpeds://tiny/s0/v1/train/99999")
    with pytest.raises(ValueError, match="another SynthPeds dataset"):
        tiny.read_image("synthpeds://smoke/s0/v1/train/0")
    with pytest.raises(ValueError, match="unknown SynthPeds split"):
        tiny.render("validation", 0)


def test_presets_documented():
    assert set(PRESETS) == {"tiny", "smoke", "market", "partial-reid-like", "partial-ilids-like", "occluded-reid-like",
                            "pretrain"}
    d = SynthPeds("tiny").describe()
    assert d["counts"]["train"] == {"images": 32, "ids": 8} and d["version"] == SYNTHPEDS_VERSION


def test_single_region_colour_does_not_identify():
    """In the smoke images, matching on the mean colour of ONE part (ground-truth masks)
    finds few true matches; all parts together find many more (identity = combination)."""
    d = SynthPeds("smoke")

    def feats(split):
        out = []
        for i in range(d.num_images(split)):
            s = d.sample(split, i)
            im, m = s["image"].astype(np.float32), s["mask"]
            out.append(np.concatenate([im[m == k].mean(0) if (m == k).sum() > 3 else np.zeros(3) for k in (HEAD, UPPER, LOWER, FEET)]))
        return np.stack(out)

    q, g = feats("query"), feats("gallery")
    qp, gp = np.array([r.pid for r in d.query]), np.array([r.pid for r in d.gallery])

    def rank1(cols):
        dist = ((q[:, None, cols] - g[None, :, cols]) ** 2).sum(-1)
        return float((gp[dist.argmin(1)] == qp).mean())  # smoke: the gallery never shares a query's camera

    single = [rank1(list(range(3 * k, 3 * k + 3))) for k in range(4)]
    combined = rank1(list(range(12)))
    assert max(single) < 0.25, single
    assert combined > 2.5 * max(single) and combined > 0.4, (single, combined)


def test_cache_budget():
    d = SynthPeds("tiny", cache_mb=0.1)  # 0.1 MiB: three 128x64 images (32 KiB each)
    for i in range(10):
        d.read_image(d.train[i].path)
    assert len(d._cache) == 3 and d._cache_bytes <= 0.1 * 2**20
    img = d.read_image(d.train[9].path)
    img[:] = 0  # callers get copies: the cache is not modified
    assert d.read_image(d.train[9].path).any()
    assert len(SynthPeds("tiny", cache_mb=0)._cache) == 0
