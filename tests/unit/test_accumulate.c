/* Accumulate mode writes an element only where its gradient is not zero:
 * an element whose added value is +0 or -0 keeps its bits, -0.0 and NaN
 * payloads included (old + 0 and its rounding would turn -0 into +0 and
 * quiet a signalling NaN); every other element becomes round(old + g)
 * (yoloxloss_backward in the header).
 *
 * The kernels first: obj_grad and cls_grad of every table this CPU runs
 * (scalar, and each SIMD one, whose vectors with a zero lane take another
 * path than those without), every dtype, runs of every length up to a few
 * vectors, against the exact expected bits and bitwise against the scalar
 * table on x86-64. Then backward through the API on every ISA, every dtype,
 * fused and split, with whole terms set to zero by the upstream gradient
 * and with single elements whose gradient is exactly zero inside non-zero
 * terms (objectness logits of +100 on foreground and -1000 on background
 * anchors, class logits of -1000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "dispatch.h"
#include "scene_util.h"
#include "simd/kernels.h"

static const yoloxloss_dtype DTYPES[3] = {YOLOXLOSS_DTYPE_FLOAT32, YOLOXLOSS_DTYPE_FLOAT16,
                                          YOLOXLOSS_DTYPE_BFLOAT16};

static const char *dt_name(yoloxloss_dtype dt) {
    return dt == YOLOXLOSS_DTYPE_FLOAT32 ? "float32" : href_name(ts_fmt(dt));
}

static void set_bits(void *buf, yoloxloss_dtype dt, size_t i, uint32_t bits) {
    if (dt == YOLOXLOSS_DTYPE_FLOAT32) {
        const float f = href_float(bits);
        ((float *)buf)[i] = f;
    } else {
        ((uint16_t *)buf)[i] = (uint16_t)bits;
    }
}

/* What a caller's gradient buffer may hold that old + 0 would not keep:
 * -0, a signalling NaN, NaNs with payloads and signs; and ordinary values. */
static uint32_t prefill_bits(yoloxloss_dtype dt, size_t i, tu_rng *r) {
    static const uint32_t f32[4] = {0x80000000u, 0x7f800001u, 0xffc12345u, 0x7fa00000u};
    static const uint32_t f16[4] = {0x8000u, 0x7c01u, 0xfe5au, 0x7d00u};
    static const uint32_t bf16[4] = {0x8000u, 0x7f81u, 0xffc3u, 0x7fa0u};
    const uint32_t *odd = dt == YOLOXLOSS_DTYPE_FLOAT32 ? f32 : dt == YOLOXLOSS_DTYPE_FLOAT16 ? f16 : bf16;
    const size_t k = (i + (size_t)tu_int(r, 0, 2)) % 7;
    return k < 4 ? odd[k] : ts_bits_of(tu_rangef(r, -2, 2), dt);
}

/* One accumulated element: its old bits where the float32 gradient g is
 * zero, else old + g rounded into dt (a NaN sum: any NaN). Returns whether
 * g was zero. */
static int expect_accumulated(uint32_t got, uint32_t old, float g, yoloxloss_dtype dt, const char *what, size_t i) {
    if (g == 0.0f) {
        if (got != old)
            fail_msg("%s[%zu] (%s): its gradient is %g, yet its bits 0x%x became 0x%x", what, i, dt_name(dt),
                     (double)g, old, got);
        return 1;
    }
    const float sum = ts_value_of(old, dt) + g;
    if (isnan(sum)) {
        if (!isnan(ts_value_of(got, dt)))
            fail_msg("%s[%zu] (%s): NaN + %g gave 0x%x", what, i, dt_name(dt), (double)g, got);
        return 0;
    }
    if (got != ts_bits_of(sum, dt))
        fail_msg("%s[%zu] (%s): 0x%x + %g gave 0x%x, not 0x%x", what, i, dt_name(dt), old, (double)g, got,
                 ts_bits_of(sum, dt));
    return 0;
}

/* ---- the kernels ----------------------------------------------------------- */

#define MAXN 70 /* beyond four vectors of the widest table, every tail length */

/* Every table this CPU runs: scalar, and per SIMD ISA the one dispatch
 * picks and, where it is another, the ISA's plain table. */
static size_t cpu_tables(const yl_kernels *out[6]) {
    size_t n = 0;
    out[n++] = yl_kernels_select(YOLOXLOSS_ISA_SCALAR);
    const yoloxloss_isa isas[3] = {YOLOXLOSS_ISA_AVX2, YOLOXLOSS_ISA_AVX512, YOLOXLOSS_ISA_NEON};
    const yl_kernels *plain[3] = {&yl_kernels_avx2, &yl_kernels_avx512, &yl_kernels_neon};
    for (int k = 0; k < 3; k++) {
        if (!yoloxloss_isa_supported(isas[k])) continue;
        out[n++] = yl_kernels_select(isas[k]);
        if (out[n - 1] != plain[k]) out[n++] = plain[k];
    }
    return n;
}

/* x in dt (bits, and the values up-converted into up). */
static void typed_copy(const float *x, void *xt, float *up, size_t n, yoloxloss_dtype dt) {
    for (size_t i = 0; i < n; i++) {
        const uint32_t bits = ts_bits_of(x[i], dt);
        set_bits(xt, dt, i, bits);
        up[i] = ts_value_of(bits, dt);
    }
}

/* After a table's accumulate into g (prefilled with `old`), every element
 * i < len checked against the float32 gradient g32 (zero where untouched),
 * and bitwise against the scalar table's result `want` on x86-64. Returns
 * how many gradients were zero. */
static size_t check_run(const void *g, const uint32_t *old, const float *g32, const void *want, size_t len,
                        yoloxloss_dtype dt, const char *what) {
    size_t zeros = 0;
    for (size_t i = 0; i < len; i++) {
        const uint32_t got = ts_bits_at(g, dt, i);
        zeros += (size_t)expect_accumulated(got, old[i], g32[i], dt, what, i);
#if defined(__x86_64__)
        if (got != ts_bits_at(want, dt, i))
            fail_msg("%s[%zu] (%s): 0x%x, the scalar table's 0x%x", what, i, dt_name(dt), got, ts_bits_at(want, dt, i));
#else
        (void)want;
#endif
    }
    return zeros;
}

static void test_obj_grad_kernels(void **state) {
    (void)state;
    const yl_kernels *tables[6];
    const size_t nt = cpu_tables(tables);
    tu_rng r = {71};
    float x[MAXN], up[MAXN], g32[MAXN];
    uint32_t old[MAXN];
    uint16_t xh[MAXN];
    float xf[MAXN];
    int32_t m[MAXN];
    union {
        float f[MAXN];
        uint16_t h[MAXN];
    } g, want;
    size_t zeros = 0, total = 0;
    for (size_t t = 0; t < nt; t++)
        for (int d = 0; d < 3; d++)
            for (size_t n = 0; n <= MAXN; n++) {
                const yoloxloss_dtype dt = DTYPES[d];
                void *xt = dt == YOLOXLOSS_DTYPE_FLOAT32 ? (void *)xf : (void *)xh;
                for (size_t a = 0; a < n; a++) {
                    /* a third of the anchors with a gradient of exactly 0: sigmoid(100) = 1
                     * on a foreground anchor, sigmoid(-1000) = 0 on a background one */
                    const int kind = tu_int(&r, 0, 5);
                    m[a] = kind == 0 ? 0 : kind == 1 ? -1 : tu_int(&r, 0, 3) == 0 ? 1 : -1;
                    x[a] = kind == 0 ? 100.0f : kind == 1 ? -1000.0f : tu_rangef(&r, -8, 8);
                }
                typed_copy(x, xt, up, n, dt);
                const float scale = n % 2 ? 0.37f : -1.5f; /* -1.5 x (0 - 0) is -0 */
                memset(g32, 0, sizeof g32);
                tables[t]->obj_grad(up, m, n, scale, g32, 0, YOLOXLOSS_DTYPE_FLOAT32);
                for (size_t a = 0; a < MAXN; a++) {
                    old[a] = prefill_bits(dt, a, &r);
                    set_bits(g.f, dt, a, old[a]);
                    set_bits(want.f, dt, a, old[a]);
                    if (a >= n) g32[a] = 0.0f; /* past the run: untouched */
                }
                tables[0]->obj_grad(xt, m, n, scale, want.f, 1, dt);
                tables[t]->obj_grad(xt, m, n, scale, g.f, 1, dt);
                char what[64];
                snprintf(what, sizeof what, "obj_grad %s table %zu, n %zu", yoloxloss_isa_name(tables[t]->isa), t, n);
                zeros += check_run(g.f, old, g32, want.f, MAXN, dt, what) - (MAXN - n);
                total += n;
            }
    printf("obj_grad: %zu tables, %zu of %zu accumulated elements had a zero gradient\n", nt, zeros, total);
    assert_true(zeros > total / 8 && zeros < total);
}

static void test_cls_grad_kernels(void **state) {
    (void)state;
    const yl_kernels *tables[6];
    const size_t nt = cpu_tables(tables);
    tu_rng r = {72};
    const int Cs[] = {1, 7, 16, 17, 65};
    enum { LEN = 65 * 3 };
    float x[LEN], up[LEN], g32[LEN], xf[LEN];
    uint16_t xh[LEN];
    uint32_t old[LEN];
    union {
        float f[LEN];
        uint16_t h[LEN];
    } g, want;
    size_t zeros = 0;
    for (size_t t = 0; t < nt; t++)
        for (int d = 0; d < 3; d++)
            for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
                for (size_t stride = 1; stride <= 3; stride += 2) {
                    const yoloxloss_dtype dt = DTYPES[d];
                    void *xt = dt == YOLOXLOSS_DTYPE_FLOAT32 ? (void *)xf : (void *)xh;
                    const int C = Cs[ci], cls = tu_int(&r, 0, C - 1);
                    const size_t len = (size_t)C * stride;
                    for (size_t q = 0; q < len; q++) x[q] = tu_int(&r, 0, 2) == 0 ? -1000.0f : tu_rangef(&r, -8, 8);
                    /* the target class at sigmoid 1 with t = 1: a zero there too, half the time */
                    const int exact = tu_int(&r, 0, 1);
                    const float target = exact ? 1.0f : tu_rangef(&r, 0, 1);
                    if (exact) x[(size_t)cls * stride] = 100.0f;
                    typed_copy(x, xt, up, len, dt);
                    memset(g32, 0, sizeof g32);
                    tables[t]->cls_grad(up, stride, C, cls, target, 1.7f, g32, 0, YOLOXLOSS_DTYPE_FLOAT32);
                    for (size_t q = 0; q < len; q++) {
                        old[q] = prefill_bits(dt, q, &r);
                        set_bits(g.f, dt, q, old[q]);
                        set_bits(want.f, dt, q, old[q]);
                    }
                    tables[0]->cls_grad(xt, stride, C, cls, target, 1.7f, want.f, 1, dt);
                    tables[t]->cls_grad(xt, stride, C, cls, target, 1.7f, g.f, 1, dt);
                    char what[80];
                    snprintf(what, sizeof what, "cls_grad %s table %zu, C %d stride %zu",
                             yoloxloss_isa_name(tables[t]->isa), t, C, stride);
                    /* between the logits (stride 3) g32 is 0: those must stay as they were */
                    zeros += check_run(g.f, old, g32, want.f, len, dt, what);
                }
    assert_true(zeros > 0);
}

/* ---- backward through the API -------------------------------------------- */

/* The small scene with objectness logits of +100 and -1000 and class
 * logits of -1000 on some anchors: whichever anchors end up foreground,
 * some elements get a gradient of exactly 0 within non-zero terms. */
static void extreme_logits(ts_scene *s) {
    for (int l = 0; l < s->L; l++)
        for (int b = 0; b < s->B; b++)
            for (int i = 0; i < s->lv[l].height; i++)
                for (int j = 0; j < s->lv[l].width; j++) {
                    const int k = (i * s->lv[l].width + j + b) % 3;
                    if (k == 0) *ts_at(s, l, b, 4, i, j) = 100.0f;
                    if (k == 1) *ts_at(s, l, b, 4, i, j) = -1000.0f;
                    for (int c = 0; c < s->C; c++)
                        if ((c + i + j) % 2 == 0) *ts_at(s, l, b, 5 + c, i, j) = -1000.0f;
                }
    ts_scene_sync_split(s);
}

/* Accumulate on `isa` into typed buffers prefilled with prefill_bits, then
 * every element against the float32 overwrite gradient of the same step
 * (s->grad): untouched where it is zero, round(old + g) elsewhere. Returns
 * the counts of untouched and written elements. */
static void accumulate_case(ts_scene *s, yoloxloss_isa isa, const yoloxloss_dtype *dts, int split,
                            const yoloxloss_upstream *up, size_t counts[2], tu_rng *r) {
    ts_typed_scene t;
    ts_typed_make(&t, s, dts, split);
    yoloxloss_config cfg;
    ts_config(s, &cfg, 1 + split);
    cfg.isa = isa;
    yoloxloss_context *c32 = ts_create_ok(&cfg), *ct = ts_create_ok(&cfg);
    yoloxloss_losses l32, lt;
    assert_int_equal(yoloxloss_forward(c32, &s->batch, &l32), YOLOXLOSS_OK);
    assert_int_equal(yoloxloss_forward(ct, &t.batch, &lt), YOLOXLOSS_OK);
    assert_true(ts_losses_equal(&l32, &lt));
    assert_int_equal(yoloxloss_backward(c32, s->g, up, 0), YOLOXLOSS_OK);
    uint32_t *old[TS_MAX_LEVELS];
    for (int l = 0; l < s->L; l++) {
        old[l] = malloc(s->elems[l] * sizeof(uint32_t));
        assert_non_null(old[l]);
        for (size_t i = 0; i < s->elems[l]; i++) {
            int part;
            const size_t at = ts_typed_locate(&t, s, l, i, &part);
            old[l][i] = prefill_bits(t.dtype[l], i, r);
            set_bits(t.grad[l][part], t.dtype[l], at, old[l][i]);
        }
    }
    assert_int_equal(yoloxloss_backward(ct, t.g, up, 1), YOLOXLOSS_OK);
    for (int l = 0; l < s->L; l++) {
        char what[96];
        snprintf(what, sizeof what, "backward on %s, %s, level %d", yoloxloss_isa_name(isa),
                 split ? "split" : "fused", l);
        for (size_t i = 0; i < s->elems[l]; i++) {
            const int zero = expect_accumulated(ts_typed_grad_bits(&t, s, l, i), old[l][i], s->grad[l][i],
                                                t.dtype[l], what, i);
            counts[zero ? 0 : 1]++;
        }
        free(old[l]);
    }
    yoloxloss_destroy(c32);
    yoloxloss_destroy(ct);
    ts_typed_free(&t);
}

static void test_backward_accumulate(void **state) {
    (void)state;
    tu_rng r = {73};
    /* the box and L1 terms only (no obj, no cls: obj planes are skipped);
     * the objectness term only (reg and cls add zeros everywhere); all */
    const yoloxloss_upstream box_only = {0.0f, 1.0f, 0.0f, 0.0f, 1.0f}, obj_only = {0.0f, 0.0f, 1.0f, 0.0f, 0.0f},
                             all = {1.0f, 0.5f, -2.0f, 3.0f, 0.25f};
    const yoloxloss_upstream *ups[3] = {&box_only, &obj_only, &all};
    const yoloxloss_isa isas[4] = {YOLOXLOSS_ISA_SCALAR, YOLOXLOSS_ISA_AVX2, YOLOXLOSS_ISA_AVX512,
                                   YOLOXLOSS_ISA_NEON};
    size_t counts[2] = {0, 0};
    int runs = 0;
    for (int k = 0; k < 4; k++) {
        if (!yoloxloss_isa_supported(isas[k])) {
            printf("backward accumulate: %s not on this CPU, not tested here\n", yoloxloss_isa_name(isas[k]));
            continue;
        }
        for (int d = 0; d < 3; d++)
            for (int split = 0; split <= 1; split++)
                for (int u = 0; u < 3; u++) {
                    ts_scene s;
                    ts_scene_make_small(&s, 2, 40 + (uint64_t)u);
                    extreme_logits(&s);
                    const yoloxloss_dtype dts[TS_MAX_LEVELS] = {DTYPES[d], DTYPES[(d + 1) % 3], DTYPES[d],
                                                                DTYPES[d]};
                    accumulate_case(&s, isas[k], dts, split, ups[u], counts, &r);
                    ts_scene_free(&s);
                    runs++;
                }
    }
    printf("backward accumulate: %d runs, %zu elements untouched, %zu written\n", runs, counts[0], counts[1]);
    assert_true(counts[0] > 0 && counts[1] > 0);
}

/* Within non-zero terms: an objectness logit of +100 on a foreground anchor
 * and of -1000 on a background one give an obj gradient of exactly 0, a
 * class logit of -1000 on a non-target class of a foreground anchor a class
 * gradient of exactly 0; those elements keep -0.0 (and NaN) in float32
 * while their neighbours in the same planes are written. */
static void test_zero_elements_in_nonzero_terms(void **state) {
    (void)state;
    ts_scene s;
    ts_scene_make_small(&s, 2, 44);
    extreme_logits(&s);
    yoloxloss_config cfg;
    ts_config(&s, &cfg, 1);
    yoloxloss_context *ctx = ts_create_ok(&cfg);
    yoloxloss_losses l;
    assert_int_equal(yoloxloss_forward(ctx, &s.batch, &l), YOLOXLOSS_OK);
    ts_small_assignment as;
    ts_get_assignment(ctx, &as);
    for (int lv = 0; lv < s.L; lv++)
        for (size_t i = 0; i < s.elems[lv]; i++) s.grad[lv][i] = -0.0f;
    assert_int_equal(yoloxloss_backward(ctx, s.g, NULL, 1), YOLOXLOSS_OK);
    int kept_obj = 0, written_obj = 0, kept_cls = 0;
    for (int b = 0; b < s.B; b++)
        for (int a = 0; a < TS_SMALL_ANCHORS; a++) {
            int lv, i, j;
            ts_anchor_pos(&s, a, &lv, &i, &j);
            const int32_t g = as.matched[b * TS_SMALL_ANCHORS + a];
            const float x = *ts_at(&s, lv, b, 4, i, j), got = s.grad[lv][ts_index(&s, lv, b, 4, i, j)];
            const int zero = (g >= 0 && x == 100.0f) || (g < 0 && x == -1000.0f);
            if (zero) {
                if (!(got == 0.0f && signbit(got)))
                    fail_msg("image %d anchor %d: obj gradient -0 became %a", b, a, (double)got);
                kept_obj++;
            } else if (got != 0.0f) {
                written_obj++;
            }
            if (g < 0) continue;
            const int cls = s.classes[ts_first_gt_row(&s, b) + g];
            for (int c = 0; c < s.C; c++) {
                const float xc = *ts_at(&s, lv, b, 5 + c, i, j), gc = s.grad[lv][ts_index(&s, lv, b, 5 + c, i, j)];
                if (c != cls && xc == -1000.0f) {
                    if (!(gc == 0.0f && signbit(gc)))
                        fail_msg("image %d anchor %d class %d: -0 became %a", b, a, c, (double)gc);
                    kept_cls++;
                }
            }
        }
    printf("obj: %d kept, %d written; cls: %d kept\n", kept_obj, written_obj, kept_cls);
    assert_true(kept_obj > 0 && written_obj > 0 && kept_cls > 0);
    yoloxloss_destroy(ctx);
    ts_scene_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obj_grad_kernels),
        cmocka_unit_test(test_cls_grad_kernels),
        cmocka_unit_test(test_backward_accumulate),
        cmocka_unit_test(test_zero_elements_in_nonzero_terms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
