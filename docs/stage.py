"""Lay out the website's sources in one folder, taken from the repository as it is.

Nothing here is written by hand twice: the home page is README.md, RESULTS is benchmarks/RESULTS.md,
the notebook pages are notebooks/*.ipynb with their stored outputs (never re-executed), the
reference is built from ddpm_lib/__init__.py's exports. Every file or folder that a staged page
links to is staged too, so that MkDocs' strict link check sees the site a reader will get.

    python docs/stage.py OUT_DIR
"""

import re
import shutil
import sys
from pathlib import Path

from notebook_pages import stage_notebooks, write_solutions_index
from reference import write_reference

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PAGES = HERE / "pages"                 # hand-written page parts: assets, the MathJax configuration
LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's target
LISTED_MAX_BYTES = 1_000_000           # a linked folder's files up to this size are copied and linked
LINKED_MAX_BYTES = 5_000_000           # a file a page links to is copied up to this size (else: a broken link)
SITE_SUFFIXES = {".md", ".py", ".json", ".png", ".txt", ".csv"}


def mathjax_file() -> Path:
    """MathJax 3's all-in-one TeX-to-SVG file, from the django-static-mathjax package (PyPI): SVG output
    needs no web fonts, and -full carries every TeX extension, so nothing is fetched at run time."""
    try:
        import mathjax  # the django-static-mathjax distribution installs this package
    except ImportError:
        sys.exit("docs/stage.py: MathJax not found: run `pip install -r requirements-docs.txt`")
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg-full.js"
    if not path.is_file():
        sys.exit(f"docs/stage.py: {path} is missing: reinstall django-static-mathjax (requirements-docs.txt)")
    return path


def copy(src: Path, out: Path, rel: str) -> Path:
    dest = out / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def write_folder_index(folder: Path, out: Path) -> None:
    """A page for a linked folder: its files, the small text and image ones copied and linked."""
    rel = folder.relative_to(ROOT).as_posix()
    lines = [f"# {rel}/", "", "The files of this folder in the repository.", ""]
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        size = f.stat().st_size
        if f.suffix in SITE_SUFFIXES and f.suffix != ".md" and size <= LISTED_MAX_BYTES:
            copy(f, out, f"{rel}/{f.name}")
            lines.append(f"- [{f.name}]({f.name})")
        else:
            lines.append(f"- `{f.name}` ({size / 1e6:.1f} MB, in the repository only)")
    (out / rel / "index.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def stage_linked(page: Path, source: Path, out: Path, seen: set) -> None:
    """Stage what `page` (staged from repository file `source`) links to, following linked pages.
    A link to a folder becomes a link to that folder's page (its index.md)."""
    text = page.read_text(encoding="utf-8")
    folders = {t for t in LINK.findall(text) if t.split("#")[0].endswith("/") and (source.parent / t).is_dir()}
    for target in folders:
        folder = (source.parent / target).resolve()
        if not (out / folder.relative_to(ROOT) / "index.md").exists():
            write_folder_index(folder, out)
        text = text.replace(f"]({target})", f"]({target.split('#')[0]}index.md)")
    page.write_text(text, encoding="utf-8")
    for target in LINK.findall(text):
        path = target.split("#", 1)[0]
        if not path or re.match(r"^[a-z]+:", path):
            continue
        src = (source.parent / path).resolve()
        if not src.is_relative_to(ROOT) or src in seen:
            continue
        seen.add(src)
        rel = src.relative_to(ROOT).as_posix()
        if src.is_file() and src.stat().st_size <= LINKED_MAX_BYTES and not (out / rel).exists():
            dest = copy(src, out, rel)
            if src.suffix == ".md":
                stage_linked(dest, src, out, seen)
        # a target missing from the repository, or too big for the site, stays as written:
        # MkDocs' strict build reports it as a broken link


def stage(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(PAGES, out)
    copy(mathjax_file(), out, "assets/mathjax/tex-svg-full.js")
    stage_notebooks(ROOT / "notebooks", out / "notebooks")
    write_solutions_index(ROOT / "notebooks" / "solutions", out / "notebooks" / "solutions")
    write_reference(ROOT / "ddpm_lib" / "__init__.py", out / "reference.md")
    pages = {"index.md": ROOT / "README.md", "benchmarks/RESULTS.md": ROOT / "benchmarks" / "RESULTS.md"}
    seen = set()
    for rel, src in pages.items():
        stage_linked(copy(src, out, rel), src, out, seen)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):  # the notebooks' links to README, data, ...
        for target in re.findall(r"\]\((\.\./[^)\s#]+)", nb.read_text(encoding="utf-8")):
            src = (nb.parent / target).resolve()
            if src.is_file() and src.suffix == ".md" and src != ROOT / "README.md":
                rel = src.relative_to(ROOT).as_posix()
                if not (out / rel).exists():
                    stage_linked(copy(src, out, rel), src, out, seen)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/stage.py OUT_DIR")
    stage(Path(sys.argv[1]).resolve())
