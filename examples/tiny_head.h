/* The toy detector shared by the C example trainers: synthetic images whose
 * frozen "backbone" features are a fixed random mixture of what a trained
 * backbone would know about the nearest object, and a head that is one 1x1
 * convolution over them (weights [5+C, D] and a bias, shared by the levels),
 * trained with Adam. The head writes its outputs, and reads their gradients,
 * in either layout the library takes: fused or split reg/obj/cls. */
#ifndef YOLOXLOSS_EXAMPLES_TINY_HEAD_H
#define YOLOXLOSS_EXAMPLES_TINY_HEAD_H

#include <stddef.h>
#include <stdint.h>

enum {
    NUM_CLASSES = 3,
    OUT = 5 + NUM_CLASSES,      /* head output channels: reg 4 | obj 1 | cls C */
    SEMANTIC = 5 + NUM_CLASSES, /* dx, dy, log w, log h, near, class one-hot */
    FEAT = 24,                  /* D: backbone channels */
    LEVELS = 2,
    IMAGE = 128, /* square images, in pixels */
    MAX_GT = 4
};

/** The strides of the LEVELS levels, in pixels. */
extern const float kStrides[LEVELS];

/** One synthetic image: its ground truth and its backbone features. */
typedef struct {
    int32_t num_gt;
    int32_t classes[MAX_GT];
    float boxes[MAX_GT * 4];  /* cx, cy, w, h */
    float *features[LEVELS];  /* [FEAT, H, W], owned */
} image;

/** The ground truth of a batch in the library's flat form (yoloxloss_batch's
 * num_gt, gt_classes and gt_boxes): image b's rows follow those of images
 * 0..b-1. Holds up to MAX_BATCH images. */
enum { MAX_BATCH = 32 };
typedef struct {
    int32_t num_gt[MAX_BATCH];
    int32_t classes[MAX_BATCH * MAX_GT];
    float boxes[MAX_BATCH * MAX_GT * 4];
} flat_labels;

/** The labels of images[0..num), num <= MAX_BATCH, into *out. */
void flatten_labels(image *const *images, int num, flat_labels *out);

/** The 1x1 convolution's parameters (or their gradients, or Adam's moments). */
typedef struct {
    float w[OUT * FEAT], b[OUT];
} head;

/** Adam's state for one head. Zero-initialise it. */
typedef struct {
    head m, v; /* first and second moment estimates */
    int t;
} adam_state;

/** One level's head outputs, or their gradients, for a batch of B images:
 * either fused ([B, OUT, H, W]; reg, obj and cls NULL) or split (fused NULL;
 * reg [B, 4, H, W], obj [B, 1, H, W], cls [B, NUM_CLASSES, H, W]). */
typedef struct {
    float *fused;
    float *reg, *obj, *cls;
} head_planes;

/** Uniform in [0, 1) from a xorshift32 state: the same numbers on every platform. */
float uniform(uint32_t *state);

/** Grid height (= width) of a level. */
int grid_size(int level);

/** The mixing matrix [FEAT, SEMANTIC] of the frozen backbone, entries in [-1, 1). */
void make_mixing(float mix[FEAT * SEMANTIC], uint32_t *rng);

/** Fills im with 1 to MAX_GT boxes (one per quadrant, 16 to 56 pixels) and
 * allocates and computes its features. Returns 0, or -1 when out of memory
 * (then free_image still frees what was allocated). */
int make_image(image *im, const float mix[FEAT * SEMANTIC], uint32_t *rng);

/** Frees the features of an image made by make_image (or a zeroed image). */
void free_image(image *im);

/** YOLOX's initialisation: small random weights, obj and cls biases at a 1% prior. */
void head_init(head *h, uint32_t *rng);

/** Start of channel c (YOLOX's order: reg 0-3, obj 4, cls 5..) of image b
 * in planes of `cells` elements each. */
float *head_channel(const head_planes *planes, int b, int c, size_t cells);

/** out = W f + bias at every cell of one level, for images batch[0..num). */
void head_forward(const head *h, image *const *batch, int num, int level, const head_planes *out);

/** Chains d loss / d outputs of one level through the convolution and ADDS
 * the result into *grad (the caller zeroes it once per step). */
void head_backward(head *grad, image *const *batch, int num, int level, const head_planes *g_out);

/** One Adam step of size lr on every parameter of h. */
void adam_step(head *h, const head *g, adam_state *s, float lr);

#endif
