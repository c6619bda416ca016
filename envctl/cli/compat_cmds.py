"""`envctl artifacts` and `envctl compat`: the artifact registry and the upgrade gate."""

from pathlib import Path
from typing import List, Optional

import typer

from envctl import console
from envctl.cli.progress import activity
from envctl.cli.tables import WIDE_OPT, Column, print_table, render_grid
from envctl.cli.where_opts import (ACCOUNT_OPT, ALL_TARGETS_OPT, CONSTRAINT_OPT, CONTEXT_OPT, GPU_PRODUCT_OPT,
                                   GRES_OPT, NAMESPACE_OPT, NODELIST_OPT, ON_OPT, PARTITION_OPT, REGISTRY_OPT,
                                   TARGET_OPT, TIME_OPT, WAIT_OPT, chosen_targets)

TRUST_OPT = typer.Option(False, "--trust", help="Run artifacts under a local interpreter without its sandbox (uid 65534, "
                                                   "no network, read-only, capped): only artifacts you trust.")

artifacts_app = typer.Typer(help="Register TorchScript, torch.export and AOTInductor artifacts.", no_args_is_help=True)
compat_app = typer.Typer(help="Check which artifacts load correctly under which image.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(artifacts_app, name="artifacts")
    app.add_typer(compat_app, name="compat")


def _registry():
    from envctl.artifacts import Registry
    from envctl.records import Records

    records = Records()
    return records, Registry(records)


@artifacts_app.command("add")
def add(
    file: Path = typer.Argument(..., help="A TorchScript (.pt), torch.export or AOTInductor package (.pt2) archive."),
    name: Optional[str] = typer.Option(None, "--name", help="Name to register it under (default: file stem)."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", help="Sample inputs (torch.save of a tuple of tensors)."),
    outputs: Optional[Path] = typer.Option(None, "--outputs", help="Reference outputs for those inputs."),
    image: Optional[str] = typer.Option(None, "--image", help="Compute reference outputs in this image."),
    python: Optional[str] = typer.Option(None, "--python", help="Compute reference outputs with this interpreter."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds for the reference run (as compat's)."),
    replace: bool = typer.Option(False, "--replace", help="Replace the artifact of this name: its file, inputs "
                                                          "and outputs (its compat results go)."),
    trust: bool = TRUST_OPT,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register an artifact by content hash (adding the same file twice is a no-op; --replace fixes one)."""
    from envctl.compat import check_timeout, compute_reference
    from envctl.errors import UsageError

    check_timeout(timeout)
    if (image or python) and inputs is None:
        raise UsageError("--image/--python compute reference outputs from --inputs; give --inputs too")
    if outputs is not None and (image or python):
        raise UsageError("give either --outputs or an environment to compute them, not both")
    _, registry = _registry()
    reference = None
    if inputs is not None and outputs is None and (image or python):
        from envctl.compat.workflow import resolve_targets

        targets, engine = resolve_targets([image] if image else [], [python] if python else [])
        label = name or file.stem

        def reference(folder, kind, stored):
            with activity(f"computing reference outputs of {label} under {targets[0].label}"):
                return compute_reference(targets[0], folder, kind, stored, name=label, engine=engine,
                                         timeout=timeout, trust=trust)
    art, outcome = registry.add(file, name=name, inputs=inputs, outputs=outputs, reference=reference,
                                replace=replace)
    if outcome == "unchanged" and (inputs or outputs or image or python):
        console.status(f"note: {file} is already registered as {art.name}; its stored inputs and outputs stay "
                       f"(--inputs/--outputs/--image/--python ignored: add --replace to replace them)")
    if json_out:
        console.print_json(art.to_dict() | {"added": outcome == "added", "replaced": outcome == "replaced"})
        return
    info = art.info
    versions = f"format {info['format_version'] or '?'}" + (f", torch {info['torch_version']}" if info["torch_version"] else
                                                    ", saving torch not recorded in TorchScript archives")
    if info.get("damaged"):
        console.status(f"warning: {file} is a damaged archive (its zip directory is missing: truncated?); "
                      f"registered so that envctl compat reports how it fails to load")
    verb = {"added": "added", "replaced": "replaced", "unchanged": "already registered:"}[outcome]
    console.status(f"{verb} {art.name} ({art.kind}, {art.sha256[:12]}, {art.size} bytes; {versions}; "
                   f"inputs {'yes' if info.get('inputs') else 'no'}, outputs {'yes' if info.get('outputs') else 'no'})")


@artifacts_app.command("remove")
def remove(
    name: str = typer.Argument(..., help="The artifact's name (or sha256)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Forget an artifact: its registration, its stored files and its compat results."""
    _, registry = _registry()
    removal = registry.remove(name)
    if json_out:
        console.print_json(removal.to_dict())
        return
    art = removal.artifact
    files = (f"its folder {removal.folder} could not be deleted: remove it by hand" if removal.files_left
             else f"its stored files ({removal.folder})")
    console.status(f"removed {art.name} ({art.kind}, {art.sha256[:12]}): the registration, {files} and "
                   f"{removal.compat_results} compat results")


@artifacts_app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
          wide: bool = WIDE_OPT) -> None:
    """List registered artifacts."""
    _, registry = _registry()
    arts = registry.list()
    if json_out:
        console.print_json([a.to_dict() for a in arts])
        return
    columns = [Column("name"), Column("kind"), Column("sha256", priority=1),
               Column("size", priority=3, justify="right"), Column("format", priority=4), Column("torch", priority=2),
               Column("schema", priority=4), Column("inputs", priority=2), Column("outputs", priority=2)]
    rows = [[a.name, a.kind, a.sha256[:12], str(a.size), a.info.get("format_version") or "-",
             a.info.get("torch_version") or "-", a.info.get("schema_version") or "-",
             "yes" if a.info.get("inputs") else "no", "yes" if a.info.get("outputs") else "no"] for a in arts]
    print_table(console.out, columns, rows, wide=wide)


@compat_app.command("run")
def run(
    images: List[str] = typer.Option([], "--image", help="Built image to check under (repeatable)."),
    pythons: List[str] = typer.Option([], "--python", help="Local interpreter to check under (repeatable)."),
    artifact: List[str] = typer.Option([], "--artifact", help="Only these artifacts (default: all)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per artifact."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when the target sees a GPU), cpu or cuda."),
    runtimes: List[str] = typer.Option(["python"], "--runtime",
                                       help="python or libtorch (C++; repeatable: both side by side)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write the results as JUnit XML."),
    trust: bool = TRUST_OPT,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
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
    """Load and run every selected artifact under each image, each in isolation.

    Locally by default; on a Slurm cluster (--on slurm), a Kubernetes cluster (--on kubernetes)
    or fleet.yaml's targets (--target, --all-targets) from each image's last push by digest.

    Exit 0 when every cell is ok, 1 when any is not (each such cell is a failure in --junit too),
    2 on bad input."""
    from envctl.compat import record, render_junit
    from envctl.compat.workflow import plan_compat, run_compat

    records, store = _registry()
    chosen = chosen_targets(on=on, targets=targets, all_targets=all_targets, partition=partition, gres=gres,
                            constraint=constraint, nodelist=nodelist, time_limit=time_limit, account=account,
                            wait=wait, context=context, namespace=namespace, gpu_product=gpu_product)
    plan = plan_compat(store, images=images, pythons=pythons, artifacts=artifact, timeout=timeout, device=device,
                       runtimes=runtimes, trust=trust, targets=chosen, registry=registry, push=not dry_run,
                       progress=lambda m: console.status("  " + m))
    if dry_run:
        from envctl.compat.workflow import dry_run as plan_text

        console.out.print(plan_text(plan), end="", markup=False, highlight=False, soft_wrap=True)
        return
    where = ", ".join(dict.fromkeys(p.where for p in plan.placements))
    with activity(f"checking {len(plan.artifacts)} artifacts under {where}") as progress:
        done = run_compat(plan, progress=progress)
    _said_loaders(done)
    results = done.outcomes
    # The results first: a database that refuses them must not cost the user the run.
    if junit is not None:
        console.write_output(junit, render_junit(results, name="envctl compat run"))
    if json_out:
        console.print_json([o.to_dict() for o in results])
    else:
        for o in results:
            line = console.styled(f"{o.status:<11}", "green" if o.status == "ok" else "red")
            line.append(f" {o.artifact.name} under {o.column}: {o.detail}")
            console.out.print(line, soft_wrap=True)  # one line per cell, never cut: the terminal wraps it
    for error in done.errors:  # a fleet target whose runner did not run: its line, the others' cells stand
        console.error(error)
    record(records, results)
    failed = [o for o in results if o.status != "ok"]
    if failed:
        console.status(f"{len(failed)} of {len(results)} cells not ok")
    if failed or done.errors:
        raise typer.Exit(1)


def _said_loaders(done) -> None:
    for label, loader in done.loaders:
        console.status(f"built the libtorch loader of {label} in {loader.seconds:.1f}s (cached: {loader.folder})")


@compat_app.command("matrix")
def show_matrix(
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    html_file: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML page."),
) -> None:
    """Artifacts x images: the newest result of every check."""
    from envctl.compat import matrix, render_html

    records, _ = _registry()
    data = matrix(records)
    if html_file is not None:
        console.write_output(html_file, render_html(data))
    if json_out:
        console.print_json(data)
        return
    console.out.print(matrix_table(data, width=console.out.width))
    for name in data["artifacts"]:  # what went wrong, one line each (the whole message: --json, --html)
        for t, cell in data["cells"][name].items():
            if cell["status"] != "ok":
                console.out.print(console.styled(f"{name} under {t}: {cell['status']}: {cell['detail']}"),
                                  soft_wrap=True)


def matrix_table(data: dict, *, width: int):
    """Artifacts down, targets across (tables.render_grid): names and statuses are never cut; the
    long target labels (python:PATH runtime/device) wrap in their headers or go to a legend."""
    rows = []
    for name in data["artifacts"]:
        row = [name]
        for t in data["targets"]:
            cell = data["cells"][name].get(t)
            row.append(console.styled(cell["status"], "green" if cell["status"] == "ok" else "red") if cell
                       else console.styled("-"))
        rows.append(row)
    return render_grid("artifact", data["targets"], rows, width=width)


@compat_app.command("check")
def check(
    source: str = typer.Option(..., "--from", help="Current image (or python:PATH)."),
    dest: str = typer.Option(..., "--to", help="Candidate image (or python:PATH)."),
    artifact: List[str] = typer.Option([], "--artifact", help="Only these artifacts (default: all)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per artifact."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when the target sees a GPU), cpu or cuda."),
    runtime: str = typer.Option("python", "--runtime", help="python or libtorch (C++)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write the gate's result as JUnit XML."),
    trust: bool = TRUST_OPT,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The upgrade gate: exit 1 when an artifact that is ok under --from is not ok under --to.

    Exit 0 when nothing regresses (an artifact not ok under --from either is skipped, as in
    --junit), 1 on a regression, 2 on bad input."""
    from envctl.compat import record, regressions, render_junit
    from envctl.compat.workflow import plan_compat, run_compat

    records, store = _registry()
    plan = plan_compat(store, images=[source, dest], artifacts=artifact, timeout=timeout, device=device,
                       runtimes=[runtime], trust=trust, gate=True)
    arts = plan.artifacts
    targets = [p.target for p in plan.placements]
    with activity(f"checking {len(arts)} artifacts under {targets[0].label} and {targets[1].label}") as progress:
        done = run_compat(plan, progress=progress)
    _said_loaders(done)
    outcomes = [done.outcomes[:len(arts)], done.outcomes[len(arts):]]  # target by target, artifact by artifact
    bad = regressions(outcomes[0], outcomes[1])
    if junit is not None:  # a failure per regression; no baseline (not ok under --from) is a skip
        n = len(outcomes[0])
        regressed = {n + outcomes[1].index(after) for _, after in bad}
        skipped = {i: f"not ok under --from either: {o.status}" for i, o in enumerate(outcomes[0]) if o.status != "ok"}
        skipped |= {n + i: f"not ok under --from: {outcomes[0][i].status}" for i in skipped}
        console.write_output(junit, render_junit(outcomes[0] + outcomes[1], name="envctl compat check", failed=regressed,
                                   skipped=skipped))
    if json_out:
        console.print_json({"from": targets[0].label, "to": targets[1].label, "checked": len(arts),
                            "runtime": runtime, "regressions": [{"artifact": b.artifact.name, "from": b.status,
                                                                 "to": a.status, "device": a.device,
                                                                 "detail": a.detail, "message": a.message or a.detail}
                                                                for b, a in bad]})
    else:
        for before, after in bad:
            console.out.print(console.styled(f"regressed  {before.artifact.name}: ok under {before.target.label}, "
                                             f"{after.status} under {after.column}: {after.detail}", "red"))
        console.status(f"{len(bad)} of {len(arts)} artifacts regress from {targets[0].label} to {targets[1].label}")
    record(records, outcomes[0] + outcomes[1])
    if bad:
        raise typer.Exit(1)
