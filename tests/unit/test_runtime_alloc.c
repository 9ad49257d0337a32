/* No allocation by anyone, the OpenMP runtime included, inside a call on
 * one thread once shapes settle; and a failing malloc in such a call is
 * YOLOXLOSS_ERR_OUT_OF_MEMORY, never the runtime's "libgomp: Out of memory"
 * exit.
 *
 * The test program defines malloc and its family itself (glibc lets a
 * program replace them for every library it loads), counting calls and
 * failing them on demand. A control first shows the shim sees libgomp's
 * own allocations (a parallel region of two threads makes some), so a
 * count of zero means something. Under a sanitizer or valgrind, which
 * replace malloc themselves, the test shows as Skipped with the reason. */
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define YL_MALLOC_REPLACED "a sanitizer replaces malloc"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define YL_MALLOC_REPLACED "a sanitizer replaces malloc"
#endif
#endif

#include "scene_util.h"

static atomic_long shim_calls;   /* allocation calls while counting */
static atomic_int shim_counting; /* count calls */
static atomic_int shim_failing;  /* and fail them */

#ifndef YL_MALLOC_REPLACED
#include <valgrind/valgrind.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

/* 1 if this allocation must fail. */
static int shim_enter(void) {
    if (!atomic_load_explicit(&shim_counting, memory_order_relaxed)) return 0;
    atomic_fetch_add_explicit(&shim_calls, 1, memory_order_relaxed);
    return atomic_load_explicit(&shim_failing, memory_order_relaxed);
}

void *malloc(size_t n) { return shim_enter() ? NULL : __libc_malloc(n); }
void *calloc(size_t n, size_t size) { return shim_enter() ? NULL : __libc_calloc(n, size); }
void *realloc(void *p, size_t n) { return shim_enter() ? NULL : __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t align, size_t n) { return shim_enter() ? NULL : __libc_memalign(align, n); }
void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
    void *p = memalign(align, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}
#endif

/* Counts (and with fail, fails) every allocation until shim_stop. */
static void shim_start(int fail) {
    atomic_store(&shim_calls, 0);
    atomic_store(&shim_failing, fail);
    atomic_store(&shim_counting, 1);
}

static long shim_stop(void) {
    atomic_store(&shim_counting, 0);
    atomic_store(&shim_failing, 0);
    return atomic_load(&shim_calls);
}

/* The control: libgomp allocates when it first starts a team of two. */
static void test_shim_sees_the_runtime(void **state) {
    (void)state;
    volatile int sum = 0;
    shim_start(0);
#pragma omp parallel num_threads(2)
    {
#pragma omp atomic
        sum += omp_get_thread_num() + 1;
    }
    long calls = shim_stop();
    assert_int_equal(sum, 3);
    if (calls < 1) fail_msg("a first team of two made no allocation the shim saw: the shim does not work");
}

/* Every call of a step on one thread, repeated, with every allocation
 * failing: all succeed, and none allocates (the library's workspaces and
 * OpenMP's runtime alike). */
static void steady_state_allocates_nothing(int num_threads) {
    ts_scene s;
    ts_scene_make(&s, 2, 4, 2, 8, 3, 51);
    yoloxloss_context *ctx = ts_context(&s, num_threads);
    assert_non_null(ctx);
    yoloxloss_losses l, first;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &first), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 0), YOLOXLOSS_OK);
    int32_t *matched = malloc((size_t)s.B * (size_t)yoloxloss_num_anchors(ctx) * sizeof *matched);
    yoloxloss_status st[5][4];
    shim_start(1);
    for (int i = 0; i < 5; i++) {
        st[i][0] = yoloxloss_forward(ctx, &s.batch, &l);
        st[i][1] = yoloxloss_renormalize(ctx, 3.0f, &l);
        st[i][2] = yoloxloss_get_assignment(ctx, matched, NULL, NULL);
        st[i][3] = yoloxloss_backward(ctx, s.g, NULL, i % 2);
    }
    long calls = shim_stop();
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 4; k++)
            if (st[i][k] != YOLOXLOSS_OK) fail_msg("step %d call %d: %s", i, k, yoloxloss_last_error(ctx));
    if (calls != 0) fail_msg("%ld allocations inside one-thread calls", calls);
    free(matched);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

static void test_one_thread_steady_state(void **state) {
    (void)state;
    steady_state_allocates_nothing(1);
}

/* The default thread count runs a call this small on the calling thread. */
static void test_default_threads_small_call(void **state) {
    (void)state;
    steady_state_allocates_nothing(0);
}

/* A call that needs more workspace while malloc fails: OUT_OF_MEMORY, the
 * process alive, the context usable once memory is back. */
static void test_one_thread_out_of_memory_is_a_status(void **state) {
    (void)state;
    ts_scene small, big;
    ts_scene_make(&small, 1, 4, 2, 8, 2, 61);
    ts_scene_make(&big, 3, 4, 2, 16, 6, 62);
    yoloxloss_context *ctx = ts_context(&big, 1);
    assert_non_null(ctx);
    yoloxloss_losses l = ts_sentinel_losses(), want;
    assert_int_equal(yoloxloss_forward(ctx, &small.batch, &want), YOLOXLOSS_OK);
    shim_start(1);
    yoloxloss_status st = yoloxloss_forward(ctx, &big.batch, &l);
    long calls = shim_stop();
    assert_int_equal(st, YOLOXLOSS_ERR_OUT_OF_MEMORY);
    assert_true(calls >= 1);
    ts_assert_losses_untouched(&l);
    assert_int_equal(yoloxloss_backward(ctx, big.g, NULL, 0), YOLOXLOSS_ERR_NO_FORWARD);
    assert_int_equal(yoloxloss_forward(ctx, &big.batch, &l), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, big.g, NULL, 0), YOLOXLOSS_OK);
    yoloxloss_destroy(ctx);
    ts_scene_free(&small);
    ts_scene_free(&big);
}

int main(void) {
#ifdef YL_MALLOC_REPLACED
    printf("Skipped: %s; this test replaces malloc itself\n", YL_MALLOC_REPLACED);
    return 77;
#else
    if (RUNNING_ON_VALGRIND) {
        printf("Skipped: valgrind replaces malloc; this test replaces malloc itself\n");
        return 77;
    }
    if (ts_threads(2) < 2) {
        printf("Skipped: the control needs a team of two threads (YOLOXLOSS_TEST_MAX_THREADS)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shim_sees_the_runtime),
        cmocka_unit_test(test_one_thread_steady_state),
        cmocka_unit_test(test_default_threads_small_call),
        cmocka_unit_test(test_one_thread_out_of_memory_is_a_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
