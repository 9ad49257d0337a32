"""A C status code turned into the Python exception a caller expects.

Bad inputs or options are the caller's to fix, so they raise ValueError; an
allocation failure raises MemoryError; anything else is the library's
problem and raises RuntimeError. The message carries the library's detail
(which image, which row, which option) when it has one.
"""

from . import _capi as _c

__all__ = []  # private module

_VALUE_STATUSES = frozenset((
    _c.ERR_INVALID_CONFIG, _c.ERR_INVALID_SHAPE, _c.ERR_SIZE_OVERFLOW,
    _c.ERR_INVALID_LABEL, _c.ERR_INVALID_BOX, _c.ERR_NONFINITE_INPUT, _c.ERR_INVALID_ARGUMENT,
))


def raise_status(status, where, context_ptr=None, detail=None):
    """Raise the exception for a failed C call; never returns.

    where: the C function (or step) that failed, the message's prefix.
    context_ptr: the context the call used; its last error is the detail
    unless ``detail`` is given.
    """
    sentence = _c.status_string(status)
    sentence = sentence.decode("utf-8", "replace") if sentence else "unknown status"
    if detail is None and context_ptr:
        raw = _c.last_error(context_ptr)
        detail = raw.decode("utf-8", "replace") if raw else ""
    name = _c.STATUS_NAMES.get(status, "status %d" % status)
    msg = "%s: %s" % (where, detail) if detail else "%s: %s" % (where, sentence)
    msg += " [%s]" % name
    if status in _VALUE_STATUSES:
        raise ValueError(msg)
    if status == _c.ERR_OUT_OF_MEMORY:
        raise MemoryError(msg)
    raise RuntimeError(msg)
