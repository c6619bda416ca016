"""`envctl cache export/import`: the verified package cache as a portable mirror."""

from pathlib import Path

import typer

from envctl import console

cache_app = typer.Typer(help="Carry locked packages to machines that cannot reach the indexes.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


@cache_app.command("export")
def export(name: str = typer.Argument(..., help="Image whose locked packages to export."),
           dest: str = typer.Argument(..., help="Folder to write (a flat mirror: pip find-links).")) -> None:
    """Copy every package an image's lock names into a folder, verified by sha256."""
    from envctl.cache import PackageCache, export_mirror
    from envctl.catalog import find_project
    from envctl.lock import require_current_lock

    folder = _folder(dest, "the folder to export into", example="./mirror")
    project = find_project()
    spec = project.resolve(name)
    lock = require_current_lock(spec, project.lock_path(spec.name))
    files = [(p.url, p.sha256, p.filename) for p in lock.pip] + [(p.url, p.sha256, p.filename) for p in lock.conda]
    count = export_mirror(PackageCache(), files, folder, mirrors=tuple(spec.pip_index.find_links))
    console.status(f"exported {count} packages of {spec.name} to {folder}")


@cache_app.command("import")
def import_(source: str = typer.Argument(..., help="A folder written by envctl cache export.")) -> None:
    """Put a mirror folder's packages into this machine's cache (builds then need no index)."""
    from envctl.cache import PackageCache, import_mirror

    folder = _folder(source, "the mirror folder to import", example="./mirror")
    cache = PackageCache()
    count = import_mirror(cache, folder)
    console.status(f"imported {count} packages into {cache.root}")


def _folder(given: str, what: str, *, example: str) -> Path:
    """An empty argument ('' from an unset shell variable) would mean the current folder: refused."""
    if not given.strip():
        from envctl.errors import UsageError

        raise UsageError(f"{what} is empty ('')", hint=f"name the folder, e.g. {example}")
    return Path(given)
