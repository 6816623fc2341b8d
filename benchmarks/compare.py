"""ddpm_lib against diffusers and denoising-diffusion-pytorch at equal wall-clock training time.

    pip install -r benchmarks/requirements.txt
    python benchmarks/compare.py --minutes 20                      # the full run (hours on 2 CPU cores, resumable)
    python benchmarks/compare.py --minutes 1 --n 200 --curve 10     # a smoke run
    python benchmarks/compare.py report                            # RESULTS.md's tables and plots from results.json

1. Train: each contender alone for ``--minutes`` on the MNIST training set, with ``ddpm_lib.Trainer``
   and ``TrainConfig()``'s optimiser (batch 128, AdamW 1e-3, 200 warm-up steps, clipping 1.0, EMA
   0.999); only the loss differs. Ours: the default ``UNetConfig()`` and ``UNetConfig.small()``
   (half the widths, for short CPU budgets), with the default recipe (``TrainConfig()``: min-SNR-5
   weighting). Peers: the Hugging Face course's diffusers UNet2DModel and denoising-diffusion-pytorch's
   Unet, each noised and weighted by its own library.
2. Sample: the EMA weights draw ``--n`` images with the contender's own library's DDIM, 20 steps and
   eta = 1 for all (the ``HEADLINE`` sampler, which every library has; our default sampler,
   SDE-DPM-Solver++(2M) on trailing steps, is scored by studies.py); ours add
   DDIM (eta = 0) at each ``--curve`` step count and DDPM-1000 if 1000 is among them. All samplers of
   a model run in one sitting, in chunks of ``CHUNK`` taken in turn (chunk 0 of each sampler, then
   chunk 1, ...), so their seconds compare.
3. Score: ``ddpm_lib.metrics.SampleEvaluator`` (MNIST-FID and its real-data floor at the same n,
   MLP-FID, precision/recall, confident share, class entropy); training GFLOP/s against the CPU's
   measured fp32 matmul peak.

Finished stages go to ``OUT/results.json`` and sample chunks to ``OUT``, so an interrupted run picks
up where it stopped. ``report.py`` renders the tables between RESULTS.md's marker comments; the prose
is written by hand. Bits/dim come from ``python -m ddpm_lib evaluate --bpd-images N``, not from here.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from ddpm_lib import (DiffusionConfig, SamplerConfig, TrainConfig, Trainer, UNet, UNetConfig, ddim_sample,
                      ddpm_sample, load_mnist, make_schedule, seed_everything)
from ddpm_lib.files import read_weights_file, replace_atomically
from ddpm_lib.metrics import SampleEvaluator

ROOT = Path(__file__).resolve().parents[1]

OURS = {"ours": UNetConfig(), "ours_small": UNetConfig.small()}
CHUNK = SamplerConfig().cpu_batch  # samples are drawn, timed and cached in chunks of this size, for every contender
# every contender's main sampler: its library's DDIM, 20 steps with eta = 1, a sampler all three libraries have
HEADLINE_STEPS, HEADLINE_ETA = 20, 1.0
HEADLINE = f"ddim{HEADLINE_STEPS}_eta{HEADLINE_ETA:g}"


# --------------------------------------------------------------------------- the contenders
# Each contender is (network, Trainer loss(x0, y, generator) or None for the default recipe, {label: draw(n, seed=...)}),
# with images in [-1, 1] on both ends; the samplers use the network's weights as they are when called.
def ours(name: str, curve) -> tuple:
    """Our U-Net with the default recipe (the Trainer's loss); the HEADLINE sampler (DDIM, steps
    spread evenly over T-1 .. 0), DDIM (eta = 0) with the ``curve``'s step counts, DDPM if 1000 is among them."""
    model, schedule = UNet(OURS[name]), make_schedule(DiffusionConfig())
    draw = {HEADLINE: partial(ddim_sample, model, schedule, steps=HEADLINE_STEPS, eta=HEADLINE_ETA, progress=False)}
    draw.update({f"ddim{s}": partial(ddim_sample, model, schedule, steps=s, progress=False)
                 for s in sorted(set(curve)) if s < 1000})
    if 1000 in curve:
        draw["ddpm1000"] = partial(ddpm_sample, model, schedule, progress=False)
    return model, None, draw


def diffusers_contender(curve) -> tuple:
    """The Hugging Face diffusion course's MNIST U-Net (unit 1), noised and sampled by diffusers' schedulers."""
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

    model = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, layers_per_block=2,
                        block_out_channels=(32, 64, 64),
                        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"))
    noising = DDPMScheduler(num_train_timesteps=1000)

    def loss(x0, y, generator):
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, 1000, (x0.shape[0],), generator=generator)
        return F.mse_loss(model(noising.add_noise(x0, noise, t), t).sample, noise)

    @torch.no_grad()
    def ddim(n, seed):
        """DDIMScheduler from the training config clips x0 but by default keeps the unclipped eps for the
        direction term (grey images, RESULTS.md); use_clipped_model_output re-derives eps from the
        clipped x0, as ddpm_lib and denoising-diffusion-pytorch do."""
        scheduler = DDIMScheduler.from_config(noising.config)
        scheduler.set_timesteps(HEADLINE_STEPS)
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 1, 28, 28, generator=generator)
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t).sample, t, x, eta=HEADLINE_ETA, use_clipped_model_output=True,
                               generator=generator).prev_sample
        return x.clamp(-1, 1)
    return model, loss, {HEADLINE: ddim}


def ddp_contender(curve) -> tuple:
    """denoising-diffusion-pytorch's Unet at about our default's size; its GaussianDiffusion works in [0, 1]."""
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet

    unet = Unet(dim=32, dim_mults=(1, 2, 4), channels=1)
    diffusion = GaussianDiffusion(unet, image_size=28, timesteps=1000)  # draws t and noise from torch's global RNG

    def ddim(n, seed):
        torch.manual_seed(seed)
        sampler = GaussianDiffusion(unet, image_size=28, timesteps=1000, sampling_timesteps=HEADLINE_STEPS,
                                    ddim_sampling_eta=HEADLINE_ETA)
        return sampler.sample(batch_size=n) * 2 - 1
    return unet, lambda x0, y, generator: diffusion((x0 + 1) / 2), {HEADLINE: ddim}


CONTENDERS = {"ours": partial(ours, "ours"), "ours_small": partial(ours, "ours_small"),
              "diffusers": diffusers_contender, "ddp": ddp_contender}


# --------------------------------------------------------------------------- measurements
def training_gflop_per_image(trainer: Trainer) -> float:
    """GFLOP of one training step's forward + backward pass per image (PyTorch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(8, 1, 28, 28) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        trainer.loss_fn(x, None, torch.Generator().manual_seed(0)).backward()
    trainer.model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 8 / 1e9


def matmul_peak_gflops(size: int = 2048, reps: int = 10) -> float:
    """The CPU's sustained fp32 rate on large matrix products (what convolutions lower to): best of 3."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b

    def seconds() -> float:
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        return time.perf_counter() - start
    return 2 * size ** 3 * reps / min(seconds() for _ in range(3)) / 1e9


class Run:
    """The cache folder: results.json (one entry per finished stage) and the sample chunks."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "results.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self) -> None:
        """Write results.json merged with the file on disk (another invocation may have added
        stages). The merge fills ``self.data`` in place, this run's values winning, so references
        into it taken before a save (a contender's dict) still reach the file at the next save."""
        def merge_into(mine: dict, disk: dict) -> None:
            for k, v in disk.items():
                if k not in mine:
                    mine[k] = v
                elif isinstance(mine[k], dict) and isinstance(v, dict):
                    merge_into(mine[k], v)

        if self.path.exists():
            merge_into(self.data, json.loads(self.path.read_text()))
        replace_atomically(self.path, lambda tmp: tmp.write_text(json.dumps(self.data, indent=1)))

    def chunk(self, key: str, n: int, i: int, draw) -> dict:
        """Chunk i of the n samples called ``key``: {"x", "seconds"}, from the cache or drawn now."""
        path = self.out / f"samples_{key}_{n}_{i}.pt"
        if path.exists():
            return read_weights_file(path, "sample chunk")
        start = time.perf_counter()
        chunk = {"x": draw().cpu().float()}
        chunk["seconds"] = time.perf_counter() - start
        torch.save(chunk, path)
        return chunk


# --------------------------------------------------------------------------- the stages
def train(run: Run, name: str, key: str, minutes: float, seed: int) -> None:
    """Train one contender with ddpm_lib's Trainer for ``minutes``; store its EMA weights and numbers."""
    print(f"== training {name} for {minutes} min")
    seed_everything(seed)
    model, loss, _ = CONTENDERS[name](())
    # float32 for every contender, as in the stored results (TrainConfig's "auto" would train ours and the
    # peers in bfloat16 on a CPU that has it)
    config = TrainConfig(steps=None, max_minutes=minutes, seed=seed, checkpoint_every=0, precision="fp32")
    trainer = Trainer(model, DiffusionConfig(), config, loss_fn=loss, device="cpu")
    trainer.fit(load_mnist())
    torch.save(trainer.ema.model.state_dict(), run.out / f"{name}_{key}.pt")
    gflop = training_gflop_per_image(trainer)
    rate = trainer.step * config.batch_size / trainer.elapsed_s
    peak = run.data["meta"]["peak_gflops"]
    run.data[key][name] = {"params": sum(p.numel() for p in model.parameters()), "steps": trainer.step,
                           "train_seconds": trainer.elapsed_s, "images_per_s": rate,
                           "loss_end": sum(trainer.history[-100:]) / len(trainer.history[-100:]),
                           "train_gflop_per_image": gflop, "train_gflops": rate * gflop,
                           "peak_fraction": rate * gflop / peak}
    run.save()


def sample_and_score(run: Run, name: str, key: str, n: int, seed: int, curve, evaluator) -> None:
    """All samplers of one trained model that are not scored yet, in one sitting, chunk by chunk in turn."""
    model, _, draws = CONTENDERS[name](curve)
    r = run.data[key][name].setdefault("samples", {})
    todo = {label: draw for label, draw in draws.items() if label not in r}
    if not todo:
        return
    model.load_state_dict(read_weights_file(run.out / f"{name}_{key}.pt", "trained weights file"))
    model.eval()
    chunks = {label: [] for label in todo}
    for i, lo in enumerate(range(0, n, CHUNK)):
        for label, draw in todo.items():
            print(f"== sampling {name} {label}, chunk {i}")
            chunks[label].append(run.chunk(f"{name}_{key}_{label}", n, i,
                                           lambda: draw(min(CHUNK, n - lo), seed=seed * 1000 + i)))
    for label, cs in chunks.items():
        x = torch.cat([c["x"] for c in cs])
        report = evaluator.evaluate(x)
        r[label] = {"seconds": sum(c["seconds"] for c in cs), "chunk_seconds": [c["seconds"] for c in cs],
                    **report.as_dict()}
        torch.save(x[:64], run.out / f"grid_{name}_{key}_{label}.pt")
        print(f"{name} {label}: {report}; {r[label]['seconds']:.0f}s")
    run.save()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run", "report"],
                   help="run: train, sample and score what is not cached; report: rewrite RESULTS.md's tables")
    p.add_argument("--minutes", type=float, default=20.0, help="training budget per contender")
    p.add_argument("--n", type=int, default=1000, help="samples per contender and sampler")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "runs"), help="cache folder")
    p.add_argument("--only", nargs="*", default=list(CONTENDERS), choices=list(CONTENDERS),
                   help="contenders to train and sample")
    p.add_argument("--curve", nargs="*", type=int, default=[10, 20, 50, 100, 1000],
                   help=f"our models' DDIM (eta = 0) step counts (1000 = DDPM); {HEADLINE} is always drawn")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    run = Run(Path(args.out))
    from report import write_report  # the sibling script: `python benchmarks/compare.py` has this folder on sys.path

    if args.command == "report":  # without a run folder here, from the committed results
        write_report(run.data or json.loads((ROOT / "benchmarks" / "results.json").read_text()), ROOT / "benchmarks")
        return 0
    key = f"{args.minutes:g}min"
    meta = run.data.setdefault("meta", {})
    command = " ".join(["python benchmarks/compare.py", *(argv if argv is not None else sys.argv[1:])])
    commands = meta.setdefault("commands", [])
    commands += [command] * (command not in commands)  # a resumed run adds its invocation
    meta.update(torch=torch.__version__, threads=torch.get_num_threads(),
                cpu=platform.processor() or platform.machine(), minutes=args.minutes, n=args.n, out=str(run.out),
                headline=HEADLINE)
    if "peak_gflops" not in meta:
        meta["peak_gflops"] = matmul_peak_gflops()
        print(f"fp32 matmul peak: {meta['peak_gflops']:.0f} GFLOP/s")
    results = run.data.setdefault(key, {})
    run.save()
    for name in args.only:  # all training first, then sampling: one contender at a time on the CPU
        if "steps" not in results.get(name, {}):
            train(run, name, key, args.minutes, args.seed)
    evaluator = SampleEvaluator(device="cpu")
    for name in args.only:
        sample_and_score(run, name, key, args.n, args.seed, sorted(args.curve), evaluator)
        write_report(run.data, ROOT / "benchmarks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
