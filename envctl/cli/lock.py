"""`envctl lock`: write, check and upgrade lockfiles."""

from typing import List

import typer

from envctl import console
from envctl.cli.progress import activity


def register(app: typer.Typer) -> None:
    app.command("lock")(lock)


def lock(
    names: List[str] = typer.Argument(None, help="Images to lock (default with --check or --all: every image)."),
    all_images: bool = typer.Option(False, "--all", help="Lock every image in the catalog."),
    check: bool = typer.Option(False, "--check", help="Only check: exit 1 when a lock is stale or missing."),
    upgrade: List[str] = typer.Option([], "--upgrade", "-u", metavar="PKG",
                                      help="Re-resolve this package, keep every other pin."),
    upgrade_all: bool = typer.Option(False, "--upgrade-all", help="Resolve the pip packages afresh: newest "
                                     "allowed versions (by default a re-lock keeps the current pip pins the "
                                     "spec still allows; conda packages are always solved afresh)."),
    force: bool = typer.Option(False, "--force", help="Overwrite a lockfile envctl did not write."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Solve an image spec into locks/NAME.conda-lock.yml: every package pinned with its sha256."""
    from envctl.catalog import find_project
    from envctl.errors import EnvctlError, UsageError

    project = find_project()
    if not names and not (all_images or check):
        raise UsageError("name an image, or pass --all", hint="envctl catalog lists the images")
    if upgrade and upgrade_all:
        raise UsageError("--upgrade-all already re-resolves every package", hint="pass one of --upgrade PKG or --upgrade-all")
    if check and (upgrade or force or upgrade_all):
        flag = "--upgrade" if upgrade else "--upgrade-all" if upgrade_all else "--force"
        raise UsageError(f"--check only reads the locks: it cannot take {flag}",
                         hint="run envctl lock --check NAME, or envctl lock NAME --upgrade PKG to change a lock")
    specs = [project.resolve(n) for n in names] if names else project.specs()
    if check:
        _check(project, specs, json_out)
        return
    if upgrade and len(specs) != 1:
        raise UsageError("--upgrade works on one image at a time", hint="envctl lock NAME --upgrade PKG")

    from envctl.catalog import lock_into

    summaries, failures = [], []
    for spec in specs:
        try:
            with activity(f"locking {spec.name}") as progress:
                summary = lock_into(project, spec, upgrade=tuple(upgrade), upgrade_all=upgrade_all, force=force,
                                    progress=progress)
        except EnvctlError as exc:
            if len(specs) == 1:
                raise
            failures.append({"image": spec.name, "error": str(exc), "hint": exc.hint,
                             "exit_code": exc.exit_code})
            continue
        summaries.append(summary)
        if not json_out:
            show_locked(summary)
    if json_out:
        console.print_json({"locked": summaries, "failed": failures})
    elif len(specs) > 1:
        _summarize(summaries, failures)
    if failures:
        raise typer.Exit(1)


def show_locked(summary: dict) -> None:
    """What a lock wrote, in a line (two when it also kept a derived spec)."""
    if summary["spec_written"]:
        console.status(f"wrote {summary['spec_written']} (derived from the release matrix: review and "
                       f"commit it with the lock)")
    counts = summary["platforms"]
    text = ", ".join(f"{pl}: {c['conda']} conda + {c['pip']} pip"
                     + (f", {c['bytes'] / 1e6:.0f} MB" if c["bytes"] else "") for pl, c in counts.items())
    verb = "wrote" if summary["changed"] else "unchanged"
    console.status(f"{verb} {summary['path']} ({text}; {summary['seconds']}s)")


def _summarize(summaries: list[dict], failures: list[dict]) -> None:
    """The failures grouped by their error (one unreachable channel is one line), then the counts."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for f in failures:
        # The same cause for several images reads the same once the image's own name is taken out.
        key = (f["error"].replace(f["image"], "NAME"), f["hint"].replace(f["image"], "NAME") if f["hint"] else None)
        groups.setdefault(key, []).append(f["image"])
    for (message, hint), images in groups.items():
        if len(images) == 1:
            console.error(f"{images[0]}: {message.replace('NAME', images[0])}",
                          hint.replace("NAME", images[0]) if hint else None)
        else:
            console.error(f"{len(images)} images ({', '.join(images)}): {message}", hint)
    changed = sum(1 for s in summaries if s["changed"])
    console.status(f"{changed} locked, {len(summaries) - changed} unchanged, {len(failures)} failed")


def _check(project, specs, json_out: bool) -> None:
    from envctl.lock.state import lock_state

    states = [(s, lock_state(s, project.lock_path(s.name))) for s in specs]
    bad = [(s, st) for s, st in states if not st.current]
    if json_out:
        console.print_json([{"image": s.name, "state": st.state} for s, st in states])
    else:
        for spec, st in states:
            line = console.styled(f"{st.state:<11}", console.STATUS_STYLES.get(st.state))
            line.append(f" {spec.name}")
            if st.state == "stale":
                line.append(f"  (images/{spec.name}.yaml changed since locks/{st.path.name} was made: "
                            f"run envctl lock {spec.name})")
            elif st.state == "edited":
                line.append(f"  (locks/{st.path.name} was changed by hand: run envctl lock {spec.name})")
            elif st.state == "not locked":
                line.append(f"  (run envctl lock {spec.name})")
            console.out.print(line)
    if bad:
        raise typer.Exit(1)
