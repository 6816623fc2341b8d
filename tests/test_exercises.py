"""The exercise checker tells right from wrong: the library's answer and every solution pass, classic
wrong answers are refused with the right diagnosis, stubs are "not attempted", and a learner's error
is shown in a line or two without the checker's traceback."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import torch
import torch.nn.functional as F

import ddpm_lib
from ddpm_lib.exercises import EXERCISES, check, exercise_names
from ddpm_lib.exercises.checker import verdict
from ddpm_lib.metrics.precision_recall import precision_recall
from ddpm_lib.metrics.sample_quality import frechet_distance
from ddpm_lib.models.unet import ResBlock
from ddpm_lib.schedules import schedule_from_betas

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
SOLUTIONS = ROOT / "notebooks" / "solutions"


def run(name: str, fn: Callable, capsys: pytest.CaptureFixture) -> tuple:
    """(passed, printed text) of check(name, fn)."""
    passed = check(name, fn)
    return passed, capsys.readouterr().out


# --- the library's own answer, in each exercise's signature ------------------------------------

def _from_alpha_bars(alpha_bars: torch.Tensor):
    a = alpha_bars.double()
    return schedule_from_betas(1 - a / torch.cat([torch.ones(1, dtype=a.dtype), a[:-1]]))


def _ddim(xt, eps, a_t, a_prev):
    schedule = ddpm_lib.make_schedule(T=1000)
    step = lambda a: int((schedule.alpha_bars.double() - a).abs().argmin())  # noqa: E731
    return ddpm_lib.ddim_step(schedule, eps, xt, step(a_t), step(a_prev) if a_prev < 1 else -1, clip_x0=False)


def _add_time(h, emb, proj):
    block = ResBlock(h.shape[1], h.shape[1], emb.shape[1], groups=1, dropout=0.0)
    block.emb[1] = proj
    return h + block.emb(emb)[:, :, None, None]


class _Pair(torch.nn.Module):
    null_label = 10

    def __init__(self, cond, uncond):
        super().__init__()
        self.cond, self.uncond = cond, uncond

    def forward(self, x, t, y):
        return torch.where((y == 10).view(-1, 1, 1, 1), self.uncond, self.cond)


LIBRARY: Dict[str, Callable] = {
    "alpha_bars_from_betas": lambda betas: schedule_from_betas(betas).alpha_bars,
    "q_sample": lambda x0, t, eps, ab: ddpm_lib.q_sample(_from_alpha_bars(ab), x0, t, eps),
    "x0_from_eps": lambda xt, t, eps, ab: ddpm_lib.predict_x0_from_eps(_from_alpha_bars(ab), xt, t, eps),
    "l_simple": lambda m, x0, t, eps, ab: ddpm_lib.simple_loss(m, _from_alpha_bars(ab), x0, t=t, noise=eps),
    "posterior_mean": lambda x0, xt, t, b: ddpm_lib.q_posterior(schedule_from_betas(b), x0, xt, t)[0],
    "ddpm_step": lambda xt, t, e, b, z: ddpm_lib.ddpm_step(schedule_from_betas(b), e, xt, t, noise=z,
                                                           variance="beta", clip_x0=False),
    "sinusoidal_embedding": ddpm_lib.sinusoidal_embedding,
    "add_time": _add_time,
    "frechet_distance": frechet_distance,
    "precision": lambda real, gen, k: precision_recall(real, gen, k)[0],
    "ddim_step": _ddim,
    "trailing_timesteps": ddpm_lib.trailing_timesteps,
    "slerp": ddpm_lib.slerp,
    "guided_eps": lambda c, u, w: ddpm_lib.guided_eps(_Pair(c, u), torch.arange(len(c)), w)(
        torch.zeros_like(c), torch.zeros(len(c), dtype=torch.long)),
    # drop_labels draws its own uniforms from a generator; the solution test covers it
}


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_the_library_answer_passes(name: str, capsys: pytest.CaptureFixture) -> None:
    passed, out = run(name, LIBRARY[name], capsys)
    assert passed, out
    assert out.startswith("✓") and "correct" in out


# notebooks that apply what the others built to new data, with no new equation for the learner to write
NO_EXERCISES = {"07_your_own_data"}


def test_at_least_fifteen_exercises_two_per_notebook() -> None:
    assert len(EXERCISES) >= 15
    for notebook in NOTEBOOKS:
        if notebook.stem in NO_EXERCISES:
            assert not exercise_names(notebook.stem), notebook.stem
            continue
        assert len(exercise_names(notebook.stem)) >= 2, notebook.stem


# --- solutions ---------------------------------------------------------------------------------

def _solutions() -> Dict[str, Callable]:
    found = {}
    for path in sorted(SOLUTIONS.glob("0*.py")):
        spec = importlib.util.spec_from_file_location(f"solution_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name in exercise_names(path.stem):
            found[name] = getattr(module, name)
    return found


def test_every_exercise_has_a_solution_in_its_notebooks_file() -> None:
    assert sorted(_solutions()) == sorted(EXERCISES)
    for path in SOLUTIONS.glob("0*.py"):
        assert "ddpm_lib" not in path.read_text(), f"{path.name} should be written without the library"


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_solution_passes(name: str, capsys: pytest.CaptureFixture) -> None:
    passed, out = run(name, _solutions()[name], capsys)
    assert passed, out


# --- wrong answers -----------------------------------------------------------------------------

@pytest.mark.parametrize("name,index", [(n, i) for n, ex in EXERCISES.items() for i in range(len(ex.mistakes))])
def test_each_known_mistake_is_refused_and_named(name: str, index: int) -> None:
    exercise = EXERCISES[name]
    mistake = exercise.mistakes[index]
    passed, lines = verdict(exercise, mistake.fn)
    assert not passed
    assert lines[-1] == f"  Likely mistake: {mistake.hint}.", lines


def _ab(ab, t):
    return ab[t].view(-1, 1, 1, 1)


def _cumprod(betas):
    return torch.cumprod(1 - betas, 0)


# Written here by hand, independently of the checker's own catalogue: (exercise, wrong answer, words
# the diagnosis must contain; None: refused, no diagnosis expected)
WRONG = [
    ("q_sample", lambda x0, t, e, ab: _ab(ab, t) * x0 + (1 - _ab(ab, t)) * e, "square roots"),
    ("q_sample", lambda x0, t, e, ab: (1 - _ab(ab, t)).sqrt() * x0 + _ab(ab, t).sqrt() * e, "swapped"),
    ("q_sample", lambda x0, t, e, ab: _ab(ab, t - 1).sqrt() * x0 + (1 - _ab(ab, t - 1)).sqrt() * e, "off by one"),
    ("q_sample", lambda x0, t, e, ab: ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * e, "does not broadcast"),
    ("q_sample", lambda x0, t, e, ab: _ab(ab, t + 1).sqrt() * x0 + (1 - _ab(ab, t + 1)).sqrt() * e, "0-based"),
    ("q_sample", lambda x0, t, e, ab: _ab(ab, t).sqrt() * x0 + 0.99 * (1 - _ab(ab, t)).sqrt() * e, None),
    ("x0_from_eps", lambda xt, t, e, ab: (xt + (1 - _ab(ab, t)).sqrt() * e) / _ab(ab, t).sqrt(), "sign"),
    ("x0_from_eps", lambda xt, t, e, ab: xt - (1 - _ab(ab, t)).sqrt() * e, "division"),
    ("x0_from_eps", lambda xt, t, e, ab: (xt - (1 - _ab(ab, t)) * e) / _ab(ab, t), "square roots"),
    ("x0_from_eps", lambda xt, t, e, ab: (xt - (1 - _ab(ab, t)).sqrt() * e) / _ab(ab, t).sqrt() + 1e-2, None),
    ("posterior_mean",
     lambda x0, xt, t, b: (_ab(_cumprod(b), t).sqrt() * _ab(b, t) * x0
                           + _ab(1 - b, t).sqrt() * (1 - _ab(_cumprod(b), t)) * xt) / (1 - _ab(_cumprod(b), t)),
     "alpha_bar_{t-1}"),
    ("posterior_mean",
     lambda x0, xt, t, b: (_ab(_cumprod(b), t - 1).sqrt() * _ab(b, t) * x0
                           + _ab(1 - b, t).sqrt() * (1 - _ab(_cumprod(b), t - 1)) * xt) / (1 - _ab(_cumprod(b), t)),
     "at t = 0"),
    ("posterior_mean",
     lambda x0, xt, t, b: (_ab(_cumprod(b), t - 1).sqrt() * _ab(b, t) * xt
                           + _ab(1 - b, t).sqrt() * (1 - _ab(_cumprod(b), t - 1)) * x0) / (1 - _ab(_cumprod(b), t)),
     None),
    ("ddpm_step", lambda xt, t, e, b, z: (xt - b[t] / (1 - _cumprod(b)[t]).sqrt() * e) / (1 - b[t]).sqrt()
     + b[t].sqrt() * z, "last step"),
    ("ddpm_step", lambda xt, t, e, b, z: (xt - b[t] / (1 - _cumprod(b)[t]).sqrt() * e) / (1 - b[t]).sqrt()
     + (b[t] * z if t > 0 else 0), "standard deviation"),
    ("ddpm_step", lambda xt, t, e, b, z: (xt - b[t] / (1 - _cumprod(b)[t]).sqrt() * e) / _cumprod(b)[t].sqrt()
     + (b[t].sqrt() * z if t > 0 else 0), "alpha_t"),
    ("ddpm_step", lambda xt, t, e, b, z: (xt - b[t] / (1 - _cumprod(b)[t]).sqrt() * e) / (1 - b[t]).sqrt()
     + (b[t].sqrt() * z if t > 1 else 0), None),
    ("ddim_step", lambda xt, e, a, ap: math.sqrt(ap) * xt + math.sqrt(1 - ap) * e, "predict x0"),
    ("ddim_step", lambda xt, e, a, ap: math.sqrt(ap) * (xt - math.sqrt(1 - a) * e) / math.sqrt(a)
     + math.sqrt(1 - a) * e, "direction term"),
    ("ddim_step", lambda xt, e, a, ap: ap * (xt - (1 - a) ** 0.5 * e) / a ** 0.5 + (1 - ap) * e, "square roots"),
    ("guided_eps", lambda c, u, w: u + w * (c - u), "other guidance convention"),
    ("guided_eps", lambda c, u, w: (1 + w) * u - w * c, "swapped"),
    ("guided_eps", lambda c, u, w: w * (c - u), "1 + w"),
    ("guided_eps", lambda c, u, w: c + w * (c - u) * 0.5, None),
]


@pytest.mark.parametrize("name,wrong,words", WRONG, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG)])
def test_classic_wrong_answers_are_refused_with_the_right_diagnosis(name, wrong, words, capsys) -> None:
    passed, out = run(name, wrong, capsys)
    assert not passed, out
    assert out.startswith("✗"), out
    if words is None:
        assert "Likely mistake" not in out and "expected" in out and "got" in out, out
    else:
        assert "Likely mistake" in out and words in out, out


def test_a_wrong_answer_says_where_and_by_how_much(capsys) -> None:
    passed, out = run("q_sample", lambda x0, t, e, ab: _ab(ab, t) * x0 + (1 - _ab(ab, t)) * e, capsys)
    first = out.splitlines()[1]
    assert re.search(r"At t = \d+ \(the paper's t = \d+.*\), image \d+, pixel \[.*\]: expected -?\d.*, got -?\d", first), out


# --- stubs, errors and misuse --------------------------------------------------------------------

STUB_BODIES = ["...", "pass", '"""to do"""', "raise NotImplementedError", "return ...",
               "raise NotImplementedError('write me')"]


@pytest.mark.parametrize("name", sorted(EXERCISES))
@pytest.mark.parametrize("body", STUB_BODIES)
def test_a_stub_is_not_attempted(name: str, body: str, capsys) -> None:
    namespace: dict = {}
    exec(f"def {name}({', '.join(EXERCISES[name].params)}):\n    {body}\n", namespace)
    passed, out = run(name, namespace[name], capsys)
    assert not passed
    assert out.startswith("·") and "not attempted" in out, out


def test_a_crash_shows_the_learners_error_not_the_checkers_traceback(capsys) -> None:
    def q_sample(x0, t, eps, alpha_bars):
        scale = 1 / 0
        return scale * x0

    passed, out = run("q_sample", q_sample, capsys)
    assert not passed
    lines = out.strip().splitlines()
    assert lines[0] == "✗ q_sample raised ZeroDivisionError: division by zero"
    assert lines[1].strip() == "in your q_sample, line 2: scale = 1 / 0"  # counted from the def line
    assert len(lines) <= 3 and "Traceback" not in out and "exercises" not in out


def test_a_function_without_return_is_told_so(capsys) -> None:
    def guided_eps(eps_cond, eps_uncond, w):
        (1 + w) * eps_cond - w * eps_uncond

    passed, out = run("guided_eps", guided_eps, capsys)
    assert not passed and "forget `return`" in out, out


def test_changing_an_input_in_place_is_refused(capsys) -> None:
    def drop_labels(y, null_label, p, u):
        y[u < p] = null_label
        return y

    passed, out = run("drop_labels", drop_labels, capsys)
    assert not passed and "changed its input `y` in place" in out, out


def test_misuse_is_explained(capsys) -> None:
    assert not check("slerp", lambda z0, z1: z0)
    assert "must take (z0, z1, alpha)" in capsys.readouterr().out
    assert not check("slerp", torch.zeros(3))
    assert "pass the function itself" in capsys.readouterr().out
    with pytest.raises(ValueError, match="did you mean 'q_sample'"):
        check("qsample", lambda *a: None)


def test_checking_leaves_the_learners_random_stream_alone() -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    for name, fn in LIBRARY.items():
        verdict(EXERCISES[name], fn)
    assert torch.equal(state, torch.get_rng_state())


def test_a_right_answer_in_another_style_passes(capsys) -> None:
    """Equivalent code, not the library's: float64 or float32 math, gather, another index form."""
    def q_sample(x0, t, eps, alpha_bars):
        a = alpha_bars.double().gather(0, t)[:, None, None, None]
        return (a.sqrt() * x0 + (1 - a).sqrt() * eps).float()

    def sinusoidal_embedding(t, dim):
        freqs = 10_000 ** (-torch.arange(dim // 2) / (dim // 2))
        return torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], dim=1)

    assert run("q_sample", q_sample, capsys)[0]
    assert run("sinusoidal_embedding", sinusoidal_embedding, capsys)[0]
    assert run("add_time", lambda h, emb, proj: h + proj(F.silu(emb)).unsqueeze(-1).unsqueeze(-1), capsys)[0]

    def precision(real, generated, k):  # float32 shares
        radii = torch.cdist(real.float(), real.float()).kthvalue(k + 1, dim=1).values
        return (torch.cdist(generated.float(), real.float()) <= radii).any(1).float().mean()

    def frechet_distance(mu1, sigma1, mu2, sigma2):  # float32 all through
        mu1, sigma1, mu2, sigma2 = (a.float() for a in (mu1, sigma1, mu2, sigma2))
        vals, vecs = torch.linalg.eigh(sigma1)
        root = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
        cross = torch.linalg.eigvalsh(root @ sigma2 @ root).clamp(min=0).sqrt().sum()
        return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * cross

    assert run("precision", precision, capsys)[0]
    assert run("frechet_distance", frechet_distance, capsys)[0]


# --- the notebooks hold the exercises, as stubs -------------------------------------------------

def _code_cells(path: Path) -> List[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_every_exercise_sits_in_its_notebook_as_a_stub_then_a_check(capsys) -> None:
    seen = []
    for path in NOTEBOOKS:
        cells = _code_cells(path)
        for i, source in enumerate(cells):
            for name in re.findall(r'check\("(\w+)", (\w+)\)', source):
                assert name[0] == name[1], source
                seen.append(name[0])
                exercise = EXERCISES[name[0]]
                assert exercise.notebook == path.stem, (name, path.stem)
                stub = cells[i - 1]
                assert re.search(rf"def {name[0]}\({', '.join(exercise.params)}", stub), stub
                namespace: dict = {}
                exec(stub, namespace)
                passed, out = run(name[0], namespace[name[0]], capsys)
                assert not passed and "not attempted" in out, (path.stem, name[0], out)
    assert sorted(seen) == sorted(EXERCISES)
