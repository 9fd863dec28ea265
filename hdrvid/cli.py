"""The `hdrvid` command: a thin click layer over the library API.

This module holds the `main` group (the entry point, which tunes the process), `convert` and
`tonemap`; the other commands live by topic and are added to `main` at the end: `cli_inspect`
(info, models, eval), `cli_weights` (weights), `cli_train` (train, simulate), `cli_calibrate`
(calibrate).

Exit codes: 0 success, 1 an input could not be converted (the error says why), 2 usage error,
130 / 143 interrupted by Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import click

from hdrvid import __version__
from hdrvid.cli_calibrate import calibrate
from hdrvid.cli_common import default, emit_json, stderr_console
from hdrvid.cli_inspect import eval_command, info, models
from hdrvid.cli_train import simulate, train
from hdrvid.cli_weights import weights
from hdrvid.errors import HdrvidError
from hdrvid.exr import COMPRESSIONS
from hdrvid.job import CHUNK_FRAMES, ConvertOptions
from hdrvid.primaries import PRIMARIES
from hdrvid.process import tune_process
from hdrvid.render import CONVERT_FORMATS, RENDER_KINDS, VIDEO_FORMATS, RenderOptions, kinds_help
from hdrvid.tonemap import OPERATORS, operators_help

CODECS = ("h264", "hevc", "av1", "hevc_nvenc", "libx265")
FORCED_HEVC = ("hevc_nvenc", "libx265")  # hevc with the encoder chosen, not by CUDA


def _codec_help() -> str:
    """--codec's help: the codecs of each video format, its default first (render's table)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for kind, spec in VIDEO_FORMATS.items():
        codecs = tuple(c for c in spec.codecs if c in CODECS and c not in FORCED_HEVC)
        if codecs:
            groups.setdefault(codecs, []).append(kind)
    choices = "; ".join(f"{' and '.join(kinds)}: {codecs[0]} (default), {', '.join(codecs[1:])}"
                        for codecs, kinds in groups.items())
    return (f"Delivery video codec. {choices}. hevc is NVENC when CUDA is present, else x265; "
            f"{' / '.join(FORCED_HEVC)} force one.")


def _transfer_help() -> str:
    """--transfer's help: the formats that carry either transfer, and their default."""
    kinds = [kind for kind, spec in VIDEO_FORMATS.items() if len(spec.transfers) > 1]
    transfers = VIDEO_FORMATS[kinds[0]].transfers
    return (f"{' and '.join(kinds)}: carry {transfers[0]} (default) or "
            f"{', '.join(transfers[1:])}, in BT.2020.")


def _video_options(options: type):
    """Options shared by `convert --format sdr|hdr10|hlg|prores|dnxhr|all` and `tonemap`, with
    the defaults of ``options`` (ConvertOptions or RenderOptions)."""
    decorators = [
        click.option("--codec", type=click.Choice(CODECS), default=default(options, "codec"),
                     help=_codec_help()),
        click.option("--transfer", type=click.Choice(["pq", "hlg"]),
                     default=default(options, "transfer"), help=_transfer_help()),
        click.option("--crf", type=click.IntRange(0, 51), default=default(options, "crf"),
                     show_default=True, help="Video quality, lower is better."),
        click.option("--preset", type=click.Choice(["ultrafast", "superfast", "veryfast",
                                                    "faster", "fast", "medium", "slow",
                                                    "slower", "veryslow"]),
                     default=default(options, "preset"), show_default=True,
                     help="x264/x265 speed preset (SVT-AV1 and NVENC get the equivalent)."),
        click.option("--peak-nits", type=click.FloatRange(100, 10000),
                     default=default(options, "peak_nits"), show_default=True,
                     help="PQ (HDR10, and prores/dnxhr with PQ): cd/m² for 1.0, the clipping "
                          "point of the shortest exposure."),
        click.option("--audio/--no-audio", default=default(options, "audio"), show_default=True,
                     help="Copy the source's audio into videos."),
    ]

    def decorate(command):
        for option in reversed(decorators):
            command = option(command)
        return command
    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hdrvid")
def main() -> None:
    """Turn alternating-exposure video into linear HDR (OpenEXR sequences).

    \b
    Exit codes: 0 success, 1 conversion failed (one-line error on stderr), 2 usage error,
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM); written frames are always complete.
    """
    tune_process()  # this process is ours: tune it, before any command imports torch


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output folder (one subfolder per input when several are given), or, with "
                   "one video --format, the video file (a .mp4, .mkv, .mov or .mxf name).")
@click.option("-m", "--model", default=default(ConvertOptions, "model"), show_default=True,
              help="Reconstruction model (see `hdrvid models`).")
@click.option("--weights", default=None, metavar="PATH|official",
              help="Model weights: hdrvid .safetensors, or an official checkpoint (a folder of "
                   ".pth files for chen21, chen21-coarse, kalantari19), or `official`: the "
                   "authors' weights fetched by `hdrvid weights pull MODEL`. Default: the "
                   "weights shipped for the model, else the authors' if pulled.")
@click.option("--exposures", default=None, metavar="T0,T1[,T2]",
              callback=lambda ctx, param, value: _check_exposures(value),
              help="Relative exposure times of frames 0, 1[, 2], e.g. 1,8 (or 8,1 if frame 0 is "
                   "the long one).")
@click.option("--stops", type=float, default=None, help="Stops between neighbouring exposures "
              "(with --cycle); which frame is short is read from the video.")
@click.option("--cycle", type=click.IntRange(2, 3), default=None,
              help="Exposures per cycle, with --stops.")
@click.option("--exposure-file", type=click.Path(dir_okay=False), default=None,
              help="Sidecar file of exposures in stops: one per frame, or one per level.")
@click.option("--force-exposures", is_flag=True,
              default=default(ConvertOptions, "force_exposures"),
              help="Convert with the given exposures even where the video's frames contradict "
                   "them (otherwise refused).")
@click.option("--input-transfer", default=default(ConvertOptions, "input_transfer"),
              show_default=True, metavar="gamma2.2|srgb|linear|auto|FILE",
              help="Transfer curve of the input: gamma2.2 (as the models assume), srgb, linear, "
                   "auto (estimated from the video; see hdrvid info), or a table of the "
                   "inverse camera response (hdrvid calibrate writes one).")
@click.option("--device", default=default(ConvertOptions, "device"), show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(1),
              default=default(ConvertOptions, "batch_size"),
              help="Windows per model call (default 2 for merge; for hdrflow and fshdrv on the "
                   "CPU one per core, run at once; else 1; lowered to what fits in memory).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              default=default(ConvertOptions, "precision"), show_default=True,
              help="Network arithmetic (trained models): auto is bf16 on CPUs with native bf16, "
                   "fp16 on CUDA, else fp32.")
@click.option("--tile", type=click.IntRange(64), default=default(ConvertOptions, "tile"),
              metavar="PIXELS",
              help="Run frames as overlapping tiles of at most PIXELS×PIXELS (less memory; "
                   "results differ slightly at tile seams).")
@click.option("--yuv-on", type=click.Choice(["auto", "host", "device"]),
              default=default(ConvertOptions, "yuv_on"), show_default=True,
              help="Where Y'CbCr becomes R'G'B' (with the camera response): auto is the device "
                   "on a GPU (8x less to copy, a freer decode thread), else the host.")
@click.option("--float32", is_flag=True, default=default(ConvertOptions, "float32"),
              help="Write 32-bit float EXR (else half).")
@click.option("--compression", type=click.Choice(list(COMPRESSIONS)),
              default=default(ConvertOptions, "compression"),
              help="EXR compression (default piz, lossless; none for aces2065-1).")
@click.option("--primaries", type=click.Choice(list(PRIMARIES)),
              default=default(ConvertOptions, "primaries"),
              help="EXR primaries (default: the input's, rec709 or bt2020): acescg, or "
                   "aces2065-1 written as an ACES container (SMPTE ST 2065-4).")
@click.option("--frames", "max_frames", type=click.IntRange(1),
              default=default(ConvertOptions, "max_frames"),
              help="Convert only N frames (from --start, else the first).")
@click.option("--start", default=default(ConvertOptions, "start"), metavar="FRAME|TIME",
              callback=lambda ctx, param, value: _check_position(value, "--start"),
              help="Start at this frame: 60 (a frame number, from 0), 2.5s, or 00:00:02.5. "
                   "EXRs keep the video's frame numbers and timestamps; videos start at 0 with "
                   "the audio cut to match.")
@click.option("--duration", default=default(ConvertOptions, "duration"), metavar="FRAMES|TIME",
              callback=lambda ctx, param, value: _check_position(value, "--duration"),
              help="Convert this much from --start: 48 (frames), 2s, or 00:00:02 (instead of "
                   "--frames).")
@click.option("--scale", type=click.Choice(["native", "mid-grey"]),
              default=default(ConvertOptions, "scale"), show_default=True,
              help="EXR values: native (1.0 = the clipping point of the shortest exposure) or "
                   "mid-grey (one factor for the whole sequence puts its "
                   "log-average luminance at 0.18; measured on 8 frames spread over it, before "
                   "writing). The factor is in the EXR headers (hdrvid:scale) and hdrvid.json.")
@click.option("--overwrite", is_flag=True, default=default(ConvertOptions, "overwrite"),
              help="Replace the frames of an earlier run in the output folder.")
@click.option("--resume", is_flag=True, default=default(ConvertOptions, "resume"),
              help="Keep the frames an interrupted run finished (each read back in full) and "
                   "convert the rest; the result equals an uninterrupted run.")
@click.option("--continue-on-error", is_flag=True,
              help="With several inputs, record a failure and go on to the next input.")
@click.option("--format", type=click.Choice(list(CONVERT_FORMATS)),
              default=default(ConvertOptions, "format"), show_default=True,
              help=f"{kinds_help(CONVERT_FORMATS)}. "
                   "Videos are OUTPUT/<stem>-<format>.mp4 (.mov for prores, dnxhr), or the "
                   "file -o names (.mp4, .mkv, .mov, .mxf) for one video format.")
@click.option("--tonemap", type=click.Choice(list(OPERATORS)),
              default=default(ConvertOptions, "tonemap"),
              show_default=True,
              help=f"Tone-mapping operator of the SDR video. {operators_help()}.")
@_video_options(ConvertOptions)
@click.option("--workers", type=click.IntRange(1), default=default(ConvertOptions, "workers"),
              help="EXR writer threads (default: one per core).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
              metavar="[ADDRESS]", callback=lambda ctx, param, value: _ray_address(value),
              help="Run on Ray: alone, start or join Ray on this machine; --ray=auto or "
                   "--ray=ray://HEAD:10001 joins a cluster (outputs must be on shared storage). "
                   "Needs pip install 'hdrvid[ray]'.")
@click.option("--ray-workers", type=click.IntRange(1), default=None,
              help="Ray actors (default: one per GPU of the cluster, else one per CPU).")
@click.option("--chunk-frames", type=click.IntRange(1), default=CHUNK_FRAMES, show_default=True,
              help="Output frames per Ray chunk (rounded down to whole exposure cycles).")
@click.option("--profile", is_flag=True,
              help="Print the time of each stage (decode, model, write, ...) and the bottleneck.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON lines on stdout: progress events and one result per input.")
def convert(inputs: tuple[Path, ...], output: Path, quiet: bool, as_json: bool,
            continue_on_error: bool, ray_address: str | None, ray_workers: int | None,
            chunk_frames: int, profile: bool, **kwargs) -> None:
    """Convert alternating-exposure videos to linear HDR EXR sequences.

    Writes OUTPUT/frame_000000.exr, ... (half float, linear Rec.709, 1.0 = the clipping point of
    the shortest exposure) and OUTPUT/hdrvid.json (input, model, exposures, timestamps).
    Exposures come from --exposures, --stops/--cycle, --exposure-file, or are detected.

    \b
    Exit codes: 0 every input converted; 1 an input failed (with --continue-on-error: some
    inputs failed, the others were converted); 2 usage error; 130 / 143 interrupted.
    """
    from hdrvid.engine import LocalEngine

    if kwargs.get("max_frames") is not None and kwargs.get("duration") is not None:
        raise click.BadParameter("--frames and --duration both say how much to convert; give "
                                 "one", param_hint="--duration")
    options = ConvertOptions(**kwargs)  # every default is the dataclass's own
    signal.signal(signal.SIGTERM, _raise_terminated)
    if ray_address is None:
        engine = LocalEngine()  # one model load for every input of a batch
    else:
        from hdrvid.cluster import RayEngine

        try:
            engine = RayEngine(None if ray_address == "local" else ray_address, ray_workers,
                               chunk_frames)
        except HdrvidError as exc:
            raise click.ClickException(str(exc)) from exc
    try:
        _convert_all(inputs, output, options, engine, quiet, as_json, continue_on_error, profile)
    finally:
        if ray_address is not None:
            engine.close()


def _check_exposures(value: str | None) -> str | None:
    """A malformed --exposures is a usage error (exit 2), found before anything is read."""
    if value is not None:
        from hdrvid.exposure import parse_exposures

        try:
            parse_exposures(value)
        except HdrvidError as exc:
            raise click.BadParameter(str(exc), param_hint="--exposures") from exc
    return value


def _check_position(value: str | None, option: str) -> str | None:
    """A malformed --start or --duration is a usage error (exit 2), found before anything is
    read."""
    if value is not None:
        from hdrvid.video import parse_position

        try:
            parse_position(value, option)
        except HdrvidError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from exc
    return value


def _ray_address(value: str | None) -> str | None:
    """--ray's value: it must look like an address, so that an input after a bare --ray is not
    taken for one."""
    if value is None or value in ("local", "auto") or value.startswith("ray://") or \
            re.fullmatch(r"[\w.-]+:\d+", value):
        return value
    raise click.BadParameter(f"{value!r} is not a Ray address (auto, ray://HEAD:PORT or "
                             "HOST:PORT); write --ray=ADDRESS, or put a bare --ray after the "
                             "inputs", param_hint="--ray")


def _convert_all(inputs: tuple[Path, ...], output: Path, options, engine, quiet: bool,
                 as_json: bool, continue_on_error: bool, profile: bool) -> None:
    from hdrvid.conversion import convert as run_convert
    from hdrvid.conversion import output_layout
    from hdrvid.render import VIDEO_SUFFIXES

    if len(inputs) > 1 and output.suffix.lower() in VIDEO_SUFFIXES:
        raise click.BadParameter(f"{output} names one video, but {len(inputs)} inputs were "
                                 "given; name a folder (one subfolder per input)",
                                 param_hint="-o")
    folders = input_folders(inputs)
    outcomes: list[tuple[Path, object]] = []  # (input, Report or the error message)
    for path, folder in zip(inputs, folders):
        out_dir = output / folder if len(inputs) > 1 else output
        try:
            with _progress_reporter(path, quiet or as_json, as_json) as progress:
                report = run_convert(path, out_dir, options, progress=progress, engine=engine)
        except KeyboardInterrupt as exc:
            frames_dir = output_layout(path, out_dir, options.format)[1]
            if frames_dir.is_dir():
                click.echo(f"Interrupted: {path}: the frames in {frames_dir} are complete; its "
                           "hdrvid.json says the run is incomplete (finish it with --resume)",
                           err=True)
            else:  # the videos were streamed from the model: nothing to resume
                click.echo(f"Interrupted: {path}: nothing was kept (the video is encoded as the "
                           "frames come); run it again, or convert to EXRs (--format exr or "
                           "all), which --resume can finish", err=True)
            raise SystemExit(143 if isinstance(exc, _Terminated) else 130) from None
        except HdrvidError as exc:
            if as_json:
                emit_json({"event": "error", "input": str(path), "error": str(exc)})
            if not continue_on_error:
                raise click.ClickException(str(exc)) from exc
            click.echo(f"Error: {exc}", err=True)
            outcomes.append((path, str(exc)))
            continue
        outcomes.append((path, report))
        if as_json:
            emit_json({"event": "result", **report.as_dict()})
        elif not quiet:
            for warning in report.warnings:
                click.echo(f"warning: {warning}", err=True)
            click.echo(str(report), err=True)
            if report.workers:
                _print_workers(report.workers)
        if profile and not as_json:
            _print_profile(report)
    if len(inputs) > 1 and not (quiet or as_json):
        _print_summary(outcomes)
    if any(isinstance(outcome, str) for _, outcome in outcomes):
        raise SystemExit(1)


def input_folders(inputs: tuple[Path, ...]) -> list[str]:
    """Each input's subfolder name: its stem, and for a stem seen before the stem with -2, -3,
    ... in the order given (a/still.mp4, b/still.mp4 -> still, still-2), so that no input
    lands in another's folder."""
    taken: set[str] = set()
    names = []
    for path in inputs:
        name, n = path.stem, 1
        while name in taken:
            n += 1
            name = f"{path.stem}-{n}"
        taken.add(name)
        names.append(name)
    return names


def _print_summary(outcomes: list[tuple[Path, object]]) -> None:
    from rich.table import Table

    table = Table("input", "result", "frames", "fps", title="hdrvid convert")
    for path, outcome in outcomes:
        if isinstance(outcome, str):
            table.add_row(str(path), f"[red]failed[/]: {outcome}", "-", "-")
        else:
            table.add_row(str(path), "converted", str(outcome.frames), f"{outcome.fps:.2f}")
    stderr_console().print(table)


# what each stage of Report.stages measures, in the order the data flows
STAGES = {"decode": "decoding and Y'CbCr -> R'G'B' (decode thread)",
          "prepare": "camera response, host -> device (decode thread)",
          "model": "the model on batches of windows (main thread)",
          "fetch": "device -> host (main thread)",
          "write": "EXR compression and I/O, or video encoding when streamed (summed)",
          "decode_wait": "main thread waiting for decoded frames",
          "write_wait": "main thread held back by full writers or encoders",
          **{f"encode_{kind}": f"{kind} video encoding" for kind in VIDEO_FORMATS}}


def _print_profile(report) -> None:
    """--profile: seconds and ms per frame of every stage, and what limits the run."""
    from rich.table import Table

    table = Table("stage", "seconds", "ms / frame", "what it measures",
                  title=f"{report.input.name}: {report.frames} frames in {report.seconds:.2f} s "
                        f"({report.fps:.2f} fps)")
    for stage, seconds in report.stages.items():
        per_frame = 1000 * seconds / report.frames if report.frames else 0.0
        table.add_row(stage, f"{seconds:.2f}", f"{per_frame:.1f}", STAGES.get(stage, ""))
    console = stderr_console()
    console.print(table)
    if limit := report.bottleneck():
        sustained = ", ".join(f"{part} {fps:.1f}" for part, fps in report.throughput().items())
        console.print(f"bottleneck: {limit} (fps each part sustains alone: {sustained})")
    if report.batch_size:
        threads = report.threads_per_window
        console.print(f"model: {report.batch_size} window(s) per call"
                      + (", run at once" if report.parallel_windows else "")
                      + (f", {threads} torch thread(s) each" if threads else ""))


def _print_workers(workers: dict[str, dict]) -> None:
    from rich.table import Table

    table = Table("worker", "frames", "busy s", "frames/s", title="Ray workers")
    for name, row in sorted(workers.items()):
        fps = row["frames"] / row["seconds"] if row["seconds"] else 0.0
        table.add_row(name, str(row["frames"]), f"{row['seconds']:.1f}", f"{fps:.2f}")
    stderr_console().print(table)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so the run stops as cleanly as on Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


class _progress_reporter:
    """A rich progress bar (frames, fps, ETA), JSON progress lines, or nothing."""

    def __init__(self, path: Path, silent: bool, as_json: bool):
        self.path, self.silent, self.as_json = path, silent, as_json
        self.bar = None

    def __enter__(self):
        if self.as_json:
            return lambda p: emit_json({"event": "progress", "input": str(self.path),
                                         "stage": p.stage, "done": p.done, "total": p.total,
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
                                TimeRemainingColumn(), console=stderr_console())
            self.bar.start()
            self.task = self.bar.add_task(self.path.name, total=None, fps="-")
        name = self.path.name if p.stage == "convert" else f"{self.path.name} → {p.stage}"
        self.bar.update(self.task, description=name, completed=p.done, total=p.total,
                        fps=f"{p.done / p.seconds:.1f}" if p.seconds else "-")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="A .mp4/.mkv/.mov video (.mov/.mxf for dnxhr), a .png (a one-frame "
                   "SOURCE), or a folder for PNGs; other media names (.avi, ...) are refused.")
@click.option("--format", "kind", type=click.Choice(list(RENDER_KINDS)), default=None,
              help=f"{kinds_help(RENDER_KINDS)}. Default: sdr for a video name, png for a "
                   "folder.")
@click.option("--tonemap", "--operator", "operator", type=click.Choice(list(OPERATORS)),
              default=default(RenderOptions, "operator"), show_default=True,
              help="Tone-mapping operator, as convert --tonemap; --operator is the same "
                   "option's old name.")
@click.option("--exposure", type=float, default=default(RenderOptions, "exposure"),
              show_default=True, help="Extra exposure in stops.")
@click.option("--time-constant", type=click.FloatRange(0),
              default=default(RenderOptions, "time_constant"),
              help="Let the exposure adapt over this many seconds (0: per frame). Default: "
                   "one exposure for the whole sequence, from its log-average luminance.")
@click.option("--preserve", type=click.Choice(["luminance", "channels"]),
              default=default(RenderOptions, "preserve"), show_default=True,
              help="luminance: tone-map luminance and keep hues; channels: each channel.")
@_video_options(RenderOptions)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def tonemap(source: Path, output: Path, kind: str | None, overwrite: bool, quiet: bool,
            **kwargs) -> None:
    """Render an EXR sequence (hdrvid output folder, glob or file) or an HDR10 / HLG video as
    video or PNGs.

    Frame rate and timestamps come from SOURCE/hdrvid.json when present, and so does the video
    whose audio is copied; a video SOURCE keeps its own (PQ is read with 1.0 = --peak-nits).
    """
    from hdrvid.job import ProgressEvent
    from hdrvid.render import render

    options = RenderOptions(**kwargs)  # every default is the dataclass's own
    started = time.perf_counter()
    if output.exists() and not overwrite and (output.is_file() or any(output.glob("*.png"))):
        raise click.ClickException(f"{output}: exists; pass --overwrite to replace it")
    try:
        with _progress_reporter(output, quiet, False) as progress:
            on_frame = (lambda done: progress(ProgressEvent(
                done, None, time.perf_counter() - started, "render"))) if progress else None
            warnings = render(source, output, kind, options, on_frame)
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if not quiet:
        click.echo(f"{source} -> {output}", err=True)


main.add_command(weights)
main.add_command(train)
main.add_command(simulate)
main.add_command(calibrate)
main.add_command(info)
main.add_command(models)
main.add_command(eval_command)


if __name__ == "__main__":
    sys.exit(main())
