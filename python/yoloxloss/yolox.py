"""Switch a Megvii YOLOX model's training loss to yoloxloss in one line.

::

    import yoloxloss.yolox
    yoloxloss.yolox.use_library(model)   # a YOLOX model (with .head) or a YOLOXHead

From then on the head's training forward runs its convolutions as before
and hands the raw per-level outputs (reg, obj and cls of every level, as
the convolutions produced them) to ``yoloxloss.yolox_loss``: no decoding, no
concatenation, no ``get_losses``. It returns what ``YOLOXHead.forward``
returns in training, ``(loss, iou_loss, conf_loss, cls_loss, l1_loss,
num_fg / num_gts)``, so ``YOLOX.forward`` and the YOLOX trainer take it
unchanged. In eval mode the head's own forward runs, untouched.

The head is recognised by what it has, not by its class: ``stems``,
``cls_convs``, ``reg_convs``, ``cls_preds``, ``reg_preds``, ``obj_preds`` (one
entry per level), ``strides`` and ``use_l1``; YOLOX itself is never
imported. ``use_l1`` is read at every call (the YOLOX trainer turns it on
for the last epochs).

Where it goes in a YOLOX experiment: in the ``Exp``'s ``get_model``, after
the parent's (which builds the model, sets the 1% bias prior and train
mode), on the model it returns, before anything wraps
(``DistributedDataParallel``) or copies (the EMA model) it::

    class Exp(yolox.exp.Exp):
        def get_model(self):
            model = super().get_model()
            yoloxloss.yolox.use_library(model)   # several DDP ranks: normalizer="mean_over_ranks"
            return model

Every rank builds its model through ``get_model``, so every rank switches
with the same options, as data-parallel training needs. The library runs
on the CPU: a model whose head is already on a GPU is refused here,
and a training step whose features are on a GPU raises before the head's
convolutions run, each ``ValueError`` naming the device and the way out
(``restore`` keeps YOLOX's own loss for GPU training). YOLOX's own
``Trainer`` always moves the model to ``cuda:<local_rank>``: with it the
switch fails at the first step; train on the CPU with a loop of your own.
"""

import torch

from . import _options, yolox_loss
from ._options import IOU_LOSSES

__all__ = ["use_library", "restore", "LibraryForward"]

# The per-level module lists of a YOLOX head, in the order they are used.
LEVEL_MODULES = ("stems", "cls_convs", "reg_convs", "cls_preds", "reg_preds", "obj_preds")


def find_head(model_or_head):
    """The YOLOX head inside model_or_head: the object itself, its ``.head``,
    or (for a DataParallel-style wrapper) its ``.module``'s. TypeError naming
    what is missing when none is a head."""
    candidates = [model_or_head]
    inner = getattr(model_or_head, "module", None)
    for obj in (model_or_head, inner):
        if obj is not None and getattr(obj, "head", None) is not None:
            candidates.append(obj.head)
    if inner is not None:
        candidates.append(inner)
    for obj in candidates:
        if all(hasattr(obj, name) for name in LEVEL_MODULES):
            return obj
    # Name what the most likely head lacks: the .head if there is one.
    closest = candidates[1] if len(candidates) > 1 else model_or_head
    what = ("%s.head (%s)" % (type(model_or_head).__name__, type(closest).__name__)
            if closest is not model_or_head else type(model_or_head).__name__)
    missing = [name for name in LEVEL_MODULES + ("strides", "use_l1") if not hasattr(closest, name)]
    raise TypeError("use_library needs a YOLOX head (YOLOXHead) or a model with one as .head; "
                    "%s lacks %s" % (what, ", ".join(missing)))


def output_channels(module, where):
    """Output channels of a prediction layer (a Conv2d or anything with
    ``out_channels`` or a ``weight`` whose first dimension counts them)."""
    channels = getattr(module, "out_channels", None)
    if channels is None:
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() >= 1:
            channels = weight.shape[0]
    if channels is None:
        raise TypeError("%s (%s) has neither out_channels nor a weight: cannot tell its output "
                        "channels" % (where, type(module).__name__))
    return int(channels)


def check_head(head):
    """-> (number of classes, strides) of a YOLOX head; TypeError or
    ValueError naming what does not fit."""
    cls_name = type(head).__name__
    if not isinstance(head, torch.nn.Module):
        raise TypeError("the YOLOX head must be a torch.nn.Module, got %s" % cls_name)
    for name in ("strides", "use_l1"):
        if not hasattr(head, name):
            raise TypeError("%s has no attribute %r: not a YOLOX head" % (cls_name, name))
    strides = _options.normalize_strides(head.strides)
    if not strides:
        raise ValueError("%s.strides is empty" % cls_name)
    for name in LEVEL_MODULES:
        modules = getattr(head, name)
        try:
            count = len(modules)
        except TypeError:
            raise TypeError("%s.%s must hold one module per level, got %s"
                            % (cls_name, name, type(modules).__name__)) from None
        if count != len(strides):
            raise ValueError("%s.%s has %d levels but strides has %d (%r)"
                             % (cls_name, name, count, len(strides), strides))
    num_classes = None
    for k in range(len(strides)):
        for name, want in (("reg_preds", 4), ("obj_preds", 1)):
            got = output_channels(getattr(head, name)[k], "%s.%s[%d]" % (cls_name, name, k))
            if got != want:
                raise ValueError("%s.%s[%d] has %d output channels, a YOLOX head has %d"
                                 % (cls_name, name, k, got, want))
        got = output_channels(head.cls_preds[k], "%s.cls_preds[%d]" % (cls_name, k))
        if num_classes is None:
            num_classes = got
        elif got != num_classes:
            raise ValueError("%s.cls_preds[%d] has %d output channels but cls_preds[0] has %d"
                             % (cls_name, k, got, num_classes))
    declared = getattr(head, "num_classes", None)
    if declared is not None and declared != num_classes:
        raise ValueError("%s.num_classes is %r but cls_preds have %d output channels"
                         % (cls_name, declared, num_classes))
    if num_classes < 1:
        raise ValueError("%s.cls_preds have no output channels" % cls_name)
    return num_classes, strides


def head_iou_loss(head):
    """The box loss a YOLOX head is set up with (its ``iou_loss.loss_type``),
    "iou" when it does not say."""
    loss_type = getattr(getattr(head, "iou_loss", None), "loss_type", None)
    return "iou" if loss_type is None else loss_type


def cpu_only(where, device):
    """The ValueError for a head whose training step would leave the CPU."""
    return ValueError(
        "%s is on device %s, but yoloxloss computes the loss on the CPU only. To train on %s, "
        "keep YOLOX's own loss: leave use_library out, or undo it with yoloxloss.yolox.restore(model). "
        "To train with the library, keep the model, its inputs and its targets on the CPU "
        "(YOLOX's own Trainer always moves the model to cuda:<local_rank>; use a training "
        "loop of your own)" % (where, device, device))


def first_off_cpu(head):
    """(name, device) of the head's first parameter or buffer off the CPU, or None."""
    for name, t in list(head.named_parameters()) + list(head.named_buffers()):
        if t.device.type != "cpu":
            return name, t.device
    return None


class LibraryForward:
    """The forward of a YOLOX head whose training loss is yoloxloss's.

    Set as the head's ``forward`` by ``use_library``; keeps the forward it
    replaces for eval mode and ``restore``. A plain object, so the head still
    deep-copies (YOLOX's EMA model) and pickles, carrying its switch along.
    """

    def __init__(self, head, original, loss_kwargs):
        self.head = head
        self.original = original  # the head's own forward attribute, or None (its class's)
        self.loss_kwargs = loss_kwargs

    def own_forward(self, *args, **kwargs):
        if self.original is not None:
            return self.original(*args, **kwargs)
        return type(self.head).forward(self.head, *args, **kwargs)

    def __call__(self, xin, labels=None, imgs=None):
        head = self.head
        if not head.training:
            return self.own_forward(xin, labels, imgs)
        if labels is None:
            raise ValueError("the training forward of a YOLOX head needs labels (targets [B, M, 5])")
        strides = head.strides
        if len(xin) != len(strides):
            raise ValueError("the head got %d feature maps but has %d strides (%r)"
                             % (len(xin), len(strides), tuple(strides)))
        for k, x in enumerate(xin):
            # Before the convolutions: a GPU model fails here, not after a wasted forward.
            if isinstance(x, torch.Tensor) and x.device.type != "cpu":
                raise cpu_only("the YOLOX head's input xin[%d]" % k, x.device)
        levels = []
        for k, x in enumerate(xin):
            x = head.stems[k](x)
            cls_output = head.cls_preds[k](head.cls_convs[k](x))
            reg_feat = head.reg_convs[k](x)
            levels.append((head.reg_preds[k](reg_feat), head.obj_preds[k](reg_feat), cls_output))
        use_l1 = bool(head.use_l1)
        loss, iou, obj, cls, l1, fg_ratio = yolox_loss(levels, labels, strides, use_l1=use_l1,
                                                       **self.loss_kwargs)
        # As YOLOXHead.get_losses: l1 is the number 0.0 without the L1 term,
        # and num_fg / num_gts a Python number.
        return loss, iou, obj, cls, (l1 if use_l1 else 0.0), float(fg_ratio)


def use_library(model_or_head, assigner=None, iou_loss=None, num_threads=0, *,
                reg_weight=None, check_finite=None, normalizer=None, preset="yolox"):
    """Make a YOLOX head's training forward compute its loss with yoloxloss.

    Args:
        model_or_head: a ``YOLOXHead``, or a model holding one as ``.head``
            (``YOLOX``; a DataParallel-style wrapper's ``.module`` too).
        assigner: ``"yolox"`` (the current rule) or ``"yolox-legacy"`` (YOLOX
            0.1-0.3). None: the preset's (``"yolox"`` for YOLOX's).
        iou_loss: any box loss of ``yoloxloss.IOU_LOSSES`` (``"iou"``,
            ``"giou"``, ``"ciou"``, ...); None takes the head's own
            (``head.iou_loss.loss_type``, YOLOX's ``"iou"``).
        num_threads: OpenMP threads of the C library; 0 = OpenMP's default.
        reg_weight: weight of the IoU loss in the total (None: the preset's,
            5.0 for both).
        check_finite: scan the head outputs for NaN/Inf first (None: the
            library's default).
        normalizer: as ``yolox_loss``'s: None divides each rank's loss by its
            own max(num_fg, 1), as YOLOX does; ``"mean_over_ranks"`` by the
            mean over the data-parallel ranks (default process group), for a
            model wrapped in ``DistributedDataParallel`` after this call: a
            collective, so every rank switches with the same options and runs
            every training step. A number replaces N.
        preset: ``"yolox"`` (Megvii's loss, the default) or ``"mmdet"``
            (MMDetection's YOLOX loss on this head: its assigner, constants
            and arithmetic; with ``normalizer`` None it divides by the mean
            over the ranks whenever torch.distributed is initialised, as
            ``yolox_loss`` does).

    Returns the head. Calling it again replaces the options; ``restore``
    undoes it. Everything is checked here, before any training step: a
    model without a YOLOX head, prediction layers with the wrong number of
    output channels or levels that disagree raise TypeError or ValueError
    naming the attribute, and so do options the library refuses. A head
    with a parameter or buffer off the CPU raises ValueError naming it and
    its device; a model moved to a GPU after this call raises at its first
    training step instead.
    """
    head = find_head(model_or_head)
    num_classes, strides = check_head(head)
    off_cpu = first_off_cpu(head)
    if off_cpu is not None:
        raise cpu_only("use_library: the head's %s" % off_cpu[0], off_cpu[1])
    if iou_loss is None:
        iou_loss = head_iou_loss(head)
    if not isinstance(iou_loss, str) or iou_loss.lower() not in IOU_LOSSES:
        raise ValueError("iou_loss must be one of %s, got %r (the head's iou_loss.loss_type "
                         "when not given)" % (sorted(IOU_LOSSES), iou_loss))
    kwargs = dict(assigner=assigner, iou_loss=iou_loss, num_threads=num_threads,
                  reg_weight=reg_weight, check_finite=check_finite, preset=preset)
    # Let the library judge the whole configuration now, not at the first step.
    _options.LossOptions(num_classes=num_classes, strides=strides, **kwargs).to_c_config()
    if normalizer is not None:
        # A number or a bad name is judged now; "mean_over_ranks" checks
        # torch.distributed at each step, which may be set up after this.
        if not (isinstance(normalizer, str) and normalizer.lower().replace("-", "_") == "mean_over_ranks"):
            _options.parse_normalizer(normalizer)
        kwargs["normalizer"] = normalizer
    current = head.__dict__.get("forward")
    original = current.original if isinstance(current, LibraryForward) else current
    head.forward = LibraryForward(head, original, kwargs)
    return head


def restore(model_or_head):
    """Give a head switched by ``use_library`` its own forward back; -> the
    head. A head that was not switched is left as it is."""
    head = find_head(model_or_head)
    current = head.__dict__.get("forward")
    if isinstance(current, LibraryForward):
        if current.original is None:
            del head.forward
        else:
            head.forward = current.original
    return head
