/* The scalar kernels: the reference every other instruction set is tested
 * against. Plain loops over the formulas of bce.h and box.h; sums are
 * carried in double. */
#include "../bce.h"
#include "../box.h"
#include "kernels.h"

#include <string.h>

static double obj_loss(const float *x, const int32_t *matched, size_t n) {
    double s = 0.0;
    for (size_t a = 0; a < n; a++) s += (double)yl_bce_logits(x[a], matched[a] >= 0 ? 1.0f : 0.0f);
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
                                 double *acc, float *keep_p, float *keep_b0) {
    for (size_t i = 0; i < n; i++) {
        float p = yl_cost_prob(plane[pos[i]], sig_obj[i]), b0 = yl_bce_prob0(p);
        acc[i] += (double)b0;
        if (keep_p) {
            keep_p[i] = p;
            keep_b0[i] = b0;
        }
    }
}

static double cls_loss(const float *x, size_t stride, int num_classes, int cls, float t) {
    double s = 0.0;
    for (int k = 0; k < num_classes; k++)
        s += (double)yl_bce_logits(x[(size_t)k * stride], k == cls ? t : 0.0f);
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

static void decode(const float *reg, const float *obj, size_t hw, float stride, const yl_cands *cd,
                   size_t c0, size_t n) {
    for (size_t c = c0; c < c0 + n; c++) {
        size_t q = (size_t)cd->pos[c];
        cd->bx[c] = (reg[q] + cd->gj[c]) * stride;
        cd->by[c] = (reg[hw + q] + cd->gi[c]) * stride;
        cd->bw[c] = yl_expf(reg[2 * hw + q]) * stride;
        cd->bh[c] = yl_expf(reg[3 * hw + q]) * stride;
        cd->sig_obj[c] = yl_sigmoid(obj[q]);
    }
}

static void class_costs(const float *p, const float *b0, const double *sum0, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = (float)(sum0[i] - (double)b0[i] + (double)yl_bce_prob1(p[i]));
}

static void pair_costs(const yl_pair_params *p, const yl_cands *cd, size_t c0, size_t n, float *iou,
                       float *cost) {
    const yl_box gt = {p->cx, p->cy, p->w, p->h};
    for (size_t i = 0; i < n; i++) {
        size_t c = c0 + i;
        const yl_box pred = {cd->bx[c], cd->by[c], cd->bw[c], cd->bh[c]};
        float u = yl_pair_iou(gt, pred);
        float iou_cost = -yl_logf(u + 1e-8f);
        float cst = p->cls_weight * p->cls_cost[c] + p->iou_weight * iou_cost;
        int in = yl_inside(cd->xc[c], cd->yc[c], p->cx, p->cy, p->radius, p->radius) &&
                 (!p->legacy || yl_inside(cd->xc[c], cd->yc[c], p->cx, p->cy, 0.5f * p->w, 0.5f * p->h));
        iou[i] = u;
        cost[i] = in ? cst : cst + p->penalty;
    }
}

static int scan_not_le(const float *row, int from, int n, float thr) {
    int c = from;
    while (c < n && row[c] <= thr) c++;
    return c;
}

static int scan_not_ge(const float *row, int from, int n, float thr) {
    int c = from;
    while (c < n && row[c] >= thr) c++;
    return c;
}

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof *p); }

const yl_kernels yl_kernels_scalar = {
    .isa = YOLOXLOSS_ISA_SCALAR,
    .obj_loss = obj_loss,
    .obj_grad = obj_grad,
    .cost_bce0_accumulate = cost_bce0_accumulate,
    .cls_loss = cls_loss,
    .cls_grad = cls_grad,
    .decode = decode,
    .class_costs = class_costs,
    .pair_costs = pair_costs,
    .scan_not_le = scan_not_le,
    .scan_not_ge = scan_not_ge,
    .zero = zero,
};
