#!/usr/bin/python3
"""Draws SimOTA's assignment of one image, one panel per feature level.

Each panel shows that level's grid over the image, the ground-truth boxes
(labelled with their row, class and dynamic k), the anchor centres that are
SimOTA candidates, and the foreground anchors filled in the colour of the gt
they were matched to (darker = higher IoU of the anchor's predicted box with
that gt). The assignment comes from the library, through the Python drop-in's
``yoloxloss.yolox_assign_details``.

The head outputs are synthetic: each anchor predicts the box of the gt whose
centre is nearest, disturbed by noise (--noise), the way a half-trained head
does; --noise large gives an untrained head.

Examples:
  /usr/bin/python3 tools/render_assignment.py --out docs/img/assignment.png
  /usr/bin/python3 tools/render_assignment.py --assigner yolox-legacy --out legacy.svg
"""

import argparse
import importlib.util
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The installed package (pip install ./python) when there is one, else this checkout's python/.
if importlib.util.find_spec("yoloxloss") is None:
    sys.path.insert(0, os.path.join(REPO, "python"))
import yoloxloss  # noqa: E402

# (class, cx, cy, w, h) in pixels of a 256x256 image: a large, a medium, two
# small overlapping and one thin object, so that the levels share the work.
DEFAULT_BOXES = [
    (0, 84, 96, 120, 140),
    (1, 190, 70, 64, 48),
    (2, 180, 180, 30, 36),
    (2, 204, 196, 26, 30),
    (3, 60, 215, 96, 18),
]
COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]


def synthetic_outputs(boxes, size, strides, num_classes, noise, gen):
    """Fused [1, 5+C, H, W] outputs per level: every anchor regresses toward
    the nearest gt's box, with Gaussian noise of `noise` on every logit."""
    outputs = []
    for s in strides:
        n = size // s
        out = noise * torch.randn(1, 5 + num_classes, n, n, generator=gen)
        ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float32),
                                torch.arange(n, dtype=torch.float32), indexing="ij")
        xc, yc = (xs + 0.5) * s, (ys + 0.5) * s
        dist = torch.stack([(xc - b[1]) ** 2 + (yc - b[2]) ** 2 for b in boxes])
        nearest = dist.argmin(0)
        for g, (c, cx, cy, w, h) in enumerate(boxes):
            m = nearest == g
            out[0, 0][m] += cx / s - xs[m]
            out[0, 1][m] += cy / s - ys[m]
            out[0, 2][m] += math.log(w / s)
            out[0, 3][m] += math.log(h / s)
            out[0, 5 + c][m] += 2.0
        out[0, 4] -= 2.0
        outputs.append(out)
    return outputs


def render(outputs, labels, boxes, size, strides, assigner, path):
    details = yoloxloss.yolox_assign_details(outputs, labels, strides=strides, assigner=assigner)
    matched, pred_iou, dyn_k = details.matched[0], details.pred_iou[0], details.dynamic_k[0]
    legacy = assigner != "yolox"
    radius = 2.5 if legacy else 1.5

    fig, axes = plt.subplots(1, len(strides), figsize=(5.2 * len(strides), 5.6))
    start = 0
    for ax, s in zip(axes, strides):
        n = size // s
        m = matched[start:start + n * n].reshape(n, n)
        q = pred_iou[start:start + n * n].reshape(n, n)
        start += n * n
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)
        ax.set_aspect("equal")
        ax.set_xticks(range(0, size + 1, max(s, size // 8)))
        ax.set_yticks(range(0, size + 1, max(s, size // 8)))
        ax.tick_params(labelsize=7)
        for k in range(n + 1):
            ax.axhline(k * s, color="0.85", lw=0.5, zorder=0)
            ax.axvline(k * s, color="0.85", lw=0.5, zorder=0)
        for i in range(n):
            for j in range(n):
                g = int(m[i, j])
                xc, yc = (j + 0.5) * s, (i + 0.5) * s
                if g >= 0:
                    alpha = 0.25 + 0.65 * float(q[i, j])
                    ax.add_patch(patches.Rectangle((j * s, i * s), s, s, color=COLOURS[g % 10],
                                                   alpha=alpha, lw=0, zorder=1))
                # candidates (docs/algorithm.md, SimOTA step 3): in a centre box,
                # or, with the legacy rule, in a box
                candidate = any((abs(xc - b[1]) < radius * s and abs(yc - b[2]) < radius * s)
                                or (legacy and abs(xc - b[1]) < b[3] / 2 and abs(yc - b[2]) < b[4] / 2)
                                for b in boxes)
                if candidate:
                    ax.plot(xc, yc, ".", color="black", ms=2.5 if n > 20 else 4, zorder=3)
        for g, (c, cx, cy, w, h) in enumerate(boxes):
            ax.add_patch(patches.Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False,
                                           ec=COLOURS[g % 10], lw=2, zorder=4))
        fg = int((m >= 0).sum())
        ax.set_title("stride %d: %dx%d grid, %d fg anchors" % (s, n, n, fg), fontsize=10)

    handles = [patches.Patch(color=COLOURS[g % 10],
                             label="gt %d (class %d): k = %d, %d fg" % (
                                 g, c, int(dyn_k[g]), int((matched == g).sum())))
               for g, (c, *_rest) in enumerate(boxes)]
    handles.append(plt.Line2D([], [], marker=".", color="black", ls="", label="candidate anchor centre"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle("SimOTA assignment (%s rule): fg cells coloured by matched gt, "
                 "darker = higher IoU of the prediction" % assigner, fontsize=11)
    fig.tight_layout(rect=(0, 0.09, 1, 0.95))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return details


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output file, .png or .svg")
    ap.add_argument("--assigner", default="yolox", choices=sorted(yoloxloss.ASSIGNERS))
    ap.add_argument("--noise", type=float, default=0.4,
                    help="std of the noise on every head output (larger = less trained)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if os.path.splitext(args.out)[1].lower() not in (".png", ".svg"):
        ap.error("--out must end in .png or .svg")

    size, strides, num_classes = 256, (8, 16, 32), 4
    gen = torch.Generator().manual_seed(args.seed)
    outputs = synthetic_outputs(DEFAULT_BOXES, size, strides, num_classes, args.noise, gen)
    labels = torch.tensor([DEFAULT_BOXES], dtype=torch.float32)
    details = render(outputs, labels, DEFAULT_BOXES, size, strides, args.assigner, args.out)
    print("%s: %d bytes; dynamic k per gt %s, %d fg anchors" % (
        args.out, os.path.getsize(args.out), details.dynamic_k[0].tolist(),
        int((details.matched >= 0).sum())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
