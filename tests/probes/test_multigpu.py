"""Tests for the probe's multi-GPU checks (envctl/probes/probe_multigpu.py, multigpu_rank.py,
probe_nccl.py).

No test machine has two GPUs: the same code runs with the gloo backend on the CPU, two real
rank processes meeting at a real FileStore. A hung rank is made the way one hangs in life: a
rank the others wait for never comes. The NCCL log parser reads NCCL_DEBUG=INFO text in the
format NCCL 2.21 prints; the skip paths, the bandwidth arithmetic and the warn threshold are
pure functions of their inputs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBES = ROOT / "envctl" / "probes"

if str(PROBES) not in sys.path:  # imported by plain name, as smoke.py imports its siblings
    sys.path.insert(0, str(PROBES))
_saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # keep the probe folder pristine
import probe_multigpu as mg  # noqa: E402
import probe_nccl  # noqa: E402

sys.dont_write_bytecode = _saved

GLOO = {"backend": "gloo", "world_size": 2, "sizes_mib": [1, 4], "warmup": 1, "iters": 3}
CPU_ENV = {"gpus": [], "cuda_available": False, "nccl": None}


def by_name(checks):
    return {c["name"]: c for c in checks}


def _gpus(n, name="NVIDIA H100 80GB HBM3"):
    return {"gpus": [{"index": i, "name": name, "capability": "9.0"} for i in range(n)],
            "cuda_available": True, "nccl": "2.21.5"}


# --------------------------------------------------------------------------- real ranks (gloo)


@pytest.mark.torch
def test_two_gloo_ranks_sum_exactly_and_report_bus_bandwidth(monkeypatch):
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "1")  # the caller's environment never turns multicast on
    cfg = {"multi_gpu": dict(GLOO, reference_busbw_gbs={"1": 1e-6})}
    start = time.monotonic()
    checks, section = mg.multi_gpu_checks(cfg, "quick", CPU_ENV)
    assert time.monotonic() - start < 30
    c = by_name(checks)
    assert [x["name"] for x in checks] == list(mg.CHECK_NAMES)
    assert c["multi-gpu all-reduce"]["status"] == "pass", c["multi-gpu all-reduce"]
    assert c["multi-gpu all-reduce"]["message"].startswith("2 ranks (gloo): the sum of 4096 elements exact")
    assert c["multi-gpu bandwidth"]["status"] == "pass"
    assert "reference: the config's multi_gpu.reference_busbw_gbs" in c["multi-gpu bandwidth"]["message"]
    assert c["multi-gpu p2p"]["status"] == "skip" and c["nccl"]["status"] == "skip"
    assert section["ran"] is True and section["error"] is None and section["world_size"] == 2
    # every element summed to pattern * (1 + 2): the total is known exactly
    pattern_total = sum(i % 7 + 1 for i in range(4096))
    assert section["all_reduce"] == {str(r): {"ok": True, "elements": 4096, "total": 3.0 * pattern_total}
                                     for r in (0, 1)}
    for rank_env in section["rank_env"].values():
        assert rank_env["NCCL_NVLS_ENABLE"] == "0" and rank_env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
    assert section["child_env"]["NCCL_NVLS_ENABLE"] == "0"
    assert [r["size_mib"] for r in section["bandwidth"]] == [1, 4]
    for r in section["bandwidth"]:
        assert r["time_s"] == max(r["rank_times_s"]) > 0 and len(r["rank_times_s"]) == 2
        algbw = r["bytes"] / r["time_s"] / 1e9
        assert r["algbw_gbs"] == round(algbw, 3) and r["busbw_gbs"] == round(algbw * 2 * 1 / 2, 3)


@pytest.mark.torch
def test_far_under_the_reference_is_a_warning_naming_it():
    cfg = {"multi_gpu": dict(GLOO, sizes_mib=[1], reference_busbw_gbs={"1": 1e6})}
    checks, section = mg.multi_gpu_checks(cfg, "quick", CPU_ENV)
    bw = by_name(checks)["multi-gpu bandwidth"]
    assert bw["status"] == "warn", bw
    assert "at 1 MiB is under 50% of the reference 1000000.0 GB/s " \
           "(the config's multi_gpu.reference_busbw_gbs)" in bw["message"]
    assert not any(c["status"] == "fail" for c in checks)


@pytest.mark.torch
def test_a_hung_rank_is_killed_at_the_deadline_with_one_failed_line():
    # rank 1 never starts: rank 0 waits for it at the FileStore, as a rank waits on a hung NCCL
    cfg = {"multi_gpu": dict(GLOO, deadline_s=3)}
    start = time.monotonic()
    checks, section = mg.multi_gpu_checks(cfg, "quick", CPU_ENV, ranks=[0])
    assert time.monotonic() - start < 3 + 2
    failed = [c for c in checks if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["multi-gpu all-reduce"]
    msg = failed[0]["message"]
    assert "\n" not in msg
    assert msg.startswith("rank 0 of 2 still running at the 3s deadline, killed; rank 1 never started; "
                          "rank 0's last line: "), msg
    assert by_name(checks)["multi-gpu bandwidth"]["message"].startswith("not measured")
    assert section["error"] == msg and section["bandwidth"] == []


@pytest.mark.torch
def test_the_killed_rank_is_gone(tmp_path):
    settings, _ = mg.plan({"multi_gpu": dict(GLOO, deadline_s=2)}, "quick", CPU_ENV)
    _, _, error = mg.run_ranks(settings, str(tmp_path), ranks=[0])
    assert "killed" in error
    job = str(tmp_path / "job.json")
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if job.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                left.append(pid)
        except OSError:
            pass
    assert left == []


@pytest.mark.torch
def test_a_rank_that_fails_stops_the_others_with_one_line(monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "envctl-no-such-if")  # gloo cannot make its pairs
    checks, section = mg.multi_gpu_checks({"multi_gpu": dict(GLOO, deadline_s=60)}, "quick", CPU_ENV)
    failed = [c for c in checks if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["multi-gpu all-reduce"]
    assert failed[0]["message"].startswith("rank ")
    assert " of 2 failed (gloo): RuntimeError: " in failed[0]["message"]
    assert "envctl-no-such-if" in failed[0]["message"]


# --------------------------------------------------------------------------- skips and plans


@pytest.mark.parametrize("cfg, env, reason", [
    ({"gpus": "all"}, _gpus(1), "1 GPU visible: the multi-GPU checks need 2 or more"),
    ({"gpus": "all"}, CPU_ENV, "no GPU visible: the multi-GPU checks need 2 or more"),
    ({"gpus": 1}, _gpus(4), "gpus is 1: the multi-GPU checks need 2 or more (--gpus all or a count >= 2)"),
    ({"gpus": "none"}, _gpus(4), "gpus is none: the multi-GPU checks need 2 or more (--gpus all or a count >= 2)"),
])
def test_one_gpu_or_none_skips_every_check_with_the_reason(cfg, env, reason):
    checks, section = mg.multi_gpu_checks(cfg, "standard", env)
    assert [c["status"] for c in checks] == ["skip"] * 4
    assert all(c["message"].startswith(reason) for c in checks)
    assert section == {"ran": False, "reason": reason, "nccl_version": env["nccl"]}


def test_the_level_sets_the_sizes_and_the_count_sets_the_world():
    quick, _ = mg.plan({"gpus": "all"}, "quick", _gpus(8))
    standard, _ = mg.plan({"gpus": 2}, "standard", _gpus(8))
    assert (quick["backend"], quick["world_size"], quick["sizes_mib"]) == ("nccl", 8, [256])
    assert (standard["world_size"], standard["sizes_mib"]) == (2, [256, 1024])
    assert mg.child_env("nccl") == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                                    "NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT,ENV"}


# --------------------------------------------------------------------------- arithmetic and threshold


def test_bus_bandwidth_is_the_nccl_tests_definition_over_the_slowest_rank():
    settings = {"world_size": 4, "sizes_mib": [256]}
    outputs = {r: {"times_s": {"256": t}} for r, t in enumerate([0.010, 0.020, 0.015, 0.012])}
    (row,) = mg.bandwidth_rows(settings, outputs)
    assert row["time_s"] == 0.020 and row["bytes"] == 268435456
    assert row["algbw_gbs"] == round(268435456 / 0.020 / 1e9, 3) == 13.422
    assert row["busbw_gbs"] == round(13.4217728 * 2 * 3 / 4, 3) == 20.133


@pytest.mark.parametrize("busbw, status", [(124.9, "warn"), (125.0, "pass"), (300.0, "pass")])
def test_warn_only_far_under_the_reference(busbw, status):
    rows = [{"size_mib": 1024, "busbw_gbs": busbw}]
    c = mg.bandwidth_check({"world_size": 8}, rows, {"1024": 250.0}, "first H100 x8 run")
    assert c["status"] == status
    assert "first H100 x8 run" in c["message"]


def test_no_reference_says_so(tmp_path):
    table = tmp_path / "ref.json"
    table.write_text(json.dumps({"version": 1, "references": [
        {"gpu": "NVIDIA H100 80GB HBM3", "world_size": 8, "backend": "nccl", "busbw_gbs": {"1024": 360.0},
         "source": "first run, 2026-12-07"}]}))
    settings = {"world_size": 2, "backend": "nccl"}
    assert probe_nccl.reference_for(dict(settings, world_size=8), "NVIDIA H100 80GB HBM3", str(table)) == \
        ({"1024": 360.0}, "first run, 2026-12-07")
    ref, why = probe_nccl.reference_for(settings, "NVIDIA H100 80GB HBM3", str(table))
    assert ref is None and why == "no reference for NVIDIA H100 80GB HBM3 x2 (nccl) in ref.json or the config"
    c = mg.bandwidth_check(settings, [{"size_mib": 256, "busbw_gbs": 80.0}], ref, why)
    assert c == {"name": "multi-gpu bandwidth", "status": "pass",
                 "message": f"busbw 256 MiB 80.0 GB/s over 2 ranks; {why}"}


def test_p2p_names_the_pairs_that_lack_it():
    assert mg.p2p_check([[None, True], [True, None]])["status"] == "pass"
    c = mg.p2p_check([[None, True, False], [True, None, True], [False, True, None]])
    assert c["status"] == "warn" and c["message"].startswith("no peer access 0->2, 2->0 of 3 GPUs")


# --------------------------------------------------------------------------- NCCL's INFO lines

P2P_NODE = """\
h100:2043:2043 [0] NCCL INFO Bootstrap : Using lo:127.0.0.1<0>
h100:2043:2043 [0] NCCL INFO NCCL_NVLS_ENABLE set by environment to 0.
h100:2043:2043 [0] NCCL INFO cudaDriverVersion 12080
h100:2043:2043 [0] NCCL INFO NCCL version 2.21.5+cuda12.4
h100:2043:2100 [0] NCCL INFO NET/Plugin: Could not find: libnccl-net.so. Using internal network plugin.
h100:2043:2100 [0] NCCL INFO NET/Socket : Using [0]lo:127.0.0.1<0>
h100:2043:2100 [0] NCCL INFO Using network Socket
h100:2043:2100 [0] NCCL INFO ncclCommInitRank comm 0x55d0c5a4b560 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 commId 0x7d3b1b9cdf0a1c3e - Init START
h100:2043:2100 [0] NCCL INFO NVLS multicast support is not available on dev 0
h100:2043:2100 [0] NCCL INFO Channel 00/24 :    0   1
h100:2043:2100 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/CUMEM/read
h100:2043:2100 [0] NCCL INFO Channel 01/0 : 0[0] -> 1[1] via P2P/CUMEM/read
h100:2044:2101 [1] NCCL INFO Channel 00/0 : 1[1] -> 0[0] via P2P/CUMEM/read
h100:2044:2101 [1] NCCL INFO Channel 01/0 : 1[1] -> 0[0] via P2P/CUMEM/read
h100:2043:2100 [0] NCCL INFO Connected all rings
h100:2043:2100 [0] NCCL INFO 24 coll channels, 24 collnet channels, 0 nvls channels, 32 p2p channels, 32 p2p channels per peer
h100:2043:2100 [0] NCCL INFO comm 0x55d0c5a4b560 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 commId 0x7d3b1b9cdf0a1c3e - Init COMPLETE
[rank0]:[W1207 03:01:12.000000 2043 ProcessGroupNCCL.cpp:1250] Warning: a torch warning, not NCCL output, sent via stderr
"""

SOCKET_NODE = """\
gpu7:88:120 [0] NCCL INFO NCCL version 2.19.3+cuda12.3
gpu7:88:120 [0] NCCL INFO Using network Socket
gpu7:88:120 [0] NCCL INFO Channel 00/0 : 1[1] -> 0[0] [receive] via NET/Socket/0
gpu7:88:120 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] [send] via NET/Socket/0
gpu7:88:120 [0] NCCL INFO Channel 01/0 : 0[0] -> 1[1] via SHM/direct/direct
"""


def test_the_parser_reads_the_transport_nccl_chose():
    found = probe_nccl.parse_nccl_log(P2P_NODE)
    assert found["transports"] == {"P2P/CUMEM": 4}
    assert found["version"] == "2.21.5+cuda12.4" and found["network"] == "Socket"
    assert found["env"] == {"NCCL_NVLS_ENABLE": "0"}
    assert found["channels"] == {"collnet": 24, "nvls": 0} and found["nvls_used"] is False
    assert found["mentions"]["NVLS"] == "NVLS multicast support is not available on dev 0"
    assert found["sample"] == ["Channel 00/0 : 0[0] -> 1[1] via P2P/CUMEM/read"]
    c = mg.nccl_check({"backend": "nccl"}, "2.21.5", found)
    assert c == {"name": "nccl", "status": "pass", "message": "NCCL 2.21.5: P2P/CUMEM (4 channels); NVLS off"}


def test_the_network_between_gpus_of_one_node_is_a_warning():
    found = probe_nccl.parse_nccl_log(SOCKET_NODE)
    assert found["transports"] == {"NET/Socket": 2, "SHM": 1}
    c = mg.nccl_check({"backend": "nccl"}, "2.19.3", found)
    assert c["status"] == "warn"
    assert c["message"] == ("NCCL 2.19.3 went over the network between GPUs of one node: "
                            "NET/Socket (2 channels), SHM (1 channel)")


@pytest.mark.parametrize("via, name", [("P2P/CUMEM/read", "P2P/CUMEM"), ("P2P/IPC", "P2P/IPC"),
                                       ("SHM/direct/direct", "SHM"), ("NET/IB/0/GDRDMA", "NET/IB"),
                                       ("NET/Socket/0", "NET/Socket"), ("NVLS", "NVLS")])
def test_transport_names(via, name):
    assert probe_nccl.transport_name(via) == name


def test_nvls_in_use_is_a_warning():
    found = probe_nccl.parse_nccl_log(P2P_NODE.replace("0 nvls channels", "16 nvls channels"))
    c = mg.nccl_check({"backend": "nccl"}, "2.21.5", found)
    assert c["status"] == "warn" and "although the probe set NCCL_NVLS_ENABLE=0" in c["message"]


# --------------------------------------------------------------------------- in the probe


@pytest.mark.torch
def test_the_probe_runs_the_gloo_checks_and_rejects_a_bad_multi_gpu_config():
    smoke = [sys.executable, str(PROBES / "smoke.py"), "--config", "-", "--checks-only", "--quick"]
    proc = subprocess.run(smoke, input=json.dumps({"multi_gpu": {"backend": "mpi"}}), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"] == 'multi_gpu.backend must be "nccl" or "gloo" (gloo runs on the CPU)'
    proc = subprocess.run(smoke, input=json.dumps({"multi_gpu": GLOO}), capture_output=True, text=True,
                          timeout=120)
    doc = json.loads(proc.stdout)
    c = by_name(doc["checks"])
    assert c["multi-gpu all-reduce"]["status"] == "pass" and c["multi-gpu bandwidth"]["status"] == "pass"
    assert doc["multi_gpu"]["backend"] == "gloo" and len(doc["multi_gpu"]["bandwidth"]) == 2
    assert doc["phases"]["multi_gpu_s"] > 0 and proc.returncode == 0, proc.stderr[-2000:]


def test_a_failed_nccl_run_names_a_small_dev_shm():
    line = "rank 3 of 8 failed (nccl): DistBackendError: NCCL error: unhandled system error"
    assert mg.shm_hint(line, "nccl", 64 * 2 ** 20) == \
        f"{line} (/dev/shm is 64 MiB, too small for NCCL between GPUs: run with --shm-size=2g)"
    assert mg.shm_hint(line, "nccl", 2 * 2 ** 30) == line
    assert mg.shm_hint(line, "gloo", 64 * 2 ** 20) == line and mg.shm_hint(None, "nccl", 1) is None


def test_no_transport_is_a_warning_unless_the_ranks_stopped_first():
    found = probe_nccl.parse_nccl_log("h100:1:1 [0] NCCL INFO NCCL version 2.21.5+cuda12.4\n")
    assert mg.nccl_check({"backend": "nccl"}, "2.21.5", found)["status"] == "warn"
    stopped = mg.nccl_check({"backend": "nccl"}, "2.21.5", found, "rank 0 of 2 still running ...")
    assert stopped["status"] == "skip" and "(see multi-gpu all-reduce)" in stopped["message"]


def test_a_crash_in_the_multi_gpu_checks_is_four_failed_lines_not_a_lost_report(monkeypatch):
    """A GPU in a bad state can raise from torch.cuda calls in the probe itself (the peer matrix):
    the probe still prints its document, the four checks failed with the reason."""
    import smoke

    def boom(*_a, **_k):
        raise RuntimeError("CUDA error: unspecified launch failure")

    monkeypatch.setattr(smoke, "multi_gpu_checks", boom)
    doc, code = smoke.probe({"gpus": "none"}, "quick", [], checks_only=True)
    assert code != 0
    failed = {c["name"]: c["message"] for c in doc["checks"] if c["status"] == "fail"}
    assert set(failed) >= set(smoke.MULTI_GPU_CHECKS)
    assert all("unspecified launch failure" in failed[n] for n in smoke.MULTI_GPU_CHECKS)
    assert doc["multi_gpu"]["ran"] is False
