"""The training loop of Algorithm 1 with the practical parts around it: AdamW with linear
warm-up, gradient clipping, an EMA of the weights, a live progress bar, per-step loss
history, atomic checkpoints and exact resume.

    data = load_mnist()
    trainer = Trainer(UNet(), train_config=TrainConfig(steps=2000), out_dir="runs/unet")
    history = trainer.fit(data)

The loop knows nothing about the loss it minimises: by default L_simple of the model it
trains (:func:`simple_loss_fn`), or any ``loss_fn(x0, y, generator)`` (the benchmark trains
other libraries' networks with it). The pure parts live in functions: the learning rate of a
step (:func:`learning_rate`), the batch order (:func:`batch_order`), label dropout
(:func:`ddpm_lib.guidance.drop_labels`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

import torch
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .errors import DDPMError, InputError
from .checkpoints import (CHECKPOINT_NAME, check_compatible, check_resumable, from_state, load_checkpoint,
                          save_checkpoint, to_state)
from .config import T_DISTRIBUTIONS, DiffusionConfig, TrainConfig, get_device
from .data import check_model_range
from .diffusion import sample_timesteps_laplace, simple_loss
from .guidance import drop_labels
from .models import build_model, describe_model, eval_mode, remember_image_shape
from .files import first_line
from .schedules import Schedule, make_schedule, remember_diffusion
from .stop_requests import StopRequests

Tensor = torch.Tensor
# loss_fn(x0 on the training device, labels or None, the trainer's CPU generator) -> scalar loss
LossFn = Callable[[Tensor, Optional[Tensor], torch.Generator], Tensor]


class NonFiniteLossError(DDPMError, FloatingPointError):
    """The loss became NaN or infinite; training stopped before the weights were updated."""


def learning_rate(step: int, config: TrainConfig, progress: Optional[float] = None) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warm-up from lr / warmup_steps
    to lr over the first ``warmup_steps`` steps, then constant, or (``lr_schedule="cosine"``)
    lr * (1 + cos(pi * f)) / 2 with f the fraction of the post-warm-up budget done, reaching 0
    at the last step. f counts steps when ``config.steps`` is set; for a budget in minutes only
    the trainer passes ``progress``, the fraction of ``max_minutes`` used."""
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    if config.lr_schedule == "constant" or step < config.warmup_steps:
        return config.lr * warm
    if config.steps is not None:
        f = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    else:
        f = progress if progress is not None else 0.0
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, f))))


def batch_order(n: int, batch_size: int, seed: int, start_step: int = 0) -> Iterator[Tensor]:
    """Index batches for steps ``start_step``, ``start_step + 1``, ...: epoch e is a permutation of
    the n images seeded by (seed, e), cut into n // batch_size batches (the rest is dropped), so
    the batch of any step can be recomputed after a resume."""
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise InputError(f"batch_size {batch_size} is larger than the data set ({n} images)")
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        for i in range(offset, per_epoch):
            yield perm[i * batch_size:(i + 1) * batch_size]
            step += 1


def simple_loss_fn(model: torch.nn.Module, schedule: Schedule, min_snr_gamma: Optional[float] = None,
                   t_distribution: str = T_DISTRIBUTIONS[0]) -> LossFn:
    """L_simple (Eq. 14) of ``model`` as a trainer loss: t ~ U{0..T-1} (or by ``t_distribution``,
    :attr:`TrainConfig.t_distribution`) and eps ~ N(0, I) drawn on the CPU from the trainer's generator
    (a seed gives the same run on every device), weighted by min-SNR-gamma when ``min_snr_gamma`` is
    given (:func:`ddpm_lib.diffusion.simple_loss`)."""
    if t_distribution not in T_DISTRIBUTIONS:
        raise InputError(f"t_distribution must be one of {T_DISTRIBUTIONS}, got {t_distribution!r}")
    on_cpu = schedule.to("cpu")  # t is drawn on the CPU: its log-SNR table copied once, not every step

    def loss(x0: Tensor, y: Optional[Tensor], generator: torch.Generator) -> Tensor:
        if t_distribution == "laplace":
            t = sample_timesteps_laplace(on_cpu, x0.shape[0], generator)
        else:
            t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        return simple_loss(model, schedule, x0, t=t.to(x0.device), noise=noise.to(x0.device), y=y,
                           min_snr_gamma=min_snr_gamma)
    return loss


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 kernels in oneDNN (AVX512-BF16 or AMX); False where
    torch cannot tell."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def uses_bf16(config: TrainConfig, device: torch.device) -> bool:
    """Whether a trainer with ``config`` on ``device`` runs its forward pass in bfloat16: always for
    ``precision="bf16"``, never for "fp32", and for "auto" on a CPU with native bfloat16 kernels
    (:func:`cpu_has_bf16`) when the budget is wall-clock time only (``max_minutes`` without
    ``steps``), where it trains the small U-Net 1.27x as many steps in 20 minutes and its samples
    score better (benchmarks/RESULTS.md, "Training in bfloat16 on the CPU"). A step budget stays in
    float32 under "auto", so that a seeded step budget gives the same model on every machine."""
    if config.precision == "auto":
        timed = config.steps is None and config.max_minutes is not None
        return timed and device.type == "cpu" and cpu_has_bf16()
    return config.precision == "bf16"


def autocast(config: TrainConfig, device: torch.device, bf16: Optional[bool] = None) -> contextlib.AbstractContextManager:
    """The context the forward pass and loss run in: ``torch.autocast`` to bfloat16 where
    :func:`uses_bf16` says so, or ``bf16`` when given (a trainer passes the decision its run took at its
    first fit), else nothing. Weights, gradients, optimizer and EMA stay float32."""
    if uses_bf16(config, device) if bf16 is None else bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    """Trains a noise predictor eps_theta with L_simple (Eq. 14, Algorithm 1), or any model
    with the ``loss_fn`` given.

    ``fit`` runs until ``train_config.steps`` optimizer steps (or ``max_minutes``) and can be
    called again after an interruption; with ``out_dir`` it writes ``checkpoint.pt`` every
    ``checkpoint_every`` steps and at the end. Random numbers for t, eps, label dropout and the
    batch order come from generators seeded with ``train_config.seed`` and saved in the
    checkpoint, so a resumed run on CPU continues exactly as an uninterrupted one would. A
    model that draws its own random numbers (dropout) uses torch's global RNG: seed it with
    :func:`ddpm_lib.seed_everything`; checkpoints save and restore it too.

    Trained on L_simple (no ``loss_fn``), the model and its EMA remember the diffusion
    (``model.diffusion_config``, :func:`ddpm_lib.schedules.remember_diffusion`): a sampler given
    another schedule refuses it. ``fit`` checks the images once at its start
    (:func:`ddpm_lib.data.check_model_range`: floats in [-1, 1], no uint8, NaN or [0, 1] images).

    Ctrl-C or SIGTERM stops ``fit`` at the end of the step under way: it saves the state of that last
    completed step (so a resume continues exactly), sets ``interrupted`` and returns;
    ``on_interrupt(trainer)``, if set, is called then (the command line prints its ``--resume``
    command there), else "call fit() again to continue" is printed. A second Ctrl-C before the step
    is done drops the step at once (the state saved is the one before it). SIGTERM whose action is
    the default one still ends the process, after the save.

    The precision of the forward pass (``TrainConfig.precision``; "auto" resolved by :func:`uses_bf16`)
    is decided at the run's first fit and kept, in ``precision_used`` and in its checkpoints: a resume
    with another budget trains in the same precision.

    Your own network: any ``nn.Module`` whose ``forward(x, t)`` takes images x [B, C, H, W] in
    [-1, 1] and steps t (a long tensor [B], 0-based) and returns a tensor of x's shape (the noise eps,
    or x0 / v with ``DiffusionConfig.prediction``) trains like ours; a class-conditional one also has
    ``null_label`` (its number of classes) and takes ``forward(x, t, y)``. ``fit`` calls it once on
    two training images before the first step and refuses, in one line, a network that does not keep
    that protocol. Its checkpoints hold its weights and state, not its code: resume with
    ``Trainer.from_checkpoint(path, model=YourNet(...))`` and sample with
    ``load_model(path, model=YourNet(...))``, built as for training. Checkpoints also record the
    shape of the images trained on, which the samplers then draw."""

    def __init__(self, model: torch.nn.Module, diffusion: Optional[DiffusionConfig] = None,
                 train_config: Optional[TrainConfig] = None, *,
                 loss_fn: Optional[LossFn] = None,
                 out_dir: Union[str, Path, None] = None,
                 device: Union[str, torch.device, None] = None,
                 on_interrupt: Optional[Callable[["Trainer"], None]] = None):
        self.config = train_config or TrainConfig()
        self.diffusion = diffusion or DiffusionConfig()
        self.device = torch.device(device) if device is not None else get_device()
        self.model = model.to(self.device)
        self.schedule = make_schedule(self.diffusion).to(self.device)
        if loss_fn is None:  # trained on L_simple of this schedule: the samplers check they get the same one
            remember_diffusion(self.model, self.diffusion)
        self.loss_fn = loss_fn or simple_loss_fn(self.model, self.schedule, self.config.min_snr_gamma,
                                                 self.config.t_distribution)
        self.loss_fn_given = loss_fn is not None
        self.ema = EMA(self.model, self.config.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr,
                                           weight_decay=self.config.weight_decay)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.step = 0
        self.history: List[float] = []
        self.elapsed_s = 0.0
        self.interrupted = False
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.on_interrupt = on_interrupt
        self.precision_used: Optional[str] = None  # "fp32" or "bf16", decided at the first fit (_precision)
        self._stop: Optional[StopRequests] = None  # set while fit runs

    # ----------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Optional[Path]:
        return self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None

    def state_dict(self) -> dict:
        """Everything needed to resume, as a ``weights_only``-loadable dict."""
        return to_state(describe_model(self.model), self.diffusion, self.config, model=self.model.state_dict(),
                        ema=self.ema.model.state_dict(), optimizer=self.optimizer.state_dict(), step=self.step,
                        history=self.history, elapsed_s=self.elapsed_s,
                        rng={"generator": self.generator.get_state(), "torch": torch.get_rng_state()},
                        precision_used=self.precision_used, data_shape=getattr(self.model, "image_shape", None))

    def save(self, path: Union[str, Path, None] = None) -> Path:
        """Write a checkpoint atomically (default: ``out_dir/checkpoint.pt``)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise InputError("no path given and the trainer has no out_dir")
        return save_checkpoint(self.state_dict(), path)

    def load_state(self, state_or_path: Union[dict, str, Path]) -> "Trainer":
        """Restore model, EMA, optimizer, step, history and RNG states from a checkpoint whose
        model and diffusion settings match this trainer's (mismatches are named). A
        sampling-only export is refused: it holds no optimizer state to continue from."""
        state = state_or_path if isinstance(state_or_path, dict) else load_checkpoint(state_or_path)
        check_resumable(state, "the checkpoint" if isinstance(state_or_path, dict) else state_or_path)
        check_compatible(state, describe_model(self.model), self.diffusion)
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = [float(v) for v in state["history"]]
        self.generator.set_state(state["rng"]["generator"])
        torch.set_rng_state(state["rng"]["torch"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        if state.get("data_shape") is not None:
            remember_image_shape(self.model, state["data_shape"])
        self.precision_used = state.get("precision_used")
        if self.precision_used is None and self.step > 0:  # saved before runs kept it: what its own settings gave
            self.precision_used = "bf16" if uses_bf16(from_state(state, "train_config"), self.device) else "fp32"
        return self

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path], *, out_dir: Union[str, Path, None] = None,
                        device: Union[str, torch.device, None] = None, model: Optional[torch.nn.Module] = None,
                        **train_overrides) -> "Trainer":
        """Rebuild a trainer (model from the saved config) and resume its state. Keyword
        overrides change the training config, e.g. ``steps=20000`` to train longer. The run of a
        network of your own needs ``model``: built as for training, its weights are then restored."""
        state = load_checkpoint(path)
        check_resumable(state, path)
        config = from_state(state, "train_config", path, **train_overrides)
        model = model if model is not None else build_model(from_state(state, "model_config", path))
        trainer = cls(model, from_state(state, "diffusion_config", path), config,
                      out_dir=out_dir if out_dir is not None else Path(path).parent, device=device)
        return trainer.load_state(state)

    # ----------------------------------------------------------------- the loop
    def train_step(self, x0: Tensor, y: Optional[Tensor] = None) -> float:
        """One optimizer step of Algorithm 1 on a batch x0 (in [-1, 1]); returns the loss."""
        cfg = self.config
        x0 = x0.to(self.device)
        y = y.to(self.device) if y is not None else None
        self.model.train()
        with autocast(cfg, self.device, self._precision() == "bf16"):
            loss = self.loss_fn(x0, y, self.generator).float()
        if not torch.isfinite(loss):
            saved = f"the last good checkpoint is {self.checkpoint_path}" if self.checkpoint_path \
                and self.checkpoint_path.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(f"loss became {loss.item()} at step {self.step}; training "
                                     f"stopped before updating the weights and {saved}. Try a "
                                     f"lower lr (now {cfg.lr}) or check that the data lie in [-1, 1]")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self._stop is not None:  # from here on the step changes the weights: a signal waits for its end
            self._stop.phase = "updating"
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, cfg, self._budget_used())
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model, self.step)
        self.step += 1
        return loss.item()

    def _precision(self) -> str:
        """The precision this run trains in: what the config asks for, "auto" resolved (:func:`uses_bf16`)
        once, at the run's first step, then kept (also across a resume: ``precision_used`` is saved)."""
        if self.config.precision != "auto":
            self.precision_used = self.config.precision
        elif self.precision_used is None:
            self.precision_used = "bf16" if uses_bf16(self.config, self.device) else "fp32"
        return self.precision_used

    def _budget_used(self) -> Optional[float]:
        """The fraction of a minutes-only budget used so far (None when steps are the budget)."""
        if self.config.steps is not None or not self.config.max_minutes:
            return None
        return self.elapsed_s / (self.config.max_minutes * 60)

    def _undo_point(self) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """What a step changes before it updates the weights: the random-number states (t, eps, label
        dropout, dropout) and the model's buffers (normalisation statistics), to undo a dropped step."""
        return (self.generator.get_state(), torch.get_rng_state(),
                [b.detach().clone() for b in self.model.buffers()])

    def _undo(self, point: Tuple[Tensor, Tensor, List[Tensor]]) -> None:
        generator, rng, buffers = point
        self.generator.set_state(generator)
        torch.set_rng_state(rng)
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), buffers):
                b.copy_(saved)

    def _check_labels(self, labels: Optional[Tensor]) -> None:
        """Refuse labels a class-conditional model cannot take: not integers, or outside 0..num_classes-1
        (its ``null_label`` is num_classes, the "no class" label that label dropout gives)."""
        classes = getattr(self.model, "null_label", None)
        if labels is None or classes is None:
            return
        valid = f"class indices 0..{classes - 1} (this model has {classes} classes)"
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise InputError(f"the training labels must be integer {valid}, got dtype {labels.dtype}; "
                             f"convert them with labels.long()")
        if labels.ndim != 1:
            raise InputError(f"the training labels must be one class index per image, shape [N], got "
                             f"{list(labels.shape)}")
        bad = labels[(labels < 0) | (labels >= classes)]
        if bad.numel():
            raise InputError(f"the training labels must be {valid}, got {int(bad[0])} ({bad.numel()} labels "
                             f"outside that range); fix the labels or build the model with more classes")

    def _check_protocol(self, images: Tensor, labels: Optional[Tensor]) -> None:
        """Before the first step: the network takes ``forward(x, t[, y])`` on two training images and
        returns x's shape (one line refusing it otherwise, never after minutes of training); the
        shape of the images is remembered (samplers draw it, checkpoints record it). Random states,
        buffers and the network's mode are left as they were: a seeded run is unchanged by the check."""
        shape = tuple(images.shape[1:])
        saved = getattr(self.model, "image_shape", None)
        if saved is not None and tuple(saved) != shape:
            raise InputError(f"this run trained on images of {'x'.join(map(str, saved))} but was given "
                             f"{'x'.join(map(str, shape))}; resume it with the same data")
        if self.loss_fn_given:  # a loss of the caller's own may call the network any way it likes
            remember_image_shape(self.model, shape)
            return
        x = images[:2].to(self.device)
        t = torch.full((len(x),), self.schedule.T - 1, dtype=torch.long, device=self.device)
        null = getattr(self.model, "null_label", None)
        args = (x, t) if null is None else (x, t, torch.full((len(x),), int(null), device=self.device))
        call = "forward(x, t)" if null is None else "forward(x, t, y)"
        buffers = [b.detach().clone() for b in self.model.buffers()]
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad(), eval_mode(self.model), \
                    autocast(self.config, self.device, self._precision() == "bf16"):  # as the steps will call it
                out = self.model(*args)
        except Exception as err:  # noqa: BLE001 - any failure of the user's network is told in one line
            raise InputError(f"the network cannot be trained: its {call} failed on 2 training images x of shape "
                             f"{list(x.shape)}, t {list(t.shape)} long ({type(err).__name__}: {first_line(err)}); "
                             f"see help(Trainer) for the protocol it must keep") from err
        finally:
            with torch.no_grad():
                for b, before in zip(self.model.buffers(), buffers):
                    b.copy_(before)
        if not isinstance(out, Tensor) or tuple(out.shape) != tuple(x.shape):
            got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InputError(f"the network cannot be trained: its {call} must return a tensor of x's shape "
                             f"{list(x.shape)}, got {got}; see help(Trainer) for the protocol it must keep")
        remember_image_shape(self.model, shape)
        remember_image_shape(self.ema.model, shape)

    def fit(self, data: TensorDataset, *, progress: bool = True) -> List[float]:
        """Train on ``data`` (a ``TensorDataset(images, labels)`` as from
        :func:`ddpm_lib.data.load_mnist`) until ``steps`` or ``max_minutes``; returns the
        per-step loss history. Ctrl-C or SIGTERM (caught in the main thread) lets the step under way
        finish, saves a checkpoint of that step (with ``out_dir``) and returns; a second Ctrl-C before
        the step is done drops it at once (the step before it is saved); one during a save is held
        back until the file is complete."""
        cfg = self.config
        images, labels = data.tensors[0], data.tensors[1] if len(data.tensors) > 1 else None
        if cfg.subset is not None and len(images) != cfg.subset:
            raise InputError(f"this run trains on {cfg.subset} images (its TrainConfig.subset) but was given "
                             f"{len(images)}; resume it with the same data, load_mnist(subset={cfg.subset})")
        check_model_range(images, "the training images")  # once here: uint8, NaN, [0, 255], [0, 1] refused
        self._check_labels(labels)
        self._check_protocol(images, labels)
        if cfg.steps is None and cfg.max_minutes is None:
            raise InputError("set TrainConfig.steps or TrainConfig.max_minutes (or both)")
        self._precision()
        self.interrupted = False
        budget_s = cfg.max_minutes * 60 if cfg.max_minutes is not None else math.inf
        start, start_elapsed = time.perf_counter(), self.elapsed_s
        bar = tqdm(total=cfg.steps, initial=self.step, desc="training", disable=not progress)
        running = None
        with StopRequests() as stop:
            self._stop = stop
            try:
                batches = batch_order(len(images), cfg.batch_size, cfg.seed, self.step)
                null = getattr(self.model, "null_label", None)  # None: the model takes no labels
                while (cfg.steps is None or self.step < cfg.steps) and self.elapsed_s < budget_s \
                        and stop.signum is None:  # a stop request is answered here, between two steps
                    undo = self._undo_point()
                    stop.phase = "computing"
                    idx = next(batches)
                    y = None if labels is None or null is None else \
                        drop_labels(labels[idx], null, cfg.label_dropout, self.generator)
                    loss = self.train_step(images[idx], y)
                    self.history.append(loss)
                    self.elapsed_s = start_elapsed + time.perf_counter() - start
                    stop.phase = "boundary"
                    running = loss if running is None else 0.98 * running + 0.02 * loss
                    bar.update(1)
                    if self.step % 10 == 0 or self.step == cfg.steps:
                        bar.set_postfix(loss=f"{running:.4f}")
                    if self.out_dir is not None and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save()
                self.interrupted = stop.signum is not None and (cfg.steps is None or self.step < cfg.steps) \
                    and self.elapsed_s < budget_s  # not when the budget ran out with the step it waited for
                stop.phase = "stopping"
                dropped = ""
            except KeyboardInterrupt:  # a second Ctrl-C mid-step, or raised by code inside a step
                phase, stop.phase = stop.phase, "stopping"
                if phase == "updating":  # the weights changed but the step is not counted: nothing to save
                    kept = f"; the last checkpoint, {self.checkpoint_path}, is kept" if self.checkpoint_path \
                        and self.checkpoint_path.exists() else ""
                    bar.write(f"interrupted while updating the weights at step {self.step}: not saved{kept}.")
                    raise
                if phase == "computing":
                    self._undo(undo)  # back to the end of the last completed step
                self.interrupted, dropped = True, " (the step under way was dropped)"
            finally:
                bar.close()
                self._stop = None
            if self.interrupted:
                where = f"; checkpoint saved to {self.save()}" if self.out_dir is not None else ""
                bar.write(f"interrupted at step {self.step}{dropped}{where}."
                          + ("" if self.on_interrupt else " Call fit() again to continue."))
            elif self.out_dir is not None:
                self.save()
        if self.interrupted and self.on_interrupt is not None:
            self.on_interrupt(self)
        stop.pass_on_sigterm(self.interrupted)
        return self.history
