"""`envctl matrix refresh`: bring the release matrix up to date from PyPI (and the PyTorch index)."""

from pathlib import Path
from typing import Optional

import typer

from envctl import console

matrix_app = typer.Typer(help="The PyTorch release matrix envctl checks every spec against.",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(matrix_app, name="matrix")


@matrix_app.command("refresh")
def refresh(
    check: bool = typer.Option(False, "--check", help="Only compare: exit 1 when the file is stale (CI)."),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON (diff, changes, notes)."),
    path: Optional[Path] = typer.Option(None, "--file", help="The data file (default: envctl's own)."),
    index_url: str = typer.Option("https://pypi.org/simple", "--index-url", metavar="URL",
                                  help="Simple index to read torch, torchvision and torchaudio from."),
    pytorch_index: str = typer.Option("https://download.pytorch.org/whl", "--pytorch-index", metavar="URL",
                                      help="PyTorch wheel index whose local versions (+cu128) list the variants; "
                                           "'none' to skip."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Read everything again (no cached pages or metadata)."),
) -> None:
    """Bring the release matrix up to date from the package indexes.

    Reads every torch release since 2.0, shows the changes as a diff, then rewrites the data file
    atomically (curated fields and comments kept)."""
    from envctl.fsio import default_root
    from envctl.pypi.refresh import apply, plan_refresh

    plan = plan_refresh(path=path, index_url=index_url,
                        pytorch_index=None if pytorch_index == "none" else pytorch_index,
                        cache_dir=None if no_cache else default_root() / "pypi")
    written = False if check else apply(plan)
    if json_out:
        console.print_json(plan.as_dict() | {"written": written})
    else:
        diff = plan.diff()
        if diff:
            console.out.print(diff, end="")
        for note in plan.notes:
            console.status(f"note: {note}")
        reads = ", ".join(f"{n} {src}" for src, n in sorted(plan.reads.items()))
        if check:
            verb = "stale" if plan.stale else "current"
            console.status(f"{verb} {plan.path} ({len(plan.changes)} changes; metadata: {reads})")
        else:
            verb = "wrote" if written else "unchanged"
            console.status(f"{verb} {plan.path} ({len(plan.changes)} changes; metadata: {reads})")
    if check and plan.stale:
        raise typer.Exit(1)
