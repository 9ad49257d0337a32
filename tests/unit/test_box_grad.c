/* The IoU and GIoU losses' gradient: against central differences of the
 * double reference on random pairs of every kind, at exact ties of corners
 * (half shares: by hand, and as the mean of the one-sided derivatives on
 * random integer boxes), and zero for the IoU loss of boxes that do not
 * overlap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "box.h"
#include "test_util.h"
#include "box_util.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iou_grad_fd_random),
        cmocka_unit_test(test_giou_grad_fd_random),
        cmocka_unit_test(test_grad_tie_hand),
        cmocka_unit_test(test_grad_tie_random),
        cmocka_unit_test(test_grad_no_overlap_is_zero_for_iou),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
