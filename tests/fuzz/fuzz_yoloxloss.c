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
 *     position (resolvable below; tiny boxes near 0 included) and a
 *     reg_weight that is not a raw float,
 *   - a gt box whose float32 area w*h underflows to 0 was accepted,
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
 *   - the per-image losses' counts do not add up to the batch's,
 *   - the padded form of the same labels (yoloxloss_padded_labels, drawn by
 *     one byte after everything else, so older inputs keep their meaning)
 *     disagrees with the flat batch of the values it converts to: another
 *     outcome, losses, per-image losses or assignment; or a lie the form
 *     must refuse (a count outside [0, max_rows], a label after the end
 *     row, a centre at (0, 0), a zero row inside a count) was accepted,
 *   - a class or thread count past its bound was accepted, a batch at the
 *     class bound with lying sizes (inaccessible buffers) and a fault was
 *     not refused before a read, or gradient buffers that overlap the
 *     outputs or each other were not refused, or a refused backward wrote.
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
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* Two bytes: fixed point in [-124, 896) px in 1/64 px steps, or, when the
 * first is 0, a tiny value (1 + m/8) 2^(-5k), m = lo & 7, k = lo >> 3 in
 * 0..31: down past float32's smallest subnormal, so that boxes whose area
 * w*h underflows to 0 (refused) and the smallest accepted ones both occur.
 * A tiny centre takes its sign from the low bit. */
static float box_value(reader *r, int raw, int centre) {
    if (raw) return raw_float(r);
    unsigned hi = byte(r), lo = byte(r);
    if (hi == 0) {
        float v = ldexpf(1.0f + (float)(lo & 7) / 8.0f, -5 * (int)(lo >> 3));
        return centre && (lo & 1) ? -v : v;
    }
    return (float)((hi << 8) | lo) / 64.0f - 128.0f;
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
    if ((int)st < 0 || (int)st > YOLOXLOSS_ERR_BUSY) fail("status outside the enum");
    if (st != YOLOXLOSS_OK && yoloxloss_last_error(ctx)[0] == '\0') fail("failure without a message");
}

/* Whether float32 can draw the gt box at its position: each side at least
 * 2^-16 of its far edge's distance from 0 (so its corners are off by under
 * 2% of the side), however small both are: a box of 1e-30 px at 0 is
 * drawn exactly. Past that, corners rounded by whole ulps can make the
 * intersection with a tiny predicted box exceed the union; when the two are
 * equal the reference's IoU is x / 0 = inf, and so is its loss. */
static int resolvable(const float *box) {
    for (int k = 0; k < 2; k++) {
        float side = box[2 + k], far = fabsf(box[k]) + 0.5f * side;
        if (!(side >= ldexpf(far, -16))) return 0;
    }
    return 1;
}

/* A box of positive finite sides whose float32 area w*h is 0: the library
 * must refuse it (ERR_INVALID_BOX). */
static int area_underflows(const float *box) {
    return isfinite(box[2]) && isfinite(box[3]) && box[2] > 0.0f && box[3] > 0.0f && box[2] * box[3] == 0.0f;
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

/* The losses of a batch against those of its twin (a 16-bit batch's
 * float32 mirror, a padded form's flat batch); `what` names the pair. */
static void expect_same_losses(const yoloxloss_losses *a, const yoloxloss_losses *b, const char *what) {
    const float fa[7] = {a->total, a->iou, a->obj, a->cls, a->l1, a->normalizer, a->fg_ratio};
    const float fb[7] = {b->total, b->iou, b->obj, b->cls, b->l1, b->normalizer, b->fg_ratio};
    int same = a->num_fg == b->num_fg && a->num_gt == b->num_gt;
    for (int i = 0; i < 7; i++) same &= same_float(fa[i], fb[i]);
    if (!same) {
        fprintf(stderr, "fuzz_yoloxloss: %s\n", what);
        fail("losses or counts differ from the twin batch's");
    }
}

/* Per-image losses of ctx's forward: their counts add up to the batch's. */
static void check_image_losses(const yoloxloss_context *ctx, int B, const yoloxloss_losses *batch,
                               yoloxloss_losses *rows) {
    check_status(yoloxloss_get_image_losses(ctx, rows), ctx);
    int64_t fg = 0, gt = 0;
    for (int b = 0; b < B; b++) {
        fg += rows[b].num_fg;
        gt += rows[b].num_gt;
        if (!same_float(rows[b].normalizer, batch->normalizer)) fail("per-image losses: another normaliser");
    }
    if (fg != batch->num_fg || gt != batch->num_gt) fail("per-image losses: counts do not add up to the batch's");
}

/* What one forward left: status, losses, per-image losses, assignment
 * (n = B x anchors entries). */
typedef struct {
    yoloxloss_status st;
    yoloxloss_losses losses, rows[3];
    int32_t *matched, *dk;
    float *piou;
    size_t n;
} outcome;

static void run_forward(const yoloxloss_config *cfg, const yoloxloss_batch *batch, int64_t total, outcome *o) {
    memset(o, 0, sizeof *o);
    yoloxloss_context *ctx = NULL;
    if (yoloxloss_create(cfg, &ctx) != YOLOXLOSS_OK) fail("a second create of a valid config failed");
    const yoloxloss_losses sentinel = {-7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7.0f, -7, -7};
    o->losses = sentinel;
    o->st = yoloxloss_forward(ctx, batch, &o->losses);
    check_status(o->st, ctx);
    if (o->st != YOLOXLOSS_OK) {
        if (memcmp(&o->losses.total, &sentinel.total, 7 * sizeof(float)) != 0 || o->losses.num_fg != -7)
            fail("failed forward wrote the losses");
    } else {
        check_image_losses(ctx, batch->num_images, &o->losses, o->rows);
        const size_t n = o->n = (size_t)batch->num_images * (size_t)yoloxloss_num_anchors(ctx);
        o->matched = malloc(n * sizeof(int32_t) + 1);
        o->piou = malloc(n * sizeof(float) + 1);
        o->dk = malloc((size_t)total * sizeof(int32_t) + 1);
        check_status(yoloxloss_get_assignment(ctx, o->matched, o->piou, o->dk), ctx);
    }
    yoloxloss_destroy(ctx);
}

static void free_outcome(outcome *o) {
    free(o->matched);
    free(o->piou);
    free(o->dk);
}

/* Row `first` of image b's flat labels: the positive counts before it. */
static int first_row(const int32_t *num_gt, int b) {
    int row = 0;
    for (int k = 0; k < b; k++) row += num_gt[k] > 0 ? num_gt[k] : 0;
    return row;
}

static int zero_box(const float *box) { return box[0] == 0.0f && box[1] == 0.0f && box[2] == 0.0f && box[3] == 0.0f; }

/* The padded form of the batch's labels, from one byte p: bit 0 on draws
 * it; bit 1 the order, bit 2 normalised boxes, bit 3 six floats a row,
 * bit 4 counts (else end rows); bits 5-7 a variant: 0-3 and 7 faithful
 * (1: an explicit image size, 2: NaN in the extra float, 3: row_floats 0
 * for 5, 7: no end row where an image fills every row), 4 a count out of
 * range (counts: -1 with six floats a row, else max_rows + 1) or a label
 * after the end row (end rows), 5 a used row centred at (0, 0), 6 a zero
 * row inside a count. Faithful, it must do what the flat batch of the
 * values it converts to does; a lie must be refused where that flat batch
 * is accepted. */
static void check_padded_form(unsigned p, const yoloxloss_config *cfg, const yoloxloss_level *lv, int B,
                              const int32_t *num_gt, const int32_t *classes, const float *boxes, int total) {
    if (!(p & 1)) return;
    const yoloxloss_label_order order = (yoloxloss_label_order)((p >> 1) & 1);
    const int normalized = (p >> 2) & 1, rf = (p >> 3) & 1 ? 6 : 5, use_counts = (p >> 4) & 1;
    const unsigned variant = (p >> 5) & 7;
    const int ca = order == YOLOXLOSS_LABELS_CLASS_FIRST ? 0 : 4, ba = ca == 0 ? 1 : 0;
    int maxn = 0, negative = 0;
    for (int b = 0; b < B; b++) {
        if (num_gt[b] > maxn) maxn = num_gt[b];
        negative |= num_gt[b] < 0;
    }
    const int M = variant == 7 ? (maxn > 0 ? maxn : 1) : maxn + 2;
    yoloxloss_padded_labels pl = {0};
    pl.max_rows = M;
    pl.row_floats = rf == 5 && variant == 3 ? 0 : rf;
    pl.order = order;
    pl.normalized = normalized;
    /* the image size the library will use (a bad level 0 fails forward first) */
    float W = 1.0f, H = 1.0f;
    if (normalized && lv[0].width > 0 && lv[0].height > 0) {
        W = (float)lv[0].width * cfg->strides[0];
        H = (float)lv[0].height * cfg->strides[0];
        if (variant == 1) {
            pl.image_width = W = W + 3.0f;
            pl.image_height = H = H * 0.75f;
        }
    }
    const float scale[4] = {W, H, W, H};
    float *rows = malloc((size_t)B * (size_t)M * (size_t)rf * sizeof(float));
    int32_t *counts = malloc((size_t)B * sizeof(int32_t));
    float *flat = malloc((size_t)total * 4 * sizeof(float) + 1); /* the converted boxes */
    for (int b = 0, g = 0; b < B; b++) {
        const int n = num_gt[b] > 0 ? num_gt[b] : 0;
        counts[b] = num_gt[b];
        for (int q = 0; q < M; q++) {
            float *row = rows + ((size_t)b * (size_t)M + (size_t)q) * (size_t)rf;
            for (int k = 0; k < rf; k++) row[k] = use_counts ? NAN : 0.0f; /* past a count: never read */
            if (q < n) {
                row[ca] = (float)classes[g + q];
                for (int k = 0; k < 4; k++) {
                    const float v = boxes[4 * (g + q) + k];
                    row[ba + k] = normalized ? v / scale[k] : v;
                    flat[4 * (g + q) + k] = normalized ? row[ba + k] * scale[k] : v;
                }
            } else if (!use_counts) {
                row[ca] = -1.0f; /* only the box marks padding */
            }
            if (rf == 6) row[5] = variant == 2 ? NAN : (float)q;
        }
        g += n;
    }
    /* Inputs whose flat twin differs for a reason of the form: a negative
     * count has no end-row form, an all-zero box ends the labels, and a
     * (0, 0) centre is refused. */
    int faithful = !(negative && !use_counts);
    for (int b = 0; b < B; b++)
        for (int q = 0; q < (num_gt[b] > 0 ? num_gt[b] : 0); q++) {
            const float *box = rows + ((size_t)b * (size_t)M + (size_t)q) * (size_t)rf + ba;
            if (box[0] == 0.0f && box[1] == 0.0f) faithful = 0;
        }
    int first = -1; /* the first image with a label */
    for (int b = 0; b < B && first < 0; b++)
        if (num_gt[b] > 0) first = b;
    yoloxloss_status must = YOLOXLOSS_OK; /* a lie's status, when the flat twin is accepted */
    if (variant == 4 && use_counts) {
        counts[0] = rf == 6 ? -1 : M + 1;
        must = YOLOXLOSS_ERR_INVALID_LABEL;
    } else if (variant == 4 && first >= 0) {
        const int n = num_gt[first];
        float *dst = rows + ((size_t)first * (size_t)M + (size_t)n + 1) * (size_t)rf;
        memcpy(dst, dst - 2 * rf, (size_t)rf * sizeof(float)); /* its last label, after the end row */
        must = YOLOXLOSS_ERR_INVALID_LABEL;
    } else if (variant == 5 && first >= 0) {
        float *row = rows + (size_t)first * (size_t)M * (size_t)rf;
        row[ba] = row[ba + 1] = 0.0f;
        flat[4 * first_row(num_gt, first)] = flat[4 * first_row(num_gt, first) + 1] = 0.0f;
        must = YOLOXLOSS_ERR_INVALID_BOX;
    } else if (variant == 6 && use_counts && num_gt[0] >= 0 && num_gt[0] < M) {
        float *row = rows + (size_t)num_gt[0] * (size_t)rf;
        memset(row, 0, (size_t)rf * sizeof(float));
        counts[0] = num_gt[0] + 1;
        must = YOLOXLOSS_ERR_INVALID_BOX;
    }
    pl.rows = rows;
    pl.counts = use_counts ? counts : NULL;
    if (!use_counts && faithful)
        for (int b = 0; b < B; b++) /* an all-zero used box would end the labels early */
            for (int q = 0; q < num_gt[b]; q++)
                if (zero_box(rows + ((size_t)b * (size_t)M + (size_t)q) * (size_t)rf + ba)) faithful = 0;
    const yoloxloss_batch fb = {B, lv, num_gt, total ? classes : NULL, total ? flat : NULL, NULL};
    const yoloxloss_batch pb = {B, lv, NULL, NULL, NULL, &pl};
    outcome of, op;
    run_forward(cfg, &fb, total, &of);
    run_forward(cfg, &pb, total, &op);
    if (getenv("YOLOXLOSS_FUZZ_VERBOSE"))
        fprintf(stderr, "padded form: order %d normalized %d row_floats %d counts %d variant %u: flat %s, padded %s\n",
                (int)order, normalized, rf, use_counts, variant, yoloxloss_status_string(of.st),
                yoloxloss_status_string(op.st));
    if (must != YOLOXLOSS_OK && faithful && of.st == YOLOXLOSS_OK && op.st != must)
        fail("padded form: a count out of range, a hole, a (0, 0) centre or a zero row inside a count was "
             "not refused");
    if (must == YOLOXLOSS_OK && faithful) {
        if ((of.st == YOLOXLOSS_OK) != (op.st == YOLOXLOSS_OK))
            fail("padded form: another outcome than the flat batch");
        if (of.st == YOLOXLOSS_OK) {
            expect_same_losses(&op.losses, &of.losses, "padded form against the flat batch");
            for (int b = 0; b < B; b++)
                expect_same_losses(&op.rows[b], &of.rows[b], "padded form: an image's losses against the flat batch's");
            int same = of.n == op.n && memcmp(of.matched, op.matched, of.n * sizeof(int32_t)) == 0 &&
                       memcmp(of.dk, op.dk, (size_t)of.losses.num_gt * sizeof(int32_t)) == 0;
            for (size_t i = 0; same && i < of.n; i++) same = same_float(of.piou[i], op.piou[i]);
            if (!same) fail("padded form: another assignment than the flat batch's");
        }
    }
    free_outcome(&of);
    free_outcome(&op);
    free(rows);
    free(counts);
    free(flat);
}

/* A class count at the bound makes real buffers gigabytes: here every
 * head-output buffer is one inaccessible page (the sizes the batch states
 * are lies), and the batch has a fault the input picks, which forward must
 * refuse before it reads a single head output (a read faults). */
static void lying_sizes(yoloxloss_context *ctx, reader *r) {
    const size_t page = 4096;
    uint8_t *none = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (none == MAP_FAILED) return;
    const int C = yoloxloss_get_config(ctx)->num_classes, L = yoloxloss_get_config(ctx)->num_levels;
    yoloxloss_level lv[MAX_LEVELS];
    for (int l = 0; l < L; l++) lv[l] = (yoloxloss_level){1, 1, none, NULL, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT16};
    int32_t num_gt[1] = {1}, cls[1] = {C - 1};
    float box[4] = {4.0f, 4.0f, 8.0f, 8.0f};
    yoloxloss_batch batch = {.num_images = 1, .levels = lv, .num_gt = num_gt, .gt_classes = cls, .gt_boxes = box};
    const unsigned fault = byte(r) % 6;
    switch (fault) {
    case 0: num_gt[0] = -1; break;                           /* INVALID_LABEL */
    case 1: cls[0] = C; break;                               /* INVALID_LABEL */
    case 2: box[2] = 0.0f; break;                            /* INVALID_BOX */
    case 3: lv[L - 1].dtype = (yoloxloss_dtype)7; break;     /* INVALID_ARGUMENT */
    case 4: lv[0].height = 1 << 20; lv[0].width = 1 << 20; break; /* SIZE_OVERFLOW or INVALID_SHAPE */
    default: lv[0].obj = none; break;                        /* fused and split: INVALID_ARGUMENT */
    }
    yoloxloss_losses l;
    yoloxloss_status st = yoloxloss_forward(ctx, &batch, &l);
    check_status(st, ctx);
    if (st == YOLOXLOSS_OK) fail("a batch with lying sizes and a fault was accepted");
    munmap(none, page);
}

static uint64_t checksum(const void *p, size_t bytes) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < bytes; i++) h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
    return h;
}

/* Gradient buffers that overlap (one in place over level 0's outputs, or
 * level 1's over level 0's gradient) must be refused with nothing written:
 * level 0's buffers keep their bytes. One input byte in eight asks for it. */
static void overlapping_gradients(yoloxloss_context *ctx, const yoloxloss_level *lv, const yoloxloss_level_grad *gr,
                                  int L, void *bufs[][6], size_t counts[][3], unsigned how,
                                  const yoloxloss_upstream *up, int accumulate) {
    if (how % 8 != 7) return;
    yoloxloss_level_grad bad[MAX_LEVELS];
    memcpy(bad, gr, sizeof bad);
    if ((how >> 3) & 1 || L < 2) {
        if (lv[0].fused)
            bad[0].fused = (void *)lv[0].fused;
        else
            bad[0].obj = (void *)lv[0].obj;
    } else if (bad[1].fused) {
        bad[1].fused = bad[0].fused ? bad[0].fused : bad[0].reg;
    } else {
        bad[1].reg = bad[0].fused ? bad[0].fused : bad[0].reg;
    }
    const size_t esize = lv[0].dtype == YOLOXLOSS_DTYPE_FLOAT32 ? sizeof(float) : sizeof(uint16_t);
    uint64_t before[6];
    for (int k = 0; k < 6; k++) before[k] = bufs[0][k] ? checksum(bufs[0][k], counts[0][k % 3] * esize) : 0;
    yoloxloss_status st = yoloxloss_backward(ctx, bad, up, accumulate);
    check_status(st, ctx);
    if (st != YOLOXLOSS_ERR_INVALID_ARGUMENT) fail("overlapping gradient buffers were not refused");
    for (int k = 0; k < 6; k++)
        if (bufs[0][k] && checksum(bufs[0][k], counts[0][k % 3] * esize) != before[k])
            fail("a refused backward wrote a buffer");
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
    memset(found[0], 0x7f, sizeof found[0]);
    const yoloxloss_status ds = yoloxloss_detect(ctx, B, lv, &p, det[0], counts[0], found[0]);
    check_status(ds, ctx);
    if ((ds == YOLOXLOSS_OK) == isnan(p.score_threshold)) fail("detect: a NaN threshold taken, or a valid one refused");
    if (ds != YOLOXLOSS_OK) {
        const unsigned char *bytes = (const unsigned char *)det[0];
        for (size_t i = 0; i < slots * sizeof(yoloxloss_detection); i++)
            if (bytes[i] != 0x7f) fail("failed detect wrote its detections");
        for (int b = 0; b < B; b++)
            if (counts[0][b] != 0x7f7f7f7f || found[0][b] != 0x7f7f7f7f) fail("failed detect wrote counts or found");
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
    const unsigned classes_byte = byte(&r);
    cfg.num_classes = (int)(classes_byte % 6) + ((flags >> 2) & 1 ? 0 : 1); /* 0 is invalid */
    /* Class counts at the bound: 250..255 give YOLOXLOSS_MAX_CLASSES - 2 ..
     * + 3, past it refused at create, at it run with lying buffers below. */
    const int huge_classes = classes_byte >= 250;
    if (huge_classes) cfg.num_classes = YOLOXLOSS_MAX_CLASSES + (int)classes_byte - 252;
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
    /* Thread counts: mostly 0 to 2; 248..255 give YOLOXLOSS_MAX_THREADS - 3
     * .. + 4 (past it refused at create; at it, the work's units cap the
     * team). */
    const unsigned threads_byte = byte(&r);
    cfg.num_threads = threads_byte >= 248 ? YOLOXLOSS_MAX_THREADS + (int)threads_byte - 251 : (int)(threads_byte % 3);
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
    if ((cfg.num_classes > YOLOXLOSS_MAX_CLASSES || cfg.num_threads > YOLOXLOSS_MAX_THREADS) && st == YOLOXLOSS_OK)
        fail("a class or thread count past its bound was accepted");
    if (huge_classes && st == YOLOXLOSS_OK) {
        lying_sizes(ctx, &r);
        yoloxloss_destroy(ctx);
        return 0;
    }
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
    int underflowing_area = 0;
    for (int t = 0; t < total; t++) {
        classes[t] = (int32_t)(byte(&r) % (unsigned)(C + 1)); /* C itself is invalid */
        for (int k = 0; k < 4; k++) {
            boxes[4 * t + k] = box_value(&r, raw_boxes, k < 2);
            if (!(fabsf(boxes[4 * t + k]) <= 1e6f)) sane = 0;
        }
        if (!resolvable(boxes + 4 * t)) sane = 0;
        underflowing_area |= area_underflows(boxes + 4 * t);
    }
    yoloxloss_batch batch = {B, lv, num_gt, total ? classes : NULL, total ? boxes : NULL, NULL};
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
    if (underflowing_area && st == YOLOXLOSS_OK) fail("a gt box whose area w*h underflows float32 was accepted");
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
    /* read whether forward succeeded or not, so that the byte after it is always the same one */
    const unsigned renorm = byte(&r);
    if (st != YOLOXLOSS_OK) {
        if (memcmp(&losses.total, &sentinel.total, 7 * sizeof(float)) != 0 || losses.num_fg != -7)
            fail("failed forward wrote the losses");
        if (yoloxloss_backward(ctx, gr, NULL, 0) != YOLOXLOSS_ERR_NO_FORWARD) fail("backward after failure");
    } else {
        if (mirrored) expect_same_losses(&losses, &mlosses, "16-bit batch against the float32 batch of its values");
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
        yoloxloss_losses rows[3];
        check_image_losses(ctx, B, &losses, rows);
        if (renorm & 1) {
            yoloxloss_status rs = yoloxloss_renormalize(ctx, (float)renorm / 7.0f - 3.0f, NULL);
            check_status(rs, ctx);
            if (mirrored && yoloxloss_renormalize(mctx, (float)renorm / 7.0f - 3.0f, NULL) != rs)
                fail("16-bit batch: renormalize's status differs from the float32 batch's");
        }
        yoloxloss_upstream up = {1.0f, (float)(renorm >> 4) / 4.0f, 0.5f, 0.0f, -1.0f};
        const yoloxloss_upstream *upp = (renorm >> 1) & 1 ? &up : NULL;
        const int accumulate = (renorm >> 2) & 1;
        overlapping_gradients(ctx, lv, gr, L, bufs, counts, byte(&r), upp, accumulate);
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
    check_padded_form(byte(&r), &cfg, lv, B, num_gt, classes, boxes, total);
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
