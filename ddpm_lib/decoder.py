"""The decoder of Ho et al. 2020, Eq. 13: the last reverse step's Gaussian integrated over each pixel's
8-bit bin, so that the model gives a probability (not a density) to the discrete image."""

import torch

Tensor = torch.Tensor


def _log_sub_exp(a: Tensor, b: Tensor) -> Tensor:
    """log(e^a - e^b) for a >= b, without cancellation."""
    return a + torch.log1p(-torch.exp((b - a).clamp(max=0)).clamp(max=1 - 1e-15))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log p(x) for 8-bit data x in {-1, -1 + 2/255, ..., 1} under N(mean, e^(2 log_scale))
    integrated over each value's bin, Eq. 13: [x - 1/255, x + 1/255], with the bins of -1 and 1
    stretched to -inf and +inf so the 256 probabilities sum to 1. Per element, in nats."""
    x, mean, log_scale = x.double(), mean.double(), log_scale.double()
    inv_std = torch.exp(-log_scale)
    upper = (x - mean + 1 / 255) * inv_std  # standardised delta_+
    lower = (x - mean - 1 / 255) * inv_std  # standardised delta_-
    log_cdf_upper = torch.special.log_ndtr(upper)  # log Phi(delta_+): the bin of x = -1
    log_sf_lower = torch.special.log_ndtr(-lower)  # log (1 - Phi(delta_-)): the bin of x = 1
    # middle bins: Phi(upper) - Phi(lower), taken on the side of the tail it lies in for accuracy
    left = _log_sub_exp(log_cdf_upper, torch.special.log_ndtr(lower))
    right = _log_sub_exp(log_sf_lower, torch.special.log_ndtr(-upper))
    middle = torch.where(lower > 0, right, left)
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_sf_lower, middle))
