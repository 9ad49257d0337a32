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
    case YOLOXLOSS_ERR_INVALID_BOX: return "a ground-truth box is non-finite or has a non-positive size";
    case YOLOXLOSS_ERR_NONFINITE_INPUT: return "a head output holds NaN or infinity";
    case YOLOXLOSS_ERR_OUT_OF_MEMORY: return "workspace allocation failed";
    case YOLOXLOSS_ERR_NO_FORWARD: return "no successful forward to take the gradient of";
    case YOLOXLOSS_ERR_INVALID_ARGUMENT: return "an argument value or combination is not accepted";
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
    if (c->num_classes < 1)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG, "num_classes is %d; it must be >= 1", c->num_classes);
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

static yoloxloss_status check_resources(const yoloxloss_config *c, message_buf m) {
    if ((c->alloc_fn == NULL) != (c->free_fn == NULL))
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "alloc_fn is %s but free_fn is %s; set both or neither (neither = malloc/free)",
                           c->alloc_fn ? "set" : "NULL", c->free_fn ? "set" : "NULL");
    if (c->num_threads < 0)
        return config_fail(m, YOLOXLOSS_ERR_INVALID_CONFIG,
                           "num_threads is %d; it must be >= 0 (0 = OpenMP's default)", c->num_threads);
    return YOLOXLOSS_OK;
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

/* ---- the batch ----------------------------------------------------------- */

static int mul_overflows(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }

static yoloxloss_status check_batch_pointers(yoloxloss_context *ctx, const yoloxloss_batch *batch) {
    if (!batch) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch is NULL");
    if (batch->num_images < 1)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_SHAPE, "num_images is %d; it must be >= 1", batch->num_images);
    if (!batch->levels) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.levels is NULL");
    if (!batch->num_gt) return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT, "batch.num_gt is NULL");
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

/* gt counts, and the per-image IoU and cost matrices they imply. */
static yoloxloss_status check_gt_counts(yoloxloss_context *ctx, const yoloxloss_batch *batch, size_t anchors) {
    int64_t total_gt = 0;
    for (int b = 0; b < batch->num_images; b++) {
        if (batch->num_gt[b] < 0)
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL, "image %d: num_gt is %" PRId32 "; it must be >= 0", b,
                           batch->num_gt[b]);
        total_gt += batch->num_gt[b];
        /* The assigner holds two [num_gt, candidates] float matrices per image. */
        size_t pairs;
        if (mul_overflows((size_t)batch->num_gt[b], anchors, &pairs) || mul_overflows(pairs, 2 * sizeof(float), &pairs))
            return yl_fail(ctx, YOLOXLOSS_ERR_SIZE_OVERFLOW,
                           "image %d: %" PRId32 " boxes x %zu anchors cost matrices do not fit in size_t", b,
                           batch->num_gt[b], anchors);
    }
    if (total_gt > 0 && !batch->gt_classes)
        return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT,
                       "batch.gt_classes is NULL but there are %" PRId64 " ground-truth boxes", total_gt);
    if (total_gt > 0 && !batch->gt_boxes)
        return yl_fail(ctx, YOLOXLOSS_ERR_NULL_ARGUMENT,
                       "batch.gt_boxes is NULL but there are %" PRId64 " ground-truth boxes", total_gt);
    return YOLOXLOSS_OK;
}

/* One label: a class id in [0, C), and a box the IoU can be computed on. */
static yoloxloss_status check_label(yoloxloss_context *ctx, int b, int32_t r, int32_t cls, const float *box) {
    const int C = ctx->cfg.num_classes;
    if (cls < 0 || cls >= C)
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_LABEL, "image %d, label %" PRId32 ": class id %" PRId32
                       " is outside [0, %d)", b, r, cls, C);
    static const char *field[4] = {"cx", "cy", "w", "h"};
    for (int k = 0; k < 4; k++)
        if (!isfinite(box[k]))
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX, "image %d, label %" PRId32 ": %s is %g", b, r, field[k],
                           (double)box[k]);
    for (int k = 2; k < 4; k++)
        if (!(box[k] > 0.0f))
            return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX, "image %d, label %" PRId32 ": %s is %g; box sizes must be > 0",
                           b, r, field[k], (double)box[k]);
    /* The IoU needs the corners and the area in float32: beyond that it is
     * NaN (in PyTorch too), so the box is refused here. */
    const float x1 = box[0] - box[2] / 2.0f, x2 = box[0] + box[2] / 2.0f;
    const float y1 = box[1] - box[3] / 2.0f, y2 = box[1] + box[3] / 2.0f;
    if (!(isfinite(x1) && isfinite(x2) && isfinite(y1) && isfinite(y2) && isfinite(box[2] * box[3])))
        return yl_fail(ctx, YOLOXLOSS_ERR_INVALID_BOX,
                       "image %d, label %" PRId32 ": box (%g, %g, %g, %g) has a corner or an area (w*h = %g) "
                       "beyond float32's range", b, r, (double)box[0], (double)box[1], (double)box[2],
                       (double)box[3], (double)(box[2] * box[3]));
    return YOLOXLOSS_OK;
}

static yoloxloss_status check_labels(yoloxloss_context *ctx, const yoloxloss_batch *batch) {
    int64_t row = 0;
    for (int b = 0; b < batch->num_images; b++)
        for (int32_t r = 0; r < batch->num_gt[b]; r++, row++) {
            yoloxloss_status st = check_label(ctx, b, r, batch->gt_classes[row], batch->gt_boxes + 4 * row);
            if (st != YOLOXLOSS_OK) return st;
        }
    return YOLOXLOSS_OK;
}

static const char *channel_name(int c) {
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
            for (int c = 0; c < 5 + C; c++) {
                const void *plane = c < 4    ? yl_elem_at(v.reg, v.dtype, (size_t)c * hw)
                                    : c == 4 ? v.obj
                                             : yl_elem_at(v.cls, v.dtype, (size_t)(c - 5) * hw);
                for (size_t p = 0; p < hw; p++) {
                    const float value = yl_elem_get(plane, v.dtype, p);
                    if (!isfinite(value))
                        return yl_fail(ctx, YOLOXLOSS_ERR_NONFINITE_INPUT,
                                       "level %d, image %d, channel %d (%s%s), position (row %zu, col %zu): "
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
    if ((st = check_level_geometry(ctx, batch->levels)) != YOLOXLOSS_OK) return st;
    if ((st = check_gt_counts(ctx, batch, anchors)) != YOLOXLOSS_OK) return st;
    if ((st = check_labels(ctx, batch)) != YOLOXLOSS_OK) return st;
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
    if ((st = check_level_geometry(ctx, levels)) != YOLOXLOSS_OK) return st;
    if (ctx->cfg.check_finite && (st = check_outputs_finite(ctx, levels, num_images)) != YOLOXLOSS_OK) return st;
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_validate_decode_outputs(yoloxloss_context *ctx, int num_images, size_t anchors, int boxes,
                                            int scores) {
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
                                    const yoloxloss_detection *detections, const int32_t *counts) {
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
    return YOLOXLOSS_OK;
}

/* ---- backward and renormalize -------------------------------------------- */

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
