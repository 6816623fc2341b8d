"""MkDocs hooks (docs/mkdocs.yml loads this file): the notebook pages, and the reference's roles.

mkdocs-jupyter renders a notebook through nbconvert, whose template loads MathJax 2 and mermaid from
a CDN and keeps the notebooks' own links as written (`02_mlp_noise_predictor.ipynb`, `../README.md`).
Here those scripts are dropped (the site loads its bundled MathJax 3 for every page, mkdocs.yml's
extra_javascript), links to a notebook or a Markdown file become links to its page, and the
repository's notebooks, unchanged, are copied beside their pages for download. In the reference,
the docstrings' Sphinx roles (:func:, :data:, ...), which mkdocstrings leaves as text, are dropped.
"""

import posixpath
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)
ANCHOR = re.compile(r"<a\b[^>]*>")
HREF = re.compile(r'\bhref="([^"]*)"')
ROLE = re.compile(r":(?:py:)?(?:func|meth|class|data|attr|mod|obj|exc|const):(?=<code)")


def _drop_remote_scripts(html: str) -> str:
    """Remove the template's scripts that load from the network, and MathJax 2's configuration."""
    def keep(m):
        s = m.group(0)
        remote = "http://" in s or "https://" in s or "text/x-mathjax-config" in s
        return "" if remote else s
    return SCRIPT.sub(keep, html)


def _page_link(href: str, page, files) -> str:
    """`href` made to point at the page that a relative link to a .ipynb or .md file means."""
    path, sep, anchor = href.partition("#")
    if not path or re.match(r"^[a-z]+:", path) or not path.endswith((".ipynb", ".md")):
        return href
    src = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), path))
    target = files.get_file_from_path(src)
    if target is None and posixpath.basename(src) == "README.md":  # README.md is staged as index.md
        target = files.get_file_from_path(posixpath.join(posixpath.dirname(src), "index.md"))
    if target is None or not target.is_documentation_page():
        return href  # left as written: docs/check_site.py fails the build on a link that resolves to nothing
    return target.url_relative_to(page.file) + sep + anchor


def _rewrite_links(html: str, page, files) -> str:
    def tag(m):
        a = m.group(0)
        if re.search(r"\sdownload(\s|>|=)", a):  # the notebook's own download link keeps its .ipynb
            return a
        return HREF.sub(lambda h: f'href="{_page_link(h.group(1), page, files)}"', a, count=1)
    return ANCHOR.sub(tag, html)


def on_page_content(html, page, config, files):
    if page.file.src_uri == "reference.md":  # Sphinx roles in the docstrings: `:func:`q_sample`` shows as q_sample
        return ROLE.sub("", html)
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    return _rewrite_links(_drop_remote_scripts(html), page, files)


def on_post_build(config):
    out = Path(config["site_dir"]) / "notebooks"
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copyfile(nb, out / nb.name)
