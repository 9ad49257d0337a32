"""Tensors as the C library's buffers, and the gradient buffers it fills.

The library reads contiguous float32 head outputs and writes contiguous
float32 gradients. This module decides which tensors need a copy for that,
builds the C structs that point into them, allocates the gradients and
casts them back to each input's dtype. The C structs hold raw addresses:
whoever builds them keeps the tensors alive while C may use them.
"""

import ctypes

import torch

from . import _capi as _c
from . import _grad_memory

__all__ = []  # private module


def prepare(t):
    """A contiguous float32 view of t's data; copies only when needed."""
    x = t.detach()
    if x.dtype != torch.float32:
        x = x.to(torch.float32)
    if not x.is_contiguous():
        x = x.contiguous()
    return x


def c_batch(inputs, prepared):
    """-> (``_capi.Batch``, its level array): the C view of one call's head
    outputs (prepared tensors, as ``prepare`` returns) and labels. Both must
    stay alive, with the tensors, while C reads them."""
    levels = (_c.Level * len(inputs.levels))()
    for lv, layout in zip(levels, inputs.levels):
        lv.height, lv.width = layout.height, layout.width
        i = layout.first
        if layout.fused:
            lv.fused = _c.float_ptr(prepared[i].data_ptr())
        else:
            lv.reg = _c.float_ptr(prepared[i].data_ptr())
            lv.obj = _c.float_ptr(prepared[i + 1].data_ptr())
            lv.cls = _c.float_ptr(prepared[i + 2].data_ptr())
    batch = _c.Batch()
    batch.num_images = inputs.num_images
    batch.levels = ctypes.cast(levels, ctypes.POINTER(_c.Level))
    batch.num_gt = _c.int32_ptr(inputs.num_gt.data_ptr())
    if inputs.gt_classes.numel():
        batch.gt_classes = _c.int32_ptr(inputs.gt_classes.data_ptr())
        batch.gt_boxes = _c.float_ptr(inputs.gt_boxes.data_ptr())
    return batch, levels


def new_gradients(prepared):
    """Uninitialised float32 gradient tensors shaped like the prepared
    inputs; C overwrites every element. They are views of one pooled slab
    of memory (``_grad_memory``): no page faults once a backward of the same
    size has run and its gradients are gone."""
    return _grad_memory.empty_tensors([p.shape for p in prepared], torch.float32)


def c_gradients(inputs, grads):
    """The ``_capi.LevelGrad`` array pointing into ``grads`` (one tensor per
    head tensor, as ``new_gradients`` returns)."""
    arr = (_c.LevelGrad * len(inputs.levels))()
    for lg, layout in zip(arr, inputs.levels):
        i = layout.first
        if layout.fused:
            lg.fused = _c.float_ptr(grads[i].data_ptr())
        else:
            lg.reg = _c.float_ptr(grads[i].data_ptr())
            lg.obj = _c.float_ptr(grads[i + 1].data_ptr())
            lg.cls = _c.float_ptr(grads[i + 2].data_ptr())
    return arr


def gradient_for(grad, original):
    """A float32 gradient in the dtype of the tensor it belongs to."""
    return grad if grad.dtype == original.dtype else grad.to(original.dtype)
