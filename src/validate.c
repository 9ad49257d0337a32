/* The input contract: config defaults and checks, batch, gradient-buffer,
 * upstream and normaliser checks, and the error messages. Every problem is
 * reported before anything is written, with the image, label, level or
 * channel it was found at (docs/reliability.md, section 1). */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "labels.h"
#include "layout.h"
#include "validate.h"

/* ---- status strings and messages ---------------------------------------- */

const char *yoloxloss_status_string(yoloxloss_status status) {
    switch (status) {
    case YOLOXLOSS_OK: return "success";
    case YOLOXLOSS_ERR_NULL_ARGUMENT: return "a required pointer argument is NULL";
    case YOLOXLOSS_ERR_INVALID_CONFIG: return "a config field is out of range";
    case YOLOXLOSS_ERR_INVALID_SHAPE: return "an image count or grid size is not positive, or the levels disagree";
    case YOLOXLOSS_ERR_SIZE_OVERFLOW: return "a buffer size is too large to address";
    case YOLOXLOSS_ERR_INVALID_LABEL: return "a ground-truth count or class id is out of range";
    case YOLOXLOSS_ERR_INVALID_BOX:
        return "a ground-truth box is non-finite, has a non-positive size, or corners or an area float32 cannot hold";
    case YOLOXLOSS_ERR_NONFINITE_INPUT: return "a head output holds NaN or infinity";
    case YOLOXLOSS_ERR_OUT_OF_MEMORY: return "workspace allocation failed";
    case YOLOXLOSS_ERR_NO_FORWARD: return "no successful forward to take the gradient of";
    case YOLOXLOSS_ERR_INVALID_ARGUMENT: return "an argument value or combination is not accepted";
    case YOLOXLOSS_ERR_BUSY: return "another thread's call on the same context has not returned";
    }
    return "unknown status";
}

/* The message of the last failed call without a context, per thread, so
 * that threads creating contexts at once do not overwrite each other's. */
static _Thread_local char thread_error[YL_ERROR_CAPACITY];

static char *message_of(yoloxloss_context *ctx) { return ctx ? ctx->error : thread_error; }

const char *yoloxloss_last_error(const yoloxloss_context *ctx) { return ctx ? ctx->error : thread_error; }

void yl_clear_error(yoloxloss_context *ctx) { message_of(ctx)[0] = '\0'; }

yoloxloss_status yl_fail(yoloxloss_context *ctx, yoloxloss_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message_of(ctx), YL_ERROR_CAPACITY, fmt, ap);
    va_end(ap);
    return status;
}

/* ---- the config ---------------------------------------------------------- */

const float yl_default_strides[YL_DEFAULT_NUM_LEVELS] = {8.0f, 16.0f, 32.0f};

void yoloxloss_config_defaults(yoloxloss_config *config) {
    if (!config) return;
    memset(config, 0, sizeof *config);
    config->num_classes = 80;
    config->num_levels = YL_DEFAULT_NUM_LEVELS;
    config->strides = yl_default_strides;
    config->assigner = YOLOXLOSS_ASSIGNER_YOLOX;
    config->center_radius = 0.0f;
    config->candidate_topk = 10;
    config->iou_cost_weight = 3.0f;
    config->cls_cost_weight = 1.0f;
    config->iou_loss = YOLOXLOSS_IOU_LOSS_IOU;
    config->use_l1 = 0;
    config->reg_weight = 5.0f;
    config->obj_weight = 1.0f;
    config->cls_weight = 1.0f;
    config->l1_weight = 1.0f;
    config->num_threads = 0;
#ifdef NDEBUG /* of the library's build, not the caller's (yoloxloss.h says so) */
    config->check_finite = 0;
#else
    config->check_finite = 1;
#endif
    config->cost_iou_eps = 1e-8f;
    config->cost_penalty = 0.0f;
    config->arithmetic = YOLOXLOSS_ARITHMETIC_YOLOX;
}

/* Where a config check writes its sentence: the caller's buffer, which may
 * be absent. */
typedef struct {
    char *text;
    size_t capacity;
} message_buf;

static yoloxloss_status config_fail(message_buf m, yoloxloss_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static yoloxloss_status config_fail(message_buf m, yoloxloss_status status, const char *fmt, ...) {
    if (m.text && m.capacity > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m.text, m.capacity, fmt, ap);
        va_end(ap);
    }
    return status;
}

static yoloxloss_status check_counts(const yoloxloss_config *c, message_buf m) {
    if (c->num_classes < 1 || c->num_classes > YOLOXLOSS_MAX_CLASSES)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "num_classes is %d; it must be >= 1 and <= YOLOXLOSS_MAX_CLASSES (%d)", c->num_classes,
                           YOLOXLOSS_MAX_CLASSES);
    if (c->num_levels < 1)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG, "num_levels is %d; it must be >= 1", c->num_levels);
    return YOLOXLOSS_OK;
}

/* Strides: one per level, finite, > 0 and increasing, so that levels are
 * in YOLOX's order (finest first) and the batch's grids can be checked
 * against each other. The defaults' array holds three: a config that asks
 * for more levels without its own array would read past it. */
static yoloxloss_status check_strides(const yoloxloss_config *c, message_buf m) {
    if (!c->strides) return config_fail(m, YOLOXLOSS_ERR_NULL_ARGUMENT, "strides is NULL");
    if (c->strides == yl_default_strides && c->num_levels > YL_DEFAULT_NUM_LEVELS)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "num_levels is %d but strides is still the default array {8, 16, 32} of %d "
                           "levels; point strides to an array of %d strides",
                           c->num_levels, YL_DEFAULT_NUM_LEVELS, c->num_levels);
    for (int l = 0; l < c->num_levels; l++) {
        if (!(isfinite(c->strides[l]) && c->strides[l] > 0.0f))
            return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG, "strides[%d] is %g; it must be finite and > 0", l,
                               (double)c->strides[l]);
        if (l > 0 && !(c->strides[l] > c->strides[l - 1]))
            return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                               "strides[%d] is %g after strides[%d] = %g; strides must increase (levels "
                               "finest first, as YOLOX orders them)",
                               l, (double)c->strides[l], l - 1, (double)c->strides[l - 1]);
    }
    return YOLOXLOSS_OK;
}

static yoloxloss_status check_assigner(const yoloxloss_config *c, message_buf m) {
    if (c->assigner != YOLOXLOSS_ASSIGNER_YOLOX && c->assigner != YOLOXLOSS_ASSIGNER_YOLOX_LEGACY)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "assigner is %d; it must be YOLOXLOSS_ASSIGNER_YOLOX (0) or "
                           "YOLOXLOSS_ASSIGNER_YOLOX_LEGACY (1)", (int)c->assigner);
    if (!(isfinite(c->center_radius) && c->center_radius >= 0.0f))
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "center_radius is %g; it must be finite and >= 0 (0 = the assigner's own)",
                           (double)c->center_radius);
    if (c->candidate_topk < 1)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG, "candidate_topk is %d; it must be >= 1",
                           c->candidate_topk);
    const float costs[2] = {c->iou_cost_weight, c->cls_cost_weight};
    const char *names[2] = {"iou_cost_weight", "cls_cost_weight"};
    for (int i = 0; i < 2; i++)
        if (!(isfinite(costs[i]) && costs[i] >= 0.0f))
            return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG, "%s is %g; it must be finite and >= 0", names[i],
                               (double)costs[i]);
    return YOLOXLOSS_OK;
}

/* The matching cost's constants and the arithmetic: an eps of 0 would make
 * the cost of a pair that does not overlap infinite. */
static yoloxloss_status check_cost_constants(const yoloxloss_config *c, message_buf m) {
    if (!(isfinite(c->cost_iou_eps) && c->cost_iou_eps > 0.0f))
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "cost_iou_eps is %g; it must be finite and > 0 (YOLOX 1e-8, MMDetection 1e-7)",
                           (double)c->cost_iou_eps);
    if (!(isfinite(c->cost_penalty) && c->cost_penalty >= 0.0f))
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "cost_penalty is %g; it must be finite and >= 0 (0 = the assigner's own)",
                           (double)c->cost_penalty);
    if (c->arithmetic != YOLOXLOSS_ARITHMETIC_YOLOX && c->arithmetic != YOLOXLOSS_ARITHMETIC_MMDET)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "arithmetic is %d; it must be YOLOXLOSS_ARITHMETIC_YOLOX (0) or "
                           "YOLOXLOSS_ARITHMETIC_MMDET (1)", (int)c->arithmetic);
    return YOLOXLOSS_OK;
}

static yoloxloss_status check_loss_terms(const yoloxloss_config *c, message_buf m) {
    if ((int)c->iou_loss < (int)YOLOXLOSS_IOU_LOSS_IOU || (int)c->iou_loss > (int)YOLOXLOSS_IOU_LOSS_SIOU)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "iou_loss is %d; it must be a yoloxloss_iou_loss value: YOLOXLOSS_IOU_LOSS_IOU (0), "
                           "_GIOU (1), _IOU_LINEAR (2), _DIOU (3), _CIOU (4), _EIOU (5) or _SIOU (6)",
                           (int)c->iou_loss);
    const float weights[4] = {c->reg_weight, c->obj_weight, c->cls_weight, c->l1_weight};
    const char *names[4] = {"reg_weight", "obj_weight", "cls_weight", "l1_weight"};
    for (int i = 0; i < 4; i++)
        if (!isfinite(weights[i]))
            return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG, "%s is %g; it must be finite", names[i],
                               (double)weights[i]);
    return YOLOXLOSS_OK;
}

static yoloxloss_status check_num_threads(int num_threads, message_buf m) {
    if (num_threads < 0 || num_threads > YOLOXLOSS_MAX_THREADS)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "num_threads is %d; it must be 0 (automatic) or 1 to YOLOXLOSS_MAX_THREADS (%d)",
                           num_threads, YOLOXLOSS_MAX_THREADS);
    return YOLOXLOSS_OK;
}

static yoloxloss_status check_resources(const yoloxloss_config *c, message_buf m) {
    if ((c->alloc_fn == NULL) != (c->free_fn == NULL))
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "alloc_fn is %s but free_fn is %s; set both or neither (neither = malloc/free)",
                           c->alloc_fn ? "set" : "NULL", c->free_fn ? "set" : "NULL");
    return check_num_threads(c->num_threads, m);
}

static yoloxloss_status check_isa(const yoloxloss_config *c, message_buf m) {
    if (!yl_isa_known(c->isa))
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG, "isa is %d; it must be a yoloxloss_isa value (%s)",
                           (int)c->isa, yl_isa_names);
    yoloxloss_isa isa = c->isa;
    if (isa == YOLOXLOSS_ISA_AUTO && !yl_isa_from_env(&isa))
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "the environment variable YOLOXLOSS_ISA is \"%s\"; it must be empty or one of %s",
                           getenv("YOLOXLOSS_ISA"), yl_isa_names);
    if (!yoloxloss_isa_supported(isa))
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG, "isa %s%s is not available: this build or this CPU lacks it",
                           yoloxloss_isa_name(isa), c->isa == YOLOXLOSS_ISA_AUTO ? " (from YOLOXLOSS_ISA)" : "");
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_config_validate(const yoloxloss_config *c, char *message, size_t capacity) {
    const message_buf m = {message, capacity};
    if (message && capacity > 0) message[0] = '\0';
    if (!c) return config_fail(m, YOLOXLOSS_ERR_NULL_ARGUMENT, "config is NULL");
    yoloxloss_status (*const checks[])(const yoloxloss_config *, message_buf) = {
        check_counts, check_strides, check_assigner, check_loss_terms, check_resources, check_isa,
        check_cost_constants};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        yoloxloss_status st = checks[i](c, m);
        if (st != YOLOXLOSS_OK) return st;
    }
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_validate_config_for_create(const yoloxloss_config *config) {
    return yoloxloss_config_validate(config, thread_error, sizeof thread_error);
}

yoloxloss_status yl_validate_num_threads(yoloxloss_context *ctx, int num_threads) {
    return check_num_threads(num_threads, (message_buf){ctx->error, sizeof ctx->error});
}

/* ---- the batch ----------------------------------------------------------- */

static int mul_overflows(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }

static yoloxloss_status check_batch_pointers(yoloxloss_context *ctx, const yoloxloss_batch *batch) {
    if (!batch) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch is NULL");
    if (batch->num_images < 1)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_SHAPE, "num_images is %d; it must be >= 1", batch->num_images);
    if (!batch->levels) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.levels is NULL");
    if (!batch->num_gt && !batch->padded)
        return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.num_gt is NULL (and batch.padded too)");
    return YOLOXLOSS_OK;
}

/* Each level: a positive grid, a known dtype, one buffer layout, and sizes
 * that can be addressed; at most INT32_MAX anchors per image in all. */
static yoloxloss_status check_levels(yoloxloss_context *ctx, const yoloxloss_level *levels, int num_images,
                                     size_t *anchors_out) {
    const size_t B = (size_t)num_images, C = (size_t)ctx->cfg.num_classes;
    size_t anchors = 0;
    for (int l = 0; l < ctx->cfg.num_levels; l++) {
        const yoloxloss_level *lv = &levels[l];
        if (lv->height < 1 || lv->width < 1)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_SHAPE,
                           "level %d: grid is %d x %d; height and width must be >= 1", l, lv->height, lv->width);
        if (lv->dtype != YOLOXLOSS_DTYPE_FLOAT32 && lv->dtype != YOLOXLOSS_DTYPE_FLOAT16 &&
            lv->dtype != YOLOXLOSS_DTYPE_BFLOAT16)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                           "level %d: dtype is %d; it must be YOLOXLOSS_DTYPE_FLOAT32 (0), YOLOXLOSS_DTYPE_FLOAT16 "
                           "(1) or YOLOXLOSS_DTYPE_BFLOAT16 (2)", l, (int)lv->dtype);
        int split = (lv->reg != NULL) + (lv->obj != NULL) + (lv->cls != NULL);
        if (lv->fused && split != 0)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                           "level %d: fused and %d of reg/obj/cls are set; give either fused, or all "
                           "three of reg, obj and cls", l, split);
        if (!lv->fused && split != 3)
            return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT,
                           "level %d: give either fused, or all three of reg, obj and cls "
                           "(fused is %s, %d of reg/obj/cls set)", l, lv->fused ? "set" : "NULL", split);
        size_t hw, per_image, total;
        const size_t esize = yl_dtype_size(lv->dtype);
        if (mul_overflows((size_t)lv->height, (size_t)lv->width, &hw) || mul_overflows(hw, 5 + C, &per_image) ||
            mul_overflows(per_image, B, &total) || mul_overflows(total, esize, &total))
            return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                           "level %d: %zu images x %zu channels x %d x %d values of %zu bytes do not fit in size_t",
                           l, B, 5 + C, lv->height, lv->width, esize);
        anchors += hw;
        if (anchors > (size_t)INT32_MAX)
            return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW, "levels 0..%d hold more than %d anchors per image",
                           l, INT32_MAX);
    }
    size_t per_batch;
    if (mul_overflows(anchors, B, &per_batch) || mul_overflows(per_batch, sizeof(float), &per_batch))
        return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW, "%zu images x %zu anchors do not fit in size_t", B,
                       anchors);
    *anchors_out = anchors;
    return YOLOXLOSS_OK;
}

/* ---- alignment ----
 * Head outputs, gradients and the gt arrays are read and written as arrays
 * of their element type (half.h, the kernels): one that does not start at
 * a multiple of its element's size is undefined behaviour in C and faults
 * on some CPUs, so it is refused before anything is read or written. */

/* p (a buffer of `type`, elements of `size` bytes) must be aligned; `what`
 * names it, after "level N: " when level >= 0. */
static yoloxloss_status check_aligned(yoloxloss_context *ctx, const void *p, size_t size, const char *type, int level,
                                      const char *what) {
    const size_t off = (size_t)((uintptr_t)p % size);
    if (off == 0) return YOLOXLOSS_OK;
    char where[24] = "";
    if (level >= 0) snprintf(where, sizeof where, "level %d: ", level);
    return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                   "%s%s is at address %p, %zu byte%s past a multiple of %zu: a buffer of %s must be aligned to "
                   "its element size (%zu bytes)", where, what, p, off, off == 1 ? "" : "s", size, type, size);
}

/* Buffers bufs[k0..k1) of level l (fused, reg, obj, cls), aligned to the
 * level's element size dt; names[k] names them. */
static yoloxloss_status check_level_aligned(yoloxloss_context *ctx, int l, yoloxloss_dtype dt, const void *bufs[4],
                                            const char *const names[4], int k0, int k1) {
    yoloxloss_status st = YOLOXLOSS_OK;
    for (int k = k0; k < k1 && st == YOLOXLOSS_OK; k++)
        st = check_aligned(ctx, bufs[k], yl_dtype_size(dt), yl_dtype_name(dt), l, names[k]);
    return st;
}

/* Each level's head-output buffers (NULL ones pass). */
static yoloxloss_status check_levels_alignment(yoloxloss_context *ctx, const yoloxloss_level *levels) {
    static const char *const names[4] = {"fused", "reg", "obj", "cls"};
    for (int l = 0; l < ctx->cfg.num_levels; l++) {
        const yoloxloss_level *lv = &levels[l];
        const void *bufs[4] = {lv->fused, lv->reg, lv->obj, lv->cls};
        yoloxloss_status st = check_level_aligned(ctx, l, lv->dtype, bufs, names, 0, 4);
        if (st != YOLOXLOSS_OK) return st;
    }
    return YOLOXLOSS_OK;
}

/* The head outputs and the gt arrays; after check_levels (the dtypes are
 * known), before anything reads num_gt. A gt array that is NULL is checked
 * by check_gt_counts. */
static yoloxloss_status check_batch_alignment(yoloxloss_context *ctx, const yoloxloss_batch *batch) {
    yoloxloss_status st;
    if ((st = check_levels_alignment(ctx, batch->levels)) != YOLOXLOSS_OK) return st;
    if ((st = check_aligned(ctx, batch->num_gt, sizeof(int32_t), "int32", -1, "batch.num_gt")) != YOLOXLOSS_OK ||
        (st = check_aligned(ctx, batch->gt_classes, sizeof(int32_t), "int32", -1, "batch.gt_classes")) !=
            YOLOXLOSS_OK ||
        (st = check_aligned(ctx, batch->gt_boxes, sizeof(float), "float", -1, "batch.gt_boxes")) != YOLOXLOSS_OK)
        return st;
    if (batch->padded &&
        ((st = check_aligned(ctx, batch->padded->rows, sizeof(float), "float", -1, "batch.padded->rows")) !=
             YOLOXLOSS_OK ||
         (st = check_aligned(ctx, batch->padded->counts, sizeof(int32_t), "int32", -1, "batch.padded->counts")) !=
             YOLOXLOSS_OK))
        return st;
    return YOLOXLOSS_OK;
}

/* Levels of one image that contradict each other: every level's grid
 * times its stride is the image size, up to the rounding of the grid, so
 * two consecutive levels must agree within the larger stride in both
 * directions. A level given twice, levels out of the config's order, or
 * height and width swapped at one level fail this. */
static yoloxloss_status check_level_geometry(yoloxloss_context *ctx, const yoloxloss_level *levels) {
    const float *s = ctx->cfg.strides;
    for (int l = 1; l < ctx->cfg.num_levels; l++) {
        const yoloxloss_level *a = &levels[l - 1], *b = &levels[l];
        const double tol = s[l] > s[l - 1] ? s[l] : s[l - 1];
        const double ah = a->height * (double)s[l - 1], aw = a->width * (double)s[l - 1];
        const double bh = b->height * (double)s[l], bw = b->width * (double)s[l];
        if (!(fabs(ah - bh) < tol && fabs(aw - bw) < tol))
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_SHAPE,
                           "level %d (grid %d x %d, stride %g) covers %g x %g px but level %d (grid %d x %d, "
                           "stride %g) covers %g x %g px; the levels of one image must agree within one stride "
                           "(%g px): are the levels in the config's stride order, and height and width the "
                           "right way round?",
                           l - 1, a->height, a->width, (double)s[l - 1], ah, aw, l, b->height, b->width,
                           (double)s[l], bh, bw, tol);
    }
    return YOLOXLOSS_OK;
}

/* The assigner holds two [num_gt, candidates] float matrices per image. */
static yoloxloss_status check_image_matrices(yoloxloss_context *ctx, int b, int32_t num_gt, size_t anchors) {
    size_t pairs;
    if (mul_overflows((size_t)num_gt, anchors, &pairs) || mul_overflows(pairs, 2 * sizeof(float), &pairs))
        return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                       "image %d: %" PRId32 " boxes x %zu anchors cost matrices do not fit in size_t", b, num_gt,
                       anchors);
    return YOLOXLOSS_OK;
}

/* gt counts, and the per-image IoU and cost matrices they imply. */
static yoloxloss_status check_gt_counts(yoloxloss_context *ctx, const yoloxloss_batch *batch, size_t anchors) {
    int64_t total_gt = 0;
    for (int b = 0; b < batch->num_images; b++) {
        if (batch->num_gt[b] < 0)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL, "image %d: num_gt is %" PRId32 "; it must be >= 0", b,
                           batch->num_gt[b]);
        total_gt += batch->num_gt[b];
        yoloxloss_status st = check_image_matrices(ctx, b, batch->num_gt[b], anchors);
        if (st != YOLOXLOSS_OK) return st;
    }
    if (total_gt > 0 && !batch->gt_classes)
        return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT,
                       "batch.gt_classes is NULL but there are %" PRId64 " ground-truth boxes", total_gt);
    if (total_gt > 0 && !batch->gt_boxes)
        return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT,
                       "batch.gt_boxes is NULL but there are %" PRId64 " ground-truth boxes", total_gt);
    return YOLOXLOSS_OK;
}

/* A box whose float32 area w*h underflows to 0 (sides of about 1e-23 px
 * each, or a subnormal side times a small one): with a prediction of area
 * 0 the assignment's IoU is 0 / 0 (YOLOX's arithmetic, as in PyTorch),
 * which makes the class target and the loss NaN. Refused in both
 * arithmetics, so that what a label may be does not depend on the config. */
static yoloxloss_status check_box_area(yoloxloss_context *ctx, const char *what, int b, int32_t r, const float *box) {
    if (box[2] * box[3] == 0.0f)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX,
                       "image %d, %s %" PRId32 ": box (%g, %g, %g, %g) has an area w*h = %g that underflows "
                       "float32 to 0 (the smallest positive float32 is %g)", b, what, r, (double)box[0],
                       (double)box[1], (double)box[2], (double)box[3], (double)box[2] * (double)box[3], 0x1p-149);
    return YOLOXLOSS_OK;
}

/* One label: a class id in [0, C), and a box the IoU can be computed on.
 * `what` names its row in messages: "label" (flat) or "row" (padded). */
static yoloxloss_status check_label(yoloxloss_context *ctx, const char *what, int b, int32_t r, int32_t cls,
                                    const float *box) {
    const int C = ctx->cfg.num_classes;
    if (cls < 0 || cls >= C)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL, "image %d, %s %" PRId32 ": class id %" PRId32
                       " is outside [0, %d)", b, what, r, cls, C);
    static const char *field[4] = {"cx", "cy", "w", "h"};
    for (int k = 0; k < 4; k++)
        if (!isfinite(box[k]))
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX, "image %d, %s %" PRId32 ": %s is %g", b, what, r,
                           field[k], (double)box[k]);
    for (int k = 2; k < 4; k++)
        if (!(box[k] > 0.0f))
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX, "image %d, %s %" PRId32 ": %s is %g; box sizes must be > 0",
                           b, what, r, field[k], (double)box[k]);
    /* The IoU needs the corners and the area in float32: beyond that it is
     * NaN (in PyTorch too), so the box is refused here. */
    const float x1 = box[0] - box[2] / 2.0f, x2 = box[0] + box[2] / 2.0f;
    const float y1 = box[1] - box[3] / 2.0f, y2 = box[1] + box[3] / 2.0f;
    if (!(isfinite(x1) && isfinite(x2) && isfinite(y1) && isfinite(y2) && isfinite(box[2] * box[3])))
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX,
                       "image %d, %s %" PRId32 ": box (%g, %g, %g, %g) has a corner or an area (w*h = %g) "
                       "beyond float32's range", b, what, r, (double)box[0], (double)box[1], (double)box[2],
                       (double)box[3], (double)(box[2] * box[3]));
    return check_box_area(ctx, what, b, r, box);
}

static yoloxloss_status check_labels(yoloxloss_context *ctx, const yoloxloss_batch *batch) {
    int64_t row = 0;
    for (int b = 0; b < batch->num_images; b++)
        for (int32_t r = 0; r < batch->num_gt[b]; r++, row++) {
            yoloxloss_status st = check_label(ctx, "label", b, r, batch->gt_classes[row], batch->gt_boxes + 4 * row);
            if (st != YOLOXLOSS_OK) return st;
        }
    return YOLOXLOSS_OK;
}

/* ---- padded labels (labels.h) --------------------------------------------- */

/* The struct's own fields: each choice known, the image size usable, the
 * array addressable; the flat fields unset. */
static yoloxloss_status check_padded_fields(yoloxloss_context *ctx, const yoloxloss_batch *batch) {
    const yoloxloss_padded_labels *p = batch->padded;
    if (batch->num_gt || batch->gt_classes || batch->gt_boxes)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                       "batch.padded is set, so batch.num_gt, gt_classes and gt_boxes must be NULL (num_gt %s, "
                       "gt_classes %s, gt_boxes %s): give the ground truth one way",
                       batch->num_gt ? "set" : "NULL", batch->gt_classes ? "set" : "NULL",
                       batch->gt_boxes ? "set" : "NULL");
    if (!p->rows) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.padded->rows is NULL");
    if (p->max_rows < 1)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT, "padded labels: max_rows is %d; it must be >= 1",
                       p->max_rows);
    if (p->row_floats != 0 && p->row_floats < 5)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                       "padded labels: row_floats is %d; it must be >= 5 (class and box), or 0 for 5", p->row_floats);
    if (p->order != YOLOXLOSS_LABELS_CLASS_FIRST && p->order != YOLOXLOSS_LABELS_CLASS_LAST)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                       "padded labels: order is %d; it must be YOLOXLOSS_LABELS_CLASS_FIRST (0) or "
                       "YOLOXLOSS_LABELS_CLASS_LAST (1)", (int)p->order);
    const float size[2] = {p->image_width, p->image_height};
    static const char *name[2] = {"image_width", "image_height"};
    for (int k = 0; k < 2; k++)
        if (!(isfinite(size[k]) && size[k] >= 0.0f))
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                           "padded labels: %s is %g; it must be finite and >= 0 (0 = what level 0 implies)", name[k],
                           (double)size[k]);
    size_t floats;
    const size_t row_floats = p->row_floats == 0 ? 5 : (size_t)p->row_floats;
    if (mul_overflows((size_t)batch->num_images, (size_t)p->max_rows, &floats) ||
        mul_overflows(floats, row_floats, &floats) || mul_overflows(floats, sizeof(float), &floats))
        return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                       "padded labels: %d images x %d rows x %zu floats do not fit in size_t", batch->num_images,
                       p->max_rows, row_floats);
    return YOLOXLOSS_OK;
}

/* Image b's rows: its count, or its end row with nothing but padding after it. */
static yoloxloss_status check_padded_count(yoloxloss_context *ctx, const yl_padded_reader *rd, int b, int32_t *n) {
    const yoloxloss_padded_labels *p = rd->p;
    if (p->counts) {
        *n = p->counts[b];
        if (*n < 0 || *n > p->max_rows)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL,
                           "image %d: counts[%d] is %" PRId32 "; it must be in [0, max_rows = %d]", b, b, *n,
                           p->max_rows);
        return YOLOXLOSS_OK;
    }
    *n = yl_padded_end(rd, b);
    for (int64_t r = (int64_t)*n + 1; r < p->max_rows; r++) {
        const float *row = yl_padded_row(rd, b, (int)r);
        if (!yl_padded_is_padding(rd, row)) {
            const float *box = row + rd->box_at;
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL,
                           "image %d: row %" PRId32 " ends its labels (its box is all zeros) but row %" PRId64
                           " after it is not padding (box %g, %g, %g, %g): a hole in the padding would drop the "
                           "labels after it; put every label before the first zero row, or give counts",
                           b, *n, r, (double)box[0], (double)box[1], (double)box[2], (double)box[3]);
        }
    }
    return YOLOXLOSS_OK;
}

/* One used row: an integer class, not a zero-filled missing label, and a
 * box that passes check_label once scaled. */
static yoloxloss_status check_padded_row(yoloxloss_context *ctx, const yl_padded_reader *rd, int b, int32_t r) {
    const float *row = yl_padded_row(rd, b, r);
    const float cls = row[rd->class_at];
    const int C = ctx->cfg.num_classes;
    /* NaN fails every comparison; the range test also keeps the conversion defined */
    if (!(cls >= 0.0f && (double)cls < (double)C && cls == truncf(cls)))
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL,
                       "image %d, row %" PRId32 ": class %g is not an integer in [0, %d)", b, r, (double)cls, C);
    const float *raw = row + rd->box_at;
    if (raw[0] == 0.0f && raw[1] == 0.0f)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX,
                       "image %d, row %" PRId32 ": box centred exactly at (0, 0) (w %g, h %g): this looks like a "
                       "missing label that a framework filled with zeros, not an object; end the labels before "
                       "it (counts, or an all-zero row), or give such a box in the flat form",
                       b, r, (double)raw[2], (double)raw[3]);
    float box[4];
    yl_padded_box(rd, row, box);
    yoloxloss_status st = check_label(ctx, "row", b, r, (int32_t)cls, box);
    if (st != YOLOXLOSS_OK && rd->p->normalized) {
        char *msg = message_of(ctx);
        const size_t used = strlen(msg);
        snprintf(msg + used, YL_ERROR_CAPACITY - used, " (scaled from (%g, %g, %g, %g) by the image size %g x %g)",
                 (double)raw[0], (double)raw[1], (double)raw[2], (double)raw[3], (double)rd->scale_x,
                 (double)rd->scale_y);
    }
    return st;
}

static yoloxloss_status check_padded_labels(yoloxloss_context *ctx, const yoloxloss_batch *batch, size_t anchors) {
    yoloxloss_status st = check_padded_fields(ctx, batch);
    if (st != YOLOXLOSS_OK) return st;
    const yl_padded_reader rd = yl_padded_reader_of(batch, ctx->cfg.strides);
    for (int b = 0; b < batch->num_images; b++) {
        int32_t n;
        if ((st = check_padded_count(ctx, &rd, b, &n)) != YOLOXLOSS_OK) return st;
        if ((st = check_image_matrices(ctx, b, n, anchors)) != YOLOXLOSS_OK) return st;
        for (int32_t r = 0; r < n; r++)
            if ((st = check_padded_row(ctx, &rd, b, r)) != YOLOXLOSS_OK) return st;
    }
    return YOLOXLOSS_OK;
}

static const char *channel_name(size_t c) {
    static const char *names[5] = {"reg tx", "reg ty", "reg tw", "reg th", "obj"};
    return c < 5 ? names[c] : "cls";
}

/* The first non-finite head output, if any, in (level, image, channel,
 * position) order. A float16 or bfloat16 value is named by its float32
 * value (inf, nan) and the level's dtype. */
static yoloxloss_status check_outputs_finite(yoloxloss_context *ctx, const yoloxloss_level *levels,
                                             int num_images) {
    const int C = ctx->cfg.num_classes;
    for (int l = 0; l < ctx->cfg.num_levels; l++) {
        const yoloxloss_level *lv = &levels[l];
        const size_t hw = (size_t)lv->height * (size_t)lv->width;
        for (int b = 0; b < num_images; b++) {
            yl_level_view v = yl_input_view(lv, C, b);
            for (size_t c = 0; c < 5 + (size_t)C; c++) {
                const void *plane = c < 4    ? yl_elem_at(v.reg, v.dtype, c * hw)
                                    : c == 4 ? v.obj
                                             : yl_elem_at(v.cls, v.dtype, (c - 5) * hw);
                for (size_t p = 0; p < hw; p++) {
                    const float value = yl_elem_get(plane, v.dtype, p);
                    if (!isfinite(value))
                        return yl_fail(ctx, YOLOXLOSS_ERR_NONFINITE_INPUT,
                                       "level %d, image %d, channel %zu (%s%s), position (row %zu, col %zu): "
                                       "value is %g%s%s", l, b, c, channel_name(c), c >= 5 ? " logit" : "",
                                       p / (size_t)lv->width, p % (size_t)lv->width, (double)value,
                                       v.dtype == YOLOXLOSS_DTYPE_FLOAT32 ? "" : " in ",
                                       v.dtype == YOLOXLOSS_DTYPE_FLOAT32 ? "" : yl_dtype_name(v.dtype));
                }
            }
        }
    }
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_validate_batch(yoloxloss_context *ctx, const yoloxloss_batch *batch) {
    size_t anchors = 0;
    yoloxloss_status st;
    if ((st = check_batch_pointers(ctx, batch)) != YOLOXLOSS_OK) return st;
    if ((st = check_levels(ctx, batch->levels, batch->num_images, &anchors)) != YOLOXLOSS_OK) return st;
    if ((st = check_batch_alignment(ctx, batch)) != YOLOXLOSS_OK) return st;
    if ((st = check_level_geometry(ctx, batch->levels)) != YOLOXLOSS_OK) return st;
    if (batch->padded) {
        if ((st = check_padded_labels(ctx, batch, anchors)) != YOLOXLOSS_OK) return st;
    } else {
        if ((st = check_gt_counts(ctx, batch, anchors)) != YOLOXLOSS_OK) return st;
        if ((st = check_labels(ctx, batch)) != YOLOXLOSS_OK) return st;
    }
    if (ctx->cfg.check_finite && (st = check_outputs_finite(ctx, batch->levels, batch->num_images)) != YOLOXLOSS_OK)
        return st;
    return YOLOXLOSS_OK;
}

/* ---- decode and detect ----------------------------------------------------- */

yoloxloss_status yl_validate_levels(yoloxloss_context *ctx, int num_images, const yoloxloss_level *levels,
                                    size_t *anchors) {
    yoloxloss_status st;
    if (num_images < 1)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_SHAPE, "num_images is %d; it must be >= 1", num_images);
    if (!levels) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "levels is NULL");
    if ((st = check_levels(ctx, levels, num_images, anchors)) != YOLOXLOSS_OK) return st;
    if ((st = check_levels_alignment(ctx, levels)) != YOLOXLOSS_OK) return st;
    if ((st = check_level_geometry(ctx, levels)) != YOLOXLOSS_OK) return st;
    if (ctx->cfg.check_finite && (st = check_outputs_finite(ctx, levels, num_images)) != YOLOXLOSS_OK) return st;
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_validate_decode_outputs(yoloxloss_context *ctx, int num_images, size_t anchors,
                                            const float *boxes, const float *scores) {
    yoloxloss_status st;
    if ((st = check_aligned(ctx, boxes, sizeof(float), "float", -1, "boxes")) != YOLOXLOSS_OK ||
        (st = check_aligned(ctx, scores, sizeof(float), "float", -1, "scores")) != YOLOXLOSS_OK)
        return st;
    size_t n, bytes;
    const size_t C = (size_t)ctx->cfg.num_classes;
    if (mul_overflows((size_t)num_images, anchors, &n)) n = SIZE_MAX;
    if (boxes && mul_overflows(n, 4 * sizeof(float), &bytes))
        return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW, "boxes: %d images x %zu anchors x 4 floats do not fit in "
                       "size_t", num_images, anchors);
    if (scores && (mul_overflows(n, C, &bytes) || mul_overflows(bytes, sizeof(float), &bytes)))
        return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW, "scores: %d images x %zu anchors x %zu classes of floats do "
                       "not fit in size_t", num_images, anchors, C);
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_validate_detect(yoloxloss_context *ctx, int num_images, const yoloxloss_detect_params *params,
                                    const yoloxloss_detection *detections, const int32_t *counts,
                                    const int32_t *found) {
    if (!params) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "params is NULL");
    if (!isfinite(params->score_threshold))
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT, "params.score_threshold is %g; it must be finite",
                       (double)params->score_threshold);
    if (!isfinite(params->nms_threshold))
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT, "params.nms_threshold is %g; it must be finite",
                       params->nms_threshold);
    if (params->max_detections < 1)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT, "params.max_detections is %d; it must be >= 1",
                       params->max_detections);
    size_t bytes;
    if (mul_overflows((size_t)num_images, (size_t)params->max_detections, &bytes) ||
        mul_overflows(bytes, sizeof(yoloxloss_detection), &bytes))
        return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                       "detections: %d images x params.max_detections %d do not fit in size_t", num_images,
                       params->max_detections);
    if (!detections) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "detections is NULL");
    if (!counts) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "counts is NULL");
    yoloxloss_status st;
    if ((st = check_aligned(ctx, detections, _Alignof(yoloxloss_detection), "yoloxloss_detection", -1,
                            "detections")) != YOLOXLOSS_OK ||
        (st = check_aligned(ctx, counts, sizeof(int32_t), "int32", -1, "counts")) != YOLOXLOSS_OK ||
        (st = check_aligned(ctx, found, sizeof(int32_t), "int32", -1, "found")) != YOLOXLOSS_OK)
        return st;
    return YOLOXLOSS_OK;
}

/* ---- backward and renormalize -------------------------------------------- */

/* A caller's buffer as a byte range, named for messages. */
typedef struct {
    uintptr_t lo, hi; /* [lo, hi) */
    int level;
    const char *name; /* "fused", "reg", "obj", "cls" */
} byte_range;

/* The buffers of level l of the last forward (inputs) or of g (its
 * gradients, same layout): 1 or 3 ranges into out. Their sizes fit in
 * size_t: check_levels made sure at forward. */
static int level_ranges(const yl_step *s, int l, const yoloxloss_level_grad *g, byte_range *out) {
    const yoloxloss_level *lv = &s->levels[l];
    const size_t hw = (size_t)lv->height * (size_t)lv->width, esize = yl_dtype_size(lv->dtype);
    const size_t image = hw * esize * (size_t)s->num_images, C = (size_t)s->num_classes;
    const void *fused = g ? g->fused : lv->fused;
    if (lv->fused) {
        out[0] = (byte_range){(uintptr_t)fused, (uintptr_t)fused + (5 + C) * image, l, "fused"};
        return 1;
    }
    const void *ptr[3] = {g ? g->reg : lv->reg, g ? g->obj : lv->obj, g ? g->cls : lv->cls};
    const size_t planes[3] = {4, 1, C};
    static const char *names[3] = {"reg", "obj", "cls"};
    for (int i = 0; i < 3; i++) out[i] = (byte_range){(uintptr_t)ptr[i], (uintptr_t)ptr[i] + planes[i] * image, l, names[i]};
    return 3;
}

static int ranges_overlap(byte_range a, byte_range b) { return a.lo < b.hi && b.lo < a.hi; }

/* Gradient buffers that share bytes with an input of the last forward
 * (backward reads the inputs while it writes: an in-place gradient would
 * read values it already overwrote) or with each other (two writers of one
 * element, whose order and threads decide the result): refused, naming
 * both. A handful of comparisons per level pair. */
static yoloxloss_status check_grad_overlaps(yoloxloss_context *ctx, const yoloxloss_level_grad *grads) {
    const yl_step *s = &ctx->step;
    for (int lg = 0; lg < s->num_levels; lg++) {
        byte_range gr[3];
        const int ng = level_ranges(s, lg, &grads[lg], gr);
        for (int li = 0; li < s->num_levels; li++) {
            byte_range in[3], other[3];
            const int ni = level_ranges(s, li, NULL, in);
            const int no = li > lg ? level_ranges(s, li, &grads[li], other) : 0;
            for (int a = 0; a < ng; a++) {
                for (int b = 0; b < ni; b++)
                    if (ranges_overlap(gr[a], in[b]))
                        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                                       "grads[%d].%s overlaps the head outputs of level %d (%s): backward reads "
                                       "the outputs while it writes the gradients; give the gradients memory of "
                                       "their own", lg, gr[a].name, li, in[b].name);
                for (int b = 0; b < no; b++)
                    if (ranges_overlap(gr[a], other[b]))
                        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                                       "grads[%d].%s overlaps grads[%d].%s; every gradient buffer needs memory of "
                                       "its own", lg, gr[a].name, li, other[b].name);
            }
            /* a split level's own three gradient buffers */
            if (li == lg)
                for (int a = 0; a < ng; a++)
                    for (int b = a + 1; b < ng; b++)
                        if (ranges_overlap(gr[a], gr[b]))
                            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT,
                                           "grads[%d].%s overlaps grads[%d].%s; every gradient buffer needs "
                                           "memory of its own", lg, gr[a].name, lg, gr[b].name);
        }
    }
    return YOLOXLOSS_OK;
}

/* Every gradient buffer backward writes (those of the inputs' layout)
 * aligned to its level's element size, as the inputs were
 * (check_batch_alignment). */
static yoloxloss_status check_grad_alignment(yoloxloss_context *ctx, const yoloxloss_level_grad *grads) {
    static const char *const names[4] = {"gradient buffer fused", "gradient buffer reg", "gradient buffer obj",
                                         "gradient buffer cls"};
    for (int l = 0; l < ctx->cfg.num_levels; l++) {
        const int fused = ctx->step.levels[l].fused != NULL;
        const void *bufs[4] = {grads[l].fused, grads[l].reg, grads[l].obj, grads[l].cls};
        yoloxloss_status st =
            check_level_aligned(ctx, l, ctx->step.levels[l].dtype, bufs, names, fused ? 0 : 1, fused ? 1 : 4);
        if (st != YOLOXLOSS_OK) return st;
    }
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_validate_backward(yoloxloss_context *ctx, const yoloxloss_level_grad *grads,
                                      const yoloxloss_upstream *upstream) {
    if (!grads) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "grads is NULL");
    for (int l = 0; l < ctx->cfg.num_levels; l++) {
        const yoloxloss_level_grad *g = &grads[l];
        int fused_in = ctx->step.levels[l].fused != NULL;
        int ok = fused_in ? g->fused != NULL : (g->reg && g->obj && g->cls);
        if (!ok)
            return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "level %d: the inputs were %s, so grads[%d] needs %s",
                           l, fused_in ? "fused" : "split", l, fused_in ? "fused set" : "reg, obj and cls all set");
    }
    yoloxloss_status st = check_grad_alignment(ctx, grads);
    if (st != YOLOXLOSS_OK || (st = check_grad_overlaps(ctx, grads)) != YOLOXLOSS_OK) return st;
    if (upstream) {
        static const char *names[5] = {"total", "iou", "obj", "cls", "l1"};
        const float vals[5] = {upstream->total, upstream->iou, upstream->obj, upstream->cls, upstream->l1};
        for (int i = 0; i < 5; i++)
            if (!isfinite(vals[i]))
                return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT, "upstream.%s is %g; it must be finite", names[i],
                               (double)vals[i]);
    }
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_validate_normalizer(yoloxloss_context *ctx, float normalizer) {
    if (!(isfinite(normalizer) && normalizer > 0.0f))
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_ARGUMENT, "normalizer is %g; it must be finite and > 0",
                       (double)normalizer);
    return YOLOXLOSS_OK;
}
