"""Solutions to the exercises of notebook 06 (guided generation): drop_labels, guided_eps.

Plain torch, one possible way to write each; both halves of classifier-free guidance
(Ho & Salimans 2022, https://arxiv.org/abs/2207.12598).
"""

import torch


def drop_labels(y, null_label, p, u):
    """Label dropout, the training half of classifier-free guidance (Ho & Salimans 2022):
    label i becomes null_label where u[i] < p and stays y[i] elsewhere.
    y: long tensor [B]; null_label: int; p: float in [0, 1]; u: uniform draws in [0, 1), [B].
    Returns a new long tensor [B] (y unchanged)."""
    drop = u < p                                           # True with probability p for u ~ U[0, 1)
    return torch.where(drop, torch.full_like(y, null_label), y)   # c -> null where dropped (a new tensor)


def guided_eps(eps_cond, eps_uncond, w):
    """Classifier-free guidance (Ho & Salimans 2022, Eq. 6): (1 + w) eps_cond - w eps_uncond.
    eps_cond, eps_uncond: [B, C, H, W]; w: float >= 0 (w = 0: the conditional model). Returns [B, C, H, W]."""
    return (1 + w) * eps_cond - w * eps_uncond             # Eq. 6: eps_cond + w (eps_cond - eps_uncond)
