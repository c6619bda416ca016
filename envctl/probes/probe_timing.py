"""Block timing with a stated error, interleaved across modes, and honest verdicts.

The method (torch.utils.benchmark's adaptive_autorange and triton's do_bench are the models):

- each candidate (a zero-argument call: eager, a compiled module, ...) is timed in *blocks*
  of several calls between two events (CUDA events on a GPU, perf_counter after a
  synchronize on the CPU), calibrated so a block lasts about ``block_ms``: one event pair per
  block, not per call, so event and launch jitter is spread over the block;
- warm-up is by time: rounds of blocks until the last three block means of every candidate
  agree within ``settle_pct`` (GPU clocks ramp, the first calls after a compile are slow), or
  ``warmup_max_s`` runs out;
- measurement runs *rounds*: one block of every candidate per round, in an order that rotates
  from round to round, so clock and load drift hit every candidate alike. The speedup of a
  candidate over the base is the median of the per-round ratios base/candidate (paired, so
  drift between rounds cancels), with a distribution-free 95% interval for that median (order
  statistics of the binomial); absolute times are the median of block means with the same
  kind of interval;
- rounds repeat until every candidate's IQR of block means and every ratio's interval are
  under their targets, or the time budget runs out.

A ratio is *conclusive* when enough rounds ran, its interval is narrow and the per-round
ratios are not scattered; only then does it get a direction. Part of the in-image smoke probe
(see smoke.py): standard library and torch only (torch imported lazily), Python >= 3.9.
"""
from __future__ import annotations

import math
import statistics
import time

# Timing policy per device class and level; probe_bench copies one into the settings.
POLICIES = {
    "cuda": {
        "quick": {"block_ms": 15.0, "warmup_min_s": 0.2, "warmup_max_s": 0.6, "settle_pct": 5.0,
                  "min_rounds": 9, "max_rounds": 400, "budget_s": 1.5, "target_iqr_pct": 3.0,
                  "target_width_pct": 4.0, "conclusive_width_pct": 12.0,
                  "conclusive_iqr_pct": 35.0},
        "standard": {"block_ms": 15.0, "warmup_min_s": 0.5, "warmup_max_s": 1.2, "settle_pct": 3.0,
                     "min_rounds": 15, "max_rounds": 1000, "budget_s": 5.0, "target_iqr_pct": 2.0,
                     "target_width_pct": 1.5, "conclusive_width_pct": 10.0,
                     "conclusive_iqr_pct": 30.0},
    },
    "cpu": {
        "quick": {"block_ms": 20.0, "warmup_min_s": 0.3, "warmup_max_s": 1.5, "settle_pct": 10.0,
                  "min_rounds": 9, "max_rounds": 400, "budget_s": 2.5, "target_iqr_pct": 5.0,
                  "target_width_pct": 6.0, "conclusive_width_pct": 15.0,
                  "conclusive_iqr_pct": 35.0},
        "standard": {"block_ms": 20.0, "warmup_min_s": 0.5, "warmup_max_s": 2.0, "settle_pct": 5.0,
                     "min_rounds": 15, "max_rounds": 1000, "budget_s": 5.0, "target_iqr_pct": 3.0,
                     "target_width_pct": 3.0, "conclusive_width_pct": 12.0,
                     "conclusive_iqr_pct": 30.0},
    },
}
CONFIDENCE = 0.95
HOST_MOVE_PCT = 15.0  # host dispatch speed moving more than this over the rounds: check the split
HOST_SENSITIVE_PCT = 5.0  # fast-host and slow-host ratios differing more than this: host-dependent
SAME_BAND = 0.03  # a conclusive ratio whose interval holds 1.0 and stays within 3% of it: "no difference"


def policy_for(device_kind, level):
    """The timing policy of a level ("full" times like "standard")."""
    return dict(POLICIES[device_kind]["quick" if level == "quick" else "standard"])


# --------------------------------------------------------------------------- statistics


def quantile(values, q):
    """Linear-interpolated quantile of a non-empty list (as numpy's default)."""
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def iqr_pct(values):
    """Interquartile range over the median, in percent (None for fewer than 4 values)."""
    if len(values) < 4:
        return None
    med = statistics.median(values)
    return (quantile(values, 0.75) - quantile(values, 0.25)) / med * 100.0 if med > 0 else None


def median_interval(values, confidence=CONFIDENCE):
    """(median, low, high, exact) for the median of ``values``, distribution-free.

    The interval is [x(j), x(n+1-j)] of the sorted values with the largest j whose binomial
    coverage 1 - 2 P(B < j), B ~ Binomial(n, 1/2), is still >= ``confidence``. With fewer
    than 6 values no such j exists; the interval is then [min, max] and ``exact`` is False.
    """
    s = sorted(values)
    n = len(s)
    med = statistics.median(s)
    tail = 0.0
    j = 0  # number of values cut from each end
    for i in range(n // 2):
        tail += math.comb(n, i) / 2.0 ** n
        if 1.0 - 2.0 * tail < confidence:
            break
        j = i + 1
    if j == 0:
        return med, s[0], s[-1], False
    return med, s[j - 1], s[n - j], True


# --------------------------------------------------------------------------- clocks


class BlockClock:
    """Milliseconds per call of a block of calls, between two events.

    With ``spin`` the host busy-polls for the GPU instead of blocking in ``synchronize``.
    A vCPU that sleeps is slower for a while after it wakes (this 2-core machine: tiny torch
    ops 3.1 us hot, 4.9 us median after 20 ms sleeps), but on the lent H100 spinning did not
    steady host-bound ratios (benchmarks/gpu_host.py: eager over CUDA graph spread 36%
    spinning, 34% blocking, over four processes each), so blocking stays the default.
    """

    def __init__(self, cuda, spin=False):
        self.cuda = cuda
        self.spin = spin

    def _wait(self, event):
        if self.spin:
            while not event.query():
                pass
        else:
            event.synchronize()

    def sync(self):
        if self.cuda:
            import torch

            if not self.spin:  # the whole device, every stream: what the H100 figures were taken with
                torch.cuda.synchronize()
                return
            done = torch.cuda.Event()
            done.record()
            self._wait(done)

    def block(self, call, n):
        if self.cuda:
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.sync()
            start.record()
            for _ in range(n):
                call()
            end.record()
            self._wait(end)
            return start.elapsed_time(end) / n
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        return (time.perf_counter() - t0) * 1000.0 / n


def _calls_for(per_call_ms, block_ms, max_calls=10000):
    return max(1, min(max_calls, int(round(block_ms / max(per_call_ms, 1e-4)))))


# --------------------------------------------------------------------------- measurement


def _settled(history, pct):
    last = history[-3:]
    return len(last) == 3 and (max(last) - min(last)) / min(last) * 100.0 <= pct


def measure(candidates, base, cuda, policy, after_block=None, on_start=None, clock=None,
            host_probe=None):
    """Time ``candidates`` ({name: call}) in interleaved rounds; ratios are base/candidate.

    ``after_block(name)`` runs after each block, outside the timed region (recompile checks);
    ``on_start()`` once between warm-up and measurement (a machine-state sample);
    ``host_probe()`` once per round: the host's dispatch speed then (see host_split).
    Returns {"candidates": {name: stats}, "ratios": {name: stats}, "rounds", "warmup_s",
    "warmup_settled", "measure_s", "stopped", "raw"} (raw: each round's block means and host
    speed, in order). Exceptions from a call propagate.
    """
    clock = clock or BlockClock(cuda)
    names = list(candidates)
    calls = {name: 1 for name in names}
    hist = {name: [] for name in names}
    t0 = time.perf_counter()
    settled = False
    while True:  # warm-up by time, recalibrating the block length as calls speed up
        for name in names:
            per_call = clock.block(candidates[name], calls[name])
            hist[name].append(per_call)
            calls[name] = _calls_for(per_call, policy["block_ms"])
            if after_block:
                after_block(name)
        elapsed = time.perf_counter() - t0
        settled = all(_settled(hist[n], policy["settle_pct"]) for n in names)
        enough = elapsed >= policy["warmup_min_s"] and len(hist[names[0]]) >= policy.get("warmup_rounds", 0)
        if (settled and enough) or elapsed >= policy["warmup_max_s"]:
            break
    warmup_s = time.perf_counter() - t0
    if on_start:
        on_start()
    blocks = {name: [] for name in names}
    ratios = {name: [] for name in names if name != base} if base in candidates else {}
    hosts = {name: [] for name in ratios}
    host_all = []
    t1 = time.perf_counter()
    rounds, stopped = 0, "budget"
    while True:
        shift = rounds % len(names)
        this_round = {}
        for name in names[shift:] + names[:shift]:
            this_round[name] = clock.block(candidates[name], calls[name])
            if after_block:
                after_block(name)
        for name, ms in this_round.items():
            blocks[name].append(ms)
        host = host_probe() if host_probe else None
        if host is not None:
            host_all.append(host)
        if base in this_round:
            for name in ratios:
                if this_round[name] > 0:
                    ratios[name].append(this_round[base] / this_round[name])
                    hosts[name].append(host)
        rounds += 1
        if rounds >= policy["min_rounds"] and _precise(blocks, ratios, policy):
            stopped = "precise"
            break
        if rounds >= policy["max_rounds"]:
            stopped = "max_rounds"
            break
        if time.perf_counter() - t1 >= policy["budget_s"] and rounds >= 3:
            break
    return {"candidates": {n: summarize(blocks[n], calls[n]) for n in names},
            "ratios": {n: host_split(summarize(r), r, hosts[n]) for n, r in ratios.items()},
            "rounds": rounds, "warmup_s": round(warmup_s, 3), "warmup_settled": settled,
            "host_us": ({"p10": round(quantile(host_all, 0.1), 3), "median": round(statistics.median(host_all), 3),
                         "p90": round(quantile(host_all, 0.9), 3)} if host_all else None),
            "measure_s": round(time.perf_counter() - t1, 3), "stopped": stopped,
            "raw": {"blocks_ms": {n: [round(v, 5) for v in blocks[n]] for n in names},
                    "host_us": [round(h, 3) for h in host_all]}}


def host_split(stats, ratios, hosts):
    """Widen a ratio's interval by its dependence on the host's speed during the rounds.

    Eager inference of small batches is bound by how fast the host dispatches ops; CUDA-graph
    and other GPU-bound modes are not. On a host whose speed moves (a shared VM's vCPU: seen
    switching between about 3 and 6 us per op on the lent H100), the ratio of such a pair moves
    with it, and no interleaving cancels that. Rounds are split at the median host speed; when
    the two halves' median ratios differ by more than HOST_SENSITIVE_PCT, both are recorded
    and the interval is widened to hold them, so the stated error covers the host's states.
    """
    pairs = [(h, r) for h, r in zip(hosts, ratios) if h is not None]
    if len(pairs) < 8:
        return stats
    hs = sorted(h for h, _ in pairs)
    if quantile(hs, 0.9) / quantile(hs, 0.1) - 1.0 < HOST_MOVE_PCT / 100.0:
        return stats
    mid = statistics.median(hs)
    fast = [r for h, r in pairs if h <= mid]
    slow = [r for h, r in pairs if h > mid]
    if len(fast) < 3 or len(slow) < 3:
        return stats
    rf, rs = statistics.median(fast), statistics.median(slow)
    if abs(rf - rs) / stats["median"] * 100.0 <= HOST_SENSITIVE_PCT:
        return stats
    stats = dict(stats, host_dependent={
        "fast_host": round(rf, 4), "slow_host": round(rs, 4),
        "fast_host_us": round(statistics.median(h for h, _ in pairs if h <= mid), 3),
        "slow_host_us": round(statistics.median(h for h, _ in pairs if h > mid), 3)})
    stats["low"], stats["high"] = min(stats["low"], rf, rs), max(stats["high"], rf, rs)
    stats["width_pct"] = (stats["high"] - stats["low"]) / stats["median"] * 100.0
    return stats


def _precise(blocks, ratios, policy):
    for values in blocks.values():
        spread = iqr_pct(values)
        if spread is None or spread > policy["target_iqr_pct"]:
            return False
    for values in ratios.values():
        med, lo, hi, exact = median_interval(values)
        if not exact or (hi - lo) / med * 100.0 > policy["target_width_pct"]:
            return False
    return True


def summarize(values, calls_per_block=None):
    """Median, 95% interval, IQR and p10/p90 of block means (or of per-round ratios)."""
    med, lo, hi, exact = median_interval(values)
    out = {"median": med, "low": lo, "high": hi, "interval_exact": exact, "n": len(values),
           "iqr_pct": iqr_pct(values), "p10": quantile(values, 0.1), "p90": quantile(values, 0.9),
           "width_pct": (hi - lo) / med * 100.0 if med > 0 else None}
    if calls_per_block is not None:
        out["calls_per_block"] = calls_per_block
    return out


HOST_BOUND_SHARE = 0.5  # the CPU launching for over half of a call: its time follows the host


def host_share(call, n=9):
    """The share of a GPU call's time the host spends launching it (median of ``n`` calls).

    From an idle GPU: the time until ``call()`` returns (kernels queued, not run) over the time
    until the GPU is done. A GPU-bound call returns long before its kernels finish (a small
    share); a launch-bound one returns about when they finish (near 1.0), so its time is the
    host's dispatch speed, which on a shared VM moves between processes (seen 2.8-6.1 us per op
    on the lent H100) whatever a single run's intervals say. Above HOST_BOUND_SHARE a slowdown
    of the host by 2x makes the host the bound, so such a row's time is host-dependent.
    """
    import torch

    shares = []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
        if total > 0:
            shares.append(min(1.0, (t1 - t0) / total))
    return round(statistics.median(shares), 3) if shares else None


# --------------------------------------------------------------------------- verdicts


def ratio_verdict(stats, policy, host_notes=(), deciding=()):
    """{"verdict", "conclusive", "why"} for a speedup (base/candidate) summary.

    verdict: "faster" or "slower" (the interval excludes 1.0), "same" (it holds 1.0 and
    stays within SAME_BAND of it), else "inconclusive". ``host_notes`` (throttling, load)
    are appended to the why of an inconclusive row: they explain it, they do not decide it.
    ``deciding``: conditions under which no ratio is trusted however tight (other processes
    busy on the CPU that runs the modes: pairing cancels load that slows every mode alike,
    and contention does not, as a compiled mode's threads wait more than eager's).
    """
    why = list(deciding)
    if stats["n"] < policy["min_rounds"]:
        why.append(f"only {stats['n']} rounds (< {policy['min_rounds']})")
    if not stats["interval_exact"]:
        why.append("too few rounds for a 95% interval")
    width = stats["width_pct"]
    if width is None or width > policy["conclusive_width_pct"]:
        why.append(f"interval {stats['low']:.2f}-{stats['high']:.2f}x is "
                   f"{width if width is not None else float('inf'):.0f}% wide "
                   f"(> {policy['conclusive_width_pct']:.0f}%)")
    spread = stats["iqr_pct"]
    if spread is not None and spread > policy["conclusive_iqr_pct"]:
        why.append(f"per-round ratios scatter {spread:.0f}% (IQR > {policy['conclusive_iqr_pct']:.0f}%)")
    hd = stats.get("host_dependent")
    if why and hd:
        why.append(f"the ratio follows the host CPU's speed: {hd['fast_host']:.2f}x when it is fast "
                   f"({hd['fast_host_us']:.1f} us/op), {hd['slow_host']:.2f}x when slow "
                   f"({hd['slow_host_us']:.1f} us/op)")
    if why:
        return {"verdict": "inconclusive", "conclusive": False,
                "why": why + [n for n in host_notes if n not in deciding]}
    if stats["low"] > 1.0:
        verdict = "faster"
    elif stats["high"] < 1.0:
        verdict = "slower"
    elif stats["low"] >= 1.0 - SAME_BAND and stats["high"] <= 1.0 + SAME_BAND:
        verdict = "same"
    else:
        return {"verdict": "inconclusive", "conclusive": False,
                "why": [f"interval {stats['low']:.2f}-{stats['high']:.2f}x holds 1.0"] + list(host_notes)}
    return {"verdict": verdict, "conclusive": True, "why": []}


def absolute_conclusive(stats, policy):
    """An absolute median is conclusive when its interval is as narrow as a ratio's must be."""
    return bool(stats["interval_exact"] and stats["width_pct"] is not None
                and stats["width_pct"] <= policy["conclusive_width_pct"])
