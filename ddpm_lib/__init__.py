"""ddpm_lib: Denoising Diffusion Probabilistic Models (Ho, Jain & Abbeel 2020) on MNIST.

The tested library behind the ddpm-mnist notebooks. Names follow the paper: ``betas``,
``alphas``, ``alpha_bars``, ``beta_tilde``, ``x0``, ``xt``, ``eps``, ``t`` (0-based in code).
"""

from .checkpoints import CheckpointError, export_pretrained, load_checkpoint, load_model, save_checkpoint
from .config import DiffusionConfig, MLPConfig, SamplerConfig, TrainConfig, UNetConfig, get_device, seed_everything
from .data import MNISTDataError, load_mnist, prepare_mnist, pretrained_path, to_model_range, to_unit_range
from .diffusion import (eps_and_x0, gather, predict_eps_from_x0, predict_v, predict_x0_from_eps, prediction_target,
                        q_posterior, q_sample, q_sample_iterated, q_step, simple_loss)
from .guidance import drop_labels, guided_eps
from .interpolation import interpolate, noise_for_seed, slerp
from .models import MLPNoisePredictor, UNet, build_model, count_parameters, eval_mode, sinusoidal_embedding
from .plotting import image_grid, plot_loss, plot_schedules, save_grid, show_grid, show_strip
from .samplers import (SampleTrajectory, ddim_sample, ddim_step, ddim_timesteps, ddpm_sample, ddpm_step,
                       dpm_solver_sample, dpm_solver_step, reverse_loop, sample, spaced_timesteps,
                       trailing_timesteps)
from .schedules import PREDICTIONS, VARIANCES, Schedule, cosine_betas, linear_betas, make_schedule, reverse_variance
from .training import EMA, NonFiniteLossError, Trainer, batch_order, learning_rate, simple_loss_fn

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "export_pretrained", "load_checkpoint", "load_model", "save_checkpoint",
    "DiffusionConfig", "MLPConfig", "SamplerConfig", "TrainConfig", "UNetConfig", "get_device", "seed_everything",
    "MNISTDataError", "load_mnist", "prepare_mnist", "pretrained_path", "to_model_range", "to_unit_range",
    "eps_and_x0", "gather", "predict_eps_from_x0", "predict_v", "predict_x0_from_eps", "prediction_target",
    "q_posterior", "q_sample",
    "q_sample_iterated", "q_step", "simple_loss",
    "drop_labels", "guided_eps",
    "interpolate", "noise_for_seed", "slerp",
    "MLPNoisePredictor", "UNet", "build_model", "count_parameters", "eval_mode", "sinusoidal_embedding",
    "image_grid", "plot_loss", "plot_schedules", "save_grid", "show_grid", "show_strip",
    "sample", "SampleTrajectory", "ddim_sample", "ddim_step", "ddim_timesteps", "ddpm_sample", "ddpm_step",
    "dpm_solver_sample", "dpm_solver_step", "reverse_loop", "spaced_timesteps", "trailing_timesteps",
    "PREDICTIONS", "VARIANCES", "Schedule", "cosine_betas", "linear_betas", "make_schedule", "reverse_variance",
    "EMA", "NonFiniteLossError", "Trainer", "batch_order", "learning_rate", "simple_loss_fn",
]
