"""Chapter 08's support: memoised pair distances, costs, Kendall's tau, headline flips, loading."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from reidlib.comparison import COMPARED, HEADLINES, Headline, comparison_columns, headline_flips, kendall_matrix, load_compared
from reidlib.config import resolve_run
from reidlib.eval.costs import PeakMemory, feature_bytes, matching_cost, tile_features
from reidlib.metrics.features import Features
from reidlib.metrics.matchers import GlobalMatcher, PairwiseMatcher, memoize_pairs, with_row_ids


def _pair_fn(calls):
    def fn(q, g):
        calls.append(len(q))
        return ((q.global_feat - g.global_feat) ** 2).sum(1) + 0.1 * q.global_feat[:, 0] * g.global_feat[:, 1]
    return fn


def test_memoized_pairs_equal_the_matcher_over_many_trials_and_score_each_pair_once():
    g = torch.Generator().manual_seed(0)
    qf = with_row_ids(Features(global_feat=torch.randn(7, 4, generator=g)), 0)
    gf = with_row_ids(Features(global_feat=torch.randn(9, 4, generator=g)), 1 << 32)
    base_calls, memo_calls = [], []
    base = PairwiseMatcher(_pair_fn(base_calls), batch_pairs=4, shortlist=3)
    memo = memoize_pairs(PairwiseMatcher(_pair_fn(memo_calls), batch_pairs=4, shortlist=3))
    rng = np.random.default_rng(0)
    pairs_seen = set()
    for _ in range(20):  # single-gallery-shot style trials: a random gallery subset each time
        gi = torch.as_tensor(rng.choice(9, size=5, replace=False))
        d_memo, d_base = memo(qf, gf[gi]), base(qf, gf[gi])
        torch.testing.assert_close(d_memo, d_base)
        top = torch.topk(GlobalMatcher()(qf, gf[gi]), 3, dim=1, largest=False).indices
        pairs_seen |= {(q, int(gi[j])) for q in range(7) for j in top[q].tolist()}
    assert memo.pairs_scored[0] == len(pairs_seen) == sum(memo_calls)
    assert sum(base_calls) == 20 * 7 * 3
    # rows without ids (a cropped view: other images) are scored every time
    plain = Features(global_feat=qf.global_feat.clone())
    before = memo.pairs_scored[0]
    torch.testing.assert_close(memo(plain, gf), base(plain, gf))
    assert memo.pairs_scored[0] == before + 7 * 3
    with pytest.raises(TypeError, match="expected a PairwiseMatcher"):
        memoize_pairs(GlobalMatcher())


def test_feature_bytes_counts_every_stored_tensor_but_not_row_ids():
    f = Features(global_feat=torch.zeros(4, 8), parts=torch.zeros(4, 3, 8), visibility=torch.zeros(4, 3),
                 images=torch.zeros(4, 3, 2, 2, dtype=torch.uint8))
    assert feature_bytes(f) == 8 * 4 + 24 * 4 + 3 * 4 + 12
    assert feature_bytes(f, dtype=torch.float16) == 8 * 2 + 24 * 2 + 3 * 2 + 12
    assert feature_bytes(with_row_ids(f)) == 8 * 4 + 24 * 4 + 3 * 4 + 12
    with pytest.raises(ValueError, match="no rows"):
        feature_bytes(Features(global_feat=torch.zeros(0, 3)))


def test_tile_features_repeats_rows_in_order():
    f = Features(global_feat=torch.arange(3.0)[:, None])
    assert tile_features(f, 7).global_feat.flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_matching_cost_scales_a_pairwise_matcher_and_runs_a_global_one_in_full():
    qf, gf = Features(global_feat=torch.randn(5, 4)), Features(global_feat=torch.randn(6, 4))
    full = matching_cost(GlobalMatcher(), qf, gf, n_query=50, n_gallery=80)
    assert (full.queries_run, full.scaled, full.notes) == (50, False, ["median of 3 runs"])
    assert matching_cost(GlobalMatcher(), qf, gf, n_query=50, n_gallery=80, repeats=1).notes == []
    calls = []
    pw = PairwiseMatcher(_pair_fn(calls), batch_pairs=64)
    mc = matching_cost(pw, qf, gf, n_query=50, n_gallery=80, max_pairs=200, pairs_per_query=80, repeats=1)
    assert mc.queries_run == 3 and mc.scaled and "ran 3 of 50 queries" in mc.notes[0]
    assert sum(calls) == 2 * 64 + 3 * 80  # the warm-up (2 x 64) and the three timed queries
    with pytest.raises(ValueError, match="positive sizes"):
        matching_cost(GlobalMatcher(), qf, gf, n_query=0)


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory("cpu", interval=0.001) as mem:
        x = torch.ones(64, 2**20 // 4 * 4)  # 64 MiB, touched
        float(x.sum())
        del x
    if mem.peak is None:
        pytest.skip(mem.how)  # not Linux: said in `how`
    assert mem.peak > 32 * 2**20


def _slow_tau(a, b):
    # Kendall's tau-b by counting pairs (no ties in the hand-made cases below: tau-a = tau-b)
    conc = disc = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
        conc += s > 0
        disc += s < 0
    return (conc - disc) / math.comb(len(a), 2)


def test_kendall_matrix_equals_counting_pairs():
    rng = np.random.default_rng(1)
    t = pd.DataFrame(rng.permutation(30).reshape(6, 5).astype(float), columns=list("abcde"))
    k = kendall_matrix(t)
    for a, b in itertools.product(t.columns, t.columns):
        assert k.loc[a, b] == pytest.approx(_slow_tau(t[a].values, t[b].values))
    same = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [10.0, 20, 30, 40], "z": [4.0, 3, 2, 1], "c": [5.0] * 4})
    k = kendall_matrix(same)
    assert k.loc["x", "y"] == 1 and k.loc["x", "z"] == -1 and math.isnan(k.loc["x", "c"])
    # a pair with fewer than three methods in common is NaN
    sparse = pd.DataFrame({"x": [1.0, 2, np.nan, np.nan], "y": [1.0, 2, 3, 4]})
    assert math.isnan(kendall_matrix(sparse).loc["x", "y"])


def test_headline_flips_on_a_hand_made_table():
    table = pd.DataFrame({"own": [60.0, 50.0], "other": [40.0, 60.0], "close": [50.0, 51.0]}, index=["SANet", "HPNet"])
    n = {"own": 100, "other": 100, "close": 100}
    (row,) = headline_flips(table, n, [Headline("SANet", "HPNet", "sanet", "Table 1", "Partial-REID", "own")])
    assert row["measured"] == 10 and row["flips"] == ["other"] and row["ties"] == ["close"]
    assert row["reported"] is not None  # both are in SANet's Table 1
    assert headline_flips(table, n, [Headline("VPM", "PCB", "vpm", "Table 1", "Market-1501", "own")]) == []


def test_columns_and_headlines_name_known_protocols_and_methods():
    cols = comparison_columns((0.5, 1.0), repeats=3)
    keys = [c.key for c in cols]
    assert len(set(keys)) == len(keys) and {"reid-all", "reid-dsr", "reid-random", "crop-0.5", "crop-1", "mixed"} <= set(keys)
    labels = {e.label for e in COMPARED}
    assert all(h.winner in labels and h.loser in labels for h in HEADLINES)
    assert all(h.column in {c.key for c in comparison_columns()} for h in HEADLINES)


def test_load_compared_names_what_is_missing(tmp_path, monkeypatch):
    import reidlib.comparison as comparison

    monkeypatch.setattr(comparison, "find_project_root", lambda: tmp_path)
    loaded, missing = load_compared(resolve_run("full", "cpu", None, 0), COMPARED[:2])
    assert loaded == {} and set(missing) == {"Pad", "Resize"}
    assert "runs/03_holistic_models_fail/full/baseline-<hash>" in missing["Pad"]
    assert "notebooks/03_holistic_models_fail.ipynb" in missing["Pad"]


def test_load_compared_reads_the_committed_weights_once_per_model():
    loaded, missing = load_compared(resolve_run("book", "cpu", None, 0), COMPARED[:3])
    assert missing == {} and loaded["Pad"].model is loaded["Resize"].model
    assert loaded["PCB"].source.startswith("committed weights weights/book/03_holistic_models_fail/pcb")


def test_features_round_trip_and_a_bad_file_is_named(tmp_path):
    from reidlib.eval.costs import load_features, save_features

    f = with_row_ids(Features(global_feat=torch.randn(3, 4), visibility=torch.rand(3, 2), extra={"maps": torch.randn(3, 2, 2)}))
    save_features(f, tmp_path / "f.pt")
    g = load_features(tmp_path / "f.pt")
    assert torch.equal(g.global_feat, f.global_feat) and torch.equal(g.extra["maps"], f.extra["maps"])
    assert "row" not in g.extra and g.parts is None
    (tmp_path / "bad.pt").write_text("not a tensor file")
    with pytest.raises(ValueError, match="bad.pt: not a features file"):
        load_features(tmp_path / "bad.pt")


def test_isolated_matching_cost_runs_the_committed_model_in_a_fresh_process():
    from reidlib.comparison import isolated_matching_cost

    loaded, _ = load_compared(resolve_run("book", "cpu", None, 0), COMPARED[2:3])  # PCB
    pcb = loaded["PCB"].model
    x = torch.randn(6, 3, 128, 64)
    with torch.no_grad():
        f = pcb.eval().extract(x)
    (mc,) = isolated_matching_cost(loaded["PCB"].ref, f[torch.arange(3)], f, ["model"], n_query=20, n_gallery=50, threads=1)
    assert (mc.n_query, mc.n_gallery, mc.queries_run) == (20, 50, 20) and mc.seconds > 0
    assert mc.matcher == pcb.matcher().describe()
    with pytest.raises(RuntimeError, match="failed"):
        isolated_matching_cost({"weights": "03_holistic_models_fail/nope"}, f, f, ["model"], n_query=2, n_gallery=2)


def test_book_claim_rows_fill_in_unrun_claims_and_the_html_links_each_chapter(tmp_path):
    from reidlib.chapters import book_claim_rows, scoreboard_by_chapter, scoreboard_html
    from reidlib.claims import CLAIMS, write_claims

    ids = [cid for cid, c in CLAIMS.items() if c.chapter == "04_vpm"]
    path = tmp_path / "claims.json"
    rows = book_claim_rows(path, ["04_vpm"])  # no file yet: every claim "not run"
    assert [r["id"] for r in rows] == ids and all(r["holds"] is None and r["measured"] == "not run" for r in rows)
    done = dict(rows[0], holds=True, measured="61.0", seeds_held="3/3", evidence="measured")
    write_claims(path, "04_vpm", [done], profile="book", seed=0)
    rows = book_claim_rows(path, ["04_vpm", "05_stnreid"])
    assert rows[0]["holds"] is True and sum(r["holds"] is None for r in rows) == len(rows) - 1
    assert {r["chapter"] for r in rows} == {"04_vpm", "05_stnreid"}
    html = scoreboard_html(rows)
    assert html.count('<a href="04_vpm.html#what-reproduced">4. VPM</a>') == len(ids)
    per = scoreboard_by_chapter(rows, ["04_vpm", "05_stnreid"])
    assert per.loc["4. VPM", "✓"] == 1 and per.loc["4. VPM", "not run"] == len(ids) - 1
