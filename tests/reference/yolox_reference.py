#!/usr/bin/python3
"""Independent PyTorch reference of the YOLOX training loss.

Written from /work/shared/spec/yolox-loss.md and from reading the published
YOLOX code for its semantics (yolo_head.py: get_losses, get_assignments,
get_geometry_constraint / get_in_boxes_info, simota_matching /
dynamic_k_matching; losses.py: IOUloss).  No code is taken from it; the
arithmetic below is arranged so that every float32 operation the published
code performs is performed here in the same order on the same operands, so
costs, IoUs and hence assignments come out bit-identical to it (except where
torch.topk breaks exact ties, which is arbitrary in both).

Run it directly (``/usr/bin/python3 tests/reference/yolox_reference.py``) for
self-tests: a slow per-anchor loop implementation on tiny cases, float64
finite differences of the autograd gradients, and tie handling.

Public functions
----------------
yolox_loss_reference(outputs, labels, strides, assigner, iou_loss, use_l1,
                     reg_weight, obj_weight, cls_weight, l1_weight,
                     forced_matched=None, forced_pred_iou=None,
                     return_info=False, transcendentals="torch")
    -> 6-tuple (total, w_iou*loss_iou, w_obj*loss_obj, w_cls*loss_cls,
                w_l1*loss_l1, N/max(num_gt,1)), and with return_info=True a
       second value: a dict (see _assign_image for the per-image entries:
       matched, pred_iou, dynamic_k, cand_idx, cost, cost_nopen, iou,
       geometry, selected).  forced_matched runs the losses on a given
       assignment (e.g. another implementation's, after a tie);
       transcendentals="libm"/"correct" swaps torch's float32 exp/log for
       the C library's / correctly rounded ones (diagnostics at kinks).
yolox_assign_reference(outputs, labels, strides, assigner)
    -> (matched int64 [B, A], per-image info list)
explain_assignment_difference(info, ref_matched, other_matched, ...)
    -> decides whether another implementation's assignment of one image is
       explained by (near-)ties in this reference's own costs.
"""

import math
import sys

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
                  num_classes, topk=10, mode="torch"):
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
    iou_cost = -_log(ious + 1e-8, mode)
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

def _iou_loss(pred, target, loss_type):
    """YOLOX's IOUloss(reduction='none'), pred/target [n,4] cx,cy,w,h."""
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
    if loss_type == "giou":
        c_tl = torch.min(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
        c_br = torch.max(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
        area_c = torch.prod(c_br - c_tl, 1)
        giou = iou - (area_c - union) / area_c.clamp(1e-16)
        return 1 - giou.clamp(min=-1.0, max=1.0)
    raise ValueError("iou_loss must be 'iou' or 'giou', got %r" % (loss_type,))


def yolox_loss_reference(outputs, labels, strides=(8, 16, 32), assigner="yolox",
                         iou_loss="iou", use_l1=False, reg_weight=5.0, obj_weight=1.0,
                         cls_weight=1.0, l1_weight=1.0, forced_matched=None,
                         forced_pred_iou=None, return_info=False, transcendentals="torch"):
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

    Returns (total, reg_weight*loss_iou, obj_weight*loss_obj,
    cls_weight*loss_cls, l1_weight*loss_l1, N / max(num_gt, 1)) as 0-d
    tensors (the last one without gradient), and if return_info also a dict
    {'images': [per-image info], 'num_fg', 'num_gt', 'N', 'matched' [B,A]}.
    """
    if assigner not in ASSIGNERS:
        raise ValueError("unknown assigner %r" % (assigner,))
    cfg = ASSIGNERS[assigner]
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
                                     xs, ys, ss, cfg, num_classes, mode=mode)
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


def yolox_assign_reference(outputs, labels, strides=(8, 16, 32), assigner="yolox"):
    """-> (matched int64 [B, A], list of per-image info dicts)."""
    with torch.no_grad():
        outs = []
        for lvl in outputs:
            if isinstance(lvl, (tuple, list)):
                outs.append(tuple(t.detach() for t in lvl))
            else:
                outs.append(lvl.detach())
        _, info = yolox_loss_reference(outs, labels, strides, assigner, return_info=True)
    return info["matched"], info["images"]


# --------------------------------------------------------------------------
# tie analysis
# --------------------------------------------------------------------------

def ulp32(x):
    """Spacing of float32 numbers at |x| (as a float64)."""
    x = abs(float(x))
    if x == 0.0 or not math.isfinite(x):
        return 2.0 ** -149
    e = math.frexp(x)[1]  # x = m * 2**e, 0.5 <= m < 1
    return 2.0 ** (e - 24)


def rounding_tolerance(cost_value, cost_nopen_value, rel=4e-6, ulps=2):
    """How far another float32 implementation's cost of one (gt, anchor)
    pair may lie from this reference's: relative error of the un-penalised
    part (the class-BCE sum over C is summed in a different order) plus a
    couple of float32 spacings at the cost's own magnitude (adding the 1e6
    penalty rounds to 1/16)."""
    return rel * max(1.0, abs(float(cost_nopen_value))) + ulps * ulp32(cost_value)


def explain_assignment_difference(info, ref_matched, other_matched, other_k=None,
                                  tol_mode="exact"):
    """Is other_matched (one image, [A]) a possible SimOTA outcome under the
    reference's own costs of that image, given that torch.topk / torch.min
    break ties arbitrarily?

    tol_mode 'exact': only exact equalities of the reference's float32 costs
    may be broken differently.  'rounding': costs within
    rounding_tolerance() of each other count as ties, and dynamic_k may
    differ by one where the float64 sum of the top IoUs lies within 1e-5 of
    an integer.

    Returns (ok: bool, reason: str)."""
    ref_matched = torch.as_tensor(ref_matched).to(torch.int64)
    other_matched = torch.as_tensor(other_matched).to(torch.int64)
    diff = (ref_matched != other_matched).nonzero()[:, 0]
    ref_k = info.get("dynamic_k")
    k_same = (other_k is None or ref_k is None or
              torch.equal(torch.as_tensor(other_k).to(torch.int64), ref_k.to(torch.int64)))
    if diff.numel() == 0 and k_same:
        return True, "identical"
    if "cost" not in info:
        return False, "no reference costs for this image"
    if info["cost"].numel() == 0 and not k_same:
        return False, "no candidate anchors: reference dynamic_k %s, other %s" % (
            ref_k.tolist(), torch.as_tensor(other_k).tolist())
    cand_idx = info["cand_idx"]
    num_anchors = ref_matched.numel()
    col_of = torch.full((num_anchors,), -1, dtype=torch.int64)
    col_of[cand_idx] = torch.arange(cand_idx.numel())
    # anchors assigned by `other` outside the candidates are never explained
    bad = (other_matched >= 0) & (col_of < 0)
    if bad.any():
        a = int(bad.nonzero()[0, 0])
        return False, "anchor %d assigned to gt %d but is not a candidate" % (a, int(other_matched[a]))
    if cand_idx.numel() == 0:
        return False, "image has no candidates but other assigns anchors"

    cost = info["cost"].double()
    nopen = info["cost_nopen"].double()
    num_gt, n_cand = cost.shape
    rounding = tol_mode == "rounding"
    if rounding:
        tol = torch.empty_like(cost)
        for g in range(num_gt):
            # vectorised rounding_tolerance
            c = cost[g].abs()
            e = torch.floor(torch.log2(torch.clamp(c, min=1e-30))) + 1
            tol[g] = 4e-6 * torch.clamp(nopen[g].abs(), min=1.0) + 2 * torch.pow(2.0, e - 24)
    else:
        tol = torch.zeros_like(cost)

    # per gt: range of k and the thresholds of the k-th smallest cost
    ks = info["dynamic_k"]
    sums = info["topk_iou_sum_f64"]
    must = torch.zeros_like(cost, dtype=torch.bool)
    may = torch.zeros_like(cost, dtype=torch.bool)
    kth = torch.zeros(num_gt, dtype=torch.float64)
    k_amb = [False] * num_gt
    for g in range(num_gt):
        k = int(ks[g])
        k_lo, k_hi = k, k
        if rounding:
            frac_near = abs(float(sums[g]) - round(float(sums[g]))) < 1e-5
            if frac_near:
                r = int(round(float(sums[g])))
                k_lo, k_hi = max(1, min(k, r - 1)), min(n_cand, max(k, r))
        if other_k is not None:
            ok_k = int(other_k[g])
            if ok_k != k and not (k_lo <= ok_k <= k_hi):
                return False, "dynamic_k of gt %d: reference %d (top-IoU sum %.9f), other %d" % (
                    g, k, float(sums[g]), ok_k)
        srt = torch.sort(cost[g]).values
        # must: even if every cost within tol of it ranked before it, the
        # anchor is still among the k_lo smallest.  may: fewer than k_hi
        # anchors are certainly (beyond tol) cheaper than it.
        n_le = torch.searchsorted(srt, cost[g] + tol[g], right=True)
        n_lt = torch.searchsorted(srt, cost[g] - tol[g], right=False)
        must[g] = n_le <= k_lo
        may[g] = n_lt <= k_hi - 1
        kth[g] = srt[k - 1]
        k_amb[g] = k_lo != k_hi
    colmin = cost.min(0).values

    n_exp = 0
    worst_gap = [0.0]  # largest |cost - the value it tied with| over the explained anchors
    n_kround = [0]     # anchors explained by a dynamic_k that differs by rounding

    def gap(value, gts):
        if any(k_amb[g] for g in gts if g >= 0):
            n_kround[0] += 1
        else:
            worst_gap[0] = max(worst_gap[0], float(value))

    for a in diff.tolist():
        c = int(col_of[a])
        if c < 0:
            # ref assigned a non-candidate?  cannot happen
            return False, "reference assigned non-candidate anchor %d" % a
        o = int(other_matched[a])
        r = int(ref_matched[a])
        m_set = must[:, c].nonzero()[:, 0].tolist()
        p_set = may[:, c].nonzero()[:, 0].tolist()
        if o < 0:
            if m_set:
                return False, ("anchor %d (cand %d): other leaves it background but gt(s) %s "
                               "must take it (cost %s)" % (a, c, m_set,
                                                            [float(cost[g, c]) for g in m_set]))
            n_exp += 1
            gap(abs(float(cost[r, c] - kth[r])), [r])
            continue
        if o not in p_set:
            # `o` may still get it through a conflict if two others took it
            if len(p_set) >= 2 and float(cost[o, c]) <= float(colmin[c]) + float(tol[o, c]):
                n_exp += 1
                gap(float(cost[o, c] - colmin[c]), p_set)
                continue
            return False, ("anchor %d (cand %d): other gives gt %d (cost %.9g) which cannot have "
                           "selected it; reference gives %d; k-th cost of gt %d: %.9g" % (
                               a, c, o, float(cost[o, c]), r, o, float(kth[o])))
        others_must = [g for g in m_set if g != o]
        if not others_must:
            n_exp += 1  # o alone may have selected it
            if r >= 0 and o != r and float(cost[o, c]) > float(colmin[c]):
                # r took it in the reference: r's selection or o's was the tie
                gap(min(abs(float(cost[r, c] - kth[r])), abs(float(cost[o, c] - kth[o]))), [r, o])
            else:
                gap(abs(float(cost[o, c] - kth[o])), [o, r])
            continue
        # several selectors: o must be (near) the minimum over all gts
        if float(cost[o, c]) <= float(colmin[c]) + float(tol[o, c]):
            n_exp += 1
            gap(float(cost[o, c] - colmin[c]), m_set)
            continue
        return False, ("anchor %d (cand %d): other gives gt %d (cost %.9g) but gts %s also must "
                       "take it and the column minimum is %.9g (gt %d); reference gives %d" % (
                           a, c, o, float(cost[o, c]), others_must, float(colmin[c]),
                           int(cost[:, c].argmin()), r))
    msg = "%d anchors differ, all explained by %s ties (largest cost gap %.3g" % (
        n_exp, tol_mode, worst_gap[0])
    if n_kround[0]:
        msg += "; %d anchors by a dynamic_k that differs by rounding" % n_kround[0]
    return True, msg + ")"


# --------------------------------------------------------------------------
# self-tests
# --------------------------------------------------------------------------

def _slow_loss(outputs, labels, strides, assigner, iou_loss, use_l1, weights):
    """Per-anchor Python loops (float64 math, float32 rounding only where
    YOLOX's float32 decides a branch).  Returns (terms [6 floats], matched
    list per image, dynamic_k per image, pair costs dict)."""
    import numpy as np
    f32 = np.float32
    cfg = ASSIGNERS[assigner]
    preds, shapes = flatten_outputs([tuple(t.detach() for t in l) if isinstance(l, (tuple, list))
                                     else l.detach() for l in outputs])
    P = preds.double().numpy()
    P32 = preds.float().numpy()
    B, A, ch = P.shape
    C = ch - 5
    anchors = []
    for (h, w), s in zip(shapes, strides):
        for i in range(h):
            for j in range(w):
                anchors.append((j, i, float(s)))
    lab = labels.float().numpy()
    matched_all, ks_all, costs_all = [], [], []

    def sig(x):
        return 1.0 / (1.0 + math.exp(-x))

    def dec32(b, a):
        j, i, s = anchors[a]
        t = P32[b, a]
        return (f32((t[0] + f32(j)) * f32(s)), f32((t[1] + f32(i)) * f32(s)),
                f32(f32(np.exp(t[2])) * f32(s)), f32(f32(np.exp(t[3])) * f32(s)))

    def iou32(g, pbx):
        # IoU in float32, ops as in bboxes_iou
        tl = [max(f32(g[k] - g[k + 2] / f32(2)), f32(pbx[k] - pbx[k + 2] / f32(2))) for k in (0, 1)]
        br = [min(f32(g[k] + g[k + 2] / f32(2)), f32(pbx[k] + pbx[k + 2] / f32(2))) for k in (0, 1)]
        if not (tl[0] < br[0] and tl[1] < br[1]):
            inter = f32(0)
        else:
            inter = f32(f32(br[0] - tl[0]) * f32(br[1] - tl[1]))
        return f32(inter / f32(f32(f32(g[2] * g[3]) + f32(pbx[2] * pbx[3])) - inter))

    n_fg = 0
    n_gt_tot = 0
    sums = dict(iou=0.0, obj=0.0, cls=0.0, l1=0.0)
    for b in range(B):
        rows = [r for r in lab[b]]
        n = int(sum(1 for r in rows if float(r.sum()) > 0))
        n_gt_tot += n
        gts = [tuple(f32(v) for v in rows[g][1:5]) for g in range(n)]
        gcl = [int(rows[g][0]) for g in range(n)]
        matched = [-1] * A
        ks = []
        cands, geo = [], {}
        for a in range(A):
            j, i, s = anchors[a]
            if cfg["legacy"]:
                xc, yc = f32(f32(f32(j) * f32(s)) + f32(0.5 * s)), f32(f32(f32(i) * f32(s)) + f32(0.5 * s))
            else:
                xc, yc = f32(f32(j + 0.5) * f32(s)), f32(f32(i + 0.5) * f32(s))
            any_in = False
            for g, gb in enumerate(gts):
                d = f32(f32(s) * f32(cfg["radius"]))
                inc = (xc - (gb[0] - d) > 0 and (gb[0] + d) - xc > 0 and
                       yc - (gb[1] - d) > 0 and (gb[1] + d) - yc > 0)
                hw, hh = f32(0.5) * gb[2], f32(0.5) * gb[3]
                inb = (xc - (gb[0] - hw) > 0 and (gb[0] + hw) - xc > 0 and
                       yc - (gb[1] - hh) > 0 and (gb[1] + hh) - yc > 0)
                if cfg["legacy"]:
                    any_in = any_in or inc or inb
                    geo[(g, a)] = inc and inb
                else:
                    any_in = any_in or inc
                    geo[(g, a)] = inc
            if any_in:
                cands.append(a)
        cost = {}
        iou = {}
        if n and cands:
            for g, gb in enumerate(gts):
                for a in cands:
                    pbx = dec32(b, a)
                    v = iou32(gb, pbx)
                    iou[(g, a)] = v
                    po = sig(float(P32[b, a, 4]))
                    c = 0.0
                    for k in range(C):
                        p = math.sqrt(sig(float(P32[b, a, 5 + k])) * po)
                        if k == gcl[g]:
                            c += -max(math.log(p), -100.0) if p > 0 else 100.0
                        else:
                            c += -max(math.log(1 - p), -100.0) if p < 1 else 100.0
                    nopen = f32(c + 3.0 * -math.log(float(v) + 1e-8))
                    cost[(g, a)] = float(f32(nopen + f32(0.0 if geo[(g, a)] else cfg["penalty"])))
            taken = {a: [] for a in cands}
            for g in range(n):
                top = sorted((float(iou[(g, a)]) for a in cands), reverse=True)[:min(10, len(cands))]
                k = max(1, int(np.float32(sum(np.float32(t) for t in top))))
                ks.append(k)
                order = sorted(cands, key=lambda a: (cost[(g, a)], a))
                for a in order[:k]:
                    taken[a].append(g)
            for a in cands:
                if len(taken[a]) == 1:
                    matched[a] = taken[a][0]
                elif len(taken[a]) > 1:
                    matched[a] = min(range(n), key=lambda g: (cost[(g, a)], g))
        else:
            ks = [0] * n
        matched_all.append(matched)
        ks_all.append(ks)
        costs_all.append(cost)
        for a in range(A):
            t = P[b, a]
            g = matched[a]
            x = t[4]
            tobj = 1.0 if g >= 0 else 0.0
            sums["obj"] += max(x, 0) - x * tobj + math.log1p(math.exp(-abs(x)))
            if g < 0:
                continue
            n_fg += 1
            j, i, s = anchors[a]
            px, py = (t[0] + j) * s, (t[1] + i) * s
            pw, ph = math.exp(t[2]) * s, math.exp(t[3]) * s
            gx, gy, gw, gh = (float(v) for v in gts[g])
            tlx, tly = max(px - pw / 2, gx - gw / 2), max(py - ph / 2, gy - gh / 2)
            brx, bry = min(px + pw / 2, gx + gw / 2), min(py + ph / 2, gy + gh / 2)
            inter = (brx - tlx) * (bry - tly) if (tlx < brx and tly < bry) else 0.0
            union = pw * ph + gw * gh - inter
            io = inter / (union + 1e-16)
            if iou_loss == "iou":
                sums["iou"] += 1 - io ** 2
            else:
                cw = max(px + pw / 2, gx + gw / 2) - min(px - pw / 2, gx - gw / 2)
                chh = max(py + ph / 2, gy + gh / 2) - min(py - ph / 2, gy - gh / 2)
                ac = cw * chh
                giou = io - (ac - union) / max(ac, 1e-16)
                sums["iou"] += 1 - min(1.0, max(-1.0, giou))
            piou = float(iou[(g, a)])
            for k in range(C):
                x = t[5 + k]
                tt = piou if k == gcl[g] else 0.0
                sums["cls"] += max(x, 0) - x * tt + math.log1p(math.exp(-abs(x)))
            if use_l1:
                tg = (gx / s - j, gy / s - i, math.log(gw / s + 1e-8), math.log(gh / s + 1e-8))
                sums["l1"] += sum(abs(t[k] - tg[k]) for k in range(4))
    N = float(max(n_fg, 1))
    rw, ow, cw, lw = weights
    terms = [rw * sums["iou"] / N, ow * sums["obj"] / N, cw * sums["cls"] / N,
             (lw * sums["l1"] / N) if use_l1 else 0.0]
    total = sum(terms)
    return [total] + terms + [N / max(n_gt_tot, 1)], matched_all, ks_all, costs_all


def _tiny_case(gen, B, C, shapes, strides, n_max, trained, dtype=torch.float32):
    outs = []
    for (h, w) in shapes:
        t = torch.randn(B, 5 + C, h, w, generator=gen, dtype=torch.float64) * 0.5
        t[:, 4:] -= 2.0
        outs.append(t.to(dtype))
    img_h = shapes[0][0] * strides[0]
    img_w = shapes[0][1] * strides[0]
    labels = torch.zeros(B, n_max + 1, 5)
    for b in range(B):
        n = int(torch.randint(0, n_max + 1, (1,), generator=gen))
        for g in range(n):
            cx = float(torch.rand(1, generator=gen)) * img_w
            cy = float(torch.rand(1, generator=gen)) * img_h
            w = 2 + float(torch.rand(1, generator=gen)) * img_w * 0.7
            h = 2 + float(torch.rand(1, generator=gen)) * img_h * 0.7
            c = int(torch.randint(0, C, (1,), generator=gen))
            labels[b, g] = torch.tensor([c, cx, cy, w, h])
            if trained:
                for lvl, ((hh, ww), s) in enumerate(zip(shapes, strides)):
                    for i in range(hh):
                        for j in range(ww):
                            if abs((j + 0.5) * s - cx) < 2 * s and abs((i + 0.5) * s - cy) < 2 * s:
                                o = outs[lvl]
                                o[b, 0, i, j] = cx / s - j + 0.05 * float(torch.randn(1, generator=gen))
                                o[b, 1, i, j] = cy / s - i + 0.05 * float(torch.randn(1, generator=gen))
                                o[b, 2, i, j] = math.log(w / s) + 0.1 * float(torch.randn(1, generator=gen))
                                o[b, 3, i, j] = math.log(h / s) + 0.1 * float(torch.randn(1, generator=gen))
                                o[b, 4, i, j] = 2.0
                                o[b, 5 + c, i, j] = 2.0
    return outs, labels


def _selftest():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    worst = 0.0
    n_tie = 0
    n_cases = 0
    cases = []
    for assigner in ("yolox", "yolox-legacy"):
        for iou_loss in ("iou", "giou"):
            for trained in (False, True):
                for rep in range(3):
                    cases.append((assigner, iou_loss, trained, rep))
    for (assigner, iou_loss, trained, rep) in cases:
        B = 2
        C = 3 + rep
        strides = (8, 16) if rep != 2 else (8, 16, 32)
        shapes = [(6, 5), (3, 3)] if rep != 2 else [(8, 7), (4, 4), (2, 2)]
        outs, labels = _tiny_case(gen, B, C, shapes, strides, 4 + 2 * rep, trained)
        use_l1 = rep % 2 == 0
        weights = (5.0, 1.0, 1.0, 1.0) if rep != 1 else (2.0, 0.7, 1.3, 0.5)
        ref, info = yolox_loss_reference(outs, labels, strides, assigner, iou_loss, use_l1,
                                         *weights, return_info=True)
        slow, s_matched, s_ks, _ = _slow_loss(outs, labels, strides, assigner, iou_loss, use_l1,
                                              weights)
        forced = None
        for b in range(B):
            im = info["images"][b]
            sm = torch.tensor(s_matched[b])
            if not torch.equal(sm, im["matched"]):
                ok, why = explain_assignment_difference(im, im["matched"], sm,
                                                        other_k=s_ks[b] if s_ks[b] else None,
                                                        tol_mode="rounding")
                if not ok:
                    raise AssertionError("slow vs reference assignment (%s): %s" % (assigner, why))
                n_tie += 1
                forced = [torch.tensor(s_matched[bb]) for bb in range(B)]
            elif im["num_gt"] and "dynamic_k" in im:
                assert [int(k) for k in im["dynamic_k"]] == list(s_ks[b]), (im["dynamic_k"], s_ks[b])
        if forced is not None:
            ref = yolox_loss_reference(outs, labels, strides, assigner, iou_loss, use_l1,
                                       *weights, forced_matched=forced)
        for k in range(6):
            r, s = float(ref[k]), slow[k]
            err = abs(r - s) / max(abs(s), 1e-3)
            worst = max(worst, err)
            assert err < 2e-5, ("term", k, r, s, assigner, iou_loss, trained, rep)
        n_cases += 1
    print("slow per-anchor loop: %d cases, worst rel loss err %.3g, %d images with tie differences"
          % (n_cases, worst, n_tie))

    # gradients against finite differences in float64 (fixed assignment)
    for assigner, iou_loss, layout in (("yolox", "iou", "fused"), ("yolox-legacy", "giou", "split"),
                                       ("yolox", "giou", "split")):
        while True:
            outs, labels = _tiny_case(gen, 2, 3, [(5, 4), (3, 2)], (8, 16), 3, True, torch.float64)
            if int(count_labels(labels).min()) > 0:
                break
        if layout == "split":
            outs = [(o[:, :4].clone(), o[:, 4:5].clone(), o[:, 5:].clone()) for o in outs]
            leaves = [t for trip in outs for t in trip]
        else:
            leaves = outs
        for t in leaves:
            t.requires_grad_(True)
        _, info = yolox_loss_reference(outs, labels, (8, 16), assigner, iou_loss, True,
                                       return_info=True)
        forced = info["matched"]
        fpiou = info["pred_iou"]
        assert info["num_fg"] > 0
        total = yolox_loss_reference(outs, labels, (8, 16), assigner, iou_loss, True,
                                     forced_matched=forced, forced_pred_iou=fpiou)[0]
        grads = torch.autograd.grad(total, leaves)
        maxg = max(float(g.abs().max()) for g in grads)
        worst_fd = 0.0
        eps = 1e-6
        with torch.no_grad():
            for t, g in zip(leaves, grads):
                flat = t.view(-1)
                for idx in range(flat.numel()):
                    old = float(flat[idx])
                    flat[idx] = old + eps
                    fp = float(yolox_loss_reference(outs, labels, (8, 16), assigner, iou_loss, True,
                                                    forced_matched=forced,
                                                    forced_pred_iou=fpiou)[0])
                    flat[idx] = old - eps
                    fm = float(yolox_loss_reference(outs, labels, (8, 16), assigner, iou_loss, True,
                                                    forced_matched=forced,
                                                    forced_pred_iou=fpiou)[0])
                    flat[idx] = old
                    fd = (fp - fm) / (2 * eps)
                    worst_fd = max(worst_fd, abs(fd - float(g.reshape(-1)[idx])) / maxg)
        # |x - t| has a kink at 0 and IoU terms have max/min kinks; random
        # data keeps away from them, so FD should agree closely
        assert worst_fd < 1e-6, (assigner, iou_loss, worst_fd)
        print("finite differences (%s, %s, %s): worst |fd - autograd| / max|grad| = %.3g"
              % (assigner, iou_loss, layout, worst_fd))

    # exact ties: constant predictions make many equal costs; an assignment
    # that breaks them by lowest anchor index must be explained, a made-up
    # one must not.
    C = 4
    shapes = [(8, 8), (4, 4)]
    outs = [torch.zeros(1, 5 + C, h, w) for h, w in shapes]
    for o in outs:
        o[:, 4:] = -4.59512
    labels = torch.tensor([[[1, 30.0, 30.0, 20.0, 12.0], [2, 34.0, 30.0, 20.0, 12.0],
                            [0, 31.0, 33.0, 50.0, 40.0]]])
    for assigner in ("yolox", "yolox-legacy"):
        _, info = yolox_loss_reference(outs, labels, (8, 16), assigner, return_info=True)
        im = info["images"][0]
        # deterministic lowest-index tie break on the same costs
        cost = im["cost"].double()
        G, n = cost.shape
        sel = torch.zeros_like(cost, dtype=torch.bool)
        for g in range(G):
            order = sorted(range(n), key=lambda c: (float(cost[g, c]), c))
            sel[g, order[:int(im["dynamic_k"][g])]] = True
        det = torch.full_like(im["matched"], -1)
        for c in range(n):
            takers = sel[:, c].nonzero()[:, 0].tolist()
            if len(takers) == 1:
                det[im["cand_idx"][c]] = takers[0]
            elif takers:
                det[im["cand_idx"][c]] = min(range(G), key=lambda g: (float(cost[g, c]), g))
        ok, why = explain_assignment_difference(im, im["matched"], det, tol_mode="exact")
        assert ok, why
        nd = int((det != im["matched"]).sum())
        # a wrong assignment: move one fg anchor to a gt with clearly higher cost
        wrong = im["matched"].clone()
        fgs = (wrong >= 0).nonzero()[:, 0]
        a = int(fgs[0])
        col = int((im["cand_idx"] == a).nonzero()[0, 0])
        gbad = int(cost[:, col].argmax())
        wrong[a] = gbad
        ok2, why2 = explain_assignment_difference(im, im["matched"], wrong, tol_mode="rounding")
        assert not ok2, "made-up assignment was accepted"
        # dropping a must-take anchor must fail too
        wrong = im["matched"].clone()
        wrong[a] = -1
        ok3, _ = explain_assignment_difference(im, im["matched"], wrong, tol_mode="rounding")
        must_take = float(cost[int(im["matched"][a]), col]) < float(
            torch.sort(cost[int(im["matched"][a])]).values[int(im["dynamic_k"][int(im["matched"][a])]) - 1])
        assert (not ok3) or (not must_take)
        print("ties (%s): lowest-index tie break differs on %d anchors, explained: %s; "
              "wrong assignment rejected: %s" % (assigner, nd, why, why2))

    # no candidate anchors: gt far outside the grid
    outs = [torch.zeros(1, 6, 4, 4)]
    labels = torch.tensor([[[0, 500.0, 500.0, 4.0, 4.0]]])
    res, info = yolox_loss_reference(outs, labels, (8,), "yolox", return_info=True)
    assert info["num_fg"] == 0 and int(info["images"][0]["dynamic_k"][0]) == 0
    print("no-candidate image: no fg, N = 1, total = %.6f" % float(res[0]))
    print("self-test passed")


if __name__ == "__main__":
    _selftest()
    sys.exit(0)
