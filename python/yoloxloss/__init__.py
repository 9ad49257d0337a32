"""yoloxloss: the YOLOX training loss and its gradients on the CPU, for PyTorch.

A drop-in for ``YOLOXHead.get_losses`` (Megvii YOLOX): SimOTA label
assignment plus the IoU, objectness, class and optional L1 terms, computed by
the C library ``libyoloxloss.so`` through ctypes. Gradients reach the raw head
outputs through ``torch.autograd``.

Example::

    import torch, yoloxloss

    B, C = 2, 80
    outputs = [torch.randn(B, 5 + C, 640 // s, 640 // s, requires_grad=True)
               for s in (8, 16, 32)]                 # YOLOX's fused reg|obj|cls
    labels = torch.zeros(B, 50, 5)                   # padded (class, cx, cy, w, h)
    labels[0, 0] = torch.tensor([3., 320., 320., 100., 80.])
    total, iou, obj, cls, l1, fg_ratio = yoloxloss.yolox_loss(outputs, labels)
    total.backward()                                 # fills outputs[l].grad

    matched = yoloxloss.yolox_assign(outputs, labels)  # [B, 8400], -1 = background

Split heads are accepted too: give each level as a ``(reg [B,4,H,W],
obj [B,1,H,W], cls [B,C,H,W])`` triple instead of one ``[B,5+C,H,W]`` tensor.

Install: ``python3 -m pip install --no-build-isolation ./python`` from the
repository root builds the C library with CMake and puts it inside the
package (``$YOLOXLOSS_LIB`` still overrides it). For a Megvii YOLOX model,
``import yoloxloss.yolox; yoloxloss.yolox.use_library(model)`` switches its
head's training loss to this library in one line (see ``yoloxloss.yolox``).

Notes:

* Head outputs must be CPU tensors (``ValueError`` otherwise; call ``.cpu()``
  on them, autograd carries the gradient back to the device). Contiguous
  float32, float16 and bfloat16 tensors are used in place, without a copy,
  and their gradients come back in their dtype (mixed precision: the loss
  is computed in float32 on the exactly converted values, each gradient
  element is rounded to nearest-even into the dtype; see
  docs/algorithm.md). Other dtypes (float64), layouts, and split levels
  whose three tensors differ in dtype are copied to contiguous float32 and
  their gradients cast back. The loss values are float32 tensors.
* Labels follow YOLOX: ``[B, M, 5]``, image ``b`` uses its first ``n_b`` rows,
  ``n_b`` = number of rows whose sum is > 0 (YOLOX's rule, the default).
  Classes must hold integers in ``[0, C)`` and boxes must be finite with
  ``w, h > 0``; any non-finite value anywhere in ``labels`` is rejected
  (``ValueError`` naming image and row), and so is a label after a padding
  row (YOLOX would read the padding row as a box and drop the label).
  YOLOX's rule does not count a real label whose row sums to <= 0 (class 0,
  centre left of or above the image), which drops the image's last label
  silently: pass ``num_gt=`` (each image's count;
  its rows past the count are not read) when labels can hold such boxes, or
  give a list of B per-image ``[n_b, 5]`` tensors (MMDetection's form),
  whose rows are all used.
* ``image_losses=True`` adds each image's terms (``ImageLosses``), divided by
  the batch's normaliser so that they add up to the batch's, for logging and
  hard-image mining.
* Exact cost ties in SimOTA are broken by lowest anchor index (YOLOX's
  ``torch.topk`` breaks them arbitrarily). The objectness target is SimOTA's
  foreground set and the box loss is YOLOX's IoU loss unless ``iou_loss``
  names another (``IOU_LOSSES``).
* ``preset="mmdet"`` reproduces MMDetection 3.x's YOLOX loss instead of
  Megvii's (``PRESETS``; docs/differences.md lists what still differs).
* Calls from several threads at once are safe: each forward/backward pair
  owns a C context, taken from a small per-configuration pool and returned
  after backward (or when the autograd graph is freed).
* The gradients of one backward are views of one pooled block of memory,
  reused only once every tensor sharing it is freed (so a reused block is
  fully rewritten and never still readable elsewhere) and advised as
  huge-page memory: no page faults per 4 KiB in steady state.
  ``release_gradient_memory()`` unmaps the idle blocks.
"""

import collections

import torch

from . import _autograd, _distributed, _grad_memory, _inference, _inputs, _options, _run
from . import _capi as _c
from ._options import ASSIGNERS, IOU_LOSSES, PRESETS

__all__ = [
    "yolox_loss",
    "yolox_assign",
    "yolox_assign_details",
    "Assignment",
    "ImageLosses",
    "library_path",
    "version",
    "VERSION",
    "ASSIGNERS",
    "IOU_LOSSES",
    "release_gradient_memory",
    "PRESETS",
    "yolox_decode",
    "yolox_detect",
]

VERSION = (_c.VERSION_MAJOR, _c.VERSION_MINOR, _c.VERSION_PATCH)


def library_path():
    """Path of the loaded libyoloxloss.so."""
    return _c.lib_path


def version():
    """Version of the loaded library, as "major.minor.patch" (import checks
    that it is the version this binding was written for)."""
    return _c.version_string().decode()


def yolox_loss(outputs, labels, strides=(8, 16, 32), assigner=None, iou_loss=None,
               use_l1=False, reg_weight=None, obj_weight=None, cls_weight=None, l1_weight=None,
               num_threads=0, *, normalizer=None, check_finite=None, process_group=None,
               preset="yolox", cost_iou_eps=None, cost_penalty=None, num_gt=None,
               image_losses=False):
    """The YOLOX loss, as ``YOLOXHead.get_losses`` returns it.

    Args:
        outputs: list with one entry per level (in stride order): a fused
            ``[B, 5+C, H, W]`` tensor (channels reg 4 | obj 1 | cls C), or a
            ``(reg [B,4,H,W], obj [B,1,H,W], cls [B,C,H,W])`` triple. Raw head
            outputs, CPU, floating point; float16 and bfloat16 are read in
            place (e.g. under ``torch.autocast("cpu", dtype=torch.bfloat16)``).
        labels: YOLOX's padded ``[B, M, 5]`` tensor of (class, cx, cy, w, h)
            in pixels; image b uses its first n_b rows: ``num_gt[b]`` when
            ``num_gt`` is given, else YOLOX's rule, n_b = the number of rows
            whose sum is > 0. Or a list of B per-image tensors ``[n_b, 5]``
            (MMDetection's per-image form), every row used.
        strides: stride of each level in pixels.
        assigner: ``"yolox"`` (current YOLOX) or ``"yolox-legacy"`` (YOLOX
            0.1-0.3, MMDetection's SimOTAAssigner). None: the preset's
            (``"yolox"``; ``"yolox-legacy"`` for ``preset="mmdet"``).
        iou_loss: the box loss of a foreground anchor (docs/algorithm.md,
            "Box losses"): ``"iou"`` (1 - IoU^2, YOLOX's), ``"iou-linear"``
            (1 - IoU), ``"giou"``, ``"diou"``, ``"ciou"`` (alpha held constant
            in the gradient, as MMDetection does), ``"eiou"`` (Zhang et al.,
            without the focal weight) or ``"siou"``. None: the preset's
            (``"iou"`` for both presets).
        use_l1: add the L1 term on the raw reg outputs.
        reg_weight, obj_weight, cls_weight, l1_weight: weights in total.
            None: the preset's (5, 1, 1, 1 for both presets).
        num_threads: OpenMP threads of the C library; 0 = OpenMP's default.
        normalizer: keyword only; replaces N = max(num_fg, 1). None keeps N;
            a number > 0 replaces it. ``"mean_over_ranks"`` is for
            data-parallel training (``DistributedDataParallel``, one process
            per rank, each with its share of the batch): after this rank's
            assignment, num_fg is all-reduced (summed) over ``process_group``
            and every rank divides by max(sum / group size, 1), MMDetection's
            normaliser, before any loss value is returned; backward uses it
            too. DDP's averaged gradient is then that of the whole batch's
            loss on one process (when the batch has at least as many
            foreground anchors as ranks), and the mean over the ranks of the
            returned terms is that loss. A collective: every rank of the
            group must call ``yolox_loss`` the same number of times; if one
            rank fails, the others wait in the all-reduce until the launcher
            (``torch.distributed.run``) ends them. A forward redone for a
            second backward (``retain_graph``) reuses the value without
            another all-reduce. With the NCCL backend the one-number
            all-reduce runs on the current CUDA device.
        check_finite: keyword only; scan the head outputs for NaN/Inf (and
            raise ValueError naming the first). None = the library's default.
        process_group: keyword only, only with ``normalizer="mean_over_ranks"``:
            the ``torch.distributed`` group to average over; None = the
            default group.
        preset: keyword only; whose YOLOX loss to reproduce, ``"yolox"``
            (Megvii YOLOX, the default) or ``"mmdet"`` (MMDetection 3.x's
            ``YOLOXHead.loss_by_feat`` with its ``SimOTAAssigner``: the legacy
            candidate rule, radius 2.5, cost eps 1e-7 and penalty 1e5, and its
            float32 arithmetic of decoding and IoUs; docs/differences.md).
            The arguments above that are left None take the preset's values;
            given ones override it. MMDetection divides by the mean num_fg over
            data-parallel ranks: with ``preset="mmdet"`` and ``normalizer``
            left None, that is ``"mean_over_ranks"`` whenever
            torch.distributed is initialised, and max(num_fg, 1) otherwise,
            as MMDetection's ``reduce_mean`` does.
        cost_iou_eps: keyword only; the eps of SimOTA's -log(IoU + eps)
            (float32, > 0). None: the preset's (1e-8 YOLOX, 1e-7 MMDetection).
        cost_penalty: keyword only; the cost added to a candidate outside the
            centre (and box) test, >= 0; 0 means the assigner's own (1e6 for
            ``"yolox"``, 1e5 for ``"yolox-legacy"``). None: the preset's.
        num_gt: keyword only, with a padded ``labels`` tensor: each image's
            label count (B integers: a list, or an integer tensor ``[B]``),
            its first ``num_gt[b]`` rows used, the rest not read. YOLOX's rule
            (the default) does not count a real label whose row sums to <= 0
            (class 0 with a centre left of or above the image, e.g. after a
            crop), so the image's last label is dropped silently; give
            num_gt when labels may hold such boxes.
        image_losses: keyword only; also return each image's terms (see
            Returns), for logging and hard-image mining.

    Returns:
        ``(total, reg_weight * loss_iou, obj_weight * loss_obj,
        cls_weight * loss_cls, l1_weight * loss_l1, fg_ratio)``, 0-dim
        float32 tensors; ``total.backward()`` fills the head outputs' grads.
        ``fg_ratio = max(num_fg, 1) / max(num_gt, 1)`` has no gradient.
        With ``image_losses=True`` a seventh entry, an ``ImageLosses`` of
        ``[B]`` tensors without gradient: each image's terms divided by the
        batch's normaliser (after ``normalizer``), so that they add up to the
        batch's terms to float32 rounding.

    Raises:
        ValueError: bad shapes, labels, boxes, options, or non-CPU tensors;
            a ``process_group`` this process is not in, or one given without
            ``normalizer="mean_over_ranks"``.
        TypeError: a ``process_group`` that is not a process group.
        MemoryError: the C workspace could not be allocated.
        RuntimeError: ``normalizer="mean_over_ranks"`` without
            torch.distributed or before ``init_process_group``; any other
            library failure.
    """
    inputs, tensors = _inputs.parse(outputs, labels, strides, num_gt)
    options = _options.LossOptions(
        num_classes=inputs.num_classes, strides=inputs.strides, assigner=assigner,
        iou_loss=iou_loss, use_l1=use_l1, reg_weight=reg_weight, obj_weight=obj_weight,
        cls_weight=cls_weight, l1_weight=l1_weight, num_threads=num_threads,
        check_finite=check_finite, preset=preset, cost_iou_eps=cost_iou_eps,
        cost_penalty=cost_penalty)
    if normalizer is None and options.preset == "mmdet" and _distributed.is_initialized():
        normalizer = "mean_over_ranks"
    run = _run.Run(inputs, options, normalizer=_options.parse_normalizer(normalizer, process_group),
                   image_losses=bool(image_losses))
    losses = _autograd.losses(run, tensors)
    if not image_losses:
        return losses
    return losses + (image_loss_tensors(run.image_rows),)


ImageLosses = collections.namedtuple(
    "ImageLosses", ["total", "iou", "obj", "cls", "l1", "fg_ratio", "num_fg", "num_gt"])
ImageLosses.__doc__ = """Each image's loss terms, ``yolox_loss(..., image_losses=True)``'s last entry.

total, iou, obj, cls, l1: float32 [B], image b's weighted terms divided by the
    batch's normaliser: they add up to the batch's terms (to float32 rounding).
fg_ratio: float32 [B], max(num_fg, 1) / max(num_gt, 1) of each image.
num_fg, num_gt: int64 [B], each image's foreground anchors and labels.
No gradient flows through them."""


def image_loss_tensors(rows):
    """``_capi.Losses`` [B] -> ImageLosses."""
    def column(name, dtype):
        return torch.tensor([getattr(r, name) for r in rows], dtype=dtype)
    floats = [column(name, torch.float32) for name in ImageLosses._fields[:6]]
    return ImageLosses(*floats, column("num_fg", torch.int64), column("num_gt", torch.int64))


Assignment = collections.namedtuple("Assignment", ["matched", "pred_iou", "dynamic_k"])
Assignment.__doc__ = """SimOTA's assignment of one batch.

matched: int64 [B, A], gt row (within its image's labels) of each anchor, -1 = background.
pred_iou: float32 [B, A], IoU of each fg anchor's decoded box with its gt, 0 for background.
dynamic_k: list of B int64 tensors [n_b], SimOTA's k of each gt of each image.
Anchors are in YOLOX's order: level-major, then i * W + j."""


def yolox_assign_details(outputs, labels, strides=(8, 16, 32), assigner=None,
                         num_threads=0, *, preset="yolox", cost_iou_eps=None, cost_penalty=None,
                         num_gt=None):
    """SimOTA's assignment (matched gt, pred IoU, dynamic k); see ``Assignment``.
    Same inputs as ``yolox_loss`` (``preset``, ``cost_iou_eps``,
    ``cost_penalty``, ``num_gt`` and per-image label lists included); no
    gradient."""
    with torch.no_grad():
        inputs, tensors = _inputs.parse(outputs, labels, strides, num_gt)
        # The loss terms do not change the assignment: their defaults pick the pool.
        options = _options.LossOptions(num_classes=inputs.num_classes, strides=inputs.strides,
                                       assigner=assigner, num_threads=num_threads, preset=preset,
                                       cost_iou_eps=cost_iou_eps, cost_penalty=cost_penalty)
        run = _run.Run(inputs, options)
        try:
            run.forward(tensors)
            matched, pred_iou, dynamic_k = run.assignment()
        finally:
            run.release()
    counts = [int(n) for n in inputs.num_gt]
    return Assignment(matched.to(torch.int64), pred_iou,
                      list(dynamic_k.to(torch.int64).split(counts)))


def yolox_assign(outputs, labels, strides=(8, 16, 32), assigner=None, num_threads=0, *,
                 preset="yolox", cost_iou_eps=None, cost_penalty=None, num_gt=None):
    """int64 ``[B, A]``: the gt row matched to each anchor (-1 = background),
    anchors in YOLOX's order (level-major, then i * W + j). Labels as for
    ``yolox_loss`` (``num_gt``, per-image lists)."""
    return yolox_assign_details(outputs, labels, strides, assigner, num_threads, preset=preset,
                                cost_iou_eps=cost_iou_eps, cost_penalty=cost_penalty,
                                num_gt=num_gt).matched


def release_gradient_memory():
    """Unmap the idle gradient memory the drop-in keeps for reuse; returns
    the bytes released. Gradients still alive are not affected. The pool
    refills on the next backward; call this when training is over or the
    batch shapes change for good."""
    return _grad_memory.release_idle()


def yolox_decode(outputs, strides=(8, 16, 32), num_threads=0, *, preset="yolox", check_finite=None):
    """Every anchor's box and class scores, as YOLOX's eval forward and
    ``decode_outputs`` give them, from the raw head outputs (no gradient).

    Args:
        outputs, strides, num_threads, check_finite: as for ``yolox_loss``
            (fused or split levels, float32, float16 or bfloat16 read in
            place, computed in float32).
        preset: keyword only; ``"yolox"`` decodes x = (tx + j) s as Megvii
            YOLOX does, ``"mmdet"`` x = tx s + j s as MMDetection does.

    Returns:
        ``(boxes, scores)``: float32 ``[B, A, 4]`` (cx, cy, w, h in pixels:
        ``decode_outputs(...)[..., :4]``) and float32 ``[B, A, C]``,
        sigmoid(obj) * sigmoid(cls_c) (``decode_outputs(...)[..., 4:5] *
        decode_outputs(...)[..., 5:]``); anchors in YOLOX's order
        (level-major, then i * W + j). A probability may differ from
        ``torch.sigmoid``'s in its last bits, by at most 2 float32 ulps seen
        (docs/differences.md).
    """
    return _inference.decode(outputs, strides, num_threads, preset, check_finite)


def yolox_detect(outputs, strides=(8, 16, 32), conf_thre=0.7, nms_thre=0.45, class_agnostic=False,
                 max_detections=None, num_threads=0, *, preset="yolox", check_finite=None):
    """YOLOX's ``postprocess(decode_outputs(...), C, conf_thre, nms_thre,
    class_agnostic)`` from the raw head outputs, in C (no gradient).

    Keeps the anchors whose obj * class_conf >= conf_thre, then per class
    (or across classes with ``class_agnostic``) suppresses a box whose IoU
    with a higher-scored kept box is > nms_thre, as torchvision's
    ``batched_nms`` (``nms``) does; equal scores rank by lower anchor index.
    ``max_detections`` caps each image's list (None: no cap, as YOLOX).
    The other arguments are as for ``yolox_decode``.

    Returns:
        A list of B entries, as YOLOX's postprocess: None for an image with
        no detection, else a float32 ``[n, 7]`` tensor of rows (x1, y1, x2,
        y2, obj_conf, class_conf, class_pred), highest obj_conf * class_conf
        first. docs/differences.md says where the official code can differ.
    """
    return _inference.detect(outputs, strides, conf_thre, nms_thre, class_agnostic, max_detections,
                             num_threads, preset, check_finite)
