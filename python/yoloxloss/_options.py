"""The per-configuration choices of one loss, as one frozen value.

``LossOptions`` normalises what the user passed (the spelling of a name, an
int where a float is meant) when it is built, so two calls that mean the
same configuration build equal, equally hashed options: the pools of C
contexts are keyed by them. It is also the only place that turns
the choices into a C ``yoloxloss_config``.

A new config field is one dataclass field (default None = the library's
default, as ``check_finite``), one line in ``__post_init__`` and one in
``to_c_config``; a new ``iou_loss`` or ``assigner`` name is one entry in its
table (and its constant in ``_capi``).

A preset (``PRESETS``) is a named C configuration (``yoloxloss_config_preset``):
``to_c_config`` starts from it, and every field a preset sets that the
caller leaves None takes the preset's value, read back from the C preset
itself (``preset_values``), so the two cannot disagree.
"""

import ctypes
import dataclasses
import math
from typing import Optional, Tuple

from . import _capi as _c
from . import _distributed
from ._errors import raise_status

__all__ = []  # private module

# Public through the package: user spelling (lower case, '-') -> C enum value.
ASSIGNERS = {"yolox": _c.ASSIGNER_YOLOX, "yolox-legacy": _c.ASSIGNER_YOLOX_LEGACY}
IOU_LOSSES = {"iou": _c.IOU_LOSS_IOU, "giou": _c.IOU_LOSS_GIOU, "iou-linear": _c.IOU_LOSS_IOU_LINEAR,
              "diou": _c.IOU_LOSS_DIOU, "ciou": _c.IOU_LOSS_CIOU, "eiou": _c.IOU_LOSS_EIOU,
              "siou": _c.IOU_LOSS_SIOU}
ARITHMETICS = {"yolox": _c.ARITHMETIC_YOLOX, "mmdet": _c.ARITHMETIC_MMDET}
# user spelling -> the name yoloxloss_config_preset knows
PRESETS = {"yolox": b"yolox", "mmdet": b"mmdet"}

# The LossOptions fields a preset decides when the caller leaves them None.
PRESET_FIELDS = ("assigner", "iou_loss", "reg_weight", "obj_weight", "cls_weight", "l1_weight",
                 "cost_iou_eps", "cost_penalty", "arithmetic")

_preset_cache = {}


def preset_c_config(preset):
    """A fresh ``_capi.Config`` holding the C preset of that (normalised) name."""
    cfg = _c.Config()
    status = _c.config_preset(ctypes.byref(cfg), PRESETS[preset])
    if status != _c.OK:
        raise_status(status, "yoloxloss_config_preset")
    return cfg


def preset_values(preset):
    """{field: value} of PRESET_FIELDS in the C preset of that (normalised)
    name, in LossOptions' spelling (names for the enums)."""
    if preset not in _preset_cache:
        cfg = preset_c_config(preset)

        def name_of(table, value):
            return next(k for k, v in table.items() if v == value)

        _preset_cache[preset] = dict(
            assigner=name_of(ASSIGNERS, cfg.assigner), iou_loss=name_of(IOU_LOSSES, cfg.iou_loss),
            reg_weight=cfg.reg_weight, obj_weight=cfg.obj_weight, cls_weight=cfg.cls_weight,
            l1_weight=cfg.l1_weight, cost_iou_eps=cfg.cost_iou_eps, cost_penalty=cfg.cost_penalty,
            arithmetic=name_of(ARITHMETICS, cfg.arithmetic))
    return _preset_cache[preset]


def normalize_strides(strides):
    """The strides as a tuple of floats (TypeError when not a sequence)."""
    try:
        return tuple(float(s) for s in strides)
    except TypeError:
        raise TypeError("strides must be a sequence of numbers, got %r" % (strides,)) from None


def choice_name(value, table, what):
    """The table's key for a user's spelling of it: case and '_' vs '-' do
    not matter. ValueError naming the choices when it is none of them."""
    if isinstance(value, str):
        key = value.lower().replace("_", "-")
        if key in table:
            return key
    raise ValueError("%s must be one of %s, got %r" % (what, sorted(table), value))


def parse_normalizer(normalizer, process_group=None):
    """None (keep the library's N = max(num_fg, 1)), a finite float > 0, or,
    for "mean_over_ranks", a ``_distributed.MeanOverRanks`` over
    process_group (which checks torch.distributed and the group at once)."""
    if isinstance(normalizer, str):
        if normalizer.lower().replace("-", "_") != _distributed.NAME:
            raise ValueError("normalizer must be None, a number > 0 or %r, got %r"
                             % (_distributed.NAME, normalizer))
        return _distributed.MeanOverRanks(process_group)
    if process_group is not None:
        raise ValueError("process_group is used only with normalizer=%r, got normalizer=%r"
                         % (_distributed.NAME, normalizer))
    if normalizer is None:
        return None
    normalizer = float(normalizer)
    if not (normalizer > 0 and normalizer != math.inf):
        raise ValueError("normalizer must be finite and > 0, got %r" % normalizer)
    return normalizer


@dataclasses.dataclass(frozen=True)
class LossOptions:
    """Every choice that selects a C configuration; the key of a context pool.

    Build it by keyword. num_classes and strides come from the head outputs;
    the other fields default to ``yolox_loss``'s defaults. A field of
    PRESET_FIELDS left None takes the preset's value (so the built options
    always hold values, and equal configurations compare equal however they
    were spelled). check_finite None keeps the library's default.
    """

    num_classes: int
    strides: Tuple[float, ...]
    assigner: Optional[str] = None
    iou_loss: Optional[str] = None
    use_l1: bool = False
    reg_weight: Optional[float] = None
    obj_weight: Optional[float] = None
    cls_weight: Optional[float] = None
    l1_weight: Optional[float] = None
    num_threads: int = 0
    check_finite: Optional[bool] = None
    preset: str = "yolox"
    cost_iou_eps: Optional[float] = None
    cost_penalty: Optional[float] = None
    arithmetic: Optional[str] = None

    def __post_init__(self):
        # frozen: the normalised values go in through object.__setattr__.
        # The order is the order in which a bad value is reported.
        def store(name, value):
            object.__setattr__(self, name, value)

        store("preset", choice_name(self.preset, PRESETS, "preset"))
        for name, value in preset_values(self.preset).items():
            if getattr(self, name) is None:
                store(name, value)
        store("num_classes", int(self.num_classes))
        store("strides", normalize_strides(self.strides))
        store("assigner", choice_name(self.assigner, ASSIGNERS, "assigner"))
        store("iou_loss", choice_name(self.iou_loss, IOU_LOSSES, "iou_loss"))
        store("use_l1", bool(self.use_l1))
        store("reg_weight", float(self.reg_weight))
        store("obj_weight", float(self.obj_weight))
        store("cls_weight", float(self.cls_weight))
        store("l1_weight", float(self.l1_weight))
        store("num_threads", int(self.num_threads))
        store("check_finite", None if self.check_finite is None else bool(self.check_finite))
        # float32, the fields' C type: 1e-8 and the preset's 1e-8f are one value
        store("cost_iou_eps", ctypes.c_float(float(self.cost_iou_eps)).value)
        store("cost_penalty", ctypes.c_float(float(self.cost_penalty)).value)
        store("arithmetic", choice_name(self.arithmetic, ARITHMETICS, "arithmetic"))

    def to_c_config(self):
        """A validated ``_capi.Config`` (ValueError naming the bad field if the
        library refuses it). The strides array lives as long as the Config."""
        cfg = preset_c_config(self.preset)
        cfg.num_classes = self.num_classes
        cfg.num_levels = len(self.strides)
        # ctypes keeps the array alive with cfg; create() copies it
        cfg.strides = (ctypes.c_float * len(self.strides))(*self.strides)
        cfg.assigner = ASSIGNERS[self.assigner]
        cfg.iou_loss = IOU_LOSSES[self.iou_loss]
        cfg.use_l1 = 1 if self.use_l1 else 0
        cfg.reg_weight = self.reg_weight
        cfg.obj_weight = self.obj_weight
        cfg.cls_weight = self.cls_weight
        cfg.l1_weight = self.l1_weight
        cfg.num_threads = self.num_threads
        if self.check_finite is not None:
            cfg.check_finite = 1 if self.check_finite else 0
        cfg.cost_iou_eps = self.cost_iou_eps
        cfg.cost_penalty = self.cost_penalty
        cfg.arithmetic = ARITHMETICS[self.arithmetic]
        msg = ctypes.create_string_buffer(512)
        status = _c.config_validate(ctypes.byref(cfg), msg, len(msg))
        if status != _c.OK:
            raise_status(status, "yoloxloss config", detail=msg.value.decode("utf-8", "replace"))
        return cfg
