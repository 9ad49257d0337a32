/* Config, context lifetime, status messages and the growable workspace. */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *yoloxloss_status_string(yoloxloss_status status) {
    switch (status) {
    case YOLOXLOSS_OK: return "success";
    case YOLOXLOSS_ERR_NULL_ARGUMENT: return "a required pointer argument is NULL";
    case YOLOXLOSS_ERR_INVALID_CONFIG: return "a config field is out of range";
    case YOLOXLOSS_ERR_INVALID_SHAPE: return "an image count or grid size is not positive";
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

int yoloxloss_version_number(void) { return YOLOXLOSS_VERSION_NUMBER; }

#define YL_STR2(x) #x
#define YL_STR(x) YL_STR2(x)
const char *yoloxloss_version_string(void) {
    return YL_STR(YOLOXLOSS_VERSION_MAJOR) "." YL_STR(YOLOXLOSS_VERSION_MINOR) "." YL_STR(
        YOLOXLOSS_VERSION_PATCH);
}

static const float DEFAULT_STRIDES[3] = {8.0f, 16.0f, 32.0f};

void yoloxloss_config_defaults(yoloxloss_config *config) {
    if (!config) return;
    memset(config, 0, sizeof *config);
    config->num_classes = 80;
    config->num_levels = 3;
    config->strides = DEFAULT_STRIDES;
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
#ifdef NDEBUG
    config->check_finite = 0;
#else
    config->check_finite = 1;
#endif
}

static yoloxloss_status config_error(char *message, size_t capacity, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static yoloxloss_status config_error(char *message, size_t capacity, const char *fmt, ...) {
    if (message && capacity > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, capacity, fmt, ap);
        va_end(ap);
    }
    return YOLOXLOSS_ERR_INVALID_CONFIG;
}

yoloxloss_status yoloxloss_config_validate(const yoloxloss_config *c, char *message,
                                           size_t capacity) {
    if (message && capacity > 0) message[0] = '\0';
    if (!c) {
        if (message && capacity > 0) snprintf(message, capacity, "config is NULL");
        return YOLOXLOSS_ERR_NULL_ARGUMENT;
    }
    if (c->num_classes < 1)
        return config_error(message, capacity, "num_classes is %d; it must be >= 1", c->num_classes);
    if (c->num_levels < 1)
        return config_error(message, capacity, "num_levels is %d; it must be >= 1", c->num_levels);
    if (!c->strides) {
        if (message && capacity > 0) snprintf(message, capacity, "strides is NULL");
        return YOLOXLOSS_ERR_NULL_ARGUMENT;
    }
    for (int l = 0; l < c->num_levels; l++)
        if (!(isfinite(c->strides[l]) && c->strides[l] > 0.0f))
            return config_error(message, capacity, "strides[%d] is %g; it must be finite and > 0",
                                l, (double)c->strides[l]);
    if (c->assigner != YOLOXLOSS_ASSIGNER_YOLOX && c->assigner != YOLOXLOSS_ASSIGNER_YOLOX_LEGACY)
        return config_error(message, capacity, "assigner is %d; it must be YOLOXLOSS_ASSIGNER_YOLOX (0) "
                            "or YOLOXLOSS_ASSIGNER_YOLOX_LEGACY (1)", (int)c->assigner);
    if (!(isfinite(c->center_radius) && c->center_radius >= 0.0f))
        return config_error(message, capacity, "center_radius is %g; it must be finite and >= 0 "
                            "(0 = the assigner's own)", (double)c->center_radius);
    if (c->candidate_topk < 1)
        return config_error(message, capacity, "candidate_topk is %d; it must be >= 1", c->candidate_topk);
    if (!(isfinite(c->iou_cost_weight) && c->iou_cost_weight >= 0.0f))
        return config_error(message, capacity, "iou_cost_weight is %g; it must be finite and >= 0",
                            (double)c->iou_cost_weight);
    if (!(isfinite(c->cls_cost_weight) && c->cls_cost_weight >= 0.0f))
        return config_error(message, capacity, "cls_cost_weight is %g; it must be finite and >= 0",
                            (double)c->cls_cost_weight);
    if (c->iou_loss != YOLOXLOSS_IOU_LOSS_IOU && c->iou_loss != YOLOXLOSS_IOU_LOSS_GIOU)
        return config_error(message, capacity, "iou_loss is %d; it must be YOLOXLOSS_IOU_LOSS_IOU (0) "
                            "or YOLOXLOSS_IOU_LOSS_GIOU (1)", (int)c->iou_loss);
    const float weights[4] = {c->reg_weight, c->obj_weight, c->cls_weight, c->l1_weight};
    const char *names[4] = {"reg_weight", "obj_weight", "cls_weight", "l1_weight"};
    for (int i = 0; i < 4; i++)
        if (!isfinite(weights[i]))
            return config_error(message, capacity, "%s is %g; it must be finite", names[i],
                                (double)weights[i]);
    if ((c->alloc_fn == NULL) != (c->free_fn == NULL))
        return config_error(message, capacity, "alloc_fn is %s but free_fn is %s; set both or neither "
                            "(neither = malloc/free)", c->alloc_fn ? "set" : "NULL",
                            c->free_fn ? "set" : "NULL");
    if (c->num_threads < 0)
        return config_error(message, capacity, "num_threads is %d; it must be >= 0 (0 = OpenMP's default)",
                            c->num_threads);
    if ((int)c->isa < YOLOXLOSS_ISA_AUTO || (int)c->isa > YOLOXLOSS_ISA_NEON)
        return config_error(message, capacity, "isa is %d; it must be a yoloxloss_isa value (0..4)",
                            (int)c->isa);
    yoloxloss_isa isa = c->isa;
    if (isa == YOLOXLOSS_ISA_AUTO && !yl_isa_from_env(&isa))
        return config_error(message, capacity, "the environment variable YOLOXLOSS_ISA is \"%s\"; it "
                            "must be empty or one of auto, scalar, avx2, avx512, neon", getenv("YOLOXLOSS_ISA"));
    if (!yoloxloss_isa_supported(isa))
        return config_error(message, capacity, "isa %s%s is not available: this build or this CPU "
                            "lacks it", yoloxloss_isa_name(isa),
                            c->isa == YOLOXLOSS_ISA_AUTO ? " (from YOLOXLOSS_ISA)" : "");
    return YOLOXLOSS_OK;
}

enum { NUM_STATE_BUFFERS = 7 };

static void state_buffers(yoloxloss_context *ctx, yl_buffer *out[NUM_STATE_BUFFERS]) {
    yl_buffer *all[NUM_STATE_BUFFERS] = {&ctx->gt_offset, &ctx->gt_classes, &ctx->gt_boxes, &ctx->dynamic_k,
                                         &ctx->matched,   &ctx->pred_iou,   &ctx->image_sums};
    memcpy(out, all, sizeof all);
}

yoloxloss_status yoloxloss_create(const yoloxloss_config *config, yoloxloss_context **out) {
    if (!out) return YOLOXLOSS_ERR_NULL_ARGUMENT;
    *out = NULL;
    yoloxloss_status st = yoloxloss_config_validate(config, NULL, 0);
    if (st != YOLOXLOSS_OK) return st;

    const yl_allocator mem = {config->alloc_fn, config->free_fn, config->alloc_user};
    yoloxloss_context *ctx = yl_calloc(&mem, 1, sizeof *ctx);
    if (!ctx) return YOLOXLOSS_ERR_OUT_OF_MEMORY;
    ctx->mem = mem;
    const size_t L = (size_t)config->num_levels;
    ctx->cfg = *config;
    ctx->num_threads = config->num_threads > 0 ? config->num_threads : omp_get_max_threads();
    if (ctx->num_threads < 1) ctx->num_threads = 1;
    const size_t T = (size_t)ctx->num_threads;
    ctx->strides = yl_calloc(&ctx->mem, L, sizeof *ctx->strides);
    ctx->levels = yl_calloc(&ctx->mem, L, sizeof *ctx->levels);
    ctx->level_offset = yl_calloc(&ctx->mem, L, sizeof *ctx->level_offset);
    ctx->views = yl_calloc(&ctx->mem, T * L, sizeof *ctx->views);
    ctx->scratch = yl_calloc(&ctx->mem, T, sizeof *ctx->scratch);
    if (!ctx->strides || !ctx->levels || !ctx->level_offset || !ctx->views || !ctx->scratch) {
        yoloxloss_destroy(ctx);
        return YOLOXLOSS_ERR_OUT_OF_MEMORY;
    }
    /* Every workspace allocates through the context's allocator. */
    yl_buffer *buffers[NUM_STATE_BUFFERS];
    state_buffers(ctx, buffers);
    for (size_t i = 0; i < NUM_STATE_BUFFERS; i++) buffers[i]->mem = &ctx->mem;
    for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < sizeof ctx->scratch[t].slot / sizeof ctx->scratch[t].slot[0]; i++)
            ctx->scratch[t].slot[i].mem = &ctx->mem;
    memcpy(ctx->strides, config->strides, L * sizeof *ctx->strides);
    ctx->cfg.strides = ctx->strides; /* the caller's array may go away */
    int legacy = config->assigner == YOLOXLOSS_ASSIGNER_YOLOX_LEGACY;
    ctx->assign.assigner = config->assigner;
    ctx->assign.center_radius = config->center_radius > 0.0f ? config->center_radius
                                : legacy                     ? 2.5f
                                                             : 1.5f;
    ctx->assign.penalty = legacy ? 100000.0f : 1000000.0f;
    ctx->assign.topk = config->candidate_topk;
    ctx->assign.iou_cost_weight = config->iou_cost_weight;
    ctx->assign.cls_cost_weight = config->cls_cost_weight;
    ctx->assign.num_classes = config->num_classes;
    yoloxloss_isa isa = config->isa;
    if (isa == YOLOXLOSS_ISA_AUTO) yl_isa_from_env(&isa); /* validated above */
    ctx->kernels = yl_kernels_select(isa);
    ctx->assign.kernels = ctx->kernels;
    *out = ctx;
    return YOLOXLOSS_OK;
}

void yoloxloss_destroy(yoloxloss_context *ctx) {
    if (!ctx) return;
    yl_buffer *buffers[NUM_STATE_BUFFERS];
    state_buffers(ctx, buffers);
    for (size_t i = 0; i < NUM_STATE_BUFFERS; i++) yl_buffer_free(buffers[i]);
    if (ctx->scratch)
        for (int t = 0; t < ctx->num_threads; t++) yl_assign_scratch_free(&ctx->scratch[t]);
    const yl_allocator mem = ctx->mem; /* ctx itself is freed through it */
    yl_free(&mem, ctx->scratch);
    yl_free(&mem, ctx->views);
    yl_free(&mem, ctx->level_offset);
    yl_free(&mem, ctx->levels);
    yl_free(&mem, ctx->strides);
    yl_free(&mem, ctx);
}

int yl_scratch_settle(yoloxloss_context *ctx) {
    const size_t slots = sizeof ctx->scratch[0].slot / sizeof ctx->scratch[0].slot[0];
    for (size_t i = 0; i < slots; i++) {
        size_t most = 0;
        for (int t = 0; t < ctx->num_threads; t++)
            if (ctx->scratch[t].slot[i].bytes > most) most = ctx->scratch[t].slot[i].bytes;
        if (most == 0) continue;
        for (int t = 0; t < ctx->num_threads; t++)
            /* exactly: with headroom, each settle would raise the maximum again */
            if (!yl_buffer_reserve_exact(&ctx->scratch[t].slot[i], most)) return 0;
    }
    return 1;
}

const yoloxloss_config *yoloxloss_get_config(const yoloxloss_context *ctx) {
    return ctx ? &ctx->cfg : NULL;
}

yoloxloss_isa yoloxloss_get_isa(const yoloxloss_context *ctx) {
    return ctx ? ctx->kernels->isa : YOLOXLOSS_ISA_AUTO;
}

const char *yoloxloss_last_error(const yoloxloss_context *ctx) {
    return ctx ? ctx->error : "context is NULL";
}

yoloxloss_status yl_fail(yoloxloss_context *ctx, yoloxloss_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
    return status;
}
