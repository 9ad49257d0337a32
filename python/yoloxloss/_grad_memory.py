"""Memory for the gradient tensors the drop-in hands to autograd.

A fresh gradient tensor from PyTorch's allocator is memory the kernel has
not mapped yet: the first write to every 4 KiB page costs a page fault,
which for the tens of megabytes of a detection batch takes longer than the
whole loss. So the gradients of one backward are views of one *slab*: an
anonymous mapping, advised to the kernel as huge-page memory
(``MADV_HUGEPAGE``: one fault per 2 MiB where transparent huge pages are
enabled), and reused by a later backward once nothing can read it any more.

Why reuse is safe: a slab's memory reaches PyTorch only through one
``memoryview`` (the *holder*) given to ``torch.frombuffer``. The tensor
storage keeps a reference to the holder for as long as the storage lives,
and nothing else does (this module drops its own at once); every gradient
view, a ``.grad`` that autograd stole, a tensor a hook kept, shares that
storage. So the holder dies exactly when the last tensor that could read
the slab is gone, and only then does its weakref finalizer put the slab
back in the pool. This is reference counting, not a guess: a gradient the
caller still holds keeps its slab out of the pool, and the next backward
gets another.

The finalizer may run in any thread, at any moment (inside the garbage
collector, or inside this module's own code): it only appends to a deque,
which is atomic. Everything else happens under ``_lock`` in ``take``.
Idle slabs are kept up to ``MAX_IDLE_SLABS`` and ``MAX_IDLE_BYTES`` (the
least recently returned are unmapped first); ``release_idle`` unmaps them
all.
"""

import collections
import ctypes
import mmap
import threading
import weakref

import torch

__all__ = []  # private module

MAX_IDLE_SLABS = 4
MAX_IDLE_BYTES = 1 << 30
# Offsets of the tensors inside a slab: a cache line, so each gradient
# starts as aligned as a fresh allocation would.
TENSOR_ALIGN = 64
PAGE = mmap.PAGESIZE


def _huge_page_size():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 2 << 20


HUGE_PAGE = _huge_page_size()
_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)
# torch.frombuffer came with PyTorch 1.10; without it gradients are plain
# torch.empty tensors (correct, with the page faults).
_HAVE_FROMBUFFER = hasattr(torch, "frombuffer")


def huge_pages_mode():
    """The kernel's transparent huge page mode ("always", "madvise",
    "never"), or None where the kernel does not say."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


class Slab:
    """One anonymous mapping; ``size`` usable bytes from offset ``start``
    (aligned to a huge page when the slab is at least one huge page)."""

    __slots__ = ("mapping", "start", "size")
    created = 0  # slabs ever mapped (for tests and diagnostics)

    def __init__(self, size):
        aligned = size >= HUGE_PAGE
        slack = HUGE_PAGE if aligned else 0
        # Private: shared anonymous memory is shmem, which has its own huge
        # page setting (usually off) and would be shared with forked children.
        self.mapping = mmap.mmap(-1, size + slack, flags=mmap.MAP_PRIVATE)
        self.size = size
        self.start = 0
        if aligned:
            probe = ctypes.c_char.from_buffer(self.mapping)
            address = ctypes.addressof(probe)
            del probe  # a live export would keep the mapping from closing
            self.start = -address % HUGE_PAGE
            if _MADV_HUGEPAGE is not None:
                try:
                    self.mapping.madvise(_MADV_HUGEPAGE, self.start, size)
                except OSError:
                    pass  # a kernel without THP: ordinary pages, same results
        Slab.created += 1

    def close(self):
        """Unmap now if nothing exports the mapping; otherwise the mapping
        goes when its last export does."""
        try:
            self.mapping.close()
        except BufferError:
            pass


_lock = threading.Lock()
_idle = []                           # Slab, least recently returned first
_returned = collections.deque()      # filled by finalizers, drained under _lock


def _slab_bytes(nbytes):
    """The slab size for nbytes: whole huge pages from one huge page up,
    whole pages below, so that nearby requests share idle slabs."""
    unit = HUGE_PAGE if nbytes >= HUGE_PAGE else PAGE
    return max(unit, -(-nbytes // unit) * unit)


def _drain_returned():
    while True:
        try:
            _idle.append(_returned.popleft())
        except IndexError:
            return


def _trim():
    total = sum(s.size for s in _idle)
    while _idle and (len(_idle) > MAX_IDLE_SLABS or total > MAX_IDLE_BYTES):
        slab = _idle.pop(0)
        total -= slab.size
        slab.close()


def _take(size):
    """An idle slab of exactly ``size`` bytes, or a new one."""
    with _lock:
        _drain_returned()
        slab = None
        for i in range(len(_idle) - 1, -1, -1):
            if _idle[i].size == size:
                slab = _idle.pop(i)
                break
        _trim()
    return slab if slab is not None else Slab(size)


def _give_back(slab):
    _returned.append(slab)


def empty_tensors(shapes, dtypes):
    """Uninitialised contiguous tensors, one per shape, as views of one slab;
    dtypes is one dtype for all or one per shape (mixed-precision levels).
    The slab returns to the pool when the last of them (or of any tensor
    sharing their storage) is freed."""
    if isinstance(dtypes, torch.dtype):
        dtypes = [dtypes] * len(shapes)
    shapes = [tuple(int(n) for n in shape) for shape in shapes]
    offsets, nbytes = [], 0
    for shape, dtype in zip(shapes, dtypes):
        nbytes = -(-nbytes // TENSOR_ALIGN) * TENSOR_ALIGN  # also every dtype's alignment
        offsets.append(nbytes)
        count = 1
        for n in shape:
            count *= n
        nbytes += count * torch.empty((), dtype=dtype).element_size()
    if not _HAVE_FROMBUFFER or nbytes == 0:
        return [torch.empty(s, dtype=d) for s, d in zip(shapes, dtypes)]
    slab = _take(_slab_bytes(nbytes))
    whole = memoryview(slab.mapping)
    holder = whole[slab.start:slab.start + slab.size]
    whole.release()
    # The finalizer holds the slab (so its mapping lives while views do)
    # and only a weak reference to the holder.
    finalizer = weakref.finalize(holder, _give_back, slab)
    finalizer.atexit = False
    flat = torch.frombuffer(holder, dtype=torch.uint8)
    del holder  # from here on only the tensor storage keeps it alive
    result = []
    for shape, dtype, first in zip(shapes, dtypes, offsets):
        count = 1
        for n in shape:
            count *= n
        size = count * torch.empty((), dtype=dtype).element_size()
        result.append(flat[first:first + size].view(dtype).view(shape))
    return result


def idle_bytes():
    """Bytes of slabs waiting in the pool (returned ones included)."""
    with _lock:
        _drain_returned()
        return sum(s.size for s in _idle)


def release_idle():
    """Unmap every idle slab; -> the bytes released. Slabs still in use are
    not touched; they are unmapped or pooled when their tensors go."""
    with _lock:
        _drain_returned()
        slabs, _idle[:] = list(_idle), []
    for slab in slabs:
        slab.close()
    return sum(s.size for s in slabs)
