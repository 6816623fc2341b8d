"""Graded corruptions of real digits: the test bench for the evaluator.

An instrument is trusted only after it reacts to the failures it must catch. Each function here
takes real images in [-1, 1] (shape [N, 1, 28, 28], background -1, strokes +1) and returns a
damaged copy in the same range, with a strength that can be turned up step by step. The same
functions make the "not a digit" examples the judge is trained to reject
(:func:`rejection_batch`), at strengths well beyond the mild steps the validation scores.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
BACKGROUND = -1.0  # MNIST in model space: black background, white strokes


def gaussian_noise(x: Tensor, sigma: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """x + sigma * N(0, I), clipped back to [-1, 1]."""
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def speckle(x: Tensor, share: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Salt-and-pepper: a ``share`` of the pixels set to -1 or +1 at random."""
    hit = torch.rand(x.shape, generator=generator) < share
    value = torch.where(torch.rand(x.shape, generator=generator) < 0.5, -1.0, 1.0)
    return torch.where(hit, value, x)


def _gaussian_kernel(sigma: float) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-r.square() / (2 * sigma ** 2))
    return k / k.sum()


def blur(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (separable, background padding)."""
    if sigma <= 0:
        return x.clone()
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    y = F.conv2d(F.pad(x, [r, r, 0, 0], value=BACKGROUND), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(y, [0, 0, r, r], value=BACKGROUND), k.view(1, 1, -1, 1))


def _morph(x: Tensor, pixels: int, sign: float) -> Tensor:
    """``pixels`` rounds of a 2x2 grey-level dilation (sign 1) or erosion (sign -1) of the strokes,
    alternating the corner the 2x2 window grows towards so the digit stays centred."""
    y = sign * x
    for i in range(int(pixels)):
        pad = [1, 0, 1, 0] if i % 2 == 0 else [0, 1, 0, 1]
        y = F.max_pool2d(F.pad(y, pad, value=sign * BACKGROUND), 2, 1)
    return sign * y


def thicken(x: Tensor, pixels: int) -> Tensor:
    """Strokes ``pixels`` wider (repeated 2x2 dilation)."""
    return _morph(x, pixels, 1.0)


def thin(x: Tensor, pixels: int) -> Tensor:
    """Strokes ``pixels`` thinner (repeated 2x2 erosion); 3 erases most of a digit."""
    return _morph(x, pixels, -1.0)


def shift(x: Tensor, pixels: int) -> Tensor:
    """Translate every digit ``pixels`` to the right and down (MNIST digits are centred by mass)."""
    p = int(pixels)
    if p == 0:
        return x.clone()
    padded = F.pad(x, [p, 0, p, 0], value=BACKGROUND)
    return padded[..., :28, :28]


def rotate(x: Tensor, degrees: float) -> Tensor:
    """Rotate every digit by ``degrees`` about the image centre (bilinear, background fill)."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    # grid_sample pads with 0, so rotate x + 1 (background 0) and shift back
    return F.grid_sample(x + 1, grid, align_corners=False) - 1


def uniform_noise(n: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """Pure noise: every pixel uniform in [-1, 1]."""
    return torch.rand(n, 1, 28, 28, generator=generator) * 2 - 1


def gaussian_images(n: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """Pure noise as a diffusion model starts from: N(0, I), clipped to [-1, 1]."""
    return torch.randn(n, 1, 28, 28, generator=generator).clamp(-1, 1)


def constant(n: int, level: float = 0.0) -> Tensor:
    """Blank images of one grey level (0.0 is mid-grey)."""
    return torch.full((n, 1, 28, 28), float(level))


def blobs(n: int, generator: Optional[torch.Generator] = None, sigma: float = 2.0) -> Tensor:
    """Smooth random stroke-like blobs: blurred noise thresholded (what an untrained model draws)."""
    field = blur(torch.randn(n, 1, 28, 28, generator=generator), sigma)
    field = field / field.flatten(1).std(1).view(-1, 1, 1, 1)
    level = 0.5 + torch.rand(n, 1, 1, 1, generator=generator)  # 0.5-1.5 std: thick to thin blobs
    return torch.tanh(4 * (field - level)).clamp(-1, 1)


#: Graded families scored by the validation suite: name -> (function(x, strength, generator),
#: strengths from the mildest visible step upwards, unit of the strength).
FAMILIES: Dict[str, Tuple[Callable[[Tensor, float, Optional[torch.Generator]], Tensor], Tuple[float, ...], str]] = {
    "gaussian noise": (gaussian_noise, (0.1, 0.2, 0.4), "sigma"),
    "speckle": (speckle, (0.02, 0.05, 0.1), "share of pixels"),
    "blur": (lambda x, s, g=None: blur(x, s), (0.7, 1.0, 1.5), "sigma px"),
    "thicken": (lambda x, s, g=None: thicken(x, int(s)), (1, 2, 3), "px wider"),
    "thin": (lambda x, s, g=None: thin(x, int(s)), (1, 2, 3), "px thinner"),
    "shift": (lambda x, s, g=None: shift(x, int(s)), (1, 2, 4), "px"),
    "rotate": (lambda x, s, g=None: rotate(x, s), (10, 20, 40), "degrees"),
}


def rejection_batch(digits: Tensor, generator: torch.Generator) -> Tensor:
    """A batch of "not a digit" images as large as ``digits``: a mix of uniform and Gaussian
    noise, blank grey levels, random blobs and digits damaged far beyond recognition (noise
    sigma >= 1, speckle >= 40%, blur >= 2.5 px). The judge learns these as an 11th class."""
    n = len(digits)
    kind = torch.randint(0, 6, (n,), generator=generator)
    out = torch.empty_like(digits)
    u = torch.rand(n, generator=generator)
    for k in range(6):
        idx = (kind == k).nonzero().flatten()
        if len(idx) == 0:
            continue
        m = len(idx)
        if k == 0:
            part = uniform_noise(m, generator)
        elif k == 1:  # Gaussian noise of any scale, around any grey level
            scale = (0.2 + 1.3 * u[idx]).view(-1, 1, 1, 1)
            mean = (torch.rand(m, 1, 1, 1, generator=generator) - 0.5)
            part = (mean + scale * torch.randn(m, 1, 28, 28, generator=generator)).clamp(-1, 1)
        elif k == 2:
            part = (u[idx] * 2 - 1).view(-1, 1, 1, 1).expand(m, 1, 28, 28).clone()
        elif k == 3:
            part = blobs(m, generator)
        elif k == 4:  # heavily damaged digits
            x = digits[idx]
            part = torch.where((u[idx] < 0.5).view(-1, 1, 1, 1),
                               gaussian_noise(x, 1.0 + float(u[idx].mean()), generator),
                               speckle(x, 0.4 + 0.4 * float(torch.rand(1, generator=generator)), generator))
        else:
            part = blur(digits[idx], 2.5 + 2 * float(torch.rand(1, generator=generator)))
        out[idx] = part
    return out
