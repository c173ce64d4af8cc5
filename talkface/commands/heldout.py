"""`talkface heldout CLIP --out DIR`: fine-tune on a clip's first frames, generate and score the rest."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_config_arguments, load_command_config

DEFAULT_CONFIG = "heldout.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "heldout",
        ["talkface heldout clip.mp4 --out eval_alice",
         "talkface heldout clip.mp4 --out eval_alice --config configs/heldout_cpu.yaml --train-frames 150",
         "talkface heldout clip.mp4 --out eval_alice --seeds 0 1 2"],
        help="held-out evaluation: fine-tune on a clip's first frames, score the generated rest",
        description="Fine-tunes a person on the first N frames (default 300, or 75 percent of a shorter clip), generates "
                    "the remaining frames from their own audio and scores them against the real frames: mouth LMD "
                    "(the same landmark detector on both), PSNR/SSIM of the GAN against the composited render on the "
                    "frames' own reconstruction, pose statistics, against three baselines (the person's mean "
                    "expression, the general model, the first frame held still). Writes DIR/heldout.json, "
                    "DIR/report.md and DIR/contact_sheet.png; re-running skips finished fine-tuning stages. With "
                    "--seeds, one such run per fine-tuning seed in DIR/seed_N and their spread in DIR/seeds.json.",
    )
    parser.add_argument("clip", metavar="CLIP", help="a video of one person speaking, with its audio")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--train-frames", type=int, default=None, metavar="N",
                        help="frames to fine-tune on (default: the config's, 300 or 75%% of a shorter clip)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="N",
                        help="one run per motion + GAN fine-tuning seed (one run's pass or fail is weak evidence "
                             "on a short clip)")
    parser.add_argument("--landmarks", default=None, metavar="NPY",
                        help="landmarks [T, 68, 2] of the whole clip (frame pixels) instead of detecting them")
    add_config_arguments(parser, DEFAULT_CONFIG, "talkface.pipelines.heldout:HeldoutConfig", "person.gan.epochs=30")
    parser.set_defaults(handler=_heldout)


def _heldout(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.errors import ConfigError
    from talkface.pipelines.heldout import run_heldout, run_heldout_seeds

    config = load_command_config(args)
    try:
        if args.train_frames is not None:
            config = dataclasses.replace(config, train_frames=args.train_frames)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if args.landmarks is not None:
        preprocess = config.person.preprocess
        landmarks = dataclasses.replace(preprocess.landmarks, backend="file", file=args.landmarks)
        config.person.preprocess = dataclasses.replace(preprocess, landmarks=landmarks)
    if args.seeds is not None:
        _print_seeds(run_heldout_seeds(args.clip, args.out, config, args.seeds))
        print(f"wrote {args.out}/seeds.json and, per seed, {args.out}/seed_N/heldout.json, report.md, contact_sheet.png")
        return 0
    result = run_heldout(args.clip, args.out, config)
    for name, figures in result["audio_driven"].items():
        print(f"  {name:<16} mouth LMD {_text(figures.get('lmd'))} px  PSNR {_text(figures.get('psnr'))} dB")
    recon = result["reconstruction"]
    print(f"  reconstruction   GAN PSNR {_text(recon['psnr_gan'])} dB, composited render {_text(recon['psnr_render'])} dB")
    _print_checks(result["checks"])
    print(f"wrote {args.out}/heldout.json, {args.out}/report.md, {args.out}/contact_sheet.png")
    return 0


def _print_seeds(summary: dict) -> None:
    """Mouth LMD's mean and range per variant, the GAN's gain, the seeds that pass every check."""
    for name, figures in summary["audio_driven"].items():
        lmd = figures["lmd"]
        print(f"  {name:<16} mouth LMD {_text(lmd['mean'])} px (seeds: {_text(lmd['min'])}-{_text(lmd['max'])})")
    gain = summary["gan_psnr_gain_db"]
    print(f"  reconstruction   GAN over the composited render {_text(gain['mean'])} dB "
          f"(seeds: {_text(gain['min'])}-{_text(gain['max'])})")
    print(f"  every check passes on seeds {summary['passing_seeds']} of {summary['seeds']}; on the means:")
    _print_checks(summary["checks_of_the_means"])


def _print_checks(checks: dict[str, bool]) -> None:
    for check, ok in checks.items():
        print(f"  {'pass' if ok else 'FAIL'}  {check}")


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
