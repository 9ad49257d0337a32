#!/usr/bin/python3
"""A real PyTorch training step with the loss swapped for the C library.

A small YOLOX-style head (a shared stem per level, then 1x1 reg | obj | cls
convolutions, concatenated in YOLOX's channel order) is trained for a few SGD
steps on the CPU twice from the same initial weights and the same batches:

  * "get_losses": the loss written in PyTorch in YOLOX's way. The project's
    own reference implementation (tests/reference/yolox_reference.py) stands
    in for ``YOLOXHead.get_losses``: same SimOTA, same arithmetic.
  * "yoloxloss": the drop-in ``yoloxloss.yolox_loss`` from python/yoloxloss.

Every step it checks that the two give the same assignment, the same loss
terms and the same gradient of every parameter (to float32 tolerance), then
reports how long the loss (forward + backward through it) and the whole step
took with each.

Then it trains a third copy of the head under mixed precision,
``torch.autocast("cpu", dtype=torch.bfloat16)``: the head outputs come out
in bfloat16 and the drop-in reads them in place and returns bfloat16
gradients. Every step it checks those against the float32 path on the same
values up-converted: the library's float32 run must give the same losses
bit for bit and gradients that round (``.to(torch.bfloat16)``) to the
bfloat16 ones exactly, and get_losses on the up-converted values must agree
to float32 tolerance (gradients within one bfloat16 step). Exits 1 on any
mismatch.

Run: /usr/bin/python3 examples/pytorch_train_step.py [--steps N] [--batch B]
It imports the installed yoloxloss (python3 -m pip install --no-build-isolation
./python) when there is one, else this checkout's python/ with the library
of build/ ($YOLOXLOSS_LIB overrides the library either way). The reference
comes from the checkout's tests/reference.
"""

import argparse
import copy
import importlib.util
import os
import statistics
import sys
import time

import torch
from torch import nn

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The installed package (pip install ./python) when there is one, else this checkout's python/.
if importlib.util.find_spec("yoloxloss") is None:
    sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))

import yoloxloss  # noqa: E402
from yolox_reference import yolox_assign_reference, yolox_loss_reference  # noqa: E402

STRIDES = (8, 16, 32)
TERMS = ("total", "iou", "obj", "cls", "l1", "fg_ratio")


class TinyHead(nn.Module):
    """Per level: pool the image to the level's stride, a 3x3 conv stem, then
    YOLOX's decoupled 1x1 predictions, returned fused as [B, 5+C, H, W]."""

    def __init__(self, num_classes, width=32):
        super().__init__()
        self.levels = nn.ModuleList()
        for _ in STRIDES:
            self.levels.append(nn.ModuleDict(dict(
                stem=nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.SiLU(),
                                   nn.Conv2d(width, width, 3, padding=1), nn.SiLU()),
                reg=nn.Conv2d(width, 4, 1), obj=nn.Conv2d(width, 1, 1),
                cls=nn.Conv2d(width, num_classes, 1))))
        prior = -torch.log(torch.tensor((1 - 0.01) / 0.01))  # YOLOX's bias init
        for lvl in self.levels:
            nn.init.constant_(lvl["obj"].bias, prior)
            nn.init.constant_(lvl["cls"].bias, prior)

    def forward(self, images):
        outs = []
        for stride, lvl in zip(STRIDES, self.levels):
            x = lvl["stem"](nn.functional.avg_pool2d(images, stride))
            outs.append(torch.cat([lvl["reg"](x), lvl["obj"](x), lvl["cls"](x)], 1))
        return outs


def make_batch(gen, batch, size, num_classes, max_boxes=6):
    """Images with a bright rectangle per box, and YOLOX's padded labels."""
    images = 0.1 * torch.randn(batch, 3, size, size, generator=gen)
    labels = torch.zeros(batch, max_boxes, 5)
    for b in range(batch):
        n = int(torch.randint(1, max_boxes + 1, (1,), generator=gen))
        for r in range(n):
            w, h = (torch.rand(2, generator=gen) * 0.4 + 0.1) * size
            cx, cy = torch.rand(2, generator=gen) * (size - 2 * max(w, h)) + max(w, h)
            cls = int(torch.randint(0, num_classes, (1,), generator=gen))
            labels[b, r] = torch.tensor([cls, cx, cy, w, h])
            x0, y0 = int(cx - w / 2), int(cy - h / 2)
            images[b, cls % 3, y0:y0 + int(h), x0:x0 + int(w)] += 1.0
    return images, labels


def reference_get_losses(outputs, labels):
    return yolox_loss_reference(outputs, labels, strides=STRIDES)


def library_get_losses(outputs, labels):
    return yoloxloss.yolox_loss(outputs, labels, strides=STRIDES)


def train_step(model, optimizer, images, labels, loss_fn):
    """One step; returns the loss terms, the parameter grads and the time of
    the loss (its forward and the backward through it) and of the step."""
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    outputs = model(images)
    # The loss gets leaves cut from the head outputs, so its own backward can
    # be timed apart from the convolutions' backward.
    leaves = [o.detach().requires_grad_() for o in outputs]
    t1 = time.perf_counter()
    terms = loss_fn(leaves, labels)
    terms[0].backward()
    t2 = time.perf_counter()
    torch.autograd.backward(outputs, [leaf.grad for leaf in leaves])
    grads = [p.grad.detach().clone() for p in model.parameters()]
    optimizer.step()
    t3 = time.perf_counter()
    return [float(t) for t in terms], grads, outputs, t2 - t1, t3 - t0


def bf16_step(r):
    """The distance from |r| to the next larger bfloat16, per element."""
    _, e = torch.frexp(r.float().abs())
    return torch.ldexp(torch.full_like(r.float(), 2.0 ** -7), e - 1)


def autocast_train_step(model, optimizer, images, labels):
    """One mixed-precision step: the head runs under autocast (bfloat16
    outputs), the drop-in takes them as they are. Returns the loss terms,
    the bfloat16 head outputs, their bfloat16 gradients and the loss time."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(images)
    leaves = [o.detach().requires_grad_() for o in outputs]
    t0 = time.perf_counter()
    terms = yoloxloss.yolox_loss(leaves, labels, strides=STRIDES)
    terms[0].backward()
    t1 = time.perf_counter()
    torch.autograd.backward(outputs, [leaf.grad for leaf in leaves])
    optimizer.step()
    return [float(t) for t in terms], [o.detach() for o in outputs], [leaf.grad for leaf in leaves], t1 - t0


def check_against_float32(outputs, grads, terms, labels):
    """The bfloat16 step against the float32 path on the same values
    up-converted: (exact vs the library's float32 run, loss and gradient
    differences vs get_losses)."""
    up = [o.float().requires_grad_() for o in outputs]
    t32 = yoloxloss.yolox_loss(up, labels, strides=STRIDES)
    t32[0].backward()
    exact = (all(a == float(b) for a, b in zip(terms, t32))
             and all(g.dtype == torch.bfloat16 and torch.equal(g, u.grad.to(torch.bfloat16))
                     for g, u in zip(grads, up)))
    ref_up = [o.float().requires_grad_() for o in outputs]
    tref = reference_get_losses(ref_up, labels)
    tref[0].backward()
    loss_err = max(abs(a - float(b)) / max(abs(float(b)), 1e-6) for a, b in zip(terms, tref))
    scale = max(float(r.grad.abs().max()) for r in ref_up)
    grad_err = max(float(((g.float() - r.grad).abs() - bf16_step(r.grad)).clamp_min(0).max()) / scale
                   for g, r in zip(grads, ref_up))
    return exact, loss_err, grad_err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=320, help="image side in pixels")
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    model_ref = TinyHead(args.classes)
    model_lib = copy.deepcopy(model_ref)
    model_amp = copy.deepcopy(model_ref)
    opt_ref = torch.optim.SGD(model_ref.parameters(), lr=0.01, momentum=0.9)
    opt_lib = torch.optim.SGD(model_lib.parameters(), lr=0.01, momentum=0.9)
    print("yoloxloss %s (%s), torch %s, %d threads" % (
        yoloxloss.version(), yoloxloss.library_path(), torch.__version__, torch.get_num_threads()))

    ok = True
    times = {"get_losses": ([], []), "yoloxloss": ([], [])}
    for step in range(1, args.steps + 1):
        images, labels = make_batch(gen, args.batch, args.size, args.classes)
        t_ref, g_ref, out_ref, loss_s, step_s = train_step(model_ref, opt_ref, images, labels,
                                                            reference_get_losses)
        times["get_losses"][0].append(loss_s)
        times["get_losses"][1].append(step_s)
        t_lib, g_lib, out_lib, loss_s, step_s = train_step(model_lib, opt_lib, images, labels,
                                                            library_get_losses)
        times["yoloxloss"][0].append(loss_s)
        times["yoloxloss"][1].append(step_s)

        # The same weights went in, so the head outputs agree to rounding; the
        # assignments must then be the same.
        outs = [o.detach() for o in out_lib]
        same_assign = torch.equal(yoloxloss.yolox_assign(outs, labels, strides=STRIDES),
                                  yolox_assign_reference(outs, labels, strides=STRIDES)[0])
        loss_err = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(t_ref, t_lib))
        grad_err = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
                       for a, b in zip(g_ref, g_lib))
        step_ok = same_assign and loss_err < 1e-5 and grad_err < 1e-4
        ok = ok and step_ok
        print("step %d  %s  fg_ratio %.2f  same assignment %s  max rel. diff: losses %.1e, "
              "param grads %.1e  %s" % (
                  step, "  ".join("%s %.5f" % kv for kv in zip(TERMS[:4], t_lib[:4])), t_lib[5],
                  same_assign, loss_err, grad_err, "ok" if step_ok else "MISMATCH"))

    print("median time per step (batch %d, %dx%d, %d classes, %d anchors/image):" % (
        args.batch, args.size, args.size, args.classes,
        sum((args.size // s) ** 2 for s in STRIDES)))
    med = {k: (statistics.median(v[0]), statistics.median(v[1])) for k, v in times.items()}
    for name, (loss_s, step_s) in med.items():
        print("  %-10s loss fwd+bwd %8.2f ms   whole step %8.2f ms" % (name, loss_s * 1e3, step_s * 1e3))
    saved = med["get_losses"][0] - med["yoloxloss"][0]
    print("  saved per step: %.2f ms of loss time (%.1fx faster loss), %.0f%% of the step" % (
        saved * 1e3, med["get_losses"][0] / med["yoloxloss"][0], 100 * saved / med["get_losses"][1]))
    print("identical losses and gradients" if ok else "MISMATCH between get_losses and yoloxloss")

    # Mixed precision: the same head from the same start under autocast.
    print("\nunder torch.autocast(\"cpu\", dtype=torch.bfloat16): bfloat16 head outputs in place")
    opt_amp = torch.optim.SGD(model_amp.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(args.seed)
    amp_ok, amp_times, f32_times = True, [], []
    for step in range(1, args.steps + 1):
        images, labels = make_batch(gen, args.batch, args.size, args.classes)
        terms, outputs, grads, loss_s = autocast_train_step(model_amp, opt_amp, images, labels)
        amp_times.append(loss_s)
        leaves32 = [o.float().requires_grad_() for o in outputs]
        t0 = time.perf_counter()
        yoloxloss.yolox_loss(leaves32, labels, strides=STRIDES)[0].backward()
        f32_times.append(time.perf_counter() - t0)
        exact, loss_err, grad_err = check_against_float32(outputs, grads, terms, labels)
        step_ok = exact and loss_err < 1e-5 and grad_err < 1e-4
        amp_ok = amp_ok and step_ok
        print("step %d  %s  outputs %s, gradients %s  same as the float32 run rounded: %s  vs get_losses: "
              "losses %.1e, gradients %.1e beyond one bfloat16 step  %s" % (
                  step, "  ".join("%s %.5f" % kv for kv in zip(TERMS[:4], terms[:4])),
                  str(outputs[0].dtype).replace("torch.", ""), str(grads[0].dtype).replace("torch.", ""),
                  exact, loss_err, grad_err, "ok" if step_ok else "MISMATCH"))
    print("  loss fwd+bwd, median: %.2f ms on the bfloat16 outputs, %.2f ms on float32 copies of them" % (
        statistics.median(amp_times) * 1e3, statistics.median(f32_times) * 1e3))
    print("mixed precision: bfloat16 results are the float32 ones rounded" if amp_ok
          else "MISMATCH in the bfloat16 step")
    return 0 if ok and amp_ok else 1


if __name__ == "__main__":
    sys.exit(main())
