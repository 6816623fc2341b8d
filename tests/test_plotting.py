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
