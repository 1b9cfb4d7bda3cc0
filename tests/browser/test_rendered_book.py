"""The built book, read in a real browser with no network (``make browser-check``).

Every HTML page of ``_build/html`` (built by ``make book``) is opened in headless Chromium
(Debian's ``chromium`` package, driven by Playwright), served from loopback; every request
to another host is refused, as on a reader's machine offline.  Per page:

* math is typeset: no raw ``\\(`` or ``$$`` is left in the text (code blocks aside), and
  MathJax, loaded from the book's own ``_static/mathjax``, rendered every formula;
* every image loads;
* no cell output is a traceback;
* one screenshot goes to ``_build/screenshots/<page>.png``.

Then every internal link of every page resolves: its file exists and its ``#anchor``, if any,
names an element of the target page.  ``_build/screenshots/report.json`` lists what each page
held (formulas, images, links, refused external requests).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("REIDLIB_CHROMIUM", "/usr/bin/chromium")
# as the machine notes advise: no background traffic, no sandbox as root, a fresh profile
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}


def book_pages() -> list[str]:
    """Every HTML page of the built book, relative to ``_build/html`` (sorted)."""
    if not (HTML / "index.html").exists():
        return []
    return sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
                  if not SKIP_DIRS.intersection(p.relative_to(HTML).parts))


PAGES = book_pages()

# what one page holds, read in the browser after MathJax and every image are done
READ_PAGE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = Array.from(document.images);
  for (const img of imgs) { img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(r => {
    img.addEventListener('load', r); img.addEventListener('error', r); setTimeout(r, 10000); })));
  const body = document.querySelector('main') || document.body;
  const clone = body.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, .highlight, mjx-container, .MathJax').forEach(e => e.remove());
  const outputs = Array.from(document.querySelectorAll('.cell_output, .output'));
  return {
    title: document.title,
    text: clone.innerText,
    math_sources: document.querySelectorAll('.math, span.math, div.math').length,
    math_rendered: document.querySelectorAll('mjx-container').length,
    mathjax_error: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    mathjax_loaded: !!(window.MathJax && MathJax.version),
    images: imgs.map(img => ({src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0})),
    tracebacks: outputs.filter(o => o.classList.contains('traceback') || o.querySelector('.traceback')
                                 || /Traceback \\(most recent call last\\)/.test(o.innerText)).length,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  };
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test reports what matters
        pass


@pytest.fixture(scope="module")
def crawl():
    """Open every page once; return ``{page: record}`` (and write screenshots + report.json)."""
    if not PAGES:
        pytest.fail(f"no built book at {HTML / 'index.html'}: run `make book` first (make browser-check reads its output)")
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's package (`apt-get install chromium`, as "
                    f".ci/run does) or point $REIDLIB_CHROMIUM at a Chromium binary")
    from playwright.sync_api import sync_playwright

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    records: dict[str, dict] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1280, "height": 1400})
            refused: list[str] = []

            def route(r):
                host = urlsplit(r.request.url).hostname
                if host == "127.0.0.1" or r.request.url.startswith(("data:", "blob:")):
                    return r.continue_()
                refused.append(r.request.url)
                return r.abort("internetdisconnected")

            context.route("**/*", route)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            for rel in PAGES:
                refused.clear()
                errors.clear()
                page.goto(base + rel, wait_until="load", timeout=60_000)
                for attempt in range(3):  # a page that redirects (index.html) navigates once more
                    try:
                        rec = page.evaluate(READ_PAGE)
                        break
                    except Exception:  # a redirect under way: "Execution context was destroyed", no body yet
                        if attempt == 2:
                            raise
                        page.wait_for_timeout(500)
                        page.wait_for_load_state("load")
                rec["url"] = page.url.removeprefix(base)
                rec["refused"] = sorted(set(refused))
                rec["page_errors"] = list(errors)
                page.screenshot(path=str(SHOTS / (rel.replace("/", "__").removesuffix(".html") + ".png")))
                records[rel] = rec
            browser.close()
    finally:
        server.shutdown()
    report = {rel: {k: v for k, v in rec.items() if k not in ("text", "ids", "links")} |
              {"links": len(rec["links"]), "images": len(rec["images"])} for rel, rec in records.items()}
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return records


def test_book_was_built():
    assert PAGES, f"no built book at {HTML / 'index.html'}: run `make book` first"
    assert "index.html" in PAGES


RAW_MATH = re.compile(r"\\\(|\\\)|\$\$")


@pytest.mark.parametrize("rel", PAGES)
def test_math_is_typeset(crawl, rel):
    rec = crawl[rel]
    raw = [m.start() for m in RAW_MATH.finditer(rec["text"])]
    snippets = [rec["text"][max(0, i - 40): i + 40].replace("\n", " ") for i in raw[:3]]
    assert not raw, f"{rel}: {len(raw)} raw LaTeX delimiter(s) left in the rendered text, e.g. {snippets}"
    if rec["math_sources"]:
        assert rec["mathjax_loaded"], f"{rel}: the page has {rec['math_sources']} formulas but MathJax did not load"
        assert rec["math_rendered"] >= rec["math_sources"], (
            f"{rel}: MathJax rendered {rec['math_rendered']} of {rec['math_sources']} formulas")
        assert not rec["mathjax_error"], f"{rel}: {rec['mathjax_error']} formula(s) failed to typeset"


@pytest.mark.parametrize("rel", PAGES)
def test_images_load(crawl, rel):
    broken = [i["src"] for i in crawl[rel]["images"] if not i["ok"]]
    assert not broken, f"{rel}: {len(broken)} image(s) did not load: {broken[:5]}"


@pytest.mark.parametrize("rel", PAGES)
def test_no_traceback_in_outputs(crawl, rel):
    assert crawl[rel]["tracebacks"] == 0, f"{rel}: {crawl[rel]['tracebacks']} cell output(s) show a traceback"


def test_internal_links_resolve(crawl):
    ids = {rec["url"]: set(rec["ids"]) for rec in crawl.values()}
    bad = []
    for rel, rec in crawl.items():
        here = "http://book/" + rec["url"]  # where the page landed (index.html redirects)
        for href in set(rec["links"]):
            url = urlsplit(urljoin(here, href))
            if url.scheme not in ("http", "https") or url.netloc != "book":
                continue  # external (mailto:, https://...): not the book's to check offline
            target = unquote(url.path.lstrip("/")) or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if not (HTML / target).exists():
                bad.append(f"{rel}: {href} -> {target} does not exist")
            elif url.fragment and target in ids and unquote(url.fragment) not in ids[target]:
                bad.append(f"{rel}: {href} -> no element id={url.fragment!r} in {target}")
    assert not bad, f"{len(bad)} broken internal link(s):\n" + "\n".join(sorted(bad)[:40])
