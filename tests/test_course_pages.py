"""The course material pages (book/syllabus.md, book/glossary.md): structure, citations, links, toc."""

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_book  # noqa: E402
SYLLABUS = ROOT / "book" / "syllabus.md"
GLOSSARY = ROOT / "book" / "glossary.md"
PAGES = (SYLLABUS, GLOSSARY)
BIB = ROOT / "book" / "references.bib"

CITE = re.compile(r"(?<!`)\{cite(?::[a-z]+)?\}`([^`]+)`")
DOC = re.compile(r"(?<!`)\{doc\}`([^`]+)`")


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{\s*([^,\s]+)\s*,", BIB.read_text(encoding="utf-8"), flags=re.M))


def _toc_files() -> list[str]:
    return build_book.toc_files()


def _glossary_terms() -> list[str]:
    """The terms of the ```{glossary} block: its non-indented, non-blank, non-option lines."""
    text = GLOSSARY.read_text(encoding="utf-8")
    m = re.search(r"^```\{glossary\}[^\n]*\n(.*?)^```\s*$", text, flags=re.M | re.S)
    assert m, "book/glossary.md has no ```{glossary} block"
    return [line.strip() for line in m.group(1).splitlines()
            if line.strip() and not line[0].isspace() and not line.startswith(":")]


def test_pages_exist():
    for page in PAGES:
        assert page.exists(), f"{page.relative_to(ROOT)} is missing"


def test_syllabus_has_eight_weeks_in_order():
    weeks = re.findall(r"^## Week (\d+)\b", SYLLABUS.read_text(encoding="utf-8"), flags=re.M)
    assert [int(w) for w in weeks] == list(range(1, 9)), f"week sections found: {weeks}"


def test_syllabus_weeks_have_their_parts():
    text = SYLLABUS.read_text(encoding="utf-8")
    sections = re.split(r"^## Week \d+\b", text, flags=re.M)[1:]
    for i, sec in enumerate(sections, 1):
        sec = re.split(r"^## ", sec, flags=re.M)[0]
        for part in ("**Lecture.**", "**Readings.**", "**Lab.**", "**Laptop or GPU.**"):
            assert part in sec, f"week {i} has no {part}"
        assert "{doc}`../notebooks/" in sec, f"week {i} links no chapter"


def test_syllabus_states_no_percentages():
    text = SYLLABUS.read_text(encoding="utf-8")
    assert not re.search(r"\d\s*%", text), "the syllabus states a percentage; it should state no results"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_citations_resolve(page):
    keys = _bib_keys()
    used = {k.strip() for group in CITE.findall(page.read_text(encoding="utf-8")) for k in group.split(",")}
    assert used, f"{page.name} cites nothing"
    missing = sorted(used - keys)
    assert not missing, f"{page.name} cites keys that are not in book/references.bib: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_doc_links_resolve(page):
    targets = DOC.findall(page.read_text(encoding="utf-8"))
    assert targets, f"{page.name} has no {{doc}} links"
    for t in targets:
        t = re.sub(r"^.*<(.+)>$", r"\1", t).strip()  # {doc}`text <target>`
        base = (ROOT / t.lstrip("/")) if t.startswith("/") else (page.parent / t)
        found = [base.with_name(base.name + ext) for ext in (".md", ".ipynb") if base.with_name(base.name + ext).exists()]
        assert found, f"{page.name}: {{doc}}`{t}` points to no .md or .ipynb file ({base})"


def test_glossary_has_enough_sorted_terms():
    terms = _glossary_terms()
    assert len(terms) >= 25, f"the glossary has {len(terms)} terms; expected at least 25"
    assert len(set(t.casefold() for t in terms)) == len(terms), "the glossary repeats a term"
    keys = [t.casefold() for t in terms]
    assert keys == sorted(keys), f"glossary terms out of alphabetical order: {terms}"


def test_term_references_resolve():
    terms = {t.casefold() for t in _glossary_terms()}
    for page in PAGES:
        for ref in re.findall(r"(?<!`)\{term\}`([^`]+)`", page.read_text(encoding="utf-8")):
            target = re.sub(r"^.*<(.+)>$", r"\1", ref).strip()
            assert target.casefold() in terms, f"{page.name}: {{term}}`{ref}` names no glossary term"


def test_pages_in_toc_under_course_material():
    files = _toc_files()
    for f in ("book/syllabus", "book/glossary"):
        assert f in files, f"{f} is not in _toc.yml"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    captions = [p.get("caption") for p in toc["parts"]]
    assert "Course material" in captions
    part = toc["parts"][captions.index("Course material")]
    assert [c["file"] for c in part["chapters"]] == ["book/syllabus", "book/glossary"]
    if "Back matter" in captions:
        assert captions.index("Course material") < captions.index("Back matter")
