/* Boxes as YOLOX handles them: centre x, centre y, width, height, pixels.
 *
 * decode:        raw (tx, ty, tw, th) at grid cell (i, j) of stride s ->
 *                ((tx + j) s, (ty + i) s, exp(tw) s, exp(th) s).
 * pair_iou:      the assignment's IoU (no epsilon), as YOLOX's bboxes_iou.
 * iou_loss:      IOUloss of one (pred, gt) pair: 1 - IoU^2 or 1 - clamp(GIoU).
 * iou_loss_grad: d loss / d (x, y, w, h) of pred, with autograd's conventions
 *                (max/min ties split the gradient in half, comparisons and
 *                clamped values pass none).
 * All arithmetic is float32 in the reference's order of operations; m is the
 * kernel table's scalar math (mathf.h).
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

yl_box yl_decode(const yl_mathf *m, float tx, float ty, float tw, float th, int i, int j, float stride);

float yl_pair_iou(yl_box gt, yl_box pred);

float yl_iou_loss(yl_box pred, yl_box gt, yoloxloss_iou_loss type);

void yl_iou_loss_grad(yl_box pred, yl_box gt, yoloxloss_iou_loss type, float grad[4]);

/* YOLOX's L1 target of a gt box for the anchor at (i, j) with stride s:
 * (cx/s - j, cy/s - i, log(w/s + 1e-8), log(h/s + 1e-8)). */
void yl_l1_target(const yl_mathf *m, yl_box gt, int i, int j, float stride, float target[4]);

#endif
