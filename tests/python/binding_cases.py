"""Small random cases for the binding's tests (test_binding*.py, and the
tests of presets and distributed training), and the helpers that run them:
padded YOLOX labels and fused head outputs of plausible boxes on a 64x64
image (three levels, 84 anchors), the split layout of the same outputs,
fresh autograd leaves, and one forward and backward through the drop-in
that returns the loss terms and the leaves' gradients.
"""

import math

import torch

import repo_paths  # noqa: F401 (puts python/ (yoloxloss) on sys.path)
import yoloxloss

STRIDES = (8, 16, 32)
IMG = 64  # grids 8x8, 4x4, 2x2 -> 84 anchors


def make_labels(gen, num_boxes, num_classes, img=IMG, pad=2):
    """Padded YOLOX labels [B, max(n)+pad, 5] with boxes well inside the image."""
    B = len(num_boxes)
    M = max(num_boxes) + pad
    labels = torch.zeros(B, M, 5)
    for b, n in enumerate(num_boxes):
        for r in range(n):
            w = float(torch.empty(1).uniform_(img * 0.15, img * 0.6, generator=gen))
            h = float(torch.empty(1).uniform_(img * 0.15, img * 0.6, generator=gen))
            cx = float(torch.empty(1).uniform_(w / 2, img - w / 2, generator=gen))
            cy = float(torch.empty(1).uniform_(h / 2, img - h / 2, generator=gen))
            c = int(torch.randint(0, num_classes, (1,), generator=gen))
            labels[b, r] = torch.tensor([c, cx, cy, w, h])
    return labels


def make_outputs(gen, B, num_classes, strides=STRIDES, img=IMG, requires_grad=True):
    """Fused per-level head outputs [B, 5+C, H, W] with plausible boxes."""
    outs = []
    for s in strides:
        H = W = img // s
        x = torch.randn(B, 5 + num_classes, H, W, generator=gen) * 0.5
        x[:, 0:2] = torch.rand(B, 2, H, W, generator=gen)          # centre offsets
        x[:, 2:4] = math.log(2.5) + 0.3 * torch.randn(B, 2, H, W, generator=gen)
        outs.append(x.requires_grad_(requires_grad))
    return outs


def split(outputs, requires_grad=True):
    return [(x[:, :4].detach().clone().requires_grad_(requires_grad),
             x[:, 4:5].detach().clone().requires_grad_(requires_grad),
             x[:, 5:].detach().clone().requires_grad_(requires_grad)) for x in outputs]


def leaves(outputs):
    flat = []
    for lv in outputs:
        flat.extend(lv if isinstance(lv, (tuple, list)) else [lv])
    return flat


def clone_outputs(outputs, requires_grad=True):
    out = []
    for lv in outputs:
        if isinstance(lv, (tuple, list)):
            out.append(tuple(t.detach().clone().requires_grad_(requires_grad) for t in lv))
        else:
            out.append(lv.detach().clone().requires_grad_(requires_grad))
    return out


def loss_and_grads(outputs, labels, **kw):
    outputs = clone_outputs(outputs)
    res = yoloxloss.yolox_loss(outputs, labels, **kw)
    res[0].backward()
    return res, [t.grad for t in leaves(outputs)]


def case(seed=0, num_boxes=(3, 0, 2), num_classes=4):
    gen = torch.Generator().manual_seed(seed)
    labels = make_labels(gen, list(num_boxes), num_classes)
    outputs = make_outputs(gen, len(num_boxes), num_classes)
    return outputs, labels
