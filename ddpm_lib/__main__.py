"""Command line: ``python -m ddpm_lib [train|sample|evaluate|export|classifier] ...``; with no command, a short demo
that trains a small U-Net for a few minutes and writes ``runs/demo/samples.png``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

import torch

from .checkpoints import CheckpointError, export_pretrained, load_checkpoint, load_model
from .config import (DiffusionConfig, EvalConfig, MLPConfig, SamplerConfig, TrainConfig, UNetConfig, get_device,
                     seed_everything)
from .data import MNISTDataError, load_mnist
from .metrics.classifier import ARCHS, DEFAULT_EPOCHS, MIN_ACCURACY, ClassifierConfig
from .models import build_model, count_parameters
from .plotting import save_grid
from .samplers import ddim_sample, ddpm_sample
from .training import NonFiniteLossError, Trainer


def _sample(model, schedule, n: int, sampler: str, steps: int, seed: int,
            digit: Optional[int] = None, guidance: float = 0.0, eta: float = SamplerConfig.eta):
    """Draw n samples; returns (images, requested labels or None, seconds)."""
    t0 = time.perf_counter()
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if digit is not None and not 0 <= digit <= 9:
        raise ValueError(f"--digit must be 0..9, got {digit}")
    if getattr(model, "null_label", None) is not None and digit is None:
        y = torch.arange(n) % 10  # a conditional model without --digit: every digit in turn
    else:
        y = None if digit is None else torch.full((n,), digit)
    if sampler == "ddpm":
        x = ddpm_sample(model, schedule, n, seed=seed, y=y, guidance=guidance)
    else:
        x = ddim_sample(model, schedule, n, steps=steps, eta=eta, seed=seed, y=y, guidance=guidance)
    return x.cpu(), y, time.perf_counter() - t0


def _sample_and_save(model, schedule, out: Path, n: int, sampler: str, steps: int, seed: int,
                     digit: Optional[int] = None, guidance: float = 0.0, eta: float = SamplerConfig.eta) -> Path:
    x, _, seconds = _sample(model, schedule, n, sampler, steps, seed, digit, guidance, eta)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(x, str(out / "samples.png"), nrow=max(1, int(n ** 0.5)))
    torch.save(x, out / "samples.pt")
    print(f"sampled {n} images ({sampler}{'' if sampler == 'ddpm' else f'-{steps}'}) in "
          f"{seconds:.1f}s -> {out / 'samples.png'}")
    return out / "samples.png"


def _stop_on_sigterm(signum, frame):  # a killed run saves its checkpoint like Ctrl-C does
    raise KeyboardInterrupt


def _resume_conflicts(args: argparse.Namespace, state: dict) -> List[str]:
    """The flags typed with --resume whose value differs from the checkpoint's: a resumed run
    keeps the checkpoint's model, schedule and optimiser settings (only --steps and --minutes change)."""
    model, diffusion, train = state["model_config"], state["diffusion_config"], state.get("train_config", {})
    kind = "mlp" if model.get("kind") == "mlp" else ("cond-unet" if model.get("num_classes") else "unet")
    saved = {"model": kind, "schedule": diffusion.get("schedule"), "T": diffusion.get("T"),
             "base_channels": model.get("base_channels"),
             **{k: train.get(k) for k in ("batch_size", "lr", "seed", "checkpoint_every")}}
    return [f"--{dest.replace('_', '-')} {getattr(args, dest)} (checkpoint: {value})"
            for dest, value in saved.items() if dest in args.given and getattr(args, dest) != value]


def cmd_train(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    seed_everything(args.seed)
    device = get_device(args.device)
    data = load_mnist(subset=args.subset, download=args.download)
    out = Path(args.out)
    if args.resume:
        ckpt = out / "checkpoint.pt" if args.resume == "auto" else Path(args.resume)
        conflicts = _resume_conflicts(args, load_checkpoint(ckpt))
        if conflicts:
            raise ValueError(f"--resume continues with the checkpoint's settings, but {'; '.join(conflicts)}; "
                             f"drop those flags, or start a new run with another --out")
        overrides = {k: v for k, v in (("steps", args.steps), ("max_minutes", args.minutes)) if v is not None}
        trainer = Trainer.from_checkpoint(ckpt, out_dir=out, device=device, **overrides)
        print(f"resuming {ckpt} at step {trainer.step}")
    else:
        if args.model == "mlp":
            model_cfg = MLPConfig()
        else:
            model_cfg = UNetConfig(base_channels=args.base_channels,
                                   num_classes=10 if args.model == "cond-unet" else None)
        steps = args.steps if args.steps is not None else (None if args.minutes else TrainConfig().steps)
        config = TrainConfig(steps=steps,
                             max_minutes=args.minutes, batch_size=args.batch_size, lr=args.lr,
                             checkpoint_every=args.checkpoint_every, seed=args.seed)
        trainer = Trainer(build_model(model_cfg), DiffusionConfig(T=args.T, schedule=args.schedule),
                          config, out_dir=out, device=device)
    print(f"training a {count_parameters(trainer.model) / 1e6:.2f}M-parameter {args.model} on "
          f"{len(data)} images, device {device}, output {out}")
    trainer.fit(data)
    if trainer.interrupted:
        return 130
    rate = trainer.step * trainer.config.batch_size / max(trainer.elapsed_s, 1e-9)
    print(f"trained {trainer.step} steps in {trainer.elapsed_s / 60:.1f} min ({rate:.0f} images/s); "
          f"final loss {sum(trainer.history[-50:]) / len(trainer.history[-50:]):.4f}; "
          f"checkpoint {trainer.checkpoint_path}")
    if args.n_samples > 0:
        model, schedule = load_model(trainer.checkpoint_path, device=device)
        sampling = SamplerConfig()
        _sample_and_save(model, schedule, out, args.n_samples, sampling.sampler, sampling.steps, args.seed,
                         eta=sampling.eta)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    model, schedule = load_model(args.checkpoint, ema=not args.raw, device=get_device(args.device))
    _sample_and_save(model, schedule, Path(args.out), args.n, args.sampler, args.steps, args.seed,
                     args.digit, args.guidance, args.eta)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .metrics import SampleEvaluator, bits_per_dim, default_classifier_path, load_classifier, memorisation_check

    device = get_device(args.device)
    model, schedule = load_model(args.checkpoint, ema=not args.raw, device=device)
    judges = {"classifier": load_classifier(args.classifier, device=device),
              "second": load_classifier(args.second_classifier or default_classifier_path("mlp"), device=device)}
    evaluator = SampleEvaluator(judges["classifier"], second=judges["second"])
    x, y, seconds = _sample(model, schedule, args.n, args.sampler, args.steps, args.seed,
                            args.digit, args.guidance, args.eta)
    report = evaluator.evaluate(x, digits=y)
    test = load_mnist(train=False).tensors[0]
    memo = memorisation_check(x, evaluator.train_images, test[:args.n])
    result = {"checkpoint": str(args.checkpoint), "sampler": args.sampler,
              "steps": schedule.T if args.sampler == "ddpm" else args.steps,
              **({} if args.sampler == "ddpm" else {"eta": args.eta}),
              "guidance": args.guidance, "digit": args.digit, "sampling_s": round(seconds, 2),
              **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in report.as_dict().items()},
              "memorisation_ratio": round(memo.ratio, 4), "copy_share": round(memo.copy_share, 4),
              **{f"{name}_used": {"path": j.path, "kind": j.arch, "test_accuracy": round(j.test_accuracy, 4)}
                 for name, j in judges.items()}}
    if args.bpd_images > 0:
        vlb = bits_per_dim(model, schedule, test[:args.bpd_images], t_samples=args.t_samples, seed=args.seed)
        result.update(bits_per_dim=round(vlb.total, 5), bits_per_dim_stderr=round(vlb.stderr, 5),
                      bits_per_dim_terms={k: round(v, 5) for k, v in vlb.terms.items()},
                      bits_per_dim_images=vlb.n, bits_per_dim_t_samples=vlb.t_samples)
    print(json.dumps(result))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    path = export_pretrained(args.checkpoint, args.out, note=args.note)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, EMA weights in float16)")
    return 0


def cmd_classifier(args: argparse.Namespace) -> int:
    from .metrics.classifier import accuracy, default_classifier_path, save_classifier, train_classifier

    out = Path(args.out or f"runs/classifier/{args.arch}.pt")
    shipped = default_classifier_path(args.arch)
    if out.resolve() == shipped.resolve() and not args.replace_shipped:  # refuse before training, not after
        print(f"error: {out} is the shipped judge every quality number depends on; add --replace-shipped "
              f"to overwrite it, or write elsewhere with --out", file=sys.stderr)
        return 1
    seed_everything(args.seed)
    t0 = time.perf_counter()
    config = ClassifierConfig(arch=args.arch, epochs=args.epochs, reject_share=args.reject_share, seed=args.seed)
    model = train_classifier(load_mnist(subset=args.subset), config, device=get_device(args.device))
    acc = accuracy(model, load_mnist(train=False))
    note = (f"python -m ddpm_lib classifier --arch {args.arch} --epochs {config.epochs} "
            f"--reject-share {args.reject_share} --seed {args.seed}")
    path = save_classifier(model.cpu(), out, test_accuracy=acc, config=config, note=note)
    print(f"test accuracy {acc:.4f} after {time.perf_counter() - t0:.0f}s -> {path}")
    if acc < MIN_ACCURACY[args.arch]:
        print(f"warning: below the {MIN_ACCURACY[args.arch]:.1%} the metrics assume for a {args.arch} judge; "
              f"train longer (--epochs)", file=sys.stderr)
    if out.resolve() != shipped.resolve():
        print(f"use it with `python -m ddpm_lib evaluate --classifier {path}`, or ship it with "
              f"--out {shipped} --replace-shipped")
    return 0


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    d = SamplerConfig()
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default=d.sampler, help="default: %(default)s")
    p.add_argument("--steps", type=int, default=d.steps, help="DDIM steps (default: %(default)s)")
    p.add_argument("--eta", type=float, default=d.eta,
                   help="DDIM noise: 0 deterministic, 1 as much as DDPM (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--guidance", type=float, default=d.guidance,
                   help="classifier-free guidance weight w (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The command line; every default that a dataclass holds is read from it."""
    p = argparse.ArgumentParser(prog="python -m ddpm_lib", description=__doc__, allow_abbrev=False)
    sub = p.add_subparsers(dest="command")
    train, diffusion = TrainConfig(), DiffusionConfig()

    t = sub.add_parser("train", help="train a noise predictor on MNIST, write checkpoints and samples",
                       allow_abbrev=False)
    t.add_argument("--model", choices=["unet", "cond-unet", "mlp"], default="unet",
                   help="cond-unet: class-conditional U-Net trained with label dropout (for guidance)")
    t.add_argument("--out", default="runs/unet", help="output folder (checkpoint.pt, samples.png)")
    t.add_argument("--schedule", choices=["linear", "cosine"], default=diffusion.schedule)
    t.add_argument("--T", type=int, default=diffusion.T, help="diffusion steps (default: %(default)s)")
    t.add_argument("--steps", type=int, default=None,
                   help=f"optimizer steps (default: {train.steps}, or until --minutes runs out)")
    t.add_argument("--minutes", type=float, default=train.max_minutes, help="wall-clock training budget")
    t.add_argument("--batch-size", type=int, default=train.batch_size, help="default: %(default)s")
    t.add_argument("--lr", type=float, default=train.lr, help="default: %(default)s")
    t.add_argument("--base-channels", type=int, default=UNetConfig().base_channels,
                   help=f"U-Net width at 28x28 ({UNetConfig.small().base_channels}: UNetConfig.small(), the better "
                        "choice for CPU budgets of tens of minutes; default: %(default)s)")
    t.add_argument("--subset", type=int, default=None, help="train on n random images")
    t.add_argument("--seed", type=int, default=train.seed)
    t.add_argument("--checkpoint-every", type=int, default=train.checkpoint_every,
                   help="steps between checkpoints (default: %(default)s)")
    t.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from OUT/checkpoint.pt (or the path given) with its settings; "
                        "only --steps and --minutes may change")
    t.add_argument("--n-samples", type=int, default=64, help="images to sample at the end (0: none)")
    t.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    t.add_argument("--download", action="store_true", help="fetch MNIST from the network if missing")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample images from a checkpoint", allow_abbrev=False)
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", default="runs/samples")
    s.add_argument("--n", type=int, default=64)
    _add_sampler_args(s)
    s.add_argument("--digit", type=int, default=None, help="generate this digit (class-conditional models)")
    s.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    s.add_argument("--device", default=None)
    s.set_defaults(func=cmd_sample)

    evaluation = EvalConfig()
    v = sub.add_parser("evaluate", help="sample, then print MNIST-FID (two judges), precision, recall, "
                                        "confident share, class entropy, memorisation (and bits/dim) "
                                        "as one JSON line", allow_abbrev=False)
    v.add_argument("--checkpoint", required=True)
    v.add_argument("--n", type=int, default=evaluation.n,
                   help="samples (MNIST-FID is comparable only at equal n; default: %(default)s)")
    _add_sampler_args(v)
    v.add_argument("--digit", type=int, default=None, help="class-conditional models: only this digit")
    v.add_argument("--bpd-images", type=int, default=evaluation.bpd_images,
                   help="also estimate the variational bound (bits/dim) on this many test images")
    v.add_argument("--t-samples", type=int, default=evaluation.t_samples,
                   help="stratified t draws per image for bits/dim (default: %(default)s)")
    v.add_argument("--classifier", default=None, help="main judge's weights (default: the shipped CNN)")
    v.add_argument("--second-classifier", default=None,
                   help="second judge's weights, for the second MNIST-FID (default: the shipped MLP)")
    v.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    v.add_argument("--device", default=None)
    v.set_defaults(func=cmd_evaluate)

    e = sub.add_parser("export", help="write a small sampling-only copy of a checkpoint (EMA, float16)",
                       allow_abbrev=False)
    e.add_argument("checkpoint")
    e.add_argument("out")
    e.add_argument("--note", default="", help="free text stored with the weights (e.g. how they were trained)")
    e.set_defaults(func=cmd_export)
    c = sub.add_parser("classifier", help="train an MNIST judge (CNN or MLP) behind the quality metrics",
                       allow_abbrev=False)
    cdef = ClassifierConfig()
    c.add_argument("--arch", choices=ARCHS, default=cdef.arch,
                   help="cnn: the main judge; mlp: the second opinion (default: %(default)s)")
    c.add_argument("--out", default=None, help="default: runs/classifier/<arch>.pt")
    c.add_argument("--replace-shipped", action="store_true",
                   help="allow --out to overwrite the shipped weights in data/pretrained/")
    c.add_argument("--epochs", type=int, default=None,
                   help="default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_EPOCHS.items()))
    c.add_argument("--reject-share", type=float, default=cdef.reject_share,
                   help="'not a digit' images per digit image in each batch (default: %(default)s)")
    c.add_argument("--subset", type=int, default=None, help="train on n random images")
    c.add_argument("--seed", type=int, default=cdef.seed)
    c.add_argument("--device", default=None)
    c.set_defaults(func=cmd_classifier)
    return p


def _given(parser: argparse.ArgumentParser, command: Optional[str], argv: List[str]) -> set:
    """The destinations of the options typed on the command line (not left at their default)."""
    if command is None:
        return set()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {a.dest for a in sub._actions for o in a.option_strings
            if any(tok == o or tok.startswith(o + "=") for tok in argv)}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("demo: a 3-minute training run of the small U-Net preset; see `python -m ddpm_lib --help` for more")
        argv = ["train", "--out", "runs/demo", "--minutes", "3", "--base-channels", str(UNetConfig.small().base_channels)]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = _given(parser, args.command, argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    try:
        return args.func(args)
    except (MNISTDataError, CheckpointError, NonFiniteLossError, ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
