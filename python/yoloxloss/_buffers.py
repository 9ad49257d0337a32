"""Tensors as the C library's buffers, and the gradient buffers it fills.

The library reads contiguous float32, float16 or bfloat16 head outputs
(one dtype per level) and writes that level's gradients in the same dtype.
This module decides which tensors need a copy for that, builds the C
structs that point into them, allocates the gradients and casts them back
to each input's dtype. The C structs hold raw addresses: whoever builds
them keeps the tensors alive while C may use them.
"""

import ctypes

import torch

from . import _capi as _c
from . import _grad_memory

__all__ = []  # private module

# The element types C takes in place (yoloxloss_dtype); any other floating
# dtype (float64) is copied to float32 and its gradient cast back.
C_DTYPES = {torch.float32: _c.DTYPE_FLOAT32, torch.float16: _c.DTYPE_FLOAT16,
            torch.bfloat16: _c.DTYPE_BFLOAT16}


def level_dtype(tensors):
    """The dtype a level's tensors (one fused, or reg, obj, cls) go to C in:
    their own when they share one C takes, else float32 (one dtype per
    level in C)."""
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) == 1 and next(iter(dtypes)) in C_DTYPES:
        return next(iter(dtypes))
    return torch.float32


def prepare(t, dtype=torch.float32):
    """A contiguous view of t's data in dtype; copies only when needed."""
    x = t.detach()
    if x.dtype != dtype:
        x = x.to(dtype)
    if not x.is_contiguous():
        x = x.contiguous()
    if x.data_ptr() % x.element_size():
        # storage C refuses as misaligned (torch.frombuffer at an odd
        # offset): an aligned copy
        x = x.clone()
    return x


def prepare_all(inputs, tensors):
    """Every head tensor as prepare() makes it, each level in its
    level_dtype: float16 and bfloat16 levels are passed in place."""
    prepared = list(tensors)
    for layout in inputs.levels:
        span = range(layout.first, layout.first + (1 if layout.fused else 3))
        dtype = level_dtype([tensors[i] for i in span])
        for i in span:
            prepared[i] = prepare(tensors[i], dtype)
    return prepared


def c_levels(layouts, prepared):
    """The ``_capi.Level`` array pointing into the prepared tensors (as
    ``prepare_all`` returns them), one entry per ``_inputs.LevelLayout``."""
    levels = (_c.Level * len(layouts))()
    for lv, layout in zip(levels, layouts):
        lv.height, lv.width = layout.height, layout.width
        i = layout.first
        lv.dtype = C_DTYPES[prepared[i].dtype]
        if layout.fused:
            lv.fused = prepared[i].data_ptr()
        else:
            lv.reg = prepared[i].data_ptr()
            lv.obj = prepared[i + 1].data_ptr()
            lv.cls = prepared[i + 2].data_ptr()
    return levels


def c_batch(inputs, prepared):
    """-> (``_capi.Batch``, its level array): the C view of one call's head
    outputs (prepared tensors, as ``prepare_all`` returns) and labels. Both
    must stay alive, with the tensors, while C reads them."""
    levels = c_levels(inputs.levels, prepared)
    batch = _c.Batch()
    batch.num_images = inputs.num_images
    batch.levels = ctypes.cast(levels, ctypes.POINTER(_c.Level))
    batch.num_gt = _c.int32_ptr(inputs.num_gt.data_ptr())
    if inputs.gt_classes.numel():
        batch.gt_classes = _c.int32_ptr(inputs.gt_classes.data_ptr())
        batch.gt_boxes = _c.float_ptr(inputs.gt_boxes.data_ptr())
    return batch, levels


def new_gradients(prepared):
    """Uninitialised gradient tensors shaped like the prepared inputs, in
    their dtypes (C writes each level's gradient in its dtype); C overwrites
    every element. They are views of one pooled slab of memory
    (``_grad_memory``): no page faults once a backward of the same size has
    run and its gradients are gone."""
    return _grad_memory.empty_tensors([p.shape for p in prepared], [p.dtype for p in prepared])


def c_gradients(inputs, grads):
    """The ``_capi.LevelGrad`` array pointing into ``grads`` (one tensor per
    head tensor, as ``new_gradients`` returns)."""
    arr = (_c.LevelGrad * len(inputs.levels))()
    for lg, layout in zip(arr, inputs.levels):
        i = layout.first
        if layout.fused:
            lg.fused = grads[i].data_ptr()
        else:
            lg.reg = grads[i].data_ptr()
            lg.obj = grads[i + 1].data_ptr()
            lg.cls = grads[i + 2].data_ptr()
    return arr


def gradient_for(grad, original):
    """A gradient in the dtype of the tensor it belongs to."""
    return grad if grad.dtype == original.dtype else grad.to(original.dtype)
