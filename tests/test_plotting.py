"""Plots draw what they are given: grid sizes, strip layout, curves, schedules."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import image_grid, make_schedule, plot_loss, plot_schedules, save_grid, show_grid, show_strip  # noqa: E402
from ddpm_lib.plotting import smooth_loss, trend_half_width  # noqa: E402


def test_image_grid_maps_minus_one_one_to_unit_range():
    x = torch.full((10, 1, 28, 28), -1.0)
    x[0] = 1.0
    grid = image_grid(x, nrow=5, padding=2)
    assert grid.shape == (2 * 30 + 2, 5 * 30 + 2, 3)  # make_grid pads around every tile
    assert grid.min().item() == 0.0 and grid.max().item() == 1.0
    assert grid[2:30, 2:30].min().item() == 1.0  # the white first image


def test_figures_are_drawn():
    fig = show_grid(torch.zeros(4, 1, 28, 28), nrow=4, title="t")
    assert fig.axes[0].get_title() == "t"
    fig = show_strip({999: torch.zeros(2, 1, 28, 28), 0: torch.zeros(2, 1, 28, 28)})
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "t=999"
    fig = plot_loss([1.0 / (i + 1) for i in range(100)], smooth=10)
    assert len(fig.axes[0].lines) == 2
    fig = plot_schedules({"linear": make_schedule(), "cosine": make_schedule(schedule="cosine")})
    assert len(fig.axes) == 4 and len(fig.axes[1].lines) == 2
    plt.close("all")


def test_save_grid_writes_png(tmp_path):
    path = tmp_path / "g.png"
    save_grid(torch.zeros(3, 1, 28, 28), str(path), nrow=3)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_strip_needs_frames():
    with pytest.raises(ValueError, match="empty"):
        show_strip({})


@pytest.mark.parametrize("size, factor", [(8, 4), (16, 2), (28, 1), (32, 1)])
def test_save_grid_scales_tiny_images_up_by_whole_pixels(tmp_path, size, factor):
    """An 8x8 grid was 8 pixels a tile: now each pixel is a 4x4 block (nearest neighbour, no new values);
    MNIST's 28x28 and larger images are written as they are."""
    import numpy as np
    from PIL import Image
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    save_grid(x, str(tmp_path / "g.png"), nrow=2)
    png = torch.from_numpy(np.array(Image.open(tmp_path / "g.png"))).permute(2, 0, 1)
    side = size * factor
    assert png.shape == (3, side + 4, 2 * side + 6)  # make_grid's padding of 2 around each tile
    first = png[:, 2:2 + side, 2:2 + side]
    pixels = ((x[0] + 1) / 2 * 255 + 0.5).clamp(0, 255).to(torch.uint8)  # torchvision's rounding
    assert torch.equal(first, pixels.repeat_interleave(factor, 1).repeat_interleave(factor, 2))


def test_loss_trend_follows_a_falling_loss_without_lag():
    """The trend used to be a trailing mean of the last `smooth` steps drawn at the window's end: on a
    loss that falls tenfold every 46 steps it lay far above the raw loss (the value of ~25 steps before)
    and began only at step smooth - 1. Now it is centred on its step, in log space, and covers the run."""
    n, smooth = 300, 50
    steps = torch.arange(n, dtype=torch.float64)
    trend = torch.exp(-steps / 20)                                    # steeply falling
    noise = torch.exp(0.3 * torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    fig = plot_loss((trend * noise).tolist(), smooth=smooth)
    x, y = fig.axes[0].lines[1].get_data()
    ratio = {int(i): v / trend[int(i)].item() for i, v in zip(x, y)}  # the trend drawn at step i / the true one
    full = [r for i, r in ratio.items() if smooth // 2 <= i < n - smooth // 2]  # steps with a full window
    assert 0.85 < min(full) and max(full) < 1.18, (min(full), max(full))  # a trailing mean: about 3.5
    assert list(x) == list(range(n))                                  # drawn over the whole run, at its step
    plt.close("all")


def test_loss_trend_window_is_centred_and_adapts_to_short_runs():
    # a straight line in log space is its own centred geometric mean, ends included
    line = [10.0 ** (-i / 10) for i in range(100)]
    assert torch.allclose(smooth_loss(line, 20), torch.tensor(line), rtol=1e-5)
    assert trend_half_width(28_000, 100) == 50
    assert trend_half_width(30, 100) == 3                             # at most an eighth of the run
    assert trend_half_width(3, 50) == 0
    fig = plot_loss([1.0 / (i + 1) for i in range(30)], smooth=100)   # shorter than the window: still a trend
    assert fig.axes[0].lines[1].get_label() == "centred mean of 7 steps"
    fig = plot_loss([1.0, 0.5, 0.25], smooth=50)                       # too short to smooth: the raw loss alone
    assert len(fig.axes[0].lines) == 1
    # values <= 0 cannot be averaged in log space: the plain mean
    assert torch.allclose(smooth_loss([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 4),
                          torch.arange(10, dtype=torch.float32))
    with pytest.raises(ValueError, match="smooth"):
        smooth_loss([1.0, 2.0], -1)
    plt.close("all")


def test_schedule_legend_hides_no_curve():
    """The legends sat inside the panels, over the Eq. 4 coefficients' curves: now one legend below
    the panels, and every panel's plotting area is free of it."""
    fig = plot_schedules({"linear": make_schedule(), "cosine": make_schedule(schedule="cosine")})
    fig.canvas.draw()
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert all(not box.overlaps(ax.get_window_extent()) for ax in fig.axes)
    assert [t.get_text() for t in legend.get_texts()][:2] == ["linear", "cosine"]
    plt.close("all")
