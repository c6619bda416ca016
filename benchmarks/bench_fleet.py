"""What Slurm adds over running the same container by hand, on the one-node cluster of
scripts/slurm-up.sh: submission, scheduling and collection of one tiny task, and four tasks as
one array against the same four run one after another; then the same for the real thing, the
verify --quick probe task of pytorch-2.13-cpu (built first with `envctl build` when missing).

    python benchmarks/bench_fleet.py [--repeat 3] [--image envctl/debian:bookworm-minimal]
                                     [--verify-repeat 1] [--no-verify]

"By hand" runs the task's own `docker run` line (envctl.executors.local.docker_run_argv) from a
shell; "Slurm" is run_tasks with the SlurmExecutor (sbatch, squeue polling, reading the task's
folder). Each figure is the median of --repeat runs. Goals (issue #24): under 10 s added per
job; an array of four at most 1.2x the four run by hand one after another (side by side, it
should be faster: the node runs them at once).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from envctl.executors import Task, run_tasks  # noqa: E402
from envctl.executors.local import docker_run_argv  # noqa: E402
from envctl.executors.slurm import SlurmExecutor, SlurmOptions  # noqa: E402


def by_hand(tasks: list[Task]) -> float:
    """Each task's docker run line, one after another."""
    start = time.monotonic()
    for task in tasks:
        subprocess.run(docker_run_argv(task), check=True, capture_output=True)
    return time.monotonic() - start


def on_slurm(tasks: list[Task], spool: Path) -> float:
    start = time.monotonic()
    results = run_tasks(SlurmExecutor(SlurmOptions(spool=spool)), tasks)
    assert all(r.exit_code == 0 and r.error is None for r in results), [(r.exit_code, r.error) for r in results]
    return time.monotonic() - start


def verify_task(config_dir: Path) -> Task:
    """The probe task `envctl verify pytorch-2.13-cpu --quick` runs (the verify workflow's own plan)."""
    from envctl.catalog import Project
    from envctl.executors import LocalEngine
    from envctl.verify import plan_verify, probe_task_of

    subprocess.run([sys.executable, "-m", "envctl", "build", "pytorch-2.13-cpu"], check=True, capture_output=True,
                   cwd=HERE.parent)
    plan = plan_verify(Project(HERE.parent), "pytorch-2.13-cpu", executor=LocalEngine(), gpus="none", level="quick")
    return probe_task_of(plan, config_dir)


def median(fn, repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image", default="envctl/debian:bookworm-minimal")
    parser.add_argument("--verify-repeat", type=int, default=1, help="runs of the verify rows (about 2 min each)")
    parser.add_argument("--no-verify", action="store_true", help="only the tiny and the 3-s task")
    args = parser.parse_args()
    subprocess.run(["bash", str(HERE.parent / "scripts" / "slurm-up.sh")], check=True, capture_output=True)
    tiny = Task(name="tiny", image=args.image, command=("python3", "-c", "print('ok')"))
    sleeper = Task(name="sleep3", image=args.image, command=("python3", "-c", "import time; time.sleep(3)"))
    with tempfile.TemporaryDirectory(prefix="envctl-bench-fleet-") as tmp:
        spool = Path(tmp)
        rows = []
        cases = [("tiny task (python3 -c print)", tiny, args.repeat),
                 ("3-s task (sleep in python3)", sleeper, args.repeat)]
        if not args.no_verify:
            (spool / "verify").mkdir()
            cases.append(("verify --quick (2.13-cpu probe)", verify_task(spool / "verify"), args.verify_repeat))
        for label, task, repeat in cases:
            hand1 = median(lambda: by_hand([task]), repeat)
            slurm1 = median(lambda: on_slurm([task], spool), repeat)
            four = [replace(task, name=f"{task.name}{i}") for i in range(4)]
            hand4 = median(lambda: by_hand(four), repeat)
            slurm4 = median(lambda: on_slurm(four, spool), repeat)
            rows.append((label, hand1, slurm1, hand4, slurm4))
    print(f"{'':30} {'by hand':>9} {'Slurm':>9} {'added':>8}   {'4 serial':>9} {'4 array':>9} {'array/serial':>13}")
    for label, hand1, slurm1, hand4, slurm4 in rows:
        print(f"{label:30} {hand1:8.2f}s {slurm1:8.2f}s {slurm1 - hand1:+7.2f}s   {hand4:8.2f}s {slurm4:8.2f}s "
              f"{slurm4 / hand4:12.2f}x")
    cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"median of {args.repeat} runs ({args.verify_repeat} of the verify rows); one node, {cpus} CPUs. Goals: under 10 s added per job; "
          f"an array of 4 at most 1.2x the 4 by hand one after another")
    for label, hand1, slurm1, hand4, slurm4 in rows:
        added, ratio = slurm1 - hand1, slurm4 / hand4
        print(f"  {label}: added {added:+.2f} s ({'met' if added < 10 else 'MISSED'}), "
              f"array/serial {ratio:.2f}x ({'met' if ratio <= 1.2 else 'MISSED'})")

if __name__ == "__main__":
    main()
