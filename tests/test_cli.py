import subprocess
import sys

import reidlib
from reidlib.cli import main


def test_version_string():
    parts = reidlib.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)


def test_help_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "reidlib", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "bench" in out.stdout and "info" in out.stdout


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert reidlib.__version__ in out and "device" in out


def test_unknown_benchmark(capsys):
    assert main(["bench", "no-such-bench"]) == 2
    assert "unknown benchmark 'no-such-bench'" in capsys.readouterr().err


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_synth_overwrite_replaces_the_tree(tmp_path, capsys):
    out = tmp_path / "ds"
    base = ["synth", "--out", str(out), "--workers", "1", "--quiet", "--limit", "2"]
    assert main(base + ["--preset", "tiny"]) == 0
    old = _files(out)
    assert any(f.startswith("bounding_box_train/") for f in old)
    # without --overwrite a non-empty target keeps failing, naming the folder
    capsys.readouterr()
    assert main(base + ["--preset", "partial-reid-like"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "not empty" in err
    assert _files(out) == old
    # --overwrite replaces: no file of the old preset remains
    assert main(base + ["--preset", "partial-reid-like", "--overwrite"]) == 0
    new = _files(out)
    assert not set(old) - {"synthpeds.json"} & set(new)
    assert not any(f.split("/")[0].startswith(("bounding_box", "query")) for f in new)
    assert {f.split("/")[0] for f in new} == {"partial_body_images", "occluded_body_images", "whole_body_images",
                                              "partial_body_images_masks", "occluded_body_images_masks",
                                              "whole_body_images_masks", "synthpeds.json"}


def test_synth_overwrite_refuses_a_foreign_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["synth", "--preset", "tiny", "--out", str(out), "--quiet", "--limit", "1", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "synthpeds.json" in err and "refusing to delete" in err
    assert (out / "notes.txt").read_text() == "keep me"
