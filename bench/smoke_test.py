#!/usr/bin/python3
"""Smoke test of the benchmark (ctest bench_smoke): the C program's --isa
accepts what --list-isas calls supported and refuses the rest; a --quick
run of the driver writes the table, the JSON and a PNG plot, reports
progress, times every supported ISA, and finds the C API and the drop-in
agreeing on the loss of identical inputs, in float32 and in the mixed
precision rows (float16 and bfloat16); --dtype refuses an unknown name;
--inference times decode and detect and the run reports them per thread
count; the
table of the drop-in without the step's allocations has its times, and the
official YOLOX column a time with $YOLOX_SRC or "not available" and why
without it; --placement times each placement and refuses an unknown one,
and the placement table (issue 20) has its rows; --thread-rounds prints a
line per thread count and refuses bad lists, and the thread table has the
default, 1 thread and all cores, quiet and loaded. It checks that the
pipeline works, not how fast anything is.

usage: smoke_test.py --bench-exe build/bench/yoloxloss_bench
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg, proc=None):
    if proc is not None:
        sys.stderr.write(f"--- driver stdout ---\n{proc.stdout}\n--- driver stderr ---\n{proc.stderr}\n")
    sys.exit(f"bench smoke test FAILED: {msg}")


def run_driver(exe, *args):
    return subprocess.run([sys.executable, os.path.join(HERE, "run_bench.py"), "--bench-exe", exe, *args],
                          capture_output=True, text=True, timeout=300)


def check_quick_run(exe, out):
    proc = run_driver(exe, "--quick", "--out-dir", out)
    if proc.returncode != 0:
        fail(f"--quick exited with {proc.returncode}", proc)
    threads = sorted({1, os.cpu_count() or 1})

    # One progress line per measurement, with the elapsed time.
    progress = [line for line in proc.stderr.splitlines() if re.match(r"\[\s*\d+\.\d s\] ", line)]
    measurements = [line for line in progress if " ms (median of " in line]
    if len(measurements) < 3 * len(threads):
        fail(f"expected >= {3 * len(threads)} progress lines with timings, got {len(measurements)}", proc)

    table = open(os.path.join(out, "bench.md")).read()
    for t in threads:
        row = next((line for line in table.splitlines() if line.startswith(f"| coco16 [2 images] | {t} |")), None)
        if row is None:
            fail(f"bench.md has no coco16 row for {t} thread(s):\n{table}")
        cells = [c.strip() for c in row.strip("|").split("|")]
        for cell in cells[2:11]:  # times and ratios: positive numbers
            if not re.fullmatch(r"\d+(\.\d+)?x?", cell) or float(cell.rstrip("x")) <= 0:
                fail(f"bad cell {cell!r} in row {row!r}")

    supported_isas = re.findall(r"isa=(\w+) supported=1", subprocess.run(
        [exe, "--list-isas"], capture_output=True, text=True, check=True).stdout)
    for t in threads:
        for dtype in ("float16", "bfloat16"):
            for isa in supported_isas:
                prefix = f"| coco16 [2 images] | {t} | {dtype} | {isa} |"
                row = next((line for line in table.splitlines() if line.startswith(prefix)), None)
                if row is None:
                    fail(f"bench.md has no mixed precision row {prefix}:\n{table}")
                cells = [c.strip() for c in row.strip("|").split("|")]
                for cell in cells[4:8]:  # C API and floor times, both ratios
                    if not re.fullmatch(r"\d+(\.\d+)?x?", cell) or float(cell.rstrip("x")) <= 0:
                        fail(f"bad cell {cell!r} in row {row!r}")

    isa_lines = subprocess.run([exe, "--list-isas"], capture_output=True, text=True, check=True).stdout.split("\n")
    for line in filter(None, isa_lines):
        name = re.search(r"isa=(\w+)", line).group(1)
        if not re.search(rf"\| {name} \|", table):
            fail(f"the ISA table does not mention {name}:\n{table}")

    data = json.load(open(os.path.join(out, "bench.json")))
    if len(data["rows"]) != len(threads):
        fail(f"bench.json has {len(data['rows'])} rows, expected {len(threads)}")
    supported = {i["name"] for i in data["isas"] if i["supported"]}
    for r in data["rows"]:
        if set(r["c"]) != supported:
            fail(f"C API timed on {sorted(r['c'])}, but the supported ISAs are {sorted(supported)}")
    disagreements = [w for w in data["warnings"] if "vs drop-in" in w]
    if disagreements:
        fail("the C API and the drop-in disagree on identical inputs: " + "; ".join(disagreements))

    check_extras(table, threads)
    check_placement(table, data, threads)
    check_threads(table, data)

    with open(os.path.join(out, "bench.png"), "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            fail("bench.png is not a PNG")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image
    height, width = matplotlib.image.imread(os.path.join(out, "bench.png")).shape[:2]
    if width < 800 or height < 300:
        fail(f"bench.png is only {width}x{height}")
    for name in ("bench.md", "bench.json", "bench.png"):
        if os.path.join(out, name) not in proc.stdout:
            fail(f"the driver did not say where it wrote {name}", proc)

    # The box-loss rows: coco16 with iou, ciou and siou, each with a time and a ratio to iou's.
    losses = [r["iou_loss"] for r in data.get("box_losses", [])]
    if losses != ["iou", "ciou", "siou"]:
        fail(f"bench.json's box_losses rows are for {losses}, expected iou, ciou, siou")
    for loss in losses:
        row = next((line for line in table.splitlines()
                    if line.startswith("| coco16 [2 images] | 1 |") and f"| {loss} |" in line), None)
        if row is None:
            fail(f"bench.md has no box-loss row for {loss}:\n{table}")
        cells = [c.strip() for c in row.strip("|").split("|")]
        if not (float(cells[4]) > 0 and float(cells[6]) > 0):
            fail(f"bad box-loss row {row!r}")

    # The inference rows: decode and detect per thread count, each time and
    # ratio a positive number, detect at each threshold.
    rows = data.get("inference", [])
    if [r["threads"] for r in rows] != threads:
        fail(f"bench.json's inference rows are for threads {[r['threads'] for r in rows]}, expected {threads}")
    for r in rows:
        if not (r["decode_ms"] > 0 and r["decode_floor_ms"] > 0 and len(r["detect"]) == 2 and
                all(d["ms"] > 0 and d["floor_ms"] > 0 and d["detections"] >= 0 for d in r["detect"])):
            fail(f"bad inference row {r!r}")
    section = table.split("## Inference: decode and detect", 1)
    if len(section) != 2 or not any(line.startswith("| coco16 [2 images] | 1 |")
                                    for line in section[1].splitlines()):
        fail(f"bench.md has no inference table with a coco16 row:\n{table}")

    # The mixed-precision rounds: float32, float16 and bfloat16 on each SIMD
    # ISA the CPU has, each with a time, a floor and both ratios.
    simd = [i["name"] for i in data["isas"] if i["supported"] and i["name"] != "scalar"]
    got = [(r["isa"], r["dtype"]) for r in data.get("dtype_rounds", [])]
    want = [(isa, dt) for isa in simd for dt in ("float32", "float16", "bfloat16")]
    if got != want:
        fail(f"bench.json's dtype_rounds rows are {got}, expected {want}")
    for r in data["dtype_rounds"]:
        if not (r["ms"] > 0 and r["floor_ms"] > 0 and r["ratio"] > 0 and r["floor_ratio"] > 0):
            fail(f"bad dtype_rounds row {r!r}")
        if f"| {r['isa']} | {r['dtype']} |" not in table:
            fail(f"bench.md has no mixed-precision rounds row for {r['isa']} {r['dtype']}:\n{table}")


def check_iou_loss_option(exe):
    """--iou-loss times the loss it names and refuses another name."""
    proc = subprocess.run([exe, "--iou-loss", "wiou", "--scenario", "coco16", "--images", "1", "--iters", "1"],
                          capture_output=True, text=True)
    if proc.returncode != 2 or "--iou-loss wiou:" not in proc.stderr or proc.stdout:
        fail(f"--iou-loss wiou was not refused with a message (rc {proc.returncode}, stderr {proc.stderr!r})")
    totals = set()
    for name in ("iou", "giou", "iou-linear", "diou", "ciou", "eiou", "siou"):
        proc = subprocess.run([exe, "--iou-loss", name, "--scenario", "coco16", "--images", "1", "--iters", "1"],
                              capture_output=True, text=True)
        if proc.returncode != 0 or f" iou_loss={name} " not in proc.stdout:
            fail(f"--iou-loss {name} did not time {name}: rc {proc.returncode}, {proc.stdout!r} {proc.stderr!r}")
        totals.add(re.search(r"total=(\S+)", proc.stdout).group(1))
    # (ciou equals diou where no foreground IoU exceeds 0.5, as on these inputs)
    if len(totals) < 6:
        fail(f"the seven box losses gave only {len(totals)} different totals on one input")


def section_of(table, heading, what):
    """The part of bench.md under `## heading`, up to the next section."""
    parts = table.split(f"## {heading}", 1)
    if len(parts) != 2:
        fail(f"bench.md has no {what}:\n{table}")
    return parts[1].split("\n## ", 1)[0]


def expect_positive(cells, row):
    """Every cell a positive time or ratio."""
    for cell in cells:
        if not re.fullmatch(r"\d+(\.\d+)?x?", cell) or float(cell.rstrip("x")) <= 0:
            fail(f"bad cell {cell!r} in row {row!r}")


def check_extras(table, threads):
    """The drop-in without the step's allocations is timed; the official
    YOLOX column has a time with $YOLOX_SRC, and says "not available" and why
    without it."""
    section = section_of(table, "Drop-in without the step's allocations", "table of the drop-in without allocations")
    have_yolox = bool(os.environ.get("YOLOX_SRC"))
    for t in threads:
        row = next((line for line in section.splitlines() if line.startswith(f"| coco16 [2 images] | {t} |")), None)
        if row is None:
            fail(f"the drop-in/official table has no coco16 row for {t} thread(s):\n{section}")
        cells = [c.strip() for c in row.strip("|").split("|")]
        expect_positive(cells[2:8], row)
        official = cells[8]
        if have_yolox and not re.fullmatch(r"\d+(\.\d+)?", official):
            fail(f"YOLOX_SRC is set but the official column says {official!r}:\n{section}")
        if not have_yolox and official != "not available":
            fail(f"without YOLOX_SRC the official column says {official!r}, not 'not available'")
    if not have_yolox and "official YOLOX: not available: YOLOX_SRC is not set" not in section:
        fail(f"the table does not say why the official column is not available:\n{section}")


def check_placement(table, data, threads):
    """The placement rows (issue 20): per thread count, the C API on reused
    buffers, on new buffers, on new buffers read page by page first (and
    that read pass), on new buffers on 2 MiB pages, and the drop-in on new
    leaves, each with a positive p50 <= p90 <= maximum over the policy's
    calls, in bench.json and bench.md, and the targets sentence."""
    section = section_of(table, "Placement: head outputs in new buffers each call", "placement table")
    rows = data.get("placement", [])
    if [r["threads"] for r in rows] != threads:
        fail(f"bench.json's placement rows are for threads {[r['threads'] for r in rows]}, expected {threads}")
    for r in rows:
        for key in ("c_reuse", "c_fresh", "c_fresh_touched", "touch", "c_fresh_huge", "dropin"):
            v = r.get(key)
            if not v or not (0 < v["p50_ms"] <= v["p90_ms"] <= v["max_ms"]) or v["iters"] < 1:
                fail(f"bad placement entry {key} for {r['threads']} thread(s): {v!r}")
        for what in ("the same buffers every call", "new buffers each call |",
                     "each page read once before the timer", "that read pass alone", "on 2 MiB pages",
                     "new leaves each call"):
            line = next((x for x in section.splitlines()
                         if x.startswith(f"| coco16 [2 images] | {r['threads']} |") and what in x), None)
            if line is None:
                fail(f"the placement table has no {what!r} row for {r['threads']} thread(s):\n{section}")
            expect_positive([c.strip() for c in line.strip("|").split("|")][3:8], line)
    if not re.search(r"Targets \(issue 20\): coco16 \[2 images\], 1 thread: drop-in / C API at p50 \d", section):
        fail(f"the placement table has no targets sentence:\n{section}")
    if any("--placement" in w for w in data["warnings"]):
        fail("the C API with new buffers disagrees with the drop-in: "
             + "; ".join(w for w in data["warnings"] if "--placement" in w))


def check_threads(table, data):
    """The thread table: the quick case quiet and loaded, each with the
    default, 1 thread and all cores timed (0 < p50 <= p90 <= max), and the
    ratio of the default to the better of the two."""
    section = section_of(table, "Threads: the default against 1 thread and all cores", "threads table")
    rows = data.get("threads", [])
    cores = os.cpu_count() or 1
    if [r["load"] for r in rows] != [0, cores]:
        fail(f"bench.json's thread rows have loads {[r['load'] for r in rows]}, expected [0, {cores}]")
    for r in rows:
        for count in {"0", "1", str(cores)}:
            v = r["times"].get(count)
            if not v or not (0 < v["p50_ms"] <= v["p90_ms"] <= v["max_ms"]) or v["iters"] < 1:
                fail(f"bad thread entry {count} under load {r['load']}: {v!r}")
        load = "quiet" if r["load"] == 0 else f"{r['load']} busy processes"
        line = next((x for x in section.splitlines() if x.startswith(f"| {r['case']} | {load} |")), None)
        if line is None:
            fail(f"the threads table has no row for {r['case']}, {load}:\n{section}")
        expect_positive([c.strip() for c in line.strip("|").split("|")][2:9], line)


def check_thread_options(exe):
    """--thread-rounds prints one line per count, --load is accepted, and
    a count past the bound or an empty list is refused."""
    proc = subprocess.run([exe, "--scenario", "coco16", "--images", "1", "--boxes", "1", "--iters", "3",
                           "--thread-rounds", "0,1,2", "--load", "1"], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.splitlines()
    counts = [dict(kv.split("=", 1) for kv in line.split()).get("threads") for line in lines]
    if proc.returncode != 0 or counts != ["0", "1", "2"]:
        fail(f"--thread-rounds 0,1,2 gave rc {proc.returncode} and thread counts {counts}: {proc.stderr!r}")
    for bad in ("1025", "", "1,,2", "x"):
        proc = subprocess.run([exe, "--scenario", "coco16", "--images", "1", "--iters", "1", "--thread-rounds", bad],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 2 or proc.stdout:
            fail(f"--thread-rounds {bad!r} was not refused (rc {proc.returncode}, stdout {proc.stdout!r})")


def check_placement_option(exe):
    """--placement times each placement it names and says so, with p90 and
    maximum; an unknown name is refused."""
    for name in ("reuse", "fresh", "fresh-touched", "fresh-huge"):
        proc = subprocess.run([exe, "--placement", name, "--scenario", "coco16", "--images", "1", "--iters", "3"],
                              capture_output=True, text=True)
        f = dict(kv.split("=", 1) for kv in proc.stdout.split())
        if proc.returncode != 0 or f.get("placement") != name:
            fail(f"--placement {name} did not time that placement: rc {proc.returncode}, {proc.stdout!r} "
                 f"{proc.stderr!r}")
        if not (0 < float(f["median_ms"]) <= float(f["p90_ms"]) <= float(f["max_ms"])):
            fail(f"--placement {name}: median, p90 and max out of order in {proc.stdout!r}")
        if (float(f["touch_ms"]) > 0) != (name == "fresh-touched"):
            fail(f"--placement {name}: touch_ms={f['touch_ms']}, expected a time only for fresh-touched")
    proc = subprocess.run([exe, "--placement", "elsewhere", "--scenario", "coco16", "--images", "1", "--iters", "1"],
                          capture_output=True, text=True)
    if proc.returncode != 2 or "--placement" not in proc.stderr or proc.stdout:
        fail(f"--placement elsewhere was not refused with a message (rc {proc.returncode}, stderr {proc.stderr!r})")


def check_bad_scenario(exe, out):
    proc = run_driver(exe, "--scenario", "no_such_scenario", "--out-dir", out)
    if proc.returncode == 0 or "unknown scenario" not in proc.stderr:
        fail("an unknown scenario was not rejected with a clear message", proc)


def check_isa_options(exe):
    """--isa refuses, with a message, a name that is no ISA and one this
    build or CPU lacks; it accepts every one --list-isas calls supported."""
    rows = subprocess.run([exe, "--list-isas"], capture_output=True, text=True, check=True).stdout.split()
    status = dict(re.findall(r"isa=(\w+) supported=([01])", " ".join(rows)))
    if "scalar" not in status or status["scalar"] != "1":
        fail(f"--list-isas does not report scalar as supported: {status}")
    lacking = [name for name, ok in status.items() if ok == "0"]
    for name in ["sse9"] + lacking[:1]:
        proc = subprocess.run([exe, "--isa", name, "--scenario", "coco16", "--images", "1", "--iters", "1"],
                              capture_output=True, text=True)
        if proc.returncode != 2 or f"--isa {name}:" not in proc.stderr or proc.stdout:
            fail(f"--isa {name} was not refused with a message (rc {proc.returncode}, stderr {proc.stderr!r})")
    for name in (n for n, ok in status.items() if ok == "1"):
        proc = subprocess.run([exe, "--isa", name, "--scenario", "coco16", "--images", "1", "--iters", "1"],
                              capture_output=True, text=True)
        if proc.returncode != 0 or f"isa={name} " not in proc.stdout:
            fail(f"--isa {name} did not time on {name}: rc {proc.returncode}, {proc.stdout!r} {proc.stderr!r}")


def check_inference_option(exe):
    """--inference times decode and detect, one line each, with their floors
    and detect's threshold and detections; a bad threshold is refused."""
    proc = subprocess.run([exe, "--inference", "--score-threshold", "0.0001", "--scenario", "coco16", "--images", "1",
                           "--iters", "1", "--dtype", "bfloat16"], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != 2:
        fail(f"--inference: rc {proc.returncode}, {proc.stdout!r} {proc.stderr!r}")
    ops = [dict(kv.split("=", 1) for kv in line.split()) for line in lines]
    if [f["op"] for f in ops] != ["decode", "detect"] or any(float(f["floor_ms"]) <= 0 for f in ops):
        fail(f"--inference printed {lines}")
    if ops[1]["score_threshold"] != "0.0001" or int(ops[1]["detections"]) <= 0 or ops[0]["dtype"] != "bfloat16":
        fail(f"--inference's detect line does not say what it did: {lines[1]}")
    proc = subprocess.run([exe, "--inference", "--score-threshold", "nan", "--scenario", "coco16", "--images", "1"],
                          capture_output=True, text=True)
    if proc.returncode != 2 or "--score-threshold" not in proc.stderr:
        fail(f"--score-threshold nan was not refused (rc {proc.returncode}, stderr {proc.stderr!r})")


def check_dtype_option(exe):
    """--dtype times 16-bit head outputs and says so; an unknown name is refused."""
    for dtype in ("float16", "bfloat16"):
        proc = subprocess.run([exe, "--dtype", dtype, "--scenario", "coco16", "--images", "1", "--iters", "1"],
                              capture_output=True, text=True)
        if proc.returncode != 0 or f"dtype={dtype}" not in proc.stdout:
            fail(f"--dtype {dtype} did not time 16-bit outputs: rc {proc.returncode}, {proc.stdout!r} {proc.stderr!r}")
    proc = subprocess.run([exe, "--dtype", "float8", "--scenario", "coco16", "--images", "1", "--iters", "1"],
                          capture_output=True, text=True)
    if proc.returncode != 2 or "--dtype" not in proc.stderr:
        fail(f"--dtype float8 was not refused with a message (rc {proc.returncode}, stderr {proc.stderr!r})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-exe", required=True)
    args = ap.parse_args()
    exe = os.path.abspath(args.bench_exe)
    check_isa_options(exe)
    check_iou_loss_option(exe)
    check_dtype_option(exe)
    check_placement_option(exe)
    check_thread_options(exe)
    check_inference_option(exe)
    with tempfile.TemporaryDirectory(prefix="yoloxloss-bench-smoke-") as out:
        check_bad_scenario(exe, out)
        check_quick_run(exe, out)
    print("bench smoke test passed")


if __name__ == "__main__":
    main()
