#!/usr/bin/python3
"""The reference check of the inference path: yoloxloss_decode and
yoloxloss_detect (through yolox_decode and yolox_detect) against YOLOX's
decode_outputs and postprocess as decode_reference.py writes them from
their semantics, and against torchvision's nms / batched_nms as YOLOX calls
them, on random heads: float32, float16, bfloat16 and mixed levels, fused
and split, both arithmetics, 3 or 4 levels, several thresholds, class aware
and agnostic, one and two threads.

What may differ, and nothing else:
  * the library's sigmoid and exp are SLEEF's: each exp(t) may be one
    float32 ulp from torch.exp's. The check reads the library's own
    probabilities back (a decode of the same head with the class logits,
    then the objectness, saturated at 100, whose sigmoid is exactly 1) and
    requires each to be 1 / (1 + e) in float32 for an e within 1 ulp of
    torch.exp(-x) (torch.sigmoid's own kernel can land 2 ulps from it: the
    count is printed), every score their float32 product, every box size
    within 1 ulp of torch.exp(t) * s and every box centre bitwise;
  * on the library's own probabilities and boxes, the detections must be
    the reference's bitwise (the exact rule: equal scores ranked by anchor
    index, NMS per class on the boxes' own coordinates);
  * torchvision's ops on the same values, and the reference on torch's
    sigmoid, may differ only where decode_reference.ambiguity() finds a
    reason: a tie of scores (torchvision's sort is not stable), an IoU on
    the other side of the threshold after batched_nms's coordinate shift,
    a score or IoU within rounding of its threshold, two scores or class
    probabilities within rounding of each other; and only in detections
    linked to such a place (explain_difference()).

usage: check_decode.py [--cases N] [--seed S] [--isa NAME] [--quick]
Exits 0 when every case passes, 1 otherwise, 77 (ctest: Skipped) when
torchvision is missing or the library lacks the --isa.
"""

import argparse
import math
import os
import sys
import time

import repo_paths  # noqa: F401  (puts python/ and tests/reference/ first on sys.path)

SKIP = 77


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--isa", metavar="NAME", help="set $YOLOXLOSS_ISA=NAME for the library's kernels")
    ap.add_argument("--quick", action="store_true", help="smaller images (for slow runners)")
    return ap.parse_args()


import torch  # noqa: E402

import yoloxloss  # noqa: E402

import decode_reference as ref  # noqa: E402
from check_runs import isa_supported  # noqa: E402

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def ulps(a, b):
    """Distance in float32 ulps, elementwise (int64); NaN equals NaN, and
    +-0 are one value."""
    ia = a.contiguous().view(torch.int32).to(torch.int64)
    ib = b.contiguous().view(torch.int32).to(torch.int64)
    ka = torch.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    kb = torch.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    d = (ka - kb).abs()
    both_nan = torch.isnan(a) & torch.isnan(b)
    return torch.where(both_nan, torch.zeros_like(d), d)


def neighbours(x):
    """x and the float32 numbers on either side of it."""
    return (torch.nextafter(x, torch.tensor(-math.inf)), x, torch.nextafter(x, torch.tensor(math.inf)))


def sigmoid_formula(p, logit):
    """Elementwise: is p the float32 1 / (1 + e) for an e within one ulp of
    torch.exp(-logit)? That is the library's sigmoid with SLEEF's 1-ulp exp
    (torch.sigmoid's kernel takes another exp, so its result can lie 2
    ulps from this one)."""
    one = torch.ones((), dtype=torch.float32)
    ok = torch.zeros_like(p, dtype=torch.bool)
    for e in neighbours(torch.exp(-logit)):
        ok |= (one / (one + e) == p) | (torch.isnan(p) & torch.isnan(logit))
    return ok


class Case:
    """One random head and how it is handed to the library."""

    def __init__(self, g, quick):
        pick = lambda seq: seq[int(torch.randint(len(seq), (1,), generator=g))]  # noqa: E731
        self.images = int(torch.randint(1, 4, (1,), generator=g))
        self.classes = pick((1, 2, 5, 13, 80))
        self.strides = pick(((8, 16, 32), (8, 16, 32), (8, 16, 32, 64)))
        top = self.strides[-1]
        sizes = (64, 128) if quick else (64, 128, 192, 256)
        self.height, self.width = pick(sizes), pick(sizes)
        self.height, self.width = max(self.height, top), max(self.width, top)
        self.arithmetic = pick(("yolox", "mmdet"))
        mix = pick(("same", "same", "mixed"))
        base = pick(DTYPES)
        self.dtypes = [base if mix == "same" else pick(DTYPES) for _ in self.strides]
        self.split = [bool(torch.rand(1, generator=g) < 0.4) for _ in self.strides]
        self.threads = pick((1, 2))
        self.ties = bool(torch.rand(1, generator=g) < 0.4)  # logits on a coarse grid: many equal scores
        self.levels = []  # float32 (reg, obj, cls) of the values the library reads
        for s, dt in zip(self.strides, self.dtypes):
            H, W = self.height // s, self.width // s
            B, C = self.images, self.classes
            reg = torch.empty(B, 4, H, W)
            reg[:, :2] = -1 + 3 * torch.rand(B, 2, H, W, generator=g)
            reg[:, 2:] = 0.5 + 0.8 * torch.randn(B, 2, H, W, generator=g)
            obj = -1 + 2.5 * torch.randn(B, 1, H, W, generator=g)
            cls = -1 + 2.5 * torch.randn(B, C, H, W, generator=g)
            if self.ties:
                obj, cls = torch.round(obj * 2) / 2, torch.round(cls * 2) / 2
                # some anchors copy their right neighbour's box (one cell to
                # the left, tx one larger) and logits: equal scores, IoU ~ 1
                dup = torch.rand(B, H, W - 1, generator=g) < 0.1
                for t, shift in ((reg, (1.0, 0.0, 0.0, 0.0)), (obj, (0.0,)), (cls, (0.0,) * C)):
                    for c in range(t.shape[1]):
                        t[:, c, :, :-1] = torch.where(dup, t[:, c, :, 1:] + shift[c], t[:, c, :, :-1])
            sat = torch.rand(B, C, H, W, generator=g) < 0.01
            cls[sat] = 40.0  # saturated: sigmoid 1, ties across classes
            # what the library reads: the values rounded into the level's dtype
            self.levels.append(tuple(t.to(dt).float() for t in (reg, obj, cls)))
        self.conf = pick((0.001, 0.05, 0.25, 0.5, 0.7))
        self.nms = pick((0.3, 0.45, 0.65))
        self.agnostic = bool(torch.rand(1, generator=g) < 0.25)

    def outputs(self, obj_value=None, cls_value=None):
        """The head as yoloxloss takes it (each level in its dtype, fused or
        split); obj_value / cls_value replace every objectness / class logit."""
        out = []
        for (reg, obj, cls), dt, split in zip(self.levels, self.dtypes, self.split):
            if obj_value is not None:
                obj = torch.full_like(obj, obj_value)
            if cls_value is not None:
                cls = torch.full_like(cls, cls_value)
            if split:
                out.append((reg.to(dt), obj.to(dt), cls.to(dt)))
            else:
                out.append(torch.cat([reg, obj, cls], 1).to(dt))
        return out

    def describe(self):
        names = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
        return ("B=%d C=%d %dx%d strides=%s %s dtypes=%s split=%s threads=%d%s conf=%g nms=%g%s"
                % (self.images, self.classes, self.height, self.width, self.strides, self.arithmetic,
                   "/".join(names[d] for d in self.dtypes), "".join("s" if s else "f" for s in self.split),
                   self.threads, " ties" if self.ties else "", self.conf, self.nms,
                   " agnostic" if self.agnostic else ""))


class Tally:
    def __init__(self):
        self.failures = []
        self.counts = dict(images=0, detections=0, exact=0, tv_identical=0, tv_explained=0,
                           torch_identical=0, torch_explained=0, prob_values=0, prob_bitwise=0,
                           wh_values=0, wh_bitwise=0, prob_max_ulps=0)

    def fail(self, case, what):
        self.failures.append("%s: %s" % (case.describe(), what))


def library_values(outputs, **kw):
    """The library's decode of a head, outputs(obj_value=None, cls_value=None)
    giving the head with its objectness or class logits replaced: (boxes,
    scores, obj probabilities [B, A], class probabilities [B, A, C]), the
    probabilities read from two more decodes where the other logit is 100,
    whose sigmoid is exactly 1 (so each score is the probability itself)."""
    boxes, scores = yoloxloss.yolox_decode(outputs(), **kw)
    cls_p = yoloxloss.yolox_decode(outputs(obj_value=100.0), **kw)[1]
    obj_p = yoloxloss.yolox_decode(outputs(cls_value=100.0), **kw)[1][..., 0]
    return boxes, scores, obj_p, cls_p


def check_decode(case, t):
    """Boxes, probabilities and scores against the reference; returns the
    library's (boxes, obj probabilities, class probabilities)."""
    kw = dict(strides=case.strides, num_threads=case.threads, preset=case.arithmetic, check_finite=False)
    boxes, scores, obj_p, cls_p = library_values(case.outputs, **kw)
    r_boxes, r_obj, r_cls = ref.decode(case.levels, case.strides, case.arithmetic)
    if not torch.equal(boxes[..., :2], r_boxes[..., :2]):
        t.fail(case, "box centres differ from the reference")
    wh = ulps(boxes[..., 2:], r_boxes[..., 2:])
    if int(wh.max()) > 1:
        t.fail(case, "a box size is %d ulps from torch.exp(t) * s" % int(wh.max()))
    t.counts["wh_values"] += wh.numel()
    t.counts["wh_bitwise"] += int((wh == 0).sum())
    for name, mine, logit in (("objectness", obj_p, r_obj), ("class", cls_p, r_cls)):
        if not bool(sigmoid_formula(mine, logit).all()):
            t.fail(case, "a %s probability is not 1 / (1 + exp(-x)) with exp(-x) within 1 ulp of torch.exp's"
                   % name)
        d = ulps(mine, torch.sigmoid(logit))
        t.counts["prob_values"] += d.numel()
        t.counts["prob_bitwise"] += int((d == 0).sum())
        t.counts["prob_max_ulps"] = max(t.counts["prob_max_ulps"], int(d.max()))
    if not torch.equal(scores, obj_p[..., None] * cls_p):
        t.fail(case, "a score is not sigmoid(obj) * sigmoid(cls) of the library's own probabilities")
    return boxes, obj_p, cls_p, (r_boxes, torch.sigmoid(r_obj), torch.sigmoid(r_cls))


def check_detect(case, t, lib, torch_values):
    boxes, obj_p, cls_p = lib
    r_boxes, r_obj, r_cls = torch_values
    dets = yoloxloss.yolox_detect(case.outputs(), case.strides, case.conf, case.nms, case.agnostic,
                                  num_threads=case.threads, preset=case.arithmetic, check_finite=False)
    capped = yoloxloss.yolox_detect(case.outputs(), case.strides, case.conf, case.nms, case.agnostic,
                                    max_detections=3, num_threads=case.threads, preset=case.arithmetic,
                                    check_finite=False)
    for b in range(case.images):
        t.counts["images"] += 1
        cand = ref.candidates(boxes[b], obj_p[b], cls_p[b], case.conf)
        kept = ref.postprocess_exact(cand, case.nms, case.agnostic)
        want = ref.rows(cand, kept)
        got = dets[b]
        if (got is None) != (want is None) or (got is not None and not torch.equal(got, want)):
            t.fail(case, "image %d: detections differ from the reference on the library's own values "
                   "(%s rows, reference %s)" % (b, None if got is None else len(got),
                                                 None if want is None else len(want)))
            continue
        t.counts["exact"] += 1
        t.counts["detections"] += 0 if got is None else len(got)
        cap = capped[b]
        if (got is None) != (cap is None) or (got is not None and not torch.equal(cap, got[:3])):
            t.fail(case, "image %d: max_detections=3 does not give the first 3 detections" % b)

        # torchvision's ops, as YOLOX calls them, on the same values
        kept_tv, shifted = ref.postprocess_torchvision(cand, case.nms, case.agnostic)
        universe, amb, linked = ref.ambiguity(cand, cand, case.nms, case.agnostic, ties_ambiguous=True,
                                              shifted=shifted)
        ok, why = ref.explain_difference(cand.anchor[kept], cand.score[kept], cand.anchor[kept_tv],
                                         cand.score[kept_tv], universe, amb, linked)
        if not ok:
            t.fail(case, "image %d: torchvision's %s differs unexplained: %s"
                   % (b, "nms" if case.agnostic else "batched_nms", why))
        t.counts["tv_identical" if why == "identical" else "tv_explained"] += 1

        # the reference on torch's own sigmoid and exp
        cand_t = ref.candidates(r_boxes[b], r_obj[b], r_cls[b], case.conf)
        kept_t = ref.postprocess_exact(cand_t, case.nms, case.agnostic)
        universe, amb, linked = ref.ambiguity(cand, cand_t, case.nms, case.agnostic, ties_ambiguous=False)
        ok, why = ref.explain_difference(cand.anchor[kept], cand.score[kept], cand_t.anchor[kept_t],
                                         cand_t.score[kept_t], universe, amb, linked)
        if not ok:
            t.fail(case, "image %d: the reference on torch.sigmoid differs unexplained: %s" % (b, why))
        t.counts["torch_identical" if why == "identical" else "torch_explained"] += 1


def selftest():
    """explain_difference accepts what ambiguity() explains and refuses the
    rest, on hand-made candidates of one image: boxes 0 and 1 overlap
    (IoU 0.6), box 2 is apart."""
    f = lambda *v: torch.tensor(v, dtype=torch.float32)  # noqa: E731

    def cands(scores, classes=(0, 0, 0)):
        return ref.Candidates(torch.tensor([3, 5, 9]), f(8, 12, 100), f(8, 8, 8), f(24, 28, 116), f(24, 24, 24),
                              f(1, 1, 1), torch.tensor(scores, dtype=torch.float32),
                              torch.tensor(classes), torch.tensor(scores, dtype=torch.float32))

    def explained(ca, kept_a, cb, kept_b, ties):
        u, amb, linked = ref.ambiguity(ca, cb, 0.45, False, ties_ambiguous=ties)
        return ref.explain_difference(ca.anchor[kept_a], ca.score[kept_a], cb.anchor[kept_b], cb.score[kept_b],
                                      u, amb, linked)[0]

    tie, apart = cands((0.8, 0.8, 0.5)), cands((0.9, 0.8, 0.5))
    k = lambda *v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    checks = [
        ("a tie broken the other way, with unstable ties", explained(tie, k(0, 2), tie, k(1, 2), True), True),
        ("a tie broken the other way, both stable", explained(tie, k(0, 2), tie, k(1, 2), False), False),
        ("the lower score kept instead", explained(apart, k(0, 2), apart, k(1, 2), True), False),
        ("a box apart dropped", explained(apart, k(0, 2), apart, k(0,), True), False),
        ("a result out of score order", explained(apart, k(2, 0), apart, k(2, 0), True), False),
        ("the second score within rounding above the first",
         explained(apart, k(0, 2), cands((0.9, 0.90000004, 0.5)), k(1, 2), False), True),
        ("the second box's class differs in one computation",
         explained(apart, k(0, 2), cands((0.9, 0.8, 0.5), (0, 1, 0)), k(0, 1, 2), False), True),
        ("box 2 below the threshold in one computation",
         explained(apart, k(0, 2), ref.Candidates(*(v[:2] for v in apart)), k(0,), False), True),
    ]
    bad = [what for what, got, want in checks if got != want]
    for what in bad:
        print("FAIL: selftest: %s is %s" % (what, "explained" if not dict((w, g) for w, g, _ in checks)[what]
                                            else "not explained"))
    return not bad


def main():
    global args
    args = parse_args()
    if args.isa:
        os.environ["YOLOXLOSS_ISA"] = args.isa  # read by the library when it creates a context
    try:
        import torchvision  # noqa: F401
    except ImportError as exc:
        print("SKIPPED: torchvision cannot be imported (%s); install python3-torchvision "
              "(scripts/install-deps.sh)" % exc)
        return SKIP
    if not selftest():
        return 1
    if args.isa and not isa_supported(yoloxloss.library_path(), args.isa):
        print("NOT TESTED: this build or this CPU has no %s kernels" % args.isa)
        return SKIP
    start = time.time()
    g = torch.Generator().manual_seed(args.seed)
    t = Tally()
    for k in range(args.cases):
        case = Case(g, args.quick)
        before = len(t.failures)
        lib_boxes, obj_p, cls_p, torch_values = check_decode(case, t)
        check_detect(case, t, (lib_boxes, obj_p, cls_p), torch_values)
        if len(t.failures) > before:
            print("case %d FAILED: %s" % (k, case.describe()))
    c = t.counts
    print("library %s, ISA %s; %d cases, %d images, %d detections in %.0f s"
          % (yoloxloss.library_path(), os.environ.get("YOLOXLOSS_ISA") or "auto", args.cases, c["images"],
             c["detections"], time.time() - start))
    print("decode: %d of %d probabilities bitwise torch.sigmoid's (the rest at most %d ulps apart), %d of %d "
          "box sizes bitwise torch.exp(t) * s's (the rest 1 ulp)"
          % (c["prob_bitwise"], c["prob_values"], c["prob_max_ulps"], c["wh_bitwise"], c["wh_values"]))
    print("detect: %d of %d images bitwise the reference on the library's values; torchvision's ops: "
          "%d identical, %d explained; the reference on torch.sigmoid: %d identical, %d explained"
          % (c["exact"], c["images"], c["tv_identical"], c["tv_explained"], c["torch_identical"],
             c["torch_explained"]))
    for f in t.failures:
        print("FAIL:", f)
    if not t.failures and c["detections"] == 0:
        print("FAIL: no case produced a detection")
        return 1
    return 1 if t.failures else 0


if __name__ == "__main__":
    sys.exit(main())
