/* The context: a config's copy, its kernel table, the workspaces, and the
 * state of the last forward. Shared by the files of the pipeline
 * (docs/architecture.md). */
#ifndef YL_CONTEXT_H
#define YL_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "assign.h"
#include "buffer.h"
#include "detect.h"
#include "layout.h"
#include "loss.h"
#include "simd/kernels.h"
#include "yoloxloss.h"

/* Bytes of an error message, terminator included. */
#define YL_ERROR_CAPACITY 320

struct yoloxloss_context {
    yoloxloss_config cfg;       /* cfg.strides points to `strides` */
    yl_allocator mem;           /* cfg's hook; every workspace below allocates through it */
    const yl_kernels *kernels;  /* chosen once, at create (dispatch.c) */
    yl_assign_params assign;
    int num_threads;            /* resolved: >= 1 */
    char error[YL_ERROR_CAPACITY];
    float *strides;             /* [L] */

    /* The last successful forward, read by backward and the read-outs. */
    int has_forward;
    yl_step step;
    yl_loss_sums sums;          /* over the batch, images added in order */
    float normalizer;

    /* Workspaces. */
    yl_level_view *views;       /* [num_threads, L] per-thread image views */
    yl_buffer image_sums;       /* yl_loss_sums [B] */
    yl_assign_scratch *scratch; /* [num_threads] */
    yl_detect_work detect;      /* yoloxloss_detect's candidates and NMS arrays */
};

/* Grows every thread's assignment scratch to the largest any thread holds.
 * Which thread assigns which image varies from call to call; after this, a
 * call whose images all fit what some thread once needed allocates nothing.
 * 0 if an allocation failed. */
int yl_scratch_settle(yoloxloss_context *ctx);

#endif
