/* The thread count of a call (src/threads.c): an explicit count capped by
 * the work's units and the context's room; the default's threshold, its
 * team size from the estimated work, and its choice between a team and one
 * thread from the costs of its own calls (fed here by hand, so every rule
 * is checked without a clock); yoloxloss_set_num_threads through the API:
 * the count reported, the same bits for every count, the old count kept
 * when growing fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "scene_util.h"
#include "threads.h"

static yl_thread_plan plan(int requested, int ceiling, size_t units, double work_ns, yl_thread_memory *m) {
    yl_thread_policy p = {requested, ceiling};
    return yl_plan_threads(p, m, units, work_ns);
}

static void test_explicit_counts(void **state) {
    (void)state;
    yl_thread_memory m;
    memset(&m, 0, sizeof m);
    yl_thread_plan t = plan(4, 4, 100, 1.0, &m); /* tiny work: an explicit count is still used */
    assert_int_equal(t.threads, 4);
    assert_int_equal(t.learning, 0);
    assert_int_equal(plan(4, 4, 3, 1e9, &m).threads, 3);     /* no more threads than units */
    assert_int_equal(plan(8, 4, 100, 1e9, &m).threads, 4);   /* no more than the context has room for */
    assert_int_equal(plan(1, 4, 100, 1e9, &m).threads, 1);
    assert_int_equal(m.period, 0); /* explicit counts teach nothing */
}

static void test_default_threshold_and_size(void **state) {
    (void)state;
    yl_thread_memory m;
    memset(&m, 0, sizeof m);
    /* below the threshold: one thread, no clock, whatever the ceiling */
    yl_thread_plan t = plan(0, 64, 1000, YL_MIN_PARALLEL_WORK * 0.99, &m);
    assert_int_equal(t.threads, 1);
    assert_int_equal(t.most, 1);
    assert_int_equal(t.learning, 0);
    /* above: one thread per YL_WORK_PER_THREAD of work, capped by ceiling and units */
    t = plan(0, 64, 1000, 10.5 * YL_WORK_PER_THREAD, &m);
    assert_int_equal(t.most, 10);
    assert_int_equal(plan(0, 4, 1000, 10.5 * YL_WORK_PER_THREAD, &m).most, 4);
    assert_int_equal(plan(0, 64, 3, 10.5 * YL_WORK_PER_THREAD, &m).most, 3);
    assert_int_equal(plan(0, 1, 1000, 1e12, &m).threads, 1);
}

/* The first call runs on a team, the second tries one thread; the cheaper
 * is kept, and tries of the other come 8, 16, ... 256 calls apart while they
 * confirm the choice. */
static void test_default_learns_the_cheaper(void **state) {
    (void)state;
    yl_thread_memory m;
    memset(&m, 0, sizeof m);
    const double work = 8 * YL_WORK_PER_THREAD;
    yl_thread_plan t = plan(0, 4, 100, work, &m);
    assert_true(t.learning && t.team && t.threads == 4);
    yl_thread_learn(&m, t.team, 0.3); /* a team: 0.3 ns per estimated ns */
    t = plan(0, 4, 100, work, &m);
    assert_true(t.learning && !t.team && t.threads == 1); /* the try of one thread */
    yl_thread_learn(&m, t.team, 1.0);
    assert_int_equal(m.team, 1);
    assert_int_equal(m.period, 16);
    int expected = 16;
    for (int round = 0; round < 8; round++) {
        int calls = 0;
        for (;; calls++) {
            t = plan(0, 4, 100, work, &m);
            if (!t.team) break;
            yl_thread_learn(&m, 1, 0.3);
        }
        assert_int_equal(calls, expected); /* team calls before this try */
        yl_thread_learn(&m, 0, 1.0);       /* the try confirms: a team stays */
        assert_int_equal(m.team, 1);
        expected = expected * 2 > 256 ? 256 : expected * 2;
        assert_int_equal(m.period, expected);
    }
}

/* The cores get busy: the team's own calls get dear, and the default moves
 * to one thread at once (not at the next try); when a later try of the
 * team finds it cheap again, it moves back. */
static void test_default_follows_the_machine(void **state) {
    (void)state;
    yl_thread_memory m = {.cost = {1.0, 0.3}, .team = 1, .countdown = 64, .period = 64};
    const double work = 8 * YL_WORK_PER_THREAD;
    yl_thread_learn(&m, 1, 30.0); /* one call 100x slower: the average passes one thread's cost */
    assert_int_equal(m.team, 0);
    assert_int_equal(m.period, 8);
    for (int i = 0; i < 8; i++) {
        yl_thread_plan t = plan(0, 4, 100, work, &m);
        assert_false(t.team);
        yl_thread_learn(&m, 0, 2.0); /* one thread, slower too under load */
    }
    yl_thread_plan t = plan(0, 4, 100, work, &m);
    assert_true(t.team); /* the try */
    yl_thread_learn(&m, 1, 25.0);
    assert_int_equal(m.team, 0); /* the team still far dearer: stay */
    assert_int_equal(m.period, 16);
    m.countdown = 0;
    t = plan(0, 4, 100, work, &m);
    assert_true(t.team);
    yl_thread_learn(&m, 1, 0.4); /* the load has gone */
    assert_int_equal(m.team, 1);
    assert_int_equal(m.period, 8);
}

/* Through the API: the count a context reports, the same bits for every
 * count set between steps, and a failed growth keeping the old count. */
static void *failing_alloc(void *user, size_t bytes) {
    return *(int *)user ? NULL : malloc(bytes);
}

static void plain_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

static void test_set_num_threads(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make(&s, 3, 4, 2, 8, 4, 77);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    int fail = 0;
    cfg.alloc_fn = failing_alloc;
    cfg.free_fn = plain_free;
    cfg.alloc_user = &fail;
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses want, got;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &want), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    float *want_grad[TS_MAX_LEVELS];
    ts_grads_copy(&s, want_grad);
    const int counts[] = {2, 0, 4, 1, 3, 0};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        const int n = ts_threads(counts[k]);
        assert_int_equal(yoloxloss_set_num_threads(ctx, n), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_get_config(ctx)->num_threads, n);
        assert_int_equal(yoloxloss_forward(ctx, &s.batch, &got), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
        assert_true(ts_losses_equal(&want, &got));
        assert_true(ts_grads_equal(&s, want_grad));
    }
    /* more threads than the context has room for, with allocation failing */
    fail = 1;
    assert_int_equal(yoloxloss_set_num_threads(ctx, 64), YOLOXLOSS_ERR_OUT_OF_MEMORY);
    assert_int_equal(yoloxloss_get_config(ctx)->num_threads, 0);
    assert_non_null(strstr(yoloxloss_last_error(ctx), "64 threads"));
    /* the forward held before stays held, and within the room nothing allocates */
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_set_num_threads(ctx, ts_threads(2)), YOLOXLOSS_OK);
    fail = 0;
    ts_grads_release(&s, want_grad);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explicit_counts),
        cmocka_unit_test(test_default_threshold_and_size),
        cmocka_unit_test(test_default_learns_the_cheaper),
        cmocka_unit_test(test_default_follows_the_machine),
        cmocka_unit_test(test_set_num_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
