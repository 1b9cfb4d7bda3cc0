"""reidlib.eval: protocols, the extract-once evaluator and result records (tiny in-memory data)."""

import json

import numpy as np
import pytest
import torch

from reidlib.data.base import Record, ReIDDataset
from reidlib.eval import (
    CropSetting,
    CropSweep,
    Evaluator,
    MixedProtocol,
    SingleShotTrials,
    build_protocol,
    evaluate,
    format_results,
    load_results,
    results_table,
    save_results,
)
from reidlib.metrics.matchers import GlobalMatcher
from reidlib.metrics.rank import evaluate_rank_detailed
from reidlib.models.base import Features, ReIDModel


class TinyData(ReIDDataset):
    """Images are solid-ish colour blocks, one colour per pid, with per-image noise and a
    vertical gradient (so crops change the features)."""

    name = "tiny"

    def __init__(self, n_ids=4, n_query=2, n_gallery=3, cams=True, size=(16, 8)):
        self.size = size
        q, g = [], []
        for p in range(1, n_ids + 1):
            for j in range(n_query):
                q.append(Record(f"mem://q/{p}/{j}", p, (j % 3) if cams else 0))
            for i in range(n_gallery):
                g.append(Record(f"mem://g/{p}/{i}", p, ((i + 1) % 3) if cams else 1))
        g.append(Record("mem://g/0/0", 0, 0))  # a distractor
        super().__init__([], q, g)

    def read_image(self, path):
        _, _, s, p, k = path.split("/")
        rng = np.random.default_rng([int(p), int(k), 1 if s == "q" else 2])
        base = np.random.default_rng(int(p)).integers(0, 256, 3)
        h, w = self.size
        grad = np.linspace(0, 80, h)[:, None, None]
        img = base[None, None, :] + grad + rng.normal(0, 30, (h, w, 3))
        return np.clip(img, 0, 255).astype(np.uint8)


class MeanColour(ReIDModel):
    """Features: per-row-band mean colour (2 bands x 3 channels); counts forward calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.images = 0

    def extract(self, images):
        self.calls += 1
        self.images += images.shape[0]
        h = images.shape[2] // 2
        return Features(global_feat=torch.cat([images[:, :, :h].mean((2, 3)), images[:, :, h:].mean((2, 3))], 1))

    def matcher(self):
        return GlobalMatcher("euclidean", normalize=False)


def _labels(recs, camid=None):
    p = np.array([r.pid for r in recs])
    c = np.array([r.camid for r in recs]) if camid is None else np.full(len(recs), camid)
    return p, c


def test_market_and_partial_protocols_match_direct_scoring():
    ds = TinyData()
    model = MeanColour()
    ev = Evaluator(model, ds, device="cpu", batch_size=5)
    res = ev.evaluate(["market", "partial-query", "partial-gallery"], method="mean-colour", profile="smoke")
    assert [r.protocol for r in res] == ["market", "partial-query", "partial-gallery"]
    qf, gf = ev.features("query"), ev.features("gallery")
    D = GlobalMatcher("euclidean", normalize=False)(qf, gf)
    qp, qc = _labels(ds.query)
    gp, gc = _labels(ds.gallery)
    m = evaluate_rank_detailed(D, qp, gp, qc, gc)
    assert res[0]["R-1"] == pytest.approx(float(m.cmc[0])) and res[0]["mAP"] == pytest.approx(m.mAP)
    assert res[0]["n_valid"] == m.num_valid
    p = evaluate_rank_detailed(D, qp, gp, np.zeros(len(qp), int), np.ones(len(gp), int))
    assert res[1]["mAP"] == pytest.approx(p.mAP) and res[1]["n_valid"] == len(ds.query)
    s = evaluate_rank_detailed(D.T, gp, qp, np.zeros(len(gp), int), np.ones(len(qp), int))
    assert res[2]["mAP"] == pytest.approx(s.mAP) and res[2]["n_valid"] == 12  # the distractor has no match
    # extracted once per split, reused by the three protocols
    assert model.images == len(ds.query) + len(ds.gallery)
    assert res[0].profile == "smoke" and res[0].method == "mean-colour" and "cpu" in res[0].hardware
    assert "pid AND camera" in res[0].description and "camera 0" in res[1].description


def test_single_shot_dsr_trials_average_by_hand():
    ds = TinyData(n_ids=4, n_query=2, n_gallery=3, cams=False)
    ev = Evaluator(MeanColour(), ds, device="cpu")
    (res,) = ev.evaluate(SingleShotTrials("dsr"))
    assert res.n_trials == 6 and res.n_query == 4 and res.n_gallery == 4
    qf, gf = ev.features("query"), ev.features("gallery")
    r1s, maps = [], []
    for i in range(3):
        for j in range(2):
            qi = [2 * k + j for k in range(4)]  # j-th query of each of the 4 ids
            gi = [3 * k + i for k in range(4)]  # i-th gallery image of each id (distractor excluded)
            D = GlobalMatcher(normalize=False)(qf[torch.tensor(qi)], gf[torch.tensor(gi)])
            r = evaluate_rank_detailed(D, np.arange(1, 5), np.arange(1, 5), np.zeros(4, int), np.ones(4, int))
            r1s.append(r.cmc[0])
            maps.append(r.mAP)
    assert res["R-1"] == pytest.approx(np.mean(r1s))
    assert res["mAP"] == pytest.approx(np.mean(maps))
    assert len(res.cmc) == 50 and res.cmc[3] == 1.0  # 4-image galleries: rank 4 always hits


def test_single_shot_random_is_seeded():
    ds = TinyData(cams=False)
    s1 = SingleShotTrials("random", repeats=5, seed=3).settings(ds)[0]
    s2 = SingleShotTrials("random", repeats=5, seed=3).settings(ds)[0]
    s3 = SingleShotTrials("random", repeats=5, seed=4).settings(ds)[0]
    g = lambda s: [t.gallery.indices.tolist() for t in s.trials]  # noqa: E731
    assert g(s1) == g(s2) and g(s1) != g(s3)
    assert len(s1.trials) == 5 and all(len(t.query.indices) == len(ds.query) for t in s1.trials)
    for t in s1.trials:  # one gallery image per identity
        assert sorted(ds.gallery[i].pid for i in t.gallery.indices) == [1, 2, 3, 4]
    (res,) = Evaluator(MeanColour(), ds, device="cpu").evaluate(SingleShotTrials("random", repeats=5, seed=3))
    assert res.n_trials == 5


def test_crop_sweep_is_deterministic_and_gamma_one_is_holistic():
    ds = TinyData(size=(20, 10))
    sweep = CropSweep(ratios=(0.5, 1.0), strategy="vpm-top", seed=1)
    ev1 = Evaluator(MeanColour(), ds, device="cpu")
    ev2 = Evaluator(MeanColour(), ds, device="cpu")
    r1, r2 = ev1.evaluate(sweep), ev2.evaluate(sweep)
    assert [r.setting for r in r1] == ["gamma=0.5", "gamma=1"]
    for a, b in zip(r1, r2):
        assert a.metrics == b.metrics
    f05 = ev1.features("query", CropSetting("vpm-top", 0.5, 1))
    torch.testing.assert_close(f05.global_feat, ev2.features("query", CropSetting("vpm-top", 0.5, 1)).global_feat)
    torch.testing.assert_close(ev1.features("query", CropSetting("vpm-top", 1.0, 1)).global_feat,
                               ev1.features("query").global_feat)
    assert not torch.allclose(f05.global_feat, ev1.features("query").global_feat)
    # gamma=1 scores as the Market protocol
    (m,) = ev1.evaluate("market")
    assert r1[1].metrics == m.metrics


def test_aligned_crop_crops_both_sides_alike():
    from reidlib.eval import AlignedCropProtocol

    ds = TinyData(size=(20, 10))
    ev = Evaluator(MeanColour(), ds, device="cpu")
    proto = build_protocol("aligned-crop", ratios=(0.5, 1.0), strategy="vpm-top", seed=1)
    assert isinstance(proto, AlignedCropProtocol)
    (s05, s10) = proto.settings(ds)
    crop = CropSetting("vpm-top", 0.5, 1)
    assert s05.trials[0].query.crop == crop and s05.trials[0].gallery.crop == crop
    res = ev.evaluate(proto)
    # gamma = 1 is the Market protocol; gamma = 0.5 is scored on the cropped features of both sides
    (m,) = ev.evaluate("market")
    assert res[1].metrics == m.metrics
    fq, fg = ev.features("query", crop), ev.features("gallery", crop)
    d = GlobalMatcher()(fq, fg)
    q = np.array([r.pid for r in ds.query]), np.array([r.camid for r in ds.query])
    g = np.array([r.pid for r in ds.gallery]), np.array([r.camid for r in ds.gallery])
    ref = evaluate_rank_detailed(d, q[0], g[0], q[1], g[1])
    assert res[0]["R-1"] == pytest.approx(ref.rank(1)) and res[0]["mAP"] == pytest.approx(ref.mAP)
    assert "query and gallery images both cropped" in proto.describe()


def test_mixed_shares():
    ds = TinyData()
    ev = Evaluator(MeanColour(), ds, device="cpu")
    res = ev.evaluate(MixedProtocol(query_shares=(0.0, 1.0), gallery_shares=(0.0, 0.5), seed=2))
    assert len(res) == 4
    (market,) = ev.evaluate("market")
    assert res[0].metrics == market.metrics  # 0% / 0%
    settings = MixedProtocol(query_shares=(0.25, 0.75), gallery_shares=0.5, seed=2).settings(ds)
    a, b = settings[0].trials[0].query.cropped, settings[1].trials[0].query.cropped
    assert a.sum() == 2 and b.sum() == 6 and (b[a]).all()  # larger shares contain smaller ones
    assert settings[0].trials[0].gallery.cropped.sum() == round(0.5 * len(ds.gallery))
    # a 100% query share uses exactly the cropped features
    crop = settings[0].trials[0].query.crop
    from reidlib.eval.protocols import View

    full = ev.view_features(View("query", crop=crop, cropped=np.ones(len(ds.query), bool)))
    torch.testing.assert_close(full.global_feat, ev.features("query", crop).global_feat)


def test_precomputed_features_and_clear_errors():
    ds = TinyData()
    g = torch.Generator().manual_seed(0)
    feats = {"query": Features(global_feat=torch.randn(len(ds.query), 4, generator=g)),
             "gallery": Features(global_feat=torch.randn(len(ds.gallery), 4, generator=g))}
    res = evaluate(feats, ds, ["market", "partial-query"], device="cpu", method="random")
    assert len(res) == 2 and res[0].method == "random"
    with pytest.raises(ValueError, match="precomputed features were given without split 'query' with a crop"):
        evaluate(feats, ds, CropSweep(ratios=(0.5,)), device="cpu")
    with pytest.raises(ValueError, match="has 3 rows"):
        evaluate({"query": Features(global_feat=torch.zeros(3, 4))}, ds, "market", device="cpu")
    with pytest.raises(ValueError, match="unknown protocol 'cuhk'"):
        build_protocol("cuhk")
    with pytest.raises(ValueError, match="unknown crop strategy"):
        CropSweep(strategy="diagonal")
    with pytest.raises(ValueError, match="area ratios"):
        CropSweep(ratios=(0.0,))
    with pytest.raises(ValueError, match="mode"):
        SingleShotTrials("all")
    with pytest.raises(TypeError, match="ReIDModel"):
        Evaluator(object(), ds, device="cpu")


def test_results_table_and_json_roundtrip(tmp_path):
    ds = TinyData()
    res = Evaluator(MeanColour(), ds, device="cpu").evaluate(["market", CropSweep(ratios=(0.5,))], method="mc", profile="smoke")
    df = results_table(res)
    assert list(df.columns[:8]) == ["protocol", "setting", "dataset", "method", "R-1", "R-3", "R-5", "R-10"]
    assert df["R-1"].iloc[0] == pytest.approx(round(100 * res[0]["R-1"], 1))
    text = format_results(res)
    assert "| market |" in text and "VPM Table 1" in text and "Hardware:" in text
    p = save_results(tmp_path / "r" / "out.json", res, command="pytest", commit="abc123")
    doc = json.loads(p.read_text())
    assert doc["meta"]["command"] == "pytest" and doc["meta"]["commit"] == "abc123" and doc["meta"]["profile"] == "smoke"
    assert doc["meta"]["hardware"]["summary"] == res[0].hardware
    back, meta = load_results(p)
    assert [r.metrics for r in back] == [r.metrics for r in res] and meta["command"] == "pytest"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        load_results(tmp_path / "bad.json")


def test_ranked_list_follows_the_evaluation_rules():
    from reidlib.viz.ranking import ranked_list

    # query pid 1 cam 0; gallery (pid, cam, d): (1,0,0.1) removed, (2,1,0.2), (1,1,0.2) tie -> index order, (3,2,0.05)
    idx, dist, match = ranked_list(np.array([0.1, 0.2, 0.2, 0.05]), 1, 0, [1, 2, 1, 3], [0, 1, 1, 2], k=3)
    assert idx.tolist() == [3, 1, 2] and match.tolist() == [False, False, True]
    np.testing.assert_allclose(dist, [0.05, 0.2, 0.2])
    idx, _, _ = ranked_list(np.array([0.1, 0.2, 0.2, 0.05]), 1, 0, [1, 2, 1, 3], [0, 1, 1, 2], k=2, same_camera_rule=False)
    assert idx.tolist() == [3, 0]


def test_show_interactive_shows_static_figure_then_widget(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reidlib.viz import widgets

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.delenv(widgets.STATIC_ENV, raising=False)
    fig = plt.figure()
    w = widgets.show_interactive(lambda: "the widget", lambda: fig)
    assert shown == [fig, "the widget"] and w == "the widget"
    # the book build: static figure and a pointer to Jupyter, the widget is never built
    shown.clear()
    monkeypatch.setenv(widgets.STATIC_ENV, "1")
    built = []
    fig2 = plt.figure()
    assert widgets.show_interactive(lambda: built.append(1), lambda: fig2) is None
    assert built == [] and shown[0] is fig2 and "Jupyter" in shown[1].data
    with pytest.raises(TypeError, match="matplotlib Figure"):
        widgets.show_interactive(lambda: None, lambda: None)
