/* MMDetection's arithmetic (YOLOXLOSS_ARITHMETIC_MMDET): areas from the
 * corners, the union's floor of 1e-6 and IoULoss's clamp at 1e-16, with the
 * gradients they imply, the gradient against finite differences, and the
 * decoding and L1 target (YOLOX's bit for bit at stride 8, not always at
 * 10.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "box.h"
#include "test_util.h"
#include "box_util.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mmdet_arithmetic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
