/* The class-cost decomposition S + BCE(p_c, 1) - BCE(p_c, 0) against the
 * direct sum over classes of BCE(p_k, [k == c]). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "assign.h"
#include "bce.h"
#include "test_util.h"

/* p = sqrt(sigmoid(cls) * sigmoid(obj)) in float32, as the spec prescribes */
static float prob_f32(float cls_logit, float obj_logit) {
    float sc = 1.0f / (1.0f + expf(-cls_logit));
    float so = 1.0f / (1.0f + expf(-obj_logit));
    return sqrtf(sc * so);
}

/* PyTorch binary_cross_entropy with logs clamped at -100, in double */
static double bce_prob(double p, int y) {
    double l = y ? log(p) : log(1.0 - p);
    if (!(l >= -100.0)) l = -100.0; /* also catches log(0) = -inf */
    return -l;
}

static void check_C(tu_rng *r, int C, int anchors) {
    float *logit = malloc((size_t)C * sizeof *logit);
    float *p = malloc((size_t)C * sizeof *p);
    assert_non_null(logit);
    assert_non_null(p);
    for (int a = 0; a < anchors; a++) {
        int mode = a % 4;
        float obj = mode == 3 ? 40.0f : tu_rangef(r, -6, 6);
        for (int k = 0; k < C; k++) {
            logit[k] = tu_rangef(r, -10, 10);
            if ((mode == 1 || mode == 3) && k % 7 == 0) logit[k] = 40.0f;     /* p -> 1: BCE(p,0) clamps at 100 */
            if (mode == 2 && k % 5 == 0) logit[k] = -200.0f;   /* p -> 0: BCE(p,1) clamps at 100 */
            p[k] = prob_f32(logit[k], obj);
        }
        double S = 0;
        for (int k = 0; k < C; k++) S += bce_prob(p[k], 0);
        for (int rep = 0; rep < 3; rep++) {
            int c = rep == 0 ? 0 : rep == 1 ? C - 1 : tu_int(r, 0, C - 1);
            double direct = 0;
            for (int k = 0; k < C; k++) direct += bce_prob(p[k], k == c);
            float got = yl_cls_cost_pair(tu_math(), S, p[c]);
            /* float32 result; the decomposition cancels BCE(p_c, 0) */
            double tol = 1e-6 * fabs(direct) + 2e-7 * (bce_prob(p[c], 0) + bce_prob(p[c], 1)) + 1e-6;
            TU_ASSERT_NEAR_CTX(got, direct, tol, "C %d anchor %d class %d p_c %g", C, a, c, (double)p[c]);
        }
    }
    free(logit);
    free(p);
}

static void test_cls_cost_pair_many_C(void **state) {
    (void)state;
    tu_rng r = {2024};
    const int Cs[] = {1, 2, 3, 7, 20, 80, 365, 1203};
    for (size_t i = 0; i < sizeof Cs / sizeof Cs[0]; i++) check_C(&r, Cs[i], Cs[i] > 300 ? 40 : 200);
}

static void test_cls_cost_pair_hand(void **state) {
    (void)state;
    /* C = 2, p = (0.5, 0.5), class 0: BCE(.5,1) + BCE(.5,0) = 2 log 2 */
    double S = 2 * log(2.0);
    TU_ASSERT_CLOSE(yl_cls_cost_pair(tu_math(), S, 0.5f), 2 * log(2.0), 1e-6, 0);
    /* C = 1, p_c = 0.25: S = -log(.75); result = -log(.25) */
    TU_ASSERT_CLOSE(yl_cls_cost_pair(tu_math(), -log(0.75), 0.25f), -log(0.25), 1e-6, 0);
    /* p_c = 1 exactly: BCE(1,0) = 100 is removed, BCE(1,1) = 0 added */
    TU_ASSERT_CLOSE(yl_cls_cost_pair(tu_math(), 100.0 + 3.0, 1.0f), 3.0, 1e-6, 0);
    /* p_c = 0: BCE(0,0) = 0 removed, BCE(0,1) = 100 added */
    TU_ASSERT_CLOSE(yl_cls_cost_pair(tu_math(), 5.0, 0.0f), 105.0, 1e-6, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cls_cost_pair_hand),
        cmocka_unit_test(test_cls_cost_pair_many_C),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
