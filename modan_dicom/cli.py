"""The `modan-dicom` command line: parse options, call one library function, render with rich.

No logic lives here. Every `ModanError` the library raises becomes one line on stderr and exit
status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from . import __version__
from .errors import ModanError

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def fail(message: str) -> NoReturn:
    """Print one error line and exit with status 2."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    sys.exit(2)


class ModanGroup(click.Group):
    """A click group that renders library errors as one line (exit 2) unless --debug is given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModanError as exc:
            if ctx.params.get("debug") or (ctx.obj or {}).get("debug"):
                raise
            fail(str(exc))
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)


@click.group(cls=ModanGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="modan-dicom")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Turn PACS metadata into contrastive pretraining targets, pretrain, and benchmark."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def existing_path(value: str) -> Path:
    """Helper for commands: a path that must exist (raises the one-line error otherwise)."""
    path = Path(value)
    if not path.exists():
        from .errors import SourceError

        raise SourceError(f"{value}: no such file or folder")
    return path


# ---- commands (one block per stage; each calls one library function) ----
