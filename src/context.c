/* Context lifetime: create (config copied, kernel table chosen, workspaces
 * pointed at the caller's allocator), destroy, and the accessors. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "dispatch.h"
#include "validate.h"

int yoloxloss_version_number(void) { return YOLOXLOSS_VERSION_NUMBER; }

#define YL_STR2(x) #x
#define YL_STR(x) YL_STR2(x)
const char *yoloxloss_version_string(void) {
    return YL_STR(YOLOXLOSS_VERSION_MAJOR) "." YL_STR(YOLOXLOSS_VERSION_MINOR) "." YL_STR(YOLOXLOSS_VERSION_PATCH);
}

/* Every growable buffer the context owns, for pointing them at its
 * allocator and freeing them in one loop. */
enum { NUM_BUFFERS = YL_STEP_BUFFERS + 1 + YL_DETECT_BUFFERS };

static void context_buffers(yoloxloss_context *ctx, yl_buffer *out[NUM_BUFFERS]) {
    yl_step_buffers(&ctx->step, out);
    out[YL_STEP_BUFFERS] = &ctx->image_sums;
    yl_detect_buffers(&ctx->detect, out + YL_STEP_BUFFERS + 1);
}

yoloxloss_status yoloxloss_create(const yoloxloss_config *config, yoloxloss_context **out) {
    yl_clear_error(NULL);
    if (!out) return yl_fail(NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "out is NULL");
    *out = NULL;
    yoloxloss_status st = yl_validate_config_for_create(config);
    if (st != YOLOXLOSS_OK) return st;

    const yl_allocator mem = {config->alloc_fn, config->free_fn, config->alloc_user};
    yoloxloss_context *ctx = yl_calloc(&mem, 1, sizeof *ctx);
    if (!ctx) return yl_fail(NULL, YOLOXLOSS_ERR_OUT_OF_MEMORY, "could not allocate the context");
    ctx->mem = mem;
    const size_t L = (size_t)config->num_levels;
    ctx->cfg = *config;
    ctx->num_threads = config->num_threads > 0 ? config->num_threads : omp_get_max_threads();
    if (ctx->num_threads < 1) ctx->num_threads = 1;
    const size_t T = (size_t)ctx->num_threads;
    ctx->strides = yl_calloc(&ctx->mem, L, sizeof *ctx->strides);
    ctx->step.levels = yl_calloc(&ctx->mem, L, sizeof *ctx->step.levels);
    ctx->step.level_offset = yl_calloc(&ctx->mem, L, sizeof *ctx->step.level_offset);
    ctx->views = yl_calloc(&ctx->mem, T * L, sizeof *ctx->views);
    ctx->scratch = yl_calloc(&ctx->mem, T, sizeof *ctx->scratch);
    if (!ctx->strides || !ctx->step.levels || !ctx->step.level_offset || !ctx->views || !ctx->scratch) {
        yoloxloss_destroy(ctx);
        return yl_fail(NULL, YOLOXLOSS_ERR_OUT_OF_MEMORY, "could not allocate the context's per-level and "
                       "per-thread arrays (%zu levels, %zu threads)", L, T);
    }
    yl_buffer *buffers[NUM_BUFFERS];
    context_buffers(ctx, buffers);
    for (size_t i = 0; i < NUM_BUFFERS; i++) buffers[i]->mem = &ctx->mem;
    for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < sizeof ctx->scratch[t].slot / sizeof ctx->scratch[t].slot[0]; i++)
            ctx->scratch[t].slot[i].mem = &ctx->mem;
    memcpy(ctx->strides, config->strides, L * sizeof *ctx->strides);
    ctx->cfg.strides = ctx->strides; /* the caller's array may go away */
    ctx->step.num_levels = config->num_levels;
    ctx->step.num_classes = config->num_classes;
    ctx->step.strides = ctx->strides;
    yoloxloss_isa isa = config->isa;
    if (isa == YOLOXLOSS_ISA_AUTO) yl_isa_from_env(&isa); /* validated above */
    ctx->kernels = yl_kernels_select(isa);
    ctx->assign = yl_assign_params_for(config, ctx->kernels);
    *out = ctx;
    return YOLOXLOSS_OK;
}

void yoloxloss_destroy(yoloxloss_context *ctx) {
    if (!ctx) return;
    yl_buffer *buffers[NUM_BUFFERS];
    context_buffers(ctx, buffers);
    for (size_t i = 0; i < NUM_BUFFERS; i++) yl_buffer_free(buffers[i]);
    if (ctx->scratch)
        for (int t = 0; t < ctx->num_threads; t++) yl_assign_scratch_free(&ctx->scratch[t]);
    const yl_allocator mem = ctx->mem; /* ctx itself is freed through it */
    yl_free(&mem, ctx->scratch);
    yl_free(&mem, ctx->views);
    yl_free(&mem, ctx->step.level_offset);
    yl_free(&mem, ctx->step.levels);
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

const yoloxloss_config *yoloxloss_get_config(const yoloxloss_context *ctx) { return ctx ? &ctx->cfg : NULL; }

yoloxloss_isa yoloxloss_get_isa(const yoloxloss_context *ctx) {
    return ctx ? ctx->kernels->isa : YOLOXLOSS_ISA_AUTO;
}
