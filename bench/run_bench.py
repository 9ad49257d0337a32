#!/usr/bin/python3
"""Times yoloxloss against the PyTorch reference on the benchmark scenarios.

Per scenario and thread count (1 and all cores) it measures, on identical
inputs, the median time of forward + backward of:
  PyTorch       tests/reference/yolox_reference.py (vectorised as the
                official YOLOX code is);
  drop-in       yoloxloss through its Python binding (fresh gradient tensors
                each call, as autograd needs), beside its floor: cloning the
                head outputs plus allocating and first-touching a gradient
                buffer of the same size, timed call by call in the same run;
  C API         bench/yoloxloss_bench on the same tensors (written to a
                file), caller-owned gradient buffers reused across steps,
                once per instruction set this build and CPU have, beside its
                floor: one pass reading the outputs and writing buffers of
                the same size, timed step by step in the same run.
  drop-in, loss only   the drop-in with each call's fresh leaves cloned
                before its timer: the library's part of the drop-in;
  official YOLOX  with $YOLOX_SRC naming a checkout of Megvii's YOLOX, its
                YOLOXHead.get_losses + backward on the same tensors (the
                column says "not available" and why otherwise).
Then it times the C API (one thread, the ISA the library picks) on coco16
and coco16_50box with the box losses ciou and siou beside iou, in rounds
that take the three in turn, and reports each one's time over iou's (the
median of the rounds' ratios).
On coco16 it times the C API and the drop-in with the head outputs in new
buffers each call while the last call's are alive (a training step's
placement) beside the C API on reused buffers, and reports the p50, p90 and
maximum of each (issue 20).
Then the thread table: the C API with the default thread count against 1
thread and all cores, on cases from a small trainer's step to the heavy
scenarios, each quiet and while one busy process per core runs (the
benchmark starts and stops them: yoloxloss_bench --load), the counts timed
in turn on one context.
Then the inference path: yoloxloss_decode and yoloxloss_detect (C API, the
ISA the library picks) per scenario and thread count, each beside its
memory floor.
Then, for float16 and bfloat16 head outputs (mixed precision), the drop-in
on 16-bit tensors and the C API on the same values rounded (--dtype), on
each instruction set, beside the 16-bit floor (one pass reading the 16-bit
outputs and writing 16-bit gradients). Then it sweeps batch size and boxes
per image (one thread) for the plot.
Progress goes to stderr; bench.md (tables), bench.png (plot) and bench.json
(every number) go to --out-dir. See bench/README.md.
"""
import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time

import bench_measure as m
import bench_report

FULL = dict(torch=m.Policy(warmup=1, min_iters=3, max_iters=15, seconds=4.0),
            lib=m.Policy(warmup=2, min_iters=5, max_iters=51, seconds=2.0),
            sweep_torch=m.Policy(warmup=1, min_iters=2, max_iters=7, seconds=1.5),
            sweep_images=(1, 2, 4, 8, 16), sweep_boxes=(1, 5, 10, 20, 50), sweep_boxes_images=16,
            placement=m.Policy(warmup=2, min_iters=21, max_iters=51, seconds=2.0))
QUICK = dict(torch=m.Policy(warmup=0, min_iters=1, max_iters=1, seconds=0.0),
             lib=m.Policy(warmup=1, min_iters=2, max_iters=2, seconds=0.0),
             sweep_torch=m.Policy(warmup=1, min_iters=1, max_iters=1, seconds=0.0),
             sweep_images=(1, 2), sweep_boxes=(1, 5), sweep_boxes_images=2,
             scenarios=("coco16",), images=2,
             placement=m.Policy(warmup=1, min_iters=3, max_iters=3, seconds=0.0))
# The box-loss rows: these scenarios, these losses, compared with the first,
# in this many rounds (FULL / QUICK).
BOX_LOSS_SCENARIOS = ("coco16", "coco16_50box")
BOX_LOSSES = ("iou", "ciou", "siou")
BOX_LOSS_ROUNDS = dict(full=9, quick=1)
# The mixed-precision rounds: float32, float16 and bfloat16 on these
# scenarios, on every supported SIMD instruction set, in this many rounds.
DTYPE_ROUND_SCENARIOS = ("coco16",)
# The placement rows (issue 20): the C API and the drop-in with the head
# outputs in new buffers each call, as a training step places them, on these
# scenarios at each thread count; p50, p90 and the maximum of each.
PLACEMENT_SCENARIOS = ("coco16",)
# (key, yoloxloss_bench --placement) of the C API's placement rows.
C_PLACEMENTS = (("c_reuse", "reuse"), ("c_fresh", "fresh"), ("c_fresh_touched", "fresh-touched"),
                ("c_fresh_huge", "fresh-huge"))

# The inference rows: decode and detect (C API, the ISA the library picks),
# detect at YOLOX's evaluation threshold (a fresh head's scores, about 1e-4,
# pass none of it) and at one nearly every anchor passes (NMS at full load).
INFERENCE_THRESHOLDS = (0.01, 0.0001)

# Relative difference of total losses above which the run warns: the C
# program and the drop-in run the same library on the same tensors; PyTorch
# differs by float rounding.
TOL_LIB, TOL_TORCH = 1e-4, 1e-3
# The 16-bit dtypes timed besides float32 (mixed precision), as torch and
# yoloxloss_bench --dtype name them.
HALF_DTYPES = ("float16", "bfloat16")


class Progress:
    """One line per measurement on stderr, with the time since the start."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.warnings = []

    def __call__(self, msg):
        print(f"[{time.perf_counter() - self.t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    def warn(self, msg):
        self.warnings.append(msg)
        self(f"WARNING: {msg}")

    def check(self, what, total, reference, tol):
        if abs(total - reference) > tol * max(abs(reference), 1e-30):
            self.warn(f"{what}: total loss {total:.7g} differs from {reference:.7g}")


def fmt(t):
    return f"{t.median_ms:.2f} ms (median of {t.iters}" + (
        f", min {t.min_ms:.2f})" if t.min_ms is not None else ")")


def time_c_isas(c, isas, sc, path, images, boxes, threads, policy, log, label, dropin_total, dtype="float32"):
    """The C API on each supported ISA (head outputs in dtype): {isa: fields}."""
    result = {}
    for isa in isas:
        timing, floor, f = c.time(sc, path, images, boxes, threads, isa, policy, dtype=dtype)
        log(f"{label}: C API [{isa}] {fmt(timing)}; floor {floor.median_ms:.2f} ms")
        if dropin_total is not None:
            log.check(f"{label} C API [{isa}] vs drop-in", float(f["total"]), dropin_total, TOL_LIB)
        result[isa] = dict(ms=timing.median_ms, min_ms=timing.min_ms, iters=timing.iters,
                           floor_ms=floor.median_ms, total=float(f["total"]), num_fg=int(f["num_fg"]),
                           bytes=int(f["bytes"]))
    return result


def measure(c, sc, inputs, threads, isas, torch_policy, lib_policy, log, label):
    """PyTorch, the drop-in with its floor, and the C API on each of isas,
    all on inputs = (outputs, labels, path of their file)."""
    outputs, labels, path = inputs
    torch_t, torch_total = m.time_torch(sc, outputs, labels, threads, torch_policy)
    log(f"{label}: PyTorch {fmt(torch_t)}")
    drop_t, floor_t, drop_total = m.time_dropin(sc, outputs, labels, threads, lib_policy)
    log(f"{label}: drop-in {fmt(drop_t)}; its floor {floor_t.median_ms:.2f} ms")
    log.check(f"{label} drop-in vs PyTorch", drop_total, torch_total, TOL_TORCH)
    images, boxes = labels.shape[0], labels.shape[1]
    c_rows = time_c_isas(c, isas, sc, path, images, boxes, threads, lib_policy, log, label, drop_total)
    return dict(images=images, boxes=boxes, threads=threads, torch_ms=torch_t.median_ms,
                torch_iters=torch_t.iters, torch_total=torch_total, dropin_ms=drop_t.median_ms,
                dropin_iters=drop_t.iters, dropin_floor_ms=floor_t.median_ms, dropin_floor_min_ms=floor_t.min_ms,
                dropin_total=drop_total, c=c_rows)


def measure_extras(sc, inputs, threads, cfg, log, label, official, row):
    """Adds to row the drop-in with its leaves made before the timer, and the
    official YOLOX code (official: (YOLOXHead class or None, why not))."""
    outputs, labels, _ = inputs
    loss_t, loss_total = m.time_dropin_loss_only(sc, outputs, labels, threads, cfg["lib"])
    log(f"{label}: drop-in, leaves made untimed {fmt(loss_t)}")
    log.check(f"{label} drop-in (loss only) vs drop-in", loss_total, row["dropin_total"], TOL_LIB)
    row.update(dropin_loss_only_ms=loss_t.median_ms, dropin_loss_only_iters=loss_t.iters)
    head_cls, why = official
    if head_cls is not None:
        timing, total = m.time_official(head_cls, sc, outputs, labels, threads, cfg["torch"])
        if timing is None:
            why = total
        else:
            log(f"{label}: official YOLOX {fmt(timing)}")
            log.check(f"{label} drop-in vs official YOLOX", row["dropin_total"], total, TOL_TORCH)
            row.update(official_ms=timing.median_ms, official_iters=timing.iters, official_total=total)
            return
    log(f"{label}: official YOLOX not available: {why}")
    row.update(official_ms=None, official_why=why)


def measure_half(c, sc, inputs, threads, isas, lib_policy, log, label):
    """Mixed precision: per 16-bit dtype, the drop-in on the head outputs
    in that dtype (with its floor) and the C API on each of isas on the same
    values (the C program rounds the float32 file as torch does):
    {dtype: fields}."""
    outputs, labels, path = inputs
    images, boxes = labels.shape[0], labels.shape[1]
    result = {}
    for dtype in HALF_DTYPES:
        typed = [o.to(getattr(m.torch, dtype)) for o in outputs]
        lab = f"{label}, {dtype}"
        drop_t, floor_t, drop_total = m.time_dropin(sc, typed, labels, threads, lib_policy)
        log(f"{lab}: drop-in {fmt(drop_t)}; its floor {floor_t.median_ms:.2f} ms")
        c_rows = time_c_isas(c, isas, sc, path, images, boxes, threads, lib_policy, log, lab, drop_total,
                             dtype=dtype)
        result[dtype] = dict(dropin_ms=drop_t.median_ms, dropin_iters=drop_t.iters,
                             dropin_floor_ms=floor_t.median_ms, dropin_total=drop_total, c=c_rows)
    return result


def make_inputs(sc, images, boxes, tmp, seed):
    """Inputs for sc with images and boxes per image, and their file for
    the C program."""
    outputs, labels = m.make_inputs(images, sc.size, sc.classes, boxes, seed=seed)
    path = os.path.join(tmp, f"{sc.name}_{images}x{boxes}_{seed}.bin")
    m.write_inputs(path, outputs, labels, sc.size, sc.classes)
    return outputs, labels, path


def run_scenario(c, sc, images, threads_list, isas, cfg, tmp, log, official=(None, "not asked for"), half=True):
    """Every implementation on sc (with `images` images if not None) at each
    thread count, and with half: the 16-bit runs (row["half"]); one row per
    thread count."""
    name = sc.name if images in (None, sc.images) else f"{sc.name} [{images} images]"
    inputs = make_inputs(sc, images or sc.images, sc.boxes, tmp, seed=0)
    rows = []
    for t in threads_list:
        label = f"{name}, {t} thread{'s' if t > 1 else ''}"
        rows.append(dict(scenario=name, **measure(c, sc, inputs, t, isas, cfg["torch"], cfg["lib"], log, label)))
        measure_extras(sc, inputs, t, cfg, log, label, official, rows[-1])
        if half:
            rows[-1]["half"] = measure_half(c, sc, inputs, t, isas, cfg["lib"], log, label)
    os.remove(inputs[2])
    return rows


def rotating_rounds(c, sc, images, isa, policy, rounds, tmp, log, variants, what):
    """The C API (one thread, isa) on sc with each of variants, a list of
    (name, keyword arguments of BenchProgram.time), `rounds` times in turn;
    the order rotates so that a drift in the machine's state (this machine
    flips between two speeds) falls on each alike. -> {name: (times, floors,
    output fields)}, the per-round medians."""
    label = sc.name if images in (None, sc.images) else f"{sc.name} [{images} images]"
    inputs = make_inputs(sc, images or sc.images, sc.boxes, tmp, seed=0)
    n_images, boxes = inputs[1].shape[0], inputs[1].shape[1]
    got = {name: ([], [], None) for name, _ in variants}
    for r in range(rounds):
        k = r % len(variants)
        for name, kwargs in variants[k:] + variants[:k]:
            timing, floor, f = c.time(sc, inputs[2], n_images, boxes, 1, isa, policy, **kwargs)
            for key, value in kwargs.items():
                if f.get(key) != value:
                    raise SystemExit(f"{c.exe} timed {key}={f.get(key)}, not {value}")
            got[name][0].append(timing.median_ms)
            got[name][1].append(floor.median_ms)
            got[name] = (got[name][0], got[name][1], f)
            log(f"{what} {name}, {label}, 1 thread [{isa}] round {r + 1}/{rounds}: {fmt(timing)}; "
                f"floor {floor.median_ms:.2f} ms")
    os.remove(inputs[2])
    return label, got


def per_round_ratio(times, base):
    return statistics.median([t / b for t, b in zip(times, base)])


def run_box_losses(c, sc, images, isa, policy, rounds, tmp, log):
    """One row per loss of BOX_LOSSES: the median of its medians and the
    median of its per-round ratios to the first loss."""
    name, got = rotating_rounds(c, sc, images, isa, policy, rounds, tmp, log,
                                [(loss, dict(iou_loss=loss)) for loss in BOX_LOSSES], "box loss")
    base = got[BOX_LOSSES[0]][0]
    return [dict(scenario=name, iou_loss=loss, isa=isa, threads=1, rounds=rounds, ms=statistics.median(got[loss][0]),
                 ms_rounds=got[loss][0], ratio=per_round_ratio(got[loss][0], base))
            for loss in BOX_LOSSES]


def run_dtype_rounds(c, sc, images, isa, policy, rounds, tmp, log):
    """One row per dtype (float32 and HALF_DTYPES): the median of its
    medians and of its floor's, and the medians of its per-round ratios to
    float32 and to its own floor (the targets of mixed precision)."""
    dtypes = ("float32",) + HALF_DTYPES
    name, got = rotating_rounds(c, sc, images, isa, policy, rounds, tmp, log,
                                [(dt, dict(dtype=dt)) for dt in dtypes], "dtype")
    base = got["float32"][0]
    return [dict(scenario=name, dtype=dt, isa=isa, threads=1, rounds=rounds, ms=statistics.median(got[dt][0]),
                 floor_ms=statistics.median(got[dt][1]), ms_rounds=got[dt][0], floor_rounds=got[dt][1],
                 ratio=per_round_ratio(got[dt][0], base), floor_ratio=per_round_ratio(got[dt][0], got[dt][1]))
            for dt in dtypes]


def run_placement(c, sc, images, threads_list, isa, policy, tmp, log):
    """Per thread count: the C API (isa) with its head outputs in the same
    buffers every call, in new buffers each call, in new buffers read once
    page by page before the timer, and in new buffers on 2 MiB pages; and
    the drop-in with new leaves each call while the last call's are alive. One row per thread count with the
    Spread of each (and of the C program's read pass)."""
    label = sc.name if images in (None, sc.images) else f"{sc.name} [{images} images]"
    outputs, labels, path = make_inputs(sc, images or sc.images, sc.boxes, tmp, seed=0)
    n_images, boxes = labels.shape[0], labels.shape[1]
    rows = []
    for t in threads_list:
        lab = f"placement {label}, {t} thread{'s' if t > 1 else ''}"
        row = dict(scenario=label, threads=t, isa=isa)
        drop, drop_total = m.time_dropin_placed(sc, outputs, labels, t, policy)
        log(f"{lab}: drop-in, new leaves each call: p50 {drop.p50_ms:.2f} p90 {drop.p90_ms:.2f} "
            f"max {drop.max_ms:.2f} ms ({drop.iters} calls)")
        row["dropin"] = drop._asdict()
        for key, placement in C_PLACEMENTS:
            _, _, f = c.time(sc, path, n_images, boxes, t, isa, policy, placement=placement)
            got = m.c_spread(f)
            log(f"{lab}: C API [{isa}] --placement {placement}: p50 {got.p50_ms:.2f} p90 {got.p90_ms:.2f} "
                f"max {got.max_ms:.2f} ms ({got.iters} calls)")
            log.check(f"{lab} C API [{isa}] --placement {placement} vs drop-in", float(f["total"]), drop_total, TOL_LIB)
            row[key] = got._asdict()
            if placement == "fresh-touched":
                row["touch"] = m.Spread(float(f["touch_ms"]), float(f["touch_p90_ms"]), float(f["touch_max_ms"]),
                                        got.iters)._asdict()
        rows.append(row)
    os.remove(path)
    return rows


# The default thread count against 1 thread and all cores: (scenario,
# images, boxes per image) from a small trainer's step (one image, two
# boxes: about 0.3 ms, the size of the darknet calls of issue 19) to the
# heavy scenarios; each quiet and with every core kept busy by --load.
THREAD_CASES = (("coco16", 1, 2), ("coco16", 4, 7), ("coco16", 16, 7), ("coco16_50box", 16, 50), ("lvis8", 8, 15))
THREAD_CASES_QUICK = (("coco16", 1, 2),)


def run_threads(c, all_scenarios, cases, iters, log):
    """Per case and load (none, then one busy process per core): the C API's
    p50, p90 and maximum with the default thread count (0), 1 thread and
    all cores, timed in turn on one context."""
    cores = os.cpu_count() or 1
    counts = [0, 1] + ([cores] if cores > 1 else [])
    by_name = {s.name: s for s in all_scenarios}
    rows = []
    for name, images, boxes in cases:
        sc = by_name[name]
        for load in (0, cores):
            got = c.thread_rounds(sc, images, boxes, counts, load, iters)
            label = f"{name} [{images} images, {boxes} boxes]"
            log(f"threads {label}, load {load}: " + "; ".join(
                f"{'default' if t == 0 else t}: p50 {v.p50_ms:.3f} p90 {v.p90_ms:.3f} ms" for t, v in got.items()))
            rows.append(dict(case=label, load=load, cores=cores,
                             times={str(t): v._asdict() for t, v in got.items()}))
    return rows


def run_inference(c, sc, images, threads_list, isa, policy, tmp, log):
    """yoloxloss_decode and yoloxloss_detect on sc at each thread count, each
    beside its floor (bench_inference.c): one row per thread count."""
    label = sc.name if images in (None, sc.images) else f"{sc.name} [{images} images]"
    inputs = make_inputs(sc, images or sc.images, sc.boxes, tmp, seed=0)
    n_images, boxes = inputs[1].shape[0], inputs[1].shape[1]
    rows = []
    for t in threads_list:
        row = dict(scenario=label, threads=t, isa=isa, detect=[])
        for thr in INFERENCE_THRESHOLDS:
            got = m.time_inference(c, sc, inputs[2], n_images, boxes, t, isa, policy, thr)
            if not row["detect"]:
                timing, floor, f = got["decode"]
                row.update(decode_ms=timing.median_ms, decode_floor_ms=floor.median_ms, decode_iters=timing.iters,
                           bytes_in=int(f["bytes_in"]), bytes_out=int(f["bytes_out"]))
                log(f"decode {label}, {t} thread{'s' if t > 1 else ''} [{isa}]: {fmt(timing)}; "
                    f"floor {floor.median_ms:.2f} ms")
            timing, floor, f = got["detect"]
            row["detect"].append(dict(score_threshold=thr, ms=timing.median_ms, floor_ms=floor.median_ms,
                                      iters=timing.iters, detections=int(f["detections"])))
            log(f"detect (score >= {thr:g}) {label}, {t} thread{'s' if t > 1 else ''} [{isa}]: {fmt(timing)}, "
                f"{f['detections']} detections; floor {floor.median_ms:.2f} ms")
        rows.append(row)
    os.remove(inputs[2])
    return rows


def run_sweep(c, base, axis, values, images_for_boxes, isa, cfg, tmp, log):
    """Times PyTorch, the drop-in and the C API (one thread, isa) on base
    with images or boxes per image set to each value."""
    points = []
    for v in values:
        images, boxes = (v, base.boxes) if axis == "images" else (images_for_boxes, v)
        inputs = make_inputs(base, images, boxes, tmp, seed=1)
        label = f"sweep {base.name} images={images} boxes={boxes}, 1 thread"
        r = measure(c, base, inputs, 1, [isa], cfg["sweep_torch"], cfg["lib"], log, label)
        os.remove(inputs[2])
        points.append(dict(x=v, c_ms=r["c"][isa]["ms"], c_floor_ms=r["c"][isa]["floor_ms"], **r))
    return points


def machine_info():
    cpu, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    simd = [x for x in ("avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "asimd") if x in flags]
    return dict(cpu=cpu, cores=os.cpu_count() or 1, simd=simd, torch=m.torch.__version__,
                library=m.yoloxloss.library_path(), python=sys.executable,
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-exe", default=os.path.join(m.ROOT, "build", "bench", "yoloxloss_bench"))
    ap.add_argument("--scenario", action="append", help="run only these scenarios (repeatable)")
    ap.add_argument("--threads", type=int, action="append", help="thread counts (default: 1 and all cores)")
    ap.add_argument("--images", type=int, help="images per batch in every scenario (default: the scenario's)")
    ap.add_argument("--quick", action="store_true",
                    help="coco16 on 2 images, a tiny sweep, 1-2 timed calls each (the ctest smoke test)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the batch and box sweeps (no plot)")
    ap.add_argument("--no-half", action="store_true",
                    help="skip the float16 and bfloat16 (mixed precision) measurements")
    ap.add_argument("--no-threads", action="store_true",
                    help="skip the thread-count table (the default against 1 thread and all cores, quiet and "
                         "under a competing load)")
    ap.add_argument("--out-dir", default=os.path.join(m.HERE, "results"))
    args = ap.parse_args()
    if args.images is not None and args.images < 1:
        ap.error("--images must be >= 1")
    if args.threads and min(args.threads) < 1:
        ap.error("--threads must be >= 1")

    cfg = QUICK if args.quick else FULL
    log = Progress()
    c = m.CProgram(args.bench_exe)
    all_scenarios = c.scenarios()
    wanted = args.scenario or cfg.get("scenarios")
    unknown = set(wanted or ()) - {s.name for s in all_scenarios}
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; the C program has "
                 f"{', '.join(s.name for s in all_scenarios)}")
    scenarios = [s for s in all_scenarios if not wanted or s.name in wanted]
    threads_list = args.threads or sorted({1, os.cpu_count() or 1})
    isa_rows = c.isas()
    isas = [name for name, ok, _ in isa_rows if ok]
    default_isa = next(name for name, _, dflt in isa_rows if dflt)
    info = machine_info()
    # scripts/bench.sh names itself, the command a reader of the table reruns.
    info["command"] = os.environ.get("YOLOXLOSS_BENCH_COMMAND") or " ".join(
        shlex.quote(a) for a in [os.path.relpath(sys.argv[0], m.ROOT)] + sys.argv[1:])
    info["policies"] = {k: v._asdict() for k, v in cfg.items() if isinstance(v, m.Policy)}
    log(f"yoloxloss {info['library']}; torch {info['torch']}; {info['cpu']}, {info['cores']} cores; "
        f"ISAs {', '.join(isas)} (default {default_isa}); threads {threads_list}")

    results = dict(machine=info, isas=[dict(name=n, supported=ok, default=d) for n, ok, d in isa_rows],
                   default_isa=default_isa, rows=[], sweeps={})
    official = m.load_official()
    results["official"] = dict(src=os.environ.get("YOLOX_SRC"), why=official[1],
                               assigner=official[0] and m.official_assigner(official[0]))
    log("official YOLOX: " + (f"{os.environ.get('YOLOX_SRC')} ({results['official']['assigner']} rule)"
                              if official[0] else f"not available: {official[1]}"))
    with tempfile.TemporaryDirectory(prefix="yoloxloss-bench-") as tmp:
        for sc in scenarios:
            results["rows"] += run_scenario(c, sc, args.images or cfg.get("images"), threads_list, isas, cfg, tmp,
                                            log, official, half=not args.no_half)
        rounds = BOX_LOSS_ROUNDS["quick" if args.quick else "full"]
        for sc in scenarios:
            if sc.name in BOX_LOSS_SCENARIOS:
                results.setdefault("box_losses", []).extend(
                    run_box_losses(c, sc, args.images or cfg.get("images"), default_isa, cfg["lib"], rounds, tmp,
                                   log))
            if sc.name in DTYPE_ROUND_SCENARIOS and not args.no_half:
                for isa in isas:
                    if isa != "scalar":
                        results.setdefault("dtype_rounds", []).extend(
                            run_dtype_rounds(c, sc, args.images or cfg.get("images"), isa, cfg["lib"], rounds,
                                             tmp, log))
        for sc in scenarios:
            results.setdefault("inference", []).extend(
                run_inference(c, sc, args.images or cfg.get("images"), threads_list, default_isa, cfg["lib"], tmp,
                              log))
            if sc.name in PLACEMENT_SCENARIOS:
                results.setdefault("placement", []).extend(
                    run_placement(c, sc, args.images or cfg.get("images"), threads_list, default_isa,
                                  cfg["placement"], tmp, log))
        if not args.no_threads:
            results["threads"] = run_threads(c, all_scenarios, THREAD_CASES_QUICK if args.quick else THREAD_CASES,
                                             3 if args.quick else 30, log)
        if not args.no_sweep:
            base = next(s for s in all_scenarios if s.name == "coco16")
            results["sweeps"]["images"] = run_sweep(c, base, "images", cfg["sweep_images"], None,
                                                    default_isa, cfg, tmp, log)
            results["sweeps"]["boxes"] = run_sweep(c, base, "boxes", cfg["sweep_boxes"], cfg["sweep_boxes_images"],
                                                   default_isa, cfg, tmp, log)
            results["sweeps"]["base"] = base._asdict()
    results["warnings"] = log.warnings
    results["elapsed_s"] = round(time.perf_counter() - log.t0, 1)

    paths = bench_report.write_all(results, args.out_dir)
    print(bench_report.main_table(results))
    for w in log.warnings:
        print(f"WARNING: {w}")
    print(f"\nfinished in {results['elapsed_s']:.0f} s")
    for kind, path in paths.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
