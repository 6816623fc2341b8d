"""Plots draw what they are given: grid sizes, strip layout, curves, schedules."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import image_grid, make_schedule, plot_loss, plot_schedules, save_grid, show_grid, show_strip  # noqa: E402


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
