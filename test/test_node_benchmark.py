"""The node benchmark runs end to end against the real node and reports every section (timings are not tested)."""

import re
import sys
from pathlib import Path

import pytest

import processes

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_node_benchmark_prints_every_section():
    pytest.importorskip("rclpy")
    result = processes.run(
        [sys.executable, str(REPO / "benchmarks" / "node.py"), "--quick", "--duration", "4", "--frames", "4"],
        timeout=400, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout

    assert re.search(r"^Machine: .+, \d+ logical cores, torch \S+ with \d+ threads in the node", out, re.M), out[:800]
    assert re.search(r"^Load average at start \(1/5/15 min\): [\d.]+ [\d.]+ [\d.]+$", out, re.M)
    assert re.search(r"^  pooled \(used below\), back to back, \d+ runs: forward [\d.]+", out, re.M)
    assert re.search(r"^  pooled \(used below\), paced at 5 Hz, \d+ runs: forward [\d.]+", out, re.M)
    assert re.search(r"^Overload rate: [\d.]+ Hz, twice the [\d.]+ Hz the node sustains", out, re.M)

    sections = re.split(r"^## ", out, flags=re.M)
    phases = {s.split(":")[0]: s for s in sections[1:] if not s.startswith("Summary")}
    assert set(phases) == {"Unloaded", "Nominal", "Overload"}, list(phases)
    for name, text in phases.items():
        frames = re.search(r"^Frames: sent (\d+) \(at [\d.]+ Hz\), answered (\d+), dropped (\d+) \([\d.]+%\), "
                           r"unmatched answers (\d+)$", text, re.M)
        assert frames, (name, text[:1500])
        sent, answered, dropped, unmatched = map(int, frames.groups())
        assert sent > 0 and answered > 0 and sent == answered + dropped, (name, frames.group(0))
        assert unmatched == 0, f"{name}: LaneArrays whose stamp matches no frame sent (header not copied?)"
        for line in (r"The node's own counts \(/diagnostics\): processed \d+, dropped \d+",
                     r"End-to-end latency \(publish -> LaneArray received\) ms: p50 [\d.]+, p95 [\d.]+, p99 [\d.]+",
                     r"Node processing_ms \(.*\): p50 [\d.]+, p95 [\d.]+, p99 [\d.]+",
                     r"Throughput: [\d.]+ Hz answered",
                     r"Node overhead \+ transport, measured from outside: (median latency [\d.]+ - the detector here on "
                     r"the same frames \((back to back|paced at [\d.]+ Hz)\) [\d.]+ = -?[\d.]+ ms|median over \d+ frames "
                     r"of \(latency - the detector here on the same frame, half a period later\) = -?[\d.]+ ms)",
                     r"Node overhead beyond the forward pass: median processing_ms [\d.]+ - the node.s mean forward pass [\d.]+",
                     r"Node process CPU % \(100 = one core\), \d+ samples at 1 s: mean \d+",
                     r"Node process RSS MB: first [\d.]+, last [\d.]+, max [\d.]+;.* growth [+-][\d.]+%"):
            assert re.search(rf"^{line}", text, re.M), (name, line, text[:2000])
    # the unloaded verdict pairs each frame's latency with the detector timed on that frame here
    assert re.search(r"^Node overhead \+ transport, measured from outside: median over [1-9]\d* frames", phases["Unloaded"], re.M)
    assert re.search(r"^Node overhead \+ transport from outside \(unloaded\): -?[\d.]+ ms <= 10 ms: (PASS|FAIL) "
                     r"\(inside the node, beyond its forward pass: -?[\d.]+ ms\)$", phases["Unloaded"], re.M)
    for name in ("nominal", "overload"):
        assert re.search(rf"^Memory growth \({name}\): [+-][\d.]+% < 5%: (PASS|FAIL)$", out, re.M), name
    assert re.search(r"^Overload latency p95 by thirds of the run ms: ", out, re.M)
    assert re.search(r"^Overload latency bounded: .*: (PASS|FAIL)$", out, re.M)
    assert re.search(r"^Overload drops counted by the node: .*: (PASS|FAIL)$", out, re.M)

    # the README table: header, rule and one row per phase
    assert re.search(r"^\| phase +\| rate Hz \| sent \| answered \| +dropped \| latency p50/p95/p99 ms \| "
                     r"processing ms p50 \| overhead \+ transport ms \(outside\) \| overhead ms \(inside\) \| "
                     r"throughput Hz \| CPU % mean/max \| RSS MB first->last 10 s \|$",
                     out, re.M)
    for row in ("unloaded", "nominal", "overload"):
        assert re.search(rf"^\| {row} +\|", out, re.M), row
    assert re.search(r"^Machine: .+ cores, torch threads \d+, device \S+; load average \(1/5/15 min\) at the end ",
                     out, re.M)
    assert re.search(r"^Verdicts: \d+ PASS, \d+ FAIL", out, re.M)
    assert re.search(r"^Finished in \d+ s$", out, re.M)
