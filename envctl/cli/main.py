"""Entry point: the typer app, its command groups, and the top-level error handler."""

from __future__ import annotations

import sys

import typer

from envctl import __version__
from envctl.cli import bench_cmds
from envctl.cli import build as build_cmds
from envctl.cli import cache_cmds
from envctl.cli import catalog as catalog_cmds
from envctl.cli import compat_cmds
from envctl.cli import engine_cmds
from envctl.cli import lock as lock_cmds
from envctl.cli import setup_cmds
from envctl.cli import verify as verify_cmds

app = typer.Typer(
    name="envctl",
    help="Reproducible PyTorch+CUDA environments: catalog, lock, build, verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"envctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Reproducible PyTorch+CUDA environments for ML teams."""


catalog_cmds.register(app)
lock_cmds.register(app)
engine_cmds.register(app)
build_cmds.register(app)
verify_cmds.register(app)
setup_cmds.register(app)
compat_cmds.register(app)
cache_cmds.register(app)
bench_cmds.register(app)


def run() -> None:
    """Console-script entry: envctl errors become one line, a hint and an exit code."""
    from envctl.errors import EnvctlError

    try:
        app()
    except EnvctlError as exc:
        from envctl import console

        console.error(str(exc), exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
