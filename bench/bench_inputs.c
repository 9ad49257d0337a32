#include "bench_inputs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h" /* the library's rounding to float16 and bfloat16 (src/half.h) */

/* The five rows of issue 3's table, plus large images. */
const bench_scenario BENCH_SCENARIOS[] = {
    {"coco16", 16, 640, 80, 7, YOLOXLOSS_ASSIGNER_YOLOX},
    {"coco16_50box", 16, 640, 80, 50, YOLOXLOSS_ASSIGNER_YOLOX},
    {"legacy16", 16, 640, 80, 7, YOLOXLOSS_ASSIGNER_YOLOX_LEGACY},
    {"legacy16_50box", 16, 640, 80, 50, YOLOXLOSS_ASSIGNER_YOLOX_LEGACY},
    {"lvis8", 8, 640, 1203, 15, YOLOXLOSS_ASSIGNER_YOLOX},
    {"big4_1280", 4, 1280, 80, 7, YOLOXLOSS_ASSIGNER_YOLOX},
};
const size_t BENCH_NUM_SCENARIOS = sizeof BENCH_SCENARIOS / sizeof BENCH_SCENARIOS[0];

static const int STRIDES[BENCH_LEVELS] = {8, 16, 32};

/* "YLXB" read as a little-endian int32, then the format version. */
#define FILE_MAGIC 0x42584C59
#define FILE_VERSION 1
#define HEADER_INTS 8

const bench_scenario *bench_find_scenario(const char *name) {
    for (size_t s = 0; s < BENCH_NUM_SCENARIOS; s++)
        if (strcmp(name, BENCH_SCENARIOS[s].name) == 0) return &BENCH_SCENARIOS[s];
    return NULL;
}

/* Allocates every array for the given shape; contents undefined. */
static int allocate(bench_inputs *in, int images, int size, int classes, int boxes, char *why,
                    size_t why_size) {
    memset(in, 0, sizeof *in);
    in->images = images;
    in->size = size;
    in->classes = classes;
    in->boxes = boxes;
    size_t total_gt = (size_t)images * (size_t)boxes;
    for (int l = 0; l < BENCH_LEVELS; l++) {
        int g = size / STRIDES[l];
        in->level_floats[l] = (size_t)images * (size_t)(5 + classes) * (size_t)g * (size_t)g;
        in->outputs[l] = malloc(in->level_floats[l] * sizeof(float));
        in->levels[l] = (yoloxloss_level){g, g, in->outputs[l], NULL, NULL, NULL, YOLOXLOSS_DTYPE_FLOAT32};
    }
    in->num_gt = malloc((size_t)images * sizeof *in->num_gt);
    /* + 1: a valid pointer even with no boxes */
    in->gt_classes = malloc((total_gt + 1) * sizeof *in->gt_classes);
    in->gt_boxes = malloc((total_gt + 1) * 4 * sizeof *in->gt_boxes);
    int ok = in->num_gt && in->gt_classes && in->gt_boxes;
    for (int l = 0; l < BENCH_LEVELS; l++) ok = ok && in->outputs[l];
    if (!ok) {
        snprintf(why, why_size, "out of memory for %d images of %dx%d, %d classes", images, size, size,
                 classes);
        bench_inputs_free(in);
        return -1;
    }
    for (int b = 0; b < images; b++) in->num_gt[b] = boxes;
    return 0;
}

static uint64_t rng_state;
static double uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static double normal(void) {
    double u = uniform() + 1e-12, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

int bench_inputs_synthetic(bench_inputs *in, int images, int size, int classes, int boxes,
                           char *why, size_t why_size) {
    if (allocate(in, images, size, classes, boxes, why, why_size)) return -1;
    rng_state = 0x9E3779B97F4A7C15ull;
    for (int l = 0; l < BENCH_LEVELS; l++) {
        size_t hw = (size_t)in->levels[l].height * (size_t)in->levels[l].width;
        for (int b = 0; b < images; b++)
            for (int c = 0; c < 5 + classes; c++) {
                float *plane = in->outputs[l] + ((size_t)b * (size_t)(5 + classes) + (size_t)c) * hw;
                for (size_t p = 0; p < hw; p++)
                    plane[p] = c < 4 ? (float)(0.3 * normal()) : (float)(-4.6 + 0.5 * normal());
            }
    }
    for (int i = 0; i < images * boxes; i++) {
        in->gt_classes[i] = (int32_t)(uniform() * classes) % classes;
        in->gt_boxes[4 * i + 0] = (float)(uniform() * size);
        in->gt_boxes[4 * i + 1] = (float)(uniform() * size);
        in->gt_boxes[4 * i + 2] = (float)(16 + 240 * uniform());
        in->gt_boxes[4 * i + 3] = (float)(16 + 240 * uniform());
    }
    return 0;
}

/* Reads exactly count items of size bytes; 0 on success. */
static int read_exactly(FILE *f, void *dst, size_t size, size_t count) {
    return fread(dst, size, count, f) == count ? 0 : -1;
}

int bench_inputs_load(bench_inputs *in, const char *path, int images, int size, int classes,
                      int boxes, char *why, size_t why_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_size, "cannot open the inputs file %s", path);
        return -1;
    }
    int32_t h[HEADER_INTS];
    if (read_exactly(f, h, sizeof h[0], HEADER_INTS) || h[0] != FILE_MAGIC || h[1] != FILE_VERSION) {
        snprintf(why, why_size, "%s is not a version %d yoloxloss bench inputs file", path, FILE_VERSION);
        fclose(f);
        return -1;
    }
    if (h[2] != images || h[3] != size || h[4] != classes || h[5] != boxes || h[6] != BENCH_LEVELS) {
        snprintf(why, why_size,
                 "%s holds %d images of %dx%d, %d classes, %d boxes per image, %d levels; this run "
                 "needs %d images of %dx%d, %d classes, %d boxes, %d levels",
                 path, h[2], h[3], h[3], h[4], h[5], h[6], images, size, size, classes, boxes, BENCH_LEVELS);
        fclose(f);
        return -1;
    }
    if (allocate(in, images, size, classes, boxes, why, why_size)) {
        fclose(f);
        return -1;
    }
    size_t total_gt = (size_t)images * (size_t)boxes;
    int bad = 0;
    for (int l = 0; l < BENCH_LEVELS; l++)
        bad = bad || read_exactly(f, in->outputs[l], sizeof(float), in->level_floats[l]);
    bad = bad || read_exactly(f, in->gt_classes, sizeof(int32_t), total_gt);
    bad = bad || read_exactly(f, in->gt_boxes, sizeof(float), 4 * total_gt);
    char extra;
    if (bad || fread(&extra, 1, 1, f) != 0) {
        snprintf(why, why_size, "%s is %s than its header says", path, bad ? "shorter" : "longer");
        bench_inputs_free(in);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

int bench_inputs_convert(bench_inputs *in, yoloxloss_dtype dtype, char *why, size_t why_size) {
    if (dtype == YOLOXLOSS_DTYPE_FLOAT32) return 0;
    for (int l = 0; l < BENCH_LEVELS; l++) {
        in->outputs16[l] = malloc(in->level_floats[l] * sizeof(uint16_t));
        if (!in->outputs16[l]) {
            snprintf(why, why_size, "out of memory for the 16-bit head outputs");
            return -1;
        }
        for (size_t i = 0; i < in->level_floats[l]; i++)
            in->outputs16[l][i] = dtype == YOLOXLOSS_DTYPE_FLOAT16 ? yl_f32_to_f16(in->outputs[l][i])
                                                                   : yl_f32_to_bf16(in->outputs[l][i]);
        in->levels[l].fused = in->outputs16[l];
        in->levels[l].dtype = dtype;
    }
    in->dtype = dtype;
    return 0;
}

size_t bench_inputs_bytes(const bench_inputs *in) {
    size_t n = 0;
    for (int l = 0; l < BENCH_LEVELS; l++) n += in->level_floats[l];
    return n * yl_dtype_size(in->dtype);
}

void bench_inputs_free(bench_inputs *in) {
    for (int l = 0; l < BENCH_LEVELS; l++) {
        free(in->outputs[l]);
        free(in->outputs16[l]);
    }
    free(in->num_gt);
    free(in->gt_classes);
    free(in->gt_boxes);
    memset(in, 0, sizeof *in);
}

yoloxloss_context *bench_create_context(const yoloxloss_config *cfg) {
    yoloxloss_context *ctx = NULL;
    if (yoloxloss_create(cfg, &ctx) == YOLOXLOSS_OK) return ctx;
    char why[512];
    yoloxloss_config_validate(cfg, why, sizeof why);
    fprintf(stderr, "cannot create a context: %s\n", why);
    return NULL;
}
