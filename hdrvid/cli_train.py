"""`hdrvid train` and `hdrvid simulate`: training a model, and the clips with ground truth
it is measured on."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hdrvid.cli_common import LibraryDefault
from hdrvid.errors import HdrvidError


def _train_options() -> type:
    """`train`'s options dataclass, whose module imports torch: loaded when `train` runs."""
    from hdrvid.training.loop import TrainOptions

    return TrainOptions


# what a train option needs to take its default from TrainOptions and show it in --help
_TRAIN_DEFAULT = {"cls": LibraryDefault, "options": _train_options, "show_default": True}


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-m", "--model", **_TRAIN_DEFAULT, help="Model to train.")
@click.option("--exposures", type=click.IntRange(2, 3), **_TRAIN_DEFAULT,
              help="Exposures per cycle.")
@click.option("--steps", type=click.IntRange(1), **_TRAIN_DEFAULT, help="Optimiser steps.")
@click.option("--batch-size", type=click.IntRange(1), **_TRAIN_DEFAULT,
              help="Windows per step.")
@click.option("--crop", type=click.IntRange(32), **_TRAIN_DEFAULT,
              help="Training crop in pixels.")
@click.option("--lr", type=float, **_TRAIN_DEFAULT, help="AdamW learning rate.")
@click.option("--device", **_TRAIN_DEFAULT, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), **_TRAIN_DEFAULT,
              help="Autocast dtype (auto: bf16 where native).")
@click.option("--val-every", type=click.IntRange(1), **_TRAIN_DEFAULT,
              help="Validate and checkpoint every N steps.")
@click.option("--workers", type=click.IntRange(0), **_TRAIN_DEFAULT,
              help="Data synthesis processes.")
@click.option("--data", default=None, metavar="DIR",
              help="Training data folder, holding hdr/ and ldr-video/ (default $HDRVID_DATA).")
@click.option("--resume", is_flag=True, default=None, help="Continue RUN_DIR/last.pt.")
@click.option("--init", default=None, metavar="WEIGHTS",
              help="Start a new run from these weights (fine-tuning) instead of from scratch.")
@click.option("--flow-weight", type=click.FloatRange(0), default=None,
              help="Weight of the flow supervision on windows with exact flow (HDRFlow; "
                   "default the official 0.001 for 2 exposures, 0.0005 for 3).")
@click.option("--tone-perturb", type=click.FloatRange(0), **_TRAIN_DEFAULT,
              help="HDRFlow, f2hdr: strength s of the reference's tone perturbation, γ = "
                   "e^U(-s, s) (official 0.7; 0 turns it off).")
@click.option("--stage", type=click.Choice(["fusion", "refine", "all", "denoise"]),
              **_TRAIN_DEFAULT,
              help="f2hdr: train the fusion network alone on DIS flows (first), the "
                   "refinement over the frozen fusion (second), every learned part, or the "
                   "denoiser alone over the rest.")
@click.option("--well-exposed", type=click.Choice(["reference", "merge", "learned"]),
              default=None, help="f2hdr: what replaces the network where the reference is well "
                                 "exposed: the reference, merge's strict mean, or the fusion "
                                 "net's choice between merge's means (default: as the "
                                 "--init weights say).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines of validation records.")
def train(run_dir: Path, as_json: bool, **kwargs) -> None:
    """Train a model into RUN_DIR (last.pt, best.safetensors, log.jsonl)."""
    from hdrvid.training.loop import TrainOptions, check
    from hdrvid.training.loop import train as run_train

    options = TrainOptions(**{k: v for k, v in kwargs.items() if v is not None})
    try:
        check(run_dir, options)  # before the progress bar: a mistake is one line alone
        if as_json:
            last = run_train(run_dir, options, progress=_json_records())
        else:
            last = _train_with_progress(run_dir, options, run_train)
    except (HdrvidError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(last) if as_json else f"{run_dir}: {last}", err=not as_json)


def _json_records():
    def emit(event: dict) -> None:
        if "val_psnr_t" in event:  # one line per validation
            click.echo(json.dumps(event))
    return emit


def _train_with_progress(run_dir: Path, options, run_train) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total}"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"train {options.model}", total=options.steps, status="")
        def update(event: dict) -> None:
            status = f"loss {event['loss']:.4f}"
            if "val_psnr_t" in event:
                status += (f"  val PSNR-T {event['val_psnr_t']:.2f} dB (merge "
                           f"{event['merge_psnr_t']:.2f})")
            bar.update(task, completed=event["step"], status=status)
        return run_train(run_dir, options, progress=update)


# `simulate --stops` when not given, by exposures per cycle
SIMULATED_STOPS = {2: 3.0, 3: 2.0}


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for input.mp4, exposures.txt and gt/.")
@click.option("--cycle", type=click.IntRange(2, 3), default=2, show_default=True,
              help="Exposures per cycle.")
@click.option("--stops", type=click.FloatRange(0.5, 6), default=None,
              help="Stops between neighbouring exposures (default "
                   + ", ".join(f"{s:g} for {n}" for n, s in SIMULATED_STOPS.items()) + ").")
@click.option("--phase", type=click.IntRange(0, 2), default=0, show_default=True,
              help="Level of frame 0 (0 = shortest).")
@click.option("--frames", type=click.IntRange(1), default=48, show_default=True)
@click.option("--size", default="640x360", show_default=True, metavar="WxH")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--noise", type=(float, float), default=(2e-4, 2e-6), show_default=True,
              metavar="A B", help="Sensor noise variance a·x + b on the linear exposure x.")
@click.option("--bits", type=click.Choice(["8", "10"]), default="8", show_default=True,
              help="8: H.264; 10: HEVC Main 10.")
@click.option("--crf", type=click.IntRange(0, 51), default=12, show_default=True)
@click.option("--fps", type=click.IntRange(1, 240), default=24, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an earlier simulation in OUTPUT.")
def simulate(source: Path, output: Path, cycle: int, stops: float | None, phase: int,
             frames: int, size: str, seed: int, noise, bits: str, crf: int, fps: int,
             overwrite: bool) -> None:
    """Render an alternating-exposure clip with ground truth from SOURCE: an EXR sequence
    folder, an HDR still (.exr, under a seeded camera path) or an LDR video / image folder
    (made pseudo-HDR)."""
    from hdrvid.exposure import pattern_from_stops
    from hdrvid.synth import simulate as run_simulate

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{size!r}: give WIDTHxHEIGHT, e.g. 640x360",
                                 param_hint="--size") from None
    if (output / "input.mp4").exists() and not overwrite:
        raise click.ClickException(f"{output}: holds a simulation; pass --overwrite to replace it")
    stops = stops if stops is not None else SIMULATED_STOPS[cycle]
    try:
        pattern = pattern_from_stops(stops, cycle, phase % cycle)
        run_simulate(source, output, pattern, frames, width, height, seed, tuple(noise), crf,
                     int(bits), fps)
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{source} -> {output}/input.mp4, exposures.txt, gt/ ({frames} frames)", err=True)
