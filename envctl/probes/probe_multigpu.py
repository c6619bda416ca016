"""The multi-GPU checks: torch.distributed across every GPU the probe may use.

When the config allows several GPUs (``gpus`` "all" or a count >= 2) and torch sees two or
more, the probe starts one process per GPU itself (multigpu_rank.py run by this interpreter,
meeting at a FileStore in a private folder: no torchrun, no port), each with NCCL_DEBUG=INFO,
and reports four named checks:

    multi-gpu all-reduce   an all-reduce whose exact sum is known, checked on every rank
    multi-gpu bandwidth    timed all-reduces (256 MiB, and 1 GiB from the standard level) as
                           bus bandwidth, nccl-tests' busbw = 2*(n-1)/n * bytes / time; far
                           under the reference (probe_nccl.py) is a warning, never a failure
    multi-gpu p2p          torch.cuda.can_device_access_peer for each ordered pair
    nccl                   NCCL's version and the transport it chose, from its INFO lines

The ranks always run with NVLink multicast off (CHILD_ENV): on shared hosts NVLS can take the
GPUs out of service. A hard deadline bounds them: a rank that dies makes the others stop, and
ranks still running at the deadline are killed; either is one failed line, never a hung
probe. With one GPU or none every check is skipped with the reason. The config's
``multi_gpu`` object can ask for the gloo backend on the CPU (the CI tests run the same code
with 2 processes), other sizes, iterations, deadline or reference. Measurements go in the
JSON's ``multi_gpu`` section. Part of the in-image smoke probe (see smoke.py): standard
library and torch only, Python >= 3.9.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from probe_nccl import WARN_FRACTION, describe_transports, parse_nccl_log, reference_for
from probe_report import check

RANK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multigpu_rank.py")
CHECK_NAMES = ("multi-gpu all-reduce", "multi-gpu bandwidth", "multi-gpu p2p", "nccl")
# NVLink multicast (NVLS, and torch's symmetric memory built on it) off in every rank.
CHILD_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
NCCL_LOG_ENV = {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT,ENV"}  # INIT has the "via" lines
LEVEL_SIZES_MIB = {"quick": [256], "standard": [256, 1024], "full": [256, 1024]}
LEVEL_ITERS = {"quick": (2, 5), "standard": (5, 20), "full": (5, 50)}  # (warm-up, timed)
# torch imports, NCCL set-up on 8 GPUs and every timed all-reduce, with room; inside the whole
# probe's own limit at each level (envctl/probe.py TIMEOUTS: quick 300 s), so a hung rank costs
# one failed line, never the probe's report
DEADLINE_S = {"quick": 90, "standard": 240, "full": 240}
SHM_FLOOR = 256 * 2 ** 20  # a /dev/shm smaller than this (Docker's is 64 MiB) is named when NCCL fails
CONFIG_KEYS = ("backend", "world_size", "sizes_mib", "warmup", "iters", "deadline_s",
               "reference_busbw_gbs")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def config_notes(mg):
    """Validate the config's ``multi_gpu`` object: ValueError on a bad value, notes for unknown keys."""
    if not isinstance(mg, dict):
        raise ValueError("multi_gpu must be an object")
    if mg.get("backend", "nccl") not in ("nccl", "gloo"):
        raise ValueError('multi_gpu.backend must be "nccl" or "gloo" (gloo runs on the CPU)')
    if "world_size" in mg and not (_is_int(mg["world_size"]) and mg["world_size"] >= 2):
        raise ValueError("multi_gpu.world_size must be an integer >= 2")
    sizes = mg.get("sizes_mib")
    if sizes is not None and not (isinstance(sizes, list) and sizes and all(_is_int(s) and s > 0 for s in sizes)):
        raise ValueError("multi_gpu.sizes_mib must be a non-empty list of positive integers (MiB)")
    for key, low in (("warmup", 0), ("iters", 1)):
        if key in mg and not (_is_int(mg[key]) and mg[key] >= low):
            raise ValueError(f"multi_gpu.{key} must be an integer >= {low}")
    deadline = mg.get("deadline_s")
    if deadline is not None and not (isinstance(deadline, (int, float)) and not isinstance(deadline, bool)
                                     and deadline > 0):
        raise ValueError("multi_gpu.deadline_s must be a positive number of seconds")
    ref = mg.get("reference_busbw_gbs")
    if ref is not None and not (isinstance(ref, dict) and all(
            str(k).isdigit() and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for k, v in ref.items())):
        raise ValueError('multi_gpu.reference_busbw_gbs must map sizes in MiB to GB/s, e.g. {"1024": 350}')
    return [f"unknown multi_gpu key {k!r} ignored" for k in mg if k not in CONFIG_KEYS]


def plan(cfg, level, env):
    """(settings, None) when the multi-GPU checks run, or (None, why they are skipped)."""
    mg = cfg.get("multi_gpu") or {}
    backend = mg.get("backend", "nccl")
    if backend == "nccl":
        want = cfg.get("gpus", "all")
        visible = len(env.get("gpus") or []) if env.get("cuda_available") else 0
        if want == "none" or want == 0 or want == 1:
            return None, f"gpus is {want}: the multi-GPU checks need 2 or more (--gpus all or a count >= 2)"
        if visible < 2:
            seen = "no GPU visible" if visible == 0 else "1 GPU visible"
            return None, f"{seen}: the multi-GPU checks need 2 or more"
        world = visible if want == "all" else min(want, visible)
        world = min(world, mg.get("world_size", world))
    else:
        world = mg.get("world_size", 2)
    warmup, iters = LEVEL_ITERS[level]
    return {"backend": backend, "world_size": world, "sizes_mib": list(mg.get("sizes_mib") or LEVEL_SIZES_MIB[level]),
            "warmup": mg.get("warmup", warmup), "iters": mg.get("iters", iters),
            "deadline_s": mg.get("deadline_s", DEADLINE_S[level]),
            "reference_busbw_gbs": mg.get("reference_busbw_gbs")}, None


# --------------------------------------------------------------------------- the ranks


def child_env(backend):
    """What the probe sets in every rank's environment, whatever the caller's says."""
    if backend == "nccl":
        return dict(CHILD_ENV, **NCCL_LOG_ENV)
    # one host: gloo's pairs over loopback, even where there is no other network
    return dict(CHILD_ENV, GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))


def dev_shm_bytes():
    """The size of /dev/shm, where NCCL keeps its buffers between GPUs of one node (None: no such mount)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return st.f_frsize * st.f_blocks


def shm_hint(error, backend, shm):
    """A failed NCCL run's line, naming /dev/shm where it is smaller than NCCL needs."""
    if error and backend == "nccl" and shm is not None and shm < SHM_FLOOR:
        return f"{error} (/dev/shm is {shm // 2 ** 20} MiB, too small for NCCL between GPUs: run with --shm-size=2g)"
    return error


def _stop(proc):
    """Kill a rank, then reap it. The ranks stay in the probe's process group (they start no
    children of their own), so whoever kills the probe's group kills them too."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _last_line(text):
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"


def run_ranks(settings, workdir, *, ranks=None):
    """Run the ranks (all of them unless ``ranks`` names some) until each exits or the deadline;
    returns (their JSON outputs by rank, their stderr by rank, one error line or None)."""
    world = settings["world_size"]
    job = {k: settings[k] for k in ("backend", "sizes_mib", "warmup", "iters", "deadline_s")}
    job["store"] = os.path.join(workdir, "store")
    job["env_keys"] = sorted(child_env(settings["backend"]))  # each rank reports what it ran with
    job_path = os.path.join(workdir, "job.json")
    with open(job_path, "w") as fh:
        json.dump(job, fh)
    env = dict(os.environ, **child_env(settings["backend"]))
    procs = {}
    hung, died = [], []
    try:  # whatever ends this (a rank that will not start, Ctrl-C), no rank outlives it
        for rank in (range(world) if ranks is None else ranks):
            with open(os.path.join(workdir, f"rank{rank}.out"), "wb") as out, \
                    open(os.path.join(workdir, f"rank{rank}.err"), "wb") as err:
                procs[rank] = subprocess.Popen(
                    [sys.executable, "-B", RANK_SCRIPT, job_path], stdin=subprocess.DEVNULL, stdout=out,
                    stderr=err, env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)))
        deadline = time.monotonic() + settings["deadline_s"]
        while True:
            codes = {rank: p.poll() for rank, p in procs.items()}
            running = [rank for rank, code in codes.items() if code is None]
            died = [rank for rank, code in codes.items() if code not in (None, 0)]
            if not running or died:  # with one dead, the others would wait for it until their own timeout
                break
            if time.monotonic() >= deadline:
                hung = running
                break
            time.sleep(0.05)
    finally:
        for proc in procs.values():
            _stop(proc)
    outputs, logs = {}, {}
    for rank in procs:
        with open(os.path.join(workdir, f"rank{rank}.err"), errors="replace") as fh:
            logs[rank] = fh.read()
        with open(os.path.join(workdir, f"rank{rank}.out"), errors="replace") as fh:
            text = fh.read().strip()
        try:
            outputs[rank] = json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            outputs[rank] = None
    return outputs, logs, _error_line(settings, procs, outputs, logs, hung, died)


def _ranks(ranks):
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(str(r) for r in ranks)}"


def _error_line(settings, procs, outputs, logs, hung, died):
    if died:
        rank = died[0]
        out = outputs.get(rank) or {}
        why = out.get("error") or f"exited {procs[rank].returncode}: {_last_line(logs[rank])}"
        return f"rank {rank} of {settings['world_size']} failed ({settings['backend']}): {why}"
    if hung:
        missing = sorted(set(range(settings["world_size"])) - set(procs))
        never = f"; {_ranks(missing)} never started" if missing else ""
        return (f"{_ranks(hung)} of {settings['world_size']} still running at the {settings['deadline_s']}s "
                f"deadline, killed{never}; rank {hung[0]}'s last line: {_last_line(logs[hung[0]])}")
    if len(outputs) < settings["world_size"]:
        return f"only {len(outputs)} of {settings['world_size']} ranks ran"
    silent = [rank for rank, out in outputs.items() if out is None]
    if silent:
        return f"rank {silent[0]} exited 0 but printed no result: {_last_line(logs[silent[0]])}"
    return None


# --------------------------------------------------------------------------- the checks


def bandwidth_rows(settings, outputs):
    """Per size: the slowest rank's mean time, algbw = bytes / time and busbw = 2*(n-1)/n * algbw."""
    n = settings["world_size"]
    rows = []
    for size in settings["sizes_mib"]:
        times = [outputs[rank]["times_s"][str(size)] for rank in sorted(outputs)]
        size_bytes = size * 2 ** 20
        seconds = max(times)
        algbw = size_bytes / seconds / 1e9
        rows.append({"size_mib": size, "bytes": size_bytes, "time_s": seconds, "rank_times_s": times,
                     "algbw_gbs": round(algbw, 3), "busbw_gbs": round(algbw * 2 * (n - 1) / n, 3)})
    return rows


def peer_matrix(world):
    """can_device_access_peer for each ordered pair (None on the diagonal)."""
    import torch

    return [[None if i == j else bool(torch.cuda.can_device_access_peer(i, j)) for j in range(world)]
            for i in range(world)]


def sum_check(settings, outputs, error):
    if error:
        return check(CHECK_NAMES[0], "fail", error)
    for rank in sorted(outputs):
        s = outputs[rank]["sum"]
        if not s["ok"]:
            return check(CHECK_NAMES[0], "fail",
                         f"rank {rank}: element {s['index']} summed to {s['got']:g}, expected {s['expected']:g} "
                         f"({s['wrong']} of {s['elements']} elements wrong, {settings['backend']})")
    first = max(o["first_all_reduce_s"] for o in outputs.values())
    return check(CHECK_NAMES[0], "pass",
                 f"{settings['world_size']} ranks ({settings['backend']}): the sum of {s['elements']} elements "
                 f"exact on every rank (first call {first:.2f}s, set-up included)")


def bandwidth_check(settings, rows, reference, source):
    if not rows:
        return check(CHECK_NAMES[1], "skip", "not measured: the ranks did not finish (see multi-gpu all-reduce)")
    measured = ", ".join(f"{r['size_mib']} MiB {r['busbw_gbs']:.1f} GB/s" for r in rows)
    low = [(r, reference[str(r["size_mib"])]) for r in rows
           if reference and str(r["size_mib"]) in reference
           and r["busbw_gbs"] < WARN_FRACTION * reference[str(r["size_mib"])]]
    if low:
        r, ref = low[0]
        return check(CHECK_NAMES[1], "warn",
                     f"busbw {r['busbw_gbs']:.1f} GB/s at {r['size_mib']} MiB is under {WARN_FRACTION:.0%} of "
                     f"the reference {ref:.1f} GB/s ({source}); all: {measured}")
    against = f"reference: {source}" if reference else source
    return check(CHECK_NAMES[1], "pass", f"busbw {measured} over {settings['world_size']} ranks; {against}")


def p2p_check(p2p):
    if p2p is None:
        return check(CHECK_NAMES[2], "skip", "backend gloo on the CPU: no GPUs to pair")
    lacking = [f"{i}->{j}" for i, row in enumerate(p2p) for j, ok in enumerate(row) if ok is False]
    if lacking:
        return check(CHECK_NAMES[2], "warn", f"no peer access {', '.join(lacking)} of {len(p2p)} GPUs: "
                                             f"NCCL goes through host memory or the network there")
    return check(CHECK_NAMES[2], "pass", f"peer access between every ordered pair of the {len(p2p)} GPUs")


def nccl_check(settings, version, found, error=None):
    if settings["backend"] != "nccl":
        return check(CHECK_NAMES[3], "skip", f"backend {settings['backend']}: NCCL not used (torch's NCCL {version})")
    if not found["transports"] and error:
        return check(CHECK_NAMES[3], "skip", f"NCCL {version}: no transport chosen before the ranks stopped "
                                             f"(see multi-gpu all-reduce)")
    if not found["transports"]:
        return check(CHECK_NAMES[3], "warn", f"NCCL {version}: no transport in the ranks' NCCL_DEBUG=INFO lines")
    chosen = describe_transports(found)
    if found["nvls_used"]:
        return check(CHECK_NAMES[3], "warn", f"NCCL {version} used NVLink multicast (NVLS) although the probe "
                                             f"set NCCL_NVLS_ENABLE=0: {chosen}")
    if any(name.startswith("NET/") for name in found["transports"]):
        return check(CHECK_NAMES[3], "warn", f"NCCL {version} went over the network between GPUs of one node: "
                                             f"{chosen}")
    return check(CHECK_NAMES[3], "pass", f"NCCL {version}: {chosen}; NVLS off")


def multi_gpu_checks(cfg, level, env, *, ranks=None):
    """The four named checks, in report order, and the JSON's ``multi_gpu`` section. ``ranks``:
    start only these (the tests leave one out, and the others wait for it: a hung rank)."""
    settings, why = plan(cfg, level, env)
    version = env.get("nccl") or "not in this torch"
    if settings is None:
        return ([check(name, "skip", why) for name in CHECK_NAMES[:3]]
                + [check(CHECK_NAMES[3], "skip", f"{why}; torch's NCCL {version}")],
                {"ran": False, "reason": why, "nccl_version": env.get("nccl")})
    workdir = tempfile.mkdtemp(prefix="envctl-multigpu-")
    start = time.perf_counter()
    try:
        outputs, logs, error = run_ranks(settings, workdir, ranks=ranks)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    shm = dev_shm_bytes()
    error = shm_hint(error, settings["backend"], shm)
    for rank in sorted(logs):  # the ranks' own output (NCCL's INFO lines) stays in the probe's stderr
        sys.stderr.write(logs[rank])
    nccl = settings["backend"] == "nccl"
    found = parse_nccl_log("\n".join(logs.values())) if nccl else None
    rows = [] if error else bandwidth_rows(settings, outputs)
    gpu = (env.get("gpus") or [{}])[0].get("name", "?") if nccl else "cpu"
    reference, source = reference_for(settings, gpu)
    p2p = peer_matrix(settings["world_size"]) if nccl else None
    section = {"ran": True, "backend": settings["backend"], "world_size": settings["world_size"], "gpu": gpu,
               "child_env": child_env(settings["backend"]),
               "warmup": settings["warmup"], "iters": settings["iters"], "deadline_s": settings["deadline_s"],
               "seconds": round(time.perf_counter() - start, 3), "error": error, "dev_shm_bytes": shm,
               "all_reduce": {str(rank): (o or {}).get("sum") for rank, o in sorted(outputs.items())},
               "rank_env": {str(rank): (o or {}).get("env") for rank, o in sorted(outputs.items())},
               "bandwidth": rows, "reference": {"busbw_gbs": reference, "source": source,
                                                "warn_fraction": WARN_FRACTION},
               "nccl_version": env.get("nccl"), "transport": found, "p2p": p2p}
    checks = [sum_check(settings, outputs, error), bandwidth_check(settings, rows, reference, source),
              p2p_check(p2p), nccl_check(settings, version, found, error)]
    return checks, section

