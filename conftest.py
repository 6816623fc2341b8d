"""pytest at the repository root: notebooks run in quick mode unless DDPM_QUICK is set
otherwise (nbval's kernels inherit this environment)."""

import os

os.environ.setdefault("DDPM_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
