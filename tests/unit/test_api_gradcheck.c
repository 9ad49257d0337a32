/* The public API's gradients: central finite differences through the whole
 * forward, zero gradient at exact targets, and a gt outside the image. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

static float forward_term(yoloxloss_context *ctx, const ts_scene *sc, int term, ts_small_assignment *as) {
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc->batch, &l), YOLOXLOSS_OK);
    ts_get_assignment(ctx, as);
    return term == 0 ? l.total : term == 1 ? l.iou : l.l1;
}

static void check_fd_arith(yoloxloss_iou_loss type, yoloxloss_arithmetic arith, uint64_t seed);

/* Perturbs obj / cls logits (term: total) or reg outputs of fg anchors
 * (terms: iou and l1, which pred_iou does not enter) and compares the
 * central difference with backward, keeping only steps that leave the
 * assignment unchanged. */
static void check_fd(yoloxloss_iou_loss type, uint64_t seed) {
    check_fd_arith(type, YOLOXLOSS_ARITHMETIC_YOLOX, seed);
}

static void check_fd_arith(yoloxloss_iou_loss type, yoloxloss_arithmetic arith, uint64_t seed) {
    ts_scene sc;
    ts_scene_make_small(&sc, 2, seed);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    cfg.iou_loss = type;
    cfg.arithmetic = arith;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    ts_small_assignment a0, ap, am;
    (void)forward_term(ctx, &sc, 0, &a0);
    ts_grad_buffers gtot, giou, gl1;
    ts_grad_buffers_make(&gtot, &sc, 0.0f);
    ts_grad_buffers_make(&giou, &sc, 0.0f);
    ts_grad_buffers_make(&gl1, &sc, 0.0f);
    const yoloxloss_upstream up_iou = {0, 1, 0, 0, 0}, up_l1 = {0, 0, 0, 0, 1};
    ts_backward_fused(ctx, &gtot, NULL, 0);
    ts_backward_fused(ctx, &giou, &up_iou, 0);
    ts_backward_fused(ctx, &gl1, &up_l1, 0);

    int checked_logit = 0, checked_reg = 0;
    for (int b = 0; b < sc.B; b++)
        for (int a = 0; a < TS_SMALL_ANCHORS; a++) {
            int lv, i, j;
            ts_anchor_pos(&sc, a, &lv, &i, &j);
            int fg = a0.matched[b * TS_SMALL_ANCHORS + a] >= 0;
            size_t hw = ts_hw(&sc, lv), base = ts_index(&sc, lv, b, 0, i, j);
            /* obj and cls logits: every fg anchor, every third bg anchor */
            if (fg || a % 3 == 0)
                for (int ch = 4; ch < 5 + sc.C; ch++) {
                    float *x = ts_at(&sc, lv, b, ch, i, j);
                    const float x0 = *x, h = 1e-2f;
                    *x = x0 + h;
                    double fp = forward_term(ctx, &sc, 0, &ap);
                    *x = x0 - h;
                    double fm = forward_term(ctx, &sc, 0, &am);
                    *x = x0;
                    if (memcmp(ap.matched, a0.matched, sizeof ap.matched) ||
                        memcmp(am.matched, a0.matched, sizeof am.matched))
                        continue;
                    double fd = (fp - fm) / (2.0 * (double)h);
                    double gr = gtot.fused[lv][base + (size_t)ch * hw];
                    TU_ASSERT_NEAR_CTX(gr, fd, 2e-3 + 2e-2 * fabs(fd), "iou_loss %d logit b %d a %d ch %d",
                                       (int)type, b, a, ch);
                    checked_logit++;
                }
            if (!fg) continue;
            /* CIoU's gradient holds alpha constant (MMDetection's form), which
             * a difference of the forward cannot: test_box_losses checks it
             * with alpha fixed. Here only where alpha is 0 (IoU <= 0.5). */
            if (type == YOLOXLOSS_IOU_LOSS_CIOU && a0.pred_iou[b * TS_SMALL_ANCHORS + a] > 0.5f) continue;
            for (int ch = 0; ch < 4; ch++) {
                for (int term = 1; term <= 2; term++) {
                    float *x = ts_at(&sc, lv, b, ch, i, j);
                    if (term == 2) {
                        /* |reg - target| has a kink at 0: stay clear of it */
                        double target[4];
                        ts_l1_target(&sc, lv, i, j, ts_first_gt_row(&sc, b) + a0.matched[b * TS_SMALL_ANCHORS + a],
                                     target);
                        if (fabs(*x - target[ch]) < 2e-2) continue;
                    }
                    const float x0 = *x, h = 5e-3f;
                    *x = x0 + h;
                    double fp = forward_term(ctx, &sc, term, &ap);
                    *x = x0 - h;
                    double fm = forward_term(ctx, &sc, term, &am);
                    *x = x0;
                    if (memcmp(ap.matched, a0.matched, sizeof ap.matched) ||
                        memcmp(am.matched, a0.matched, sizeof am.matched))
                        continue;
                    double fd = (fp - fm) / (2.0 * (double)h);
                    if (type != YOLOXLOSS_IOU_LOSS_IOU && type != YOLOXLOSS_IOU_LOSS_GIOU) {
                        /* Their derivatives jump where two boxes start to
                         * overlap (1 - IoU is not smooth at IoU = 0 as
                         * 1 - IoU^2 is), and at |dx| = 0 and the like: skip a
                         * step whose two one-sided slopes disagree. */
                        double f0 = forward_term(ctx, &sc, term, &ap);
                        double right = (fp - f0) / (double)h, left = (f0 - fm) / (double)h;
                        if (fabs(right - left) > 2e-2 * fmax(fabs(right), fabs(left)) + 2e-3) continue;
                    }
                    double gr = (term == 1 ? giou : gl1).fused[lv][base + (size_t)ch * hw];
                    TU_ASSERT_NEAR_CTX(gr, fd, 2e-3 + 2e-2 * fabs(fd), "iou_loss %d reg term %d b %d a %d ch %d",
                                       (int)type, term, b, a, ch);
                    checked_reg++;
                }
            }
        }
    assert_true(checked_logit >= 40);
    assert_true(checked_reg >= 16);
    ts_grad_buffers_free(&gtot);
    ts_grad_buffers_free(&giou);
    ts_grad_buffers_free(&gl1);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_finite_differences(void **state) {
    (void)state;
    check_fd(YOLOXLOSS_IOU_LOSS_IOU, 50);
    check_fd(YOLOXLOSS_IOU_LOSS_GIOU, 51);
}

/* The same through the whole API for the other box losses, and for
 * MMDetection's arithmetic. */
static void test_finite_differences_every_box_loss(void **state) {
    (void)state;
    for (int type = YOLOXLOSS_IOU_LOSS_IOU_LINEAR; type <= YOLOXLOSS_IOU_LOSS_SIOU; type++)
        check_fd((yoloxloss_iou_loss)type, 52 + (uint64_t)type);
    check_fd_arith(YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_ARITHMETIC_MMDET, 60);
    check_fd_arith(YOLOXLOSS_IOU_LOSS_SIOU, YOLOXLOSS_ARITHMETIC_MMDET, 62);
}

/* Every pred equals its L1 target exactly (and so decodes to the gt box):
 * sign(0) = 0 gives no L1 gradient, and the IoU loss of identical boxes (all
 * corners tie, shares of 1/2) has zero gradient too. */
static void test_exact_targets_zero_gradient(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 1, 60);
    sc.num_gt[0] = 1;
    sc.classes[0] = 2;
    const float gt[4] = {20, 20, 16, 16};
    memcpy(sc.boxes, gt, sizeof gt);
    for (int lv = 0; lv < sc.L; lv++)
        for (int i = 0; i < sc.lv[lv].height; i++)
            for (int j = 0; j < sc.lv[lv].width; j++) {
                float s = sc.strides[lv];
                *ts_at(&sc, lv, 0, 0, i, j) = gt[0] / s - (float)j;
                *ts_at(&sc, lv, 0, 1, i, j) = gt[1] / s - (float)i;
                *ts_at(&sc, lv, 0, 2, i, j) = logf(gt[2] / s + 1e-8f);
                *ts_at(&sc, lv, 0, 3, i, j) = logf(gt[3] / s + 1e-8f);
            }
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    for (int type = YOLOXLOSS_IOU_LOSS_IOU; type <= YOLOXLOSS_IOU_LOSS_SIOU; type++) {
        cfg.iou_loss = (yoloxloss_iou_loss)type;
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        yoloxloss_losses l;
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
        assert_true(l.num_fg >= 1);
        assert_true(l.l1 == 0.0f);
        TU_ASSERT_CLOSE(l.iou, 0.0, 0, 1e-6);
        ts_small_assignment as;
        ts_get_assignment(ctx, &as);
        for (int a = 0; a < TS_SMALL_ANCHORS; a++)
            if (as.matched[a] >= 0) assert_true(as.pred_iou[a] == 1.0f);
        ts_grad_buffers g;
        ts_grad_buffers_make(&g, &sc, NAN);
        const yoloxloss_upstream up = {0, 1, 0, 0, 1}; /* iou and l1 only */
        ts_backward_fused(ctx, &g, &up, 0);
        for (int lv = 0; lv < sc.L; lv++)
            for (size_t q = 0; q < sc.elems[lv]; q++) TU_ASSERT_CLOSE(g.fused[lv][q], 0.0, 0, 1e-7);
        ts_grad_buffers_free(&g);
        yoloxloss_destroy(ctx);
    }
    ts_scene_free(&sc);
}

/* A gt far outside the image: its image has no candidate, dynamic_k is 0. */
static void test_gt_outside_image_api(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 61);
    sc.num_gt[0] = 1;
    sc.num_gt[1] = 1;
    const float far[4] = {-900, 4000, 12, 12}, in[4] = {16, 16, 12, 12};
    memcpy(sc.boxes, far, sizeof far);
    memcpy(sc.boxes + 4, in, sizeof in);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    for (int assigner = 0; assigner < 2; assigner++) {
        cfg.assigner = (yoloxloss_assigner)assigner;
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        yoloxloss_losses l;
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
        ts_small_assignment as;
        memset(&as, 0x22, sizeof as);
        assert_int_equal(yoloxloss_get_assignment(ctx, as.matched, as.pred_iou, as.dk), YOLOXLOSS_OK);
        assert_int_equal(as.dk[0], 0);
        assert_true(as.dk[1] >= 1);
        int fg1 = 0;
        for (int a = 0; a < TS_SMALL_ANCHORS; a++) {
            assert_int_equal(as.matched[a], -1);
            fg1 += as.matched[TS_SMALL_ANCHORS + a] >= 0;
        }
        assert_true(l.num_fg == fg1 && fg1 >= 1);
        yoloxloss_destroy(ctx);
    }
    ts_scene_free(&sc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_finite_differences_every_box_loss),
        cmocka_unit_test(test_exact_targets_zero_gradient),
        cmocka_unit_test(test_gt_outside_image_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
