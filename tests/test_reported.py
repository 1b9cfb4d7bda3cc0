"""Tests for reidlib.reported (the papers' numbers as data) and book/references.bib."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest

from reidlib import reported as rep
from reidlib.reported import (
    DATASETS,
    FIGURES_WITHOUT_NUMBERS,
    METRICS,
    PAPERS,
    PROTOCOLS,
    REPORTED,
    Reported,
    lookup,
    reported,
    reported_frame,
)

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "book" / "references.bib"

RANKS = ("R-1", "R-3", "R-5", "R-10")


def one(paper, table, method, dataset, **setting):
    return lookup(paper, table, method, dataset, **setting).metrics


# --------------------------------------------------------------------------- every entry


@pytest.mark.parametrize("entry", REPORTED, ids=lambda r: f"{r.paper}|{r.table}|{r.method}|{r.dataset}")
def test_entry_is_cited_and_plausible(entry: Reported):
    assert entry.paper in PAPERS
    assert re.match(r"^(Table \d+[a-z]?( \(caption\))?|Sec\. [\d.]+ \(text\))$", entry.table)
    assert entry.dataset in DATASETS and entry.protocol in PROTOCOLS
    assert entry.metrics and set(entry.metrics) <= set(METRICS)
    for value in entry.metrics.values():
        assert isinstance(value, float) and 0.0 <= value <= 100.0
    ranks = [entry.metrics[k] for k in RANKS if k in entry.metrics]
    assert ranks == sorted(ranks), f"CMC must be non-decreasing: {dict(entry.metrics)}"
    assert entry.source == f"{PAPERS[entry.paper].label} {entry.table}, reported"


def test_no_duplicate_rows():
    keys = Counter(
        (r.paper, r.table, r.method, r.dataset, r.protocol, tuple(sorted(r.setting.items())))
        for r in REPORTED
    )
    assert [k for k, n in keys.items() if n > 1] == []


def test_counts_per_table():
    counts = Counter((r.paper, r.table) for r in REPORTED)
    assert counts == {
        ("vpm", "Table 1"): 36,  # 2 datasets x 6 gammas x 3 methods
        ("vpm", "Table 1 (caption)"): 1,
        ("vpm", "Table 2"): 14,
        ("vpm", "Table 3"): 12,
        ("stnreid", "Table 2"): 10,
        ("stnreid", "Table 3"): 8,
        ("stnreid", "Table 4"): 18,
        ("ppcl", "Table 1a"): 6,
        ("ppcl", "Table 1b"): 16,
        ("ppcl", "Table 1c"): 16,
        ("ppcl", "Table 2"): 16,
        ("ppcl", "Table 3"): 12,
        ("ppcl", "Table 4"): 6,
        ("ppcl", "Sec. 4.4 (text)"): 2,
        ("sanet", "Table 1"): 30,
        ("sanet", "Table 2"): 8,
        ("sanet", "Table 3"): 4,
        ("sanet", "Table 4"): 6,
        ("bag-of-tricks", "Table 1"): 6,
    }


# --------------------------------------------------------------------------- the reference notes' summary


# (paper, table, method, dataset) -> expected metrics, as in reference.md section 4 / section 3.
SUMMARY = {
    ("vpm", "Table 2", "DSR", "Partial-REID"): {"R-1": 50.7, "R-3": 70.0},
    ("vpm", "Table 2", "DSR", "Partial-iLIDS"): {"R-1": 58.8, "R-3": 67.2},
    ("vpm", "Table 2", "SFR", "Partial-REID"): {"R-1": 56.9, "R-3": 78.5},
    ("vpm", "Table 2", "SFR", "Partial-iLIDS"): {"R-1": 63.9, "R-3": 74.8},
    ("vpm", "Table 2", "VPM (Bilateral)", "Partial-REID"): {"R-1": 67.7, "R-3": 81.9},
    ("vpm", "Table 2", "VPM (Bilateral)", "Partial-iLIDS"): {"R-1": 65.5, "R-3": 74.8},
    ("vpm", "Table 2", "VPM (Top)", "Partial-REID"): {"R-1": 64.3, "R-3": 83.6},
    ("vpm", "Table 2", "VPM (Top)", "Partial-iLIDS"): {"R-1": 67.2, "R-3": 76.5},
    ("stnreid", "Table 4", "STNReID (PM)", "Partial-REID"): {"R-1": 66.7, "R-3": 80.3, "R-5": 86.0},
    ("stnreid", "Table 4", "STNReID (PM)", "Partial-iLIDS"): {"R-1": 54.6, "R-3": 71.3, "R-5": 79.2},
    ("ppcl", "Table 2", "PPCL", "Partial-REID"): {"R-1": 79.0, "R-3": 87.3},
    ("ppcl", "Table 2", "PPCL", "Partial-iLIDS"): {"R-1": 69.7, "R-3": 84.0},
    ("ppcl", "Table 2", "PPCL+", "Partial-REID"): {"R-1": 83.7, "R-3": 88.7},
    ("ppcl", "Table 2", "PPCL+", "Partial-iLIDS"): {"R-1": 71.4, "R-3": 85.7},
    ("sanet", "Table 1", "HPNet", "Partial-REID"): {"R-1": 85.7, "mAP": 81.8},
    ("sanet", "Table 1", "HPNet", "Partial-iLIDS-P"): {"R-1": 68.9, "R-3": 80.7, "mAP": 72.2},
    ("sanet", "Table 1", "SANet", "Partial-REID"): {"R-1": 88.7, "R-3": 92.3, "mAP": 81.5},
    ("sanet", "Table 1", "SANet", "Partial-iLIDS-P"): {"R-1": 74.8, "R-3": 84.0, "mAP": 77.3},
}

BAG_OF_TRICKS = [  # reference.md section 3: Market-1501 R-1 / mAP, tricks cumulative
    ("Baseline-S", 87.7, 74.0),
    ("+warmup", 88.7, 75.2),
    ("+REA", 91.3, 79.3),
    ("+LS", 91.4, 80.3),
    ("+stride=1", 92.0, 81.7),
    ("+BNNeck", 94.1, 85.7),
]


@pytest.mark.parametrize("key", list(SUMMARY), ids=lambda k: "|".join(k))
def test_reference_summary_numbers(key):
    (entry,) = reported(*key)
    assert dict(entry.metrics) == SUMMARY[key]


def test_bag_of_tricks_ablation():
    entries = reported("bag-of-tricks", dataset="Market-1501")
    assert [(r.method, r.metrics["R-1"], r.metrics["mAP"]) for r in entries] == BAG_OF_TRICKS
    assert all(r.protocol == "holistic" for r in entries)


# --------------------------------------------------------------------------- cross-checks with the prose


def test_vpm_table1_matches_prose_deltas():
    # Sec. 4.2: VPM over the baseline on Market-1501, gamma 0.5 .. 1.0.
    r1 = [6.4, 5.4, 4.3, 4.4, 4.6, 6.2]
    m_ap = [4.4, 4.6, 8.0, 8.6, 10.9, 13.1]
    for gamma, d1, dm in zip((0.5, 0.6, 0.7, 0.8, 0.9, 1.0), r1, m_ap):
        vpm = one("vpm", 1, "VPM", "Market-1501", gamma=gamma)
        base = one("vpm", 1, "Baseline", "Market-1501", gamma=gamma)
        assert vpm["R-1"] - base["R-1"] == pytest.approx(d1, abs=1e-9)
        assert vpm["mAP"] - base["mAP"] == pytest.approx(dm, abs=1e-9)
    assert one("vpm", 1, "PCB", "Market-1501", gamma=0.5)["R-1"] == 0.9
    # caption: the extra triplet loss gives PCB +5.6 mAP over the original 77.4
    (orig,) = reported("vpm", "Table 1 (caption)")
    assert one("vpm", 1, "PCB", "Market-1501", gamma=1.0)["mAP"] - orig.metrics["mAP"] == pytest.approx(5.6)


def test_vpm_typo_cell_is_left_out_and_explained():
    entry = lookup("vpm", 1, "Baseline", "DukeMTMC-reID", gamma=0.7)
    assert "mAP" not in entry.metrics and "90.6" in entry.note
    with pytest.raises(KeyError, match="not 'mAP'"):
        entry.value("mAP")
    # every other cell of Table 1 is complete
    others = [r for r in reported("vpm", 1) if r is not entry]
    assert all(set(r.metrics) == {"R-1", "R-5", "R-10", "mAP"} for r in others)


def test_vpm_tables_agree_with_each_other():
    t3 = one("vpm", 3, "VPM", "Partial-iLIDS")
    top = one("vpm", 2, "VPM (Top)", "Partial-iLIDS")
    assert (t3["R-1"], t3["R-3"]) == (top["R-1"], top["R-3"])
    holistic = one("vpm", 3, "VPM", "Market-1501")
    g1 = one("vpm", 1, "VPM", "Market-1501", gamma=1.0)
    assert (holistic["R-1"], holistic["R-5"], holistic["mAP"]) == (g1["R-1"], g1["R-5"], g1["mAP"])
    # Sec. 4.3: Top beats SFR by +3.3 on Partial-iLIDS; the prose's "+10.6" for Bilateral on
    # Partial-REID disagrees with the table (10.8), which the entry's note records.
    bilateral = lookup("vpm", 2, "VPM (Bilateral)", "Partial-REID")
    assert bilateral.metrics["R-1"] - one("vpm", 2, "SFR", "Partial-REID")["R-1"] == pytest.approx(10.8)
    assert "10.6" in bilateral.note
    top_gain = one("vpm", 2, "VPM (Top)", "Partial-iLIDS")["R-1"] - one("vpm", 2, "SFR", "Partial-iLIDS")["R-1"]
    assert top_gain == pytest.approx(3.3)


def test_stnreid_tables_agree_with_prose():
    modes = ("STNReID (MM) w/o STN", "STNReID (MM)", "STNReID (PM) w/o STN", "STNReID (PM)")
    t3 = {m: one("stnreid", 3, m, "Partial-REID") for m in modes}
    assert t3["STNReID (MM)"]["R-1"] - t3["STNReID (MM) w/o STN"]["R-1"] == pytest.approx(3.1)
    assert t3["STNReID (PM)"]["R-1"] - t3["STNReID (PM) w/o STN"]["R-1"] == pytest.approx(3.1)
    ilids = lambda m: one("stnreid", 3, m, "Partial-iLIDS")["R-1"]  # noqa: E731
    assert ilids("STNReID (MM)") - ilids("STNReID (MM) w/o STN") == pytest.approx(3.4)
    assert ilids("STNReID (PM)") - ilids("STNReID (PM) w/o STN") == pytest.approx(6.7)
    # Table 3's MM-without-STN row is Table 4's Baseline
    for d in ("Partial-REID", "Partial-iLIDS"):
        a, b = one("stnreid", 3, "STNReID (MM) w/o STN", d), one("stnreid", 4, "Baseline", d)
        assert (a["R-1"], a["R-5"]) == (b["R-1"], b["R-5"])
    # the documented disagreement: r = 5 on Partial-iLIDS is 78.2 in Table 3, 79.2 in Table 4
    assert one("stnreid", 3, "STNReID (PM)", "Partial-iLIDS")["R-5"] == 78.2
    assert one("stnreid", 4, "STNReID (PM)", "Partial-iLIDS")["R-5"] == 79.2
    # Table 2: 'Imp' column = STNReID - w/o STN, printed rounded (Ep5 printed +0.8 for 0.7)
    for ep, imp in zip(("Ep1", "Ep2", "Ep3", "Ep4", "Ep5"), (7.3, 6.8, 4.0, 1.0, 0.8)):
        with_stn = lookup("stnreid", 2, "STNReID", "Partial-REID", experiment=ep)
        without = lookup("stnreid", 2, "STNReID w/o STN", "Partial-REID", experiment=ep)
        assert with_stn.setting["imp_printed"] == imp
        assert with_stn.metrics["R-1"] - without.metrics["R-1"] == pytest.approx(imp, abs=0.11)
    # the abstract: 66.7 and 54.6 rank-1
    assert one("stnreid", 4, "STNReID (PM)", "Partial-REID")["R-1"] == 66.7


def test_ppcl_tables_agree_with_prose_and_each_other():
    ppcl = lambda t, m, d: one("ppcl", t, m, d)["R-1"]  # noqa: E731
    assert ppcl(2, "PPCL", "Partial-REID") - ppcl(2, "VPM", "Partial-REID") == pytest.approx(11.3)
    assert ppcl(3, "PPCL", "Partial-REID") - ppcl(3, "SFR", "Partial-REID") == pytest.approx(13.5)
    assert ppcl(2, "PPCL+", "Partial-REID") - ppcl(2, "PPCL", "Partial-REID") == pytest.approx(4.7)
    assert ppcl(2, "PPCL+", "Partial-iLIDS") - ppcl(2, "PPCL", "Partial-iLIDS") == pytest.approx(1.7)
    assert ppcl("1a", "PPCL", "Partial-REID") == ppcl(2, "PPCL", "Partial-REID")
    # Table 1c: the chosen weights (10, 1) are the maximum and equal Table 1a's PPCL
    grid = reported("ppcl", "1c")
    best = max(grid, key=lambda r: r.metrics["R-1"])
    assert (best.setting["lambda_cyc"], best.setting["lambda_tri"]) == (10.0, 1.0)
    assert best.metrics["R-1"] == 79.0
    # Table 1b is a complete 4x4 grid, growing along the diagonal
    cells = {
        (r.setting["query_pct"], r.setting["gallery_pct"]): r.metrics["score"] for r in reported("ppcl", "1b")
    }
    assert len(cells) == 16
    diag = [cells[(p, p)] for p in (20, 40, 60, 80)]
    assert diag == sorted(diag) and diag[-1] == 92.1
    # rows copied from VPM's Table 2 are identical
    for method in ("MTRC", "AMC+SWM", "DSR", "SFR"):
        for d in ("Partial-REID", "Partial-iLIDS"):
            assert one("ppcl", 2, method, d) == one("vpm", 2, method, d)


def test_sanet_tables_agree_with_prose_and_each_other():
    s = lambda t, m, d: one("sanet", t, m, d)  # noqa: E731
    # Sec. 4.3: +6.2 R-1 over FRT on average (Partial-REID and Partial-iLIDS-O)
    gains = [s(1, "SANet", d)["R-1"] - s(1, "FRT", d)["R-1"] for d in ("Partial-REID", "Partial-iLIDS-O")]
    assert sum(gains) / 2 == pytest.approx(6.2)
    # Table 3 rows repeat Table 1 (HPNet baseline, SANet) on Partial-iLIDS-P
    for m in ("HPNet", "SANet"):
        t1, t3 = s(1, m, "Partial-iLIDS-P"), s(3, m, "Partial-iLIDS-P")
        assert (t1["R-1"], t1["R-3"], t1["mAP"]) == (t3["R-1"], t3["R-3"], t3["mAP"])
    # Sec. 4.4 deltas
    t3 = {r.method: r.metrics for r in reported("sanet", 3)}
    assert t3["+ Global Branch"]["R-1"] - t3["HPNet"]["R-1"] == pytest.approx(3.4)
    assert t3["+ Global Branch"]["mAP"] - t3["HPNet"]["mAP"] == pytest.approx(3.1)
    assert t3["+ Fixed FE"]["R-1"] - t3["+ Global Branch"]["R-1"] == pytest.approx(1.6)
    assert t3["SANet"]["mAP"] - t3["+ Fixed FE"]["mAP"] == pytest.approx(1.0)
    # Table 4's default cell (5 layers, 3x3) is SANet's Table 1 Partial-iLIDS-P result
    for setting in ({"afe_layers": 5}, {"cell_op": "conv3x3"}):
        m = one("sanet", 4, "SANet", "Partial-iLIDS-P", **setting)
        assert (m["R-1"], m["mAP"]) == (74.8, 77.3)
    # Table 2 quotes VPM's gamma = 1.0 holistic numbers
    for d in ("Market-1501", "DukeMTMC-reID"):
        a, b = s(2, "VPM", d), one("vpm", 1, "VPM", d, gamma=1.0)
        assert (a["R-1"], a["mAP"]) == (b["R-1"], b["mAP"])
    # categories cover every Table 1 row
    assert {r.setting["category"] for r in reported("sanet", 1)} == {"holistic", "occluded", "partial"}


def test_figures_without_numbers_are_declared():
    assert set(FIGURES_WITHOUT_NUMBERS) == {("vpm", "Fig. 4"), ("ppcl", "Fig. 5")}
    assert not any(r.table.startswith("Fig") for r in REPORTED)


# --------------------------------------------------------------------------- filters and lookups


def test_filters():
    vpm = reported(paper="vpm")
    assert vpm and all(r.paper == "vpm" for r in vpm)
    assert reported("vpm", 2) == reported("vpm", "2") == reported("vpm", "Table 2")
    assert len(reported("vpm", 2)) == 14
    by_dataset = reported(dataset="Partial-iLIDS-P")
    assert {r.paper for r in by_dataset} == {"sanet"}
    assert all(r.method == "DSR" for r in reported(method="DSR"))
    assert {r.paper for r in reported(method="DSR")} == {"vpm", "ppcl", "sanet", "stnreid"}
    assert all(r.protocol == "partial-gallery" for r in reported(protocol="partial-gallery"))
    assert len(reported(protocol="partial-gallery")) == 12
    # valid values that never co-occur: empty, not an error
    assert reported("bag-of-tricks", dataset="Partial-REID") == []
    assert reported() == list(REPORTED)


def test_unknown_paper_lists_accepted_keys():
    with pytest.raises(ValueError, match="unknown paper 'pcb'") as err:
        reported(paper="pcb")
    for key in ("vpm", "stnreid", "ppcl", "sanet", "bag-of-tricks"):
        assert repr(key) in str(err.value)
    with pytest.raises(ValueError, match="unknown paper"):
        reported_frame(paper="VPM")


def test_unknown_table_method_dataset_are_errors():
    with pytest.raises(ValueError, match=r"unknown table 'Table 5' for paper 'vpm'.*'Table 3'"):
        reported("vpm", 5)
    with pytest.raises(ValueError, match=r"unknown method 'VPM \(bilateral\)'.*'VPM \(Bilateral\)'"):
        reported("vpm", method="VPM (bilateral)")
    with pytest.raises(ValueError, match=r"unknown dataset 'Partial-ReID'.*'Partial-REID'"):
        reported(dataset="Partial-ReID")
    with pytest.raises(ValueError, match="unknown protocol"):
        reported(protocol="single-shot")
    with pytest.raises(TypeError, match="table must be"):
        reported("vpm", 2.0)


def test_lookup_exactly_one():
    assert lookup("vpm", 1, "PCB", "DukeMTMC-reID", gamma=0.5).metrics["R-1"] == 5.0
    with pytest.raises(LookupError, match="6 reported entries match"):
        lookup("vpm", 1, "PCB", "DukeMTMC-reID")
    with pytest.raises(LookupError, match="0 reported entries match"):
        lookup("vpm", 1, "PCB", "DukeMTMC-reID", gamma=0.55)


# --------------------------------------------------------------------------- the record


def test_record_is_immutable_and_hashable():
    entry = REPORTED[0]
    with pytest.raises(Exception):
        entry.method = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        entry.metrics["R-1"] = 0.0  # type: ignore[index]
    with pytest.raises(TypeError):
        entry.setting["gamma"] = 0.0  # type: ignore[index]
    assert len(set(REPORTED)) == len(REPORTED)
    assert entry.bibkey == PAPERS[entry.paper].bibkey


def test_record_validation_messages():
    good = dict(paper="vpm", table="Table 2", method="X", dataset="Partial-REID", protocol="partial-query")
    assert Reported(**good, metrics={"R-1": 50}).metrics == {"R-1": 50.0}
    with pytest.raises(ValueError, match=r"percentage in \[0, 100\], got 101"):
        Reported(**good, metrics={"R-1": 101})
    with pytest.raises(ValueError, match="unknown metric 'Rank-1'"):
        Reported(**good, metrics={"Rank-1": 50.0})
    with pytest.raises(ValueError, match="finite number"):
        Reported(**good, metrics={"R-1": math.nan})
    with pytest.raises(ValueError, match="non-empty mapping"):
        Reported(**good, metrics={})
    with pytest.raises(ValueError, match="table must cite the source"):
        Reported(**{**good, "table": "somewhere"}, metrics={"R-1": 50.0})
    with pytest.raises(ValueError, match="unknown dataset 'Market1501'"):
        Reported(**{**good, "dataset": "Market1501"}, metrics={"R-1": 50.0})
    with pytest.raises(ValueError, match="setting entries"):
        Reported(**good, metrics={"R-1": 50.0}, setting={"gamma": [0.5]})


# --------------------------------------------------------------------------- DataFrame


def test_reported_frame_wide():
    df = reported_frame(paper="vpm", table=2)
    assert list(df.columns[:5]) == ["paper", "table", "method", "dataset", "protocol"]
    assert {"R-1", "R-3", "crop", "note", "source"} <= set(df.columns)
    assert len(df) == 14
    assert set(df["source"]) == {"VPM (CVPR'19) Table 2, reported"}
    row = df[(df.method == "VPM (Bilateral)") & (df.dataset == "Partial-REID")].iloc[0]
    assert (row["R-1"], row["R-3"], row["crop"]) == (67.7, 81.9, "bilateral")
    # missing cells are NaN, not zero
    sanet = reported_frame(paper="sanet", table=1, dataset="Partial-REID")
    pcb = sanet[sanet.method == "PCB"].iloc[0]
    assert math.isnan(pcb["R-3"]) and pcb["mAP"] == 63.8
    # only the metrics the selection reports become columns
    pcb_only = reported_frame(paper="sanet", table=1, method="PCB")
    assert [c for c in pcb_only.columns if c in METRICS] == ["R-1", "mAP"]


def test_reported_frame_long_and_empty():
    entries = reported(paper="sanet")
    df = reported_frame(paper="sanet", long=True)
    assert len(df) == sum(len(r.metrics) for r in entries)
    assert {"metric", "value"} <= set(df.columns) and not df["value"].isna().any()
    empty = reported_frame(paper="bag-of-tricks", dataset="Partial-REID")
    assert len(empty) == 0 and "source" in empty.columns


# --------------------------------------------------------------------------- bibliography

REQUIRED_KEYS = {
    "sun2019vpm", "luo2019stnreid", "he2021ppcl", "sanet2023", "sun2018pcb", "luo2019bag",
    "zheng2015market", "zheng2015partial", "zheng2011partialilids", "he2018dsr",
    "huang2020hpnet", "ristani2016duke", "miao2019occluded", "zhuo2018occluded",
    "zhong2020erasing", "hermans2017triplet", "jaderberg2015stn", "he2016resnet", "ye2021agw",
    "zhou2019torchreid",
}


@pytest.fixture(scope="module")
def bib():
    pybtex_db = pytest.importorskip("pybtex.database")
    return pybtex_db.parse_file(str(BIB), bib_format="bibtex")


def test_bib_parses_and_has_required_keys(bib):
    keys = set(bib.entries)
    assert REQUIRED_KEYS <= keys, f"missing in {BIB}: {sorted(REQUIRED_KEYS - keys)}"
    assert {p.bibkey for p in PAPERS.values()} <= keys
    for key, entry in bib.entries.items():
        assert entry.persons.get("author"), f"{key} has no author"
        assert entry.fields.get("title") and re.fullmatch(r"\d{4}", entry.fields.get("year", "")), key
        assert entry.type in {"article", "inproceedings"}, key
        venue = entry.fields.get("journal") or entry.fields.get("booktitle")
        assert venue, f"{key} has no journal/booktitle"


def test_bib_venues_of_the_four_papers(bib):
    e = bib.entries
    assert "Perceive Where to Focus" in e["sun2019vpm"].fields["title"]
    assert "Conference on Computer Vision and Pattern Recognition" in e["sun2019vpm"].fields["booktitle"]
    assert e["luo2019stnreid"].fields["journal"] == "IEEE Transactions on Multimedia"
    assert "Part-Part Correspondence" in e["he2021ppcl"].fields["title"]
    assert "BMVC" in e["sanet2023"].fields["booktitle"]
    assert [str(p) for p in e["sanet2023"].persons["author"]][0] == "Chen, HongYu"
    assert "ICME" in e["huang2020hpnet"].fields["booktitle"] and e["huang2020hpnet"].fields["year"] == "2020"


def test_book_citations_resolve(bib):
    """Every {cite:p}/{cite:t} key used in the book's pages and notebooks is in the .bib."""
    used: set[str] = set()
    for path in [*ROOT.glob("book/**/*.md"), *ROOT.glob("notebooks/**/*.ipynb")]:
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", path.read_text(encoding="utf-8")):
            used.update(k.strip() for k in group.split(","))
    missing = sorted(used - set(bib.entries))
    assert not missing, f"cited but not in {BIB}: {missing}"


def test_module_exports():
    for name in rep.__all__:
        assert hasattr(rep, name)
