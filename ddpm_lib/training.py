"""The training loop of Algorithm 1 with the practical parts around it: AdamW with linear
warm-up, gradient clipping, an EMA of the weights, a live progress bar, per-step loss
history, atomic checkpoints and exact resume.

    data = load_mnist()
    trainer = Trainer(UNet(), train_config=TrainConfig(steps=2000), out_dir="runs/unet")
    history = trainer.fit(data)
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Union

import torch
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .checkpoints import FORMAT, check_compatible, load_checkpoint, save_checkpoint
from .config import DiffusionConfig, TrainConfig, get_device
from .diffusion import simple_loss
from .models import build_model, config_from_dict, config_to_dict
from .schedules import make_schedule

Tensor = torch.Tensor


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before the weights were updated."""


class EMA:
    """Exponential moving average of the weights, theta_ema <- d theta_ema + (1 - d) theta,
    with d = min(decay, (1 + step) / (10 + step)) so early averages do not lag far behind."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


class Trainer:
    """Trains a noise predictor eps_theta with L_simple (Eq. 14, Algorithm 1).

    ``fit`` runs until ``train_config.steps`` optimizer steps (or ``max_minutes``) and can be
    called again after an interruption; with ``out_dir`` it writes ``checkpoint.pt`` every
    ``checkpoint_every`` steps and at the end. Random numbers for t, eps and the batch order
    come from seeded generators saved in the checkpoint, so a resumed run on CPU continues
    exactly as an uninterrupted one would."""

    def __init__(self, model: torch.nn.Module, diffusion: Optional[DiffusionConfig] = None,
                 train_config: Optional[TrainConfig] = None, *,
                 out_dir: Union[str, Path, None] = None,
                 device: Union[str, torch.device, None] = None):
        self.config = train_config or TrainConfig()
        self.diffusion = diffusion or DiffusionConfig()
        self.device = torch.device(device) if device is not None else get_device()
        self.model = model.to(self.device)
        self.model.num_timesteps = self.diffusion.T  # lets the model refuse t >= T itself
        self.schedule = make_schedule(self.diffusion).to(self.device)
        self.ema = EMA(self.model, self.config.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr,
                                           weight_decay=self.config.weight_decay)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.step = 0
        self.history: List[float] = []
        self.elapsed_s = 0.0
        self.interrupted = False
        self.generator = torch.Generator().manual_seed(self.config.seed)
        torch.manual_seed(self.config.seed)

    # ----------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Optional[Path]:
        return self.out_dir / "checkpoint.pt" if self.out_dir is not None else None

    def state_dict(self) -> dict:
        """Everything needed to resume, as a ``weights_only``-loadable dict."""
        return {
            "format": FORMAT,
            "model_config": config_to_dict(self.model.config),
            "diffusion_config": asdict(self.diffusion),
            "train_config": asdict(self.config),
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "history": torch.tensor(self.history, dtype=torch.float32),
            "rng": {"generator": self.generator.get_state(), "torch": torch.get_rng_state()},
            "elapsed_s": self.elapsed_s,
        }

    def save(self, path: Union[str, Path, None] = None) -> Path:
        """Write a checkpoint atomically (default: ``out_dir/checkpoint.pt``)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("no path given and the trainer has no out_dir")
        return save_checkpoint(self.state_dict(), path)

    def load_state(self, state_or_path: Union[dict, str, Path]) -> "Trainer":
        """Restore model, EMA, optimizer, step, history and RNG states from a checkpoint whose
        model and diffusion settings match this trainer's (mismatches are named)."""
        state = state_or_path if isinstance(state_or_path, dict) else load_checkpoint(state_or_path)
        check_compatible(state, self.model.config, self.diffusion)
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = [float(v) for v in state["history"]]
        self.generator.set_state(state["rng"]["generator"])
        torch.set_rng_state(state["rng"]["torch"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        return self

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path], *, out_dir: Union[str, Path, None] = None,
                        device: Union[str, torch.device, None] = None,
                        **train_overrides) -> "Trainer":
        """Rebuild a trainer (model from the saved config) and resume its state. Keyword
        overrides change the training config, e.g. ``steps=20000`` to train longer."""
        state = load_checkpoint(path)
        config = TrainConfig(**{**state["train_config"], **train_overrides})
        model = build_model(config_from_dict(state["model_config"]))
        trainer = cls(model, DiffusionConfig(**state["diffusion_config"]), config,
                      out_dir=out_dir if out_dir is not None else Path(path).parent, device=device)
        return trainer.load_state(state)

    # ----------------------------------------------------------------- the loop
    def _batch_indices(self, n: int):
        """Yield index batches from ``self.step`` on: epoch e is a permutation seeded by
        (seed, e), so any step's batch can be recomputed after a resume."""
        bs = self.config.batch_size
        per_epoch = n // bs
        if per_epoch == 0:
            raise ValueError(f"batch_size {bs} is larger than the data set ({n} images)")
        step = self.step
        while True:
            epoch, offset = divmod(step, per_epoch)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.config.seed * 100_003 + epoch))
            for i in range(offset, per_epoch):
                yield perm[i * bs:(i + 1) * bs]
                step += 1

    def _labels(self, y: Tensor) -> Optional[Tensor]:
        null = getattr(self.model, "null_label", None)
        if null is None:
            return None
        drop = torch.rand(y.shape, generator=self.generator) < self.config.label_dropout
        return torch.where(drop, torch.full_like(y, null), y)  # classifier-free guidance training

    def train_step(self, x0: Tensor, y: Optional[Tensor] = None) -> float:
        """One optimizer step of Algorithm 1 on a batch x0 (in [-1, 1]); returns the loss."""
        cfg = self.config
        t = torch.randint(0, self.schedule.T, (x0.shape[0],), generator=self.generator)
        noise = torch.randn(x0.shape, generator=self.generator)
        x0, t, noise = x0.to(self.device), t.to(self.device), noise.to(self.device)
        y = y.to(self.device) if y is not None else None
        for group in self.optimizer.param_groups:  # linear warm-up
            group["lr"] = cfg.lr * min(1.0, (self.step + 1) / max(1, cfg.warmup_steps))
        self.model.train()
        loss = simple_loss(self.model, self.schedule, x0, t=t, noise=noise, y=y)
        if not torch.isfinite(loss):
            saved = f"the last good checkpoint is {self.checkpoint_path}" if self.checkpoint_path \
                and self.checkpoint_path.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(f"loss became {loss.item()} at step {self.step}; training "
                                     f"stopped before updating the weights and {saved}. Try a "
                                     f"lower lr (now {cfg.lr}) or check that the data lie in [-1, 1]")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model, self.step)
        self.step += 1
        return loss.item()

    def fit(self, data: TensorDataset, *, progress: bool = True) -> List[float]:
        """Train on ``data`` (a ``TensorDataset(images, labels)`` as from
        :func:`ddpm_lib.data.load_mnist`) until ``steps`` or ``max_minutes``; returns the
        per-step loss history. Ctrl-C saves a checkpoint (with ``out_dir``) and returns."""
        cfg = self.config
        images, labels = data.tensors[0], data.tensors[1] if len(data.tensors) > 1 else None
        if images.is_floating_point() and not torch.isfinite(images).all():
            raise ValueError("the training images contain NaN or inf; reload them with load_mnist()")
        if images.is_floating_point() and images.numel() and (images.min() < -1.001 or images.max() > 1.001):
            raise ValueError(f"images must be scaled to [-1, 1], got range [{images.min():.3g}, "
                             f"{images.max():.3g}]; use load_mnist() or x / 127.5 - 1")
        if cfg.steps is None and cfg.max_minutes is None:
            raise ValueError("set TrainConfig.steps or TrainConfig.max_minutes (or both)")
        self.interrupted = False
        budget_s = cfg.max_minutes * 60 if cfg.max_minutes is not None else math.inf
        start, start_elapsed = time.perf_counter(), self.elapsed_s
        bar = tqdm(total=cfg.steps, initial=self.step, desc="training", disable=not progress)
        running = None
        try:
            batches = self._batch_indices(len(images))
            while (cfg.steps is None or self.step < cfg.steps) and self.elapsed_s < budget_s:
                idx = next(batches)
                loss = self.train_step(images[idx], self._labels(labels[idx]) if labels is not None else None)
                self.history.append(loss)
                self.elapsed_s = start_elapsed + time.perf_counter() - start
                running = loss if running is None else 0.98 * running + 0.02 * loss
                bar.update(1)
                if self.step % 10 == 0 or self.step == cfg.steps:
                    bar.set_postfix(loss=f"{running:.4f}")
                if self.out_dir is not None and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save()
        except KeyboardInterrupt:
            self.interrupted = True
            where = f"; checkpoint saved to {self.save()}" if self.out_dir is not None else ""
            bar.write(f"interrupted at step {self.step}{where}. Call fit() again to continue.")
        finally:
            bar.close()
        if self.out_dir is not None and not self.interrupted:
            self.save()
        return self.history
