"""Solutions to the exercises of notebook 01 · The forward process.

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models", https://arxiv.org/abs/2006.11239
(Sec. 2 and Eq. 4). Steps are 0-based: code t = 0 .. T-1 is the paper's t = 1 .. T. Images are
[B, C, H, W]; t is a long tensor [B], one step per image; alpha_bars is a tensor [T].
"""

import torch


def alpha_bars_from_betas(betas):
    """alpha_bar_t = prod_{s <= t} (1 - beta_s). betas: [T] -> [T]."""
    alphas = 1 - betas                   # alpha_t = 1 - beta_t                   (Sec. 2)
    return torch.cumprod(alphas, dim=0)  # alpha_bar_t = prod_{s <= t} alpha_s    (Sec. 2, above Eq. 4)


def q_sample(x0, t, eps, alpha_bars):
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Eq. 4). Returns [B, C, H, W]."""
    a = alpha_bars[t].reshape(-1, 1, 1, 1)         # alpha_bar_t, one per image: [B, 1, 1, 1]
    return a.sqrt() * x0 + (1 - a).sqrt() * eps    # Eq. 4


def x0_from_eps(xt, t, eps, alpha_bars):
    """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (Eq. 4 solved for x0, as in Eq. 15)."""
    a = alpha_bars[t].reshape(-1, 1, 1, 1)         # alpha_bar_t, one per image: [B, 1, 1, 1]
    return (xt - (1 - a).sqrt() * eps) / a.sqrt()  # Eq. 15 with the true eps
