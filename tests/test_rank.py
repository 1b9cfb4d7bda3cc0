"""reidlib.metrics.rank against hand-computed values and a slow, obviously-correct reference."""

import math

import numpy as np
import pytest
import torch

from reidlib.metrics.rank import choose_chunk_size, evaluate_rank, evaluate_rank_detailed


# ----------------------------------------------------------------------------------------
# the slow reference: torchreid's loop, with a stable argsort (ties by gallery index)
# ----------------------------------------------------------------------------------------
def reference_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Returns (cmc, mAP, mINP, per-query first rank (-1 invalid), per-query AP (nan invalid))."""
    distmat = np.asarray(distmat)
    nq, ng = distmat.shape
    max_rank = min(max_rank, ng)
    cmcs, aps, inps = [], [], []
    first = np.full(nq, -1)
    ap_q = np.full(nq, np.nan)
    for i in range(nq):
        order = np.argsort(distmat[i], kind="stable")
        kept = [j for j in order if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        raw = [1 if g_pids[j] == q_pids[i] else 0 for j in kept]
        if sum(raw) == 0:
            continue
        hits, prec, cmc = 0, [], []
        for r, m in enumerate(raw):
            if m:
                hits += 1
                prec.append(hits / (r + 1))
                last = r
            cmc.append(1 if hits > 0 else 0)
        cmc = cmc[:max_rank] + [1] * (max_rank - len(cmc[:max_rank]))
        cmcs.append(cmc)
        first[i] = raw.index(1)
        ap_q[i] = sum(prec) / hits
        aps.append(ap_q[i])
        inps.append(hits / (last + 1))
    if not cmcs:
        return None
    cmc = np.asarray(cmcs, dtype=np.float32).sum(0) / len(cmcs)
    return cmc, float(np.mean(aps)), float(np.mean(inps)), first, ap_q


def random_case(rng, ties: bool, Q=None, G=None):
    Q = Q or int(rng.integers(1, 25))
    G = G or int(rng.integers(1, 70))
    n_ids = int(rng.integers(1, 8))
    q_pids = rng.integers(1, n_ids + 1, Q)
    g_pids = rng.integers(0, n_ids + 1, G)  # pid 0 = distractors
    q_cams = rng.integers(0, 3, Q)
    g_cams = rng.integers(0, 3, G)
    if ties:
        D = rng.integers(0, 4, (Q, G)).astype(np.float32)
    else:
        D = rng.permutation(Q * G).reshape(Q, G).astype(np.float32) / (Q * G)
    return D, q_pids, g_pids, q_cams, g_cams


# ----------------------------------------------------------------------------------------
# hand-made cases
# ----------------------------------------------------------------------------------------
def test_hand_case_market_rules():
    # query: pid 1, camera 0.
    # gallery index: pid, cam, distance
    #   0: pid 2, cam 1, 0.10   non-match
    #   1: pid 1, cam 0, 0.05   same pid + same camera -> removed
    #   2: pid 1, cam 1, 0.30   true match
    #   3: pid 0, cam 0, 0.20   distractor (kept, although same camera)
    #   4: pid 1, cam 2, 0.60   true match
    #   5: pid 3, cam 1, 0.50   non-match
    # kept ranking: 0 (N), 3 (N), 2 (T), 5 (N), 4 (T) -> true matches at ranks 3 and 5.
    # CMC: 0, 0, 1, 1, 1 and the 6th entry (max_rank cut to G = 6; the kept list has 5) = 1.
    # AP = (1/3 + 2/5) / 2 = 11/30;  INP = 2 matches / rank 5 of the hardest = 0.4.
    D = np.array([[0.10, 0.05, 0.30, 0.20, 0.60, 0.50]], dtype=np.float32)
    g_pids = np.array([2, 1, 1, 0, 1, 3])
    g_cams = np.array([1, 0, 1, 0, 2, 1])
    r = evaluate_rank_detailed(D, [1], g_pids, [0], g_cams)
    np.testing.assert_array_equal(r.cmc, np.array([0, 0, 1, 1, 1, 1], dtype=np.float32))
    assert r.cmc.dtype == np.float32 and r.cmc.shape == (6,)
    assert r.mAP == pytest.approx(11 / 30, abs=1e-12)
    assert r.mINP == pytest.approx(0.4, abs=1e-12)
    assert r.first_rank.tolist() == [2]
    assert r.num_matches.tolist() == [2]
    cmc, mAP = evaluate_rank(D, [1], g_pids, [0], g_cams)
    np.testing.assert_array_equal(cmc, r.cmc)
    assert mAP == r.mAP


def test_hand_case_ties_by_gallery_index_and_invalid_query():
    # query 0: pid 1, cam 0.  gallery (pid, cam, d): 0 (2, 1, 1), 1 (1, 1, 1), 2 (1, 2, 0), 3 (3, 1, 1)
    #   stable order: 2 (d 0, T), 0 (d 1, N), 1 (d 1, T), 3 (d 1, N)
    #   -> true matches at ranks 1 and 3: AP = (1/1 + 2/3) / 2 = 5/6, INP = 2/3
    #   (had the tied true match 1 been put before 0, AP would be 1.)
    # query 1: pid 9 -> no true match in the gallery -> skipped.
    # query 2: pid 3, cam 1: its only same-pid image (3) has camera 1 -> removed -> skipped.
    # query 3: pid 2, cam 0: row [3, 2, 2, 1] -> order 3 (N), 1 (N), 2 (N), 0 (T):
    #   ties between 1 and 2 (d 2) go by index; true match at rank 4: AP = 1/4, INP = 1/4.
    # mAP = (5/6 + 1/4) / 2 = 13/24; mINP = (2/3 + 1/4) / 2 = 11/24;
    # CMC over the 2 valid queries: rank1 = 1/2, rank2 = 1/2, rank3 = 1/2, rank4 = 1.
    D = np.array([[1, 1, 0, 1], [0, 1, 2, 3], [1, 1, 1, 1], [3, 2, 2, 1]], dtype=np.float32)
    q_pids, q_cams = np.array([1, 9, 3, 2]), np.array([0, 0, 1, 0])
    g_pids, g_cams = np.array([2, 1, 1, 3]), np.array([1, 1, 2, 1])
    r = evaluate_rank_detailed(D, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    assert r.valid.tolist() == [True, False, False, True]
    assert r.num_valid == 2
    np.testing.assert_array_equal(r.cmc, np.array([0.5, 0.5, 0.5, 1.0], dtype=np.float32))
    assert r.mAP == pytest.approx(13 / 24, abs=1e-12)
    assert r.mINP == pytest.approx(11 / 24, abs=1e-12)
    assert r.first_rank.tolist() == [0, -1, -1, 3]
    assert r.ap[0] == pytest.approx(5 / 6) and math.isnan(r.ap[1]) and r.ap[3] == pytest.approx(0.25)
    assert r.rank(1) == 0.5 and r.rank(4) == 1.0
    with pytest.raises(ValueError, match="rank k=5"):
        r.rank(5)


def test_inf_distances_rank_last_by_index():
    # query pid 1 cam 0; gallery d = [inf (T), inf (N), 0.5 (N), inf (T)]
    # order: 2 (N), 0 (T), 1 (N), 3 (T) -> AP = (1/2 + 2/4) / 2 = 0.5
    D = np.array([[np.inf, np.inf, 0.5, np.inf]], dtype=np.float32)
    r = evaluate_rank_detailed(D, [1], [1, 2, 3, 1], [0], [1, 1, 1, 1])
    assert r.mAP == pytest.approx(0.5)
    assert r.first_rank.tolist() == [1]


# ----------------------------------------------------------------------------------------
# against the reference
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ties", [False, True])
def test_random_cases_match_reference(ties):
    rng = np.random.default_rng(1234 + ties)
    checked = 0
    for _ in range(150):
        D, qp, gp, qc, gc = random_case(rng, ties)
        max_rank = int(rng.integers(1, 60))
        ref = reference_rank(D, qp, gp, qc, gc, max_rank)
        if ref is None:
            with pytest.raises(ValueError, match="no valid query"):
                evaluate_rank(D, qp, gp, qc, gc, max_rank)
            continue
        cmc_ref, map_ref, minp_ref, first_ref, ap_ref = ref
        r = evaluate_rank_detailed(D, qp, gp, qc, gc, max_rank, chunk_size=int(rng.integers(1, 8)))
        np.testing.assert_array_equal(r.cmc, cmc_ref)
        assert len(r.cmc) == min(max_rank, D.shape[1])
        assert r.mAP == pytest.approx(map_ref, abs=1e-12)
        assert r.mINP == pytest.approx(minp_ref, abs=1e-12)
        np.testing.assert_array_equal(r.first_rank, first_ref)
        np.testing.assert_allclose(r.ap, ap_ref, atol=1e-12)
        checked += 1
    assert checked > 100


def test_larger_case_with_many_matches_and_ties():
    rng = np.random.default_rng(7)
    D, qp, gp, qc, gc = random_case(rng, ties=True, Q=40, G=400)
    gp = rng.integers(0, 3, 400)  # many true matches per query
    qp = rng.integers(1, 3, 40)
    cmc_ref, map_ref, minp_ref, first_ref, _ = reference_rank(D, qp, gp, qc, gc, 50)
    r = evaluate_rank_detailed(D, qp, gp, qc, gc, 50, chunk_size=7)
    np.testing.assert_array_equal(r.cmc, cmc_ref)
    assert r.mAP == pytest.approx(map_ref, abs=1e-12)
    assert r.mINP == pytest.approx(minp_ref, abs=1e-12)


def test_gallery_smaller_than_max_rank():
    rng = np.random.default_rng(3)
    D, qp, gp, qc, gc = random_case(rng, ties=False, Q=10, G=5)
    gp = np.array([1, 1, 2, 2, 0])
    qp = rng.integers(1, 3, 10)
    cmc, mAP = evaluate_rank(D, qp, gp, qc, gc, max_rank=50)
    assert cmc.shape == (5,)
    cmc_ref, map_ref, *_ = reference_rank(D, qp, gp, qc, gc, 50)
    np.testing.assert_array_equal(cmc, cmc_ref)
    assert mAP == pytest.approx(map_ref, abs=1e-12)


def test_numpy_torch_callable_and_chunk_invariance():
    rng = np.random.default_rng(11)
    D, qp, gp, qc, gc = random_case(rng, ties=True, Q=37, G=120)
    base = evaluate_rank_detailed(D, qp, gp, qc, gc, 20)
    variants = [
        evaluate_rank_detailed(torch.from_numpy(D), torch.from_numpy(qp), torch.from_numpy(gp),
                               torch.from_numpy(qc), torch.from_numpy(gc), 20),
        evaluate_rank_detailed(D.astype(np.float64), list(qp), list(gp), list(qc), list(gc), 20),
        evaluate_rank_detailed(lambda s, e: D[s:e], qp, gp, qc, gc, 20, chunk_size=5),
        evaluate_rank_detailed(lambda s, e: torch.from_numpy(D[s:e]), qp, gp, qc, gc, 20, chunk_size=3),
        evaluate_rank_detailed(D, qp, gp, qc, gc, 20, memory_budget=1),  # one query per chunk
    ] + [evaluate_rank_detailed(D, qp, gp, qc, gc, 20, chunk_size=c) for c in (1, 2, 9, 36, 37, 1000)]
    for v in variants:
        np.testing.assert_array_equal(v.cmc, base.cmc)
        assert v.mAP == pytest.approx(base.mAP, abs=1e-12)
        assert v.mINP == pytest.approx(base.mINP, abs=1e-12)
        np.testing.assert_array_equal(v.first_rank, base.first_rank)
        np.testing.assert_allclose(v.ap, base.ap, atol=1e-12)


def test_tie_free_agrees_with_unstable_argsort():
    # on tie-free input the tie rule does not matter: torchreid's np.argsort gives the same
    rng = np.random.default_rng(5)
    D, qp, gp, qc, gc = random_case(rng, ties=False, Q=20, G=60)
    idx = np.argsort(D, axis=1)  # torchreid's call (quicksort)
    assert np.array_equal(idx, np.argsort(D, axis=1, kind="stable"))
    cmc_ref, map_ref, *_ = reference_rank(D, qp, gp, qc, gc)
    cmc, mAP = evaluate_rank(D, qp, gp, qc, gc)
    np.testing.assert_array_equal(cmc, cmc_ref)
    assert mAP == pytest.approx(map_ref, abs=1e-12)


def test_choose_chunk_size_from_budget():
    assert choose_chunk_size(100_000, 2**30) >= 100
    assert choose_chunk_size(100_000, 1) == 1
    with pytest.raises(ValueError, match="memory_budget"):
        choose_chunk_size(10, 0)


def test_bad_input_errors():
    D = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="q_pids has 3 entries"):
        evaluate_rank(D, [1, 2, 3], [1, 1, 1], [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="g_camids has 2 entries"):
        evaluate_rank(D, [1, 2], [1, 1, 1], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="2-D"):
        evaluate_rank(np.zeros(3), [1], [1, 1, 1], [0], [1, 1, 1])
    with pytest.raises(TypeError, match="integers"):
        evaluate_rank(D, [1.5, 2.0], [1, 1, 1], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="no valid query"):
        evaluate_rank(D, [5, 6], [1, 1, 1], [0, 0], [1, 1, 1])
    Dn = D.copy()
    Dn[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(Dn, [1, 1], [1, 1, 1], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        evaluate_rank(lambda s, e: np.zeros((e - s, 4)), [1, 1], [1, 1, 1], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_rank(D, [1, 1], [1, 1, 1], [0, 0], [1, 1, 1], max_rank=0)


def test_benchmark_problem_and_reference_loop_agree():
    from reidlib.bench.eval import reference_loop, synthetic_problem
    from reidlib.metrics.distance import euclidean_squared

    qf, gf, qp, gp, qc, gc = synthetic_problem(60, 400, 30, 40, 6, dim=16, seed=3)
    assert (gp[:40] == 0).all() and qp.min() >= 1 and len(set(qc)) == 6
    D = euclidean_squared(qf, gf)
    cmc_ref, map_ref = reference_loop(D.numpy(), qp, gp, qc, gc)
    cmc, mAP = evaluate_rank(D, qp, gp, qc, gc)
    np.testing.assert_array_equal(cmc, cmc_ref)
    assert mAP == pytest.approx(map_ref, abs=1e-12)
    # the callable form (as the memory check runs it) gives the same
    cmc2, mAP2 = evaluate_rank(lambda s, e: euclidean_squared(qf[s:e], gf), qp, gp, qc, gc, chunk_size=7)
    np.testing.assert_array_equal(cmc2, cmc)
    assert mAP2 == pytest.approx(mAP, abs=1e-12)
