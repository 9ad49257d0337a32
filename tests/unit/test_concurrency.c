/* Many contexts on many pthreads at once, each running OpenMP inside with
 * two threads: every loss, assignment and gradient must equal, bitwise, the
 * one a lone single-threaded context computes for the same step. Contexts
 * share nothing but the read-only inputs of one of the scenes; the message
 * of a failed create belongs to the thread that made the call. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"

#define NUM_WORKERS 6
#define STEPS 3

typedef struct {
    int id;
    ts_scene scene;             /* own inputs and gradient buffers */
    const ts_scene *shared;     /* inputs read by every worker at once */
    float *shared_grad[TS_MAX_LEVELS];
    yoloxloss_losses want[STEPS], want_shared;
    float *want_grad[STEPS][TS_MAX_LEVELS], *want_shared_grad[TS_MAX_LEVELS];
    int32_t *want_match[STEPS];
    int mismatches;
} worker;

/* Head values of worker t's step: new each step, the same in both runs. */
static uint64_t step_seed(int t, int step) { return 1000u * (uint64_t)step + 17u * (uint64_t)t; }

static int32_t *assignment_of(yoloxloss_context *ctx, const ts_scene *s) {
    size_t n = (size_t)s->B * (size_t)yoloxloss_num_anchors(ctx);
    int32_t *m = malloc(n * sizeof *m);
    if (yoloxloss_get_assignment(ctx, m, NULL, NULL) != YOLOXLOSS_OK) m[0] = -99;
    return m;
}

/* One step on s with grads into grad (the scene's own buffers if NULL). */
static int run_step(yoloxloss_context *ctx, const ts_scene *s, float *const grad[TS_MAX_LEVELS],
                    yoloxloss_losses *l) {
    yoloxloss_level_grad g[TS_MAX_LEVELS];
    memcpy(g, s->g, sizeof g);
    if (grad)
        for (int k = 0; k < s->L; k++) g[k].fused = grad[k];
    return yoloxloss_forward(ctx, &s->batch, l) == YOLOXLOSS_OK &&
           yoloxloss_backward(ctx, g, NULL, 0) == YOLOXLOSS_OK;
}

static int same_grads(const ts_scene *s, float *const a[TS_MAX_LEVELS], float *const b[TS_MAX_LEVELS]) {
    for (int k = 0; k < s->L; k++)
        if (memcmp(a[k], b[k], s->elems[k] * sizeof(float)) != 0) return 0;
    return 1;
}

static void *work(void *arg) {
    worker *w = arg;
    yoloxloss_config cfg;
    ts_config(&w->scene, &cfg, 2);
    yoloxloss_config shared_cfg;
    ts_config(w->shared, &shared_cfg, 2);
    yoloxloss_context *ctx = NULL, *shared_ctx = NULL;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK || yoloxloss_create(&shared_cfg, &shared_ctx) != YOLOXLOSS_OK) {
        w->mismatches = 1000;
        return NULL;
    }
    for (int step = 0; step < STEPS; step++) {
        /* A failed create leaves its message in this thread's slot, which
         * neither the other threads' failures nor this thread's calls on a
         * context change. */
        yoloxloss_config bad = cfg;
        bad.candidate_topk = -1 - w->id - 100 * step;
        yoloxloss_context *none = NULL;
        char own[64];
        snprintf(own, sizeof own, "candidate_topk is %d;", bad.candidate_topk);
        if (yoloxloss_create(&bad, &none) != YOLOXLOSS_ERR_INVALID_CONFIG) w->mismatches++;
        ts_scene_fill(&w->scene, step_seed(w->id, step));
        yoloxloss_losses l;
        if (!run_step(ctx, &w->scene, NULL, &l)) w->mismatches++;
        w->mismatches += strstr(yoloxloss_last_error(NULL), own) == NULL;
        int32_t *m = assignment_of(ctx, &w->scene);
        size_t n = (size_t)w->scene.B * (size_t)yoloxloss_num_anchors(ctx);
        w->mismatches += !ts_losses_equal(&l, &w->want[step]);
        w->mismatches += !same_grads(&w->scene, w->scene.grad, w->want_grad[step]);
        w->mismatches += memcmp(m, w->want_match[step], n * sizeof *m) != 0;
        free(m);
        /* and the scene every worker reads at the same moment */
        if (!run_step(shared_ctx, w->shared, w->shared_grad, &l)) w->mismatches++;
        w->mismatches += !ts_losses_equal(&l, &w->want_shared);
        w->mismatches += !same_grads(w->shared, w->shared_grad, w->want_shared_grad);
    }
    yoloxloss_destroy(ctx);
    yoloxloss_destroy(shared_ctx);
    return NULL;
}

static void alloc_grads(const ts_scene *s, float *g[TS_MAX_LEVELS]) {
    for (int k = 0; k < s->L; k++) g[k] = calloc(s->elems[k], sizeof(float));
}

static void test_contexts_on_threads_bitwise(void **state) {
    (void)state;
    static worker w[NUM_WORKERS];
    ts_scene shared;
    ts_scene_make(&shared, 2, 4, 3, 12, 5, 999);
    memset(w, 0, sizeof w);
    /* expected values: one context at a time, one OpenMP thread */
    for (int t = 0; t < NUM_WORKERS; t++) {
        ts_scene_make(&w[t].scene, 1 + t % 3, 2 + t % 4, 1 + t % 3, 8 + 2 * t, 1 + t, 50 + (uint64_t)t);
        w[t].shared = &shared;
        w[t].id = t;
        yoloxloss_config cfg;
        ts_config(&w[t].scene, &cfg, 1);
        yoloxloss_context *ctx = NULL;
        assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
        for (int step = 0; step < STEPS; step++) {
            ts_scene_fill(&w[t].scene, step_seed(t, step));
            assert_true(run_step(ctx, &w[t].scene, NULL, &w[t].want[step]));
            ts_grads_copy(&w[t].scene, w[t].want_grad[step]);
            w[t].want_match[step] = assignment_of(ctx, &w[t].scene);
            assert_true(w[t].want[step].num_fg > 0 || w[t].scene.total_gt == 0);
        }
        yoloxloss_destroy(ctx);
        alloc_grads(&shared, w[t].shared_grad);
    }
    {
        yoloxloss_config cfg;
        ts_config(&shared, &cfg, 1);
        yoloxloss_context *ctx = NULL;
        assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
        float *g[TS_MAX_LEVELS];
        alloc_grads(&shared, g);
        yoloxloss_losses l;
        assert_true(run_step(ctx, &shared, g, &l));
        assert_true(l.num_fg > 0);
        for (int t = 0; t < NUM_WORKERS; t++) {
            w[t].want_shared = l;
            memcpy(w[t].want_shared_grad, g, sizeof g); /* w[0] owns them */
        }
        yoloxloss_destroy(ctx);
    }

    pthread_t th[NUM_WORKERS];
    for (int t = 0; t < NUM_WORKERS; t++) assert_int_equal(pthread_create(&th[t], NULL, work, &w[t]), 0);
    for (int t = 0; t < NUM_WORKERS; t++) assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < NUM_WORKERS; t++) {
        if (w[t].mismatches) fail_msg("worker %d: %d results differ from the single-threaded run", t, w[t].mismatches);
        for (int step = 0; step < STEPS; step++) {
            ts_grads_release(&w[t].scene, w[t].want_grad[step]);
            free(w[t].want_match[step]);
        }
        if (t == 0) ts_grads_release(&shared, w[t].want_shared_grad);
        ts_grads_release(&shared, w[t].shared_grad);
        ts_scene_free(&w[t].scene);
    }
    ts_scene_free(&shared);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contexts_on_threads_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
