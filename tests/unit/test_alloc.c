/* The allocator hook: every allocation goes through it, steady-state calls
 * (forward, backward, decode, detect) allocate nothing, and a failing
 * allocation anywhere is reported as YOLOXLOSS_ERR_OUT_OF_MEMORY, leaks
 * nothing and leaves the context usable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "scene_util.h"

typedef struct {
    atomic_long calls;  /* alloc_fn calls, failed ones included */
    atomic_long allocs; /* successful ones */
    atomic_long frees;
    long fail_from;     /* calls with index >= fail_from (1-based) fail; 0 = never */
} counting;

static void *count_alloc(void *user, size_t bytes) {
    counting *c = user;
    long n = atomic_fetch_add(&c->calls, 1) + 1;
    if (c->fail_from > 0 && n >= c->fail_from) return NULL;
    void *p = malloc(bytes);
    if (p) atomic_fetch_add(&c->allocs, 1);
    return p;
}

static void count_free(void *user, void *ptr) {
    counting *c = user;
    atomic_fetch_add(&c->frees, 1);
    free(ptr);
}

static void hook(yoloxloss_config *cfg, counting *c) {
    memset(c, 0, sizeof *c);
    cfg->alloc_fn = count_alloc;
    cfg->free_fn = count_free;
    cfg->alloc_user = c;
}

/* A context for cfg whose allocations go through c's counting hook. */
static yoloxloss_context *hooked_context(yoloxloss_config *cfg, counting *c) {
    hook(cfg, c);
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(cfg, &ctx), YOLOXLOSS_OK);
    return ctx;
}

static void step(yoloxloss_context *ctx, ts_scene *s, yoloxloss_losses *l) {
    assert_int_equal(yoloxloss_forward(ctx, &s->batch, l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, s->g, NULL, 0), YOLOXLOSS_OK);
}

static void test_half_hook_rejected(void **state) {
    (void)state;
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    assert_null(cfg.alloc_fn);
    assert_null(cfg.free_fn);
    assert_null(cfg.alloc_user);
    cfg.alloc_fn = count_alloc;
    char msg[200];
    assert_int_equal(yoloxloss_config_validate(&cfg, msg, sizeof msg), YOLOXLOSS_ERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "free_fn"));
    cfg.alloc_fn = NULL;
    cfg.free_fn = count_free;
    assert_int_equal(yoloxloss_config_validate(&cfg, msg, sizeof msg), YOLOXLOSS_ERR_INVALID_CONFIG);
    yoloxloss_context *ctx = (yoloxloss_context *)&cfg;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_ERR_INVALID_CONFIG);
    assert_null(ctx);
}

/* Same shape and labels, new head values each step: after the first step
 * not one allocation; the results equal those of a malloc-backed context. */
static void check_steady_state(int threads) {
    ts_scene s;
    ts_scene_make(&s, 3, 5, 3, 16, 6, 11);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, threads);
    yoloxloss_context *plain = NULL, *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &plain), YOLOXLOSS_OK);
    counting c;
    hook(&cfg, &c);
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    long at_create = atomic_load(&c.allocs);
    assert_true(at_create >= 1); /* the context itself comes from the hook */

    yoloxloss_losses l, lp;
    step(ctx, &s, &l);
    long after_first = atomic_load(&c.allocs);
    assert_true(after_first > at_create); /* workspaces come from the hook too */
    for (int it = 0; it < 4; it++) {
        ts_scene_fill(&s, 100 + (uint64_t)it);
        step(plain, &s, &lp);
        float *ref[TS_MAX_LEVELS];
        ts_grads_copy(&s, ref);
        step(ctx, &s, &l);
        assert_true(ts_losses_equal(&l, &lp));
        assert_true(ts_grads_equal(&s, ref));
        ts_grads_release(&s, ref);
        assert_int_equal(yoloxloss_renormalize(ctx, 3.5f, &l), YOLOXLOSS_OK);
        int32_t *matched = malloc((size_t)s.B * (size_t)yoloxloss_num_anchors(ctx) * sizeof(int32_t));
        assert_int_equal(yoloxloss_get_assignment(ctx, matched, NULL, NULL), YOLOXLOSS_OK);
        free(matched);
        assert_int_equal(atomic_load(&c.calls), after_first);
    }
    /* fewer boxes, same grids: still nothing */
    s.num_gt[0] = 0;
    step(ctx, &s, &l);
    assert_int_equal(atomic_load(&c.calls), after_first);
    yoloxloss_destroy(ctx);
    yoloxloss_destroy(plain);
    assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
    ts_scene_free(&s);
}

static void test_steady_state_1_thread(void **state) {
    (void)state;
    check_steady_state(1);
}

static void test_steady_state_2_threads(void **state) {
    (void)state;
    check_steady_state(2);
}

/* The same with float16, bfloat16 and float32 levels in one batch, split
 * layout: converting as the kernels load and store needs no buffer, so
 * after the first step not one allocation either. */
static void test_steady_state_16_bit_levels(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 3, 5, 3, 16, 6, 12);
    const yoloxloss_dtype dts[3] = {YOLOXLOSS_DTYPE_FLOAT16, YOLOXLOSS_DTYPE_BFLOAT16, YOLOXLOSS_DTYPE_FLOAT32};
    ts_typed_scene t;
    ts_typed_make(&t, &s, dts, 1);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 2);
    counting c;
    yoloxloss_context *ctx = hooked_context(&cfg, &c);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &t.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, t.g, NULL, 0), YOLOXLOSS_OK);
    const long after_first = atomic_load(&c.calls);
    for (int it = 0; it < 3; it++) {
        ts_scene_fill(&s, 200 + (uint64_t)it);
        ts_typed_sync(&t, &s);
        assert_int_equal(yoloxloss_forward(ctx, &t.batch, &l), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_backward(ctx, t.g, NULL, it % 2), YOLOXLOSS_OK);
        assert_int_equal(atomic_load(&c.calls), after_first);
    }
    yoloxloss_destroy(ctx);
    assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
    ts_typed_free(&t);
    ts_scene_free(&s);
}

/* Padded labels, with counts and with end rows, and the per-image losses:
 * the labels are converted straight into the step's flat copies, so after
 * the first step not one allocation; fewer labels, none either. */
static void test_steady_state_padded_labels(void **state) {
    (void)state;
    enum { M = 8 };
    ts_scene s;
    ts_scene_make(&s, 3, 5, 3, 16, 6, 13);
    float rows[3 * M * 5];
    int32_t counts[3];
    memset(rows, 0, sizeof rows);
    for (int b = 0, g = 0; b < s.B; b++) {
        counts[b] = s.num_gt[b];
        for (int r = 0; r < s.num_gt[b]; r++, g++) { /* darknet's order: box, then class */
            memcpy(rows + (b * M + r) * 5, s.boxes + 4 * g, 4 * sizeof(float));
            rows[(b * M + r) * 5 + 4] = (float)s.classes[g];
        }
    }
    for (int use_counts = 0; use_counts <= 1; use_counts++) {
        const yoloxloss_padded_labels p = {.rows = rows, .max_rows = M, .order = YOLOXLOSS_LABELS_CLASS_LAST,
                                           .counts = use_counts ? counts : NULL};
        yoloxloss_batch batch = s.batch;
        batch.num_gt = NULL;
        batch.gt_classes = NULL;
        batch.gt_boxes = NULL;
        batch.padded = &p;
        yoloxloss_config cfg;
        ts_config(&s, &cfg, 2);
        counting c;
        yoloxloss_context *ctx = hooked_context(&cfg, &c);
        yoloxloss_losses l, per_image[3];
        assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_OK);
        assert_int_equal(l.num_gt, s.total_gt);
        assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
        const long after_first = atomic_load(&c.calls);
        for (int it = 0; it < 3; it++) {
            ts_scene_fill(&s, 300 + (uint64_t)it);
            assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_OK);
            assert_int_equal(yoloxloss_get_image_losses(ctx, per_image), YOLOXLOSS_OK);
            assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
            assert_int_equal(atomic_load(&c.calls), after_first);
        }
        /* image 0 without labels: count 0, or its rows all zero */
        float image0[M * 5];
        memcpy(image0, rows, sizeof image0);
        counts[0] = 0;
        memset(rows, 0, sizeof image0);
        assert_int_equal(yoloxloss_forward(ctx, &batch, &l), YOLOXLOSS_OK);
        assert_int_equal(l.num_gt, s.total_gt - s.num_gt[0]);
        assert_int_equal(atomic_load(&c.calls), after_first);
        yoloxloss_destroy(ctx);
        assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
        memcpy(rows, image0, sizeof image0);
        counts[0] = s.num_gt[0];
    }
    ts_scene_free(&s);
}

/* Allocation n (and every later one, so headroom retries fail too) fails,
 * for every n a create + forward + backward + destroy makes. */
static void check_fail_from_every_n(int threads) {
    ts_scene s;
    ts_scene_make(&s, 2, 4, 2, 8, 4, 21);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, threads);

    /* reference results, and how many allocations one cycle makes */
    counting c;
    hook(&cfg, &c);
    yoloxloss_context *ctx = NULL;
    yoloxloss_losses ref_l;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    step(ctx, &s, &ref_l);
    float *ref[TS_MAX_LEVELS];
    ts_grads_copy(&s, ref);
    yoloxloss_destroy(ctx);
    const long total = atomic_load(&c.calls);
    assert_true(total >= 8);

    int failed_create = 0, failed_forward = 0;
    for (long n = 1; n <= total; n++) {
        hook(&cfg, &c);
        c.fail_from = n;
        ctx = (yoloxloss_context *)&c; /* must come back NULL on failure */
        yoloxloss_status st = yoloxloss_create(&cfg, &ctx);
        if (st != YOLOXLOSS_OK) {
            assert_int_equal(st, YOLOXLOSS_ERR_OUT_OF_MEMORY);
            assert_null(ctx);
            assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
            failed_create++;
            continue;
        }
        yoloxloss_losses l = {-1.0f, -1.0f, -1.0f, -1.0f, -1.0f, -1.0f, -1.0f, -1, -1};
        const yoloxloss_losses untouched = l;
        st = yoloxloss_forward(ctx, &s.batch, &l);
        if (st != YOLOXLOSS_OK) {
            assert_int_equal(st, YOLOXLOSS_ERR_OUT_OF_MEMORY);
            assert_true(ts_losses_equal(&l, &untouched));
            assert_non_null(strstr(yoloxloss_last_error(ctx), "allocate"));
            assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_ERR_NO_FORWARD);
            failed_forward++;
            /* memory is back: the same context now gives the reference results */
            c.fail_from = 0;
            step(ctx, &s, &l);
        } else {
            assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
        }
        assert_true(ts_losses_equal(&l, &ref_l));
        assert_true(ts_grads_equal(&s, ref));
        yoloxloss_destroy(ctx);
        assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
    }
    /* Every allocation of the cycle was hit, at create or at forward. With
     * two threads the count varies with which thread gets which image (a
     * slot may grow once or twice), so only one thread is held to it. */
    if (threads == 1) assert_int_equal(failed_create + failed_forward, total);
    assert_true(failed_create >= 1 && failed_forward >= 1);
    ts_grads_release(&s, ref);
    ts_scene_free(&s);
}

static void test_fail_every_n_1_thread(void **state) {
    (void)state;
    check_fail_from_every_n(1);
}

static void test_fail_every_n_2_threads(void **state) {
    (void)state;
    check_fail_from_every_n(2);
}

/* ---- decode and detect ----------------------------------------------------- */

enum { DET_CAP = 64 };

static size_t scene_anchors(const ts_scene *s) {
    size_t A = 0;
    for (int l = 0; l < s->L; l++) A += ts_hw(s, l);
    return A;
}

/* detect of s with a low threshold; the detections, counts and found into the given buffers. */
static yoloxloss_status detect_all(yoloxloss_context *ctx, const ts_scene *s, yoloxloss_detection *det,
                                   int32_t *counts, int32_t *found) {
    yoloxloss_detect_params p;
    yoloxloss_detect_params_defaults(&p);
    p.score_threshold = 0.05f;
    p.max_detections = DET_CAP;
    return yoloxloss_detect(ctx, s->B, s->lv, &p, det, counts, found);
}

/* decode never allocates; detect allocates its workspace on its first call
 * and then, with new head values, fewer images or a forward and backward in
 * between, nothing. */
static void check_decode_detect_steady_state(int threads) {
    ts_scene s;
    ts_scene_make(&s, 3, 5, 3, 24, 4, 31);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, threads);
    counting c;
    yoloxloss_context *ctx = hooked_context(&cfg, &c);
    const long at_create = atomic_load(&c.calls);
    const size_t A = scene_anchors(&s);
    float *boxes = malloc((size_t)s.B * A * 4 * sizeof(float));
    float *scores = malloc((size_t)s.B * A * (size_t)s.C * sizeof(float));
    yoloxloss_detection *det = malloc((size_t)s.B * DET_CAP * sizeof *det);
    int32_t counts[3], found[3];
    assert_true(boxes && scores && det);
    assert_int_equal(yoloxloss_decode(ctx, s.B, s.lv, boxes, scores), YOLOXLOSS_OK);
    assert_int_equal(atomic_load(&c.calls), at_create);
    assert_int_equal(detect_all(ctx, &s, det, counts, found), YOLOXLOSS_OK);
    assert_true(atomic_load(&c.calls) > at_create); /* the workspace comes from the hook */
    yoloxloss_losses l;
    step(ctx, &s, &l);
    const long settled = atomic_load(&c.calls);
    for (int it = 0; it < 3; it++) {
        ts_scene_fill(&s, 300 + (uint64_t)it);
        assert_int_equal(detect_all(ctx, &s, det, counts, found), YOLOXLOSS_OK);
        assert_true(found[0] > 0);
        assert_int_equal(yoloxloss_decode(ctx, s.B, s.lv, boxes, scores), YOLOXLOSS_OK);
        step(ctx, &s, &l);
        s.B = 1 + it % 3; /* fewer images: still nothing */
        assert_int_equal(detect_all(ctx, &s, det, counts, found), YOLOXLOSS_OK);
        s.B = 3;
        assert_int_equal(atomic_load(&c.calls), settled);
    }
    yoloxloss_destroy(ctx);
    assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
    free(boxes);
    free(scores);
    free(det);
    ts_scene_free(&s);
}

static void test_decode_detect_steady_state_1_thread(void **state) {
    (void)state;
    check_decode_detect_steady_state(1);
}

static void test_decode_detect_steady_state_2_threads(void **state) {
    (void)state;
    check_decode_detect_steady_state(2);
}

/* Allocation n and every later one fail, for every n that create + detect
 * make: detect fails with YOLOXLOSS_ERR_OUT_OF_MEMORY, writes nothing, and
 * the same context then gives the reference detections. */
static void test_detect_fail_every_n(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 2, 4, 2, 16, 0, 41);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 2);
    counting c;
    yoloxloss_context *ctx = hooked_context(&cfg, &c);
    yoloxloss_detection ref[2 * DET_CAP], det[2 * DET_CAP];
    int32_t ref_counts[2], counts[2], found[2];
    memset(ref, 0, sizeof ref);
    assert_int_equal(detect_all(ctx, &s, ref, ref_counts, found), YOLOXLOSS_OK);
    assert_true(ref_counts[0] + ref_counts[1] > 0);
    yoloxloss_destroy(ctx);
    const long total = atomic_load(&c.calls);
    int failed_detect = 0;
    for (long n = 1; n <= total; n++) {
        hook(&cfg, &c);
        c.fail_from = n;
        ctx = NULL;
        if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) {
            assert_null(ctx);
            continue;
        }
        memset(det, 0x5a, sizeof det);
        for (int b = 0; b < 2; b++) counts[b] = found[b] = -7;
        const yoloxloss_status st = detect_all(ctx, &s, det, counts, found);
        if (st != YOLOXLOSS_OK) {
            assert_int_equal(st, YOLOXLOSS_ERR_OUT_OF_MEMORY);
            assert_non_null(strstr(yoloxloss_last_error(ctx), "allocate"));
            for (size_t k = 0; k < sizeof det; k++) assert_int_equal(((unsigned char *)det)[k], 0x5a);
            assert_true(counts[0] == -7 && counts[1] == -7 && found[0] == -7 && found[1] == -7);
            failed_detect++;
            c.fail_from = 0; /* memory is back */
            memset(det, 0, sizeof det);
            assert_int_equal(detect_all(ctx, &s, det, counts, found), YOLOXLOSS_OK);
        }
        assert_memory_equal(counts, ref_counts, sizeof counts);
        for (int b = 0; b < 2; b++)
            assert_memory_equal(det + b * DET_CAP, ref + b * DET_CAP, (size_t)counts[b] * sizeof *det);
        yoloxloss_destroy(ctx);
        assert_int_equal(atomic_load(&c.allocs), atomic_load(&c.frees));
    }
    assert_true(failed_detect >= 7); /* each buffer of the workspace */
    ts_scene_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_hook_rejected),
        cmocka_unit_test(test_steady_state_1_thread),
        cmocka_unit_test(test_steady_state_2_threads),
        cmocka_unit_test(test_steady_state_16_bit_levels),
        cmocka_unit_test(test_steady_state_padded_labels),
        cmocka_unit_test(test_fail_every_n_1_thread),
        cmocka_unit_test(test_fail_every_n_2_threads),
        cmocka_unit_test(test_decode_detect_steady_state_1_thread),
        cmocka_unit_test(test_decode_detect_steady_state_2_threads),
        cmocka_unit_test(test_detect_fail_every_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
