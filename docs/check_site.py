"""The built site's strict check (run by docs/build after MkDocs): every page the tutorial promises
exists, every relative link and resource of every page resolves to a file in the site (and its
#anchor to an id on that page), and no page or stylesheet loads anything from the network.
MkDocs checks the links of the Markdown pages itself; this also covers the notebook pages, whose
HTML comes from nbconvert.

    python docs/check_site.py site
"""

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
RESOURCE_ATTRS = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src"),
                  ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data")}
REMOTE_CSS = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])(?:https?:)?//""", re.I)


def expected_pages() -> list:
    names = ["index.html", "reference.html", "benchmarks/RESULTS.html", "notebooks/solutions/index.html"]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        names += [f"notebooks/{nb.stem}.html", f"notebooks/{nb.name}"]
    return names


class Page(HTMLParser):
    """The ids of a page, its links (a href) and the resources it loads."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.resources = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for t, key in RESOURCE_ATTRS:
            if tag == t and attrs.get(key):
                rel = attrs.get("rel") or ""
                if tag == "link" and rel in ("canonical", "prev", "next"):
                    self.links.append(attrs[key])
                else:
                    self.resources.append(attrs[key])


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def problems(site: Path) -> list:
    found = [f"missing page: {name}" for name in expected_pages() if not (site / name).is_file()]
    # 404.html is for a web server that serves the site at its root: its links are absolute (/...)
    pages = {p: parse(p) for p in sorted(site.rglob("*.html")) if p.name != "404.html"}
    for path, page in pages.items():
        where = path.relative_to(site).as_posix()
        for url in page.resources:
            if urlsplit(url).scheme in ("http", "https") or url.startswith("//"):
                found.append(f"{where}: loads {url} from the network")
        for url in page.links + page.resources:
            parts = urlsplit(url)
            if parts.scheme or url.startswith("//"):
                continue  # external links (a href) are for the reader to follow; remote loads are caught above
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file() or not target.is_relative_to(site.resolve()):
                found.append(f"{where}: broken link {url}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    found.append(f"{where}: link {url}: no #{parts.fragment} on that page")
    for css in site.rglob("*.css"):
        if REMOTE_CSS.search(css.read_text(encoding="utf-8", errors="replace")):
            found.append(f"{css.relative_to(site)}: loads a file from the network")
    return found


def main(site: Path) -> None:
    if not (site / "index.html").is_file():
        sys.exit(f"docs/check_site.py: no {site}/index.html: build the site first (bash docs/build)")
    found = problems(site.resolve())
    if found:
        print("\n".join(found), file=sys.stderr)
        sys.exit(f"docs/check_site.py: {len(found)} problem(s) in {site}/ (listed above)")
    print(f"docs/check_site.py: {site}/ complete, every link resolves, nothing loads from the network")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "site"))
