/* The public API's options: renormalize, accumulate, upstream weights, the
 * fused and split layouts, and the thread count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

static void test_renormalize(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 3, 8);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses l0, l1;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l0), YOLOXLOSS_OK);
    ts_grad_buffers g0, g1;
    ts_grad_buffers_make(&g0, &sc, 0.0f);
    ts_grad_buffers_make(&g1, &sc, 0.0f);
    ts_backward_fused(ctx, &g0, NULL, 0);
    const float newN = 7.25f;
    double ratio = (double)l0.normalizer / newN;
    assert_int_equal(yoloxloss_renormalize(ctx, newN, &l1), YOLOXLOSS_OK);
    assert_true(l1.normalizer == newN);
    TU_ASSERT_CLOSE(l1.iou, l0.iou * ratio, 1e-6, 0);
    TU_ASSERT_CLOSE(l1.obj, l0.obj * ratio, 1e-6, 0);
    TU_ASSERT_CLOSE(l1.cls, l0.cls * ratio, 1e-6, 0);
    TU_ASSERT_CLOSE(l1.l1, l0.l1 * ratio, 1e-6, 0);
    TU_ASSERT_CLOSE(l1.total, l0.total * ratio, 1e-6, 0);
    assert_true(l1.num_fg == l0.num_fg && l1.num_gt == l0.num_gt);
    ts_backward_fused(ctx, &g1, NULL, 0);
    for (int lv = 0; lv < sc.L; lv++)
        for (size_t q = 0; q < sc.elems[lv]; q++)
            TU_ASSERT_NEAR_CTX(g1.fused[lv][q], g0.fused[lv][q] * ratio, 1e-5 * fabs(g0.fused[lv][q] * ratio) + 1e-10,
                               "level %d q %zu", lv, q);
    /* invalid normalisers are refused and change nothing */
    const float bad[] = {0.0f, -1.0f, NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        yoloxloss_losses l = ts_sentinel_losses();
        assert_int_equal(yoloxloss_renormalize(ctx, bad[k], &l), YOLOXLOSS_ERR_INVALID_ARGUMENT);
        ts_assert_losses_untouched(&l);
        assert_non_null(strstr(yoloxloss_last_error(ctx), "normalizer"));
    }
    ts_grad_buffers g2;
    ts_grad_buffers_make(&g2, &sc, 0.0f);
    ts_backward_fused(ctx, &g2, NULL, 0);
    for (int lv = 0; lv < sc.L; lv++)
        assert_memory_equal(g2.fused[lv], g1.fused[lv], sc.elems[lv] * sizeof(float));
    /* NULL losses is accepted; a new forward restores max(num_fg, 1) */
    assert_int_equal(yoloxloss_renormalize(ctx, 1.0f, NULL), YOLOXLOSS_OK);
    yoloxloss_losses l3;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l3), YOLOXLOSS_OK);
    assert_true(l3.normalizer == l0.normalizer);
    TU_ASSERT_CLOSE(l3.total, l0.total, 0, 0);
    ts_grad_buffers_free(&g0);
    ts_grad_buffers_free(&g1);
    ts_grad_buffers_free(&g2);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_accumulate_vs_overwrite(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 9);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    ts_small_assignment as;
    ts_get_assignment(ctx, &as);
    ts_grad_buffers ref, garbage, acc;
    ts_grad_buffers_make(&ref, &sc, 0.0f);
    ts_grad_buffers_make(&garbage, &sc, NAN);
    ts_grad_buffers_make(&acc, &sc, 0.0f);
    ts_backward_fused(ctx, &ref, NULL, 0);
    /* overwrite ignores a garbage prefill */
    for (int lv = 0; lv < sc.L; lv++)
        for (size_t q = 0; q < sc.elems[lv]; q++) garbage.fused[lv][q] = (q % 3) ? NAN : 1e30f;
    ts_backward_fused(ctx, &garbage, NULL, 0);
    for (int lv = 0; lv < sc.L; lv++)
        assert_memory_equal(garbage.fused[lv], ref.fused[lv], sc.elems[lv] * sizeof(float));
    /* accumulate adds to the prefill */
    tu_rng r = {123};
    float *pre[TS_SMALL_LEVELS];
    for (int lv = 0; lv < sc.L; lv++) {
        pre[lv] = malloc(sc.elems[lv] * sizeof(float));
        for (size_t q = 0; q < sc.elems[lv]; q++) acc.fused[lv][q] = pre[lv][q] = tu_rangef(&r, -1, 1);
    }
    ts_backward_fused(ctx, &acc, NULL, 1);
    int nonzero = 0;
    for (int lv = 0; lv < sc.L; lv++) {
        size_t hw = ts_hw(&sc, lv);
        for (size_t q = 0; q < sc.elems[lv]; q++) {
            double want = (double)pre[lv][q] + ref.fused[lv][q];
            TU_ASSERT_NEAR_CTX(acc.fused[lv][q], want, 1.2e-7 * (fabs(pre[lv][q]) + fabs(ref.fused[lv][q])),
                               "level %d q %zu", lv, q);
            /* background reg / cls elements have zero gradient: left exactly as they were */
            size_t b = q / (TS_SMALL_CHANNELS * hw), ch = (q / hw) % TS_SMALL_CHANNELS, pos = q % hw;
            size_t a = pos + (lv == 1 ? ts_hw(&sc, 0) : 0);
            if (ch != 4 && as.matched[b * TS_SMALL_ANCHORS + a] < 0) assert_true(acc.fused[lv][q] == pre[lv][q]);
            if (ref.fused[lv][q] != 0.0f) nonzero++;
        }
        free(pre[lv]);
    }
    assert_true(nonzero > 20);
    /* two accumulating calls on a zero buffer give twice the gradient */
    ts_grad_buffers twice;
    ts_grad_buffers_make(&twice, &sc, 0.0f);
    ts_backward_fused(ctx, &twice, NULL, 1);
    ts_backward_fused(ctx, &twice, NULL, 1);
    for (int lv = 0; lv < sc.L; lv++)
        for (size_t q = 0; q < sc.elems[lv]; q++) assert_true(twice.fused[lv][q] == 2.0f * ref.fused[lv][q]);
    ts_grad_buffers_free(&ref);
    ts_grad_buffers_free(&garbage);
    ts_grad_buffers_free(&acc);
    ts_grad_buffers_free(&twice);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

/* which channels carry a non-zero gradient */
static void channel_mask(const ts_grad_buffers *g, const ts_scene *sc, int any[TS_SMALL_CHANNELS]) {
    for (int ch = 0; ch < TS_SMALL_CHANNELS; ch++) any[ch] = 0;
    for (int lv = 0; lv < sc->L; lv++) {
        size_t hw = ts_hw(sc, lv);
        for (size_t q = 0; q < sc->elems[lv]; q++)
            if (g->fused[lv][q] != 0.0f) any[(q / hw) % TS_SMALL_CHANNELS] = 1;
    }
}

static void test_upstream(void **state) {
    (void)state;
    ts_scene sc;
    ts_scene_make_small(&sc, 2, 10);
    yoloxloss_config cfg;
    ts_config(&sc, &cfg, 1);
    cfg.l1_weight = 1.5f;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l), YOLOXLOSS_OK);
    ts_small_assignment as;
    ts_get_assignment(ctx, &as);
    ts_grad_buffers gnull, gone, giou, gobj, gcls, gl1, gtwo;
    ts_grad_buffers_make(&gnull, &sc, NAN);
    ts_grad_buffers_make(&gone, &sc, NAN);
    ts_grad_buffers_make(&giou, &sc, NAN);
    ts_grad_buffers_make(&gobj, &sc, NAN);
    ts_grad_buffers_make(&gcls, &sc, NAN);
    ts_grad_buffers_make(&gl1, &sc, NAN);
    ts_grad_buffers_make(&gtwo, &sc, NAN);
    const yoloxloss_upstream one = {1, 0, 0, 0, 0}, up_iou = {0, 1, 0, 0, 0}, up_obj = {0, 0, 1, 0, 0},
                             up_cls = {0, 0, 0, 1, 0}, up_l1 = {0, 0, 0, 0, 1}, two = {2, 0, 0, 0, 0};
    ts_backward_fused(ctx, &gnull, NULL, 0);
    ts_backward_fused(ctx, &gone, &one, 0);
    ts_backward_fused(ctx, &giou, &up_iou, 0);
    ts_backward_fused(ctx, &gobj, &up_obj, 0);
    ts_backward_fused(ctx, &gcls, &up_cls, 0);
    ts_backward_fused(ctx, &gl1, &up_l1, 0);
    ts_backward_fused(ctx, &gtwo, &two, 0);
    for (int lv = 0; lv < sc.L; lv++) {
        size_t n = sc.elems[lv];
        assert_memory_equal(gnull.fused[lv], gone.fused[lv], n * sizeof(float));
        for (size_t q = 0; q < n; q++) {
            TU_ASSERT_CLOSE(gtwo.fused[lv][q], 2.0 * gone.fused[lv][q], 1e-6, 1e-12);
            /* the parts add up to the total's gradient */
            double parts = (double)giou.fused[lv][q] + gobj.fused[lv][q] + gcls.fused[lv][q] + gl1.fused[lv][q];
            TU_ASSERT_NEAR_CTX(gone.fused[lv][q], parts, 1e-6 * fabs(parts) + 1e-9, "level %d q %zu", lv, q);
        }
    }
    int m[TS_SMALL_CHANNELS];
    channel_mask(&giou, &sc, m);
    for (int ch = 0; ch < TS_SMALL_CHANNELS; ch++) assert_int_equal(m[ch], ch < 4);
    channel_mask(&gl1, &sc, m);
    for (int ch = 0; ch < TS_SMALL_CHANNELS; ch++) assert_int_equal(m[ch], ch < 4);
    channel_mask(&gobj, &sc, m);
    for (int ch = 0; ch < TS_SMALL_CHANNELS; ch++) assert_int_equal(m[ch], ch == 4);
    channel_mask(&gcls, &sc, m);
    for (int ch = 0; ch < TS_SMALL_CHANNELS; ch++) assert_int_equal(m[ch], ch >= 5);
    /* d(l1) = l1_weight * sign(reg - target) / N on fg anchors */
    for (int b = 0; b < sc.B; b++)
        for (int a = 0; a < TS_SMALL_ANCHORS; a++) {
            int lv, i, j;
            ts_anchor_pos(&sc, a, &lv, &i, &j);
            int mm = as.matched[b * TS_SMALL_ANCHORS + a];
            size_t hw = ts_hw(&sc, lv), base = ts_index(&sc, lv, b, 0, i, j);
            for (int k = 0; k < 4; k++) {
                double want = 0.0;
                if (mm >= 0) {
                    double target[4];
                    ts_l1_target(&sc, lv, i, j, ts_first_gt_row(&sc, b) + mm, target);
                    double d = *ts_at(&sc, lv, b, k, i, j) - target[k];
                    want = 1.5 * ((d > 0) - (d < 0)) / l.normalizer;
                }
                TU_ASSERT_CLOSE(gl1.fused[lv][base + (size_t)k * hw], want, 1e-6, 0);
            }
        }
    ts_grad_buffers *all[] = {&gnull, &gone, &giou, &gobj, &gcls, &gl1, &gtwo};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ts_grad_buffers_free(all[k]);
    yoloxloss_destroy(ctx);
    ts_scene_free(&sc);
}

static void test_fused_vs_split(void **state) {
    (void)state;
    for (int giou = 0; giou < 2; giou++) {
        ts_scene sc;
        ts_scene_make_small(&sc, 3, 30 + (uint64_t)giou);
        yoloxloss_config cfg;
        ts_config(&sc, &cfg, 1);
        cfg.iou_loss = giou ? YOLOXLOSS_IOU_LOSS_GIOU : YOLOXLOSS_IOU_LOSS_IOU;
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        yoloxloss_losses lf, ls;
        ts_grad_buffers g;
        ts_grad_buffers_make(&g, &sc, 0.0f);
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &lf), YOLOXLOSS_OK);
        ts_small_assignment af, as;
        ts_get_assignment(ctx, &af);
        assert_int_equal(yoloxloss_backward(ctx, g.as_fused, NULL, 0), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch_split, &ls), YOLOXLOSS_OK);
        ts_get_assignment(ctx, &as);
        assert_int_equal(yoloxloss_backward(ctx, g.as_split, NULL, 0), YOLOXLOSS_OK);
        TU_ASSERT_BITS_EQ(lf.total, ls.total);
        TU_ASSERT_BITS_EQ(lf.iou, ls.iou);
        TU_ASSERT_BITS_EQ(lf.obj, ls.obj);
        TU_ASSERT_BITS_EQ(lf.cls, ls.cls);
        TU_ASSERT_BITS_EQ(lf.l1, ls.l1);
        assert_true(lf.num_fg == ls.num_fg);
        assert_memory_equal(af.matched, as.matched, sizeof af.matched);
        assert_memory_equal(af.pred_iou, as.pred_iou, sizeof af.pred_iou);
        for (int lv = 0; lv < sc.L; lv++) {
            size_t hw = ts_hw(&sc, lv);
            for (int b = 0; b < sc.B; b++) {
                const float *base = g.fused[lv] + ts_index(&sc, lv, b, 0, 0, 0);
                size_t C = (size_t)sc.C;
                assert_memory_equal(base, g.reg[lv] + (size_t)b * 4 * hw, 4 * hw * sizeof(float));
                assert_memory_equal(base + 4 * hw, g.obj[lv] + (size_t)b * hw, hw * sizeof(float));
                assert_memory_equal(base + 5 * hw, g.cls[lv] + (size_t)b * C * hw, C * hw * sizeof(float));
            }
        }
        ts_grad_buffers_free(&g);
        yoloxloss_destroy(ctx);
        ts_scene_free(&sc);
    }
}

/* Thread count of the second run: 2, unless YOLOXLOSS_TEST_MAX_THREADS=1
 * (the qemu-user runs of cross builds, where libgomp hangs as soon as a
 * parallel region has a second thread; threading is tested natively; see
 * ts_threads). Then two 1-thread runs are compared: still run-to-run
 * determinism. */
static int second_run_threads(void) {
    int n = ts_threads(2);
    if (n == 1)
        print_message("test_threads_bitwise: YOLOXLOSS_TEST_MAX_THREADS=1, so 1 thread against 1 "
                      "thread instead of 1 against 2\n");
    return n;
}

static void test_threads_bitwise(void **state) {
    (void)state;
    const int threads[2] = {1, second_run_threads()};
    ts_scene sc;
    ts_scene_make_small(&sc, 4, 40);
    yoloxloss_losses l[2];
    ts_grad_buffers g[2];
    ts_small_assignment as[2];
    for (int t = 0; t < 2; t++) {
        yoloxloss_config cfg;
        ts_config(&sc, &cfg, 1);
        cfg.num_threads = threads[t];
        yoloxloss_context *ctx = ts_create_ok(&cfg);
        ts_grad_buffers_make(&g[t], &sc, 0.0f);
        /* run twice so the second call reuses the workspace */
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l[t]), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_forward(ctx, &sc.batch, &l[t]), YOLOXLOSS_OK);
        ts_get_assignment(ctx, &as[t]);
        assert_int_equal(yoloxloss_backward(ctx, g[t].as_fused, NULL, 0), YOLOXLOSS_OK);
        yoloxloss_destroy(ctx);
    }
    TU_ASSERT_BITS_EQ(l[0].total, l[1].total);
    TU_ASSERT_BITS_EQ(l[0].iou, l[1].iou);
    TU_ASSERT_BITS_EQ(l[0].obj, l[1].obj);
    TU_ASSERT_BITS_EQ(l[0].cls, l[1].cls);
    TU_ASSERT_BITS_EQ(l[0].l1, l[1].l1);
    assert_true(l[0].num_fg == l[1].num_fg);
    assert_memory_equal(&as[0], &as[1], sizeof as[0]);
    for (int lv = 0; lv < sc.L; lv++)
        assert_memory_equal(g[0].fused[lv], g[1].fused[lv], sc.elems[lv] * sizeof(float));
    ts_grad_buffers_free(&g[0]);
    ts_grad_buffers_free(&g[1]);
    ts_scene_free(&sc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renormalize),
        cmocka_unit_test(test_accumulate_vs_overwrite),
        cmocka_unit_test(test_upstream),
        cmocka_unit_test(test_fused_vs_split),
        cmocka_unit_test(test_threads_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
