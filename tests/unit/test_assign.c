/* yl_assign_image on tiny synthetic images: candidate sets, geometry,
 * penalties, and a brute-force recomputation from the specification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "assign.h"
#include "test_util.h"

#define C 3
#define MAXL 2

/* Level 0: 4x4, stride 8; level 1: 2x2, stride 16 (a 32x32 image). */
typedef struct {
    int nl;
    int H[MAXL], W[MAXL];
    float s[MAXL];
    float reg[MAXL][4 * 16], obj[MAXL][16], cls[MAXL][C * 16];
    yl_level_view v[MAXL];
    int64_t A;
} scene;

static void scene_init(scene *sc, int nl) {
    memset(sc, 0, sizeof *sc);
    sc->nl = nl;
    const int H[2] = {4, 2};
    const float s[2] = {8.0f, 16.0f};
    int64_t off = 0;
    for (int l = 0; l < nl; l++) {
        sc->H[l] = sc->W[l] = H[l];
        sc->s[l] = s[l];
        yl_level_view *v = &sc->v[l];
        v->reg = sc->reg[l];
        v->obj = sc->obj[l];
        v->cls = sc->cls[l];
        v->hw = (size_t)(H[l] * H[l]);
        v->height = v->width = H[l];
        v->stride = s[l];
        v->anchor_offset = off;
        off += (int64_t)v->hw;
    }
    sc->A = off;
}

static void scene_random(scene *sc, tu_rng *r) {
    for (int l = 0; l < sc->nl; l++) {
        int hw = sc->H[l] * sc->W[l];
        for (int q = 0; q < hw; q++) {
            sc->reg[l][q] = tu_rangef(r, -0.3, 1.3);
            sc->reg[l][hw + q] = tu_rangef(r, -0.3, 1.3);
            sc->reg[l][2 * hw + q] = tu_rangef(r, l == 0 ? -0.5 : -1.0, l == 0 ? 1.5 : 1.0);
            sc->reg[l][3 * hw + q] = tu_rangef(r, l == 0 ? -0.5 : -1.0, l == 0 ? 1.5 : 1.0);
            sc->obj[l][q] = tu_rangef(r, -3, 3);
            for (int k = 0; k < C; k++) sc->cls[l][k * hw + q] = tu_rangef(r, -4, 4);
        }
    }
}

/* Sets every anchor's regression so that its decoded box is exactly b. */
static void scene_all_pred(scene *sc, const float b[4]) {
    for (int l = 0; l < sc->nl; l++) {
        int hw = sc->H[l] * sc->W[l];
        float s = sc->s[l];
        float tw = tu_exact_log(b[2], s), th = tu_exact_log(b[3], s);
        assert_false(isnan(tw));
        assert_false(isnan(th));
        for (int i = 0; i < sc->H[l]; i++)
            for (int j = 0; j < sc->W[l]; j++) {
                int q = i * sc->W[l] + j;
                sc->reg[l][q] = b[0] / s - (float)j;
                sc->reg[l][hw + q] = b[1] / s - (float)i;
                sc->reg[l][2 * hw + q] = tw;
                sc->reg[l][3 * hw + q] = th;
                yl_box d = yl_decode(tu_math(), sc->reg[l][q], sc->reg[l][hw + q], tw, th, i, j, s, YOLOXLOSS_ARITHMETIC_YOLOX);
                assert_true(d.x == b[0] && d.y == b[1] && d.w == b[2] && d.h == b[3]);
            }
    }
}

static yl_assign_params params(yoloxloss_assigner a, float radius, float penalty, int topk) {
    yl_assign_params p;
    memset(&p, 0, sizeof p);
    p.assigner = a;
    p.center_radius = radius;
    p.penalty = penalty;
    p.iou_eps = 1e-8f;
    p.topk = topk;
    p.iou_cost_weight = 3.0f;
    p.cls_cost_weight = 1.0f;
    p.num_classes = C;
    p.kernels = tu_scalar_kernels();
    return p;
}

typedef struct {
    int32_t matched[64];
    float pred_iou[64];
    int32_t dk[8];
    int64_t n_fg;
} result;

static void run_assign(const scene *sc, const yl_assign_params *p, int n_gt, const float *boxes,
                       const int32_t *classes, result *out) {
    yl_assign_scratch scratch;
    memset(&scratch, 0, sizeof scratch);
    for (int a = 0; a < 64; a++) {
        out->matched[a] = 999;
        out->pred_iou[a] = -5.0f;
    }
    for (int g = 0; g < 8; g++) out->dk[g] = -9;
    out->n_fg = yl_assign_image(p, sc->v, sc->nl, sc->A, n_gt, boxes, classes, &scratch, out->matched,
                                out->pred_iou, out->dk);
    /* the scratch can be reused: a second run gives the same answer */
    result again;
    for (int a = 0; a < 64; a++) again.matched[a] = 777;
    again.n_fg = yl_assign_image(p, sc->v, sc->nl, sc->A, n_gt, boxes, classes, &scratch, again.matched,
                                 again.pred_iou, again.dk);
    assert_true(again.n_fg == out->n_fg);
    assert_memory_equal(again.matched, out->matched, (size_t)sc->A * sizeof(int32_t));
    yl_assign_scratch_free(&scratch);
}

/* Every anchor in want_fg is matched to gt 0 with IoU 1; every other is -1. */
static void expect_exact_set(const scene *sc, const result *res, const int *want_fg, int n_want) {
    int want[64] = {0};
    for (int i = 0; i < n_want; i++) want[want_fg[i]] = 1;
    for (int64_t a = 0; a < sc->A; a++) {
        if (want[a]) {
            if (res->matched[a] != 0) fail_msg("anchor %lld: matched %d, expected 0", (long long)a, res->matched[a]);
            TU_ASSERT_CLOSE(res->pred_iou[a], 1.0, 0, 0);
        } else {
            if (res->matched[a] != -1) fail_msg("anchor %lld: matched %d, expected -1", (long long)a, res->matched[a]);
            assert_true(res->pred_iou[a] == 0.0f);
        }
    }
    assert_int_equal(res->n_fg, n_want);
}

static void test_zero_gts(void **state) {
    (void)state;
    scene sc;
    scene_init(&sc, 2);
    tu_rng r = {1};
    scene_random(&sc, &r);
    yl_assign_params p = params(YOLOXLOSS_ASSIGNER_YOLOX, 1.5f, 1e6f, 10);
    result res;
    run_assign(&sc, &p, 0, NULL, NULL, &res);
    assert_int_equal(res.n_fg, 0);
    for (int64_t a = 0; a < sc.A; a++) {
        assert_int_equal(res.matched[a], -1);
        assert_true(res.pred_iou[a] == 0.0f);
    }
}

/* gt centre (16, 16) on a grid line of level 0: anchor centres 4, 12, 20, 28.
 * |xc - 16| < 1.5 * 8 = 12 keeps 12 and 20 only; 4 and 28 lie exactly on the
 * edge and are excluded. On level 1 (centres 8, 24) all four are within 24.
 * Every pred box equals the gt, so every candidate has IoU exactly 1, k equals
 * the number of candidates, and the fg set is the candidate set. */
static void test_candidates_yolox_edge_excluded(void **state) {
    (void)state;
    scene sc;
    scene_init(&sc, 2);
    const float gt[4] = {16, 16, 16, 16};
    scene_all_pred(&sc, gt);
    const int32_t cls[1] = {1};
    yl_assign_params p = params(YOLOXLOSS_ASSIGNER_YOLOX, 1.5f, 1e6f, 10);
    result res;
    run_assign(&sc, &p, 1, gt, cls, &res);
    const int want[] = {5, 6, 9, 10, 16, 17, 18, 19};
    expect_exact_set(&sc, &res, want, 8);
    assert_int_equal(res.dk[0], 8);

    /* same gt, radius 2.5: level 0 keeps |xc - 16| < 20, i.e. all four centres */
    yl_assign_params p25 = params(YOLOXLOSS_ASSIGNER_YOLOX, 2.5f, 1e6f, 30);
    run_assign(&sc, &p25, 1, gt, cls, &res);
    int all[20];
    for (int a = 0; a < 20; a++) all[a] = a;
    expect_exact_set(&sc, &res, all, 20);
    assert_int_equal(res.dk[0], 20);

    /* off-grid centre (13, 13): level 0 keeps 4, 12, 20 (distances 9, 1, 7) and
     * drops 28 (15); level 1 keeps both (5, 11 < 24). 13 candidates. */
    const float gt2[4] = {13, 13, 16, 16};
    scene_all_pred(&sc, gt2);
    yl_assign_params p20 = params(YOLOXLOSS_ASSIGNER_YOLOX, 1.5f, 1e6f, 20);
    run_assign(&sc, &p20, 1, gt2, cls, &res);
    const int want2[] = {0, 1, 2, 4, 5, 6, 8, 9, 10, 16, 17, 18, 19};
    expect_exact_set(&sc, &res, want2, 13);
    assert_int_equal(res.dk[0], 13);
    /* topk 10 sums only ten IoUs of 1 -> k = 10 of the 13 */
    run_assign(&sc, &p, 1, gt2, cls, &res);
    assert_int_equal(res.dk[0], 10);
    assert_int_equal(res.n_fg, 10);
}

/* Legacy rule, gt (4, 4, 64, 8) = box [-28, 36] x [0, 8]:
 * level 0, centre box r = 2.5 (20 px): cols/rows with centre < 24 -> 0..2;
 * in box: all columns, row 0 only (yc = 4). Candidates: the 3x3 block plus
 * (0, 3) = anchor 3, which is outside the centre box. Level 1 (40 px): all.
 * geometry = in box AND in centre box: level 0 anchors 0, 1, 2 only (level 1
 * row 0 has yc = 8, on the box's bottom edge: 8 - 8 = 0 is not > 0). */
static void test_candidates_legacy_in_box(void **state) {
    (void)state;
    scene sc;
    scene_init(&sc, 2);
    const float gt[4] = {4, 4, 64, 8};
    scene_all_pred(&sc, gt);
    const int32_t cls[1] = {0};
    yl_assign_params p = params(YOLOXLOSS_ASSIGNER_YOLOX_LEGACY, 2.5f, 1e5f, 20);
    result res;
    run_assign(&sc, &p, 1, gt, cls, &res);
    const int want[] = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 16, 17, 18, 19};
    expect_exact_set(&sc, &res, want, 14);
    assert_int_equal(res.dk[0], 14);

    /* the current rule with the same radius has no in-box candidates: anchor 3 drops out */
    yl_assign_params q = params(YOLOXLOSS_ASSIGNER_YOLOX, 2.5f, 1e6f, 20);
    run_assign(&sc, &q, 1, gt, cls, &res);
    const int want_q[] = {0, 1, 2, 4, 5, 6, 8, 9, 10, 16, 17, 18, 19};
    expect_exact_set(&sc, &res, want_q, 13);

    /* geometry: with k = 3 the three unpenalised anchors 0, 1, 2 win (all
     * costs otherwise equal: same logits everywhere, IoU 1) */
    yl_assign_params p3 = params(YOLOXLOSS_ASSIGNER_YOLOX_LEGACY, 2.5f, 1e5f, 3);
    run_assign(&sc, &p3, 1, gt, cls, &res);
    assert_int_equal(res.dk[0], 3);
    const int want3[] = {0, 1, 2};
    expect_exact_set(&sc, &res, want3, 3);
    /* k = 5 exceeds the geometry: two penalised anchors are taken, the
     * lowest-index ones of equal cost: 3 (in box only) and 4 (centre only) */
    yl_assign_params p5 = params(YOLOXLOSS_ASSIGNER_YOLOX_LEGACY, 2.5f, 1e5f, 5);
    run_assign(&sc, &p5, 1, gt, cls, &res);
    assert_int_equal(res.dk[0], 5);
    const int want5[] = {0, 1, 2, 3, 4};
    expect_exact_set(&sc, &res, want5, 5);
}

static void test_gt_outside_image(void **state) {
    (void)state;
    scene sc;
    scene_init(&sc, 2);
    tu_rng r = {3};
    scene_random(&sc, &r);
    const float far[4] = {1000, 1000, 10, 10};
    const int32_t cls[2] = {2, 0};
    for (int legacy = 0; legacy < 2; legacy++) {
        yl_assign_params p = legacy ? params(YOLOXLOSS_ASSIGNER_YOLOX_LEGACY, 2.5f, 1e5f, 10)
                                    : params(YOLOXLOSS_ASSIGNER_YOLOX, 1.5f, 1e6f, 10);
        result res;
        run_assign(&sc, &p, 1, far, cls, &res);
        assert_int_equal(res.n_fg, 0);
        assert_int_equal(res.dk[0], 0);
        for (int64_t a = 0; a < sc.A; a++) {
            assert_int_equal(res.matched[a], -1);
            assert_true(res.pred_iou[a] == 0.0f);
        }
        /* left of the image, near but outside every centre box: x < -1.5 * 16 - 8 */
        const float left[4] = {-60, 10, 20, 20};
        run_assign(&sc, &p, 1, left, cls, &res);
        assert_int_equal(res.n_fg, 0);
        assert_int_equal(res.dk[0], 0);
    }
}

/* ---- brute force -------------------------------------------------------- */

static float sigf(float x) { return 1.0f / (1.0f + tu_expf(-x)); }

static int inside_f(float xc, float yc, float cx, float cy, float hx, float hy) {
    return xc - (cx - hx) > 0.0f && (cx + hx) - xc > 0.0f && yc - (cy - hy) > 0.0f && (cy + hy) - yc > 0.0f;
}

/* IoU in float32, the spec's formula and order (no epsilon). */
static float iou_f(const float g[4], const float b[4]) {
    float tlx = fmaxf(g[0] - g[2] / 2.0f, b[0] - b[2] / 2.0f), tly = fmaxf(g[1] - g[3] / 2.0f, b[1] - b[3] / 2.0f);
    float brx = fminf(g[0] + g[2] / 2.0f, b[0] + b[2] / 2.0f), bry = fminf(g[1] + g[3] / 2.0f, b[1] + b[3] / 2.0f);
    float en = (tlx < brx && tly < bry) ? 1.0f : 0.0f;
    float inter = (brx - tlx) * (bry - tly) * en;
    return inter / (g[2] * g[3] + b[2] * b[3] - inter);
}

/* MMDetection's bbox_overlaps in float32, written from its code: corners
 * first, areas from the corners, the extents clamped at 0, the union at
 * least 1e-6. */
static float iou_mmdet_f(const float g[4], const float b[4]) {
    float g1x = g[0] - g[2] / 2.0f, g1y = g[1] - g[3] / 2.0f, g2x = g[0] + g[2] / 2.0f, g2y = g[1] + g[3] / 2.0f;
    float b1x = b[0] - b[2] / 2.0f, b1y = b[1] - b[3] / 2.0f, b2x = b[0] + b[2] / 2.0f, b2y = b[1] + b[3] / 2.0f;
    float wx = fminf(b2x, g2x) - fmaxf(b1x, g1x), wy = fminf(b2y, g2y) - fmaxf(b1y, g1y);
    float overlap = (wx > 0.0f ? wx : 0.0f) * (wy > 0.0f ? wy : 0.0f);
    float uni = (b2x - b1x) * (b2y - b1y) + (g2x - g1x) * (g2y - g1y) - overlap;
    return overlap / fmaxf(uni, 1e-6f);
}

static void brute_force(const scene *sc, const yl_assign_params *p, int n_gt, const float *gts,
                        const int32_t *classes, result *out) {
    const int legacy = p->assigner == YOLOXLOSS_ASSIGNER_YOLOX_LEGACY;
    const int mmdet = p->arithmetic == YOLOXLOSS_ARITHMETIC_MMDET;
    const int offset = legacy || mmdet; /* anchor centres j s + 0.5 s */
    int cand[64], n_cand = 0, lvl[64], ii[64], jj[64];
    for (int a = 0; a < 64; a++) {
        out->matched[a] = -1;
        out->pred_iou[a] = 0.0f;
    }
    int64_t a = 0;
    for (int l = 0; l < sc->nl; l++)
        for (int i = 0; i < sc->H[l]; i++)
            for (int j = 0; j < sc->W[l]; j++, a++) {
                float s = sc->s[l];
                float xc = offset ? (float)j * s + 0.5f * s : ((float)j + 0.5f) * s;
                float yc = offset ? (float)i * s + 0.5f * s : ((float)i + 0.5f) * s;
                int any = 0;
                for (int g = 0; g < n_gt; g++) {
                    const float *b = gts + 4 * g;
                    float rs = p->center_radius * s;
                    if (inside_f(xc, yc, b[0], b[1], rs, rs)) any = 1;
                    if (legacy && inside_f(xc, yc, b[0], b[1], 0.5f * b[2], 0.5f * b[3])) any = 1;
                }
                if (any) {
                    cand[n_cand] = (int)a;
                    lvl[n_cand] = l;
                    ii[n_cand] = i;
                    jj[n_cand] = j;
                    n_cand++;
                }
            }
    if (n_cand == 0) {
        for (int g = 0; g < n_gt; g++) out->dk[g] = 0;
        out->n_fg = 0;
        return;
    }
    float *iou = malloc((size_t)(n_gt * n_cand) * sizeof *iou);
    float *cost = malloc((size_t)(n_gt * n_cand) * sizeof *cost);
    for (int c = 0; c < n_cand; c++) {
        int l = lvl[c], i = ii[c], j = jj[c], hw = sc->H[l] * sc->W[l], q = i * sc->W[l] + j;
        float s = sc->s[l];
        float box[4] = {(sc->reg[l][q] + (float)j) * s, (sc->reg[l][hw + q] + (float)i) * s,
                        tu_expf(sc->reg[l][2 * hw + q]) * s, tu_expf(sc->reg[l][3 * hw + q]) * s};
        if (mmdet) { /* MMDetection decodes tx s + j s */
            box[0] = sc->reg[l][q] * s + (float)j * s;
            box[1] = sc->reg[l][hw + q] * s + (float)i * s;
        }
        float so = sigf(sc->obj[l][q]);
        float xc = offset ? (float)j * s + 0.5f * s : ((float)j + 0.5f) * s;
        float yc = offset ? (float)i * s + 0.5f * s : ((float)i + 0.5f) * s;
        for (int g = 0; g < n_gt; g++) {
            const float *b = gts + 4 * g;
            float u = mmdet ? iou_mmdet_f(b, box) : iou_f(b, box);
            iou[g * n_cand + c] = u;
            /* direct sum over classes of BCE(p_k, [k == class]) */
            double cc = 0;
            for (int k = 0; k < C; k++) {
                float pk = sqrtf(sigf(sc->cls[l][k * hw + q]) * so);
                float bce = k == classes[g] ? -fmaxf(tu_logf(pk), -100.0f) : -fmaxf(tu_logf(1.0f - pk), -100.0f);
                cc += bce;
            }
            float rs = p->center_radius * s;
            int geom = inside_f(xc, yc, b[0], b[1], rs, rs);
            if (legacy) geom = geom && inside_f(xc, yc, b[0], b[1], 0.5f * b[2], 0.5f * b[3]);
            float cst = 1.0f * (float)cc + 3.0f * -tu_logf(u + p->iou_eps);
            if (!geom) cst += p->penalty;
            cost[g * n_cand + c] = cst;
        }
    }
    int32_t match[64];
    tu_ref_match(n_gt, n_cand, iou, cost, p->topk, out->dk, match);
    out->n_fg = 0;
    for (int c = 0; c < n_cand; c++) {
        if (match[c] < 0) continue;
        out->matched[cand[c]] = match[c];
        out->pred_iou[cand[c]] = iou[match[c] * n_cand + c];
        out->n_fg++;
    }
    free(iou);
    free(cost);
}

/* 600 random scenes against the brute force. mmdet_constants: MMDetection's
 * arithmetic, and cost constants other than the defaults (its eps 1e-7 and
 * penalty 1e5, or others), under both rules; else the defaults. */
static void random_vs_bruteforce(uint64_t seed, int mmdet_constants) {
    tu_rng r = {seed};
    int total_fg = 0, conflicts_seen = 0;
    for (int it = 0; it < 600; it++) {
        scene sc;
        scene_init(&sc, it % 5 == 0 ? 1 : 2);
        scene_random(&sc, &r);
        int legacy = it % 2;
        yl_assign_params p = legacy ? params(YOLOXLOSS_ASSIGNER_YOLOX_LEGACY, 2.5f, 1e5f, 10)
                                    : params(YOLOXLOSS_ASSIGNER_YOLOX, 1.5f, 1e6f, 10);
        if (it % 7 == 3) p.topk = tu_int(&r, 1, 4);
        if (mmdet_constants) {
            p.arithmetic = YOLOXLOSS_ARITHMETIC_MMDET;
            p.iou_eps = it % 3 == 0 ? 1e-3f : 1e-7f;
            p.penalty = it % 4 == 0 ? 30.0f : 1e5f; /* a penalty that does not swamp the costs */
        }
        int n_gt = tu_int(&r, 1, 5);
        float gts[20];
        int32_t cls[5];
        for (int g = 0; g < n_gt; g++) {
            if (tu_unif(&r) < 0.3) { /* centre on the grid lines of level 0 */
                gts[4 * g] = 4.0f * (float)tu_int(&r, 0, 8);
                gts[4 * g + 1] = 4.0f * (float)tu_int(&r, 0, 8);
            } else {
                gts[4 * g] = tu_rangef(&r, -6, 38);
                gts[4 * g + 1] = tu_rangef(&r, -6, 38);
            }
            gts[4 * g + 2] = tu_rangef(&r, 3, 40);
            gts[4 * g + 3] = tu_rangef(&r, 3, 40);
            cls[g] = tu_int(&r, 0, C - 1);
        }
        result got, want;
        run_assign(&sc, &p, n_gt, gts, cls, &got);
        brute_force(&sc, &p, n_gt, gts, cls, &want);
        assert_true(got.n_fg == want.n_fg);
        for (int g = 0; g < n_gt; g++)
            if (got.dk[g] != want.dk[g]) fail_msg("it %d gt %d: dynamic_k %d, expected %d", it, g, got.dk[g], want.dk[g]);
        int taken_by[8] = {0};
        for (int64_t a = 0; a < sc.A; a++) {
            if (got.matched[a] != want.matched[a])
                fail_msg("it %d anchor %lld: matched %d, expected %d", it, (long long)a, got.matched[a],
                         want.matched[a]);
            TU_ASSERT_NEAR_CTX(got.pred_iou[a], want.pred_iou[a], 0.0, "it %d anchor %lld", it, (long long)a);
            if (got.matched[a] >= 0) taken_by[got.matched[a]]++;
        }
        /* pred_iou equals the pair IoU of the decoded box with the matched gt (double) */
        int64_t a = 0;
        for (int l = 0; l < sc.nl; l++)
            for (int i = 0; i < sc.H[l]; i++)
                for (int j = 0; j < sc.W[l]; j++, a++) {
                    if (got.matched[a] < 0) continue;
                    int hw = sc.H[l] * sc.W[l], q = i * sc.W[l] + j;
                    double s = sc.s[l];
                    double pb[4] = {(sc.reg[l][q] + j) * s, (sc.reg[l][hw + q] + i) * s,
                                    exp(sc.reg[l][2 * hw + q]) * s, exp(sc.reg[l][3 * hw + q]) * s};
                    double gb[4] = {gts[4 * got.matched[a]], gts[4 * got.matched[a] + 1], gts[4 * got.matched[a] + 2],
                                    gts[4 * got.matched[a] + 3]};
                    TU_ASSERT_NEAR_CTX(got.pred_iou[a], tu_iou_d(gb, pb), 2e-5, "it %d anchor %lld", it,
                                       (long long)a);
                }
        for (int g = 0; g < n_gt; g++)
            if (taken_by[g] < got.dk[g]) conflicts_seen++;
        total_fg += (int)got.n_fg;
    }
    /* the random cases do exercise matching and conflicts */
    assert_true(total_fg > 1000);
    assert_true(conflicts_seen > 10);
}

static void test_random_vs_bruteforce(void **state) {
    (void)state;
    random_vs_bruteforce(4242, 0);
}

static void test_random_vs_bruteforce_mmdet_constants(void **state) {
    (void)state;
    random_vs_bruteforce(5151, 1);
}

/* Two gts, one far outside: the outside gt has no IoU anywhere but still
 * gets k = 1 and takes its cheapest (penalised) candidate, as the
 * reference does. Checked against the brute force. */
static void test_outside_gt_with_other_gt(void **state) {
    (void)state;
    scene sc;
    scene_init(&sc, 2);
    tu_rng r = {77};
    scene_random(&sc, &r);
    const float gts[8] = {16, 16, 20, 20, 500, -400, 10, 10};
    const int32_t cls[2] = {1, 2};
    for (int legacy = 0; legacy < 2; legacy++) {
        yl_assign_params p = legacy ? params(YOLOXLOSS_ASSIGNER_YOLOX_LEGACY, 2.5f, 1e5f, 10)
                                    : params(YOLOXLOSS_ASSIGNER_YOLOX, 1.5f, 1e6f, 10);
        result got, want;
        run_assign(&sc, &p, 2, gts, cls, &got);
        brute_force(&sc, &p, 2, gts, cls, &want);
        assert_int_equal(got.dk[1], 1);
        assert_int_equal(got.dk[0], want.dk[0]);
        assert_true(got.n_fg == want.n_fg);
        assert_memory_equal(got.matched, want.matched, (size_t)sc.A * sizeof(int32_t));
        assert_true(got.n_fg >= 1);
    }
}

/* The config's cost constants and arithmetic reach the assigner: a
 * penalty of 0 is the rule's own (1e6 current, 1e5 legacy), another value
 * is taken as it is; the eps and the arithmetic pass through. */
static void test_params_from_config(void **state) {
    (void)state;
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    yl_assign_params p = yl_assign_params_for(&cfg, tu_scalar_kernels());
    assert_true(p.penalty == 1e6f && p.iou_eps == 1e-8f && p.center_radius == 1.5f);
    assert_int_equal(p.arithmetic, YOLOXLOSS_ARITHMETIC_YOLOX);
    cfg.assigner = YOLOXLOSS_ASSIGNER_YOLOX_LEGACY;
    p = yl_assign_params_for(&cfg, tu_scalar_kernels());
    assert_true(p.penalty == 1e5f && p.center_radius == 2.5f);
    cfg.cost_penalty = 123.5f;
    cfg.cost_iou_eps = 1e-7f;
    cfg.arithmetic = YOLOXLOSS_ARITHMETIC_MMDET;
    p = yl_assign_params_for(&cfg, tu_scalar_kernels());
    assert_true(p.penalty == 123.5f && p.iou_eps == 1e-7f);
    assert_int_equal(p.arithmetic, YOLOXLOSS_ARITHMETIC_MMDET);
    cfg.assigner = YOLOXLOSS_ASSIGNER_YOLOX;
    assert_true(yl_assign_params_for(&cfg, tu_scalar_kernels()).penalty == 123.5f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_gts),
        cmocka_unit_test(test_candidates_yolox_edge_excluded),
        cmocka_unit_test(test_candidates_legacy_in_box),
        cmocka_unit_test(test_gt_outside_image),
        cmocka_unit_test(test_outside_gt_with_other_gt),
        cmocka_unit_test(test_random_vs_bruteforce),
        cmocka_unit_test(test_random_vs_bruteforce_mmdet_constants),
        cmocka_unit_test(test_params_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
