"""`envctl setup`, `envctl export` and `envctl doctor`: the environment on a workstation."""

from pathlib import Path
from typing import Optional

import typer

from envctl import console
from envctl.cli.progress import activity


def register(app: typer.Typer) -> None:
    app.command("setup")(setup)
    app.command("export")(export)
    app.command("doctor")(doctor)


def setup(
    name: str = typer.Argument(..., help="Image whose lock to materialize."),
    prefix_arg: Optional[str] = typer.Option(None, "--prefix", help="Where (default ~/.local/share/envctl/envs/NAME)."),
    repair: bool = typer.Option(False, "--repair", help="Fix a prefix that drifted from the lock."),
    probe: bool = typer.Option(True, "--probe/--no-probe", help="Run the quick smoke probe afterwards."),
    force: bool = typer.Option(False, "--force", help="Install into a non-empty folder envctl did not make."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Install an image's locked environment into a local prefix, without Docker."""
    from envctl.setup import plan_setup, run_setup

    plan = plan_setup(None, name, prefix=prefix_arg, repair=repair, force=force, probe=probe)
    done = run_setup(plan, stage=activity, say=console.status)
    data, prefix = done.to_dict(), plan.prefix
    if json_out:
        console.print_json(data)
    else:
        if not done.result.changed:
            console.status(f"{prefix} is up to date with the lock of {plan.spec.name} (nothing to do)")
        elif repair:
            console.status(f"repaired {prefix}: was pip {data['drift_before']['pip']}; "
                           f"conda {data['drift_before']['conda']}")
        else:
            console.status(f"created {prefix} from the lock of {plan.spec.name}")
        if done.smoke is not None:
            from envctl.cli.verify import _render

            _render(done.smoke.report, str(prefix))
        console.status(f"use it: source {done.result.activate}")
    done.record()  # after the report: a database that refuses the record must not hide it
    if not done.ok:
        raise typer.Exit(1)


def export(
    name: str = typer.Argument(..., help="Image whose lock to export."),
    fmt: str = typer.Option("environment.yml", "--format", help="environment.yml, explicit or requirements."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to a file instead of stdout (- for stdout)."),
) -> None:
    """Export a lock for teams that use conda, micromamba or pip by hand."""
    from envctl.catalog import find_project
    from envctl.errors import UsageError
    from envctl.export import FORMATS, export as render
    from envctl.lock import require_current_lock

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt} is not a format", hint=f"use one of: {', '.join(FORMATS)}")
    project = find_project()
    spec = project.resolve(name)
    lock = require_current_lock(spec, project.lock_path(spec.name))
    text = render(spec, lock, fmt)
    if fmt == "explicit" and lock.pip:
        console.status(f"note: {len(lock.pip)} pip packages are not expressible in an explicit file; "
                       f"install them with: envctl export {spec.name} --format requirements")
    if output is None:
        console.out.file.write(text)
        return
    console.write_output(output, text)


def doctor(
    name: Optional[str] = typer.Argument(None, help="Check the host against this image."),
    use: str = typer.Option("build", "--for", help="What the image is for here: build (Docker: build, verify) "
                                                   "or setup (a local prefix, no Docker)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check the host: engine, driver against CUDA, GPU arch, container runtime, disk, and setup's needs."""
    from envctl.doctor import USES, evaluate, evaluate_setup, gather, gather_setup, to_dicts

    if use not in USES:
        from envctl.errors import UsageError

        raise UsageError(f"--for {use} is not a use", hint=f"use one of: {', '.join(USES)}")
    spec = image = None
    if name is not None:  # '' is a name too, and an impossible one
        from envctl.catalog import find_project
        from envctl.doctor import image_facts

        project = find_project()
        spec = project.resolve(name)
        image = image_facts(spec, project.lock_path(spec.name))
    findings = evaluate(gather(), spec, image, use=use)
    if spec is not None:
        from envctl.fsio import default_root
        from envctl.setup import prefix_root

        findings += evaluate_setup(gather_setup(spec, prefix_root=prefix_root(), cache_root=default_root()),
                                   spec, use=use, image=image)
    blocking = [f for f in findings if f.blocking and f.status == "fail"]
    if json_out:
        console.print_json({"image": name, "for": use, "findings": to_dicts(findings), "ok": not blocking})
    else:
        for f in findings:
            line = console.styled(f"{f.status:<5}", console.STATUS_STYLES.get(f.status, "cyan"))
            line.append(f" {f.check:<17} {f.message}")
            console.out.print(line, soft_wrap=True)  # one finding, one line: grep-able
    if blocking:
        raise typer.Exit(1)
