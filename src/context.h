/* The context: a config's copy, its kernel table, the workspaces, and the
 * state of the last forward. Shared by the files of the pipeline
 * (docs/architecture.md). */
#ifndef YL_CONTEXT_H
#define YL_CONTEXT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "assign.h"
#include "buffer.h"
#include "detect.h"
#include "layout.h"
#include "loss.h"
#include "simd/kernels.h"
#include "threads.h"
#include "yoloxloss.h"

/* Bytes of an error message, terminator included. */
#define YL_ERROR_CAPACITY 320

struct yoloxloss_context {
    yoloxloss_config cfg;       /* cfg.strides points to `strides` */
    yl_allocator mem;           /* cfg's hook; every workspace below allocates through it */
    const yl_kernels *kernels;  /* chosen once, at create (dispatch.c) */
    yl_assign_params assign;
    int num_threads;            /* as asked (config or yoloxloss_set_num_threads): 0 = automatic */
    int thread_slots;           /* per-thread workspaces: the most threads a call may run on, >= 1 */
    int slots_used;             /* the most threads a forward has run on: the scratch kept grown */
    atomic_int busy;            /* 1 while a call runs on the context (yl_enter / yl_leave) */
    /* the default's timings of each kind of call (threads.h) */
    yl_thread_memory forward_threads, backward_threads, decode_threads, detect_threads;
    char error[YL_ERROR_CAPACITY];
    float *strides;             /* [L] */

    /* The last successful forward, read by backward and the read-outs. */
    int has_forward;
    yl_step step;
    yl_loss_sums sums;          /* over the batch, images added in order */
    float normalizer;

    /* Workspaces. */
    yl_level_view *views;       /* [thread_slots, L] per-thread image views */
    yl_buffer image_sums;       /* yl_loss_sums [B] */
    yl_assign_scratch *scratch; /* [thread_slots] */
    yl_detect_work detect;      /* yoloxloss_detect's candidates and NMS arrays */
};

/* The start and end of every call that takes a context and can fail.
 * yl_enter marks the context busy and clears its message, or returns
 * YOLOXLOSS_ERR_BUSY when another call holds it (with the calling thread's
 * message: the context's own belongs to the call in progress) or
 * YOLOXLOSS_ERR_NULL_ARGUMENT for a NULL ctx; yl_leave releases it and
 * passes status through. One context, one call at a time. */
yoloxloss_status yl_enter(yoloxloss_context *ctx, const char *call);
yoloxloss_status yl_leave(yoloxloss_context *ctx, yoloxloss_status status);

/* The thread policy of the context's next call (threads.h). */
yl_thread_policy yl_policy_of(const yoloxloss_context *ctx);

/* Grows the assignment scratch of every thread a forward has run on so far
 * (the first `threads` slots, and those of earlier calls) to the largest
 * any of them holds. Which thread assigns which image varies from call to
 * call; after this, a call on no more threads whose images all fit what
 * some thread once needed allocates nothing. 0 if an allocation failed. */
int yl_scratch_settle(yoloxloss_context *ctx, int threads);

#endif
