"""The website, as a reader gets it: `bash docs/build`, then every page opened from disk (file://)
in headless Chromium (Debian's `chromium`, driven by Playwright) with the network shut: each page
loads with no console error, every image decodes, the maths is typeset (no raw $...$ or \\alpha
left in the visible text), every link into the site resolves, and nothing is fetched from
anywhere but the site itself. A screenshot of each page (its top, and its first figure) is
written to docs/_screenshots/ for a person to look at.

Needs requirements-docs.txt and chromium (.ci/run installs both and sets DDPM_DOCS_REQUIRED=1, so
that in CI a missing one fails instead of skipping).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
SHOTS = ROOT / "docs" / "_screenshots"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
LOCAL_SCHEMES = ("file", "data", "blob", "about")
RAW_MATH = [re.compile(r"\$\$"), re.compile(r"\$[^$\s][^$\n]{0,200}\$"),
            re.compile(r"\\(?:alpha|beta|bar|epsilon|sqrt|frac|mathcal|sum|prod|tilde|hat|mu|sigma|Sigma|left|right|cdot)\b")]

# The text a reader sees on the page (navigation included), without code, cell outputs and typeset maths.
PROSE_JS = """() => {
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll('pre, code, script, style, mjx-container, .jp-OutputArea, .jp-InputArea, .highlight')
      .forEach(e => e.remove());
  return copy.textContent;
}"""
PAGE_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)));
  return {
    images: document.images.length,
    broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)
                 .map(i => i.src.slice(0, 80)),
    maths: document.querySelectorAll('mjx-container').length,
    math_errors: document.querySelectorAll('[data-mml-node="merror"], mjx-merror').length,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    mathjax: !!(window.MathJax && MathJax.version),
  };
}"""


def need(ok: bool, reason: str) -> None:
    """Skip when a docs prerequisite is missing, or fail where it is required (CI)."""
    if not ok:
        if os.environ.get("DDPM_DOCS_REQUIRED") == "1":
            pytest.fail(f"{reason} (DDPM_DOCS_REQUIRED=1)", pytrace=False)
        pytest.skip(reason)


def chromium_path() -> str:
    given = os.environ.get("DDPM_CHROMIUM")
    path = shutil.which(given) if given else shutil.which("chromium") or shutil.which("chromium-browser")
    need(bool(path), f"no chromium at DDPM_CHROMIUM={given}" if given else
         "no chromium: `apt-get install chromium` (or set DDPM_CHROMIUM to its path)")
    return path


def page_name(path: Path) -> str:
    return path.relative_to(SITE).with_suffix("").as_posix().replace("/", "-")


@pytest.fixture(scope="module")
def site() -> Path:
    """The site built from the current tree, once per test run."""
    chromium_path()
    try:
        import mkdocs  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as e:
        need(False, f"docs packages missing ({e.name}): pip install -r requirements-docs.txt")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    run = subprocess.run(["bash", "docs/build"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"bash docs/build failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return SITE


@pytest.fixture(scope="module")
def visits(site) -> dict:
    """Every page of the site opened once, from disk, network shut: what each page showed."""
    from playwright.sync_api import sync_playwright

    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    results = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        remote = []

        def route(r):
            if urlsplit(r.request.url).scheme in LOCAL_SCHEMES:
                r.continue_()
            else:
                remote.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        for path in pages:
            tab = context.new_page()
            errors = []
            tab.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
            tab.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            remote.clear()
            tab.goto(path.as_uri(), wait_until="load")
            info = tab.evaluate(PAGE_JS)
            info.update(errors=errors, remote=list(remote), prose=tab.evaluate(PROSE_JS))
            name = page_name(path)
            tab.screenshot(path=str(SHOTS / f"{name}.png"))
            figure = tab.locator(".jp-OutputArea-output img").first
            if figure.count():
                figure.scroll_into_view_if_needed()
                tab.screenshot(path=str(SHOTS / f"{name}-figure.png"))
            results[path] = info
            tab.close()
        browser.close()
    return results


def failures(visits: dict, check) -> list:
    return [f"{p.relative_to(SITE)}: {msg}" for p, info in visits.items() for msg in check(p, info)]


def test_pages_load_without_console_errors_or_network(visits):
    bad = failures(visits, lambda p, i: [f"console: {e}" for e in i["errors"]] + [f"fetched {u}" for u in i["remote"]])
    assert not bad, "\n".join(bad)


def test_every_image_decodes(visits):
    bad = failures(visits, lambda p, i: [f"image does not decode: {s}" for s in i["broken"]])
    assert not bad, "\n".join(bad)


def test_maths_is_typeset(visits):
    def check(path, info):
        raw = [m.group(0) for rx in RAW_MATH for m in rx.finditer(info["prose"])]
        out = [f"raw maths left in the text: {r!r}" for r in raw[:5]]
        if not info["mathjax"]:
            out.append("MathJax did not load")
        if info["math_errors"]:
            out.append(f"{info['math_errors']} formula(s) MathJax could not typeset")
        return out
    bad = failures(visits, check)
    assert not bad, "\n".join(bad)


def test_internal_links_resolve(visits):
    def check(path, info):
        out = []
        for url in info["links"]:
            parts = urlsplit(url)
            if parts.scheme != "file":
                continue
            target = Path(unquote(parts.path))
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                out.append(f"broken link {url}")
            elif parts.fragment and target.suffix == ".html":
                html = target.read_text(encoding="utf-8")
                if f'id="{unquote(parts.fragment)}"' not in html:
                    out.append(f"no #{parts.fragment} in {target.name}")
        return out
    bad = failures(visits, check)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_page_shows_figures_maths_download_and_neighbours(visits, stem):
    info = visits.get(SITE / "notebooks" / f"{stem}.html")
    assert info is not None, f"no page for notebooks/{stem}.ipynb"
    assert info["images"] > 0 and not info["broken"], f"{stem}: no figure shown"
    assert info["maths"] > 0, f"{stem}: no typeset maths"
    links = {Path(unquote(urlsplit(u).path)).name for u in info["links"]}
    assert f"{stem}.ipynb" in links, f"{stem}: no link to download the .ipynb"
    i = NOTEBOOKS.index(stem)
    for j in (i - 1, i + 1):
        if 0 <= j < len(NOTEBOOKS):
            assert f"{NOTEBOOKS[j]}.html" in links, f"{stem}: no link to the neighbouring notebook {NOTEBOOKS[j]}"
    assert (SHOTS / f"notebooks-{stem}.png").is_file()


def test_reference_and_results_pages(visits):
    reference = visits[SITE / "reference.html"]["prose"]
    for name in ("q_sample", "ddpm_step", "UNetConfig", "TrainConfig", "Trainer", "sample"):
        assert name in reference, f"the library reference does not document {name}"
    roles = re.findall(r":(?:func|meth|class|data|attr|mod):", reference)
    assert not roles, f"the reference shows the docstrings' Sphinx roles as text: {roles[:3]}"
    assert "Benchmark results" in visits[SITE / "benchmarks" / "RESULTS.html"]["prose"]
