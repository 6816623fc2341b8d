"""Solutions to the exercises of notebook 04 · Measuring quality.

Two of the numbers the evaluator reports, written in plain torch:

* ``frechet_distance``: the distance between two Gaussians behind FID and MNIST-FID
  (Heusel et al. 2017), the formula displayed in section 2 of the notebook;
* ``precision``: improved precision (Kynkaanniemi et al. 2019, Sec. 2, Eq. 1-2), the share of
  generated samples that land inside the manifold of the real data;
* ``fitted_variance``: the reverse variance that minimises the bound's KL term for a model whose x_0
  guess misses (Bao et al. 2022), section 6.
"""

import torch


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), as a Python float:
    d^2 = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2)).
    mu1, mu2: means [D]; sigma1, sigma2: covariance matrices [D, D] (symmetric, positive semi-definite)."""
    # float64: the three traces are large and nearly cancel when the two Gaussians are close
    mu1, sigma1, mu2, sigma2 = (a.double() for a in (mu1, sigma1, mu2, sigma2))

    # sigma1^(1/2) by eigendecomposition of a symmetric PSD matrix: sigma1 = V diag(w) V^T -> V diag(sqrt(w)) V^T
    w, v = torch.linalg.eigh(sigma1)
    root1 = v @ torch.diag(w.clamp_min(0).sqrt()) @ v.T   # clamp: rounding can make a zero eigenvalue slightly negative

    # sigma1 sigma2 is not symmetric, but sigma1^(1/2) sigma2 sigma1^(1/2) has the same eigenvalues and is
    # symmetric PSD, so Tr((sigma1 sigma2)^(1/2)) = sum of the square roots of its (real, >= 0) eigenvalues
    inner = root1 @ sigma2 @ root1
    inner = (inner + inner.T) / 2                          # symmetric up to rounding; make it exactly so
    tr_sqrt = torch.linalg.eigvalsh(inner).clamp_min(0).sqrt().sum()

    d2 = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt   # the FID formula (Heusel et al. 2017)
    return d2.item()


def precision(real, generated, k=3):
    """Improved precision (Kynkaanniemi et al. 2019) as a Python float in [0, 1].
    real: features [N, D] of real images; generated: features [M, D] of samples; k: which neighbour sets a ball's radius.
    A generated row counts if it lies within (<=) the radius of at least one real row's ball, the radius being the
    distance from that real row to its k-th nearest OTHER real row."""
    real, generated = real.double(), generated.double()

    # radius of each real point's ball: distance to its k-th nearest neighbour among the other real points.
    # Row i of the distance matrix contains the point itself at distance 0, the smallest entry,
    # so the k-th nearest OTHER point is the (k + 1)-th smallest entry.
    d_real = torch.cdist(real, real)                       # [N, N]
    radii = d_real.kthvalue(k + 1, dim=1).values           # [N]

    # f(phi_g, Phi_r) = 1 if ||phi_g - phi_r|| <= radius(phi_r) for some real phi_r (Eq. 1)
    d_gen = torch.cdist(generated, real)                   # [M, N]
    inside = (d_gen <= radii[None, :]).any(dim=1)          # [M] bool
    return inside.double().mean().item()                   # precision = mean of f over the samples (Eq. 2)


def fitted_variance(beta_tilde_t, c_t, x0_hat, x0):
    """sigma*^2 = beta_tilde_t + c_t^2 e_t, with e_t = E ||x0_hat - x0||^2 / d, the mean squared error per pixel.
    The model's mean misses the posterior mean by c_t (x0_hat - x0) (Eq. 7 with x0_hat in place of x0), and the
    KL between N(mu_tilde, beta_tilde_t) and N(mu_theta, sigma^2), averaged over images, is smallest at this sigma^2."""
    e_t = (x0_hat.double() - x0.double()).square().mean()   # average over images and pixels alike
    return float(beta_tilde_t + c_t ** 2 * e_t)
