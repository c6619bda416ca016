"""A task's container run as a ``docker run`` command line (pure): what the SDK call in
``client.Engine.run`` amounts to, shown as a plan, and what a job runs on a node with an engine."""

from __future__ import annotations

from envctl.executors.base import Task, multi_gpu_shm_gib


def docker_run_argv(task: Task) -> list[str]:
    """``docker run`` for a task: what the local engine does through the SDK, and what a Slurm
    job runs on a node with an engine (pure)."""
    argv = ["docker", "run", "--rm", f"--network={task.network}"]
    if task.gpus not in (None, "none", "0"):
        argv.append(f"--gpus={task.gpus}")
    shm = multi_gpu_shm_gib(task.gpus)
    if shm:
        argv.append(f"--shm-size={shm}g")
    for m in task.mounts:
        argv += ["--mount", f"type=bind,source={m.source},target={m.target},readonly"]
    for key, value in sorted(task.environment.items()):
        argv += ["-e", f"{key}={value}"]
    sb = task.sandbox
    if sb is not None:
        tmp = "rw,exec,nosuid,nodev,size=512m" if sb.exec_tmp else "rw,nosuid,nodev,size=512m"
        argv += ["--read-only", "--tmpfs", f"/tmp:{tmp}", "--user", "65534:65534", "--cap-drop=ALL",
                 "--security-opt=no-new-privileges", f"--memory={sb.mem_limit}", f"--pids-limit={sb.pids_limit}",
                 "-e", "HOME=/tmp"]
        if sb.nano_cpus:
            argv.append(f"--cpus={sb.nano_cpus / 1e9:g}")
    for key, value in sorted(task.labels.items()):
        argv += ["--label", f"{key}={value}"]
    return argv + [task.image, *task.command]
