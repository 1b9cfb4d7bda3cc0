"""reidlib.metrics.distance against loop references and hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from reidlib.metrics.distance import (
    common_parts_distance,
    compute_distance_matrix,
    cosine_distance,
    euclidean_squared,
    pcb_distance,
    visibility_weighted_distance,
)


def _feats(seed, Q=7, G=11, P=4, D=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(Q, P, D, generator=g, dtype=torch.float64), torch.randn(G, P, D, generator=g, dtype=torch.float64)


def test_euclidean_squared_hand_and_loop():
    # |(1,2) - (3,0)|^2 = 4 + 4 = 8 ; |(1,2) - (1,2)|^2 = 0 ; |(0,0) - (3,0)|^2 = 9
    q = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    g = torch.tensor([[3.0, 0.0], [1.0, 2.0]])
    torch.testing.assert_close(euclidean_squared(q, g), torch.tensor([[8.0, 0.0], [9.0, 5.0]]))
    qp, gp = _feats(0)
    q, g = qp[:, 0], gp[:, 0]
    ref = torch.stack([torch.stack([((a - b) ** 2).sum() for b in g]) for a in q])
    torch.testing.assert_close(euclidean_squared(q, g), ref)
    torch.testing.assert_close(compute_distance_matrix(q, g, "euclidean"), ref)


def test_cosine_hand_and_loop():
    # cos((1,0),(0,1)) = 0 -> 1 ; cos((1,0),(2,0)) = 1 -> 0 ; cos((1,1),(1,0)) = 1/sqrt2
    q = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    g = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    expect = torch.tensor([[1.0, 0.0], [1 - 1 / math.sqrt(2), 1 - 1 / math.sqrt(2)]])
    torch.testing.assert_close(cosine_distance(q, g), expect)
    qp, gp = _feats(1)
    q, g = qp[:, 1], gp[:, 1]
    ref = torch.stack([torch.stack([1 - (a @ b) / (a.norm() * b.norm()) for b in g]) for a in q])
    torch.testing.assert_close(compute_distance_matrix(q, g, "cosine"), ref)


def test_pcb_is_sum_of_normalised_stripe_distances():
    qp, gp = _feats(2)
    ref = sum(euclidean_squared(F.normalize(qp[:, i], dim=1), F.normalize(gp[:, i], dim=1)) for i in range(qp.shape[1]))
    torch.testing.assert_close(pcb_distance(qp, gp), ref.float(), rtol=1e-5, atol=1e-5)
    # cosine on the concatenation of P unit vectors = 1 - mean_i cos_i
    cos = sum(1 - cosine_distance(qp[:, i], gp[:, i]) for i in range(qp.shape[1])) / qp.shape[1]
    torch.testing.assert_close(pcb_distance(qp, gp, "cosine"), (1 - cos).float(), rtol=1e-5, atol=1e-5)


def _vpm_loop(qp, qv, gp, gv, no_common=math.inf):
    out = torch.empty(qp.shape[0], gp.shape[0])
    for k in range(qp.shape[0]):
        for l in range(gp.shape[0]):
            num = den = 0.0
            for i in range(qp.shape[1]):
                w = float(qv[k, i] * gv[l, i])
                num += w * float((qp[k, i] - gp[l, i]).norm())
                den += w
            out[k, l] = num / den if den > 0 else no_common
    return out


def test_vpm_eq4_hand_case():
    # two regions; query C = (1, 0.5), gallery C = (0.5, 1)
    # D_1 = |(0,0)-(3,4)| = 5, D_2 = |(1,0)-(1,1)| = 1
    # D = (1*0.5*5 + 0.5*1*1) / (0.5 + 0.5) = 3.0
    qp = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    gp = torch.tensor([[[3.0, 4.0], [1.0, 1.0]]])
    d = visibility_weighted_distance(qp, torch.tensor([[1.0, 0.5]]), gp, torch.tensor([[0.5, 1.0]]))
    assert d.shape == (1, 1) and float(d) == pytest.approx(3.0, abs=1e-6)


def test_vpm_matches_loop_and_is_chunk_invariant():
    qp, gp = _feats(3)
    g = torch.Generator().manual_seed(3)
    qv, gv = torch.rand(7, 4, generator=g), torch.rand(11, 4, generator=g)
    qv[0] = 0  # a query with nothing visible -> no common region with anyone
    ref = _vpm_loop(qp, qv, gp, gv)
    full = visibility_weighted_distance(qp, qv, gp, gv)
    tiny = visibility_weighted_distance(qp, qv, gp, gv, memory_budget=1)  # one query per block
    torch.testing.assert_close(full, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny, full)
    assert torch.isinf(full[0]).all()
    d7 = visibility_weighted_distance(qp, qv, gp, gv, no_common=7.0)
    assert (d7[0] == 7.0).all()
    dm = visibility_weighted_distance(qp, qv, gp, gv, no_common="mean")
    mean_ref = torch.stack([(qp[0, i] - gp[:, i]).norm(dim=1) for i in range(4)]).mean(0)
    torch.testing.assert_close(dm[0], mean_ref.float(), rtol=1e-5, atol=1e-5)


def _sanet_loop(qp, qv, gp, gv, thr=0.5):
    out = torch.empty(qp.shape[0], gp.shape[0])
    for k in range(qp.shape[0]):
        for l in range(gp.shape[0]):
            ds = [float((qp[k, i] - gp[l, i]).norm()) for i in range(qp.shape[1]) if qv[k, i] > thr and gv[l, i] > thr]
            out[k, l] = sum(ds) / len(ds) if ds else math.inf
    return out


def test_sanet_eq7_hand_case():
    # parts visible: query (1, 1, 0), gallery (1, 0, 1) -> only part 0 is common
    # D_0 = |(0,0) - (0,2)| = 2 -> D = 2 / 1 = 2  (parts 1 and 2 ignored even though far)
    qp = torch.tensor([[[0.0, 0.0], [9.0, 9.0], [5.0, 5.0]]])
    gp = torch.tensor([[[0.0, 2.0], [0.0, 0.0], [-5.0, -5.0]]])
    d = common_parts_distance(qp, torch.tensor([[1.0, 1.0, 0.0]]), gp, torch.tensor([[1.0, 0.0, 1.0]]))
    assert float(d) == pytest.approx(2.0, abs=1e-6)
    # nothing in common -> inf (documented decision)
    d = common_parts_distance(qp, torch.tensor([[1.0, 0.0, 0.0]]), gp, torch.tensor([[0.0, 1.0, 1.0]]))
    assert math.isinf(float(d))


def test_sanet_matches_loop_and_is_chunk_invariant():
    qp, gp = _feats(4, Q=9, G=13, P=5)
    g = torch.Generator().manual_seed(4)
    qv = (torch.rand(9, 5, generator=g) > 0.4).float()
    gv = (torch.rand(13, 5, generator=g) > 0.4).float()
    qv[2] = 0
    ref = _sanet_loop(qp, qv, gp, gv)
    full = common_parts_distance(qp, qv, gp, gv)
    torch.testing.assert_close(full, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(common_parts_distance(qp, qv, gp, gv, memory_budget=1), full)
    # pixel counts with the default threshold behave like flags
    torch.testing.assert_close(common_parts_distance(qp, qv * 37, gp, gv * 12), full)


def test_distance_errors():
    with pytest.raises(ValueError, match=r"expected \(N, D\)"):
        euclidean_squared(torch.zeros(3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="differ beyond the first"):
        cosine_distance(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="unknown metric"):
        compute_distance_matrix(torch.zeros(2, 3), torch.zeros(2, 3), "manhattan")
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        visibility_weighted_distance(torch.zeros(2, 3, 4), torch.zeros(2, 2), torch.zeros(5, 3, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="no_common"):
        common_parts_distance(torch.zeros(2, 3, 4), torch.zeros(2, 3), torch.zeros(5, 3, 4), torch.zeros(5, 3), no_common="zero")
    with pytest.raises(ValueError, match=">= 0"):
        visibility_weighted_distance(torch.zeros(2, 3, 4), -torch.ones(2, 3), torch.zeros(5, 3, 4), torch.zeros(5, 3))
