"""The library reference page, generated from ddpm_lib/__init__.py: one section per module, listing
exactly the names the package exports (`__all__`), in the order they are imported there. mkdocstrings
renders each from its docstring and signature (read statically by griffe: nothing is imported).
"""

import ast
import sys
from pathlib import Path

INTRO = """# Library reference

Every public function, class and configuration of `ddpm_lib`: what `from ddpm_lib import ...` gives
you, grouped by the module that holds it. Generated from the docstrings, which name the equation of
Ho, Jain & Abbeel 2020 that each function implements. In a notebook, `help(name)` shows the same text.
"""


def exports(init: Path) -> list:
    """[(module, [names])] for `from .module import names` in `init`, keeping only names in __all__."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    public = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            public = set(ast.literal_eval(node.value))
    if public is None:
        sys.exit(f"docs/reference.py: {init} has no __all__: the reference lists exactly its names")
    groups, listed = [], set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            names = [a.name for a in node.names if a.name in public]
            if names:
                groups.append((f"ddpm_lib.{node.module}", names))
                listed.update(names)
    missing = sorted(public - listed)
    if missing:
        sys.exit(f"docs/reference.py: {missing} are in __all__ but not imported from a ddpm_lib module")
    return groups


def write_reference(init: Path, out: Path) -> None:
    lines = [INTRO]
    for module, names in exports(init):
        lines += [f"## `{module}`", "", f"::: {module}", "    options:", "      show_root_heading: false",
                  "      members:"] + [f"        - {n}" for n in names] + [""]
    out.write_text("\n".join(lines), encoding="utf-8")
