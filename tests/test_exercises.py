"""The exercises at the end of every chapter notebook 00-08 (CONTRIBUTING.md conventions).

Each chapter ends (after its "What reproduced" section, if it has one) with a ``## Exercises``
cell and 3 to 5 exercises numbered 1..N, at least one of each kind. Conceptual and experiment
exercises carry their solution in a ``:::{dropdown} Solution`` block; a coding exercise is followed
by exactly one solution cell, tagged ``solution`` and ``hide-cell``, that asserts its result
against reidlib. Every solution cell is run here, on its own, in a fresh interpreter.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[0-8]_*.ipynb"))
HEADING = re.compile(r"^### Exercise (\d+) \((conceptual|coding|experiment)\): .+", re.M)
KINDS = {"conceptual", "coding", "experiment"}
DROPDOWN = ":::{dropdown} Solution"


def _read(nb_path):
    return nbformat.read(nb_path, as_version=4)


def _exercises_start(cells):
    """The index of the ``## Exercises`` markdown cell, or None."""
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown" and re.match(r"^## Exercises\s*$", cell.source.splitlines()[0] if cell.source else ""):
            return i
    return None


def _exercises(nb):
    """``[(number, kind, cell index, cell)]`` for every exercise heading after ``## Exercises``."""
    start = _exercises_start(nb.cells)
    if start is None:
        return []
    out = []
    for i in range(start + 1, len(nb.cells)):
        cell = nb.cells[i]
        if cell.cell_type != "markdown":
            continue
        for m in HEADING.finditer(cell.source):
            out.append((int(m.group(1)), m.group(2), i, cell))
    return out


def _coding_solutions():
    cases = []
    for nb_path in NOTEBOOKS:
        nb = _read(nb_path)
        for number, kind, i, _ in _exercises(nb):
            if kind == "coding" and i + 1 < len(nb.cells) and nb.cells[i + 1].cell_type == "code":
                cases.append(pytest.param(nb_path, number, nb.cells[i + 1].source,
                                          id=f"{nb_path.stem}-exercise{number}"))
    return cases


def test_there_are_chapters():
    assert len(NOTEBOOKS) == 9, f"expected the chapter notebooks 00-08, found {[p.name for p in NOTEBOOKS]}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_section(nb_path):
    nb = _read(nb_path)
    start = _exercises_start(nb.cells)
    assert start is not None, f"{nb_path.name}: no '## Exercises' markdown cell"
    reproduced = [i for i, c in enumerate(nb.cells)
                  if c.cell_type == "markdown" and re.search(r"^#+ What reproduced", c.source, re.M)]
    if reproduced:
        assert start > reproduced[-1], (f"{nb_path.name}: '## Exercises' (cell {start}) must come after the "
                                        f"last 'What reproduced' heading (cell {reproduced[-1]})")
    intro = nb.cells[start].source.split("\n", 1)
    assert len(intro) == 2 and intro[1].strip(), f"{nb_path.name}: '## Exercises' needs an introductory sentence"
    exercises = _exercises(nb)
    numbers = [n for n, _, _, _ in exercises]
    assert 3 <= len(exercises) <= 5, f"{nb_path.name}: {len(exercises)} exercises, expected 3 to 5"
    assert numbers == list(range(1, len(numbers) + 1)), f"{nb_path.name}: exercises numbered {numbers}, expected 1..N"
    kinds = {k for _, k, _, _ in exercises}
    assert kinds == KINDS, f"{nb_path.name}: exercise kinds {sorted(kinds)}, expected one of each of {sorted(KINDS)}"
    # every heading that looks like an exercise must match the form exactly
    for cell in nb.cells[start + 1:]:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("### Exercise"):
                    assert HEADING.match(line), f"{nb_path.name}: malformed exercise heading {line!r}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_dropdown_solutions(nb_path):
    nb = _read(nb_path)
    for number, kind, i, cell in _exercises(nb):
        if kind == "coding":
            assert DROPDOWN not in cell.source, (f"{nb_path.name} exercise {number}: a coding exercise's solution is "
                                                 "its code cell, not a dropdown")
            continue
        lines = cell.source.splitlines()
        opens = [j for j, line in enumerate(lines) if line.strip() == DROPDOWN]
        assert len(opens) == 1, f"{nb_path.name} exercise {number} ({kind}): expected one '{DROPDOWN}' block"
        body = lines[opens[0] + 1:]
        closes = [j for j, line in enumerate(body) if line.strip() == ":::"]
        assert closes, f"{nb_path.name} exercise {number} ({kind}): the dropdown is not closed by ':::'"
        assert any(line.strip() for line in body[:closes[0]]), (
            f"{nb_path.name} exercise {number} ({kind}): the dropdown holds no solution")
        assert "{glue:" not in cell.source, f"{nb_path.name} exercise {number}: no glue references in exercises"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_coding_solution_cells(nb_path):
    nb = _read(nb_path)
    start = _exercises_start(nb.cells)
    exercises = _exercises(nb)
    starts = [i for _, _, i, _ in exercises] + [len(nb.cells)]
    for (number, kind, i, _), end in zip(exercises, starts[1:]):
        code = [c for c in nb.cells[i + 1:end] if c.cell_type == "code"]
        if kind != "coding":
            assert not code, f"{nb_path.name} exercise {number} ({kind}) is followed by a code cell"
            continue
        assert len(code) == 1, f"{nb_path.name} exercise {number}: expected one solution cell, found {len(code)}"
        assert nb.cells[i + 1] is code[0], f"{nb_path.name} exercise {number}: the solution cell must follow it"
        tags = set(code[0].metadata.get("tags", []))
        assert {"solution", "hide-cell"} <= tags, (f"{nb_path.name} exercise {number}: the solution cell is tagged "
                                                   f"{sorted(tags)}, expected 'solution' and 'hide-cell'")
        assert "assert" in code[0].source, f"{nb_path.name} exercise {number}: the solution must assert its result"
    tagged = [c for c in nb.cells if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])]
    assert all(nb.cells.index(c) > start for c in tagged), f"{nb_path.name}: a solution cell before '## Exercises'"


@pytest.mark.parametrize("nb_path, number, source", _coding_solutions())
def test_coding_solution_runs(nb_path, number, source):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", source], cwd=ROOT / "notebooks", env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (f"{nb_path.name} exercise {number}: the solution failed "
                                  f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}")
