#!/usr/bin/python3
"""Times yoloxloss against the PyTorch reference on the benchmark scenarios.

Per scenario and thread count it prints the median wall time of forward +
backward for:
  torch     the PyTorch implementation in tests/reference/ (vectorised as the
            official YOLOX code is), on the same input tensors as the drop-in;
  drop-in   yoloxloss through its Python binding (fresh gradient tensors
            each call, as autograd needs);
  C API     bench/yoloxloss_bench: caller-owned gradient buffers reused
            across steps (synthetic inputs of the same shapes and kind);
  floor     one streaming pass reading the outputs and writing buffers of the
            same size, timed by the C program in the same run.
The table goes to stdout and to bench/results/bench.md.
"""
import argparse
import os
import statistics
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

# name, images, image size, classes, boxes per image, assigner
SCENARIOS = [
    ("coco16", 16, 640, 80, 7, "yolox"),
    ("coco16_50box", 16, 640, 80, 50, "yolox"),
    ("legacy16", 16, 640, 80, 7, "yolox-legacy"),
    ("legacy16_50box", 16, 640, 80, 50, "yolox-legacy"),
    ("lvis8", 8, 640, 1203, 15, "yolox"),
    ("big4_1280", 4, 1280, 80, 7, "yolox"),
]
STRIDES = (8, 16, 32)


def make_inputs(images, size, classes, boxes, seed=0):
    """Head outputs as a freshly initialised YOLOX head gives them (class and
    objectness priors of 0.01), boxes uniform over the image."""
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


def time_fn(fn, iters):
    times = []
    fn()  # warm-up: workspace, allocator, first-touch
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def loss_step(impl, outputs, labels, assigner, threads):
    leaves = [o.clone().requires_grad_(True) for o in outputs]

    def step():
        for x in leaves:
            x.grad = None
        if impl == "torch":
            total = yolox_loss_reference(leaves, labels, STRIDES, assigner)[0]
        else:
            total = yoloxloss.yolox_loss(leaves, labels, STRIDES, assigner=assigner,
                                         num_threads=threads)[0]
        total.backward()
        return float(total)

    return step


def c_api(exe, name, threads, iters):
    out = subprocess.run([exe, "--scenario", name, "--threads", str(threads), "--iters", str(iters)],
                         check=True, capture_output=True, text=True).stdout
    fields = dict(kv.split("=", 1) for kv in out.split())
    return float(fields["median_ms"]), float(fields["floor_ms"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-exe", default=os.path.join(ROOT, "build", "bench", "yoloxloss_bench"))
    ap.add_argument("--scenario", action="append", help="run only these (repeatable)")
    ap.add_argument("--threads", type=int, action="append", help="thread counts (default: 1 and all cores)")
    ap.add_argument("--iters", type=int, default=7, help="timed iterations of yoloxloss")
    ap.add_argument("--torch-iters", type=int, default=3, help="timed iterations of the PyTorch reference")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bench.md"))
    args = ap.parse_args()

    threads = args.threads or sorted({1, os.cpu_count() or 1})
    scenarios = [s for s in SCENARIOS if not args.scenario or s[0] in args.scenario]
    header = ("| scenario | threads | PyTorch ms | drop-in ms | C API ms | floor ms "
              "| PyTorch / C API | PyTorch / drop-in | C API / floor |")
    rows = [header, "|" + "---|" * 9]
    print(f"yoloxloss {yoloxloss.library_path()}; torch {torch.__version__}; "
          f"median of {args.iters} (yoloxloss) and {args.torch_iters} (PyTorch) runs", flush=True)
    for name, images, size, classes, boxes, assigner in scenarios:
        outputs, labels = make_inputs(images, size, classes, boxes)
        for t in threads:
            print(f"[{name}, {t} thread(s)] PyTorch ...", end="", flush=True)
            torch.set_num_threads(t)
            t_torch = time_fn(loss_step("torch", outputs, labels, assigner, t), args.torch_iters)
            print(f" {t_torch:.1f} ms; drop-in ...", end="", flush=True)
            t_drop = time_fn(loss_step("yoloxloss", outputs, labels, assigner, t), args.iters)
            print(f" {t_drop:.1f} ms; C API ...", end="", flush=True)
            t_c, t_floor = c_api(args.bench_exe, name, t, args.iters)
            print(f" {t_c:.1f} ms (floor {t_floor:.1f} ms)", flush=True)
            rows.append(f"| {name} | {t} | {t_torch:.1f} | {t_drop:.1f} | {t_c:.1f} | {t_floor:.1f} "
                        f"| {t_torch / t_c:.0f}x | {t_torch / t_drop:.0f}x | {t_c / t_floor:.2f}x |")
    table = "\n".join(rows)
    print()
    print(table)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(f"torch {torch.__version__}, {os.cpu_count()} cores; medians of {args.iters} "
                f"(yoloxloss) and {args.torch_iters} (PyTorch) runs.\n\n{table}\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
