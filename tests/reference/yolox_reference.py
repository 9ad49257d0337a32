"""Independent PyTorch reference of the YOLOX training loss.

Written from docs/algorithm.md and from reading the published YOLOX code for
its semantics (yolo_head.py: get_losses, get_assignments,
get_geometry_constraint / get_in_boxes_info, simota_matching /
dynamic_k_matching; losses.py: IOUloss).  No code is taken from it; the
arithmetic below is arranged so that every float32 operation the published
code performs is performed here in the same order on the same operands, so
costs, IoUs and hence assignments come out bit-identical to it (except where
torch.topk breaks exact ties, which is arbitrary in both).

This module is the reference and nothing else.  Deciding whether another
implementation's assignment differs from it only by ties lives in
tie_analysis.py; the reference's own self-tests (a slow per-anchor loop
implementation on tiny cases, float64 finite differences of the autograd
gradients, tie handling) live in reference_selftest.py, run by the ctest
reference_selftest.

Public functions
----------------
yolox_loss_reference(outputs, labels, strides, assigner, iou_loss, use_l1,
                     reg_weight, obj_weight, cls_weight, l1_weight,
                     forced_matched=None, forced_pred_iou=None,
                     return_info=False, transcendentals="torch",
                     cost_iou_eps=1e-8, cost_penalty=None)
    -> 6-tuple (total, w_iou*loss_iou, w_obj*loss_obj, w_cls*loss_cls,
                w_l1*loss_l1, N/max(num_gt,1)), and with return_info=True a
       second value: a dict (see _assign_image for the per-image entries:
       matched, pred_iou, dynamic_k, cand_idx, cost, cost_nopen, iou,
       geometry, selected).  forced_matched runs the losses on a given
       assignment (e.g. another implementation's, after a tie);
       transcendentals="libm"/"correct" swaps torch's float32 exp/log for
       the C library's / correctly rounded ones (diagnostics at kinks);
       iou_loss is one of IOU_LOSSES (docs/algorithm.md, "Box losses");
       cost_iou_eps and cost_penalty (None: the assigner's) are the
       matching cost's constants.
yolox_assign_reference(outputs, labels, strides, assigner)
    -> (matched int64 [B, A], per-image info list)
"""

import math

import torch
import torch.nn.functional as F

ASSIGNERS = {
    # current YOLOX main branch (since Jan 2023)
    "yolox": dict(radius=1.5, penalty=float(1e6), legacy=False),
    # YOLOX releases 0.1.0 - 0.3.0 (and MMDetection's SimOTAAssigner)
    "yolox-legacy": dict(radius=2.5, penalty=100000.0, legacy=True),
}

# Upper bound on the elements of one [n_gt, n_cand, C] block of the class
# cost; above it the gts are processed in chunks.  Every element and every
# per-(gt, anchor) sum over C is computed exactly as in one block, so
# chunking does not change any value.
CLS_COST_CHUNK_ELEMS = 1 << 25


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------

def flatten_outputs(outputs):
    """List of per-level fused [B,5+C,H,W] tensors or (reg, obj, cls)
    triples -> ([B, A, 5+C] tensor connected to the inputs by autograd,
    [(H, W), ...]).  Anchor order: level-major, then i*W + j."""
    flat, shapes = [], []
    for lvl in outputs:
        if isinstance(lvl, (tuple, list)):
            reg, obj, cls = lvl
            t = torch.cat([reg, obj, cls], 1)
        else:
            t = lvl
        b, ch, h, w = t.shape
        # YOLOX: view(B,1,ch,H,W).permute(0,1,3,4,2).reshape(B,H*W,ch)
        flat.append(t.reshape(b, ch, h * w).permute(0, 2, 1))
        shapes.append((h, w))
    return torch.cat(flat, 1), shapes


def anchor_tables(shapes, strides, dtype=torch.float32):
    """x_shifts (j), y_shifts (i) and strides per anchor, float32, [A]."""
    xs, ys, ss = [], [], []
    for (h, w), s in zip(shapes, strides):
        yv, xv = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        xs.append(xv.reshape(-1))
        ys.append(yv.reshape(-1))
        ss.append(torch.full((h * w,), float(s), dtype=torch.float32))
    return (torch.cat(xs).to(dtype), torch.cat(ys).to(dtype), torch.cat(ss).to(dtype))


def count_labels(labels):
    """YOLOX's n_b: number of rows with sum > 0 (the first n_b are used)."""
    return (labels.sum(dim=2) > 0).sum(dim=1)


# torch's float32 exp/log (SLEEF, up to 1 ulp) are not always correctly
# rounded; glibc's expf/logf (what a C library calls) nearly always are.  With
# transcendentals="correct" the reference evaluates exp and log in float64 and
# rounds once to float32.  This only matters where the decoded box edge or the
# L1 target lands exactly on a kink (an edge equal to the gt's edge, reg equal
# to its L1 target), where one ulp flips which side of the kink autograd takes.
# transcendentals="libm" calls the C library's expf/logf through ctypes, as a C
# implementation would (only for the fg rows of the loss; it needs a forced
# assignment).
TRANSCENDENTALS = ("torch", "correct", "libm")
_LIBM = []


def _libm_map(name, x):
    if not _LIBM:
        import ctypes
        import ctypes.util
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        fns = {}
        for n in ("expf", "logf"):
            f = getattr(lib, n)
            f.restype = ctypes.c_float
            f.argtypes = [ctypes.c_float]
            fns[n] = f
        _LIBM.append(fns)
    fn = _LIBM[0][name]
    vals = x.detach().reshape(-1).tolist()
    return torch.tensor([fn(v) for v in vals], dtype=torch.float32).reshape(x.shape)


def _exp(x, mode):
    if mode == "torch" or x.dtype != torch.float32:
        return torch.exp(x)
    if mode == "libm":
        e = _libm_map("expf", x)
    else:
        e = torch.exp(x.detach().double()).float()
    # forward value e exactly; backward grad * e, as torch.exp's backward
    return e + (x - x.detach()) * e


def _log(x, mode):
    if mode == "torch" or x.dtype != torch.float32:
        return torch.log(x)
    if mode == "libm":
        return _libm_map("logf", x)
    return torch.log(x.detach().double()).float()  # constants only (no gradient needed)


def decode(preds, xs, ys, ss, mode="torch"):
    """raw [.., A, 4+] -> decoded cx, cy, w, h [.., A, 4] (differentiable).
    x = (tx + j) * s, w = exp(tw) * s, float ops in YOLOX's order."""
    grid = torch.stack([xs, ys], 1).to(preds.dtype)
    s = ss.to(preds.dtype).unsqueeze(1)
    xy = (preds[..., 0:2] + grid) * s
    wh = _exp(preds[..., 2:4], mode) * s
    return torch.cat([xy, wh], -1)


# --------------------------------------------------------------------------
# IoU in the assigner's form (yolox.utils.bboxes_iou with xyxy=False)
# --------------------------------------------------------------------------

def pairwise_iou(gt, pb):
    """gt [G,4], pb [n,4], both cx,cy,w,h -> IoU [G, n], no epsilon."""
    tl = torch.max(gt[:, None, :2] - gt[:, None, 2:] / 2, pb[:, :2] - pb[:, 2:] / 2)
    br = torch.min(gt[:, None, :2] + gt[:, None, 2:] / 2, pb[:, :2] + pb[:, 2:] / 2)
    area_g = torch.prod(gt[:, 2:], 1)
    area_p = torch.prod(pb[:, 2:], 1)
    en = (tl < br).type(tl.type()).prod(dim=2)
    inter = torch.prod(br - tl, 2) * en
    return inter / (area_g[:, None] + area_p - inter)


def elementwise_iou(gt, pb):
    """Same float ops as pairwise_iou but for matched rows gt[i] vs pb[i]."""
    tl = torch.max(gt[:, :2] - gt[:, 2:] / 2, pb[:, :2] - pb[:, 2:] / 2)
    br = torch.min(gt[:, :2] + gt[:, 2:] / 2, pb[:, :2] + pb[:, 2:] / 2)
    area_g = torch.prod(gt[:, 2:], 1)
    area_p = torch.prod(pb[:, 2:], 1)
    en = (tl < br).type(tl.type()).prod(dim=1)
    inter = torch.prod(br - tl, 1) * en
    return inter / (area_g + area_p - inter)


# --------------------------------------------------------------------------
# SimOTA for one image (no gradient, float32)
# --------------------------------------------------------------------------

def _geometry(gt, xs, ys, ss, cfg):
    """-> (candidate mask [A] bool, geometry [G, n_cand] bool)."""
    num_gt = gt.shape[0]
    if cfg["legacy"]:
        # releases 0.1-0.3: x_shifts * s + 0.5 * s
        xc = xs * ss + 0.5 * ss
        yc = ys * ss + 0.5 * ss
    else:
        # main: (x_shifts + 0.5) * s
        xc = (xs + 0.5) * ss
        yc = (ys + 0.5) * ss
    xc = xc.unsqueeze(0)
    yc = yc.unsqueeze(0)
    cx, cy = gt[:, 0:1], gt[:, 1:2]

    dist = ss.unsqueeze(0) * cfg["radius"]  # equal to radius * s in float32
    c_l = xc - (cx - dist)
    c_r = (cx + dist) - xc
    c_t = yc - (cy - dist)
    c_b = (cy + dist) - yc
    in_center = torch.stack([c_l, c_t, c_r, c_b], 2).min(dim=-1).values > 0.0

    if not cfg["legacy"]:
        cand = in_center.sum(dim=0) > 0
        return cand, in_center[:, cand]

    half_w = 0.5 * gt[:, 2:3]
    half_h = 0.5 * gt[:, 3:4]
    b_l = xc - (cx - half_w)
    b_r = (cx + half_w) - xc
    b_t = yc - (cy - half_h)
    b_b = (cy + half_h) - yc
    in_box = torch.stack([b_l, b_t, b_r, b_b], 2).min(dim=-1).values > 0.0
    cand = (in_box.sum(dim=0) > 0) | (in_center.sum(dim=0) > 0)
    assert in_box.shape[0] == num_gt
    return cand, in_box[:, cand] & in_center[:, cand]


def _cls_cost(p, gt_classes, num_classes):
    """p [n_cand, C] = sqrt(sigmoid(cls) * sigmoid(obj)) -> [G, n_cand]:
    sum over C of binary_cross_entropy(p, one_hot), materialising the
    [G, n_cand, C] tensors exactly as YOLOX does (chunked over gts)."""
    num_gt = gt_classes.shape[0]
    n_cand = p.shape[0]
    onehot = F.one_hot(gt_classes.to(torch.int64), num_classes).float()
    out = torch.empty((num_gt, n_cand), dtype=torch.float32)
    per_gt = max(1, n_cand * num_classes)
    chunk = max(1, CLS_COST_CHUNK_ELEMS // per_gt)
    for g0 in range(0, num_gt, chunk):
        g1 = min(num_gt, g0 + chunk)
        out[g0:g1] = F.binary_cross_entropy(
            p.unsqueeze(0).repeat(g1 - g0, 1, 1),
            onehot[g0:g1].unsqueeze(1).repeat(1, n_cand, 1),
            reduction="none",
        ).sum(-1)
    return out


def _assign_image(gt, gt_classes, box_pred, obj_pred, cls_pred, xs, ys, ss, cfg,
                  num_classes, topk=10, mode="torch", cost_iou_eps=1e-8):
    """One image's SimOTA.

    gt [G,4] float32 (cx,cy,w,h), gt_classes [G] int64, box_pred [A,4]
    decoded float32, obj_pred [A], cls_pred [A,C] raw logits float32.
    Returns dict:
      matched   int64 [A]: gt row per anchor, -1 background
      pred_iou  float32 [A]: IoU with the matched gt (0 for background)
      dynamic_k int64 [G]
      topk_iou_sum_f64 float64 [G]: the same sum in float64 (k rounding check)
      cand_idx  int64 [n_cand]: anchor index of each candidate column
      cost      float32 [G, n_cand]; cost_nopen float32 [G, n_cand] (cls + 3 iou)
      iou       float32 [G, n_cand]; geometry bool [G, n_cand]
      selected  bool [G, n_cand]: the per-gt top-k sets before conflicts
    """
    num_anchors = box_pred.shape[0]
    num_gt = gt.shape[0]
    cand, geometry = _geometry(gt, xs, ys, ss, cfg)
    cand_idx = cand.nonzero()[:, 0]
    n_cand = int(cand_idx.numel())
    matched = torch.full((num_anchors,), -1, dtype=torch.int64)
    pred_iou = torch.zeros((num_anchors,), dtype=torch.float32)
    info = dict(matched=matched, pred_iou=pred_iou, cand_idx=cand_idx, geometry=geometry,
                num_gt=num_gt)
    if n_cand == 0:
        # No anchor lies in any gt's centre box (or box): the published code
        # would call topk(k=1) on an empty row and crash here.  This
        # reference (like the library) gives such an image no fg anchor and
        # dynamic_k = 0 for its gts.
        info.update(dynamic_k=torch.zeros(num_gt, dtype=torch.int64),
                    topk_iou_sum_f64=torch.zeros(num_gt, dtype=torch.float64),
                    cost=torch.zeros((num_gt, 0)), cost_nopen=torch.zeros((num_gt, 0)),
                    iou=torch.zeros((num_gt, 0)),
                    selected=torch.zeros((num_gt, 0), dtype=torch.bool))
        return info

    pb = box_pred[cand_idx]
    ious = pairwise_iou(gt, pb)
    iou_cost = -_log(ious + cost_iou_eps, mode)
    p = (cls_pred[cand_idx].float().sigmoid() * obj_pred[cand_idx].float().unsqueeze(1).sigmoid()).sqrt()
    cls_cost = _cls_cost(p, gt_classes, num_classes)
    cost_nopen = cls_cost + 3.0 * iou_cost
    cost = cost_nopen + cfg["penalty"] * (~geometry)

    # dynamic k
    n_k = min(topk, n_cand)
    top_ious, _ = torch.topk(ious, n_k, dim=1)
    dynamic_k = torch.clamp(top_ious.sum(1).int(), min=1).to(torch.int64)
    top_sum64 = top_ious.double().sum(1)

    matching = torch.zeros_like(cost, dtype=torch.uint8)
    for g in range(num_gt):
        _, pos = torch.topk(cost[g], k=int(dynamic_k[g]), largest=False)
        matching[g][pos] = 1
    selected = matching.bool().clone()

    per_anchor = matching.sum(0)
    if per_anchor.max() > 1:
        multi = per_anchor > 1
        # min over ALL gts of the column (not only over the gts that took it)
        _, best = torch.min(cost[:, multi], dim=0)
        matching[:, multi] *= 0
        matching[best, multi] = 1
    fg = per_anchor > 0
    gt_of = matching[:, fg].argmax(0)
    ious_fg = (matching * ious).sum(0)[fg]
    matched[cand_idx[fg]] = gt_of
    pred_iou[cand_idx[fg]] = ious_fg
    info.update(dynamic_k=dynamic_k, topk_iou_sum_f64=top_sum64, cost=cost,
                cost_nopen=cost_nopen, iou=ious, selected=selected)
    return info


# --------------------------------------------------------------------------
# the loss
# --------------------------------------------------------------------------

IOU_LOSSES = ("iou", "giou", "iou-linear", "diou", "ciou", "eiou", "siou")
BOX_EPS = 1e-7  # the eps of the box losses' divisions (docs/algorithm.md lists each)


def _iou_loss(pred, target, loss_type):
    """The box loss of each row, pred/target [n,4] cx,cy,w,h: YOLOX's
    IOUloss(reduction='none') for "iou" and "giou", and the others from
    their formulas in docs/algorithm.md ("Box losses"), written here from
    that text.  Autograd gives the gradient; CIoU's alpha is computed
    without it, so it is a constant of the gradient."""
    tl = torch.max(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
    br = torch.min(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
    area_p = torch.prod(pred[:, 2:], 1)
    area_g = torch.prod(target[:, 2:], 1)
    en = (tl < br).type(tl.type()).prod(dim=1)
    inter = torch.prod(br - tl, 1) * en
    union = area_p + area_g - inter
    iou = inter / (union + 1e-16)
    if loss_type == "iou":
        return 1 - iou ** 2
    if loss_type == "iou-linear":
        return 1 - iou
    if loss_type not in IOU_LOSSES:
        raise ValueError("iou_loss must be one of %s, got %r" % (IOU_LOSSES, loss_type))
    c_tl = torch.min(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
    c_br = torch.max(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
    if loss_type == "giou":
        area_c = torch.prod(c_br - c_tl, 1)
        giou = iou - (area_c - union) / area_c.clamp(1e-16)
        return 1 - giou.clamp(min=-1.0, max=1.0)
    cw, ch = (c_br - c_tl).unbind(1)             # the enclosing box's sides
    dx, dy = (pred[:, :2] - target[:, :2]).unbind(1)
    w, h = pred[:, 2], pred[:, 3]
    wg, hg = target[:, 2], target[:, 3]
    if loss_type in ("diou", "ciou", "eiou"):
        penalty = (dx ** 2 + dy ** 2) / (cw ** 2 + ch ** 2 + BOX_EPS)
    if loss_type == "diou":
        return 1 - iou + penalty
    if loss_type == "ciou":
        v = (4 / math.pi ** 2) * (torch.atan2(wg, hg) - torch.atan2(w, h)) ** 2
        with torch.no_grad():
            alpha = (iou > 0.5).to(iou.dtype) * v / (1 - iou + v + BOX_EPS)
        return 1 - (iou - penalty - alpha * v).clamp(min=-1.0, max=1.0)
    if loss_type == "eiou":
        return (1 - iou + penalty + (w - wg) ** 2 / (cw ** 2 + BOX_EPS)
                + (h - hg) ** 2 / (ch ** 2 + BOX_EPS))
    # siou: angle cost 2|dx||dy|/sigma^2, the paper's 1 - 2 sin^2(arcsin(|dy|/sigma) - pi/4)
    angle = 2 * dx.abs() * dy.abs() / (dx ** 2 + dy ** 2 + BOX_EPS)
    gamma = 2 - angle
    distance = ((1 - torch.exp(-gamma * dx ** 2 / (cw ** 2 + BOX_EPS)))
                + (1 - torch.exp(-gamma * dy ** 2 / (ch ** 2 + BOX_EPS))))
    shape = ((1 - torch.exp(-(w - wg).abs() / torch.max(w, wg))) ** 4
             + (1 - torch.exp(-(h - hg).abs() / torch.max(h, hg))) ** 4)
    return 1 - iou + 0.5 * (distance + shape)


def yolox_loss_reference(outputs, labels, strides=(8, 16, 32), assigner="yolox",
                         iou_loss="iou", use_l1=False, reg_weight=5.0, obj_weight=1.0,
                         cls_weight=1.0, l1_weight=1.0, forced_matched=None,
                         forced_pred_iou=None, return_info=False, transcendentals="torch",
                         cost_iou_eps=1e-8, cost_penalty=None):
    """The YOLOX loss.  outputs: list of per-level [B,5+C,H,W] tensors or
    (reg [B,4,H,W], obj [B,1,H,W], cls [B,C,H,W]) triples; labels [B,M,5]
    padded (class, cx, cy, w, h).  Float32 inputs give YOLOX's float32
    arithmetic; float64 inputs give the same loss in float64 (the assignment
    is always made in float32 from the float32 value of the inputs).

    forced_matched: optional int64 [B, A] (or list of [A]) assignment to use
    instead of SimOTA (pred_iou is then the reference's IoU of each forced
    pair); used to compare losses where another implementation resolved an
    exact tie differently.  forced_pred_iou: optional float [B, A] to use as
    pred_iou with forced_matched (finite-difference tests, where recomputing
    it from the perturbed inputs would move the constant targets).

    transcendentals: "torch" (YOLOX's own float32 exp/log), "correct"
    (exp/log correctly rounded to float32) or "libm" (the C library's
    expf/logf; needs forced_matched); see _exp.

    cost_iou_eps: the eps of the matching cost's -log(IoU + eps) (YOLOX
    1e-8); cost_penalty: the cost of failing the geometry test, None (or
    0) for the assigner's own (1e6 current, 1e5 legacy).

    Returns (total, reg_weight*loss_iou, obj_weight*loss_obj,
    cls_weight*loss_cls, l1_weight*loss_l1, N / max(num_gt, 1)) as 0-d
    tensors (the last one without gradient), and if return_info also a dict
    {'images': [per-image info], 'num_fg', 'num_gt', 'N', 'matched' [B,A]}.
    """
    if assigner not in ASSIGNERS:
        raise ValueError("unknown assigner %r" % (assigner,))
    cfg = dict(ASSIGNERS[assigner])
    if cost_penalty:
        cfg["penalty"] = float(cost_penalty)
    strides = [float(s) for s in strides]
    if len(strides) != len(outputs):
        raise ValueError("one stride per level")
    preds, shapes = flatten_outputs(outputs)  # [B, A, 5+C]
    dtype = preds.dtype
    batch, num_anchors, ch = preds.shape
    num_classes = ch - 5
    xs, ys, ss = anchor_tables(shapes, strides)

    mode = transcendentals
    if mode not in TRANSCENDENTALS:
        raise ValueError("transcendentals must be one of %s" % (TRANSCENDENTALS,))
    if mode == "libm" and forced_matched is None:
        raise ValueError("transcendentals='libm' needs forced_matched")
    obj = preds[..., 4]                       # [B, A]
    cls = preds[..., 5:]                      # [B, A, C]

    labels = labels.detach()
    nlabel = count_labels(labels)

    # float32 view used by the assigner, decoded with float32 arithmetic
    with torch.no_grad():
        p32 = preds.detach().float()
        bbox32 = decode(p32, xs, ys, ss, mode) if forced_matched is None else None
        labels32 = labels.float()

    images = []
    matched_all = torch.full((batch, num_anchors), -1, dtype=torch.int64)
    pred_iou_all = torch.zeros((batch, num_anchors), dtype=torch.float32)
    num_gts = 0
    for b in range(batch):
        n = int(nlabel[b])
        num_gts += n
        gt = labels32[b, :n, 1:5]
        gcls = labels32[b, :n, 0].to(torch.int64)
        if forced_matched is not None:
            m = torch.as_tensor(forced_matched[b]).to(torch.int64).clone()
            info = dict(matched=m, num_gt=n, forced=True)
            fgi = (m >= 0).nonzero()[:, 0]
            piou = torch.zeros((num_anchors,), dtype=torch.float32)
            if fgi.numel():
                with torch.no_grad():
                    rows = decode(p32[b, fgi], xs[fgi], ys[fgi], ss[fgi], mode)
                    piou[fgi] = elementwise_iou(gt[m[fgi]], rows)
            if forced_pred_iou is not None:
                piou = torch.as_tensor(forced_pred_iou[b]).float().clone()
            info["pred_iou"] = piou
        elif n == 0:
            info = dict(matched=torch.full((num_anchors,), -1, dtype=torch.int64),
                        pred_iou=torch.zeros((num_anchors,)), num_gt=0,
                        dynamic_k=torch.zeros(0, dtype=torch.int64),
                        cand_idx=torch.zeros(0, dtype=torch.int64))
        else:
            with torch.no_grad():
                info = _assign_image(gt, gcls, bbox32[b], p32[b, :, 4], p32[b, :, 5:],
                                     xs, ys, ss, cfg, num_classes, mode=mode,
                                     cost_iou_eps=cost_iou_eps)
        matched_all[b] = info["matched"]
        pred_iou_all[b] = info["pred_iou"]
        info["gt_classes"] = gcls
        images.append(info)

    fg = matched_all >= 0                      # [B, A]
    num_fg = int(fg.sum())
    N = float(max(num_fg, 1))

    # targets (constants), in the order of bbox.view(-1,4)[fg]
    b_idx, a_idx = fg.nonzero(as_tuple=True)
    g_idx = matched_all[b_idx, a_idx]
    gt_boxes_l = labels.to(dtype)[..., 1:5]
    reg_t = gt_boxes_l[b_idx, g_idx]          # [num_fg, 4]
    gcls_t = labels32[b_idx, g_idx, 0].to(torch.int64)
    cls_t = F.one_hot(gcls_t, num_classes).to(dtype) * pred_iou_all[b_idx, a_idx].to(dtype).unsqueeze(-1)
    obj_t = fg.to(dtype)

    if mode == "torch":
        # YOLOX decodes every anchor, then selects the fg rows
        bbox_fg = decode(preds, xs, ys, ss, mode)[b_idx, a_idx]
    else:
        bbox_fg = decode(preds[b_idx, a_idx], xs[a_idx], ys[a_idx], ss[a_idx], mode)
    loss_iou = _iou_loss(bbox_fg, reg_t, iou_loss).sum() / N
    loss_obj = F.binary_cross_entropy_with_logits(obj.reshape(-1, 1), obj_t.reshape(-1, 1),
                                                  reduction="none").sum() / N
    loss_cls = F.binary_cross_entropy_with_logits(cls[b_idx, a_idx], cls_t,
                                                  reduction="none").sum() / N
    if use_l1:
        st = ss.to(dtype)[a_idx]
        l1_t = torch.stack([
            reg_t[:, 0] / st - xs.to(dtype)[a_idx],
            reg_t[:, 1] / st - ys.to(dtype)[a_idx],
            _log(reg_t[:, 2] / st + 1e-8, mode),
            _log(reg_t[:, 3] / st + 1e-8, mode),
        ], 1)
        loss_l1 = torch.abs(preds[b_idx, a_idx, 0:4] - l1_t).sum() / N
    else:
        loss_l1 = torch.zeros((), dtype=dtype)

    t_iou = reg_weight * loss_iou
    t_obj = obj_weight * loss_obj
    t_cls = cls_weight * loss_cls
    t_l1 = l1_weight * loss_l1
    total = t_iou + t_obj + t_cls + t_l1
    ratio = torch.tensor(N / max(num_gts, 1), dtype=dtype)
    result = (total, t_iou, t_obj, t_cls, t_l1, ratio)
    if return_info:
        return result, dict(images=images, num_fg=num_fg, num_gt=num_gts, N=N,
                            matched=matched_all, pred_iou=pred_iou_all)
    return result


def yolox_assign_reference(outputs, labels, strides=(8, 16, 32), assigner="yolox",
                           cost_iou_eps=1e-8, cost_penalty=None):
    """-> (matched int64 [B, A], list of per-image info dicts)."""
    with torch.no_grad():
        outs = []
        for lvl in outputs:
            if isinstance(lvl, (tuple, list)):
                outs.append(tuple(t.detach() for t in lvl))
            else:
                outs.append(lvl.detach())
        _, info = yolox_loss_reference(outs, labels, strides, assigner, return_info=True,
                                       cost_iou_eps=cost_iou_eps, cost_penalty=cost_penalty)
    return info["matched"], info["images"]
