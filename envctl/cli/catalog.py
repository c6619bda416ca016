"""`envctl catalog` and `envctl show`: the image specs and what the matrix says."""

import time

import typer

from envctl import console

from envctl.cli.tables import WIDE_OPT, Column, print_table, render_record

JSON_OPT = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def register(app: typer.Typer) -> None:
    app.command("catalog")(catalog)
    app.command("show")(show)


def short_ref(ref: str | None) -> str:
    """A reference by digest as a table shows it: the digest cut to 12 hex, as docker shows ids."""
    if not ref:
        return "-"
    name, _, digest = ref.rpartition("@sha256:")
    return f"{name}@{digest[:12]}" if name else ref


def _when(ts: float | None) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def catalog(json_out: bool = JSON_OPT, wide: bool = WIDE_OPT) -> None:
    """List the image specs: torch, CUDA, Python, lock state, last build and verification."""
    from envctl.catalog import find_project
    from envctl.overview import catalog_rows

    rows = catalog_rows(find_project())
    if json_out:
        console.print_json(rows)
    else:
        columns = [Column("image", priority=0), Column("torch", priority=1), Column("cuda", priority=1),
                   Column("python", priority=1), Column("torch from", priority=3), Column("lock", priority=2),
                   Column("last build", priority=4), Column("last verify", priority=4),
                   Column("pushed", priority=5)]
        with_errors = any(r.get("error") for r in rows)
        if with_errors:
            columns.append(Column("error", short=False))
        cells = []
        for r in rows:
            build, verify = r["last_build"], r["last_verify"]
            cells.append([
                r["name"], r["torch"], r["cuda"], r["python"], r["torch_source"], console.styled(r["lock"]),
                console.styled(_when(build["started"]) if build else "-", None if not build else
                               ("green" if build["ok"] else "red")),
                console.styled(_when(verify["started"]) + (" ok" if verify["ok"] else " FAILED")
                               if verify else "-", None if not verify else ("green" if verify["ok"] else "red")),
                short_ref(r["pushed"]),
                *([console.styled(r["error"] or "", "red")] if with_errors else []),
            ])
        print_table(console.out, columns, cells, wide=wide)
    broken = [r for r in rows if r.get("error")]
    if broken:
        # The good specs are listed; a broken one still fails the command, so CI notices.
        from envctl.errors import BrokenSpecError

        more = f" ({len(broken) - 1} more broken: {', '.join(r['name'] for r in broken[1:])})" if broken[1:] else ""
        error = BrokenSpecError(broken[0]["error"] + more, hint=broken[0]["hint"] or "fix the spec named above")
        if json_out:  # the rows carry the errors: stdout stays one JSON document
            console.error(str(error), error.hint)
            raise typer.Exit(error.exit_code)
        raise error


def show(name: str = typer.Argument(..., help="Image name, e.g. pytorch-2.8-cu126."),
         json_out: bool = JSON_OPT) -> None:
    """Show the resolved spec of an image and what the release matrix says about it."""
    from envctl.catalog import find_project
    from envctl.overview import describe

    info = describe(find_project(), name)
    if json_out:
        console.print_json(info)
        return
    spec, m = info["spec"], info["matrix"]
    rows = [
        ("image", spec["name"]),
        ("description", spec["description"] or "-"),
        *([("derived", f"from the release matrix: no {info['derived']['writes']} (envctl lock writes it); "
                       f"torch from {spec['torch_source']}: {info['derived']['why']}")] if info["derived"] else []),
        ("torch", f"{spec['torch']} from {spec['torch_source']}"),
        ("cuda", f"{spec['cuda']} ({m['status']})" + (f", cuDNN {m['cudnn']}" if m["cudnn"] else "")),
        ("python", f"{spec['python']} from {spec['python_source']} (torch {m['torch_minor']} supports "
                   f"{m['python_range'][0]} - {m['python_range'][1]})"),
        ("variants", ", ".join(m["variants"])),
        ("gpu arches", (", ".join(m["arch_list"]) + (" +PTX" if m["ptx"] else "")) or "- (CPU build)"),
        ("min driver", m["min_driver"] or "- (CPU build)"),
        ("companions", f"torchvision {m['torchvision']}, torchaudio {m['torchaudio']}"),
        ("base", spec["base"]),
        ("platforms", ", ".join(spec["platforms"])),
        ("channels", ", ".join(spec["channels"]) or "-"),
        ("conda", ", ".join(info["conda_specs"]) or "-"),
        ("pip", ", ".join(info["pip_requirements"]) or "-"),
        ("pip index", info["pip_index"]),
        ("lock", f"{info['lock']['state']} ({info['lock']['path']})"),
        *([("cuda libs", ", ".join(f"{k} {v}" for k, v in info["cuda_libraries"].items()))]
          if info["cuda_libraries"] else []),
        # Two hashes, two names: the lock header's "spec inputs" is the lock inputs hash, never the
        # content hash, so a current lock does not look stale beside it.
        ("content hash", f"{info['spec_hash']} (what the image is made of; its labels carry it)"),
        ("lock inputs hash", f"{info['lock_inputs_hash']} " + _inputs_note(info)),
    ]
    pairs = [(key, console.styled(value, console.STATUS_STYLES.get(info["lock"]["state"]) if key == "lock" else ""))
             for key, value in rows]
    console.out.print(render_record(pairs, width=console.out.width))


def _inputs_note(info: dict) -> str:
    recorded = info["lock_header_inputs_hash"]
    if recorded is None:
        return "(no lock records one yet)"
    if recorded == info["lock_inputs_hash"]:
        return "(the lock header's 'spec inputs': the same, the lock is current)"
    return f"(the lock header's 'spec inputs' is {recorded}: the lock is stale)"
