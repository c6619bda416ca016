"""`envctl build`, `envctl push` and `envctl images`."""

from typing import Optional

import typer

from envctl import console
from envctl.cli.catalog import short_ref
from envctl.cli.progress import activity
from envctl.cli.tables import WIDE_OPT, Column, print_table


def register(app: typer.Typer) -> None:
    app.command("build")(build)
    app.command("push")(push)
    app.command("images")(images)


def build(
    name: str = typer.Argument(..., help="Image to build, e.g. pytorch-2.13-cpu."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Tag for the image (default envctl/NAME:LOCKHASH)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Build even if an identical image exists."),
    no_cache: bool = typer.Option(False, "--no-cache", help="With --rebuild: do not reuse the engine's layer cache."),
    push: Optional[str] = typer.Option(None, "--push", metavar="REGISTRY", help="Push to REGISTRY after building."),
    platform: str = typer.Option("linux/amd64", "--platform", help="Target platform (linux/amd64)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the rendered Dockerfile and stop."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    """Build a pinned image from the lockfile, hermetically (no index reached in the build)."""
    from envctl.build import plan_build
    from envctl.catalog import find_project
    from envctl.errors import UsageError
    from envctl.lock import require_current_lock

    project = find_project()
    spec = project.resolve(name)
    conda_platform = {"linux/amd64": "linux-64", "linux/arm64": "linux-aarch64"}.get(platform)
    if conda_platform is None or conda_platform not in spec.platforms:
        raise UsageError(f"{spec.name} is locked for {', '.join(spec.platforms)}, not {platform}",
                         hint="add the platform to the spec's platforms and re-lock")
    if not project.lock_path(spec.name).exists() and not dry_run:
        # Never locked (a derived name, a new spec): lock first, as `envctl lock` would, then build
        # from that lock alone. A stale lock is not re-locked behind the user's back: it is refused.
        from envctl.catalog import lock_into
        from envctl.cli.lock import show_locked

        console.status(f"{spec.name} has no lock yet: locking it first (as envctl lock {spec.name} does)")
        with activity(f"locking {spec.name}") as progress:
            show_locked(lock_into(project, spec, progress=progress))
    lock = require_current_lock(spec, project.lock_path(spec.name), platform=conda_platform)
    from envctl.cache import PackageCache
    from envctl.engine import detect_builder

    if dry_run:  # touches nothing: no engine, no download
        placeholder = ("py_rattler-VERSION-abi3-PLATFORM.whl", "SHA256-FROM-PYPI", "") if lock.conda else ("", "", "")
        plan = plan_build(spec, lock, project=project, tag=tag, source=str(project.root), rattler=placeholder,
                          builder=detect_builder()[0])
        console.out.file.write(plan.dockerfile)  # raw: a Dockerfile must not be re-wrapped
        return
    from envctl.engine import Engine
    from envctl.errors import BuildError
    from envctl.imagebuild import build_recorded

    engine = Engine.connect()
    try:
        result = _run_build(spec.name, quiet=json_out, build=lambda progress, on_line: build_recorded(
            project, spec, lock, engine, cache=PackageCache(), tag=tag, rebuild=rebuild, no_cache=no_cache,
            platform=platform, progress=progress, on_line=on_line))
    except BuildError as exc:  # recorded already: said here with the log's last lines
        console.error(f"build of {spec.name} failed at {exc.step or 'an unknown step'}: {exc}",
                      exc.hint if exc.hint and not exc.hint.startswith("full log") else None)
        for line in exc.tail[-12:]:
            console.err.print("  | " + line)
        console.status(f"full log: {exc.log_path}")
        raise typer.Exit(1)
    if push:
        ref = f"{push.rstrip('/')}/{result.tag.split('/', 1)[-1]}"
        engine.tag(result.image.id, ref)
        engine.push(ref, on_line=console.status if not json_out else (lambda _l: None))
    if json_out:
        console.print_json(result.to_dict())
        return
    verb = "built" if result.built else "up to date:"
    console.status(f"{verb} {result.tag} ({result.image.short_id}, {result.image.size / 1e6:.0f} MB, "
                   f"{result.seconds:.1f}s)" + (f"; log: {result.log_path}" if result.log_path else ""))


def _run_build(name: str, *, quiet: bool, build):
    """``build(progress, on_line)`` with its progress shown: a live line on a terminal, step lines
    otherwise, nothing with ``quiet`` (--json)."""
    if quiet or not console.stderr_is_terminal():
        echo = (lambda _m: None) if quiet else (lambda m: console.status("  " + m))
        return build(echo, lambda line: echo(line) if _is_step(line) else None)
    from rich.live import Live
    from rich.text import Text

    state = {"step": "preparing", "line": ""}

    def view() -> Text:
        text = Text(f"building {name}: {state['step']}", style="bold")
        if state["line"]:
            text.append("\n  " + state["line"][:150], style="dim")
        return text

    with Live(view(), console=console.err, refresh_per_second=8, transient=True) as live:
        def progress(msg: str) -> None:
            state["step"] = msg
            live.update(view())

        def on_line(line: str) -> None:
            if _is_step(line):
                state["step"], state["line"] = line, ""
            elif line.strip():
                state["line"] = line.strip()
            live.update(view())

        return build(progress, on_line)


def _is_step(line: str) -> bool:
    """A classic 'Step 3/9 : ...' line, or a BuildKit '#7 [2/3] RUN ...' step start."""
    import re

    return bool(re.match(r"^(Step \d+/\d+ :|#\d+ \[[^\]]*\d+/\d+\] )", line))


def push(
    name: str = typer.Argument(..., help="Image to push, e.g. pytorch-2.13-cpu."),
    registry: str = typer.Option(..., "--registry", metavar="HOST[:PORT][/PREFIX]",
                                 help="Registry to push to; credentials come from the engine's login (docker login)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    """Push the built image to a registry and record it by digest (what remote verify runs).

    The same lock pushes the same digest: the image config's times are SOURCE_DATE_EPOCH's."""
    from envctl.catalog import find_project
    from envctl.push import plan_push, run_push

    plan = plan_push(find_project(), name, registry=registry)
    with activity(f"pushing {plan.name} ({plan.image.short_id}) to {plan.registry}") as progress:
        pushed = run_push(plan, progress=progress)
    if json_out:
        console.print_json(pushed.to_dict())
        return
    console.out.print(pushed.ref)
    verb = "pushed" if pushed.uploaded else "already there:"
    console.status(f"{verb} {pushed.image} ({pushed.image_id.split(':')[-1][:12]}) in {pushed.seconds:.1f}s")


def images(json_out: bool = typer.Option(False, "--json", help="Print JSON."), wide: bool = WIDE_OPT) -> None:
    """List images built by envctl: labels, size, and whether their lock is still current."""
    from envctl.build import LABEL_LOCK_HASH, LABEL_SPEC, LABEL_TREE, image_layers
    from envctl.catalog import find_project
    from envctl.engine import Engine
    from envctl.errors import EnvctlError
    from envctl.lock.state import lock_state

    from envctl.records import Records, default_path

    project = find_project()
    rows = []
    pushes = Records().last_pushes() if default_path().exists() else {}
    engine = Engine.connect()
    for img in engine.images(LABEL_SPEC):
        name = img.labels.get(LABEL_SPEC, "?")
        try:
            spec = project.resolve(name)
            state = lock_state(spec, project.lock_path(spec.name))  # an old name resolves to its new spec
            current = state.current and state.lock_hash == img.labels.get(LABEL_LOCK_HASH)
            lock = "current" if current else ("stale" if state.state != "not locked" else "not locked")
        except EnvctlError:
            lock = "no spec"
        rows.append({"image": name, "id": img.short_id, "tags": img.tags, "size": img.size,
                     "created": img.labels.get("org.opencontainers.image.created", img.created),
                     "torch": img.labels.get("io.envctl.torch"), "cuda": img.labels.get("io.envctl.cuda"),
                     "python": img.labels.get("io.envctl.python"), "lock": lock,
                     "layers": image_layers(engine, img.id), "env_tree": img.labels.get(LABEL_TREE),
                     "labels": img.labels, "pushed": _pushed(pushes.get(name), img)})
    rows.sort(key=lambda r: (r["image"], r["created"]))
    if json_out:
        console.print_json(rows)
        return
    # A tag is one word, never split; several tags or layers wrap between them.
    columns = [Column("image"), Column("id", priority=1), Column("tags", short=False), Column("torch", priority=2),
               Column("cuda", priority=2), Column("python", priority=2), Column("size", priority=3, justify="right"),
               Column("layers", short=False), Column("created", priority=4), Column("lock", priority=1),
               Column("pushed", priority=5)]
    cells = [[r["image"], r["id"], ", ".join(r["tags"]) or "-", r["torch"] or "-", r["cuda"] or "-", r["python"] or "-",
              _mb(r["size"]), ", ".join(f"{layer['layer']} {_mb(layer['bytes'])}" for layer in r["layers"]) or "-",
              r["created"], console.styled(r["lock"]), short_ref(r["pushed"])] for r in rows]
    print_table(console.out, columns, cells, wide=wide)


def _pushed(last: dict | None, img) -> str | None:
    """The image's last push: the spec's last push when it was of this lock (another build of one
    lock pushes the same digest)."""
    from envctl.build import LABEL_LOCK_HASH

    return last["ref"] if last and last["lock_hash"] == img.labels.get(LABEL_LOCK_HASH) else None


def _mb(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"
