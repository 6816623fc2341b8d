"""Solutions to the exercises of notebook 05 (faster sampling): ddim_step, trailing_timesteps, slerp.

Plain torch, one possible way to write each; the equations are from Song, Meng & Ermon 2021 (DDIM,
https://arxiv.org/abs/2010.02502), Ho, Jain & Abbeel 2020 (https://arxiv.org/abs/2006.11239),
Lin et al. 2024 (trailing steps, https://arxiv.org/abs/2305.08891) and White 2016 (slerp,
https://arxiv.org/abs/1609.04468). Time steps are 0-based (code t = paper t - 1).
"""

import math

import torch


def ddim_step(xt, eps_hat, alpha_bar_t, alpha_bar_prev):
    """One deterministic DDIM step x_t -> x_s (eta = 0; Song et al. 2021, Eq. 12):
        x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t)     (Eq. 15 of Ho et al.)
        x_s    = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev) eps_hat
    xt, eps_hat: [B, C, H, W]; alpha_bar_t, alpha_bar_prev: Python floats (alpha_bar_prev = 1.0 at the end).
    Returns x_s: [B, C, H, W]. No clipping."""
    # Eq. 15 of Ho et al. (Eq. 4 solved for x0): the clean image the noise estimate points to
    x0_hat = (xt - math.sqrt(1 - alpha_bar_t) * eps_hat) / math.sqrt(alpha_bar_t)
    # Eq. 12 with sigma_t = 0: re-noise x0_hat to the level of the earlier step, with the same noise
    return math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(1 - alpha_bar_prev) * eps_hat


def trailing_timesteps(T, num_steps):
    """The "trailing" sampling path (Lin et al. 2024): t_i = round(T - i * T / num_steps) - 1, i = 0 .. num_steps - 1.
    T, num_steps: Python ints. Returns a list of num_steps ints, largest first (999, 949, ..., 49 for T = 1000, 20 steps)."""
    width = T / num_steps                                              # one step-width
    return [round(T - i * width) - 1 for i in range(num_steps)]        # T - 1 down to width - 1, 0-based


def slerp(z0, z1, alpha):
    """Spherical interpolation per batch item (White 2016):
        sin((1 - alpha) theta) / sin(theta) z0 + sin(alpha theta) / sin(theta) z1,
    theta = the angle between the flattened z0[i] and z1[i].
    z0, z1: [B, C, H, W], the same shape; alpha: float in [0, 1]. Returns [B, C, H, W]."""
    a, b = z0.flatten(1), z1.flatten(1)                                # [B, D], one row per item
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))             # cos theta = a.b / (|a| |b|)
    theta = torch.acos(cos.clamp(-1, 1)).unsqueeze(1)                  # [B, 1]; clamp: rounding can pass 1
    sin = torch.sin(theta)
    out = (torch.sin((1 - alpha) * theta) * a + torch.sin(alpha * theta) * b) / sin
    # parallel items (theta = 0) would divide 0 by 0: there the arc is the straight line
    lerp = (1 - alpha) * a + alpha * b
    out = torch.where(sin > 1e-6, out, lerp)
    return out.reshape(z0.shape)
