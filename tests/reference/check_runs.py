"""One case of check_reference.py run on each side: through the PyTorch
reference (YOLOX's or MMDetection's, in float32 or float64, with the
reference's own or a forced assignment), and through the library under
test, the drop-in or a runner_io.Runner (use_library chooses), for the loss
terms, the gradient of every autograd leaf after the case's upstream
backward, and the assignment. Also the checks made before any case: whether
the library has the kernels of an ISA, and whether it runs a trivial case.
"""

import ctypes

import torch

from check_cases import cost_constants_name, leaf_dtypes, make_leaves
from yolox_reference import yolox_loss_reference
from mmdet_reference import mmdet_loss_reference

yoloxloss = None  # the drop-in, imported by check_reference.py's main() unless --runner is given
RUNNER = None     # a runner_io.Runner with --runner


def use_library(dropin=None, runner=None):
    """The library the cases run on from now: the drop-in module, or (with
    --runner) a runner_io.Runner in its place."""
    global yoloxloss, RUNNER
    yoloxloss, RUNNER = dropin, runner


def backward_upstream(terms, upstream):
    if upstream == (1.0, 0.0, 0.0, 0.0, 0.0):
        terms[0].backward()
        return
    parts = [u * t for u, t in zip(upstream, terms[:5]) if u != 0.0 and t.requires_grad]
    if parts:
        sum(parts[1:], parts[0]).backward()


def run_reference(case, dtype=torch.float32, forced=None, info=False, transcendentals="torch"):
    inputs, leaves = make_leaves(case, dtype)
    rw, ow, cw, lw = case["weights"]
    if case.get("preset") == "mmdet":
        res = mmdet_loss_reference(inputs, case["labels"], case["strides"], case["use_l1"], rw, ow, cw, lw,
                                   forced_matched=forced, return_info=info,
                                   transcendentals=transcendentals, iou_loss=case["iou_loss"])
        terms, inf = (res if info else (res, None))
        backward_upstream(terms, case["upstream"])
        grads = [l.grad.detach().double() if l.grad is not None else torch.zeros_like(l, dtype=torch.float64)
                 for l in leaves]
        return [float(t) for t in terms], grads, inf
    res = yolox_loss_reference(inputs, case["labels"], case["strides"], case["assigner"],
                               case["iou_loss"], case["use_l1"], rw, ow, cw, lw,
                               forced_matched=forced, return_info=info,
                               transcendentals=transcendentals,
                               cost_iou_eps=case.get("cost_iou_eps", 1e-8),
                               cost_penalty=case.get("cost_penalty"))
    terms, inf = (res if info else (res, None))
    backward_upstream(terms, case["upstream"])
    grads = [l.grad.detach().double() if l.grad is not None else torch.zeros_like(l, dtype=torch.float64)
             for l in leaves]
    # A 16-bit leaf's gradient: the reference's rounded with torch's .to(dtype).
    grads = [g if dt == torch.float32 else g.to(dt).double() for g, dt in zip(grads, leaf_dtypes(case))]
    return [float(t) for t in terms], grads, inf


def run_library(case, as_float32=False):
    """The library's loss terms and gradients (float64 tensors of the values
    it wrote, in each level's dtype); as_float32: every level in float32."""
    if RUNNER is not None:
        out = RUNNER.run(case, as_float32)
        return out["terms"], out["grads"]
    inputs, leaves = make_leaves(case, in_level_dtypes=not as_float32)
    rw, ow, cw, lw = case["weights"]
    terms = yoloxloss.yolox_loss(inputs, case["labels"], strides=case["strides"],
                                 assigner=case["assigner"], iou_loss=case["iou_loss"],
                                 use_l1=case["use_l1"], reg_weight=rw, obj_weight=ow,
                                 cls_weight=cw, l1_weight=lw, num_threads=case["num_threads"],
                                 **cost_keywords(case))
    backward_upstream(terms, case["upstream"])
    grads = [l.grad.detach().double() if l.grad is not None else torch.zeros_like(l, dtype=torch.float64)
             for l in leaves]
    return [float(t) for t in terms], grads


def library_assignment(case):
    if RUNNER is not None:
        out = RUNNER.run(case)
        return out["matched"], out["pred_iou"], out["dynamic_k"]
    outs = [tuple(t.detach() for t in x) if isinstance(x, tuple) else x.detach()
            for x in make_leaves(case, in_level_dtypes=True)[0]]
    if hasattr(yoloxloss, "yolox_assign_details"):
        d = yoloxloss.yolox_assign_details(outs, case["labels"], strides=case["strides"],
                                           assigner=case["assigner"],
                                           num_threads=case["num_threads"], **cost_keywords(case))
        return d.matched, d.pred_iou, d.dynamic_k
    m = yoloxloss.yolox_assign(outs, case["labels"], strides=case["strides"],
                               assigner=case["assigner"], num_threads=case["num_threads"])
    return m, None, None


def cost_keywords(case):
    """The drop-in's keywords for the case's cost constants (none when they
    are the defaults, so a drop-in without them still runs the other cases),
    or for its preset."""
    if case.get("preset") == "mmdet":
        return dict(preset="mmdet")
    if cost_constants_name(case) == "default":
        return {}
    return dict(cost_iou_eps=case["cost_iou_eps"], cost_penalty=case["cost_penalty"])


def isa_supported(lib_path, name):
    """yoloxloss_isa_supported() of the shared library for the ISA called name."""
    lib = ctypes.CDLL(lib_path)
    lib.yoloxloss_isa_name.restype = ctypes.c_char_p
    lib.yoloxloss_isa_name.argtypes = [ctypes.c_int]
    lib.yoloxloss_isa_supported.restype = ctypes.c_int
    lib.yoloxloss_isa_supported.argtypes = [ctypes.c_int]
    for value in range(16):
        if lib.yoloxloss_isa_name(value).decode() == name:
            return bool(lib.yoloxloss_isa_supported(value))
    return False


def preflight_error():
    """None if the library (drop-in or runner) runs a one-anchor, no-gt case,
    else why not: a wrong --runner command or an --isa this build or CPU
    lacks is reported once instead of failing every case."""
    case = dict(idx=-1, B=1, C=1, A=1, strides=(8.0,), shapes=[(1, 1)], layout="fused",
                outs=[torch.zeros(1, 6, 1, 1)], labels=torch.zeros(1, 1, 5), assigner="yolox",
                iou_loss="iou", use_l1=False, weights=(5.0, 1.0, 1.0, 1.0), num_threads=1,
                upstream=(1.0, 0.0, 0.0, 0.0, 0.0))
    try:
        library_assignment(case)
    except Exception as exc:  # any failure here is the message
        return str(exc)
    return None
