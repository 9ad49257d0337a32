/* The newer box losses (iou-linear, DIoU, CIoU, EIoU, SIoU): forward values
 * worked out by hand, the gradient against central differences of
 * ref_box_loss on random pairs (CIoU's alpha held constant, as the library's
 * gradient holds it), and at exact ties of corners the mean of the one-sided
 * derivatives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "box.h"
#include "test_util.h"
#include "box_util.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_losses_forward_hand),
        cmocka_unit_test(test_new_losses_grad_fd_random),
        cmocka_unit_test(test_new_losses_grad_tie_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
