/* libFuzzer harness: one input is a config, a batch shape, labels and head
 * outputs, decoded byte by byte (a short input reads as zeros past its end).
 * Every buffer is allocated at its exact size, so AddressSanitizer sees any
 * access past one. It runs create, forward, get_assignment, renormalize and
 * backward, and aborts when the library breaks its contract:
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
 *     accepted (AddressSanitizer also sees any read past that array).
 * Strides increase and the grids of levels after the first follow from the
 * first (rounded up) in most inputs, as the library requires; some bytes
 * ask for raw strides or grids instead, which the library must refuse or
 * take without harm. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    yoloxloss_level lv[MAX_LEVELS];
    yoloxloss_level_grad gr[MAX_LEVELS];
    float *bufs[MAX_LEVELS][6];
    size_t counts[MAX_LEVELS][3];
    memset(lv, 0, sizeof lv);
    memset(gr, 0, sizeof gr);
    memset(bufs, 0, sizeof bufs);
    memset(counts, 0, sizeof counts);
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
        unsigned layout = byte(&r) % 8;
        int split = layout & 1;
        size_t hw = lv[l].height > 0 && lv[l].width > 0 ? (size_t)lv[l].height * (size_t)lv[l].width : 0;
        size_t per[3] = {4 * hw, hw, (size_t)C * hw};
        if (!split) {
            counts[l][0] = (size_t)B * (5 + (size_t)C) * hw;
        } else {
            for (int k = 0; k < 3; k++) counts[l][k] = (size_t)B * per[k];
        }
        for (int k = 0; k < (split ? 3 : 1); k++) {
            bufs[l][k] = malloc(counts[l][k] * sizeof(float) + 1);
            bufs[l][3 + k] = calloc(counts[l][k] + 1, sizeof(float)); /* accumulate reads it */
            for (size_t q = 0; q < counts[l][k]; q++) bufs[l][k][q] = head_value(&r, raw_heads);
        }
        if (split) {
            lv[l].reg = bufs[l][0];
            lv[l].obj = bufs[l][1];
            lv[l].cls = bufs[l][2];
            gr[l].reg = bufs[l][3];
            gr[l].obj = bufs[l][4];
            gr[l].cls = bufs[l][5];
            if (layout == 3) lv[l].obj = NULL; /* incomplete split: NULL_ARGUMENT */
        } else {
            lv[l].fused = bufs[l][0];
            gr[l].fused = bufs[l][3];
            if (layout == 2) lv[l].cls = bufs[l][0]; /* fused and split: INVALID_ARGUMENT */
        }
        /* tw, th: past 88.7 exp() overflows, past ~44 a box's area does */
        for (int b = 0; b < B && hw; b++) {
            const float *reg = split ? bufs[l][0] + (size_t)b * 4 * hw : bufs[l][0] + (size_t)b * (5 + (size_t)C) * hw;
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

    const yoloxloss_losses sentinel = {-7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7, -7};
    yoloxloss_losses losses = sentinel;
    st = yoloxloss_forward(ctx, &batch, &losses);
    check_status(st, ctx);
    if (getenv("YOLOXLOSS_FUZZ_VERBOSE")) {
        fprintf(stderr, "config: C %d L %d strides %g %g %g assigner %d iou %d l1 %d topk %d r %g reg_w %g; B %d"
                " arithmetic %d cost eps %g penalty %g\n",
                C, L, (double)strides[0], (double)strides[1], (double)strides[2], (int)cfg.assigner,
                (int)cfg.iou_loss, cfg.use_l1, cfg.candidate_topk, (double)cfg.center_radius,
                (double)cfg.reg_weight, B, (int)cfg.arithmetic, (double)cfg.cost_iou_eps, (double)cfg.cost_penalty);
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
        if (sane && max_twth <= 80.0f && !isfinite(losses.total))
            fail("non-finite loss from finite inputs");
        int64_t A = yoloxloss_num_anchors(ctx);
        size_t n = (size_t)B * (size_t)A;
        int32_t *matched = malloc(n * sizeof(int32_t) + 1);
        float *piou = malloc(n * sizeof(float) + 1);
        int32_t *dk = malloc((size_t)total * sizeof(int32_t) + 1);
        check_status(yoloxloss_get_assignment(ctx, matched, piou, dk), ctx);
        for (size_t i = 0; i < n; i++) {
            int32_t g = matched[i];
            if (g < -1 || g >= num_gt[i / (size_t)A]) fail("matched gt out of range");
        }
        unsigned renorm = byte(&r);
        if (renorm & 1) check_status(yoloxloss_renormalize(ctx, (float)renorm / 7.0f - 3.0f, NULL), ctx);
        yoloxloss_upstream up = {1.0f, (float)(renorm >> 4) / 4.0f, 0.5f, 0.0f, -1.0f};
        st = yoloxloss_backward(ctx, gr, (renorm >> 1) & 1 ? &up : NULL, (renorm >> 2) & 1);
        check_status(st, ctx);
        if (st == YOLOXLOSS_OK && sane && max_twth <= 20.0f && !((renorm >> 2) & 1))
            for (int l = 0; l < L; l++)
                for (int k = 0; k < 3; k++)
                    if (bufs[l][3 + k] && !all_finite(bufs[l][3 + k], counts[l][k])) {
                        if (getenv("YOLOXLOSS_FUZZ_VERBOSE"))
                            for (size_t q = 0; q < counts[l][k]; q++)
                                if (!isfinite(bufs[l][3 + k][q]))
                                    fprintf(stderr, "level %d (%dx%d) buffer %d element %zu: %g (input %g)\n", l,
                                            lv[l].height, lv[l].width, k, q, (double)bufs[l][3 + k][q],
                                            (double)bufs[l][k][q]);
                        fail("non-finite gradient from finite inputs without exp overflow");
                    }
        free(matched);
        free(piou);
        free(dk);
    }
    yoloxloss_destroy(ctx);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 6; k++) free(bufs[l][k]);
    free(classes);
    free(boxes);
    return 0;
}
