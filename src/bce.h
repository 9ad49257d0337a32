/* Binary cross-entropy in the two forms YOLOX uses.
 *
 * bce_logits: BCEWithLogits on a logit x, target t in [0, 1], in the stable
 * form max(x,0) - x*t + log(1 + exp(-|x|)); its derivative is sigmoid(x) - t.
 * bce_prob:   binary_cross_entropy on a probability p, each log clamped at
 * -100 as PyTorch does (the matching cost uses it on sqrt(p_cls * p_obj)).
 */
#ifndef YL_BCE_H
#define YL_BCE_H

#include <math.h>

#include "mathf.h"

static inline float yl_sigmoid(float x) { return 1.0f / (1.0f + yl_expf(-x)); }

/* Evaluated in double: the per-element value is summed over millions of
 * anchors and must not carry float32 rounding into the total. */
static inline double yl_bce_logits(float x, float t) {
    double xd = x;
    return (xd > 0.0 ? xd : 0.0) - xd * (double)t + log1p(exp(-fabs(xd)));
}

/* -max(log(1 - p), -100): the cost of predicting p for a class that is absent. */
static inline float yl_bce_prob0(float p) { return -fmaxf(yl_logf(1.0f - p), -100.0f); }

/* -max(log(p), -100): the cost of predicting p for the class that is present. */
static inline float yl_bce_prob1(float p) { return -fmaxf(yl_logf(p), -100.0f); }

/* The assignment's class probability: sqrt(sigmoid(cls) * sigmoid(obj)), float32. */
static inline float yl_cost_prob(float cls_logit, float obj_sigmoid) {
    return sqrtf(yl_sigmoid(cls_logit) * obj_sigmoid);
}

#endif
