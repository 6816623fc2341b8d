"""The repository's pytest configuration reaches nbval's notebook cells, wherever pytest runs from."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest(config: pytest.Config):
    """The repository root's conftest.py as pytest loaded it (it loads it for every test below the root)."""
    path = str(ROOT / "conftest.py")
    return next(p for p in config.pluginmanager.get_plugins() if getattr(p, "__file__", None) == path)


def test_notebook_cells_wait_longer_for_output_and_are_marked_slow(request: pytest.FixtureRequest) -> None:
    """The root conftest lifts nbval's hard-coded 5 s per-message wait on every notebook cell and
    marks each ``notebooks`` and ``slow``. The cells of one notebook are collected here by nbval
    itself (no kernel is started), so the check does not depend on which paths this run collects."""
    notebook = ROOT / "notebooks" / "01_forward_process.ipynb"
    files = request.config.hook.pytest_collect_file(file_path=notebook, parent=request.session)
    cells = [item for f in files for item in f.collect()]
    assert cells and all(hasattr(cell, "output_timeout") for cell in cells), files
    conftest = _root_conftest(request.config)
    conftest.pytest_collection_modifyitems([*cells, request.node])
    assert all(cell.output_timeout == conftest.NBVAL_OUTPUT_TIMEOUT_S >= 60 for cell in cells)
    assert all(cell.get_closest_marker("slow") and cell.get_closest_marker("notebooks") for cell in cells)
    assert request.node.get_closest_marker("slow") is None  # this unit test is left as it is
