"""`hdrvid weights list|pull|import`: the shipped and the authors' weights."""

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
