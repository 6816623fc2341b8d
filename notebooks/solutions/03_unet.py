"""Solutions to the exercises of notebook 03 · The full U-Net.

Two pieces of the U-Net of Ho, Jain & Abbeel 2020 (Sec. 4 and Appendix B), written in plain torch:

* ``sinusoidal_embedding``: the network's clock, the Transformer's position encoding
  (Vaswani et al. 2017, Sec. 3.5) applied to the time step t;
* ``add_time``: how every ResNet block injects that clock, one learned shift per channel.
"""

import torch
import torch.nn.functional as F


def sinusoidal_embedding(t, dim):
    """t: tensor [B] of time steps (0-based integers); dim: an even int.
    Returns a float tensor [B, dim]: with half = dim // 2 and freq_i = 10000^(-i / half),
    i = 0..half-1, the first half of the columns are sin(t freq_i), the second half cos(t freq_i)."""
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32, device=t.device)
    freq = 10000.0 ** (-i / half)                      # omega_i = 10000^(-i/(d/2)): log-spaced, 1 down to ~1/10000
    args = t.float()[:, None] * freq[None, :]          # [B, half]: t * omega_i for every sample and frequency
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)  # [B, dim]: all sines, then all cosines


def add_time(h, emb, proj):
    """The ResNet block's time injection.
    h: feature map [B, C, H, W]; emb: time embedding [B, E]; proj: nn.Linear(E, C).
    Returns h + proj(SiLU(emb)), the [B, C] shift broadcast over H and W: [B, C, H, W]."""
    shift = proj(F.silu(emb))               # [B, C]: one number per sample and channel
    return h + shift[:, :, None, None]      # [B, C, 1, 1] broadcasts over all H x W pixels
