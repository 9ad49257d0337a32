/* Box decoding, the pair IoU, the IoU and GIoU losses' forward values and the
 * L1 target, each against values worked out by hand. The gradients are in
 * test_box_grad.c (IoU, GIoU) and test_box_losses.c (the newer losses), the
 * degenerate boxes in test_box_degenerate.c, MMDetection's arithmetic in
 * test_box_mmdet.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "box.h"
#include "test_util.h"
#include "box_util.h"

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
        cmocka_unit_test(test_l1_target_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
