"""What Slurm adds over running the same container by hand, on the one-node cluster of
scripts/slurm-up.sh: submission, scheduling and collection of one tiny task, and four tasks as
one array against the same four run one after another.

    python benchmarks/bench_fleet.py [--repeat 3] [--image envctl/debian:bookworm-minimal]

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


def median(fn, repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image", default="envctl/debian:bookworm-minimal")
    args = parser.parse_args()
    subprocess.run(["bash", str(HERE.parent / "scripts" / "slurm-up.sh")], check=True, capture_output=True)
    tiny = Task(name="tiny", image=args.image, command=("python3", "-c", "print('ok')"))
    sleeper = Task(name="sleep3", image=args.image, command=("python3", "-c", "import time; time.sleep(3)"))
    with tempfile.TemporaryDirectory(prefix="envctl-bench-fleet-") as tmp:
        spool = Path(tmp)
        rows = []
        for label, task in (("tiny task (python3 -c print)", tiny), ("3-s task (sleep in python3)", sleeper)):
            hand1 = median(lambda: by_hand([task]), args.repeat)
            slurm1 = median(lambda: on_slurm([task], spool), args.repeat)
            four = [Task(name=f"{task.name}{i}", image=task.image, command=task.command) for i in range(4)]
            hand4 = median(lambda: by_hand(four), args.repeat)
            slurm4 = median(lambda: on_slurm(four, spool), args.repeat)
            rows.append((label, hand1, slurm1, hand4, slurm4))
    print(f"{'':30} {'by hand':>9} {'Slurm':>9} {'added':>8}   {'4 serial':>9} {'4 array':>9} {'array/serial':>13}")
    for label, hand1, slurm1, hand4, slurm4 in rows:
        print(f"{label:30} {hand1:8.2f}s {slurm1:8.2f}s {slurm1 - hand1:+7.2f}s   {hand4:8.2f}s {slurm4:8.2f}s "
              f"{slurm4 / hand4:12.2f}x")
    cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"median of {args.repeat} runs; one node, {cpus} CPUs. Goals: under 10 s added per job; "
          f"an array of 4 at most 1.2x the 4 by hand one after another")
    for label, hand1, slurm1, hand4, slurm4 in rows:
        added, ratio = slurm1 - hand1, slurm4 / hand4
        print(f"  {label}: added {added:+.2f} s ({'met' if added < 10 else 'MISSED'}), "
              f"array/serial {ratio:.2f}x ({'met' if ratio <= 1.2 else 'MISSED'})")

if __name__ == "__main__":
    main()
