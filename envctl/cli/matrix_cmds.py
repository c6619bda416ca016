"""`envctl matrix refresh`: bring the release matrix up to date from PyPI (and the PyTorch index);
`envctl matrix verify` and `envctl matrix report`: the sweep over it (envctl.sweep) and its dashboard."""

import re
from pathlib import Path
from typing import Optional

import typer

from envctl import console
from envctl.cli.where_opts import (ACCOUNT_OPT, ALL_TARGETS_OPT, CONSTRAINT_OPT, CONTEXT_OPT, GPU_PRODUCT_OPT,
                                   GRES_OPT, NAMESPACE_OPT, NODELIST_OPT, ON_OPT, PARTITION_OPT, REGISTRY_OPT,
                                   TARGET_OPT, TIME_OPT, WAIT_OPT, chosen_targets)

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


def _range_options(since: str, until: Optional[str], variants: str, pythons: list[str],
                   targets: tuple = (None,)):
    """The combinations the range names (times each target name), or the usage error that says
    what is wrong."""
    from envctl.errors import UsageError
    from envctl.matrix import load_matrix
    from envctl.sweep.plan import VARIANT_CHOICES, check_variants, combinations

    for flag, value in (("--since", since), ("--until", until)) + tuple(("--python", p) for p in pythons):
        if value is not None and not re.fullmatch(r"\d+\.\d+", value):
            raise UsageError(f"{flag} {value}: not a version X.Y", hint="e.g. --since 2.0, --python 3.11")
    problem = check_variants(variants)
    if problem:
        raise UsageError(problem, hint=f"use {VARIANT_CHOICES}")
    combos = combinations(load_matrix(), since=since, until=until, variants=variants, pythons=pythons,
                          targets=targets)
    if not combos:
        raise UsageError(f"no torch release x variant in {since} .. {until or 'newest'} for --variants {variants}",
                         hint="envctl show pytorch-X.Y-VARIANT says which variants a release has")
    return combos


def _write_html(folder: Path, cells, *, note: str, target: Optional[str] = None) -> None:
    from envctl.fsio import atomic_write
    from envctl.sweep.html import render_dashboard

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "index.html", render_dashboard(cells, note=note, target=target))
    console.status(f"wrote {folder / 'index.html'}")


SINCE = typer.Option("2.0", "--since", metavar="X.Y", help="Oldest torch release.")
UNTIL = typer.Option(None, "--until", metavar="X.Y", help="Newest torch release (default: the newest).")
VARIANTS = typer.Option("default", "--variants", help="default (PyPI's wheel), all, or a list: cpu,cu126.")
PYTHONS = typer.Option([], "--python", metavar="X.Y",
                       help="Only combinations whose spec pins this Python (repeatable; another Python is a grey "
                            "\"no spec\" cell: derived specs take the base's Python 3.11).")


@matrix_app.command("verify")
def verify(
    since: str = SINCE, until: Optional[str] = UNTIL, variants: str = VARIANTS, pythons: list[str] = PYTHONS,
    gpus: str = typer.Option("none", "--gpus", help="all, none, or a GPU count, for every probe."),
    keep: Optional[int] = typer.Option(None, "--keep", min=0, metavar="N",
                                       help="Keep at most N of the images this run built (oldest go first)."),
    max_disk: Optional[float] = typer.Option(None, "--max-disk", min=0, metavar="GB",
                                             help="Give back images this run built (oldest first) so that they, "
                                                  "the package cache and the next build fit in GB; then the "
                                                  "engine's unused build cache, which keeps their layers; then "
                                                  "cached packages no combination left and no committed lock "
                                                  "needs (least recently used first)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Redo failed combinations of an unchanged lock."),
    html: Optional[Path] = typer.Option(None, "--html", metavar="DIR", help="Write the dashboard to DIR/index.html."),
    json_out: bool = typer.Option(False, "--json", help="Print every combination's cell and the disk given back "
                                                        "as JSON."),
    on: Optional[str] = ON_OPT,
    targets: Optional[list[str]] = TARGET_OPT,
    all_targets: bool = ALL_TARGETS_OPT,
    registry: Optional[str] = REGISTRY_OPT,
    partition: Optional[str] = PARTITION_OPT,
    gres: Optional[str] = GRES_OPT,
    constraint: Optional[str] = CONSTRAINT_OPT,
    nodelist: Optional[str] = NODELIST_OPT,
    time_limit: Optional[str] = TIME_OPT,
    account: Optional[str] = ACCOUNT_OPT,
    wait: Optional[float] = WAIT_OPT,
    context: Optional[str] = CONTEXT_OPT,
    namespace: Optional[str] = NAMESPACE_OPT,
    gpu_product: Optional[str] = GPU_PRODUCT_OPT,
) -> None:
    """Lock, build and verify every real torch x variant in a range.

    A combination already verified for its lock hash is not redone (Ctrl-C, then the same
    command, resumes); one that fails never stops the others.  On fleet targets (--on slurm,
    --on kubernetes, --target, --all-targets) each image built is pushed to --registry and
    verified on every target, each recorded with its target.

    Exit 0 when nothing failed (grey cells, which cannot be made here, do not fail it), 1 when a
    combination failed, 2 on bad input."""
    from envctl.catalog import find_project
    from envctl.probe import check_gpus
    from envctl.sweep.run import run_sweep

    check_gpus(gpus)
    project = find_project()
    chosen = {t.name: t for t in chosen_targets(
        project, on=on, targets=targets, all_targets=all_targets, gpus=gpus, registry=registry,
        never_pushed="the images this sweep builds", partition=partition, gres=gres, constraint=constraint,
        nodelist=nodelist, time_limit=time_limit, account=account, wait=wait, context=context,
        namespace=namespace, gpu_product=gpu_product)}
    combos = _range_options(since, until, variants, pythons, targets=tuple(chosen) or (None,))
    console.status(f"{len(combos)} combinations: {', '.join(c.label for c in combos)}")

    def show(cell, fresh: bool) -> None:
        inputs = f"lock {cell.lock_hash.split(':')[-1][:12]}" if cell.lock_hash else \
            f"spec {(cell.spec_hash or '').split(':')[-1][:12]}"
        if not fresh:
            console.status(f"{cell.combo.label}: already {cell.state} for {inputs}: {cell.reason}")
        elif cell.ok:
            console.status(f"{cell.combo.label}: verified ({cell.reason})")
        else:
            console.status(f"{cell.combo.label}: {cell.failure}: {cell.reason}")

    result = run_sweep(project, combos, gpus=gpus, keep=keep, retry_failed=retry_failed, targets=chosen,
                       registry=registry,
                       max_disk=int(max_disk * 1e9) if max_disk is not None else None,
                       progress=lambda m: console.status("  " + m), on_cell=show)
    _summary(result, len(combos))
    if json_out:
        console.print_json({"cells": [c.document() | {"name": c.combo.name} for c in result.cells],
                            "seconds": round(result.seconds, 2), "removed": result.removed,
                            "evicted": {"files": result.evicted_files, "bytes": result.evicted_bytes},
                            "peak_bytes": result.peak_bytes})
    if html:
        _write_html(html, result.cells, note=f"envctl matrix verify, {len(result.cells)} of {len(combos)} "
                                             f"combinations, {result.seconds:.0f} s", target=next(iter(chosen), None))
    if result.interrupt is not None:
        raise result.interrupt  # exit 130 (143 for SIGTERM), as any interrupted command
    if any(c.state == "failed" for c in result.cells):
        raise typer.Exit(1)


def _summary(result, total: int) -> None:
    from envctl.sweep.plan import tally

    states = {s: sum(1 for c in result.cells if c.state == s) for s in ("verified", "failed", "grey")}
    line = (f"{len(result.cells)} of {total} combinations in {result.seconds:.1f}s: {states['verified']} verified, "
            f"{states['failed']} failed, {states['grey']} not buildable here; {len(result.settled)} from the records")
    if result.removed:
        line += f"; gave back {len(result.removed)} images"
    if result.evicted_files:
        from envctl.sweep.room import size_text

        line += f"; evicted {result.evicted_files} package files ({size_text(result.evicted_bytes)})"
    kept = sum(1 for c in result.settled if not c.ok)
    if kept:
        line += f" ({kept} not verified before for the same inputs: --retry-failed redoes them)"
    console.status(line)
    classes = tally(result.cells).most_common()
    if classes:
        console.status("not verified: " + ", ".join(f"{name} {n}" for name, n in classes))
    if result.interrupt is not None:
        console.status(f"interrupted after {len(result.cells)} of {total}: the same command resumes")


@matrix_app.command("report")
def report(
    since: str = SINCE, until: Optional[str] = UNTIL, variants: str = VARIANTS, pythons: list[str] = PYTHONS,
    html: Optional[Path] = typer.Option(None, "--html", metavar="DIR", help="Write the dashboard to DIR/index.html."),
    json_out: bool = typer.Option(False, "--json", help="Print every combination's cell as JSON."),
    on: Optional[str] = typer.Option(None, "--on", help="What matrix verify --on slurm|kubernetes recorded.",
                                     rich_help_panel="Where it ran"),
    targets: Optional[list[str]] = typer.Option(None, "--target", metavar="NAME",
                                                help="What matrix verify recorded on this target (repeatable).",
                                                rich_help_panel="Where it ran"),
) -> None:
    """What matrix verify recorded for a range, as lines or a page.

    The local engine's cells, or those of the target given as the sweep was (--on, --target)."""
    from envctl.catalog import find_project
    from envctl.errors import UsageError
    from envctl.fleet import KINDS
    from envctl.sweep.run import report_cells

    if on is not None and (targets or on not in KINDS):
        raise UsageError(f"--on {on}: give one of {', '.join(KINDS)}, without --target" if on not in KINDS else
                         "--on and --target exclude each other", hint="as the sweep was given them")
    names = tuple(dict.fromkeys(targets or ([on] if on else [])))
    combos = _range_options(since, until, variants, pythons, targets=names or (None,))
    cells = report_cells(find_project(), combos)
    if json_out:
        console.print_json([c.document() | {"name": c.combo.name} for c in cells])
    else:
        for cell in cells:
            console.out.print(f"{cell.combo.label}: {cell.state}: {cell.reason}", markup=False, highlight=False)
    if html:
        _write_html(html, cells, note=f"envctl matrix report, {len(cells)} combinations", target=next(iter(names), None))
