"""SynthPeds writers: real datasets' layouts and names, masks beside images, determinism, errors."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidlib.data.synthpeds import SynthPeds
from reidlib.data.writers import (
    JPEG_QUALITY, LAYOUTS, mask_path_for, market_name, write_dataset, write_occluded_reid, write_partial_ilids,
    write_partial_reid,
)

MARKET_RE = re.compile(r"^(-1|\d{4})_c([1-6])s([1-6])_(\d{6})_(\d{2})\.jpg$")


def test_mask_path_rule():
    assert mask_path_for("M/bounding_box_train/0002_c1s1_000151_01.jpg") == Path("M/bounding_box_train_masks/0002_c1s1_000151_01.png")
    assert mask_path_for("/d/O/occluded_body_images/001/001_01.tif") == Path("/d/O/occluded_body_images_masks/001/001_01.png")
    assert mask_path_for("P/Probe/007.jpg") == Path("P/Probe_masks/007.png")
    assert mask_path_for("x/other/a.jpg") == Path("x/other_masks/a.png")
    assert market_name(-1, 0, 3).startswith("-1_c1s")
    assert MARKET_RE.match(market_name(12, 5, 9999))


@pytest.fixture(scope="module")
def tiny_market(tmp_path_factory):
    ds = SynthPeds("tiny")
    out = tmp_path_factory.mktemp("market")
    man = write_dataset(ds, out, workers=1, progress=False, overwrite=True)
    return ds, out, man


def test_market_layout_names_and_counts(tiny_market):
    ds, out, man = tiny_market
    expect = {"bounding_box_train": ds.train, "query": ds.query, "bounding_box_test": ds.gallery + ds.junk}
    for folder, recs in expect.items():
        files = sorted(p.name for p in (out / folder).iterdir())
        assert len(files) == len(recs) == man["counts"][folder]
        parsed = [MARKET_RE.match(f) for f in files]
        assert all(parsed), [f for f, m in zip(files, parsed) if not m]
        got = Counter((int(m.group(1)), int(m.group(2)) - 1) for m in parsed)
        assert got == Counter((r.pid, r.camid) for r in recs)
    test_pids = [int(MARKET_RE.match(p.name).group(1)) for p in (out / "bounding_box_test").iterdir()]
    assert test_pids.count(-1) == len(ds.junk) > 0 and test_pids.count(0) == sum(r.pid == 0 for r in ds.gallery) > 0
    m = json.loads((out / "synthpeds.json").read_text())
    assert (m["preset"], m["seed"], m["version"], m["layout"], m["jpeg_quality"]) == ("tiny", 0, ds.version, "market1501", JPEG_QUALITY)


def test_masks_beside_images_match_render(tiny_market):
    ds, out, _ = tiny_market
    for i in (0, 7, 20):
        r = ds.train[i]
        name = market_name(r.pid, r.camid, i)
        img_p = out / "bounding_box_train" / name
        mask = np.asarray(Image.open(mask_path_for(img_p)))
        np.testing.assert_array_equal(mask, ds.read_mask(r.path))
        jpg = np.asarray(Image.open(img_p).convert("RGB")).astype(int)
        assert jpg.shape == (128, 64, 3)
        assert np.abs(jpg - ds.read_image(r.path).astype(int)).mean() < 4.0  # JPEG q95


def test_parallel_write_is_byte_identical(tiny_market, tmp_path):
    ds, out, _ = tiny_market
    write_dataset(ds, tmp_path, workers=2, progress=False)
    a = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "synthpeds.json")
    b = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and p.name != "synthpeds.json")
    assert a == b and len(a) == 2 * (32 + 38 + 12)
    assert all((out / p).read_bytes() == (tmp_path / p).read_bytes() for p in a)


def test_readers_read_the_market_layout(tiny_market):
    datasets = pytest.importorskip("reidlib.data.datasets")
    ds, out, _ = tiny_market
    m = datasets.Market1501(out, check_counts=False)
    assert (len(m.train), len(m.query), len(m.gallery)) == (len(ds.train), len(ds.query), len(ds.gallery))
    assert sorted((r.pid, r.camid) for r in m.gallery) == sorted((r.pid, r.camid) for r in ds.gallery)
    assert m.read_mask(m.train[0].path) is not None


def test_partial_reid_layout(tmp_path):
    ds = SynthPeds("partial-reid-like", size="smoke")
    man = write_partial_reid(ds, tmp_path, progress=False, limit=10)
    assert man["counts"] == {"partial_body_images": 10, "occluded_body_images": 10, "whole_body_images": 10}
    names = sorted(p.name for p in (tmp_path / "partial_body_images").iterdir())
    assert names[:6] == ["001_01.jpg", "001_02.jpg", "001_03.jpg", "001_04.jpg", "001_05.jpg", "002_01.jpg"]
    assert man["pid_map"]["1"] == ds.query[0].pid and len(man["pid_map"]) == 60
    for k in range(3):  # partial crops keep their native size; the holistic frames are 128x64
        part = Image.open(tmp_path / "partial_body_images" / names[k])
        x0, y0, x1, y1 = ds.ground_truth("query", k)["crop_box"]
        assert part.size == (x1 - x0, y1 - y0)
        assert Image.open(tmp_path / "occluded_body_images" / names[k]).size == (64, 128)
        assert Image.open(mask_path_for(tmp_path / "partial_body_images" / names[k])).size == part.size


def test_partial_ilids_and_occluded_layouts(tmp_path):
    il = SynthPeds("partial-ilids-like", size="smoke")
    man = write_partial_ilids(il, tmp_path / "dsr", progress=False, limit=3)
    assert sorted(p.name for p in (tmp_path / "dsr" / "Probe").iterdir()) == ["001.jpg", "002.jpg", "003.jpg"]
    assert sorted(p.name for p in (tmp_path / "dsr" / "Gallery").iterdir()) == ["001.jpg", "002.jpg", "003.jpg"]
    assert (tmp_path / "dsr" / "Probe_masks" / "001.png").is_file()
    write_partial_ilids(il, tmp_path / "reid", variant="reid", progress=False, limit=2)
    assert sorted(p.name for p in (tmp_path / "reid" / "partial_body_images").iterdir()) == ["001.jpg", "002.jpg"]
    oc = SynthPeds("occluded-reid-like", size="smoke")
    write_occluded_reid(oc, tmp_path / "occ", progress=False, limit=6)
    files = sorted(str(p.relative_to(tmp_path / "occ")) for p in (tmp_path / "occ" / "occluded_body_images").rglob("*.tif"))
    assert files[:6] == [f"occluded_body_images/{n:03d}/{n:03d}_{k:02d}.tif" for n, k in [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 1)]]
    assert (tmp_path / "occ" / "occluded_body_images_masks" / "001" / "001_01.png").is_file()
    with pytest.raises(ValueError, match="one probe and one gallery image per identity"):
        write_partial_ilids(SynthPeds("partial-reid-like", size="smoke"), tmp_path / "bad", progress=False)


def test_writer_errors(tmp_path):
    ds = SynthPeds("tiny")
    with pytest.raises(ValueError, match="accepted layouts: " + ", ".join(LAYOUTS)):
        write_dataset(ds, tmp_path / "a", layout="duke")
    with pytest.raises(ValueError, match="use layout 'market1501'"):
        write_dataset(ds, tmp_path / "a", layout="partial-reid")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        write_dataset(ds, f, progress=False)
    with pytest.raises(PermissionError, match="cannot write to output folder .*file/sub"):
        write_dataset(ds, f / "sub", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(ds, tmp_path / "full", progress=False)


def test_cli_synth(tmp_path, capsys):
    from reidlib.cli import main

    assert main(["synth", "--preset", "tiny", "--out", str(tmp_path / "o"), "--workers", "1", "--quiet", "--limit", "2"]) == 0
    assert "wrote 6 images" in capsys.readouterr().out
    assert main(["synth", "--preset", "nope", "--out", str(tmp_path / "p"), "--quiet"]) == 2
    assert "accepted presets: tiny, smoke" in capsys.readouterr().err


def test_overwrite_replaces_only_a_written_tree(tmp_path):
    ds = SynthPeds("tiny")
    out = tmp_path / "t"
    write_dataset(ds, out, progress=False, limit=2)
    (out / "bounding_box_train" / "stale.jpg").write_bytes(b"x")  # a file of the old tree, deleted with it
    man = write_dataset(ds, out, progress=False, limit=1, overwrite=True)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "bounding_box_train/stale.jpg" not in files
    assert len([f for f in files if not f.endswith(".png") and f != "synthpeds.json"]) == sum(man["counts"].values())
    assert json.loads((out / "synthpeds.json").read_text())["complete"] is True
    # anything the writers do not write makes the folder foreign: refused, naming it, nothing deleted
    (out / "README.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds 'README.txt'.*refusing to delete"):
        write_dataset(ds, out, progress=False, overwrite=True)
    assert (out / "README.txt").exists() and (out / "bounding_box_train").is_dir()
    # a manifest that is not SynthPeds' is refused too
    other = tmp_path / "other"
    other.mkdir()
    (other / "synthpeds.json").write_text('{"generator": "someone else"}')
    with pytest.raises(FileExistsError, match="is not a SynthPeds manifest"):
        write_dataset(ds, other, progress=False, overwrite=True)
    assert (other / "synthpeds.json").exists()
