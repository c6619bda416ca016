"""The "where it runs" options, defined once for every command that runs on the fleet (``verify``,
``compat run``, ``matrix verify``): ``--on`` with its Slurm and Kubernetes options,
``--target``/``--all-targets`` from fleet.yaml, ``--registry``; and the one call that turns them
into fleet targets."""

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


def chosen_targets(project, *, on: Optional[str], targets: Optional[list[str]], all_targets: bool,
                   **options: Any) -> list:
    """The fleet targets the command line names (``envctl.fleet.select_targets``); none for this
    machine. ``options``: the executor options as given (None when not)."""
    from envctl.fleet import select_targets

    return select_targets(project, on=on, options=options, names=targets or (), all_targets=all_targets)
