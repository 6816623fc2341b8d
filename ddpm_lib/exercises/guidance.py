"""Notebook 06's exercises: the two halves of classifier-free guidance (Ho & Salimans 2022)."""

from __future__ import annotations

from typing import List

import torch

from .. import guidance
from .checker import Case, Exercise, Mistake

NOTEBOOK = "06_guided_generation"
Tensor = torch.Tensor
NULL = 10  # the "no class" label of MNIST's ten digits


class _TwoAnswers(torch.nn.Module):
    """A stand-in conditional model: eps_cond for a real label, eps_uncond for the null label."""

    null_label = NULL

    def __init__(self, eps_cond: Tensor, eps_uncond: Tensor):
        super().__init__()
        self.eps_cond, self.eps_uncond = eps_cond, eps_uncond

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        return torch.where((y == NULL).view(-1, 1, 1, 1), self.eps_uncond, self.eps_cond)


# --- guided_eps ------------------------------------------------------------------------------

def _guidance_cases() -> List[Case]:
    gen = torch.Generator().manual_seed(11)
    cases = []
    for w in (0.0, 0.5, 3.0):
        cond, uncond = torch.randn(4, 1, 5, 5, generator=gen), torch.randn(4, 1, 5, 5, generator=gen)
        eps = guidance.guided_eps(_TwoAnswers(cond, uncond), torch.arange(4), w, joint=False)
        expected = eps(torch.zeros(4, 1, 5, 5), torch.zeros(4, dtype=torch.long))  # ddpm_lib's Eq. 6
        cases.append(Case((cond, uncond, w), expected,
                          lambda index, w=w: f"w = {w}" + (f", pixel {list(index)}" if index else "")))
    return cases


GUIDED_EPS = Exercise(
    name="guided_eps", params=("eps_cond", "eps_uncond", "w"), notebook=NOTEBOOK, cases=_guidance_cases,
    coverage="w = 0 (the plain conditional model), 0.5 and 3",
    mistakes=(
        Mistake("the other guidance convention, eps_uncond + w (eps_cond - eps_uncond), where w = 1 is the plain "
                "conditional model; Ho & Salimans' Eq. 6 is (1 + w) eps_cond - w eps_uncond, so w = 0 is",
                lambda c, u, w: u + w * (c - u)),
        Mistake("swapped roles: the conditional prediction gets the weight 1 + w, the unconditional one - w",
                lambda c, u, w: (1 + w) * u - w * c),
        Mistake("the weight of eps_cond is 1 + w, not w", lambda c, u, w: w * c - w * u),
        Mistake("guidance pushes away from the unconditional prediction: - w eps_uncond, not + w",
                lambda c, u, w: (1 + w) * c + w * u),
    ),
)


# --- drop_labels -----------------------------------------------------------------------------

def _dropout_cases() -> List[Case]:
    y = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(12))
    cases = []
    for seed, p in enumerate((0.1, 0.5, 0.0, 1.0)):
        u = torch.rand(y.shape, generator=torch.Generator().manual_seed(seed))
        expected = guidance.drop_labels(y, NULL, p, generator=torch.Generator().manual_seed(seed))

        def describe(index, p=p, u=u):
            if not index:
                return f"p = {p}, 200 labels"
            return f"p = {p}, label {index[0]} (u = {float(u[index[0]]):.3f})"
        cases.append(Case((y, NULL, p, u), expected, describe))
    return cases


DROP_LABELS = Exercise(
    name="drop_labels", params=("y", "null_label", "p", "u"), notebook=NOTEBOOK, cases=_dropout_cases,
    coverage="200 labels at p = 0, 0.1, 0.5 and 1",
    mistakes=(
        Mistake("a label is dropped where u < p (probability p); u > p keeps it with probability p instead",
                lambda y, null, p, u: torch.where(u > p, torch.full_like(y, null), y)),
        Mistake("a dropped label becomes null_label (the 'no class' label), not 0, which is the digit 0",
                lambda y, null, p, u: torch.where(u < p, torch.zeros_like(y), y)),
        Mistake("each label is dropped on its own draw u[i]; one draw for the whole batch drops all or nothing",
                lambda y, null, p, u: torch.full_like(y, null) if float(u[0]) < p else y.clone()),
    ),
    broadcast_hint="a shape that does not broadcast: y and u are both [B]",
)

EXERCISES = (GUIDED_EPS, DROP_LABELS)
