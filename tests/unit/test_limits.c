/* The config's bounds at their extremes: the largest class count, with
 * inputs mapped but never committed (MAP_NORESERVE) and a guard page right
 * after the gradient buffer, on 1 and 2 threads, float32 and float16; class
 * counts and thread counts past the bounds, refused at create and by
 * yoloxloss_set_num_threads; check_finite over every plane of the largest
 * class count; the most threads a config may ask for. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "scene_util.h"

#define BIG_C YOLOXLOSS_MAX_CLASSES

/* `bytes` of address space that reads as zeros and commits only the pages
 * written; with guard, one inaccessible page right after the last byte (the
 * returned pointer is placed so that the buffer ends where it starts). */
typedef struct {
    void *map;
    size_t map_bytes;
    void *ptr;
} mapping;

static mapping map_bytes(size_t bytes, int guard) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t body = (bytes + page - 1) / page * page;
    mapping m;
    m.map_bytes = body + (guard ? page : 0);
    m.map = mmap(NULL, m.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(m.map != MAP_FAILED);
    if (guard) assert_int_equal(mprotect((char *)m.map + body, page, PROT_NONE), 0);
    m.ptr = (char *)m.map + (body - bytes);
    return m;
}

static void unmap(mapping m) { munmap(m.map, m.map_bytes); }

static void one_level_config(yoloxloss_config *cfg, int classes, int threads) {
    static const float stride[1] = {8.0f};
    yoloxloss_config_defaults(cfg);
    cfg->num_classes = classes;
    cfg->num_levels = 1;
    cfg->strides = stride;
    cfg->num_threads = ts_threads(threads);
    cfg->check_finite = 0;
}

static float elem(const void *buf, yoloxloss_dtype dt, size_t i) {
    return ts_value_of(ts_bits_at(buf, dt, i), dt);
}

/* One 1x1 level of BIG_C classes: forward, then backward into a buffer of
 * exactly 1 x (5 + C) elements that ends at a guard page, every byte set
 * beforehand. Every element must be written: the objectness gradient, and
 * zeros in the reg and class planes of the background anchor; with a gt of
 * the last class the anchor is foreground, so its box gradient, 0.5 for
 * every class of logit 0 and the last class's gradient. None past the end
 * (the guard page would fault). */
static void huge_class_count(yoloxloss_dtype dt, int threads, int with_gt) {
    yoloxloss_config cfg;
    one_level_config(&cfg, BIG_C, threads);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    const size_t planes = 5 + (size_t)BIG_C, esize = dt == YOLOXLOSS_DTYPE_FLOAT32 ? 4 : 2;
    mapping in = map_bytes(planes * esize, 0), grad = map_bytes(planes * esize, 1);
    /* obj logit 0.5, the last class's logit -1; the rest read as zeros */
    const uint32_t half = ts_bits_of(0.5f, dt), minus_one = ts_bits_of(-1.0f, dt);
    if (esize == 4) {
        ((uint32_t *)in.ptr)[4] = half;
        ((uint32_t *)in.ptr)[planes - 1] = minus_one;
    } else {
        ((uint16_t *)in.ptr)[4] = (uint16_t)half;
        ((uint16_t *)in.ptr)[planes - 1] = (uint16_t)minus_one;
    }
    memset(grad.ptr, 0x5a, planes * esize); /* finite in every dtype: 1.5e16, 203.25, 1.5e16 */
    const uint32_t fill = esize == 4 ? 0x5a5a5a5au : 0x5a5au;
    yoloxloss_level lv = {1, 1, in.ptr, NULL, NULL, NULL, dt};
    int32_t num_gt = with_gt, cls = BIG_C - 1;
    const float box[4] = {4.0f, 4.0f, 6.0f, 6.0f};
    yoloxloss_batch batch = {.num_images = 1, .levels = &lv, .num_gt = &num_gt,
                             .gt_classes = with_gt ? &cls : NULL, .gt_boxes = with_gt ? box : NULL};
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_OK);
    assert_int_equal(l.num_fg, with_gt ? 1 : 0);
    assert_true(isfinite(l.total));
    yoloxloss_level_grad g = {grad.ptr, NULL, NULL, NULL};
    if (yoloxloss_backward(ctx, &g, NULL, 0) != YOLOXLOSS_OK) fail_msg("%s", yoloxloss_last_error(ctx));
    size_t wrong = 0, first_wrong = 0;
    for (size_t i = 0; i < planes; i++) {
        const float v = elem(grad.ptr, dt, i);
        int ok;
        if (i == 4) /* sigmoid(0.5) - target, over N = 1 */
            ok = fabsf(v - (0.62245933f - (with_gt ? 1.0f : 0.0f))) < 1e-3f;
        else if (with_gt && i < 4)
            ok = isfinite(v) && ts_bits_at(grad.ptr, dt, i) != fill;
        else if (with_gt && i == planes - 1) /* sigmoid(-1) - IoU target, times cls_weight / N */
            ok = isfinite(v) && v < 0.27f && v > -0.74f;
        else if (with_gt && i > 4) /* the fg anchor's other classes: sigmoid(0) - 0 */
            ok = v == 0.5f;
        else
            ok = ts_bits_at(grad.ptr, dt, i) == 0;
        if (!ok && wrong++ == 0) first_wrong = i;
    }
    if (wrong) fail_msg("%zu of %zu gradient elements wrong, the first at %zu (%g)", wrong, planes, first_wrong,
                        (double)elem(grad.ptr, dt, first_wrong));
    yoloxloss_destroy(ctx);
    unmap(in);
    unmap(grad);
}

static void test_huge_class_count_float32_1_thread(void **state) {
    (void)state;
    huge_class_count(YOLOXLOSS_DTYPE_FLOAT32, 1, 0);
}

static void test_huge_class_count_float16_1_thread(void **state) {
    (void)state;
    huge_class_count(YOLOXLOSS_DTYPE_FLOAT16, 1, 0);
}

static void test_huge_class_count_float32_2_threads(void **state) {
    (void)state;
    huge_class_count(YOLOXLOSS_DTYPE_FLOAT32, 2, 0);
}

static void test_huge_class_count_float16_2_threads(void **state) {
    (void)state;
    huge_class_count(YOLOXLOSS_DTYPE_FLOAT16, 2, 0);
}

/* A gt of the last class: the assignment and the class loss walk every
 * class plane. */
static void test_huge_class_count_with_gt(void **state) {
    (void)state;
    /* 2^24 class planes walked one kernel call each: minutes under
     * valgrind's instrumentation. The sanitizer and plain runs cover it. */
    if (RUNNING_ON_VALGRIND) {
        printf("Skipped under valgrind (2^24 kernel calls): run natively and under AddressSanitizer\n");
        skip();
    }
    huge_class_count(YOLOXLOSS_DTYPE_FLOAT16, 2, 1);
}

static void expect_config_refused(int classes, int threads, const char *needle) {
    yoloxloss_config cfg;
    one_level_config(&cfg, classes, 1);
    cfg.num_threads = threads;
    char msg[320];
    assert_int_equal(yoloxloss_config_validate(&cfg, msg, sizeof msg), YOLOXLOSS_ERR_INVALID_CONFIG);
    if (!strstr(msg, needle)) fail_msg("\"%s\" lacks \"%s\"", msg, needle);
    yoloxloss_context *ctx = (yoloxloss_context *)&cfg;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_ERR_INVALID_CONFIG);
    assert_null(ctx);
    if (!strstr(yoloxloss_last_error(NULL), needle)) fail_msg("\"%s\" lacks \"%s\"", yoloxloss_last_error(NULL), needle);
}

/* The counts the red-team pass found unsafe, and every count past a bound. */
static void test_counts_past_the_bounds_refused(void **state) {
    (void)state;
    const int classes[] = {INT_MAX, INT_MAX - 4, 2147483643, 1 << 30, BIG_C + 1, 0, -5};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        expect_config_refused(classes[i], 1, "YOLOXLOSS_MAX_CLASSES");
    const int threads[] = {INT_MAX, 100000, YOLOXLOSS_MAX_THREADS + 1, -1, INT_MIN};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++)
        expect_config_refused(4, threads[i], "YOLOXLOSS_MAX_THREADS");

    yoloxloss_config cfg;
    one_level_config(&cfg, BIG_C, 1);
    cfg.num_threads = YOLOXLOSS_MAX_THREADS;
    assert_int_equal(yoloxloss_config_validate(&cfg, NULL, 0), YOLOXLOSS_OK);

    /* yoloxloss_set_num_threads holds to the same bound and keeps the old count */
    one_level_config(&cfg, 4, 1);
    cfg.num_threads = 1;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
        assert_int_equal(yoloxloss_set_num_threads(ctx, threads[i]), YOLOXLOSS_ERR_INVALID_CONFIG);
        assert_non_null(strstr(yoloxloss_last_error(ctx), "YOLOXLOSS_MAX_THREADS"));
        assert_int_equal(yoloxloss_get_config(ctx)->num_threads, 1);
    }
    assert_int_equal(yoloxloss_set_num_threads(NULL, 1), YOLOXLOSS_ERR_NULL_ARGUMENT);
    yoloxloss_destroy(ctx);
}

/* check_finite walks all 5 + C planes of the largest class count: a NaN in
 * the objectness plane and one in the very last class plane are named. */
static void test_check_finite_at_the_class_limit(void **state) {
    (void)state;
    yoloxloss_config cfg;
    one_level_config(&cfg, BIG_C, 1);
    cfg.check_finite = 1;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    const size_t planes = 5 + (size_t)BIG_C;
    mapping in = map_bytes(planes * sizeof(uint16_t), 1);
    uint16_t *x = in.ptr;
    yoloxloss_level lv = {1, 1, x, NULL, NULL, NULL, YOLOXLOSS_DTYPE_BFLOAT16};
    int32_t num_gt = 0;
    yoloxloss_batch batch = {.num_images = 1, .levels = &lv, .num_gt = &num_gt};
    yoloxloss_losses l = ts_sentinel_losses();
    x[4] = 0x7fc0; /* bfloat16 NaN */
    assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_ERR_NONFINITE_INPUT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "channel 4 (obj)"));
    x[4] = 0;
    x[planes - 1] = 0xff80; /* -inf */
    char want[64];
    snprintf(want, sizeof want, "channel %zu (cls logit)", planes - 1);
    assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_ERR_NONFINITE_INPUT);
    if (!strstr(yoloxloss_last_error(ctx), want)) fail_msg("\"%s\" lacks \"%s\"", yoloxloss_last_error(ctx), want);
    ts_assert_losses_untouched(&l);
    x[planes - 1] = 0;
    assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
    unmap(in);
}

/* The most threads a config may ask for: accepted, and a step gives the
 * bits of a one-thread step (the work's own units cap the team). */
static void test_most_threads(void **state) {
    (void)state;
    if (ts_threads(2) < 2) { /* qemu-user: one thread only */
        print_message("Skipped: most_threads needs a team of two threads (YOLOXLOSS_TEST_MAX_THREADS)\n");
        skip();
    }
    ts_scene s;
    ts_scene_make(&s, 3, 4, 2, 8, 4, 21);
    yoloxloss_context *one = ts_context(&s, 1), *most = ts_context(&s, YOLOXLOSS_MAX_THREADS);
    assert_non_null(one);
    assert_non_null(most);
    yoloxloss_losses a, b;
    assert_int_equal(yoloxloss_forward(one, &s.batch, &a), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(one, s.g, NULL, 0), YOLOXLOSS_OK);
    float *want[TS_MAX_LEVELS];
    ts_grads_copy(&s, want);
    assert_int_equal(yoloxloss_forward(most, &s.batch, &b), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(most, s.g, NULL, 0), YOLOXLOSS_OK);
    assert_true(ts_losses_equal(&a, &b));
    assert_true(ts_grads_equal(&s, want));
    ts_grads_release(&s, want);
    yoloxloss_destroy(one);
    yoloxloss_destroy(most);
    ts_scene_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_huge_class_count_float32_1_thread),
        cmocka_unit_test(test_huge_class_count_float16_1_thread),
        cmocka_unit_test(test_huge_class_count_float32_2_threads),
        cmocka_unit_test(test_huge_class_count_float16_2_threads),
        cmocka_unit_test(test_huge_class_count_with_gt),
        cmocka_unit_test(test_counts_past_the_bounds_refused),
        cmocka_unit_test(test_check_finite_at_the_class_limit),
        cmocka_unit_test(test_most_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
