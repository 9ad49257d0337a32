/* Every SIMD kernel table against the scalar one, kernel by kernel, and the
 * whole forward/backward of a context on that ISA against a scalar context.
 *
 * Usage: test_kernels ISA (avx2, avx512 or neon). Exits 77, which ctest
 * reports as "Skipped", when this build or CPU does not have ISA: that ISA
 * has then not been tested on this machine, and the log says so.
 *
 * Per element both tables evaluate the same float32 formula with SLEEF's
 * scalar and vector functions, so values must agree to 1 ulp (and are
 * nearly always bitwise equal; the counts are printed). Sums of many
 * elements are compared to double rounding. Runs of every length from 0
 * to several vectors cover the tails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "simd/kernels.h"
#include "scene_util.h"

static const yl_kernels *vec; /* the table under test */
static const yl_kernels *ref; /* the scalar table */

static long n_values, n_bitwise;

/* Distance in units in the last place between two floats; NaN equals NaN. */
static int64_t ulps(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INT64_MAX;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t ka = ia < 0 ? (int64_t)INT32_MIN - ia : ia, kb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return ka > kb ? ka - kb : kb - ka;
}

static void expect_close_f(float got, float want, const char *what, size_t i) {
    n_values++;
    if (memcmp(&got, &want, 4) == 0) n_bitwise++;
    if (ulps(got, want) > 1)
        fail_msg("%s[%zu]: %s gives %.9g, scalar %.9g (%lld ulp apart)", what, i, yoloxloss_isa_name(vec->isa),
                 (double)got, (double)want, (long long)ulps(got, want));
}

/* A sum of float elements carried in double. The same elements added in
 * another order agree to double rounding; elements 1 ulp apart move it by
 * up to 6e-8 of each element, so abs_sum bounds the elements' sizes. */
static void expect_close_sum(double got, double want, double abs_sum, size_t n, const char *what) {
    double tol = 6e-8 * abs_sum + 1e-300;
    if (!(fabs(got - want) <= tol))
        fail_msg("%s (n %zu): %s gives %.17g, scalar %.17g (diff %.3g > tol %.3g)", what, n,
                 yoloxloss_isa_name(vec->isa), got, want, fabs(got - want), tol);
}

/* Logits over the whole useful range, with a few extremes. */
static float logit(tu_rng *r) {
    int k = tu_int(r, 0, 39);
    if (k == 0) return tu_int(r, 0, 1) ? 100.0f : -100.0f;
    if (k == 1) return tu_int(r, 0, 1) ? 1000.0f : -1000.0f;
    if (k == 2) return 0.0f;
    return tu_rangef(r, -30, 30);
}

#define MAXN 80

static void test_obj(void **state) {
    (void)state;
    tu_rng r = {101};
    float x[MAXN], g_ref[MAXN], g_vec[MAXN];
    int32_t m[MAXN];
    for (int rep = 0; rep < 20; rep++)
        for (size_t n = 0; n <= MAXN; n++) {
            double abs_sum = 0.0;
            for (size_t a = 0; a < n; a++) {
                x[a] = logit(&r);
                m[a] = tu_int(&r, 0, 3) == 0 ? tu_int(&r, 0, 9) : -1;
                abs_sum += fabs((double)x[a]) + 1.0;
            }
            expect_close_sum(vec->obj_loss(x, m, n, YOLOXLOSS_DTYPE_FLOAT32), ref->obj_loss(x, m, n, YOLOXLOSS_DTYPE_FLOAT32), abs_sum, n, "obj_loss");
            for (int acc = 0; acc <= 1; acc++) {
                for (size_t a = 0; a < MAXN; a++) g_ref[a] = g_vec[a] = tu_rangef(&r, -1, 1);
                ref->obj_grad(x, m, n, 0.37f, g_ref, acc, YOLOXLOSS_DTYPE_FLOAT32);
                vec->obj_grad(x, m, n, 0.37f, g_vec, acc, YOLOXLOSS_DTYPE_FLOAT32);
                for (size_t a = 0; a < MAXN; a++) expect_close_f(g_vec[a], g_ref[a], "obj_grad", a);
            }
        }
}

static void test_cls(void **state) {
    (void)state;
    tu_rng r = {102};
    const int Cs[] = {1, 2, 7, 8, 9, 16, 17, 63, 64, 65, 80, 130, 1203};
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
        for (size_t stride = 1; stride <= 5; stride += 2) {
            int C = Cs[ci];
            size_t len = (size_t)C * stride;
            float *x = malloc(len * sizeof *x), *g_ref = malloc(len * sizeof *x), *g_vec = malloc(len * sizeof *x);
            assert_non_null(x);
            assert_non_null(g_ref);
            assert_non_null(g_vec);
            double abs_sum = 0.0;
            for (size_t q = 0; q < len; q++) {
                x[q] = logit(&r);
                abs_sum += fabs((double)x[q]) + 1.0;
            }
            int cls = tu_int(&r, 0, C - 1);
            float t = tu_rangef(&r, 0, 1);
            expect_close_sum(vec->cls_loss(x, stride, C, cls, t, YOLOXLOSS_DTYPE_FLOAT32), ref->cls_loss(x, stride, C, cls, t, YOLOXLOSS_DTYPE_FLOAT32), abs_sum,
                             (size_t)C, "cls_loss");
            for (int acc = 0; acc <= 1; acc++) {
                for (size_t q = 0; q < len; q++) g_ref[q] = g_vec[q] = tu_rangef(&r, -1, 1);
                ref->cls_grad(x, stride, C, cls, t, 1.7f, g_ref, acc, YOLOXLOSS_DTYPE_FLOAT32);
                vec->cls_grad(x, stride, C, cls, t, 1.7f, g_vec, acc, YOLOXLOSS_DTYPE_FLOAT32);
                for (size_t q = 0; q < len; q++) expect_close_f(g_vec[q], g_ref[q], "cls_grad", q);
            }
            free(x);
            free(g_ref);
            free(g_vec);
        }
}

/* Candidates of one level of a W x H grid: sorted positions, some in
 * contiguous runs (the loads) and some scattered (the gathers). */
typedef struct {
    int32_t pos[MAXN];
    float gi[MAXN], gj[MAXN], xc[MAXN], yc[MAXN];
    float bx[2][MAXN], by[2][MAXN], bw[2][MAXN], bh[2][MAXN], so[2][MAXN];
    double sum0[2][MAXN];
    size_t n;
} cand_set;

enum { W = 37, H = 23, HW = W * H };

static void make_cands(tu_rng *r, cand_set *cs, size_t n, float stride) {
    int32_t q = tu_int(r, 0, 5);
    for (size_t c = 0; c < n; c++) {
        cs->pos[c] = q;
        cs->gi[c] = (float)(q / W);
        cs->gj[c] = (float)(q % W);
        cs->xc[c] = (cs->gj[c] + 0.5f) * stride;
        cs->yc[c] = (cs->gi[c] + 0.5f) * stride;
        q += tu_int(r, 0, 2) ? 1 : tu_int(r, 2, 9);
    }
    cs->n = n;
}

static yl_cands view(cand_set *cs, int k) {
    yl_cands v = {cs->pos, cs->gi, cs->gj, cs->xc, cs->yc, cs->bx[k], cs->by[k], cs->bw[k], cs->bh[k],
                  cs->so[k], cs->sum0[k]};
    return v;
}

static void test_assignment_kernels(void **state) {
    (void)state;
    tu_rng r = {103};
    static float reg[4 * HW], obj[HW], cls[3 * HW];
    for (int rep = 0; rep < 12; rep++)
        for (size_t n = 1; n <= MAXN && (size_t)(MAXN * 9) < HW; n++) {
            for (size_t q = 0; q < 4 * HW; q++) reg[q] = tu_rangef(&r, -2, 2);
            for (size_t q = 0; q < HW; q++) obj[q] = logit(&r);
            for (size_t q = 0; q < 3 * HW; q++) cls[q] = logit(&r);
            if (rep == 0) reg[2 * HW + 3] = 100.0f; /* exp overflows to inf */
            const float stride = rep % 2 ? 8.0f : 10.3f;
            cand_set cs;
            make_cands(&r, &cs, n, stride);
            yl_cands cr = view(&cs, 0), cv = view(&cs, 1);
            size_t c0 = n > 3 ? 2 : 0, len = n - c0; /* a run that starts inside the arrays */

            ref->decode(reg, obj, HW, stride, &cr, c0, len, YOLOXLOSS_DTYPE_FLOAT32);
            vec->decode(reg, obj, HW, stride, &cv, c0, len, YOLOXLOSS_DTYPE_FLOAT32);
            for (size_t c = c0; c < n; c++) {
                expect_close_f(cv.bx[c], cr.bx[c], "decode.x", c);
                expect_close_f(cv.by[c], cr.by[c], "decode.y", c);
                expect_close_f(cv.bw[c], cr.bw[c], "decode.w", c);
                expect_close_f(cv.bh[c], cr.bh[c], "decode.h", c);
                expect_close_f(cv.sig_obj[c], cr.sig_obj[c], "decode.sig_obj", c);
            }
            /* From here both sides read the scalar decode's boxes. */
            memcpy(cs.bx[1], cs.bx[0], sizeof cs.bx[0]);
            memcpy(cs.by[1], cs.by[0], sizeof cs.by[0]);
            memcpy(cs.bw[1], cs.bw[0], sizeof cs.bw[0]);
            memcpy(cs.bh[1], cs.bh[0], sizeof cs.bh[0]);
            memcpy(cs.so[1], cs.so[0], sizeof cs.so[0]);

            for (size_t c = 0; c < MAXN; c++) cs.sum0[0][c] = cs.sum0[1][c] = tu_range(&r, 0, 50);
            float p_ref[MAXN], b0_ref[MAXN], p_vec[MAXN], b0_vec[MAXN];
            for (int k = 0; k < 3; k++) {
                /* class 1 keeps p and BCE(p, 0), as for a class some gt has */
                ref->cost_bce0_accumulate(cls + (size_t)k * HW, cs.pos + c0, len, cr.sig_obj + c0, cr.sum0 + c0,
                                          k == 1 ? p_ref : NULL, k == 1 ? b0_ref : NULL, YOLOXLOSS_DTYPE_FLOAT32);
                vec->cost_bce0_accumulate(cls + (size_t)k * HW, cs.pos + c0, len, cv.sig_obj + c0, cv.sum0 + c0,
                                          k == 1 ? p_vec : NULL, k == 1 ? b0_vec : NULL, YOLOXLOSS_DTYPE_FLOAT32);
            }
            for (size_t c = 0; c < MAXN; c++)
                if (!(fabs(cv.sum0[c] - cr.sum0[c]) <= 3 * 1.2e-7 * 100.0))
                    fail_msg("cost_bce0_accumulate[%zu]: %.17g vs scalar %.17g", c, cv.sum0[c], cr.sum0[c]);
            for (size_t i = 0; i < len; i++) {
                expect_close_f(p_vec[i], p_ref[i], "cost_bce0_accumulate.keep_p", i);
                expect_close_f(b0_vec[i], b0_ref[i], "cost_bce0_accumulate.keep_b0", i);
            }
            memcpy(cs.sum0[1], cs.sum0[0], sizeof cs.sum0[0]);

            float cc_ref[MAXN], cc_vec[MAXN];
            ref->class_costs(p_ref, b0_ref, cr.sum0 + c0, len, cc_ref);
            vec->class_costs(p_ref, b0_ref, cr.sum0 + c0, len, cc_vec);
            for (size_t i = 0; i < len; i++) expect_close_f(cc_vec[i], cc_ref[i], "class_costs", i);

            float cc[MAXN];
            for (size_t c = 0; c < n; c++) cc[c] = c >= c0 ? cc_ref[c - c0] : 0.0f;
            for (int legacy = 0; legacy <= 1; legacy++) {
                /* A gt near some candidates, sometimes exactly on an anchor box. */
                size_t at = (size_t)tu_int(&r, 0, (int)n - 1);
                yl_pair_params pp = {cs.bx[0][at] + tu_rangef(&r, -20, 20), cs.by[0][at] + tu_rangef(&r, -20, 20),
                                     tu_rangef(&r, 1, 120), tu_rangef(&r, 1, 120), cc, 1.5f * stride, legacy,
                                     1.0f, 3.0f, legacy ? 1e5f : 1e6f};
                if (rep == 3) {
                    pp.cx = cs.bx[0][at];
                    pp.cy = cs.by[0][at];
                    pp.w = cs.bw[0][at];
                    pp.h = cs.bh[0][at];
                }
                float iou_ref[MAXN], iou_vec[MAXN], cost_ref[MAXN], cost_vec[MAXN];
                ref->pair_costs(&pp, &cr, c0, len, iou_ref, cost_ref);
                vec->pair_costs(&pp, &cv, c0, len, iou_vec, cost_vec);
                for (size_t i = 0; i < len; i++) {
                    expect_close_f(iou_vec[i], iou_ref[i], "pair_costs.iou", i);
                    expect_close_f(cost_vec[i], cost_ref[i], "pair_costs.cost", i);
                }
            }
        }
}

static void test_zero(void **state) {
    (void)state;
    float buf[300];
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n < 280; n += 7) {
            for (size_t i = 0; i < 300; i++) buf[i] = 1.0f;
            vec->zero(buf + off, n, YOLOXLOSS_DTYPE_FLOAT32);
            for (size_t i = 0; i < 300; i++) {
                float want = (i >= off && i < off + n) ? 0.0f : 1.0f;
                if (buf[i] != want || (want == 0.0f && signbit(buf[i])))
                    fail_msg("zero(off %zu, n %zu): element %zu is %g", off, n, i, (double)buf[i]);
            }
        }
}

/* forward + backward of scene s on `isa` with config base; returns the
 * context, and the gradients stay in s->grad. */
static yoloxloss_context *run_scene(yoloxloss_isa isa, const yoloxloss_config *base, ts_scene *s,
                                    yoloxloss_losses *out) {
    yoloxloss_config cfg = *base;
    cfg.isa = isa;
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_forward(ctx, &s->batch, out), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_backward(ctx, s->g, NULL, 0), YOLOXLOSS_OK);
    return ctx;
}

/* The library end to end: the same assignment, losses to double rounding
 * of float elements, gradients element by element. */
static void test_whole_loss(void **state) {
    (void)state;
    tu_rng r = {104};
    for (int rep = 0; rep < 8; rep++) {
        ts_scene s;
        ts_scene_make(&s, tu_int(&r, 1, 3), rep == 5 ? 300 : tu_int(&r, 1, 20), 3, 20 + 4 * tu_int(&r, 0, 3), 40,
                      tu_next(&r));
        yoloxloss_config cfg;
        ts_config(&s, &cfg, 1);
        cfg.assigner = rep % 2 ? YOLOXLOSS_ASSIGNER_YOLOX_LEGACY : YOLOXLOSS_ASSIGNER_YOLOX;
        cfg.iou_loss = rep % 3 == 2 ? YOLOXLOSS_IOU_LOSS_GIOU : YOLOXLOSS_IOU_LOSS_IOU;
        cfg.use_l1 = rep % 4 == 3;
        yoloxloss_losses lr, lvec;
        yoloxloss_context *cr = run_scene(YOLOXLOSS_ISA_SCALAR, &cfg, &s, &lr);
        float *g_ref[TS_MAX_LEVELS];
        ts_grads_copy(&s, g_ref);
        yoloxloss_context *cv = run_scene(vec->isa, &cfg, &s, &lvec);

        size_t n = (size_t)s.B * (size_t)yoloxloss_num_anchors(cr);
        int32_t *m_ref = malloc(n * sizeof *m_ref), *m_vec = malloc(n * sizeof *m_vec);
        assert_true(m_ref && m_vec);
        assert_int_equal(yoloxloss_get_assignment(cr, m_ref, NULL, NULL), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_get_assignment(cv, m_vec, NULL, NULL), YOLOXLOSS_OK);
        assert_memory_equal(m_ref, m_vec, n * sizeof *m_ref);
        assert_int_equal(lr.num_fg, lvec.num_fg);
        TU_ASSERT_CLOSE(lvec.total, lr.total, 1e-6, 0);
        TU_ASSERT_CLOSE(lvec.iou, lr.iou, 1e-6, 0);
        TU_ASSERT_CLOSE(lvec.obj, lr.obj, 1e-6, 0);
        TU_ASSERT_CLOSE(lvec.cls, lr.cls, 1e-6, 0);
        TU_ASSERT_CLOSE(lvec.l1, lr.l1, 1e-6, 0);
        for (int l = 0; l < s.L; l++)
            for (size_t i = 0; i < s.elems[l]; i++) expect_close_f(s.grad[l][i], g_ref[l][i], "gradient", i);
        free(m_ref);
        free(m_vec);
        yoloxloss_destroy(cr);
        yoloxloss_destroy(cv);
        ts_grads_release(&s, g_ref);
        ts_scene_free(&s);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s avx2|avx512|neon\n", argv[0]);
        return 2;
    }
    yoloxloss_isa isa = YOLOXLOSS_ISA_AUTO;
    for (int i = YOLOXLOSS_ISA_SCALAR; i <= YOLOXLOSS_ISA_NEON; i++)
        if (strcmp(argv[1], yoloxloss_isa_name((yoloxloss_isa)i)) == 0) isa = (yoloxloss_isa)i;
    if (isa == YOLOXLOSS_ISA_AUTO || isa == YOLOXLOSS_ISA_SCALAR) {
        fprintf(stderr, "%s: unknown or scalar ISA \"%s\"\n", argv[0], argv[1]);
        return 2;
    }
    if (!yoloxloss_isa_supported(isa)) {
        printf("NOT TESTED: this build or this CPU has no %s kernels\n", argv[1]);
        return 77;
    }
    vec = yl_kernels_select(isa);
    ref = yl_kernels_select(YOLOXLOSS_ISA_SCALAR);
    assert_true(vec && ref && vec->isa == isa);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obj),
        cmocka_unit_test(test_cls),
        cmocka_unit_test(test_assignment_kernels),
        cmocka_unit_test(test_zero),
        cmocka_unit_test(test_whole_loss),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    printf("%s vs scalar: %ld of %ld values bitwise equal\n", argv[1], n_bitwise, n_values);
#if defined(__x86_64__)
    /* On x86-64 both sides use SLEEF's FMA algorithms (the scalar FMA
     * variant and the AVX2/AVX-512 functions), which round alike. */
    if (n_bitwise != n_values) {
        printf("FAIL: on x86-64 every value must be bitwise equal to the scalar kernels'\n");
        failed++;
    }
#endif
    return failed;
}
