/* Dynamic-k matching (yl_simota_match) on hand-built IoU / cost matrices. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "assign.h"
#include "test_util.h"

#define MAXC 64

/* Runs the matcher with a work buffer sized by yl_simota_work_bytes and
 * guarded by canaries on both sides. */
static void run_match(int n_gt, int n_cand, const float *iou, const float *cost, int topk, int32_t *dk,
                      int32_t *match) {
    size_t bytes = yl_simota_work_bytes(n_cand, topk);
    unsigned char *buf = malloc(bytes + 128);
    assert_non_null(buf);
    memset(buf, 0xCD, bytes + 128);
    for (int c = 0; c < n_cand; c++) match[c] = 12345;
    for (int g = 0; g < n_gt; g++) dk[g] = -777;
    yl_simota_match(tu_scalar_kernels(), n_gt, n_cand, iou, cost, topk, dk, match, buf + 64);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(buf[i], 0xCD);
        assert_int_equal(buf[64 + bytes + (size_t)i], 0xCD);
    }
    free(buf);
}

static void test_dynamic_k(void **state) {
    (void)state;
    int32_t dk[1], match[MAXC];
    float cost[MAXC];
    for (int c = 0; c < MAXC; c++) cost[c] = (float)c;

    /* sum < 1 -> 1 */
    const float a[5] = {0.2f, 0.3f, 0.1f, 0.05f, 0.1f};
    run_match(1, 5, a, cost, 10, dk, match);
    assert_int_equal(dk[0], 1);
    /* all IoUs zero -> still 1 */
    const float z[4] = {0, 0, 0, 0};
    run_match(1, 4, z, cost, 10, dk, match);
    assert_int_equal(dk[0], 1);
    /* exactly 3.0 -> 3 */
    const float b[6] = {0.5f, 1.0f, 0.0f, 1.0f, 0.5f, 0.0f};
    run_match(1, 6, b, cost, 10, dk, match);
    assert_int_equal(dk[0], 3);
    /* 2.999 -> 2 (truncation, not rounding) */
    const float c3[3] = {1.0f, 0.999f, 1.0f};
    run_match(1, 3, c3, cost, 10, dk, match);
    assert_int_equal(dk[0], 2);
    /* 3.99 -> 3 */
    const float d[5] = {0.99f, 1.0f, 1.0f, 1.0f, 0.0f};
    run_match(1, 5, d, cost, 10, dk, match);
    assert_int_equal(dk[0], 3);
    /* topk larger than n_cand: every IoU counts: 4 * 0.9 = 3.6 -> 3 */
    const float e[4] = {0.9f, 0.9f, 0.9f, 0.9f};
    run_match(1, 4, e, cost, 10, dk, match);
    assert_int_equal(dk[0], 3);
    /* topk 2 of them: 1.8 -> 1 */
    run_match(1, 4, e, cost, 2, dk, match);
    assert_int_equal(dk[0], 1);
    /* the largest topk are summed, not the first: top 3 of {.9,.1,.9,.9,.9} = 2.7 */
    const float f[5] = {0.1f, 0.9f, 0.1f, 0.9f, 0.9f};
    run_match(1, 5, f, cost, 3, dk, match);
    assert_int_equal(dk[0], 2);
    /* default topk 10 with 20 candidates of IoU 0.35: 3.5 -> 3 (not 7) */
    float g[20];
    for (int i = 0; i < 20; i++) g[i] = 0.35f;
    run_match(1, 20, g, cost, 10, dk, match);
    assert_int_equal(dk[0], 3);
    /* one candidate */
    const float one[1] = {0.99f};
    run_match(1, 1, one, cost, 10, dk, match);
    assert_int_equal(dk[0], 1);
    assert_int_equal(match[0], 0);
}

/* An IoU far above 1 comes from corners rounded at large coordinates (the
 * intersection outgrows the union) and an infinite one from a union of
 * exactly 0. Their sum is no count of boxes; k takes every candidate the
 * top-k kept rather than an out-of-range float-to-int conversion. */
static void test_dynamic_k_from_huge_ious(void **state) {
    (void)state;
    int32_t dk[1], match[MAXC];
    float cost[MAXC];
    for (int c = 0; c < MAXC; c++) cost[c] = (float)c;
    const float inf[4] = {0.5f, INFINITY, 0.25f, 0.0f};
    run_match(1, 4, inf, cost, 10, dk, match);
    assert_int_equal(dk[0], 4);
    const float huge[3] = {3e9f, 0.5f, 1e38f};
    run_match(1, 3, huge, cost, 2, dk, match);
    assert_int_equal(dk[0], 2);
    assert_int_equal(match[0], 0);
    assert_int_equal(match[1], 0);
    assert_int_equal(match[2], -1);
    /* just below the cap still truncates */
    const float big[3] = {1.5f, 1.0f, 0.0f};
    run_match(1, 3, big, cost, 10, dk, match);
    assert_int_equal(dk[0], 2);
}

static void test_takes_k_cheapest(void **state) {
    (void)state;
    int32_t dk[1], match[5];
    const float iou[5] = {1, 1, 1, 0, 0}; /* k = 3 */
    const float cost[5] = {5, 1, 3, 2, 4};
    run_match(1, 5, iou, cost, 10, dk, match);
    assert_int_equal(dk[0], 3);
    const int32_t want[5] = {-1, 0, 0, 0, -1};
    for (int c = 0; c < 5; c++) assert_int_equal(match[c], want[c]);
}

static void test_cost_ties_lowest_index(void **state) {
    (void)state;
    int32_t dk[1], match[6];
    const float iou[6] = {1, 1, 0, 0, 0, 0}; /* k = 2 */
    const float cost[6] = {2, 1, 1, 1, 0, 1};
    run_match(1, 6, iou, cost, 10, dk, match);
    const int32_t want[6] = {-1, 0, -1, -1, 0, -1};
    for (int c = 0; c < 6; c++) assert_int_equal(match[c], want[c]);

    /* all equal, k = 3 -> the first three */
    const float iou3[5] = {1, 1, 1, 0, 0};
    const float flat[5] = {7, 7, 7, 7, 7};
    int32_t m5[5];
    run_match(1, 5, iou3, flat, 10, dk, m5);
    const int32_t want3[5] = {0, 0, 0, -1, -1};
    for (int c = 0; c < 5; c++) assert_int_equal(m5[c], want3[c]);

    /* ties decided late in the scan: cheapest two are at indices 3 and 5 */
    const float late[6] = {9, 9, 9, 0.5f, 9, 0.5f};
    run_match(1, 6, iou, late, 10, dk, match);
    const int32_t want4[6] = {-1, -1, -1, 0, -1, 0};
    for (int c = 0; c < 6; c++) assert_int_equal(match[c], want4[c]);
}

static void test_conflict_smaller_cost_wins(void **state) {
    (void)state;
    int32_t dk[2], match[3];
    /* both gts take only anchor 0 (k = 1) */
    const float iou[6] = {0.5f, 0.1f, 0.1f, 0.5f, 0.1f, 0.1f};
    const float cost[6] = {1.0f, 5.0f, 6.0f,   /* gt 0 */
                           0.5f, 7.0f, 8.0f};  /* gt 1 */
    run_match(2, 3, iou, cost, 10, dk, match);
    assert_int_equal(dk[0], 1);
    assert_int_equal(dk[1], 1);
    assert_int_equal(match[0], 1);
    assert_int_equal(match[1], -1);
    assert_int_equal(match[2], -1);

    /* tie in cost -> lower gt index */
    const float tie[6] = {0.5f, 5.0f, 6.0f, 0.5f, 7.0f, 8.0f};
    run_match(2, 3, iou, tie, 10, dk, match);
    assert_int_equal(match[0], 0);

    /* the loser does not fall back to its next candidate */
    const float iou2[8] = {0.6f, 0.6f, 0.0f, 0.0f, 0.6f, 0.6f, 0.0f, 0.0f}; /* k = 1 each */
    const float c2[8] = {1.0f, 1.5f, 9.0f, 9.0f, 0.2f, 3.0f, 9.0f, 9.0f};
    int32_t dk2[2], m2[4];
    run_match(2, 4, iou2, c2, 10, dk2, m2);
    const int32_t w2[4] = {1, -1, -1, -1};
    for (int c = 0; c < 4; c++) assert_int_equal(m2[c], w2[c]);
}

/* The reference's quirk: the argmin runs over every gt's cost column, so a
 * contested anchor can go to a gt that did not take it. */
static void test_conflict_argmin_over_all_gts(void **state) {
    (void)state;
    int32_t dk[3], match[3];
    const float iou[9] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f}; /* k = 1 */
    const float cost[9] = {1.0f, 5.0f, 5.0f,   /* gt 0 takes anchor 0 */
                           2.0f, 5.0f, 5.0f,   /* gt 1 takes anchor 0 */
                           0.5f, 0.1f, 5.0f};  /* gt 2 takes anchor 1, but is cheapest at 0 */
    run_match(3, 3, iou, cost, 10, dk, match);
    assert_int_equal(match[0], 2);
    assert_int_equal(match[1], 2);
    assert_int_equal(match[2], -1);
    /* an anchor taken by one gt only is not reassigned even if another gt is cheaper there */
    const float cost2[9] = {1.0f, 5.0f, 5.0f, 9.0f, 0.3f, 5.0f, 0.2f, 0.1f, 5.0f};
    run_match(3, 3, iou, cost2, 10, dk, match);
    /* gt0 -> a0 (alone), gt1 -> a1, gt2 -> a1: a1 contested, column {5, .3, .1} -> gt 2 */
    assert_int_equal(match[0], 0);
    assert_int_equal(match[1], 2);
    assert_int_equal(match[2], -1);
}

/* k can exceed the anchors inside the gt's geometry: penalised anchors (cost
 * + 1e6, resolution 1/16 in float) are then taken, cheapest first. */
static void test_penalised_anchors_taken(void **state) {
    (void)state;
    int32_t dk[1], match[5];
    const float iou[5] = {1, 1, 1, 0.2f, 0.2f}; /* 3.4 -> 3 */
    const float P = 1e6f;
    const float cost[5] = {P + 1.0f, 0.5f, P + 2.0f, P + 0.5f, P + 3.0f};
    run_match(1, 5, iou, cost, 10, dk, match);
    assert_int_equal(dk[0], 3);
    const int32_t want[5] = {0, 0, -1, 0, -1};
    for (int c = 0; c < 5; c++) assert_int_equal(match[c], want[c]);

    /* penalty rounding creates exact ties: 1e6 + 0.01 == 1e6 + 0.02 in float,
     * so the lower index wins */
    const float cost2[5] = {0.5f, P + 0.02f, P + 0.01f, P + 7.0f, P + 9.0f};
    assert_true(cost2[1] == cost2[2]);
    const float iou2[5] = {1, 1, 0, 0, 0}; /* k = 2 */
    run_match(1, 5, iou2, cost2, 10, dk, match);
    const int32_t want2[5] = {0, 0, -1, -1, -1};
    for (int c = 0; c < 5; c++) assert_int_equal(match[c], want2[c]);
}

static void test_nan_cost_never_preferred(void **state) {
    (void)state;
    int32_t dk[2], match[3];
    const float iou1[3] = {0.5f, 0.5f, 0.5f}; /* k = 1 */
    const float c1[3] = {NAN, 1.0f, 2.0f};
    run_match(1, 3, iou1, c1, 10, dk, match);
    assert_int_equal(match[0], -1);
    assert_int_equal(match[1], 0);
    /* k = 2 with a NaN in the middle */
    const float iou2[3] = {1.0f, 1.0f, 0.5f};
    const float c2[3] = {3.0f, NAN, 2.0f};
    run_match(1, 3, iou2, c2, 10, dk, match);
    assert_int_equal(match[0], 0);
    assert_int_equal(match[1], -1);
    assert_int_equal(match[2], 0);
    /* conflict column with NaN for the lower gt: the other gt wins */
    const float iou3[4] = {1.0f, 1.0f, 0.5f, 0.5f}; /* gt0 k = 2, gt1 k = 1 */
    const float c3[4] = {NAN, NAN, 3.0f, 4.0f};
    int32_t m2[2];
    run_match(2, 2, iou3, c3, 10, dk, m2);
    assert_int_equal(dk[0], 2);
    assert_int_equal(dk[1], 1);
    assert_int_equal(m2[0], 1);
    assert_int_equal(m2[1], 0);
}

/* Random matrices against the brute-force matcher of test_util.h. */
static void test_random_vs_bruteforce(void **state) {
    (void)state;
    tu_rng r = {31337};
    for (int it = 0; it < 3000; it++) {
        int n_gt = tu_int(&r, 1, 6), n_cand = tu_int(&r, 1, 40), topk = tu_int(&r, 1, 12);
        float *iou = malloc((size_t)(n_gt * n_cand) * sizeof *iou);
        float *cost = malloc((size_t)(n_gt * n_cand) * sizeof *cost);
        int32_t dk[6], rdk[6], m[40], rm[40];
        for (int q = 0; q < n_gt * n_cand; q++) {
            iou[q] = tu_unif(&r) < 0.3 ? 0.0f : tu_rangef(&r, 0, 1);
            /* coarse costs so that ties happen; some penalised */
            cost[q] = (float)tu_int(&r, 0, 12) * 0.5f + (tu_unif(&r) < 0.3 ? 1e6f : 0.0f);
        }
        run_match(n_gt, n_cand, iou, cost, topk, dk, m);
        tu_ref_match(n_gt, n_cand, iou, cost, topk, rdk, rm);
        for (int g = 0; g < n_gt; g++) {
            if (dk[g] != rdk[g]) fail_msg("it %d gt %d: dynamic_k %d, expected %d", it, g, dk[g], rdk[g]);
            assert_true(dk[g] >= 1 && dk[g] <= n_cand);
        }
        for (int c = 0; c < n_cand; c++)
            if (m[c] != rm[c]) fail_msg("it %d cand %d: match %d, expected %d", it, c, m[c], rm[c]);
        free(iou);
        free(cost);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dynamic_k),
        cmocka_unit_test(test_dynamic_k_from_huge_ious),
        cmocka_unit_test(test_takes_k_cheapest),
        cmocka_unit_test(test_cost_ties_lowest_index),
        cmocka_unit_test(test_conflict_smaller_cost_wins),
        cmocka_unit_test(test_conflict_argmin_over_all_gts),
        cmocka_unit_test(test_penalised_anchors_taken),
        cmocka_unit_test(test_nan_cost_never_preferred),
        cmocka_unit_test(test_random_vs_bruteforce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
