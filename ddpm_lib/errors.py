"""The errors ddpm_lib raises on purpose, each meant to be read in one line.

Every one derives from :class:`DDPMError`, so a caller (the command line) can tell the library's
own verdict on an input, a file or a setting from a bug anywhere else (a shape error in a user's
own network keeps its traceback). Each also derives from the built-in type it replaces, so
``except ValueError`` keeps catching bad values.
"""

from __future__ import annotations


class DDPMError(Exception):
    """Base of the errors ddpm_lib raises on purpose: what was wrong and how to fix it, in one line."""


class InputError(DDPMError, ValueError):
    """A value ddpm_lib was given is not one it can use (a step out of range, data not in [-1, 1], ...)."""


class InputTypeError(DDPMError, TypeError):
    """An argument of the wrong type (integer pixels where floats belong, a float step, ...)."""


class SetupError(DDPMError, RuntimeError):
    """The machine or the run cannot do what was asked (a device that is not there, ...)."""
