"""`hdrvid weights list|pull|import` and `hdrvid train`: the weights side of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hdrvid.errors import HdrvidError


@click.group()
def weights() -> None:
    """Weights: ours (shipped) and the authors' (pulled); fetch, verify, convert."""


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_weights(as_json: bool) -> None:
    """Every weight file: ours (bundled, cached or remote, by sha256) and the authors' (pulled
    or not, by git blob id)."""
    rows = _shipped_rows() + _official_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "exposures", "source", "file", "size", "id", "where")
    for row in rows:
        size = f"{row['bytes'] / 1e6:.1f} MB" if row["bytes"] else ""
        ident = row["sha256"][:12] if row["source"] == "hdrvid" else f"blob {row['blob'][:12]}"
        table.add_row(row["model"], str(row["exposures"]), row["source"], row["file"], size,
                      ident, row["where"])
    Console().print(table)


def _shipped_rows() -> list[dict]:
    from hdrvid.registry import shipped_files
    from hdrvid.weights import locate

    return [{"model": model, "exposures": period, "source": "hdrvid", "file": f.filename,
             "bytes": f.size, "sha256": f.sha256, "repo": f.repo_id, "revision": f.revision,
             "where": locate(f)[0], "path": str(locate(f)[1] or "")}
            for model, period, f in shipped_files()]


def _official_rows() -> list[dict]:
    from hdrvid.registry import official_files

    rows = []
    for model, period, entry in official_files():
        path = entry.cached(model, period)
        pulled = path.is_file()
        rows.append({"model": model, "exposures": period, "source": "official",
                     "file": Path(entry.path).name, "bytes": path.stat().st_size if pulled else 0,
                     "blob": entry.blob, "url": entry.url(), "license": entry.license,
                     "where": "pulled" if pulled else "not pulled",
                     "path": str(path) if pulled else ""})
    return rows


@weights.command()
@click.argument("model")
@click.option("--exposures", type=click.IntRange(2, 3), default=None,
              help="Only the 2- or 3-exposure files (default both).")
@click.option("--source", type=click.Choice(["all", "hdrvid", "official"]), default="all",
              show_default=True, help="hdrvid: ours (weights/ or the Hugging Face hub, sha256 "
              "checked); official: the authors' (their repository at a pinned commit, git blob "
              "checked).")
def pull(model: str, exposures: int | None, source: str) -> None:
    """Fetch MODEL's weights and print where each file is. The authors' checkpoints are
    verified, loaded safely, and kept converted to safetensors in the user's cache."""
    from hdrvid.registry import get_spec, official_files, shipped_files
    from hdrvid.weights import fetch

    try:
        get_spec(model)
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    ours = [f for m, p, f in shipped_files() if m == model and exposures in (None, p)
            ] if source != "official" else []
    theirs = [(p, e) for m, p, e in official_files() if m == model and exposures in (None, p)
              ] if source != "hdrvid" else []
    if not ours and not theirs:
        raise click.ClickException(f"{model}: no {'' if source == 'all' else source + ' '}"
                                   "weights to pull; see `hdrvid weights list`")
    try:
        for shipped in ours:
            click.echo(fetch(shipped))
        for period, entry in theirs:
            click.echo(_pull_official(model, period, entry))
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc


def _pull_official(model: str, period: int, entry) -> Path:
    """One of the authors' files through `official.pull`, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from hdrvid import official
    from hdrvid.registry import get_spec

    spec = get_spec(model)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    # no bar where stderr is a log, not a terminal: it would leave blank lines there
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task(f"{model} {period}E", total=None)
        path, new = official.pull(entry, model, period, spec.build, spec.checkpoint,
                                  lambda done, total: bar.update(task, completed=done,
                                                                 total=total))
    state = "verified and converted" if new else "already pulled"
    console.print(f"{model} {period}-exposure: the authors' {entry.repo}@{entry.commit[:7]}:"
                  f"{entry.path} ({state}); licence: {entry.license}", soft_wrap=True,
                  highlight=False, markup=False)
    return path


@weights.command("import")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-m", "--model", required=True, help="The model the checkpoint is for.")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="The .safetensors file to write (default for the authors' own file: the "
                   "cache, as `weights pull` would).")
@click.option("--exposures", type=click.IntRange(2, 3), default=None,
              help="2 or 3 (default: whichever the checkpoint fits).")
def import_checkpoint(checkpoint: Path, model: str, output: Path | None,
                      exposures: int | None) -> None:
    """Convert an official CHECKPOINT (file or folder) to hdrvid safetensors, saying whether it
    is the authors' own file (its git blob id)."""
    from hdrvid.registry import get_spec
    from hdrvid.weights import import_official

    try:
        spec = get_spec(model)
        output, periods, extra, note = _import_target(checkpoint, spec, output, exposures)
        period = import_official(checkpoint, spec.build, spec.checkpoint, model, periods, output,
                                 extra)
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    if note:  # after the conversion, so that a failure stays one line
        click.echo(note, err=True)
    click.echo(f"{checkpoint} -> {output} ({model}, {period} exposures)")


def _import_target(checkpoint: Path, spec, output: Path | None, exposures: int | None):
    """(output, exposure counts to try, provenance, a note on whose file it is) of an import.
    The authors' own file (by git blob id) goes to the cache unless -o says otherwise; any
    other file needs -o."""
    from hdrvid.official import identify, provenance

    periods = (exposures,) if exposures else spec.periods
    if not checkpoint.exists():
        raise click.ClickException(f"{checkpoint}: no such file or folder; pass the checkpoint "
                                   "you downloaded")
    if not (spec.official and checkpoint.is_file()):
        if output is None:
            raise click.ClickException(f"{checkpoint}: pass -o FILE.safetensors, the file to "
                                       "write")
        return output, periods, None, ""
    blob, period = identify(checkpoint, spec.official)
    if period is None:
        theirs = ", ".join(f"{p}E {e.blob[:12]}" for p, e in spec.official.items())
        note = f"{checkpoint}: not the authors' {spec.name} file (git blob {blob[:12]}; theirs: "\
               f"{theirs})"
        if output is None:
            raise click.ClickException(f"{note}; pass -o FILE.safetensors to convert it anyway")
        return output, periods, None, note
    if exposures not in (None, period):
        raise click.ClickException(f"{checkpoint}: the authors' {spec.name} {period}-exposure "
                                   f"file, not {exposures}; drop --exposures")
    entry = spec.official[period]
    note = (f"{checkpoint}: the authors' {spec.name} {period}-exposure file (git blob {blob}); "
            f"licence: {entry.license}")
    return (output or entry.cached(spec.name, period), (period,),
            provenance(entry, checkpoint.name), note)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-m", "--model", default=None, help="Model to train (default hdrflow).")
@click.option("--exposures", type=click.IntRange(2, 3), default=None,
              help="Exposures per cycle (default 2).")
@click.option("--steps", type=click.IntRange(1), default=None, help="Optimiser steps.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Windows per step.")
@click.option("--crop", type=click.IntRange(32), default=None, help="Training crop in pixels.")
@click.option("--lr", type=float, default=None, help="AdamW learning rate (default 1e-4).")
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
              help="Autocast dtype (auto: bf16 where native).")
@click.option("--val-every", type=click.IntRange(1), default=None,
              help="Validate and checkpoint every N steps.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Data synthesis processes (default 1).")
@click.option("--data", default=None, help="The shared data folder (default ../shared/data).")
@click.option("--resume", is_flag=True, default=None, help="Continue RUN_DIR/last.pt.")
@click.option("--init", default=None, metavar="WEIGHTS",
              help="Start a new run from these weights (fine-tuning) instead of from scratch.")
@click.option("--flow-weight", type=click.FloatRange(0), default=None,
              help="Weight of the flow supervision on windows with exact flow (HDRFlow; "
                   "default the official 0.001 for 2 exposures, 0.0005 for 3).")
@click.option("--stage", type=click.Choice(["fusion", "all"]), default=None,
              help="f2hdr: train the fusion network alone on DIS flows (first), or every "
                   "learned part (default all).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines of validation records.")
def train(run_dir: Path, as_json: bool, **kwargs) -> None:
    """Train a model into RUN_DIR (last.pt, best.safetensors, log.jsonl)."""
    from hdrvid.train import TrainOptions
    from hdrvid.train import train as run_train

    options = TrainOptions(**{k: v for k, v in kwargs.items() if v is not None})
    try:
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


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for input.mp4, exposures.txt and gt/.")
@click.option("--cycle", type=click.IntRange(2, 3), default=2, show_default=True,
              help="Exposures per cycle.")
@click.option("--stops", type=click.FloatRange(0.5, 6), default=None,
              help="Stops between neighbouring exposures (default 3 for 2, 2 for 3).")
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
    stops = stops if stops is not None else (3.0 if cycle == 2 else 2.0)
    try:
        pattern = pattern_from_stops(stops, cycle, phase % cycle)
        run_simulate(source, output, pattern, frames, width, height, seed, tuple(noise), crf,
                     int(bits), fps)
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{source} -> {output}/input.mp4, exposures.txt, gt/ ({frames} frames)", err=True)
