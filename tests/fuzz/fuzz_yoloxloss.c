/* libFuzzer harness: one input is a config, a batch shape, labels and head
 * outputs, decoded byte by byte (a short input reads as zeros past its end).
 * Every buffer is allocated at its exact size, so AddressSanitizer sees any
 * access past one. It runs create, forward, get_assignment, renormalize,
 * backward, decode and detect, and aborts when the library breaks its contract:
 *   - a failed call wrote to the caller's losses,
 *   - a successful forward on sane inputs (below) reported a non-finite
 *     loss although no tw, th exceeds 80 (exp() of more overflows float32,
 *     and an infinite side times a zero one makes the IoU NaN, as in
 *     PyTorch),
 *   - the gradient is non-finite although the inputs are sane and no tw, th
 *     exceeds 20 (so no decoded box area overflows). Sane means: head
 *     values not raw floats (so |v| <= 1000), strides from the list below,
 *     gt values within +-1e6 px, gt sides that float32 resolves at their
 *     position (resolvable below) and a reg_weight that is not a raw float,
 *   - a status outside the enum, or an empty error message on failure
 *     (of the context, or of the thread for a failed create),
 *   - a config left with the defaults' 3 strides but more levels was
 *     accepted (AddressSanitizer also sees any read past that array),
 *   - a level of an unknown dtype was accepted,
 *   - a batch with float16 or bfloat16 levels gave other results than the
 *     same batch in float32 with the values up-converted: another status,
 *     assignment or losses, or a gradient that is not the float32 one
 *     rounded into the level's dtype (half_ref.h; NaN as any NaN).
 * The finiteness checks above then apply to the float32 batch.
 * Then decode and detect run on the same levels (thresholds and cap from
 * the input's last bytes) and it aborts when: either fails where forward
 * succeeded, a failed detect wrote its outputs, a detection breaks the
 * contract (class outside [0, C), score not obj * cls_conf or below the
 * threshold, scores out of order, more than the cap, found below the
 * count), or 16-bit levels give other boxes, scores or detections than
 * the float32 mirror.
 * Strides increase and the grids of levels after the first follow from the
 * first (rounded up) in most inputs, as the library requires; some bytes
 * ask for raw strides or grids instead, which the library must refuse or
 * take without harm. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/half_ref.h"
#include "yoloxloss.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *p;
    size_t n;
} reader;

static unsigned byte(reader *r) {
    if (r->n == 0) return 0;
    r->n--;
    return *r->p++;
}

static float raw_float(reader *r) {
    uint32_t u = 0;
    for (int k = 0; k < 4; k++) u |= (uint32_t)byte(r) << (8 * k);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Most bytes give a value in [-16, 16) in steps of 1/8; a few give the
 * extremes the library must survive. */
static float head_value(reader *r, int raw) {
    if (raw) return raw_float(r);
    unsigned b = byte(r);
    switch (b) {
    case 255: return 100.0f;
    case 254: return -100.0f;
    case 253: return 1000.0f;
    case 252: return -1000.0f;
    case 251: return 80.0f;
    default: return ((float)b - 126.0f) / 8.0f;
    }
}

static float box_value(reader *r, int raw) {
    if (raw) return raw_float(r);
    unsigned hi = byte(r), lo = byte(r);
    float v = (float)((hi << 8) | lo) / 64.0f - 128.0f; /* [-128, 896) px, 1/64 px steps */
    return v;
}

static const float STRIDE_CHOICES[8] = {8.0f, 16.0f, 32.0f, 1.0f, 4.0f, 0.5f, 3.75f, 64.0f};
/* Each level's stride over the previous one's, unless the input asks for raw strides. */
static const float STRIDE_FACTORS[4] = {2.0f, 2.0f, 2.0f, 1.5f};

#define MAX_LEVELS 3

static void fail(const char *what) {
    fprintf(stderr, "fuzz_yoloxloss: %s\n", what);
    abort();
}

/* ctx NULL: the call had no context (create), its message is the thread's. */
static void check_status(yoloxloss_status st, const yoloxloss_context *ctx) {
    if ((int)st < 0 || (int)st > YOLOXLOSS_ERR_INVALID_ARGUMENT) fail("status outside the enum");
    if (st != YOLOXLOSS_OK && yoloxloss_last_error(ctx)[0] == '\0') fail("failure without a message");
}

/* Whether float32 can draw the gt box at its position: each side at least
 * 2^-16 of its far edge's distance from 0 (so its corners are off by under
 * 2% of the side). Past that, corners rounded by whole ulps can make the
 * intersection with a tiny predicted box exceed the union; when the two are
 * equal the reference's IoU is x / 0 = inf, and so is its loss. */
static int resolvable(const float *box) {
    for (int k = 0; k < 2; k++) {
        float side = box[2 + k], far = fabsf(box[k]) + 0.5f * side;
        if (!(side >= ldexpf(fmaxf(far, 1.0f), -16))) return 0;
    }
    return 1;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* A level's dtype from two bits of its layout byte: float32 (what every
 * seed written before dtypes existed reads as), float16, bfloat16, or an
 * unknown value the library must refuse. */
static yoloxloss_dtype dtype_of(unsigned bits) {
    static const int codes[4] = {YOLOXLOSS_DTYPE_FLOAT32, YOLOXLOSS_DTYPE_FLOAT16, YOLOXLOSS_DTYPE_BFLOAT16, 3};
    return (yoloxloss_dtype)codes[bits & 3];
}

static int is_16_bit(yoloxloss_dtype dt) { return dt == YOLOXLOSS_DTYPE_FLOAT16 || dt == YOLOXLOSS_DTYPE_BFLOAT16; }

static href_fmt fmt_of(yoloxloss_dtype dt) { return dt == YOLOXLOSS_DTYPE_FLOAT16 ? HREF_F16 : HREF_BF16; }

/* Two floats the same for these checks: equal bits, or both NaN. */
static int same_float(float a, float b) { return (isnan(a) && isnan(b)) || href_bits(a) == href_bits(b); }

/* The losses of a 16-bit batch against its float32 mirror. */
static void expect_same_losses(const yoloxloss_losses *a, const yoloxloss_losses *b) {
    const float fa[7] = {a->total, a->iou, a->obj, a->cls, a->l1, a->normalizer, a->fg_ratio};
    const float fb[7] = {b->total, b->iou, b->obj, b->cls, b->l1, b->normalizer, b->fg_ratio};
    for (int i = 0; i < 7; i++)
        if (!same_float(fa[i], fb[i])) fail("16-bit batch: losses differ from the float32 batch of its values");
    if (a->num_fg != b->num_fg || a->num_gt != b->num_gt) fail("16-bit batch: counts differ from the float32 batch");
}

/* The detections of one image against the contract of yoloxloss_detect. */
static void check_detections(const yoloxloss_detection *d, int32_t count, int32_t found, int cap, int C,
                             float threshold) {
    if (count < 0 || count > cap || found < count) fail("detect: count or found out of range");
    for (int32_t k = 0; k < count; k++) {
        if (d[k].cls < 0 || d[k].cls >= C) fail("detect: class out of range");
        if (!(d[k].score >= threshold)) fail("detect: a score below the threshold");
        if (!same_float(d[k].score, d[k].obj * d[k].cls_conf)) fail("detect: score is not obj * cls_conf");
        if (k > 0 && d[k].score > d[k - 1].score) fail("detect: scores out of order");
    }
}

/* decode and detect on the levels forward was given (and on the float32
 * mirror's, when there is one), with thresholds and a cap from the input. */
static void fuzz_inference(reader *r, yoloxloss_context *ctx, yoloxloss_context *mctx, int B, int C, int L,
                           const yoloxloss_level *lv, const yoloxloss_level *mlv, yoloxloss_status forward,
                           int unknown_dtype) {
    const yoloxloss_status st = yoloxloss_decode(ctx, B, lv, NULL, NULL);
    check_status(st, ctx);
    if (forward == YOLOXLOSS_OK && st != YOLOXLOSS_OK) fail("decode refused levels forward took");
    if (unknown_dtype && st == YOLOXLOSS_OK) fail("decode took a level of an unknown dtype");
    if (mctx && yoloxloss_decode(mctx, B, mlv, NULL, NULL) != st)
        fail("16-bit batch: decode's status differs from the float32 batch's");
    if (st != YOLOXLOSS_OK) return;
    size_t A = 0;
    for (int l = 0; l < L; l++) A += (size_t)lv[l].height * (size_t)lv[l].width;
    const size_t n = (size_t)B * A;
    float *out[2][2] = {{NULL}};
    for (int k = 0; k < 2; k++) {
        out[k][0] = malloc(n * 4 * sizeof(float) + 1);
        out[k][1] = malloc(n * (size_t)C * sizeof(float) + 1);
    }
    check_status(yoloxloss_decode(ctx, B, lv, out[0][0], out[0][1]), ctx);
    if (mctx) {
        check_status(yoloxloss_decode(mctx, B, mlv, out[1][0], out[1][1]), mctx);
        for (size_t i = 0; i < n * 4; i++)
            if (!same_float(out[0][0][i], out[1][0][i])) fail("16-bit batch: a decoded box differs from float32's");
        for (size_t i = 0; i < n * (size_t)C; i++)
            if (!same_float(out[0][1][i], out[1][1][i])) fail("16-bit batch: a score differs from float32's");
    }
    const unsigned b0 = byte(r), b1 = byte(r), b2 = byte(r);
    yoloxloss_detect_params p;
    yoloxloss_detect_params_defaults(&p);
    p.score_threshold = b0 == 255 ? NAN : (float)b0 / 200.0f - 0.1f;
    p.nms_threshold = (double)b1 / 200.0 - 0.1;
    p.class_agnostic = (int)(b2 & 1);
    p.max_detections = 1 + (int)(b2 >> 1) % 8;
    const size_t slots = (size_t)B * (size_t)p.max_detections;
    yoloxloss_detection *det[2] = {malloc(slots * sizeof(yoloxloss_detection)),
                                   malloc(slots * sizeof(yoloxloss_detection))};
    int32_t counts[2][8], found[2][8];
    memset(det[0], 0x7f, slots * sizeof(yoloxloss_detection));
    memset(counts[0], 0x7f, sizeof counts[0]);
    const yoloxloss_status ds = yoloxloss_detect(ctx, B, lv, &p, det[0], counts[0], found[0]);
    check_status(ds, ctx);
    if ((ds == YOLOXLOSS_OK) == isnan(p.score_threshold)) fail("detect: a NaN threshold taken, or a valid one refused");
    if (ds != YOLOXLOSS_OK) {
        const unsigned char *bytes = (const unsigned char *)det[0];
        for (size_t i = 0; i < slots * sizeof(yoloxloss_detection); i++)
            if (bytes[i] != 0x7f) fail("failed detect wrote its detections");
    } else {
        for (int b = 0; b < B; b++)
            check_detections(det[0] + (size_t)b * (size_t)p.max_detections, counts[0][b], found[0][b],
                             p.max_detections, C, p.score_threshold);
        if (mctx) {
            if (yoloxloss_detect(mctx, B, mlv, &p, det[1], counts[1], found[1]) != YOLOXLOSS_OK)
                fail("16-bit batch: detect of the float32 batch failed");
            for (int b = 0; b < B; b++) {
                if (counts[0][b] != counts[1][b] || found[0][b] != found[1][b])
                    fail("16-bit batch: detect's counts differ from the float32 batch's");
                for (int32_t k = 0; k < counts[0][b]; k++) {
                    const yoloxloss_detection *x = det[0] + (size_t)b * (size_t)p.max_detections + k;
                    const yoloxloss_detection *y = det[1] + (size_t)b * (size_t)p.max_detections + k;
                    const float fx[7] = {x->x1, x->y1, x->x2, x->y2, x->obj, x->cls_conf, x->score};
                    const float fy[7] = {y->x1, y->y1, y->x2, y->y2, y->obj, y->cls_conf, y->score};
                    for (int f = 0; f < 7; f++)
                        if (!same_float(fx[f], fy[f])) fail("16-bit batch: a detection differs from float32's");
                    if (x->cls != y->cls) fail("16-bit batch: a detection's class differs from float32's");
                }
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        free(out[k][0]);
        free(out[k][1]);
        free(det[k]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size};
    unsigned flags = byte(&r);
    const int raw_heads = flags & 1, raw_boxes = (flags >> 1) & 1;
    int sane = !raw_heads; /* the inputs the finiteness checks apply to */

    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = (int)(byte(&r) % 6) + ((flags >> 2) & 1 ? 0 : 1); /* 0 is invalid */
    const unsigned levels = byte(&r);
    cfg.num_levels = (int)(levels % MAX_LEVELS) + 1;
    const int raw_strides = (flags >> 7) & 1;
    float strides[MAX_LEVELS];
    for (int l = 0; l < MAX_LEVELS; l++) {
        unsigned s = byte(&r);
        strides[l] = s == 255                 ? raw_float(&r)
                     : l == 0 || raw_strides ? STRIDE_CHOICES[s % 8]
                                             : strides[l - 1] * STRIDE_FACTORS[s % 4];
        if (s == 255) sane = 0;
    }
    cfg.strides = strides;
    /* The defaults' strides array holds 3: more levels on it must be refused. */
    const int default_strides_beyond_end = levels >= 252;
    if (default_strides_beyond_end) {
        yoloxloss_config d;
        yoloxloss_config_defaults(&d);
        cfg.strides = d.strides;
        cfg.num_levels = (int)levels - 248; /* 4 to 7 */
    }
    /* A byte whose value mod 3 was 0 or 1 means what it always meant (the
     * corpus and the regressions keep their meaning); mod 3 = 2, once only
     * an invalid value, now also picks the newer choices by the rest of it:
     * the assigner byte MMDetection's arithmetic and other cost constants,
     * the box-loss byte the newer losses. */
    const unsigned assigner_byte = byte(&r), assigner_more = assigner_byte / 3 % 8;
    cfg.assigner = (yoloxloss_assigner)(assigner_byte % 3);
    if (assigner_byte % 3 == 2 && assigner_more != 0) {
        cfg.assigner = (yoloxloss_assigner)(assigner_more & 1);
        cfg.arithmetic = assigner_more <= 4 ? YOLOXLOSS_ARITHMETIC_MMDET
                         : assigner_more <= 6 ? YOLOXLOSS_ARITHMETIC_YOLOX
                                              : (yoloxloss_arithmetic)2; /* invalid */
        cfg.cost_iou_eps = assigner_more == 3 || assigner_more == 4 ? 1.0f : 1e-7f;
        cfg.cost_penalty = assigner_more == 3 || assigner_more == 4 ? 2.0f : 1e5f;
    }
    const unsigned iou_byte = byte(&r), iou_more = iou_byte / 3 % 6;
    cfg.iou_loss = (yoloxloss_iou_loss)(iou_byte % 3 < 2 ? iou_byte % 3 : iou_more == 0 ? 7 /* invalid */
                                                                                        : 1 + iou_more);
    cfg.use_l1 = (flags >> 3) & 1;
    cfg.candidate_topk = (int)(byte(&r) % 12);
    cfg.center_radius = (float)(byte(&r) % 8) * 0.5f;
    cfg.num_threads = (int)(byte(&r) % 3);
    cfg.check_finite = (flags >> 4) & 1;
    cfg.isa = (flags >> 5) & 1 ? YOLOXLOSS_ISA_SCALAR : YOLOXLOSS_ISA_AUTO;
    if ((flags >> 6) & 1) {
        cfg.reg_weight = raw_float(&r);
        sane = 0;
    }

    yoloxloss_context *ctx = NULL;
    yoloxloss_status st = yoloxloss_create(&cfg, &ctx);
    check_status(st, NULL);
    if (default_strides_beyond_end && st != YOLOXLOSS_ERR_INVALID_CONFIG)
        fail("more levels than the default strides array holds was not refused");
    if (st != YOLOXLOSS_OK) {
        if (ctx) fail("failed create returned a context");
        return 0;
    }
    const int L = cfg.num_levels, C = cfg.num_classes;
    const int B = (int)(byte(&r) % 3) + 1;
    /* The batch in its levels' dtypes (lv, gr, bufs), and its float32
     * mirror (mlv, mgr, mirror) holding the same values up-converted. */
    yoloxloss_level lv[MAX_LEVELS], mlv[MAX_LEVELS];
    yoloxloss_level_grad gr[MAX_LEVELS], mgr[MAX_LEVELS];
    void *bufs[MAX_LEVELS][6];
    float *mirror[MAX_LEVELS][6];
    size_t counts[MAX_LEVELS][3];
    memset(lv, 0, sizeof lv);
    memset(gr, 0, sizeof gr);
    memset(bufs, 0, sizeof bufs);
    memset(mirror, 0, sizeof mirror);
    memset(counts, 0, sizeof counts);
    int any_16_bit = 0, unknown_dtype = 0;
    float max_twth = -INFINITY; /* largest tw or th of the batch */
    for (int l = 0; l < L; l++) {
        unsigned shape = byte(&r);
        lv[l].height = (int)(shape & 7) - (shape == 0xff ? 9 : 0); /* 0 and negative are invalid */
        lv[l].width = (int)((shape >> 3) & 7);
        /* Levels of one image: the first level's grid, rounded up at this
         * stride; a top bits pattern of 3 keeps the raw grid. */
        if (l > 0 && (shape >> 6) != 3 && lv[0].height > 0 && lv[0].width > 0) {
            double scale = (double)strides[0] / (double)strides[l];
            lv[l].height = (int)fmax(1.0, ceil(lv[0].height * scale));
            lv[l].width = (int)fmax(1.0, ceil(lv[0].width * scale));
        }
        const unsigned layout_byte = byte(&r), layout = layout_byte % 8;
        const int split = layout & 1;
        const yoloxloss_dtype dt = dtype_of(layout_byte >> 3);
        const size_t esize = is_16_bit(dt) ? sizeof(uint16_t) : sizeof(float); /* an unknown dtype: float's */
        lv[l].dtype = dt;
        any_16_bit |= is_16_bit(dt);
        unknown_dtype |= !is_16_bit(dt) && dt != YOLOXLOSS_DTYPE_FLOAT32;
        size_t hw = lv[l].height > 0 && lv[l].width > 0 ? (size_t)lv[l].height * (size_t)lv[l].width : 0;
        size_t per[3] = {4 * hw, hw, (size_t)C * hw};
        if (!split) {
            counts[l][0] = (size_t)B * (5 + (size_t)C) * hw;
        } else {
            for (int k = 0; k < 3; k++) counts[l][k] = (size_t)B * per[k];
        }
        for (int k = 0; k < (split ? 3 : 1); k++) {
            bufs[l][k] = malloc(counts[l][k] * esize + 1);
            bufs[l][3 + k] = calloc(counts[l][k] + 1, esize); /* accumulate reads it */
            mirror[l][k] = malloc(counts[l][k] * sizeof(float) + 1);
            mirror[l][3 + k] = calloc(counts[l][k] + 1, sizeof(float));
            for (size_t q = 0; q < counts[l][k]; q++) {
                float v;
                if (!is_16_bit(dt)) {
                    v = head_value(&r, raw_heads);
                    ((float *)bufs[l][k])[q] = v;
                } else {
                    /* raw: any 16 bits; else head_value's values, which both
                     * formats hold exactly */
                    uint16_t h;
                    if (raw_heads) {
                        const unsigned lo = byte(&r), hi = byte(&r);
                        h = (uint16_t)(lo | (hi << 8));
                    } else {
                        h = href_round(head_value(&r, 0), fmt_of(dt));
                    }
                    ((uint16_t *)bufs[l][k])[q] = h;
                    v = (float)href_value(h, fmt_of(dt));
                }
                mirror[l][k][q] = v;
            }
        }
        if (split) {
            lv[l].reg = bufs[l][0];
            lv[l].obj = bufs[l][1];
            lv[l].cls = bufs[l][2];
            gr[l].reg = bufs[l][3];
            gr[l].obj = bufs[l][4];
            gr[l].cls = bufs[l][5];
        } else {
            lv[l].fused = bufs[l][0];
            gr[l].fused = bufs[l][3];
        }
        mlv[l] = lv[l];
        mgr[l] = gr[l];
        mlv[l].dtype = YOLOXLOSS_DTYPE_FLOAT32;
        if (split) {
            mlv[l].reg = mirror[l][0];
            mlv[l].obj = mirror[l][1];
            mlv[l].cls = mirror[l][2];
            mgr[l].reg = mirror[l][3];
            mgr[l].obj = mirror[l][4];
            mgr[l].cls = mirror[l][5];
            if (layout == 3) lv[l].obj = mlv[l].obj = NULL; /* incomplete split: NULL_ARGUMENT */
        } else {
            mlv[l].fused = mirror[l][0];
            mgr[l].fused = mirror[l][3];
            if (layout == 2) { /* fused and split: INVALID_ARGUMENT */
                lv[l].cls = bufs[l][0];
                mlv[l].cls = mirror[l][0];
            }
        }
        /* tw, th: past 88.7 exp() overflows, past ~44 a box's area does */
        for (int b = 0; b < B && hw; b++) {
            const float *reg = split ? mirror[l][0] + (size_t)b * 4 * hw
                                     : mirror[l][0] + (size_t)b * (5 + (size_t)C) * hw;
            for (size_t q = 2 * hw; q < 4 * hw; q++)
                max_twth = fmaxf(max_twth, reg[q]);
        }
    }
    int32_t num_gt[3];
    int total = 0;
    for (int b = 0; b < B; b++) {
        unsigned g = byte(&r);
        num_gt[b] = g == 255 ? -1 : (int32_t)(g % 6);
        if (num_gt[b] > 0) total += num_gt[b];
    }
    int32_t *classes = malloc((size_t)total * sizeof(int32_t) + 1);
    float *boxes = malloc((size_t)total * 4 * sizeof(float) + 1);
    for (int t = 0; t < total; t++) {
        classes[t] = (int32_t)(byte(&r) % (unsigned)(C + 1)); /* C itself is invalid */
        for (int k = 0; k < 4; k++) {
            boxes[4 * t + k] = box_value(&r, raw_boxes);
            if (!(fabsf(boxes[4 * t + k]) <= 1e6f)) sane = 0;
        }
        if (!resolvable(boxes + 4 * t)) sane = 0;
    }
    yoloxloss_batch batch = {B, lv, num_gt, total ? classes : NULL, total ? boxes : NULL};
    yoloxloss_batch mbatch = batch;
    mbatch.levels = mlv;
    /* With 16-bit levels the float32 mirror runs too, on its own context,
     * and the finiteness checks apply to it. */
    const int mirrored = any_16_bit && !unknown_dtype;
    yoloxloss_context *mctx = NULL;
    if (mirrored && yoloxloss_create(&cfg, &mctx) != YOLOXLOSS_OK) fail("a second create of a valid config failed");

    const yoloxloss_losses sentinel = {-7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7, -7};
    yoloxloss_losses losses = sentinel, mlosses = sentinel;
    st = yoloxloss_forward(ctx, &batch, &losses);
    const yoloxloss_status forward_status = st;
    check_status(st, ctx);
    if (unknown_dtype && st == YOLOXLOSS_OK) fail("a level of an unknown dtype was accepted");
    if (mirrored && yoloxloss_forward(mctx, &mbatch, &mlosses) != st)
        fail("16-bit batch: forward's status differs from the float32 batch's");
    if (getenv("YOLOXLOSS_FUZZ_VERBOSE")) {
        fprintf(stderr, "config: C %d L %d strides %g %g %g assigner %d iou %d l1 %d topk %d r %g reg_w %g; B %d"
                " arithmetic %d cost eps %g penalty %g\n",
                C, L, (double)strides[0], (double)strides[1], (double)strides[2], (int)cfg.assigner,
                (int)cfg.iou_loss, cfg.use_l1, cfg.candidate_topk, (double)cfg.center_radius,
                (double)cfg.reg_weight, B, (int)cfg.arithmetic, (double)cfg.cost_iou_eps, (double)cfg.cost_penalty);
        for (int l = 0; l < L; l++) fprintf(stderr, "level %d: dtype %d\n", l, (int)lv[l].dtype);
        for (int t = 0; t < total; t++)
            fprintf(stderr, "gt %d: class %d box %g %g %g %g\n", t, classes[t], (double)boxes[4 * t],
                    (double)boxes[4 * t + 1], (double)boxes[4 * t + 2], (double)boxes[4 * t + 3]);
    }
    if (getenv("YOLOXLOSS_FUZZ_VERBOSE"))
        fprintf(stderr, "forward: %s %s (total %g, fg %lld)\n", yoloxloss_status_string(st),
                yoloxloss_last_error(ctx), (double)losses.total, (long long)losses.num_fg);
    if (st != YOLOXLOSS_OK) {
        if (memcmp(&losses.total, &sentinel.total, 7 * sizeof(float)) != 0 || losses.num_fg != -7)
            fail("failed forward wrote the losses");
        if (yoloxloss_backward(ctx, gr, NULL, 0) != YOLOXLOSS_ERR_NO_FORWARD) fail("backward after failure");
    } else {
        if (mirrored) expect_same_losses(&losses, &mlosses);
        if (sane && max_twth <= 80.0f && !isfinite(losses.total))
            fail("non-finite loss from finite inputs");
        int64_t A = yoloxloss_num_anchors(ctx);
        size_t n = (size_t)B * (size_t)A;
        int32_t *matched = malloc(n * sizeof(int32_t) + 1), *mmatched = malloc(n * sizeof(int32_t) + 1);
        float *piou = malloc(n * sizeof(float) + 1), *mpiou = malloc(n * sizeof(float) + 1);
        int32_t *dk = malloc((size_t)total * sizeof(int32_t) + 1), *mdk = malloc((size_t)total * sizeof(int32_t) + 1);
        check_status(yoloxloss_get_assignment(ctx, matched, piou, dk), ctx);
        for (size_t i = 0; i < n; i++) {
            int32_t g = matched[i];
            if (g < -1 || g >= num_gt[i / (size_t)A]) fail("matched gt out of range");
        }
        if (mirrored) {
            check_status(yoloxloss_get_assignment(mctx, mmatched, mpiou, mdk), mctx);
            if (memcmp(matched, mmatched, n * sizeof(int32_t)) != 0 ||
                (total && memcmp(dk, mdk, (size_t)total * sizeof(int32_t)) != 0))
                fail("16-bit batch: assignment differs from the float32 batch's");
            for (size_t i = 0; i < n; i++)
                if (!same_float(piou[i], mpiou[i])) fail("16-bit batch: pred_iou differs from the float32 batch's");
        }
        unsigned renorm = byte(&r);
        if (renorm & 1) {
            yoloxloss_status rs = yoloxloss_renormalize(ctx, (float)renorm / 7.0f - 3.0f, NULL);
            check_status(rs, ctx);
            if (mirrored && yoloxloss_renormalize(mctx, (float)renorm / 7.0f - 3.0f, NULL) != rs)
                fail("16-bit batch: renormalize's status differs from the float32 batch's");
        }
        yoloxloss_upstream up = {1.0f, (float)(renorm >> 4) / 4.0f, 0.5f, 0.0f, -1.0f};
        const yoloxloss_upstream *upp = (renorm >> 1) & 1 ? &up : NULL;
        const int accumulate = (renorm >> 2) & 1;
        st = yoloxloss_backward(ctx, gr, upp, accumulate);
        check_status(st, ctx);
        if (mirrored && yoloxloss_backward(mctx, mgr, upp, accumulate) != st)
            fail("16-bit batch: backward's status differs from the float32 batch's");
        if (mirrored && st == YOLOXLOSS_OK)
            for (int l = 0; l < L; l++)
                for (int k = 0; k < 3; k++) {
                    if (!bufs[l][3 + k]) continue;
                    for (size_t q = 0; q < counts[l][k]; q++) {
                        const float want = mirror[l][3 + k][q];
                        int ok;
                        if (!is_16_bit(lv[l].dtype)) {
                            ok = same_float(((const float *)bufs[l][3 + k])[q], want);
                        } else {
                            const uint16_t h = ((const uint16_t *)bufs[l][3 + k])[q];
                            const href_fmt f = fmt_of(lv[l].dtype);
                            ok = isnan(want) ? href_is_nan(h, f) : h == href_round(want, f);
                        }
                        if (!ok) {
                            if (getenv("YOLOXLOSS_FUZZ_VERBOSE"))
                                fprintf(stderr, "level %d buffer %d element %zu: float32 gradient %g\n", l, k, q,
                                        (double)want);
                            fail("16-bit batch: a gradient is not the float32 batch's rounded into its dtype");
                        }
                    }
                }
        if (st == YOLOXLOSS_OK && sane && max_twth <= 20.0f && !accumulate)
            for (int l = 0; l < L; l++)
                for (int k = 0; k < 3; k++) {
                    /* the float32 gradients: the mirror's when there is one */
                    const float *g = mirrored ? mirror[l][3 + k] : (const float *)bufs[l][3 + k];
                    if (g && !all_finite(g, counts[l][k])) {
                        if (getenv("YOLOXLOSS_FUZZ_VERBOSE"))
                            for (size_t q = 0; q < counts[l][k]; q++)
                                if (!isfinite(g[q]))
                                    fprintf(stderr, "level %d (%dx%d) buffer %d element %zu: %g (input %g)\n", l,
                                            lv[l].height, lv[l].width, k, q, (double)g[q], (double)mirror[l][k][q]);
                        fail("non-finite gradient from finite inputs without exp overflow");
                    }
                }
        free(matched);
        free(mmatched);
        free(piou);
        free(mpiou);
        free(dk);
        free(mdk);
    }
    fuzz_inference(&r, ctx, mirrored ? mctx : NULL, B, C, L, lv, mlv, forward_status, unknown_dtype);
    yoloxloss_destroy(ctx);
    yoloxloss_destroy(mctx);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 6; k++) {
            free(bufs[l][k]);
            free(mirror[l][k]);
        }
    free(classes);
    free(boxes);
    return 0;
}
