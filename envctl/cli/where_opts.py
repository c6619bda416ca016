"""The "where it runs" options, defined once for every command that runs on the fleet (``verify``,
``compat run``, ``matrix verify``; ``smoke`` takes the Slurm ones): ``--on`` with its Slurm and
Kubernetes options, ``--target``/``--all-targets`` from fleet.yaml, ``--registry``; and the calls
that turn them into the executor's settings (``executor_options``) and fleet targets
(``chosen_targets``, with the ``--registry`` check that goes with them)."""

from __future__ import annotations

from typing import Any, Optional

import typer

ON_OPT = typer.Option(None, "--on", help="Where to run: local, slurm or kubernetes.", rich_help_panel="Where it runs")
TARGET_OPT = typer.Option(None, "--target", metavar="NAME", help="A target of fleet.yaml (repeatable).",
                          rich_help_panel="Where it runs")
ALL_TARGETS_OPT = typer.Option(False, "--all-targets", help="Every target of fleet.yaml.",
                               rich_help_panel="Where it runs")
REGISTRY_OPT = typer.Option(None, "--registry", metavar="HOST[:PORT][/PREFIX]",
                            help="Push there first (remote targets run the image by digest).",
                            rich_help_panel="Where it runs")
PARTITION_OPT = typer.Option(None, "--partition", help="Slurm partition.", rich_help_panel="Slurm")
GRES_OPT = typer.Option(None, "--gres", metavar="gpu[:TYPE]:N", help="Slurm GRES.", rich_help_panel="Slurm")
CONSTRAINT_OPT = typer.Option(None, "--constraint", help="Slurm node features.", rich_help_panel="Slurm")
NODELIST_OPT = typer.Option(None, "--nodelist", help="Slurm nodes.", rich_help_panel="Slurm")
TIME_OPT = typer.Option(None, "--time", help="Slurm time limit, e.g. 00:20:00.", rich_help_panel="Slurm")
ACCOUNT_OPT = typer.Option(None, "--account", help="Slurm account.", rich_help_panel="Slurm")
WAIT_OPT = typer.Option(None, "--wait", metavar="SECONDS", help="Give up on a job still pending after SECONDS.",
                        rich_help_panel="Slurm and Kubernetes")
CONTEXT_OPT = typer.Option(None, "--context", help="kubeconfig context.", rich_help_panel="Kubernetes")
NAMESPACE_OPT = typer.Option(None, "--namespace", help="Kubernetes namespace.", rich_help_panel="Kubernetes")
GPU_PRODUCT_OPT = typer.Option(None, "--gpu-product", metavar="PRODUCT",
                               help="GPU feature discovery's nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3.",
                               rich_help_panel="Kubernetes")


def executor_options(*, on: Optional[str], gpus: Optional[str] = None, partition: Optional[str],
                     gres: Optional[str], constraint: Optional[str], nodelist: Optional[str],
                     time_limit: Optional[str], account: Optional[str], wait: Optional[float],
                     context: Optional[str] = None, namespace: Optional[str] = None,
                     gpu_product: Optional[str] = None) -> dict[str, Any]:
    """The executor's settings as the command line gives them (None where not), under fleet.yaml's
    names; ``gpus``, a count with ``--on kubernetes``, becomes the Job's nvidia.com/gpu limit."""
    options = dict(partition=partition, gres=gres, constraint=constraint, nodelist=nodelist, time=time_limit,
                   account=account, wait=wait, context=context, namespace=namespace, gpu_product=gpu_product)
    if on == "kubernetes" and gpus not in (None, "all", "none"):
        options["gpus"] = int(gpus) if gpus.isdigit() else gpus  # not a count: the fleet's check says so
    return options


def chosen_targets(project=None, *, on: Optional[str], targets: Optional[list[str]], all_targets: bool,
                   gpus: Optional[str] = None, registry: Optional[str] = None, never_pushed: Optional[str] = None,
                   **given: Any) -> list:
    """The fleet targets the command line names (``envctl.fleet.select_targets``); none for this
    machine. ``given``: the executor options as ``executor_options`` takes them; ``project`` is
    found only when a place is named.  ``never_pushed``: what runs with no push of its own (the
    images a sweep builds), for which a remote target needs ``--registry``, and only there."""
    options = executor_options(on=on, gpus=gpus, **given)
    chosen = []
    if on is not None or targets or all_targets or any(v is not None for v in options.values()):
        from envctl.fleet import select_targets

        if project is None:
            from envctl.catalog import find_project

            project = find_project()
        chosen = select_targets(project, on=on, options=options, names=targets or (), all_targets=all_targets)
    if never_pushed is not None:
        _check_registry(chosen, registry, never_pushed=never_pushed)
    return chosen


def _check_registry(targets: list, registry: Optional[str], *, never_pushed: str) -> None:
    """A remote target runs each image from a registry: ``--registry`` for what was never pushed."""
    from envctl.errors import UsageError
    from envctl.registry import Registry

    remote = [t for t in targets if t.on != "local"]
    if remote and registry is None:
        where = f"--on {remote[0].on}" if remote[0].name == remote[0].on else f"target {remote[0].name} ({remote[0].on})"
        raise UsageError(f"{where} runs each image from a registry, and {never_pushed} were never pushed: give "
                         f"--registry", hint="e.g. --registry 127.0.0.1:5000/envctl (scripts/registry-up.sh starts "
                                             "one here)")
    if registry is not None and not remote:
        raise UsageError(f"--registry {registry} applies only to a remote target",
                         hint="add --on slurm, --on kubernetes or a --target of fleet.yaml, or leave --registry out")
    if registry is not None:
        Registry.parse(registry)  # a malformed one is one line now, not a failure in every use of it
