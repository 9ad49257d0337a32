"""MMDetection 3.x's YOLOX loss, recomputed here in plain PyTorch on the CPU.

Written from reading MMDetection's code for its semantics, not copied:
``mmdet/models/dense_heads/yolox_head.py`` (``YOLOXHead.loss_by_feat``,
``_get_targets_single``, ``_bbox_decode``, ``_get_l1_target``),
``mmdet/models/task_modules/assigners/sim_ota_assigner.py``
(``SimOTAAssigner``: ``assign``, ``get_in_gt_and_in_center_info``,
``dynamic_k_matching``), ``mmdet/models/task_modules/prior_generators/
point_generator.py`` (``MlvlPointGenerator`` with offset 0),
``mmdet/structures/bbox`` (``bbox_overlaps``, ``bbox_xyxy_to_cxcywh``) and
``mmdet/models/losses`` (``IoULoss``, ``CrossEntropyLoss`` with
``use_sigmoid``, ``L1Loss``), with YOLOXHead's default configuration: losses
summed and weighted 1 (class), 5 (box, IoULoss mode 'square', eps 1e-16),
1 (objectness), 1 (L1); SimOTAAssigner(center_radius=2.5, candidate_topk=10,
iou_weight=3.0, cls_weight=1.0), its EPS = 1e-7 and INF = 1e5.  Every float32
operation those files perform is performed here in their order on the same
operands, so this is the computation the library's ``mmdet`` preset is
checked against (tests/reference/check_reference.py --preset mmdet).

Where it has to differ from running MMDetection itself:

* MMDetection's SimOTAAssigner computes its class cost only when CUDA or
  MUSA is available (the branch for each sets ``cls_cost``; on a machine with
  neither the name is unset and ``assign`` fails).  This reference computes it
  as those branches do: binary cross-entropy in float32 of the repeated
  ``[n_valid, n_gt, C]`` scores against one-hot labels, summed over classes.
* The normaliser is ``max(reduce_mean(num_pos), 1)``; on one process
  ``reduce_mean`` is the identity.  Data-parallel training divides by the mean
  over ranks: ``normalizer=`` of the drop-in / ``yoloxloss_renormalize``.
* The inputs are YOLOX-shaped (per-level fused or split outputs, padded
  ``[B, M, 5]`` labels of class, cx, cy, w, h): each image's first ``n_b``
  rows (``n_b`` rows with a positive sum, YOLOX's rule) become its
  ``gt_instances``, with corners ``cx -+ w/2``, ``cy -+ h/2`` in float64
  rounded to float32 (exact for the check's boxes, whose corners lie on a
  1/64 px lattice; docs/differences.md gives the size of the difference for
  corners that are not recovered exactly).

Public functions
----------------
mmdet_loss_reference(outputs, labels, strides, use_l1, reg_weight, obj_weight,
                     cls_weight, l1_weight, forced_matched=None,
                     return_info=False, transcendentals="torch", iou_loss="iou")
    -> the 6-tuple of yolox_reference.yolox_loss_reference (total, the four
       weighted terms, max(num_fg, 1) / max(num_gt, 1)) and with return_info
       the same info dict, per image in the assigner's candidates with costs
       as [n_gt, n_valid] (MMDetection keeps [n_valid, n_gt]), so
       tie_analysis reads it unchanged.  iou_loss "iou" is IoULoss mode
       'square', "iou-linear" mode 'linear' (both eps 1e-16).
"""

import torch
import torch.nn.functional as F

from yolox_reference import TRANSCENDENTALS, _exp, _log, count_labels, flatten_outputs

EPS = 1.0e-7        # SimOTAAssigner's eps of -log(IoU + EPS)
INF = 100000.0      # its cost of a prior outside both the box and the centre region
CENTER_RADIUS = 2.5
CANDIDATE_TOPK = 10
IOU_WEIGHT, CLS_WEIGHT = 3.0, 1.0
IOU_LOSS_EPS = 1e-16  # YOLOXHead's IoULoss(eps=1e-16)
OVERLAP_EPS = 1e-6    # bbox_overlaps' floor of the union


def grid_priors(shapes, strides, dtype=torch.float32):
    """MlvlPointGenerator(strides, offset=0).grid_priors(..., with_stride=True):
    [A, 4] of (j s, i s, s, s), levels in order, i * W + j inside one."""
    out = []
    for (h, w), s in zip(shapes, strides):
        s = int(s) if float(s).is_integer() else float(s)
        shift_x = (torch.arange(0, w) + 0) * s
        shift_y = (torch.arange(0, h) + 0) * s
        shift_x, shift_y = shift_x.to(dtype), shift_y.to(dtype)
        xx = shift_x.repeat(h)
        yy = shift_y.view(-1, 1).repeat(1, w).view(-1)
        stride = xx.new_full((xx.shape[0],), s).to(dtype)
        out.append(torch.stack([xx, yy, stride, stride], dim=-1))
    return torch.cat(out)


def bbox_decode(priors, bbox_preds, mode="torch"):
    """YOLOXHead._bbox_decode: (tx s + j s, ty s + i s, exp(tw) s, exp(th) s)
    as corners (x1, y1, x2, y2)."""
    xys = (bbox_preds[..., :2] * priors[:, 2:]) + priors[:, :2]
    whs = _exp(bbox_preds[..., 2:], mode) * priors[:, 2:]
    tl_x = (xys[..., 0] - whs[..., 0] / 2)
    tl_y = (xys[..., 1] - whs[..., 1] / 2)
    br_x = (xys[..., 0] + whs[..., 0] / 2)
    br_y = (xys[..., 1] + whs[..., 1] / 2)
    return torch.stack([tl_x, tl_y, br_x, br_y], -1)


def bbox_overlaps(b1, b2, is_aligned=False, eps=OVERLAP_EPS):
    """bbox_overlaps(mode='iou'): areas from the corners, extents clamped at 0,
    union at least eps. b1 [n, 4], b2 [m, 4] -> [n, m] (aligned: [n])."""
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    if is_aligned:
        lt = torch.max(b1[..., :2], b2[..., :2])
        rb = torch.min(b1[..., 2:], b2[..., 2:])
        wh = (rb - lt).clamp(min=0)
        overlap = wh[..., 0] * wh[..., 1]
        union = area1 + area2 - overlap
    else:
        lt = torch.max(b1[..., :, None, :2], b2[..., None, :, :2])
        rb = torch.min(b1[..., :, None, 2:], b2[..., None, :, 2:])
        wh = (rb - lt).clamp(min=0)
        overlap = wh[..., 0] * wh[..., 1]
        union = area1[..., None] + area2[..., None, :] - overlap
    union = torch.max(union, union.new_tensor([eps]))
    return overlap / union


def in_gt_and_in_center(priors, gt):
    """SimOTAAssigner.get_in_gt_and_in_center_info: (candidates [A] bool,
    box-and-centre [n_valid, n_gt] bool)."""
    num_gt = gt.size(0)
    x = priors[:, 0].unsqueeze(1).repeat(1, num_gt)
    y = priors[:, 1].unsqueeze(1).repeat(1, num_gt)
    sx = priors[:, 2].unsqueeze(1).repeat(1, num_gt)
    sy = priors[:, 3].unsqueeze(1).repeat(1, num_gt)
    deltas = torch.stack([x - gt[:, 0], y - gt[:, 1], gt[:, 2] - x, gt[:, 3] - y], dim=1)
    in_gts = deltas.min(dim=1).values > 0
    cxs = (gt[:, 0] + gt[:, 2]) / 2.0
    cys = (gt[:, 1] + gt[:, 3]) / 2.0
    ct_l = cxs - CENTER_RADIUS * sx
    ct_t = cys - CENTER_RADIUS * sy
    ct_r = cxs + CENTER_RADIUS * sx
    ct_b = cys + CENTER_RADIUS * sy
    ct_deltas = torch.stack([x - ct_l, y - ct_t, ct_r - x, ct_b - y], dim=1)
    in_cts = ct_deltas.min(dim=1).values > 0
    valid = (in_gts.sum(dim=1) > 0) | (in_cts.sum(dim=1) > 0)
    return valid, in_gts[valid, :] & in_cts[valid, :]


def simota_assign(priors, decoded, scores, gt, gt_labels, mode="torch"):
    """SimOTAAssigner.assign on one image, float32 and no gradient: -> info
    dict (the keys of yolox_reference._assign_image)."""
    num_priors, num_gt = decoded.size(0), gt.size(0)
    matched = torch.full((num_priors,), -1, dtype=torch.int64)
    pred_iou = torch.zeros((num_priors,), dtype=torch.float32)
    valid, box_and_center = in_gt_and_in_center(priors, gt)
    cand_idx = valid.nonzero()[:, 0]
    info = dict(matched=matched, pred_iou=pred_iou, cand_idx=cand_idx,
                geometry=box_and_center.t(), num_gt=num_gt)
    n_valid = int(cand_idx.numel())
    if n_valid == 0:
        info.update(dynamic_k=torch.zeros(num_gt, dtype=torch.int64),
                    topk_iou_sum_f64=torch.zeros(num_gt, dtype=torch.float64),
                    cost=torch.zeros((num_gt, 0)), cost_nopen=torch.zeros((num_gt, 0)),
                    iou=torch.zeros((num_gt, 0)), selected=torch.zeros((num_gt, 0), dtype=torch.bool))
        return info
    ious = bbox_overlaps(decoded[valid], gt)                     # [n_valid, n_gt]
    iou_cost = -_log(ious + EPS, mode)
    onehot = F.one_hot(gt_labels.to(torch.int64), scores.shape[-1]).float().unsqueeze(0).repeat(n_valid, 1, 1)
    valid_scores = scores[valid].unsqueeze(1).repeat(1, num_gt, 1)
    # the CUDA (or MUSA) branch's class cost, computed here on the CPU
    cls_cost = F.binary_cross_entropy(valid_scores.to(dtype=torch.float32), onehot,
                                      reduction="none").sum(-1).to(dtype=valid_scores.dtype)
    cost_nopen = cls_cost * CLS_WEIGHT + iou_cost * IOU_WEIGHT
    cost = cost_nopen + (~box_and_center) * INF

    # dynamic_k_matching
    matching = torch.zeros_like(cost, dtype=torch.uint8)
    topk = min(CANDIDATE_TOPK, ious.size(0))
    topk_ious, _ = torch.topk(ious, topk, dim=0)
    dynamic_ks = torch.clamp(topk_ious.sum(0).int(), min=1)
    for g in range(num_gt):
        _, pos = torch.topk(cost[:, g], k=int(dynamic_ks[g]), largest=False)
        matching[:, g][pos] = 1
    selected = matching.bool().clone()
    multi = matching.sum(1) > 1
    if multi.sum() > 0:
        _, argmin = torch.min(cost[multi, :], dim=1)
        matching[multi, :] *= 0
        matching[multi, argmin] = 1
    fg = matching.sum(1) > 0
    gt_of = matching[fg, :].argmax(1)
    fg_ious = (matching * ious).sum(1)[fg]
    matched[cand_idx[fg]] = gt_of
    pred_iou[cand_idx[fg]] = fg_ious
    info.update(dynamic_k=dynamic_ks.to(torch.int64), topk_iou_sum_f64=topk_ious.double().sum(0),
                cost=cost.t(), cost_nopen=cost_nopen.t(), iou=ious.t(), selected=selected.t())
    return info


def _iou_loss(pred, target, iou_loss):
    """IoULoss(mode='square' or 'linear', eps=1e-16), per row, before its
    weight and reduction."""
    ious = bbox_overlaps(pred, target, is_aligned=True).clamp(min=IOU_LOSS_EPS)
    if iou_loss == "iou":
        return 1 - ious ** 2
    if iou_loss == "iou-linear":
        return 1 - ious
    raise ValueError("the MMDetection reference has IoULoss only: iou_loss 'iou' or 'iou-linear', got %r"
                     % (iou_loss,))


def _split_heads(outputs):
    """YOLOX-shaped levels -> MMDetection's flattened (cls [B,A,C], bbox [B,A,4],
    obj [B,A]) connected to the inputs, and the grid shapes."""
    flat, shapes = flatten_outputs(outputs)  # [B, A, 5+C], channels reg | obj | cls
    return flat[..., 5:], flat[..., :4], flat[..., 4], shapes


def gt_corners(labels32, n):
    """An image's first n label rows as MMDetection's gt_instances: corners
    (float64 arithmetic, rounded to float32) and labels."""
    rows = labels32[:n].double()
    c, wh = rows[:, 1:3], rows[:, 3:5]
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1).float()
    return boxes, labels32[:n, 0].to(torch.int64)


def mmdet_loss_reference(outputs, labels, strides=(8, 16, 32), use_l1=False, reg_weight=5.0,
                         obj_weight=1.0, cls_weight=1.0, l1_weight=1.0, forced_matched=None,
                         return_info=False, transcendentals="torch", iou_loss="iou"):
    """MMDetection's YOLOXHead.loss_by_feat on YOLOX-shaped inputs; see the
    module's docstring. Float32 inputs give its float32 arithmetic, float64
    the same in float64 (the assignment is always float32)."""
    mode = transcendentals
    if mode not in TRANSCENDENTALS:
        raise ValueError("transcendentals must be one of %s" % (TRANSCENDENTALS,))
    if mode == "libm" and forced_matched is None:
        raise ValueError("transcendentals='libm' needs forced_matched")
    strides = list(strides)
    cls_pred, bbox_pred, obj_pred, shapes = _split_heads(outputs)
    dtype = bbox_pred.dtype
    batch, num_priors, num_classes = cls_pred.shape
    priors = grid_priors(shapes, strides)
    labels = labels.detach()
    labels32 = labels.float()
    nlabel = count_labels(labels)

    with torch.no_grad():
        priors_t = priors.to(dtype)
        decoded32 = bbox_decode(priors, bbox_pred.detach().float(), mode)
        offset_priors = torch.cat([priors[:, :2] + priors[:, 2:] * 0.5, priors[:, 2:]], dim=-1)
    images, num_gts = [], 0
    matched_all = torch.full((batch, num_priors), -1, dtype=torch.int64)
    pred_iou_all = torch.zeros((batch, num_priors), dtype=torch.float32)
    gts = []
    for b in range(batch):
        n = int(nlabel[b])
        num_gts += n
        gt, gl = gt_corners(labels32[b], n)
        gts.append((gt, gl))
        with torch.no_grad():
            if forced_matched is not None:
                m = torch.as_tensor(forced_matched[b]).to(torch.int64).clone()
                piou = torch.zeros((num_priors,), dtype=torch.float32)
                fgi = (m >= 0).nonzero()[:, 0]
                if fgi.numel():
                    piou[fgi] = bbox_overlaps(decoded32[b, fgi], gt[m[fgi]], is_aligned=True)
                info = dict(matched=m, pred_iou=piou, num_gt=n, forced=True)
            elif n == 0:
                info = dict(matched=torch.full((num_priors,), -1, dtype=torch.int64),
                            pred_iou=torch.zeros((num_priors,)), num_gt=0,
                            dynamic_k=torch.zeros(0, dtype=torch.int64),
                            cand_idx=torch.zeros(0, dtype=torch.int64))
            else:
                scores = (cls_pred[b].detach().float().sigmoid()
                          * obj_pred[b].detach().float().unsqueeze(1).sigmoid()).sqrt_()
                info = simota_assign(offset_priors, decoded32[b], scores, gt, gl, mode)
        info["gt_classes"] = gl
        matched_all[b] = info["matched"]
        pred_iou_all[b] = info["pred_iou"]
        images.append(info)

    fg = matched_all >= 0
    num_pos = int(fg.sum())
    num_total_samples = max(float(num_pos), 1.0)
    b_idx, a_idx = fg.nonzero(as_tuple=True)
    g_idx = matched_all[b_idx, a_idx]
    if num_pos:
        bbox_targets = torch.stack([gts[int(b)][0][int(g)] for b, g in zip(b_idx, g_idx)]).to(dtype)
        cls_labels = torch.stack([gts[int(b)][1][int(g)] for b, g in zip(b_idx, g_idx)])
    else:
        bbox_targets = torch.zeros((0, 4), dtype=dtype)
        cls_labels = torch.zeros((0,), dtype=torch.int64)
    cls_targets = F.one_hot(cls_labels, num_classes).to(dtype) * pred_iou_all[b_idx, a_idx].to(dtype).unsqueeze(-1)
    obj_targets = fg.to(dtype).view(-1, 1)

    loss_obj = obj_weight * F.binary_cross_entropy_with_logits(
        obj_pred.reshape(-1, 1), obj_targets, reduction="none").sum() / num_total_samples
    if num_pos > 0:
        loss_cls = cls_weight * F.binary_cross_entropy_with_logits(
            cls_pred[b_idx, a_idx], cls_targets, reduction="none").sum() / num_total_samples
        decoded = bbox_decode(priors_t, bbox_pred, mode)
        loss_bbox = reg_weight * _iou_loss(decoded[b_idx, a_idx], bbox_targets, iou_loss).sum() / num_total_samples
    else:
        loss_cls = cls_pred.sum() * 0
        loss_bbox = bbox_pred.sum() * 0
    if use_l1 and num_pos > 0:
        pri = priors_t[a_idx]
        gt_cxcywh = torch.stack([(bbox_targets[:, 0] + bbox_targets[:, 2]) / 2,
                                 (bbox_targets[:, 1] + bbox_targets[:, 3]) / 2,
                                 bbox_targets[:, 2] - bbox_targets[:, 0],
                                 bbox_targets[:, 3] - bbox_targets[:, 1]], -1)
        l1_t = torch.cat([(gt_cxcywh[:, :2] - pri[:, :2]) / pri[:, 2:],
                          _log(gt_cxcywh[:, 2:] / pri[:, 2:] + 1e-8, mode)], 1)
        loss_l1 = l1_weight * torch.abs(bbox_pred[b_idx, a_idx] - l1_t.detach()).sum() / num_total_samples
    elif use_l1:
        loss_l1 = bbox_pred.sum() * 0
    else:
        loss_l1 = torch.zeros((), dtype=dtype)

    total = loss_bbox + loss_obj + loss_cls + loss_l1
    ratio = torch.tensor(num_total_samples / max(num_gts, 1), dtype=dtype)
    result = (total, loss_bbox, loss_obj, loss_cls, loss_l1, ratio)
    if return_info:
        return result, dict(images=images, num_fg=num_pos, num_gt=num_gts, N=num_total_samples,
                            matched=matched_all, pred_iou=pred_iou_all)
    return result
