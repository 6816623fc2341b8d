"""Solutions to the exercises of notebook 02 · From math to code: an MLP that draws digits.

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models", https://arxiv.org/abs/2006.11239
(Algorithm 1 with Eq. 14, Eq. 7, Algorithm 2). Steps are 0-based: code t = 0 .. T-1 is the paper's
t = 1 .. T, so the paper's alpha_bar_0 = 1 is the value used at code t = 0. Images are [B, C, H, W].
"""

import torch


def l_simple(model, x0, t, eps, alpha_bars):
    """L_simple: the mean over all elements of (eps - model(x_t, t))^2 (Algorithm 1, Eq. 14).
    t: long tensor [B]; alpha_bars: [T]. Returns a scalar tensor."""
    a = alpha_bars[t].reshape(-1, 1, 1, 1)        # alpha_bar_t, one per image: [B, 1, 1, 1]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps     # x_t from x0 in one jump (Eq. 4)
    return ((eps - model(xt, t)) ** 2).mean()     # || eps - eps_theta(x_t, t) ||^2, averaged (Eq. 14)


def posterior_mean(x0, xt, t, betas):
    """mu_tilde_t(x_t, x_0), the mean of q(x_{t-1} | x_t, x_0) (Eq. 7).
    t: long tensor [B]; betas: [T]. Returns [B, C, H, W]."""
    alphas = 1 - betas                                        # alpha_t = 1 - beta_t
    alpha_bars = torch.cumprod(alphas, dim=0)                 # alpha_bar_t = prod_{s <= t} alpha_s
    alpha_bars_prev = torch.cat([torch.ones_like(alpha_bars[:1]), alpha_bars[:-1]])  # alpha_bar_{t-1}; 1 at t = 0
    beta_t = betas[t].reshape(-1, 1, 1, 1)                    # one value per image: [B, 1, 1, 1]
    alpha_t = alphas[t].reshape(-1, 1, 1, 1)
    a_t = alpha_bars[t].reshape(-1, 1, 1, 1)
    a_prev = alpha_bars_prev[t].reshape(-1, 1, 1, 1)
    coef_x0 = a_prev.sqrt() * beta_t / (1 - a_t)              # sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t)      (Eq. 7)
    coef_xt = alpha_t.sqrt() * (1 - a_prev) / (1 - a_t)       # sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) (Eq. 7)
    return coef_x0 * x0 + coef_xt * xt                        # mu_tilde_t (Eq. 7)


def ddpm_step(xt, t, eps_hat, betas, z):
    """x_{t-1} from x_t, Algorithm 2 line 4, with sigma_t^2 = beta_t and no noise at t = 0.
    t: a Python int (the same step for the whole batch); betas: [T]. Returns [B, C, H, W]."""
    alphas = 1 - betas                                       # alpha_t = 1 - beta_t
    alpha_bars = torch.cumprod(alphas, dim=0)                # alpha_bar_t
    beta_t, alpha_t, a_t = betas[t], alphas[t], alpha_bars[t]  # 0-d tensors: broadcast over the batch
    mean = (xt - beta_t / (1 - a_t).sqrt() * eps_hat) / alpha_t.sqrt()  # 1/sqrt(alpha_t) (x_t - beta_t/sqrt(1 - alpha_bar_t) eps_hat) (Eq. 11)
    if t == 0:
        return mean                                          # the last step adds no noise (Algorithm 2: z = 0 at t = 1)
    return mean + beta_t.sqrt() * z                          # + sigma_t z, sigma_t = sqrt(beta_t) (Algorithm 2 line 4)
