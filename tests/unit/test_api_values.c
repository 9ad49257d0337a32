/* The public API's loss values and gradients against double-precision
 * formulas evaluated over the assignment that get_assignment reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

/* expected loss terms (weighted, normalised by N) from an assignment, double */
static void expected_terms(const ts_scene *sc, const yoloxloss_config *cfg, const ts_small_assignment *as, double N,
                           double out[4]) {
    double iou = 0, obj = 0, cls = 0, l1 = 0;
    for (int b = 0; b < sc->B; b++)
        for (int a = 0; a < TS_SMALL_ANCHORS; a++) {
            int l, i, j;
            ts_anchor_pos(sc, a, &l, &i, &j);
            int q = b * TS_SMALL_ANCHORS + a, m = as->matched[q];
            obj += (double)tu_bce_logits_l(*ts_at(sc, l, b, 4, i, j), m >= 0 ? 1 : 0);
            if (m < 0) continue;
            int row = ts_first_gt_row(sc, b) + m;
            int c = sc->classes[row];
            for (int k = 0; k < sc->C; k++)
                cls += (double)tu_bce_logits_l(*ts_at(sc, l, b, 5 + k, i, j), k == c ? as->pred_iou[q] : 0.0);
            double s = sc->strides[l];
            double t[4] = {*ts_at(sc, l, b, 0, i, j), *ts_at(sc, l, b, 1, i, j), *ts_at(sc, l, b, 2, i, j),
                           *ts_at(sc, l, b, 3, i, j)};
            double pb[4] = {(t[0] + j) * s, (t[1] + i) * s, exp(t[2]) * s, exp(t[3]) * s};
            const float *gb = sc->boxes + 4 * row;
            double gd[4] = {gb[0], gb[1], gb[2], gb[3]};
            iou += tu_iou_loss_d(pb, gd, cfg->iou_loss == YOLOXLOSS_IOU_LOSS_GIOU);
            double target[4];
            ts_l1_target(sc, l, i, j, row, target);
            for (int k = 0; k < 4; k++) l1 += fabs(t[k] - target[k]);
        }
    out[0] = cfg->reg_weight * iou / N;
    out[1] = cfg->obj_weight * obj / N;
    out[2] = cfg->cls_weight * cls / N;
    out[3] = cfg->use_l1 ? cfg->l1_weight * l1 / N : 0.0;
}

static void check_losses_against_assignment(yoloxloss_iou_loss type, int use_l1, uint64_t seed) {
    ts_scene sc;
    ts_scene_make_small(&sc, 3, seed);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    cfg.iou_loss = type;
    cfg.use_l1 = use_l1;
    cfg.reg_weight = 4.5f;
    cfg.obj_weight = 1.5f;
    cfg.cls_weight = 0.75f;
    cfg.l1_weight = 2.0f;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    ts_small_assignment as;
    ts_get_assignment(ctx, &as);
    int64_t fg = 0;
    for (int q = 0; q < sc.B * TS_SMALL_ANCHORS; q++) fg += as.matched[q] >= 0;
    assert_true(l.num_fg == fg);
    assert_true(fg > 0);
    assert_true(l.num_gt == ts_first_gt_row(&sc, sc.B));
    double N = fg > 1 ? (double)fg : 1.0;
    assert_true(l.normalizer == (float)N);
    TU_ASSERT_CLOSE(l.fg_ratio, N / (double)ts_first_gt_row(&sc, sc.B), 1e-6, 0);
    double want[4];
    expected_terms(&sc, &cfg, &as, N, want);
    TU_ASSERT_CLOSE(l.iou, want[0], 1e-5, 1e-6);
    TU_ASSERT_CLOSE(l.obj, want[1], 1e-5, 1e-6);
    TU_ASSERT_CLOSE(l.cls, want[2], 1e-5, 1e-6);
    TU_ASSERT_CLOSE(l.l1, want[3], 1e-5, 1e-6);
    if (!use_l1) assert_true(l.l1 == 0.0f);
    TU_ASSERT_CLOSE(l.total, (double)l.iou + l.obj + l.cls + l.l1, 1e-6, 1e-6);
    TU_ASSERT_CLOSE(l.total, want[0] + want[1] + want[2] + want[3], 1e-5, 1e-6);

    /* gradients of obj (every anchor) and cls (fg only; 0 elsewhere) */
    ts_grad_buffers g;
    ts_grad_buffers_make(&g, &sc, NAN);
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_OK);
    for (int b = 0; b < sc.B; b++)
        for (int a = 0; a < TS_SMALL_ANCHORS; a++) {
            int lv, i, j;
            ts_anchor_pos(&sc, a, &lv, &i, &j);
            int q = b * TS_SMALL_ANCHORS + a, m = as.matched[q];
            size_t hw = ts_hw(&sc, lv);
            size_t base = ts_index(&sc, lv, b, 0, i, j);
            double x = *ts_at(&sc, lv, b, 4, i, j);
            double want_obj = cfg.obj_weight * (tu_sigmoid(x) - (m >= 0 ? 1.0 : 0.0)) / N;
            TU_ASSERT_NEAR_CTX(g.fused[lv][base + 4 * hw], want_obj, 1e-6 * fabs(want_obj) + 1e-8, "obj b %d a %d",
                               b, a);
            int c = m >= 0 ? sc.classes[ts_first_gt_row(&sc, b) + m] : -1;
            for (int k = 0; k < sc.C; k++) {
                double xc = *ts_at(&sc, lv, b, 5 + k, i, j);
                double want_cls =
                    m < 0 ? 0.0 : cfg.cls_weight * (tu_sigmoid(xc) - (k == c ? as.pred_iou[q] : 0.0)) / N;
                TU_ASSERT_NEAR_CTX(g.fused[lv][base + (size_t)(5 + k) * hw], want_cls, 1e-6 * fabs(want_cls) + 1e-8,
                                   "cls b %d a %d k %d", b, a, k);
            }
            if (m < 0)
                for (int k = 0; k < 4; k++) assert_true(g.fused[lv][base + (size_t)k * hw] == 0.0f);
        }
    ts_grad_buffers_free(&g);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_losses_against_assignment(void **state) {
    (void)state;
    check_losses_against_assignment(YOLOXLOSS_IOU_LOSS_IOU, 0, 11);
    check_losses_against_assignment(YOLOXLOSS_IOU_LOSS_IOU, 1, 12);
    check_losses_against_assignment(YOLOXLOSS_IOU_LOSS_GIOU, 1, 13);
    check_losses_against_assignment(YOLOXLOSS_IOU_LOSS_GIOU, 0, 14);
}

static void test_zero_gt_batch(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 6);
    sc.num_gt[0] = sc.num_gt[1] = 0;
    sc.batch.gt_classes = NULL;
    sc.batch.gt_boxes = NULL;
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    cfg.obj_weight = 1.5f;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_true(l.num_fg == 0);
    assert_true(l.num_gt == 0);
    assert_true(l.normalizer == 1.0f);
    assert_true(l.fg_ratio == 1.0f);
    assert_true(l.iou == 0.0f && l.cls == 0.0f && l.l1 == 0.0f);
    long double sum = 0;
    for (int lv = 0; lv < sc.L; lv++)
        for (int b = 0; b < sc.B; b++)
            for (int i = 0; i < sc.lv[lv].height; i++)
                for (int j = 0; j < sc.lv[lv].width; j++) sum += tu_bce_logits_l(*ts_at(&sc, lv, b, 4, i, j), 0);
    TU_ASSERT_CLOSE(l.obj, 1.5 * (double)sum / 1.0, 1e-6, 0);
    TU_ASSERT_CLOSE(l.total, l.obj, 1e-7, 0);

    ts_small_assignment as;
    memset(&as, 0x11, sizeof as);
    assert_int_equal(yoloxloss_get_assignment(ctx, as.matched, as.pred_iou, as.dk), YOLOXLOSS_OK);
    for (int q = 0; q < sc.B * TS_SMALL_ANCHORS; q++) {
        assert_int_equal(as.matched[q], -1);
        assert_true(as.pred_iou[q] == 0.0f);
    }
    ts_grad_buffers g;
    ts_grad_buffers_make(&g, &sc, NAN);
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_OK);
    for (int lv = 0; lv < sc.L; lv++)
        for (int b = 0; b < sc.B; b++)
            for (int i = 0; i < sc.lv[lv].height; i++)
                for (int j = 0; j < sc.lv[lv].width; j++) {
                    size_t hw = ts_hw(&sc, lv), base = ts_index(&sc, lv, b, 0, i, j);
                    double want = 1.5 * tu_sigmoid(*ts_at(&sc, lv, b, 4, i, j));
                    TU_ASSERT_CLOSE(g.fused[lv][base + 4 * hw], want, 1e-6, 1e-9);
                    for (int ch = 0; ch < 5 + sc.C; ch++)
                        if (ch != 4) assert_true(g.fused[lv][base + (size_t)ch * hw] == 0.0f);
                }
    /* mixed: one image with gts, one without */
    ts_scene_free(&sc);
    ts_scene_make_small(&sc, 2, 6);
    sc.num_gt[0] = 0;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    assert_true(l.num_gt == sc.num_gt[1]);
    ts_get_assignment(ctx, &as);
    for (int q = 0; q < TS_SMALL_ANCHORS; q++) assert_int_equal(as.matched[q], -1);
    ts_grad_buffers_free(&g);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_obj_grad_background(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 7);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    cfg.obj_weight = 2.5f;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    ts_small_assignment as;
    ts_get_assignment(ctx, &as);
    ts_grad_buffers g;
    ts_grad_buffers_make(&g, &sc, 0.0f);
    assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_OK);
    int n_bg = 0, n_fg = 0;
    for (int b = 0; b < sc.B; b++)
        for (int a = 0; a < TS_SMALL_ANCHORS; a++) {
            int lv, i, j;
            ts_anchor_pos(&sc, a, &lv, &i, &j);
            size_t hw = ts_hw(&sc, lv), base = ts_index(&sc, lv, b, 0, i, j);
            double x = *ts_at(&sc, lv, b, 4, i, j);
            int fg = as.matched[b * TS_SMALL_ANCHORS + a] >= 0;
            double want = 2.5 * (tu_sigmoid(x) - fg) / l.normalizer;
            TU_ASSERT_CLOSE(g.fused[lv][base + 4 * hw], want, 1e-6, 1e-9);
            if (fg) {
                assert_true(g.fused[lv][base + 4 * hw] < 0.0f);
                n_fg++;
            } else {
                assert_true(g.fused[lv][base + 4 * hw] > 0.0f);
                n_bg++;
            }
        }
    assert_true(n_bg > 0 && n_fg > 0);
    ts_grad_buffers_free(&g);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_get_assignment_consistency(void **state) {
    (void)state;
    for (int assigner = 0; assigner < 2; assigner++) {
        ts_scene sc;
        ts_scene_make_small(&sc, 4, 20 + (uint64_t)assigner);
        yoloxloss_config cfg;
        ts_config(&sc, &cfg, 1);
        cfg.assigner = (yoloxloss_assigner)assigner;
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        yoloxloss_losses l;
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
        assert_true(yoloxloss_num_anchors(ctx) == TS_SMALL_ANCHORS);
        ts_small_assignment as;
        ts_get_assignment(ctx, &as);
        int64_t fg = 0;
        for (int b = 0; b < sc.B; b++) {
            int taken[TS_SMALL_MAX_GT] = {0};
            int g0 = ts_first_gt_row(&sc, b);
            for (int a = 0; a < TS_SMALL_ANCHORS; a++) {
                int m = as.matched[b * TS_SMALL_ANCHORS + a];
                float u = as.pred_iou[b * TS_SMALL_ANCHORS + a];
                assert_true(m >= -1 && m < sc.num_gt[b]);
                if (m < 0) {
                    assert_true(u == 0.0f);
                } else {
                    fg++;
                    taken[m]++;
                    assert_true(u >= 0.0f && u <= 1.0f);
                }
            }
            for (int g = 0; g < sc.num_gt[b]; g++) {
                /* every gt lies inside the image, so it has candidates */
                assert_true(as.dk[g0 + g] >= 1 && as.dk[g0 + g] <= TS_SMALL_ANCHORS);
                assert_true(taken[g] <= as.dk[g0 + g]);
            }
        }
        assert_true(fg == l.num_fg);
        /* every pointer may be NULL */
        assert_int_equal(yoloxloss_get_assignment(ctx, NULL, as.pred_iou, NULL), YOLOXLOSS_OK);
        yoloxloss_destroy(ctx);
        ts_scene_free(&sc);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_losses_against_assignment),
        cmocka_unit_test(test_zero_gt_batch),
        cmocka_unit_test(test_obj_grad_background),
        cmocka_unit_test(test_get_assignment_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
