"""`envctl base`: make the local Debian base image."""

import typer

from envctl import console
from envctl.cli.progress import activity


def register(app: typer.Typer) -> None:
    app.command("base")(base)


def base(
    ref: str = typer.Option(None, "--tag", help="Name of the base image to make (default: envctl/debian:SUITE)."),
    suite: str = typer.Option("bookworm", help="Debian suite (bookworm: Python 3.11; trixie: Python 3.13)."),
    mirror: str = typer.Option("http://deb.debian.org/debian", help="Debian mirror."),
    no_toolchain: bool = typer.Option(False, "--no-toolchain",
                                      help="Leave out g++ and python3-dev (torch.compile will not work)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Make it again even if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Make the local Debian base image (debootstrap + import) used where no registry can be reached."""
    from envctl.base import make_base, plan_base
    from envctl.engine import Engine

    ref = ref or f"envctl/debian:{suite}"
    engine = Engine.connect()
    plan = plan_base(ref=ref, suite=suite, mirror=mirror, toolchain=not no_toolchain)
    with activity(f"making base {ref}") as progress:
        result = make_base(engine, plan, rebuild=rebuild, progress=progress)
    if json_out:
        console.print_json(result.__dict__)
        return
    verb = "made" if result.created else "exists:"
    console.status(f"{verb} {result.ref} ({result.image_id.split(':')[-1][:12]}, "
                   f"{result.size / 1e6:.0f} MB, {result.seconds:.1f}s)")
