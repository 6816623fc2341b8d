"""Studies that choose defaults by measurement, each scored with the project's evaluator:

    python benchmarks/studies.py mlp       # the MLP as eps / x0 / v predictor, weightings, widths
    python benchmarks/studies.py samplers  # quality against network calls: DDPM, DDIM eta 0/1, DPM-Solver++ and its SDE form
    python benchmarks/studies.py recipe    # the U-Net training recipe at the 20-minute step budget
    python benchmarks/studies.py variance  # the reverse variance fitted to the shipped U-Net: the bound, few steps
    python benchmarks/studies.py budget    # `train --minutes 5/20/60` as typed: widths and two schedules, 3 seeds
    python benchmarks/studies.py shipped --unet data/pretrained/unet_mnist.pt \
        --cond data/pretrained/cond_unet_mnist.pt   # the shipped weights' scores (notebooks 03-05)
    (add --quick for a smoke test with tiny budgets)

Budgets are optimizer steps, so the models are the same on any device (t, eps and the batch
order come from the trainer's CPU generator); only the times differ. The budget study is the
exception: it spends minutes of wall-clock time as the README's command does, so its numbers hold
for the machine and day they were measured on (each run stores its steps and images/s). Each run trains, samples n
images with each sampler (seed 0), scores them (MNIST-FID against the real-data floor, confident
share, class entropy, the second judge's FID, precision/recall) and, for the MLP, measures the
x0 error per t on 500 test images. Results go to benchmarks/studies/<study>.json, 64 samples of
each (model, sampler) to a .pt file beside it; with --only, the file's other runs are kept. In the
recipe study, --draws k scores each run's default sampler with seeds 0 .. k-1 and stores the mean
(one draw of 1000 moves MNIST-FID by about 0.15 on a good model, more on a young one).
`budget --figure RUN ...` draws those runs' stored grids beside the shipped U-Net's
(benchmarks/studies/budget.png).

The shipped study trains nothing: it scores given checkpoints (the shipped U-Net with nine
samplers and two repeats with seed 1, the class-conditional U-Net across guidance weights with
the share read as each requested digit, and the training snapshots of both at DDIM-20, eta 1)
and replaces only the sections it computed in benchmarks/studies/shipped.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ddpm_lib import (DiffusionConfig, MLPConfig, TrainConfig, Trainer, UNetConfig, build_model, count_parameters,
                      get_device, load_checkpoint, load_mnist, load_model, pretrained_path, sample, simple_loss)
from ddpm_lib.files import read_weights_file
from ddpm_lib.metrics import QualityReport, SampleEvaluator, predict
from ddpm_lib.metrics.diagnostics import loss_per_t
from ddpm_lib.schedules import Schedule
from ddpm_lib.training import LossFn

ERROR_TS = (0, 100, 300, 500, 700, 900, 999)
SMALL_20MIN_STEPS = 2634  # the small U-Net's steps in 20 minutes on 2 cores (benchmarks/results.json)
DEFAULT_20MIN_STEPS = 825  # the default U-Net's
# the small U-Net's images/s at batch 64 and 32 relative to batch 128 on 2 cores (measured 2026-11-27,
# interleaved: 506, 530, 442 images/s): a smaller batch at the same 20 minutes gets this many more images
SMALL_IMAGES_PER_S_VS_128 = {64: 1.04, 32: 0.87}


# --------------------------------------------------------------------------- recipe pieces
# loss weightings beyond the library's min-SNR-gamma (TrainConfig.min_snr_gamma: "min_snr5" below),
# each an x0-space weight w(SNR): the loss is w(SNR) ||x0 - x0_hat||^2. They are trained on
# x0-predicting networks, whose own target is x0, so w multiplies simple_loss's per-sample error as is.
X0_WEIGHTS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "snr1_cap20": lambda snr: (snr + 1).clamp(max=20.0),  # the v-loss's SNR + 1, capped at small t
}


def weighted_loss_fn(model: torch.nn.Module, schedule: Schedule, weight: str) -> LossFn:
    """The trainer's loss (t, then eps, drawn from its CPU generator as :func:`simple_loss_fn` draws
    them) with each sample's x0 error weighted by X0_WEIGHTS[weight](SNR(t))."""
    if schedule.prediction != "x0":
        raise ValueError(f"weight {weight!r} is an x0-space weight: train it with prediction='x0', "
                         f"not {schedule.prediction!r}")
    snr_all, w_x0 = schedule.snr(), X0_WEIGHTS[weight]

    def loss(x0, y, generator):
        t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        per = simple_loss(model, schedule, x0, t=t, noise=noise, y=y, reduction="none")
        return (w_x0(snr_all[t].to(per.dtype)) * per).mean()
    return loss


def train(model_config, steps: int, *, prediction: str = "eps", weight: Optional[str] = None,
          lr_schedule: str = "constant", ema_decay: float = TrainConfig.ema_decay,
          batch_size: int = TrainConfig.batch_size, lr: float = TrainConfig.lr, data, device) -> dict:
    """Train one model for ``steps`` optimizer steps (seed 0) with the recipe given (``weight``:
    "min_snr5" is TrainConfig's min-SNR-5, others come from X0_WEIGHTS; None: unweighted); returns its
    EMA model, schedule and facts."""
    torch.manual_seed(0)
    model = build_model(model_config)
    config = TrainConfig(steps=steps, seed=0, checkpoint_every=0, ema_decay=ema_decay, lr_schedule=lr_schedule,
                         batch_size=batch_size, lr=lr,
                         min_snr_gamma=5.0 if weight == "min_snr5" else None,
                         warmup_steps=min(TrainConfig.warmup_steps, steps // 5))
    trainer = Trainer(model, DiffusionConfig(prediction=prediction), config, device=device)
    if weight is not None and weight != "min_snr5":
        trainer.loss_fn = weighted_loss_fn(trainer.model, trainer.schedule, weight)
    t0 = time.time()
    trainer.fit(data, progress=False)
    train_s = time.time() - t0
    return {"model": trainer.ema.model, "schedule": trainer.schedule, "trainer": trainer,
            "facts": {"steps": steps, "params": count_parameters(model), "prediction": prediction, "weight": weight,
                      "lr_schedule": lr_schedule, "ema_decay": ema_decay, "batch_size": batch_size, "lr": lr,
                      "train_s": round(train_s, 1),
                      "loss_last100": sum(trainer.history[-100:]) / max(1, len(trainer.history[-100:]))}}


# --------------------------------------------------------------------------- samplers and scoring
def sampler_setting(name: str) -> Tuple[str, int, float, str]:
    """A sampler's name in the studies as (sampler, steps, eta, spacing) of :func:`ddpm_lib.sample`:
    ddpm1000 (Algorithm 2 over all T steps; eta 0, which DDPM ignores), ddim<k>_eta<e>, dpm<k>
    (DPM-Solver++(2M)) or sde<k> (its SDE form), on steps spread evenly over T-1 .. 0, or with the
    suffix ``_trail`` on trailing steps (:func:`ddpm_lib.samplers.trailing_timesteps`)."""
    spacing = "even"
    if name.endswith("_trail"):
        name, spacing = name[:-len("_trail")], "trailing"
    if name == "ddpm1000" and spacing == "even":
        return "ddpm", 1000, 0.0, spacing
    if name.startswith("ddim") and "_eta" in name:
        k, eta = name[4:].split("_eta")
        return "ddim", int(k), float(eta), spacing
    for prefix, sampler in (("dpm", "dpm++"), ("sde", "dpm++sde")):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return sampler, int(name[len(prefix):]), 0.0, spacing
    raise ValueError(f"unknown sampler {name!r}: expected ddpm1000, ddim<k>_eta<e>, dpm<k>, sde<k> (each but "
                     f"ddpm1000 optionally with _trail) or dpmL<k>")


def _library_sample(model, schedule, n: int, seed: int, y: Optional[torch.Tensor] = None, guidance: float = 0.0, *,
                    setting: Tuple[str, int, float, str]) -> torch.Tensor:
    sampler, steps, eta, spacing = setting
    return sample(model, schedule, n, sampler=sampler, steps=steps, eta=eta, spacing=spacing, seed=seed, y=y,
                  guidance=guidance, progress=False)


def _logsnr_dpm_sample(model, schedule, n: int, seed: int, y: Optional[torch.Tensor] = None, guidance: float = 0.0, *,
                       k: int) -> torch.Tensor:
    from ddpm_lib.samplers import dpm_solver_sample
    return dpm_solver_sample(model, schedule, n, timesteps=logsnr_timesteps(schedule, k), seed=seed, y=y,
                             guidance=guidance, progress=False)


def _fitted_ddim_sample(model, schedule, n: int, seed: int, y: Optional[torch.Tensor] = None, guidance: float = 0.0,
                        *, setting: Tuple[str, int, float, str]) -> torch.Tensor:
    from ddpm_lib.samplers import ddim_sample, spaced_timesteps
    _, steps, eta, spacing = setting
    fit = getattr(model, "variance_fit", None)
    if fit is None:
        raise ValueError("a *_fit sampler needs a checkpoint with a fitted variance: run "
                         "`python -m ddpm_lib fit-variance CHECKPOINT` first")
    return ddim_sample(model, schedule, n, timesteps=spaced_timesteps(schedule.T, steps, spacing), eta=eta, seed=seed,
                       y=y, guidance=guidance, fit=fit, progress=False)


def sampler_table(names: List[str]) -> Dict[str, Callable]:
    """name -> sample(model, schedule, n, seed, y=None, guidance=0.0): the settings of
    :func:`sampler_setting` through :func:`ddpm_lib.sample`; dpmL<k>, DPM-Solver++ on k
    steps evenly spaced in log-SNR; and ddim<k>_eta<e>[_trail]_fit, DDIM with the reverse variance
    fitted to the model (its ``variance_fit``, stored by ``fit-variance``; Analytic-DDIM for eta 0)."""
    def one(name: str) -> Callable:
        if name.startswith("dpmL"):
            return partial(_logsnr_dpm_sample, k=int(name[4:]))
        if name.endswith("_fit") and name.startswith("ddim"):
            return partial(_fitted_ddim_sample, setting=sampler_setting(name[:-len("_fit")]))
        return partial(_library_sample, setting=sampler_setting(name))
    return {name: one(name) for name in names}


def logsnr_timesteps(schedule: Schedule, k: int) -> List[int]:
    """k distinct steps from T-1 down to 0 whose lambda = log(alpha / sigma) is about evenly
    spaced (Lu et al. 2022 recommend this spacing for DPM-Solver)."""
    lam = (schedule.sqrt_alpha_bars.double() / schedule.sqrt_one_minus_alpha_bars.double()).log().cpu()
    targets = torch.linspace(float(lam[-1]), float(lam[0]), k, dtype=torch.float64)
    path: List[int] = []
    for target in targets.tolist():
        t = int((lam - target).abs().argmin())
        if path and t >= path[-1]:
            t = path[-1] - 1
        path.append(max(t, 0))
    return sorted(set(path), reverse=True)


def rounded(values: dict, places: int) -> dict:
    """``values`` with each float rounded to ``places`` decimals."""
    return {k: round(v, places) if isinstance(v, float) else v for k, v in values.items()}


def draw(label: str, sample_fn: Callable, model, schedule, n: int, *, seed: int, evaluator: SampleEvaluator,
         y: Optional[torch.Tensor] = None, guidance: float = 0.0) -> Tuple[torch.Tensor, QualityReport, float]:
    """n images from ``sample_fn`` (noise seed ``seed``; labels ``y`` and guidance weight w for a
    class-conditional model), timed and scored (with ``y``, also the share read as asked):
    (images on the CPU, report, seconds)."""
    t0 = time.perf_counter()
    x = sample_fn(model, schedule, n, seed, y=y, guidance=guidance).cpu()
    seconds = time.perf_counter() - t0
    report = evaluator.evaluate(x, digits=y)
    print(f"  {label}: {report}; {seconds:.1f} s", flush=True)
    return x, report, seconds


def score(label: str, model, schedule, names: List[str], *, n: int, evaluator: SampleEvaluator,
          grids: Dict[str, torch.Tensor], seed: int = 0) -> Dict[str, dict]:
    """Sample n images with each named sampler and score them; 64 of each go to ``grids``."""
    out = {}
    for sname, sample_fn in sampler_table(names).items():
        key = sname if seed == 0 else f"{sname}_seed{seed}"
        x, r, s_time = draw(f"{label} {key}", sample_fn, model, schedule, n, seed=seed, evaluator=evaluator)
        out[key] = {"sample_s": round(s_time, 1), "seed": seed,
                    **{k: v for k, v in rounded(r.as_dict(), 4).items() if not isinstance(v, list)}}
        grids[f"{label}/{key}"] = ((x[:64].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return out


def more_draws(label: str, model, schedule, sname: str, draws: int, *, n: int, evaluator: SampleEvaluator,
               grids: Dict[str, torch.Tensor]) -> Dict[str, dict]:
    """Sampler ``sname`` scored again with seeds 1 .. draws-1 (seed 0 is the main row): one draw of
    1000 moves MNIST-FID by about 0.15 on the shipped model, so a close comparison is judged on the
    mean of several (:func:`with_mean`)."""
    out: Dict[str, dict] = {}
    for seed in range(1, draws):
        out.update(score(label, model, schedule, [sname], n=n, evaluator=evaluator, grids=grids, seed=seed))
    return out


def with_mean(res: Dict[str, dict], sname: str) -> Dict[str, dict]:
    """``res`` plus ``<sname>_mean``: every number of ``sname`` averaged over its seeds (keys
    ``sname`` and ``sname_seed<k>``), with ``draws`` and the seeds it averages."""
    rows = [r for key, r in res.items() if key == sname or key.startswith(f"{sname}_seed")]
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k != "seed"]
    mean = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in keys}
    return {**res, f"{sname}_mean": {**mean, "draws": len(rows), "seeds": [r["seed"] for r in rows]}}


# --------------------------------------------------------------------------- the shipped weights
SHIPPED_SAMPLERS = ["ddim20_eta1", "ddim10_eta1", "ddim50_eta1", "ddim20_eta0", "ddim50_eta0",
                    "dpm10", "dpm20", "dpm50", "ddpm1000",
                    "sde10_trail", "sde20_trail", "sde50_trail", "ddim20_eta1_trail", "dpm20_trail", "sde20"]
# drawn again with seed 1 (and 2): how far the score moves with the seed
SHIPPED_SEED1 = ["ddim20_eta1", "ddpm1000", "sde20_trail", "sde20_trail_seed2"]
# the study's name of the default sampler (SamplerConfig: SDE-DPM-Solver++, 20 trailing steps)
DEFAULT_SAMPLER = "sde20_trail"
GUIDANCE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0)  # the class-conditional U-Net with the default sampler
GUIDANCE_WEIGHTS_ETA0 = (0.0, 1.0)  # and these at DDIM-20, eta 0
CURVE_SAMPLER = "ddim20_eta1"  # the snapshots of a training run
# section of the command line -> key in shipped.json
SHIPPED_SECTIONS = {"unet": "unet", "cond": "cond_unet", "unet_curve": "unet_training_curve",
                    "cond_curve": "cond_unet_training_curve"}


def shipped_row(name: str, sname: str, model, schedule, *, n: int, seed: int, evaluator: SampleEvaluator,
                y: Optional[torch.Tensor] = None, guidance: float = 0.0) -> Tuple[dict, torch.Tensor]:
    """One row of the shipped study: n images with sampler ``sname``, its setting, the sampling
    time and the evaluator's numbers (5 places); with labels ``y`` also ``per_digit``, the share
    read as each requested digit. Returns (row, images)."""
    x, report, seconds = draw(name, sampler_table([sname])[sname], model, schedule, n, seed=seed,
                              evaluator=evaluator, y=y, guidance=guidance)
    sampler, steps, eta, spacing = sampler_setting(sname)
    row = {"name": name, "sampler": sampler, "steps": steps, "eta": eta, "spacing": spacing, "guidance": guidance,
           "seed": seed, "n": n,
           "sample_s": round(seconds, 2), **rounded(report.as_dict(), 5)}
    if y is not None:
        read_as_asked = predict(evaluator.classifier, x)[1].argmax(1) == y  # "not a digit" is never as asked
        row["per_digit"] = [round(read_as_asked[y == k].float().mean().item(), 4) for k in range(10)]
    return row, x


def shipped_sections(only: Optional[str], given: Dict[str, bool]) -> List[str]:
    """The sections to compute: those named in ``only`` (comma-separated), else each one whose
    input (``given``: section -> whether its checkpoint(s) were given) is there."""
    wanted = only.split(",") if only else [s for s in SHIPPED_SECTIONS if given[s]]
    unknown = [s for s in wanted if s not in SHIPPED_SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown} in --only; choose from {','.join(SHIPPED_SECTIONS)}")
    missing = [s for s in wanted if not given[s]]
    if missing or not wanted:
        raise ValueError(f"nothing to score for {missing or 'any section'}: give --unet (section unet), --cond (cond), "
                         f"--unet-snapshots (unet_curve) or --cond-snapshots (cond_curve)")
    return wanted


def shipped_study(out: Path, sections: Sequence[str], *, unet: Optional[str], cond: Optional[str],
                  unet_snapshots: Sequence[str], cond_snapshots: Sequence[str], n: int, quick: bool,
                  device: torch.device, evaluator: SampleEvaluator, commands: Dict[str, str],
                  note: Optional[str], unet_samplers: Optional[Sequence[str]] = None) -> None:
    """Score the given checkpoints with n images a row (n >= 10: the class-conditional rows ask
    for digits 0..9 in turn) and write the sections computed into ``out`` (other keys of an
    existing file are kept), 64 images of each seed-0 sampler of the U-Net beside it. With
    ``unet_samplers`` (names of SHIPPED_SAMPLERS, or <name>_seed<k>) the unet section recomputes only
    those rows and keeps the others, in the order of the full section."""
    digits = torch.arange(n) % 10
    names = [s for s in SHIPPED_SAMPLERS if not (quick and s == "ddpm1000")]  # --quick: no 1000-step runs

    def unet_rows() -> List[dict]:
        model, schedule = load_model(unet, device=device)
        plan = [(s, s, 0) for s in names]  # (row name, sampler, seed)
        for s in SHIPPED_SEED1:  # "<sampler>" is drawn with seed 1, "<sampler>_seed<k>" with seed k
            sname, _, k = s.partition("_seed")
            if sname in names:
                plan.append((s if k else f"{s}_seed1", sname, int(k) if k else 1))
        kept = {r["name"]: r for r in stored.get("unet", [])} if unet_samplers else {}
        unknown = set(unet_samplers or ()) - {name for name, _, _ in plan}
        if unknown:
            raise ValueError(f"--unet-samplers {sorted(unknown)}: not rows of the unet section; choose from "
                             f"{[name for name, _, _ in plan]}")
        grid_path = out.with_suffix(".samples.pt")
        grid = read_weights_file(grid_path, "sample grid file") if unet_samplers and grid_path.exists() else {}
        rows = []
        for name, sname, seed in plan:
            if unet_samplers and name not in unet_samplers:
                if name in kept:
                    rows.append(kept[name])
                continue
            row, x = shipped_row(name, sname, model, schedule, n=n, seed=seed, evaluator=evaluator)
            rows.append(row)
            if seed == 0:
                grid[sname] = x[:64].half()
        torch.save({s: grid[s] for s in names if s in grid}, grid_path)
        return rows

    def cond_rows() -> List[dict]:
        model, schedule = load_model(cond, device=device)
        plan = [(f"w{w}", DEFAULT_SAMPLER, w) for w in GUIDANCE_WEIGHTS]
        plan += [(f"w{w}_ddim20_eta0", "ddim20_eta0", w) for w in GUIDANCE_WEIGHTS_ETA0]
        return [shipped_row(name, sname, model, schedule, n=n, seed=0, evaluator=evaluator, y=digits, guidance=w)[0]
                for name, sname, w in plan]

    def curve_rows(paths: Sequence[str]) -> List[dict]:
        rows = []
        for path in paths:
            model, schedule = load_model(path, device=device)
            step = int(load_checkpoint(path)["step"])
            y = digits if getattr(model, "null_label", None) is not None else None
            rows.append({**shipped_row(f"step{step}", CURVE_SAMPLER, model, schedule, n=n, seed=0,
                                       evaluator=evaluator, y=y)[0], "train_step": step})
        return sorted(rows, key=lambda r: r["train_step"])

    compute = {"unet": unet_rows, "cond": cond_rows, "unet_curve": lambda: curve_rows(unet_snapshots),
               "cond_curve": lambda: curve_rows(cond_snapshots)}
    stored = json.loads(out.read_text()) if out.exists() else {}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    stored.update(study="shipped", device=device_name, torch=torch.__version__)
    if commands:
        stored["commands"] = {**stored.get("commands", {}), **commands}
    if note is not None:
        stored["note"] = note
    for section in sections:
        print(section, flush=True)
        stored[SHIPPED_SECTIONS[section]] = compute[section]()
        # sections may come from different machines: each one's device and torch stay beside it
        stored.setdefault("devices", {})[SHIPPED_SECTIONS[section]] = f"{device_name}, torch {torch.__version__}"
        out.write_text(json.dumps(stored, indent=1) + "\n")


# --------------------------------------------------------------------------- the studies
def mlp_plan(quick: bool, steps: int) -> List[tuple]:
    """(name, MLPConfig, steps, prediction, weight, lr schedule): widths at about equal CPU time
    (2 cores: hidden 512 ~0.035 s/step, 1024 ~0.12, 2048 ~0.36)."""
    S = 40 if quick else steps
    h = lambda hidden: MLPConfig(hidden=hidden)  # noqa: E731
    return [
        ("eps", h(1024), S, "eps", None, "constant"),
        ("v", h(1024), S, "v", None, "constant"),
        ("x0", h(1024), S, "x0", None, "constant"),
        ("x0_snr1_cap20", h(1024), S, "x0", "snr1_cap20", "constant"),
        ("x0_cosine", h(1024), S, "x0", None, "cosine"),
        ("x0_h512", h(512), S * 3, "x0", None, "constant"),
        ("x0_h2048", h(2048), S // 3, "x0", None, "constant"),
    ]


def batch_steps(steps_at_128: int, batch_size: int) -> int:
    """Optimizer steps of batch ``batch_size`` in the time ``steps_at_128`` steps of batch 128 take
    (the small U-Net on 2 cores, SMALL_IMAGES_PER_S_VS_128)."""
    return round(steps_at_128 * 128 / batch_size * SMALL_IMAGES_PER_S_VS_128[batch_size])


def recipe_plan(quick: bool) -> List[tuple]:
    """(name, UNetConfig, steps, prediction, weight, lr schedule, ema decay, batch size, lr): one
    change at a time at the 20-minute budget, from the previous recipe (AdamW 1e-3, constant, EMA
    0.999, unweighted eps) and, for the batch sizes and the rate, from today's (min-SNR-5) at the
    same time."""
    S, D = (40, 15) if quick else (SMALL_20MIN_STEPS, DEFAULT_20MIN_STEPS)
    small = UNetConfig.small()
    return [
        ("base", small, S, "eps", None, "constant", 0.999, 128, 1e-3),
        ("cosine_lr", small, S, "eps", None, "cosine", 0.999, 128, 1e-3),
        ("ema_0.995", small, S, "eps", None, "constant", 0.995, 128, 1e-3),
        ("min_snr5", small, S, "eps", "min_snr5", "constant", 0.999, 128, 1e-3),
        ("v", small, S, "v", None, "constant", 0.999, 128, 1e-3),
        ("v_min_snr5", small, S, "v", "min_snr5", "constant", 0.999, 128, 1e-3),
        ("default_width", UNetConfig(), D, "eps", None, "constant", 0.999, 128, 1e-3),
        ("min_snr5_batch64", small, batch_steps(S, 64), "eps", "min_snr5", "constant", 0.999, 64, 1e-3),
        ("min_snr5_batch32", small, batch_steps(S, 32), "eps", "min_snr5", "constant", 0.999, 32, 1e-3),
        ("min_snr5_lr2e-3", small, S, "eps", "min_snr5", "constant", 0.999, 128, 2e-3),
    ]


def table(stored: dict) -> str:
    """The stored runs as a markdown table: one row per (run, sampler), MNIST-FID with the floor,
    the second judge's FID, confident share, class entropy, precision and recall."""
    head = ["run", "steps", "sampler", "MNIST-FID", "x floor", "MLP-FID", "confident", "entropy", "P", "R"]
    rows = [head, ["---"] * len(head)]
    for run in stored["runs"]:
        for sname, r in run["samplers"].items():
            rows.append([run["name"], str(run.get("steps", "")), sname, f"{r['fid']:.2f}", f"{r['fid'] / r['fid_floor']:.1f}x",
                         f"{r['fid2']:.2f}", f"{r['confident_share']:.1%}", f"{r['entropy_bits']:.2f}",
                         f"{r['precision']:.2f}", f"{r['recall']:.2f}"])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


@dataclass
class Sitting:
    """What every study of one invocation shares: its output file, n, device and evaluator, and
    the command line it was given."""
    out: Path
    n: int
    device: torch.device
    evaluator: SampleEvaluator
    argv: Optional[List[str]]


class StudyFile:
    """benchmarks/studies/<study>.json and its sample grids beside it (``<study>.samples.pt``):
    with --only the other runs of an existing file (and their grids) are kept; each run is written
    as it finishes, with the device, torch and command it was made by."""

    def __init__(self, study: str, sitting: Sitting, only: Optional[str]):
        self.study, self.out, self.n = study, sitting.out, sitting.n
        self.device = str(sitting.device)
        stored = json.loads(self.out.read_text()) if self.out.exists() and only else {}
        # runs stored before each run recorded its own device, torch and command take the file's old top-level ones
        self.runs: List[dict] = [{**{k: stored[k] for k in ("device", "torch", "command") if k in stored}, **r}
                                 for r in stored.get("runs", [])]
        self.samples = self.out.with_suffix(".samples.pt")
        self.grids: Dict[str, torch.Tensor] = (read_weights_file(self.samples, "sample grid file")
                                               if stored and self.samples.exists() else {})
        self.keep = set(only.split(",")) if only else None
        argv = sitting.argv if sitting.argv is not None else sys.argv[1:]
        self.command = " ".join(["python benchmarks/studies.py", *argv])

    def wanted(self, name: str) -> bool:
        """Whether run ``name`` is to be made (all are without --only)."""
        return self.keep is None or name in self.keep

    def record(self, res: dict) -> None:
        """Store run ``res`` (replacing an earlier run of its name) and the sample grids."""
        # where and by what command each run was made: runs of one file may come from different sittings
        res = {**res, "device": self.device, "torch": torch.__version__, "command": self.command}
        self.runs = [r for r in self.runs if r["name"] != res["name"]] + [res]
        self.out.write_text(json.dumps({"study": self.study, "n": self.n, "seed": 0, "runs": self.runs}, indent=1) + "\n")
        torch.save(self.grids, self.samples)


# --------------------------------------------------------------------------- minute budgets
BUDGET_MINUTES = (5.0, 20.0, 60.0)
BUDGET_SEEDS = (0, 1, 2)
QUICK_BUDGET_MINUTES = 0.05  # --quick: three seconds of each configuration, one seed
# configuration -> the flags beyond `python -m ddpm_lib train --minutes M --seed S`: each names its width,
# so a row keeps its meaning when what `--minutes` picks by itself changes
BUDGET_CONFIGS: Dict[str, List[str]] = {
    "default_width": ["--base-channels", "32"],
    "small": ["--base-channels", "16"],
    # peak rate twice the default, decayed to 0 (cosine) at the end of the minutes: a schedule the step-budget
    # studies tried only apart (2e-3 constant; cosine at 1e-3, unweighted)
    "small_lr2e-3_cosine": ["--base-channels", "16", "--lr", "2e-3", "--lr-schedule", "cosine"],
    # Nichol & Dhariwal's cosine noise schedule: notebook 05 found it ahead after 250 steps, untried at minute budgets
    "small_cosine_schedule": ["--base-channels", "16", "--schedule", "cosine"],
    # Hang et al. 2024: each batch's t drawn by a Laplace draw of the log-SNR (a share kept uniform), the middle levels
    # trained more often (the recipe study weighted the noise levels, min-SNR-5, but always drew t uniformly)
    "small_laplace_t": ["--base-channels", "16", "--t-distribution", "laplace"],
}


def budget_plan(quick: bool, minutes: Optional[Sequence[float]] = None) -> List[Tuple[str, str, float, int]]:
    """(run name, configuration, minutes, training seed) of every run of the budget study."""
    budgets = (QUICK_BUDGET_MINUTES,) if quick else tuple(minutes or BUDGET_MINUTES)
    seeds = (0,) if quick else BUDGET_SEEDS
    # seed by seed, each configuration in turn: a study stopped early still holds paired comparisons
    return [(f"{config}_{m:g}min_seed{seed}", config, m, seed)
            for m in budgets for seed in seeds for config in BUDGET_CONFIGS]


def run_budget(args: argparse.Namespace, sitting: Sitting) -> None:
    """Wall-clock budgets as a newcomer spends them: `python -m ddpm_lib train --minutes M` with each
    configuration's flags and training seeds 0, 1, 2 (one at a time, in a subprocess: the command stored
    is the one that ran), then n samples of the default sampler (seed 0) scored, with the steps reached,
    images/s and the sampling time."""
    file, n, evaluator, device = StudyFile(args.study, sitting, args.only), sitting.n, sitting.evaluator, sitting.device
    work = Path(args.work)
    for name, config, minutes, seed in budget_plan(args.quick, args.minutes):
        if not file.wanted(name):
            continue
        run_dir = work / name
        command = ["python", "-m", "ddpm_lib", "train", "--minutes", f"{minutes:g}", "--seed", str(seed),
                   *BUDGET_CONFIGS[config], "--out", str(run_dir), "--n-samples", "0", "--overwrite",
                   "--device", str(device)]
        print(f"{name}: {' '.join(command)}", flush=True)
        subprocess.run([sys.executable, *command[1:]], check=True)
        state = load_checkpoint(run_dir / "checkpoint.pt")
        cfg = state["train_config"]
        model, schedule = load_model(run_dir / "checkpoint.pt", device=device)
        steps, train_s = int(state["step"]), float(state["elapsed_s"])
        file.record({"name": name, "config": config, "minutes": minutes, "seed": seed, "train_command": " ".join(command),
                     "base_channels": state["model_config"]["base_channels"], "params": count_parameters(model),
                     "batch_size": cfg["batch_size"], "lr": cfg["lr"], "lr_schedule": cfg["lr_schedule"],
                     "schedule": state["diffusion_config"]["schedule"], "t_distribution": cfg["t_distribution"],
                     "precision": state.get("precision_used") or cfg["precision"],
                     "steps": steps, "train_s": round(train_s, 1),
                     "images_per_s": round(steps * cfg["batch_size"] / max(train_s, 1e-9), 1),
                     "samplers": score(name, model, schedule, [DEFAULT_SAMPLER], n=n, evaluator=evaluator,
                                       grids=file.grids)})


def budget_table(stored: dict) -> str:
    """The budget study as a markdown table: per (minutes, configuration) the steps, images/s and
    MNIST-FID of each training seed, their mean and the mean over the floor."""
    groups: Dict[Tuple[float, str], List[dict]] = {}
    for run in stored["runs"]:
        groups.setdefault((run["minutes"], run["config"]), []).append(run)
    rows = [["minutes", "configuration", "steps", "images/s", "MNIST-FID by training seed", "mean", "x floor",
             "sampling s"], ["---"] * 8]
    for (minutes, config), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r["seed"])
        fids = [r["samplers"][DEFAULT_SAMPLER]["fid"] for r in runs]
        floor = sum(r["samplers"][DEFAULT_SAMPLER]["fid_floor"] for r in runs) / len(runs)
        mean = sum(fids) / len(fids)
        rows.append([f"{minutes:g}", config, " / ".join(str(r["steps"]) for r in runs),
                     " / ".join(f"{r['images_per_s']:.0f}" for r in runs),
                     " / ".join(f"{f:.2f}" for f in fids) + f" (seeds {', '.join(str(r['seed']) for r in runs)})",
                     f"{mean:.2f}", f"{mean / floor:.2f}x",
                     f"{sum(r['samplers'][DEFAULT_SAMPLER]['sample_s'] for r in runs) / len(runs):.0f}"])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


# the picture beside the budget table: the shipped model's grid of the default sampler comes first
SHIPPED_GRIDS = Path(__file__).parent / "studies" / "shipped.samples.pt"


def budget_figure(grids: Dict[str, torch.Tensor], runs: Sequence[str], path: Path,
                  shipped: Optional[torch.Tensor] = None) -> List[str]:
    """Write one PNG of sample grids (64 images each, the default sampler, sample seed 0): the shipped
    U-Net's (``shipped``, when given) and then each named budget run's, side by side, each titled; returns
    the titles. A run without a stored grid is refused by name."""
    from matplotlib.figure import Figure  # no pyplot: drawn and saved without a display or a global backend
    from ddpm_lib.data import to_model_range
    from ddpm_lib.plotting import show_grid

    missing = [r for r in runs if f"{r}/{DEFAULT_SAMPLER}" not in grids]
    if missing:
        raise ValueError(f"no stored grid for {', '.join(missing)}; run `studies.py budget --only {','.join(missing)}` first")
    panels = ([("shipped U-Net", shipped)] if shipped is not None else [])
    panels += [(r.replace("_", " "), grids[f"{r}/{DEFAULT_SAMPLER}"]) for r in runs]
    fig = Figure(figsize=(3.2 * len(panels), 3.5))
    for ax, (title, images) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        pixels = images.dtype == torch.uint8  # the budget study stores pixels, the shipped one [-1, 1]
        show_grid(to_model_range(images) if pixels else images.float(), title=title, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return [title for title, _ in panels]


def run_mlp(args: argparse.Namespace, sitting: Sitting) -> None:
    """The MLP as eps / x0 / v predictor, weightings and widths (:func:`mlp_plan`), each with its x0
    error per t on 500 test images."""
    file, n, evaluator = StudyFile(args.study, sitting, args.only), sitting.n, sitting.evaluator
    data = load_mnist()
    names = ["ddim20_eta1", "ddim50_eta1", "dpm20", "dpmL20"] + ([] if args.quick else ["ddpm1000"])
    test = load_mnist(train=False).tensors[0][:500]
    for name, cfg, steps, pred, weight, lr_s in mlp_plan(args.quick, args.steps):
        if not file.wanted(name):
            continue
        print(f"{name}: {pred}, {steps} steps, hidden {cfg.hidden}, weight {weight}, lr {lr_s}", flush=True)
        got = train(cfg, steps, prediction=pred, weight=weight, lr_schedule=lr_s, data=data, device=sitting.device)
        ts, err = loss_per_t(got["model"], got["schedule"], test, timesteps=ERROR_TS, space="x0")
        file.record({"name": name, "hidden": cfg.hidden, "blocks": cfg.num_blocks, **got["facts"],
                     "x0_error": dict(zip(map(str, ts.tolist()), [round(e, 4) for e in err.tolist()])),
                     "samplers": score(name, got["model"], got["schedule"], names, n=n, evaluator=evaluator,
                                       grids=file.grids)})


def run_samplers(args: argparse.Namespace, sitting: Sitting) -> None:
    """Quality against network calls: every sampler on the shipped U-Net and on a 20-minute small
    U-Net (whose EMA weights are kept beside the results), three of them with a second seed."""
    file, n, evaluator, device = StudyFile(args.study, sitting, args.only), sitting.n, sitting.evaluator, sitting.device
    data = load_mnist()
    names = [f"ddim{k}_eta{e}" for k in (10, 20, 50) for e in (0, 1)] + [f"dpm{k}" for k in (10, 20, 50)]
    names += [f"sde{k}_trail" for k in (10, 20, 50)] + ["ddim20_eta1_trail", "dpm20_trail"]
    names += [f"dpmL{k}" for k in (10, 20)]
    names += [] if args.quick else ["ddpm1000"]
    models = {"shipped": lambda: load_model(pretrained_path("unet_mnist"), device=device),
              "small_20min": lambda: (lambda g: (g["model"], g["schedule"]))(
                  train(UNetConfig.small(), 40 if args.quick else SMALL_20MIN_STEPS, data=data, device=device))}
    for name, build in models.items():
        if not file.wanted(name):
            continue
        print(f"{name}", flush=True)
        model, schedule = build()
        res = score(name, model, schedule, names, n=n, evaluator=evaluator, grids=file.grids)
        for sname in ("ddim20_eta1", "dpm20", "dpmL20"):  # a second sample seed: how much FID moves with it
            res.update(score(name, model, schedule, [sname], n=n, evaluator=evaluator, grids=file.grids, seed=1))
        file.record({"name": name, "samplers": res})
        if name == "small_20min":
            torch.save({k: v.half() for k, v in model.state_dict().items()}, file.out.with_name("small_20min_ema.pt"))


def run_recipe(args: argparse.Namespace, sitting: Sitting) -> None:
    """The U-Net training recipe at the 20-minute step budget (:func:`recipe_plan`); with --draws k
    each run's first sampler is scored with k seeds and their mean stored."""
    file, n, evaluator = StudyFile(args.study, sitting, args.only), sitting.n, sitting.evaluator
    data = load_mnist()
    names = ["ddim20_eta1", "dpm20", "dpmL20", "ddim50_eta0"]
    for name, cfg, steps, pred, weight, lr_s, ema, bs, lr in recipe_plan(args.quick):
        if not file.wanted(name):
            continue
        print(f"{name}: {pred}, {steps} steps of batch {bs}, weight {weight}, lr {lr:g} {lr_s}, ema {ema}", flush=True)
        got = train(cfg, steps, prediction=pred, weight=weight, lr_schedule=lr_s, ema_decay=ema,
                    batch_size=bs, lr=lr, data=data, device=sitting.device)
        res = score(name, got["model"], got["schedule"], names, n=n, evaluator=evaluator, grids=file.grids)
        if args.draws > 1:
            res = with_mean({**res, **more_draws(name, got["model"], got["schedule"], names[0], args.draws,
                                                 n=n, evaluator=evaluator, grids=file.grids)}, names[0])
        file.record({"name": name, "base_channels": cfg.base_channels, **got["facts"], "samplers": res})


def shipped_inputs(args: argparse.Namespace) -> Dict[str, bool]:
    """Section of the shipped study -> whether its checkpoint(s) were given."""
    return {"unet": bool(args.unet), "cond": bool(args.cond), "unet_curve": bool(args.unet_snapshots),
            "cond_curve": bool(args.cond_snapshots)}


def run_shipped(args: argparse.Namespace, sitting: Sitting) -> None:
    """Score the checkpoints given (:func:`shipped_study`); trains nothing."""
    commands = {k: v for k, v in (("unet", args.command_unet), ("cond_unet", args.command_cond)) if v is not None}
    shipped_study(sitting.out, shipped_sections(args.only, shipped_inputs(args)), unet=args.unet, cond=args.cond,
                  unet_snapshots=args.unet_snapshots, cond_snapshots=args.cond_snapshots, n=sitting.n,
                  quick=args.quick, device=sitting.device, evaluator=sitting.evaluator, commands=commands,
                  note=args.note, unet_samplers=args.unet_samplers)


# --------------------------------------------------------------------------- the reverse variance
FEW_STEPS = (5, 10, 20)  # network calls of the few-step rows
FEW_STEP_SAMPLERS = ("sde{k}_trail", "ddim{k}_eta1_trail", "ddim{k}_eta1_trail_fit", "ddim{k}_eta0_trail",
                     "ddim{k}_eta0_trail_fit")
BOUND_VARIANCES = ("beta_tilde", "beta", "analytic", "fitted, decoder e_0", "fitted")  # rows of the bound


def bound_variances(fit) -> Dict[str, object]:
    """Row name -> the ``variance`` of :func:`ddpm_lib.metrics.bits_per_dim`: the two fixed ones, Analytic-DPM's
    (Theorem 1, its own e_0 at the decoder), the fitted one with the decoder at e_0, and the fitted one with
    the decoder variance picked by Eq. 13's likelihood (what ``fit-variance`` stores)."""
    from dataclasses import replace
    return {"beta_tilde": "beta_tilde", "beta": "beta",
            "analytic": replace(fit.with_kind("analytic"), decoder_variance=None),
            "fitted, decoder e_0": replace(fit, decoder_variance=None), "fitted": fit}


def run_variance(args: argparse.Namespace, sitting: Sitting) -> None:
    """The reverse variance of the shipped U-Net (its ``variance_fit``, stored by ``python -m ddpm_lib
    fit-variance``): the bound in bits/dim with each variance of :func:`bound_variances` on the first
    --bpd-images test images (run ``bound``), and few-step sampling with and without it at
    :data:`FEW_STEPS` calls, seeds 0 .. draws-1 with their mean (run ``few_steps``)."""
    from ddpm_lib.metrics import bits_per_dim
    file, n, evaluator = StudyFile(args.study, sitting, args.only), sitting.n, sitting.evaluator
    model, schedule = load_model(args.unet or pretrained_path("unet_mnist"), device=sitting.device)
    fit = getattr(model, "variance_fit", None)
    if fit is None:
        raise SystemExit("the checkpoint carries no fitted variance: run `python -m ddpm_lib fit-variance` on it first")
    if file.wanted("bound"):
        images = load_mnist(train=False).tensors[0][:10 if args.quick else args.bpd_images]
        rows = {}
        for name, variance in bound_variances(fit).items():
            vlb = bits_per_dim(model, schedule, images, t_samples=4 if args.quick else 100, variance=variance, seed=0)
            print(f"  bound, {name}: {vlb}", flush=True)
            rows[name] = {"bits_per_dim": round(vlb.total, 4), "stderr": round(vlb.stderr, 4),
                          "terms": {k: round(v, 4) for k, v in vlb.terms.items()}}
        sigma2 = fit.ddpm_variances(schedule)
        beta_tilde = schedule.beta_tilde.detach().cpu().double()
        file.record({"name": "bound", "images": len(images), "t_samples": 4 if args.quick else 100,
                     "fit_images_per_t": fit.images, "decoder_variance": fit.decoder_variance,
                     "sigma2_over_beta_tilde": {str(t): round((sigma2[t] / beta_tilde[t]).item(), 4)
                                                for t in (1, 2, 5, 10, 100, 500) if t < schedule.T},
                     "variances": rows, "samplers": {}})
    if file.wanted("few_steps"):
        names = [pattern.format(k=k) for k in ((5,) if args.quick else FEW_STEPS) for pattern in FEW_STEP_SAMPLERS]
        res: Dict[str, dict] = {}
        for seed in range(max(1, args.draws)):
            res.update(score("few_steps", model, schedule, names, n=n, evaluator=evaluator, grids=file.grids, seed=seed))
        for sname in names:
            res = with_mean(res, sname) if args.draws > 1 else res
        file.record({"name": "few_steps", "samplers": res})


STUDIES: Dict[str, Callable[[argparse.Namespace, Sitting], None]] = {
    "mlp": run_mlp, "samplers": run_samplers, "recipe": run_recipe, "shipped": run_shipped, "variance": run_variance,
    "budget": run_budget}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", choices=list(STUDIES))
    p.add_argument("--table", action="store_true", help="print the stored results as a markdown table")
    p.add_argument("--out", default=None, help="default: benchmarks/studies/<study>.json")
    p.add_argument("--steps", type=int, default=4000, help="mlp: optimizer steps of the hidden-1024 runs")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--only", default=None,
                   help=f"comma-separated run names (shipped: sections, of {','.join(SHIPPED_SECTIONS)})")
    p.add_argument("--draws", type=int, default=1,
                   help="recipe: score each run's default sampler with this many seeds (0, 1, ...) and store the mean; "
                        "variance: every few-step sampler")
    p.add_argument("--bpd-images", type=int, default=300, help="variance: test images of the bound")
    p.add_argument("--minutes", type=float, nargs="+", default=None,
                   help=f"budget: the budgets to train (default: {' '.join(f'{m:g}' for m in BUDGET_MINUTES)})")
    p.add_argument("--work", default="runs/budget", help="budget: where the trainings write their checkpoints")
    p.add_argument("--figure", nargs="+", default=None, metavar="RUN",
                   help="budget: write <out>.png, these runs' stored sample grids beside the shipped U-Net's")
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test of the script (n = 100)")
    p.add_argument("--device", default=None)
    g = p.add_argument_group("shipped", "checkpoints to score; each section runs if its input is given")
    g.add_argument("--unet", default=None, help="U-Net checkpoint (section unet; variance: default the shipped one)")
    g.add_argument("--cond", default=None, help="class-conditional U-Net checkpoint (section cond)")
    g.add_argument("--unet-snapshots", nargs="+", default=[], help="U-Net training snapshots (section unet_curve)")
    g.add_argument("--unet-samplers", nargs="+", default=None,
                   help="recompute only these rows of the unet section (e.g. sde20_trail sde20_trail_seed1), keep the rest")
    g.add_argument("--cond-snapshots", nargs="+", default=[], help="their class-conditional twins (cond_curve)")
    g.add_argument("--command-unet", default=None, help="the command that made the U-Net, stored in commands")
    g.add_argument("--command-cond", default=None, help="the command that made the class-conditional U-Net")
    g.add_argument("--note", default=None, help="a note stored with the results")
    return p


def main(argv: Optional[List[str]] = None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    out = Path(args.out or f"benchmarks/studies/{args.study}.json")
    if args.table:
        if args.study == "shipped":
            p.error("--table shows the runs of the mlp, samplers and recipe studies; shipped.json has none")
        stored = json.loads(out.read_text())
        print(budget_table(stored) if args.study == "budget" else table(stored))
        return
    if args.figure:
        if args.study != "budget":
            p.error("--figure draws the budget study's runs")
        shipped = read_weights_file(SHIPPED_GRIDS, "sample grid file")[DEFAULT_SAMPLER]
        grids = read_weights_file(out.with_suffix(".samples.pt"), "sample grid file")
        try:
            budget_figure(grids, args.figure, out.with_suffix(".png"), shipped)
        except ValueError as err:
            p.error(str(err))
        print(f"wrote {out.with_suffix('.png')}")
        return
    n = 100 if args.quick else args.n
    if args.study == "shipped":  # refused before the evaluator is built
        if n < 10:
            p.error(f"--n {n}: the shipped study needs n >= 10, so that every digit is asked for")
        try:
            shipped_sections(args.only, shipped_inputs(args))
        except ValueError as err:
            p.error(str(err))
    device = get_device(args.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    STUDIES[args.study](args, Sitting(out=out, n=n, device=device, evaluator=SampleEvaluator(device=device), argv=argv))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
