"""`hdrvid info`, `hdrvid models` and `hdrvid eval`: commands that read and report, and write
nothing."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from hdrvid.cli_common import default, emit_json, stderr_console, stdout_console
from hdrvid.errors import HdrvidError
from hdrvid.job import ConvertOptions


@click.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--exposures", default=None, help="Check these exposures instead of detecting.")
@click.option("--input-transfer", default=default(ConvertOptions, "input_transfer"),
              show_default=True,
              help="The curve to detect exposures with (auto: gamma 2.2 for detection).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(input: Path, exposures: str | None, input_transfer: str, as_json: bool) -> None:
    """Show a video's format, colour tags, detected exposure pattern and camera response."""
    from hdrvid.cli_calibrate import info_response
    from hdrvid.exposure import ExposureHints, resolve_exposures
    from hdrvid.response import AUTO, Response, load_response
    from hdrvid.video import probe

    try:
        video = probe(input)
        response = Response() if input_transfer == AUTO else load_response(input_transfer)
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    warnings: list[str] = []
    try:  # what was not found is said after the file's details, which are shown anyway
        # a check: given exposures the frames contradict are reported, not refused
        hints = ExposureHints(exposures=exposures, force=True)
        pattern, warnings = resolve_exposures(video, hints, response)
        curve, curve_rows = info_response(video, pattern, input_transfer, warnings)
    except HdrvidError as exc:
        pattern, curve, curve_rows, failure = None, None, [], str(exc)
    if as_json:
        emit_json({**video.as_dict(), "exposures": pattern.as_dict() if pattern else None,
                    "response": curve, "warnings": warnings,
                    **({} if pattern else {"error": failure})})
    else:
        _print_info(video, pattern, curve_rows, warnings)
    if pattern is None:
        click.echo(f"Error: {failure}", err=True)
        raise SystemExit(1)


def _print_info(video, pattern, curve_rows: list, warnings: list[str]) -> None:
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
        ("exposures", pattern.describe() if pattern else "not found (below)"),
        *([("source", pattern.source)] if pattern else []),
        *curve_rows,
    ]
    for name, value in rows:
        table.add_row(f"[bold]{name}[/]", value)
    console = stdout_console()
    console.print(table)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of model variants.")
def models(as_json: bool) -> None:
    """List the models: exposures per cycle, where weights come from, and what each is for.

    Use f2hdr (the default) for quality, merge for speed or no weights; --json adds windows,
    parameter counts and licences per variant.
    """
    from hdrvid.registry import MODELS, count_parameters

    if as_json:
        rows = [{"name": spec.name, "exposures": period, "window": window,
                 "parameters": count_parameters(spec.build(period)),
                 "weights": spec.weights_source(period), "license": spec.license,
                 "description": spec.description, "use_for": spec.use_for}
                for spec in MODELS.values() for period, window in spec.windows.items()]
        click.echo(json.dumps(rows, indent=1))
        return
    from rich import box
    from rich.table import Column, Table

    # one row per model, the advice folded in the last column: it must read at 80 columns
    table = Table(Column("model", no_wrap=True), Column("exposures", no_wrap=True),
                  Column("weights", no_wrap=True), Column("use it for", overflow="fold"),
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for spec in MODELS.values():
        table.add_row(spec.name, ", ".join(str(p) for p in spec.periods),
                      _weights_in_short(spec), spec.use_for or spec.description)
    console = stdout_console()
    console.print(table)
    console.print("Details per variant (window, parameters, licence): hdrvid models --json")


def _weights_in_short(spec) -> str:
    """Where a model's weights come from, in a word or two."""
    if not spec.trained:
        return "none needed"
    if all(spec.weights.get(period) for period in spec.periods):
        return "bundled"
    return "weights pull" if spec.official else "--weights"



def _parse_metrics_option(ctx, param, value: str | None):
    if value is None:
        return None
    from hdrvid.evaluate import EvalError, parse_metrics

    try:
        return parse_metrics(value)
    except EvalError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("eval")
@click.argument("pred", type=click.Path(path_type=Path))
@click.argument("gt", type=click.Path(path_type=Path))
@click.option("--metrics", callback=_parse_metrics_option, default=None, metavar="NAME[,NAME...]",
              help="Any of psnr-t,psnr-l,ssim-t,temporal,pu21,flip,cvvdp. Default: all; optional "
                   "metrics whose package is missing are skipped with a note.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frame rate for cvvdp (default: PRED's hdrvid.json or EXR header, else 30).")
@click.option("--device", default=None,
              help="torch device for cvvdp: cpu, cuda or cuda:N (default: cuda if available).")
@click.option("--per-frame", is_flag=True, help="Also print a table with one row per frame.")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object: per-frame values, means, per-exposure means '
                   '(infinite values as "inf").')
def eval_command(pred: Path, gt: Path, metrics: tuple[str, ...] | None, fps: float | None,
                 device: str | None, per_frame: bool, as_json: bool) -> None:
    """Compare predicted HDR frames (PRED) with the ground truth (GT).

    PRED and GT are two folders of EXR frames or two EXR files. Folders of hdrvid frames
    (frame_NNNNNN.exr) are paired by name, other *.exr files by sorted order. Metrics
    (docs/conventions.md §8): PSNR-T (mu-law, mu=5000, clipped to [0,1], no renormalisation),
    PSNR-L, SSIM-T, temporal error and, with `pip install 'hdrvid[metrics]'`, PU21-PSNR,
    HDR-FLIP and ColorVideoVDP. Means are over frames, and per reference exposure when PRED
    records exposures (hdrvid.json).
    """
    from hdrvid.evaluate import evaluate

    try:
        with _eval_progress(silent=as_json) as progress:
            result = evaluate(pred, gt, metrics=metrics, fps=fps, device=device,
                              progress=progress)
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        emit_json(result.as_dict())
    else:
        _print_eval(result, per_frame)


@contextlib.contextmanager
def _eval_progress(silent: bool):
    """A transient rich progress bar on stderr when it is a terminal; else no callback."""
    console = stderr_console()
    if silent or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as bar:
        def update(p) -> None:
            if p.stage not in tasks:
                tasks[p.stage] = bar.add_task(p.stage, total=p.total)
            bar.update(tasks[p.stage], completed=p.done)

        yield update


def _print_eval(result, per_frame: bool) -> None:
    from rich.markup import escape

    console = stdout_console()
    console.print(escape(f"{len(result.frames)} frame pair(s), paired by {result.pairing}: "
                         f"{result.pred} vs {result.gt}"), soft_wrap=True, highlight=False)
    console.print(_eval_means_table(result))
    if per_frame:
        console.print(_eval_frames_table(result))
    if result.unavailable:  # optional metrics skipped by default: one line (--json has why)
        from hdrvid.evaluate import INSTALL_HINT

        console.print(f"[yellow]not computed:[/] {', '.join(result.unavailable)} (optional: "
                      f"{escape(INSTALL_HINT)})", soft_wrap=True)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)


def _eval_means_table(result):
    from rich.table import Table

    from hdrvid.evaluate import METRICS, format_value

    levels = list(result.by_exposure.items())
    table = Table("metric", "mean", *(f"{name} t={g['exposure']:g}\n{g['frames']} frames"
                                      for name, g in levels), "better")
    for name in result.metrics:
        info = METRICS[name]
        label = f"{info.label} ({info.unit})" if info.unit else info.label
        cells = [format_value(name, g.get(name)) if info.per_frame else "" for _, g in levels]
        table.add_row(label, format_value(name, result.mean.get(name)), *cells,
                      "higher" if info.higher_is_better else "lower")
    return table


def _eval_frames_table(result):
    from rich.markup import escape
    from rich.table import Column, Table

    from hdrvid.evaluate import METRICS, format_value

    names = [n for n in result.metrics if METRICS[n].per_frame]
    frame_column = Column("frame", no_wrap=True, min_width=max(len(f.pred) for f in result.frames))
    table = Table("#", frame_column, "exposure", *names)
    for frame in result.frames:
        exposure = "" if frame.exposure is None else f"{frame.exposure:g} {frame.level or ''}"
        table.add_row(str(frame.index), escape(frame.pred), exposure,
                      *(format_value(n, frame.values.get(n)) for n in names))
    return table
