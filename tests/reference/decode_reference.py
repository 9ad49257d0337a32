"""YOLOX's inference path in PyTorch, written from the semantics of its
eval code (docs/algorithm.md, "Inference: decode and detect"), for
check_decode.py.

decode_outputs: the head's eval forward takes sigmoid of the objectness and
class logits; each anchor (level-major, then i * W + j) decodes to
x = (tx + j) s, y = (ty + i) s (MMDetection: tx s + j s), w = exp(tw) s,
h = exp(th) s, all float32.

postprocess: corners cx -+ w/2, cy -+ h/2; class_conf, class_pred = the
largest class probability and its first index (torch.max); an anchor is a
candidate when obj * class_conf >= conf_thre (float32); candidates are
suppressed per class (or across classes) by greedy NMS: in order of score,
a kept box removes every later one whose IoU with it is > nms_thre, the
IoU in torchvision's CPU kernel's float32 order of operations.

Two postprocess implementations:
  postprocess_exact        the rule the library implements: ties of score
                           ranked by anchor index (a stable sort), NMS of
                           each class on its own boxes' coordinates;
  postprocess_torchvision  YOLOX's own calls, torchvision.ops.batched_nms /
                           nms, whose sort is not stable and whose
                           batched_nms shifts each class's boxes by
                           class * (max coordinate + 1) below 1001 boxes.
and explain_difference(), which accepts a difference between two results of
the same image only where the inputs make it possible: the scores, IoUs or
ties that the two computations may decide differently (see its doc).

Public functions
----------------
decode(levels, strides, arithmetic) -> (boxes [B, A, 4], obj logits [B, A],
    class logits [B, A, C]), levels as (reg, obj, cls) float32 tensors
candidates(boxes, obj, cls, conf_thre) -> Candidates of one image
postprocess_exact(cand, nms_thre, agnostic) -> kept candidate indices
postprocess_torchvision(cand, nms_thre, agnostic) -> (kept indices, whether
    batched_nms shifted the coordinates)
rows(cand, kept) -> YOLOX's [n, 7] rows, or None
iou_matrix(x1, y1, x2, y2) -> the IoU of every pair, torchvision's float32
explain_difference(...) -> (ok, reason)
"""

import collections

import torch

Candidates = collections.namedtuple(
    "Candidates", "anchor x1 y1 x2 y2 obj conf cls score")


def decode(levels, strides, arithmetic="yolox"):
    """levels: per level (reg [B,4,H,W], obj [B,1,H,W], cls [B,C,H,W]),
    float32. -> boxes [B, A, 4] (cx, cy, w, h), obj logits [B, A], class
    logits [B, A, C], anchors level-major then i * W + j."""
    boxes, objs, clss = [], [], []
    for (reg, obj, cls), s in zip(levels, strides):
        B, _, H, W = reg.shape
        s = torch.tensor(float(s), dtype=torch.float32)
        i = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W).reshape(-1)
        j = torch.arange(W, dtype=torch.float32)[None, :].expand(H, W).reshape(-1)
        t = reg.reshape(B, 4, H * W)
        if arithmetic == "mmdet":
            x, y = t[:, 0] * s + j * s, t[:, 1] * s + i * s
        else:
            x, y = (t[:, 0] + j) * s, (t[:, 1] + i) * s
        w, h = torch.exp(t[:, 2]) * s, torch.exp(t[:, 3]) * s
        boxes.append(torch.stack([x, y, w, h], 2))
        objs.append(obj.reshape(B, H * W))
        clss.append(cls.reshape(B, cls.shape[1], H * W).permute(0, 2, 1))
    return torch.cat(boxes, 1), torch.cat(objs, 1), torch.cat(clss, 1)


def candidates(boxes, obj_prob, cls_prob, conf_thre):
    """One image: boxes [A, 4] (cx, cy, w, h), probabilities obj [A] and
    cls [A, C] -> the anchors whose obj * class_conf >= conf_thre (compared
    in float32, as PyTorch compares a tensor with a Python float), in
    anchor order."""
    x1 = boxes[:, 0] - boxes[:, 2] / 2
    y1 = boxes[:, 1] - boxes[:, 3] / 2
    x2 = boxes[:, 0] + boxes[:, 2] / 2
    y2 = boxes[:, 1] + boxes[:, 3] / 2
    conf, cls = torch.max(cls_prob, 1)
    score = obj_prob * conf
    keep = score >= torch.tensor(conf_thre, dtype=torch.float32)
    anchor = keep.nonzero()[:, 0]
    return Candidates(anchor, x1[keep], y1[keep], x2[keep], y2[keep], obj_prob[keep], conf[keep], cls[keep],
                      score[keep])


def _max(a, b):
    """std::max(a, b): a unless a < b."""
    return torch.where(a < b, b, a)


def _min(a, b):
    """std::min(a, b): a unless b < a."""
    return torch.where(b < a, b, a)


def iou_matrix(x1, y1, x2, y2):
    """[n, n]: entry (i, j) is torchvision's IoU of box i (the kept one)
    with box j, float32, in its kernel's order of operations."""
    area = (x2 - x1) * (y2 - y1)
    xx1, yy1 = _max(x1[:, None], x1[None, :]), _max(y1[:, None], y1[None, :])
    xx2, yy2 = _min(x2[:, None], x2[None, :]), _min(y2[:, None], y2[None, :])
    zero = torch.zeros((), dtype=torch.float32)
    w, h = _max(zero, xx2 - xx1), _max(zero, yy2 - yy1)
    inter = w * h
    return inter / (area[:, None] + area[None, :] - inter)


def rank(score):
    """Candidate indices by score, highest first, equal scores by index."""
    return torch.sort(score, descending=True, stable=True)[1]


def greedy_nms(iou, order, group, nms_thre):
    """Kept indices, in `order`: walking order, a box not yet suppressed is
    kept and suppresses every later one of its group (group: [n] labels, or
    None for one group) whose IoU with it is > nms_thre (float32 IoU against
    the Python float, as torchvision compares in double)."""
    n = order.numel()
    suppressed = torch.zeros(n, dtype=torch.bool)
    keep = []
    over = iou.double() > nms_thre
    for r in range(n):
        i = int(order[r])
        if suppressed[i]:
            continue
        keep.append(i)
        later = order[r + 1:]
        hit = over[i, later]
        if group is not None:
            hit &= group[later] == group[i]
        suppressed[later[hit]] = True
    return torch.tensor(keep, dtype=torch.int64)


def postprocess_exact(cand, nms_thre, agnostic):
    """The kept candidates (indices into cand) in rank order: the library's rule."""
    if cand.anchor.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    iou = iou_matrix(cand.x1, cand.y1, cand.x2, cand.y2)
    return greedy_nms(iou, rank(cand.score), None if agnostic else cand.cls, nms_thre)


def postprocess_torchvision(cand, nms_thre, agnostic):
    """YOLOX's postprocess NMS calls on the candidates: (kept indices in
    torchvision's order, whether batched_nms shifted the coordinates)."""
    import torchvision

    if cand.anchor.numel() == 0:
        return torch.zeros(0, dtype=torch.int64), False
    boxes = torch.stack([cand.x1, cand.y1, cand.x2, cand.y2], 1)
    if agnostic:
        return torchvision.ops.nms(boxes, cand.score, nms_thre), False
    keep = torchvision.ops.batched_nms(boxes, cand.score, cand.cls.float(), nms_thre)
    return keep, boxes.numel() <= 4000  # batched_nms's choice of its coordinate trick on the CPU


def shifted_boxes(cand):
    """The coordinates batched_nms's trick gives torchvision's nms: each
    class's boxes moved by class * (largest coordinate + 1), in float32."""
    boxes = torch.stack([cand.x1, cand.y1, cand.x2, cand.y2], 1)
    offsets = cand.cls.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    b = boxes + offsets[:, None]
    return b[:, 0], b[:, 1], b[:, 2], b[:, 3]


def rows(cand, kept):
    """YOLOX's postprocess output for the kept candidates: [n, 7] float32
    (x1, y1, x2, y2, obj_conf, class_conf, class_pred), or None."""
    if kept.numel() == 0:
        return None
    cols = [cand.x1, cand.y1, cand.x2, cand.y2, cand.obj, cand.conf, cand.cls.to(torch.float32)]
    return torch.stack([c[kept] for c in cols], 1)


def _components(n, edges):
    """Connected components of n nodes and a boolean [n, n] edge matrix:
    one label per node."""
    label = list(range(n))

    def find(a):
        while label[a] != a:
            label[a] = label[label[a]]
            a = label[a]
        return a

    for i, j in edges.nonzero().tolist():
        ra, rb = find(i), find(j)
        if ra != rb:
            label[ra] = rb
    return [find(a) for a in range(n)]


def _on(universe, cand, values, fill):
    """values of cand (one per candidate) spread over universe, fill elsewhere."""
    out = torch.full((universe.numel(),), fill, dtype=values.dtype)
    out[torch.searchsorted(universe, cand.anchor)] = values
    return out


def ambiguity(ca, cb, nms_thre, agnostic, ties_ambiguous, shifted=False):
    """What two computations of one image's postprocess may decide
    differently: ca and cb are their candidates (the same anchors' values,
    each from its own computation). -> (universe, ambiguous, linked), for
    explain_difference.

    An anchor is ambiguous when it is a candidate of only one computation
    (its score straddles the threshold: the two scores differ by rounding),
    when its class differs between them (class probabilities within
    rounding), or when, with an anchor it is linked to, its IoU is above the
    NMS threshold in one computation and not in the other, or their scores
    are ordered differently (or tie, with ties_ambiguous: torchvision's sort
    is not stable). Anchors are linked when they may suppress each other:
    same class (in either computation) unless agnostic, IoU > nms_thre in
    either. With shifted (batched_nms's coordinate trick, ca == cb), the IoU
    of the shifted coordinates is a third computation: a pair on the other
    side of the threshold there, or of two classes overlapping there, is
    linked and ambiguous."""
    universe = torch.unique(torch.cat([ca.anchor, cb.anchor]))
    n = universe.numel()
    in_a = _on(universe, ca, torch.ones(ca.anchor.numel(), dtype=torch.bool), False)
    in_b = _on(universe, cb, torch.ones(cb.anchor.numel(), dtype=torch.bool), False)

    def values(field):
        va, vb = getattr(ca, field), getattr(cb, field)
        a = _on(universe, ca, va, 0)
        b = _on(universe, cb, vb, 0)
        return torch.where(in_a, a, b), torch.where(in_b, b, a)

    (x1a, x1b), (y1a, y1b) = values("x1"), values("y1")
    (x2a, x2b), (y2a, y2b) = values("x2"), values("y2")
    (sa, sb), (ka, kb) = values("score"), values("cls")
    ambiguous = (in_a != in_b) | (ka != kb)
    off = ~torch.eye(n, dtype=torch.bool)
    group = torch.ones(n, n, dtype=torch.bool) if agnostic else (
        (ka[:, None] == ka[None, :]) | (kb[:, None] == kb[None, :]))
    over_a = iou_matrix(x1a, y1a, x2a, y2a).double() > nms_thre
    over_b = iou_matrix(x1b, y1b, x2b, y2b).double() > nms_thre
    linked = group & off & (over_a | over_b)
    da, db = torch.sign(sa[:, None] - sa[None, :]), torch.sign(sb[:, None] - sb[None, :])
    unsure = (over_a != over_b) | (da != db)
    if ties_ambiguous:
        unsure |= (da == 0) | (db == 0)
    if shifted:
        over_t = iou_matrix(*shifted_boxes(ca)).double() > nms_thre
        cross = off & over_t & ~group
        unsure = unsure | (group & (over_t != over_a)) | cross
        linked = linked | cross | (group & off & over_t)
    ambiguous |= (linked & unsure).any(1)
    return universe, ambiguous, linked


def explain_difference(anchors_a, scores_a, anchors_b, scores_b, universe, ambiguous, linked):
    """Is the difference between two postprocess results of one image (the
    kept anchors in output order and their scores) explained by what
    ambiguity() found?

    Each result must be in its own scores' order (non-increasing): then an
    order that differs is one of equal (or, between computations, nearly
    equal) scores. A greedy NMS decides each box from the boxes linked to
    it, so a difference of which anchors are kept can only spread along
    links: every anchor kept by one result and not the other must lie in a
    connected component of the links that holds an ambiguous anchor.
    Returns (ok, reason)."""
    a, b = [int(x) for x in anchors_a], [int(x) for x in anchors_b]
    for name, sc in (("first", scores_a), ("second", scores_b)):
        sc = torch.as_tensor(sc, dtype=torch.float32)
        if sc.numel() > 1 and bool((sc[1:] > sc[:-1]).any()):
            return False, "the %s result is not in order of score" % name
    if a == b:
        return True, "identical"
    index = {int(x): k for k, x in enumerate(universe.tolist())}
    comp = _components(len(index), linked)
    hot = {comp[k] for k in range(len(index)) if bool(ambiguous[k])}
    differing = set(a) ^ set(b)
    for x in sorted(differing):
        if x not in index:
            return False, "anchor %d is kept but was no candidate of either computation" % x
        if comp[index[x]] not in hot:
            return False, ("anchor %d is kept by the %s result only, and nothing linked to it is ambiguous"
                           % (x, "first" if x in a else "second"))
    return True, ("%d kept anchors differ, each linked to an ambiguous one" % len(differing) if differing
                  else "the same anchors, equal scores in another order")
