"""reidlib.claims: the papers' claims as data, their checks, the seed rule and the claims file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reidlib import claims as C
from reidlib.claims import CLAIMS, GAMMAS, Verdict, claim, evaluate_claims, sweep_key, write_claims

ROOT = Path(__file__).resolve().parents[1]
PAPERS_DIR = ROOT.parent / "shared" / "papers"

IDS = {
    "03_holistic_models_fail": ["vpm.t1.pcb-collapses", "ppcl.t1a.resize-vs-pad"],
    "04_vpm": ["vpm.t1.beats-baseline", "vpm.t1.graceful", "vpm.fig4.every-p", "vpm.fig4.larger-p",
               "vpm.t2.crop-matches-test", "vpm.t3.ablations-lose", "vpm.t3.mvpm1-holistic",
               "vpm.regions-beyond-crops"],
    "05_stnreid": ["stn.t2.stn-helps", "stn.t2.gain-shrinks", "stn.t3.pm-beats-mm", "stn.localises"],
    "06_ppcl": ["ppcl.t1a.r-beats-resize", "ppcl.t1a.each-constraint-helps", "ppcl.t1a.complementary",
                "ppcl.t1c.optimum", "ppcl.t2.beats-vpm-stn", "ppcl.fig5.every-ratio", "ppcl.gate.accuracy",
                "ppcl.cost.shortlist"],
    "07_sanet": ["sanet.t3.global-helps", "sanet.t3.fixed-fe-helps", "sanet.t3.afe-beats-fixed", "sanet.t1.beats-hpnet",
                 "sanet.t4.five-layers", "sanet.t4.conv3x3", "sanet.t2.holistic-comparable",
                 "sanet.routing.scale-adaptive"],
}
BEYOND = ("vpm.regions-beyond-crops", "stn.localises", "ppcl.cost.shortlist")


def check(cid, m) -> Verdict:
    return CLAIMS[cid].check(m)


def sweep(model, values):
    return {sweep_key(model, g): v for g, v in zip(GAMMAS, values)}


# --------------------------------------------------------------------------- the list


def test_every_claim_id_present_exactly_once_with_a_quote():
    expected = [i for ids in IDS.values() for i in ids]
    assert sorted(CLAIMS) == sorted(expected)
    assert len(set(expected)) == len(expected)
    for chapter, ids in IDS.items():
        assert [c.id for c in C.chapter_claims(chapter)] == ids
    for c in CLAIMS.values():
        assert c.quote.strip() and c.reported.strip() and c.statement.strip() and c.where.strip()
        assert c.needs, c.id


def test_claims_beyond_the_papers_say_so():
    for cid in BEYOND:
        assert CLAIMS[cid].quote.startswith("(not in the paper")
        assert "not in the paper" in CLAIMS[cid].reported
    for cid, c in CLAIMS.items():
        if cid not in BEYOND:
            assert "not in the paper" not in c.quote, cid


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


@pytest.mark.skipif(not PAPERS_DIR.is_dir(), reason="the papers' texts (../shared/papers) are not here")
def test_quotes_are_the_papers_sentences():
    files = {"vpm": "vpm_cvpr2019.txt", "ppcl": "ppcl_cvpr2021.txt", "stnreid": "stnreid.txt",
             "sanet": "sanet_bmvc2023.txt"}
    for c in CLAIMS.values():
        text = _norm((PAPERS_DIR / files[c.paper]).read_text())
        beyond = c.quote.startswith("(not in the paper")
        pieces = re.findall(r"“([^”]*)”", c.quote) if beyond else c.quote.split(" [...] ")
        assert pieces or beyond, c.id
        for piece in pieces:
            assert _norm(piece) in text, f"{c.id}: not found in {files[c.paper]}: {piece[:60]!r}"


def test_reported_strings_come_from_reported_data():
    assert CLAIMS["vpm.t1.pcb-collapses"].reported == (
        "PCB / baseline R-1: 0.9 / 64.5 (γ 0.5), 8.1 / 79.0 (γ 0.6), 36.5 / 83.9 (γ 0.7)")
    assert CLAIMS["ppcl.t1a.resize-vs-pad"].reported == "R-1 Resize 51.3, Pad 51.0"
    assert CLAIMS["vpm.t1.beats-baseline"].reported.startswith("VPM − baseline R-1: +6.4, +5.4, +4.3, +4.4, +4.6, +6.2")
    assert CLAIMS["vpm.t1.graceful"].reported == "R-1 lost from γ 1.0 to 0.5: VPM 22.1, baseline 22.3, PCB 92.5"
    assert "Ep1 +7.3, Ep5 +0.7" in CLAIMS["stn.t2.gain-shrinks"].reported
    assert CLAIMS["ppcl.t1a.r-beats-resize"].reported == "R-1 +R 65.3, Resize 51.3"
    assert CLAIMS["ppcl.t1a.complementary"].reported == "R-1 PPCL 79.0; w/ PP-Triplet 71.3, w/ PP-Cycle 72.7"
    assert CLAIMS["ppcl.t1c.optimum"].reported == "R-1 79.0 at (10, 1), the grid's maximum (next: 78.9 at (100, 0.1))"
    assert CLAIMS["ppcl.t2.beats-vpm-stn"].reported.startswith("Partial-REID R-1 PPCL 79.0, VPM 67.7, STNReID 66.7")
    assert CLAIMS["ppcl.gate.accuracy"].reported == "gate accuracy 94.3 % (Sec. 4.3)"
    assert "4.1 / 4.8 / 29.4 s" in CLAIMS["ppcl.cost.shortlist"].reported
    assert CLAIMS["ppcl.fig5.every-ratio"].reported == "plotted only, no numbers (Fig. 5)"
    assert CLAIMS["sanet.t3.afe-beats-fixed"].reported == "R-1 SANet 74.8, + Fixed FE 73.9"
    assert CLAIMS["sanet.t4.five-layers"].reported == "R-1 3 layers 74.8, 5 layers 74.8, 7 layers 72.3"
    assert CLAIMS["sanet.t1.beats-hpnet"].reported.endswith("Partial-iLIDS-O R-1 SANet 84.9, HPNet 72.0")


def test_unknown_claim_id_is_a_clear_error():
    with pytest.raises(KeyError, match=r"unknown claim id 'vpm\.nope'.*known: vpm\.t1\.pcb-collapses"):
        claim("vpm.nope")
    with pytest.raises(KeyError, match="unknown claim id"):
        evaluate_claims("04_vpm", {0: {}}, ids=["vpm.nope"])
    with pytest.raises(ValueError, match="belongs to chapter '04_vpm'"):
        evaluate_claims("05_stnreid", {0: {}}, ids=["vpm.t1.graceful"])
    with pytest.raises(ValueError, match="has no claims"):
        evaluate_claims("02_measuring_partial_reid", {0: {}})


# --------------------------------------------------------------------------- the noise rule


def test_noise_points_is_the_binomial_se_of_a_difference():
    assert C.noise_points(50.0, 50.0, 200) == pytest.approx(100 * (2 * 0.25 / 200) ** 0.5)
    assert C.noise_points(40.0, 60.0, 100) == pytest.approx(100 * (2 * 0.25 / 100) ** 0.5)
    assert C.noise_points(0.0, 0.0, 50) == 0.0
    assert C.within_noise(50.0, 54.0, 200) and not C.within_noise(50.0, 56.0, 200)
    with pytest.raises(ValueError, match="positive number of queries"):
        C.noise_points(50.0, 50.0, 0)


# --------------------------------------------------------------------------- chapter 03


def ch3(pcb=(4.0, 8.0, 25.3, 59.3, 80.7, 87.3), base=(6.0, 20.7, 46.0, 68.7, 80.7, 84.7), pad=53.0, resize=50.7, n=300):
    return {**sweep("pcb", pcb), **sweep("baseline", base), "t1.n_query": 150,
            "t1a.pad.r1": pad, "t1a.resize.r1": resize, "t1a.n_query": n}


def test_pcb_collapses():
    v = check("vpm.t1.pcb-collapses", ch3())
    assert v.holds
    assert v.measured == "PCB / baseline R-1: 4.0 / 6.0 (γ 0.5), 8.0 / 20.7 (γ 0.6), 25.3 / 46.0 (γ 0.7)"
    assert v.evidence == "PCB below the baseline at every γ ≤ 0.7, by 2.0 to 20.7 points"
    # level at 0.5 is not below; above the baseline at 0.8 does not matter
    v = check("vpm.t1.pcb-collapses", ch3(pcb=(6.0, 8.0, 25.3, 90.0, 90.0, 90.0)))
    assert not v.holds and v.evidence == "PCB not below the baseline at γ 0.5 (+0.0 points)"


def test_resize_vs_pad_noise_rule():
    se = C.noise_points(53.0, 50.7, 300)  # 4.08
    v = check("ppcl.t1a.resize-vs-pad", ch3())
    assert v.holds and v.evidence == f"a tie within noise: Resize − Pad = -2.3 points, noise ±{se:.1f}"
    assert check("ppcl.t1a.resize-vs-pad", ch3(pad=40.0, resize=50.0)).holds  # Resize beats Pad
    v = check("ppcl.t1a.resize-vs-pad", ch3(pad=60.0, resize=50.0))
    assert not v.holds and v.evidence.startswith("Pad beats Resize by 10.0 points, beyond the noise")
    assert v.measured == "R-1 Resize 50.0, Pad 60.0 (300 queries)"


# --------------------------------------------------------------------------- chapter 04


BASE = (64.5, 79.0, 83.9, 85.7, 87.1, 86.8)
PCB = (0.9, 8.1, 36.5, 71.9, 88.8, 93.4)
VPM = (70.9, 84.4, 88.2, 90.1, 91.7, 93.0)


def ch4(**over):
    m = {**sweep("baseline", BASE), **sweep("pcb", PCB), **sweep("vpm", VPM), **sweep("vpm_p6", VPM),
         **sweep("vpm_p2", [v - 3 for v in VPM]), **sweep("vpm_p1", [v - 5 for v in VPM]),
         "t2.top.ilids.r1": 67.2, "t2.bottom.ilids.r1": 53.6, "t2.bilateral.ilids.r1": 65.5,
         "t2.top.reid.r1": 64.3, "t2.bottom.reid.r1": 53.2, "t2.bilateral.reid.r1": 67.7,
         "t3.vpm.ilids.r1": 67.2, "t3.no-triplet.ilids.r1": 57.1, "t3.mvpm-1.ilids.r1": 63.0,
         "t3.mvpm-2.ilids.r1": 61.3, "t3.mvpm-3.ilids.r1": 58.8, "t3.mvpm-4.ilids.r1": 59.7,
         "t3.vpm.market.r1": 93.0, "t3.mvpm-1.market.r1": 93.0, "t3.market.n_query": 150}
    m.update(over)
    return m


def test_the_papers_own_numbers_hold():
    m = ch4()
    for cid in IDS["04_vpm"]:
        assert check(cid, m).holds, (cid, check(cid, m))


def test_beats_baseline():
    assert check("vpm.t1.beats-baseline", ch4()).measured == (
        "VPM − baseline R-1: +6.4, +5.4, +4.3, +4.4, +4.6, +6.2 (γ 0.5 … 1.0)")
    v = check("vpm.t1.beats-baseline", ch4(**{sweep_key("vpm", 0.5): 64.5}))
    assert not v.holds and v.evidence.startswith("VPM not ahead at γ 0.5 ")


def test_graceful():
    v = check("vpm.t1.graceful", ch4())
    assert v.holds and v.measured == "R-1 lost from γ 1.0 to 0.5: VPM 22.1, baseline 22.3, PCB 92.5"
    v = check("vpm.t1.graceful", ch4(**{sweep_key("vpm", 0.5): 60.0}))  # VPM loses 33.0 > 22.3
    assert not v.holds and v.evidence.startswith("VPM loses +10.7 points more than the baseline")
    v = check("vpm.t1.graceful", ch4(**{sweep_key("pcb", 0.5): 80.0}))  # PCB loses 13.4 < 22.3
    assert not v.holds and "the baseline loses +8.9 points more than PCB" in v.evidence


def test_fig4_every_p():
    v = check("vpm.fig4.every-p", ch4())
    assert v.holds and v.evidence == "every p (2, 6) ahead at every γ"
    v = check("vpm.fig4.every-p", ch4(**{sweep_key("vpm_p2", 0.9): 87.1}))
    assert not v.holds and v.evidence == "behind or level at 1 of 12 (p, γ): p 2 γ 0.9"
    with pytest.raises(C.MissingMeasurement):
        check("vpm.fig4.every-p", {k: v for k, v in ch4().items() if "vpm_p" not in k})


def test_fig4_larger_p_is_the_mean_over_gammas():
    v = check("vpm.fig4.larger-p", ch4())
    assert v.holds and v.evidence == "p = 6 higher on the mean by 3.0 points; p = 6 ahead at 6 of 6 γ (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)"
    # p = 2 ahead at one gamma but behind on the mean: still holds
    v = check("vpm.fig4.larger-p", ch4(**{sweep_key("vpm_p2", 0.5): 80.0}))
    assert v.holds and "ahead at 5 of 6" in v.evidence
    v = check("vpm.fig4.larger-p", ch4(**sweep("vpm_p2", [v + 1 for v in VPM])))
    assert not v.holds and v.evidence.startswith("p = 6 not higher on the mean (-1.0 points); p = 6 ahead at 0 of 6 γ")


def test_crop_matches_test():
    assert check("vpm.t2.crop-matches-test", ch4()).evidence == "Top above Bottom on iLIDS-like; Bottom lowest on both sets"
    v = check("vpm.t2.crop-matches-test", ch4(**{"t2.top.reid.r1": 37.7, "t2.bottom.reid.r1": 37.7, "t2.bilateral.reid.r1": 37.7}))
    assert not v.holds and v.evidence == "Bottom not below Top and Bilateral on REID-like"
    v = check("vpm.t2.crop-matches-test", ch4(**{"t2.bottom.ilids.r1": 70.0}))
    assert not v.holds and v.evidence == "Top not above Bottom on iLIDS-like; Bottom not below Top and Bilateral on iLIDS-like"


def test_ablations_lose():
    v = check("vpm.t3.ablations-lose", ch4(**{"t3.mvpm-2.ilids.r1": 67.2}))
    assert not v.holds and v.evidence == "not below VPM: MVPM-2 (+0.0)"
    assert check("vpm.t3.ablations-lose", ch4()).measured.startswith("R-1 VPM 67.2; ablation − VPM: no triplet -10.1")


def test_mvpm1_holistic_within_one_point():
    assert check("vpm.t3.mvpm1-holistic", ch4(**{"t3.mvpm-1.market.r1": 92.0})).holds
    v = check("vpm.t3.mvpm1-holistic", ch4(**{"t3.mvpm-1.market.r1": 91.0}))
    assert not v.holds and v.evidence.startswith("2.0 points apart, more than 1 (MVPM-1 − VPM = -2.0; noise ±")


def test_regions_beyond_crops():
    v = check("vpm.regions-beyond-crops", ch4())
    assert v.holds and v.measured == "VPM (p = 6) − VPM (p = 1) R-1: +5.0, +5.0, +5.0, +5.0 (γ 0.5 … 0.8)"
    # gamma 0.9 and 1.0 do not count
    assert check("vpm.regions-beyond-crops", ch4(**{sweep_key("vpm_p1", 1.0): 99.0})).holds
    v = check("vpm.regions-beyond-crops", ch4(**{sweep_key("vpm_p1", 0.8): 90.1}))
    assert not v.holds and v.evidence == "not ahead at γ 0.8"


# --------------------------------------------------------------------------- chapter 05


def ch5(**over):
    m = {"t2.ep1.with.r1": 41.7, "t2.ep1.without.r1": 34.4, "t2.ep5.with.r1": 63.6, "t2.ep5.without.r1": 62.9,
         "t3.pm.reid.r1": 66.7, "t3.mm.reid.r1": 61.3, "t3.pm.ilids.r1": 54.6, "t3.mm.ilids.r1": 43.7,
         "iou.ep1": 0.61, "iou.identity": 0.43}
    m.update(over)
    return m


def test_stn_claims():
    m = ch5()
    assert all(check(cid, m).holds for cid in IDS["05_stnreid"])
    assert check("stn.t2.stn-helps", m).measured == "Ep1 R-1 41.7 with STN, 34.4 w/o (+7.3)"
    assert not check("stn.t2.stn-helps", ch5(**{"t2.ep1.with.r1": 34.4})).holds
    v = check("stn.t2.gain-shrinks", ch5(**{"t2.ep5.with.r1": 72.0}))  # Ep5 gain 9.1 > 7.3
    assert not v.holds and v.evidence == "the gain does not shrink (+1.8 points from Ep1 to Ep5)"
    v = check("stn.t3.pm-beats-mm", ch5(**{"t3.pm.ilids.r1": 43.7}))
    assert not v.holds and v.evidence == "PM not ahead on iLIDS-like (+0.0)"
    assert check("stn.localises", m).measured == "mean box IoU: Ep1 STN 0.61, identity 0.43"
    assert not check("stn.localises", ch5(**{"iou.ep1": 0.40})).holds


# --------------------------------------------------------------------------- chapter 06


RATIOS = (0.2, 0.4, 0.6, 0.8, 1.0)
T1C = {(0.1, 1.0): 73.5, (1.0, 1.0): 74.3, (10.0, 0.1): 78.2, (10.0, 1.0): 79.0, (10.0, 10.0): 77.3,
       (100.0, 1.0): 78.8}


def ch6(**over):
    m = {"t1a.pad.r1": 51.0, "t1a.resize.r1": 51.3, "t1a.r.r1": 65.3, "t1a.r-l-triplet.r1": 71.3,
         "t1a.r-l-cycle.r1": 72.7, "t1a.ppcl.r1": 79.0, "t1a.n_query": 300,
         **{C.grid_key(*c): v for c, v in T1C.items()}, "t1c.n_query": 300,
         "t2.ppcl.reid.r1": 79.0, "t2.vpm.reid.r1": 67.7, "t2.stn.reid.r1": 66.7,
         "t2.ppcl.ilids.r1": 69.7, "t2.vpm.ilids.r1": 67.2, "t2.stn.ilids.r1": 54.6,
         **{C.ratio_key("ppcl", g): 40.0 + 50 * g for g in RATIOS},
         **{C.ratio_key("resize", g): 30.0 + 50 * g for g in RATIOS}, "fig5.n_query": 150,
         "gate.accuracy": 94.3, "gate.n_images": 810,
         "cost.resize.s": 4.1, "cost.shortlist.s": 6.0, "cost.all.s": 29.4, "cost.shortlist.r1": 78.7,
         "cost.all.r1": 79.0, "cost.n_query": 300}
    m.update(over)
    return m


def test_ppcl_keys():
    assert C.grid_key(10, 1) == "t1c.r1@10,1" and C.grid_key(0.1, 100.0) == "t1c.r1@0.1,100"
    assert C.ratio_key("ppcl", 0.2) == "fig5.ppcl.r1@0.2"


def test_ppcl_claims_hold_on_the_papers_numbers():
    m = ch6()
    for cid in IDS["06_ppcl"]:
        assert check(cid, m).holds, (cid, check(cid, m))


def test_ppcl_t1a():
    v = check("ppcl.t1a.r-beats-resize", ch6())
    assert v.measured == "R-1 +R 65.3; Resize 51.3" and v.evidence.startswith("+R ahead: +14.0 over Resize; noise ±")
    v = check("ppcl.t1a.r-beats-resize", ch6(**{"t1a.r.r1": 51.3}))
    assert not v.holds and v.evidence.startswith("+R not ahead of Resize (+0.0")
    v = check("ppcl.t1a.each-constraint-helps", ch6(**{"t1a.r-l-cycle.r1": 60.0}))
    assert not v.holds and v.evidence.startswith("not ahead of +R: w/ PP-Cycle (-5.3")
    assert check("ppcl.t1a.each-constraint-helps", ch6()).evidence.startswith("each constraint beats +R: w/ PP-Triplet +6.0")
    v = check("ppcl.t1a.complementary", ch6(**{"t1a.ppcl.r1": 72.0}))
    assert not v.holds and "PPCL not ahead of w/ PP-Cycle (-0.7" in v.evidence and "PP-Triplet" not in v.evidence
    assert check("ppcl.t1a.complementary", ch6()).measured == "R-1 PPCL 79.0; w/ PP-Triplet 71.3, w/ PP-Cycle 72.7"


def test_ppcl_t1c_optimum_best_or_within_noise():
    v = check("ppcl.t1c.optimum", ch6())
    assert v.holds and v.evidence == "(10, 1) is the best cell, +0.2 points over the next"
    assert v.measured == "R-1 at (λ_cyc, λ_tri) = (10, 1): 79.0; best of 6 cells: 79.0 at (10, 1)"
    # another cell ahead, but within one standard error (about 3.3 points on 300 queries)
    v = check("ppcl.t1c.optimum", ch6(**{C.grid_key(100, 1): 81.0}))
    assert v.holds and v.evidence.startswith("(10, 1) within noise of the best (100, 1): -2.0 points, noise ±")
    v = check("ppcl.t1c.optimum", ch6(**{C.grid_key(1, 1): 86.0}))
    assert not v.holds and v.evidence.startswith("(1, 1) beats (10, 1) by 7.0 points, beyond the noise ±")
    # the optimum must be trained, and one cell is no grid
    grid = {k: v for k, v in ch6().items() if not k.startswith("t1c.r1@")}
    with pytest.raises(C.MissingMeasurement, match=r"t1c\.r1@10,1"):
        check("ppcl.t1c.optimum", grid)
    with pytest.raises(C.MissingMeasurement, match="a second cell"):
        check("ppcl.t1c.optimum", {**grid, C.grid_key(10, 1): 50.0})


def test_ppcl_t2_and_fig5():
    v = check("ppcl.t2.beats-vpm-stn", ch6())
    assert v.holds and v.evidence == "PPCL ahead of both on both sets, by 2.5 to 15.1 points"
    v = check("ppcl.t2.beats-vpm-stn", ch6(**{"t2.stn.ilids.r1": 70.0}))
    assert not v.holds and v.evidence == "PPCL not ahead of STNReID on iLIDS-like (-0.3)"
    v = check("ppcl.fig5.every-ratio", ch6())
    assert v.holds and v.measured == "PPCL − Resize R-1: +10.0, +10.0, +10.0, +10.0, +10.0 (ratio 0.2 … 1.0)"
    v = check("ppcl.fig5.every-ratio", ch6(**{C.ratio_key("ppcl", 0.2): 40.0}))
    assert not v.holds and v.evidence == "PPCL not ahead at ratio 0.2"
    with pytest.raises(C.MissingMeasurement):  # a ratio of PPCL without Resize's
        check("ppcl.fig5.every-ratio", {k: v for k, v in ch6().items() if k != C.ratio_key("resize", 0.6)})


def test_ppcl_gate_and_cost():
    assert check("ppcl.gate.accuracy", ch6()).measured == "gate accuracy 94.3 % (810 images)"
    assert check("ppcl.gate.accuracy", ch6(**{"gate.accuracy": 90.0})).holds
    v = check("ppcl.gate.accuracy", ch6(**{"gate.accuracy": 71.5}))
    assert not v.holds and v.evidence == "below 90 % (-18.5 points)"
    v = check("ppcl.cost.shortlist", ch6())
    assert v.holds and v.evidence == "1.5x Resize's time (4.9x faster than all pairs), +0.3 R-1 points lost against all pairs"
    v = check("ppcl.cost.shortlist", ch6(**{"cost.shortlist.s": 9.0, "cost.shortlist.r1": 77.0}))
    assert not v.holds and v.evidence == ("the shortlist costs 2.2x Resize's time (more than 2x); it loses 2.0 R-1 "
                                          "points against all pairs (more than 1)")
    assert check("ppcl.cost.shortlist", ch6(**{"cost.shortlist.r1": 80.0})).holds  # a gain is no loss


# --------------------------------------------------------------------------- chapter 07 (SANet)
def ch7(**over):
    """SANet's own numbers (Tables 1, 3, 4; Table 2's holistic row against a baseline of 94.1) and a
    routing split whose small crops go deeper."""
    m = {"t3.hpnet.ilids.r1": 68.9, "t3.global.ilids.r1": 72.3, "t3.fixed-fe.ilids.r1": 73.9,
         "t3.sanet.ilids.r1": 74.8, "t3.n_query": 119,
         "t1.sanet.reid.r1": 88.7, "t1.hpnet.reid.r1": 85.7, "t1.sanet.ilids.r1": 74.8, "t1.hpnet.ilids.r1": 68.9,
         "t1.sanet.occ.r1": 84.9, "t1.hpnet.occ.r1": 72.0, "t1.reid.n_query": 300, "t1.ilids.n_query": 119,
         "t1.occ.n_query": 119,
         "t4.layers3.r1": 74.8, "t4.layers5.r1": 74.8, "t4.layers7.r1": 72.3, "t4.kernel1.r1": 73.1,
         "t4.kernel3.r1": 74.8, "t4.kernel5.r1": 73.1, "t4.n_query": 119,
         "t2.sanet.r1": 93.7, "t2.baseline.r1": 94.1, "t2.n_query": 3368,
         "routing.small.mean": 1.2, "routing.small.sd": 0.5, "routing.small.n": 100,
         "routing.large.mean": 0.9, "routing.large.sd": 0.5, "routing.large.n": 100}
    m.update(over)
    return m


def test_sanet_claims_hold_on_the_papers_numbers():
    m = ch7()
    for cid in IDS["07_sanet"]:
        assert check(cid, m).holds, (cid, check(cid, m))


def test_sanet_table3_steps():
    v = check("sanet.t3.global-helps", ch7())
    assert v.measured == "R-1 + Global Branch 72.3, HPNet 68.9"
    assert v.evidence.startswith("+ Global Branch ahead by 3.4; noise ±")
    v = check("sanet.t3.afe-beats-fixed", ch7(**{"t3.sanet.ilids.r1": 73.9}))
    assert not v.holds and v.evidence.startswith("SANet not ahead of + Fixed FE (+0.0")
    v = check("sanet.t3.fixed-fe-helps", ch7(**{"t3.fixed-fe.ilids.r1": 70.0}))
    assert not v.holds and "(-2.3" in v.evidence
    with pytest.raises(C.MissingMeasurement, match=r"t3\.global\.ilids\.r1"):
        check("sanet.t3.global-helps", {"t3.hpnet.ilids.r1": 1.0})


def test_sanet_t1_every_set():
    v = check("sanet.t1.beats-hpnet", ch7(**{"t1.sanet.occ.r1": 70.0}))
    assert not v.holds and v.evidence.startswith("SANet not ahead on occluded (-2.0; noise ±")
    assert check("sanet.t1.beats-hpnet", ch7()).evidence.startswith("SANet ahead on all three: REID-like +3.0")


def test_sanet_t4_best_or_within_noise():
    # 3 and 5 layers tie at 74.8: the paper's 5 wins the tie
    v = check("sanet.t4.five-layers", ch7())
    assert v.holds and v.evidence == "5 layers is the best setting, +0.0 points over the next"
    # 7 layers ahead by 2 points on 119 queries: within one standard error (about 5.7 points)
    v = check("sanet.t4.five-layers", ch7(**{"t4.layers7.r1": 76.8}))
    assert v.holds and v.evidence.startswith("7 layers is best, 5 layers within noise of it (-2.0; noise ±5.")
    v = check("sanet.t4.conv3x3", ch7(**{"t4.kernel1.r1": 90.0}))
    assert not v.holds and v.evidence.startswith("1x1 beats 3x3 beyond noise (+15.2; noise ±")
    noise = C.noise_points(74.8, 90.0, 119)
    assert v.evidence.endswith(f"noise ±{noise:.1f})")
    # a reduced table (smoke) is read as it is; the default and one other setting are needed
    v = check("sanet.t4.conv3x3", {k: x for k, x in ch7().items() if k != "t4.kernel5.r1"})
    assert v.holds and v.measured == "R-1 1x1 73.1, 3x3 74.8"
    with pytest.raises(C.MissingMeasurement, match=r"t4\.layers5\.r1"):
        check("sanet.t4.five-layers", {k: x for k, x in ch7().items() if k != "t4.layers5.r1"})
    with pytest.raises(C.MissingMeasurement, match="a second setting"):
        check("sanet.t4.five-layers", {"t4.layers5.r1": 70.0, "t4.n_query": 100})


def test_sanet_holistic_and_routing():
    assert check("sanet.t2.holistic-comparable", ch7(**{"t2.sanet.r1": 92.1})).holds  # exactly 2 below
    v = check("sanet.t2.holistic-comparable", ch7(**{"t2.sanet.r1": 92.0}))
    assert not v.holds and v.evidence.startswith("SANet is 2.1 points below the baseline, more than 2")
    assert check("sanet.t2.holistic-comparable", ch7(**{"t2.sanet.r1": 99.0})).holds  # far ahead is no loss
    # Welch's z: 0.3 / sqrt(0.25 / 100 * 2) = 4.24
    v = check("sanet.routing.scale-adaptive", ch7())
    assert v.holds and v.evidence == "the routes differ: +0.300 (z = +4.2), deeper (coarser) for small crops, the paper's direction"
    v = check("sanet.routing.scale-adaptive", ch7(**{"routing.small.mean": 0.6}))
    assert v.holds and v.evidence.endswith("(z = -4.2), shallower for small crops, against the paper's direction")
    v = check("sanet.routing.scale-adaptive", ch7(**{"routing.small.mean": 0.95}))
    assert not v.holds and v.evidence == "no measurable difference: +0.050 (z = +0.7, |z| ≤ 2)"
    # one route for every image: no spread, no difference
    flat = ch7(**{"routing.small.mean": 1.0, "routing.large.mean": 1.0, "routing.small.sd": 0.0,
                  "routing.large.sd": 0.0})
    assert not check("sanet.routing.scale-adaptive", flat).holds
    assert C.welch_z(1.2, 0.5, 100, 0.9, 0.5, 100) == pytest.approx(0.3 / (0.005 ** 0.5))
    assert C.welch_z(1.0, 0.0, 5, 0.5, 0.0, 5) == float("inf") and C.welch_z(1.0, 0.0, 5, 1.0, 0.0, 5) == 0.0


# --------------------------------------------------------------------------- the seed rule


def test_a_claim_holds_only_on_every_seed():
    good, bad = ch5(), ch5(**{"t2.ep1.with.r1": 30.0})
    rows = {r["id"]: r for r in evaluate_claims("05_stnreid", {0: good, 1: good, 2: bad})}
    r = rows["stn.t2.stn-helps"]
    assert not r["holds"] and r["seeds_held"] == "2/3"
    assert r["measured"] == "Ep1 R-1 41.7 with STN, 34.4 w/o (+7.3)"  # the chapter's seed
    assert "held on 2/3 test seeds (0 ✓, 1 ✓, 2 ✗)" in r["evidence"]
    assert "seed 2: Ep1 R-1 30.0 with STN, 34.4 w/o (-4.4); the STN changes Ep1's Rank-1 by -4.4 points" in r["evidence"]
    assert rows["stn.t3.pm-beats-mm"]["holds"] and rows["stn.t3.pm-beats-mm"]["seeds_held"] == "3/3"
    assert set(r["per_seed"]) == {"0", "1", "2"}
    # the first key is the chapter's seed, whatever its value
    rows = evaluate_claims("05_stnreid", {7: bad, 8: good, 9: good})
    assert rows[0]["measured"].startswith("Ep1 R-1 30.0") and rows[0]["seeds_held"] == "2/3"


def test_too_few_seeds_never_hold():
    rows = evaluate_claims("05_stnreid", {0: ch5()})
    assert not any(r["holds"] for r in rows) and all(r["seeds_held"] == "1/1" for r in rows)
    assert "needs 3 seeds" in rows[0]["evidence"]
    assert all(r["holds"] for r in evaluate_claims("05_stnreid", {0: ch5()}, min_seeds=1))


def test_missing_measurement_fails_the_claim_not_the_chapter():
    rows = {r["id"]: r for r in evaluate_claims("04_vpm", {0: {}, 1: {}, 2: {}})}
    r = rows["vpm.t1.beats-baseline"]
    assert not r["holds"] and r["measured"] == "not measured"
    assert r["evidence"].startswith("not measured: measured key 't1.vpm.r1@0.5' is missing")


def test_claims_sentence():
    rows = [{"id": "a", "holds": True}, {"id": "b", "holds": False}, {"id": "c", "holds": False}]
    assert C.claims_sentence(rows) == "1 of the 3 claims hold (a) and 2 do not (b, c)"
    assert C.claims_sentence(rows[:1]) == "all 1 claims hold (a)"
    assert C.claims_sentence(rows[1:2]) == "none of the 1 claims holds (b fail)"


# --------------------------------------------------------------------------- the claims file


def test_write_claims_merges_chapters(tmp_path):
    path = tmp_path / "results" / "smoke" / "claims.json"
    m3, m5 = {0: ch3(), 1: ch3(), 2: ch3()}, {0: ch5(), 1: ch5(), 2: ch5()}
    write_claims(path, "03_holistic_models_fail", evaluate_claims("03_holistic_models_fail", m3),
                 measured_by_seed=m3, profile="smoke", command="test 03")
    write_claims(path, "05_stnreid", evaluate_claims("05_stnreid", m5), measured_by_seed=m5, profile="smoke")
    doc = json.loads(path.read_text())
    assert doc["schema"] == "reidlib-results-v1" and doc["meta"]["profile"] == "smoke"
    assert [r["id"] for r in doc["results"]] == IDS["03_holistic_models_fail"] + IDS["05_stnreid"]
    assert set(doc["tables"]["measured"]) == {"03_holistic_models_fail", "05_stnreid"}
    assert doc["tables"]["chapters"]["03_holistic_models_fail"]["command"] == "test 03"
    # rewriting a chapter replaces its rows only
    bad = {0: ch3(pad=90.0), 1: ch3(), 2: ch3()}
    write_claims(path, "03_holistic_models_fail", evaluate_claims("03_holistic_models_fail", bad), measured_by_seed=bad)
    got = C.read_claims(path)
    assert [r["id"] for r in got["rows"]] == IDS["03_holistic_models_fail"] + IDS["05_stnreid"]
    by_id = {r["id"]: r for r in got["rows"]}
    assert not by_id["ppcl.t1a.resize-vs-pad"]["holds"] and by_id["stn.localises"]["holds"]
    assert C.measured_of(path, "03_holistic_models_fail")[0]["t1a.pad.r1"] == 90.0
    assert C.measured_of(path, "04_vpm") == {}
    # and chapter 04 lands between them
    m4 = {0: ch4(), 1: ch4(), 2: ch4()}
    write_claims(path, "04_vpm", evaluate_claims("04_vpm", m4))
    assert [r["id"] for r in C.read_claims(path)["rows"]] == [i for ch in ("03_holistic_models_fail", "04_vpm", "05_stnreid")
                                                              for i in IDS[ch]]
    # and chapter 06 after them
    m6 = {0: ch6(), 1: ch6(), 2: ch6()}
    write_claims(path, "06_ppcl", evaluate_claims("06_ppcl", m6), measured_by_seed=m6)
    assert [r["id"] for r in C.read_claims(path)["rows"]] == [i for ch, ids in IDS.items() if ch != "07_sanet"
                                                              for i in ids]
    assert C.measured_of(path, "06_ppcl")[2]["t1a.ppcl.r1"] == 79.0


def test_write_claims_rejects_foreign_rows(tmp_path):
    rows = evaluate_claims("05_stnreid", {0: ch5()})
    with pytest.raises(ValueError, match="belongs to chapter '05_stnreid', not '04_vpm'"):
        write_claims(tmp_path / "claims.json", "04_vpm", rows)
    with pytest.raises(KeyError, match="unknown claim id 'x.y'"):
        write_claims(tmp_path / "claims.json", "05_stnreid", [{"id": "x.y"}])
    assert not (tmp_path / "claims.json").exists()


def test_read_claims_of_a_missing_file_is_empty(tmp_path):
    assert C.read_claims(tmp_path / "nope.json")["rows"] == []


# --------------------------------------------------------------------------- the chapters' helpers


def test_chapter_data_with_seed_and_the_evaluation_only_view(tmp_path, monkeypatch):
    from reidlib.chapters import Chapter, chapter_data
    from reidlib.config import resolve_run

    cfg = resolve_run("smoke", "cpu", None, 0)
    data = chapter_data(cfg, tests=("partial-reid",))
    other = data.with_seed(1)
    assert other.seed == 1 and data.seed == 0
    assert other["market"].seed == 1 and other.tests["partial-reid"].seed == 1
    assert tuple(other.tests["partial-reid"].size) == tuple(data.tests["partial-reid"].size)
    assert other.names["partial-reid"] == "partial-reid-like (test seed 1)" and other.train_spec == data.train_spec
    assert other["market"].query[0].path.startswith("synthpeds://smoke/s1/")
    ch = Chapter("test_claims_view", cfg, data)
    ch.add_model("m", object())
    view = ch.on_seed(2)
    assert view.test_seed == 2 and view.data.seed == 2 and ch.data.seed == 0
    assert view.model("m") is ch.model("m")
    with pytest.raises(RuntimeError, match="only evaluates"):
        view.fit("m", None, None)
    real = type(data)(data.train, data.tests, data.names, "market1501:/data", None)
    with pytest.raises(ValueError, match="SynthPeds only"):
        real.with_seed(1)


def test_scoreboard_frame():
    from reidlib.chapters import scoreboard_frame

    rows = evaluate_claims("05_stnreid", {0: ch5(), 1: ch5(), 2: ch5(**{"iou.ep1": 0.1})})
    rows.append({**rows[0], "id": "x", "holds": None})
    df = scoreboard_frame(rows)
    assert list(df.columns) == ["claim", "reported", "measured", "✓/✗", "seeds", "evidence"]
    assert df.loc["stn.t2.stn-helps", "✓/✗"] == "✓" and df.loc["stn.localises", "✓/✗"] == "✗"
    assert df.loc["stn.localises", "seeds"] == "2/3" and df.loc["x", "✓/✗"] == "—"
    assert df.loc["stn.t2.stn-helps", "claim"].endswith("(STNReID (TMM'20) Table 2 (Sec. 5.1))")
    assert list(scoreboard_frame(rows, link=lambda r: r["chapter"]).columns)[0] == "chapter"
