"""The notebook conventions of CONTRIBUTING.md, enforced."""

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_book  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PARAMS = {"profile", "device", "data_root", "seed"}


def _toc_files():
    return build_book.toc_files()


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks in notebooks/"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_named_and_listed(nb_path):
    assert re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", nb_path.name), f"{nb_path.name}: expected NN_name.ipynb"
    assert f"notebooks/{nb_path.stem}" in _toc_files(), f"{nb_path.name} is not listed in _toc.yml"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_outputs_committed(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{nb_path.name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{nb_path.name} cell {i} has an execution count"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), f"{nb_path.name}: first code cell must be tagged 'parameters'"
    assigned = {}
    for node in ast.parse(first.source).body:
        if isinstance(node, ast.Assign):
            for t in node.targets:
                assigned[t.id] = ast.unparse(node.value)
    trains = ".fit(" in "\n".join(c.source for c in code[1:])  # a chapter that trains (or loads) models
    expected = PARAMS | {"retrain"} if trains else PARAMS
    assert set(assigned) == expected, (f"{nb_path.name}: parameters cell assigns {sorted(assigned)}, expected "
                                       f"{sorted(expected)}" + (" (a chapter that trains takes retrain)" if trains else ""))
    if trains:
        assert assigned["retrain"] == "False", f"{nb_path.name}: retrain defaults to False (book: committed weights)"
        assert "retrain=retrain" in "\n".join(c.source for c in code[1:]), f"{nb_path.name}: pass retrain to Chapter"
    assert assigned["profile"] == "default_profile()"
    assert assigned["device"] == "'auto'"
    assert assigned["data_root"] == "None"
    assert assigned["seed"] == "0"
    # derived settings come later, through resolve_run
    later = "\n".join(c.source for c in code[1:])
    assert "resolve_run(profile, device, data_root, seed)" in later, f"{nb_path.name}: call resolve_run after the parameters"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_results_written(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f'save_results("{nb_path.stem}"' in src or f"results_path(\"{nb_path.stem}\")" in src, (
        f"{nb_path.name}: write results/<profile>/{nb_path.stem}.json with cfg.save_results")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_widgets_have_static_fallback(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and re.search(r"\bwidgets\.|interactive\(|interact\(", cell.source):
            assert "show_interactive" in cell.source, (
                f"{nb_path.name} cell {i} builds an ipywidget without reidlib.viz.widgets.show_interactive "
                "(static fallback)")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_numbers_come_from_glue(nb_path):
    """Results stated in prose (percentages, metric values) must be glued, not typed."""
    nb = nbformat.read(nb_path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = re.sub(r"\{glue:[a-z]+\}`[^`]*`", "", cell.source)
        text = re.sub(r"`[^`]*`", "", text)  # inline code
        text = re.sub(r"\$[^$]*\$", "", text)  # maths
        hits = re.findall(r"\b\d+(?:\.\d+)?\s?%", text)
        assert not hits, f"{nb_path.name} markdown cell {i} states {hits}: glue results instead of typing them"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_plumbing_cells_tagged(nb_path):
    """The parameters cell is folded (hide-input), and no pure import cell is left untagged."""
    nb = nbformat.read(nb_path, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    first_tags = code[0][1].metadata.get("tags", [])
    assert "hide-input" in first_tags, (f"{nb_path.name}: the parameters cell is tagged {first_tags}; "
                                        "add 'hide-input' beside 'parameters'")
    for i, cell in code:
        lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        pure_imports = bool(lines) and all(
            re.match(r"^(import|from)\s", ln) or ln.startswith((" ", "\t", ")")) for ln in lines)
        if pure_imports:
            assert cell.metadata.get("tags"), (f"{nb_path.name} cell {i} only imports: tag it (hide-input or "
                                               "remove-cell)")
