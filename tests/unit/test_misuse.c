/* Caller mistakes the library turns into a status instead of corrupted
 * memory: one context used by two threads at once (the second call gets
 * YOLOXLOSS_ERR_BUSY and touches nothing), and gradient buffers that share
 * bytes with the head outputs (in place) or with each other (two levels'
 * gradients in one buffer, a split level's buffers overlapping), refused
 * at backward naming both buffers, in overwrite and in accumulate mode;
 * decode's and detect's outputs at misaligned addresses. */
#define _DEFAULT_SOURCE /* pthread_attr_setstack */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "scene_util.h"

/* ---- two threads, one context -------------------------------------------- */

/* An allocator hook that, once armed, holds the next allocation until
 * released: the call that makes it stays inside the library, busy, for as
 * long as the test wants. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int armed, inside, released;
} gate;

static void *gated_alloc(void *user, size_t bytes) {
    gate *g = user;
    pthread_mutex_lock(&g->lock);
    if (g->armed) {
        g->armed = 0;
        g->inside = 1;
        pthread_cond_broadcast(&g->changed);
        while (!g->released) pthread_cond_wait(&g->changed, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return malloc(bytes);
}

static void gated_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

typedef struct {
    yoloxloss_context *ctx;
    ts_scene *scene;
    yoloxloss_losses losses;
    yoloxloss_status status;
} forward_call;

static void *run_forward(void *arg) {
    forward_call *c = arg;
    c->status = yoloxloss_forward(c->ctx, &c->scene->batch, &c->losses);
    return NULL;
}

static void expect_busy(yoloxloss_status st, const char *call) {
    assert_int_equal(st, YOLOXLOSS_ERR_BUSY);
    const char *msg = yoloxloss_last_error(NULL);
    if (!strstr(msg, call) || !strstr(msg, "another thread")) fail_msg("\"%s\" does not name %s", msg, call);
}

/* While thread A's forward is held inside the library (its first
 * allocation), every call on the same context from this thread fails with
 * YOLOXLOSS_ERR_BUSY, writes neither losses nor gradients nor the context's
 * message; A's forward then completes and equals a lone context's. */
static void test_second_thread_gets_busy(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 2, 3, 2, 8, 3, 31);
    yoloxloss_context *lone = ts_context(&s, 1);
    yoloxloss_losses want;
    assert_int_equal(yoloxloss_forward(lone, &s.batch, &want), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(lone, s.g, NULL, 0), YOLOXLOSS_OK);
    float *want_grad[TS_MAX_LEVELS];
    ts_grads_copy(&s, want_grad);

    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    cfg.alloc_fn = gated_alloc;
    cfg.free_fn = gated_free;
    cfg.alloc_user = &g;
    yoloxloss_context *ctx = ts_create_ok(&cfg); /* create allocates freely */
    g.armed = 1;
    forward_call a = {.ctx = ctx, .scene = &s, .status = YOLOXLOSS_ERR_NO_FORWARD};
    /* A stack of our own: glibc then frees the thread's TLS at the join
     * instead of caching it with the stack (valgrind would call that a
     * possible leak). */
    const size_t stack_bytes = 1u << 20;
    void *stack = malloc(stack_bytes);
    pthread_attr_t attr;
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstack(&attr, stack, stack_bytes), 0);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, &attr, run_forward, &a), 0);
    pthread_attr_destroy(&attr);
    /* Bounded: if forward stopped allocating through the hook, the gate
     * never closes, and that must fail here rather than hang. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    int waited = 0;
    pthread_mutex_lock(&g.lock);
    while (!g.inside && waited == 0) waited = pthread_cond_timedwait(&g.changed, &g.lock, &deadline);
    const int inside = g.inside;
    pthread_mutex_unlock(&g.lock);
    if (!inside) fail_msg("forward made no allocation through the hook in 60 s: the gate never closed");

    ts_grad_buffers gb;
    ts_grad_buffers_make(&gb, &s, -7.5f);
    yoloxloss_losses l = ts_sentinel_losses();
    int32_t matched[64];
    expect_busy(yoloxloss_forward(ctx, &s.batch, &l), "forward");
    expect_busy(yoloxloss_backward(ctx, gb.as_fused, NULL, 0), "backward");
    expect_busy(yoloxloss_renormalize(ctx, 2.0f, &l), "renormalize");
    expect_busy(yoloxloss_get_assignment(ctx, matched, NULL, NULL), "get_assignment");
    expect_busy(yoloxloss_set_num_threads(ctx, 2), "set_num_threads");
    expect_busy(yoloxloss_get_image_losses(ctx, &l), "get_image_losses");
    expect_busy(yoloxloss_decode(ctx, 1, s.lv, NULL, NULL), "decode");
    yoloxloss_detect_params dp;
    yoloxloss_detect_params_defaults(&dp);
    yoloxloss_detection det[1];
    int32_t counts[2] = {-5, -5};
    expect_busy(yoloxloss_detect(ctx, 1, s.lv, &dp, det, counts, NULL), "detect");
    assert_int_equal(counts[0], -5);
    ts_assert_losses_untouched(&l);
    for (int lv = 0; lv < s.L; lv++)
        for (size_t q = 0; q < s.elems[lv]; q++) assert_true(gb.fused[lv][q] == -7.5f);
    assert_string_equal(yoloxloss_last_error(ctx), ""); /* A's message, which A cleared */

    pthread_mutex_lock(&g.lock);
    g.released = 1;
    pthread_cond_broadcast(&g.changed);
    pthread_mutex_unlock(&g.lock);
    assert_int_equal(pthread_join(thread, NULL), 0);
    free(stack);
    assert_int_equal(a.status, YOLOXLOSS_OK);
    assert_true(ts_losses_equal(&a.losses, &want));
    /* the context is free again and was never disturbed */
    assert_int_equal(yoloxloss_get_config(ctx)->num_threads, 1);
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    assert_true(ts_grads_equal(&s, want_grad));

    ts_grad_buffers_free(&gb);
    ts_grads_release(&s, want_grad);
    yoloxloss_destroy(ctx);
    yoloxloss_destroy(lone);
    ts_scene_free(&s);
}

/* ---- gradient buffers that overlap ---------------------------------------- */

/* backward must fail with INVALID_ARGUMENT naming both needles, and write
 * nothing: every byte of `watch` (n floats) stays as it was. */
static void expect_overlap_refused(yoloxloss_context *ctx, const yoloxloss_level_grad *g, int accumulate,
                                   const float *watch, size_t n, const char *needle1, const char *needle2) {
    float *before = malloc(n * sizeof *before);
    memcpy(before, watch, n * sizeof *before);
    assert_int_equal(yoloxloss_backward(ctx, g, NULL, accumulate), YOLOXLOSS_ERR_INVALID_ARGUMENT);
    const char *msg = yoloxloss_last_error(ctx);
    if (!strstr(msg, needle1) || !strstr(msg, needle2)) fail_msg("\"%s\" lacks \"%s\" or \"%s\"", msg, needle1, needle2);
    assert_memory_equal(before, watch, n * sizeof *before);
    free(before);
}

/* Fused levels: a gradient written over its own level's outputs or another
 * level's, and two levels' gradients in one buffer, even by one element. */
static void test_fused_overlaps_refused(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 2, 3, 2, 8, 3, 41);
    yoloxloss_context *ctx = ts_context(&s, 2);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &l), YOLOXLOSS_OK);
    for (int accumulate = 0; accumulate <= 1; accumulate++) {
        yoloxloss_level_grad g[TS_MAX_LEVELS];
        /* in place: the gradient of level 1 is level 1's outputs */
        memcpy(g, s.g, sizeof g);
        g[1].fused = s.out[1];
        expect_overlap_refused(ctx, g, accumulate, s.out[1], s.elems[1], "grads[1].fused", "level 1 (fused)");
        /* level 0's gradient ends one element inside level 1's outputs */
        memcpy(g, s.g, sizeof g);
        float *joint = calloc(s.elems[0] + s.elems[1], sizeof(float));
        memcpy(joint + s.elems[0] - 1, s.out[1], s.elems[1] * sizeof(float));
        yoloxloss_level lv[TS_MAX_LEVELS]; /* level 1 read from inside joint */
        memcpy(lv, s.lv, sizeof lv);
        lv[1].fused = joint + s.elems[0] - 1;
        yoloxloss_batch inside = s.batch;
        inside.levels = lv;
        assert_int_equal(yoloxloss_forward(ctx, &inside, &l), YOLOXLOSS_OK);
        g[0].fused = joint;
        expect_overlap_refused(ctx, g, accumulate, joint, s.elems[0] + s.elems[1] - 1, "grads[0].fused",
                               "level 1 (fused)");
        /* two levels' gradients in one buffer, one element shared */
        assert_int_equal(yoloxloss_forward(ctx, &s.batch, &l), YOLOXLOSS_OK);
        memcpy(g, s.g, sizeof g);
        g[0].fused = joint;
        g[1].fused = joint + s.elems[0] - 1;
        expect_overlap_refused(ctx, g, accumulate, joint, s.elems[0] + s.elems[1] - 1, "grads[0].fused",
                               "grads[1].fused");
        /* adjacent but not overlapping: accepted */
        float *next = calloc(s.elems[0] + s.elems[1], sizeof(float));
        g[0].fused = next;
        g[1].fused = next + s.elems[0];
        assert_int_equal(yoloxloss_backward(ctx, g, NULL, 0), YOLOXLOSS_OK);
        free(next);
        free(joint);
    }
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* Split levels: a level's cls gradient over its own obj gradient, and its
 * obj gradient over the obj outputs of the other level. */
static void test_split_overlaps_refused(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 2, 3, 2, 8, 3, 43);
    ts_scene_add_split(&s);
    yoloxloss_context *ctx = ts_context(&s, 1);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch_split, &l), YOLOXLOSS_OK);
    ts_grad_buffers gb;
    ts_grad_buffers_make(&gb, &s, 3.0f);
    for (int accumulate = 0; accumulate <= 1; accumulate++) {
        yoloxloss_level_grad g[TS_MAX_LEVELS];
        memcpy(g, gb.as_split, sizeof g);
        g[0].cls = gb.obj[0]; /* [B, C, H, W] over [B, 1, H, W] */
        expect_overlap_refused(ctx, g, accumulate, gb.obj[0], (size_t)s.B * ts_hw(&s, 0), "grads[0].",
                               "grads[0].");
        memcpy(g, gb.as_split, sizeof g);
        g[1].obj = s.obj[0];
        expect_overlap_refused(ctx, g, accumulate, s.obj[0], (size_t)s.B * ts_hw(&s, 0), "grads[1].obj",
                               "level 0 (obj)");
        memcpy(g, gb.as_split, sizeof g);
        assert_int_equal(yoloxloss_backward(ctx, g, NULL, accumulate), YOLOXLOSS_OK);
    }
    ts_grad_buffers_free(&gb);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

/* decode's and detect's outputs at addresses their types cannot have:
 * refused with nothing written. */
static void test_misaligned_inference_outputs(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 1, 3, 2, 4, 2, 47);
    yoloxloss_context *ctx = ts_context(&s, 1);
    size_t A = 0;
    for (int l = 0; l < s.L; l++) A += ts_hw(&s, l);
    unsigned char *raw = calloc(A * (4 + (size_t)s.C) * sizeof(float) + 16, 1);
    float *odd = (float *)(void *)(raw + 1);
    assert_int_equal(yoloxloss_decode(ctx, 1, s.lv, odd, NULL), YOLOXLOSS_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "boxes"));
    assert_int_equal(yoloxloss_decode(ctx, 1, s.lv, NULL, odd), YOLOXLOSS_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "scores"));
    for (size_t i = 0; i < A * (4 + (size_t)s.C) * sizeof(float) + 16; i++) assert_int_equal(raw[i], 0);
    yoloxloss_detect_params dp;
    yoloxloss_detect_params_defaults(&dp);
    dp.max_detections = 4;
    yoloxloss_detection det[4];
    int32_t counts[2];
    assert_int_equal(yoloxloss_detect(ctx, 1, s.lv, &dp, det, (int32_t *)(void *)(raw + 2), NULL),
                     YOLOXLOSS_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "counts"));
    assert_int_equal(yoloxloss_detect(ctx, 1, s.lv, &dp, det, counts, (int32_t *)(void *)(raw + 3)),
                     YOLOXLOSS_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "found"));
    assert_int_equal(yoloxloss_detect(ctx, 1, s.lv, &dp, (yoloxloss_detection *)(void *)(raw + 1), counts, NULL),
                     YOLOXLOSS_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "detections"));
    for (size_t i = 0; i < A * (4 + (size_t)s.C) * sizeof(float) + 16; i++) assert_int_equal(raw[i], 0);
    assert_int_equal(yoloxloss_detect(ctx, 1, s.lv, &dp, det, counts, NULL), YOLOXLOSS_OK);
    free(raw);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_thread_gets_busy),
        cmocka_unit_test(test_fused_overlaps_refused),
        cmocka_unit_test(test_split_overlaps_refused),
        cmocka_unit_test(test_misaligned_inference_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
