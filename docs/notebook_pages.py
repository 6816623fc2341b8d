"""The notebooks as website pages: each staged copy gains a bar that links the .ipynb to download
and the previous and next notebook, and, below each exercise's `check(...)` cell, its solution
collapsed. The stored outputs are kept as they are (nothing is executed); the notebooks in the
repository are not touched, and the site offers those, unchanged, for download (docs/hooks.py).
"""

import ast
import json
import re
import shutil
import sys
import textwrap
from pathlib import Path

CHECK = re.compile(r'^check\("(\w+)"', re.M)  # an exercise's check cell: check("q_sample", q_sample)


def fail(message: str) -> None:
    sys.exit(f"docs/notebook_pages.py: {message}")


def title(nb: dict, path: Path) -> str:
    first = "".join(nb["cells"][0]["source"]) if nb["cells"] else ""
    match = re.match(r"#\s+(.+)", first)
    if not match:
        fail(f"{path.name}: the first cell must start with the notebook's '# title'")
    return match.group(1).strip()


def short(name: str) -> str:
    """'01 · The forward process, proved numerically' -> '01 · The forward process'."""
    return re.split(r"[,:]", name, maxsplit=1)[0]


def markdown_cell(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def nav_cell(names: list, titles: dict, i: int) -> dict:
    parts = []
    if i > 0:
        parts.append(f'<a class="nb-prev" href="{names[i - 1]}">&larr; {short(titles[names[i - 1]])}</a>')
    parts.append(f'<a class="nb-download" href="{names[i]}" download>Download this notebook (.ipynb) to run it</a>')
    if i + 1 < len(names):
        parts.append(f'<a class="nb-next" href="{names[i + 1]}">{short(titles[names[i + 1]])} &rarr;</a>')
    return markdown_cell('<nav class="nb-nav">' + " ".join(parts) + "</nav>")


def solution_source(solutions: Path, name: str, notebook: str) -> str:
    if not solutions.is_file():
        fail(f"{notebook} has exercises but {solutions} is missing")
    tree = ast.parse(solutions.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return ast.get_source_segment(solutions.read_text(encoding="utf-8"), node)
    fail(f"{notebook}: exercise {name!r} has no solution in {solutions}")


def solution_cell(solutions: Path, name: str, notebook: str) -> dict:
    code = solution_source(solutions, name, notebook)
    return markdown_cell(
        f'<details class="nb-solution">\n<summary>Solution: <code>{name}</code> (try yours first)</summary>\n\n'
        f"```python\n{code}\n```\n\n</details>")


def page_cells(nb: dict, path: Path, nav: dict) -> list:
    solutions = path.parent / "solutions" / (path.stem + ".py")
    heading, _, intro = "".join(nb["cells"][0]["source"]).partition("\n")  # the bar goes below the title
    cells = [markdown_cell(heading), nav, dict(nb["cells"][0], source=intro.lstrip("\n"))]
    for cell in nb["cells"][1:]:
        cells.append(cell)
        if cell["cell_type"] == "code":
            for name in CHECK.findall("".join(cell["source"])):
                cells.append(solution_cell(solutions, name, path.name))
    return cells + [nav]


def stage_notebooks(src: Path, out: Path) -> None:
    paths = sorted(src.glob("*.ipynb"))
    if not paths:
        fail(f"no notebooks in {src}")
    books = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in paths}
    titles = {name: title(nb, src / name) for name, nb in books.items()}
    names = list(books)
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, nb) in enumerate(books.items()):
        staged = dict(nb, cells=page_cells(nb, src / name, nav_cell(names, titles, i)))
        (out / name).write_text(json.dumps(staged), encoding="utf-8")
    for py in sorted((src / "solutions").glob("*.py")):
        (out / "solutions").mkdir(exist_ok=True)
        shutil.copyfile(py, out / "solutions" / py.name)


def write_solutions_index(src: Path, out: Path) -> None:
    """notebooks/solutions/ as a page: every solutions file, each collapsed under its notebook."""
    lines = ["# Solutions to the exercises", "",
             "Each notebook checks your version of an exercise in the cell below it; try it there first.",
             "Each notebook page also shows an exercise's solution, collapsed, right below its check.", ""]
    for py in sorted(src.glob("*.py")):
        notebook = src.parent / (py.stem + ".ipynb")
        name = title(json.loads(notebook.read_text(encoding="utf-8")), notebook) if notebook.exists() else py.stem
        lines += [f"## {short(name)}", "",
                  f"For [notebook {py.stem[:2]}](../{py.stem}.ipynb); the file: [{py.name}]({py.name}).", "",
                  f'??? example "{py.name}"', "",
                  "    ```python", textwrap.indent(py.read_text(encoding="utf-8").rstrip(), "    "), "    ```", ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.md").write_text("\n".join(lines), encoding="utf-8")
