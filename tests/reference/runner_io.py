"""check_reference.py --runner CMD: runs each case through an external
program instead of the ctypes drop-in, for builds Python cannot load (an
aarch64 build under qemu-user). The program is tests/reference/run_case.c;
its header comment defines the two files exchanged here. This module writes
a case the way the drop-in would hand it to the C library and reads back
what the drop-in path would return: loss terms, one gradient per autograd
leaf, and the assignment.
"""

import os
import shlex
import struct
import subprocess
import tempfile

import numpy as np
import torch

CASE_MAGIC = b"YXCASE3\0"
OUT_MAGIC = b"YXOUT2\0\0"
ASSIGNER_IDS = {"yolox": 0, "yolox-legacy": 1}     # yoloxloss_assigner
IOU_LOSS_IDS = {"iou": 0, "giou": 1, "iou-linear": 2, "diou": 3, "ciou": 4, "eiou": 5,
                "siou": 6}                          # yoloxloss_iou_loss
ARITHMETIC_IDS = {"yolox": 0, "mmdet": 1}          # yoloxloss_arithmetic
DTYPE_IDS = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}  # yoloxloss_dtype
RUN_TIMEOUT_S = 900


def used_labels(labels):
    """YOLOX's padded labels -> (num_gt int32 [B], classes int32 [T], boxes
    float32 [T, 4]), by the drop-in's rule: image b uses its first n_b rows,
    n_b = rows whose float32 sum is > 0."""
    n = (labels.sum(dim=2) > 0).sum(dim=1)
    mask = torch.arange(labels.shape[1])[None, :] < n[:, None]
    used = labels[mask]
    return (n.to(torch.int32), used[:, 0].to(torch.int64).to(torch.int32),
            used[:, 1:5].to(torch.float32).contiguous())


def _level_parts(case, o):
    """The buffers the drop-in gives the library for one level: the fused
    tensor, or (for split layouts, views included) reg, obj, cls copied to
    contiguous memory."""
    if case["layout"] == "fused":
        return [o]
    return [o[:, :4], o[:, 4:5], o[:, 5:]]


def level_dtypes(case, as_float32=False):
    """Each level's dtype: the case's own ("dtypes", float32 if absent), or
    float32 for every level."""
    dtypes = case.get("dtypes") or [torch.float32] * len(case["strides"])
    return [torch.float32] * len(dtypes) if as_float32 else list(dtypes)


def _tensor_bytes(t, dtype):
    """t's values in dtype, little-endian, padded to a multiple of 4 bytes."""
    t = t.contiguous().to(dtype)
    if dtype == torch.float32:
        data = np.ascontiguousarray(t.numpy(), dtype="<f4").tobytes()
    else:
        data = np.ascontiguousarray(t.view(torch.int16).numpy(), dtype="<i2").tobytes()
    return data + b"\0" * (-len(data) % 4)


def write_case(path, case, as_float32=False):
    num_gt, classes, boxes = used_labels(case["labels"])
    B, C, L = case["B"], case["C"], len(case["strides"])
    dtypes = level_dtypes(case, as_float32)
    with open(path, "wb") as f:
        f.write(CASE_MAGIC)
        f.write(struct.pack("<8i", B, C, L, int(classes.numel()), ASSIGNER_IDS[case["assigner"]],
                            IOU_LOSS_IDS[case["iou_loss"]], int(case["use_l1"]), case["num_threads"]))
        f.write(struct.pack("<9f", *case["weights"], *case["upstream"]))
        f.write(struct.pack("<2fi", case.get("cost_iou_eps", 1e-8), case.get("cost_penalty") or 0.0,
                            ARITHMETIC_IDS[case.get("arithmetic", "yolox")]))
        for s, (h, w), dt in zip(case["strides"], case["shapes"], dtypes):
            f.write(struct.pack("<f4i", float(s), h, w, 1 if case["layout"] == "fused" else 0, DTYPE_IDS[dt]))
        f.write(np.ascontiguousarray(num_gt.numpy(), dtype="<i4"))
        f.write(np.ascontiguousarray(classes.numpy(), dtype="<i4"))
        f.write(np.ascontiguousarray(boxes.numpy(), dtype="<f4"))
        for o, dt in zip(case["outs"], dtypes):
            for part in _level_parts(case, o):
                f.write(_tensor_bytes(part, dt))
    return num_gt


class _Reader:
    def __init__(self, path):
        self.path = path
        self.buf = open(path, "rb").read()
        self.pos = 0

    def take(self, dtype, count):
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.buf):
            raise RuntimeError("runner output %s is %d bytes, too short (need %d at offset %d)"
                               % (self.path, len(self.buf), size, self.pos))
        a = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return a


def _take_values(r, dtype, count):
    """count elements of dtype from the reader, as float64 (exactly)."""
    if dtype == torch.float32:
        return torch.from_numpy(r.take("<f4", count).astype(np.float64))
    raw = r.take("<u2", count)
    if dtype == torch.float16:
        return torch.from_numpy(raw.view("<f2").astype(np.float64))
    return torch.from_numpy((raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64))


def read_output(path, case, num_gt, as_float32=False):
    """-> dict(terms=[6 floats], grads=[float64 tensor per leaf, of values of
    the level's dtype], matched int64 [B, A], pred_iou float32 [B, A],
    dynamic_k=[int64 tensor [n_b] per image])"""
    B, C, A = case["B"], case["C"], case["A"]
    r = _Reader(path)
    if r.take("u1", len(OUT_MAGIC)).tobytes() != OUT_MAGIC:
        raise RuntimeError("runner output %s does not start with %r" % (path, OUT_MAGIC))
    terms = [float(v) for v in r.take("<f4", 6)]
    matched = torch.from_numpy(r.take("<i4", B * A).reshape(B, A).astype(np.int64))
    pred_iou = torch.from_numpy(r.take("<f4", B * A).reshape(B, A).copy())
    counts = [int(n) for n in num_gt]
    dynamic_k = list(torch.from_numpy(r.take("<i4", sum(counts)).astype(np.int64)).split(counts))
    grads = []
    for (h, w), dt in zip(case["shapes"], level_dtypes(case, as_float32)):
        g = _take_values(r, dt, B * (5 + C) * h * w)
        if case["layout"] == "fused":
            grads.append(g.reshape(B, 5 + C, h, w))
            continue
        hw = h * w
        parts = [g[:B * 4 * hw].reshape(B, 4, h, w), g[B * 4 * hw:B * 5 * hw].reshape(B, 1, h, w),
                 g[B * 5 * hw:].reshape(B, C, h, w)]
        if case["layout"] == "split-views":  # the three views share one fused leaf
            grads.append(torch.cat(parts, dim=1))
        else:
            grads.extend(parts)
    if r.pos != len(r.buf):
        raise RuntimeError("runner output %s has %d bytes, expected %d" % (path, len(r.buf), r.pos))
    return dict(terms=terms, grads=grads, matched=matched, pred_iou=pred_iou, dynamic_k=dynamic_k)


class Runner:
    """Runs `command CASE_FILE OUT_FILE` once per case (and once more in
    float32, as_float32, for a case with 16-bit levels), in a private
    temporary directory, and keeps the results on the case."""

    def __init__(self, command):
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("--runner needs a command")
        self.tmp = tempfile.TemporaryDirectory(prefix="yoloxloss-runner-")

    def run(self, case, as_float32=False):
        key = "runner_result_float32" if as_float32 else "runner_result"
        if key in case:
            return case[key]
        case_path = os.path.join(self.tmp.name, "case.bin")
        out_path = os.path.join(self.tmp.name, "out.bin")
        num_gt = write_case(case_path, case, as_float32)
        if os.path.exists(out_path):
            os.remove(out_path)
        try:
            proc = subprocess.run(self.argv + [case_path, out_path], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError("runner took more than %d s on case %d" % (RUN_TIMEOUT_S, case["idx"]))
        if proc.returncode != 0:
            raise RuntimeError("runner %s exited with status %d: %s"
                               % (" ".join(self.argv), proc.returncode,
                                  proc.stdout.decode("utf-8", "replace").strip()))
        case[key] = read_output(out_path, case, num_gt, as_float32)
        os.remove(case_path)
        os.remove(out_path)
        return case[key]

    def close(self):
        self.tmp.cleanup()
