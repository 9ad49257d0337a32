#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_yoloxloss.c into tests/fuzz/corpus/.

Each seed follows the harness's byte layout (see LLVMFuzzerTestOneInput):
flags, classes, levels, 3 stride choices, assigner, iou_loss, topk, radius,
threads, images, then per level (shape, layout, head values), the gt count
of each image, per gt (class, 4 x 2-byte box values), one renormalize byte,
and optionally one byte that draws the padded form of the same labels
(fuzz_yoloxloss.c's check_padded_form: bit 0 on, bit 1 class last, bit 2
normalised, bit 3 six floats a row, bit 4 counts, bits 5-7 a variant).
A level's layout byte also holds its dtype code in bits 3-4 (0 float32,
1 float16, 2 bfloat16, 3 an unknown value); head values are one byte each
either way (two, raw, with flag bit 0 on a 16-bit level)."""
import os
import random
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def box(cx, cy, w, h):
    out = b""
    for v in (cx, cy, w, h):
        q = int(round((v + 128.0) * 64.0))
        out += bytes([(q >> 8) & 255, q & 255])
    return out


def tiny(k, m=0):
    """The harness's tiny box value (1 + m/8) 2^(-5k): a first byte of 0. As
    a centre it is negative when m is odd."""
    assert 0 <= k < 32 and 0 <= m < 8
    return bytes([0, (k << 3) | m])


def head(rng, n, extreme=False, sizes=None):
    if extreme:
        return bytes(rng.choice([255, 254, 253, 252, 251, 126]) for _ in range(n))
    if sizes:
        return bytes(rng.choice(sizes) for _ in range(n))
    return bytes(rng.randrange(96, 160) for _ in range(n))


def seed(rng, *, flags=0, C=3, L=2, grids=((4, 4), (2, 2)), split=(0, 0), B=2,
         gts=((2, 1)), assigner=0, iou=0, extreme=False, renorm=0, dtypes=(0, 0, 0), padded=None,
         sizes=None, boxes=None):
    data = bytes([flags, C - (0 if (flags >> 2) & 1 else 1), L - 1, 0, 1, 2, assigner, iou, 9, 0,
                  1, B - 1])
    for l in range(L):
        h, w = grids[l]
        data += bytes([h | (w << 3), split[l] | (dtypes[l] << 3)])
        n = B * (5 + C) * h * w
        if flags & 1 and dtypes[l] in (1, 2):  # raw 16-bit values
            data += bytes(rng.randrange(256) for _ in range(2 * n))
        else:
            data += head(rng, n, extreme, sizes)
    for b in range(B):
        data += bytes([gts[b]])
    labels = b""
    for i in range(sum(gts)):
        labels += bytes([rng.randrange(C)])
        if boxes is None:  # sizes of a few strides somewhere in the image
            labels += box(rng.uniform(2, 30), rng.uniform(2, 30), rng.uniform(3, 24), rng.uniform(3, 24))
        else:
            labels += boxes[i]
    return data + labels + bytes([renorm]) + (bytes([padded]) if padded is not None else b"")


def main():
    rng = random.Random(7)
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "basic": seed(rng),
        "giou_l1_legacy": seed(rng, flags=8, assigner=1, iou=1, renorm=0x13),
        "split_layout": seed(rng, split=(1, 1), renorm=0x06),
        "extreme_values": seed(rng, extreme=True, flags=8),
        "one_level_many_gts": seed(rng, L=1, grids=((2, 3),), split=(0,), B=1, gts=(5,)),
        "no_gts": seed(rng, B=3, gts=(0, 0, 0), L=1, grids=((3, 3),), split=(0,)),
        "three_levels": seed(rng, L=3, grids=((6, 6), (3, 3), (2, 2)), split=(0, 1, 0), B=1, gts=(3,)),
        "check_finite": seed(rng, flags=16, extreme=True),
        # the newer choices (fuzz_yoloxloss.c: a byte = 2 mod 3 picks them by
        # the rest of it): box losses, MMDetection's arithmetic, cost constants
        "iou_linear": seed(rng, iou=2 + 3 * 1),
        "diou_mmdet_odd_costs": seed(rng, assigner=2 + 3 * 3, iou=2 + 3 * 2),
        "ciou_mmdet": seed(rng, assigner=2 + 3 * 1, iou=2 + 3 * 3, flags=8),
        "eiou_legacy": seed(rng, assigner=1, iou=2 + 3 * 4, extreme=True),
        "siou_l1_mmdet_constants": seed(rng, assigner=2 + 3 * 6, iou=2 + 3 * 5, flags=8, renorm=0x13),
        # mixed precision: float16 / bfloat16 levels, each checked against
        # the float32 batch of the same values
        "float16_levels": seed(rng, dtypes=(1, 1), renorm=0x12),
        "bfloat16_split_accumulate": seed(rng, split=(1, 1), dtypes=(2, 2), renorm=0x06),
        "mixed_dtypes": seed(rng, L=3, grids=((6, 6), (3, 3), (2, 2)), split=(1, 0, 0), B=1, gts=(3,),
                             dtypes=(1, 2, 0), flags=8, assigner=1, iou=1),
        "float16_extremes_check_finite": seed(rng, flags=16, extreme=True, dtypes=(1, 2)),
        "float16_raw_bits": seed(rng, flags=1, dtypes=(1, 2)),
        "unknown_dtype": seed(rng, dtypes=(0, 3)),
        # the padded form of the labels against the flat batch (one byte at
        # the end): YOLOX's rows with counts, darknet's normalised rows with
        # end rows, six floats and an explicit image size, no end row; and
        # the lies it must refuse
        "padded_class_first_counts": seed(rng, padded=0x11),
        "padded_darknet_normalized": seed(rng, padded=0x07, flags=8),
        "padded_six_floats_explicit_size": seed(rng, L=3, grids=((6, 6), (3, 3), (2, 2)), split=(0, 1, 0),
                                                B=1, gts=(3,), padded=0x2d, flags=8),
        "padded_no_end_row": seed(rng, B=3, gts=(2, 0, 1), L=1, grids=((3, 3),), split=(0,), padded=0xe3),
        "padded_count_out_of_range": seed(rng, padded=0x91),
        "padded_hole_after_end_row": seed(rng, padded=0x81),
        "padded_zero_centre": seed(rng, padded=0xa5),
        "padded_zero_row_in_count": seed(rng, dtypes=(1, 2), padded=0xd1),
        # tiny gt boxes near 0: 3.0e-23 x 2.6e-23 px (area 2^-149, the smallest
        # float32 holds), 2.2e-44 x 8 px and 7.9e-31 x 2.8e-14 px, against
        # predictions of size 0 (tw = -100), of a few pixels and of 4e7 px
        # (tw = 15.5), SIoU and L1: accepted, so loss and gradient must be finite
        "tiny_boxes_smallest_areas": seed(
            rng, L=1, grids=((2, 2),), split=(0,), B=1, gts=(3,), iou=2 + 3 * 5, flags=8,
            sizes=[254, 126, 110, 140, 250],
            boxes=[box(0, 0, 0, 0)[:4] + tiny(15, 1) + tiny(15),
                   tiny(29, 1) + box(0, 0, 0, 0)[2:4] + tiny(29) + box(0, 0, 0, 8)[6:8],
                   tiny(20) + tiny(20, 3) + tiny(20) + tiny(9)]),
        # a gt box of 2^-75 x 2^-75 px: its area 2^-150 underflows to 0, so
        # the forward must refuse it
        "tiny_box_area_underflow": seed(rng, L=1, grids=((2, 2),), split=(0,), B=1, gts=(2,),
                                        boxes=[box(10, 10, 6, 6), box(0, 0, 0, 0)[:4] + tiny(15) + tiny(15)]),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds), OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
