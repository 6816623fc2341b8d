"""The library's own errors are one line at the command line; anything else keeps its traceback."""

from __future__ import annotations

import pytest
import torch

import ddpm_lib
import ddpm_lib.__main__ as cli
from ddpm_lib.errors import DDPMError, InputError, InputTypeError, SetupError


def test_every_error_the_library_raises_on_purpose_is_a_ddpm_error_and_its_builtin():
    for error, builtin in ((InputError, ValueError), (InputTypeError, TypeError), (SetupError, RuntimeError),
                           (ddpm_lib.CheckpointError, RuntimeError), (ddpm_lib.MNISTDataError, RuntimeError),
                           (ddpm_lib.NonFiniteLossError, FloatingPointError)):
        assert issubclass(error, DDPMError) and issubclass(error, builtin), error
    with pytest.raises(InputError, match=r"t must lie in \[0, T\)"):  # a check of the library's own
        ddpm_lib.q_sample(ddpm_lib.make_schedule(T=10), torch.zeros(1, 1, 28, 28), 10)


def _sampling_raises(monkeypatch, error: BaseException) -> None:
    def broken(*args, **kwargs):
        raise error
    monkeypatch.setattr(cli, "sample", broken)


def test_a_library_error_is_one_line(monkeypatch, capsys):
    _sampling_raises(monkeypatch, InputError("x must be data in [-1, 1]\nsecond line"))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    code = cli.main(["sample", "--checkpoint", str(ddpm_lib.pretrained_path("unet_mnist")), "--n", "2",
                     "--out", "/tmp/ddpm_errors_test"])
    assert code == 1
    assert capsys.readouterr().err == "error: x must be data in [-1, 1]\n"


def test_any_other_error_keeps_its_traceback(monkeypatch):
    """A bug in a user's own network (here a shape error from torch) is not hidden behind one line."""
    _sampling_raises(monkeypatch, RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x784 and 64x10)"))
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        cli.main(["sample", "--checkpoint", str(ddpm_lib.pretrained_path("unet_mnist")), "--n", "2",
                  "--out", "/tmp/ddpm_errors_test"])


def test_ddpm_debug_shows_the_traceback_of_every_error(monkeypatch):
    _sampling_raises(monkeypatch, InputError("x must be data in [-1, 1]"))
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(InputError):
        cli.main(["sample", "--checkpoint", str(ddpm_lib.pretrained_path("unet_mnist")), "--n", "2",
                  "--out", "/tmp/ddpm_errors_test"])
