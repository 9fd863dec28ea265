"""`hdrvid calibrate` and the camera-response lines of `hdrvid info`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from hdrvid.errors import HdrvidError, OutputError


@click.command()
@click.argument("input", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Table file to write (code linear), for --input-transfer FILE.")
@click.option("--exposures", default=None, metavar="T0,T1[,T2]",
              help="Video: relative exposure times of frames 0, 1[, 2] (as convert).")
@click.option("--stops", type=float, default=None, help="Video: stops between exposures.")
@click.option("--cycle", type=click.IntRange(2, 3), default=None, help="Video: with --stops.")
@click.option("--exposure-file", type=click.Path(dir_okay=False), default=None,
              help="Video: sidecar file of exposures in stops (as convert).")
@click.option("--exposure-times", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Still stack: 'IMAGE SECONDS' lines (default FOLDER/exposures.txt).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as one JSON object.")
def calibrate(input: Path, output: Path, exposures: str | None, stops: float | None,
              cycle: int | None, exposure_file: str | None, exposure_times: Path | None,
              overwrite: bool, as_json: bool) -> None:
    """Recover the camera's inverse response and save it for --input-transfer OUTPUT.

    INPUT is an alternating-exposure video (the curve is estimated as --input-transfer auto
    does; give the exposures if you know them, detected ratios assume gamma 2.2) or a folder
    of registered bracketed stills with an exposures file of 'IMAGE SECONDS' lines (seconds
    may be fractions such as 1/64; Debevec-Malik calibration). See docs/response.md.
    """
    from hdrvid.calibrate import estimate_from_video
    from hdrvid.stills import calibrate_stack

    if output.exists() and not overwrite:
        raise click.ClickException(f"{output}: exists; pass --overwrite to replace it")
    try:
        if input.is_dir():
            estimate = calibrate_stack(input, exposure_times)
        else:
            from hdrvid.exposure import ExposureHints, resolve_exposures
            from hdrvid.response import Response
            from hdrvid.video import probe

            video = probe(input)
            # given exposures are what calibration needs; the video's steps, measured as if it
            # were gamma 2.2, may well contradict them: that is what a curve is recovered for
            hints = ExposureHints(exposures, stops, cycle, exposure_file, force=True)
            pattern, _ = resolve_exposures(video, hints, Response())
            estimate = estimate_from_video(video, pattern)
        _write_atomic(output, estimate.table())
    except HdrvidError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"input": str(input), "output": str(output),
                               **estimate.as_dict()}))
        return
    for name, value in response_rows(estimate):
        click.echo(f"{name}: {value}")
    for note in estimate.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {output} (use: hdrvid convert --input-transfer {output} ...)", err=True)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the response table ({exc.strerror}); choose "
                          "another path") from exc


def response_rows(estimate) -> list[tuple[str, str]]:
    """Lines describing an `hdrvid.calibrate.Estimate`: the curve at a few codes (and gamma
    2.2 there, for comparison), the fit's residual and confidence."""
    points = "  ".join(f"{v:g}→{f:.3g}" for v, f in estimate.samples())
    gamma = "  ".join(f"{v:g}→{v**2.2:.3g}" for v, _ in estimate.samples())
    verdict = ("looks like gamma 2.2" if estimate.looks_like_gamma22() else
               "does not look like gamma 2.2")
    kept = ", gamma 2.2 kept: a fitted curve explains it no better" if estimate.kept_gamma else ""
    floor = (f"; black floor: codes up to {estimate.curve.black:.3f} are black"
             if estimate.curve.black else "")
    fit = (f"residual {estimate.residual_stops:.3f} stops, {estimate.equations} equations over "
           f"{estimate.coverage:.0%} of the code range, confidence {estimate.confidence:.2f}"
           if estimate.equations else "none (gamma 2.2 above the black floor)")
    return [("response", f"{estimate.curve.spec} (from the {estimate.source}{kept})"),
            ("curve", points), ("gamma 2.2", gamma),
            ("fit", (f"{fit}; differs from gamma 2.2 by up to "
                     f"{estimate.gamma22_difference():.2f} stops{floor}: {verdict}"))]


def info_response(video, pattern, input_transfer: str, warnings: list[str]
                  ) -> tuple[dict | None, list[tuple[str, str]]]:
    """`hdrvid info`: the curve estimated from the video (as a dict and as table rows), with
    a warning when the footage is converted as gamma 2.2 but does not look like it."""
    from hdrvid.calibrate import CalibrationError, estimate_from_video

    try:
        estimate = estimate_from_video(video, pattern)
    except CalibrationError as exc:
        return None, [("response", f"not estimated: {exc}")]
    if input_transfer == "gamma2.2" and not estimate.looks_like_gamma22():
        warnings.append(
            f"the footage does not look like gamma 2.2 (its estimated curve differs by up to "
            f"{estimate.gamma22_difference():.1f} stops); convert with --input-transfer auto, "
            "or with the camera's curve (hdrvid calibrate)")
    warnings += estimate.notes
    return estimate.as_dict(), response_rows(estimate)
