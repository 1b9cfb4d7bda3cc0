"""reidlib.data.datasets: readers on tiny trees with the real names, errors, masks, factory."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidlib.data.base import Record
from reidlib.data.datasets import (
    DATASETS,
    DukeMTMCreID,
    Market1501,
    OccludedDuke,
    OccludedREID,
    PartialiLIDS,
    PartialREID,
    build_dataset,
    mask_path_for,
)


def _jpg(path: Path, color=(10, 20, 30), size=(8, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=95)


def _tree(root: Path, files: dict[str, list[str]]):
    for folder, names in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in names:
            _jpg(root / folder / n)


MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c6s3_085567_02.jpg", "Thumbs.db"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c5s1_015567_00.jpg"],
    "bounding_box_test": ["-1_c1s1_000401_03.jpg", "0000_c3s1_000551_05.jpg", "0001_c4s1_000551_01.jpg", "0003_c6s2_000100_01.jpg"],
}


def _market(tmp_path, name="Market-1501-v15.09.15"):
    d = tmp_path / name
    _tree(d, {k: [n for n in v if n.endswith(".jpg")] for k, v in MARKET.items()})
    (d / "bounding_box_train" / "Thumbs.db").write_bytes(b"\x00junk")
    return d


def test_market_parse_exact(tmp_path):
    d = _market(tmp_path)
    ds = Market1501(d, check_counts=False)
    assert [(Path(r.path).name, r.pid, r.camid) for r in ds.train] == [
        ("0002_c1s1_000451_03.jpg", 2, 0), ("0002_c2s1_000551_01.jpg", 2, 1), ("0007_c6s3_085567_02.jpg", 7, 5)]
    assert [(r.pid, r.camid) for r in ds.query] == [(1, 0), (3, 4)]
    # junk (-1) dropped, distractor (0) kept
    assert sorted((r.pid, r.camid) for r in ds.gallery) == [(0, 2), (1, 3), (3, 5)]
    path, pid, camid = ds.train[0]
    assert isinstance(ds.train[0], Record) and Path(path).is_file()
    assert ds.num_train_pids == 2 and ds.relabel_train() == {2: 0, 7: 1}
    img = ds.read_image(ds.query[0].path)
    assert img.shape == (16, 8, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("layout", [("Market-1501-v15.09.15",), ("Market-1501",), ("market1501", "Market-1501-v15.09.15")])
def test_market_parent_root(tmp_path, layout):
    d = tmp_path.joinpath(*layout)
    _tree(d, {k: [n for n in v if n.endswith(".jpg")] for k, v in MARKET.items()})
    ds = Market1501(tmp_path, check_counts=False)
    assert ds.dataset_dir == d
    assert len(ds.train) == 3 and len(ds.gallery) == 3


def test_count_warning_names_split_found_expected(tmp_path):
    d = _market(tmp_path)
    with pytest.warns(UserWarning) as rec:
        Market1501(d)
    msgs = [str(w.message) for w in rec]
    assert any("'train' has 3 images / 2 ids, expected 12936 images / 751 ids" in m for m in msgs)
    assert any("'gallery' has 3 images / 3 ids, expected 15913 images / 751 ids" in m for m in msgs)

    class Tiny(Market1501):
        expected = {"train": (3, 2), "query": (2, 2), "gallery": (3, 3)}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Tiny(d)  # complete copy: no warning


def test_market_bad_name_and_camera(tmp_path):
    d = _market(tmp_path)
    _jpg(d / "query" / "person_17.jpg")
    with pytest.raises(ValueError) as e:
        Market1501(d, check_counts=False)
    assert str(d / "query" / "person_17.jpg") in str(e.value) and "_c<camera>" in str(e.value)
    (d / "query" / "person_17.jpg").unlink()
    _jpg(d / "query" / "0005_c7s1_000001_00.jpg")
    with pytest.raises(ValueError, match=r"c7.*c1\.\.c6"):
        Market1501(d, check_counts=False)


def test_missing_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        Market1501(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value) and "bounding_box_train/" in str(e.value)
    (tmp_path / "Market-1501" / "query").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as e:
        Market1501(tmp_path)
    assert str(tmp_path) in str(e.value) and "bounding_box_test/" in str(e.value) and "Market-1501-v15.09.15" in str(e.value)


def test_corrupt_image_names_file(tmp_path):
    d = _market(tmp_path)
    bad = d / "query" / "0009_c2s1_000001_00.jpg"
    bad.write_bytes(b"not a jpeg")
    ds = Market1501(d, check_counts=False)
    rec = [r for r in ds.query if r.pid == 9][0]
    with pytest.raises(OSError, match=str(bad).replace("\\", "\\\\")):
        ds.read_image(rec.path)


def test_duke_and_occluded_duke(tmp_path):
    files = {
        "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c8_f0000001.jpg"],
        "query": ["0005_c1_f0000100.jpg"],
        "bounding_box_test": ["0005_c3_f0000200.jpg", "0010_c7_f0000300.jpg"],
    }
    _tree(tmp_path / "DukeMTMC-reID", files)
    _tree(tmp_path / "Occluded_Duke", files)
    for cls in (DukeMTMCreID, OccludedDuke):
        ds = cls(tmp_path, check_counts=False)
        assert [(r.pid, r.camid) for r in ds.train] == [(1, 1), (1, 7)]
        assert [(r.pid, r.camid) for r in ds.query] == [(5, 0)]
        assert [(r.pid, r.camid) for r in ds.gallery] == [(5, 2), (10, 6)]
    assert OccludedDuke(tmp_path, check_counts=False).dataset_dir.name == "Occluded_Duke"
    _jpg(tmp_path / "DukeMTMC-reID" / "query" / "0005_c9_f0000100.jpg")
    with pytest.raises(ValueError, match="c1..c8"):
        DukeMTMCreID(tmp_path, check_counts=False)


@pytest.mark.parametrize("dirname", ["Partial-REID", "Partial_REID"])
def test_partial_reid(tmp_path, dirname):
    _tree(tmp_path / dirname, {
        "partial_body_images": ["001_01.jpg", "001_02.jpg", "002_01.jpg"],
        "occluded_body_images": ["001_01.jpg", "003_01.jpg"],
        "whole_body_images": ["001_01.jpg", "002_01.jpg", "003_01.jpg"],
    })
    ds = PartialREID(tmp_path, check_counts=False)
    assert ds.train == []
    assert [(Path(r.path).parent.name, r.pid, r.camid) for r in ds.query] == [
        ("partial_body_images", 1, 0), ("partial_body_images", 1, 0), ("partial_body_images", 2, 0)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(1, 1), (2, 1), (3, 1)]
    occ = PartialREID(tmp_path, query="occluded", check_counts=False)
    assert [(Path(r.path).parent.name, r.pid) for r in occ.query] == [("occluded_body_images", 1), ("occluded_body_images", 3)]
    with pytest.raises(ValueError, match="'partial'.*'occluded'"):
        PartialREID(tmp_path, query="holistic")
    with pytest.warns(UserWarning) as rec:
        PartialREID(tmp_path)
    msgs = sorted(str(w.message) for w in rec)
    assert len(msgs) == 2
    assert "'gallery' has 3 images / 3 ids, expected 300 images / 60 ids" in msgs[0]
    assert "'query' has 3 images / 2 ids, expected 300 images / 60 ids" in msgs[1]


def test_partial_reid_bad_name(tmp_path):
    _tree(tmp_path, {"partial_body_images": ["001_01.jpg", "img_a.jpg"], "whole_body_images": ["001_01.jpg"]})
    with pytest.raises(ValueError) as e:
        PartialREID(tmp_path, check_counts=False)
    assert str(tmp_path / "partial_body_images" / "img_a.jpg") in str(e.value) and "001_01.jpg" in str(e.value)


@pytest.mark.parametrize("layout", [("Probe", "Gallery"), ("partial_body_images", "whole_body_images")])
@pytest.mark.parametrize("dirname", ["Partial-iLIDS", "Partial_iLIDS"])
def test_partial_ilids_layouts(tmp_path, layout, dirname):
    _tree(tmp_path / dirname, {layout[0]: ["001.jpg", "002.jpg"], layout[1]: ["001.jpg", "002.jpg"]})
    ds = PartialiLIDS(tmp_path, check_counts=False)
    assert ds.layout == layout
    assert [(Path(r.path).parent.name, r.pid, r.camid) for r in ds.query] == [(layout[0], 1, 0), (layout[0], 2, 0)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(1, 1), (2, 1)]


def test_partial_ilids_missing_layout_message(tmp_path):
    (tmp_path / "Probe").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        PartialiLIDS(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "Gallery/" in msg and "whole_body_images/" in msg


def test_occluded_reid_nested_tif(tmp_path):
    d = tmp_path / "Occluded_REID"
    for sub in ("occluded_body_images", "whole_body_images"):
        for pid in ("001", "002"):
            for k in ("01", "02"):
                p = d / sub / pid / f"{pid}_{k}.tif"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 16), (1, 2, 3)).save(p)
    ds = OccludedREID(tmp_path, check_counts=False)
    assert [(r.pid, r.camid) for r in ds.query] == [(1, 0), (1, 0), (2, 0), (2, 0)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(1, 1), (1, 1), (2, 1), (2, 1)]
    assert ds.read_image(ds.query[0].path).shape == (16, 8, 3)


def test_masks_parallel_folder(tmp_path):
    d = _market(tmp_path)
    ds = Market1501(d, check_counts=False)
    rec = ds.query[0]
    assert ds.read_mask(rec.path) is None  # no mask folder: None
    mp = mask_path_for(rec.path)
    assert mp == d / "query_masks" / (Path(rec.path).stem + ".png")
    m = np.zeros((16, 8), np.uint8)
    m[2:6] = 1
    m[10:] = 255
    mp.parent.mkdir()
    Image.fromarray(m).save(mp)
    np.testing.assert_array_equal(ds.read_mask(rec.path), m)
    # a corrupt mask names the file
    mp.write_bytes(b"garbage")
    with pytest.raises(OSError, match="query_masks"):
        ds.read_mask(rec.path)


def test_missing_masks_are_named_with_their_expected_path(tmp_path):
    """masks=True (or check_masks) names every image without its mask and where it was expected;
    the training datasets that need masks name the expected file too."""
    from reidlib.data.loader import ImageDataset

    d = _market(tmp_path)
    ds = Market1501(d, check_counts=False)
    assert len(ds.missing_masks()) == 3 + 2 + 3
    with pytest.raises(FileNotFoundError) as e:
        Market1501(d, check_counts=False, masks=True)
    msg = str(e.value)
    img = ds.train[0].path
    assert "8 of 8 images of train/query/gallery have no part mask" in msg
    assert f"{img} -> expected mask {mask_path_for(img)}" in msg and "... and 3 more" in msg
    with pytest.raises(FileNotFoundError, match=str(mask_path_for(img))):
        ImageDataset(ds.train, ds, with_mask=True)[0]
    for r in ds.train:
        mp = ds.mask_path(r.path)
        mp.parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((16, 8), np.uint8)).save(mp)
    ds.check_masks(("train",))  # the training images have theirs now
    with pytest.raises(FileNotFoundError, match=r"(?s)2 of 2 images of query have no part mask.*query_masks"):
        ds.check_masks(("query",))
    with pytest.raises(ValueError, match="unknown split 'val'"):
        ds.check_masks(("val",))
    # a partial set's reader takes the option too; its masks keep the sub-folders of the images
    _tree(tmp_path / "Partial-REID", {"partial_body_images": ["001_01.jpg"], "whole_body_images": ["001_01.jpg"]})
    with pytest.raises(FileNotFoundError, match="partial_body_images_masks"):
        PartialREID(tmp_path / "Partial-REID", check_counts=False, masks=True)


def test_build_dataset(tmp_path):
    d = _market(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = build_dataset(f"market1501:{tmp_path}")
        assert isinstance(ds, Market1501) and ds.dataset_dir == d
        assert isinstance(build_dataset("market", root=d), Market1501)
    _tree(tmp_path / "Partial-REID", {"occluded_body_images": ["001_01.jpg"], "whole_body_images": ["001_01.jpg"]})
    ds = build_dataset(f"partial-reid:{tmp_path}", query="occluded", check_counts=False)
    assert isinstance(ds, PartialREID) and ds.query_kind == "occluded"
    with pytest.raises(ValueError, match="unknown dataset 'cuhk03'.*'market1501'"):
        build_dataset("cuhk03:/x")
    with pytest.raises(ValueError, match="no folder given"):
        build_dataset("market1501")
    with pytest.raises(ValueError, match="synthpeds:<preset>"):
        build_dataset("synthpeds:")
    assert set(DATASETS) == {"market1501", "dukemtmc-reid", "occluded-duke", "partial-reid", "partial-ilids", "occluded-reid"}


# ---------------------------------------------------------------------------------
# ImageDataset / build_loader (reidlib.data.loader) over a reader
# ---------------------------------------------------------------------------------
def test_image_dataset_and_loader(tmp_path):
    import torch
    from torchvision import tv_tensors

    from reidlib.data.loader import ImageDataset, build_loader
    from reidlib.data.transforms import build_test_transform, build_train_transform

    d = _market(tmp_path)
    ds = Market1501(d, check_counts=False)
    raw = ImageDataset(ds.train, ds)
    it = raw[0]
    assert it["image"].dtype == torch.uint8 and it["image"].shape == (3, 16, 8)
    assert (it["pid"], it["camid"], it["index"]) == (2, 0, 0) and "label" not in it
    assert raw.pids == [2, 2, 7]
    tr = ImageDataset(ds.train, ds, build_train_transform((16, 8), pad=2), relabel=ds.relabel_train())
    assert [tr[i]["label"] for i in range(3)] == [0, 0, 1]
    # masks: missing -> clear error; present -> moved with the image
    with pytest.raises(FileNotFoundError, match="0002_c1s1_000451_03.jpg"):
        ImageDataset(ds.train, ds, with_mask=True)[0]
    for r in ds.train:
        mp = mask_path_for(r.path)
        mp.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((16, 8), 2, np.uint8)).save(mp)
    mds = ImageDataset(ds.train, ds, build_train_transform((16, 8), pad=2, random_erasing=1.0), with_mask=True)
    it = mds[1]
    assert isinstance(it["mask"], tv_tensors.Mask) and set(torch.unique(it["mask"]).tolist()) <= {0, 2}
    test = ImageDataset(ds.gallery, ds, build_test_transform((32, 16)))
    dl = build_loader(test, batch_size=2, device="cpu")
    assert not dl.pin_memory
    batches = list(dl)
    assert [b["image"].shape[0] for b in batches] == [2, 1]
    assert torch.cat([b["pid"] for b in batches]).tolist() == [r.pid for r in ds.gallery]
    with pytest.raises(ValueError, match="relabel has no label for pids \\[7\\]"):
        ImageDataset(ds.train, ds, relabel={2: 0})


# ---------------------------------------------------------------------------------
# the readers on SynthPeds written to disk (reidlib.data.writers)
# ---------------------------------------------------------------------------------
def _by_path(reader):
    return {r.path: (split, r) for split in ("train", "query", "gallery") for r in getattr(reader, split)}


def test_readers_on_synthpeds_market_layout(tmp_path):
    from reidlib.data import writers
    from reidlib.data.synthpeds import SynthPeds

    ds = SynthPeds("tiny", size=(64, 32))
    writers.write_market1501(ds, tmp_path / "Market-1501-v15.09.15", progress=False)
    reader = Market1501(tmp_path, check_counts=False)
    got = _by_path(reader)
    jobs, _ = writers.plan(ds, "market1501")
    n_junk = 0
    for job in jobs:
        path = str(tmp_path / "Market-1501-v15.09.15" / job.path)
        src = ds.records(job.split)[job.index]
        if job.split == "junk":
            assert path not in got and src.pid == -1
            n_junk += 1
            continue
        split, rec = got.pop(path)
        assert split == job.split and (rec.pid, rec.camid) == (src.pid, src.camid)
    assert not got and n_junk == len(ds.records("junk")) > 0
    assert sum(r.pid == 0 for r in reader.gallery) == sum(r.pid == 0 for r in ds.gallery) > 0
    # images (JPEG) close to the renders; masks (PNG) exact
    for rec in (reader.query[0], reader.train[5]):
        job = next(j for j in jobs if str(tmp_path / "Market-1501-v15.09.15" / j.path) == rec.path)
        uri = ds.records(job.split)[job.index].path
        img = reader.read_image(rec.path)
        assert img.shape == ds.read_image(uri).shape
        assert np.abs(img.astype(int) - ds.read_image(uri).astype(int)).mean() < 8
        np.testing.assert_array_equal(reader.read_mask(rec.path), ds.read_mask(uri))


@pytest.mark.parametrize("preset, layout, cls", [
    ("partial-reid-like", "partial-reid", PartialREID),
    ("partial-ilids-like", "partial-ilids", PartialiLIDS),
    ("partial-ilids-like", "partial-ilids-reid", PartialiLIDS),
    ("occluded-reid-like", "occluded-reid", OccludedREID),
])
def test_readers_on_synthpeds_partial_layouts(tmp_path, preset, layout, cls):
    from reidlib.data import writers
    from reidlib.data.synthpeds import SynthPeds

    ds = SynthPeds(preset, size=(64, 32))
    dirname = cls.dirnames[0]
    manifest = writers.write_dataset(ds, tmp_path / dirname, layout=layout, progress=False, limit=6)
    pid_map = {int(k): v for k, v in manifest["pid_map"].items()}
    kw = {"query": "occluded"} if preset == "occluded-reid-like" and cls is PartialREID else {}
    reader = cls(tmp_path, check_counts=False, **kw)
    assert len(reader.query) == len(reader.gallery) == 6 and reader.train == []
    jobs, _ = writers.plan(ds, layout)
    where = {str(tmp_path / dirname / j.path): j for j in jobs}
    for split, camid in (("query", 0), ("gallery", 1)):
        for rec in getattr(reader, split):
            job = where[rec.path]
            src = ds.records(job.split)[job.index]
            assert job.split == split and rec.camid == camid
            assert pid_map[rec.pid] == src.pid
    rec = reader.query[0]
    src = ds.records("query")[where[rec.path].index]
    np.testing.assert_array_equal(reader.read_mask(rec.path), ds.read_mask(src.path))
    assert reader.read_image(rec.path).shape == ds.read_image(src.path).shape


def test_market_pid_not_an_integer_names_file_and_form(tmp_path):
    d = _market(tmp_path)
    bad = d / "query" / "12-3_c3.jpg"
    _jpg(bad)
    with pytest.raises(ValueError) as e:
        Market1501(d, check_counts=False)
    msg = str(e.value)
    assert str(bad) in msg and "'12-3' is not an integer" in msg
    assert "0001_c1s1_000151_00.jpg" in msg and r"([-\d]+)_c(\d)" in msg and ">= -1" in msg


@pytest.mark.parametrize("cls", [Market1501, PartialREID, PartialiLIDS, OccludedREID])
def test_root_that_is_a_file_is_reported_as_a_file(tmp_path, cls):
    f = tmp_path / "Market-1501.zip"
    f.write_bytes(b"PK")
    with pytest.raises(NotADirectoryError) as e:
        cls(f)
    assert str(f) in str(e.value) and "is a file" in str(e.value)
    with pytest.raises(NotADirectoryError, match="is a file"):
        build_dataset(f"{cls.name}:{f}")
