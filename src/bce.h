/* The per-element formulas of the loss and of the matching cost, float32.
 * The scalar kernels and every SIMD kernel evaluate exactly these, in this
 * order of operations, so they agree bit for bit wherever SLEEF's scalar
 * and vector exp/log do. m is the kernel table's scalar math (mathf.h).
 *
 * bce_logits: BCEWithLogits on a logit x, target t in [0, 1], in the stable
 * form (max(x,0) - x*t) + log1p(exp(-|x|)): no overflow and no log(0) for
 * any finite x; its derivative is sigmoid(x) - t.
 * bce_prob:   binary_cross_entropy on a probability p, each log clamped at
 * -100 as PyTorch does (the matching cost uses it on sqrt(p_cls * p_obj)).
 */
#ifndef YL_BCE_H
#define YL_BCE_H

#include <math.h>

#include "mathf.h"

static inline float yl_sigmoid(const yl_mathf *m, float x) { return 1.0f / (1.0f + m->exp(-x)); }

static inline float yl_bce_logits(const yl_mathf *m, float x, float t) {
    return (fmaxf(x, 0.0f) - x * t) + m->log1p(m->exp(-fabsf(x)));
}

/* -max(log(1 - p), -100): the cost of predicting p for a class that is absent. */
static inline float yl_bce_prob0(const yl_mathf *m, float p) { return -fmaxf(m->log(1.0f - p), -100.0f); }

/* -max(log(p), -100): the cost of predicting p for the class that is present. */
static inline float yl_bce_prob1(const yl_mathf *m, float p) { return -fmaxf(m->log(p), -100.0f); }

/* The assignment's class probability: sqrt(sigmoid(cls) * sigmoid(obj)), float32. */
static inline float yl_cost_prob(const yl_mathf *m, float cls_logit, float obj_sigmoid) {
    return sqrtf(yl_sigmoid(m, cls_logit) * obj_sigmoid);
}

/* The class part of the matching cost for gt class c at one anchor,
 * sum_k BCE(p_k, [k == c]), from S = sum_k BCE(p_k, 0) (double) and p_c:
 * S - BCE(p_c, 0) + BCE(p_c, 1). O(1) per (gt, anchor) pair. */
static inline float yl_cls_cost_pair(const yl_mathf *m, double sum_bce0, float p_c) {
    return (float)(sum_bce0 - (double)yl_bce_prob0(m, p_c) + (double)yl_bce_prob1(m, p_c));
}

#endif
