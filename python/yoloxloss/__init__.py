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

Notes:

* Head outputs must be CPU tensors (``ValueError`` otherwise; call ``.cpu()``
  on them, autograd carries the gradient back to the device). Contiguous
  float32 tensors are used in place, without a copy; other dtypes or layouts
  are copied to contiguous float32 and their gradients cast back.
* Labels follow YOLOX: ``[B, M, 5]``, image ``b`` uses its first ``n_b`` rows,
  ``n_b`` = number of rows whose sum is > 0. Classes must hold integers in
  ``[0, C)`` and boxes must be finite with ``w, h > 0``; any non-finite value
  anywhere in ``labels`` is rejected (``ValueError`` naming image and row),
  and so is a label after a padding row (YOLOX would read the padding row
  as a box and drop the label).
* Exact cost ties in SimOTA are broken by lowest anchor index (YOLOX's
  ``torch.topk`` breaks them arbitrarily). The objectness target is SimOTA's
  foreground set and the box loss is YOLOX's IoU loss.
* Calls from several threads at once are safe: each forward/backward pair
  owns a C context, taken from a small per-configuration pool and returned
  after backward (or when the autograd graph is freed).
"""

import collections
import ctypes
import threading

import torch
from torch.autograd.function import once_differentiable

from . import _capi as _c

__all__ = [
    "yolox_loss",
    "yolox_assign",
    "yolox_assign_details",
    "Assignment",
    "library_path",
    "version",
    "VERSION",
    "ASSIGNERS",
    "IOU_LOSSES",
]

VERSION = (_c.VERSION_MAJOR, _c.VERSION_MINOR, _c.VERSION_PATCH)
ASSIGNERS = {"yolox": _c.ASSIGNER_YOLOX, "yolox-legacy": _c.ASSIGNER_YOLOX_LEGACY}
IOU_LOSSES = {"iou": _c.IOU_LOSS_IOU, "giou": _c.IOU_LOSS_GIOU}

# Pool sizes: configurations kept (LRU) and idle contexts kept per configuration.
_MAX_CONFIGS = 8
_MAX_IDLE_PER_CONFIG = 4


def library_path():
    """Path of the loaded libyoloxloss.so."""
    return _c.lib_path


def version():
    """Version of the loaded library, as "major.minor.patch" (import checks
    that it is the version this binding was written for)."""
    return _c.version_string().decode()


# --- errors ------------------------------------------------------------------

_VALUE_STATUSES = {
    _c.ERR_INVALID_CONFIG, _c.ERR_INVALID_SHAPE, _c.ERR_SIZE_OVERFLOW,
    _c.ERR_INVALID_LABEL, _c.ERR_INVALID_BOX, _c.ERR_NONFINITE_INPUT, _c.ERR_INVALID_ARGUMENT,
}


def _raise_status(status, where, context=None, detail=None):
    sentence = _c.status_string(status)
    sentence = sentence.decode("utf-8", "replace") if sentence else "unknown status"
    if detail is None and context is not None and context._ptr:
        raw = _c.last_error(context._ptr)
        detail = raw.decode("utf-8", "replace") if raw else ""
    name = _c.STATUS_NAMES.get(status, "status %d" % status)
    msg = "%s: %s" % (where, detail) if detail else "%s: %s" % (where, sentence)
    msg += " [%s]" % name
    if status in _VALUE_STATUSES:
        raise ValueError(msg)
    if status == _c.ERR_OUT_OF_MEMORY:
        raise MemoryError(msg)
    raise RuntimeError(msg)


# --- contexts and their pools ------------------------------------------------

class _Context:
    """Owns one yoloxloss_context*. Used by one thread at a time."""

    created = 0  # contexts ever created (for tests / diagnostics)

    def __init__(self, cfg):
        ptr = _c.ContextPtr()
        status = _c.create(ctypes.byref(cfg), ctypes.byref(ptr))
        if status != _c.OK:
            _raise_status(status, "yoloxloss_create")
        self._ptr = ptr
        self._destroy = _c.destroy  # kept for use during interpreter shutdown
        _Context.created += 1

    def close(self):
        ptr, self._ptr = self._ptr, None
        if ptr:
            self._destroy(ptr)

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class _Pool:
    """Idle contexts of one configuration. acquire/release are lock-free
    (deque.append/pop are atomic), so release may run from __del__."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.idle = collections.deque()
        self.closed = False

    def acquire(self):
        try:
            return self.idle.pop()
        except IndexError:
            return _Context(self.cfg)

    def release(self, context):
        if self.closed or len(self.idle) >= _MAX_IDLE_PER_CONFIG:
            context.close()
        else:
            self.idle.append(context)

    def close(self):
        self.closed = True
        while True:
            try:
                self.idle.pop().close()
            except IndexError:
                break


_pools = collections.OrderedDict()
_pools_lock = threading.Lock()


def _make_config(key):
    (num_classes, strides, assigner, iou_loss, use_l1, reg_w, obj_w, cls_w, l1_w,
     num_threads, check_finite) = key
    cfg = _c.Config()
    _c.config_defaults(ctypes.byref(cfg))
    cfg.num_classes = num_classes
    cfg.num_levels = len(strides)
    # ctypes keeps the array alive with cfg; create() copies it
    cfg.strides = (ctypes.c_float * len(strides))(*strides)
    cfg.assigner = assigner
    cfg.iou_loss = iou_loss
    cfg.use_l1 = 1 if use_l1 else 0
    cfg.reg_weight = reg_w
    cfg.obj_weight = obj_w
    cfg.cls_weight = cls_w
    cfg.l1_weight = l1_w
    cfg.num_threads = num_threads
    if check_finite is not None:
        cfg.check_finite = 1 if check_finite else 0
    msg = ctypes.create_string_buffer(512)
    status = _c.config_validate(ctypes.byref(cfg), msg, len(msg))
    if status != _c.OK:
        _raise_status(status, "yoloxloss config", detail=msg.value.decode("utf-8", "replace"))
    return cfg


def _get_pool(key):
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            _pools.move_to_end(key)
            return pool
    cfg = _make_config(key)  # may raise ValueError; outside the lock
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = _Pool(cfg)
            while len(_pools) > _MAX_CONFIGS:
                _, old = _pools.popitem(last=False)
                old.close()  # contexts in use are destroyed when released
        else:
            _pools.move_to_end(key)
        return pool


# --- input parsing -----------------------------------------------------------

class _Plan:
    """Everything one call needs besides the head-output tensors."""

    __slots__ = ("pool", "levels", "num_images", "num_anchors", "num_gt",
                 "gt_classes", "gt_boxes", "normalizer")


def _check_tensor(t, name):
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


def _parse_outputs(outputs, strides):
    """-> (flat tensor list, [(H, W, fused, first index)], B, C)"""
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
            _check_tensor(level, name)
            if level.shape[1] < 6:
                raise ValueError("%s has %d channels; a fused level needs 5 + C >= 6 "
                                 "(reg 4 | obj 1 | cls C)" % (name, level.shape[1]))
            check_batch(level, name)
            check_classes(level.shape[1] - 5, name)
            levels.append((int(level.shape[2]), int(level.shape[3]), True, len(tensors)))
            tensors.append(level)
        elif isinstance(level, (tuple, list)) and len(level) == 3:
            names = ["outputs[%d][%d] (%s)" % (l, i, n) for i, n in enumerate(("reg", "obj", "cls"))]
            for t, name in zip(level, names):
                _check_tensor(t, name)
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
            levels.append((int(reg.shape[2]), int(reg.shape[3]), False, len(tensors)))
            tensors.extend(level)
        else:
            raise TypeError("outputs[%d] must be a tensor [B, 5+C, H, W] or a (reg, obj, cls) "
                            "triple, got %s" % (l, type(level).__name__))
    return tensors, levels, int(batch), int(num_classes)


def _parse_labels(labels, num_images, num_classes):
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
    ok = torch.isfinite(boxes).all(dim=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    bad = (~ok).nonzero()
    if len(bad):
        fail(int(bad[0]), "box (cx, cy, w, h) must be finite with w > 0 and h > 0 in float32")
    classes = cls.to(torch.int64).to(torch.int32).contiguous()
    num_gt = nlabel.to(torch.int32).contiguous()
    return num_gt, classes, boxes


def _parse_choice(value, table, what):
    if isinstance(value, str):
        key = value.lower().replace("_", "-")
        if key in table:
            return table[key]
    raise ValueError("%s must be one of %s, got %r" % (what, sorted(table), value))


def _make_plan(outputs, labels, strides, assigner, iou_loss, use_l1, reg_weight, obj_weight,
               cls_weight, l1_weight, num_threads, check_finite, normalizer):
    try:
        strides = tuple(float(s) for s in strides)
    except TypeError:
        raise TypeError("strides must be a sequence of numbers, got %r" % (strides,)) from None
    tensors, levels, num_images, num_classes = _parse_outputs(outputs, strides)
    num_gt, classes, boxes = _parse_labels(labels, num_images, num_classes)
    key = (num_classes, strides, _parse_choice(assigner, ASSIGNERS, "assigner"),
           _parse_choice(iou_loss, IOU_LOSSES, "iou_loss"), bool(use_l1),
           float(reg_weight), float(obj_weight), float(cls_weight), float(l1_weight),
           int(num_threads), None if check_finite is None else bool(check_finite))
    if normalizer is not None:
        normalizer = float(normalizer)
        if not (normalizer > 0 and normalizer != float("inf")):
            raise ValueError("normalizer must be finite and > 0, got %r" % normalizer)
    plan = _Plan()
    plan.pool = _get_pool(key)
    plan.levels = levels
    plan.num_images = num_images
    plan.num_anchors = sum(h * w for h, w, _, _ in levels)
    plan.num_gt = num_gt
    plan.gt_classes = classes
    plan.gt_boxes = boxes
    plan.normalizer = normalizer
    return plan, tensors


def _prepare(t):
    """A contiguous float32 view of t's data; copies only when needed."""
    x = t.detach()
    if x.dtype != torch.float32:
        x = x.to(torch.float32)
    if not x.is_contiguous():
        x = x.contiguous()
    return x


# --- one forward/backward pair -----------------------------------------------

class _Run:
    """One application of the loss: owns a C context from forward until its
    backward has run (or until it is garbage-collected)."""

    def __init__(self, plan):
        self.plan = plan
        self.context = None
        self.keep = None  # (prepared tensors, C level array): must outlive the context's use
        self.lock = threading.Lock()

    def _forward_locked(self, prepared):
        plan = self.plan
        context = plan.pool.acquire()
        try:
            levels = (_c.Level * len(plan.levels))()
            for lv, (h, w, fused, i) in zip(levels, plan.levels):
                lv.height, lv.width = h, w
                if fused:
                    lv.fused = _c.float_ptr(prepared[i].data_ptr())
                else:
                    lv.reg = _c.float_ptr(prepared[i].data_ptr())
                    lv.obj = _c.float_ptr(prepared[i + 1].data_ptr())
                    lv.cls = _c.float_ptr(prepared[i + 2].data_ptr())
            batch = _c.Batch()
            batch.num_images = plan.num_images
            batch.levels = ctypes.cast(levels, ctypes.POINTER(_c.Level))
            batch.num_gt = _c.int32_ptr(plan.num_gt.data_ptr())
            if plan.gt_classes.numel():
                batch.gt_classes = _c.int32_ptr(plan.gt_classes.data_ptr())
                batch.gt_boxes = _c.float_ptr(plan.gt_boxes.data_ptr())
            losses = _c.Losses()
            status = _c.forward(context._ptr, ctypes.byref(batch), ctypes.byref(losses))
            if status != _c.OK:
                _raise_status(status, "yoloxloss_forward", context)
            if plan.normalizer is not None:
                status = _c.renormalize(context._ptr, plan.normalizer, ctypes.byref(losses))
                if status != _c.OK:
                    _raise_status(status, "yoloxloss_renormalize", context)
        except BaseException:
            plan.pool.release(context)
            raise
        self.context = context
        self.keep = (prepared, levels)
        return losses

    def forward(self, prepared):
        with self.lock:
            return self._forward_locked(prepared)

    def _release_locked(self):
        context, self.context, self.keep = self.context, None, None
        if context is not None:
            self.plan.pool.release(context)

    def release(self):
        with self.lock:
            self._release_locked()

    def assignment(self):
        """(matched int32 [B, A], pred_iou float32 [B, A], dynamic_k int32 [T])"""
        with self.lock:
            plan = self.plan
            n = int(_c.num_anchors(self.context._ptr))
            if n != plan.num_anchors:
                raise RuntimeError("yoloxloss_num_anchors returned %d, expected %d"
                                   % (n, plan.num_anchors))
            matched = torch.empty(plan.num_images, n, dtype=torch.int32)
            pred_iou = torch.empty(plan.num_images, n, dtype=torch.float32)
            dynamic_k = torch.empty(plan.gt_classes.numel(), dtype=torch.int32)
            status = _c.get_assignment(
                self.context._ptr, _c.int32_ptr(matched.data_ptr()),
                _c.float_ptr(pred_iou.data_ptr()),
                _c.int32_ptr(dynamic_k.data_ptr()) if dynamic_k.numel() else _c.int32_ptr(0))
            if status != _c.OK:
                _raise_status(status, "yoloxloss_get_assignment", self.context)
            return matched, pred_iou, dynamic_k

    def backward(self, saved, upstream):
        """Gradients (contiguous float32, one per input tensor) for upstream."""
        with self.lock:
            if self.context is None:
                # A second backward through a retained graph: the context went
                # back to the pool after the first one. Redo the (deterministic)
                # forward from the saved inputs.
                self._forward_locked([_prepare(t) for t in saved])
            try:
                prepared = self.keep[0]
                grads = [torch.empty(p.shape, dtype=torch.float32) for p in prepared]
                arr = (_c.LevelGrad * len(self.plan.levels))()
                for lg, (_, _, fused, i) in zip(arr, self.plan.levels):
                    if fused:
                        lg.fused = _c.float_ptr(grads[i].data_ptr())
                    else:
                        lg.reg = _c.float_ptr(grads[i].data_ptr())
                        lg.obj = _c.float_ptr(grads[i + 1].data_ptr())
                        lg.cls = _c.float_ptr(grads[i + 2].data_ptr())
                status = _c.backward(self.context._ptr, arr, ctypes.byref(upstream), 0)
                if status != _c.OK:
                    _raise_status(status, "yoloxloss_backward", self.context)
            finally:
                self._release_locked()
            return grads

    def __del__(self):
        try:
            context, self.context, self.keep = self.context, None, None
            if context is not None:
                self.plan.pool.release(context)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _loss_tensors(losses):
    f = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    return (f(losses.total), f(losses.iou), f(losses.obj), f(losses.cls), f(losses.l1),
            f(losses.fg_ratio))


class _YoloxLossFunction(torch.autograd.Function):
    """apply(plan, *head_tensors) -> (total, iou, obj, cls, l1, fg_ratio)"""

    @staticmethod
    def forward(ctx, plan, *tensors):
        ctx.set_materialize_grads(False)
        run = _Run(plan)
        losses = run.forward([_prepare(t) for t in tensors])
        ctx.run = run
        ctx.save_for_backward(*tensors)  # also catches in-place edits before backward
        out = _loss_tensors(losses)
        ctx.mark_non_differentiable(out[5])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_total, g_iou, g_obj, g_cls, g_l1, g_ratio):
        saved = ctx.saved_tensors
        up = _c.Upstream(*(0.0 if g is None else float(g) for g in
                           (g_total, g_iou, g_obj, g_cls, g_l1)))
        grads = ctx.run.backward(saved, up)
        result = [None]
        for t, g, need in zip(saved, grads, ctx.needs_input_grad[1:]):
            if not need:
                result.append(None)
            else:
                result.append(g if g.dtype == t.dtype else g.to(t.dtype))
        return tuple(result)


# --- public API --------------------------------------------------------------

def yolox_loss(outputs, labels, strides=(8, 16, 32), assigner="yolox", iou_loss="iou",
               use_l1=False, reg_weight=5.0, obj_weight=1.0, cls_weight=1.0, l1_weight=1.0,
               num_threads=0, *, normalizer=None, check_finite=None):
    """The YOLOX loss, as ``YOLOXHead.get_losses`` returns it.

    Args:
        outputs: list with one entry per level (in stride order): a fused
            ``[B, 5+C, H, W]`` tensor (channels reg 4 | obj 1 | cls C), or a
            ``(reg [B,4,H,W], obj [B,1,H,W], cls [B,C,H,W])`` triple. Raw head
            outputs, CPU, floating point.
        labels: YOLOX's padded ``[B, M, 5]`` tensor of (class, cx, cy, w, h)
            in pixels; image b uses its first n_b rows, n_b = rows with sum > 0.
        strides: stride of each level in pixels.
        assigner: ``"yolox"`` (current YOLOX) or ``"yolox-legacy"`` (YOLOX
            0.1-0.3, MMDetection's SimOTAAssigner).
        iou_loss: ``"iou"`` (1 - IoU^2, YOLOX's) or ``"giou"``.
        use_l1: add the L1 term on the raw reg outputs.
        reg_weight, obj_weight, cls_weight, l1_weight: weights in total.
        num_threads: OpenMP threads of the C library; 0 = OpenMP's default.
        normalizer: keyword only; replaces N = max(num_fg, 1) (e.g. the mean
            num_fg across data-parallel ranks). None keeps N.
        check_finite: keyword only; scan the head outputs for NaN/Inf (and
            raise ValueError naming the first). None = the library's default.

    Returns:
        ``(total, reg_weight * loss_iou, obj_weight * loss_obj,
        cls_weight * loss_cls, l1_weight * loss_l1, fg_ratio)``, 0-dim
        float32 tensors; ``total.backward()`` fills the head outputs' grads.
        ``fg_ratio = max(num_fg, 1) / max(num_gt, 1)`` has no gradient.

    Raises:
        ValueError: bad shapes, labels, boxes, options, or non-CPU tensors.
        MemoryError: the C workspace could not be allocated.
        RuntimeError: any other library failure.
    """
    plan, tensors = _make_plan(outputs, labels, strides, assigner, iou_loss, use_l1,
                               reg_weight, obj_weight, cls_weight, l1_weight, num_threads,
                               check_finite, normalizer)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _YoloxLossFunction.apply(plan, *tensors)
    run = _Run(plan)  # no backward will come: give the context back at once
    try:
        losses = run.forward([_prepare(t) for t in tensors])
    finally:
        run.release()
    return _loss_tensors(losses)


Assignment = collections.namedtuple("Assignment", ["matched", "pred_iou", "dynamic_k"])
Assignment.__doc__ = """SimOTA's assignment of one batch.

matched: int64 [B, A], gt row (within its image's labels) of each anchor, -1 = background.
pred_iou: float32 [B, A], IoU of each fg anchor's decoded box with its gt, 0 for background.
dynamic_k: list of B int64 tensors [n_b], SimOTA's k of each gt of each image.
Anchors are in YOLOX's order: level-major, then i * W + j."""


def yolox_assign_details(outputs, labels, strides=(8, 16, 32), assigner="yolox",
                         num_threads=0):
    """SimOTA's assignment (matched gt, pred IoU, dynamic k); see ``Assignment``.
    Same inputs as ``yolox_loss``; no gradient."""
    with torch.no_grad():
        plan, tensors = _make_plan(outputs, labels, strides, assigner, "iou", False,
                                   5.0, 1.0, 1.0, 1.0, num_threads, None, None)
        run = _Run(plan)
        try:
            run.forward([_prepare(t) for t in tensors])
            matched, pred_iou, dynamic_k = run.assignment()
        finally:
            run.release()
    counts = [int(n) for n in plan.num_gt]
    return Assignment(matched.to(torch.int64), pred_iou,
                      list(dynamic_k.to(torch.int64).split(counts)))


def yolox_assign(outputs, labels, strides=(8, 16, 32), assigner="yolox", num_threads=0):
    """int64 ``[B, A]``: the gt row matched to each anchor (-1 = background),
    anchors in YOLOX's order (level-major, then i * W + j)."""
    return yolox_assign_details(outputs, labels, strides, assigner, num_threads).matched
