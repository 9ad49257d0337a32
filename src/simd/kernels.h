/* Per-anchor and per-class kernels. Every instruction set gets one table of
 * these with the same meaning; kernels_scalar.c is the reference the others
 * are tested against, and dispatch.c is the only place that picks one.
 * The instruction sets are listed once, in isa_list.inc.
 *
 * The kernels that read head outputs or write gradients take the buffer's
 * element type as their last argument `dt` (yoloxloss_dtype; half.h): they
 * convert float16 and bfloat16 elements to float32 as they load them and
 * round results into dt as they store them, the same bits in every table.
 * Pointers and counts of such buffers are in elements of dt.
 *
 * Each element is computed in float32 by the same formula in every table
 * (bce.h), with SLEEF's exp/log; per-element results therefore agree to
 * SLEEF's 1 ulp and are usually bitwise equal. Sums are carried in double,
 * in an order fixed by n alone (never by the thread count).
 *
 * "matched" arrays hold the gt row of each anchor, -1 for background, so
 * the objectness target of anchor a is (matched[a] >= 0).
 */
#ifndef YL_KERNELS_H
#define YL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../half.h"
#include "../mathf.h"
#include "yoloxloss.h"

/* The candidate anchors of one image, structure of arrays, all [n_cand]. */
typedef struct {
    int32_t *pos;             /* index i*W + j within its level's planes */
    float *gi, *gj;           /* grid row i and column j */
    float *xc, *yc;           /* anchor centre as the assigner's rule computes it */
    float *bx, *by, *bw, *bh; /* decoded predicted box */
    float *sig_obj;           /* sigmoid of the objectness logit */
    double *sum0;             /* S = sum over classes of BCE(p_k, 0) */
} yl_cands;

/* One gt against a run of candidates of one level (pair_costs). */
typedef struct {
    float cx, cy, w, h;    /* the gt box */
    const float *cls_cost; /* class_costs of the gt's class, indexed like the candidates */
    float radius;          /* centre-box half size in pixels: center_radius * stride */
    int legacy;            /* the anchor must also lie inside the gt box */
    float cls_weight, iou_weight, penalty;
    float iou_eps;         /* of -log(iou + iou_eps): the config's cost_iou_eps */
    int mmdet;             /* MMDetection's IoU: areas from the corners, union at least 1e-6 */
} yl_pair_params;

/* One level of one image as decode_anchors reads it (inference decode). */
typedef struct {
    const void *reg;  /* the four regression planes, hw apart, of the level's dtype */
    const void *obj;  /* the objectness plane */
    const void *cls;  /* the num_classes class planes, hw apart */
    size_t hw;
    int width;
    int num_classes;
    float stride;
    int mmdet;        /* MMDetection's arithmetic: x = tx s + j s, else (tx + j) s */
} yl_decode_src;

/* What decode_anchors writes for a run of n anchors; each pointer may be
 * NULL (not written), and indexes the run from its first anchor. */
typedef struct {
    float *boxes;    /* [n, 4]: cx, cy, w, h (box.h, yl_decode) */
    float *scores;   /* [n, C]: sigmoid(obj) * sigmoid(cls_k), float32 */
    float *obj;      /* [n]: sigmoid(obj) */
    float *cls_conf; /* [n]: max over k of sigmoid(cls_k), NaN if one is NaN (torch.max's rule) */
    int32_t *cls;    /* [n]: the lowest k reaching cls_conf (the first NaN); written with cls_conf */
    /* cls_conf and cls of an anchor whose sigmoid(obj) < obj_floor are 0 and
     * -1 without reading its class logits (its obj * cls_conf is below the
     * floor whatever they are); -INFINITY reads every anchor's. */
    float obj_floor;
} yl_decode_dst;

/* Classes of one pass of decode_anchors' vector search for the largest
 * class probability: its float lanes count the class within the pass,
 * exactly below 2^24; passes of 2^16 keep the test of their boundary
 * small (test_kernels), and merging a pass costs a few operations. */
#define YL_CLASS_BLOCK (1 << 16)

typedef struct {
    yoloxloss_isa isa;

    /* The scalar exp/log/log1p that give the same bits as this table's
     * vector functions: the per-foreground-anchor code calls these. */
    const yl_mathf *math;

    /* sum over a < n of BCEWithLogits(x[a], matched[a] >= 0). */
    double (*obj_loss)(const void *x, const int32_t *matched, size_t n, yoloxloss_dtype dt);

    /* g[a] (=|+=) scale * (sigmoid(x[a]) - (matched[a] >= 0)), a < n; x and
     * g of dt, the sum taken in float32 before g is rounded. Accumulating,
     * an element whose term is zero (+0 or -0) is not written at all. */
    void (*obj_grad)(const void *x, const int32_t *matched, size_t n, float scale, void *g,
                     int accumulate, yoloxloss_dtype dt);

    /* acc[i] += BCE(p_i, 0) with p_i = sqrt(sigmoid(plane[pos[i]]) * sig_obj[i]),
     * i < n: one class's share of the assignment cost S of n candidate
     * anchors. For a class some gt has, keep_p and keep_b0 (else NULL)
     * receive p_i and BCE(p_i, 0) for class_costs. */
    void (*cost_bce0_accumulate)(const void *plane, const int32_t *pos, size_t n,
                                 const float *sig_obj, double *acc, float *keep_p, float *keep_b0,
                                 yoloxloss_dtype dt);

    /* sum over k < C of BCEWithLogits(x[k*stride], k == cls ? t : 0):
     * the class loss of one fg anchor whose logits are `stride` apart. */
    double (*cls_loss)(const void *x, size_t stride, int num_classes, int cls, float t,
                       yoloxloss_dtype dt);

    /* g[k*stride] (=|+=) scale * (sigmoid(x[k*stride]) - (k == cls ? t : 0)); the
     * gradient buffer has the same layout and dtype as the logits. Accumulating,
     * an element whose term is zero is not written, as for obj_grad. */
    void (*cls_grad)(const void *x, size_t stride, int num_classes, int cls, float t,
                     float scale, void *g, int accumulate, yoloxloss_dtype dt);

    /* For candidates c in [c0, c0 + n) of one level, from their pos, gi, gj:
     * the decoded box (bx, by, bw, bh) and sig_obj. reg holds the level's
     * four regression planes hw apart, obj its objectness plane, in dtype
     * dt. mmdet decodes the centre as MMDetection does, tx s + j s, else
     * (tx + j) s (box.h, yl_decode). */
    void (*decode)(const void *reg, const void *obj, size_t hw, float stride, int mmdet, const yl_cands *cand,
                   size_t c0, size_t n, yoloxloss_dtype dt);

    /* The class part of the matching cost of n candidates for a gt of one
     * class, from that class's p and BCE(p, 0) kept by cost_bce0_accumulate
     * and the candidates' S: out[i] = S_i - BCE(p_i, 0) + BCE(p_i, 1)
     * (bce.h, yl_cls_cost_pair). Every gt of that class shares it. */
    void (*class_costs)(const float *p, const float *b0, const double *sum0, size_t n, float *out);

    /* For candidates c in [c0, c0 + n) of one level and one gt:
     * iou[c - c0] = IoU(gt, box c) (yl_pair_iou, in p->mmdet's arithmetic)
     * and cost[c - c0] = cls_weight * cls_cost[c] + iou_weight *
     * -log(iou + iou_eps), plus penalty unless the anchor centre is inside
     * the gt's centre box (and, for the legacy rule, also inside the gt box):
     * docs/algorithm.md, section 3. */
    void (*pair_costs)(const yl_pair_params *p, const yl_cands *cand, size_t c0, size_t n,
                       float *iou, float *cost);

    /* The first c in [from, n) whose row[c] is not <= thr (so greater, or
     * NaN on either side), else n: the next value that may enter a top-k
     * of the largest whose smallest member is thr. */
    int (*scan_not_le)(const float *row, int from, int n, float thr);

    /* The first c in [from, n) whose row[c] is not >= thr, else n: the
     * next value that may enter a selection of the smallest. */
    int (*scan_not_ge)(const float *row, int from, int n, float thr);

    /* Inference decode of anchors q0 .. q0 + n - 1 of one level of one image
     * (positions i*W + j in its planes): whichever outputs of *dst are set
     * (yl_decode_dst), every value in float32 from the elements converted
     * exactly, the same bits in every table. */
    void (*decode_anchors)(const yl_decode_src *src, size_t q0, size_t n, const yl_decode_dst *dst,
                           yoloxloss_dtype dt);

    /* p[0..n) = 0, n elements of dt. Large gradient planes are written this
     * way: the SIMD tables use streaming stores, which skip reading the
     * lines first. */
    void (*zero)(void *p, size_t n, yoloxloss_dtype dt);
} yl_kernels;

/* One table per instruction set of isa_list.inc. Every kernel file is
 * compiled on every architecture; on another architecture than its own it
 * defines its table with no functions, which dispatch reads as "not in this
 * build" (yl_kernels_built). */
#define YL_ISA(ENUM, name) extern const yl_kernels yl_kernels_##name;
#include "isa_list.inc"

/* The scalar kernels once more, calling SLEEF's FMA scalar functions: the
 * scalar table of CPUs that have FMA (mathf.h). */
extern const yl_kernels yl_kernels_scalar_fma;

/* The AVX-512 kernels once more, rounding to bfloat16 with AVX512_BF16's
 * own instruction (kernels_avx512_bf16.c): the AVX-512 table of CPUs that
 * have it. The same bits as yl_kernels_avx512. */
extern const yl_kernels yl_kernels_avx512_bf16;

/* Runs `call` (a statement using DT) with DT a constant equal to dt, so a
 * kernel written once over DT is compiled once per dtype with no test of
 * the dtype inside its loops. dt must be valid (validate.c checks it). */
#define YL_FOR_DTYPE(dt, call)                                                                     \
    switch (dt) {                                                                                  \
    case YOLOXLOSS_DTYPE_FLOAT16: {                                                                \
        const yoloxloss_dtype DT = YOLOXLOSS_DTYPE_FLOAT16;                                        \
        call;                                                                                      \
    } break;                                                                                       \
    case YOLOXLOSS_DTYPE_BFLOAT16: {                                                               \
        const yoloxloss_dtype DT = YOLOXLOSS_DTYPE_BFLOAT16;                                       \
        call;                                                                                      \
    } break;                                                                                       \
    default: {                                                                                     \
        const yoloxloss_dtype DT = YOLOXLOSS_DTYPE_FLOAT32;                                        \
        call;                                                                                      \
    } break;                                                                                       \
    }

/* Whether table holds kernels (see above). */
static inline int yl_kernels_built(const yl_kernels *table) { return table->obj_loss != NULL; }

#endif
