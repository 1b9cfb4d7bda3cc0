"""reidlib.metrics.matchers: global/part matchers and the batched pairwise matcher."""

import math

import pytest
import torch
import torch.nn.functional as F

from reidlib.metrics.distance import common_parts_distance, euclidean_squared, visibility_weighted_distance
from reidlib.metrics.matchers import (
    CommonPartsMatcher,
    GlobalMatcher,
    PairwiseMatcher,
    PCBMatcher,
    VisibilityWeightedMatcher,
)
from reidlib.models.base import Features


def _features(seed, n, d=6, p=3):
    g = torch.Generator().manual_seed(seed)
    return Features(
        global_feat=torch.randn(n, d, generator=g),
        parts=torch.randn(n, p, d, generator=g),
        visibility=(torch.rand(n, p, generator=g) > 0.3).float(),
    )


def test_global_matcher():
    qf, gf = _features(0, 5), _features(1, 8)
    d = GlobalMatcher("euclidean", normalize=True)(qf, gf)
    ref = euclidean_squared(F.normalize(qf.global_feat), F.normalize(gf.global_feat))
    torch.testing.assert_close(d, ref)
    # unit vectors: |a - b|^2 = 2 - 2 cos = 2 * cosine distance
    torch.testing.assert_close(GlobalMatcher("cosine")(qf, gf) * 2, d, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(GlobalMatcher(normalize=False)(qf, gf), euclidean_squared(qf.global_feat, gf.global_feat))
    with pytest.raises(ValueError, match="has no 'global_feat'"):
        GlobalMatcher()(Features(parts=qf.parts), gf)
    with pytest.raises(ValueError, match="unknown metric"):
        GlobalMatcher("l1")


def test_part_matchers_delegate_to_the_equations():
    qf, gf = _features(2, 4), _features(3, 6)
    torch.testing.assert_close(
        VisibilityWeightedMatcher()(qf, gf), visibility_weighted_distance(qf.parts, qf.visibility, gf.parts, gf.visibility)
    )
    torch.testing.assert_close(
        CommonPartsMatcher()(qf, gf), common_parts_distance(qf.parts, qf.visibility, gf.parts, gf.visibility)
    )
    assert PCBMatcher()(qf, gf).shape == (4, 6)
    with pytest.raises(ValueError, match="has no 'visibility'"):
        CommonPartsMatcher()(Features(parts=qf.parts), gf)


def _pair_fn(qi: Features, gi: Features) -> torch.Tensor:
    # an asymmetric learned-looking distance: weighted L1 on the global features + a part term
    return (qi.global_feat - 0.5 * gi.global_feat).abs().sum(1) + (qi.parts * gi.parts).sum((1, 2)).tanh()


def _loop_reference(qf, gf):
    out = torch.empty(len(qf), len(gf))
    for i in range(len(qf)):
        for j in range(len(gf)):
            out[i, j] = _pair_fn(qf[i : i + 1], gf[j : j + 1])[0]
    return out


@pytest.mark.parametrize("batch_pairs", [1, 7, 40, 10_000])
def test_pairwise_full_equals_loop(batch_pairs):
    qf, gf = _features(4, 5), _features(5, 8)
    calls = []

    def fn(a, b):
        calls.append(len(a))
        assert len(a) == len(b) <= batch_pairs
        return _pair_fn(a, b)

    d = PairwiseMatcher(fn, batch_pairs=batch_pairs)(qf, gf)
    torch.testing.assert_close(d, _loop_reference(qf, gf), rtol=1e-5, atol=1e-5)
    assert sum(calls) == 5 * 8 and len(calls) == math.ceil(40 / batch_pairs)


def test_shortlist_with_k_at_least_gallery_equals_full():
    qf, gf = _features(6, 4), _features(7, 9)
    full = PairwiseMatcher(_pair_fn, batch_pairs=5)(qf, gf)
    for k in (9, 20):
        torch.testing.assert_close(PairwiseMatcher(_pair_fn, batch_pairs=5, shortlist=k)(qf, gf), full)


def test_shortlist_rescore_and_fill():
    qf, gf = _features(8, 6), _features(9, 12)
    k = 4
    cheap = GlobalMatcher()(qf, gf)
    top = torch.topk(cheap, k, dim=1, largest=False).indices
    full = _loop_reference(qf, gf)
    d = PairwiseMatcher(_pair_fn, batch_pairs=3, shortlist=k)(qf, gf)
    for i in range(6):
        short = set(top[i].tolist())
        rest = [j for j in range(12) if j not in short]
        # shortlisted entries carry pair_fn's distance
        for j in short:
            assert d[i, j] == pytest.approx(float(full[i, j]), abs=1e-5)
        # the rest rank after every shortlisted entry, in the cheap order
        assert float(d[i, rest].min()) > float(d[i, list(short)].max())
        order_rest = sorted(rest, key=lambda j: float(d[i, j]))
        assert order_rest == sorted(rest, key=lambda j: float(cheap[i, j]))
    dinf = PairwiseMatcher(_pair_fn, shortlist=k, fill="inf")(qf, gf)
    assert torch.isinf(dinf).sum() == 6 * (12 - k)
    assert torch.isfinite(dinf.gather(1, top)).all()


def test_pairwise_bad_output_and_arguments():
    qf, gf = _features(10, 2), _features(11, 3)
    with pytest.raises(ValueError, match=r"expected a \(4,\) tensor"):
        PairwiseMatcher(lambda a, b: torch.zeros(len(a), 2), batch_pairs=4)(qf, gf)
    with pytest.raises(ValueError, match="batch_pairs"):
        PairwiseMatcher(_pair_fn, batch_pairs=0)
    with pytest.raises(ValueError, match="shortlist"):
        PairwiseMatcher(_pair_fn, shortlist=0)
    with pytest.raises(ValueError, match="fill"):
        PairwiseMatcher(_pair_fn, fill="zero")
    with pytest.raises(TypeError, match="pair_fn"):
        PairwiseMatcher(None)
