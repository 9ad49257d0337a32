/* Times forward + backward of the C API on named scenarios, with caller-
 * owned gradient buffers reused across steps, beside the memory floor: one
 * streaming pass that reads the head outputs and writes buffers of the same
 * size. Prints one line per scenario:
 *   scenario=coco16 threads=1 isa=scalar iters=9 median_ms=... floor_ms=... num_fg=...
 * Inputs are synthetic (fixed seed): logits as a freshly initialised head
 * gives them, boxes uniform over the image. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "yoloxloss.h"

typedef struct {
    const char *name;
    int images, size, classes, boxes;
    yoloxloss_assigner assigner;
} scenario;

static const scenario SCENARIOS[] = {
    {"coco16", 16, 640, 80, 7, YOLOXLOSS_ASSIGNER_YOLOX},
    {"coco16_50box", 16, 640, 80, 50, YOLOXLOSS_ASSIGNER_YOLOX},
    {"legacy16", 16, 640, 80, 7, YOLOXLOSS_ASSIGNER_YOLOX_LEGACY},
    {"legacy16_50box", 16, 640, 80, 50, YOLOXLOSS_ASSIGNER_YOLOX_LEGACY},
    {"lvis8", 8, 640, 1203, 15, YOLOXLOSS_ASSIGNER_YOLOX},
    {"big4_1280", 4, 1280, 80, 7, YOLOXLOSS_ASSIGNER_YOLOX},
};
#define NUM_SCENARIOS (sizeof SCENARIOS / sizeof SCENARIOS[0])

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static double normal(void) {
    double u = uniform() + 1e-12, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int run(const scenario *sc, int iters, int threads, int batch_override, int boxes_override) {
    int B = batch_override > 0 ? batch_override : sc->images;
    int nbox = boxes_override >= 0 ? boxes_override : sc->boxes;
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = sc->classes;
    cfg.assigner = sc->assigner;
    cfg.num_threads = threads;
    cfg.check_finite = 0;
    yoloxloss_context *ctx;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) {
        char why[256];
        yoloxloss_config_validate(&cfg, why, sizeof why);
        fprintf(stderr, "cannot create a context: %s\n", why);
        return 1;
    }

    const int C = sc->classes;
    yoloxloss_level levels[3];
    yoloxloss_level_grad grads[3];
    size_t total_floats = 0;
    float *bufs[3], *gbufs[3];
    for (int l = 0; l < 3; l++) {
        int g = sc->size / (int)cfg.strides[l];
        size_t n = (size_t)B * (size_t)(5 + C) * (size_t)g * (size_t)g;
        bufs[l] = malloc(n * sizeof(float));
        gbufs[l] = malloc(n * sizeof(float));
        if (!bufs[l] || !gbufs[l]) return 1;
        size_t hw = (size_t)g * g;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < 5 + C; c++) {
                float *plane = bufs[l] + ((size_t)b * (5 + C) + c) * hw;
                for (size_t p = 0; p < hw; p++)
                    plane[p] = c < 4 ? (float)(0.3 * normal()) : (float)(-4.6 + 0.5 * normal());
            }
        memset(gbufs[l], 0, n * sizeof(float));
        levels[l] = (yoloxloss_level){g, g, bufs[l], NULL, NULL, NULL};
        grads[l] = (yoloxloss_level_grad){gbufs[l], NULL, NULL, NULL};
        total_floats += n;
    }
    int32_t *num_gt = malloc((size_t)B * sizeof *num_gt);
    int32_t *classes = malloc((size_t)(B * nbox + 1) * sizeof *classes);
    float *boxes = malloc((size_t)(B * nbox + 1) * 4 * sizeof *boxes);
    for (int i = 0; i < B * nbox; i++) {
        classes[i] = (int32_t)(uniform() * C) % C;
        boxes[4 * i + 2] = (float)(16 + 240 * uniform());
        boxes[4 * i + 3] = (float)(16 + 240 * uniform());
        boxes[4 * i + 0] = (float)(uniform() * sc->size);
        boxes[4 * i + 1] = (float)(uniform() * sc->size);
    }
    for (int b = 0; b < B; b++) num_gt[b] = nbox;
    yoloxloss_batch batch = {B, levels, num_gt, classes, boxes};

    double *t = malloc((size_t)iters * sizeof *t), *f = malloc((size_t)iters * sizeof *f);
    yoloxloss_losses losses;
    for (int it = -1; it < iters; it++) { /* it = -1 warms the workspace */
        double t0 = now_ms();
        yoloxloss_status st = yoloxloss_forward(ctx, &batch, &losses);
        if (st == YOLOXLOSS_OK) st = yoloxloss_backward(ctx, grads, NULL, 0);
        double t1 = now_ms();
        if (st != YOLOXLOSS_OK) {
            fprintf(stderr, "%s: %s\n", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
            return 1;
        }
        /* the floor: read every output once, write every gradient once */
        for (int l = 0; l < 3; l++) {
            size_t n = (size_t)B * (size_t)(5 + C) * (size_t)levels[l].height * (size_t)levels[l].width;
            for (size_t i = 0; i < n; i++) gbufs[l][i] = bufs[l][i] * 0.5f;
        }
        double t2 = now_ms();
        if (it >= 0) {
            t[it] = t1 - t0;
            f[it] = t2 - t1;
        }
    }
    printf("scenario=%s images=%d boxes=%d classes=%d threads=%d isa=%s iters=%d median_ms=%.3f "
           "floor_ms=%.3f bytes=%zu num_fg=%lld total=%.6f\n",
           sc->name, B, nbox, C, threads, yoloxloss_isa_name(yoloxloss_get_isa(ctx)), iters, median(t, iters), median(f, iters),
           total_floats * sizeof(float), (long long)losses.num_fg, (double)losses.total);
    fflush(stdout);
    for (int l = 0; l < 3; l++) {
        free(bufs[l]);
        free(gbufs[l]);
    }
    free(num_gt);
    free(classes);
    free(boxes);
    free(t);
    free(f);
    yoloxloss_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    const char *only = NULL;
    int iters = 9, threads = 1, batch = 0, boxes = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scenario") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--images") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--boxes") && i + 1 < argc) boxes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--list")) {
            for (size_t s = 0; s < NUM_SCENARIOS; s++)
                printf("%s images=%d size=%d classes=%d boxes=%d assigner=%s\n", SCENARIOS[s].name,
                       SCENARIOS[s].images, SCENARIOS[s].size, SCENARIOS[s].classes, SCENARIOS[s].boxes,
                       SCENARIOS[s].assigner == YOLOXLOSS_ASSIGNER_YOLOX ? "yolox" : "yolox-legacy");
            return 0;
        } else {
            fprintf(stderr,
                    "usage: %s [--scenario NAME] [--iters N] [--threads T] [--images B] [--boxes N] [--list]\n",
                    argv[0]);
            return 2;
        }
    }
    if (iters < 1) iters = 1;
    int found = 0;
    for (size_t s = 0; s < NUM_SCENARIOS; s++) {
        if (only && strcmp(only, SCENARIOS[s].name)) continue;
        found = 1;
        if (run(&SCENARIOS[s], iters, threads, batch, boxes)) return 1;
    }
    if (!found) {
        fprintf(stderr, "unknown scenario %s (see --list)\n", only);
        return 2;
    }
    return 0;
}
