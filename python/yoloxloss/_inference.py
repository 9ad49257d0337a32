"""Inference through the C library: YOLOX's decode_outputs and postprocess
on the raw head outputs (``yolox_decode`` and ``yolox_detect`` of the
package; ``yoloxloss_decode`` and ``yoloxloss_detect`` in C)."""

import ctypes
import types

import torch

from . import _buffers, _inputs
from . import _capi as _c
from ._errors import raise_status
from ._options import LossOptions, normalize_strides
from ._pool import pool_for

__all__ = []  # private module

INT_MAX = 2 ** 31 - 1


def _with_levels(outputs, strides, num_threads, preset, check_finite, call):
    """Checks the head outputs, points C levels at them (float32, float16
    and bfloat16 in place) and returns call(context pointer, B, levels, A, C)
    on a context of their configuration, given back to its pool after."""
    strides = normalize_strides(strides)
    tensors, layouts, num_images, num_classes = _inputs.parse_outputs(outputs, strides)
    prepared = _buffers.prepare_all(types.SimpleNamespace(levels=layouts), tensors)
    levels = _buffers.c_levels(layouts, prepared)
    options = LossOptions(num_classes=num_classes, strides=strides, num_threads=num_threads,
                          check_finite=check_finite, preset=preset)
    pool = pool_for(options)
    context = pool.acquire()
    try:
        anchors = sum(lv.height * lv.width for lv in layouts)
        return call(context.ptr, num_images, levels, anchors, num_classes)
    finally:
        pool.release(context)


def decode(outputs, strides, num_threads, preset, check_finite):
    def call(ptr, num_images, levels, anchors, num_classes):
        boxes = torch.empty(num_images, anchors, 4)
        scores = torch.empty(num_images, anchors, num_classes)
        status = _c.decode(ptr, num_images, levels, _c.float_ptr(boxes.data_ptr()),
                           _c.float_ptr(scores.data_ptr()))
        if status != _c.OK:
            raise_status(status, "yoloxloss_decode", ptr)
        return boxes, scores

    return _with_levels(outputs, strides, num_threads, preset, check_finite, call)


def detect(outputs, strides, conf_thre, nms_thre, class_agnostic, max_detections, num_threads, preset,
           check_finite):
    params = _c.DetectParams()
    _c.detect_params_defaults(ctypes.byref(params))
    params.score_threshold = float(conf_thre)
    params.nms_threshold = float(nms_thre)
    params.class_agnostic = 1 if class_agnostic else 0

    def call(ptr, num_images, levels, anchors, num_classes):
        cap = anchors if max_detections is None else int(max_detections)
        if not 1 <= cap <= INT_MAX:
            raise ValueError("max_detections must be in [1, %d], got %r" % (INT_MAX, max_detections))
        params.max_detections = cap
        # yoloxloss_detection is eight 4-byte fields: a float32 row each
        assert ctypes.sizeof(_c.Detection) == 8 * 4
        raw = torch.empty(num_images, cap, 8)
        counts = torch.empty(num_images, dtype=torch.int32)
        status = _c.detect(ptr, num_images, levels, ctypes.byref(params),
                           ctypes.cast(ctypes.c_void_p(raw.data_ptr()), ctypes.POINTER(_c.Detection)),
                           _c.int32_ptr(counts.data_ptr()), _c.int32_ptr(0))
        if status != _c.OK:
            raise_status(status, "yoloxloss_detect", ptr)
        result = []
        for b in range(num_images):
            rows = raw[b, :int(counts[b])]
            if not len(rows):
                result.append(None)
                continue
            cls = rows.view(torch.int32)[:, 6].to(torch.float32)
            result.append(torch.cat([rows[:, :6], cls[:, None]], 1))
        return result

    return _with_levels(outputs, strides, num_threads, preset, check_finite, call)
