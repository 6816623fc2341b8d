"""Pictures: image grids, denoising strips, loss curves and schedule plots (matplotlib).

Each function draws into a new figure (or the ``ax`` given) and returns the figure; call
``plt.show()`` in a notebook cell to display it."""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
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


def trend_half_width(n: int, smooth: int) -> int:
    """How many steps on each side of a step :func:`smooth_loss` averages over, for a run of ``n``
    steps: ``smooth // 2``, but at most an eighth of the run (``(n - 1) // 8``), so that a window of 100
    on a 30-step run smooths over 7 steps instead of flattening the whole curve. 0: no smoothing."""
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 0:
        raise InputError(f"smooth must be a whole number of steps >= 0 (0 or 1: no smoothing), got {smooth!r}")
    return max(0, min(smooth // 2, (n - 1) // 8))


def smooth_loss(history: Sequence[float], smooth: int = 50) -> Tensor:
    """The trend of a per-step loss: at every step i, the mean of the steps within ``h`` of i on both
    sides, h = :func:`trend_half_width` (``smooth // 2``, less on short runs): a centred window of
    about ``smooth`` steps. The trend at step i is thus the loss *around* step i; a trailing mean of the
    last ``smooth`` steps, drawn at step i, lags a falling loss by ``smooth / 2`` steps.

    * The mean is taken of the logarithms (a geometric mean) when every value is positive, as a loss
      drawn on a log axis is: a loss that falls exponentially is a straight line there, and the centred
      mean of a straight line is the line itself. Any value <= 0 falls back to the plain mean.
    * Near the ends the window shrinks symmetrically (the first and last steps are their own means),
      so the trend covers the whole run and stays centred there too.

    Returns a float tensor of ``history``'s length."""
    h = torch.as_tensor(list(history), dtype=torch.float64).flatten()
    n = len(h)
    half = trend_half_width(n, smooth)
    if n == 0:
        return h.float()
    log_space = bool((h > 0).all())
    values = h.log() if log_space else h
    i = torch.arange(n)
    reach = torch.clamp(torch.minimum(i, n - 1 - i), max=half)  # the half-width at each step
    sums = torch.cat([torch.zeros(1, dtype=torch.float64), values.cumsum(0)])
    mean = (sums[i + reach + 1] - sums[i - reach]) / (2 * reach + 1)
    return (mean.exp() if log_space else mean).float()


def plot_loss(history: Sequence[float], smooth: int = 50, ax: Optional[plt.Axes] = None,
              label: Optional[str] = None) -> plt.Figure:
    """Per-step training loss (faint) and its trend, on a log axis: :func:`smooth_loss`, a centred mean
    over about ``smooth`` steps taken in log space (narrower on short runs, see :func:`trend_half_width`),
    drawn at the step it is centred on, over the whole run. The legend names the window used."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    h = torch.as_tensor(list(history), dtype=torch.float32).flatten()
    half = trend_half_width(len(h), smooth)
    raw, = ax.plot(h.numpy(), alpha=0.25, lw=0.8, color="C0" if label is None else None,
                   label=label if half == 0 else None)
    if half > 0:
        ax.plot(smooth_loss(h.tolist(), smooth).numpy(), lw=1.5, color=raw.get_color(),
                label=label or f"centred mean of {2 * half + 1} steps")
    if half > 0 or label:
        ax.legend()
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE on eps)")
    ax.grid(alpha=0.3)
    return ax.figure


def plot_schedules(schedules: Dict[str, Schedule]) -> plt.Figure:
    """Compare schedules: beta_t, alpha_bar_t (signal kept), sqrt(alpha_bar_t) and sqrt(1-alpha_bar_t)
    (the two coefficients of Eq. 4), and log SNR(t). One colour per schedule in every panel (solid
    sqrt(alpha_bar), dashed sqrt(1-alpha_bar) in the third), named in one legend below the panels, where
    it hides no curve."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for i, (name, s) in enumerate(schedules.items()):
        t, color = torch.arange(s.T).numpy(), f"C{i}"
        axes[0].plot(t, s.betas.cpu().numpy(), color=color, label=name)
        axes[1].plot(t, s.alpha_bars.cpu().numpy(), color=color, label=name)
        axes[2].plot(t, s.sqrt_alpha_bars.cpu().numpy(), color=color, label=f"{name}: sqrt(alpha_bar)")
        axes[2].plot(t, s.sqrt_one_minus_alpha_bars.cpu().numpy(), "--", color=color,
                     label=f"{name}: sqrt(1-alpha_bar)")
        axes[3].plot(t, torch.log10(s.snr()).cpu().numpy(), color=color, label=name)
    titles = ["beta_t", "alpha_bar_t", "Eq. 4 coefficients", "log10 SNR(t)"]
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=f"C{i}", label=name) for i, name in enumerate(schedules)]
    handles += [Line2D([], [], color="0.3", label="Eq. 4 panel: sqrt(alpha_bar)"),
                Line2D([], [], color="0.3", ls="--", label="sqrt(1-alpha_bar)")]
    fig.tight_layout(rect=(0, 0.09, 1, 1))  # room for the legend below the panels
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    return fig
