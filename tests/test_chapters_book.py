"""The book profile's chapter plumbing: the holistic test subset and how a later stage names an
earlier model's weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from reidlib.chapters import Chapter, TrainRecord, holistic_test_subset
from reidlib.config import resolve_run
from reidlib.data.base import Record as ImageRecord


class _DS:
    def __init__(self):
        self.train = [ImageRecord("t0.png", 1, 0)]
        # ids 3, 1, 2 in the query; the gallery adds distractors (pid 0) and junk (-1)
        self.query = [ImageRecord(f"q{i}.png", pid, 0) for i, pid in enumerate((3, 1, 2, 1))]
        self.gallery = ([ImageRecord(f"g{i}.png", pid, 1) for i, pid in enumerate((1, 2, 3, 3, 1))]
                        + [ImageRecord(f"d{i}.png", 0, 1) for i in range(6)] + [ImageRecord("j.png", -1, 1)])


def test_holistic_test_subset_keeps_the_smallest_ids_and_a_share_of_distractors():
    ds = _DS()
    sub = holistic_test_subset(ds, 2)
    assert [r.pid for r in sub.query] == [1, 2, 1]
    # ids 1 and 2, then 2/3 of the 7 distractor + junk images (the first 5)
    assert [r.path for r in sub.gallery] == ["g0.png", "g1.png", "g4.png", "d0.png", "d1.png", "d2.png", "d3.png", "d4.png"]
    assert sub.train is ds.train and len(ds.query) == 4, "the source and its training split are untouched"
    assert len(holistic_test_subset(ds, 10).gallery) == len(ds.gallery)
    with pytest.raises(ValueError, match="n_ids=0"):
        holistic_test_subset(ds, 0)


def test_input_ref_names_committed_files_relative_to_the_project(tmp_path):
    ch = Chapter("05_stnreid", resolve_run("book", "cpu", None, 0))
    f = ch.root / "weights" / "book" / "05_stnreid" / "stage1-Ep1.safetensors"
    ch.trained["stage1-Ep1"] = TrainRecord("stage1-Ep1", f, True, 1.0, 0.0)
    assert ch.input_ref("stage1-Ep1") == "weights/book/05_stnreid/stage1-Ep1.safetensors"
    ch.trained["run"] = TrainRecord("run", tmp_path / "run-abc", False, 1.0, 0.0)
    assert ch.input_ref("run") == str(tmp_path / "run-abc")
    assert Path(ch.input_ref("run")).is_absolute()
