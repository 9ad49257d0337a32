/* Every SIMD kernel table against the scalar one, kernel by kernel, and the
 * whole forward/backward of a context on that ISA against a scalar context
 * (and its inference decode and detect);
 * with float16 and bfloat16 head outputs, the same against the float32
 * kernels of the same table on the up-converted values (results equal,
 * gradients equal to the float32 ones rounded), and the table's
 * conversions against the reference of half_ref.h.
 *
 * Usage: test_kernels ISA (avx2, avx512 or neon). Exits 77, which ctest
 * reports as "Skipped", when this build or CPU does not have ISA: that ISA
 * has then not been tested on this machine, and the log says so. Every
 * table of the ISA this CPU runs is tested (avx512: also the one with
 * AVX512_BF16's rounding, where the CPU has it).
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

#include "context.h"
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
            expect_close_sum(vec->obj_loss(x, m, n, YOLOXLOSS_DTYPE_FLOAT32),
                             ref->obj_loss(x, m, n, YOLOXLOSS_DTYPE_FLOAT32), abs_sum, n, "obj_loss");
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
            expect_close_sum(vec->cls_loss(x, stride, C, cls, t, YOLOXLOSS_DTYPE_FLOAT32),
                             ref->cls_loss(x, stride, C, cls, t, YOLOXLOSS_DTYPE_FLOAT32), abs_sum,
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
            const int mmdet = rep % 3 == 1; /* MMDetection's decoding and IoU */
            cand_set cs;
            make_cands(&r, &cs, n, stride);
            yl_cands cr = view(&cs, 0), cv = view(&cs, 1);
            size_t c0 = n > 3 ? 2 : 0, len = n - c0; /* a run that starts inside the arrays */

            ref->decode(reg, obj, HW, stride, mmdet, &cr, c0, len, YOLOXLOSS_DTYPE_FLOAT32);
            vec->decode(reg, obj, HW, stride, mmdet, &cv, c0, len, YOLOXLOSS_DTYPE_FLOAT32);
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
                                     1.0f, 3.0f, legacy ? 1e5f : 1e6f, mmdet ? 1e-7f : 1e-8f, mmdet};
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

/* A context for base whose kernels are `table` (an ISA can have more than
 * one table; dispatch would pick one by the CPU). */
static yoloxloss_context *create_on(const yl_kernels *table, const yoloxloss_config *base) {
    yoloxloss_config cfg = *base;
    cfg.isa = table->isa;
    yoloxloss_context *ctx = NULL;
    assert_int_equal(yoloxloss_create(&cfg, &ctx), YOLOXLOSS_OK);
    ctx->kernels = table;
    ctx->assign = yl_assign_params_for(&ctx->cfg, table);
    return ctx;
}

/* forward + backward of scene s on the kernel table with config base;
 * returns the context, and the gradients stay in s->grad. */
static yoloxloss_context *run_scene(const yl_kernels *table, const yoloxloss_config *base, ts_scene *s,
                                    yoloxloss_losses *out) {
    yoloxloss_context *ctx = create_on(table, base);
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
        yoloxloss_context *cr = run_scene(ref, &cfg, &s, &lr);
        float *g_ref[TS_MAX_LEVELS];
        ts_grads_copy(&s, g_ref);
        yoloxloss_context *cv = run_scene(vec, &cfg, &s, &lvec);

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

/* ---- float16 and bfloat16 ------------------------------------------------ */

static const yoloxloss_dtype HALVES[2] = {YOLOXLOSS_DTYPE_FLOAT16, YOLOXLOSS_DTYPE_BFLOAT16};

static const char *dt_name(yoloxloss_dtype dt) { return href_name(ts_fmt(dt)); }

/* Distance between two 16-bit patterns in representable steps (sign-aware);
 * NaN equals NaN. */
static int64_t steps16(uint16_t a, uint16_t b, yoloxloss_dtype dt) {
    href_fmt f = ts_fmt(dt);
    if (href_is_nan(a, f) || href_is_nan(b, f)) return href_is_nan(a, f) && href_is_nan(b, f) ? 0 : INT64_MAX;
    int64_t ka = (a & 0x8000) ? -(int64_t)(a & 0x7fff) : a, kb = (b & 0x8000) ? -(int64_t)(b & 0x7fff) : b;
    return ka > kb ? ka - kb : kb - ka;
}

/* A 16-bit element of the table under test against the scalar table's:
 * like expect_close_f, one step apart at most (a float32 result 1 ulp off
 * can round to the neighbouring pattern), counted when bitwise equal. */
static void expect_close16(uint16_t got, uint16_t want, yoloxloss_dtype dt, const char *what, size_t i) {
    n_values++;
    if (got == want) n_bitwise++;
    if (steps16(got, want, dt) > 1)
        fail_msg("%s[%zu] (%s): %s gives 0x%04x, scalar 0x%04x", what, i, dt_name(dt), yoloxloss_isa_name(vec->isa),
                 got, want);
}

/* got must be the float32 result `f32` rounded into dt, bit for bit. */
static void expect_rounded(uint16_t got, float f32, yoloxloss_dtype dt, const char *what, size_t i) {
    uint16_t want = href_round(f32, ts_fmt(dt));
    if (got != want)
        fail_msg("%s[%zu] (%s, %s): 0x%04x, but the float32 kernel gives %.9g (%08x), which rounds to 0x%04x", what,
                 i, dt_name(dt), yoloxloss_isa_name(vec->isa), got, (double)f32, href_bits(f32), want);
}

/* x rounded into dt: patterns h and their exact values up. */
static void round_into(const float *x, uint16_t *h, float *up, size_t n, yoloxloss_dtype dt) {
    for (size_t i = 0; i < n; i++) {
        h[i] = href_round(x[i], ts_fmt(dt));
        up[i] = (float)href_value(h[i], ts_fmt(dt));
    }
}

/* Logits as in logit(), plus the far tails whose gradients are float32
 * subnormals (sigmoid(-90) x scale), which AVX512_BF16's rounding would
 * read as zero. */
static float logit_wide(tu_rng *r) { return tu_int(r, 0, 5) == 0 ? tu_rangef(r, -110, -80) : logit(r); }

/* Rounding on store, through obj_grad: with logits of 100 (sigmoid exactly
 * 1) and background anchors the gradient is scale itself, so every value
 * can be fed to the table's rounding, in whole vectors and in a tail; and
 * accumulate mode's round(float(g) + v). Values: the edges of half_ref.h,
 * both sides of every 11th rounding boundary of each format (every one is
 * in test_half.c, for the scalar rounding), random bits. */
static void check_store(yoloxloss_dtype dt, float value, uint16_t *x, int32_t *bg, uint16_t *g, size_t n,
                        uint16_t before) {
    vec->obj_grad(x, bg, n, value, g, 0, dt);
    uint16_t want = href_round(value, ts_fmt(dt));
    for (size_t i = 0; i < n; i++)
        if (g[i] != want) expect_rounded(g[i], value, dt, "obj_grad store", i);
    for (size_t i = 0; i < n; i++) g[i] = before;
    vec->obj_grad(x, bg, n, value, g, 1, dt);
    const float sum = (float)href_value(before, ts_fmt(dt)) + value;
    want = href_round(sum, ts_fmt(dt));
    for (size_t i = 0; i < n; i++)
        if (g[i] != want) expect_rounded(g[i], sum, dt, "obj_grad accumulate", i);
}

static void test_dtype_store_edges(void **state) {
    (void)state;
    enum { N = 2 * 16 + 3 }; /* two vectors of any table, and a tail */
    uint16_t x[N], g[N];
    int32_t bg[N];
    tu_rng r = {105};
    for (int d = 0; d < 2; d++) {
        const yoloxloss_dtype dt = HALVES[d];
        const href_fmt f = ts_fmt(dt);
        for (size_t i = 0; i < N; i++) {
            x[i] = href_round(100.0f, f);
            bg[i] = -1;
        }
        for (size_t k = 0; k < HREF_NUM_EDGES; k++)
            check_store(dt, href_float(HREF_EDGE_BITS[k]), x, bg, g, N, href_round(tu_rangef(&r, -4, 4), f));
        const uint16_t top = href_max_finite(f);
        for (uint32_t h = 0; h < top; h += 11) {
            double lo = href_value((uint16_t)h, f), hi = href_value((uint16_t)(h + 1), f);
            float mid = (float)((lo + hi) / 2);
            const float around[3] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
            for (int k = 0; k < 3; k++) {
                check_store(dt, around[k], x, bg, g, N, href_round(tu_rangef(&r, -1, 1), f));
                check_store(dt, -around[k], x, bg, g, N, 0);
            }
        }
        for (int k = 0; k < 5000; k++) {
            float v = href_float((uint32_t)tu_next(&r));
            check_store(dt, v, x, bg, g, (size_t)tu_int(&r, 1, N), href_round(tu_rangef(&r, -1e4, 1e4), f));
        }
    }
}

/* Conversion on load, through decode with stride 1 and cell (0, 0): the
 * decoded x and y are the values themselves (plus 0: -0 reads as +0).
 * Every pattern of each format, read as contiguous runs (vector loads) and
 * as scattered positions (one by one), against half_ref.h and the scalar
 * table. */
static void test_dtype_load_every_pattern(void **state) {
    (void)state;
    enum { P = 65536 };
    uint16_t *reg = malloc(4 * P * sizeof *reg), *obj = malloc(P * sizeof *obj);
    int32_t *pos = malloc(P * sizeof *pos);
    float *soa[2][7];
    double *sum0[2];
    for (int k = 0; k < 2; k++) {
        for (int a = 0; a < 7; a++) soa[k][a] = malloc(P * sizeof(float));
        sum0[k] = malloc(P * sizeof(double));
    }
    float *zero = calloc(P, sizeof(float));
    assert_true(reg && obj && pos && zero);
    for (int d = 0; d < 2; d++) {
        const yoloxloss_dtype dt = HALVES[d];
        const href_fmt f = ts_fmt(dt);
        for (uint32_t h = 0; h < P; h++) {
            for (int c = 0; c < 4; c++) reg[(size_t)c * P + h] = (uint16_t)h;
            obj[h] = (uint16_t)h;
        }
        for (int scattered = 0; scattered <= 1; scattered++) {
            size_t n = 0;
            for (int32_t q = 0; q < P; q += scattered ? 1 + (q % 3) : 1) pos[n++] = q;
            yl_cands v[2];
            for (int k = 0; k < 2; k++)
                v[k] = (yl_cands){pos, zero, zero, zero, zero, soa[k][0], soa[k][1], soa[k][2], soa[k][3],
                                  soa[k][4], sum0[k]};
            ref->decode(reg, obj, P, 1.0f, 0, &v[0], 0, n, dt);
            vec->decode(reg, obj, P, 1.0f, 0, &v[1], 0, n, dt);
            for (size_t c = 0; c < n; c++) {
                const uint16_t h = (uint16_t)pos[c];
                const float got = v[1].bx[c];
                if (href_is_nan(h, f)) {
                    if (!isnan(got)) fail_msg("%s NaN 0x%04x loads as %g", dt_name(dt), h, (double)got);
                } else if (!((double)got == href_value(h, f) && !signbit(got) == !signbit(href_value(h, f) + 0.0)))
                    fail_msg("%s 0x%04x loads as %.9g, its value is %.17g (%s)", dt_name(dt), h, (double)got,
                             href_value(h, f), scattered ? "scattered" : "contiguous");
                expect_close_f(v[1].bx[c], v[0].bx[c], "decode.x", c);
                expect_close_f(v[1].by[c], v[0].by[c], "decode.y", c);
                expect_close_f(v[1].bw[c], v[0].bw[c], "decode.w", c);
                expect_close_f(v[1].bh[c], v[0].bh[c], "decode.h", c);
                expect_close_f(v[1].sig_obj[c], v[0].sig_obj[c], "decode.sig_obj", c);
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        for (int a = 0; a < 7; a++) free(soa[k][a]);
        free(sum0[k]);
    }
    free(zero);
    free(pos);
    free(obj);
    free(reg);
}

/* Each kernel on float16 or bfloat16 inputs: the same results as the same
 * table's float32 kernel on the up-converted values (sums and floats
 * bitwise, 16-bit gradients that float32 gradient rounded), and close to
 * the scalar table's on the same 16-bit inputs (bitwise on x86-64). */
static void test_dtype_obj(void **state) {
    (void)state;
    tu_rng r = {106};
    float x[MAXN], xup[MAXN], g32[MAXN];
    uint16_t xh[MAXN], gh[MAXN], gr[MAXN];
    int32_t m[MAXN];
    for (int d = 0; d < 2; d++) {
        const yoloxloss_dtype dt = HALVES[d];
        for (int rep = 0; rep < 10; rep++)
            for (size_t n = 0; n <= MAXN; n++) {
                double abs_sum = 0.0;
                for (size_t a = 0; a < n; a++) {
                    x[a] = logit_wide(&r);
                    m[a] = tu_int(&r, 0, 3) == 0 ? tu_int(&r, 0, 9) : -1;
                }
                round_into(x, xh, xup, n, dt);
                for (size_t a = 0; a < n; a++) abs_sum += fabs((double)xup[a]) + 1.0;
                const double lh = vec->obj_loss(xh, m, n, dt);
                if (lh != vec->obj_loss(xup, m, n, YOLOXLOSS_DTYPE_FLOAT32))
                    fail_msg("obj_loss (%s, n %zu): differs from float32 on the same values", dt_name(dt), n);
                expect_close_sum(lh, ref->obj_loss(xh, m, n, dt), abs_sum, n, "obj_loss (16-bit)");
                for (int acc = 0; acc <= 1; acc++) {
                    const float scale = acc ? 0.37f : 1024.0f; /* with and without loss scaling */
                    float pre[MAXN];
                    for (size_t a = 0; a < MAXN; a++) pre[a] = tu_rangef(&r, -1, 1);
                    round_into(pre, gh, g32, MAXN, dt);
                    memcpy(gr, gh, sizeof gh);
                    vec->obj_grad(xup, m, n, scale, g32, acc, YOLOXLOSS_DTYPE_FLOAT32);
                    vec->obj_grad(xh, m, n, scale, gh, acc, dt);
                    ref->obj_grad(xh, m, n, scale, gr, acc, dt);
                    for (size_t a = 0; a < MAXN; a++) {
                        expect_rounded(gh[a], g32[a], dt, "obj_grad", a);
                        expect_close16(gh[a], gr[a], dt, "obj_grad", a);
                    }
                }
            }
    }
}

static void test_dtype_cls(void **state) {
    (void)state;
    tu_rng r = {107};
    const int Cs[] = {1, 7, 16, 17, 64, 65, 80, 1203};
    for (int d = 0; d < 2; d++)
        for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
            for (size_t stride = 1; stride <= 3; stride += 2) {
                const yoloxloss_dtype dt = HALVES[d];
                const int C = Cs[ci];
                const size_t len = (size_t)C * stride;
                float *x = malloc(len * sizeof *x), *xup = malloc(len * sizeof *x), *g32 = malloc(len * sizeof *x);
                uint16_t *xh = malloc(len * 2), *gh = malloc(len * 2), *gr = malloc(len * 2);
                assert_true(x && xup && g32 && xh && gh && gr);
                double abs_sum = 0.0;
                for (size_t q = 0; q < len; q++) x[q] = logit_wide(&r);
                round_into(x, xh, xup, len, dt);
                for (size_t q = 0; q < len; q++) abs_sum += fabs((double)xup[q]) + 1.0;
                const int cls = tu_int(&r, 0, C - 1);
                const float t = tu_rangef(&r, 0, 1);
                const double lh = vec->cls_loss(xh, stride, C, cls, t, dt);
                if (lh != vec->cls_loss(xup, stride, C, cls, t, YOLOXLOSS_DTYPE_FLOAT32))
                    fail_msg("cls_loss (%s, C %d): differs from float32 on the same values", dt_name(dt), C);
                expect_close_sum(lh, ref->cls_loss(xh, stride, C, cls, t, dt), abs_sum, (size_t)C, "cls_loss (16-bit)");
                for (int acc = 0; acc <= 1; acc++) {
                    for (size_t q = 0; q < len; q++) x[q] = tu_rangef(&r, -1, 1);
                    round_into(x, gh, g32, len, dt);
                    memcpy(gr, gh, len * 2);
                    vec->cls_grad(xup, stride, C, cls, t, 1.7f, g32, acc, YOLOXLOSS_DTYPE_FLOAT32);
                    vec->cls_grad(xh, stride, C, cls, t, 1.7f, gh, acc, dt);
                    ref->cls_grad(xh, stride, C, cls, t, 1.7f, gr, acc, dt);
                    for (size_t q = 0; q < len; q++) {
                        expect_rounded(gh[q], g32[q], dt, "cls_grad", q);
                        expect_close16(gh[q], gr[q], dt, "cls_grad", q);
                    }
                }
                free(x);
                free(xup);
                free(g32);
                free(xh);
                free(gh);
                free(gr);
            }
}

/* decode and cost_bce0_accumulate on 16-bit planes: bitwise the float32
 * kernels' results on the up-converted planes (same table), close to the
 * scalar table's. */
static void test_dtype_assignment_kernels(void **state) {
    (void)state;
    tu_rng r = {108};
    static float reg[4 * HW], obj[HW], cls[HW];
    static uint16_t regh[4 * HW], objh[HW], clsh[HW];
    for (int d = 0; d < 2; d++) {
        const yoloxloss_dtype dt = HALVES[d];
        for (int rep = 0; rep < 6; rep++) {
            for (size_t q = 0; q < 4 * HW; q++) reg[q] = tu_rangef(&r, -2, 2);
            for (size_t q = 0; q < HW; q++) {
                obj[q] = logit_wide(&r);
                cls[q] = logit_wide(&r);
            }
            round_into(reg, regh, reg, 4 * HW, dt);
            round_into(obj, objh, obj, HW, dt);
            round_into(cls, clsh, cls, HW, dt);
            for (size_t n = 1; n <= MAXN; n++) {
                const float stride = rep % 2 ? 8.0f : 10.3f;
                cand_set cs;
                make_cands(&r, &cs, n, stride);
                /* [0]: float32 on the up-converted planes; [1]: 16-bit, this
                 * table; the scalar table's 16-bit run goes into [0] after. */
                yl_cands c32 = view(&cs, 0), c16 = view(&cs, 1);
                vec->decode(reg, obj, HW, stride, 0, &c32, 0, n, YOLOXLOSS_DTYPE_FLOAT32);
                vec->decode(regh, objh, HW, stride, 0, &c16, 0, n, dt);
                assert_memory_equal(cs.bx[0], cs.bx[1], n * sizeof(float));
                assert_memory_equal(cs.by[0], cs.by[1], n * sizeof(float));
                assert_memory_equal(cs.bw[0], cs.bw[1], n * sizeof(float));
                assert_memory_equal(cs.bh[0], cs.bh[1], n * sizeof(float));
                assert_memory_equal(cs.so[0], cs.so[1], n * sizeof(float));
                float p32[MAXN], b32[MAXN], p16[MAXN], b16[MAXN];
                for (size_t c = 0; c < n; c++) cs.sum0[0][c] = cs.sum0[1][c] = tu_range(&r, 0, 50);
                vec->cost_bce0_accumulate(cls, cs.pos, n, c32.sig_obj, c32.sum0, p32, b32, YOLOXLOSS_DTYPE_FLOAT32);
                vec->cost_bce0_accumulate(clsh, cs.pos, n, c16.sig_obj, c16.sum0, p16, b16, dt);
                assert_memory_equal(cs.sum0[0], cs.sum0[1], n * sizeof(double));
                assert_memory_equal(p32, p16, n * sizeof(float));
                assert_memory_equal(b32, b16, n * sizeof(float));
                ref->decode(regh, objh, HW, stride, 0, &c32, 0, n, dt);
                ref->cost_bce0_accumulate(clsh, cs.pos, n, c16.sig_obj, c32.sum0, p32, b32, dt);
                for (size_t c = 0; c < n; c++) {
                    expect_close_f(c16.bx[c], c32.bx[c], "decode.x (16-bit)", c);
                    expect_close_f(c16.bw[c], c32.bw[c], "decode.w (16-bit)", c);
                    expect_close_f(c16.sig_obj[c], c32.sig_obj[c], "decode.sig_obj (16-bit)", c);
                    expect_close_f(p16[c], p32[c], "cost_bce0_accumulate.keep_p (16-bit)", c);
                    expect_close_f(b16[c], b32[c], "cost_bce0_accumulate.keep_b0 (16-bit)", c);
                }
            }
        }
    }
}

/* zero on 16-bit buffers: exactly n elements from any element offset (so
 * 2-byte, not only 4-byte, steps to the vector boundary). */
static void test_dtype_zero(void **state) {
    (void)state;
    uint16_t buf[300];
    for (int d = 0; d < 2; d++)
        for (size_t off = 0; off < 17; off++)
            for (size_t n = 0; n < 280; n += 5) {
                for (size_t i = 0; i < 300; i++) buf[i] = 0x3c00;
                vec->zero(buf + off, n, HALVES[d]);
                for (size_t i = 0; i < 300; i++) {
                    uint16_t want = (i >= off && i < off + n) ? 0 : 0x3c00;
                    if (buf[i] != want) fail_msg("zero(%s, off %zu, n %zu): element %zu is 0x%04x", dt_name(HALVES[d]),
                                                 off, n, i, buf[i]);
                }
            }
}

/* The library end to end on this table, levels in float16, bfloat16 and
 * float32 (mixed in some scenes), fused and split: the same assignment and
 * bitwise the same losses as the float32 scene of the up-converted values,
 * every gradient that scene's rounded into its level's dtype (overwrite
 * and accumulate, with and without loss scaling); and close to the scalar
 * table's 16-bit results (bitwise on x86-64). */
static void test_whole_loss_dtypes(void **state) {
    (void)state;
    tu_rng r = {109};
    const yoloxloss_dtype F32 = YOLOXLOSS_DTYPE_FLOAT32, F16 = YOLOXLOSS_DTYPE_FLOAT16,
                          BF16 = YOLOXLOSS_DTYPE_BFLOAT16;
    const yoloxloss_dtype mixes[6][3] = {{F16, F16, F16}, {BF16, BF16, BF16}, {F16, BF16, F32},
                                         {BF16, F32, F16}, {F16, F16, F16}, {BF16, BF16, BF16}};
    for (int rep = 0; rep < 6; rep++) {
        ts_scene s;
        ts_scene_make(&s, tu_int(&r, 1, 3), rep == 4 ? 80 : tu_int(&r, 1, 20), 3, 20 + 4 * tu_int(&r, 0, 3), 40,
                      tu_next(&r));
        ts_typed_scene t;
        ts_typed_make(&t, &s, mixes[rep], rep % 2);
        yoloxloss_config cfg;
        ts_config(&s, &cfg, 1 + rep % 2);
        cfg.assigner = rep % 3 ? YOLOXLOSS_ASSIGNER_YOLOX_LEGACY : YOLOXLOSS_ASSIGNER_YOLOX;
        cfg.iou_loss = rep % 4 == 1 ? YOLOXLOSS_IOU_LOSS_GIOU : YOLOXLOSS_IOU_LOSS_IOU;
        cfg.use_l1 = rep % 2;
        const yoloxloss_upstream scaled = {65536.0f, 0.0f, 0.0f, 0.0f, 0.0f}, mix = {1.0f, 0.5f, -2.0f, 3.0f, 0.25f};
        const yoloxloss_upstream *up = rep % 3 == 0 ? &scaled : rep % 3 == 1 ? NULL : &mix;

        yoloxloss_context *c32 = create_on(vec, &cfg), *c16 = create_on(vec, &cfg);
        yoloxloss_losses l32, l16;
        assert_int_equal(yoloxloss_forward(c32, &s.batch, &l32), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_forward(c16, &t.batch, &l16), YOLOXLOSS_OK);
        assert_true(ts_losses_equal(&l16, &l32));
        size_t na = (size_t)s.B * (size_t)yoloxloss_num_anchors(c32);
        int32_t *m32 = malloc(na * sizeof *m32), *m16 = malloc(na * sizeof *m16);
        float *p32 = malloc(na * sizeof *p32), *p16 = malloc(na * sizeof *p16);
        assert_true(m32 && m16 && p32 && p16);
        assert_int_equal(yoloxloss_get_assignment(c32, m32, p32, NULL), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_get_assignment(c16, m16, p16, NULL), YOLOXLOSS_OK);
        assert_memory_equal(m32, m16, na * sizeof *m32);
        assert_memory_equal(p32, p16, na * sizeof *p32);
        for (int acc = 0; acc <= 1; acc++) {
            if (acc) ts_typed_fill_grads(&t, &s, tu_next(&r));
            assert_int_equal(yoloxloss_backward(c32, s.g, up, acc), YOLOXLOSS_OK);
            assert_int_equal(yoloxloss_backward(c16, t.g, up, acc), YOLOXLOSS_OK);
            ts_typed_expect_rounded(&t, &s, acc ? "accumulate" : "overwrite");
        }

        /* the scalar table on the same 16-bit inputs */
        void *saved[TS_MAX_LEVELS][3] = {{NULL}};
        assert_int_equal(yoloxloss_backward(c16, t.g, up, 0), YOLOXLOSS_OK);
        for (int l = 0; l < s.L; l++)
            for (int k = 0; k < 3; k++)
                if (t.grad[l][k]) {
                    size_t bytes = t.count[l][k] * (t.dtype[l] == F32 ? 4 : 2);
                    saved[l][k] = malloc(bytes);
                    assert_non_null(saved[l][k]);
                    memcpy(saved[l][k], t.grad[l][k], bytes);
                }
        yoloxloss_context *cr = create_on(ref, &cfg);
        yoloxloss_losses lr;
        assert_int_equal(yoloxloss_forward(cr, &t.batch, &lr), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_backward(cr, t.g, up, 0), YOLOXLOSS_OK);
        assert_int_equal(lr.num_fg, l16.num_fg);
        TU_ASSERT_CLOSE(l16.total, lr.total, 1e-6, 0);
        for (int l = 0; l < s.L; l++)
            for (int k = 0; k < 3; k++) {
                if (!saved[l][k]) continue;
                for (size_t i = 0; i < t.count[l][k]; i++) {
                    if (t.dtype[l] == F32)
                        expect_close_f(((float *)saved[l][k])[i], ((float *)t.grad[l][k])[i], "gradient (mixed)", i);
                    else
                        expect_close16(((uint16_t *)saved[l][k])[i], ((uint16_t *)t.grad[l][k])[i], t.dtype[l],
                                       "gradient", i);
                }
                free(saved[l][k]);
            }
        free(m32);
        free(m16);
        free(p32);
        free(p16);
        yoloxloss_destroy(cr);
        yoloxloss_destroy(c32);
        yoloxloss_destroy(c16);
        ts_typed_free(&t);
        ts_scene_free(&s);
    }
}

/* ---- inference decode ---------------------------------------------------- */

enum { DW = 13, DH = 7, DHW = DW * DH }; /* rows no multiple of any vector width */

/* Class logits with exact ties, logits whose sigmoids tie (35 and 40 both
 * give 1.0f), and the ordinary range. */
static float class_logit(tu_rng *r) {
    switch (tu_int(r, 0, 9)) {
    case 0: return (const float[]){-2.0f, 0.5f, 3.0f}[tu_int(r, 0, 2)];
    case 1: return tu_int(r, 0, 1) ? 40.0f : -40.0f;
    case 2: return 35.0f;
    default: return tu_rangef(r, -6, 6);
    }
}

/* Every output of decode_anchors for a run of up to DHW anchors. */
typedef struct {
    float boxes[4 * DHW], scores[DHW * 130], obj[DHW], conf[DHW];
    int32_t cls[DHW];
} decoded;

/* A destination writing the outputs `which` asks for (b boxes, s scores,
 * o obj, c cls_conf and cls) into out. */
static yl_decode_dst dst_of(decoded *out, const char *which, float floor) {
    yl_decode_dst d = {strchr(which, 'b') ? out->boxes : NULL, strchr(which, 's') ? out->scores : NULL,
                       strchr(which, 'o') ? out->obj : NULL, strchr(which, 'c') ? out->conf : NULL,
                       strchr(which, 'c') ? out->cls : NULL, floor};
    return d;
}

/* The outputs of one run, the table under test against the scalar one. */
static void expect_decoded_close(const decoded *got, const decoded *want, size_t n, int C, const char *which) {
    if (strchr(which, 'b'))
        for (size_t i = 0; i < 4 * n; i++) expect_close_f(got->boxes[i], want->boxes[i], "decode_anchors.boxes", i);
    if (strchr(which, 's'))
        for (size_t i = 0; i < n * (size_t)C; i++)
            expect_close_f(got->scores[i], want->scores[i], "decode_anchors.scores", i);
    if (strchr(which, 'o'))
        for (size_t i = 0; i < n; i++) expect_close_f(got->obj[i], want->obj[i], "decode_anchors.obj", i);
    if (strchr(which, 'c'))
        for (size_t i = 0; i < n; i++) {
            expect_close_f(got->conf[i], want->conf[i], "decode_anchors.cls_conf", i);
            if (got->cls[i] != want->cls[i])
                fail_msg("decode_anchors.cls[%zu]: %s gives %d, scalar %d", i, yoloxloss_isa_name(vec->isa),
                         got->cls[i], want->cls[i]);
        }
}

static const size_t RUN_LENGTHS[] = {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, DHW};

/* decode_anchors against the scalar table: runs starting anywhere in a row,
 * of every length around the vector widths, each subset of outputs, both
 * arithmetics, with and without the objectness floor; class logits with
 * ties, saturated sigmoids and NaNs. */
static void test_decode_anchors(void **state) {
    (void)state;
    tu_rng r = {110};
    static float reg[4 * DHW], obj[DHW], cls[130 * DHW];
    static decoded a, b;
    const int Cs[] = {1, 3, 8, 9, 17, 65, 130}; /* around the vector widths and YL_CHUNK */
    const char *const subsets[] = {"bsoc", "oc", "b", "s", "c"};
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
        const int C = Cs[ci];
        for (size_t q = 0; q < 4 * DHW; q++) reg[q] = tu_rangef(&r, -3, 3);
        reg[2 * DHW + 5] = 100.0f; /* exp overflows to inf */
        for (size_t q = 0; q < DHW; q++) obj[q] = logit(&r);
        for (size_t q = 0; q < (size_t)C * DHW; q++) cls[q] = class_logit(&r);
        for (size_t q = 0; q < DHW; q += 11) cls[(size_t)tu_int(&r, 0, C - 1) * DHW + q] = NAN;
        const size_t starts[] = {0, 5, DW + 3};
        for (size_t si = 0; si < sizeof starts / sizeof starts[0]; si++)
            for (size_t ni = 0; ni < sizeof RUN_LENGTHS / sizeof RUN_LENGTHS[0]; ni++) {
                const size_t q0 = starts[si], n = RUN_LENGTHS[ni] < DHW - q0 ? RUN_LENGTHS[ni] : DHW - q0;
                const int mmdet = (int)(ni % 2);
                const yl_decode_src src = {reg, obj, cls, DHW, DW, C, mmdet ? 8.0f : 10.3f, mmdet};
                for (size_t k = 0; k < sizeof subsets / sizeof subsets[0]; k++) {
                    const float floor = k == 1 ? 0.4f : -INFINITY;
                    const yl_decode_dst da = dst_of(&a, subsets[k], floor), db = dst_of(&b, subsets[k], floor);
                    ref->decode_anchors(&src, q0, n, &da, YOLOXLOSS_DTYPE_FLOAT32);
                    vec->decode_anchors(&src, q0, n, &db, YOLOXLOSS_DTYPE_FLOAT32);
                    expect_decoded_close(&b, &a, n, C, subsets[k]);
                }
            }
    }
}

/* The same on float16 and bfloat16 planes: bitwise the same table's
 * float32 results on the up-converted planes, close to the scalar table's
 * 16-bit results. */
static void test_dtype_decode_anchors(void **state) {
    (void)state;
    tu_rng r = {111};
    static float reg[4 * DHW], obj[DHW], cls[80 * DHW];
    static uint16_t regh[4 * DHW], objh[DHW], clsh[80 * DHW];
    static decoded a, b, c;
    const int Cs[] = {1, 9, 80};
    for (int d = 0; d < 2; d++)
        for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
            const yoloxloss_dtype dt = HALVES[d];
            const int C = Cs[ci];
            for (size_t q = 0; q < 4 * DHW; q++) reg[q] = tu_rangef(&r, -3, 3);
            for (size_t q = 0; q < DHW; q++) obj[q] = logit_wide(&r);
            for (size_t q = 0; q < (size_t)C * DHW; q++) cls[q] = class_logit(&r);
            round_into(reg, regh, reg, 4 * DHW, dt);
            round_into(obj, objh, obj, DHW, dt);
            round_into(cls, clsh, cls, (size_t)C * DHW, dt);
            for (size_t ni = 0; ni < sizeof RUN_LENGTHS / sizeof RUN_LENGTHS[0]; ni++) {
                const size_t q0 = ni % 3, n = RUN_LENGTHS[ni] < DHW - q0 ? RUN_LENGTHS[ni] : DHW - q0;
                const int mmdet = (int)(ni % 2);
                const yl_decode_src s32 = {reg, obj, cls, DHW, DW, C, 16.0f, mmdet};
                const yl_decode_src s16 = {regh, objh, clsh, DHW, DW, C, 16.0f, mmdet};
                const float floor = ni % 4 == 1 ? 0.3f : -INFINITY;
                const yl_decode_dst da = dst_of(&a, "bsoc", floor), db = dst_of(&b, "bsoc", floor);
                const yl_decode_dst dc = dst_of(&c, "bsoc", floor);
                vec->decode_anchors(&s32, q0, n, &da, YOLOXLOSS_DTYPE_FLOAT32);
                vec->decode_anchors(&s16, q0, n, &db, dt);
                ref->decode_anchors(&s16, q0, n, &dc, dt);
                assert_memory_equal(a.boxes, b.boxes, 4 * n * sizeof(float));
                assert_memory_equal(a.scores, b.scores, n * (size_t)C * sizeof(float));
                assert_memory_equal(a.obj, b.obj, n * sizeof(float));
                assert_memory_equal(a.conf, b.conf, n * sizeof(float));
                assert_memory_equal(a.cls, b.cls, n * sizeof(int32_t));
                expect_decoded_close(&b, &c, n, C, "bsoc");
            }
        }
}

/* More classes than one pass of the vector search counts (YL_CLASS_BLOCK),
 * three passes and a part: lanes whose largest probability is found in a
 * later pass, ties across passes (the first class wins), a NaN after an
 * earlier pass's maximum, and lanes of a tail, on every table against the
 * scalar one (one plain loop) and against the classes set by hand. */
static void test_decode_anchors_class_blocks(void **state) {
    (void)state;
    enum { HWB = 19 }; /* vectors of 16, 8 or 4 lanes and a tail */
    const size_t C = 3 * (size_t)YL_CLASS_BLOCK + 7, B1 = YL_CLASS_BLOCK, B2 = 2 * (size_t)YL_CLASS_BLOCK;
    uint16_t *cls = malloc(C * HWB * sizeof *cls);
    uint16_t reg[4 * HWB] = {0}, obj[HWB] = {0};
    assert_non_null(cls);
    const uint16_t low = yl_f32_to_bf16(-10.0f), two = yl_f32_to_bf16(2.0f), three = yl_f32_to_bf16(3.0f);
    for (size_t i = 0; i < C * HWB; i++) cls[i] = low;
    /* per lane: where its maxima are, and the class that must win */
    const size_t where[HWB][2] = {{3, B1 + 1},      {3, B2 + 5},  {B1 + 2, B2 + 9}, {B1 - 1, B1},
                                  {B2 - 1, B2},     {0, C - 1},   {C - 1, C - 1},   {5, 5},
                                  {B1 + 7, 3},      {B2 + 1, B1}, {7, B1 + 7},      {B1, B2},
                                  {C - 2, 1},       {11, B2 + 11}, {B2, B2},        {2, C - 3},
                                  {B1 + 3, B1 + 3}, {4, B1 + 4},  {B2 + 6, 6}};
    for (size_t q = 0; q < HWB; q++) {
        cls[where[q][0] * HWB + q] = two;
        /* lanes 1, 9, 13: larger later; lane 10: a NaN later; the others tie (or the same class) */
        cls[where[q][1] * HWB + q] = q == 1 || q == 9 || q == 13 ? three : q == 10 ? yl_f32_to_bf16(NAN) : two;
    }
    const yl_decode_src src = {reg, obj, cls, HWB, HWB, (int)C, 8.0f, 0};
    float conf[2][HWB];
    int32_t k[2][HWB];
    for (int t = 0; t < 2; t++) {
        const yl_decode_dst d = {NULL, NULL, NULL, conf[t], k[t], -INFINITY};
        (t ? vec : ref)->decode_anchors(&src, 0, HWB, &d, YOLOXLOSS_DTYPE_BFLOAT16);
    }
    for (size_t q = 0; q < HWB; q++) {
        const int later = q == 1 || q == 9 || q == 10 || q == 13;
        const size_t first = where[q][0] < where[q][1] ? where[q][0] : where[q][1];
        const int32_t want = (int32_t)(later ? where[q][1] : first);
        if (k[0][q] != want || k[1][q] != want)
            fail_msg("lane %zu: classes %d (scalar) and %d (%s), expected %d", q, k[0][q], k[1][q],
                     yoloxloss_isa_name(vec->isa), want);
        if (q == 10) assert_true(isnan(conf[0][q]) && isnan(conf[1][q]));
        expect_close_f(conf[1][q], conf[0][q], "decode_anchors.cls_conf (passes)", q);
    }
    free(cls);
}

/* decode and detect through the API on this table against the scalar
 * table, float32 and mixed 16-bit levels, fused and split. */
static void test_whole_decode(void **state) {
    (void)state;
    tu_rng r = {112};
    const yoloxloss_dtype F32 = YOLOXLOSS_DTYPE_FLOAT32, F16 = YOLOXLOSS_DTYPE_FLOAT16,
                          BF16 = YOLOXLOSS_DTYPE_BFLOAT16;
    const yoloxloss_dtype mixes[4][3] = {{F32, F32, F32}, {F16, BF16, F32}, {BF16, BF16, BF16}, {F16, F16, F16}};
    for (int rep = 0; rep < 4; rep++) {
        ts_scene s;
        ts_scene_make(&s, tu_int(&r, 1, 3), rep == 2 ? 80 : tu_int(&r, 1, 12), 3, 16 + 4 * tu_int(&r, 0, 3), 0,
                      tu_next(&r));
        ts_typed_scene t;
        ts_typed_make(&t, &s, mixes[rep], rep % 2);
        yoloxloss_config cfg;
        ts_config(&s, &cfg, 1);
        cfg.arithmetic = rep % 2 ? YOLOXLOSS_ARITHMETIC_MMDET : YOLOXLOSS_ARITHMETIC_YOLOX;
        yoloxloss_context *cr = create_on(ref, &cfg), *cv = create_on(vec, &cfg);
        size_t A = 0;
        for (int l = 0; l < s.L; l++) A += ts_hw(&s, l);
        const size_t nb = (size_t)s.B * A * 4, ns = (size_t)s.B * A * (size_t)s.C;
        float *br = malloc(nb * sizeof(float)), *bv = malloc(nb * sizeof(float));
        float *sr = malloc(ns * sizeof(float)), *sv = malloc(ns * sizeof(float));
        assert_true(br && bv && sr && sv);
        assert_int_equal(yoloxloss_decode(cr, s.B, t.lv, br, sr), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_decode(cv, s.B, t.lv, bv, sv), YOLOXLOSS_OK);
        for (size_t i = 0; i < nb; i++) expect_close_f(bv[i], br[i], "decode boxes", i);
        for (size_t i = 0; i < ns; i++) expect_close_f(sv[i], sr[i], "decode scores", i);
        yoloxloss_detect_params p;
        yoloxloss_detect_params_defaults(&p);
        p.score_threshold = 0.05f;
        p.max_detections = (int)A;
        yoloxloss_detection *dr = malloc((size_t)s.B * A * sizeof *dr), *dv = malloc((size_t)s.B * A * sizeof *dv);
        int32_t cnt_r[3], cnt_v[3];
        assert_true(dr && dv);
        assert_int_equal(yoloxloss_detect(cr, s.B, t.lv, &p, dr, cnt_r, NULL), YOLOXLOSS_OK);
        assert_int_equal(yoloxloss_detect(cv, s.B, t.lv, &p, dv, cnt_v, NULL), YOLOXLOSS_OK);
        int32_t total = 0;
        for (int b = 0; b < s.B; b++) total += cnt_r[b];
        assert_true(total > 0);
        for (int b = 0; b < s.B; b++) {
            assert_int_equal(cnt_v[b], cnt_r[b]);
            for (int32_t i = 0; i < cnt_r[b]; i++) {
                const yoloxloss_detection *x = &dv[(size_t)b * A + (size_t)i], *y = &dr[(size_t)b * A + (size_t)i];
                assert_int_equal(x->cls, y->cls);
                const float fx[7] = {x->x1, x->y1, x->x2, x->y2, x->obj, x->cls_conf, x->score};
                const float fy[7] = {y->x1, y->y1, y->x2, y->y2, y->obj, y->cls_conf, y->score};
                for (size_t k = 0; k < 7; k++) expect_close_f(fx[k], fy[k], "detection", (size_t)i);
            }
        }
        free(br);
        free(bv);
        free(sr);
        free(sv);
        free(dr);
        free(dv);
        yoloxloss_destroy(cr);
        yoloxloss_destroy(cv);
        ts_typed_free(&t);
        ts_scene_free(&s);
    }
}

/* The tables of isa: the one dispatch picks on this CPU and, where it is
 * another, the ISA's plain table (the AVX-512 one without AVX512_BF16's
 * rounding): both run on this CPU and both must equal scalar. */
static size_t tables_of(yoloxloss_isa isa, const yl_kernels *out[2]) {
    const yl_kernels *plain = isa == YOLOXLOSS_ISA_AVX2     ? &yl_kernels_avx2
                              : isa == YOLOXLOSS_ISA_AVX512 ? &yl_kernels_avx512
                                                            : &yl_kernels_neon;
    out[0] = yl_kernels_select(isa);
    if (out[0] == plain) return 1;
    out[1] = plain;
    return 2;
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
        /* valgrind does not run AVX-512 and clears it from CPUID, so the
         * memcheck run of avx512 lands here on an AVX-512 machine too. */
        printf("NOT TESTED: this build or this CPU (as this process sees it; valgrind hides AVX-512) "
               "has no %s kernels\n", argv[1]);
        return 77;
    }
    ref = yl_kernels_select(YOLOXLOSS_ISA_SCALAR);
    const yl_kernels *tables[2];
    const size_t ntables = tables_of(isa, tables);
    if (isa == YOLOXLOSS_ISA_AVX512 && ntables == 1)
        printf("note: this CPU lacks AVX512_BF16; the avx512 table with its rounding is not tested here\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obj),
        cmocka_unit_test(test_cls),
        cmocka_unit_test(test_assignment_kernels),
        cmocka_unit_test(test_zero),
        cmocka_unit_test(test_whole_loss),
        cmocka_unit_test(test_dtype_store_edges),
        cmocka_unit_test(test_dtype_load_every_pattern),
        cmocka_unit_test(test_dtype_obj),
        cmocka_unit_test(test_dtype_cls),
        cmocka_unit_test(test_dtype_assignment_kernels),
        cmocka_unit_test(test_dtype_zero),
        cmocka_unit_test(test_whole_loss_dtypes),
        cmocka_unit_test(test_decode_anchors),
        cmocka_unit_test(test_dtype_decode_anchors),
        cmocka_unit_test(test_decode_anchors_class_blocks),
        cmocka_unit_test(test_whole_decode),
    };
    int failed = 0;
    for (size_t k = 0; k < ntables; k++) {
        vec = tables[k];
        assert_true(vec && ref && vec->isa == isa);
        printf("== %s table %zu of %zu%s\n", argv[1], k + 1, ntables,
               vec == &yl_kernels_avx512_bf16 ? " (AVX512_BF16's rounding to bfloat16)" : "");
        failed += cmocka_run_group_tests(tests, NULL, NULL);
    }
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
