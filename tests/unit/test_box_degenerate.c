/* Every box loss, in both arithmetics, at the degenerate boxes of
 * docs/algorithm.md ("Box losses"): identical boxes, zero-area predictions,
 * sides that exp made infinite, an enclosing box of zero width, coincident
 * centres, CIoU's aspect ratio at 0 and infinity. The loss and gradient stay
 * finite, and take the documented values where the docs give them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "box.h"
#include "test_util.h"
#include "box_util.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_degenerate_cases_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
