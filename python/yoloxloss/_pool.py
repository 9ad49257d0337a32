"""C contexts, pooled per configuration.

Creating a context allocates its workspace, so contexts are reused: each
``LossOptions`` value has a pool of idle contexts, and the pools of the
most recently used configurations are kept. A context is owned by one
forward/backward pair at a time (see ``_run``); taking one from a pool and
giving it back take no lock, because giving back may run inside
``__del__``, at any point of any thread, even one already holding a lock.
"""

import collections
import ctypes
import threading

from . import _capi as _c
from ._errors import raise_status

__all__ = []  # private module

# Configurations kept (least recently used dropped first), and idle
# contexts kept per configuration.
MAX_CONFIGS = 8
MAX_IDLE_PER_CONFIG = 4


class Context:
    """Owns one ``yoloxloss_context*``; used by one thread at a time."""

    created = 0  # contexts ever created (for tests and diagnostics)

    def __init__(self, cfg):
        ptr = _c.ContextPtr()
        status = _c.create(ctypes.byref(cfg), ctypes.byref(ptr))
        if status != _c.OK:
            raise_status(status, "yoloxloss_create")
        self.ptr = ptr
        self._destroy = _c.destroy  # kept for use during interpreter shutdown
        Context.created += 1

    def close(self):
        """Destroy the C context (once; later calls do nothing)."""
        ptr, self.ptr = self.ptr, None
        if ptr:
            self._destroy(ptr)

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class Pool:
    """Idle contexts of one configuration. acquire/release are lock-free
    (deque.append/pop are atomic), so release may run from ``__del__``."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.idle = collections.deque()
        self.closed = False

    def acquire(self):
        """An idle context, or a new one (may raise as ``raise_status``)."""
        try:
            return self.idle.pop()
        except IndexError:
            return Context(self.cfg)

    def release(self, context):
        """Give a context back: kept idle, or destroyed when the pool is
        full or was dropped from the LRU."""
        if self.closed or len(self.idle) >= MAX_IDLE_PER_CONFIG:
            context.close()
        else:
            self.idle.append(context)

    def close(self):
        """Destroy the idle contexts; contexts in use die when released."""
        self.closed = True
        while True:
            try:
                self.idle.pop().close()
            except IndexError:
                break


_pools = collections.OrderedDict()  # LossOptions -> Pool, least recently used first
_pools_lock = threading.Lock()


def pool_for(options):
    """The pool of ``options`` (a ``LossOptions``), created on first use.
    ValueError when the library refuses the configuration."""
    with _pools_lock:
        pool = _pools.get(options)
        if pool is not None:
            _pools.move_to_end(options)
            return pool
    cfg = options.to_c_config()  # may raise ValueError; outside the lock
    with _pools_lock:
        pool = _pools.get(options)
        if pool is None:
            pool = _pools[options] = Pool(cfg)
            while len(_pools) > MAX_CONFIGS:
                _, old = _pools.popitem(last=False)
                old.close()
        else:
            _pools.move_to_end(options)
        return pool
