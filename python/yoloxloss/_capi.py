"""ctypes declarations for libyoloxloss (include/yoloxloss.h).

Everything here mirrors the C header exactly; keep the two in step. This
module finds and loads the shared library on import and raises ImportError,
naming every place it looked, when it cannot.
"""

import ctypes
import os
import sys

__all__ = []  # private module

# --- constants (yoloxloss.h) -------------------------------------------------

VERSION_MAJOR = 0
VERSION_MINOR = 3
VERSION_PATCH = 0


OK = 0
ERR_NULL_ARGUMENT = 1
ERR_INVALID_CONFIG = 2
ERR_INVALID_SHAPE = 3
ERR_SIZE_OVERFLOW = 4
ERR_INVALID_LABEL = 5
ERR_INVALID_BOX = 6
ERR_NONFINITE_INPUT = 7
ERR_OUT_OF_MEMORY = 8
ERR_NO_FORWARD = 9
ERR_INVALID_ARGUMENT = 10

STATUS_NAMES = {
    OK: "YOLOXLOSS_OK",
    ERR_NULL_ARGUMENT: "YOLOXLOSS_ERR_NULL_ARGUMENT",
    ERR_INVALID_CONFIG: "YOLOXLOSS_ERR_INVALID_CONFIG",
    ERR_INVALID_SHAPE: "YOLOXLOSS_ERR_INVALID_SHAPE",
    ERR_SIZE_OVERFLOW: "YOLOXLOSS_ERR_SIZE_OVERFLOW",
    ERR_INVALID_LABEL: "YOLOXLOSS_ERR_INVALID_LABEL",
    ERR_INVALID_BOX: "YOLOXLOSS_ERR_INVALID_BOX",
    ERR_NONFINITE_INPUT: "YOLOXLOSS_ERR_NONFINITE_INPUT",
    ERR_OUT_OF_MEMORY: "YOLOXLOSS_ERR_OUT_OF_MEMORY",
    ERR_NO_FORWARD: "YOLOXLOSS_ERR_NO_FORWARD",
    ERR_INVALID_ARGUMENT: "YOLOXLOSS_ERR_INVALID_ARGUMENT",
}

ASSIGNER_YOLOX = 0
ASSIGNER_YOLOX_LEGACY = 1

IOU_LOSS_IOU = 0
IOU_LOSS_GIOU = 1
IOU_LOSS_IOU_LINEAR = 2
IOU_LOSS_DIOU = 3
IOU_LOSS_CIOU = 4
IOU_LOSS_EIOU = 5
IOU_LOSS_SIOU = 6

ARITHMETIC_YOLOX = 0
ARITHMETIC_MMDET = 1

DTYPE_FLOAT32 = 0
DTYPE_FLOAT16 = 1
DTYPE_BFLOAT16 = 2

# C enums are passed and stored as int (their size on every ABI we target).
c_enum = ctypes.c_int

# --- structs -----------------------------------------------------------------

c_float_p = ctypes.POINTER(ctypes.c_float)
c_int32_p = ctypes.POINTER(ctypes.c_int32)


class Config(ctypes.Structure):
    """yoloxloss_config"""
    _fields_ = [
        ("num_classes", ctypes.c_int),
        ("num_levels", ctypes.c_int),
        ("strides", ctypes.POINTER(ctypes.c_float)),
        ("assigner", c_enum),
        ("center_radius", ctypes.c_float),
        ("candidate_topk", ctypes.c_int),
        ("iou_cost_weight", ctypes.c_float),
        ("cls_cost_weight", ctypes.c_float),
        ("iou_loss", c_enum),
        ("use_l1", ctypes.c_int),
        ("reg_weight", ctypes.c_float),
        ("obj_weight", ctypes.c_float),
        ("cls_weight", ctypes.c_float),
        ("l1_weight", ctypes.c_float),
        ("num_threads", ctypes.c_int),
        ("check_finite", ctypes.c_int),
        ("isa", c_enum),
        # allocator hook; left NULL: the library uses malloc/free
        ("alloc_fn", ctypes.c_void_p),
        ("free_fn", ctypes.c_void_p),
        ("alloc_user", ctypes.c_void_p),
        ("cost_iou_eps", ctypes.c_float),
        ("cost_penalty", ctypes.c_float),
        ("arithmetic", c_enum),
    ]


class Level(ctypes.Structure):
    """yoloxloss_level (buffers of the level's dtype)"""
    _fields_ = [
        ("height", ctypes.c_int),
        ("width", ctypes.c_int),
        ("fused", ctypes.c_void_p),
        ("reg", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("cls", ctypes.c_void_p),
        ("dtype", c_enum),
    ]


LABELS_CLASS_FIRST = 0
LABELS_CLASS_LAST = 1


class PaddedLabels(ctypes.Structure):
    """yoloxloss_padded_labels"""
    _fields_ = [
        ("rows", c_float_p),
        ("max_rows", ctypes.c_int),
        ("row_floats", ctypes.c_int),
        ("order", c_enum),
        ("normalized", ctypes.c_int),
        ("image_width", ctypes.c_float),
        ("image_height", ctypes.c_float),
        ("counts", c_int32_p),
    ]


class Batch(ctypes.Structure):
    """yoloxloss_batch"""
    _fields_ = [
        ("num_images", ctypes.c_int),
        ("levels", ctypes.POINTER(Level)),
        ("num_gt", c_int32_p),
        ("gt_classes", c_int32_p),
        ("gt_boxes", c_float_p),
        ("padded", ctypes.POINTER(PaddedLabels)),  # NULL: the flat fields above
    ]


class Losses(ctypes.Structure):
    """yoloxloss_losses"""
    _fields_ = [
        ("total", ctypes.c_float),
        ("iou", ctypes.c_float),
        ("obj", ctypes.c_float),
        ("cls", ctypes.c_float),
        ("l1", ctypes.c_float),
        ("normalizer", ctypes.c_float),
        ("fg_ratio", ctypes.c_float),
        ("num_fg", ctypes.c_int64),
        ("num_gt", ctypes.c_int64),
    ]


class LevelGrad(ctypes.Structure):
    """yoloxloss_level_grad (buffers of the level's dtype)"""
    _fields_ = [
        ("fused", ctypes.c_void_p),
        ("reg", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("cls", ctypes.c_void_p),
    ]


class Upstream(ctypes.Structure):
    """yoloxloss_upstream"""
    _fields_ = [
        ("total", ctypes.c_float),
        ("iou", ctypes.c_float),
        ("obj", ctypes.c_float),
        ("cls", ctypes.c_float),
        ("l1", ctypes.c_float),
    ]


class Detection(ctypes.Structure):
    """yoloxloss_detection"""
    _fields_ = [
        ("x1", ctypes.c_float),
        ("y1", ctypes.c_float),
        ("x2", ctypes.c_float),
        ("y2", ctypes.c_float),
        ("obj", ctypes.c_float),
        ("cls_conf", ctypes.c_float),
        ("cls", ctypes.c_int32),
        ("score", ctypes.c_float),
    ]


class DetectParams(ctypes.Structure):
    """yoloxloss_detect_params"""
    _fields_ = [
        ("score_threshold", ctypes.c_float),
        ("nms_threshold", ctypes.c_double),
        ("class_agnostic", ctypes.c_int),
        ("max_detections", ctypes.c_int),
    ]


class _OpaqueContext(ctypes.Structure):
    """yoloxloss_context (opaque)"""


ContextPtr = ctypes.POINTER(_OpaqueContext)

# --- finding the library -----------------------------------------------------

LIB_NAME = "libyoloxloss.so"
ENV_VAR = "YOLOXLOSS_LIB"
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


BUILD_HINT = "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build"
PIP_HINT = "python3 -m pip install --no-build-isolation ./python"


def candidate_paths():
    """The places searched when $YOLOXLOSS_LIB is not set, in order:
    [(description, path)]."""
    return [("next to the package (where pip install puts it)", os.path.join(_PKG_DIR, LIB_NAME)),
            ("a checkout's build directory",
             os.path.normpath(os.path.join(_PKG_DIR, "..", "..", "build", LIB_NAME)))]


def other_installed_copies():
    """Libraries of other yoloxloss packages on sys.path (an installed one
    shadowed by this copy, typically a checkout's python/ put first)."""
    found = []
    for entry in sys.path:
        path = os.path.join(os.path.abspath(entry or os.curdir), "yoloxloss", LIB_NAME)
        if os.path.dirname(path) != _PKG_DIR and os.path.isfile(path) and path not in found:
            found.append(path)
    return found


def _missing_library_message(tried):
    lines = ["yoloxloss: cannot load %s, the C library of this package (imported from %s)." % (LIB_NAME, _PKG_DIR),
             "Searched:", "  $%s: not set" % ENV_VAR] + tried
    others = other_installed_copies()
    lines += ["  another yoloxloss on sys.path: %s (has its library; this copy was imported first)" % path
              for path in others]
    lines += ["To fix it, one of:",
              "  - install the package with its library, from the repository's root: %s" % PIP_HINT,
              "  - in a checkout, build the library into build/: %s" % BUILD_HINT,
              "  - set %s to the full path of a %s" % (ENV_VAR, LIB_NAME)]
    if others:
        lines.append("  - use the installed package: take %s off sys.path (or PYTHONPATH), or set %s=%s"
                     % (os.path.dirname(_PKG_DIR), ENV_VAR, others[0]))
    return "\n".join(lines)


def _load():
    env = os.environ.get(ENV_VAR)
    if env:
        # An explicitly configured library must load; silently falling back to
        # another copy would hide a misconfiguration.
        try:
            return ctypes.CDLL(os.path.abspath(env)), os.path.abspath(env)
        except OSError as exc:
            own = candidate_paths()[0][1]
            raise ImportError(
                "yoloxloss: cannot load the library named by $%s=%r: %s\n"
                "Set %s to the full path of a %s, or unset it to use the one next to the package "
                "(%s: %s)" % (ENV_VAR, env, exc, ENV_VAR, LIB_NAME, own,
                              "present" if os.path.isfile(own) else "not there")) from exc
    tried = []
    for what, path in candidate_paths():
        if not os.path.exists(path):
            tried.append("  %s: %s (not found)" % (what, path))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as exc:
            tried.append("  %s: %s (failed to load: %s)" % (what, path, exc))
    raise ImportError(_missing_library_message(tried))


lib, lib_path = _load()


def _declare(name, restype, argtypes):
    try:
        fn = getattr(lib, name)
    except AttributeError as exc:
        raise ImportError("yoloxloss: %s (%s) lacks the symbol %s; is it an "
                          "older or foreign build?" % (LIB_NAME, lib_path, name)) from exc
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


version_number = _declare("yoloxloss_version_number", ctypes.c_int, [])
version_string = _declare("yoloxloss_version_string", ctypes.c_char_p, [])
_expected = VERSION_MAJOR * 10000 + VERSION_MINOR * 100 + VERSION_PATCH
if version_number() != _expected:
    raise ImportError("yoloxloss: %s is version %s but this binding was written for %d.%d.%d; "
                      "rebuild the library from this checkout"
                      % (lib_path, version_string().decode(), VERSION_MAJOR, VERSION_MINOR,
                         VERSION_PATCH))

status_string = _declare("yoloxloss_status_string", ctypes.c_char_p, [c_enum])
config_defaults = _declare("yoloxloss_config_defaults", None, [ctypes.POINTER(Config)])
config_validate = _declare("yoloxloss_config_validate", c_enum,
                           [ctypes.POINTER(Config), ctypes.c_char_p, ctypes.c_size_t])
config_preset = _declare("yoloxloss_config_preset", c_enum, [ctypes.POINTER(Config), ctypes.c_char_p])
create = _declare("yoloxloss_create", c_enum,
                  [ctypes.POINTER(Config), ctypes.POINTER(ContextPtr)])
destroy = _declare("yoloxloss_destroy", None, [ContextPtr])
get_config = _declare("yoloxloss_get_config", ctypes.POINTER(Config), [ContextPtr])
last_error = _declare("yoloxloss_last_error", ctypes.c_char_p, [ContextPtr])
forward = _declare("yoloxloss_forward", c_enum,
                   [ContextPtr, ctypes.POINTER(Batch), ctypes.POINTER(Losses)])
renormalize = _declare("yoloxloss_renormalize", c_enum,
                       [ContextPtr, ctypes.c_float, ctypes.POINTER(Losses)])
backward = _declare("yoloxloss_backward", c_enum,
                    [ContextPtr, ctypes.POINTER(LevelGrad), ctypes.POINTER(Upstream),
                     ctypes.c_int])
num_anchors = _declare("yoloxloss_num_anchors", ctypes.c_int64, [ContextPtr])
get_assignment = _declare("yoloxloss_get_assignment", c_enum,
                          [ContextPtr, c_int32_p, c_float_p, c_int32_p])
get_image_losses = _declare("yoloxloss_get_image_losses", c_enum, [ContextPtr, ctypes.POINTER(Losses)])

decode = _declare("yoloxloss_decode", c_enum,
                  [ContextPtr, ctypes.c_int, ctypes.POINTER(Level), c_float_p, c_float_p])
detect_params_defaults = _declare("yoloxloss_detect_params_defaults", None, [ctypes.POINTER(DetectParams)])
detect = _declare("yoloxloss_detect", c_enum,
                  [ContextPtr, ctypes.c_int, ctypes.POINTER(Level), ctypes.POINTER(DetectParams),
                   ctypes.POINTER(Detection), c_int32_p, c_int32_p])


def float_ptr(addr):
    """A float* for a raw address (0 -> NULL)."""
    return ctypes.cast(ctypes.c_void_p(addr), c_float_p) if addr else c_float_p()


def int32_ptr(addr):
    return ctypes.cast(ctypes.c_void_p(addr), c_int32_p) if addr else c_int32_p()
