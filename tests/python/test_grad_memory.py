#!/usr/bin/python3
"""Tests of the drop-in's gradient memory (python/yoloxloss/_grad_memory.py):
memory is reused only once no tensor can read it, a reused slab is fully
overwritten, the pool stays within its bounds, and the slabs are advised
as huge-page memory where the kernel offers it.

Run from anywhere:  /usr/bin/python3 tests/python/test_grad_memory.py [-v]
"""

import ctypes
import gc
import math
import os
import threading
import unittest

import torch

import repo_paths  # noqa: F401  (puts python/ on sys.path)
import yoloxloss
from yoloxloss import _grad_memory

STRIDES = (8, 16, 32)


def make_case(seed, images=2, size=256, classes=20, boxes=3):
    """Head outputs (plain tensors) and padded labels of a small scene."""
    gen = torch.Generator().manual_seed(seed)
    outputs = []
    for s in STRIDES:
        n = size // s
        x = 0.5 * torch.randn(images, 5 + classes, n, n, generator=gen)
        x[:, 4:] -= 3.0
        outputs.append(x)
    labels = torch.zeros(images, boxes + 2, 5)
    for b in range(images):
        for r in range(boxes):
            w, h = (float(v) for v in 24 + 80 * torch.rand(2, generator=gen))
            cx, cy = (float(v) for v in (size - 100) * torch.rand(2, generator=gen) + 50)
            labels[b, r] = torch.tensor([r % classes, cx, cy, w, h])
    return outputs, labels


def grads_of(outputs, labels):
    """Leaves cloned from outputs, the loss and backward; -> the leaves'
    .grad tensors (the drop-in's gradient views, kept by autograd)."""
    leaves = [o.clone().requires_grad_(True) for o in outputs]
    yoloxloss.yolox_loss(leaves, labels, STRIDES)[0].backward()
    return [x.grad for x in leaves]


def address_range(tensors):
    starts = [t.data_ptr() for t in tensors]
    ends = [t.data_ptr() + t.numel() * t.element_size() for t in tensors]
    return min(starts), max(ends)


def slab_span(slab):
    """The address range of a slab's usable bytes."""
    probe = ctypes.c_char.from_buffer(slab.mapping)
    base = ctypes.addressof(probe)
    del probe
    return base + slab.start, base + slab.start + slab.size


def overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1]


class PoolTest(unittest.TestCase):
    def setUp(self):
        gc.collect()
        _grad_memory.release_idle()


class TestReuse(PoolTest):
    def test_memory_is_reused_once_the_gradients_are_gone(self):
        outputs, labels = make_case(0)
        first = grads_of(outputs, labels)
        where = [g.data_ptr() for g in first]
        self.assertEqual(_grad_memory.idle_bytes(), 0, "a slab in use was pooled")
        del first
        self.assertGreater(_grad_memory.idle_bytes(), 0, "the freed slab did not return")
        created = _grad_memory.Slab.created
        second = grads_of(outputs, labels)
        self.assertEqual([g.data_ptr() for g in second], where)
        self.assertEqual(_grad_memory.Slab.created, created, "a new slab was mapped")

    def test_held_gradients_are_never_handed_out_again(self):
        (out_a, lab_a), (out_b, lab_b) = make_case(1), make_case(2)
        held = grads_of(out_a, lab_a)
        kept = [g.clone() for g in held]
        for _ in range(3):
            other = grads_of(out_b, lab_b)
            self.assertFalse(overlaps(address_range(held), address_range(other)),
                             "a held gradient's memory was given to another backward")
            del other
        for g, k in zip(held, kept):
            self.assertTrue(torch.equal(g, k), "a held gradient was overwritten")

    def test_a_view_of_one_gradient_keeps_the_whole_slab(self):
        outputs, labels = make_case(3)
        grads = grads_of(outputs, labels)
        span = address_range(grads)
        corner = grads[2][0, 4, :1, :1]  # a 1-element view of the last level
        value = corner.clone()
        del grads
        gc.collect()
        self.assertEqual(_grad_memory.idle_bytes(), 0, "a slab with a live view was pooled")
        other = grads_of(*make_case(4))
        self.assertFalse(overlaps(span, address_range(other)))
        self.assertTrue(torch.equal(corner, value))
        del corner
        self.assertGreater(_grad_memory.idle_bytes(), 0)

    def test_reused_memory_is_fully_overwritten(self):
        # Poison the pooled slab: a gradient element the library failed to
        # write would show as NaN, and the gradients would differ from a
        # run into fresh memory.
        outputs, labels = make_case(5)
        expected = [g.clone() for g in grads_of(outputs, labels)]
        gc.collect()
        with _grad_memory._lock:
            _grad_memory._drain_returned()
            slabs = list(_grad_memory._idle)
        self.assertEqual(len(slabs), 1)
        view = memoryview(slabs[0].mapping)[slabs[0].start:slabs[0].start + slabs[0].size]
        poison = torch.frombuffer(view, dtype=torch.float32)
        poison.fill_(math.nan)
        del poison, view
        grads = grads_of(outputs, labels)
        lo, hi = slab_span(slabs[0])
        self.assertTrue(lo <= address_range(grads)[0] and address_range(grads)[1] <= hi,
                        "the gradients are not in the poisoned slab")
        for g, e in zip(grads, expected):
            self.assertTrue(torch.isfinite(g).all(), "an element of a reused slab kept its old value")
            self.assertTrue(torch.equal(g, e))

    def test_gradients_through_a_layer_return_after_backward(self):
        # The head outputs of a trainer are not leaves: the gradients go
        # into the layer's backward and are free once it has run.
        outputs, labels = make_case(6)
        conv = torch.nn.Conv2d(25, 25, 1)
        created = _grad_memory.Slab.created
        for _ in range(3):
            outs = [conv(o) for o in outputs]
            yoloxloss.yolox_loss(outs, labels, STRIDES)[0].backward()
            del outs
        self.assertEqual(_grad_memory.Slab.created - created, 1, "each step mapped a new slab")

    def test_forked_child_writes_only_its_own_copy(self):
        # DataLoader workers are forked from the trainer: a slab must be
        # private memory, not shared with them.
        grads = _grad_memory.empty_tensors([(1024,)], torch.float32)
        grads[0].fill_(1.0)
        pid = os.fork()
        if pid == 0:  # the child
            grads[0].fill_(7.0)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)
        self.assertTrue(bool((grads[0] == 1.0).all()), "the child's write reached the parent")

    def test_threads_never_share_live_memory(self):
        cases = [make_case(10 + k) for k in range(3)]
        expected = [[g.clone() for g in grads_of(o, lab)] for o, lab in cases]
        errors, live, live_lock = [], [], threading.Lock()

        def worker(k):
            try:
                for it in range(5):
                    c = (k + it) % 3
                    grads = grads_of(*cases[c])
                    with live_lock:
                        span = address_range(grads)
                        if any(overlaps(span, other) for other in live):
                            errors.append("thread %d: memory shared with a live gradient" % k)
                        live.append(span)
                    if not all(torch.equal(g, e) for g, e in zip(grads, expected[c])):
                        errors.append("thread %d iteration %d: wrong gradient" % (k, it))
                    with live_lock:
                        live.remove(span)
                    del grads
            except Exception as exc:  # pragma: no cover
                errors.append("thread %d: %r" % (k, exc))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


class TestBounds(PoolTest):
    def test_idle_slabs_are_bounded_and_released(self):
        # More slabs than the pool keeps, all returned at once.
        held = [_grad_memory.empty_tensors([((1 << 20) * (k + 1),)], torch.float32)
                for k in range(_grad_memory.MAX_IDLE_SLABS + 2)]
        del held
        gc.collect()
        with _grad_memory._lock:
            _grad_memory._drain_returned()
        _grad_memory.empty_tensors([(16,)], torch.float32)  # a take trims the pool
        with _grad_memory._lock:
            self.assertLessEqual(len(_grad_memory._idle), _grad_memory.MAX_IDLE_SLABS)
        self.assertGreater(yoloxloss.release_gradient_memory(), 0)
        self.assertEqual(_grad_memory.idle_bytes(), 0)

    def test_layout_of_the_views(self):
        shapes = [(2, 85, 8, 8), (2, 4, 3, 3), (2, 1, 3, 3), (5,)]
        views = _grad_memory.empty_tensors(shapes, torch.float32)
        for v, s in zip(views, shapes):
            self.assertEqual(tuple(v.shape), s)
            self.assertTrue(v.is_contiguous())
            self.assertEqual(v.dtype, torch.float32)
            self.assertEqual(v.data_ptr() % _grad_memory.TENSOR_ALIGN, 0)
        spans = sorted((v.data_ptr(), v.data_ptr() + 4 * v.numel()) for v in views)
        for a, b in zip(spans, spans[1:]):
            self.assertLessEqual(a[1], b[0], "two gradient views overlap")

    def test_without_frombuffer_plain_tensors(self):
        saved = _grad_memory._HAVE_FROMBUFFER
        _grad_memory._HAVE_FROMBUFFER = False
        try:
            created = _grad_memory.Slab.created
            views = _grad_memory.empty_tensors([(3, 4)], torch.float32)
            self.assertEqual(tuple(views[0].shape), (3, 4))
            self.assertEqual(_grad_memory.Slab.created, created)
        finally:
            _grad_memory._HAVE_FROMBUFFER = saved


def anon_huge_kib(address):
    """AnonHugePages (KiB) of the mapping of this process holding address."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1])
    return None


class TestHugePages(PoolTest):
    def test_slab_is_backed_by_huge_pages(self):
        mode = _grad_memory.huge_pages_mode()
        if mode not in ("always", "madvise"):
            self.skipTest("transparent huge pages are %s here: slabs use 4 KiB pages" % mode)
        views = _grad_memory.empty_tensors([(4 * _grad_memory.HUGE_PAGE // 4,)], torch.float32)
        views[0].fill_(1.0)
        self.assertEqual(views[0].data_ptr() % _grad_memory.HUGE_PAGE, 0)
        kib = anon_huge_kib(views[0].data_ptr())
        self.assertIsNotNone(kib, "no mapping found for the slab")
        # The kernel may fall back to small pages when it has no free huge
        # page; the test asks only for one, which an idle machine always has.
        self.assertGreater(kib, 0, "the slab got no huge page (THP mode %s)" % mode)


if __name__ == "__main__":
    unittest.main()
