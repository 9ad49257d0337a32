/* Results do not depend on the thread count: the same bits for 1 to 4
 * threads, with more images than threads (threads take images) and fewer
 * (threads share each image's candidates, classes and gts), for both
 * assigners, and across repeated calls on one context. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"
#include "test_batch.h"

typedef struct {
    yoloxloss_losses losses;
    int32_t *matched, *dynamic_k;
    float *pred_iou;
    yoloxloss_level_grad g[3];
} run_result;

static void run(const tb_batch *t, int threads, int repeat, run_result *out) {
    yoloxloss_config cfg = t->cfg;
    cfg.num_threads = threads;
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    tb_grads(t, out->g);
    for (int i = 0; i < repeat; i++) {
        assert_int_equal(yoloxloss_forward(ctx, &t->batch, &out->losses), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_backward(ctx, out->g, NULL, 0), YOLOXLOSS_OK);
    }
    size_t n = (size_t)t->batch.num_images * (size_t)yoloxloss_num_anchors(ctx);
    out->matched = malloc(n * sizeof *out->matched);
    out->pred_iou = malloc(n * sizeof *out->pred_iou);
    out->dynamic_k = malloc((TB_MAX_IMAGES * TB_MAX_GT) * sizeof *out->dynamic_k);
    assert_true(out->matched && out->pred_iou && out->dynamic_k);
    memset(out->dynamic_k, 0, (TB_MAX_IMAGES * TB_MAX_GT) * sizeof *out->dynamic_k);
    assert_int_equal(yoloxloss_get_assignment(ctx, out->matched, out->pred_iou, out->dynamic_k), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
}

static void result_free(run_result *r) {
    free(r->matched);
    free(r->pred_iou);
    free(r->dynamic_k);
    tb_grads_free(r->g);
}

static void expect_same(const tb_batch *t, const run_result *a, const run_result *b) {
    const float fa[7] = {a->losses.total, a->losses.iou, a->losses.obj, a->losses.cls,
                         a->losses.l1, a->losses.normalizer, a->losses.fg_ratio};
    const float fb[7] = {b->losses.total, b->losses.iou, b->losses.obj, b->losses.cls,
                         b->losses.l1, b->losses.normalizer, b->losses.fg_ratio};
    assert_memory_equal(fa, fb, sizeof fa);
    assert_true(a->losses.num_fg == b->losses.num_fg && a->losses.num_gt == b->losses.num_gt);
    size_t n = 0;
    for (int l = 0; l < 3; l++) n += (size_t)t->lv[l].height * (size_t)t->lv[l].width;
    n *= (size_t)t->batch.num_images;
    assert_memory_equal(a->matched, b->matched, n * sizeof *a->matched);
    assert_memory_equal(a->pred_iou, b->pred_iou, n * sizeof *a->pred_iou);
    assert_memory_equal(a->dynamic_k, b->dynamic_k, (TB_MAX_IMAGES * TB_MAX_GT) * sizeof *a->dynamic_k);
    for (int l = 0; l < 3; l++) assert_memory_equal(a->g[l].fused, b->g[l].fused, t->len[l] * sizeof(float));
}

/* The largest thread count to try: 4, or YOLOXLOSS_TEST_MAX_THREADS (the
 * qemu-user runs of cross builds set 1: libgomp hangs there once a region
 * has a second thread; threading is tested natively). */
static int max_threads(void) {
    const char *cap = getenv("YOLOXLOSS_TEST_MAX_THREADS");
    int m = cap && atoi(cap) >= 1 ? atoi(cap) : 4;
    if (m < 2)
        print_message("test_threads: YOLOXLOSS_TEST_MAX_THREADS=%d, so only repeated 1-thread runs are "
                      "compared\n", m);
    return m < 4 ? m : 4;
}

static void test_thread_counts_bitwise(void **state) {
    (void)state;
    const int most = max_threads();
    tu_rng r = {201};
    const int images[] = {1, 2, 3, 5};
    for (size_t bi = 0; bi < sizeof images / sizeof images[0]; bi++)
        for (int legacy = 0; legacy <= 1; legacy++) {
            tb_batch t;
            tb_make(&t, &r, images[bi], 1 + (int)bi * 13, 224);
            t.cfg.assigner = legacy ? YOLOXLOSS_ASSIGNER_YOLOX_LEGACY : YOLOXLOSS_ASSIGNER_YOLOX;
            t.cfg.use_l1 = legacy;
            run_result one;
            run(&t, 1, 1, &one);
            assert_true(one.losses.num_fg > 0);
            for (int threads = most < 2 ? 1 : 2; threads <= (most < 2 ? 1 : most); threads++) {
                run_result many;
                run(&t, threads, 2, &many);
                expect_same(&t, &one, &many);
                result_free(&many);
            }
            result_free(&one);
            tb_free(&t);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_counts_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
