/* The benchmark's scenarios and the inputs of one timed step: head outputs
 * of three fused levels (strides 8, 16, 32) and the ground truth, either
 * synthetic (fixed seed) or read from a file that bench/run_bench.py writes
 * so that the C program times the very tensors PyTorch and the drop-in saw. */
#ifndef YOLOXLOSS_BENCH_INPUTS_H
#define YOLOXLOSS_BENCH_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "yoloxloss.h"

#define BENCH_LEVELS 3

typedef struct {
    const char *name;
    int images, size, classes, boxes; /* boxes per image */
    yoloxloss_assigner assigner;
} bench_scenario;

extern const bench_scenario BENCH_SCENARIOS[];
extern const size_t BENCH_NUM_SCENARIOS;

/* The scenario called name, or NULL. */
const bench_scenario *bench_find_scenario(const char *name);

/* One step's inputs, all owned by the struct. */
typedef struct {
    int images, size, classes, boxes;
    yoloxloss_level levels[BENCH_LEVELS]; /* point to outputs, or to outputs16 after bench_inputs_convert */
    float *outputs[BENCH_LEVELS];   /* [images, 5 + classes, size/stride, size/stride] */
    uint16_t *outputs16[BENCH_LEVELS]; /* the same rounded to float16 or bfloat16; NULL in float32 */
    yoloxloss_dtype dtype;          /* of the head outputs the levels point to */
    size_t level_floats[BENCH_LEVELS]; /* elements per level (whatever the dtype) */
    int32_t *num_gt;                /* [images], each = boxes */
    int32_t *gt_classes;            /* [images * boxes] */
    float *gt_boxes;                /* [images * boxes, 4]: cx, cy, w, h */
} bench_inputs;

/* Fills in with synthetic inputs: logits as a freshly initialised YOLOX head
 * gives them (class and objectness priors 0.01), boxes with sides of 16 to
 * 256 pixels centred uniformly over the image. Returns 0, or -1 (message in
 * why) when memory runs out. */
int bench_inputs_synthetic(bench_inputs *in, int images, int size, int classes, int boxes,
                           char *why, size_t why_size);

/* Reads inputs from path, which must hold exactly images x size x classes x
 * boxes in the format of bench/README.md. Returns 0, or -1 with a sentence
 * in why (missing file, other shape, short or long file, no memory). */
int bench_inputs_load(bench_inputs *in, const char *path, int images, int size, int classes,
                      int boxes, char *why, size_t why_size);

/* Rounds the head outputs into dtype (float16 or bfloat16; nearest, ties to
 * even, as PyTorch's Tensor.to does) and points the levels at them, as a
 * mixed-precision trainer hands them over. Returns 0, or -1 (message in
 * why) when memory runs out. float32 changes nothing. */
int bench_inputs_convert(bench_inputs *in, yoloxloss_dtype dtype, char *why, size_t why_size);

/* Bytes of all head outputs in their dtype (the same as of all their gradients). */
size_t bench_inputs_bytes(const bench_inputs *in);

/* A context of cfg, or NULL after printing why it could not be created. */
yoloxloss_context *bench_create_context(const yoloxloss_config *cfg);

/* Frees what bench_inputs_synthetic or bench_inputs_load allocated. */
void bench_inputs_free(bench_inputs *in);

#endif
