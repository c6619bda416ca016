"""`envctl verify`, `envctl smoke` and `envctl history`: run the smoke probe, show and record it."""

import time
from typing import Optional

import typer

from envctl import console
from envctl.cli.progress import activity
from envctl.cli.tables import WIDE_OPT, Column, print_table
from envctl.cli.where_opts import (ACCOUNT_OPT, ALL_TARGETS_OPT, CONSTRAINT_OPT, CONTEXT_OPT, GPU_PRODUCT_OPT,
                                   GRES_OPT, NAMESPACE_OPT, NODELIST_OPT, ON_OPT, PARTITION_OPT, REGISTRY_OPT,
                                   TARGET_OPT, TIME_OPT, WAIT_OPT, chosen_targets, executor_options)


RUN_KINDS = ("build", "verify", "smoke", "bench", "setup", "matrix")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("smoke")(smoke)
    app.command("history")(history)


def _level(quick: bool, full: bool, default: str) -> str:
    if quick and full:
        from envctl.errors import UsageError

        raise UsageError("--quick and --full exclude each other")
    return "quick" if quick else "full" if full else default


def verify(
    name: str = typer.Argument(..., help="Image to verify, e.g. pytorch-2.13-cpu."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="all, none, or a GPU count (default from the spec)."),
    quick: bool = typer.Option(False, "--quick", help="Fewest runs and shapes: under a minute on a GPU."),
    full: bool = typer.Option(False, "--full", help="Every mode, shape and dtype the spec allows."),
    checks_only: bool = typer.Option(False, "--checks-only",
                                     help="Versions, libraries, drift and the file tree only: no benchmarks."),
    json_out: bool = typer.Option(False, "--json", help="Print the probe's JSON document."),
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
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Print what would run (the docker run line, the sbatch script, the Job "
                                      "manifests) and submit nothing."),
) -> None:
    """Run the smoke probe inside the built image: versions, GPU, drift, compile-and-benchmark.

    Locally by default; on a Slurm cluster (--on slurm) or fleet.yaml's targets (--target,
    --all-targets) from the image's last push by digest, on every target named.

    Exit 0 when every check passes, 1 when one fails, 2 on bad input."""
    from envctl.catalog import find_project
    from envctl.verify import plan_verifications, run_verifications

    project = find_project()
    chosen = chosen_targets(project, on=on, targets=targets, all_targets=all_targets, gpus=gpus,
                            partition=partition, gres=gres, constraint=constraint, nodelist=nodelist,
                            time_limit=time_limit, account=account, wait=wait, context=context,
                            namespace=namespace, gpu_product=gpu_product)
    plans = plan_verifications(project, name, targets=chosen, registry=registry, gpus=gpus,
                               level=_level(quick, full, "") or None, checks_only=checks_only,
                               push=not dry_run, progress=lambda m: console.status("  " + m))
    first = plans[0]
    if dry_run:
        from envctl.verify import dry_run as plan_text

        for plan in plans:
            console.out.print(plan_text(plan), end="", markup=False, highlight=False, soft_wrap=True)
        return
    if len(plans) == 1 and first.target is None:
        with activity(f"verifying {first.spec.name} ({first.short_id}, {first.level})") as progress:
            [v] = run_verifications(plans, progress=progress, strict=True)
        # The report first: a database that refuses the record must not cost the user the run.
        _show(v.report, json_out, title=f"{v.spec.name} ({first.short_id})", then=v.record)
        return
    where = ", ".join(p.where for p in plans)
    with activity(f"verifying {first.spec.name} ({first.short_id}, {first.level}) on {where}") as progress:
        done = run_verifications(plans, progress=progress)
    _show_targets(done, json_out)


def _show_targets(done, json_out: bool) -> None:
    """Each target's report (or its one line), each recorded; exit 1 when any failed."""
    if json_out:
        console.print_json([{"target": v.target, "where": v.where, "ok": v.ok, "error": v.error,
                             "document": v.report.document if v.report else None} for v in done])
    for v in done:
        title = f"{v.spec.name} on {v.target}" + (f" ({v.where['node']})" if v.where.get("node") else "")
        if v.report is None:
            console.error(f"{title}: {v.error}")
        elif not json_out:
            _render(v.report, title)
        v.record()
    failed = [v.target for v in done if not v.ok]
    if failed:
        console.status(f"failed on {len(failed)} of {len(done)} targets: {', '.join(failed)}")
        raise typer.Exit(1)


def smoke(
    python: Optional[str] = typer.Option(None, "--python",
                                         help="Interpreter to probe: a path (a prefix's bin/python) or a command "
                                              "on PATH (default: python3 on PATH)."),
    name: Optional[str] = typer.Option(None, "--image", help="Check against this image's spec and lock."),
    gpus: str = typer.Option("all", "--gpus", help="all, none, or a GPU count."),
    quick: bool = typer.Option(False, "--quick", help="Fewest runs and shapes."),
    full: bool = typer.Option(False, "--full", help="Every mode, shape and dtype."),
    checks_only: bool = typer.Option(False, "--checks-only",
                                     help="Versions, libraries and drift only: no benchmarks."),
    json_out: bool = typer.Option(False, "--json", help="Print the probe's JSON document."),
    on: Optional[str] = typer.Option(None, "--on", help="Where to run: host (default) or slurm (the node's own "
                                                        "interpreter, no container).", rich_help_panel="Where it runs"),
    partition: Optional[str] = PARTITION_OPT,
    gres: Optional[str] = GRES_OPT,
    constraint: Optional[str] = CONSTRAINT_OPT,
    nodelist: Optional[str] = NODELIST_OPT,
    time_limit: Optional[str] = TIME_OPT,
    account: Optional[str] = ACCOUNT_OPT,
    wait: Optional[float] = WAIT_OPT,
) -> None:
    """Run the smoke probe in an interpreter: the host's, a prefix made by envctl setup, or a Slurm node's.

    Exit 0 when every check passes, 1 when one fails, 2 on bad input."""
    from envctl.smoke import plan_smoke, run_smoke

    options = executor_options(on=on, partition=partition, gres=gres, constraint=constraint, nodelist=nodelist,
                               time_limit=time_limit, account=account, wait=wait)
    plan = plan_smoke(None, python=python, image=name, on=on, options=options, gpus=gpus,
                      level=_level(quick, full, "") or None, checks_only=checks_only)
    where = "" if plan.target is None else f" on {plan.executor.describe()}"
    with activity(f"probing {plan.python} ({plan.why}, {plan.level}){where}") as progress:
        progress("running the probe")
        run = run_smoke(plan, progress=progress)
    _show(run.report, json_out, title=run.title, then=run.record)


def history(
    name: Optional[str] = typer.Argument(None, help="Only this image."),
    kind: Optional[str] = typer.Option(None, "--kind", help="build, verify, smoke, bench or setup."),
    limit: int = typer.Option(20, "--limit", help="How many rows."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    wide: bool = WIDE_OPT,
) -> None:
    """List recorded builds, verifications and setups, newest first.

    Each run is listed at the time it started, whatever its kind; its target is what ran: the
    image id of a build, verify or bench run, the prefix of a setup, the interpreter of a smoke run."""
    from envctl.errors import UsageError
    from envctl.records import Records
    from envctl.spec import NAME_RE

    if name is not None and not NAME_RE.match(name):
        raise UsageError(f"{name!r} is not an image name (lowercase letters, digits, . _ -)",
                         hint="envctl catalog lists the images")
    if kind is not None and kind not in RUN_KINDS:
        raise UsageError(f"--kind {kind} is not a kind of run", hint=f"use one of: {', '.join(RUN_KINDS)}")
    if not 1 <= limit <= 2**63 - 1:  # SQLite's integers end there
        raise UsageError(f"--limit {limit}: give a positive number of rows, at most {2**63 - 1}")
    runs = Records().runs(image=name, kind=kind, limit=limit)
    if json_out:
        console.print_json([r.to_dict() for r in runs])
        return
    columns = [Column("id", justify="right"), Column("started", priority=3), Column("kind"),
               Column("image", priority=2), Column("ok"), Column("target", short=False),
               Column("gpu", priority=1), Column("seconds", justify="right"), Column("summary", short=False)]
    cells = [[str(r.id), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started)), r.kind, r.image,
              console.styled("ok" if r.ok else "fail"), _target(r.image_id), r.gpu or "-",
              f"{r.duration_s:.1f}" if r.duration_s else "-", r.summary or ""] for r in runs]
    print_table(console.out, columns, cells, wide=wide)


def _target(image_id: str | None) -> str:
    """What ran: a Docker id shortened as docker does; a prefix or interpreter path whole (two must
    not look alike)."""
    if not image_id:
        return "-"
    if image_id.startswith("sha256:"):
        return image_id.split(":", 1)[1][:12]
    return image_id


def _show(report, json_out: bool, *, title: str, then=lambda: None) -> None:
    if json_out:
        console.print_json(report.document)
    else:
        _render(report, title)
    then()
    if not report.ok:
        raise typer.Exit(1)


CHECK_COLUMNS = [Column("status"), Column("check"), Column("detail", short=False)]
# Lower priority stays in the table longer on a narrow terminal; the rest moves to a second line.
BENCH_COLUMNS = [
    Column("model", priority=0), Column("mode", priority=0), Column("dtype", priority=3),
    Column("batch", priority=3, justify="right"), Column("compile s", priority=5, justify="right"),
    Column("warm s", priority=6, justify="right"), Column("median ms [95%]", priority=2, justify="right"),
    Column("speedup", priority=1, justify="right"), Column("agree", priority=4), Column("breaks", priority=7),
]


def _render(report, title: str) -> None:
    doc = report.document
    env = doc.get("env") or {}
    console.out.print(f"checks: {title}")
    print_table(console.out, CHECK_COLUMNS, [[console.styled(c["status"]), c["name"], c.get("message") or ""]
                                             for c in report.checks])
    rows = report.benchmarks
    if rows:
        eager = {(r["model"], r["dtype"], r["batch"]): r.get("median_ms") for r in rows if r["mode"] == "eager"}
        torch_version = (env.get("torch") or {}).get("version")
        bench: list[list] = []
        why = []
        for r in rows:
            base = eager.get((r["model"], r["dtype"], r["batch"]))
            med = r.get("median_ms")
            if r.get("status") != "ok":
                bench.append([r["model"], r["mode"], r["dtype"], str(r["batch"]), "-", "-", "-", "-",
                              console.styled("error"), ""])
                continue
            speedup, sp = "-", r.get("speedup")
            if isinstance(sp, dict):  # a speedup is printed only where its interval says it is real
                speedup = f"{sp['median']:.2f}x" if sp.get("conclusive") else "inconclusive (noisy host)"
                if not sp.get("conclusive"):
                    why.append(f"{r['model']} {r['dtype']} b{r['batch']} {r['mode']}: " + "; ".join(sp.get("why") or []))
            elif base and med and "speedup" not in r:  # a document from an older probe
                speedup = f"{base / med:.2f}x"
            interval = (f"{med:.3f} [{r['ci_low_ms']:.3f}-{r['ci_high_ms']:.3f}]"
                        if med is not None and r.get("ci_low_ms") is not None else _num(med, 3))
            bench.append([
                r["model"], r["mode"], r["dtype"], str(r["batch"]), _num(r.get("compile_s"), 2),
                _num(r.get("warm_compile_s"), 2), interval, speedup,
                console.styled("yes" if r.get("agree") else "NO", "green" if r.get("agree") else "red"),
                str(r.get("graph_breaks") if r.get("graph_breaks") is not None else "-")])
        console.out.print(f"benchmarks on {doc.get('device')} (torch {torch_version})")
        print_table(console.out, BENCH_COLUMNS, bench)
        for line in why:
            console.out.print(line)
    verdict = "PASSED" if report.ok else f"FAILED ({len(report.failed)} checks)"
    console.status(f"{title}: {verdict} in {report.seconds:.1f}s")


def _num(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
