/* Box decoding, pair IoU, every box loss and its gradient (finite differences,
 * ties, degenerate cases), MMDetection's arithmetic, L1 target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "box.h"
#include "test_util.h"

static yl_box mk(float x, float y, float w, float h) {
    yl_box b = {x, y, w, h};
    return b;
}

/* ---- decoding ------------------------------------------------------------ */

static void test_decode_hand_values(void **state) {
    (void)state;
    /* x = (tx + j) s, y = (ty + i) s, w = exp(tw) s, h = exp(th) s */
    yl_box b = yl_decode(tu_math(), 0.5f, -0.25f, 0.0f, logf(2.0f), 3, 2, 8.0f, YOLOXLOSS_ARITHMETIC_YOLOX);
    TU_ASSERT_CLOSE(b.x, 20.0, 0, 1e-6);
    TU_ASSERT_CLOSE(b.y, 22.0, 0, 1e-6);
    TU_ASSERT_CLOSE(b.w, 8.0, 0, 1e-6);
    TU_ASSERT_CLOSE(b.h, 16.0, 1e-6, 0);

    b = yl_decode(tu_math(), -1.0f, 2.0f, -1.0f, 1.0f, 0, 5, 32.0f, YOLOXLOSS_ARITHMETIC_YOLOX);
    TU_ASSERT_CLOSE(b.x, 128.0, 0, 1e-5);
    TU_ASSERT_CLOSE(b.y, 64.0, 0, 1e-5);
    TU_ASSERT_CLOSE(b.w, 32.0 * exp(-1.0), 1e-6, 0);
    TU_ASSERT_CLOSE(b.h, 32.0 * exp(1.0), 1e-6, 0);

    /* row i only moves y, column j only moves x */
    b = yl_decode(tu_math(), 0.0f, 0.0f, 0.0f, 0.0f, 7, 0, 16.0f, YOLOXLOSS_ARITHMETIC_YOLOX);
    TU_ASSERT_CLOSE(b.x, 0.0, 0, 0);
    TU_ASSERT_CLOSE(b.y, 112.0, 0, 0);
}

/* ---- pair IoU -------------------------------------------------------------- */

static void test_pair_iou_hand_values(void **state) {
    (void)state;
    yl_box g = mk(5, 5, 10, 10); /* [0,10] x [0,10] */
    /* disjoint */
    assert_true(yl_pair_iou(g, mk(25, 5, 10, 10)) == 0.0f);
    assert_true(yl_pair_iou(g, mk(25, 25, 4, 4)) == 0.0f);
    /* identical */
    TU_ASSERT_CLOSE(yl_pair_iou(g, g), 1.0, 0, 1e-7);
    /* nested: 4x4 inside 10x10 -> 16/100 */
    TU_ASSERT_CLOSE(yl_pair_iou(g, mk(5, 5, 4, 4)), 0.16, 1e-6, 0);
    TU_ASSERT_CLOSE(yl_pair_iou(mk(5, 5, 4, 4), g), 0.16, 1e-6, 0);
    /* touching edges: [10,20] x [0,10] shares the edge x = 10 -> 0 */
    assert_true(yl_pair_iou(g, mk(15, 5, 10, 10)) == 0.0f);
    /* touching corner only */
    assert_true(yl_pair_iou(g, mk(15, 15, 10, 10)) == 0.0f);
    /* partial: [5,15] x [0,10] -> inter 50, union 150 */
    TU_ASSERT_CLOSE(yl_pair_iou(g, mk(10, 5, 10, 10)), 1.0 / 3.0, 1e-6, 0);
    /* [0,4]x[0,6] vs [2,6]x[3,9]: inter 2*3 = 6, union 24 + 24 - 6 = 42 */
    TU_ASSERT_CLOSE(yl_pair_iou(mk(2, 3, 4, 6), mk(4, 6, 4, 6)), 1.0 / 7.0, 1e-6, 0);
    /* overlap in x only */
    assert_true(yl_pair_iou(g, mk(8, 30, 10, 10)) == 0.0f);
}

/* ---- IoU / GIoU loss forward ------------------------------------------------ */

static void test_iou_loss_forward_hand(void **state) {
    (void)state;
    yl_box g = mk(5, 5, 10, 10);
    /* iou = 1/3 */
    yl_box p = mk(10, 5, 10, 10);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0 - 1.0 / 9.0, 1e-6, 0);
    /* enclosing [0,15]x[0,10] = 150 = union -> giou = iou */
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0 - 1.0 / 3.0, 1e-6, 0);

    /* iou = 1/7, enclosing [0,6]x[0,9] = 54, union 42: giou = 1/7 - 12/54 = -5/63 */
    yl_box a = mk(2, 3, 4, 6), b = mk(4, 6, 4, 6);
    TU_ASSERT_CLOSE(yl_iou_loss(a, b, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0 - 1.0 / 49.0, 1e-6, 0);
    TU_ASSERT_CLOSE(yl_iou_loss(a, b, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0 + 5.0 / 63.0, 1e-6, 0);

    /* identical -> 0 for both */
    TU_ASSERT_CLOSE(yl_iou_loss(g, g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX), 0.0, 0, 1e-6);
    TU_ASSERT_CLOSE(yl_iou_loss(g, g, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 0.0, 0, 1e-6);

    /* nested 4x4 in 10x10: iou .16; enclosing = gt = union -> giou = iou */
    yl_box n = mk(5, 5, 4, 4);
    TU_ASSERT_CLOSE(yl_iou_loss(n, g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0 - 0.0256, 1e-6, 0);
    TU_ASSERT_CLOSE(yl_iou_loss(n, g, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0 - 0.16, 1e-6, 0);

    /* disjoint [20,30]x[0,10]: iou 0 -> iou loss 1; enclosing 300, union 200:
     * giou = -1/3 < 0 -> loss 4/3 > 1 */
    yl_box d = mk(25, 5, 10, 10);
    TU_ASSERT_CLOSE(yl_iou_loss(d, g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0, 0, 0);
    float lg = yl_iou_loss(d, g, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX);
    TU_ASSERT_CLOSE(lg, 4.0 / 3.0, 1e-6, 0);
    assert_true(lg > 1.0f);

    /* far apart: giou -> -1, loss -> 2, never above 2 */
    yl_box f = mk(1000.5f, 1000.5f, 1, 1), u = mk(0.5f, 0.5f, 1, 1);
    double area_c = 1001.0 * 1001.0;
    TU_ASSERT_CLOSE(yl_iou_loss(f, u, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0 + (area_c - 2.0) / area_c, 1e-6, 0);
    assert_true(yl_iou_loss(f, u, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX) <= 2.0f);

    /* touching: iou 0, enclosing = union -> giou 0 -> loss 1 */
    yl_box t = mk(15, 5, 10, 10);
    TU_ASSERT_CLOSE(yl_iou_loss(t, g, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1.0, 1e-6, 0);
}

/* ---- gradient against finite differences -------------------------------- */

static void box_to_d(yl_box b, double out[4]) {
    out[0] = b.x;
    out[1] = b.y;
    out[2] = b.w;
    out[3] = b.h;
}

/* central differences of the double reference at pred p */
static void fd_grad(const double p[4], const double g[4], int giou, double step, double out[4]) {
    for (int k = 0; k < 4; k++) {
        double a[4], b[4];
        memcpy(a, p, sizeof a);
        memcpy(b, p, sizeof b);
        a[k] += step;
        b[k] -= step;
        out[k] = (tu_iou_loss_d(a, g, giou) - tu_iou_loss_d(b, g, giou)) / (2 * step);
    }
}

/* second-order one-sided differences: dir = +1 (right) or -1 (left) */
static void fd_grad_onesided(const double p[4], const double g[4], int giou, double step, int dir,
                             double out[4]) {
    double f0 = tu_iou_loss_d(p, g, giou);
    for (int k = 0; k < 4; k++) {
        double a[4], b[4];
        memcpy(a, p, sizeof a);
        memcpy(b, p, sizeof b);
        a[k] += dir * step;
        b[k] += dir * 2 * step;
        double f1 = tu_iou_loss_d(a, g, giou), f2 = tu_iou_loss_d(b, g, giou);
        out[k] = dir * (-3 * f0 + 4 * f1 - f2) / (2 * step);
    }
}

/* Smallest distance between any two values that meet in a max/min, or the
 * overlap boundary (tl == br). */
static double tie_margin(yl_box p, yl_box g) {
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

static void random_pair(tu_rng *r, int kind, yl_box *pred, yl_box *gt) {
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

static void check_grad_random(int giou) {
    tu_rng r = {giou ? 777u : 12345u};
    yoloxloss_iou_loss type = giou ? YOLOXLOSS_IOU_LOSS_GIOU : YOLOXLOSS_IOU_LOSS_IOU;
    int checked[PAIR_KINDS] = {0};
    for (int it = 0; it < 4000; it++) {
        int kind = it % PAIR_KINDS;
        yl_box p, g;
        random_pair(&r, kind, &p, &g);
        if (tie_margin(p, g) < 0.05) continue;
        double pd[4], gd[4], fd[4];
        box_to_d(p, pd);
        box_to_d(g, gd);
        fd_grad(pd, gd, giou, 1e-4, fd);
        float lib[4] = {NAN, NAN, NAN, NAN};
        yl_iou_loss_grad(p, g, type, YOLOXLOSS_ARITHMETIC_YOLOX, lib);
        double scale = 0;
        for (int k = 0; k < 4; k++) scale = fmax(scale, fabs(fd[k]));
        for (int k = 0; k < 4; k++) {
            TU_ASSERT_NEAR_CTX(lib[k], fd[k], 1e-3 * scale + 1e-9,
                               "%s kind %d it %d comp %d pred (%g %g %g %g) gt (%g %g %g %g)",
                               giou ? "giou" : "iou", kind, it, k, (double)p.x, (double)p.y, (double)p.w,
                               (double)p.h, (double)g.x, (double)g.y, (double)g.w, (double)g.h);
        }
        if (!giou && kind == PAIR_DISJOINT)
            for (int k = 0; k < 4; k++) assert_true(lib[k] == 0.0f);
        /* the gradient is of the loss the library computes forward */
        TU_ASSERT_CLOSE(yl_iou_loss(p, g, type, YOLOXLOSS_ARITHMETIC_YOLOX), tu_iou_loss_d(pd, gd, giou), 1e-5, 1e-5);
        checked[kind]++;
    }
    for (int k = 0; k < PAIR_KINDS; k++) assert_true(checked[k] > 500);
}

static void test_iou_grad_fd_random(void **state) {
    (void)state;
    check_grad_random(0);
}

static void test_giou_grad_fd_random(void **state) {
    (void)state;
    check_grad_random(1);
}

/* Pred [0,6]x[2,8] (cx 3, cy 5, w 6, h 6), gt [0,10]x[0,10]: the left edges tie
 * (p1x == g1x == 0). With I = 36, U = 100, iou = .36:
 *   d iou = dI (1/U + I/U^2) - dAp I/U^2 = 0.0136 dI - 0.0036 dAp.
 * The tie sends half of d(tl_x) to p1x: d ix/dx = 1 - 0.5 = 0.5, d ix/dw = 0.5 + 0.25 = 0.75.
 *   x: dI = 3 -> d iou = .0408, dloss = -0.72 * .0408 = -0.029376
 *   y: dI = 0 -> 0
 *   w: dI = 4.5, dAp = 6 -> d iou = .0396 -> dloss = -0.028512
 *   h: dI = 6, dAp = 6 -> d iou = .06 -> dloss = -0.0432
 * GIoU = iou - 1 + U/Ac, Ac = 100 (enclosing = gt, its left edge ties too:
 * d cw/dx = -0.5, d cw/dw = +0.25):
 *   x: .0408 + dU/Ac - U dAc/Ac^2 = .0408 - .03 + .05 = .0608 -> dloss -.0608
 *   w: .0396 + 1.5/100 - 2.5/100 = .0296 -> dloss -.0296
 *   y: 0;  h: .06 + 0 - 0 -> dloss -.06 */
static void test_grad_tie_hand(void **state) {
    (void)state;
    yl_box p = mk(3, 5, 6, 6), g = mk(5, 5, 10, 10);
    float gr[4];
    yl_iou_loss_grad(p, g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX, gr);
    TU_ASSERT_CLOSE(gr[0], -0.029376, 1e-5, 1e-9);
    TU_ASSERT_CLOSE(gr[1], 0.0, 0, 1e-9);
    TU_ASSERT_CLOSE(gr[2], -0.028512, 1e-5, 1e-9);
    TU_ASSERT_CLOSE(gr[3], -0.0432, 1e-5, 1e-9);

    yl_iou_loss_grad(p, g, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX, gr);
    TU_ASSERT_CLOSE(gr[0], -0.0608, 1e-5, 1e-9);
    TU_ASSERT_CLOSE(gr[1], 0.0, 0, 1e-9);
    TU_ASSERT_CLOSE(gr[2], -0.0296, 1e-5, 1e-9);
    TU_ASSERT_CLOSE(gr[3], -0.06, 1e-5, 1e-9);

    /* Identical boxes: every corner ties. Shares of 1/2 make every component
     * zero for both types (worked by hand: d ix/dx = .5 - .5 = 0; for w,
     * d iou/dw = 5 (.01 + .01) - 10 (.01) = 0 and dU/Ac - U dAc/Ac^2 = .05 - .05 = 0). */
    yl_iou_loss_grad(g, g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX, gr);
    for (int k = 0; k < 4; k++) TU_ASSERT_CLOSE(gr[k], 0.0, 0, 1e-9);
    yl_iou_loss_grad(g, g, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX, gr);
    for (int k = 0; k < 4; k++) TU_ASSERT_CLOSE(gr[k], 0.0, 0, 1e-9);
}

/* Exact ties on random integer boxes: with one tie per coordinate direction
 * the half-split gradient is the mean of the two one-sided derivatives. */
static void test_grad_tie_random(void **state) {
    (void)state;
    tu_rng r = {99};
    int done = 0;
    for (int it = 0; it < 2000 && done < 400; it++) {
        int g1x = tu_int(&r, 0, 40), g1y = tu_int(&r, 0, 40);
        int g2x = g1x + tu_int(&r, 6, 40), g2y = g1y + tu_int(&r, 6, 40);
        /* pred shares one or two corner coordinates with the gt */
        int p1x = tu_int(&r, g1x - 10, g2x - 3), p1y = tu_int(&r, g1y - 10, g2y - 3);
        int p2x = tu_int(&r, p1x + 3, g2x + 10), p2y = tu_int(&r, p1y + 3, g2y + 10);
        int which = tu_int(&r, 0, 5);
        if (which == 0 || which == 4) p1x = g1x;
        if (which == 1 || which == 4) p2y = g2y;
        if (which == 2 || which == 5) p2x = g2x;
        if (which == 3 || which == 5) p1y = g1y;
        if (p2x - p1x < 2 || p2y - p1y < 2) continue;
        yl_box p = mk((float)(p1x + p2x) / 2.0f, (float)(p1y + p2y) / 2.0f, (float)(p2x - p1x), (float)(p2y - p1y));
        yl_box g = mk((float)(g1x + g2x) / 2.0f, (float)(g1y + g2y) / 2.0f, (float)(g2x - g1x), (float)(g2y - g1y));
        /* exactly one tie per axis at most; no other near-tie, intersection clearly non-empty */
        int tx = (p1x == g1x) + (p2x == g2x), ty = (p1y == g1y) + (p2y == g2y);
        if (tx + ty == 0 || tx > 1 || ty > 1) continue;
        if ((p1x != g1x && abs(p1x - g1x) < 1) || (p2x != g2x && abs(p2x - g2x) < 1)) continue;
        int ix = (p2x < g2x ? p2x : g2x) - (p1x > g1x ? p1x : g1x);
        int iy = (p2y < g2y ? p2y : g2y) - (p1y > g1y ? p1y : g1y);
        if (ix < 1 || iy < 1) continue;
        double pd[4], gd[4];
        box_to_d(p, pd);
        box_to_d(g, gd);
        for (int giou = 0; giou < 2; giou++) {
            double right[4], left[4];
            fd_grad_onesided(pd, gd, giou, 1e-5, +1, right);
            fd_grad_onesided(pd, gd, giou, 1e-5, -1, left);
            float lib[4];
            yl_iou_loss_grad(p, g, giou ? YOLOXLOSS_IOU_LOSS_GIOU : YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX, lib);
            double scale = 1e-6;
            for (int k = 0; k < 4; k++) scale = fmax(scale, fmax(fabs(right[k]), fabs(left[k])));
            for (int k = 0; k < 4; k++) {
                double want = 0.5 * (right[k] + left[k]);
                TU_ASSERT_NEAR_CTX(lib[k], want, 2e-3 * scale, "tie %s which %d comp %d (r %g l %g)",
                                   giou ? "giou" : "iou", which, k, right[k], left[k]);
            }
        }
        done++;
    }
    assert_true(done >= 200);
}

static void test_grad_no_overlap_is_zero_for_iou(void **state) {
    (void)state;
    yl_box g = mk(5, 5, 10, 10);
    yl_box cases[] = {mk(25, 5, 10, 10), mk(15, 5, 10, 10) /* touching */, mk(30, 40, 2, 3),
                      mk(5, 15, 10, 10) /* touching in y */, mk(15, 15, 10, 10) /* corner */};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float gr[4] = {1, 1, 1, 1};
        yl_iou_loss_grad(cases[c], g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_YOLOX, gr);
        for (int k = 0; k < 4; k++) assert_true(gr[k] == 0.0f);
    }
    /* GIoU of disjoint boxes does have a gradient: moving the pred toward the
     * gt shrinks the enclosing box. [20,30]x[0,10] vs [0,10]^2: Ac = 30*10,
     * U = 200, giou = -1 + U/Ac; d/dx = -U * (dAc/dx) / Ac^2 = -200*10/90000,
     * so dloss/dx = +2000/90000. */
    float gr[4];
    yl_iou_loss_grad(mk(25, 5, 10, 10), g, YOLOXLOSS_IOU_LOSS_GIOU, YOLOXLOSS_ARITHMETIC_YOLOX, gr);
    TU_ASSERT_CLOSE(gr[0], 2000.0 / 90000.0, 1e-5, 0);
}

/* ---- DIoU, CIoU, EIoU, SIoU, iou-linear ------------------------------------ */

/* The box losses of docs/algorithm.md ("Box losses") in double, written from
 * the formulas there: pred p and gt g as (x, y, w, h). alpha_fixed, when not
 * NaN, replaces CIoU's alpha (the gradient holds it constant, so finite
 * differences must too). Returns NaN for a type it does not know. */
static double ref_box_loss(const double p[4], const double g[4], yoloxloss_iou_loss type, double alpha_fixed,
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

static const yoloxloss_iou_loss NEW_TYPES[] = {YOLOXLOSS_IOU_LOSS_IOU_LINEAR, YOLOXLOSS_IOU_LOSS_DIOU,
                                               YOLOXLOSS_IOU_LOSS_CIOU, YOLOXLOSS_IOU_LOSS_EIOU,
                                               YOLOXLOSS_IOU_LOSS_SIOU};
static const char *const NEW_TYPE_NAMES[] = {"iou-linear", "diou", "ciou", "eiou", "siou"};
#define NUM_NEW_TYPES 5

/* Hand values: the losses written out for two pairs. */
static void test_new_losses_forward_hand(void **state) {
    (void)state;
    const double pi = 3.14159265358979323846;
    /* gt [0,10]^2, pred [5,15]x[0,10]: IoU 1/3, enclosing 15 x 10, rho^2 = 25,
     * equal aspect (v = 0), dx = 5, dy = 0 (angle cost 0, gamma 2). */
    yl_box g = mk(5, 5, 10, 10), p = mk(10, 5, 10, 10);
    double diou = 1.0 - 1.0 / 3.0 + 25.0 / (325.0 + 1e-7);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_IOU_LINEAR, YOLOXLOSS_ARITHMETIC_YOLOX), 2.0 / 3.0, 1e-6, 0);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_DIOU, YOLOXLOSS_ARITHMETIC_YOLOX), diou, 1e-6, 0);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_CIOU, YOLOXLOSS_ARITHMETIC_YOLOX), diou, 1e-6, 0);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_EIOU, YOLOXLOSS_ARITHMETIC_YOLOX), diou, 1e-6, 0);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_SIOU, YOLOXLOSS_ARITHMETIC_YOLOX),
                    1.0 - 1.0 / 3.0 + 0.5 * (1.0 - exp(-2.0 * 25.0 / 225.0)), 1e-6, 0);

    /* pred [4,10]x[0,12] (7, 6, 6, 12): inter 60, union 112, enclosing 10 x 12,
     * rho^2 = 4 + 1; IoU > 0.5 so CIoU's alpha is on. */
    p = mk(7, 6, 6, 12);
    double iou = 60.0 / 112.0, pen = 5.0 / (244.0 + 1e-7);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_DIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 1 - iou + pen, 1e-6, 0);
    double gap = pi / 4 - atan(0.5), v = 4 / (pi * pi) * gap * gap, alpha = v / (1 - iou + v + 1e-7);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_CIOU, YOLOXLOSS_ARITHMETIC_YOLOX),
                    1 - (iou - pen - alpha * v), 1e-6, 0);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_EIOU, YOLOXLOSS_ARITHMETIC_YOLOX),
                    1 - iou + pen + 16.0 / (100.0 + 1e-7) + 4.0 / (144.0 + 1e-7), 1e-6, 0);
    /* angle cost 2 |dx| |dy| / sigma^2 = 0.8, gamma 1.2 */
    double dist = (1 - exp(-1.2 * 4.0 / 100.0)) + (1 - exp(-1.2 * 1.0 / 144.0));
    double shape = pow(1 - exp(-0.4), 4) + pow(1 - exp(-2.0 / 12.0), 4);
    TU_ASSERT_CLOSE(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_SIOU, YOLOXLOSS_ARITHMETIC_YOLOX),
                    1 - iou + 0.5 * (dist + shape), 1e-6, 0);
    /* CIoU's alpha is off at IoU <= 0.5: a pred with IoU 0.5 - and another aspect */
    yl_box q = mk(5, 5, 5, 10); /* [2.5,7.5]x[0,10]: IoU 0.5 exactly */
    gap = pi / 4 - atan(0.5);
    TU_ASSERT_CLOSE(yl_iou_loss(q, g, YOLOXLOSS_IOU_LOSS_CIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 0.5, 1e-6, 0);
}

/* Smallest distance between the values that meet at a kink of the losses
 * above: the IoU's corners (tie_margin), the enclosing box's corners, the
 * centre offsets and size differences (|.|), w against w_gt (max). */
static double new_loss_margin(yl_box p, yl_box g) {
    double m = tie_margin(p, g);
    m = fmin(m, fabs((double)p.x - g.x));
    m = fmin(m, fabs((double)p.y - g.y));
    m = fmin(m, fabs((double)p.w - g.w));
    m = fmin(m, fabs((double)p.h - g.h));
    return m;
}

/* Central differences of ref_box_loss, with CIoU's alpha held at its value at p. */
static void fd_new(const double p[4], const double g[4], yoloxloss_iou_loss type, double step, double out[4]) {
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

static void test_new_losses_grad_fd_random(void **state) {
    (void)state;
    for (int t = 0; t < NUM_NEW_TYPES; t++) {
        yoloxloss_iou_loss type = NEW_TYPES[t];
        tu_rng r = {1000u + (uint64_t)t};
        int checked[PAIR_KINDS] = {0}, alpha_on = 0;
        for (int it = 0; it < 4000; it++) {
            int kind = it % PAIR_KINDS;
            yl_box p, g;
            random_pair(&r, kind, &p, &g);
            if (new_loss_margin(p, g) < 0.05) continue;
            double pd[4], gd[4], fd[4];
            box_to_d(p, pd);
            box_to_d(g, gd);
            double alpha = 0.0;
            double want = ref_box_loss(pd, gd, type, NAN, &alpha);
            /* CIoU: away from alpha's switch at IoU = 0.5 and from the clamp */
            if (type == YOLOXLOSS_IOU_LOSS_CIOU && fabs(tu_iou_d(pd, gd) - 0.5) < 1e-3) continue;
            alpha_on += alpha > 0.0;
            fd_new(pd, gd, type, 1e-4, fd);
            float lib[4] = {NAN, NAN, NAN, NAN};
            yl_iou_loss_grad(p, g, type, YOLOXLOSS_ARITHMETIC_YOLOX, lib);
            double scale = 0;
            for (int k = 0; k < 4; k++) scale = fmax(scale, fabs(fd[k]));
            for (int k = 0; k < 4; k++)
                TU_ASSERT_NEAR_CTX(lib[k], fd[k], 1e-3 * scale + 1e-9,
                                   "%s kind %d it %d comp %d pred (%g %g %g %g) gt (%g %g %g %g)", NEW_TYPE_NAMES[t],
                                   kind, it, k, (double)p.x, (double)p.y, (double)p.w, (double)p.h, (double)g.x,
                                   (double)g.y, (double)g.w, (double)g.h);
            /* the gradient is of the loss the library computes forward */
            TU_ASSERT_NEAR_CTX(yl_iou_loss(p, g, type, YOLOXLOSS_ARITHMETIC_YOLOX), want, 1e-5 * fabs(want) + 1e-5,
                               "%s forward kind %d it %d", NEW_TYPE_NAMES[t], kind, it);
            checked[kind]++;
        }
        for (int k = 0; k < PAIR_KINDS; k++) assert_true(checked[k] > 400);
        if (type == YOLOXLOSS_IOU_LOSS_CIOU) assert_true(alpha_on > 200);
    }
}

/* Exact ties of corners (integer boxes, one tie per axis at most): the
 * half-split gradient is the mean of the one-sided derivatives, for every
 * new loss (EIoU, DIoU, CIoU, SIoU meet the same max/min of corners). */
static void test_new_losses_grad_tie_random(void **state) {
    (void)state;
    tu_rng r = {4711};
    int done = 0;
    for (int it = 0; it < 3000 && done < 300; it++) {
        int g1x = tu_int(&r, 0, 40), g1y = tu_int(&r, 0, 40);
        int g2x = g1x + tu_int(&r, 6, 40), g2y = g1y + tu_int(&r, 6, 40);
        int p1x = tu_int(&r, g1x - 10, g2x - 3), p1y = tu_int(&r, g1y - 10, g2y - 3);
        int p2x = tu_int(&r, p1x + 3, g2x + 10), p2y = tu_int(&r, p1y + 3, g2y + 10);
        int which = tu_int(&r, 0, 3);
        if (which == 0) p1x = g1x;
        if (which == 1) p2y = g2y;
        if (which == 2) p2x = g2x;
        if (which == 3) p1y = g1y;
        if (p2x - p1x < 2 || p2y - p1y < 2) continue;
        /* no other kink: centres and sizes apart, IoU clear of 0.5, overlap clear */
        if (abs((p1x + p2x) - (g1x + g2x)) < 2 || abs((p1y + p2y) - (g1y + g2y)) < 2) continue;
        if (abs((p2x - p1x) - (g2x - g1x)) < 1 || abs((p2y - p1y) - (g2y - g1y)) < 1) continue;
        int tx = (p1x == g1x) + (p2x == g2x), ty = (p1y == g1y) + (p2y == g2y);
        if (tx + ty != 1) continue;
        int ix = (p2x < g2x ? p2x : g2x) - (p1x > g1x ? p1x : g1x);
        int iy = (p2y < g2y ? p2y : g2y) - (p1y > g1y ? p1y : g1y);
        if (ix < 1 || iy < 1) continue;
        yl_box p = mk((float)(p1x + p2x) / 2.0f, (float)(p1y + p2y) / 2.0f, (float)(p2x - p1x), (float)(p2y - p1y));
        yl_box g = mk((float)(g1x + g2x) / 2.0f, (float)(g1y + g2y) / 2.0f, (float)(g2x - g1x), (float)(g2y - g1y));
        double pd[4], gd[4];
        box_to_d(p, pd);
        box_to_d(g, gd);
        if (fabs(tu_iou_d(pd, gd) - 0.5) < 1e-2) continue;
        for (int t = 0; t < NUM_NEW_TYPES; t++) {
            yoloxloss_iou_loss type = NEW_TYPES[t];
            double alpha = NAN;
            ref_box_loss(pd, gd, type, NAN, &alpha);
            double right[4], left[4], f0 = ref_box_loss(pd, gd, type, alpha, NULL);
            const double h = 1e-5;
            for (int k = 0; k < 4; k++) {
                double a[4], b[4], c[4], d[4];
                memcpy(a, pd, sizeof a), memcpy(b, pd, sizeof b), memcpy(c, pd, sizeof c), memcpy(d, pd, sizeof d);
                a[k] += h, b[k] += 2 * h, c[k] -= h, d[k] -= 2 * h;
                right[k] = (-3 * f0 + 4 * ref_box_loss(a, gd, type, alpha, NULL) - ref_box_loss(b, gd, type, alpha, NULL)) / (2 * h);
                left[k] = -(-3 * f0 + 4 * ref_box_loss(c, gd, type, alpha, NULL) - ref_box_loss(d, gd, type, alpha, NULL)) / (2 * h);
            }
            float lib[4];
            yl_iou_loss_grad(p, g, type, YOLOXLOSS_ARITHMETIC_YOLOX, lib);
            double scale = 1e-6;
            for (int k = 0; k < 4; k++) scale = fmax(scale, fmax(fabs(right[k]), fabs(left[k])));
            for (int k = 0; k < 4; k++)
                TU_ASSERT_NEAR_CTX(lib[k], 0.5 * (right[k] + left[k]), 2e-3 * scale, "tie %s which %d comp %d (r %g l %g)",
                                   NEW_TYPE_NAMES[t], which, k, right[k], left[k]);
        }
        done++;
    }
    assert_true(done >= 150);
}

/* Every loss, every degenerate case of the issue: a finite loss and a finite
 * gradient, and where docs/algorithm.md gives the value, that value. */
static void expect_finite(yl_box p, yl_box g, yoloxloss_iou_loss type, yoloxloss_arithmetic arith, const char *what,
                          float *loss, float grad[4]) {
    *loss = yl_iou_loss(p, g, type, arith);
    for (int k = 0; k < 4; k++) grad[k] = NAN;
    yl_iou_loss_grad(p, g, type, arith, grad);
    if (!isfinite(*loss)) fail_msg("%s, type %d arith %d: loss %g", what, (int)type, (int)arith, (double)*loss);
    for (int k = 0; k < 4; k++)
        if (!isfinite(grad[k]))
            fail_msg("%s, type %d arith %d: grad[%d] = %g", what, (int)type, (int)arith, k, (double)grad[k]);
}

static void test_degenerate_cases_finite(void **state) {
    (void)state;
    const double pi = 3.14159265358979323846;
    yl_box g = mk(50, 40, 20, 10);
    for (int arith = 0; arith <= 1; arith++)
        for (int type = YOLOXLOSS_IOU_LOSS_IOU; type <= YOLOXLOSS_IOU_LOSS_SIOU; type++) {
            yoloxloss_iou_loss ty = (yoloxloss_iou_loss)type;
            yoloxloss_arithmetic ar = (yoloxloss_arithmetic)arith;
            float l, gr[4];
            /* identical boxes: loss 0, no gradient (every corner ties) */
            expect_finite(g, g, ty, ar, "identical", &l, gr);
            TU_ASSERT_CLOSE(l, 0.0, 0, 1e-6);
            for (int k = 0; k < 4; k++) TU_ASSERT_NEAR_CTX(gr[k], 0.0, 1e-7, "identical type %d comp %d", type, k);

            /* zero-area predictions (exp underflow): w = 0, h = 0, both */
            const yl_box zero[3] = {mk(52, 41, 0, 8), mk(52, 41, 12, 0), mk(52, 41, 0, 0)};
            for (int z = 0; z < 3; z++) {
                expect_finite(zero[z], g, ty, ar, "zero-area prediction", &l, gr);
                /* IoU 0: the IoU-only losses are 1 with no gradient */
                if (ty == YOLOXLOSS_IOU_LOSS_IOU || ty == YOLOXLOSS_IOU_LOSS_IOU_LINEAR) {
                    TU_ASSERT_CLOSE(l, 1.0, 0, 1e-6);
                    for (int k = 0; k < 4; k++) assert_true(gr[k] == 0.0f);
                }
            }

            /* exp overflow: an infinite side, or both. The loss is finite and the
             * infinite side gets no gradient (backward multiplies it by exp(tw) = inf) */
            const yl_box inf_boxes[3] = {mk(52, 41, INFINITY, 8), mk(52, 41, 12, INFINITY), mk(52, 41, INFINITY, INFINITY)};
            for (int z = 0; z < 3; z++) {
                expect_finite(inf_boxes[z], g, ty, ar, "exp overflow", &l, gr);
                if (isinf(inf_boxes[z].w)) assert_true(gr[2] == 0.0f);
                if (isinf(inf_boxes[z].h)) assert_true(gr[3] == 0.0f);
            }
            /* both sides infinite: IoU 0, the penalties at their limits */
            expect_finite(inf_boxes[2], g, ty, ar, "exp overflow", &l, gr);
            double want = ty == YOLOXLOSS_IOU_LOSS_GIOU ? 2.0                   /* GIoU NaN read as -1 */
                          : ty == YOLOXLOSS_IOU_LOSS_EIOU ? 1.0 + 1.0 + 1.0      /* both size ratios -> 1 */
                          : ty == YOLOXLOSS_IOU_LOSS_SIOU ? 1.0 + pow(1 - exp(-1.0), 4) /* two shape terms at 1 */
                                                          : 1.0;
            TU_ASSERT_NEAR_CTX(l, want, 1e-6, "both sides infinite, type %d", type);

            /* an enclosing box of zero width: a gt thinner than float32 can
             * draw at x = 4096 (its corners round together), the prediction
             * just as thin on the same spot */
            yl_box thin_g = mk(4096, 40, 1e-5f, 10), thin_p = mk(4096, 42, 1e-5f, 12);
            assert_true(thin_g.x - thin_g.w / 2 == thin_g.x + thin_g.w / 2);
            expect_finite(thin_p, thin_g, ty, ar, "enclosing box of zero width", &l, gr);

            /* coincident centres (SIoU: angle cost 0 by definition), other sizes */
            expect_finite(mk(50, 40, 30, 6), g, ty, ar, "coincident centres", &l, gr);
            if (ty == YOLOXLOSS_IOU_LOSS_SIOU)
                TU_ASSERT_CLOSE(l, yl_iou_loss(mk(50, 40, 30, 6), g, YOLOXLOSS_IOU_LOSS_IOU_LINEAR, ar) +
                                       0.5 * (pow(1 - exp(-10.0 / 30.0), 4) + pow(1 - exp(-4.0 / 10.0), 4)),
                                1e-6, 0);
            /* centres apart on one axis only: |dy| = 0 is a kink of the angle cost */
            expect_finite(mk(58, 40, 20, 10), g, ty, ar, "centres apart in x only", &l, gr);
        }
    /* CIoU at aspect ratios 0 and inf: atan2 gives 0 and pi/2, finite derivatives */
    float l, gr[4];
    expect_finite(mk(50, 40, 0, 10), g, YOLOXLOSS_IOU_LOSS_CIOU, YOLOXLOSS_ARITHMETIC_YOLOX, "ratio 0", &l, gr);
    expect_finite(mk(50, 40, 20, 0), g, YOLOXLOSS_IOU_LOSS_CIOU, YOLOXLOSS_ARITHMETIC_YOLOX, "ratio inf", &l, gr);
    /* a gt of ratio 0 or inf is impossible (w, h > 0) but one near it is fine */
    expect_finite(mk(50, 40, 20, 10), mk(50, 40, 1e-30f, 10), YOLOXLOSS_IOU_LOSS_CIOU, YOLOXLOSS_ARITHMETIC_YOLOX,
                  "gt ratio near 0", &l, gr);
    /* identical boxes: IoU 1 and v 0, where alpha = v / (1 - IoU + v) is 0/0
     * without its eps: alpha 0, loss 0 */
    TU_ASSERT_CLOSE(yl_iou_loss(g, g, YOLOXLOSS_IOU_LOSS_CIOU, YOLOXLOSS_ARITHMETIC_YOLOX), 0.0, 0, 1e-7);
    (void)pi;
}

/* MMDetection's arithmetic: areas from the corners, the union at least 1e-6,
 * the IoU at least 1e-16 (IoULoss's clamp). */
static void test_mmdet_arithmetic(void **state) {
    (void)state;
    /* Far from 0 the corners' product is not w h: x = 1000.3, w = 0.7 */
    yl_box g = mk(1000.25f, 20, 2.5f, 4), p = mk(1000.3f, 20.5f, 0.7f, 3);
    float p1x = p.x - p.w / 2, p2x = p.x + p.w / 2, p1y = p.y - p.h / 2, p2y = p.y + p.h / 2;
    float g1x = g.x - g.w / 2, g2x = g.x + g.w / 2, g1y = g.y - g.h / 2, g2y = g.y + g.h / 2;
    assert_true((p2x - p1x) != p.w); /* the case is one where the two arithmetics differ */
    float ov = (fminf(p2x, g2x) - fmaxf(p1x, g1x)) * (fminf(p2y, g2y) - fmaxf(p1y, g1y));
    float uni = (p2x - p1x) * (p2y - p1y) + (g2x - g1x) * (g2y - g1y) - ov;
    float iou = ov / uni;
    TU_ASSERT_BITS_EQ(yl_pair_iou_mmdet(g, p), iou);
    TU_ASSERT_BITS_EQ(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_MMDET), 1.0f - iou * iou);
    TU_ASSERT_BITS_EQ(yl_iou_loss(p, g, YOLOXLOSS_IOU_LOSS_IOU_LINEAR, YOLOXLOSS_ARITHMETIC_MMDET), 1.0f - iou);
    assert_true(yl_pair_iou(g, p) != iou);

    /* boxes of 1e-4 px: the union 2e-8 is floored at 1e-6 */
    yl_box tg = mk(3, 3, 1e-4f, 1e-4f), tp = mk(3, 3, 1e-4f, 1e-4f);
    float t_inter = ((tp.x + tp.w / 2) - (tp.x - tp.w / 2)) * ((tp.y + tp.h / 2) - (tp.y - tp.h / 2));
    TU_ASSERT_CLOSE(yl_pair_iou_mmdet(tg, tp), t_inter / 1e-6f, 1e-6, 0);
    TU_ASSERT_BITS_EQ(yl_pair_iou(tg, tp), t_inter / (tp.w * tp.h + tg.w * tg.h - t_inter)); /* YOLOX's: no floor */

    /* disjoint: the IoU is clamped to 1e-16, 1 - 1e-32 rounds to 1, no gradient */
    float gr[4];
    yl_iou_loss_grad(mk(40, 40, 5, 5), g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_MMDET, gr);
    for (int k = 0; k < 4; k++) assert_true(gr[k] == 0.0f);
    assert_true(yl_iou_loss(mk(40, 40, 5, 5), g, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_MMDET) == 1.0f);

    /* The area's derivative takes the corners' sides: a prediction that holds
     * the gt (inter = area_g, union = area_p) far from 0, where p2x - p1x is
     * 1e-4 away from w: d(1 - iou^2)/dh = 2 iou^2 (p2x - p1x) / area_p. */
    {
        yl_box big = mk(1000.3f, 20, 3.7f, 6), small = mk(1000.3f, 20, 1, 1);
        float b1x = big.x - big.w / 2, b2x = big.x + big.w / 2, b1y = big.y - big.h / 2, b2y = big.y + big.h / 2;
        float s1x = small.x - small.w / 2, s2x = small.x + small.w / 2;
        float s1y = small.y - small.h / 2, s2y = small.y + small.h / 2;
        double area_p = (double)((b2x - b1x) * (b2y - b1y)), area_g = (double)((s2x - s1x) * (s2y - s1y));
        double u = area_g / area_p;
        assert_true(fabs((double)(b2x - b1x) - big.w) > 1e-5 * big.w);
        float gb[4];
        yl_iou_loss_grad(big, small, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_MMDET, gb);
        TU_ASSERT_CLOSE(gb[3], 2.0 * u * u * (double)(b2x - b1x) / area_p, 1e-6, 0);
        TU_ASSERT_CLOSE(gb[2], 2.0 * u * u * (double)(b2y - b1y) / area_p, 1e-6, 0);
    }

    /* below the union's floor of 1e-6 the areas pass no gradient: boxes of
     * 3e-4 x 2e-4 px whose union is 8e-8; the IoU moves with the intersection
     * alone (inter / 1e-6), against finite differences of that formula */
    {
        yl_box a = mk(0.0010f, 0.0020f, 3e-4f, 2e-4f), b = mk(0.0011f, 0.00205f, 3e-4f, 2e-4f);
        float gl[4];
        yl_iou_loss_grad(a, b, YOLOXLOSS_IOU_LOSS_IOU_LINEAR, YOLOXLOSS_ARITHMETIC_MMDET, gl);
        /* a lies left of and below b: ix = a2x - b1x, iy = a2y - b1y */
        double ix = (0.0010 + 1.5e-4) - (0.0011 - 1.5e-4), iy = (0.0020 + 1e-4) - (0.00205 - 1e-4);
        /* l = 1 - ix iy / 1e-6: a's right and top edges move with x, y and half its w, h */
        TU_ASSERT_CLOSE(gl[0], -iy / 1e-6, 1e-3, 0);
        TU_ASSERT_CLOSE(gl[1], -ix / 1e-6, 1e-3, 0);
        TU_ASSERT_CLOSE(gl[2], -iy / 2.0 / 1e-6, 1e-3, 0);
        TU_ASSERT_CLOSE(gl[3], -ix / 2.0 / 1e-6, 1e-3, 0);
    }

    /* an IoU between 0 and 1e-16 (1e-10 px^2 of 1e8): IoULoss's clamp passes
     * no gradient, where YOLOX's arithmetic does */
    {
        yl_box huge = mk(-5000, -5000, 10000, 10000), corner = mk(0.499995f, 0.499995f, 1.00001f, 1.00001f);
        float gm[4], gy[4];
        yl_iou_loss_grad(huge, corner, YOLOXLOSS_IOU_LOSS_IOU_LINEAR, YOLOXLOSS_ARITHMETIC_MMDET, gm);
        yl_iou_loss_grad(huge, corner, YOLOXLOSS_IOU_LOSS_IOU_LINEAR, YOLOXLOSS_ARITHMETIC_YOLOX, gy);
        assert_true(yl_pair_iou_mmdet(corner, huge) > 0.0f && yl_pair_iou_mmdet(corner, huge) < 1e-16f);
        for (int k = 0; k < 4; k++) assert_true(gm[k] == 0.0f);
        assert_true(gy[0] != 0.0f);
    }

    /* its gradient against finite differences (in double the corners' product is w h) */
    tu_rng r = {99};
    for (int it = 0; it < 2000; it++) {
        yl_box a, b;
        random_pair(&r, it % PAIR_KINDS, &a, &b);
        if (tie_margin(a, b) < 0.05) continue;
        for (int t = 0; t < 2; t++) {
            yoloxloss_iou_loss type = t ? YOLOXLOSS_IOU_LOSS_IOU : YOLOXLOSS_IOU_LOSS_DIOU;
            double ad[4], bd[4], fd[4];
            box_to_d(a, ad);
            box_to_d(b, bd);
            if (t) {
                fd_grad(ad, bd, 0, 1e-4, fd);
            } else {
                fd_new(ad, bd, type, 1e-4, fd);
            }
            float lib[4];
            yl_iou_loss_grad(a, b, type, YOLOXLOSS_ARITHMETIC_MMDET, lib);
            double scale = 0;
            for (int k = 0; k < 4; k++) scale = fmax(scale, fabs(fd[k]));
            for (int k = 0; k < 4; k++)
                TU_ASSERT_NEAR_CTX(lib[k], fd[k], 1e-3 * scale + 1e-9, "mmdet type %d it %d comp %d", (int)type, it, k);
        }
    }

    /* decoding tx s + j s and the L1 target (cx - j s) / s: equal to YOLOX's at
     * stride 8, not always at 10.3 */
    int differ = 0;
    for (int j = 0; j < 64; j++) {
        float tx = (float)j * 0.173f - 3.0f;
        yl_box y8 = yl_decode(tu_math(), tx, 0, 0, 0, 0, j, 8.0f, YOLOXLOSS_ARITHMETIC_YOLOX);
        yl_box m8 = yl_decode(tu_math(), tx, 0, 0, 0, 0, j, 8.0f, YOLOXLOSS_ARITHMETIC_MMDET);
        TU_ASSERT_BITS_EQ(y8.x, m8.x);
        yl_box m10 = yl_decode(tu_math(), tx, 0, 0, 0, 0, j, 10.3f, YOLOXLOSS_ARITHMETIC_MMDET);
        TU_ASSERT_BITS_EQ(m10.x, tx * 10.3f + (float)j * 10.3f);
        yl_box y10 = yl_decode(tu_math(), tx, 0, 0, 0, 0, j, 10.3f, YOLOXLOSS_ARITHMETIC_YOLOX);
        differ += y10.x != m10.x;
        float t_m[4], t_y[4];
        yl_l1_target(tu_math(), mk(100.3f + (float)j, 7, 9, 9), 0, j, 10.3f, YOLOXLOSS_ARITHMETIC_MMDET, t_m);
        yl_l1_target(tu_math(), mk(100.3f + (float)j, 7, 9, 9), 0, j, 10.3f, YOLOXLOSS_ARITHMETIC_YOLOX, t_y);
        TU_ASSERT_BITS_EQ(t_m[0], (100.3f + (float)j - (float)j * 10.3f) / 10.3f);
        TU_ASSERT_BITS_EQ(t_m[2], t_y[2]);
        differ += t_m[0] != t_y[0];
    }
    assert_true(differ > 0);
}

/* ---- L1 target ----------------------------------------------------------- */

static void test_l1_target_hand(void **state) {
    (void)state;
    float t[4];
    /* (cx/s - j, cy/s - i, log(w/s + 1e-8), log(h/s + 1e-8)) */
    yl_l1_target(tu_math(), mk(20, 36, 16, 8), 4, 2, 8.0f, YOLOXLOSS_ARITHMETIC_YOLOX, t);
    TU_ASSERT_CLOSE(t[0], 0.5, 0, 1e-7);
    TU_ASSERT_CLOSE(t[1], 0.5, 0, 1e-7);
    TU_ASSERT_CLOSE(t[2], log(2.0), 1e-6, 0);
    TU_ASSERT_CLOSE(t[3], 0.0, 0, 1e-7);

    yl_l1_target(tu_math(), mk(100, 10, 4, 160), 0, 3, 32.0f, YOLOXLOSS_ARITHMETIC_YOLOX, t);
    TU_ASSERT_CLOSE(t[0], 100.0 / 32 - 3, 0, 1e-6);
    TU_ASSERT_CLOSE(t[1], 10.0 / 32, 0, 1e-6);
    TU_ASSERT_CLOSE(t[2], log(0.125), 1e-6, 0);
    TU_ASSERT_CLOSE(t[3], log(5.0), 1e-6, 0);

    /* targets can be negative / outside [0,1] for anchors away from the centre */
    yl_l1_target(tu_math(), mk(4, 4, 8, 8), 2, 2, 8.0f, YOLOXLOSS_ARITHMETIC_YOLOX, t);
    TU_ASSERT_CLOSE(t[0], -1.5, 0, 1e-7);
    TU_ASSERT_CLOSE(t[1], -1.5, 0, 1e-7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_hand_values),
        cmocka_unit_test(test_pair_iou_hand_values),
        cmocka_unit_test(test_iou_loss_forward_hand),
        cmocka_unit_test(test_iou_grad_fd_random),
        cmocka_unit_test(test_giou_grad_fd_random),
        cmocka_unit_test(test_grad_tie_hand),
        cmocka_unit_test(test_grad_tie_random),
        cmocka_unit_test(test_grad_no_overlap_is_zero_for_iou),
        cmocka_unit_test(test_l1_target_hand),
        cmocka_unit_test(test_new_losses_forward_hand),
        cmocka_unit_test(test_new_losses_grad_fd_random),
        cmocka_unit_test(test_new_losses_grad_tie_random),
        cmocka_unit_test(test_degenerate_cases_finite),
        cmocka_unit_test(test_mmdet_arithmetic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
