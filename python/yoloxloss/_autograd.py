"""The loss as a ``torch.autograd.Function`` over the raw head tensors.

Forward runs the C forward and returns the six loss values as tensors;
backward weighs the five differentiable ones with their upstream gradients
in one C backward. When no gradient can be asked for, the loss is computed
without a graph and the context goes back to its pool at once.
"""

import torch
from torch.autograd.function import once_differentiable

from . import _buffers
from . import _capi as _c

__all__ = []  # private module


def losses(run, tensors):
    """The six 0-dim float32 loss tensors of ``run`` (a fresh ``_run.Run``)
    on the head tensors, differentiable when any tensor needs a gradient."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return LossFunction.apply(run, *tensors)
    try:
        values = run.forward(tensors)
    finally:
        run.release()
    return loss_tensors(values)


def loss_tensors(values):
    """``_capi.Losses`` -> (total, iou, obj, cls, l1, fg_ratio) tensors."""
    return tuple(torch.tensor(v, dtype=torch.float32) for v in
                 (values.total, values.iou, values.obj, values.cls, values.l1, values.fg_ratio))


class LossFunction(torch.autograd.Function):
    """apply(run, *head_tensors) -> (total, iou, obj, cls, l1, fg_ratio)"""

    @staticmethod
    def forward(ctx, run, *tensors):
        ctx.set_materialize_grads(False)
        values = run.forward(tensors)
        ctx.run = run
        ctx.save_for_backward(*tensors)  # also catches in-place edits before backward
        out = loss_tensors(values)
        ctx.mark_non_differentiable(out[5])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_total, g_iou, g_obj, g_cls, g_l1, g_ratio):
        saved = ctx.saved_tensors
        upstream = _c.Upstream(*(0.0 if g is None else float(g) for g in
                                 (g_total, g_iou, g_obj, g_cls, g_l1)))
        grads = ctx.run.backward(saved, upstream)
        result = [None]  # the run argument has no gradient
        for t, g, need in zip(saved, grads, ctx.needs_input_grad[1:]):
            result.append(_buffers.gradient_for(g, t) if need else None)
        return tuple(result)
