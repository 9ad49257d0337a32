#!/usr/bin/python3
"""Data-parallel training with DistributedDataParallel and the drop-in.

A small conv head (per level: the image pooled to the level's stride, a 3x3
conv stem, then a 1x1 conv to YOLOX's fused reg | obj | cls channels) is
trained with SGD by every process of a ``torch.distributed`` group, each on
its share of every global batch, wrapped in ``DistributedDataParallel``
(CPU, gloo). The loss is ``yoloxloss.yolox_loss(...,
normalizer="mean_over_ranks")``: each rank's num_fg is all-reduced right
after its assignment and every rank divides by max(mean num_fg, 1), so
DDP's averaged gradient is the gradient of the whole batch's loss, as if one
process had run it (tests/data_parallel/check_equivalence.py checks the
losses and parameters of 2 ranks against 1 process).

Launch, one machine, 2 processes (yoloxloss is the installed package when
there is one, else this checkout's python/ with the library of build/;
$YOLOXLOSS_LIB overrides the library):

    /usr/bin/python3 -m torch.distributed.run --nproc_per_node 2 examples/pytorch_ddp.py

On Debian 12 (PyTorch 1.13 under Python 3.11) add ``--redirects 9:0 --tee
9:0``: that launcher cannot parse its own default "0" for them, and a
mapping that names no local rank means the same.

Several machines: the same command on each, with ``--nnodes 2 --node_rank
0|1 --master_addr HOST0 --master_port PORT`` (or ``--rdzv_backend c10d
--rdzv_endpoint HOST0:PORT``); see docs/trainer-guide.md.

Every rank draws the same global batch of --batch images per step from the
same seed and takes images [rank B/R, (rank+1) B/R). Rank 0 prints the
whole batch's loss (the mean over the ranks of their terms) and, with
--out FILE, writes it per step ("loss STEP TOTAL IOU OBJ CLS L1") and the
parameters after the last step ("param NAME INDEX VALUE").

Checks (exit 1 when one fails):
  * on the first and every --check-every-th step, rank 0 also runs the
    unwrapped model on the whole global batch in this one process, with the
    library's own normaliser, and compares its parameter gradients and loss
    with DDP's averaged ones (GRAD_TOL, LOSS_TOL below);
  * at the end, every rank's parameters are rank 0's, bit for bit.

``--normalizer local`` uses each rank's own max(num_fg, 1) instead (what
``yolox_loss`` does without the option): the check above then fails, which
is the point of the option.
"""

import argparse
import copy
import gc
import importlib.util
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The installed package (pip install ./python) when there is one, else this checkout's python/.
if importlib.util.find_spec("yoloxloss") is None:
    sys.path.insert(0, os.path.join(REPO, "python"))

import yoloxloss  # noqa: E402

STRIDES = (8, 16, 32)
# DDP's average and one process's gradient differ in the grouping of float32
# sums (per rank, then across ranks; the convolutions' kernels may also block
# a batch of B/R images differently from one of B); relative to the largest
# component of each parameter tensor (measured: up to ~1e-6), with room:
GRAD_TOL = 1e-5
LOSS_TOL = 1e-5  # each rank's terms are float32, averaged over the ranks


class SmallHead(nn.Module):
    """Per level: avg-pool the image to the stride, 3x3 conv + SiLU, then a
    1x1 conv to [B, 5+C, H, W] in YOLOX's channel order."""

    def __init__(self, num_classes, width=16):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, 5 + num_classes, 1))
            for _ in STRIDES)
        prior = -torch.log(torch.tensor((1 - 0.01) / 0.01))  # YOLOX's obj/cls bias init
        for level in self.levels:
            nn.init.constant_(level[2].bias[4:], float(prior))

    def forward(self, images):
        return [level(nn.functional.avg_pool2d(images, s)) for s, level in zip(STRIDES, self.levels)]


def global_batch(step, batch, size, num_classes, seed, max_boxes=4):
    """The step's whole batch, the same on every rank: images with a bright
    rectangle per box in the colour of its class, and YOLOX's padded labels."""
    gen = torch.Generator().manual_seed(seed * 100003 + step)
    images = 0.1 * torch.randn(batch, 3, size, size, generator=gen)
    labels = torch.zeros(batch, max_boxes, 5)
    for b in range(batch):
        for r in range(int(torch.randint(1, max_boxes + 1, (1,), generator=gen))):
            w, h = [float(v) for v in (torch.rand(2, generator=gen) * 0.3 + 0.15) * size]
            cx = float(torch.rand(1, generator=gen)) * (size - w) + w / 2
            cy = float(torch.rand(1, generator=gen)) * (size - h) + h / 2
            cls = int(torch.randint(0, num_classes, (1,), generator=gen))
            labels[b, r] = torch.tensor([cls, cx, cy, w, h])
            x0, y0 = int(cx - w / 2), int(cy - h / 2)
            images[b, cls % 3, y0:y0 + int(h), x0:x0 + int(w)] += 1.0
    return images, labels


def loss_terms(model, images, labels, normalizer):
    return yoloxloss.yolox_loss(model(images), labels, strides=STRIDES, num_threads=1, normalizer=normalizer)


def check_against_one_process(ddp, images, labels, mean_loss, step):
    """Rank 0: the unwrapped model's gradient over the whole batch in one
    process, from the same parameters, against DDP's averaged gradient.
    Returns the largest relative differences (gradient, loss)."""
    single = copy.deepcopy(ddp.module)
    single.zero_grad(set_to_none=True)
    total = loss_terms(single, images, labels, None)[0]
    total.backward()
    grad_diff = 0.0
    for p_ddp, p_one in zip(ddp.module.parameters(), single.parameters()):
        scale = float(p_one.grad.abs().max()) or 1.0
        grad_diff = max(grad_diff, float((p_ddp.grad - p_one.grad).abs().max()) / scale)
    loss_diff = abs(mean_loss - float(total)) / max(abs(float(total)), 1e-30)
    print("step %3d: against one process over the whole batch: gradient difference %.2g, loss %.2g"
          % (step, grad_diff, loss_diff), flush=True)
    return grad_diff, loss_diff


def replicas_differ(model):
    """True on every rank if any rank's parameters are not rank 0's bit for bit."""
    differ = torch.zeros(1)
    for p in model.parameters():
        root = p.detach().clone()
        dist.broadcast(root, 0)
        if not torch.equal(root, p.detach()):
            differ.fill_(1)
    dist.all_reduce(differ, op=dist.ReduceOp.MAX)
    return bool(differ.item())


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8, help="global batch, divisible by the number of ranks")
    ap.add_argument("--size", type=int, default=128, help="image side in pixels")
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-every", type=int, default=10)
    ap.add_argument("--normalizer", choices=("mean_over_ranks", "local"), default="mean_over_ranks")
    ap.add_argument("--out", help="results file written by rank 0")
    args = ap.parse_args()
    if "RANK" not in os.environ:
        ap.error("launch with: python3 -m torch.distributed.run --nproc_per_node N %s" % sys.argv[0])
    return ap, args


def train(args, out):
    """The training loop of this rank; True when every check passed."""
    rank, ranks = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)  # DDP also broadcasts rank 0's initial parameters
    ddp = DistributedDataParallel(SmallHead(args.classes))
    optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9)
    normalizer = "mean_over_ranks" if args.normalizer == "mean_over_ranks" else None
    share = args.batch // ranks
    if rank == 0:
        print("%d rank%s x %d images per global batch of %d, %s normaliser"
              % (ranks, "s" if ranks > 1 else "", share, args.batch,
                 "the global" if normalizer else "each rank's own"), flush=True)
    ok = True
    for step in range(1, args.steps + 1):
        images, labels = global_batch(step, args.batch, args.size, args.classes, args.seed)
        mine = slice(rank * share, (rank + 1) * share)
        optimizer.zero_grad(set_to_none=True)
        terms = loss_terms(ddp, images[mine], labels[mine], normalizer)
        terms[0].backward()  # DDP averages the parameter gradients over the ranks here
        mean = torch.stack([t.detach() for t in terms[:5]]).double()
        dist.all_reduce(mean)  # the whole batch's loss: the mean of the ranks' terms
        mean /= ranks
        if rank == 0:
            if out:
                out.write("loss %d %s\n" % (step, " ".join("%.9g" % v for v in mean.tolist())))
            if step == 1 or step % args.check_every == 0 or step == args.steps:
                print("step %3d  total %.4f  iou %.4f  obj %.4f  cls %.4f" % ((step,) + tuple(mean.tolist()[:4])),
                      flush=True)
                grad_diff, loss_diff = check_against_one_process(ddp, images, labels, float(mean[0]), step)
                if grad_diff > GRAD_TOL or loss_diff > LOSS_TOL:
                    print("step %d: DDP's averaged gradient or loss is not one process's (relative "
                          "differences %.3g, %.3g; tolerances %.0e, %.0e)"
                          % (step, grad_diff, loss_diff, GRAD_TOL, LOSS_TOL), file=sys.stderr, flush=True)
                    ok = False
        optimizer.step()

    if replicas_differ(ddp.module):
        ok = False
        if rank == 0:
            print("the ranks' parameters differ", file=sys.stderr, flush=True)
    elif rank == 0:
        print("every rank holds the same parameters", flush=True)
    if out:
        for name, p in ddp.module.named_parameters():
            for i, v in enumerate(p.detach().flatten().tolist()):
                out.write("param %s %d %.9g\n" % (name, i, v))
    return ok


def main():
    ap, args = parse_args()
    dist.init_process_group("gloo")  # CPU; rank, size and address from torch.distributed.run
    if args.batch % dist.get_world_size():
        ap.error("--batch %d is not divisible by the %d ranks" % (args.batch, dist.get_world_size()))
    torch.set_num_threads(1)  # one core per rank
    out = open(args.out, "w") if dist.get_rank() == 0 and args.out else None
    try:
        ok = train(args, out)
    finally:
        if out:
            out.close()
        # The DDP model must be gone before the process group: in PyTorch
        # 1.13 a gloo group destroyed by DDP's reducer (its last owner)
        # waits for its worker threads while holding the GIL, which one of
        # them may need to free a tensor, and the process never exits.
        gc.collect()
        dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
