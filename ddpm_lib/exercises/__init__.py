"""Exercises with instant checks: write a function from the notebooks, then ``check`` it.

    from ddpm_lib.exercises import check
    check("q_sample", q_sample)   # True or False, and a short verdict

The checker calls your function on seeded inputs it builds itself (the first and the last step
included), compares with ddpm_lib's own implementation, and says what differs and, where it
recognises one, the likely mistake. An unfinished function (``...``, ``pass``,
``raise NotImplementedError``) is reported as not attempted; an error in your code is shown in a
line or two. Solutions: ``notebooks/solutions/``.
"""

from __future__ import annotations

import difflib
from typing import Callable, Dict, List

from ..errors import InputError
from . import evaluation, forward_process, guidance, reverse_process, sampling, unet
from .checker import Exercise, verdict

EXERCISES: Dict[str, Exercise] = {
    ex.name: ex for module in (forward_process, reverse_process, unet, evaluation, sampling, guidance)
    for ex in module.EXERCISES
}


def exercise_names(notebook: str = "") -> List[str]:
    """The exercises' names, in course order; only those of ``notebook`` (e.g. "01_forward_process") if given."""
    return [name for name, ex in EXERCISES.items() if ex.notebook.startswith(notebook)]


def check(name: str, fn: Callable) -> bool:
    """Check your ``fn`` for the exercise ``name``: prints a short verdict, returns True when it is right.

    Never raises for a mistake in ``fn``: a stub is "not attempted", an exception in your code is
    shown in a line or two. An unknown ``name`` raises ValueError with the closest names."""
    if name not in EXERCISES:
        close = difflib.get_close_matches(str(name), EXERCISES, n=3)
        raise InputError(f"no exercise named {name!r}" + (f"; did you mean {' or '.join(map(repr, close))}?" if close
                                                          else f"; exercises: {', '.join(EXERCISES)}"))
    passed, lines = verdict(EXERCISES[name], fn)
    print("\n".join(lines))
    return passed


__all__ = ["EXERCISES", "Exercise", "check", "exercise_names"]
