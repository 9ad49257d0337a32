/**
 * @file yoloxloss.h
 * @brief yoloxloss: the YOLOX training loss (SimOTA assignment, IoU/obj/cls/L1 terms)
 * and its exact gradients, on the CPU, over raw NCHW head outputs.
 *
 * Typical use:
 *
 * @code
 *   yoloxloss_config cfg;
 *   yoloxloss_config_defaults(&cfg);          // 80 classes, strides 8/16/32
 *   yoloxloss_context *ctx;
 *   if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) ...
 *   for each step:
 *       yoloxloss_forward(ctx, &batch, &losses);     // assignment + loss terms
 *       yoloxloss_backward(ctx, grads, NULL, 0);     // d total / d outputs
 *   yoloxloss_destroy(ctx);
 * @endcode
 *
 * Semantics follow the official YOLOX code (docs/algorithm.md gives every
 * formula). Head outputs and gradients may be float32, float16 or bfloat16,
 * per level (yoloxloss_dtype); the computation is float32.
 * All buffers are caller-owned; the library keeps no global state
 * (only each thread's message of its last failed call without a context,
 * see yoloxloss_last_error), and different contexts may be used from
 * different threads at once. One context must not be used by two threads
 * at the same time.
 */
#ifndef YOLOXLOSS_H
#define YOLOXLOSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the exported functions; the library is built with every other
 * symbol hidden. */
#if defined(__GNUC__)
#define YOLOXLOSS_API __attribute__((visibility("default")))
#else
#define YOLOXLOSS_API
#endif

#define YOLOXLOSS_VERSION_MAJOR 0 /**< Incompatible API or ABI changes. */
#define YOLOXLOSS_VERSION_MINOR 2 /**< Additions; while MAJOR is 0, also ABI changes (see below). */
#define YOLOXLOSS_VERSION_PATCH 0 /**< Fixes only. */

/* While MAJOR is 0 a MINOR release may change the ABI (0.2 appended a
 * field to yoloxloss_level and three to yoloxloss_config, so their sizes
 * changed): the shared library's
 * SONAME then carries MAJOR.MINOR (libyoloxloss.so.0.2) and the loader
 * refuses to run a program built against another minor version; rebuild
 * it against this header. */

/** MAJOR * 10000 + MINOR * 100 + PATCH of this header; compare with
 * yoloxloss_version_number() to detect a library built from another one. */
#define YOLOXLOSS_VERSION_NUMBER \
    (YOLOXLOSS_VERSION_MAJOR * 10000 + YOLOXLOSS_VERSION_MINOR * 100 + YOLOXLOSS_VERSION_PATCH)

/** The version the library was built as, in YOLOXLOSS_VERSION_NUMBER's form. */
YOLOXLOSS_API int yoloxloss_version_number(void);
/** The version the library was built as: "MAJOR.MINOR.PATCH". */
YOLOXLOSS_API const char *yoloxloss_version_string(void);

/** Every function that can fail returns one of these. On any status other
 * than YOLOXLOSS_OK nothing has been written to the caller's buffers, and
 * yoloxloss_last_error() names what was wrong (of the context, or, for
 * yoloxloss_create and calls given a NULL context, of the calling thread). */
typedef enum {
    YOLOXLOSS_OK = 0,                 /**< success */
    YOLOXLOSS_ERR_NULL_ARGUMENT = 1,  /**< a required pointer is NULL */
    YOLOXLOSS_ERR_INVALID_CONFIG = 2, /**< a config field is out of range */
    YOLOXLOSS_ERR_INVALID_SHAPE = 3,  /**< zero/negative image count or grid size, or levels whose
                                          grids disagree (see yoloxloss_batch) */
    YOLOXLOSS_ERR_SIZE_OVERFLOW = 4,  /**< a buffer size does not fit in size_t / int32 anchors */
    YOLOXLOSS_ERR_INVALID_LABEL = 5,  /**< negative gt count, or class id outside [0, C) */
    YOLOXLOSS_ERR_INVALID_BOX = 6,    /**< gt box with non-finite value or non-positive w/h */
    YOLOXLOSS_ERR_NONFINITE_INPUT = 7,/**< NaN/Inf in a head output (only with check_finite) */
    YOLOXLOSS_ERR_OUT_OF_MEMORY = 8,  /**< workspace allocation failed; context still usable */
    YOLOXLOSS_ERR_NO_FORWARD = 9,     /**< backward/assignment read without a successful forward */
    YOLOXLOSS_ERR_INVALID_ARGUMENT = 10 /**< a value or combination of arguments is not accepted:
                                          fused and split buffers both set, a non-finite
                                          upstream gradient, a normaliser that is not > 0,
                                          a level's dtype outside yoloxloss_dtype */
} yoloxloss_status;

/* Input contract, in full in docs/reliability.md (each argument, each bad
 * value, the status it gets; tested). Beyond the one-line notes above:
 * ERR_INVALID_BOX also covers a box whose values are finite but whose
 * corners or area w*h overflow float32; ERR_SIZE_OVERFLOW also covers an
 * image whose num_gt x anchors IoU/cost matrices do not fit in size_t.
 * Boxes outside the image, more boxes than anchors and any positive,
 * increasing strides are accepted. Head outputs are not range-checked: a tw/th whose exp()
 * overflows gives an infinite box, handled as docs/reliability.md says. */

/** A fixed English sentence for a status; never NULL. */
YOLOXLOSS_API const char *yoloxloss_status_string(yoloxloss_status status);

/** Label-assignment rule (docs/algorithm.md, "SimOTA assignment"). */
typedef enum {
    YOLOXLOSS_ASSIGNER_YOLOX = 0,       /**< current YOLOX: centre box r=1.5, penalty 1e6 */
    YOLOXLOSS_ASSIGNER_YOLOX_LEGACY = 1 /**< YOLOX 0.1-0.3 / MMDetection: box or centre r=2.5, penalty 1e5 */
} yoloxloss_assigner;

/** Box-regression loss of a foreground anchor (docs/algorithm.md, "Box losses",
 * gives each formula, its eps and its gradient). */
typedef enum {
    YOLOXLOSS_IOU_LOSS_IOU = 0,        /**< 1 - IoU^2 (YOLOX's default) */
    YOLOXLOSS_IOU_LOSS_GIOU = 1,       /**< 1 - clamp(GIoU, -1, 1) */
    YOLOXLOSS_IOU_LOSS_IOU_LINEAR = 2, /**< 1 - IoU */
    YOLOXLOSS_IOU_LOSS_DIOU = 3,       /**< 1 - IoU + rho^2 / c^2 (Zheng et al., 2020) */
    YOLOXLOSS_IOU_LOSS_CIOU = 4,       /**< 1 - clamp(IoU - rho^2 / c^2 - alpha v, -1, 1), alpha held
                                            constant in the gradient (MMDetection 3.x's form) */
    YOLOXLOSS_IOU_LOSS_EIOU = 5,       /**< DIoU plus (w - w_gt)^2 / C_w^2 + (h - h_gt)^2 / C_h^2
                                            (Zhang et al., 2021, without the focal weight) */
    YOLOXLOSS_IOU_LOSS_SIOU = 6        /**< 1 - IoU + (distance cost + shape cost) / 2, angle-aware
                                            (Gevorgyan, 2022; theta = 4) */
} yoloxloss_iou_loss;

/** Whose float32 arithmetic decodes boxes, places the assigner's anchor
 * centres and computes IoUs, bit for bit (docs/algorithm.md, "MMDetection's
 * arithmetic"). The formulas are the same; the order of operations, the
 * areas and the eps of the IoU are not. */
typedef enum {
    YOLOXLOSS_ARITHMETIC_YOLOX = 0, /**< Megvii YOLOX: x = (tx + j) s; areas w h; IoU
                                         inter / union (loss: inter / (union + 1e-16)); anchor
                                         centres by the assigner's rule */
    YOLOXLOSS_ARITHMETIC_MMDET = 1  /**< MMDetection 3.x: x = tx s + j s; areas from the corners;
                                         IoU inter / max(union, 1e-6), in the loss also clamped
                                         to >= 1e-16; anchor centres j s + s / 2; L1 target
                                         (cx - j s) / s */
} yoloxloss_arithmetic;

/** Instruction set of the per-anchor kernels (src/simd/). Every one gives the
 * same assignment and, to float32 rounding, the same losses and gradients. */
typedef enum {
    YOLOXLOSS_ISA_AUTO = 0,   /**< the best this CPU has, or the YOLOXLOSS_ISA environment variable */
    YOLOXLOSS_ISA_SCALAR = 1, /**< plain C, the reference the others are tested against */
    YOLOXLOSS_ISA_AVX2 = 2,   /**< x86-64 with AVX2 and FMA */
    YOLOXLOSS_ISA_AVX512 = 3, /**< x86-64 with AVX-512 F, BW, DQ and VL */
    YOLOXLOSS_ISA_NEON = 4    /**< aarch64 Advanced SIMD */
} yoloxloss_isa;

/** Everything fixed for the lifetime of a context. Fill it with
 * yoloxloss_config_defaults() and change what differs. */
typedef struct {
    int num_classes;                     /**< C, >= 1. Default 80. */
    int num_levels;                      /**< L >= 1, any number. Default 3. */
    const float *strides;                /**< [L] pixels per grid cell, finite, > 0 and increasing
                                            (levels finest first); copied by yoloxloss_create.
                                            Default: a constant array {8, 16, 32} of 3 strides:
                                            a config with num_levels > 3 must point strides to its
                                            own array (validation says so otherwise). */
    yoloxloss_assigner assigner;         /**< Default YOLOXLOSS_ASSIGNER_YOLOX. */
    float center_radius;                 /**< centre-box half size in strides; 0 = the assigner's own (1.5 / 2.5). */
    int candidate_topk;                  /**< IoUs summed for dynamic k, >= 1. Default 10. */
    float iou_cost_weight;               /**< weight of -log(IoU) in the matching cost, >= 0. Default 3. */
    float cls_cost_weight;               /**< weight of the class BCE in the matching cost, >= 0. Default 1. */
    yoloxloss_iou_loss iou_loss;         /**< Default YOLOXLOSS_IOU_LOSS_IOU. */
    int use_l1;                          /**< add the L1 loss on raw reg outputs. Default 0. */
    float reg_weight;                    /**< weight of the box term in total, finite. Default 5. */
    float obj_weight;                    /**< weight of the objectness term, finite. Default 1. */
    float cls_weight;                    /**< weight of the class term, finite. Default 1. */
    float l1_weight;                     /**< weight of the L1 term, finite. Default 1. */
    int num_threads;                     /**< OpenMP threads; 0 = OpenMP's default. */
    int check_finite;                    /**< forward scans every head output for NaN/Inf (a
                                            float16 or bfloat16 one by its float32 value) and
                                            names the first one. Default: on when the *library*
                                            was built without NDEBUG (a Debug build), off in its
                                            Release build (the default one); the caller's own
                                            NDEBUG plays no part. Set it to be sure. */
    yoloxloss_isa isa;                   /**< kernels to use. Default YOLOXLOSS_ISA_AUTO. With AUTO the
                                            environment variable YOLOXLOSS_ISA (scalar, avx2, avx512,
                                            neon) may name one. Naming one this build or CPU lacks makes
                                            yoloxloss_create fail with YOLOXLOSS_ERR_INVALID_CONFIG. */
    /** Allocator hook: every byte the library allocates (the context and its
     * workspaces) comes from alloc_fn(alloc_user, bytes) and goes back through
     * free_fn(alloc_user, ptr); both NULL (the default) means malloc/free,
     * exactly one NULL is YOLOXLOSS_ERR_INVALID_CONFIG. alloc_fn returns NULL
     * on failure (the call then fails with YOLOXLOSS_ERR_OUT_OF_MEMORY and the
     * context stays usable) and must be callable from several OpenMP threads
     * at once. Workspaces grow to the largest call seen (batch shape; gt
     * boxes x candidate anchors of the biggest image) and are reused: a
     * forward + backward that needs no more than an earlier one, such as
     * the same step with new head values, allocates nothing. */
    void *(*alloc_fn)(void *alloc_user, size_t bytes);
    void (*free_fn)(void *alloc_user, void *ptr); /**< gives back what alloc_fn returned; see alloc_fn */
    void *alloc_user;                    /**< passed to alloc_fn and free_fn as is. Default NULL. */
    float cost_iou_eps;                  /**< eps of the matching cost's -log(IoU + eps), finite and > 0.
                                            Default 1e-8 (YOLOX's; MMDetection's is 1e-7). */
    float cost_penalty;                  /**< added to the matching cost of a candidate outside the
                                            centre (and box) test, finite and >= 0; 0 = the assigner's
                                            own: 1e6 for current YOLOX, 1e5 for the legacy rule.
                                            Default 0. */
    yoloxloss_arithmetic arithmetic;     /**< Default YOLOXLOSS_ARITHMETIC_YOLOX. */
} yoloxloss_config;

/** Writes the defaults listed above into *config. */
YOLOXLOSS_API void yoloxloss_config_defaults(yoloxloss_config *config);

/** Writes the defaults, then the named preset's fields, into *config
 * (docs/differences.md says what each reproduces and what still differs):
 *   "yolox": the defaults: Megvii YOLOX's current YOLOXHead.get_losses.
 *   "mmdet": MMDetection 3.x's YOLOXHead.loss_by_feat with its SimOTAAssigner:
 *            assigner YOLOXLOSS_ASSIGNER_YOLOX_LEGACY (box or centre, radius 2.5),
 *            cost_iou_eps 1e-7, cost_penalty 1e5, arithmetic
 *            YOLOXLOSS_ARITHMETIC_MMDET, box loss YOLOXLOSS_IOU_LOSS_IOU (its
 *            IoULoss mode "square", eps 1e-16), weights 5, 1, 1, 1. Its normaliser,
 *            the mean num_fg over data-parallel ranks, comes from the caller
 *            through yoloxloss_renormalize (local training: max(num_fg, 1), the
 *            default).
 * Change num_classes, strides and the rest afterwards as usual.
 * @return YOLOXLOSS_OK; YOLOXLOSS_ERR_NULL_ARGUMENT for a NULL config or name;
 *         YOLOXLOSS_ERR_INVALID_ARGUMENT for another name. On failure *config is
 *         unchanged and yoloxloss_last_error(NULL) says why, in the calling thread. */
YOLOXLOSS_API yoloxloss_status yoloxloss_config_preset(yoloxloss_config *config, const char *name);

/** Checks a config. On failure writes a sentence naming the bad field into
 * message (if message != NULL and capacity > 0; always NUL-terminated).
 * yoloxloss_create runs the same checks. Changes no message of
 * yoloxloss_last_error.
 * @return YOLOXLOSS_OK, or the status of the first bad field. */
YOLOXLOSS_API yoloxloss_status yoloxloss_config_validate(const yoloxloss_config *config,
                                           char *message, size_t capacity);

/** Opaque: a config's copy, the workspace and the last forward's results. */
typedef struct yoloxloss_context yoloxloss_context;

/** Whether this build, on this CPU, has the kernels of isa (AUTO: always 1). */
YOLOXLOSS_API int yoloxloss_isa_supported(yoloxloss_isa isa);

/** Lower-case name of isa ("auto", "scalar", "avx2", "avx512", "neon"); "unknown"
 * for a value outside the enum. */
YOLOXLOSS_API const char *yoloxloss_isa_name(yoloxloss_isa isa);

/** Creates a context for config (copied). *out is NULL on failure, and
 * yoloxloss_last_error(NULL) then says why (the sentence
 * yoloxloss_config_validate gives for a bad config), in the calling thread.
 * @return YOLOXLOSS_OK, YOLOXLOSS_ERR_NULL_ARGUMENT, YOLOXLOSS_ERR_INVALID_CONFIG
 *         or YOLOXLOSS_ERR_OUT_OF_MEMORY. */
YOLOXLOSS_API yoloxloss_status yoloxloss_create(const yoloxloss_config *config, yoloxloss_context **out);

/** Frees a context and its workspace. NULL is accepted. */
YOLOXLOSS_API void yoloxloss_destroy(yoloxloss_context *ctx);

/** The config the context was created with. */
YOLOXLOSS_API const yoloxloss_config *yoloxloss_get_config(const yoloxloss_context *ctx);

/** The instruction set the context's kernels use; AUTO only for a NULL ctx. */
YOLOXLOSS_API yoloxloss_isa yoloxloss_get_isa(const yoloxloss_context *ctx);

/** A sentence about the last failed call on ctx (which image, which label,
 * which level/channel/position), or "" if the last call succeeded.
 *
 * The calls that change it are the ones that take a context and can fail:
 * yoloxloss_forward, yoloxloss_renormalize, yoloxloss_backward and
 * yoloxloss_get_assignment each clear it when they start and write it when
 * they fail. With ctx NULL it returns the calling thread's message instead:
 * that of its last yoloxloss_create ("" after a successful one), of its
 * last yoloxloss_config_preset (likewise) or of its last call given a NULL
 * context. Valid until the next call that changes it. yoloxloss_decode and
 * yoloxloss_detect clear and write it the same way. */
YOLOXLOSS_API const char *yoloxloss_last_error(const yoloxloss_context *ctx);

/** Element type of a level's head outputs and of its gradients
 * (docs/algorithm.md, "Mixed precision").
 *
 * The library computes in float32 on the inputs converted exactly to
 * float32, so the assignment and the losses are bitwise those of the
 * float32 path fed the converted values. Each gradient element is the
 * float32 gradient rounded to nearest, ties to even, into the level's
 * dtype (PyTorch's `Tensor.to(dtype)`), subnormals kept, NaN kept NaN;
 * values past the largest finite one become infinity. With accumulate
 * mode an element becomes round(float32(g) + gradient).
 *
 * Loss scaling: gradients scale with upstream.total, so upstream.total =
 * 65536 writes round(65536 x gradient). Without it, small float16
 * gradients underflow: float16's smallest subnormal is 2^-24 (about
 * 6e-8), so a gradient of magnitude 2^-25 or less becomes 0 (and one
 * between that and 2^-24 becomes 2^-24), and those below 2^-14 keep fewer
 * than 11 significant bits. bfloat16 has float32's range: nothing
 * underflows that float32 keeps, only precision (8 significant bits) is
 * lost. The reported losses are float32 and never scaled. */
typedef enum {
    YOLOXLOSS_DTYPE_FLOAT32 = 0, /**< IEEE binary32 (float), the default */
    YOLOXLOSS_DTYPE_FLOAT16 = 1, /**< IEEE binary16 (1 sign, 5 exponent, 10 fraction bits), PyTorch's torch.float16 */
    YOLOXLOSS_DTYPE_BFLOAT16 = 2 /**< bfloat16 (the top 16 bits of a float32), PyTorch's torch.bfloat16 */
} yoloxloss_dtype;

/** Head outputs of one level, NCHW, batch size B = yoloxloss_batch.num_images,
 * elements of type `dtype` (float, or 16-bit float16/bfloat16 values passed
 * as uint16_t or a compiler's half type), contiguous and aligned to their
 * element size.
 * Either `fused` is set ([B, 5+C, H, W], channels reg(4) | obj(1) | cls(C),
 * YOLOX's order) and the other three are NULL, or `fused` is NULL and all
 * three of reg [B,4,H,W], obj [B,1,H,W], cls [B,C,H,W] are set. Levels of
 * one batch may have different dtypes. */
typedef struct {
    int height;        /**< grid H, >= 1 */
    int width;         /**< grid W, >= 1 */
    const void *fused; /**< [B, 5+C, H, W] of dtype, or NULL when split */
    const void *reg;   /**< [B, 4, H, W] of dtype, or NULL when fused */
    const void *obj;   /**< [B, 1, H, W] of dtype, or NULL when fused */
    const void *cls;   /**< [B, C, H, W] of dtype, or NULL when fused */
    yoloxloss_dtype dtype; /**< element type of the buffers above and of this level's gradients;
                              0 (YOLOXLOSS_DTYPE_FLOAT32) when left out of an initialiser.
                              Another value is YOLOXLOSS_ERR_INVALID_ARGUMENT naming the level.
                              Added in 0.2. */
} yoloxloss_level;

/** One training step's inputs. Ground truth is flat: image b owns the
 * num_gt[b] rows starting at row sum(num_gt[0..b-1]).
 *
 * The levels must describe one image: for consecutive levels l-1 and l,
 * |height_l * stride_l - height_{l-1} * stride_{l-1}| < stride_l, and the
 * same for widths. Grids that a network rounds the same way at every level
 * (up, as strided convolutions do, or down) always pass; a level given
 * twice, levels out of the config's order or height and width swapped at a
 * level fail with YOLOXLOSS_ERR_INVALID_SHAPE naming both levels. The check
 * is always on (it costs a few operations per level). */
typedef struct {
    int num_images;                 /**< B >= 1 */
    const yoloxloss_level *levels;  /**< config.num_levels entries, in stride order of the config */
    const int32_t *num_gt;          /**< [B], each >= 0 */
    const int32_t *gt_classes;      /**< [total_gt], each in [0, C); may be NULL if total_gt == 0 */
    const float *gt_boxes;          /**< [total_gt, 4]: cx, cy, w, h in pixels, finite, w > 0, h > 0 */
} yoloxloss_batch;

/** What forward reports. Each term is its weighted contribution to total,
 * as YOLOX reports them: total = iou + obj + cls + l1. */
typedef struct {
    float total;       /**< iou + obj + cls + l1 */
    float iou;         /**< reg_weight * loss_iou */
    float obj;         /**< obj_weight * loss_obj */
    float cls;         /**< cls_weight * loss_cls */
    float l1;          /**< l1_weight * loss_l1; 0 when use_l1 is off */
    float normalizer;  /**< N: max(num_fg, 1), or the value given to yoloxloss_renormalize */
    float fg_ratio;    /**< max(num_fg, 1) / max(num_gt, 1), YOLOX's logged ratio */
    int64_t num_fg;    /**< foreground anchors over the batch */
    int64_t num_gt;    /**< ground-truth boxes over the batch */
} yoloxloss_losses;

/** Assigns labels (SimOTA) and computes the loss terms into *losses. The
 * context keeps the assignment and pointers to the head outputs for
 * yoloxloss_backward: the output buffers must stay valid and unchanged until
 * backward has run (as autograd's saved tensors must). The batch struct, the
 * level structs and the ground-truth arrays are copied and may be reused at
 * once. On failure the context holds
 * no forward (backward returns YOLOXLOSS_ERR_NO_FORWARD). */
YOLOXLOSS_API yoloxloss_status yoloxloss_forward(yoloxloss_context *ctx, const yoloxloss_batch *batch,
                                   yoloxloss_losses *losses);

/** Replaces the normaliser N of the last forward by `normalizer` (finite,
 * > 0), e.g. the mean num_fg over data-parallel ranks, rewrites *losses
 * (if not NULL) with the terms divided by it, and makes backward use it.
 * No assignment or loss is recomputed. On failure the forward and its
 * normaliser stay as they were. */
YOLOXLOSS_API yoloxloss_status yoloxloss_renormalize(yoloxloss_context *ctx, float normalizer,
                                       yoloxloss_losses *losses);

/** Gradient buffers of one level, in the same layout as that level's inputs
 * (fused, or the three split buffers), with elements of that level's dtype
 * (yoloxloss_level.dtype; float16 and bfloat16 gradients are rounded as
 * yoloxloss_dtype says). */
typedef struct {
    void *fused; /**< [B, 5+C, H, W] when the inputs were fused */
    void *reg;   /**< [B, 4, H, W] when the inputs were split */
    void *obj;   /**< [B, 1, H, W] when the inputs were split */
    void *cls;   /**< [B, C, H, W] when the inputs were split */
} yoloxloss_level_grad;

/** Upstream gradients of the reported terms. The gradient written is
 * total * d(total) + iou * d(iou) + obj * d(obj) + cls * d(cls) + l1 * d(l1),
 * each d(.) of a reported (weighted) term. A plain total.backward() is
 * {1, 0, 0, 0, 0}, which is what a NULL upstream means. */
typedef struct {
    float total; /**< d loss / d total */
    float iou;   /**< d loss / d iou (the weighted term) */
    float obj;   /**< d loss / d obj */
    float cls;   /**< d loss / d cls */
    float l1;    /**< d loss / d l1 */
} yoloxloss_upstream;

/** Writes the gradient with respect to every head output of the last forward
 * into grads (config.num_levels entries, same layout as the inputs).
 * accumulate = 0 overwrites every element; accumulate != 0 adds to what is
 * there (elements whose gradient is zero are left untouched): for several
 * losses on the same outputs, not for micro-batches (docs/trainer-guide.md).
 * The forward stays held after it, failed or not: backward may run again
 * (with another upstream, into other buffers) until the next forward. */
YOLOXLOSS_API yoloxloss_status yoloxloss_backward(yoloxloss_context *ctx, const yoloxloss_level_grad *grads,
                                    const yoloxloss_upstream *upstream, int accumulate);

/** Number of anchors per image of the last forward: sum over levels of H*W. */
YOLOXLOSS_API int64_t yoloxloss_num_anchors(const yoloxloss_context *ctx);

/** Copies the assignment of the last forward. Each pointer may be NULL.
 * Like every call that can fail it sets the context's message (the one
 * thing of ctx it changes).
 *   matched_gt [B, A]: gt row (within its image) matched to each anchor, in
 *                      YOLOX's anchor order (level-major, then i*W+j); -1 = background.
 *   pred_iou   [B, A]: IoU of each fg anchor's decoded box with its gt; 0 for background.
 *   dynamic_k  [total_gt]: SimOTA's k of each gt (0 for gts of an image with no
 *                      candidate anchors). */
YOLOXLOSS_API yoloxloss_status yoloxloss_get_assignment(const yoloxloss_context *ctx, int32_t *matched_gt,
                                          float *pred_iou, int32_t *dynamic_k);

/* ---- Inference: decode and detect ------------------------------------------
 *
 * The eval path of the same head, for a trainer that validates what it
 * trained: YOLOX's YOLOXHead eval forward and decode_outputs, and its
 * postprocess (docs/algorithm.md, "Inference: decode and detect";
 * docs/differences.md says where results can differ from the official code
 * and why). They read the same level structs as yoloxloss_forward (fused or
 * split, any dtype, checked the same way; with config.check_finite every
 * value too), use the context's config (classes, strides, arithmetic,
 * threads, kernels), and leave the last forward held: backward may still
 * run after them. 16-bit outputs are computed in float32 from their exact
 * values (YOLOX in half precision computes in half). The sigmoid is the
 * library's, 1 / (1 + exp(-x)) with SLEEF's exp as the loss uses: a
 * probability may differ from torch.sigmoid's in its last bits (at most 2
 * ulps seen). Results are bitwise the same for every thread count. */

/** Decodes every anchor of num_images images: levels are config.num_levels
 * entries, the same yoloxloss_level structs as forward takes (fused or
 * split, any dtype, B = num_images). A = sum over levels of H*W anchors per
 * image, in YOLOX's order (level-major, then i*W + j).
 *
 *   boxes  [B, A, 4]: cx, cy, w, h in pixels, float32, in the config's
 *          arithmetic: YOLOX (tx + j) s, (ty + i) s, exp(tw) s, exp(th) s;
 *          MMDetection tx s + j s, ty s + i s and the same sizes. Or NULL.
 *   scores [B, A, C]: sigmoid(obj) * sigmoid(cls_c), float32. Or NULL.
 *
 * With both NULL it only validates. Nothing is allocated.
 * @return YOLOXLOSS_OK; YOLOXLOSS_ERR_NULL_ARGUMENT (ctx, levels or a
 *         level's buffers), YOLOXLOSS_ERR_INVALID_SHAPE (num_images < 1, a
 *         grid, levels that disagree), YOLOXLOSS_ERR_INVALID_ARGUMENT
 *         (fused and split both set, an unknown dtype),
 *         YOLOXLOSS_ERR_SIZE_OVERFLOW (a buffer size, boxes or scores do
 *         not fit in size_t), YOLOXLOSS_ERR_NONFINITE_INPUT (with
 *         check_finite), each with yoloxloss_last_error naming the level or
 *         value; nothing is written then. */
YOLOXLOSS_API yoloxloss_status yoloxloss_decode(yoloxloss_context *ctx, int num_images,
                                                const yoloxloss_level *levels, float *boxes, float *scores);

/** One detection of yoloxloss_detect: a row of YOLOX's postprocess output, with its score. */
typedef struct {
    float x1;             /**< left corner in pixels: cx - w/2 (float32, as YOLOX's postprocess) */
    float y1;             /**< top: cy - h/2 */
    float x2;             /**< right: cx + w/2 */
    float y2;             /**< bottom: cy + h/2 */
    float obj;            /**< sigmoid(obj logit) */
    float cls_conf;       /**< the largest class probability sigmoid(cls_c) */
    int32_t cls;          /**< its class: the lowest index among equal maxima, as torch.max */
    float score;          /**< obj * cls_conf (float32): what the threshold and NMS use */
} yoloxloss_detection;

/** What yoloxloss_detect keeps. Fill it with yoloxloss_detect_params_defaults(). */
typedef struct {
    float score_threshold; /**< keep anchors with obj * cls_conf >= this (YOLOX's conf_thre, which
                                PyTorch compares in float32), finite. Default 0.7. */
    double nms_threshold;  /**< drop a box whose IoU with a kept higher-ranked box (of the same
                                class unless class_agnostic) is > this (YOLOX's nms_thre); the float32
                                IoU is compared in double, as torchvision compares it with the Python
                                float. Finite. Default 0.45. */
    int class_agnostic;    /**< nonzero: NMS across classes (torchvision's nms) instead of per class
                                (batched_nms). Default 0. */
    int max_detections;    /**< capacity per image of the detections buffer, >= 1. Default 100
                                (COCO's evaluation keeps 100 per image; YOLOX itself keeps every box
                                NMS keeps: give A, the anchors per image, for all of them). */
} yoloxloss_detect_params;

/** Writes YOLOX's postprocess defaults into *params: score_threshold 0.7,
 * nms_threshold 0.45, class-aware NMS, and max_detections 100. */
YOLOXLOSS_API void yoloxloss_detect_params_defaults(yoloxloss_detect_params *params);

/** Decode and YOLOX's postprocess: per image, the anchors whose
 * obj * cls_conf >= score_threshold, ranked by that score (highest first;
 * equal scores by lower anchor index), then non-maximum suppression per
 * class (or across classes), torchvision's rule and IoU; the kept ones in
 * rank order, at most max_detections of them, into detections
 * [B, max_detections] (image b's from b * max_detections on; the slots
 * after its count are left as they were).
 *
 *   counts [B]: the detections written per image.
 *   found  [B] (may be NULL): how many NMS kept before the cap (> counts[b]
 *          when the cap cut image b's list).
 *
 * The candidate lists live in the context's workspace: after a call of the
 * same (or a larger) batch shape, no allocation.
 * @return as yoloxloss_decode, and YOLOXLOSS_ERR_NULL_ARGUMENT for a NULL
 *         params, detections or counts, YOLOXLOSS_ERR_INVALID_ARGUMENT for
 *         a non-finite threshold or max_detections < 1 (the message names
 *         the field), YOLOXLOSS_ERR_SIZE_OVERFLOW when B x max_detections
 *         detections or the workspace do not fit in size_t,
 *         YOLOXLOSS_ERR_OUT_OF_MEMORY when the workspace cannot grow (the
 *         context stays usable). Nothing is written on failure. */
YOLOXLOSS_API yoloxloss_status yoloxloss_detect(yoloxloss_context *ctx, int num_images,
                                                const yoloxloss_level *levels,
                                                const yoloxloss_detect_params *params,
                                                yoloxloss_detection *detections, int32_t *counts,
                                                int32_t *found);

#ifdef __cplusplus
}
#endif

#endif /* YOLOXLOSS_H */
