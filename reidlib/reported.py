"""Numbers the papers report, as data, each cited to the table it comes from.

The book sets its own measurements beside the numbers the papers print.  Those
printed numbers live here, once, so that every notebook quotes the same value and
every value carries its citation ("VPM (CVPR'19) Table 2, reported").  Nothing in
this module is measured by ``reidlib``.

Sources (paper keys):

* ``"vpm"``: Sun et al., *Perceive Where to Focus* (CVPR 2019): Tables 1-3 and
  the caption of Table 1.
* ``"stnreid"``: Luo et al., *STNReID* (arXiv 2019, IEEE TMM 2020): Tables 2-4 of
  the arXiv text (the table numbering used here).
* ``"ppcl"``: He et al., *Partial Person Re-identification with Part-Part
  Correspondence Learning* (CVPR 2021): Tables 1a/1b/1c, 2, 3, 4 and two numbers
  quoted in the prose of Sec. 4.4.
* ``"sanet"``: Chen et al., *Scale Adaptive Network for Partial Person
  Re-identification* (BMVC 2023): Tables 1-4.
* ``"bag-of-tricks"``: Luo et al., *Bag of Tricks and A Strong Baseline* (CVPRW
  2019): the Market-1501 trick-by-trick ablation (its Table 1).

Conventions

* Metrics are percentages, keys ``"R-1"``, ``"R-3"``, ``"R-5"``, ``"R-10"``,
  ``"mAP"`` and, for the one table whose metric the paper never names (PPCL
  Table 1b), ``"score"``.  A dash in a paper's table is simply absent.
* Dataset names are normalised across papers: ``"Partial-REID"`` (STNReID prints
  "Partial-ReID"), ``"Partial-iLIDS"``, SANet's ``"Partial-iLIDS-O"`` /
  ``"Partial-iLIDS-P"``, ``"Market-1501"``, ``"DukeMTMC-reID"`` (SANet prints
  "DukeMTMC"), ``"Partial-LFW"``.
* ``protocol`` says how the test set is used (see :data:`PROTOCOLS`);
  ``setting`` holds what distinguishes rows of one table (crop ratio, loss
  weights, ablation switches).
* Values are copied as printed.  Where a paper contradicts itself (a table cell
  against its own prose, or two tables against each other) both are kept as
  printed and the entry's ``note`` says so.  A cell that cannot be trusted as
  printed is left out and the note says why.

Figures whose values the papers do not state numerically are listed in
:data:`FIGURES_WITHOUT_NUMBERS`; the book must not read numbers off those plots.  Numbers a
paper states only in its prose (PPCL's gate accuracy and running times) are
:data:`TEXT_NUMBERS` (:func:`text_number`).

Example::

    >>> from reidlib.reported import reported, reported_frame
    >>> [r.metrics["R-1"] for r in reported("vpm", "Table 2", "VPM (Bilateral)")]
    [67.7, 65.5]
    >>> reported_frame(paper="sanet", table=1)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "DATASETS",
    "FIGURES_WITHOUT_NUMBERS",
    "METRICS",
    "PAPERS",
    "PROTOCOLS",
    "Paper",
    "REPORTED",
    "Reported",
    "TEXT_NUMBERS",
    "TextNumber",
    "lookup",
    "reported",
    "reported_frame",
    "text_number",
]


# --------------------------------------------------------------------------- vocabularies


@dataclass(frozen=True)
class Paper:
    """One source paper: ``key`` for filtering, ``label`` for captions, ``bibkey`` for citing."""

    key: str
    label: str
    title: str
    venue: str
    year: int
    bibkey: str


PAPERS: Mapping[str, Paper] = MappingProxyType(
    {
        "vpm": Paper(
            "vpm",
            "VPM (CVPR'19)",
            "Perceive Where to Focus: Learning Visibility-aware Part-level Features "
            "for Partial Person Re-identification",
            "CVPR",
            2019,
            "sun2019vpm",
        ),
        "stnreid": Paper(
            "stnreid",
            "STNReID (TMM'20)",
            "STNReID: Deep Convolutional Networks with Pairwise Spatial Transformer "
            "Networks for Partial Person Re-identification",
            "IEEE TMM (arXiv 2019)",
            2020,
            "luo2019stnreid",
        ),
        "ppcl": Paper(
            "ppcl",
            "PPCL (CVPR'21)",
            "Partial Person Re-identification with Part-Part Correspondence Learning",
            "CVPR",
            2021,
            "he2021ppcl",
        ),
        "sanet": Paper(
            "sanet",
            "SANet (BMVC'23)",
            "Scale Adaptive Network for Partial Person Re-identification: "
            "Counteracting Scale Variance",
            "BMVC",
            2023,
            "sanet2023",
        ),
        "bag-of-tricks": Paper(
            "bag-of-tricks",
            "Bag of Tricks (CVPRW'19)",
            "Bag of Tricks and A Strong Baseline for Deep Person Re-identification",
            "CVPR Workshops",
            2019,
            "luo2019bag",
        ),
    }
)

DATASETS: tuple[str, ...] = (
    "Market-1501",
    "DukeMTMC-reID",
    "Partial-REID",
    "Partial-iLIDS",
    "Partial-iLIDS-O",
    "Partial-iLIDS-P",
    "Partial-LFW",
)

PROTOCOLS: Mapping[str, str] = MappingProxyType(
    {
        "partial-query": "partial images are the query set, holistic images the gallery "
        "(Partial-REID / Partial-iLIDS: trained on Market-1501, tested cross-domain)",
        "partial-gallery": "roles swapped: holistic images are the query set, partial images "
        "the gallery (PPCL Table 3)",
        "cropped-query": "Market-1501 / DukeMTMC-reID test queries cropped to area ratio "
        "gamma, holistic gallery, standard rules otherwise (VPM Table 1)",
        "synthetic-partial": "Market-1501 evaluation set with simulated partial images in "
        "both query and gallery (PPCL Table 1b)",
        "holistic": "the standard holistic single-query evaluation",
    }
)

#: Metric keys, in display order.  ``score``: a percentage whose metric the paper does not name.
METRICS: tuple[str, ...] = ("R-1", "R-3", "R-5", "R-10", "mAP", "score")

#: Figures the book reproduces whose values the papers give only as plots.
FIGURES_WITHOUT_NUMBERS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("vpm", "Fig. 4"): "Rank-1 vs crop ratio gamma for p = 2, 3, 4, 6, 8 regions on "
        "Market-1501; plotted only. The text states only that VPM beats the baseline for "
        "every p and gamma and that larger p generally helps.",
        ("ppcl", "Fig. 5"): "accuracy vs input ratio of the partial query on Market-1501 "
        "(resize baseline, PP-Cycle only, PP-Triplet only, PPCL); plotted only. The text "
        "states only that PP-Cycle is slightly better above ratio 0.5 and PP-Triplet "
        "clearly better below 0.5.",
    }
)

_SETTING_TYPES = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class TextNumber:
    """A number a paper states in its prose, not in a table (a time, an accuracy): ``value`` in
    ``unit`` (``"%"`` or ``"s"``), ``where`` it stands, ``what`` it measures."""

    paper: str
    where: str
    what: str
    value: float
    unit: str
    note: str = ""

    @property
    def source(self) -> str:
        """Caption-ready, e.g. ``"PPCL (CVPR'21) Sec. 4.3, reported"``."""
        return f"{PAPERS[self.paper].label} {self.where}, reported"


#: Numbers the papers state in the text only, by key ``"<paper>.<name>"``.
TEXT_NUMBERS: Mapping[str, TextNumber] = MappingProxyType(
    {
        "ppcl.gate-accuracy": TextNumber(
            "ppcl", "Sec. 4.3", "accuracy of GLRec's gate at telling partial from holistic inputs, on the "
            "simulated partial Market-1501 sets of Table 1b, on average", 94.3, "%"),
        "ppcl.time.resize": TextNumber(
            "ppcl", "Sec. 4.3 (time analysis)", "running time for Partial-REID, resize-based baseline", 4.1, "s"),
        "ppcl.time.r": TextNumber(
            "ppcl", "Sec. 4.3 (time analysis)", "running time for Partial-REID, PPCL with GLRec only (+R)", 4.8, "s"),
        "ppcl.time.r-l": TextNumber(
            "ppcl", "Sec. 4.3 (time analysis)", "running time for Partial-REID, PPCL with GLRec and CRLoc (+R+L), "
            "every pair", 29.4, "s", "The paper does not name its hardware (\"a unified environment\")."),
    }
)


def text_number(key: str) -> TextNumber:
    """The prose number ``key`` of :data:`TEXT_NUMBERS`; ``KeyError`` listing the keys otherwise."""
    try:
        return TEXT_NUMBERS[key]
    except KeyError:
        raise KeyError(f"unknown text number {key!r}; known: {', '.join(TEXT_NUMBERS)}") from None


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Reported:
    """One row of one paper's table, restricted to one dataset.

    ``metrics`` maps metric keys (:data:`METRICS`) to percentages as printed;
    ``setting`` holds what distinguishes this row from its neighbours (e.g.
    ``{"gamma": 0.5}``); ``note`` records anything a reader must know (an
    inconsistency in the paper, an inferred column meaning).  Both mappings are
    read-only.
    """

    paper: str
    table: str
    method: str
    dataset: str
    protocol: str
    metrics: Mapping[str, float]
    setting: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        where = f"Reported({self.paper!r}, {self.table!r}, {self.method!r}, {self.dataset!r})"
        if self.paper not in PAPERS:
            raise ValueError(f"{where}: unknown paper {self.paper!r}; {_accepted(PAPERS)}")
        if not (isinstance(self.table, str) and re.match(r"^(Table \d+[a-z]?|Sec\. [\d.]+)", self.table)):
            raise ValueError(
                f"{where}: table must cite the source, like 'Table 2', 'Table 1b' or "
                f"'Sec. 4.4 (text)', got {self.table!r}"
            )
        if not (isinstance(self.method, str) and self.method.strip()):
            raise ValueError(f"{where}: method must be a non-empty string, got {self.method!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"{where}: unknown dataset {self.dataset!r}; {_accepted(DATASETS)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"{where}: unknown protocol {self.protocol!r}; {_accepted(PROTOCOLS)}")
        if not isinstance(self.metrics, Mapping) or not self.metrics:
            raise ValueError(f"{where}: metrics must be a non-empty mapping, got {self.metrics!r}")
        clean: dict[str, float] = {}
        for name in sorted(self.metrics, key=_metric_order):
            value = self.metrics[name]
            if name not in METRICS:
                raise ValueError(f"{where}: unknown metric {name!r}; {_accepted(METRICS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}: metric {name!r} must be a finite number, got {value!r}")
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"{where}: metric {name!r} is a percentage in [0, 100], got {value!r}")
            clean[name] = float(value)
        if not isinstance(self.setting, Mapping):
            raise ValueError(f"{where}: setting must be a mapping, got {self.setting!r}")
        for key, value in self.setting.items():
            if not isinstance(key, str) or not isinstance(value, _SETTING_TYPES):
                raise ValueError(
                    f"{where}: setting entries must map str to str/int/float/bool/None, "
                    f"got {key!r}: {value!r}"
                )
        if not isinstance(self.note, str):
            raise ValueError(f"{where}: note must be a string, got {self.note!r}")
        object.__setattr__(self, "metrics", MappingProxyType(clean))
        object.__setattr__(self, "setting", MappingProxyType(dict(self.setting)))

    def __hash__(self) -> int:
        return hash(
            (
                self.paper,
                self.table,
                self.method,
                self.dataset,
                self.protocol,
                tuple(self.metrics.items()),
                tuple(sorted(self.setting.items())),
                self.note,
            )
        )

    @property
    def source(self) -> str:
        """Caption-ready citation, e.g. ``"VPM (CVPR'19) Table 2, reported"``."""
        return f"{PAPERS[self.paper].label} {self.table}, reported"

    @property
    def bibkey(self) -> str:
        """The ``book/references.bib`` key of the paper this number comes from."""
        return PAPERS[self.paper].bibkey

    def value(self, metric: str) -> float:
        """One metric; a clear ``KeyError`` if the paper does not report it for this row."""
        if metric not in self.metrics:
            raise KeyError(
                f"{self.source}: {self.method} on {self.dataset} reports "
                f"{', '.join(self.metrics) or 'nothing'}, not {metric!r}"
            )
        return self.metrics[metric]


def _metric_order(name: str) -> tuple[int, str]:
    return (METRICS.index(name) if name in METRICS else len(METRICS), name)


def _accepted(values: Iterable[str]) -> str:
    return "accepted: " + ", ".join(repr(v) for v in values)


# --------------------------------------------------------------------------- builders

Value = Union[float, None]


def _table(
    paper: str,
    table: str,
    protocol: Union[str, Mapping[str, str]],
    columns: Sequence[tuple[str, str]],
    rows: Sequence[tuple],
    *,
    setting: Mapping[str, Any] | None = None,
    note: str = "",
) -> list[Reported]:
    """Turn one printed table into records, one per (row, dataset).

    ``columns`` lists the printed ``(dataset, metric)`` columns; each row is
    ``(method, values[, row_setting[, row_note]])`` with ``values`` aligned to
    ``columns`` and ``None`` for a dash.  ``row_note`` is a string or a
    ``{dataset: note}`` mapping.  A dataset with only dashes yields no record.
    """
    out: list[Reported] = []
    datasets = list(dict.fromkeys(d for d, _ in columns))
    for row in rows:
        method, values = row[0], row[1]
        row_setting = row[2] if len(row) > 2 else {}
        row_note = row[3] if len(row) > 3 else ""
        if len(values) != len(columns):
            raise ValueError(
                f"{paper} {table} row {method!r}: {len(values)} values for {len(columns)} columns"
            )
        for dataset in datasets:
            metrics = {m: v for (d, m), v in zip(columns, values) if d == dataset and v is not None}
            if not metrics:
                continue
            specific = row_note.get(dataset, "") if isinstance(row_note, Mapping) else row_note
            notes = [n for n in (note, specific) if n]
            out.append(
                Reported(
                    paper=paper,
                    table=table,
                    method=method,
                    dataset=dataset,
                    protocol=protocol if isinstance(protocol, str) else protocol[dataset],
                    metrics=metrics,
                    setting={**(setting or {}), **row_setting},
                    note=" ".join(notes),
                )
            )
    return out


def _cols(datasets: Sequence[str], metrics: Sequence[str]) -> list[tuple[str, str]]:
    return [(d, m) for d in datasets for m in metrics]


_ = None  # a dash in the printed table

# --------------------------------------------------------------------------- VPM (CVPR'19)


def _vpm() -> list[Reported]:
    out: list[Reported] = []
    # Table 1: columns baseline | PCB | VPM, each R-1 R-5 R-10 mAP; rows gamma 0.5..1.0.
    # Checked against Sec. 4.2: VPM - baseline on Market = +6.4 +5.4 +4.3 +4.4 +4.6 +6.2 R-1
    # and +4.4 +4.6 +8.0 +8.6 +10.9 +13.1 mAP; PCB R-1 0.9 at gamma 0.5 (all consistent).
    table1 = {
        "Market-1501": [
            (0.5, (64.5, 82.2, 88.1, 44.4), (0.9, 3.2, 5.6, 1.7), (70.9, 86.5, 92.1, 48.8)),
            (0.6, (79.0, 91.4, 94.3, 57.9), (8.1, 16.5, 23.2, 6.6), (84.4, 94.3, 96.1, 62.5)),
            (0.7, (83.9, 93.9, 95.9, 63.7), (36.5, 58.9, 67.4, 26.8), (88.2, 95.8, 97.2, 71.7)),
            (0.8, (85.7, 94.3, 96.4, 66.1), (71.9, 87.3, 91.4, 56.8), (90.1, 95.8, 97.7, 74.7)),
            (0.9, (87.1, 95.5, 97.4, 67.8), (88.8, 95.8, 97.1, 77.2), (91.7, 96.6, 98.0, 78.7)),
            (1.0, (86.8, 95.3, 97.4, 67.7), (93.4, 97.8, 98.4, 83.0), (93.0, 97.8, 98.8, 80.8)),
        ],
        "DukeMTMC-reID": [
            (0.5, (65.0, 81.1, 86.7, 47.2), (5.0, 10.1, 13.6, 4.0), (69.5, 83.1, 87.9, 52.2)),
            (0.6, (76.2, 87.3, 90.4, 55.4), (13.1, 25.6, 33.5, 10.5), (78.2, 89.0, 91.3, 60.9)),
            # baseline mAP at gamma 0.7 is printed as 90.6, a copy of the R-10 cell next to
            # it (and above every neighbouring mAP of 47-59): left out, see the note.
            (0.7, (76.3, 87.3, 90.6, _), (35.9, 57.0, 65.4, 28.4), (80.3, 89.5, 92.0, 63.1)),
            (0.8, (76.3, 88.3, 91.9, 58.8), (64.0, 82.6, 87.7, 52.3), (80.3, 89.3, 92.4, 63.5)),
            (0.9, (77.0, 88.1, 91.7, 59.0), (81.6, 90.4, 93.0, 70.3), (81.7, 90.9, 93.1, 70.7)),
            (1.0, (76.2, 87.3, 91.2, 58.6), (84.1, 92.4, 94.5, 73.2), (83.6, 91.7, 94.2, 72.6)),
        ],
    }
    metrics = ("R-1", "R-5", "R-10", "mAP")
    method_notes = {
        "Baseline": "global feature, cross-entropy + triplet.",
        "PCB": "PCB trained with the authors' code plus an extra triplet loss.",
        "VPM": "p = 6 x 1 regions.",
    }
    for dataset, rows in table1.items():
        for gamma, *per_method in rows:
            for method, values in zip(("Baseline", "PCB", "VPM"), per_method):
                note = method_notes[method]
                if dataset == "DukeMTMC-reID" and gamma == 0.7 and method == "Baseline":
                    note += (
                        " The paper prints mAP 90.6 here, identical to the R-10 cell and far above"
                        " every neighbouring mAP: a typesetting error, so mAP is left out."
                    )
                out.append(
                    Reported(
                        "vpm",
                        "Table 1",
                        method,
                        dataset,
                        "cropped-query",
                        {m: v for m, v in zip(metrics, values) if v is not None},
                        {"gamma": gamma},
                        note,
                    )
                )
    out.append(
        Reported(
            "vpm",
            "Table 1 (caption)",
            "PCB (original)",
            "Market-1501",
            "holistic",
            {"mAP": 77.4},
            note="mAP of PCB as reported by its authors, quoted in VPM's Table 1 caption "
            "(VPM's PCB + triplet reaches 83.0, i.e. +5.6).",
        )
    )

    # Table 2: Partial-REID / Partial-iLIDS, R-1 R-3.  Sec. 4.3: VPM (Top) beats SFR by +3.3
    # on Partial-iLIDS (consistent) and VPM (Bilateral) by "+10.6" on Partial-REID (table: 10.8).
    out += _table(
        "vpm",
        "Table 2",
        "partial-query",
        _cols(("Partial-REID", "Partial-iLIDS"), ("R-1", "R-3")),
        [
            ("MTRC", (23.7, 27.3, 17.7, 26.1)),
            ("AMC+SWM", (37.3, 46.0, 21.0, 32.8)),
            ("DSR", (50.7, 70.0, 58.8, 67.2)),
            ("SFR", (56.9, 78.5, 63.9, 74.8)),
            ("VPM (Bottom)", (53.2, 73.2, 53.6, 62.3), {"crop": "bottom"}),
            ("VPM (Top)", (64.3, 83.6, 67.2, 76.5), {"crop": "top"}),
            ("VPM (Bilateral)", (67.7, 81.9, 65.5, 74.8), {"crop": "bilateral"},
             {"Partial-REID": "Sec. 4.3 claims +10.6 R-1 over SFR; the table gives 67.7 - 56.9 = 10.8."}),
        ],
    )

    # Table 3: ablations; Partial-iLIDS R-1 R-3 R-5, Market-1501 (holistic mode) R-1 R-5 mAP.
    t3_cols = [("Partial-iLIDS", m) for m in ("R-1", "R-3", "R-5")] + [
        ("Market-1501", m) for m in ("R-1", "R-5", "mAP")
    ]
    out += _table(
        "vpm",
        "Table 3",
        {"Partial-iLIDS": "partial-query", "Market-1501": "holistic"},
        t3_cols,
        [
            (
                "VPM",
                (67.2, 76.5, 82.4, 93.0, 97.8, 80.8),
                {},
                {
                    "Partial-iLIDS": "Same R-1/R-3 as VPM (Top) in Table 2.",
                    "Market-1501": "Same as VPM at gamma = 1.0 in Table 1.",
                },
            ),
            ("VPM (no triplet)", (57.1, 73.9, 79.0, 91.3, 97.0, 77.8), {"triplet": False}),
            (
                "MVPM-1",
                (63.0, 74.8, 82.4, 93.0, 96.3, 79.7),
                {"visibility_at_test": False},
            ),
            ("MVPM-2", (61.3, 73.1, 79.0, 92.8, 97.4, 80.1), {"self_supervised_triplet": False}),
            ("MVPM-3", (58.8, 74.8, 82.4, 91.4, 96.5, 75.5), {"self_supervised_id": False}),
            (
                "MVPM-4",
                (59.7, 74.8, 78.2, 90.4, 96.6, 75.7),
                {"self_supervised_triplet": False, "self_supervised_id": False},
            ),
        ],
    )
    return out


# --------------------------------------------------------------------------- STNReID


def _stnreid() -> list[Reported]:
    out: list[Reported] = []
    # Table 2: five first-stage training settings; R-1 on Partial-ReID with and without STN.
    ep = [
        ("Ep1", False, False, False, 34.4, 41.7, 7.3),
        ("Ep2", True, False, False, 39.5, 46.3, 6.8),
        ("Ep3", True, True, False, 49.3, 53.3, 4.0),
        ("Ep4", True, False, True, 59.5, 60.5, 1.0),
        ("Ep5", True, True, True, 62.9, 63.6, 0.8),
    ]
    for name, pretrained, label_smooth, triplet, without, with_stn, imp in ep:
        setting = {
            "experiment": name,
            "imagenet_pretrained": pretrained,
            "label_smooth": label_smooth,
            "id_loss": True,
            "triplet": triplet,
        }
        note = ""
        if name == "Ep5":
            note = "The 'Imp' column prints +0.8 although 63.6 - 62.9 = 0.7."
        out.append(
            Reported("stnreid", "Table 2", "STNReID w/o STN", "Partial-REID", "partial-query",
                     {"R-1": without}, setting, "ReID module alone (STN removed at test).")
        )
        out.append(
            Reported("stnreid", "Table 2", "STNReID", "Partial-REID", "partial-query",
                     {"R-1": with_stn}, {**setting, "imp_printed": imp}, note)
        )

    # Table 3: two-stage training, r = 1 and r = 5.  Checked against Sec. 5.2 prose
    # (+3.1/+3.4 for MM, -3.1/-6.7 without STN for PM).
    out += _table(
        "stnreid",
        "Table 3",
        "partial-query",
        _cols(("Partial-REID", "Partial-iLIDS"), ("R-1", "R-5")),
        [
            ("STNReID (MM) w/o STN", (58.2, 82.5, 40.3, 71.4), {"mode": "MM", "stn_at_test": False},
             "The ReID backbone alone (= 'Baseline' in Table 4)."),
            ("STNReID (MM)", (61.3, 83.1, 43.7, 72.1), {"mode": "MM", "stn_at_test": True}),
            ("STNReID (PM) w/o STN", (63.6, 84.8, 47.9, 74.8), {"mode": "PM", "stn_at_test": False}),
            ("STNReID (PM)", (66.7, 86.0, 54.6, 78.2), {"mode": "PM", "stn_at_test": True},
             {"Partial-iLIDS": "Table 3 prints r = 5 as 78.2, Table 4 as 79.2 for the same model."}),
        ],
    )

    # Table 4: comparison, r = 1, 3, 5.
    out += _table(
        "stnreid",
        "Table 4",
        "partial-query",
        _cols(("Partial-REID", "Partial-iLIDS"), ("R-1", "R-3", "R-5")),
        [
            ("Resizing model", (19.3, 32.7, 40.0, 21.9, 37.0, 43.7)),
            ("SWM", (24.3, 45.0, 52.3, 33.6, 47.1, 53.8)),
            ("AMC", (33.3, 46.0, 52.0, 46.9, 64.8, 69.6)),
            ("AMC+SWM", (36.0, 51.0, 60.0, 49.6, 63.3, 72.3)),
            ("DSR", (39.3, 55.7, 65.7, 51.1, 61.7, 70.7), {},
             "Printed 'DSR(CVPR18)*': the numbers of the DSR paper, as STNReID quotes them "
             "(other papers quote different DSR numbers)."),
            ("Baseline", (58.2, 76.5, 82.5, 40.3, 61.3, 71.4), {},
             "STNReID's ReID backbone without STN."),
            ("DSR (STNReID baseline)", (61.7, 78.9, 85.3, 49.6, 65.3, 74.8), {},
             "Printed 'DSR(Our)': DSR re-run on STNReID's backbone."),
            ("STNReID (MM)", (61.3, 76.8, 83.1, 43.7, 62.6, 72.1), {"mode": "MM"}),
            ("STNReID (PM)", (66.7, 80.3, 86.0, 54.6, 71.3, 79.2), {"mode": "PM"},
             {"Partial-iLIDS": "Table 4 prints r = 5 as 79.2, Table 3 as 78.2 for the same model."}),
        ],
    )
    return out


# --------------------------------------------------------------------------- PPCL (CVPR'21)


def _ppcl() -> list[Reported]:
    out: list[Reported] = []
    # Table 1a: model variations on Partial-REID.
    out += _table(
        "ppcl",
        "Table 1a",
        "partial-query",
        _cols(("Partial-REID",), ("R-1", "R-3", "R-5")),
        [
            ("Pad", (51.0, 60.3, 64.7), {"input": "pad"}),
            ("Resize", (51.3, 61.3, 67.7), {"input": "resize"}),
            ("+R", (65.3, 78.3, 83.3), {"glrec": True, "crloc": False}),
            ("+R+L w/ PP-Triplet", (71.3, 84.3, 88.0),
             {"glrec": True, "crloc": True, "pp_cycle": False, "pp_triplet": True}),
            ("+R+L w/ PP-Cycle", (72.7, 85.3, 88.7),
             {"glrec": True, "crloc": True, "pp_cycle": True, "pp_triplet": False}),
            ("PPCL", (79.0, 87.3, 90.7),
             {"glrec": True, "crloc": True, "pp_cycle": True, "pp_triplet": True}),
        ],
    )
    # Table 1b: rows = query %, columns = gallery %.  The paper names neither the metric
    # (stored as "score") nor exactly what the percentage is: the text says it varies "the
    # number of partial images in query/gallery" on simulated Market-1501 partial sets,
    # while the values grow with the percentage (9.8 at 20%/20%, 92.1 at 80%/80%), which
    # reads more like the area ratio of the partial images.
    t1b = {
        20: (9.8, 11.2, 28.6, 37.8),
        40: (10.5, 18.7, 39.1, 54.8),
        60: (30.2, 42.1, 63.7, 79.3),
        80: (37.3, 57.7, 83.2, 92.1),
    }
    for q_pct, row in t1b.items():
        for g_pct, value in zip((20, 40, 60, 80), row):
            out.append(
                Reported(
                    "ppcl",
                    "Table 1b",
                    "PPCL",
                    "Market-1501",
                    "synthetic-partial",
                    {"score": value},
                    {"query_pct": q_pct, "gallery_pct": g_pct},
                    "Metric not named by the paper (Table 1b 'Adapt to arbitrary inputs'); "
                    "the percentage is the partial share/ratio of query and gallery as printed.",
                )
            )
    # Table 1c: rows lambda_cyc, columns lambda_tri.  Metric inferred as R-1 on Partial-REID:
    # the chosen cell (10, 1) equals PPCL's R-1 in Table 1a (79.0) and is the table's maximum.
    t1c = {
        0.1: (72.4, 73.5, 73.1, 71.8),
        1.0: (75.7, 74.3, 74.1, 72.2),
        10.0: (78.2, 79.0, 77.3, 75.8),
        100.0: (78.9, 78.8, 78.1, 75.7),
    }
    for cyc, row in t1c.items():
        for tri, value in zip((0.1, 1.0, 10.0, 100.0), row):
            out.append(
                Reported(
                    "ppcl",
                    "Table 1c",
                    "PPCL",
                    "Partial-REID",
                    "partial-query",
                    {"R-1": value},
                    {"lambda_cyc": cyc, "lambda_tri": tri},
                    "Metric and dataset not printed; inferred (the chosen cell lambda_cyc = 10, "
                    "lambda_tri = 1 equals PPCL's Partial-REID R-1 in Table 1a).",
                )
            )
    # Table 2: partial images as query.  Checked against Sec. 4.4 (+11.3 R-1 over VPM on
    # Partial-REID; PPCL+ = PPCL +4.7 / +1.7).
    out += _table(
        "ppcl",
        "Table 2",
        "partial-query",
        _cols(("Partial-REID", "Partial-iLIDS"), ("R-1", "R-3")),
        [
            ("MTRC", (23.7, 27.3, 17.7, 26.1)),
            ("AMC+SWM", (37.3, 46.0, 21.0, 32.8)),
            ("DSR", (50.7, 70.0, 58.8, 67.2)),
            ("SFR", (56.9, 78.5, 63.9, 74.8)),
            ("VPM", (67.7, 81.9, 67.2, 76.5), {},
             {"Partial-REID": "VPM (Bilateral) in VPM's Table 2.",
              "Partial-iLIDS": "VPM (Top) in VPM's Table 2."}),
            ("STNReID", (66.7, 80.3, 54.6, 71.3), {}, "STNReID (PM)."),
            ("PPCL", (79.0, 87.3, 69.7, 84.0)),
            ("PPCL+", (83.7, 88.7, 71.4, 85.7), {},
             "PPCL with the training techniques of the strong baseline and HOReID."),
        ],
    )
    # Table 3: partial images as gallery (+13.5 R-1 over SFR on Partial-REID, Sec. 4.4).
    out += _table(
        "ppcl",
        "Table 3",
        "partial-gallery",
        _cols(("Partial-REID", "Partial-iLIDS"), ("R-1", "R-3")),
        [
            ("MTRC", (26.0, 37.0, 28.6, 43.7)),
            ("AMC+SWM", (44.7, 56.3, 52.7, 63.3)),
            ("DSR", (58.3, 82.0, 59.7, 79.0)),
            ("SFR", (66.2, 86.7, 65.6, 81.5)),
            ("PPCL", (79.7, 91.7, 66.4, 81.5)),
            ("PPCL+", (88.7, 96.3, 69.7, 82.4)),
        ],
    )
    # Table 4: partial face recognition on Partial-LFW.
    out += _table(
        "ppcl",
        "Table 4",
        "partial-query",
        _cols(("Partial-LFW",), ("R-1", "R-3", "R-5", "R-10")),
        [
            ("MKDSRC-GTP", (1.10, 3.70, 5.60, 8.40)),
            ("I2C", (6.8, 8.3, 11.20, 14.60)),
            ("VGGFace", (20.90, _, _, _)),
            ("DFM", (27.30, 34.40, 39.20, 47.58)),
            ("SFR", (46.30, 59.30, 65.50, 70.90)),
            ("PPCL", (52.90, 61.40, 69.40, 73.24), {}, "VGGFace backbone."),
        ],
    )
    # Sec. 4.4 prose: two pose-guided methods quoted on Partial-REID (not in any table).
    out += _table(
        "ppcl",
        "Sec. 4.4 (text)",
        "partial-query",
        [("Partial-REID", "R-1")],
        [
            ("PGFA", (68.0,), {}, "Miao et al. (ICCV'19), quoted in PPCL's prose."),
            ("PVPM", (75.3,), {}, "Gao et al. (CVPR'20), quoted in PPCL's prose."),
        ],
    )
    # Not table rows: the GLRec gate's 94.3% accuracy and the running times (4.1 s / 4.8 s /
    # 29.4 s) of Sec. 4.3 are in TEXT_NUMBERS; the "< 1%" holistic drop (Sec. 4.4) is a bound.
    return out


# --------------------------------------------------------------------------- SANet (BMVC'23)


def _sanet() -> list[Reported]:
    out: list[Reported] = []
    # Table 1: Partial-REID | Partial-iLIDS-O | Partial-iLIDS-P, each Rank-1 Rank-3 mAP.
    # Every printed row has nine cells (dashes included).  The category column is a merged
    # cell in the PDF; the grouping below follows its row span and the cited papers' topics.
    # Checked against Sec. 4.3: SANet beats FRT by 6.2 R-1 on average over Partial-REID and
    # Partial-iLIDS-O ((0.5 + 11.9) / 2); HPNet and SANet Partial-iLIDS-P cells equal Table 3.
    cols = _cols(("Partial-REID", "Partial-iLIDS-O", "Partial-iLIDS-P"), ("R-1", "R-3", "mAP"))
    holistic = {"category": "holistic"}
    occluded = {"category": "occluded"}
    partial = {"category": "partial"}
    out += _table(
        "sanet",
        "Table 1",
        "partial-query",
        cols,
        [
            ("PCB", (66.3, _, 63.8, _, _, _, _, _, _), holistic),
            ("TransReID", (71.3, _, 68.6, _, _, _, _, _, _), holistic),
            ("FPR", (81.0, _, 76.6, _, _, _, 68.1, _, 61.8), occluded),
            ("HPNet", (85.7, _, 81.8, 72.0, _, 58.9, 68.9, 80.7, 72.2), occluded,
             "Printed 'HPNet (ICME2018)'; the reference list gives ICME 2020. SANet's baseline."),
            ("LKWS", (85.7, 93.7, _, 80.7, 88.2, _, _, _, _), occluded),
            ("ASAN", (86.8, 93.5, 78.8, 81.7, 88.3, 85.9, 71.4, 81.9, 72.5), occluded),
            ("PAT", (88.0, 92.3, _, _, _, _, _, _, _), occluded),
            ("FRT", (88.2, 93.2, _, 73.0, 87.0, _, _, _, _), occluded),
            ("DSR", (53.7, 72.3, _, _, _, _, 55.5, 68.0, _), partial,
             "Differs from the DSR numbers quoted by VPM/PPCL (50.7/70.0, 58.8/67.2)."),
            ("VPM", (67.7, 83.6, _, _, _, _, 67.2, 76.5, _), partial,
             {"Partial-REID": "Mixes VPM (Bilateral) R-1 with VPM (Top) R-3 from VPM's Table 2.",
              "Partial-iLIDS-P": "VPM (Top) on Partial-iLIDS in VPM's Table 2."}),
            ("STNReID", (66.7, 80.3, _, _, _, _, 54.6, 71.3, _), partial,
             "STNReID (PM); its Partial-iLIDS numbers are listed under Partial-iLIDS-P."),
            ("PMN", (76.7, 79.0, _, _, _, _, 62.2, 74.8, _), partial),
            ("FSA", (73.7, 82.7, _, _, _, _, 68.9, 82.4, _), partial),
            ("PPCL", (83.7, 88.7, _, _, _, _, 71.4, 85.7, _), partial,
             "These are PPCL+ in PPCL's Table 2."),
            ("SANet", (88.7, 92.3, 81.5, 84.9, 89.1, 86.5, 74.8, 84.0, 77.3), partial),
        ],
    )
    # Table 2: holistic Market-1501 / DukeMTMC, Rank-1 mAP.
    out += _table(
        "sanet",
        "Table 2",
        "holistic",
        _cols(("Market-1501", "DukeMTMC-reID"), ("R-1", "mAP")),
        [
            ("DSR", (83.5, 64.2, _, _)),
            ("VPM", (93.0, 80.8, 83.6, 72.6), {}, "VPM at gamma = 1.0 in VPM's Table 1."),
            ("PGFA", (91.2, 76.8, 82.6, 65.5)),
            ("STNReID", (93.8, 84.9, _, _)),
            ("SANet", (93.7, 80.1, 85.5, 67.1)),
        ],
    )
    # Table 3: components, on Partial-iLIDS-P.  Sec. 4.4 prose: +3.4/+3.1, +1.6/+1.0 and
    # "+0.7%/+1.0%" for the last step although 74.8 - 73.9 = 0.9.
    out += _table(
        "sanet",
        "Table 3",
        "partial-query",
        _cols(("Partial-iLIDS-P",), ("R-1", "R-3", "R-5", "mAP")),
        [
            ("HPNet", (68.9, 80.7, 82.4, 72.2), {"afe": "none", "mfe": "local"},
             "Baseline: ResNet-50 with four local (part) branches."),
            ("+ Global Branch", (72.3, 81.5, 85.7, 75.3), {"afe": "none", "mfe": "local+global"}),
            ("+ Fixed FE", (73.9, 79.0, 83.2, 76.3), {"afe": "fixed", "mfe": "local+global"},
             "All scale paths active (static multi-scale)."),
            ("SANet", (74.8, 84.0, 84.9, 77.3), {"afe": "adaptive", "mfe": "local+global"},
             "The prose claims +0.7 R-1 over '+ Fixed FE'; the table gives 74.8 - 73.9 = 0.9."),
        ],
    )
    # Table 4: AFE depth (left) and cell base operation (right).  Dataset not printed;
    # the ablations of Sec. 4.4 run on Partial-iLIDS-P and the default cell (5 layers,
    # 3x3) equals SANet's Partial-iLIDS-P R-1/mAP in Tables 1 and 3.
    t4_note = "Dataset not printed; Partial-iLIDS-P per Sec. 4.4 (default cell equals Table 1)."
    out += _table(
        "sanet",
        "Table 4",
        "partial-query",
        _cols(("Partial-iLIDS-P",), ("R-1", "mAP")),
        [
            ("SANet", (74.8, 76.8), {"afe_layers": 3}),
            ("SANet", (74.8, 77.3), {"afe_layers": 5}),
            ("SANet", (72.3, 75.2), {"afe_layers": 7}),
            ("SANet", (73.1, 75.9), {"cell_op": "conv1x1"}),
            ("SANet", (74.8, 77.3), {"cell_op": "conv3x3"}),
            ("SANet", (73.1, 75.6), {"cell_op": "conv5x5"}),
        ],
        note=t4_note,
    )
    return out


# --------------------------------------------------------------------------- Bag of Tricks


def _bag_of_tricks() -> list[Reported]:
    # Market-1501 Rank-1 / mAP as each trick is added to the standard baseline ("Baseline-S").
    # The paper's text is not in the project's paper set; the values are those of the
    # project's notes (reference.md Sec. 3), the table number that of the CVPRW paper.
    rows = [
        ("Baseline-S", 87.7, 74.0, {}),
        ("+warmup", 88.7, 75.2, {"warmup": True}),
        ("+REA", 91.3, 79.3, {"warmup": True, "random_erasing": True}),
        ("+LS", 91.4, 80.3, {"warmup": True, "random_erasing": True, "label_smooth": True}),
        ("+stride=1", 92.0, 81.7,
         {"warmup": True, "random_erasing": True, "label_smooth": True, "last_stride": 1}),
        ("+BNNeck", 94.1, 85.7,
         {"warmup": True, "random_erasing": True, "label_smooth": True, "last_stride": 1,
          "bnneck": True}),
    ]
    return [
        Reported(
            "bag-of-tricks",
            "Table 1",
            method,
            "Market-1501",
            "holistic",
            {"R-1": r1, "mAP": m_ap},
            {"tricks_cumulative": True, **setting},
            "Tricks are cumulative (each row adds one to the row above).",
        )
        for method, r1, m_ap, setting in rows
    ]


REPORTED: tuple[Reported, ...] = tuple(_vpm() + _stnreid() + _ppcl() + _sanet() + _bag_of_tricks())


# --------------------------------------------------------------------------- queries


def _normalise_table(table: Union[str, int]) -> str:
    if isinstance(table, bool) or not isinstance(table, (str, int)):
        raise TypeError(f"table must be a string like 'Table 2' or an int like 2, got {table!r}")
    text = str(table).strip()
    if re.fullmatch(r"\d+[a-z]?", text):
        return f"Table {text}"
    return text


def _check_choice(kind: str, given: str, accepted: Sequence[str], scope: str) -> None:
    if given not in accepted:
        raise ValueError(f"unknown {kind} {given!r}{scope}; {_accepted(accepted)}")


def reported(
    paper: str | None = None,
    table: Union[str, int, None] = None,
    method: str | None = None,
    dataset: str | None = None,
    protocol: str | None = None,
) -> list[Reported]:
    """The reported entries matching every given filter, in the papers' order.

    ``table`` accepts ``"Table 2"``, ``"2"`` or ``2`` (and ``"1b"`` for PPCL's
    sub-tables).  A filter value that exists nowhere in scope (unknown paper key, a
    table the paper does not have, a misspelt method or dataset) raises
    ``ValueError`` listing the accepted values; valid values that simply do not occur
    together give an empty list.
    """
    pool: Sequence[Reported] = REPORTED
    if paper is not None:
        _check_choice("paper", paper, list(PAPERS), "")
        pool = [r for r in pool if r.paper == paper]
    scope = f" for paper {paper!r}" if paper is not None else ""
    if table is not None:
        table = _normalise_table(table)
        _check_choice("table", table, list(dict.fromkeys(r.table for r in pool)), scope)
        pool = [r for r in pool if r.table == table]
    if dataset is not None:
        _check_choice("dataset", dataset, DATASETS, "")
        pool = [r for r in pool if r.dataset == dataset]
    if protocol is not None:
        _check_choice("protocol", protocol, list(PROTOCOLS), "")
        pool = [r for r in pool if r.protocol == protocol]
    if method is not None:
        scoped = REPORTED if paper is None else [r for r in REPORTED if r.paper == paper]
        _check_choice("method", method, list(dict.fromkeys(r.method for r in scoped)), scope)
        pool = [r for r in pool if r.method == method]
    return list(pool)


def lookup(
    paper: str,
    table: Union[str, int],
    method: str,
    dataset: str,
    **setting: Any,
) -> Reported:
    """Exactly one entry, narrowed by ``setting`` values (e.g. ``gamma=0.5``).

    Raises ``LookupError`` naming the candidates when zero or several entries match.
    """
    matches = [
        r
        for r in reported(paper=paper, table=table, method=method, dataset=dataset)
        if all(k in r.setting and r.setting[k] == v for k, v in setting.items())
    ]
    if len(matches) != 1:
        where = f"{paper!r} {_normalise_table(table)!r} {method!r} on {dataset!r} with {setting!r}"
        candidates = reported(paper=paper, table=table, method=method, dataset=dataset)
        options = [dict(r.setting) for r in candidates]
        raise LookupError(
            f"{len(matches)} reported entries match {where}; settings available: {options}"
        )
    return matches[0]


def reported_frame(
    paper: str | None = None,
    table: Union[str, int, None] = None,
    method: str | None = None,
    dataset: str | None = None,
    protocol: str | None = None,
    *,
    long: bool = False,
) -> "pd.DataFrame":
    """The matching entries (same filters as :func:`reported`) as a pandas DataFrame.

    Wide (default): one row per entry with columns ``paper, table, method, dataset,
    protocol``, one column per metric present (``R-1, R-3, R-5, R-10, mAP, score``,
    NaN where not reported), one column per setting key, ``note`` and ``source``
    (e.g. ``"VPM (CVPR'19) Table 2, reported"``).  ``long=True``: one row per
    (entry, metric) with ``metric`` and ``value`` columns instead, for plotting.
    """
    import pandas as pd

    entries = reported(paper=paper, table=table, method=method, dataset=dataset, protocol=protocol)
    keys = ["paper", "table", "method", "dataset", "protocol"]
    metric_cols = [m for m in METRICS if any(m in r.metrics for r in entries)]
    setting_cols = list(dict.fromkeys(k for r in entries for k in r.setting))
    records = []
    for r in entries:
        base = {k: getattr(r, k) for k in keys}
        settings = {k: r.setting.get(k) for k in setting_cols}
        tail = {"note": r.note, "source": r.source}
        if long:
            for m, v in r.metrics.items():
                records.append({**base, "metric": m, "value": v, **settings, **tail})
        else:
            values = {m: r.metrics.get(m, math.nan) for m in metric_cols}
            records.append({**base, **values, **settings, **tail})
    columns = keys + (["metric", "value"] if long else metric_cols) + setting_cols + ["note", "source"]
    return pd.DataFrame.from_records(records, columns=columns)
