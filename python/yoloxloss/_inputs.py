"""The user's head outputs and labels, checked and reduced to what C reads.

Every refusal here is a ValueError (TypeError for a wrong kind of object)
that names the level, tensor, image or row at fault, so that the C library
only ever sees inputs it accepts.
"""

import collections

import torch

from ._options import normalize_strides

__all__ = []  # private module

# One level of the head: its grid, whether it is one fused [B, 5+C, H, W]
# tensor (else a reg/obj/cls triple), and the index of its first tensor in
# the flat tensor list.
LevelLayout = collections.namedtuple("LevelLayout", ["height", "width", "fused", "first"])


class HeadInputs:
    """Everything one call needs besides the head-output tensors themselves
    (those travel separately, so autograd sees them as inputs)."""

    __slots__ = ("strides", "levels", "num_images", "num_classes", "num_anchors",
                 "num_gt", "gt_classes", "gt_boxes")


def parse(outputs, labels, strides):
    """Check outputs, labels and strides; -> (HeadInputs, flat tensor list)."""
    strides = normalize_strides(strides)
    tensors, levels, num_images, num_classes = parse_outputs(outputs, strides)
    num_gt, gt_classes, gt_boxes = parse_labels(labels, num_images, num_classes)
    inputs = HeadInputs()
    inputs.strides = strides
    inputs.levels = levels
    inputs.num_images = num_images
    inputs.num_classes = num_classes
    inputs.num_anchors = sum(lv.height * lv.width for lv in levels)
    inputs.num_gt = num_gt
    inputs.gt_classes = gt_classes
    inputs.gt_boxes = gt_boxes
    return inputs, tensors


def check_tensor(t, name):
    """A CPU, dense, floating-point, non-empty [B, channels, H, W] tensor."""
    if not isinstance(t, torch.Tensor):
        raise TypeError("%s must be a torch.Tensor, got %s" % (name, type(t).__name__))
    if t.device.type != "cpu":
        raise ValueError("%s is on device %s; yoloxloss runs on the CPU: pass t.cpu() "
                         "(autograd carries the gradient back)" % (name, t.device))
    if t.layout != torch.strided:
        raise ValueError("%s must be a dense (strided) tensor, got layout %s" % (name, t.layout))
    if not t.is_floating_point():
        raise ValueError("%s must be a floating-point tensor, got %s" % (name, t.dtype))
    if t.dim() != 4:
        raise ValueError("%s must be 4-D [B, channels, H, W], got shape %s"
                         % (name, tuple(t.shape)))
    if t.shape[2] < 1 or t.shape[3] < 1 or t.shape[0] < 1:
        raise ValueError("%s has an empty batch or grid: shape %s" % (name, tuple(t.shape)))


def parse_outputs(outputs, strides):
    """-> (flat tensor list, [LevelLayout], B, C); every level agrees on B and C."""
    if isinstance(outputs, torch.Tensor) or not isinstance(outputs, (list, tuple)):
        raise TypeError("outputs must be a list of per-level tensors [B, 5+C, H, W] "
                        "or of (reg, obj, cls) triples")
    if len(outputs) != len(strides):
        raise ValueError("outputs has %d levels but strides has %d (%r)"
                         % (len(outputs), len(strides), tuple(strides)))
    if len(outputs) < 1:
        raise ValueError("outputs must hold at least one level")
    tensors, levels = [], []
    batch = num_classes = None

    def check_batch(t, name):
        nonlocal batch
        if batch is None:
            batch = t.shape[0]
        elif t.shape[0] != batch:
            raise ValueError("batch size mismatch: %s has %d images, outputs[0] has %d"
                             % (name, t.shape[0], batch))

    def check_classes(c, name):
        nonlocal num_classes
        if num_classes is None:
            num_classes = c
        elif c != num_classes:
            raise ValueError("class count mismatch: %s has %d classes, outputs[0] has %d"
                             % (name, c, num_classes))

    for l, level in enumerate(outputs):
        if isinstance(level, torch.Tensor):
            name = "outputs[%d]" % l
            check_tensor(level, name)
            if level.shape[1] < 6:
                raise ValueError("%s has %d channels; a fused level needs 5 + C >= 6 "
                                 "(reg 4 | obj 1 | cls C)" % (name, level.shape[1]))
            check_batch(level, name)
            check_classes(level.shape[1] - 5, name)
            levels.append(LevelLayout(int(level.shape[2]), int(level.shape[3]), True,
                                      len(tensors)))
            tensors.append(level)
        elif isinstance(level, (tuple, list)) and len(level) == 3:
            names = ["outputs[%d][%d] (%s)" % (l, i, n) for i, n in enumerate(("reg", "obj", "cls"))]
            for t, name in zip(level, names):
                check_tensor(t, name)
                check_batch(t, name)
            reg, obj, cls = level
            if reg.shape[1] != 4:
                raise ValueError("%s must have 4 channels, got %d" % (names[0], reg.shape[1]))
            if obj.shape[1] != 1:
                raise ValueError("%s must have 1 channel, got %d" % (names[1], obj.shape[1]))
            if cls.shape[1] < 1:
                raise ValueError("%s must have C >= 1 channels" % names[2])
            check_classes(cls.shape[1], names[2])
            for t, name in zip((obj, cls), names[1:]):
                if t.shape[2:] != reg.shape[2:]:
                    raise ValueError("%s grid %s differs from %s grid %s"
                                     % (name, tuple(t.shape[2:]), names[0], tuple(reg.shape[2:])))
            levels.append(LevelLayout(int(reg.shape[2]), int(reg.shape[3]), False, len(tensors)))
            tensors.extend(level)
        else:
            raise TypeError("outputs[%d] must be a tensor [B, 5+C, H, W] or a (reg, obj, cls) "
                            "triple, got %s" % (l, type(level).__name__))
    return tensors, levels, int(batch), int(num_classes)


def parse_labels(labels, num_images, num_classes):
    """YOLOX's padded [B, M, 5] labels -> (num_gt int32 [B], classes int32 [T],
    boxes float32 [T, 4]), all contiguous."""
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    lab = labels.detach()
    if lab.device.type != "cpu":
        lab = lab.cpu()
    if lab.dim() != 3 or lab.shape[2] != 5:
        raise ValueError("labels must be [B, M, 5] (class, cx, cy, w, h), got shape %s"
                         % (tuple(lab.shape),))
    if lab.shape[0] != num_images:
        raise ValueError("labels has %d images but the outputs have %d"
                         % (lab.shape[0], num_images))
    if lab.is_complex() or lab.dtype == torch.bool:
        raise ValueError("labels must be a real numeric tensor, got %s" % lab.dtype)
    if lab.is_floating_point():
        finite = torch.isfinite(lab).all(dim=2)
        if not bool(finite.all()):
            b, r = (int(v) for v in (~finite).nonzero()[0])
            raise ValueError("labels: image %d, row %d holds a non-finite value: %s"
                             % (b, r, lab[b, r].tolist()))
    # YOLOX: n_b = number of rows whose sum is > 0; the first n_b rows are used.
    nlabel = (lab.sum(dim=2) > 0).sum(dim=1)
    rows = torch.arange(lab.shape[1])
    mask = rows[None, :] < nlabel[:, None]
    # A label after a padding (all-zero) row: YOLOX would read the padding
    # row as a box and drop the label; refuse it instead. (A row whose sum
    # is <= 0 but is not all zero is a label YOLOX does not count; that
    # quirk is followed, as the reference check expects.)
    after_pad = torch.cummax((lab == 0).all(dim=2).to(torch.int32), dim=1).values.bool()
    stray = ((lab.sum(dim=2) > 0) & after_pad).nonzero()
    if len(stray):
        b, r = (int(v) for v in stray[0])
        raise ValueError("labels: image %d, row %d: a label after a padding (all-zero) row; YOLOX "
                         "uses only the first %d rows of this image, so the labels must come "
                         "before the padding (row = %s)" % (b, r, int(nlabel[b]), lab[b, r].tolist()))
    used = lab[mask]                  # [T, 5], image-major
    where = mask.nonzero()            # [T, 2]: (image, row)

    def fail(i, what):
        b, r = (int(v) for v in where[i])
        raise ValueError("labels: image %d, row %d: %s (row = %s)"
                         % (b, r, what, lab[b, r].tolist()))

    cls = used[:, 0]
    if lab.is_floating_point():
        bad = (cls != torch.round(cls)).nonzero()
        if len(bad):
            i = int(bad[0])
            fail(i, "class %r is not an integer" % float(cls[i]))
    bad = ((cls < 0) | (cls >= num_classes)).nonzero()
    if len(bad):
        i = int(bad[0])
        v = cls[i].item()
        fail(i, "class id %s outside [0, %d)" % (int(v) if v == int(v) else v, num_classes))
    boxes = used[:, 1:5].to(torch.float32).contiguous()
    check_boxes(boxes, fail)
    classes = cls.to(torch.int64).to(torch.int32).contiguous()
    num_gt = nlabel.to(torch.int32).contiguous()
    return num_gt, classes, boxes


def check_boxes(boxes, fail):
    """The C library's rule for a gt box (src/validate.c, check_label), in
    the same float32 operations, so the drop-in refuses exactly what C
    would: finite values with w > 0 and h > 0, corners cx -+ w/2, cy -+ h/2
    and the area w*h finite, and the area not 0 (an underflow: its IoU with
    a prediction of area 0 would be 0/0). fail(i, what) raises for row i."""
    cx, cy, w, h = boxes.unbind(1)
    ok = torch.isfinite(boxes).all(dim=1) & (w > 0) & (h > 0)
    bad = (~ok).nonzero()
    if len(bad):
        fail(int(bad[0]), "box (cx, cy, w, h) must be finite with w > 0 and h > 0 in float32")
    area = w * h
    corners = torch.stack((cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2), dim=1)
    bad = (~(torch.isfinite(corners).all(dim=1) & torch.isfinite(area))).nonzero()
    if len(bad):
        fail(int(bad[0]), "box has a corner or an area w*h beyond float32's range")
    bad = (area == 0).nonzero()
    if len(bad):
        i = int(bad[0])
        fail(i, "box area w*h = %g underflows float32 to 0 (its smallest positive value is 2^-149)"
             % (float(w[i]) * float(h[i])))
