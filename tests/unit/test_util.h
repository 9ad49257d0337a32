/* Helpers shared by the unit tests: a deterministic RNG, tolerance asserts,
 * and double-precision reference formulas written from the specification
 * (never from the library's code). Include after <cmocka.h>. */
#ifndef YL_TEST_UTIL_H
#define YL_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h" /* the library's scalar table and its float32 exp and log, for exact comparisons */

/* The scalar kernel table the library uses on this CPU, and its scalar
 * math (SLEEF's FMA or portable functions, mathf.h). */
static inline const yl_kernels *tu_scalar_kernels(void) { return yl_kernels_select(YOLOXLOSS_ISA_SCALAR); }
static inline const yl_mathf *tu_math(void) { return tu_scalar_kernels()->math; }
static inline float tu_expf(float x) { return tu_math()->exp(x); }
static inline float tu_logf(float x) { return tu_math()->log(x); }

/* ---- RNG (splitmix64) ---------------------------------------------------- */

typedef struct {
    uint64_t s;
} tu_rng;

static inline uint64_t tu_next(tu_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static inline double tu_unif(tu_rng *r) { return (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0); }

static inline double tu_range(tu_rng *r, double lo, double hi) { return lo + (hi - lo) * tu_unif(r); }

static inline float tu_rangef(tu_rng *r, double lo, double hi) { return (float)tu_range(r, lo, hi); }

static inline int tu_int(tu_rng *r, int lo, int hi_inclusive) {
    return lo + (int)(tu_next(r) % (uint64_t)(hi_inclusive - lo + 1));
}

/* ---- asserts --------------------------------------------------------------- */

/* |actual - expected| <= atol + rtol * |expected| */
#define TU_ASSERT_CLOSE(actual, expected, rtol, atol)                                              \
    do {                                                                                           \
        double tu_a_ = (double)(actual), tu_e_ = (double)(expected);                               \
        double tu_tol_ = (double)(atol) + (double)(rtol) * fabs(tu_e_);                            \
        if (!(fabs(tu_a_ - tu_e_) <= tu_tol_))                                                     \
            fail_msg("%s = %.10g, expected %s = %.10g (diff %.3g > tol %.3g)", #actual, tu_a_,      \
                     #expected, tu_e_, fabs(tu_a_ - tu_e_), tu_tol_);                              \
    } while (0)

/* |actual - expected| <= tol, with a context string in the message */
#define TU_ASSERT_NEAR_CTX(actual, expected, tol, ctxfmt, ...)                                     \
    do {                                                                                           \
        double tu_a_ = (double)(actual), tu_e_ = (double)(expected), tu_t_ = (double)(tol);        \
        if (!(fabs(tu_a_ - tu_e_) <= tu_t_))                                                       \
            fail_msg("[" ctxfmt "] %s = %.10g, expected %.10g (diff %.3g > tol %.3g)",             \
                     __VA_ARGS__, #actual, tu_a_, tu_e_, fabs(tu_a_ - tu_e_), tu_t_);              \
    } while (0)

#define TU_ASSERT_BITS_EQ(a, b)                                                                    \
    do {                                                                                           \
        float tu_x_ = (a), tu_y_ = (b);                                                            \
        if (memcmp(&tu_x_, &tu_y_, sizeof tu_x_) != 0)                                             \
            fail_msg("%s = %a differs bitwise from %s = %a", #a, (double)tu_x_, #b, (double)tu_y_); \
    } while (0)

/* ---- reference formulas (spec section 4), double precision -------------- */

static inline double tu_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* log(1 + e^z), stable, long double */
static inline long double tu_softplus_l(long double z) {
    return z > 0 ? z + log1pl(expl(-z)) : log1pl(expl(z));
}

/* BCE with logits from the log-sum-exp form: t*softplus(-x) + (1-t)*softplus(x). */
static inline long double tu_bce_logits_l(long double x, long double t) {
    return t * tu_softplus_l(-x) + (1.0L - t) * tu_softplus_l(x);
}

/* How far the library's float32 BCE-with-logits may be from the exact value:
 * a few float32 roundings of each of the terms max(x,0), x*t and the log1p. */
static inline double tu_bce_tol(float x, float t) {
    long double want = tu_bce_logits_l(x, t);
    return 2.5e-7 * (2.0 * fabs((double)x) + (double)want) + 1e-40;
}

/* IoU / GIoU loss of pred p = (x, y, w, h) against gt g, spec section 4. */
static inline double tu_iou_loss_d(const double p[4], const double g[4], int giou) {
    double p1x = p[0] - p[2] / 2, p2x = p[0] + p[2] / 2, p1y = p[1] - p[3] / 2, p2y = p[1] + p[3] / 2;
    double g1x = g[0] - g[2] / 2, g2x = g[0] + g[2] / 2, g1y = g[1] - g[3] / 2, g2y = g[1] + g[3] / 2;
    double tlx = fmax(p1x, g1x), tly = fmax(p1y, g1y), brx = fmin(p2x, g2x), bry = fmin(p2y, g2y);
    double en = (tlx < brx && tly < bry) ? 1.0 : 0.0;
    double inter = (brx - tlx) * (bry - tly) * en;
    double uni = p[2] * p[3] + g[2] * g[3] - inter;
    double iou = inter / (uni + 1e-16);
    if (!giou) return 1.0 - iou * iou;
    double ctlx = fmin(p1x, g1x), ctly = fmin(p1y, g1y), cbrx = fmax(p2x, g2x), cbry = fmax(p2y, g2y);
    double area_c = (cbrx - ctlx) * (cbry - ctly);
    double gi = iou - (area_c - uni) / fmax(area_c, 1e-16);
    if (gi < -1.0) gi = -1.0;
    if (gi > 1.0) gi = 1.0;
    return 1.0 - gi;
}

/* Plain IoU of two cx,cy,w,h boxes in double (no epsilon). */
static inline double tu_iou_d(const double a[4], const double b[4]) {
    double tlx = fmax(a[0] - a[2] / 2, b[0] - b[2] / 2), tly = fmax(a[1] - a[3] / 2, b[1] - b[3] / 2);
    double brx = fmin(a[0] + a[2] / 2, b[0] + b[2] / 2), bry = fmin(a[1] + a[3] / 2, b[1] + b[3] / 2);
    if (!(tlx < brx && tly < bry)) return 0.0;
    double inter = (brx - tlx) * (bry - tly);
    return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/* tw such that tu_expf(tw) * s == target exactly in float (target/s a power of 2
 * or otherwise reachable); returns NAN if none is found near tu_logf(target/s). */
static inline float tu_exact_log(float target, float s) {
    float t = tu_logf(target / s);
    for (int k = 0; k < 64; k++) {
        float c1 = t, c2 = t;
        for (int m = 0; m < k; m++) {
            c1 = nextafterf(c1, INFINITY);
            c2 = nextafterf(c2, -INFINITY);
        }
        if (tu_expf(c1) * s == target) return c1;
        if (tu_expf(c2) * s == target) return c2;
    }
    return NAN;
}

/* ---- reference dynamic-k matching (spec section 3, steps 1-3) ------------ */

/* (a, ia) before (b, ib): smaller value first, NaN after every number, ties
 * by lower index. */
static inline int tu_cost_before(float a, int ia, float b, int ib) {
    if (isnan(a) && isnan(b)) return ia < ib;
    if (isnan(a)) return 0;
    if (isnan(b)) return 1;
    return a < b || (a == b && ia < ib);
}

/* iou, cost [n_gt, n_cand]; outputs dk [n_gt], match [n_cand] (-1 = none).
 * Straightforward: full sort of each IoU row (descending, float sum of the
 * first min(topk, n_cand)), k repeated selections of the cheapest untaken
 * candidate, then the conflict rule over the whole cost column. */
static inline void tu_ref_match(int n_gt, int n_cand, const float *iou, const float *cost, int topk,
                                int32_t *dk, int32_t *match) {
    int m = topk < n_cand ? topk : n_cand;
    float *row = malloc((size_t)n_cand * sizeof *row);
    char *chosen = malloc((size_t)n_cand);
    int *count = calloc((size_t)n_cand, sizeof *count);
    int *owner = malloc((size_t)n_cand * sizeof *owner);
    for (int c = 0; c < n_cand; c++) owner[c] = -1;
    for (int g = 0; g < n_gt; g++) {
        memcpy(row, iou + (size_t)g * n_cand, (size_t)n_cand * sizeof *row);
        /* insertion sort, descending */
        for (int i = 1; i < n_cand; i++) {
            float v = row[i];
            int j = i - 1;
            while (j >= 0 && row[j] < v) {
                row[j + 1] = row[j];
                j--;
            }
            row[j + 1] = v;
        }
        float s = 0.0f;
        for (int i = 0; i < m; i++) s += row[i];
        int k = s < 1.0f ? 1 : (int)s;
        if (k > m) k = m;
        dk[g] = k;
        memset(chosen, 0, (size_t)n_cand);
        const float *crow = cost + (size_t)g * n_cand;
        for (int t = 0; t < k; t++) {
            int best = -1;
            for (int c = 0; c < n_cand; c++)
                if (!chosen[c] && (best < 0 || tu_cost_before(crow[c], c, crow[best], best))) best = c;
            chosen[best] = 1;
            count[best]++;
            owner[best] = g;
        }
    }
    for (int c = 0; c < n_cand; c++) {
        if (count[c] > 1) {
            int best = 0;
            for (int g = 1; g < n_gt; g++)
                if (tu_cost_before(cost[(size_t)g * n_cand + c], g, cost[(size_t)best * n_cand + c], best)) best = g;
            owner[c] = best;
        }
        match[c] = owner[c];
    }
    free(row);
    free(chosen);
    free(count);
    free(owner);
}

#endif
