"""The chapter-support module and the locator check it serves."""

from __future__ import annotations

import pytest
import torch

from reidlib.chapters import Chapter, chapter_data
from reidlib.config import resolve_run
from reidlib.data.partial import side_box, side_crop
from reidlib.eval.locator import person_region_labels


def _slow_person_labels(crop_box, person_box, grid, fs):
    """Pixel by pixel: the centre of feature pixel (i, j) in image pixels, its place in the person
    box, and the region (row-major) whose rectangle of that box holds it."""
    bx0, by0, bx1, by1 = person_box
    x0, y0, x1, y1 = crop_box
    lab = torch.zeros(fs, dtype=torch.long)
    inside = torch.zeros(fs, dtype=torch.bool)
    for i in range(fs[0]):
        for j in range(fs[1]):
            y = y0 + (i + 0.5) * (y1 - y0) / fs[0]
            x = x0 + (j + 0.5) * (x1 - x0) / fs[1]
            v, u = (y - by0) / (by1 - by0), (x - bx0) / (bx1 - bx0)
            inside[i, j] = 0 <= v < 1 and 0 <= u < 1
            if inside[i, j]:
                lab[i, j] = int(v * grid[0]) * grid[1] + int(u * grid[1])
    return lab, inside


@pytest.mark.parametrize("crop_box, person_box, grid", [
    ((0, 0, 64, 77), (8, 10, 56, 120), (6, 1)),
    ((0, 30, 64, 128), (8, 10, 56, 120), (6, 1)),
    ((5, 0, 40, 128), (0, 0, 64, 128), (3, 2)),
    ((0, 0, 64, 128), (20, 40, 44, 100), (4, 2)),
])
def test_person_region_labels_equal_the_slow_reference(crop_box, person_box, grid):
    fs = (16, 8)
    lab, inside = person_region_labels(crop_box, person_box, grid, fs)
    ref_lab, ref_inside = _slow_person_labels(crop_box, person_box, grid, fs)
    assert torch.equal(inside, ref_inside)
    assert torch.equal(lab[inside], ref_lab[inside])


def test_side_crops_keep_the_named_strip():
    img = torch.arange(10 * 4 * 3).reshape(10, 4, 3).numpy()
    assert side_box(4, 10, "top", 0.6) == (0, 0, 4, 6)
    assert side_box(4, 10, "bottom", 0.6) == (0, 4, 4, 10)
    assert side_box(4, 10, "left", 0.5) == (0, 0, 2, 10)
    assert side_box(4, 10, "right", 0.25) == (3, 0, 4, 10)
    assert (side_crop(img, "bottom", 0.3) == img[7:]).all()
    assert side_crop(img, "top", 1.0) is img
    with pytest.raises(ValueError, match="accepted sides"):
        side_box(4, 10, "middle", 0.5)


def test_chapter_data_and_cached_evaluators(tmp_path, monkeypatch):
    cfg = resolve_run("smoke", "cpu", None, 0)
    data = chapter_data(cfg, tests=("partial-reid",))
    assert data.names == {"market": "SynthPeds smoke", "partial-reid": "partial-reid-like"}
    assert data.train_spec == "synthpeds:smoke" and data["market"] is data.train
    with pytest.raises(ValueError, match="unknown test sets"):
        chapter_data(cfg, tests=("partial-x",))
    from reidlib.models.baseline import Baseline

    ch = Chapter("99_test", cfg, data)
    model = ch.add_model("b", Baseline(4, backbone="resnet10s", pretrained=False))
    ev = ch.evaluator("b", "partial-reid")
    assert ch.evaluator("b", "partial-reid") is ev  # keyed by the names, not by object ids
    assert ch.evaluator("b", "partial-reid", test_mode="pad") is not ev
    assert ev.model is model


def test_with_test_ids_cuts_the_holistic_split_and_survives_other_seeds():
    cfg = resolve_run("smoke", "cpu", None, 0)
    data = chapter_data(cfg, tests=("partial-reid",))
    sub = data.with_test_ids(10)
    pids = sorted({r.pid for r in data.train.query if r.pid > 0})
    assert {r.pid for r in sub.train.query} == set(pids[:10])
    assert {r.pid for r in sub.train.gallery if r.pid > 0} <= set(pids[:10])
    assert sub.names["market"] == "SynthPeds smoke (10 test ids)" and sub.tests["partial-reid"] is data.tests["partial-reid"]
    assert len(data.train.query) > len(sub.train.query)  # the chapter's own data is untouched
    other = sub.with_seed(3)
    assert other.test_ids == 10 and len({r.pid for r in other.train.query}) == 10
    assert other.names["market"].endswith("(10 test ids) (test seed 3)")
    from reidlib.models.baseline import Baseline

    ch = Chapter("99_test", cfg, data)
    model = ch.add_model("b", Baseline(4, backbone="resnet10s", pretrained=False))
    view = ch.with_test_ids(10)
    assert view.model("b") is model and view.data.train is not data.train
    assert len(view.evaluator("b", "market").dataset.query) == len(sub.train.query)
    assert len(view.on_seed(3).data.train.query) == len(other.train.query)
