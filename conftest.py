"""pytest at the repository root: notebooks run in quick mode unless DDPM_QUICK is set
otherwise (nbval's kernels inherit this environment)."""

import os

import pytest

os.environ.setdefault("DDPM_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# nbval waits a hard-coded 5 s for each output message after a cell's reply (its issues #136, #231;
# no option sets it). On a loaded 2-core CI machine the kernel's output thread can lag that long
# behind a heavy cell, which fails a cell that ran fine. A minute per message is still far below
# --nbval-cell-timeout (2000 s), so a kernel that really stops talking still fails.
NBVAL_OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every notebook cell ``notebooks`` and ``slow`` (``pytest -m "not slow"`` is the fast
    inner loop), and raise nbval's per-message output timeout on each."""
    for item in items:
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.notebooks)
            item.add_marker(pytest.mark.slow)
        if hasattr(item, "output_timeout"):
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT_S
