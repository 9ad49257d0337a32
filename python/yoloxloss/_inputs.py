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


def parse(outputs, labels, strides, num_gt=None):
    """Check outputs, labels (and num_gt, see parse_labels) and strides;
    -> (HeadInputs, flat tensor list)."""
    strides = normalize_strides(strides)
    tensors, levels, num_images, num_classes = parse_outputs(outputs, strides)
    num_gt, gt_classes, gt_boxes = parse_labels(labels, num_images, num_classes, num_gt)
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


def parse_labels(labels, num_images, num_classes, num_gt=None):
    """The labels of one call -> (num_gt int32 [B], classes int32 [T], boxes
    float32 [T, 4]), all contiguous.

    labels: YOLOX's padded [B, M, 5] tensor of (class, cx, cy, w, h) rows,
    image b using its first n_b rows: num_gt[b] when num_gt (B integers) is
    given, else YOLOX's rule, n_b = the number of rows whose sum is > 0. Or
    a list of B per-image tensors [n_b, 5] (MMDetection's per-image form),
    every row used."""
    if isinstance(labels, (list, tuple)) and labels and all(isinstance(t, torch.Tensor) for t in labels):
        if num_gt is not None:
            raise ValueError("num_gt is for a padded labels tensor; with a list of per-image "
                             "tensors each image's count is its tensor's length")
        lab, counts = per_image_labels(labels, num_images)
        return flatten_labels(lab, counts, num_classes, all_rows=False)
    lab = padded_labels(labels, num_images)
    if num_gt is not None:
        return flatten_labels(lab, parse_num_gt(num_gt, num_images, lab.shape[1]), num_classes,
                              all_rows=False)
    return flatten_labels(lab, yolox_counts(lab), num_classes, all_rows=True)


def check_label_dtype(t, name):
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError("%s must be a real numeric tensor, got %s" % (name, t.dtype))


def padded_labels(labels, num_images):
    """YOLOX's padded [B, M, 5] labels, detached, on the CPU."""
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    lab = labels.detach()
    if lab.device.type != "cpu":
        lab = lab.cpu()
    if lab.dim() != 3 or lab.shape[2] != 5:
        raise ValueError("labels must be [B, M, 5] (class, cx, cy, w, h), or a list of B per-image "
                         "tensors [n_b, 5], got shape %s" % (tuple(lab.shape),))
    if lab.shape[0] != num_images:
        raise ValueError("labels has %d images but the outputs have %d"
                         % (lab.shape[0], num_images))
    check_label_dtype(lab, "labels")
    return lab


def per_image_labels(labels, num_images):
    """B per-image [n_b, 5] tensors -> (padded [B, max n_b, 5] tensor of their
    promoted dtype, counts int64 [B])."""
    if len(labels) != num_images:
        raise ValueError("labels has %d per-image tensors but the outputs have %d images"
                         % (len(labels), num_images))
    dtype = None
    for b, t in enumerate(labels):
        name = "labels[%d]" % b
        if t.dim() != 2 or t.shape[1] != 5:
            raise ValueError("%s must be [n, 5] (class, cx, cy, w, h), got shape %s"
                             % (name, tuple(t.shape)))
        check_label_dtype(t, name)
        dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    counts = torch.tensor([int(t.shape[0]) for t in labels], dtype=torch.int64)
    lab = torch.zeros(num_images, int(counts.max()), 5, dtype=dtype)
    for b, t in enumerate(labels):
        lab[b, :t.shape[0]] = t.detach().cpu()
    return lab, counts


def parse_num_gt(num_gt, num_images, max_rows):
    """The caller's per-image counts -> int64 [B], each in [0, M]."""
    try:
        counts = torch.as_tensor(num_gt)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError("num_gt must be B integers (a list, or an integer tensor [B]): %s" % exc) from None
    if counts.dtype == torch.bool or counts.is_floating_point() or counts.is_complex():
        raise TypeError("num_gt must hold integers (a list, or an integer tensor [B]), got %s"
                        % counts.dtype)
    counts = counts.detach().cpu().to(torch.int64)
    if counts.dim() != 1 or counts.shape[0] != num_images:
        raise ValueError("num_gt must hold one count per image, %d, got shape %s"
                         % (num_images, tuple(counts.shape)))
    bad = ((counts < 0) | (counts > max_rows)).nonzero()
    if len(bad):
        b = int(bad[0])
        raise ValueError("num_gt[%d] is %d; it must be in [0, %d] (the rows of each image in labels)"
                         % (b, int(counts[b]), max_rows))
    return counts


def yolox_counts(lab):
    """YOLOX's n_b: the number of rows whose sum is > 0; the first n_b rows are used."""
    nlabel = (lab.sum(dim=2) > 0).sum(dim=1)
    # A label after a padding (all-zero) row: YOLOX would read the padding
    # row as a box and drop the label; refuse it instead. (A row whose sum
    # is <= 0 but is not all zero is a label YOLOX does not count; that
    # quirk is followed, as the reference check expects; num_gt avoids it.)
    after_pad = torch.cummax((lab == 0).all(dim=2).to(torch.int32), dim=1).values.bool()
    stray = ((lab.sum(dim=2) > 0) & after_pad).nonzero()
    if len(stray):
        b, r = (int(v) for v in stray[0])
        raise ValueError("labels: image %d, row %d: a label after a padding (all-zero) row; YOLOX "
                         "uses only the first %d rows of this image, so the labels must come "
                         "before the padding (row = %s)" % (b, r, int(nlabel[b]), lab[b, r].tolist()))
    return nlabel


def flatten_labels(lab, counts, num_classes, all_rows):
    """The first counts[b] rows of each image of a padded [B, M, 5] tensor,
    checked, as (num_gt int32 [B], classes int32 [T], boxes float32 [T, 4]).
    all_rows: non-finite values are refused in every row, not only the used
    ones (YOLOX's rule counts rows by their sums, which NaN would upset)."""
    rows = torch.arange(lab.shape[1])
    mask = rows[None, :] < counts[:, None]
    if lab.is_floating_point():
        finite = torch.isfinite(lab).all(dim=2)
        if not all_rows:
            finite |= ~mask
        if not bool(finite.all()):
            b, r = (int(v) for v in (~finite).nonzero()[0])
            raise ValueError("labels: image %d, row %d holds a non-finite value: %s"
                             % (b, r, lab[b, r].tolist()))
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
    num_gt = counts.to(torch.int32).contiguous()
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
