/* Helpers shared by the box tests (test_box*.c): a box from its four numbers,
 * the finite differences of the double-precision box losses, the random
 * prediction/gt pairs of four kinds (overlapping, disjoint, one inside the
 * other) with their distance from the nearest max/min tie, and
 * ref_box_loss, the newer box losses written from docs/algorithm.md. Include
 * after <cmocka.h>. */
#ifndef YL_BOX_UTIL_H
#define YL_BOX_UTIL_H

#include <math.h>
#include <string.h>

#include "box.h"
#include "test_util.h"

static inline yl_box mk(float x, float y, float w, float h) {
    yl_box b = {x, y, w, h};
    return b;
}

static inline void box_to_d(yl_box b, double out[4]) {
    out[0] = b.x;
    out[1] = b.y;
    out[2] = b.w;
    out[3] = b.h;
}

/* central differences of the double reference at pred p */
static inline void fd_grad(const double p[4], const double g[4], int giou, double step, double out[4]) {
    for (int k = 0; k < 4; k++) {
        double a[4], b[4];
        memcpy(a, p, sizeof a);
        memcpy(b, p, sizeof b);
        a[k] += step;
        b[k] -= step;
        out[k] = (tu_iou_loss_d(a, g, giou) - tu_iou_loss_d(b, g, giou)) / (2 * step);
    }
}

/* Smallest distance between any two values that meet in a max/min, or the
 * overlap boundary (tl == br). */
static inline double tie_margin(yl_box p, yl_box g) {
    double pd[4], gd[4];
    box_to_d(p, pd);
    box_to_d(g, gd);
    double p1x = pd[0] - pd[2] / 2, p2x = pd[0] + pd[2] / 2, p1y = pd[1] - pd[3] / 2, p2y = pd[1] + pd[3] / 2;
    double g1x = gd[0] - gd[2] / 2, g2x = gd[0] + gd[2] / 2, g1y = gd[1] - gd[3] / 2, g2y = gd[1] + gd[3] / 2;
    double m = fabs(p1x - g1x);
    m = fmin(m, fabs(p2x - g2x));
    m = fmin(m, fabs(p1y - g1y));
    m = fmin(m, fabs(p2y - g2y));
    m = fmin(m, fabs(fmin(p2x, g2x) - fmax(p1x, g1x)));
    m = fmin(m, fabs(fmin(p2y, g2y) - fmax(p1y, g1y)));
    return m;
}

enum { PAIR_OVERLAP, PAIR_DISJOINT, PAIR_PRED_IN_GT, PAIR_GT_IN_PRED, PAIR_KINDS };

static inline void random_pair(tu_rng *r, int kind, yl_box *pred, yl_box *gt) {
    float gw = tu_rangef(r, 5, 60), gh = tu_rangef(r, 5, 60);
    *gt = mk(tu_rangef(r, 20, 200), tu_rangef(r, 20, 200), gw, gh);
    switch (kind) {
    case PAIR_OVERLAP:
        *pred = mk(gt->x + (float)(tu_range(r, -0.45, 0.45) * gw), gt->y + (float)(tu_range(r, -0.45, 0.45) * gh),
                   gw * tu_rangef(r, 0.5, 1.6), gh * tu_rangef(r, 0.5, 1.6));
        break;
    case PAIR_DISJOINT: {
        float pw = tu_rangef(r, 5, 60), ph = tu_rangef(r, 5, 60);
        double sx = tu_unif(r) < 0.5 ? -1 : 1;
        double dx = (gw + pw) / 2.0 + tu_range(r, 0.5, 30);
        *pred = mk(gt->x + (float)(sx * dx), gt->y + tu_rangef(r, -40, 40), pw, ph);
        if (tu_unif(r) < 0.5) { /* swap axes: disjoint along y instead */
            double dy = (gh + ph) / 2.0 + tu_range(r, 0.5, 30);
            *pred = mk(gt->x + tu_rangef(r, -40, 40), gt->y + (float)(sx * dy), pw, ph);
        }
        break;
    }
    case PAIR_PRED_IN_GT: {
        float pw = gw * tu_rangef(r, 0.2, 0.8), ph = gh * tu_rangef(r, 0.2, 0.8);
        *pred = mk(gt->x + (float)(tu_range(r, -0.45, 0.45) * (gw - pw)),
                   gt->y + (float)(tu_range(r, -0.45, 0.45) * (gh - ph)), pw, ph);
        break;
    }
    default: {
        float pw = gw * tu_rangef(r, 1.3, 3.0), ph = gh * tu_rangef(r, 1.3, 3.0);
        *pred = mk(gt->x + (float)(tu_range(r, -0.45, 0.45) * (pw - gw)),
                   gt->y + (float)(tu_range(r, -0.45, 0.45) * (ph - gh)), pw, ph);
        break;
    }
    }
}

/* The box losses of docs/algorithm.md ("Box losses") in double, written from
 * the formulas there: pred p and gt g as (x, y, w, h). alpha_fixed, when not
 * NaN, replaces CIoU's alpha (the gradient holds it constant, so finite
 * differences must too). Returns NaN for a type it does not know. */
static inline double ref_box_loss(const double p[4], const double g[4], yoloxloss_iou_loss type, double alpha_fixed,
                           double *alpha_out) {
    const double eps = 1e-7;
    double p1x = p[0] - p[2] / 2, p2x = p[0] + p[2] / 2, p1y = p[1] - p[3] / 2, p2y = p[1] + p[3] / 2;
    double g1x = g[0] - g[2] / 2, g2x = g[0] + g[2] / 2, g1y = g[1] - g[3] / 2, g2y = g[1] + g[3] / 2;
    double ix = fmin(p2x, g2x) - fmax(p1x, g1x), iy = fmin(p2y, g2y) - fmax(p1y, g1y);
    double inter = (ix > 0 && iy > 0) ? ix * iy : 0.0;
    double iou = inter / (p[2] * p[3] + g[2] * g[3] - inter);
    double cw = fmax(p2x, g2x) - fmin(p1x, g1x), ch = fmax(p2y, g2y) - fmin(p1y, g1y);
    double dx = p[0] - g[0], dy = p[1] - g[1];
    double diou_pen = (dx * dx + dy * dy) / (cw * cw + ch * ch + eps);
    switch (type) {
    case YOLOXLOSS_IOU_LOSS_IOU_LINEAR: return 1.0 - iou;
    case YOLOXLOSS_IOU_LOSS_DIOU: return 1.0 - iou + diou_pen;
    case YOLOXLOSS_IOU_LOSS_CIOU: {
        const double pi = 3.14159265358979323846;
        double t = atan(g[2] / g[3]) - atan(p[2] / p[3]);
        double v = 4.0 / (pi * pi) * t * t;
        double alpha = iou > 0.5 ? v / (1.0 - iou + v + eps) : 0.0;
        if (alpha_out) *alpha_out = alpha;
        if (!isnan(alpha_fixed)) alpha = alpha_fixed;
        double c = iou - diou_pen - alpha * v;
        return 1.0 - fmin(fmax(c, -1.0), 1.0);
    }
    case YOLOXLOSS_IOU_LOSS_EIOU:
        return 1.0 - iou + diou_pen + (p[2] - g[2]) * (p[2] - g[2]) / (cw * cw + eps) +
               (p[3] - g[3]) * (p[3] - g[3]) / (ch * ch + eps);
    case YOLOXLOSS_IOU_LOSS_SIOU: {
        /* the paper's angle cost, 1 - 2 sin^2(arcsin(|dy| / sigma) - pi / 4) */
        const double pi = 3.14159265358979323846;
        double sigma = sqrt(dx * dx + dy * dy);
        double lam = sigma > 0 ? 1.0 - 2.0 * pow(sin(asin(fabs(dy) / sigma) - pi / 4), 2) : 0.0;
        double gamma = 2.0 - lam;
        double dist = (1.0 - exp(-gamma * dx * dx / (cw * cw + eps))) + (1.0 - exp(-gamma * dy * dy / (ch * ch + eps)));
        double ow = fabs(p[2] - g[2]) / fmax(p[2], g[2]), oh = fabs(p[3] - g[3]) / fmax(p[3], g[3]);
        double shape = pow(1.0 - exp(-ow), 4) + pow(1.0 - exp(-oh), 4);
        return 1.0 - iou + 0.5 * (dist + shape);
    }
    default: return NAN;
    }
}

/* Central differences of ref_box_loss, with CIoU's alpha held at its value at p. */
static inline void fd_new(const double p[4], const double g[4], yoloxloss_iou_loss type, double step, double out[4]) {
    double alpha = NAN;
    ref_box_loss(p, g, type, NAN, &alpha);
    for (int k = 0; k < 4; k++) {
        double a[4], b[4];
        memcpy(a, p, sizeof a);
        memcpy(b, p, sizeof b);
        a[k] += step;
        b[k] -= step;
        out[k] = (ref_box_loss(a, g, type, alpha, NULL) - ref_box_loss(b, g, type, alpha, NULL)) / (2 * step);
    }
}

#endif
