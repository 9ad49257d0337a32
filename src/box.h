/* Boxes as YOLOX handles them: centre x, centre y, width, height, pixels.
 *
 * decode:        raw (tx, ty, tw, th) at grid cell (i, j) of stride s ->
 *                ((tx + j) s, (ty + i) s, exp(tw) s, exp(th) s), or with
 *                MMDetection's arithmetic (tx s + j s, ty s + i s, ...).
 * pair_iou:      the assignment's IoU (no epsilon), as YOLOX's bboxes_iou;
 *                pair_iou_mmdet as MMDetection's bbox_overlaps (areas from
 *                the corners, union at least 1e-6).
 * iou_loss:      the box loss of one (pred, gt) pair, every yoloxloss_iou_loss
 *                type (docs/algorithm.md, "Box losses").
 * iou_loss_grad: d loss / d (x, y, w, h) of pred, with autograd's conventions
 *                (max/min ties split the gradient in half, comparisons and
 *                clamped values pass none), and the documented value where a
 *                derivative is not defined.
 * The IoU, the corners and the enclosing box are float32 in the reference's
 * order of operations; the other terms of a loss and every gradient are
 * evaluated in double from those float32 values. m is the kernel table's
 * scalar math (mathf.h); `arith` is the config's yoloxloss_arithmetic.
 */
#ifndef YL_BOX_H
#define YL_BOX_H

#include "mathf.h"
#include "yoloxloss.h"

typedef struct {
    float x, y, w, h;
} yl_box;

/* Geometry tests in the reference's float32 form. (xc, yc) is an anchor
 * centre; half is r*s for the centre box or w/2, h/2 for the gt box. */
static inline int yl_inside(float xc, float yc, float cx, float cy, float half_w, float half_h) {
    float l = xc - (cx - half_w), r = (cx + half_w) - xc;
    float t = yc - (cy - half_h), b = (cy + half_h) - yc;
    return l > 0.0f && r > 0.0f && t > 0.0f && b > 0.0f;
}

/* The eps of the box losses' divisions (docs/algorithm.md lists each place). */
#define YL_BOX_EPS 1e-7

yl_box yl_decode(const yl_mathf *m, float tx, float ty, float tw, float th, int i, int j, float stride,
                 yoloxloss_arithmetic arith);

float yl_pair_iou(yl_box gt, yl_box pred);

float yl_pair_iou_mmdet(yl_box gt, yl_box pred);

float yl_iou_loss(yl_box pred, yl_box gt, yoloxloss_iou_loss type, yoloxloss_arithmetic arith);

void yl_iou_loss_grad(yl_box pred, yl_box gt, yoloxloss_iou_loss type, yoloxloss_arithmetic arith,
                      float grad[4]);

/* The same gradient chained through decoding, d loss / d (tx, ty, tw, th)
 * of the raw outputs pred was decoded from with `stride` (yl_decode): in
 * double up to one rounding, so that a tiny side's huge d/dw times the
 * side itself stays finite. */
void yl_iou_loss_grad_raw(yl_box pred, yl_box gt, yoloxloss_iou_loss type, yoloxloss_arithmetic arith,
                          float stride, float grad[4]);

/* The L1 target of a gt box for the anchor at (i, j) with stride s: YOLOX's
 * (cx/s - j, cy/s - i, log(w/s + 1e-8), log(h/s + 1e-8)), or MMDetection's
 * ((cx - j s)/s, (cy - i s)/s, the same logs). */
void yl_l1_target(const yl_mathf *m, yl_box gt, int i, int j, float stride, yoloxloss_arithmetic arith,
                  float target[4]);

#endif
