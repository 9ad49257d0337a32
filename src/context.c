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

/* Per-thread workspaces a thread count needs: the count itself, or for
 * the default (0) the OpenMP team size the process has now. */
static int slots_for(int num_threads) {
    int t = num_threads > 0 ? num_threads : omp_get_max_threads();
    return t < 1 ? 1 : t > YOLOXLOSS_MAX_THREADS ? YOLOXLOSS_MAX_THREADS : t;
}

/* Makes room for `slots` threads' views and assignment scratch, keeping
 * what the existing slots hold; 0 if an allocation failed (nothing
 * changed then). */
static int grow_thread_slots(yoloxloss_context *ctx, int slots) {
    if (slots <= ctx->thread_slots) return 1;
    const size_t L = (size_t)ctx->cfg.num_levels, T = (size_t)slots, old = (size_t)ctx->thread_slots;
    yl_level_view *views = yl_calloc(&ctx->mem, T * L, sizeof *views);
    yl_assign_scratch *scratch = yl_calloc(&ctx->mem, T, sizeof *scratch);
    if (!views || !scratch) {
        yl_free(&ctx->mem, views);
        yl_free(&ctx->mem, scratch);
        return 0;
    }
    if (old > 0) memcpy(scratch, ctx->scratch, old * sizeof *scratch);
    for (size_t t = old; t < T; t++)
        for (size_t i = 0; i < sizeof scratch[t].slot / sizeof scratch[t].slot[0]; i++)
            scratch[t].slot[i].mem = &ctx->mem;
    yl_free(&ctx->mem, ctx->views);
    yl_free(&ctx->mem, ctx->scratch);
    ctx->views = views;
    ctx->scratch = scratch;
    ctx->thread_slots = slots;
    return 1;
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
    ctx->num_threads = config->num_threads;
    atomic_init(&ctx->busy, 0);
    ctx->strides = yl_calloc(&ctx->mem, L, sizeof *ctx->strides);
    ctx->step.levels = yl_calloc(&ctx->mem, L, sizeof *ctx->step.levels);
    ctx->step.level_offset = yl_calloc(&ctx->mem, L, sizeof *ctx->step.level_offset);
    const int slots = slots_for(config->num_threads);
    if (!ctx->strides || !ctx->step.levels || !ctx->step.level_offset || !grow_thread_slots(ctx, slots)) {
        yoloxloss_destroy(ctx);
        return yl_fail(NULL, YOLOXLOSS_ERR_OUT_OF_MEMORY, "could not allocate the context's per-level and "
                       "per-thread arrays (%zu levels, %d threads)", L, slots);
    }
    yl_buffer *buffers[NUM_BUFFERS];
    context_buffers(ctx, buffers);
    for (size_t i = 0; i < NUM_BUFFERS; i++) buffers[i]->mem = &ctx->mem;
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
        for (int t = 0; t < ctx->thread_slots; t++) yl_assign_scratch_free(&ctx->scratch[t]);
    const yl_allocator mem = ctx->mem; /* ctx itself is freed through it */
    yl_free(&mem, ctx->scratch);
    yl_free(&mem, ctx->views);
    yl_free(&mem, ctx->step.level_offset);
    yl_free(&mem, ctx->step.levels);
    yl_free(&mem, ctx->strides);
    yl_free(&mem, ctx);
}

int yl_scratch_settle(yoloxloss_context *ctx, int threads) {
    if (threads > ctx->slots_used) ctx->slots_used = threads;
    const size_t slots = sizeof ctx->scratch[0].slot / sizeof ctx->scratch[0].slot[0];
    for (size_t i = 0; i < slots; i++) {
        size_t most = 0;
        for (int t = 0; t < ctx->slots_used; t++)
            if (ctx->scratch[t].slot[i].bytes > most) most = ctx->scratch[t].slot[i].bytes;
        if (most == 0) continue;
        for (int t = 0; t < ctx->slots_used; t++)
            /* exactly: with headroom, each settle would raise the maximum again */
            if (!yl_buffer_reserve_exact(&ctx->scratch[t].slot[i], most)) return 0;
    }
    return 1;
}

const yoloxloss_config *yoloxloss_get_config(const yoloxloss_context *ctx) { return ctx ? &ctx->cfg : NULL; }

yoloxloss_isa yoloxloss_get_isa(const yoloxloss_context *ctx) {
    return ctx ? ctx->kernels->isa : YOLOXLOSS_ISA_AUTO;
}

yoloxloss_status yl_enter(yoloxloss_context *ctx, const char *call) {
    if (!ctx) return yl_fail(NULL, YOLOXLOSS_ERR_NULL_ARGUMENT, "ctx is NULL");
    int idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&ctx->busy, &idle, 1, memory_order_acquire, memory_order_relaxed))
        return yl_fail(NULL, YOLOXLOSS_ERR_BUSY,
                       "%s: another thread's call on this context has not returned; one context serves one call "
                       "at a time (give each thread its own context)", call);
    yl_clear_error(ctx);
    return YOLOXLOSS_OK;
}

yoloxloss_status yl_leave(yoloxloss_context *ctx, yoloxloss_status status) {
    if (ctx) atomic_store_explicit(&ctx->busy, 0, memory_order_release);
    return status;
}

yl_thread_policy yl_policy_of(const yoloxloss_context *ctx) {
    yl_thread_policy p = {ctx->num_threads, ctx->thread_slots};
    return p;
}

static yoloxloss_status set_num_threads(yoloxloss_context *ctx, int num_threads) {
    yoloxloss_status st = yl_validate_num_threads(ctx, num_threads);
    if (st != YOLOXLOSS_OK) return st;
    const int slots = slots_for(num_threads);
    if (!grow_thread_slots(ctx, slots))
        return yl_fail(ctx, YOLOXLOSS_ERR_OUT_OF_MEMORY, "could not allocate the workspaces of %d threads", slots);
    ctx->num_threads = num_threads;
    ctx->cfg.num_threads = num_threads;
    return YOLOXLOSS_OK;
}

yoloxloss_status yoloxloss_set_num_threads(yoloxloss_context *ctx, int num_threads) {
    const yoloxloss_status st = yl_enter(ctx, "set_num_threads");
    return st != YOLOXLOSS_OK ? st : yl_leave(ctx, set_num_threads(ctx, num_threads));
}
