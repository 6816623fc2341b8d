"""Notebook 04's exercises: the Frechet distance behind MNIST-FID, improved precision, and the reverse variance
that fits a model (the bound in bits/dim)."""

from __future__ import annotations

from typing import List

import torch

from ..fitted_variance import fitted_sigma2
from ..metrics.precision_recall import manifold_share, precision_recall
from ..metrics.sample_quality import frechet_distance
from .cases import fixed
from .checker import Case, Exercise, Mistake

NOTEBOOK = "04_evaluation"
Tensor = torch.Tensor


# --- frechet_distance ------------------------------------------------------------------------

def _gaussians(dim: int, gen: torch.Generator):
    a = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    return torch.randn(dim, generator=gen, dtype=torch.float64), a @ a.T / dim + 0.1 * torch.eye(dim, dtype=torch.float64)


def _frechet_cases() -> List[Case]:
    gen = torch.Generator().manual_seed(7)
    cases = []
    for dim in (4, 6):
        (mu1, s1), (mu2, s2) = _gaussians(dim, gen), _gaussians(dim, gen)
        cases.append(Case((mu1, s1, mu2, s2), frechet_distance(mu1, s1, mu2, s2),
                          fixed(f"two different {dim}-dimensional Gaussians")))
    mu, s = _gaussians(3, gen)
    cases.append(Case((mu, s, mu.clone(), s.clone()), frechet_distance(mu, s, mu, s),
                      fixed("a 3-dimensional Gaussian against itself (the distance is 0)")))
    return cases


def _sqrtm(m: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def _frechet(mu1, s1, mu2, s2, *, two=2.0, mean_power=2, means=True) -> float:
    root = _sqrtm(s1)
    cross = torch.trace(_sqrtm(root @ s2 @ root))
    mean_term = (mu1 - mu2).norm() ** mean_power if means else 0.0
    return float(mean_term + s1.trace() + s2.trace() - two * cross)


FRECHET_DISTANCE = Exercise(
    name="frechet_distance", params=("mu1", "sigma1", "mu2", "sigma2"), notebook=NOTEBOOK, cases=_frechet_cases,
    coverage="Gaussians in 4 and 6 dimensions and a Gaussian against itself",
    mistakes=(
        Mistake("the cross term is 2 Tr((sigma1 sigma2)^(1/2)): the factor 2 is missing",
                lambda m1, s1, m2, s2: _frechet(m1, s1, m2, s2, two=1.0)),
        Mistake("the mean term ||mu1 - mu2||^2 is missing",
                lambda m1, s1, m2, s2: _frechet(m1, s1, m2, s2, means=False)),
        Mistake("the mean term is the squared distance ||mu1 - mu2||^2, not the distance",
                lambda m1, s1, m2, s2: _frechet(m1, s1, m2, s2, mean_power=1)),
        Mistake("(sigma1 sigma2)^(1/2) is a matrix square root (of the matrix product), not the element-wise "
                "square root of sigma1 * sigma2",
                lambda m1, s1, m2, s2: float((m1 - m2).square().sum() + s1.trace() + s2.trace()
                                             - 2 * (s1 * s2).abs().sqrt().trace())),
    ),
    broadcast_hint="a shape that does not broadcast: sigma1 and sigma2 are [D, D] matrices, mu1 and mu2 [D] vectors",
    rtol=1e-4, atol=1e-4,  # float32 answers keep about 4 digits of the cross term
)


# --- precision -------------------------------------------------------------------------------

def _precision_cases() -> List[Case]:
    gen = torch.Generator().manual_seed(8)
    cases = []
    for n_real, n_gen, dim, k, shift in ((60, 50, 2, 3, 0.6), (80, 40, 5, 1, 0.3), (40, 70, 3, 5, 1.0)):
        real = torch.randn(n_real, dim, generator=gen, dtype=torch.float64)
        generated = torch.randn(n_gen, dim, generator=gen, dtype=torch.float64) * 1.4 + shift
        cases.append(Case((real, generated, k), precision_recall(real, generated, k)[0],
                          fixed(f"{n_real} real and {n_gen} generated points in {dim} dimensions, k = {k}")))
    return cases


def _radii_with_self(points: Tensor, k: int) -> Tensor:
    return torch.cdist(points, points).kthvalue(k, dim=1).values


PRECISION = Exercise(
    name="precision", params=("real", "generated", "k"), notebook=NOTEBOOK, cases=_precision_cases,
    coverage="three point clouds with k = 1, 3 and 5",
    mistakes=(
        Mistake("each real point's radius is the distance to its k-th nearest OTHER real point: the nearest "
                "point in the distance matrix is the point itself (distance 0), so take the (k + 1)-th smallest",
                lambda real, gen, k: manifold_share(gen, real, _radii_with_self(real, k))),
        Mistake("roles swapped: that is recall (real points inside the generated points' balls); precision asks "
                "how many generated points land inside the real data's balls",
                lambda real, gen, k: precision_recall(real, gen, k)[1]),
    ),
    broadcast_hint="a shape that does not broadcast: torch.cdist(generated, real) gives the [M, N] distances, "
                   "compare them with the radii as a row [1, N]",
    rtol=0.0, atol=1e-6,  # a share of M points moves in steps of 1/M; float32 arithmetic is fine
)

# --- fitted_variance -------------------------------------------------------------------------

def _sq_error(x0_hat: Tensor, x0: Tensor) -> float:
    """e_t: the mean squared error per pixel, over images and pixels alike."""
    return float((x0_hat - x0).double().square().mean())


def _fitted_cases() -> List[Case]:
    gen = torch.Generator().manual_seed(9)
    cases = []
    for beta_tilde, c, shape, error in ((1e-4, 0.5, (4, 1, 6, 6), 0.01), (2e-2, 0.02, (3, 1, 5, 5), 0.3),
                                        (0.0, 1.0, (2, 1, 4, 4), 0.003)):
        x0 = torch.rand(shape, generator=gen) * 2 - 1
        x0_hat = (x0 + error * torch.randn(shape, generator=gen)).clamp(-1, 1)
        cases.append(Case((beta_tilde, c, x0_hat, x0), fitted_sigma2(beta_tilde, c, _sq_error(x0_hat, x0)),
                          fixed(f"beta_tilde_t = {beta_tilde:g}, c_t = {c:g}, {shape[0]} images" +
                                (" (the decoder: beta_tilde = 0, c = 1)" if beta_tilde == 0 else ""))))
    return cases


FITTED_VARIANCE = Exercise(
    name="fitted_variance", params=("beta_tilde_t", "c_t", "x0_hat", "x0"), notebook=NOTEBOOK, cases=_fitted_cases,
    coverage="two reverse steps (small and large beta_tilde_t) and the decoder's case, on batches of images",
    mistakes=(
        Mistake("the mean misses by c_t (x0_hat - x0), so its squared error enters with c_t squared, not c_t",
                lambda b, c, xh, x: b + c * _sq_error(xh, x)),
        Mistake("the posterior's own variance beta_tilde_t is missing: sigma*^2 = beta_tilde_t + c_t^2 e_t",
                lambda b, c, xh, x: c * c * _sq_error(xh, x)),
        Mistake("e_t is the mean squared error per pixel: average over images and pixels, do not sum",
                lambda b, c, xh, x: b + c * c * float((xh - x).double().square().sum())),
        Mistake("e_t is the mean of the squared error, not of the absolute error",
                lambda b, c, xh, x: b + c * c * float((xh - x).double().abs().mean())),
    ),
    broadcast_hint="x0_hat and x0 have the same shape [B, C, H, W]; beta_tilde_t and c_t are numbers",
    rtol=1e-4, atol=1e-9,  # the variances are as small as 1e-4: an absolute tolerance would pass anything
)

EXERCISES = (FRECHET_DISTANCE, PRECISION, FITTED_VARIANCE)
