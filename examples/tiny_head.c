/* The toy detector of the C example trainers (tiny_head.h). */
#include "tiny_head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float kStrides[LEVELS] = {8, 16};

float uniform(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

int grid_size(int level) { return (int)((float)IMAGE / kStrides[level]); }

void make_mixing(float mix[FEAT * SEMANTIC], uint32_t *rng) {
    for (int k = 0; k < FEAT * SEMANTIC; k++) mix[k] = 2.0f * uniform(rng) - 1.0f;
}

/* One object per quadrant, so that the nearest object to a cell is the one
 * SimOTA will match it to. */
static void make_boxes(image *im, uint32_t *rng) {
    im->num_gt = 1 + (int32_t)(uniform(rng) * MAX_GT);
    for (int g = 0; g < im->num_gt; g++) {
        const float qx = (float)(g % 2) * 64.0f, qy = (float)(g / 2) * 64.0f;
        float *box = im->boxes + 4 * g;
        box[0] = qx + 20.0f + 24.0f * uniform(rng);
        box[1] = qy + 20.0f + 24.0f * uniform(rng);
        box[2] = 16.0f + 40.0f * uniform(rng);
        box[3] = 16.0f + 40.0f * uniform(rng);
        im->classes[g] = (int32_t)(uniform(rng) * NUM_CLASSES);
    }
}

/* What the frozen backbone knows at one cell, before mixing. */
static void semantic_vector(const image *im, float stride, int i, int j, float z[SEMANTIC]) {
    const float xc = ((float)j + 0.5f) * stride, yc = ((float)i + 0.5f) * stride;
    int best = 0;
    float best_d = INFINITY;
    for (int g = 0; g < im->num_gt; g++) {
        const float dx = im->boxes[4 * g] - xc, dy = im->boxes[4 * g + 1] - yc;
        if (dx * dx + dy * dy < best_d) best_d = dx * dx + dy * dy, best = g;
    }
    const float *box = im->boxes + 4 * best;
    /* decoding is x = (tx + j) s, w = exp(tw) s: these are the ideal outputs */
    z[0] = box[0] / stride - (float)j;
    z[1] = box[1] / stride - (float)i;
    z[2] = logf(box[2] / stride);
    z[3] = logf(box[3] / stride);
    z[4] = fabsf(box[0] - xc) < 1.5f * stride && fabsf(box[1] - yc) < 1.5f * stride ? 1.0f : 0.0f;
    for (int k = 0; k < NUM_CLASSES; k++) z[5 + k] = im->classes[best] == k ? 1.0f : 0.0f;
}

int make_image(image *im, const float mix[FEAT * SEMANTIC], uint32_t *rng) {
    make_boxes(im, rng);
    for (int l = 0; l < LEVELS; l++) im->features[l] = NULL;
    for (int l = 0; l < LEVELS; l++) {
        const int n = grid_size(l);
        im->features[l] = malloc(sizeof(float) * FEAT * (size_t)(n * n));
        if (!im->features[l]) return -1;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                float z[SEMANTIC];
                semantic_vector(im, kStrides[l], i, j, z);
                for (int d = 0; d < FEAT; d++) {
                    float f = 0.02f * (uniform(rng) - 0.5f);
                    for (int s = 0; s < SEMANTIC; s++) f += mix[d * SEMANTIC + s] * z[s];
                    im->features[l][(d * n + i) * n + j] = f;
                }
            }
    }
    return 0;
}

void free_image(image *im) {
    for (int l = 0; l < LEVELS; l++) {
        free(im->features[l]);
        im->features[l] = NULL;
    }
}

void head_init(head *h, uint32_t *rng) {
    for (int k = 0; k < OUT * FEAT; k++) h->w[k] = 0.02f * (uniform(rng) - 0.5f);
    for (int c = 0; c < OUT; c++) h->b[c] = c < 4 ? 0.0f : -logf((1.0f - 0.01f) / 0.01f);
}

float *head_channel(const head_planes *planes, int b, int c, size_t cells) {
    if (planes->fused) return planes->fused + ((size_t)b * OUT + (size_t)c) * cells;
    if (c < 4) return planes->reg + ((size_t)b * 4 + (size_t)c) * cells;
    if (c == 4) return planes->obj + (size_t)b * cells;
    return planes->cls + ((size_t)b * NUM_CLASSES + (size_t)(c - 5)) * cells;
}

void head_forward(const head *h, image *const *batch, int num, int level, const head_planes *out) {
    const size_t cells = (size_t)grid_size(level) * (size_t)grid_size(level);
    for (int b = 0; b < num; b++) {
        const float *f = batch[b]->features[level];
        for (int c = 0; c < OUT; c++) {
            float *o = head_channel(out, b, c, cells);
            for (size_t p = 0; p < cells; p++) {
                float acc = h->b[c];
                for (int d = 0; d < FEAT; d++) acc += h->w[c * FEAT + d] * f[(size_t)d * cells + p];
                o[p] = acc;
            }
        }
    }
}

void head_backward(head *grad, image *const *batch, int num, int level, const head_planes *g_out) {
    const size_t cells = (size_t)grid_size(level) * (size_t)grid_size(level);
    for (int b = 0; b < num; b++) {
        const float *f = batch[b]->features[level];
        for (int c = 0; c < OUT; c++) {
            const float *g = head_channel(g_out, b, c, cells);
            for (size_t p = 0; p < cells; p++) {
                const float gc = g[p];
                if (gc == 0.0f) continue;
                grad->b[c] += gc;
                for (int d = 0; d < FEAT; d++) grad->w[c * FEAT + d] += gc * f[(size_t)d * cells + p];
            }
        }
    }
}

void adam_step(head *h, const head *g, adam_state *s, float lr) {
    const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    float *p = (float *)h, *m = (float *)&s->m, *v = (float *)&s->v;
    const float *gp = (const float *)g;
    s->t++;
    const float c1 = 1.0f - powf(beta1, (float)s->t), c2 = 1.0f - powf(beta2, (float)s->t);
    for (size_t k = 0; k < sizeof(head) / sizeof(float); k++) {
        m[k] = beta1 * m[k] + (1.0f - beta1) * gp[k];
        v[k] = beta2 * v[k] + (1.0f - beta2) * gp[k] * gp[k];
        p[k] -= lr * (m[k] / c1) / (sqrtf(v[k] / c2) + eps);
    }
}

void flatten_labels(image *const *images, int num, flat_labels *out) {
    int rows = 0;
    for (int b = 0; b < num; b++) {
        const int n = images[b]->num_gt;
        out->num_gt[b] = n;
        memcpy(out->classes + rows, images[b]->classes, sizeof(int32_t) * (size_t)n);
        memcpy(out->boxes + 4 * rows, images[b]->boxes, sizeof(float) * 4 * (size_t)n);
        rows += n;
    }
}
