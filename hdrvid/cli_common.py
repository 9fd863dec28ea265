"""What the CLI modules share: option defaults read from the library's option dataclasses,
JSON lines on stdout and rich consoles."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click


def default(options: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``options`` (e.g. ConvertOptions, "crf"):
    click options take their defaults from here, so each default is written once, in the
    library, and `--help` shows the value the library uses."""
    for field in dataclasses.fields(options):
        if field.name == name:
            if field.default is dataclasses.MISSING:
                raise TypeError(f"{options.__name__}.{name} has no plain default")
            return field.default
    raise AttributeError(f"{options.__name__} has no field {name!r}")


class LibraryDefault(click.Option):
    """An option whose default is a field of an options dataclass imported only when the
    command runs or shows its help: for dataclasses whose module imports torch (TrainOptions),
    which `hdrvid` must not import on start, before `main` tunes the process."""

    def __init__(self, *args, options: Callable[[], type], **kwargs):
        super().__init__(*args, **kwargs)
        self.options = options

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        return default(self.options(), self.name)


def emit_json(data: dict) -> None:
    """One JSON object on one line of stdout (--json)."""
    click.echo(json.dumps(data))


def stdout_console():
    from rich.console import Console

    return Console()


def stderr_console():
    """For progress, warnings and summaries: stdout stays free for results."""
    from rich.console import Console

    return Console(stderr=True)
