"""The benchmark's outputs: markdown tables ready to paste into
docs/performance.md, the scaling plot, and every number as JSON."""
import json
import os

# CPU flags (/proc/cpuinfo) each ISA's kernels need.
ISA_CPU_FLAGS = {"scalar": (), "avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx512bw", "avx512dq", "avx512vl"),
                 "neon": ("asimd",)}


def ms(v):
    return "—" if v is None else f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return "—"
    r = a / b
    return f"{r:.0f}x" if r >= 10 else f"{r:.2f}x"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main_table(res):
    """Per scenario and thread count: every implementation, both floors,
    the ratios, and the C API's speedup over one thread."""
    isa = res["default_isa"]
    one_thread = {r["scenario"]: r["c"][isa]["ms"] for r in res["rows"] if r["threads"] == 1}
    header = ["scenario", "threads", "PyTorch ms", "drop-in ms", "drop-in floor ms", f"C API ms ({isa})",
              "C API floor ms", "PyTorch / C API", "PyTorch / drop-in", "C API / floor", "drop-in / floor",
              "C API speedup vs 1 thread"]
    rows = []
    for r in res["rows"]:
        c = r["c"][isa]
        base = one_thread.get(r["scenario"])
        speedup = ratio(base, c["ms"]) if r["threads"] > 1 else "—"
        rows.append([r["scenario"], r["threads"], ms(r["torch_ms"]), ms(r["dropin_ms"]), ms(r["dropin_floor_ms"]),
                     ms(c["ms"]), ms(c["floor_ms"]), ratio(r["torch_ms"], c["ms"]),
                     ratio(r["torch_ms"], r["dropin_ms"]), ratio(c["ms"], c["floor_ms"]),
                     ratio(r["dropin_ms"], r["dropin_floor_ms"]), speedup])
    return _table(header, rows)


def extras_table(res):
    """Per scenario and thread count: the drop-in with its leaves made
    before the timer and the official YOLOX code, against the C API."""
    isa = res["default_isa"]
    header = ["scenario", "threads", "drop-in ms", "drop-in, loss only ms", f"C API ms ({isa})",
              "drop-in / C API", "loss only / C API", "drop-in / its floor", "official YOLOX ms",
              "official / drop-in"]
    rows = []
    for r in res["rows"]:
        c = r["c"][isa]["ms"]
        loss_only = r.get("dropin_loss_only_ms")
        official = r.get("official_ms")
        rows.append([r["scenario"], r["threads"], ms(r["dropin_ms"]), ms(loss_only), ms(c),
                     ratio(r["dropin_ms"], c), ratio(loss_only, c), ratio(r["dropin_ms"], r["dropin_floor_ms"]),
                     ms(official) if official is not None else "not available",
                     ratio(official, r["dropin_ms"])])
    return _table(header, rows)


def official_note(res):
    """Where the official column's numbers come from, or why it has none."""
    o = res.get("official") or {}
    if o.get("assigner"):
        return (f"official YOLOX: `YOLOXHead.get_losses` + backward from YOLOX_SRC={o['src']} "
                f"({o['assigner']} rule; other scenarios say why not), the head outputs decoded by "
                "`get_output_and_grid` as its training forward does, fresh leaves per call as for PyTorch.")
    return f"official YOLOX: not available: {o.get('why', 'not measured')}."


def isa_table(res):
    """The C API once per ISA this build and CPU have, then one row per ISA
    they lack, saying which of the two lacks it."""
    flags = set(res["machine"]["simd"])
    header = ["scenario", "threads", "ISA", "C API ms", "floor ms", "C API / floor", "PyTorch / C API",
              "scalar / this ISA"]
    rows = []
    for r in res["rows"]:
        scalar = r["c"].get("scalar", {}).get("ms")
        for isa, c in r["c"].items():
            rows.append([r["scenario"], r["threads"], isa, ms(c["ms"]), ms(c["floor_ms"]),
                         ratio(c["ms"], c["floor_ms"]), ratio(r["torch_ms"], c["ms"]), ratio(scalar, c["ms"])])
    for i in res["isas"]:
        if i["supported"]:
            continue
        needs = ISA_CPU_FLAGS.get(i["name"])
        why = ("this CPU lacks it" if needs is None or not all(f in flags for f in needs)
               else "this build has no kernels for it (the CPU has it)")
        rows.append(["(all)", "—", i["name"], f"not measured: {why}", "", "", "", ""])
    return _table(header, rows)


def box_loss_table(res):
    """The C API with each box loss on the same inputs, and its time over the
    first loss's (the median of the per-round ratios)."""
    rows = [[r["scenario"], r["threads"], r["isa"], r["iou_loss"], ms(r["ms"]), r["rounds"],
             f"{r['ratio']:.3f}" if r["ratio"] is not None else "—"] for r in res.get("box_losses", [])]
    return _table(["scenario", "threads", "ISA", "box loss", "C API ms (median of rounds)", "rounds",
                   "time / iou's (median of per-round ratios)"], rows)


def dtype_rounds_table(res):
    """float32, float16 and bfloat16 on the same inputs in rotating rounds:
    the C API and its floor per dtype, and the medians of the per-round
    ratios to float32 and to the dtype's own floor."""
    rows = [[r["scenario"], r["threads"], r["isa"], r["dtype"], ms(r["ms"]), ms(r["floor_ms"]), r["rounds"],
             f"{r['ratio']:.3f}", f"{r['floor_ratio']:.2f}x"] for r in res.get("dtype_rounds", [])]
    return _table(["scenario", "threads", "ISA", "dtype", "C API ms (median of rounds)", "floor ms", "rounds",
                   "time / float32's (median of per-round ratios)", "time / own floor"], rows)


def half_table(res):
    """Mixed precision: per scenario, thread count, 16-bit dtype and ISA,
    the C API on 16-bit head outputs beside its 16-bit floor and the same
    ISA's float32 run; the drop-in on 16-bit tensors (default ISA rows)
    beside the drop-in on float32 ones."""
    header = ["scenario", "threads", "dtype", "ISA", "C API ms", "floor ms", "C API / float32 C API",
              "C API / floor", "drop-in ms", "float32 drop-in / this drop-in"]
    rows = []
    for r in res["rows"]:
        for dtype, h in r.get("half", {}).items():
            for isa, c in h["c"].items():
                default = isa == res["default_isa"]
                rows.append([r["scenario"], r["threads"], dtype, isa, ms(c["ms"]), ms(c["floor_ms"]),
                             ratio(c["ms"], r["c"].get(isa, {}).get("ms")), ratio(c["ms"], c["floor_ms"]),
                             ms(h["dropin_ms"]) if default else "—",
                             ratio(r["dropin_ms"], h["dropin_ms"]) if default else "—"])
    return _table(header, rows)


# The placement rows: (key in bench.json, what the row times); the ratios
# divide by the C API on new buffers ("c_fresh").
PLACEMENT_ROWS = (("c_reuse", "C API, the same buffers every call"),
                  ("c_fresh", "C API, new buffers each call"),
                  ("c_fresh_touched", "C API, new buffers each call, each page read once before the timer"),
                  ("touch", "that read pass alone (untimed in the row above)"),
                  ("c_fresh_huge", "C API, new buffers each call, on 2 MiB pages (MADV_HUGEPAGE)"),
                  ("dropin", "drop-in, loss only, new leaves each call"))
# Issue 20's targets: the drop-in within these multiples of the C API (new
# buffers) at p50 and p90, and the C API's p90 within this multiple of its p50.
PLACEMENT_TARGETS = dict(dropin_p50=1.5, dropin_p90=2.0, c_p90_over_p50=1.5)


def placement_table(res):
    """Per scenario and thread count: p50, p90 and maximum of the C API and
    the drop-in with the head outputs in new buffers each call, and of the C
    API on reused buffers; the ratios to the C API on new buffers."""
    header = ["scenario", "threads", "what", "p50 ms", "p90 ms", "max ms", "calls", "p90 / p50",
              "p50 / C API's (new buffers)", "p90 / C API's (new buffers)"]
    rows = []
    for r in res.get("placement", []):
        base = r["c_fresh"]
        for key, what in PLACEMENT_ROWS:
            v = r.get(key)
            if v is None:
                continue
            what = what.replace("C API", f"C API ({r['isa']})")
            to_base = key != "touch"  # a part of a call set against a whole call says nothing
            rows.append([r["scenario"], r["threads"], what, ms(v["p50_ms"]), ms(v["p90_ms"]), ms(v["max_ms"]),
                         v["iters"], ratio(v["p90_ms"], v["p50_ms"]),
                         ratio(v["p50_ms"], base["p50_ms"]) if to_base else "—",
                         ratio(v["p90_ms"], base["p90_ms"]) if to_base else "—"])
    return _table(header, rows)


def placement_targets(res):
    """One sentence per row of res["placement"]: issue 20's three ratios and
    whether each is met."""
    t = PLACEMENT_TARGETS
    out = []
    for r in res.get("placement", []):
        c, d = r["c_fresh"], r["dropin"]
        checks = [("drop-in / C API at p50", d["p50_ms"] / c["p50_ms"], t["dropin_p50"]),
                  ("at p90", d["p90_ms"] / c["p90_ms"], t["dropin_p90"]),
                  ("C API p90 / p50", c["p90_ms"] / c["p50_ms"], t["c_p90_over_p50"])]
        parts = [f"{name} {value:.2f}x (target <= {limit}x: {'met' if value <= limit else 'not met'})"
                 for name, value, limit in checks]
        out.append(f"{r['scenario']}, {r['threads']} thread{'s' if r['threads'] > 1 else ''}: " + "; ".join(parts)
                   + ".")
    return " ".join(out)


def threads_table(res):
    """Per case and load: p50 and p90 of the default thread count, of 1
    thread and of all cores, and the default's p50 over the better of the
    other two (the target is <= 1.1x)."""
    header = ["case", "load", "default p50 ms", "1 thread p50 ms", "all cores p50 ms", "default p90 ms",
              "1 thread p90 ms", "all cores p90 ms", "default / best p50"]
    rows = []
    for r in res.get("threads", []):
        t = r["times"]
        d, one = t["0"], t["1"]
        every = t.get(str(r["cores"]), one)
        best = min(one["p50_ms"], every["p50_ms"])
        load = "quiet" if r["load"] == 0 else f"{r['load']} busy processes"
        rows.append([r["case"], load, ms(d["p50_ms"]), ms(one["p50_ms"]), ms(every["p50_ms"]), ms(d["p90_ms"]),
                     ms(one["p90_ms"]), ms(every["p90_ms"]), ratio(d["p50_ms"], best)])
    return _table(header, rows)


def inference_table(res):
    """decode and detect per scenario and thread count, each against its
    memory floor; detect at each score threshold with its detections."""
    rows = []
    for r in res.get("inference", []):
        for k, d in enumerate(r["detect"]):
            first = k == 0
            rows.append([r["scenario"], r["threads"], r["isa"], ms(r["decode_ms"]) if first else "",
                         ms(r["decode_floor_ms"]) if first else "",
                         ratio(r["decode_ms"], r["decode_floor_ms"]) if first else "", f"{d['score_threshold']:g}",
                         ms(d["ms"]), d["detections"], ratio(d["ms"], d["floor_ms"])])
    return _table(["scenario", "threads", "ISA", "decode ms", "decode floor ms", "decode / floor",
                   "detect score threshold", "detect ms", "detections", "detect / read floor"], rows)


def linear_fit(xs, ys):
    """The line y = a + b x with the least squared relative residuals (weights
    1/y^2, so the small points count as much as the large ones, as on a log
    axis); returns (a, b, the largest |residual| / y)."""
    w = [1.0 / (y * y) for y in ys]
    s, sx, sy = sum(w), sum(wi * x for wi, x in zip(w, xs)), sum(wi * y for wi, y in zip(w, ys))
    sxx = sum(wi * x * x for wi, x in zip(w, xs))
    sxy = sum(wi * x * y for wi, x, y in zip(w, xs, ys))
    det = s * sxx - sx * sx
    b = (s * sxy - sx * sy) / det if det > 0 else 0.0
    a = (sxx * sy - sx * sxy) / det if det > 0 else sy / s
    return a, b, max(abs(y - a - b * x) / y for x, y in zip(xs, ys))


# A line through two points says nothing about linearity.
MIN_FIT_POINTS = 3
SERIES = (("torch_ms", "PyTorch"), ("dropin_ms", "drop-in"), ("c_ms", "C API"), ("c_floor_ms", "C API floor"))


def sweep_section(points, axis):
    header = [axis if axis == "images" else "boxes per image"] + [f"{name} ms" for _, name in SERIES] + [
        "PyTorch / C API"]
    rows = [[p["x"]] + [ms(p[k]) for k, _ in SERIES] + [ratio(p["torch_ms"], p["c_ms"])] for p in points]
    fits = []
    if len(points) >= MIN_FIT_POINTS:
        xs = [p["x"] for p in points]
        for key, name in SERIES[:3]:
            a, b, worst = linear_fit(xs, [p[key] for p in points])
            fits.append(f"{name} {a:.3g} {'-' if b < 0 else '+'} {abs(b):.3g}·x ms (points within "
                        f"{100 * worst:.0f}%)")
    text = _table(header, rows)
    if fits:
        unit = "images" if axis == "images" else "boxes per image"
        text += (f"\n\nStraight lines a + b·x fitted to the medians (least relative squares), x = {unit}: "
                 + "; ".join(fits) + ".")
    return text


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    sweeps, base = res["sweeps"], res["sweeps"]["base"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = (("images", f"batch size (images of {base['size']}x{base['size']}, {base['boxes']} boxes each)"),
              ("boxes", f"boxes per image ({sweeps['boxes'][0]['images']} images of {base['size']}x{base['size']})"))
    colours = dict(torch_ms="tab:red", dropin_ms="tab:green", c_ms="tab:blue", c_floor_ms="tab:gray")
    for ax, (axis, xlabel) in zip(axes, panels):
        points = sweeps[axis]
        xs = [p["x"] for p in points]
        for key, name in SERIES:
            ys = [p[key] for p in points]
            style = "--" if key == "c_floor_ms" else "-"
            ax.plot(xs, ys, style, marker="o", color=colours[key], label=name)
            if key != "c_floor_ms" and len(xs) >= MIN_FIT_POINTS:
                a, b, _ = linear_fit(xs, ys)
                dense = [xs[0] + (xs[-1] - xs[0]) * i / 200 for i in range(201)]
                line = [(x, a + b * x) for x in dense if a + b * x > 0]  # a log axis has no room for <= 0
                ax.plot([x for x, _ in line], [y for _, y in line], ":", color=colours[key], linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("forward + backward, median ms")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    m = res["machine"]
    fig.suptitle(f"yoloxloss vs PyTorch {m['torch']}, {base['classes']} classes, 1 thread, "
                 f"C API on {res['default_isa']}; dotted: linear fit a + b·x ({m['cpu']}, {m['date']})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res, png_name):
    m = res["machine"]
    lines = [
        "# yoloxloss benchmark",
        "",
        f"`{m['command']}` on {m['cpu']} ({m['cores']} cores; SIMD: {', '.join(m['simd']) or 'none'}), "
        f"PyTorch {m['torch']}, {m['date']}; {res['elapsed_s']:.0f} s in all. Forward + backward of the "
        f"loss, median of timed calls after warm-up calls (counts in bench.json).",
        "",
        "## Per scenario",
        "",
        main_table(res),
        "",
        "PyTorch: the reference in `tests/reference/yolox_reference.py`. drop-in: the Python binding on the "
        "same tensors (fresh leaves and gradient tensors every call); its floor clones the head outputs and "
        "allocates and first-touches a gradient buffer of the same size, timed call by call in the same run. C API: "
        f"`bench/yoloxloss_bench` on the same tensors ({res['default_isa']}, the ISA the library picks here), "
        "gradient buffers reused across steps; its floor is one pass reading the head outputs and writing "
        "buffers of the same size, timed step by step in the same run.",
        "",
        "## Drop-in without the step's allocations, and the official YOLOX code",
        "",
        extras_table(res),
        "",
        "drop-in, loss only: the drop-in with each call's fresh leaves cloned before its timer (the clone, "
        "a trainer's cost of new head outputs, is in the drop-in column and in its floor). " + official_note(res),
        "",
        "## C API per instruction set",
        "",
        isa_table(res),
    ]
    if res.get("box_losses"):
        lines += ["", "## Box losses (C API, one thread)", "", box_loss_table(res), "",
                  "The same inputs with each box loss, timed in rounds that take the losses in turn; the ratio "
                  "is each round's time over iou's in that round, median over the rounds."]
    if res.get("dtype_rounds"):
        lines += ["", "## Mixed precision in rounds (C API, one thread)", "", dtype_rounds_table(res), "",
                  "The same inputs as float32, float16 and bfloat16 (`yoloxloss_bench --dtype`), timed in rounds "
                  "that take the dtypes in turn; each ratio is the median over the rounds of that round's ratio. "
                  "The floor of a 16-bit row is one pass reading its 16-bit outputs and writing 16-bit gradients."]
    if res.get("threads"):
        cores = res["threads"][0]["cores"]
        lines += ["", "## Threads: the default against 1 thread and all cores, quiet and loaded", "",
                  threads_table(res), "",
                  f"The C API (synthetic inputs, the library's ISA) with `num_threads = 0` (the default), 1 and "
                  f"{cores} threads, timed in turn on one context (`yoloxloss_bench --thread-rounds 0,1,{cores}`, "
                  f"`yoloxloss_set_num_threads` between rounds); \"loaded\": while {cores} processes spin on "
                  f"arithmetic (`--load {cores}`), started and stopped by the benchmark. Target: the default's p50 "
                  f"within 1.1x of the better of the other two in every row."]
    if res.get("placement"):
        lines += ["", "## Placement: head outputs in new buffers each call", "", placement_table(res), "",
                  "As a training step places its head outputs: before each call, untimed, they are copied into "
                  "new buffers while the last call's are still alive (C API: `yoloxloss_bench --placement fresh`; "
                  "drop-in: new leaves cloned, then the last call's leaves and graph dropped), beside the same "
                  "buffers every call (`--placement reuse`). `fresh-touched` also reads one byte of every 4 KiB "
                  "page of the new buffers before the timer (the next row times that pass): if it makes the call "
                  "fast, what a new placement costs is the first touch of each page, not the call's own access "
                  "pattern. `fresh-huge` maps the new buffers on 2 MiB boundaries with MADV_HUGEPAGE (2 MiB pages "
                  "where the kernel grants them). p50 is the median, p90 the nearest-rank 90th percentile.",
                  "", "Targets (issue 20): " + placement_targets(res)]
    if res.get("inference"):
        lines += ["", "## Inference: decode and detect (C API)", "", inference_table(res), "",
                  "`yoloxloss_decode` writes every anchor's box and class scores (float32 `[B, A, 4]` and "
                  "`[B, A, C]`); its floor is one pass reading the head outputs and writing that many floats. "
                  "`yoloxloss_detect` (YOLOX's postprocess, NMS at 0.45, at most 100 per image) writes almost "
                  "nothing: its floor is the read alone (it can go below it, since it skips the class logits "
                  "of anchors whose objectness is under the threshold). The inputs are a fresh head's logits "
                  "(scores about 1e-4): none passes YOLOX's evaluation threshold 0.01, nearly all pass 1e-4."]
    if any(r.get("half") for r in res["rows"]):
        lines += ["", "## Mixed precision (float16 and bfloat16 head outputs and gradients)", "",
                  half_table(res), "",
                  "The head outputs of the rows above rounded to the dtype. C API: `yoloxloss_bench --dtype`, "
                  "16-bit gradient buffers reused across steps; its floor is one pass reading the 16-bit "
                  "outputs and writing 16-bit buffers of the same size; `C API / float32 C API` divides by "
                  "the same ISA's float32 time above. drop-in: the binding on 16-bit tensors, used in place, "
                  "16-bit gradients."]
    if res["sweeps"]:
        base = res["sweeps"]["base"]
        lines += ["", f"## Scaling (one thread, {base['classes']} classes, {base['size']}x{base['size']})", "",
                  f"Batch size, {base['boxes']} boxes per image:", "", sweep_section(res["sweeps"]["images"], "images"),
                  "", f"Boxes per image, {res['sweeps']['boxes'][0]['images']} images:", "",
                  sweep_section(res["sweeps"]["boxes"], "boxes"), "", f"![time vs batch size and boxes]({png_name})"]
    if res["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in res["warnings"]]
    return "\n".join(lines) + "\n"


def write_all(res, out_dir):
    """Writes bench.md, bench.json and (with sweeps) bench.png into out_dir;
    returns {what: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"table": os.path.join(out_dir, "bench.md"), "data": os.path.join(out_dir, "bench.json")}
    if res["sweeps"]:
        paths["plot"] = os.path.join(out_dir, "bench.png")
        plot(res, paths["plot"])
    with open(paths["table"], "w") as f:
        f.write(markdown(res, "bench.png"))
    with open(paths["data"], "w") as f:
        json.dump(res, f, indent=1)
    return paths
