"""The `hdrvid` command: a thin click layer over the library API.

Exit codes: 0 success, 1 an input could not be converted (the error says why), 2 usage error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hdrvid import __version__
from hdrvid.errors import HdrvidError

COMPRESSIONS = ["none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab"]


def _emit_json(data: dict) -> None:
    click.echo(json.dumps(data))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hdrvid")
def main() -> None:
    """Turn alternating-exposure video into linear HDR (OpenEXR sequences).

    \b
    Exit codes: 0 success, 1 conversion failed (one-line error on stderr), 2 usage error.
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (one subfolder per input when several are given).")
@click.option("-m", "--model", default=None, help="Reconstruction model (see `hdrvid models`). "
              "Default: merge.")
@click.option("--exposures", default=None, metavar="T0,T1[,T2]",
              help="Relative exposure times of frames 0, 1[, 2], e.g. 1,8 (or 8,1 if frame 0 is "
                   "the long one).")
@click.option("--stops", type=float, default=None, help="Stops between neighbouring exposures "
              "(with --cycle); which frame is short is read from the video.")
@click.option("--cycle", type=click.IntRange(2, 3), default=None,
              help="Exposures per cycle, with --stops.")
@click.option("--exposure-file", type=click.Path(dir_okay=False), default=None,
              help="Sidecar file of exposures in stops: one per frame, or one per level.")
@click.option("--input-transfer", default=None, metavar="gamma2.2|srgb|linear|FILE",
              help="Transfer curve of the input (default gamma2.2, as the models assume), or a "
                   "table of the inverse camera response.")
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Windows per model call (default 1).")
@click.option("--float32", is_flag=True, default=None, help="Write 32-bit float EXR (default half).")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default=None,
              help="EXR compression (default piz, lossless).")
@click.option("--frames", "max_frames", type=click.IntRange(1), default=None,
              help="Convert only the first N frames.")
@click.option("--overwrite", is_flag=True, default=None,
              help="Replace the frames of an earlier run in the output folder.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="EXR writer threads (default: one per core).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON lines on stdout: progress events and one result per input.")
def convert(inputs: tuple[Path, ...], output: Path, quiet: bool, as_json: bool, **kwargs) -> None:
    """Convert alternating-exposure videos to linear HDR EXR sequences.

    Writes OUTPUT/frame_000000.exr, ... (half float, linear Rec.709, 1.0 = the clipping point of
    the shortest exposure) and OUTPUT/hdrvid.json (input, model, exposures, timestamps).
    Exposures come from --exposures, --stops/--cycle, --exposure-file, or are detected.
    """
    from hdrvid.pipeline import ConvertOptions
    from hdrvid.pipeline import convert as run_convert

    # options left at None are dropped, so the library's defaults are the only defaults
    options = ConvertOptions(**{k: v for k, v in kwargs.items() if v is not None})
    for path in inputs:
        out_dir = output / path.stem if len(inputs) > 1 else output
        try:
            with _progress_reporter(path, quiet or as_json, as_json) as progress:
                report = run_convert(path, out_dir, options, progress=progress)
        except HdrvidError as exc:
            if as_json:
                _emit_json({"event": "error", "input": str(path), "error": str(exc)})
            raise click.ClickException(str(exc)) from exc
        if as_json:
            _emit_json({"event": "result", **report.as_dict()})
        elif not quiet:
            for warning in report.warnings:
                click.echo(f"warning: {warning}", err=True)
            click.echo(str(report), err=True)


class _progress_reporter:
    """A rich progress bar (frames, fps, ETA), JSON progress lines, or nothing."""

    def __init__(self, path: Path, silent: bool, as_json: bool):
        self.path, self.silent, self.as_json = path, silent, as_json
        self.bar = None

    def __enter__(self):
        if self.as_json:
            return lambda p: _emit_json({"event": "progress", "input": str(self.path),
                                         "done": p.done, "total": p.total,
                                         "fps": round(p.done / p.seconds, 3) if p.seconds else None})
        if self.silent:
            return None
        return self.update

    def update(self, p) -> None:
        if self.bar is None:  # started on the first frame, so early errors print alone
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[fps]} fps"),
                                TimeRemainingColumn(), console=_stderr_console())
            self.bar.start()
            self.task = self.bar.add_task(self.path.name, total=None, fps="-")
        self.bar.update(self.task, completed=p.done, total=p.total,
                        fps=f"{p.done / p.seconds:.1f}" if p.seconds else "-")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


@main.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--exposures", default=None, help="Check these exposures instead of detecting.")
@click.option("--input-transfer", default="gamma2.2", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(input: Path, exposures: str | None, input_transfer: str, as_json: bool) -> None:
    """Show a video's format, colour tags and detected exposure pattern."""
    from hdrvid.pipeline import ConvertOptions, resolve_exposures
    from hdrvid.response import load_response
    from hdrvid.video import probe

    try:
        video = probe(input)
        options = ConvertOptions(exposures=exposures, input_transfer=input_transfer)
        warnings: list[str] = []
        pattern = resolve_exposures(video, options, load_response(input_transfer), warnings)
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _emit_json({**video.as_dict(), "exposures": pattern.as_dict(), "warnings": warnings})
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    rate = f"{float(video.fps):.3f} fps" if video.fps else "unknown rate"
    rows = [
        ("file", str(video.path)),
        ("video", (f"{video.codec} {video.width}×{video.height} {video.pix_fmt} "
                   f"({video.bit_depth}-bit), {rate}")),
        ("frames", f"{video.frame_count or 'unknown'}"
                   + (f", {video.duration:.2f} s" if video.duration else "")),
        ("colour", video.color.describe()),
        ("audio", f"{video.audio_streams} stream(s)"),
        ("exposures", pattern.describe()),
        ("source", pattern.source),
    ]
    for name, value in rows:
        table.add_row(f"[bold]{name}[/]", value)
    console = _stdout_console()
    console.print(table)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _stdout_console():
    from rich.console import Console

    return Console()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of model variants.")
def models(as_json: bool) -> None:
    """List the models: exposures per cycle, window, parameters and where weights come from."""
    from hdrvid.registry import MODELS, count_parameters

    rows = [{"name": spec.name, "exposures": period, "window": window,
             "parameters": count_parameters(spec.build(period)),
             "weights": spec.weights_source(), "license": spec.license,
             "description": spec.description}
            for spec in MODELS.values() for period, window in spec.windows.items()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from rich.table import Table

    table = Table("model", "exposures", "window", "parameters", "weights", "description")
    for row in rows:
        table.add_row(row["name"], str(row["exposures"]), str(row["window"]),
                      f"{row['parameters']:,}", row["weights"], row["description"])
    table.columns[-1].overflow = "fold"
    _stdout_console().print(table)


if __name__ == "__main__":
    sys.exit(main())
