/* The scalar kernels: the reference every other instruction set is tested
 * against. Plain loops; sums are carried in double. */
#include "../bce.h"
#include "kernels.h"

static double obj_loss(const float *x, const int32_t *matched, size_t n) {
    double s = 0.0;
    for (size_t a = 0; a < n; a++) s += yl_bce_logits(x[a], matched[a] >= 0 ? 1.0f : 0.0f);
    return s;
}

static void obj_grad(const float *x, const int32_t *matched, size_t n, float scale, float *g,
                     int accumulate) {
    for (size_t a = 0; a < n; a++) {
        float v = scale * (yl_sigmoid(x[a]) - (matched[a] >= 0 ? 1.0f : 0.0f));
        g[a] = accumulate ? g[a] + v : v;
    }
}

static void cost_bce0_accumulate(const float *plane, const int32_t *pos, size_t n, const float *sig_obj,
                                 double *acc) {
    for (size_t i = 0; i < n; i++) acc[i] += yl_bce_prob0(yl_cost_prob(plane[pos[i]], sig_obj[i]));
}

static double cls_loss(const float *x, size_t stride, int num_classes, int cls, float t) {
    double s = 0.0;
    for (int k = 0; k < num_classes; k++) s += yl_bce_logits(x[(size_t)k * stride], k == cls ? t : 0.0f);
    return s;
}

static void cls_grad(const float *x, size_t stride, int num_classes, int cls, float t, float scale,
                     float *g, int accumulate) {
    for (int k = 0; k < num_classes; k++) {
        float v = scale * (yl_sigmoid(x[(size_t)k * stride]) - (k == cls ? t : 0.0f));
        float *out = g + (size_t)k * stride;
        *out = accumulate ? *out + v : v;
    }
}

const yl_kernels yl_kernels_scalar = {
    .isa = YOLOXLOSS_ISA_SCALAR,
    .obj_loss = obj_loss,
    .obj_grad = obj_grad,
    .cost_bce0_accumulate = cost_bce0_accumulate,
    .cls_loss = cls_loss,
    .cls_grad = cls_grad,
};
