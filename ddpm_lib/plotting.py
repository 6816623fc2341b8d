"""Pictures: image grids, denoising strips, loss curves and schedule plots (matplotlib).

Each function draws into a new figure (or the ``ax`` given) and returns the figure; call
``plt.show()`` in a notebook cell to display it."""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from .errors import InputError
from .data import to_unit_range
from .schedules import Schedule

Tensor = torch.Tensor


def image_grid(images: Tensor, nrow: int = 8, padding: int = 2) -> Tensor:
    """[N, C, H, W] images in [-1, 1] -> one [H', W', C] grid in [0, 1] (torchvision make_grid)."""
    grid = make_grid(to_unit_range(images.detach().float().cpu()), nrow=nrow, padding=padding, pad_value=1.0)
    return grid.permute(1, 2, 0)


def show_grid(images: Tensor, nrow: int = 8, title: Optional[str] = None,
              scale: float = 0.6, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Show a batch of images (in [-1, 1]) as a grid."""
    grid = image_grid(images, nrow)
    if ax is None:
        rows = (len(images) + nrow - 1) // nrow
        _, ax = plt.subplots(figsize=(scale * min(nrow, len(images)), scale * rows + (0.4 if title else 0)))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")  # pixels as squares, also for 8x8 images
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax.figure


# save_grid scales images smaller than this (in pixels, the shorter side) up by a whole factor, each
# pixel a square block, so that a grid of 8x8 images can be seen; MNIST's 28x28 are kept as they are
MIN_SAVED_SIZE = 28


def upscale(images: Tensor, min_size: int = MIN_SAVED_SIZE) -> Tensor:
    """[N, C, H, W] images repeated k times along H and W (nearest neighbour, no new values), with k the
    smallest whole factor making the shorter side at least ``min_size``; k = 1 leaves them as they are."""
    k = -(-min_size // min(images.shape[-2:]))  # ceil
    return images if k <= 1 else images.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)


def save_grid(images: Tensor, path: str, nrow: int = 8) -> None:
    """Write a PNG grid of images in [-1, 1] (no matplotlib figure); images smaller than
    :data:`MIN_SAVED_SIZE` pixels are scaled up by a whole factor (:func:`upscale`) so they can be seen."""
    from torchvision.utils import save_image

    save_image(upscale(to_unit_range(images.detach().float().cpu())), path, nrow=nrow, padding=2, pad_value=1.0)


def show_strip(frames: Mapping[int, Tensor], title: Optional[str] = None, label: str = "t",
               scale: float = 1.1) -> plt.Figure:
    """A row per image, a column per step: ``frames`` maps a step t to a [N, C, H, W] batch
    (in [-1, 1]), e.g. a denoising or noising trajectory. Columns are drawn in the mapping's
    order."""
    steps = list(frames)
    if not steps:
        raise InputError("frames is empty: pass {t: images} for at least one step")
    n = frames[steps[0]].shape[0]
    fig, axes = plt.subplots(n, len(steps), figsize=(scale * len(steps), scale * n + 0.3), squeeze=False)
    for j, t in enumerate(steps):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(to_unit_range(frames[t][i, 0].float().cpu()), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{label}={t}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_loss(history: Sequence[float], smooth: int = 50, ax: Optional[plt.Axes] = None,
              label: Optional[str] = None) -> plt.Figure:
    """Per-step training loss (faint) and its running mean over ``smooth`` steps, log scale."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    h = torch.as_tensor(list(history), dtype=torch.float32)
    ax.plot(h.numpy(), alpha=0.25, lw=0.8, color="C0" if label is None else None)
    if len(h) >= smooth > 1:
        kernel = torch.ones(smooth) / smooth
        ma = torch.conv1d(h.view(1, 1, -1), kernel.view(1, 1, -1)).flatten()
        ax.plot(range(smooth - 1, len(h)), ma.numpy(), lw=1.5, label=label or f"mean of {smooth} steps")
        ax.legend()
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE on eps)")
    ax.grid(alpha=0.3)
    return ax.figure


def plot_schedules(schedules: Dict[str, Schedule]) -> plt.Figure:
    """Compare schedules: alpha_bar_t (signal kept), sqrt(alpha_bar_t) and sqrt(1-alpha_bar_t)
    (the two coefficients of Eq. 4), beta_t, and log SNR(t)."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for name, s in schedules.items():
        t = torch.arange(s.T).numpy()
        axes[0].plot(t, s.betas.cpu().numpy(), label=name)
        axes[1].plot(t, s.alpha_bars.cpu().numpy(), label=name)
        axes[2].plot(t, s.sqrt_alpha_bars.cpu().numpy(), label=f"{name}: sqrt(alpha_bar)")
        axes[2].plot(t, s.sqrt_one_minus_alpha_bars.cpu().numpy(), "--", label=f"{name}: sqrt(1-alpha_bar)")
        axes[3].plot(t, torch.log10(s.snr()).cpu().numpy(), label=name)
    titles = ["beta_t", "alpha_bar_t", "Eq. 4 coefficients", "log10 SNR(t)"]
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
