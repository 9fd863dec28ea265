"""What the CLI modules share: JSON lines on stdout and rich consoles."""

from __future__ import annotations

import json

import click


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
