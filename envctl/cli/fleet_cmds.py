"""`envctl fleet`: image x target, verified / failed / never, from the records."""

from pathlib import Path
from typing import Optional

import typer

from envctl import console


def register(app: typer.Typer) -> None:
    app.command("fleet")(fleet)


def fleet(
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    html_file: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML page."),
) -> None:
    """Image x target (GPU, driver): the newest verification on each, when, and compile speedups."""
    from envctl.catalog import find_project
    from envctl.cli.tables import render_grid
    from envctl.fleetview import cell_text, fleet_view, render_html, target_label
    from envctl.records import Records

    data = fleet_view(find_project(), Records())
    if html_file is not None:
        console.write_output(html_file, render_html(data))
    if json_out:
        console.print_json(data)
        return
    styles = {"verified": "green", "failed": "red", "never": None}
    rows = [[image, *(console.styled(cell_text(data["cells"][image][t["name"]]),
                                     styles[data["cells"][image][t["name"]]["status"]]) for t in data["targets"])]
            for image in data["images"]]
    if not data["targets"]:
        console.status("no verification recorded yet: envctl verify NAME (--target T, --all-targets for fleet.yaml's)")
    console.out.print(render_grid("image", [target_label(t) for t in data["targets"]], rows, width=console.out.width))
