"""The machinery behind ``check(name, fn)``: call a learner's function on seeded cases, compare
with the library's answer, and say in a few lines what is right, what differs and why.

An :class:`Exercise` is data: the cases it runs (each with the library's expected answer), and
the classic mistakes it recognises, each written as a wrong implementation. A wrong answer whose
outputs equal a mistake's outputs on every case is named by that mistake's hint.
"""

from __future__ import annotations

import dis
import inspect
import linecache
import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch

Tensor = torch.Tensor

# what the verdict's first line starts with
PASS, FAIL, TODO = "✓", "✗", "·"
# an exception message that names these is a shape that does not broadcast
BROADCAST_ERRORS = ("must match the size of tensor", "shape mismatch", "cannot be broadcast",
                    "shapes cannot be multiplied")


@dataclass(frozen=True)
class Case:
    """One call of the learner's function: its arguments, the library's answer, and
    ``describe(index)``: where in this case an element sits, in words ("t = 0 (the first step), image 0")."""

    args: Tuple[Any, ...]
    expected: Any
    describe: Callable[[Tuple[int, ...]], str]


@dataclass(frozen=True)
class Mistake:
    """A classic wrong answer, ``fn`` with the exercise's signature, and what to tell a learner who made it."""

    hint: str
    fn: Callable[..., Any]


@dataclass(frozen=True)
class Exercise:
    """A function for the learner to write, with the notebook that teaches it."""

    name: str
    params: Tuple[str, ...]                  # the learner's signature, in order
    notebook: str                            # e.g. "01_forward_process"
    cases: Callable[[], List[Case]]          # built anew (seeded) at each check
    coverage: str                            # what a pass covers, in words
    mistakes: Tuple[Mistake, ...] = ()
    error_hints: Tuple[Tuple[str, str], ...] = ()  # (text in the learner's exception, hint)
    broadcast_hint: str = ("a shape that does not broadcast: per-sample coefficients picked with t have "
                           "shape [B]; make them [B, 1, 1, 1] (e.g. .view(-1, 1, 1, 1)) to scale [B, C, H, W] images")
    rtol: float = 1e-4
    atol: float = 1e-4


@dataclass
class _Outcome:
    """What the learner's function did on the cases."""

    outputs: List[Any] = field(default_factory=list)
    error: Optional[BaseException] = None
    error_case: Optional[int] = None
    stub: bool = False
    changed_input: Optional[str] = None


def describe_t(t: int, T: int, *, sampling: bool = False) -> str:
    """A code step in words: 0-based, with the paper's number and the ends named, from the forward
    process's side or, with ``sampling``, from the sampler's (which meets t = T-1 first)."""
    ends = {0: "the last step of sampling" if sampling else "the first step",
            T - 1: "the first step of sampling" if sampling else "the last step, T"}
    end = f", {ends[t]}" if t in ends else ""
    return f"t = {t} (the paper's t = {t + 1}{end})"


def _is_trivial(fn: Callable) -> bool:
    """True when fn's body does nothing (``...``, ``pass``, a docstring): a stub not yet written."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    idle = {"RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST", "POP_TOP", "CACHE"}
    return all(ins.opname in idle for ins in dis.get_instructions(code))


def _clone(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return value


def _same(a: Any, b: Any) -> bool:
    """False when a tensor argument was changed by the call."""
    if isinstance(a, Tensor):
        return isinstance(b, Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    return True


def _run(fn: Callable, exercise: Exercise, cases: List[Case]) -> _Outcome:
    """Call fn on every case; stop at the first stub, exception or changed input."""
    out = _Outcome()
    for i, case in enumerate(cases):
        args = tuple(_clone(a) for a in case.args)
        try:
            with torch.no_grad():
                got = fn(*args)
        except NotImplementedError:
            out.stub = True
            return out
        except Exception as error:  # the learner's own error: shown, never raised
            out.error, out.error_case = error, i
            return out
        for name, before, after in zip(exercise.params, case.args, args):
            if not _same(before, after):
                out.changed_input = name
                return out
        if got is None or got is Ellipsis:
            out.stub = _is_trivial(fn) or got is Ellipsis
            out.outputs.append(None)
            return out
        out.outputs.append(got)
    return out


def _as_number(value: Any) -> Optional[float]:
    try:
        if isinstance(value, Tensor):
            return float(value.detach().reshape(())) if value.numel() == 1 else None
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else str(x)


def difference(got: Any, expected: Any, case: Case, rtol: float, atol: float) -> Optional[str]:
    """None when ``got`` matches ``expected`` within tolerance; else where and how it differs."""
    if got is None:
        return f"{case.describe(())}: returned None; did you forget `return`?"
    if isinstance(expected, Tensor) and expected.ndim > 0:
        if not isinstance(got, Tensor):
            try:
                got = torch.as_tensor(got)
            except (TypeError, ValueError, RuntimeError):
                return f"returned a {type(got).__name__}; return a tensor of shape {list(expected.shape)}"
        got = got.detach().cpu()
        if tuple(got.shape) != tuple(expected.shape):
            return (f"{case.describe(())}: returned shape {list(got.shape)}, expected {list(expected.shape)}")
        if not expected.is_floating_point():
            bad = got != expected
        else:
            g, e = got.double(), expected.double()
            bad = ~((g - e).abs() <= atol + rtol * e.abs())
            bad |= torch.isnan(g) & ~torch.isnan(e)
        if not bool(bad.any()):
            return None
        index = tuple(int(i) for i in bad.nonzero()[0])
        return (f"{case.describe(index)}: expected {_fmt(float(expected[index]))}, "
                f"got {_fmt(float(got[index]))}")
    if isinstance(expected, list):
        try:
            values = [int(v) for v in got]
        except (TypeError, ValueError):
            return f"returned a {type(got).__name__}; return a list of ints"
        if len(values) != len(expected):
            return f"{case.describe(())}: {len(values)} values, expected {len(expected)}: {values[:6]}..."
        for i, (v, e) in enumerate(zip(values, expected)):
            if v != e:
                return f"{case.describe((i,))}: expected {e}, got {v}"
        return None
    number, target = _as_number(got), float(expected)
    if number is None:
        return f"returned a {type(got).__name__} of shape {list(getattr(got, 'shape', []))}; return one number"
    if abs(number - target) <= atol + rtol * abs(target):
        return None
    return f"{case.describe(())}: expected {_fmt(target)}, got {_fmt(number)}"


def _matches(outputs: Sequence[Any], mistake: Mistake, cases: List[Case], exercise: Exercise) -> bool:
    """True when a mistake gives the learner's outputs on every case."""
    for got, case in zip(outputs, cases):
        try:
            with torch.no_grad():
                wrong = mistake.fn(*(_clone(a) for a in case.args))
        except Exception:
            return False
        if isinstance(wrong, Tensor) and isinstance(got, Tensor) and wrong.is_floating_point() \
                and wrong.shape == got.shape and bool(torch.isnan(wrong).any()):
            if torch.allclose(got.detach().double(), wrong.double(), rtol=exercise.rtol, atol=exercise.atol,
                              equal_nan=True):
                continue
            return False
        if difference(got, wrong, case, exercise.rtol, exercise.atol) is not None:
            return False
    return len(outputs) == len(cases)


def _where_in_learner_code(error: BaseException, fn: Callable) -> str:
    """The learner's line that raised, as "your q_sample, line 2: code" (counting the ``def`` line
    as 1), or "" when the error came from elsewhere."""
    code = getattr(fn, "__code__", None)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if code and f.filename == code.co_filename]
    if not frames:
        return ""
    frame = frames[-1]
    line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
    where = (f"your {fn.__name__}, line {frame.lineno - code.co_firstlineno + 1}" if frame.name == fn.__name__
             else f"your {frame.name}")
    return f"{where}: {line}" if line else where


def _error_hint(exercise: Exercise, error: BaseException) -> Optional[str]:
    message = str(error)
    for needle, hint in exercise.error_hints:
        if needle in message:
            return hint
    if any(text in message for text in BROADCAST_ERRORS):
        return exercise.broadcast_hint
    return None


def verdict(exercise: Exercise, fn: Callable) -> Tuple[bool, List[str]]:
    """(passed, lines to show) for a learner's ``fn``. The global random stream is left as it was,
    so checking does not change what a notebook's later cells draw."""
    with torch.random.fork_rng(devices=[]):
        return _verdict(exercise, fn)


def _verdict(exercise: Exercise, fn: Callable) -> Tuple[bool, List[str]]:
    name = exercise.name
    if not callable(fn):
        return False, [f"{FAIL} {name}: pass the function itself, check({name!r}, {name}), "
                       f"not the result of calling it (got a {type(fn).__name__})"]
    try:
        inspect.signature(fn).bind(*exercise.params)
    except TypeError:
        return False, [f"{FAIL} {name}: your function must take ({', '.join(exercise.params)}); "
                       f"got {name}{inspect.signature(fn)}"]
    except ValueError:
        pass  # a builtin without a signature: let the call tell
    cases = exercise.cases()
    outcome = _run(fn, exercise, cases)
    if outcome.stub:
        return False, [f"{TODO} {name}: not attempted yet. Complete the function above, run its cell, "
                       "then run this cell again."]
    if outcome.error is not None:
        error = outcome.error
        lines = [f"{FAIL} {name} raised {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")]
        where = _where_in_learner_code(error, fn)
        if where:
            lines.append(f"  in {where}")
        hint = _error_hint(exercise, error)
        if hint:
            lines.append(f"  Likely mistake: {hint}.")
        return False, lines
    if outcome.changed_input:
        return False, [f"{FAIL} {name} changed its input `{outcome.changed_input}` in place (e.g. with `*=` or "
                       "an indexed assignment); build a new tensor instead: the caller still needs its input."]
    for got, case in zip(outcome.outputs, cases):
        diff = difference(got, case.expected, case, exercise.rtol, exercise.atol)
        if diff is not None:
            lines = [f"{FAIL} {name} is not right yet.", f"  At {diff}."]
            if len(outcome.outputs) == len(cases):
                for mistake in exercise.mistakes:
                    if _matches(outcome.outputs, mistake, cases, exercise):
                        lines.append(f"  Likely mistake: {mistake.hint}.")
                        break
            return False, lines
    return True, [f"{PASS} {name} is correct: it matches ddpm_lib on {exercise.coverage}."]
