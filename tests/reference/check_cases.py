"""The random cases of check_reference.py: make_case(seed, idx) draws one
YOLOX training step from those two numbers alone (a regime, image size,
strides, batch, classes, boxes of eight kinds, head outputs, layout,
assigner, box loss, L1, weights, threads, upstream gradient, cost constants
and the precision of each level), within caps on the dense tensors and on
the reference's class-cost work; to_mmdet_case turns it into a case of the
mmdet preset. Also what a case implies: its levels' and leaves' dtypes,
fresh autograd leaves in its layout, the name of its cost constants and its
one-line description.
"""

import collections
import math

import numpy as np
import torch

from yolox_reference import count_labels, ASSIGNERS, anchor_tables, _geometry

IMAGE_SIZES = [(640, 640), (416, 416), (416, 288), (288, 416), (320, 320), (480, 640),
               (256, 256), (300, 200), (224, 352), (192, 192), (150, 100), (128, 128),
               (96, 160), (100, 75), (64, 64), (33, 47), (512, 384)]
STRIDE_SETS = [((8, 16, 32), 0.58), ((8, 16, 32, 64), 0.14), ((16, 32), 0.06), ((8,), 0.04),
               ((4, 8, 16), 0.05), ((8, 16, 32, 64, 128), 0.04), ((10.3, 20.6, 41.2), 0.05),
               # many levels, out of order, with strides that do not divide the image
               ((4, 6, 8, 12, 16, 24, 32, 48, 64, 96), 0.04)]

def _choice(rng, items, probs=None):
    return items[int(rng.choice(len(items), p=probs))]


def _grid_shapes(img_h, img_w, strides):
    return [(max(1, int(math.ceil(img_h / s))), max(1, int(math.ceil(img_w / s)))) for s in strides]


def _gen_box(rng, kind, img_w, img_h, strides, prev):
    smin, smax = min(strides), max(strides)

    def normal_wh():
        w = math.exp(rng.uniform(math.log(4), math.log(max(5.0, 0.9 * img_w))))
        h = math.exp(rng.uniform(math.log(4), math.log(max(5.0, 0.9 * img_h))))
        return w, h

    if kind == "dup" and prev:
        src = prev[int(rng.randint(len(prev)))]
        cx, cy, w, h = src
        if rng.rand() < 0.5:  # jittered near-duplicate, else exact copy
            cx += rng.uniform(-2, 2)
            cy += rng.uniform(-2, 2)
            w *= rng.uniform(0.93, 1.07)
            h *= rng.uniform(0.93, 1.07)
        return cx, cy, w, h
    if kind == "tiny":
        return (rng.uniform(0, img_w), rng.uniform(0, img_h),
                rng.uniform(0.25, smin), rng.uniform(0.25, smin))
    if kind == "huge":
        return (rng.uniform(0.3, 0.7) * img_w, rng.uniform(0.3, 0.7) * img_h,
                rng.uniform(1.0, 2.5) * img_w, rng.uniform(1.0, 2.5) * img_h)
    if kind == "border":
        w, h = normal_wh()
        cx, cy = rng.uniform(0, img_w), rng.uniform(0, img_h)
        side = int(rng.randint(4))
        off = rng.choice([0.0, rng.uniform(0, 0.3)])
        if side == 0:
            cx = -off * w
        elif side == 1:
            cx = img_w + off * w
        elif side == 2:
            cy = -off * h
        else:
            cy = img_h + off * h
        return cx, cy, w, h
    if kind == "grid":
        # centres and sizes on a 4-pixel lattice: anchors land exactly on the
        # edges of centre boxes (r*s) and of gt boxes
        cx = 4.0 * rng.randint(0, img_w // 4 + 1)
        cy = 4.0 * rng.randint(0, img_h // 4 + 1)
        w = 8.0 * rng.randint(1, max(2, img_w // 16))
        h = 8.0 * rng.randint(1, max(2, img_h // 16))
        return cx, cy, w, h
    if kind == "negsum":
        # far beyond the top-left corner: class + cx + cy + w + h <= 0, so
        # YOLOX's padding rule does not count this row (n_b = rows with
        # sum > 0, and the first n_b rows are used, whatever they hold)
        return (-rng.uniform(3, 5) * smax, -rng.uniform(3, 5) * smax,
                rng.uniform(1, 2 * smin), rng.uniform(1, 2 * smin))
    if kind == "outside":
        # centre beyond the image by more than 2.5 strides of every level
        return (img_w + rng.uniform(3, 5) * smax, rng.uniform(0, img_h),
                rng.uniform(1, 2 * smin), rng.uniform(1, 2 * smin))
    w, h = normal_wh()
    return rng.uniform(0, img_w), rng.uniform(0, img_h), w, h


def _est_assign_elems(labels_np, counts, shapes, strides, C):
    """sum over images of n_gt * n_cand * C for the reference's class cost,
    with the larger (legacy) candidate set."""
    xs, ys, ss = anchor_tables(shapes, strides)
    tot = 0
    for b, n in enumerate(counts):
        if n == 0:
            continue
        gt = torch.from_numpy(labels_np[b, :n, 1:5].copy())
        cand, _ = _geometry(gt, xs, ys, ss, ASSIGNERS["yolox-legacy"])
        tot += n * int(cand.sum()) * C
    return tot


YOLOX_COST_EPS = float(np.float32(1e-8))  # cost_iou_eps's default, as the library holds it

# The box loss of a case from one uniform number: (loss, upper end of its interval).
BOX_LOSS_DRAW = (("iou", 0.3), ("iou-linear", 0.4), ("diou", 0.5), ("ciou", 0.6), ("giou", 0.75),
                 ("eiou", 0.875), ("siou", 1.0))


def _box_loss_of(u):
    return next(name for name, end in BOX_LOSS_DRAW if u < end)


def _cost_constants(seed, idx):
    """(cost_iou_eps, cost_penalty) of a case, float32 values, from a stream
    of its own so the case's other draws stay as they were: mostly YOLOX's
    (1e-8, the assigner's own penalty), a fifth MMDetection's (1e-7, 1e5),
    a twentieth random ones (a penalty that may be smaller than the costs)."""
    rng = np.random.RandomState((seed * 1000003 + idx * 7919 + 4099) % (2 ** 32))
    u = rng.rand()
    if u < 0.75:
        eps, pen = 1e-8, 0.0
    elif u < 0.95:
        eps, pen = 1e-7, 1e5
    else:
        eps, pen = 10.0 ** rng.uniform(-9, -2), 10.0 ** rng.uniform(0.5, 7)
    return float(np.float32(eps)), float(np.float32(pen))


def make_case(seed, idx, quick=False):
    rng = np.random.RandomState((seed * 1000003 + idx * 7919) % (2 ** 32))
    regime = _choice(rng, ["general", "many_images", "many_classes", "crowded", "edge", "large"],
                     [0.28, 0.14, 0.14, 0.18, 0.16, 0.10])
    strides = _choice(rng, [s for s, _ in STRIDE_SETS], [p for _, p in STRIDE_SETS])
    if regime == "many_images":
        sizes = [s for s in IMAGE_SIZES if s[0] * s[1] <= 256 * 256]
    elif regime in ("crowded",):
        sizes = [s for s in IMAGE_SIZES if s[0] * s[1] >= 288 * 288]
    elif regime == "large":
        sizes = [(640, 640), (640, 640), (480, 640), (416, 416), (512, 384)]
    else:
        sizes = IMAGE_SIZES
    img_h, img_w = sizes[int(rng.randint(len(sizes)))]
    if quick:
        img_h, img_w = max(32, img_h // 2), max(32, img_w // 2)
    shapes = _grid_shapes(img_h, img_w, strides)
    A = sum(h * w for h, w in shapes)

    if regime == "large":
        B = int(rng.randint(8, 65))
        C = int(_choice(rng, [1, 20, 80]))
        nmax = int(rng.randint(0, 51))
    elif regime == "general":
        B = int(rng.randint(1, 17))
        C = int(_choice(rng, [1, 2, 3, 5, 20, 80]))
        nmax = int(rng.randint(0, 41))
    elif regime == "many_images":
        B = int(rng.randint(16, 65))
        C = int(_choice(rng, [1, 3, 8, 20]))
        nmax = int(rng.randint(0, 13))
    elif regime == "many_classes":
        B = int(rng.randint(1, 4))
        C = 1203 if rng.rand() < 0.3 else int(rng.randint(200, 1204))
        nmax = int(rng.randint(0, 21))
    elif regime == "crowded":
        B = int(rng.randint(1, 5))
        C = int(_choice(rng, [1, 2, 4, 10, 20, 80]))
        nmax = int(rng.randint(60, 151))
    else:
        B = int(rng.randint(1, 7))
        C = int(_choice(rng, [1, 2, 5, 10]))
        nmax = int(rng.randint(0, 30))
    if quick:
        B = min(B, 8)
        C = min(C, 100)
        nmax = min(nmax, 30)
    # cap the dense tensors: B * A * (5 + C) elements
    cap_dense = 1_500_000 if quick else 40_000_000
    while B * A * (5 + C) > cap_dense and B > 1:
        B = max(1, B // 2)
    while B * A * (5 + C) > cap_dense and C > 1:
        C = max(1, C // 2)

    kinds_all = ["normal", "tiny", "huge", "border", "grid", "dup", "outside", "negsum"]
    if regime == "edge":
        kp = [0.15, 0.2, 0.15, 0.2, 0.2, 0.04, 0.05, 0.01]
    elif regime == "crowded":
        kp = [0.45, 0.05, 0.02, 0.05, 0.13, 0.3, 0.0, 0.0]
    else:
        kp = [0.6, 0.08, 0.04, 0.08, 0.1, 0.1, 0.0, 0.0]
    boxes, classes, kinds_used = [], [], collections.Counter()
    for b in range(B):
        if rng.rand() < 0.15:
            n = 0
        elif regime == "crowded" and rng.rand() < 0.4:
            n = nmax
        else:
            n = int(rng.randint(0, nmax + 1))
        only_outside = regime == "edge" and rng.rand() < 0.1 and n > 0
        bx, cl = [], []
        for g in range(n):
            kind = "outside" if only_outside else _choice(rng, kinds_all, kp)
            cx, cy, w, h = _gen_box(rng, kind, img_w, img_h, strides, bx)
            c = int(rng.randint(C))
            if kind == "dup" and bx and rng.rand() < 0.5:
                c = cl[int(rng.randint(len(cl)))]
            if kind != "negsum" and c + cx + cy + w + h <= 0:  # only negsum rows are uncounted
                cx, cy = abs(cx), abs(cy)
            bx.append((cx, cy, w, h))
            cl.append(c)
            kinds_used[kind] += 1
        boxes.append(bx)
        classes.append(cl)
    M = max([len(bx) for bx in boxes] + [0]) + int(rng.randint(0, 4))
    M = max(M, 1)
    labels = np.zeros((B, M, 5), dtype=np.float32)
    for b in range(B):
        for g, ((cx, cy, w, h), c) in enumerate(zip(boxes[b], classes[b])):
            labels[b, g] = (c, cx, cy, w, h)
    counts = [len(bx) for bx in boxes]

    # cap the reference's [n_gt, n_cand, C] class-cost work
    cap_assign = 8_000_000 if quick else 150_000_000
    est = _est_assign_elems(labels, counts, shapes, strides, C)
    while est > cap_assign and C > 1:
        newC = max(1, C // 2)
        labels[:, :, 0] = np.where(labels[:, :, 1:].sum(-1) != 0, labels[:, :, 0] % newC, 0)
        classes = [[c % newC for c in cl] for cl in classes]
        est = est * newC // C
        C = newC
    while est > cap_assign:
        # drop the last box of the fullest image
        b = int(np.argmax(counts))
        counts[b] -= 1
        labels[b, counts[b]] = 0
        est = _est_assign_elems(labels, counts, shapes, strides, C)

    # predictions
    pmode = _choice(rng, ["init", "trained", "constant", "mixed"], [0.35, 0.45, 0.07, 0.13])
    outs = []
    prior = -4.59512  # -log((1 - 0.01) / 0.01)
    for (h, w) in shapes:
        o = np.empty((B, 5 + C, h, w), dtype=np.float32)
        if pmode == "init":
            o[:, :4] = rng.randn(B, 4, h, w) * rng.uniform(0.05, 0.5)
            o[:, 4:] = prior + rng.randn(B, 1 + C, h, w) * rng.uniform(0.01, 0.3)
        elif pmode == "trained":
            o[:, :4] = rng.randn(B, 4, h, w) * 0.3
            o[:, 4:] = rng.randn(B, 1 + C, h, w) * 1.0 - 6.0
        elif pmode == "constant":
            o[:, :4] = 0.0
            o[:, 4:] = prior
        else:
            o[:, :4] = rng.randn(B, 4, h, w)
            o[:, 4:] = rng.randn(B, 1 + C, h, w) * 2.5 - 3.0
        outs.append(o)
    if pmode == "trained":
        sig_t = float(_choice(rng, [0.0, 0.01, 0.05, 0.2]))
        p_learn = rng.uniform(0.5, 1.0)
        for b in range(B):
            order = rng.permutation(counts[b])
            for g in order:
                if rng.rand() > p_learn:
                    continue
                c, cx, cy, gw, gh = labels[b, g]
                r_t = rng.uniform(1.0, 3.0)
                for lvl, ((h, w), s) in enumerate(zip(shapes, strides)):
                    j0 = max(0, int(math.floor(cx / s - r_t - 0.5)))
                    j1 = min(w - 1, int(math.ceil(cx / s + r_t)))
                    i0 = max(0, int(math.floor(cy / s - r_t - 0.5)))
                    i1 = min(h - 1, int(math.ceil(cy / s + r_t)))
                    if j0 > j1 or i0 > i1:
                        continue
                    jj, ii = np.meshgrid(np.arange(j0, j1 + 1), np.arange(i0, i1 + 1))
                    near = (np.abs((jj + 0.5) * s - cx) < r_t * s) & (np.abs((ii + 0.5) * s - cy) < r_t * s)
                    if not near.any():
                        continue
                    jj, ii = jj[near], ii[near]
                    k = jj.size
                    o = outs[lvl]
                    o[b, 0, ii, jj] = cx / s - jj + rng.randn(k) * sig_t
                    o[b, 1, ii, jj] = cy / s - ii + rng.randn(k) * sig_t
                    o[b, 2, ii, jj] = math.log(gw / s) + rng.randn(k) * sig_t * 2
                    o[b, 3, ii, jj] = math.log(gh / s) + rng.randn(k) * sig_t * 2
                    o[b, 4, ii, jj] = rng.randn(k) * 1.5 + 2.0
                    o[b, 5 + int(c), ii, jj] = rng.randn(k) * 1.5 + 2.5
    layout = _choice(rng, ["fused", "split", "split-views"], [0.45, 0.4, 0.15])
    assigner = "yolox" if rng.rand() < 0.5 else "yolox-legacy"
    # One draw, as before the newer losses, so the rest of every case is what
    # it was; a case with u < 0.3 (iou) or 0.6 <= u < 0.75 (giou) keeps its loss.
    iou_loss = _box_loss_of(rng.rand())
    use_l1 = bool(rng.rand() < 0.5)
    if rng.rand() < 0.75:
        weights = (5.0, 1.0, 1.0, 1.0)
    else:
        weights = tuple(float(x) for x in rng.uniform(0.1, 10.0, 4))
    num_threads = int(_choice(rng, [0, 0, 1, 2, 3]))
    # upstream gradient of the 5 loss terms: total.backward() mostly, else a
    # random combination (a*total + b*iou + c*obj + d*cls + e*l1).backward()
    if rng.rand() < 0.75:
        upstream = (1.0, 0.0, 0.0, 0.0, 0.0)
    else:
        upstream = tuple(float(x) for x in rng.uniform(-2.0, 2.0, 5))
    cost_iou_eps, cost_penalty = _cost_constants(seed, idx)
    # Mixed precision: each level's head outputs in float32, float16 or
    # bfloat16. Drawn last, so every draw above (and every float32 case) is
    # as before; "outs" then holds the values rounded into each level's
    # dtype, up-converted: the float32 inputs the reference runs on.
    precision = _choice(rng, ["float32", "float16", "bfloat16", "mixed"], [0.7, 0.12, 0.12, 0.06])
    if precision == "mixed":
        dtypes = [_choice(rng, [torch.float32, torch.float16, torch.bfloat16]) for _ in strides]
    else:
        dtypes = [getattr(torch, precision)] * len(strides)
    outs = [torch.from_numpy(o).to(dt).float() for o, dt in zip(outs, dtypes)]
    return dict(idx=idx, regime=regime, strides=strides, img=(img_h, img_w), shapes=shapes, A=A,
                B=B, C=C, labels=torch.from_numpy(labels), outs=outs, precision=precision, dtypes=dtypes,
                pmode=pmode, layout=layout, assigner=assigner, iou_loss=iou_loss, use_l1=use_l1,
                weights=weights, num_threads=num_threads, kinds=kinds_used, upstream=upstream,
                counts=[int(n) for n in count_labels(torch.from_numpy(labels))],
                cost_iou_eps=cost_iou_eps, cost_penalty=cost_penalty)


MMDET_LATTICE = 64.0  # corners of the mmdet cases' boxes are multiples of 1/64 px


def to_mmdet_case(case):
    """The case for the library's mmdet preset against MMDetection's
    computation: each used label's corners rounded to the 1/64 px lattice
    (a side at least one step), so (x1 + x2) / 2, x2 - x1 and back are exact
    in float32; MMDetection's IoULoss; the preset's assigner and constants."""
    labels = case["labels"].clone().double()
    for b, n in enumerate(case["counts"]):
        for g in range(n):
            cx, cy, w, h = labels[b, g, 1:5].tolist()
            x1, x2 = round((cx - w / 2) * MMDET_LATTICE), round((cx + w / 2) * MMDET_LATTICE)
            y1, y2 = round((cy - h / 2) * MMDET_LATTICE), round((cy + h / 2) * MMDET_LATTICE)
            x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
            labels[b, g, 1:5] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1],
                                             dtype=torch.float64) / MMDET_LATTICE
    case = dict(case)
    case["labels"] = labels.float()
    # rounding may move a row's sum across 0: the used rows are recounted
    case["counts"] = [int(n) for n in count_labels(case["labels"])]
    case.update(preset="mmdet", assigner="yolox-legacy", arithmetic="mmdet",
                iou_loss="iou-linear" if case["iou_loss"] == "iou-linear" else "iou",
                cost_iou_eps=float(np.float32(1e-7)), cost_penalty=1e5)
    return case


def level_dtypes(case):
    """The dtype of each level's head outputs (float32 when the case has none)."""
    return case.get("dtypes") or [torch.float32] * len(case["outs"])


def leaf_dtypes(case):
    """The dtype of each autograd leaf of make_leaves (a level's, per leaf)."""
    out = []
    for dt in level_dtypes(case):
        out.extend([dt] * (3 if case["layout"] == "split" else 1))
    return out


def is_16_bit(case):
    return any(dt != torch.float32 for dt in level_dtypes(case))


def make_leaves(case, dtype=torch.float32, in_level_dtypes=False):
    """Fresh autograd leaves for one run: (inputs for the loss, flat leaf list).
    dtype: of every leaf; or, with in_level_dtypes, each level's own dtype
    (the library's inputs; the values are exact in it)."""
    inputs, leaves = [], []
    for o, level_dtype in zip(case["outs"], level_dtypes(case)):
        o = o.to(level_dtype if in_level_dtypes else dtype)
        if case["layout"] == "fused":
            t = o.clone().requires_grad_(True)
            inputs.append(t)
            leaves.append(t)
        elif case["layout"] == "split-views":
            # non-contiguous channel slices of one fused leaf
            t = o.clone().requires_grad_(True)
            inputs.append((t[:, :4], t[:, 4:5], t[:, 5:]))
            leaves.append(t)
        else:
            trip = (o[:, :4].clone().requires_grad_(True), o[:, 4:5].clone().requires_grad_(True),
                    o[:, 5:].clone().requires_grad_(True))
            inputs.append(trip)
            leaves.extend(trip)
    return inputs, leaves


def cost_constants_name(case):
    eps, pen = case.get("cost_iou_eps", YOLOX_COST_EPS), case.get("cost_penalty") or 0.0
    if eps == YOLOX_COST_EPS and pen == 0.0:
        return "default"
    if eps == float(np.float32(1e-7)) and pen == 1e5:
        return "mmdet"
    return "random"


def describe(case):
    costs = "default" if case.get("preset") == "mmdet" else cost_constants_name(case)
    return ("B=%d C=%d L=%d A=%d img=%dx%d gts=%d %s/%s/%s %s %s %s%s%s" % (
        case["B"], case["C"], len(case["strides"]), case["A"], case["img"][1], case["img"][0],
        sum(case["counts"]), "mmdet" if case.get("preset") == "mmdet" else case["assigner"], case["iou_loss"],
        "l1" if case["use_l1"] else "nol1",
        case["layout"], case["pmode"], case["regime"],
        "" if costs == "default" else " cost:%g/%g" % (case["cost_iou_eps"], case["cost_penalty"]),
        "" if case.get("precision", "float32") == "float32" else " " + case["precision"]))
