/* Per-anchor and per-class kernels. Every instruction set gets one table of
 * these with the same meaning; kernels_scalar.c is the reference the others
 * are tested against, and dispatch.c is the only place that picks one.
 *
 * "matched" arrays hold the gt row of each anchor, -1 for background, so
 * the objectness target of anchor a is (matched[a] >= 0).
 */
#ifndef YL_KERNELS_H
#define YL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "yoloxloss.h"

typedef struct {
    yoloxloss_isa isa;

    /* sum over a < n of BCEWithLogits(x[a], matched[a] >= 0). */
    double (*obj_loss)(const float *x, const int32_t *matched, size_t n);

    /* g[a] (=|+=) scale * (sigmoid(x[a]) - (matched[a] >= 0)), a < n. */
    void (*obj_grad)(const float *x, const int32_t *matched, size_t n, float scale, float *g,
                     int accumulate);

    /* acc[i] += BCE(sqrt(sigmoid(plane[pos[i]]) * sig_obj[i]), 0), i < n:
     * one class's share of the assignment cost S of n candidate anchors. */
    void (*cost_bce0_accumulate)(const float *plane, const int32_t *pos, size_t n,
                                 const float *sig_obj, double *acc);

    /* sum over k < C of BCEWithLogits(x[k*stride], k == cls ? t : 0):
     * the class loss of one fg anchor whose logits are `stride` apart. */
    double (*cls_loss)(const float *x, size_t stride, int num_classes, int cls, float t);

    /* g[k*stride] (=|+=) scale * (sigmoid(x[k*stride]) - (k == cls ? t : 0)); the
     * gradient buffer has the same layout as the logits. */
    void (*cls_grad)(const float *x, size_t stride, int num_classes, int cls, float t,
                     float scale, float *g, int accumulate);
} yl_kernels;

extern const yl_kernels yl_kernels_scalar;
#ifdef YL_HAVE_AVX2
extern const yl_kernels yl_kernels_avx2;
#endif
#ifdef YL_HAVE_AVX512
extern const yl_kernels yl_kernels_avx512;
#endif
#ifdef YL_HAVE_NEON
extern const yl_kernels yl_kernels_neon;
#endif

/* The table of isa, or for YOLOXLOSS_ISA_AUTO the best this CPU runs;
 * NULL if isa is not built in or the CPU lacks it (dispatch.c). */
const yl_kernels *yl_kernels_select(yoloxloss_isa isa);

/* Reads the YOLOXLOSS_ISA environment variable into *isa (AUTO if unset or
 * empty); 0 if it names no instruction set. */
int yl_isa_from_env(yoloxloss_isa *isa);

#endif
