"""One application of the loss: a C context from forward to backward.

The library keeps the assignment and the pointers to the head outputs in
its context between ``yoloxloss_forward`` and ``yoloxloss_backward``, so a
``Run`` owns one context (from its configuration's pool) for that span and
keeps the buffers C points into alive. Its methods take a lock, because
autograd may call backward, and the garbage collector ``__del__``, from
another thread than the one that ran forward.
"""

import ctypes
import threading

import torch

from . import _buffers
from . import _capi as _c
from ._errors import raise_status
from ._pool import pool_for

__all__ = []  # private module


class Run:
    """The loss of one batch (``_inputs.HeadInputs``) under one ``LossOptions``.

    normalizer: None, the float that replaces N = max(num_fg, 1), or a
    callable that turns this batch's num_fg into that float (a collective such
    as ``_distributed.MeanOverRanks``; it is called once, by the first
    forward, and its value kept for a forward redone by a second backward).
    """

    def __init__(self, inputs, options, normalizer=None, image_losses=False):
        self.context = None
        # image_losses: each forward also reads the per-image rows
        # (``_capi.Losses`` [B]) into self.image_rows, after the normaliser.
        self.want_image_losses = image_losses
        self.image_rows = None
        self.keep = None  # what C points into: must outlive the context's use
        self.lock = threading.Lock()
        self.inputs = inputs
        self.options = options
        self.normalizer = normalizer
        self.pool = pool_for(options)  # may raise ValueError: a bad configuration

    def forward(self, tensors):
        """Assign and compute the losses of the head tensors; -> ``_capi.Losses``.
        The context stays with this run until ``backward`` or ``release``."""
        with self.lock:
            return self._forward_locked(_buffers.prepare_all(self.inputs, tensors))

    def _forward_locked(self, prepared):
        context = self.pool.acquire()
        try:
            batch, levels = _buffers.c_batch(self.inputs, prepared)
            losses = _c.Losses()
            status = _c.forward(context.ptr, ctypes.byref(batch), ctypes.byref(losses))
            if status != _c.OK:
                raise_status(status, "yoloxloss_forward", context.ptr)
            self._normalize(context, losses)
            if self.want_image_losses:
                self.image_rows = self._image_losses(context)
        except BaseException:
            self.pool.release(context)
            raise
        self.context = context
        self.keep = (prepared, levels)
        return losses

    def _normalize(self, context, losses):
        # Between the assignment and the loss values the caller sees: the
        # place for a normaliser that needs this batch's num_fg first.
        if self.normalizer is None:
            return
        if callable(self.normalizer):
            self.normalizer = self.normalizer(losses.num_fg)
        status = _c.renormalize(context.ptr, self.normalizer, ctypes.byref(losses))
        if status != _c.OK:
            raise_status(status, "yoloxloss_renormalize", context.ptr)

    def _image_losses(self, context):
        rows = (_c.Losses * self.inputs.num_images)()
        status = _c.get_image_losses(context.ptr, rows)
        if status != _c.OK:
            raise_status(status, "yoloxloss_get_image_losses", context.ptr)
        return rows

    def release(self):
        """Give the context back to its pool (no backward will come)."""
        with self.lock:
            self._release_locked()

    def _release_locked(self):
        context, self.context, self.keep = self.context, None, None
        if context is not None:
            self.pool.release(context)

    def assignment(self):
        """After forward: (matched int32 [B, A], pred_iou float32 [B, A],
        dynamic_k int32 [T])."""
        with self.lock:
            inputs, ptr = self.inputs, self.context.ptr
            n = int(_c.num_anchors(ptr))
            if n != inputs.num_anchors:
                raise RuntimeError("yoloxloss_num_anchors returned %d, expected %d"
                                   % (n, inputs.num_anchors))
            matched = torch.empty(inputs.num_images, n, dtype=torch.int32)
            pred_iou = torch.empty(inputs.num_images, n, dtype=torch.float32)
            dynamic_k = torch.empty(inputs.gt_classes.numel(), dtype=torch.int32)
            status = _c.get_assignment(
                ptr, _c.int32_ptr(matched.data_ptr()), _c.float_ptr(pred_iou.data_ptr()),
                _c.int32_ptr(dynamic_k.data_ptr()) if dynamic_k.numel() else _c.int32_ptr(0))
            if status != _c.OK:
                raise_status(status, "yoloxloss_get_assignment", ptr)
            return matched, pred_iou, dynamic_k

    def backward(self, saved, upstream):
        """Gradients (contiguous, one per head tensor, in the dtype its level
        went to C in) for the ``_capi.Upstream`` weights; gives the context
        back.

        saved: the head tensors of forward, to redo it when this is a second
        backward through a retained graph (the context went back to the pool
        after the first; forward is deterministic).
        """
        with self.lock:
            if self.context is None:
                self._forward_locked(_buffers.prepare_all(self.inputs, saved))
            try:
                grads = _buffers.new_gradients(self.keep[0])
                arr = _buffers.c_gradients(self.inputs, grads)
                status = _c.backward(self.context.ptr, arr, ctypes.byref(upstream), 0)
                if status != _c.OK:
                    raise_status(status, "yoloxloss_backward", self.context.ptr)
            finally:
                self._release_locked()
            return grads

    def __del__(self):
        # No lock: nothing else can reach a run that is being collected.
        try:
            context, self.context, self.keep = self.context, None, None
            if context is not None:
                self.pool.release(context)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
