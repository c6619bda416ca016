"""One rank of the probe's multi-GPU check (its parent is probe_multigpu.py).

probe_multigpu starts this file once per GPU (or per CPU process with the gloo backend) with
RANK and WORLD_SIZE in the environment and a job file as its one argument: the backend, the
FileStore path every rank meets at, the all-reduce sizes, warm-up and timed iterations and the
deadline. The rank joins torch.distributed, checks an all-reduce whose exact sum is known, times
an all-reduce of each size, and prints one JSON object on stdout; everything else (NCCL's
NCCL_DEBUG=INFO lines included) goes to stderr, which the parent reads. Exit status 1 with an
"error" key when something raised. Standard library and torch only, Python >= 3.9.
"""
from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # the probe folder is mounted read-only

import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # not put there under -I
    sys.path.insert(0, _HERE)

from probe_report import error_line  # noqa: E402

SUM_ELEMENTS = 4096


def exact_sum(torch, dist, rank, world, device):
    """All-reduce a pattern times (rank + 1): every element's sum is pattern * n(n+1)/2, exactly
    (small integers in float32), so a dropped, doubled or misplaced chunk shows."""
    pattern = torch.arange(SUM_ELEMENTS, dtype=torch.float32) % 7 + 1
    t = (pattern * (rank + 1)).to(device)
    dist.all_reduce(t)
    got = t.cpu()
    want = pattern * (world * (world + 1) // 2)
    wrong = (got != want).nonzero().flatten()
    if len(wrong):
        i = int(wrong[0])
        return {"ok": False, "elements": SUM_ELEMENTS, "wrong": len(wrong), "index": i,
                "got": float(got[i]), "expected": float(want[i])}
    return {"ok": True, "elements": SUM_ELEMENTS, "total": float(want.sum())}


def time_all_reduce(torch, dist, size_mib, warmup, iters, device, sync):
    """Mean seconds per all-reduce of ``size_mib`` MiB of float32, after ``warmup`` untimed ones."""
    t = torch.zeros(size_mib * 2 ** 20 // 4, dtype=torch.float32, device=device)  # zeros never overflow
    for _ in range(warmup):
        dist.all_reduce(t)
    token = torch.zeros(1, device=device)
    dist.all_reduce(token)  # every rank starts the clock together
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(t)
    sync()
    seconds = (time.perf_counter() - start) / iters
    del t
    return seconds


def run(job, rank, world):
    import torch
    import torch.distributed as dist

    if job["backend"] == "nccl":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
        sync = torch.cuda.synchronize
    else:
        device = torch.device("cpu")

        def sync():
            return None

    store = dist.FileStore(job["store"], world)
    dist.init_process_group(job["backend"], store=store, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=job["deadline_s"]))
    try:
        start = time.perf_counter()
        summed = exact_sum(torch, dist, rank, world, device)
        first_s = time.perf_counter() - start  # with NCCL: the communicator is made by this first call
        times = {str(size): time_all_reduce(torch, dist, size, job["warmup"], job["iters"], device, sync)
                 for size in job["sizes_mib"]}
    finally:
        dist.destroy_process_group()
    return {"sum": summed, "first_all_reduce_s": round(first_s, 4), "times_s": times,
            "env": {key: os.environ.get(key) for key in job["env_keys"]}}


def main():
    out_fd = os.dup(1)
    os.dup2(2, 1)  # torch's and NCCL's output goes to stderr; stdout keeps the one JSON object
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    result, code = {"rank": rank}, 0
    try:
        with open(sys.argv[1]) as fh:
            result.update(run(json.load(fh), rank, world))
    except Exception as exc:
        result["error"], code = error_line(exc), 1
    os.write(out_fd, (json.dumps(result) + "\n").encode())
    return code


if __name__ == "__main__":
    sys.exit(main())
