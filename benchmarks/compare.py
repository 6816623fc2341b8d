"""ddpm_lib against diffusers and denoising-diffusion-pytorch at equal wall-clock training time.

    pip install -r benchmarks/requirements.txt
    python benchmarks/compare.py --minutes 20            # the full run (about 4 h on 2 CPU cores, resumable)
    python benchmarks/compare.py --minutes 1 --n 200     # a smoke run
    python benchmarks/compare.py retime --minutes 20     # time DDIM-50 again, in the same sitting as DDPM
                                                         # (--model ours_small for the small preset)

Each contender trains alone for ``--minutes`` on the MNIST training set (batch 128, AdamW lr 1e-3
with 200 warm-up steps, gradient clipping 1.0, EMA 0.999: the same optimiser for all), then its
EMA weights draw ``--n`` samples with its own library's DDIM sampler, 50 steps, eta = 0. The
shipped classifier scores the samples (MNIST-FID against the test set with the real-data floor at
the same n, confident share, class entropy). We enter two models: the default ``UNetConfig()``
(the notebooks' U-Net) and ``UNetConfig.small()`` (half the widths, meant for short CPU budgets).
For each the script adds the DDPM-1000 vs DDIM-{10, 20, 50, 100} quality/time curve, DDIM-50 with
eta = 1, and training GFLOP/s against the CPU's measured peak.

Every finished stage is stored in ``OUT/results.json`` (samples in chunks), so an interrupted
run picks up where it stopped; ``report`` rewrites RESULTS.md and the plot from it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddpm_lib import (EMA, DiffusionConfig, TrainConfig, Trainer, UNet, UNetConfig,  # noqa: E402
                      ddim_sample, ddpm_sample, load_mnist, load_model, seed_everything, simple_loss)
from ddpm_lib.metrics import SampleEvaluator, bits_per_dim, discretized_gaussian_log_likelihood  # noqa: E402

BATCH, LR, WARMUP, CLIP, EMA_DECAY = 128, 1e-3, 200, 1.0, 0.999
# our contenders: the default U-Net (the notebooks' model) and the small preset meant for short CPU budgets
OURS = {"ours": UNetConfig(), "ours_small": UNetConfig.small()}
CHUNK = 250  # samples are drawn (and cached) in chunks of this size


# --------------------------------------------------------------------------- contenders
def diffusers_unet() -> torch.nn.Module:
    """The Hugging Face diffusion course's MNIST U-Net (unit 1)."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=28, in_channels=1, out_channels=1, layers_per_block=2,
                       block_out_channels=(32, 64, 64),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"))


def diffusers_loss_fn(model, scheduler):
    def loss(x0: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],))
        return F.mse_loss(model(scheduler.add_noise(x0, noise, t), t).sample, noise)
    return loss


@torch.no_grad()
def diffusers_sample(model, n: int, seed: int, steps: int = 50, use_clipped_model_output: bool = False) -> torch.Tensor:
    """diffusers' DDIMScheduler built from the training DDPMScheduler's config (x0 clipping on).
    By default it clips x0 but keeps the unclipped eps for the direction term; with
    ``use_clipped_model_output`` it re-derives eps from the clipped x0, as ddpm_lib and
    denoising-diffusion-pytorch do."""
    from diffusers import DDIMScheduler, DDPMScheduler

    sched = DDIMScheduler.from_config(DDPMScheduler(num_train_timesteps=1000).config)
    sched.set_timesteps(steps)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=gen)
    model.eval()
    for t in sched.timesteps:
        x = sched.step(model(x, t).sample, t, x, eta=0.0,
                       use_clipped_model_output=use_clipped_model_output).prev_sample
    return x.clamp(-1, 1)


def ddp_models():
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet

    unet = Unet(dim=32, dim_mults=(1, 2, 4), channels=1)
    return unet, GaussianDiffusion(unet, image_size=28, timesteps=1000)


@torch.no_grad()
def ddp_sample(unet, n: int, seed: int, steps: int = 50, eta: float = 0.0) -> torch.Tensor:
    from denoising_diffusion_pytorch import GaussianDiffusion

    torch.manual_seed(seed)
    diffusion = GaussianDiffusion(unet.eval(), image_size=28, timesteps=1000, sampling_timesteps=steps,
                                  ddim_sampling_eta=eta)
    return diffusion.sample(batch_size=n) * 2 - 1  # it works in [0, 1]


def train_generic(name: str, model: torch.nn.Module, loss_fn: Callable, images: torch.Tensor,
                  minutes: float, seed: int) -> Dict:
    """The same loop for the peers: AdamW, warm-up, clipping, EMA, a wall-clock budget."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ema = EMA(model, EMA_DECAY)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    step, losses, start = 0, [], time.perf_counter()
    bar = tqdm(desc=f"training {name}")
    model.train()
    while time.perf_counter() - start < minutes * 60:
        idx = torch.randint(0, len(images), (BATCH,), generator=gen)
        for g in opt.param_groups:
            g["lr"] = LR * min(1.0, (step + 1) / WARMUP)
        loss = loss_fn(images[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        ema.update(model, step)
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    bar.close()
    seconds = time.perf_counter() - start
    return {"ema": ema.model, "steps": step, "seconds": seconds, "loss_end": sum(losses[-100:]) / len(losses[-100:])}


# --------------------------------------------------------------------------- measurements
def training_flops_per_image(model: torch.nn.Module, loss_fn: Callable) -> float:
    """FLOPs of one forward + backward pass per image, counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(8, 1, 28, 28) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        loss_fn(x).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 8


def matmul_peak_gflops(size: int = 2048, reps: int = 10) -> float:
    """The CPU's sustained fp32 rate on large matrix products (what convolutions lower to)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 * reps / best / 1e9


def _utc(seconds: Optional[float] = None) -> str:
    """A timestamp as the report reads it: "YYYY-MM-DD HH:MM UTC" (now, or of epoch ``seconds``)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


class Run:
    """results.json with per-stage caching."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "results.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self) -> None:
        """Write results.json, merged with what is on disk (another invocation may have added stages).

        The merge fills ``self.data`` in place (what this run holds wins), so references into it taken
        before a save, such as a contender's result dict, still reach the file at the next save."""
        def merge_into(mine: Dict, disk: Dict) -> None:
            for k, v in disk.items():
                if k not in mine:
                    mine[k] = v
                elif isinstance(mine[k], dict) and isinstance(v, dict):
                    merge_into(mine[k], v)

        if self.path.exists():
            merge_into(self.data, json.loads(self.path.read_text()))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)

    def chunk_times(self, key: str, n: int) -> list:
        """Seconds and finishing time of each cached chunk of ``key`` (chunks may come from different sittings)."""
        out = []
        for i, lo in enumerate(range(0, n, CHUNK)):
            path = self.out / f"samples_{key}_{n}_{i}.pt"
            if path.exists():
                chunk = torch.load(path, weights_only=True)
                finished = chunk.get("finished") or _utc(path.stat().st_mtime)  # older chunks: the file's time
                out.append({"index": i, "seconds": float(chunk["seconds"]), "n": min(CHUNK, n - lo), "finished": finished})
        return out

    def sample(self, key: str, fn: Callable[[int, int], torch.Tensor], n: int, seed: int) -> tuple:
        """Draw n samples in cached chunks; returns (samples, total sampling seconds)."""
        xs, seconds = [], 0.0
        for i, lo in enumerate(range(0, n, CHUNK)):
            path = self.out / f"samples_{key}_{n}_{i}.pt"
            if path.exists():
                chunk = torch.load(path, weights_only=True)
            else:
                start = time.perf_counter()
                chunk = fn(min(CHUNK, n - lo), seed + i).cpu().float()
                chunk = {"x": chunk, "seconds": time.perf_counter() - start, "finished": _utc()}
                torch.save(chunk, path)
            xs.append(chunk["x"])
            seconds += chunk["seconds"]
        return torch.cat(xs), seconds


def ours_sampler(run: Run, key: str, steps: int, eta: float = 0.0, name: str = "ours") -> Callable[[int, int], torch.Tensor]:
    """Our trained model's sampler: DDPM (Algorithm 2) for 1000 steps, else DDIM with ``steps`` steps and ``eta``."""
    model = UNet(OURS[name])
    model.load_state_dict(torch.load(run.out / f"{name}_{key}.pt", weights_only=True))
    model.eval()
    _, schedule = load_model(run.out / f"{name}_{key}" / "checkpoint.pt", device="cpu")
    model.num_timesteps = schedule.T
    return (lambda k, s: ddpm_sample(model, schedule, k, seed=s)) if steps == 1000 else \
        (lambda k, s: ddim_sample(model, schedule, k, steps=steps, eta=eta, seed=s))


def retime(run: Run, key: str, steps_list: list, seed: int, name: str = "ours") -> None:
    """Time one chunk of each of our samplers again, back to back, and record every cached chunk's seconds.

    Sampling stages of a resumed run can lie days apart, and a shared machine's speed drifts; the
    seconds of two samplers only compare when measured in one sitting. The samples drawn here are
    thrown away (the cached ones are what is scored)."""
    ours = run.data.get(key, {}).get(name, {})
    if "samples" not in ours:
        raise SystemExit(f"retime: no sampled stages of {name} ({key}) in {run.out}; run the benchmark first")
    bad = [s for s in steps_list if not 1 <= s <= 1000]
    if bad:
        raise SystemExit(f"retime: --retime takes DDIM step counts 1..999 or 1000 for DDPM, got {bad}")
    n = run.data["meta"]["n"]  # the chunks on disk belong to the run's sample count
    for label in ours["samples"]:
        chunks = run.chunk_times(f"{name}_{key}_{label}", n)
        if chunks:
            ours["samples"][label]["chunks"] = chunks
    timings, sitting = ours.setdefault("retime", {}), _utc()
    for steps in steps_list:
        label = f"ddim{steps}" if steps < 1000 else "ddpm1000"
        fn = ours_sampler(run, key, steps, name=name)
        print(f"== timing {name} {label} on {CHUNK} images")
        start = time.perf_counter()
        fn(CHUNK, seed * 1000)
        timings[label] = {"seconds": time.perf_counter() - start, "n": CHUNK, "finished": _utc(), "sitting": sitting}
        print(f"{name} {label}: {timings[label]['seconds']:.1f}s for {CHUNK} images")
    run.save()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run", "report", "retime"],
                   help="run: train and sample what is not cached; report: rewrite RESULTS.md; retime: "
                        "time one chunk of each --retime sampler of our model now, in one sitting")
    p.add_argument("--minutes", type=float, default=20.0, help="training budget per contender")
    p.add_argument("--n", type=int, default=1000, help="samples per contender and sampler")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "runs"), help="cache folder")
    p.add_argument("--only", nargs="*", default=[*OURS, "diffusers", "ddp"],
                   help="contenders to train and sample")
    p.add_argument("--model", default="ours", choices=list(OURS), help="with retime: which of our models to time")
    p.add_argument("--curve", nargs="*", type=int, default=[10, 20, 50, 100, 1000],
                   help="our model's sampler steps for the quality/time curve (1000 = DDPM)")
    p.add_argument("--vlb-images", type=int, default=300,
                   help="test images for the shipped model's variational bound (0: skip)")
    p.add_argument("--retime", nargs="*", type=int, default=[50],
                   help="with retime: our sampler steps to time again on one chunk each, in this order "
                        "(1000 = DDPM); the chunk count follows the run's --n")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    run = Run(Path(args.out))
    from report import write_report

    if args.command == "report":  # without a run folder here, from the committed results
        stored = ROOT / "benchmarks" / "results.json"
        write_report(run.data or json.loads(stored.read_text()), ROOT / "benchmarks")
        return 0
    key = f"{args.minutes:g}min"
    meta = run.data.setdefault("meta", {})
    command = " ".join(["python benchmarks/compare.py", *(argv if argv is not None else sys.argv[1:])])
    meta.setdefault("commands", [])
    if command not in meta["commands"]:
        meta["commands"].append(command)  # a resumed run adds its invocation
    if args.command == "retime":
        retime(run, key, args.retime, args.seed, args.model)
        write_report(run.data, ROOT / "benchmarks")
        return 0
    meta.update(command=meta["commands"][0], torch=torch.__version__, threads=torch.get_num_threads(), cpu=platform.processor() or platform.machine(),
                minutes=args.minutes, n=args.n, out=str(run.out))
    if "peak_gflops" not in meta:
        meta["peak_gflops"] = matmul_peak_gflops()
        print(f"fp32 matmul peak: {meta['peak_gflops']:.0f} GFLOP/s")
    run.save()
    seed_everything(args.seed)
    images = load_mnist().tensors[0]
    evaluator = SampleEvaluator(device="cpu")

    results = run.data.setdefault(key, {})
    makers = {**{name: (lambda c=cfg: UNet(c)) for name, cfg in OURS.items()},
              "diffusers": diffusers_unet, "ddp": lambda: ddp_models()[0]}
    unknown = set(args.only) - set(makers)
    if unknown:
        p.error(f"--only takes {sorted(makers)}, got {sorted(unknown)}")
    for name in args.only:
        r = results.setdefault(name, {})
        weights = run.out / f"{name}_{key}.pt"
        make = makers[name]
        if "steps" not in r:
            print(f"== training {name} for {args.minutes} min")
            seed_everything(args.seed)
            if name in OURS:
                trainer = Trainer(make(), DiffusionConfig(),
                                  TrainConfig(steps=None, max_minutes=args.minutes, seed=args.seed),
                                  out_dir=run.out / f"{name}_{key}", device="cpu")
                trainer.fit(load_mnist())
                ema, steps, seconds = trainer.ema.model, trainer.step, trainer.elapsed_s
                loss_end = sum(trainer.history[-100:]) / len(trainer.history[-100:])
                loss_fn = lambda x: simple_loss(trainer.model, trainer.schedule, x)  # noqa: E731
                flops = training_flops_per_image(trainer.model, loss_fn)
            elif name == "diffusers":
                from diffusers import DDPMScheduler

                model = make()
                loss_fn = diffusers_loss_fn(model, DDPMScheduler(num_train_timesteps=1000))
                flops = training_flops_per_image(model, loss_fn)
                out = train_generic(name, model, loss_fn, images, args.minutes, args.seed)
                ema, steps, seconds, loss_end = out["ema"], out["steps"], out["seconds"], out["loss_end"]
            else:
                unet, diffusion = ddp_models()
                loss_fn = lambda x: diffusion((x + 1) / 2)  # noqa: E731  (it normalises [0, 1] itself)
                flops = training_flops_per_image(unet, loss_fn)
                out = train_generic(name, unet, loss_fn, images, args.minutes, args.seed)
                ema, steps, seconds, loss_end = out["ema"], out["steps"], out["seconds"], out["loss_end"]
            torch.save(ema.state_dict(), weights)
            rate = steps * BATCH / seconds
            r.update(params=sum(p.numel() for p in ema.parameters()), steps=steps, train_seconds=seconds, images_per_s=rate,
                     loss_end=loss_end, train_gflop_per_image=flops / 1e9,
                     train_gflops=rate * flops / 1e9, peak_fraction=rate * flops / 1e9 / meta["peak_gflops"])
            run.save()
            print(f"{name}: {r}")

    # sampling after all training, cheapest first: DDIM-50 for everyone, then our curve, then DDIM-50 with
    # eta = 1 (fresh noise each step, as DDPM) for us and denoising-diffusion-pytorch: does the gap to
    # DDPM-1000 come from the step count or from the deterministic sampler, and does the peer gain as much?
    jobs = [(name, 50, "ddim50") for name in args.only] + \
        [("diffusers", 50, "ddim50_clipped_eps")] * ("diffusers" in args.only) + \
        [(name, s, f"ddim{s}" if s < 1000 else "ddpm1000") for name in OURS if name in args.only
         for s in sorted(args.curve) if s != 50] + \
        [(name, 50, "ddim50_eta1") for name in (*OURS, "ddp") if name in args.only]
    for name, steps, label in jobs:
        r = results[name]
        if label in r.get("samples", {}):
            continue
        print(f"== sampling {name} {label}")
        if name in OURS:
            fn = ours_sampler(run, key, steps, eta=1.0 if label.endswith("_eta1") else 0.0, name=name)
        else:
            model = makers[name]()
            model.load_state_dict(torch.load(run.out / f"{name}_{key}.pt", weights_only=True))
            model.eval()
            if name == "diffusers":
                fn = lambda k, s, c=label.endswith("clipped_eps"): diffusers_sample(model, k, s, use_clipped_model_output=c)  # noqa: E731
            else:
                fn = lambda k, s, e=1.0 if label.endswith("_eta1") else 0.0: ddp_sample(model, k, s, eta=e)  # noqa: E731
        x, seconds = run.sample(f"{name}_{key}_{label}", fn, args.n, args.seed * 1000)
        rep = evaluator.evaluate(x)
        r.setdefault("samples", {})[label] = {"seconds": seconds, **rep.as_dict(),
                                              "chunks": run.chunk_times(f"{name}_{key}_{label}", args.n)}
        run.save()
        print(f"{name} {label}: {rep}; {seconds:.0f}s")
        torch.save(x[:64], run.out / f"grid_{name}_{key}_{label}.pt")
        write_report(run.data, ROOT / "benchmarks")
    # the shipped model's variational bound (Eq. 5) on the test set, both fixed variances
    shipped = ROOT / "data" / "pretrained" / "unet_mnist.pt"
    vlb = run.data.setdefault("vlb", {})
    for variance in ("beta_tilde", "beta"):
        if args.vlb_images <= 0 or variance in vlb:
            continue
        print(f"== bits/dim of {shipped.name}, sigma^2 = {variance}, {args.vlb_images} test images")
        model, schedule = load_model(shipped, device="cpu")
        x0 = load_mnist(train=False).tensors[0][:args.vlb_images]
        start = time.perf_counter()
        rep = bits_per_dim(model, schedule, x0, t_samples=100, variance=variance, seed=args.seed)
        vlb[variance] = {"total": rep.total, "stderr": rep.stderr, "n": rep.n, "t_samples": rep.t_samples,
                         "terms": rep.terms, "seconds": time.perf_counter() - start, "model": shipped.name}
        run.save()
        print(rep)
    if vlb and "perfect_L0" not in vlb:  # what the Eq. 13 decoder costs even with a perfect x0 prediction
        _, schedule = load_model(shipped, device="cpu")
        x0 = load_mnist(train=False).tensors[0][:args.vlb_images or 300].double()
        log_scale = torch.full_like(x0, 0.5 * float(schedule.log_beta_tilde_clipped[0]))
        nll = -discretized_gaussian_log_likelihood(x0, x0, log_scale).sum() / (x0.numel() * math.log(2))
        vlb["perfect_L0"] = {"bits_per_dim": float(nll), "sigma_1": math.exp(float(log_scale[0, 0, 0, 0])),
                             "n": len(x0)}
        run.save()
    write_report(run.data, ROOT / "benchmarks")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
