"""The papers' claims as data, and the scoreboard of what reproduced.

A :class:`Claim` is one sentence of a paper that a chapter can test: its id (``"vpm.t1.beats-baseline"``),
the chapter that tests it, the paper (a :data:`reidlib.reported.PAPERS` key), where it stands
(``"Table 1"``), the sentence itself (``quote``, copied from the paper; the pieces of a quote that
joins two sentences are separated by ``" [...] "``), the number(s) the paper reports (``reported``,
from :mod:`reidlib.reported`), our one-line reading of it (``statement``), the keys of the measured
numbers it reads (``needs``) and ``check``: a pure function of a plain ``dict`` of numbers (the
chapter's measurements on one test set) to a :class:`Verdict` ``(holds, measured, evidence)``.

:data:`CLAIMS` holds every claim of chapters 03-07 by id. A chapter assembles one measured dict
per test seed and calls :func:`evaluate_claims`; a claim *holds* only if its check holds on every
seed, and on at least ``min_seeds`` of them (3 on SynthPeds: the chapter's seed and two more test
populations, new identities, cameras and backgrounds, scored with the models trained on the
chapter's seed). :func:`write_claims` merges a chapter's rows into ``results/<profile>/claims.json``
(the one results schema of :mod:`reidlib.provenance`), keeping the other chapters' rows.

The measured keys (percentages for Rank-1, as the tables print them; counts as numbers):

* chapter 03: ``t1.<model>.r1@<gamma>`` (crop sweep, top crops; ``model`` in ``baseline``, ``pcb``;
  ``gamma`` printed with one decimal, ``"0.5"`` ... ``"1.0"``), ``t1.n_query``;
  ``t1a.pad.r1``, ``t1a.resize.r1``, ``t1a.n_query`` (the baseline on the Partial-REID look-alike);
* chapter 04: the same ``t1.<model>.r1@<gamma>`` with ``model`` in ``baseline``, ``pcb`` (read from
  chapter 03), ``vpm`` (p = 6, top crops), ``vpm_p<p>`` (Fig. 4's models, ``vpm_p6`` being ``vpm``),
  ``vpm_p1`` (the one-region control); ``t2.<crop>.<set>.r1`` (``crop`` in ``top``, ``bottom``,
  ``bilateral``; ``set`` in ``reid``, ``ilids``); ``t3.<variant>.ilids.r1`` (``variant`` in ``vpm``,
  ``no-triplet``, ``mvpm-1`` ... ``mvpm-4``), ``t3.vpm.market.r1``, ``t3.mvpm-1.market.r1``,
  ``t3.market.n_query``;
* chapter 05: ``t2.<ep>.with.r1`` / ``t2.<ep>.without.r1`` (``ep`` in ``ep1``, ``ep5``; Partial-REID
  look-alike), ``t3.<mode>.<set>.r1`` (``mode`` in ``pm``, ``mm``, with the STN), ``iou.ep1`` and
  ``iou.identity`` (mean box IoU with the true crop box);
* chapter 06 (PPCL): ``t1a.<row>.r1`` (``row`` in ``resize``, ``pad``, ``r``, ``r-l-triplet``,
  ``r-l-cycle``, ``ppcl``; the Partial-REID look-alike), ``t1a.n_query``; ``t1c.r1@<cyc>,<tri>``
  (:func:`grid_key`: one key per trained cell of Table 1c's grid), ``t1c.n_query``;
  ``t2.<model>.<set>.r1`` (``model`` in ``ppcl``, ``vpm``, ``stn``: PPCL, chapter 04's VPM and
  chapter 05's STNReID (PM); partial images as queries); ``fig5.<model>.r1@<ratio>``
  (:func:`ratio_key`; ``model`` in ``resize``, ``ppcl``, ...: the query's input ratio on the holistic
  test set), ``fig5.n_query``; ``gate.accuracy`` (% of test images, partial and holistic, that
  the gate classifies right), ``gate.n_images``; ``cost.<row>.s`` (seconds to rank the cost subset
  of the Partial-REID look-alike, extraction + matching; ``row`` in ``resize``, ``shortlist``,
  ``all``), ``cost.shortlist.r1``, ``cost.all.r1``, ``cost.n_query``;
* chapter 07 (SANet): ``t3.<row>.ilids.r1`` (``row`` in ``hpnet``, ``global``, ``fixed-fe``,
  ``sanet``: Table 3's rows on the Partial-iLIDS look-alike), ``t3.n_query``;
  ``t1.<model>.<set>.r1`` (``model`` in ``sanet``, ``hpnet``: the reference HPNet; ``set`` in
  ``reid``, ``ilids``, ``occ``: the occluded variant), ``t1.<set>.n_query``; ``t4.layers<n>.r1``
  (``n`` in 3, 5, 7), ``t4.kernel<k>.r1`` (``k`` in 1, 3, 5), ``t4.n_query``; ``t2.sanet.r1``,
  ``t2.baseline.r1``, ``t2.n_query`` (the holistic test set); ``routing.<group>.<stat>``
  (``group`` in ``small``, ``large``: queries keeping at most 50 % / at least 80 % of the person;
  ``stat`` in ``mean``, ``sd``, ``n``: of the per-image mean scale of the active AFE cells).

Rules (the same for every claim):

* **beats / exceeds / below** compare the point estimates strictly (``a > b``); the evidence gives
  the margin and, where the number of queries is known, the noise below.
* **within noise** (a tie): the two Rank-1 rates differ by at most one binomial standard error of a
  difference of two rates on the same ``n`` queries, ``sqrt(2 p (1 - p) / n)`` with ``p`` their
  mean (:func:`noise_points`); ``ppcl.t1a.resize-vs-pad`` ("ties or beats") and
  ``ppcl.t1c.optimum`` ("best, or within noise of the best") use it.
* **within 1 point** (``vpm.t3.mvpm1-holistic``) is the paper's own tolerance, taken literally.
* **loses less** compares absolute Rank-1 points lost from gamma 1.0 to gamma 0.5.

This module imports only the standard library and :mod:`reidlib.reported` (and, inside
:func:`write_claims` / :func:`read_claims`, :mod:`reidlib.provenance`, the results writer).
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

from reidlib.reported import FIGURES_WITHOUT_NUMBERS, PAPERS, lookup, reported, text_number

__all__ = [
    "CHAPTERS",
    "CLAIMS",
    "GAMMAS",
    "MARK",
    "Claim",
    "MissingMeasurement",
    "Verdict",
    "chapter_claims",
    "claim",
    "claims_sentence",
    "evaluate_claims",
    "grid_key",
    "measured_of",
    "noise_points",
    "ratio_key",
    "read_claims",
    "sweep_key",
    "welch_z",
    "within_noise",
    "write_claims",
]

#: the crop ratios of VPM's Table 1 (the crop sweep)
GAMMAS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

#: the scoreboard's marks: ``MARK[holds]``
MARK = {True: "✓", False: "✗"}

#: the chapters that hold claims, in book order
CHAPTERS = ("03_holistic_models_fail", "04_vpm", "05_stnreid", "06_ppcl", "07_sanet")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Verdict:
    """What a check found on one test set: whether the claim holds, the measured number(s) as a
    short string, and one line of evidence (why it holds or fails)."""

    holds: bool
    measured: str
    evidence: str


class MissingMeasurement(KeyError):
    """A check asked for a measured key that the chapter did not provide."""

    def __init__(self, key: str, available: Iterable[str] = ()):
        self.key = key
        avail = sorted(available)
        hint = f"; given: {', '.join(avail[:12])}{' ...' if len(avail) > 12 else ''}" if avail else "; given: nothing"
        super().__init__(f"measured key {key!r} is missing{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass(frozen=True)
class Claim:
    """One claim a chapter tests (see the module docstring).

    ``needs`` documents the measured keys the check reads (``<gamma>`` / ``<p>`` stand for every
    value it reads); ``check(measured) -> Verdict`` is pure and raises :class:`MissingMeasurement`
    when a key is missing.
    """

    id: str
    chapter: str
    paper: str
    where: str
    statement: str
    quote: str
    reported: str
    needs: tuple[str, ...]
    check: Callable[[Mapping[str, float]], Verdict] = field(compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.paper not in PAPERS:
            raise ValueError(f"Claim {self.id!r}: unknown paper {self.paper!r}; accepted: {', '.join(PAPERS)}")
        if self.chapter not in CHAPTERS:
            raise ValueError(f"Claim {self.id!r}: unknown chapter {self.chapter!r}; accepted: {', '.join(CHAPTERS)}")
        if not self.quote.strip():
            raise ValueError(f"Claim {self.id!r}: quote the paper's sentence")

    @property
    def source(self) -> str:
        """Caption-ready, e.g. ``"VPM (CVPR'19) Table 1"``."""
        return f"{PAPERS[self.paper].label} {self.where}"


# --------------------------------------------------------------------------- helpers


def sweep_key(model: str, gamma: float) -> str:
    """The measured key of a crop-sweep Rank-1: ``sweep_key("vpm", 0.5) == "t1.vpm.r1@0.5"``."""
    return f"t1.{model}.r1@{float(gamma):.1f}"


def grid_key(lambda_cyc: float, lambda_tri: float) -> str:
    """The measured key of a Table 1c cell: ``grid_key(10, 1) == "t1c.r1@10,1"``."""
    return f"t1c.r1@{float(lambda_cyc):g},{float(lambda_tri):g}"


def ratio_key(model: str, ratio: float) -> str:
    """The measured key of a Fig. 5 point: ``ratio_key("ppcl", 0.2) == "fig5.ppcl.r1@0.2"``."""
    return f"fig5.{model}.r1@{float(ratio):.1f}"


def noise_points(r1_a: float, r1_b: float, n: float) -> float:
    """One binomial standard error of the difference of two Rank-1 rates (in points, like the
    rates): ``100 sqrt(2 p (1 - p) / n)`` with ``p`` the mean of the two rates (as fractions)."""
    if not n or n <= 0:
        raise ValueError(f"noise_points: n must be a positive number of queries, got {n!r}")
    p = min(max((r1_a + r1_b) / 200.0, 0.0), 1.0)
    return 100.0 * math.sqrt(2.0 * p * (1.0 - p) / n)


def within_noise(r1_a: float, r1_b: float, n: float) -> bool:
    """True when two Rank-1 rates on ``n`` queries differ by at most :func:`noise_points`."""
    return abs(r1_a - r1_b) <= noise_points(r1_a, r1_b, n) + 1e-9


def _get(m: Mapping[str, float], key: str) -> float:
    if key not in m:
        raise MissingMeasurement(key, m.keys())
    v = m[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ValueError(f"measured {key!r} must be a finite number, got {v!r}")
    return float(v)


def _noise_note(m, a: float, b: float, n_key: str) -> str:
    if n_key in m and m[n_key]:
        return f"; noise ±{noise_points(a, b, float(m[n_key])):.1f}"
    return ""


def _g(g: float) -> str:
    return f"{float(g):.1f}"


def _gammas_of(m: Mapping[str, float], model: str) -> list[float]:
    pat = re.compile(rf"^t1\.{re.escape(model)}\.r1@([0-9.]+)$")
    return sorted(float(x.group(1)) for k in m for x in [pat.match(k)] if x)


def _r(x: float) -> str:
    return f"{x:.1f}"


# --------------------------------------------------------------------------- chapter 03 checks


def _pcb_collapses(m) -> Verdict:
    gs = (0.5, 0.6, 0.7)
    pcb = {g: _get(m, sweep_key("pcb", g)) for g in gs}
    base = {g: _get(m, sweep_key("baseline", g)) for g in gs}
    measured = "PCB / baseline R-1: " + ", ".join(f"{_r(pcb[g])} / {_r(base[g])} (γ {_g(g)})" for g in gs)
    bad = [g for g in gs if not pcb[g] < base[g]]
    if not bad:
        gaps = [base[g] - pcb[g] for g in gs]
        return Verdict(True, measured, f"PCB below the baseline at every γ ≤ 0.7, by {min(gaps):.1f} to {max(gaps):.1f} points")
    return Verdict(False, measured, "PCB not below the baseline at " + ", ".join(
        f"γ {_g(g)} ({pcb[g] - base[g]:+.1f} points)" for g in bad))


def _resize_vs_pad(m) -> Verdict:
    pad, resize, n = _get(m, "t1a.pad.r1"), _get(m, "t1a.resize.r1"), _get(m, "t1a.n_query")
    se, d = noise_points(pad, resize, n), resize - pad
    measured = f"R-1 Resize {_r(resize)}, Pad {_r(pad)} ({n:.0f} queries)"
    if abs(d) <= se + 1e-9:
        return Verdict(True, measured, f"a tie within noise: Resize − Pad = {d:+.1f} points, noise ±{se:.1f}")
    if d > 0:
        return Verdict(True, measured, f"Resize beats Pad by {d:.1f} points (noise ±{se:.1f})")
    return Verdict(False, measured, f"Pad beats Resize by {-d:.1f} points, beyond the noise ±{se:.1f}")


# --------------------------------------------------------------------------- chapter 04 checks


def _beats_baseline(m) -> Verdict:
    vpm = {g: _get(m, sweep_key("vpm", g)) for g in GAMMAS}
    base = {g: _get(m, sweep_key("baseline", g)) for g in GAMMAS}
    d = {g: vpm[g] - base[g] for g in GAMMAS}
    measured = "VPM − baseline R-1: " + ", ".join(f"{d[g]:+.1f}" for g in GAMMAS) + " (γ 0.5 … 1.0)"
    bad = [g for g in GAMMAS if not d[g] > 0]
    if not bad:
        return Verdict(True, measured, f"VPM ahead at every γ, by {min(d.values()):.1f} to {max(d.values()):.1f} points")
    return Verdict(False, measured, f"VPM not ahead at γ {', '.join(_g(g) for g in bad)} "
                   f"(VPM {_r(vpm[1.0])} vs baseline {_r(base[1.0])} at γ 1.0)")


def _graceful(m) -> Verdict:
    loss = {k: _get(m, sweep_key(k, 1.0)) - _get(m, sweep_key(k, 0.5)) for k in ("vpm", "baseline", "pcb")}
    measured = (f"R-1 lost from γ 1.0 to 0.5: VPM {_r(loss['vpm'])}, baseline {_r(loss['baseline'])}, "
                f"PCB {_r(loss['pcb'])}")
    start = (f"from R-1 {_r(_get(m, sweep_key('vpm', 1.0)))} / {_r(_get(m, sweep_key('baseline', 1.0)))} / "
             f"{_r(_get(m, sweep_key('pcb', 1.0)))} at γ 1.0")
    ok_vb, ok_bp = loss["vpm"] < loss["baseline"], loss["baseline"] < loss["pcb"]
    if ok_vb and ok_bp:
        return Verdict(True, measured, f"VPM < baseline < PCB in points lost ({start})")
    why = []
    if not ok_vb:
        why.append(f"VPM loses {loss['vpm'] - loss['baseline']:+.1f} points more than the baseline")
    if not ok_bp:
        why.append(f"the baseline loses {loss['baseline'] - loss['pcb']:+.1f} points more than PCB")
    return Verdict(False, measured, "; ".join(why) + f" ({start})")


def _fig4_models(m) -> dict[int, list[float]]:
    ps = sorted({int(x.group(1)) for k in m for x in [re.match(r"^t1\.vpm_p(\d+)\.r1@", k)] if x} - {1})
    return {p: _gammas_of(m, f"vpm_p{p}") for p in ps}


def _every_p(m) -> Verdict:
    models = _fig4_models(m)
    if not models:
        raise MissingMeasurement("t1.vpm_p<p>.r1@<gamma>", m.keys())
    base = {g: _get(m, sweep_key("baseline", g)) for g in GAMMAS}
    worst = {}
    bad = []
    for p in models:
        for g in GAMMAS:
            d = _get(m, sweep_key(f"vpm_p{p}", g)) - base[g]
            worst[p] = min(worst.get(p, math.inf), d)
            if not d > 0:
                bad.append((p, g))
    measured = "smallest VPM − baseline R-1 over γ: " + ", ".join(f"p = {p}: {worst[p]:+.1f}" for p in models)
    if not bad:
        return Verdict(True, measured, f"every p ({', '.join(map(str, models))}) ahead at every γ")
    return Verdict(False, measured, f"behind or level at {len(bad)} of {len(models) * len(GAMMAS)} (p, γ): "
                   + ", ".join(f"p {p} γ {_g(g)}" for p, g in bad[:6]) + (" …" if len(bad) > 6 else ""))


def _larger_p(m) -> Verdict:
    r6 = {g: _get(m, sweep_key("vpm_p6", g)) for g in GAMMAS}
    r2 = {g: _get(m, sweep_key("vpm_p2", g)) for g in GAMMAS}
    mean6, mean2 = sum(r6.values()) / len(GAMMAS), sum(r2.values()) / len(GAMMAS)
    lead = [g for g in GAMMAS if r6[g] > r2[g]]
    measured = f"mean R-1 over γ 0.5 … 1.0: p = 6 {_r(mean6)}, p = 2 {_r(mean2)}"
    at = f"p = 6 ahead at {len(lead)} of {len(GAMMAS)} γ" + (f" ({', '.join(_g(g) for g in lead)})" if lead else "")
    if mean6 > mean2:
        return Verdict(True, measured, f"p = 6 higher on the mean by {mean6 - mean2:.1f} points; {at}")
    return Verdict(False, measured, f"p = 6 not higher on the mean ({mean6 - mean2:+.1f} points); {at}")


def _crop_matches_test(m) -> Verdict:
    r = {(c, s): _get(m, f"t2.{c}.{s}.r1") for c in ("top", "bottom", "bilateral") for s in ("reid", "ilids")}
    measured = ("R-1 Top / Bottom / Bilateral: iLIDS-like " + " / ".join(_r(r[(c, "ilids")]) for c in ("top", "bottom", "bilateral"))
                + ", REID-like " + " / ".join(_r(r[(c, "reid")]) for c in ("top", "bottom", "bilateral")))
    why = []
    if not r[("top", "ilids")] > r[("bottom", "ilids")]:
        why.append("Top not above Bottom on iLIDS-like")
    for s, name in (("ilids", "iLIDS-like"), ("reid", "REID-like")):
        others = [c for c in ("top", "bilateral") if not r[("bottom", s)] < r[(c, s)]]
        if others:
            why.append(f"Bottom not below {' and '.join(c.capitalize() for c in others)} on {name}")
    if not why:
        return Verdict(True, measured, "Top above Bottom on iLIDS-like; Bottom lowest on both sets")
    return Verdict(False, measured, "; ".join(why))


_ABLATIONS = ("no-triplet", "mvpm-1", "mvpm-2", "mvpm-3", "mvpm-4")
_ABL_LABEL = {"no-triplet": "no triplet", "mvpm-1": "MVPM-1", "mvpm-2": "MVPM-2", "mvpm-3": "MVPM-3", "mvpm-4": "MVPM-4"}


def _ablations_lose(m) -> Verdict:
    vpm = _get(m, "t3.vpm.ilids.r1")
    d = {a: _get(m, f"t3.{a}.ilids.r1") - vpm for a in _ABLATIONS}
    measured = f"R-1 VPM {_r(vpm)}; ablation − VPM: " + ", ".join(f"{_ABL_LABEL[a]} {d[a]:+.1f}" for a in _ABLATIONS)
    bad = [a for a in _ABLATIONS if not d[a] < 0]
    if not bad:
        return Verdict(True, measured, "every ablation below VPM on the iLIDS look-alike")
    return Verdict(False, measured, "not below VPM: " + ", ".join(f"{_ABL_LABEL[a]} ({d[a]:+.1f})" for a in bad))


def _mvpm1_holistic(m) -> Verdict:
    vpm, mv1 = _get(m, "t3.vpm.market.r1"), _get(m, "t3.mvpm-1.market.r1")
    d = mv1 - vpm
    measured = f"holistic R-1 VPM {_r(vpm)}, MVPM-1 {_r(mv1)}"
    note = _noise_note(m, vpm, mv1, "t3.market.n_query")
    if abs(d) <= 1.0 + 1e-9:
        return Verdict(True, measured, f"within 1 point (MVPM-1 − VPM = {d:+.1f}{note})")
    return Verdict(False, measured, f"{abs(d):.1f} points apart, more than 1 (MVPM-1 − VPM = {d:+.1f}{note})")


def _regions_beyond_crops(m) -> Verdict:
    gs = (0.5, 0.6, 0.7, 0.8)
    d = {g: _get(m, sweep_key("vpm", g)) - _get(m, sweep_key("vpm_p1", g)) for g in gs}
    measured = "VPM (p = 6) − VPM (p = 1) R-1: " + ", ".join(f"{d[g]:+.1f}" for g in gs) + " (γ 0.5 … 0.8)"
    bad = [g for g in gs if not d[g] > 0]
    if not bad:
        return Verdict(True, measured, f"the six regions ahead of the one-region control at every γ ≤ 0.8, "
                       f"by {min(d.values()):.1f} to {max(d.values()):.1f} points")
    return Verdict(False, measured, f"not ahead at γ {', '.join(_g(g) for g in bad)}")


# --------------------------------------------------------------------------- chapter 05 checks


def _gain(m, ep: str) -> tuple[float, float, float]:
    w, wo = _get(m, f"t2.{ep}.with.r1"), _get(m, f"t2.{ep}.without.r1")
    return w, wo, w - wo


def _stn_helps(m) -> Verdict:
    w, wo, g = _gain(m, "ep1")
    measured = f"Ep1 R-1 {_r(w)} with STN, {_r(wo)} w/o ({g:+.1f})"
    if g > 0:
        return Verdict(True, measured, f"the STN adds {g:.1f} points at Ep1")
    return Verdict(False, measured, f"the STN changes Ep1's Rank-1 by {g:+.1f} points")


def _gain_shrinks(m) -> Verdict:
    g1, g5 = _gain(m, "ep1")[2], _gain(m, "ep5")[2]
    measured = f"STN gain: Ep1 {g1:+.1f}, Ep5 {g5:+.1f}"
    if g5 < g1:
        return Verdict(True, measured, f"the gain shrinks by {g1 - g5:.1f} points from Ep1 to Ep5")
    return Verdict(False, measured, f"the gain does not shrink ({g5 - g1:+.1f} points from Ep1 to Ep5)")


def _pm_beats_mm(m) -> Verdict:
    r = {(mo, s): _get(m, f"t3.{mo}.{s}.r1") for mo in ("pm", "mm") for s in ("reid", "ilids")}
    measured = (f"R-1 PM / MM: {_r(r[('pm', 'reid')])} / {_r(r[('mm', 'reid')])} (REID-like), "
                f"{_r(r[('pm', 'ilids')])} / {_r(r[('mm', 'ilids')])} (iLIDS-like)")
    bad = [s for s in ("reid", "ilids") if not r[("pm", s)] > r[("mm", s)]]
    if not bad:
        return Verdict(True, measured, "PM ahead on both sets")
    return Verdict(False, measured, "PM not ahead on " + " and ".join(
        f"{'REID' if s == 'reid' else 'iLIDS'}-like ({r[('pm', s)] - r[('mm', s)]:+.1f})" for s in bad))


def _localises(m) -> Verdict:
    stn, ident = _get(m, "iou.ep1"), _get(m, "iou.identity")
    measured = f"mean box IoU: Ep1 STN {stn:.2f}, identity {ident:.2f}"
    if stn > ident:
        return Verdict(True, measured, f"the STN's box is closer to the true crop (+{stn - ident:.2f} IoU)")
    return Verdict(False, measured, f"the STN's box is no closer to the true crop ({stn - ident:+.2f} IoU)")


# --------------------------------------------------------------------------- chapter 06 checks

_T1A_LABEL = {"resize": "Resize", "pad": "Pad", "r": "+R", "r-l-triplet": "w/ PP-Triplet", "r-l-cycle": "w/ PP-Cycle",
              "ppcl": "PPCL"}
_SET_LABEL = {"reid": "REID-like", "ilids": "iLIDS-like"}


def _t1a(m, row: str) -> float:
    return _get(m, f"t1a.{row}.r1")


def _ahead(m, a: str, bs: tuple[str, ...]) -> tuple[bool, str, str]:
    """Does Table 1a's row ``a`` beat every row of ``bs``? ``(holds, measured, evidence)``."""
    ra, rb = _t1a(m, a), {b: _t1a(m, b) for b in bs}
    measured = f"R-1 {_T1A_LABEL[a]} {_r(ra)}; " + ", ".join(f"{_T1A_LABEL[b]} {_r(v)}" for b, v in rb.items())
    bad = [b for b in bs if not ra > rb[b]]
    notes = [_noise_note(m, ra, rb[b], "t1a.n_query") for b in bs]
    if not bad:
        margins = ", ".join(f"+{ra - rb[b]:.1f} over {_T1A_LABEL[b]}{n}" for b, n in zip(bs, notes))
        return True, measured, f"{_T1A_LABEL[a]} ahead: {margins}"
    return False, measured, "; ".join(f"{_T1A_LABEL[a]} not ahead of {_T1A_LABEL[b]} ({ra - rb[b]:+.1f}"
                                      f"{_noise_note(m, ra, rb[b], 't1a.n_query')})" for b in bad)


def _r_beats_resize(m) -> Verdict:
    return Verdict(*_ahead(m, "r", ("resize",)))


def _each_constraint_helps(m) -> Verdict:
    rows = ("r-l-triplet", "r-l-cycle")
    r = _t1a(m, "r")
    d = {v: _t1a(m, v) - r for v in rows}
    measured = f"R-1 +R {_r(r)}; " + ", ".join(f"{_T1A_LABEL[v]} {_r(_t1a(m, v))}" for v in rows)
    bad = [v for v in rows if not d[v] > 0]
    if not bad:
        return Verdict(True, measured, "each constraint beats +R: " + ", ".join(
            f"{_T1A_LABEL[v]} {d[v]:+.1f}{_noise_note(m, r, _t1a(m, v), 't1a.n_query')}" for v in rows))
    return Verdict(False, measured, "not ahead of +R: " + ", ".join(
        f"{_T1A_LABEL[v]} ({d[v]:+.1f}{_noise_note(m, r, _t1a(m, v), 't1a.n_query')})" for v in bad))


def _complementary(m) -> Verdict:
    return Verdict(*_ahead(m, "ppcl", ("r-l-triplet", "r-l-cycle")))


def _grid_cells(m) -> dict[tuple[float, float], float]:
    pat = re.compile(r"^t1c\.r1@([0-9.e+-]+),([0-9.e+-]+)$")
    return {(float(x.group(1)), float(x.group(2))): _get(m, k) for k in m for x in [pat.match(k)] if x}


def _cell(c: tuple[float, float]) -> str:
    return f"({c[0]:g}, {c[1]:g})"


def _default_vs_best(r: Mapping, default, n: float) -> tuple:
    """The paper's setting ``default`` against the best of the measured settings ``r`` (Rank-1 by
    setting, at least two; a tie goes to the default): ``(best, holds, gap, noise)``. ``holds``:
    the default is the best or within noise of it (:func:`within_noise` on ``n`` queries).
    ``gap``: the default's lead over the next setting when it is the best, else its (negative)
    difference from the best; ``noise``: one standard error of that difference (None when the
    default is the best)."""
    best = max(r, key=lambda v: (r[v], v == default))
    if best == default:
        return best, True, r[default] - max(v for k, v in r.items() if k != default), None
    return best, within_noise(r[default], r[best], n), r[default] - r[best], noise_points(r[default], r[best], n)


def _t1c_optimum(m) -> Verdict:
    cells = _grid_cells(m)
    opt = (10.0, 1.0)
    if opt not in cells:
        raise MissingMeasurement(grid_key(*opt), m.keys())
    if len(cells) < 2:
        raise MissingMeasurement("t1c.r1@<cyc>,<tri> (a second cell of the grid)", m.keys())
    best, holds, gap, se = _default_vs_best(cells, opt, _get(m, "t1c.n_query"))
    r_opt, r_best = cells[opt], cells[best]
    measured = f"R-1 at (λ_cyc, λ_tri) = (10, 1): {_r(r_opt)}; best of {len(cells)} cells: {_r(r_best)} at {_cell(best)}"
    if best == opt:
        return Verdict(True, measured, f"(10, 1) is the best cell, {gap:+.1f} points over the next")
    if holds:
        return Verdict(True, measured, f"(10, 1) within noise of the best {_cell(best)}: {gap:+.1f} "
                       f"points, noise ±{se:.1f}")
    return Verdict(False, measured, f"{_cell(best)} beats (10, 1) by {-gap:.1f} points, beyond the "
                   f"noise ±{se:.1f}")


def _t2_beats_vpm_stn(m) -> Verdict:
    r = {(mo, st): _get(m, f"t2.{mo}.{st}.r1") for mo in ("ppcl", "vpm", "stn") for st in ("reid", "ilids")}
    measured = "; ".join(f"{_SET_LABEL[st]} R-1 PPCL {_r(r[('ppcl', st)])}, VPM {_r(r[('vpm', st)])}, "
                         f"STNReID {_r(r[('stn', st)])}" for st in ("reid", "ilids"))
    bad = [(mo, st) for st in ("reid", "ilids") for mo in ("vpm", "stn") if not r[("ppcl", st)] > r[(mo, st)]]
    name = {"vpm": "VPM", "stn": "STNReID"}
    if not bad:
        gaps = [r[("ppcl", st)] - r[(mo, st)] for st in ("reid", "ilids") for mo in ("vpm", "stn")]
        return Verdict(True, measured, f"PPCL ahead of both on both sets, by {min(gaps):.1f} to {max(gaps):.1f} points")
    return Verdict(False, measured, "PPCL not ahead of " + ", ".join(
        f"{name[mo]} on {_SET_LABEL[st]} ({r[('ppcl', st)] - r[(mo, st)]:+.1f})" for mo, st in bad))


def _fig5_ratios(m, model: str) -> list[float]:
    pat = re.compile(rf"^fig5\.{re.escape(model)}\.r1@([0-9.]+)$")
    return sorted(float(x.group(1)) for k in m for x in [pat.match(k)] if x)


def _fig5_every_ratio(m) -> Verdict:
    ratios = _fig5_ratios(m, "ppcl")
    if not ratios:
        raise MissingMeasurement("fig5.ppcl.r1@<ratio>", m.keys())
    d = {g: _get(m, ratio_key("ppcl", g)) - _get(m, ratio_key("resize", g)) for g in ratios}
    measured = "PPCL − Resize R-1: " + ", ".join(f"{d[g]:+.1f}" for g in ratios) + \
        f" (ratio {_g(ratios[0])} … {_g(ratios[-1])})"
    bad = [g for g in ratios if not d[g] > 0]
    if not bad:
        return Verdict(True, measured, f"PPCL ahead at every ratio, by {min(d.values()):.1f} to {max(d.values()):.1f} points")
    return Verdict(False, measured, f"PPCL not ahead at ratio {', '.join(_g(g) for g in bad)}")


def _gate_accuracy(m) -> Verdict:
    acc = _get(m, "gate.accuracy")
    n = m.get("gate.n_images")
    measured = f"gate accuracy {_r(acc)} %" + (f" ({float(n):.0f} images)" if n else "")
    if acc >= 90.0:
        return Verdict(True, measured, f"at or above 90 % ({acc - 90.0:+.1f} points)")
    return Verdict(False, measured, f"below 90 % ({acc - 90.0:+.1f} points)")


def _cost_shortlist(m) -> Verdict:
    s_short, s_resize, s_all = _get(m, "cost.shortlist.s"), _get(m, "cost.resize.s"), _get(m, "cost.all.s")
    r_short, r_all = _get(m, "cost.shortlist.r1"), _get(m, "cost.all.r1")
    ratio = s_short / s_resize if s_resize > 0 else math.inf
    lost = r_all - r_short
    measured = (f"seconds: shortlist {s_short:.2f}, Resize {s_resize:.2f}, all pairs {s_all:.2f}; "
                f"R-1 shortlist {_r(r_short)}, all pairs {_r(r_all)}")
    why = []
    if not ratio <= 2.0:
        why.append(f"the shortlist costs {ratio:.1f}x Resize's time (more than 2x)")
    if not lost <= 1.0 + 1e-9:
        why.append(f"it loses {lost:.1f} R-1 points against all pairs (more than 1)")
    if not why:
        return Verdict(True, measured, f"{ratio:.1f}x Resize's time ({s_all / s_short:.1f}x faster than all pairs), "
                       f"{lost:+.1f} R-1 points lost against all pairs")
    return Verdict(False, measured, "; ".join(why))


# --------------------------------------------------------------------------- chapter 07 checks

_T3_LABEL = {"hpnet": "HPNet", "global": "+ Global Branch", "fixed-fe": "+ Fixed FE", "sanet": "SANet"}
_T1_SETS = {"reid": "REID-like", "ilids": "iLIDS-like", "occ": "occluded"}


def _step(m, a: str, b: str) -> Verdict:
    """Table 3: does row ``a`` beat the row ``b`` before it (on the iLIDS look-alike)?"""
    ra, rb = _get(m, f"t3.{a}.ilids.r1"), _get(m, f"t3.{b}.ilids.r1")
    measured = f"R-1 {_T3_LABEL[a]} {_r(ra)}, {_T3_LABEL[b]} {_r(rb)}"
    note = _noise_note(m, ra, rb, "t3.n_query")
    if ra > rb:
        return Verdict(True, measured, f"{_T3_LABEL[a]} ahead by {ra - rb:.1f}{note}")
    return Verdict(False, measured, f"{_T3_LABEL[a]} not ahead of {_T3_LABEL[b]} ({ra - rb:+.1f}{note})")


def _global_helps(m) -> Verdict:
    return _step(m, "global", "hpnet")


def _fixed_fe_helps(m) -> Verdict:
    return _step(m, "fixed-fe", "global")


def _afe_beats_fixed(m) -> Verdict:
    return _step(m, "sanet", "fixed-fe")


def _beats_hpnet_everywhere(m) -> Verdict:
    r = {(mo, st): _get(m, f"t1.{mo}.{st}.r1") for mo in ("sanet", "hpnet") for st in _T1_SETS}
    measured = "; ".join(f"{lab} R-1 SANet {_r(r[('sanet', st)])}, HPNet {_r(r[('hpnet', st)])}"
                         for st, lab in _T1_SETS.items())
    bad = [st for st in _T1_SETS if not r[("sanet", st)] > r[("hpnet", st)]]
    notes = {st: _noise_note(m, r[("sanet", st)], r[("hpnet", st)], f"t1.{st}.n_query") for st in _T1_SETS}
    if not bad:
        return Verdict(True, measured, "SANet ahead on all three: " + ", ".join(
            f"{_T1_SETS[st]} {r[('sanet', st)] - r[('hpnet', st)]:+.1f}{notes[st]}" for st in _T1_SETS))
    return Verdict(False, measured, "SANet not ahead on " + ", ".join(
        f"{_T1_SETS[st]} ({r[('sanet', st)] - r[('hpnet', st)]:+.1f}{notes[st]})" for st in bad))


def _best_or_within_noise(m, prefix: str, values: tuple[int, ...], default: int, label) -> Verdict:
    """Table 4: is ``default`` the best of the settings measured (``values`` that have a key; the
    default and at least one other), or within noise of the best?"""
    if f"t4.{prefix}{default}.r1" not in m:
        raise MissingMeasurement(f"t4.{prefix}{default}.r1", m.keys())
    values = tuple(v for v in values if f"t4.{prefix}{v}.r1" in m)
    if len(values) < 2:
        raise MissingMeasurement(f"t4.{prefix}<n>.r1 (a second setting)", m.keys())
    r = {v: _get(m, f"t4.{prefix}{v}.r1") for v in values}
    best, holds, gap, se = _default_vs_best(r, default, _get(m, "t4.n_query"))
    measured = "R-1 " + ", ".join(f"{label(v)} {_r(r[v])}" for v in values)
    if best == default:
        return Verdict(True, measured, f"{label(default)} is the best setting, {gap:+.1f} points over the next")
    if holds:
        return Verdict(True, measured, f"{label(best)} is best, {label(default)} within noise of it "
                       f"({gap:+.1f}; noise ±{se:.1f})")
    return Verdict(False, measured, f"{label(best)} beats {label(default)} beyond noise "
                   f"({-gap:+.1f}; noise ±{se:.1f})")


def _five_layers(m) -> Verdict:
    return _best_or_within_noise(m, "layers", (3, 5, 7), 5, lambda v: f"{v} layers")


def _conv3x3(m) -> Verdict:
    return _best_or_within_noise(m, "kernel", (1, 3, 5), 3, lambda v: f"{v}x{v}")


def _holistic_comparable(m) -> Verdict:
    sa, base = _get(m, "t2.sanet.r1"), _get(m, "t2.baseline.r1")
    d = sa - base
    measured = f"holistic R-1 SANet {_r(sa)}, baseline {_r(base)}"
    note = _noise_note(m, sa, base, "t2.n_query")
    if d >= -2.0 - 1e-9:
        return Verdict(True, measured, f"SANet − baseline = {d:+.1f} (not more than 2 points below{note})")
    return Verdict(False, measured, f"SANet is {-d:.1f} points below the baseline, more than 2{note}")


def welch_z(mean_a: float, sd_a: float, n_a: float, mean_b: float, sd_b: float, n_b: float) -> float:
    """Welch's z of two means, ``(mean_a - mean_b) / sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``; without
    any spread (or with an undefined one) a difference counts as infinite and no difference as 0."""
    se = math.sqrt(sd_a ** 2 / max(n_a, 1) + sd_b ** 2 / max(n_b, 1))
    d = mean_a - mean_b
    return d / se if se > 0 else (math.inf if d else 0.0)


def _scale_adaptive(m) -> Verdict:
    """Welch's z of the mean route scale (0-2) of small against large crops."""
    a = {g: (_get(m, f"routing.{g}.mean"), _get(m, f"routing.{g}.sd"), _get(m, f"routing.{g}.n"))
         for g in ("small", "large")}
    (ms, ss, ns), (ml, sl, nl) = a["small"], a["large"]
    d = ms - ml
    z = welch_z(ms, ss, ns, ml, sl, nl)
    measured = f"mean route scale: small crops {ms:.3f} (n = {ns:.0f}), large {ml:.3f} (n = {nl:.0f})"
    way = ("deeper (coarser) for small crops, the paper's direction" if d > 0 else
           "shallower for small crops, against the paper's direction" if d < 0 else "the same")
    if abs(z) > 2.0:
        return Verdict(True, measured, f"the routes differ: {d:+.3f} (z = {z:+.1f}), {way}")
    return Verdict(False, measured, f"no measurable difference: {d:+.3f} (z = {z:+.1f}, |z| ≤ 2)")


# --------------------------------------------------------------------------- reported numbers


def _vpm1(method: str, gamma: float) -> float:
    return lookup("vpm", "Table 1", method, "Market-1501", gamma=gamma).value("R-1")


def _reported_strings() -> dict[str, str]:
    t2 = {(c, d): lookup("vpm", "Table 2", f"VPM ({c})", d).value("R-1")
          for c in ("Top", "Bottom", "Bilateral") for d in ("Partial-REID", "Partial-iLIDS")}
    t3 = {meth: lookup("vpm", "Table 3", meth, "Partial-iLIDS").value("R-1")
          for meth in ("VPM", "VPM (no triplet)", "MVPM-1", "MVPM-2", "MVPM-3", "MVPM-4")}
    t3m = {meth: lookup("vpm", "Table 3", meth, "Market-1501").value("R-1") for meth in ("VPM", "MVPM-1")}
    s2 = {(ep, meth): lookup("stnreid", "Table 2", meth, "Partial-REID", experiment=ep).value("R-1")
          for ep in ("Ep1", "Ep5") for meth in ("STNReID", "STNReID w/o STN")}
    s3 = {(meth, d): lookup("stnreid", "Table 3", meth, d).value("R-1")
          for meth in ("STNReID (PM)", "STNReID (MM)") for d in ("Partial-REID", "Partial-iLIDS")}
    pad, resize = (lookup("ppcl", "Table 1a", k, "Partial-REID").value("R-1") for k in ("Pad", "Resize"))
    fig4 = "plotted only, no numbers (Fig. 4)" if ("vpm", "Fig. 4") in FIGURES_WITHOUT_NUMBERS else "Fig. 4"
    fig5 = "plotted only, no numbers (Fig. 5)" if ("ppcl", "Fig. 5") in FIGURES_WITHOUT_NUMBERS else "Fig. 5"
    p1a = {r.method: r.value("R-1") for r in reported("ppcl", "Table 1a")}
    p1c = {(r.setting["lambda_cyc"], r.setting["lambda_tri"]): r.value("R-1") for r in reported("ppcl", "Table 1c")}
    p1c_next = max((c for c in p1c if c != (10.0, 1.0)), key=lambda c: p1c[c])
    sa1 = {(r.method, d): r.value("R-1") for r in reported("sanet", "Table 1")
           for d in ("Partial-REID", "Partial-iLIDS-P", "Partial-iLIDS-O") if r.method in ("SANet", "HPNet")
           and r.dataset == d}
    sa2 = {r.method: r.value("R-1") for r in reported("sanet", "Table 2") if r.dataset == "Market-1501"}
    sa3 = {r.method: r.value("R-1") for r in reported("sanet", "Table 3")}
    sa4 = {(k, v): r.value("R-1") for r in reported("sanet", "Table 4") for k, v in r.setting.items()}
    p2 = {(meth, d): lookup("ppcl", "Table 2", meth, d).value("R-1")
          for meth in ("PPCL", "VPM", "STNReID") for d in ("Partial-REID", "Partial-iLIDS")}
    times = [text_number(f"ppcl.time.{k}").value for k in ("resize", "r", "r-l")]
    gain = {ep: s2[(ep, "STNReID")] - s2[(ep, "STNReID w/o STN")] for ep in ("Ep1", "Ep5")}
    return {
        "vpm.t1.pcb-collapses": "PCB / baseline R-1: " + ", ".join(
            f"{_vpm1('PCB', g):.1f} / {_vpm1('Baseline', g):.1f} (γ {g})" for g in (0.5, 0.6, 0.7)),
        "ppcl.t1a.resize-vs-pad": f"R-1 Resize {resize:.1f}, Pad {pad:.1f}",
        "vpm.t1.beats-baseline": "VPM − baseline R-1: " + ", ".join(
            f"{_vpm1('VPM', g) - _vpm1('Baseline', g):+.1f}" for g in GAMMAS) + " (γ 0.5 … 1.0)",
        "vpm.t1.graceful": "R-1 lost from γ 1.0 to 0.5: " + ", ".join(
            f"{lab} {_vpm1(meth, 1.0) - _vpm1(meth, 0.5):.1f}"
            for lab, meth in (("VPM", "VPM"), ("baseline", "Baseline"), ("PCB", "PCB"))),
        "vpm.fig4.every-p": fig4,
        "vpm.fig4.larger-p": fig4,
        "vpm.t2.crop-matches-test": (
            "R-1 Top / Bottom / Bilateral: Partial-iLIDS "
            + " / ".join(f"{t2[(c, 'Partial-iLIDS')]:.1f}" for c in ("Top", "Bottom", "Bilateral"))
            + ", Partial-REID " + " / ".join(f"{t2[(c, 'Partial-REID')]:.1f}" for c in ("Top", "Bottom", "Bilateral"))),
        "vpm.t3.ablations-lose": f"Partial-iLIDS R-1 VPM {t3['VPM']:.1f}; " + ", ".join(
            f"{lab} {t3[meth]:.1f}" for lab, meth in (("no triplet", "VPM (no triplet)"), ("MVPM-1", "MVPM-1"),
                                                       ("MVPM-2", "MVPM-2"), ("MVPM-3", "MVPM-3"), ("MVPM-4", "MVPM-4"))),
        "vpm.t3.mvpm1-holistic": f"Market-1501 R-1 VPM {t3m['VPM']:.1f}, MVPM-1 {t3m['MVPM-1']:.1f}",
        "vpm.regions-beyond-crops": "— (not in the paper)",
        "stn.t2.stn-helps": (f"Ep1 R-1 {s2[('Ep1', 'STNReID')]:.1f} with STN, {s2[('Ep1', 'STNReID w/o STN')]:.1f} w/o "
                             f"({gain['Ep1']:+.1f})"),
        "stn.t2.gain-shrinks": f"STN gain: Ep1 {gain['Ep1']:+.1f}, Ep5 {gain['Ep5']:+.1f} (printed +0.8)",
        "stn.t3.pm-beats-mm": (f"R-1 PM / MM: {s3[('STNReID (PM)', 'Partial-REID')]:.1f} / "
                               f"{s3[('STNReID (MM)', 'Partial-REID')]:.1f} (Partial-REID), "
                               f"{s3[('STNReID (PM)', 'Partial-iLIDS')]:.1f} / {s3[('STNReID (MM)', 'Partial-iLIDS')]:.1f} "
                               f"(Partial-iLIDS)"),
        "stn.localises": "— (not in the paper)",
        "ppcl.t1a.r-beats-resize": f"R-1 +R {p1a['+R']:.1f}, Resize {p1a['Resize']:.1f}",
        "ppcl.t1a.each-constraint-helps": (f"R-1 +R {p1a['+R']:.1f}; w/ PP-Triplet {p1a['+R+L w/ PP-Triplet']:.1f}, "
                                           f"w/ PP-Cycle {p1a['+R+L w/ PP-Cycle']:.1f}"),
        "ppcl.t1a.complementary": (f"R-1 PPCL {p1a['PPCL']:.1f}; w/ PP-Triplet {p1a['+R+L w/ PP-Triplet']:.1f}, "
                                   f"w/ PP-Cycle {p1a['+R+L w/ PP-Cycle']:.1f}"),
        "ppcl.t1c.optimum": (f"R-1 {p1c[(10.0, 1.0)]:.1f} at (10, 1), the grid's maximum (next: "
                             f"{p1c[p1c_next]:.1f} at {_cell(p1c_next)})"),
        "ppcl.t2.beats-vpm-stn": "; ".join(
            f"{d} R-1 PPCL {p2[('PPCL', d)]:.1f}, VPM {p2[('VPM', d)]:.1f}, STNReID {p2[('STNReID', d)]:.1f}"
            for d in ("Partial-REID", "Partial-iLIDS")),
        "ppcl.fig5.every-ratio": fig5,
        "ppcl.gate.accuracy": f"gate accuracy {text_number('ppcl.gate-accuracy').value:.1f} % (Sec. 4.3)",
        "ppcl.cost.shortlist": ("— (not in the paper; it reports " + " / ".join(f"{t:g}" for t in times)
                                + " s for Resize / +R / +R+L on Partial-REID)"),
        "sanet.t3.global-helps": f"R-1 + Global Branch {sa3['+ Global Branch']:.1f}, HPNet {sa3['HPNet']:.1f}",
        "sanet.t3.fixed-fe-helps": f"R-1 + Fixed FE {sa3['+ Fixed FE']:.1f}, + Global Branch {sa3['+ Global Branch']:.1f}",
        "sanet.t3.afe-beats-fixed": f"R-1 SANet {sa3['SANet']:.1f}, + Fixed FE {sa3['+ Fixed FE']:.1f}",
        "sanet.t1.beats-hpnet": "; ".join(
            f"{d} R-1 SANet {sa1[('SANet', d)]:.1f}, HPNet {sa1[('HPNet', d)]:.1f}"
            for d in ("Partial-REID", "Partial-iLIDS-P", "Partial-iLIDS-O")),
        "sanet.t4.five-layers": "R-1 " + ", ".join(f"{n} layers {sa4[('afe_layers', n)]:.1f}" for n in (3, 5, 7)),
        "sanet.t4.conv3x3": "R-1 " + ", ".join(f"{k}x{k} {sa4[('cell_op', f'conv{k}x{k}')]:.1f}" for k in (1, 3, 5)),
        "sanet.t2.holistic-comparable": (f"Market-1501 R-1 SANet {sa2['SANet']:.1f} (VPM {sa2['VPM']:.1f}, "
                                         f"STNReID {sa2['STNReID']:.1f}; no baseline row)"),
        "sanet.routing.scale-adaptive": "examples only (Fig. 4a): deep paths for partial images, shallow for holistic",
    }


# --------------------------------------------------------------------------- the claims


def _claims() -> dict[str, Claim]:
    rep = _reported_strings()
    ch3, ch4, ch5, ch6, ch7 = CHAPTERS
    sweep = lambda *models: tuple(f"t1.{mo}.r1@<gamma>" for mo in models)  # noqa: E731
    rows = [
        Claim(
            "vpm.t1.pcb-collapses", ch3, "vpm", "Table 1 (Sec. 1, Sec. 4.2)",
            "PCB falls below the baseline at every γ ≤ 0.7 (top crops, crop sweep).",
            "We find that PCB [23], which maintains the latest state of the art on holistic person re-ID, "
            "encounters a substantial performance decrease when applied in partial re-ID scenario. The "
            "achieved retrieval accuracy even drops below the global feature learning baseline (to be "
            "accessed in Sec. 4.2).",
            rep["vpm.t1.pcb-collapses"], sweep("pcb", "baseline"), _pcb_collapses),
        Claim(
            "ppcl.t1a.resize-vs-pad", ch3, "ppcl", "Table 1a (the ranking is the table's; the text gives none)",
            "Resize ties (within noise) or beats Pad for the baseline on the Partial-REID look-alike.",
            "1) The partial input is directly padding with constant and fed into the backbone network (Pad) "
            "2) The partial input is directly resized and fed into the backbone network (Resize)",
            rep["ppcl.t1a.resize-vs-pad"], ("t1a.pad.r1", "t1a.resize.r1", "t1a.n_query"), _resize_vs_pad),
        Claim(
            "vpm.t1.beats-baseline", ch4, "vpm", "Table 1 (Sec. 4.2)",
            "VPM's Rank-1 exceeds the baseline's at every γ from 0.5 to 1.0.",
            "VPM significantly improves partial re-ID performance over the baseline. On Market-1501, VPM "
            "surpasses the baseline by +6.4%, +5.4%, +4.3%, +4.4%, +4.6% +6.2% rank-1 accuracy and +4.4%, "
            "+4.6%, +8.0%, + 8.6%, +10.9%, +13.1% mAP when γ is set from 0.5 to 1, respectively.",
            rep["vpm.t1.beats-baseline"], sweep("vpm", "baseline"), _beats_baseline),
        Claim(
            "vpm.t1.graceful", ch4, "vpm", "Table 1 (Sec. 4.2)",
            "From γ 1.0 to 0.5 VPM loses fewer Rank-1 points than the baseline, and the baseline fewer than PCB.",
            "Comparing VPM with PCB, a state-of-the-art part feature learning method for holistic person re-ID "
            "task, we observe that as γ decreases, the retrieval accuracy achieved by PCB dramatically drops "
            "(e.g., 0.9% rank-1 accuracy at γ = 0.5 ), implying that PCB is extremely vulnerable to the "
            "spatial misalignment in partial re-ID. By contrast, the retrieval accuracy achieved by VPM "
            "decreases much slower as γ decreases.",
            rep["vpm.t1.graceful"], ("t1.vpm.r1@<1.0, 0.5>", "t1.baseline.r1@<1.0, 0.5>", "t1.pcb.r1@<1.0, 0.5>"),
            _graceful),
        Claim(
            "vpm.fig4.every-p", ch4, "vpm", "Fig. 4 (Sec. 4.2)",
            "VPM beats the baseline for every trained p and every γ.",
            "Under all settings of p and γ, VPM consistently surpasses the baseline, which further confirms "
            "the superiority of VPM.",
            rep["vpm.fig4.every-p"], ("t1.vpm_p<p>.r1@<gamma>",) + sweep("baseline"), _every_p),
        Claim(
            "vpm.fig4.larger-p", ch4, "vpm", "Fig. 4 (Sec. 4.2)",
            "p = 6 beats p = 2: a higher mean Rank-1 over γ 0.5 … 1.0 (the paper says “generally”; the "
            "evidence lists the γ at which p = 6 leads).",
            "We also observe that larger p generally brings higher (rank-1) retrieval accuracy.",
            rep["vpm.fig4.larger-p"], sweep("vpm_p6", "vpm_p2"), _larger_p),
        Claim(
            "vpm.t2.crop-matches-test", ch4, "vpm", "Table 2 (Sec. 4.3)",
            "On the Partial-iLIDS look-alike VPM (Top) beats VPM (Bottom); VPM (Bottom) is the lowest on both "
            "look-alikes.",
            "On Partial-iLIDS, all query images of which are cropped from the top side of holistic pedestrian "
            "images, VPM (Top) achieves the highest retrieval accuracy. [...] VPM (Bottom) always performs the "
            "worst due to two reasons.",
            rep["vpm.t2.crop-matches-test"], ("t2.<top|bottom|bilateral>.<reid|ilids>.r1",), _crop_matches_test),
        Claim(
            "vpm.t3.ablations-lose", ch4, "vpm", "Table 3 (Sec. 4.4)",
            "Every ablation (no triplet, MVPM-1 to 4) is below VPM on the Partial-iLIDS look-alike.",
            "First, appending an extra triplet loss enhances the discriminative ability of the learned "
            "features, under both partial re-ID scenario (Partial-iLIDS) and holistic person re-ID scenario "
            "(Market-1501). [...] Second, comparing “MVPM-1” with “VPM”, we observe a dramatic performance "
            "decrease on Partial-iLIDS. [...] Third, comparing last three editions of MVPM with “VPM” as well "
            "as “MVPM-1”, we observe further performance decreases on Partial-iLIDS.",
            rep["vpm.t3.ablations-lose"], tuple(f"t3.{v}.ilids.r1" for v in ("vpm",) + _ABLATIONS),
            _ablations_lose),
        Claim(
            "vpm.t3.mvpm1-holistic", ch4, "vpm", "Table 3 (Sec. 4.4)",
            "MVPM-1 is within 1 Rank-1 point of VPM on the holistic test.",
            "On Market-1501, all the regions are visible and two models achieves very close retrieval accuracy.",
            rep["vpm.t3.mvpm1-holistic"], ("t3.vpm.market.r1", "t3.mvpm-1.market.r1", "t3.market.n_query"),
            _mvpm1_holistic),
        Claim(
            "vpm.regions-beyond-crops", ch4, "vpm", "beyond the paper (a control)",
            "VPM (p = 6) beats VPM with one region (p = 1: a global model trained on the same crops with the "
            "same budget) at every γ ≤ 0.8.",
            "(not in the paper) A control the paper does not run: is VPM's gain over the baseline due to "
            "its regions, or to training on partial crops? VPM with p = 1 has the crops and the budget but "
            "one region.",
            rep["vpm.regions-beyond-crops"], sweep("vpm", "vpm_p1"), _regions_beyond_crops),
        Claim(
            "stn.t2.stn-helps", ch5, "stnreid", "Table 2 (Sec. 5.1)",
            "At Ep1 the “with STN” column beats “w/o STN”.",
            "A performance gap is observed between such two test settings.",
            rep["stn.t2.stn-helps"], ("t2.ep1.with.r1", "t2.ep1.without.r1"), _stn_helps),
        Claim(
            "stn.t2.gain-shrinks", ch5, "stnreid", "Table 2 (Sec. 5.1)",
            "The STN's Rank-1 gain is smaller at Ep5 than at Ep1.",
            "The performance of the ReID modules from Ep1 to Ep5 strengthens gradually, and the improvements "
            "from the STN modules are smaller.",
            rep["stn.t2.gain-shrinks"], ("t2.<ep1|ep5>.<with|without>.r1",), _gain_shrinks),
        Claim(
            "stn.t3.pm-beats-mm", ch5, "stnreid", "Table 3 (Sec. 5.2)",
            "Pipeline Mode beats Merge Mode (both with the STN) on both partial look-alikes.",
            "STNReID (PM) performs better than STNReID (MM) does on the partial ReID task because it fine-tunes "
            "the ReID module on partial images.",
            rep["stn.t3.pm-beats-mm"], ("t3.<pm|mm>.<reid|ilids>.r1",), _pm_beats_mm),
        Claim(
            "stn.localises", ch5, "stnreid", "beyond the paper (SynthPeds' ground truth)",
            "The Ep1 STN's box has a higher mean IoU with the true crop box than the identity box (the whole "
            "frame).",
            "(not in the paper; it finds that “the performance of the STN module is difficult to independently "
            "evaluate”) SynthPeds knows each partial query's crop box, so the STN's box can be scored against it.",
            rep["stn.localises"], ("iou.ep1", "iou.identity"), _localises),
        Claim(
            "ppcl.t1a.r-beats-resize", ch6, "ppcl", "Table 1a (Sec. 4.3)",
            "+R (GLRec, pairs compared on its region) beats Resize on the Partial-REID look-alike.",
            "By adaptively recognizing and adjusting the scale and position of the partial input image, our "
            "GLRec module R significantly outperforms the baselines by a large margin, even though it is "
            "achieved in a self-supervised training manner.",
            rep["ppcl.t1a.r-beats-resize"], ("t1a.r.r1", "t1a.resize.r1", "t1a.n_query"), _r_beats_resize),
        Claim(
            "ppcl.t1a.each-constraint-helps", ch6, "ppcl", "Table 1a (Sec. 4.3)",
            "+R+L trained with PP-Triplet only, and with PP-Cycle only, each beat +R on the Partial-REID look-alike.",
            "It can be easily observed that individually apply one of the constraints both facilitate the "
            "learning of CRLoc module, resulting significant performance gain based on the GLRec module (+R).",
            rep["ppcl.t1a.each-constraint-helps"], ("t1a.r.r1", "t1a.r-l-triplet.r1", "t1a.r-l-cycle.r1"),
            _each_constraint_helps),
        Claim(
            "ppcl.t1a.complementary", ch6, "ppcl", "Table 1a (Sec. 4.3)",
            "PPCL (both constraints) beats +R+L with PP-Triplet only and with PP-Cycle only.",
            "From Table 1a we can also conclude that when combining the two constraints together (PPCL), they "
            "still boost each other with a significant margin, indicating the two items are complementary on "
            "part-part corresponding learning.",
            rep["ppcl.t1a.complementary"], ("t1a.ppcl.r1", "t1a.r-l-triplet.r1", "t1a.r-l-cycle.r1"),
            _complementary),
        Claim(
            "ppcl.t1c.optimum", ch6, "ppcl", "Table 1c (Sec. 4.3)",
            "λ_cyc = 10, λ_tri = 1 has the best Rank-1 of the trained cells of the grid, or is within noise of "
            "the best.",
            "These results show that $\\lambda_{cyc} = 10$ and $\\lambda_{tri} = 1$ achieves the optimal "
            "performance.",
            rep["ppcl.t1c.optimum"], ("t1c.r1@<cyc>,<tri>", "t1c.n_query"), _t1c_optimum),
        Claim(
            "ppcl.t2.beats-vpm-stn", ch6, "ppcl", "Table 2 (Sec. 4.4)",
            "With partial images as queries, PPCL beats chapter 04's VPM and chapter 05's STNReID (PM) on both "
            "look-alikes.",
            "On Partial-REID, we achieve 11.3% and 13.5% Rank-1 accuracy improvement over the state-of-the-art "
            "models. We also advance the Partial-iLIDS with a new record-breaking performance.",
            rep["ppcl.t2.beats-vpm-stn"], ("t2.<ppcl|vpm|stn>.<reid|ilids>.r1",), _t2_beats_vpm_stn),
        Claim(
            "ppcl.fig5.every-ratio", ch6, "ppcl", "Fig. 5 (Sec. 4.3)",
            "PPCL beats Resize at every input ratio of the query (crops of the holistic test set).",
            "We first illustrate the experimental results when varying the input ratio of partial (query) "
            "images in Figure 5, from which we can observe that our proposed scheme consistently improve the "
            "resize-based baseline.",
            rep["ppcl.fig5.every-ratio"], ("fig5.ppcl.r1@<ratio>", "fig5.resize.r1@<ratio>"), _fig5_every_ratio),
        Claim(
            "ppcl.gate.accuracy", ch6, "ppcl", "Sec. 4.3 (Table 1b)",
            "GLRec's gate tells partial from holistic test images with an accuracy of at least 90 %.",
            "More concretely, for the simulated partial scenario based on Market-1501, our gating scheme "
            "designed in the GLRec module is able to realize 94.3% accuracy on average.",
            rep["ppcl.gate.accuracy"], ("gate.accuracy",), _gate_accuracy),
        Claim(
            "ppcl.cost.shortlist", ch6, "ppcl", "beyond the paper (Sec. 4.3's time analysis)",
            "Ranking the test set with the shortlist (CRLoc rescores the global top-k) takes at most twice "
            "Resize's time (extraction + matching), and loses at most 1 Rank-1 point against scoring every pair.",
            "(not in the paper; it reports only that “a resize-based baseline achieves 4.1s running time for "
            "Partial-REID” and that PPCL “needs 4.8s running time with the GLRec module (+R), and 29.4s with "
            "both the GLRec and CRLoc module (+R+L) due to the pair-wise similarity calculation”) A shortlist "
            "of the global ranking, rescored pair by pair, is the cheaper alternative we test.",
            rep["ppcl.cost.shortlist"],
            ("cost.<resize|shortlist|all>.s", "cost.shortlist.r1", "cost.all.r1"), _cost_shortlist),
        Claim(
            "sanet.t3.global-helps", ch7, "sanet", "Table 3 (Sec. 4.4)",
            "+ Global Branch beats HPNet (Table 3's first row) on the Partial-iLIDS look-alike.",
            "Then we additionally employ a global branch in the multi-branch feature extraction module, which "
            "improves the Rank-1 accuracy and mAP by 3.4% and 3.1%.",
            rep["sanet.t3.global-helps"], ("t3.global.ilids.r1", "t3.hpnet.ilids.r1", "t3.n_query"), _global_helps),
        Claim(
            "sanet.t3.fixed-fe-helps", ch7, "sanet", "Table 3 (Sec. 4.4)",
            "+ Fixed FE (every scale path active) beats + Global Branch on the Partial-iLIDS look-alike.",
            "Additionally, we use a fixed version of the feature enhancement (FE) module where the model is "
            "static and all scale transition paths are activated. It brings an improvement of 1.6% in Rank-1 "
            "and 1.0% in mAP, which means multi-scaled features are effective for this task.",
            rep["sanet.t3.fixed-fe-helps"], ("t3.fixed-fe.ilids.r1", "t3.global.ilids.r1", "t3.n_query"),
            _fixed_fe_helps),
        Claim(
            "sanet.t3.afe-beats-fixed", ch7, "sanet", "Table 3 (Sec. 4.4)",
            "SANet (the adaptive FE) beats + Fixed FE on the Partial-iLIDS look-alike.",
            "Furthermore, a scale-adaptive FE module, i.e., AFE module, is utilized in our SANet, which further "
            "improves the Rank-1 accuracy and mAP by 0.7%/1.0%, respectively.",
            rep["sanet.t3.afe-beats-fixed"], ("t3.sanet.ilids.r1", "t3.fixed-fe.ilids.r1", "t3.n_query"),
            _afe_beats_fixed),
        Claim(
            "sanet.t1.beats-hpnet", ch7, "sanet", "Table 1 (Sec. 4.3)",
            "SANet beats HPNet (the reference recipe) on the Partial-REID and Partial-iLIDS look-alikes and the "
            "occluded variant.",
            "From this table, we can find that our SANet achieves state-of-the-art Rank-1 and mAP performance on "
            "these three datasets.",
            rep["sanet.t1.beats-hpnet"], ("t1.<sanet|hpnet>.<reid|ilids|occ>.r1",), _beats_hpnet_everywhere),
        Claim(
            "sanet.t4.five-layers", ch7, "sanet", "Table 4 (Sec. 4.4)",
            "An AFE of 5 layers has the best Rank-1 of 3, 5 and 7 layers, or is within noise of the best.",
            "The 5-layer of AFE performs best, with both too deep and too shallow layers detrimental to the "
            "dynamic scale transformation.",
            rep["sanet.t4.five-layers"], ("t4.layers<3|5|7>.r1", "t4.n_query"), _five_layers),
        Claim(
            "sanet.t4.conv3x3", ch7, "sanet", "Table 4 (Sec. 4.4)",
            "A 3x3 base operation has the best Rank-1 of 1x1, 3x3 and 5x5, or is within noise of the best.",
            "A larger convolution kernel tends to miss small information, while a smaller kernel is hard to "
            "capture more comprehensive information. According to the results, we set the convolution kernel "
            "to be $3 \\times 3$.",
            rep["sanet.t4.conv3x3"], ("t4.kernel<1|3|5>.r1", "t4.n_query"), _conv3x3),
        Claim(
            "sanet.t2.holistic-comparable", ch7, "sanet", "Table 2 (Sec. 4.3)",
            "On the holistic test set SANet's Rank-1 is at most 2 points below chapter 03's baseline.",
            "Although the scale variation problem in holistic images is not as salient as in partial images, our "
            "SANet still achieves compatible performance on both holistic datasets, which indicates that our "
            "scale adaptive strategy is also effective for holistic images.",
            rep["sanet.t2.holistic-comparable"], ("t2.sanet.r1", "t2.baseline.r1", "t2.n_query"),
            _holistic_comparable),
        Claim(
            "sanet.routing.scale-adaptive", ch7, "sanet", "Fig. 4a (Sec. 4.5), measured",
            "The AFE's paths differ between small and large crops: the mean scale of the active cells differs "
            "by more than 2 standard errors (Welch's z) between queries that keep at most half of the person "
            "and those that keep at least 80 %.",
            "Figure 4 (a) exhibits that the AFE module generates adaptive inference paths for different inputs. "
            "For the holistic pedestrian images, the shallow features are extracted to prevent the loss of "
            "detailed information by continuous down-sampling. For the partial images, the deep features are "
            "extracted to alleviate large scaling.",
            rep["sanet.routing.scale-adaptive"], ("routing.<small|large>.<mean|sd|n>",), _scale_adaptive),
    ]
    out: dict[str, Claim] = {}
    for c in rows:
        if c.id in out:
            raise ValueError(f"claim id {c.id!r} is defined twice")
        out[c.id] = c
    return out


#: every claim, by id, in book order
CLAIMS: Mapping[str, Claim] = MappingProxyType(_claims())


def claim(claim_id: str) -> Claim:
    """The claim of that id; a ``KeyError`` listing the known ids otherwise."""
    try:
        return CLAIMS[claim_id]
    except KeyError:
        raise KeyError(f"unknown claim id {claim_id!r}; known: {', '.join(CLAIMS)}") from None


def chapter_claims(chapter: str) -> list[Claim]:
    """The claims a chapter tests, in order; ``ValueError`` for a chapter without claims."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter {chapter!r} has no claims; chapters with claims: {', '.join(CHAPTERS)}")
    return [c for c in CLAIMS.values() if c.chapter == chapter]


# --------------------------------------------------------------------------- evaluation


def _verdict(c: Claim, measured: Mapping[str, float]) -> Verdict:
    try:
        v = c.check(measured)
    except MissingMeasurement as e:
        return Verdict(False, "not measured", f"not measured: {e}")
    if not isinstance(v, Verdict):
        raise TypeError(f"claim {c.id!r}: check returned {type(v).__name__}, expected a Verdict")
    return v


def evaluate_claims(chapter: str, measured_by_seed: Mapping[int, Mapping[str, float]], *,
                    ids: Iterable[str] | None = None, min_seeds: int = 3) -> list[dict]:
    """One row per claim of ``chapter`` (or the claims ``ids`` of it), checked on every seed.

    ``measured_by_seed`` maps a test seed to that seed's measured dict; its first key is the
    chapter's own seed (``measured`` is reported there). A row holds when the check holds on every
    seed and at least ``min_seeds`` seeds were measured. Row keys: ``id, chapter, paper, where,
    statement, quote, reported, measured, holds, seeds_held`` (``"k/n"``), ``evidence`` and
    ``per_seed`` (``{seed: {holds, measured, evidence}}``). A missing measured key makes that seed
    fail with "not measured" (never an exception).
    """
    if not measured_by_seed:
        raise ValueError(f"evaluate_claims({chapter!r}): measured_by_seed is empty; expected {{seed: {{key: number}}}}")
    claims = chapter_claims(chapter)
    if ids is not None:
        ids = list(ids)
        for i in ids:
            c = claim(i)
            if c.chapter != chapter:
                raise ValueError(f"claim {i!r} belongs to chapter {c.chapter!r}, not {chapter!r}")
        claims = [c for c in claims if c.id in ids]
    seeds = [int(s) for s in measured_by_seed]
    rows = []
    for c in claims:
        per = {s: _verdict(c, measured_by_seed[s]) for s in measured_by_seed}
        k = sum(v.holds for v in per.values())
        n = len(per)
        holds = k == n and n >= min_seeds
        main = per[next(iter(per))]
        evidence = main.evidence
        tail = f"held on {k}/{n} test seeds ({', '.join(f'{s} {MARK[per[s].holds]}' for s in per)})"
        others = [f"seed {s}: {per[s].measured}; {per[s].evidence}" for s in list(per)[1:] if per[s].holds != main.holds]
        if others:
            tail += "; " + "; ".join(others)
        if n < min_seeds:
            tail += f"; needs {min_seeds} seeds"
        rows.append({
            "id": c.id, "chapter": c.chapter, "paper": PAPERS[c.paper].label, "where": c.where,
            "statement": c.statement, "quote": c.quote, "reported": c.reported,
            "measured": main.measured, "holds": bool(holds), "seeds_held": f"{k}/{n}", "seeds": seeds,
            "evidence": f"{evidence}; {tail}",
            "per_seed": {str(s): {"holds": v.holds, "measured": v.measured, "evidence": v.evidence} for s, v in per.items()},
        })
    return rows


def claims_sentence(rows: list[dict]) -> str:
    """One sentence for the prose: how many of the rows hold, and which."""
    if not rows:
        return "no claims were evaluated"
    held = [r["id"] for r in rows if r["holds"]]
    failed = [r["id"] for r in rows if not r["holds"]]
    n = len(rows)
    if not failed:
        return f"all {n} claims hold ({', '.join(held)})"
    if not held:
        return f"none of the {n} claims holds ({', '.join(failed)} fail)"
    return (f"{len(held)} of the {n} claims hold ({', '.join(held)}) and {len(failed)} "
            f"{'does' if len(failed) == 1 else 'do'} not ({', '.join(failed)})")


# --------------------------------------------------------------------------- the claims file


def _check_rows(chapter: str, rows: list[dict]) -> None:
    if chapter not in CHAPTERS:
        raise ValueError(f"write_claims: chapter {chapter!r} has no claims; chapters with claims: {', '.join(CHAPTERS)}")
    for r in rows:
        if not isinstance(r, dict) or "id" not in r:
            raise ValueError(f"write_claims: every row must be a dict from evaluate_claims (with an 'id'), got {r!r}")
        c = claim(r["id"])
        if c.chapter != chapter:
            raise ValueError(f"write_claims: claim {r['id']!r} belongs to chapter {c.chapter!r}, not {chapter!r}")


def read_claims(path) -> dict:
    """The claims file as ``{"rows": [...], "measured": {chapter: {seed: {...}}}, "chapters": {...},
    "meta": {...}}``; empty (no rows) when the file does not exist."""
    from reidlib.provenance import read_results

    p = Path(path)
    if not p.exists():
        return {"rows": [], "measured": {}, "chapters": {}, "meta": {}}
    doc = read_results(p)
    rows = doc["results"]
    if not isinstance(rows, list):
        raise ValueError(f"claims file {p}: 'results' must be a list of claim rows, got {type(rows).__name__}")
    tables = doc.get("tables", {})
    return {"rows": rows, "measured": tables.get("measured", {}), "chapters": tables.get("chapters", {}),
            "meta": doc["meta"]}


def measured_of(path, chapter: str) -> dict[int, dict]:
    """The measured dicts another chapter stored in the claims file, by seed (``{}`` when absent)."""
    return {int(s): dict(m) for s, m in read_claims(path)["measured"].get(chapter, {}).items()}


def write_claims(path, chapter: str, rows: list[dict], *, measured_by_seed: Mapping[int, Mapping] | None = None,
                 command: str | None = None, profile: str | None = None, device=None, seed: int | None = None,
                 seconds: float | None = None) -> Path:
    """Merge ``chapter``'s rows into the claims file at ``path`` and write it (atomically).

    The other chapters' rows, measured dicts and records are kept; this chapter's are replaced.
    Rows are ordered as :data:`CLAIMS`. ``tables["measured"][chapter]`` keeps ``measured_by_seed``
    (other chapters read it: chapter 04 takes chapter 03's baseline on the extra seeds from it);
    ``tables["chapters"][chapter]`` records the command, seeds, seconds and time of this write.
    """
    from reidlib.provenance import write_results

    _check_rows(chapter, rows)
    old = read_claims(path)
    kept = [r for r in old["rows"] if r.get("chapter") != chapter]
    order = {cid: i for i, cid in enumerate(CLAIMS)}
    merged = sorted(kept + list(rows), key=lambda r: (order.get(r.get("id"), len(order)), str(r.get("id"))))
    measured = {k: v for k, v in old["measured"].items() if k != chapter}
    if measured_by_seed is not None:
        measured[chapter] = {str(s): dict(m) for s, m in measured_by_seed.items()}
    chapters = {k: v for k, v in old["chapters"].items() if k != chapter}
    chapters[chapter] = {
        "command": command, "seeds": sorted({s for r in rows for s in r.get("seeds", [])}),
        "claims": len(rows), "held": sum(bool(r.get("holds")) for r in rows), "seconds": seconds,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    chapters = {k: chapters[k] for k in sorted(chapters)}
    return write_results(path, merged, command=command, profile=profile, device=device, seed=seed,
                         tables={"measured": measured, "chapters": chapters}, chapter=chapter)
