/* BCE helpers of bce.h and the scalar kernel table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bce.h"
#include "simd/kernels.h"
#include "test_util.h"

static void test_bce_logits_vs_logsumexp(void **state) {
    (void)state;
    const float xs[] = {-1000.0f, -100.0f, -30.0f, -8.5f, -1.0f, -1e-3f, 0.0f, 1e-3f,
                        0.25f,    1.0f,    3.7f,   17.0f, 30.0f, 100.0f, 1000.0f};
    const float ts[] = {0.0f, 0.3f, 0.5f, 0.875f, 1.0f};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) {
            double got = yl_bce_logits(tu_math(), xs[i], ts[j]);
            long double want = tu_bce_logits_l(xs[i], ts[j]);
            assert_true(isfinite(got));
            TU_ASSERT_NEAR_CTX(got, (double)want, tu_bce_tol(xs[i], ts[j]), "x %g t %g", (double)xs[i],
                               (double)ts[j]);
        }
    /* extremes, exactly */
    assert_true(yl_bce_logits(tu_math(), -1000.0f, 0.0f) >= 0.0 && yl_bce_logits(tu_math(), -1000.0f, 0.0f) < 1e-300);
    assert_true(yl_bce_logits(tu_math(), 1000.0f, 0.0f) == 1000.0);
    assert_true(yl_bce_logits(tu_math(), -1000.0f, 1.0f) == 1000.0);
    assert_true(yl_bce_logits(tu_math(), 1000.0f, 1.0f) < 1e-300);
    assert_true(yl_bce_logits(tu_math(), 100.0f, 0.0f) == 100.0);
    TU_ASSERT_CLOSE(yl_bce_logits(tu_math(), 0.0f, 0.0f), log(2.0), 1e-7, 0);
    TU_ASSERT_CLOSE(yl_bce_logits(tu_math(), 0.0f, 1.0f), log(2.0), 1e-7, 0);

    /* random logits and targets */
    tu_rng r = {5};
    for (int it = 0; it < 10000; it++) {
        float x = tu_rangef(&r, -60, 60), t = (float)tu_unif(&r);
        long double want = tu_bce_logits_l(x, t);
        TU_ASSERT_NEAR_CTX(yl_bce_logits(tu_math(), x, t), (double)want, tu_bce_tol(x, t), "x %g t %g",
                           (double)x, (double)t);
    }
}

static void test_sigmoid(void **state) {
    (void)state;
    assert_true(yl_sigmoid(tu_math(), 0.0f) == 0.5f);
    tu_rng r = {6};
    for (int it = 0; it < 10000; it++) {
        float x = tu_rangef(&r, -20, 20);
        long double want = 1.0L / (1.0L + expl(-(long double)x));
        TU_ASSERT_NEAR_CTX(yl_sigmoid(tu_math(), x), (double)want, 2e-6 * (double)want, "x %g", (double)x);
    }
    /* saturates without NaN */
    assert_true(yl_sigmoid(tu_math(), 1000.0f) == 1.0f);
    assert_true(yl_sigmoid(tu_math(), -1000.0f) == 0.0f);
    assert_true(yl_sigmoid(tu_math(), 100.0f) == 1.0f);
    float s = yl_sigmoid(tu_math(), -100.0f);
    assert_true(s >= 0.0f && s < 1e-30f);
    /* symmetric: s(x) + s(-x) = 1 */
    TU_ASSERT_CLOSE(yl_sigmoid(tu_math(), 2.5f) + yl_sigmoid(tu_math(), -2.5f), 1.0, 0, 1e-7);
}

static void test_bce_prob_clamp(void **state) {
    (void)state;
    /* BCE(p, 0) = -max(log(1-p), -100), BCE(p, 1) = -max(log p, -100) */
    assert_true(yl_bce_prob0(tu_math(), 0.0f) == 0.0f);
    assert_true(yl_bce_prob0(tu_math(), 1.0f) == 100.0f);
    assert_true(yl_bce_prob1(tu_math(), 0.0f) == 100.0f);
    assert_true(yl_bce_prob1(tu_math(), 1.0f) == 0.0f);
    TU_ASSERT_CLOSE(yl_bce_prob0(tu_math(), 0.5f), log(2.0), 1e-6, 0);
    TU_ASSERT_CLOSE(yl_bce_prob1(tu_math(), 0.5f), log(2.0), 1e-6, 0);
    TU_ASSERT_CLOSE(yl_bce_prob0(tu_math(), 0.25f), -log(0.75), 1e-6, 0);
    TU_ASSERT_CLOSE(yl_bce_prob1(tu_math(), 0.25f), -log(0.25), 1e-6, 0);
    /* just under the clamp: log(1e-40) = -92.1 is not clamped; 1e-45 is */
    TU_ASSERT_CLOSE(yl_bce_prob1(tu_math(), 1e-40f), -log((double)1e-40f), 1e-5, 0);
    assert_true(yl_bce_prob1(tu_math(), 1e-45f) == 100.0f);
    tu_rng r = {7};
    for (int it = 0; it < 5000; it++) {
        float p = (float)tu_range(&r, 1e-6, 1.0 - 1e-6);
        TU_ASSERT_NEAR_CTX(yl_bce_prob0(tu_math(), p), -log(1.0 - (double)p), 1e-6 + 2e-6 * -log(1.0 - (double)p), "p %g",
                           (double)p);
        TU_ASSERT_NEAR_CTX(yl_bce_prob1(tu_math(), p), -log((double)p), 1e-6 + 2e-6 * -log((double)p), "p %g", (double)p);
    }
    /* the cost probability sqrt(sigmoid(c) * sigmoid(o)) */
    TU_ASSERT_CLOSE(yl_cost_prob(tu_math(), 0.0f, 0.5f), 0.5, 1e-6, 0);
    TU_ASSERT_CLOSE(yl_cost_prob(tu_math(), 1.0f, (float)tu_sigmoid(-2.0)), sqrt(tu_sigmoid(1.0) * tu_sigmoid(-2.0)), 1e-6, 0);
}

/* ---- scalar kernels ------------------------------------------------------ */

#define NA 257

static void fill_obj(tu_rng *r, float *x, int32_t *m, size_t n) {
    for (size_t a = 0; a < n; a++) {
        x[a] = tu_rangef(r, -9, 9);
        int u = tu_int(r, 0, 3);
        m[a] = u == 0 ? -1 : u == 1 ? -2 : u == 2 ? 0 : tu_int(r, 1, 50);
    }
    x[0] = 100.0f;
    x[1] = -100.0f;
    x[2] = 1000.0f;
    x[3] = -1000.0f;
}

static void test_kernel_obj_loss(void **state) {
    (void)state;
    const yl_kernels *k = tu_scalar_kernels();
    assert_int_equal(k->isa, YOLOXLOSS_ISA_SCALAR);
    tu_rng r = {8};
    float x[NA];
    int32_t m[NA];
    fill_obj(&r, x, m, NA);
    for (size_t n = 0; n <= NA; n += 64) {
        long double want = 0;
        double tol = 0;
        for (size_t a = 0; a < n; a++) {
            want += tu_bce_logits_l(x[a], m[a] >= 0 ? 1 : 0);
            tol += tu_bce_tol(x[a], m[a] >= 0 ? 1.0f : 0.0f);
        }
        TU_ASSERT_NEAR_CTX(k->obj_loss(x, m, n, YOLOXLOSS_DTYPE_FLOAT32), (double)want, tol, "n %zu", n);
    }
    assert_true(k->obj_loss(x, m, 0, YOLOXLOSS_DTYPE_FLOAT32) == 0.0);
}

static void test_kernel_obj_grad(void **state) {
    (void)state;
    const yl_kernels *k = tu_scalar_kernels();
    tu_rng r = {9};
    float x[NA], g[NA + 1], pre[NA];
    int32_t m[NA];
    fill_obj(&r, x, m, NA);
    const float scale = 0.37f;
    /* overwrite ignores what was there; the element after n is untouched */
    for (size_t a = 0; a <= NA; a++) g[a] = NAN;
    g[NA] = 123.0f;
    k->obj_grad(x, m, NA, scale, g, 0, YOLOXLOSS_DTYPE_FLOAT32);
    for (size_t a = 0; a < NA; a++) {
        double want = scale * (tu_sigmoid(x[a]) - (m[a] >= 0 ? 1.0 : 0.0));
        TU_ASSERT_NEAR_CTX(g[a], want, 1e-6 * fabs(want) + 1e-7, "a %zu x %g", a, (double)x[a]);
    }
    assert_true(g[NA] == 123.0f);
    /* accumulate adds */
    for (size_t a = 0; a < NA; a++) g[a] = pre[a] = tu_rangef(&r, -2, 2);
    k->obj_grad(x, m, NA, scale, g, 1, YOLOXLOSS_DTYPE_FLOAT32);
    for (size_t a = 0; a < NA; a++) {
        double want = pre[a] + scale * (tu_sigmoid(x[a]) - (m[a] >= 0 ? 1.0 : 0.0));
        TU_ASSERT_NEAR_CTX(g[a], want, 1e-6 * (fabs(want) + fabs(pre[a])) + 1e-7, "a %zu", a);
    }
    assert_true(g[NA] == 123.0f);
}

static void test_kernel_cost_bce0_accumulate(void **state) {
    (void)state;
    const yl_kernels *k = tu_scalar_kernels();
    tu_rng r = {10};
    enum { PLANE = 64, N = 40 };
    float plane[PLANE], sig[N];
    int32_t pos[N];
    double acc[N], pre[N];
    for (int i = 0; i < PLANE; i++) plane[i] = tu_rangef(&r, -6, 6);
    for (int i = 0; i < N; i++) {
        pos[i] = tu_int(&r, 0, PLANE - 1);
        sig[i] = tu_rangef(&r, 0.01, 0.95);
        acc[i] = pre[i] = tu_range(&r, 0, 50);
    }
    /* saturated entries: p = 1 -> BCE(1, 0) = 100; p = 0 -> 0 */
    plane[0] = 100.0f;
    pos[0] = 0;
    sig[0] = 1.0f;
    plane[1] = -1000.0f;
    pos[1] = 1;
    k->cost_bce0_accumulate(plane, pos, N, sig, acc, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32);
    for (int i = 0; i < N; i++) {
        double p = sqrt((double)(float)tu_sigmoid(plane[pos[i]]) * sig[i]);
        double b0 = 1.0 - p <= 0 ? 100.0 : fmin(-log(1.0 - p), 100.0);
        TU_ASSERT_NEAR_CTX(acc[i], pre[i] + b0, 1e-5 * (1.0 + b0), "i %d", i);
    }
    TU_ASSERT_CLOSE(acc[0], pre[0] + 100.0, 0, 1e-9);
    TU_ASSERT_CLOSE(acc[1], pre[1], 0, 1e-9);
    /* n = 0 touches nothing */
    double before = acc[0];
    k->cost_bce0_accumulate(plane, pos, 0, sig, acc, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32);
    assert_true(acc[0] == before);
}

static void test_kernel_cls_loss_and_grad(void **state) {
    (void)state;
    const yl_kernels *k = tu_scalar_kernels();
    tu_rng r = {11};
    const int Cs[] = {1, 3, 80};
    const size_t strides[] = {1, 5, 16};
    for (size_t ci = 0; ci < 3; ci++)
        for (size_t si = 0; si < 3; si++) {
            int C = Cs[ci];
            size_t st = strides[si];
            size_t len = (size_t)C * st;
            float *x = malloc(len * sizeof *x), *g = malloc(len * sizeof *g), *pre = malloc(len * sizeof *pre);
            assert_non_null(x);
            assert_non_null(g);
            assert_non_null(pre);
            for (size_t q = 0; q < len; q++) x[q] = tu_rangef(&r, -10, 10);
            x[0] = (ci == 2) ? 200.0f : x[0];
            int cls = tu_int(&r, 0, C - 1);
            float t = tu_rangef(&r, 0.05, 1.0);
            long double want = 0;
            double tol = 0;
            for (int c = 0; c < C; c++) {
                want += tu_bce_logits_l(x[(size_t)c * st], c == cls ? t : 0);
                tol += tu_bce_tol(x[(size_t)c * st], c == cls ? t : 0.0f);
            }
            TU_ASSERT_NEAR_CTX(k->cls_loss(x, st, C, cls, t, YOLOXLOSS_DTYPE_FLOAT32), (double)want, tol, "C %d st %zu",
                               C, st);

            /* overwrite: only the k*stride entries are written */
            for (size_t q = 0; q < len; q++) g[q] = pre[q] = tu_rangef(&r, -1, 1);
            for (size_t q = 0; q < len; q += st) g[q] = NAN;
            const float scale = 0.8f;
            k->cls_grad(x, st, C, cls, t, scale, g, 0, YOLOXLOSS_DTYPE_FLOAT32);
            for (size_t q = 0; q < len; q++) {
                if (q % st) {
                    assert_true(g[q] == pre[q]);
                    continue;
                }
                int c = (int)(q / st);
                double w = scale * (tu_sigmoid(x[q]) - (c == cls ? t : 0.0));
                TU_ASSERT_NEAR_CTX(g[q], w, 1e-6 * fabs(w) + 1e-7, "C %d st %zu c %d", C, st, c);
            }
            /* accumulate */
            for (size_t q = 0; q < len; q++) g[q] = pre[q];
            k->cls_grad(x, st, C, cls, t, scale, g, 1, YOLOXLOSS_DTYPE_FLOAT32);
            for (size_t q = 0; q < len; q++) {
                if (q % st) {
                    assert_true(g[q] == pre[q]);
                    continue;
                }
                int c = (int)(q / st);
                double w = pre[q] + scale * (tu_sigmoid(x[q]) - (c == cls ? t : 0.0));
                TU_ASSERT_NEAR_CTX(g[q], w, 1e-6 * (fabs(w) + 1) + 1e-7, "acc C %d st %zu c %d", C, st, c);
            }
            free(x);
            free(g);
            free(pre);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bce_logits_vs_logsumexp),
        cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_bce_prob_clamp),
        cmocka_unit_test(test_kernel_obj_loss),
        cmocka_unit_test(test_kernel_obj_grad),
        cmocka_unit_test(test_kernel_cost_bce0_accumulate),
        cmocka_unit_test(test_kernel_cls_loss_and_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
