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
 * different threads at once. One context serves one call at a time: a call
 * made while another thread's call on the same context is still running
 * does nothing and returns YOLOXLOSS_ERR_BUSY (an atomic flag on the
 * context, set and cleared by every call that takes it); give each thread
 * its own context. Destroying a context while another thread uses it
 * cannot be caught.
 *
 * Threads (config.num_threads): OpenMP, inside each call. A call that runs
 * on one thread executes no OpenMP construct at all, so it makes no
 * allocation and no system call of the OpenMP runtime. A call on more
 * threads starts an OpenMP team; the runtime (libgomp) allocates the team's
 * memory when it first starts a team of that size for the calling thread,
 * and if that allocation fails it prints "libgomp: Out of memory" and ends
 * the process, which no library built on it can turn into a status. A
 * process that must survive running out of memory uses num_threads = 1
 * (docs/reliability.md, "Memory").
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
#define YOLOXLOSS_VERSION_MINOR 3 /**< Additions; while MAJOR is 0, also ABI changes (see below). */
#define YOLOXLOSS_VERSION_PATCH 0 /**< Fixes only. */

/* While MAJOR is 0 a MINOR release may change the ABI (0.2 appended a
 * field to yoloxloss_level and three to yoloxloss_config; 0.3 appended
 * `padded` to yoloxloss_batch and a status, so their sizes or ranges
 * changed): the shared library's SONAME then carries MAJOR.MINOR
 * (libyoloxloss.so.0.3) and the loader refuses to run a program built
 * against another minor version; rebuild it against this header. */

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
    YOLOXLOSS_ERR_INVALID_BOX = 6,    /**< gt box with non-finite value or non-positive w/h, or whose
                                          corners or area float32 cannot hold (see below) */
    YOLOXLOSS_ERR_NONFINITE_INPUT = 7,/**< NaN/Inf in a head output (only with check_finite) */
    YOLOXLOSS_ERR_OUT_OF_MEMORY = 8,  /**< workspace allocation failed; context still usable (the
                                          OpenMP runtime's own failures: see the file's notes) */
    YOLOXLOSS_ERR_NO_FORWARD = 9,     /**< backward/assignment read without a successful forward */
    YOLOXLOSS_ERR_INVALID_ARGUMENT = 10,/**< a value or combination of arguments is not accepted:
                                          fused and split buffers both set, a non-finite
                                          upstream gradient, a normaliser that is not > 0,
                                          a level's dtype outside yoloxloss_dtype, a head-output,
                                          gradient or gt array not aligned to its element size,
                                          gradient buffers that overlap the inputs or each other */
    YOLOXLOSS_ERR_BUSY = 11           /**< another thread's call on the same context is still
                                          running; this call did nothing (see yoloxloss_context) */
} yoloxloss_status;

/** The largest num_classes a config may have: 2^24. Class ids stay exact as
 * float32 up to it (padded labels and YOLOX's label tensors carry them as
 * floats), and every plane count and offset derived from it fits the
 * library's index arithmetic with room to spare. */
#define YOLOXLOSS_MAX_CLASSES (1 << 24)

/** The largest num_threads a config (or yoloxloss_set_num_threads) may ask
 * for: 1024, more hardware threads than the machines this library targets
 * have. Far larger teams make the OpenMP runtime itself fail (libgomp ends
 * the process when it cannot start that many threads). */
#define YOLOXLOSS_MAX_THREADS 1024

/* Input contract, in full in docs/reliability.md (each argument, each bad
 * value, the status it gets; tested). Beyond the one-line notes above:
 * ERR_INVALID_BOX also covers a box whose values are finite but whose
 * corners or area w*h overflow float32, and one whose float32 area w*h
 * underflows to 0 (an exact product of at most 2^-150, e.g. 1e-25 x 1e-25:
 * its IoU with a prediction of area 0 would be 0/0); every box with a
 * positive float32 area is accepted, however small. ERR_SIZE_OVERFLOW also
 * covers an image whose num_gt x anchors IoU/cost matrices do not fit in
 * size_t.
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
    int num_classes;                     /**< C, 1 to YOLOXLOSS_MAX_CLASSES. Default 80. */
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
    int num_threads;                     /**< OpenMP threads of each call: 0 (the default) chooses
                                            per call from the work (images, anchors, boxes, classes):
                                            one thread per ~0.25 ms of estimated single-thread time,
                                            at most omp_get_max_threads() of the time the context was
                                            created (or set), so small calls run on the calling thread
                                            alone; 1 to YOLOXLOSS_MAX_THREADS: that many, except where
                                            the work has fewer units (images, plane ranges, candidate
                                            anchors) than threads. Results are the same bits for every
                                            count. yoloxloss_set_num_threads changes it later. */
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

/** Changes the thread count of the context's later calls, as if it had
 * been created with config.num_threads = num_threads (0 = automatic, or 1
 * to YOLOXLOSS_MAX_THREADS), without recreating it; the last forward stays
 * held, and yoloxloss_get_config reports the new count. A trainer whose
 * thread budget changes between phases calls it between steps.
 *
 * Cost: constant (a few stores) when the context already has per-thread
 * workspaces for that many threads: every count up to the largest it was
 * created or set with, and, for 0, up to omp_get_max_threads() of that
 * time. Otherwise it allocates the per-thread arrays (about 300 bytes per
 * thread and level), and each new thread's assignment scratch grows at the
 * next forward, once.
 * @return YOLOXLOSS_OK; YOLOXLOSS_ERR_INVALID_CONFIG for a count out of range,
 *         YOLOXLOSS_ERR_OUT_OF_MEMORY (the old count stays), YOLOXLOSS_ERR_BUSY,
 *         YOLOXLOSS_ERR_NULL_ARGUMENT. */
YOLOXLOSS_API yoloxloss_status yoloxloss_set_num_threads(yoloxloss_context *ctx, int num_threads);

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
 * yoloxloss_forward, yoloxloss_renormalize, yoloxloss_backward,
 * yoloxloss_get_assignment, yoloxloss_get_image_losses and
 * yoloxloss_set_num_threads each clear it when they start and write it when
 * they fail. With ctx NULL it returns the calling thread's message instead:
 * that of its last yoloxloss_create ("" after a successful one), of its
 * last yoloxloss_config_preset (likewise), of its last call given a NULL
 * context, or of its last call refused with YOLOXLOSS_ERR_BUSY (the
 * context's own message belongs to the call in progress, which such a
 * refusal leaves alone). Valid until the next call that changes it.
 * yoloxloss_decode and yoloxloss_detect clear and write it the same way. */
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
 * mode an element becomes round(float32(g) + gradient), or keeps its bits
 * where the gradient is zero (yoloxloss_backward).
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
 * element size: a buffer whose address is not a multiple of 4 (float32) or
 * 2 (float16, bfloat16) is refused by forward with
 * YOLOXLOSS_ERR_INVALID_ARGUMENT naming the level and the buffer, and is
 * never read (the library reads buffers as arrays of their element type;
 * a misaligned one is undefined behaviour in C).
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

/** How the five values of a padded label row are ordered
 * (yoloxloss_padded_labels). */
typedef enum {
    YOLOXLOSS_LABELS_CLASS_FIRST = 0, /**< class, cx, cy, w, h (YOLOX's padded labels) */
    YOLOXLOSS_LABELS_CLASS_LAST = 1   /**< cx, cy, w, h, class (darknet's truth rows) */
} yoloxloss_label_order;

/** Ground truth as training frameworks hold it: one padded array of label
 * rows per image, boxes in pixels or in units of the image size, the class
 * as a float (docs/trainer-guide.md, "Ground truth as frameworks hold it").
 * Given through yoloxloss_batch.padded instead of num_gt, gt_classes and
 * gt_boxes. forward checks every used row and converts them once into its
 * flat copy of the ground truth; the assignment, the losses, backward and
 * the read-outs are then those of the flat batch of the converted rows
 * (bit for bit), and image b's label row r is row r of its array (the
 * used rows are the first ones of each image). Added in 0.3.
 *
 * Image b's row r starts at float (b * max_rows + r) * row_floats of rows.
 * The rows image b uses are its first counts[b], or, with counts NULL, the
 * rows before its end row: the first row whose four box values are all 0
 * (-0 included; the class and any extra floats are not looked at), or all
 * max_rows rows if there is none. Every row after the end row must be a
 * zero-box row too, else YOLOXLOSS_ERR_INVALID_LABEL names the image, the
 * end row and the first row after it that is not: a hole in the padding
 * (a label deleted by an augmentation that left its zeros in place)
 * would otherwise drop the labels after it silently. Rows past counts[b]
 * are not read.
 *
 * Each used row: its class must be an integer in [0, C) held as a float
 * (YOLOXLOSS_ERR_INVALID_LABEL, naming image, row and value), and its box,
 * after scaling, must pass the checks of a flat box (finite, w > 0, h > 0,
 * corners and area within float32; YOLOXLOSS_ERR_INVALID_BOX). A used row
 * whose centre is exactly (0, 0) is YOLOXLOSS_ERR_INVALID_BOX too, with a
 * message saying that it looks like a missing label turned into a box:
 * frameworks fill absent labels with zeros (a zero row inside a count, a
 * box whose centre was zeroed but whose size was not), while a real
 * object centred exactly on the image's top-left corner does not occur in
 * practice; a box there can be given through the flat form.
 *
 * The struct's own fields: rows NULL is YOLOXLOSS_ERR_NULL_ARGUMENT; a
 * max_rows, row_floats, order, image_width or image_height outside what
 * its note below allows is YOLOXLOSS_ERR_INVALID_ARGUMENT naming the field.
 * Every size is computed in size_t: B * max_rows * row_floats floats must
 * fit (YOLOXLOSS_ERR_SIZE_OVERFLOW, before any row is read). As with the
 * flat form, nothing is written on failure and messages name the image and
 * the row. */
typedef struct {
    const float *rows;          /**< [B, max_rows, row_floats], contiguous */
    int max_rows;               /**< M >= 1 rows per image (darknet: 90) */
    int row_floats;             /**< floats per row, >= 5; 0 means 5. Floats past the five (a track id, a
                                     weight) are skipped. */
    yoloxloss_label_order order; /**< where the class is in a row */
    int normalized;             /**< 0: cx, cy, w, h in pixels. Non-zero: in units of the image size,
                                     cx and w multiplied by image_width, cy and h by image_height
                                     (in float32) before anything else. */
    float image_width;          /**< pixels, finite and >= 0 (checked always, used only when
                                     normalized); 0 = what level 0 implies: levels[0].width *
                                     strides[0] (an 80-wide level 0 at stride 8: 640, YOLOX's and
                                     darknet's input width). A grid rounded up (an image size that is
                                     not a multiple of the stride: 100 px at stride 8 gives 13 cells,
                                     which imply 104 px) implies the wrong size: give it here. */
    float image_height;         /**< likewise; 0 = levels[0].height * strides[0] */
    const int32_t *counts;      /**< [B] rows used by each image, each in [0, max_rows]
                                     (YOLOXLOSS_ERR_INVALID_LABEL naming the image otherwise); NULL:
                                     each image's rows end at its end row (above) */
} yoloxloss_padded_labels;

/** One training step's inputs. Ground truth is flat: image b owns the
 * num_gt[b] rows starting at row sum(num_gt[0..b-1]); or, with `padded`
 * set, it is read from per-image padded arrays (yoloxloss_padded_labels).
 *
 * The levels must describe one image: for consecutive levels l-1 and l,
 * |height_l * stride_l - height_{l-1} * stride_{l-1}| < stride_l, and the
 * same for widths. Grids that a network rounds the same way at every level
 * (up, as strided convolutions do, or down) always pass; a level given
 * twice, levels out of the config's order or height and width swapped at a
 * level fail with YOLOXLOSS_ERR_INVALID_SHAPE naming both levels. The check
 * is always on (it costs a few operations per level).
 *
 * The gt arrays are read as arrays of int32_t and float: one whose address
 * is not a multiple of 4 is refused with YOLOXLOSS_ERR_INVALID_ARGUMENT
 * naming it. */
typedef struct {
    int num_images;                 /**< B >= 1 */
    const yoloxloss_level *levels;  /**< config.num_levels entries, in stride order of the config */
    const int32_t *num_gt;          /**< [B], each >= 0; NULL when padded is set */
    const int32_t *gt_classes;      /**< [total_gt], each in [0, C); may be NULL if total_gt == 0 */
    const float *gt_boxes;          /**< [total_gt, 4]: cx, cy, w, h in pixels, finite, w > 0, h > 0,
                                       corners and w*h finite and w*h > 0 in float32 */
    const yoloxloss_padded_labels *padded; /**< NULL: num_gt, gt_classes and gt_boxes above hold the
                                                ground truth. Set: the ground truth is read from it,
                                                and those three must be NULL
                                                (YOLOXLOSS_ERR_INVALID_ARGUMENT otherwise). Added in
                                                0.3 (appended: a zero-initialised batch is as before). */
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
 * yoloxloss_dtype says), aligned to their element size as the inputs are:
 * backward refuses a misaligned one with YOLOXLOSS_ERR_INVALID_ARGUMENT,
 * naming the level and the buffer, and writes nothing. */
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
 * into grads (config.num_levels entries, same layout as the inputs). Each
 * gradient buffer must have memory of its own: one that shares a byte with
 * any head output of the last forward (an in-place gradient) or with
 * another gradient buffer (two levels' gradients in one buffer, a split
 * level's buffers overlapping) is refused with YOLOXLOSS_ERR_INVALID_ARGUMENT
 * naming both, in either mode, before anything is written.
 * accumulate = 0 overwrites every element; accumulate != 0 adds to what is
 * there: each element becomes round(old + g) in its level's dtype, the sum
 * taken in float32, except that an element whose gradient g is zero (+0 or
 * -0: the reg and cls channels of background anchors, every element of a
 * term whose upstream factor is 0, a logit saturated at its target) is not
 * written at all and keeps its bits, -0.0 and NaN payloads included. For
 * several losses on the same outputs, not for micro-batches
 * (docs/trainer-guide.md).
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
 *                      candidate anchors); with padded labels (yoloxloss_batch.padded)
 *                      indexed by the used rows, image by image: image b's row r
 *                      is entry (rows used by images 0..b-1) + r. */
YOLOXLOSS_API yoloxloss_status yoloxloss_get_assignment(const yoloxloss_context *ctx, int32_t *matched_gt,
                                          float *pred_iou, int32_t *dynamic_k);

/** Copies the loss terms of each image of the last forward into out[0..B-1]
 * (B = that forward's num_images), for logging and hard-image mining.
 *
 * Row b holds image b's terms divided by the batch's normaliser: that of
 * the last forward, or the one given to yoloxloss_renormalize after it, so
 * that the rows' total, iou, obj, cls and l1 add up to the batch's (to
 * float32 rounding: each row and the batch's terms are rounded to float32
 * from the same double-precision sums, so the rows' float sum may differ
 * from the batch's term by a few ulps of the larger terms). Its normalizer
 * is that batch normaliser (the same in every row); num_fg and num_gt are
 * the image's own, and fg_ratio is max(num_fg, 1) / max(num_gt, 1) of the
 * image. A row equals what a forward of that image alone, renormalised to
 * the batch's normaliser, reports. Like every call that can fail it sets
 * the context's message (the one thing of ctx it changes).
 * @return YOLOXLOSS_OK; YOLOXLOSS_ERR_NULL_ARGUMENT for a NULL ctx or out;
 *         YOLOXLOSS_ERR_NO_FORWARD without a successful forward. Added in 0.3. */
YOLOXLOSS_API yoloxloss_status yoloxloss_get_image_losses(const yoloxloss_context *ctx, yoloxloss_losses *out);

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
 *         check_finite), YOLOXLOSS_ERR_INVALID_ARGUMENT also for a head
 *         output, boxes or scores not aligned to its element size, each
 *         with yoloxloss_last_error naming the level or value; nothing is
 *         written then. YOLOXLOSS_ERR_BUSY while another thread's call on
 *         ctx runs. */
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
 *         the field) or detections, counts or found not aligned to their
 *         types, YOLOXLOSS_ERR_SIZE_OVERFLOW when B x max_detections
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
