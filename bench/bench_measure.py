"""The measurements of the benchmark: inputs, timing loops, and the three
ways of computing the loss (PyTorch reference, Python drop-in, C program).

Every timing is a median over timed calls after untimed warm-up calls. A
Policy bounds the work: at least min_iters calls, then stop once `seconds`
of timed work are spent or max_iters calls are done.
"""
import collections
import math
import os
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

import torch  # noqa: E402

import yoloxloss  # noqa: E402
from yolox_reference import yolox_loss_reference  # noqa: E402

STRIDES = (8, 16, 32)
# Header of the inputs file the C program reads (bench/README.md): "YLXB" as
# a little-endian int32, then the format version.
INPUTS_MAGIC = 0x42584C59
INPUTS_VERSION = 1

Policy = collections.namedtuple("Policy", "warmup min_iters max_iters seconds")
Timing = collections.namedtuple("Timing", "median_ms min_ms iters")
Scenario = collections.namedtuple("Scenario", "name images size classes boxes assigner")


def make_inputs(images, size, classes, boxes, seed=0):
    """Head outputs as a freshly initialised YOLOX head gives them (class and
    objectness priors of 0.01), boxes with sides of 16 to 256 pixels centred
    uniformly over the image."""
    g = torch.Generator().manual_seed(seed)
    outputs = []
    for s in STRIDES:
        n = size // s
        out = torch.empty(images, 5 + classes, n, n)
        out[:, :4] = 0.3 * torch.randn(images, 4, n, n, generator=g)
        out[:, 4:] = -4.6 + 0.5 * torch.randn(images, 1 + classes, n, n, generator=g)
        outputs.append(out)
    labels = torch.zeros(images, boxes, 5)
    labels[:, :, 0] = torch.randint(0, classes, (images, boxes), generator=g).float()
    labels[:, :, 1:3] = torch.rand(images, boxes, 2, generator=g) * size
    labels[:, :, 3:5] = 16 + 240 * torch.rand(images, boxes, 2, generator=g)
    return outputs, labels


def write_inputs(path, outputs, labels, size, classes):
    """Writes the inputs in the C program's --inputs format."""
    images, boxes = labels.shape[0], labels.shape[1]
    with open(path, "wb") as f:
        f.write(struct.pack("<8i", INPUTS_MAGIC, INPUTS_VERSION, images, size, classes, boxes,
                            len(outputs), 0))
        for o in outputs:
            o.contiguous().numpy().tofile(f)
        labels[:, :, 0].to(torch.int32).contiguous().numpy().tofile(f)
        labels[:, :, 1:5].contiguous().numpy().tofile(f)


def time_calls(fn, policy, between=None):
    """Times fn under policy; returns (Timing of fn, Timing of between or
    None, the last value fn returned). between, if given, runs after every
    call of fn and is timed too, so both see the same machine load."""
    for _ in range(policy.warmup):
        value = fn()
        if between:
            between()
    times, other, spent = [], [], 0.0
    while len(times) < policy.max_iters:
        t0 = time.perf_counter()
        value = fn()
        t1 = time.perf_counter()
        if between:
            between()
        t2 = time.perf_counter()
        times.append((t1 - t0) * 1e3)
        other.append((t2 - t1) * 1e3)
        spent += t2 - t0
        if len(times) >= policy.min_iters and spent >= policy.seconds:
            break
    summary = Timing(statistics.median(times), min(times), len(times))
    between_summary = Timing(statistics.median(other), min(other), len(other)) if between else None
    return summary, between_summary, value


def loss_step(impl, outputs, labels, assigner, threads):
    """One training step's loss: fresh leaves cloned from outputs (a trainer
    gets new head outputs every step), forward, backward (autograd hands the
    leaves fresh gradient tensors). Returns the total loss as a float."""
    def step():
        leaves = [o.clone().requires_grad_(True) for o in outputs]
        if impl == "torch":
            total = yolox_loss_reference(leaves, labels, STRIDES, assigner)[0]
        else:
            total = yoloxloss.yolox_loss(leaves, labels, STRIDES, assigner=assigner,
                                         num_threads=threads)[0]
        total.backward()
        return float(total)

    return step


def dropin_floor(outputs):
    """The drop-in's floor (issue 3): what loss_step must do whatever the
    loss costs, clone the head outputs and allocate and first-touch a fresh
    gradient buffer of the same size (and dtype)."""
    def floor():
        clones = [o.clone() for o in outputs]
        grads = [torch.empty_like(o).fill_(0.0) for o in outputs]
        return clones, grads

    return floor


def time_torch(sc, outputs, labels, threads, policy):
    torch.set_num_threads(threads)
    timing, _, total = time_calls(loss_step("torch", outputs, labels, sc.assigner, threads), policy)
    return timing, total


def time_dropin(sc, outputs, labels, threads, policy):
    """The drop-in and its floor, interleaved call by call."""
    torch.set_num_threads(threads)
    step = loss_step("yoloxloss", outputs, labels, sc.assigner, threads)
    timing, floor, total = time_calls(step, policy, between=dropin_floor(outputs))
    return timing, floor, total


class CProgram:
    """bench/yoloxloss_bench, run once per measurement."""

    def __init__(self, exe):
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"no benchmark program at {exe} (build it: cmake --build build)")
        self.exe = exe

    def _run(self, args):
        proc = subprocess.run([self.exe] + args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{self.exe} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout

    def scenarios(self):
        """The scenarios the C program defines (the one list of them)."""
        result = []
        for line in self._run(["--list"]).splitlines():
            name, *pairs = line.split()
            f = dict(p.split("=", 1) for p in pairs)
            result.append(Scenario(name, int(f["images"]), int(f["size"]), int(f["classes"]),
                                   int(f["boxes"]), f["assigner"]))
        return result

    def isas(self):
        """[(name, supported, default)] for every ISA the library names."""
        rows = []
        for line in self._run(["--list-isas"]).splitlines():
            f = dict(p.split("=", 1) for p in line.split())
            rows.append((f["isa"], f["supported"] == "1", f["default"] == "1"))
        return rows

    def time(self, sc, inputs_path, images, boxes, threads, isa, policy, iou_loss=None, dtype="float32",
             placement=None):
        """Times the C API on the inputs file (with the box loss iou_loss,
        None: the program's default), its head outputs rounded to dtype and
        placed as --placement says (None: the program's default, reuse);
        returns (Timing, floor Timing, fields of the program's output line)."""
        out = self._run(["--scenario", sc.name, "--inputs", inputs_path, "--images", str(images),
                         "--boxes", str(boxes), "--threads", str(threads), "--isa", isa,
                         "--warmup", str(policy.warmup), "--min-iters", str(policy.min_iters),
                         "--iters", str(policy.max_iters), "--seconds", str(policy.seconds),
                         "--dtype", dtype]
                        + (["--iou-loss", iou_loss] if iou_loss else [])
                        + (["--placement", placement] if placement else []))
        f = dict(kv.split("=", 1) for kv in out.split())
        iters = int(f["iters"])
        return (Timing(float(f["median_ms"]), float(f["min_ms"]), iters),
                Timing(float(f["floor_ms"]), None, iters), f)


    def thread_rounds(self, sc, images, boxes, counts, load, iters):
        """Times the C API (synthetic inputs, the ISA the library picks) with
        each thread count of counts in turn on one context, while `load`
        busy processes run; returns {count: Spread}."""
        out = self._run(["--scenario", sc.name, "--images", str(images), "--boxes", str(boxes),
                         "--thread-rounds", ",".join(str(t) for t in counts), "--load", str(load),
                         "--iters", str(iters)])
        result = {}
        for line in out.splitlines():
            f = dict(kv.split("=", 1) for kv in line.split())
            result[int(f["threads"])] = Spread(float(f["median_ms"]), float(f["p90_ms"]), float(f["max_ms"]),
                                               int(f["iters"]))
        return result


# --- additions: the drop-in without the step's own allocations, and the
# official YOLOX code when $YOLOX_SRC names a checkout ----------------------

def time_prepared(prepare, fn, policy):
    """Times fn(prepare()) under policy, prepare() untimed before each call;
    returns (Timing, the last value fn returned). What prepare made is freed
    before the next call."""
    for _ in range(policy.warmup):
        args = prepare()
        value = fn(args)
        del args
    times, spent = [], 0.0
    while len(times) < policy.max_iters:
        args = prepare()
        t0 = time.perf_counter()
        value = fn(args)
        t1 = time.perf_counter()
        del args
        times.append((t1 - t0) * 1e3)
        spent += t1 - t0
        if len(times) >= policy.min_iters and spent >= policy.seconds:
            break
    return Timing(statistics.median(times), min(times), len(times)), value


def time_dropin_loss_only(sc, outputs, labels, threads, policy):
    """The drop-in's forward + backward alone: the fresh leaves of each call
    are cloned before its timer starts (the clone is the trainer's cost of
    new head outputs, which the drop-in column includes)."""
    torch.set_num_threads(threads)

    def prepare():
        return [o.clone().requires_grad_(True) for o in outputs]

    def run(leaves):
        total = yoloxloss.yolox_loss(leaves, labels, STRIDES, assigner=sc.assigner, num_threads=threads)[0]
        total.backward()
        return float(total)

    return time_prepared(prepare, run, policy)


def load_official():
    """(YOLOXHead class, None) from the checkout $YOLOX_SRC names, or (None,
    why not)."""
    src = os.environ.get("YOLOX_SRC")
    if not src:
        return None, "YOLOX_SRC is not set (a checkout of Megvii-BaseDetection/YOLOX)"
    if not os.path.isfile(os.path.join(src, "yolox", "models", "yolo_head.py")):
        return None, f"YOLOX_SRC={src} is not a YOLOX checkout"
    sys.path.insert(0, os.path.abspath(src))
    try:
        from yolox.models.yolo_head import YOLOXHead
    except ImportError as exc:
        return None, f"cannot import YOLOX from {src}: {exc}"
    return YOLOXHead, None


def official_assigner(head_cls):
    """The SimOTA rule a YOLOX checkout implements: its current code has
    get_geometry_constraint, 0.1-0.3 had get_in_boxes_info."""
    if hasattr(head_cls, "get_geometry_constraint"):
        return "yolox"
    if hasattr(head_cls, "get_in_boxes_info"):
        return "yolox-legacy"
    return None


def official_step(head, outputs, labels):
    """One training step's loss through the official code: fresh leaves as in
    loss_step, each level concatenated and decoded (get_output_and_grid) as
    YOLOXHead's training forward does, then YOLOXHead.get_losses and backward."""
    def step():
        leaves = [o.clone().requires_grad_(True) for o in outputs]
        decoded, x_shifts, y_shifts, expanded_strides = [], [], [], []
        for k, (leaf, stride) in enumerate(zip(leaves, STRIDES)):
            # YOLOX's forward concatenates the level's reg, obj and cls
            # outputs first (get_output_and_grid then writes into the result).
            fused = torch.cat([leaf[:, :4], leaf[:, 4:5], leaf[:, 5:]], 1)
            out, grid = head.get_output_and_grid(fused, k, stride, leaf.type())
            decoded.append(out)
            x_shifts.append(grid[:, :, 0])
            y_shifts.append(grid[:, :, 1])
            expanded_strides.append(torch.full((1, grid.shape[1]), float(stride), dtype=leaf.dtype))
        total = head.get_losses(None, x_shifts, y_shifts, expanded_strides, labels,
                                torch.cat(decoded, 1), [], dtype=leaves[0].dtype)[0]
        total.backward()
        return float(total)

    return step


def time_official(head_cls, sc, outputs, labels, threads, policy):
    """The official get_losses + backward (Timing, total), or (None, why not)."""
    rule = official_assigner(head_cls)
    if rule != sc.assigner:
        return None, f"the YOLOX checkout implements the {rule or 'unknown'} rule, not {sc.assigner}"
    import warnings
    warnings.filterwarnings("ignore", message=".*CUDA is not available.*")  # its autocast(enabled=False)
    torch.set_num_threads(threads)
    head = head_cls(sc.classes, width=0.25, strides=list(STRIDES))
    timing, _, total = time_calls(official_step(head, outputs, labels), policy)
    return timing, total


# --- placement: head outputs in new buffers each call, as a training step
# places them (issue 20) -----------------------------------------------------

Spread = collections.namedtuple("Spread", "p50_ms p90_ms max_ms iters")


def nearest_rank(values, q):
    """The q-quantile of values by nearest rank (the smallest value with at
    least q * n values at or below it), as yoloxloss_bench computes it."""
    v = sorted(values)
    k = math.ceil(q * len(v) - 1e-9)  # q n computed in floating point may land a hair above an integer
    return v[min(max(k, 1), len(v)) - 1]


def spread(times):
    """p50 is the median, as yoloxloss_bench's median_ms."""
    return Spread(statistics.median(times), nearest_rank(times, 0.9), max(times), len(times))


def c_spread(fields):
    """The Spread of a yoloxloss_bench output line (its median is its p50)."""
    return Spread(float(fields["median_ms"]), float(fields["p90_ms"]), float(fields["max_ms"]), int(fields["iters"]))


def time_dropin_placed(sc, outputs, labels, threads, policy):
    """The drop-in's forward + backward on leaves placed as a training step
    places its head outputs: each call's leaves are cloned, untimed, while
    the previous call's leaves (and their gradients) are still alive, then
    the previous ones are dropped and the call is timed. Returns (Spread,
    the last total)."""
    torch.set_num_threads(threads)
    leaves = loss = None
    times, spent = [], 0.0
    for i in range(policy.warmup + policy.max_iters):
        fresh = [o.clone().requires_grad_(True) for o in outputs]
        # The last call's leaves, alive during the clone, go now with the
        # graph that holds them, as a trainer drops the last step's outputs.
        loss = None
        leaves = fresh
        t0 = time.perf_counter()
        loss = yoloxloss.yolox_loss(leaves, labels, STRIDES, assigner=sc.assigner, num_threads=threads)[0]
        loss.backward()
        total = float(loss)
        t1 = time.perf_counter()
        if i < policy.warmup:
            continue
        times.append((t1 - t0) * 1e3)
        spent += t1 - t0
        if len(times) >= policy.min_iters and spent >= policy.seconds:
            break
    return spread(times), total


# --- addition: the inference path (yoloxloss_bench --inference) ---------------

def time_inference(c, sc, inputs_path, images, boxes, threads, isa, policy, score_threshold):
    """yoloxloss_decode and yoloxloss_detect (detect at score_threshold) on
    the inputs file: {"decode": (Timing, floor Timing, fields), "detect": ...}."""
    out = c._run(["--inference", "--score-threshold", repr(float(score_threshold)), "--scenario", sc.name,
                  "--inputs", inputs_path, "--images", str(images), "--boxes", str(boxes), "--threads",
                  str(threads), "--isa", isa, "--warmup", str(policy.warmup), "--min-iters", str(policy.min_iters),
                  "--iters", str(policy.max_iters), "--seconds", str(policy.seconds)])
    result = {}
    for line in out.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split())
        iters = int(f["iters"])
        result[f["op"]] = (Timing(float(f["median_ms"]), float(f["min_ms"]), iters),
                           Timing(float(f["floor_ms"]), None, iters), f)
    if set(result) != {"decode", "detect"}:
        raise SystemExit(f"{c.exe} --inference printed {sorted(result)}, not decode and detect:\n{out}")
    return result
