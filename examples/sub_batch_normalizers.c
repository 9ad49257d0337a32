/* What each normaliser costs when a trainer runs forward AND backward per
 * sub-batch (darknet's `subdivisions`), so that the two-pass recipe of
 * train_micro_batches.c (every forward first, to count the batch's num_fg)
 * is not available.
 *
 * YOLOX divides the batch's summed terms S by N = max(num_fg, 1) of the whole
 * batch. A trainer that splits each batch of BATCH images into K sub-batches
 * and runs the loss's backward before the next sub-batch's forward must pick
 * each sub-batch's normaliser before the batch's num_fg is known. The
 * options:
 *
 *   two-pass   N_batch / K with upstream.total = 1/K, the exact recipe, for
 *              comparison: it needs every forward of the step before the
 *              first backward;
 *   deferred   normaliser 1 (the plain sums S_k) with upstream.total = 1, and
 *              the step's accumulated parameter gradient multiplied by
 *              1 / N_batch before the optimiser step, when N_batch is known:
 *              exact too, where the trainer can scale the step's gradient;
 *   own        each sub-batch's own max(num_fg_k, 1) (what forward sets) with
 *              upstream.total = 1/K: the mean of the sub-batch losses, which
 *              weights a sub-batch's images by 1/num_fg_k, not 1/num_fg;
 *   previous   yoloxloss_renormalize(ctx, N_prev / K), upstream.total = 1/K:
 *              the previous step's batch num_fg (on the first step the first
 *              sub-batch's, times K);
 *   running    the same with a running mean of the batch's num_fg (each step
 *              m = 0.9 m + 0.1 num_fg; first step as previous);
 *   fixed      the same with one number for the whole run (here the first
 *              step's batch num_fg, as a trainer would measure it once).
 *
 * The head of tiny_head.h is trained on the exact whole-batch gradient of
 * random batches, and on every step, from the same parameters, each option's loss and parameter
 * gradient are computed for K = 1, 2, 4 and 8 sub-batches and compared with
 * the whole batch's: the loss ratio, the gradient's projection on the whole
 * batch's gradient (its scale) and what is left over (its change of
 * direction, relative to the whole gradient's norm). The table goes to
 * stdout (docs/trainer-guide.md quotes it).
 *
 * Checks (exit 1 with a message when one fails): the sub-batches' num_fg
 * add up to the whole batch's; two-pass and deferred give the whole batch's
 * loss and gradient; previous, running and fixed give the whole batch's
 * loss and gradient times N_batch / N_used, with no change of direction;
 * own with one sub-batch is the whole batch.
 *
 * Usage: sub_batch_normalizers [steps]   (default 100)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yoloxloss.h>

#include "tiny_loss.h"

/* Each batch is drawn at random from NUM_IMAGES images. The first WARMUP
 * steps, while the head learns where the objects are and num_fg climbs
 * fast, are reported apart from the rest. */
enum { NUM_IMAGES = 192, BATCH = 24, WARMUP = 20, NUM_PHASES = 2, NUM_SPLITS = 4, NUM_OPTIONS = 6 };
static const int kSplits[NUM_SPLITS] = {1, 2, 4, 8};

typedef enum { TWO_PASS, DEFERRED, OWN, PREVIOUS, RUNNING, FIXED } option;
static const char *const kOptionNames[NUM_OPTIONS] = {"two-pass", "deferred", "own", "previous", "running",
                                                      "fixed"};

#define RUNNING_DECAY 0.9
/* Every option but own must give the whole batch's loss and gradient times
 * N_batch / N_used, in the same direction. The library's part differs by a
 * few float32 roundings of the scale; the head's backward adds thousands of
 * float32 products per parameter, which cancel, in another grouping (by
 * sub-batch) and at another scale: up to 7e-6 of the gradient's norm seen.
 * A change of the weighting of the images (own) is 5e-2 and more. */
#define SCALE_TOL 1e-4

/* Ratio statistics of one option and K over the steps of one phase. */
typedef struct {
    int count;
    double loss_sum, loss_min, loss_max, loss_off; /* loss ratio; off = sum of |ratio - 1| */
    double grad_sum, grad_min, grad_max;           /* gradient scale */
    double dir_max;                                /* largest change of direction */
} stats;

static void stats_add(stats *s, double loss_ratio, double grad_ratio, double direction) {
    if (s->count++ == 0) *s = (stats){1, 0, INFINITY, -INFINITY, 0, 0, INFINITY, -INFINITY, 0};
    s->loss_sum += loss_ratio;
    s->loss_min = fmin(s->loss_min, loss_ratio);
    s->loss_max = fmax(s->loss_max, loss_ratio);
    s->loss_off += fabs(loss_ratio - 1.0);
    s->grad_sum += grad_ratio;
    s->grad_min = fmin(s->grad_min, grad_ratio);
    s->grad_max = fmax(s->grad_max, grad_ratio);
    s->dir_max = fmax(s->dir_max, direction);
}

/* Fused [BATCH, OUT, H, W] outputs and gradients of each level. */
typedef struct {
    head_planes out[LEVELS], grad[LEVELS];
} buffers;

/* The scale of g along w (<g, w> / <w, w>) and the norm of the rest
 * relative to |w|. */
static void compare(const head *g, const head *w, double *scale, double *direction) {
    const float *x = (const float *)g, *y = (const float *)w;
    const size_t n = sizeof(head) / sizeof(float);
    double gw = 0, ww = 0, rest = 0;
    for (size_t k = 0; k < n; k++) gw += (double)x[k] * y[k], ww += (double)y[k] * y[k];
    *scale = gw / ww;
    for (size_t k = 0; k < n; k++) {
        const double d = (double)x[k] - *scale * y[k];
        rest += d * d;
    }
    *direction = sqrt(rest / ww);
}

/* The normalisers' state, carried from step to step. */
typedef struct {
    double previous, running, fixed; /* 0 until the first step has set them */
} estimates;

/* Multiplies every parameter (gradient) of *h by f. */
static void scale_head(head *h, double f) {
    float *x = (float *)h;
    for (size_t k = 0; k < sizeof(head) / sizeof(float); k++) x[k] = (float)(x[k] * f);
}

/* One step, K sub-batches: each option's loss and parameter gradient, compared
 * with the whole batch's (whole_loss, *whole, n_batch); stats updated. */
static int measure(yoloxloss_context *ctx, const head *h, image *const *batch, int K, buffers *buf,
                   const estimates *est, double whole_loss, const head *whole, double n_batch,
                   stats st[NUM_OPTIONS]) {
    const int micro = BATCH / K;
    static head grads[NUM_OPTIONS];
    double loss[NUM_OPTIONS] = {0};
    double used[NUM_OPTIONS] = {0}; /* the batch's N each option assumes (not for own) */
    memset(grads, 0, sizeof(grads));
    int64_t fg_sum = 0;
    for (int k = 0; k < K; k++) {
        image *const *images = batch + k * micro;
        yoloxloss_losses l;
        if (tiny_loss_forward(ctx, h, images, micro, buf->out, &l)) return -1;
        fg_sum += l.num_fg;
        if (k == 0) {
            /* Without an earlier step the first sub-batch is all there is to go on. */
            const double guess = (double)(l.num_fg > 1 ? l.num_fg : 1) * K;
            used[TWO_PASS] = n_batch;
            used[PREVIOUS] = est->previous > 0 ? est->previous : guess;
            used[RUNNING] = est->running > 0 ? est->running : guess;
            used[FIXED] = est->fixed > 0 ? est->fixed : n_batch;
        }
        for (int o = 0; o < NUM_OPTIONS; o++) {
            const float n = o == OWN ? l.normalizer : o == DEFERRED ? 1.0f : (float)(used[o] / K);
            const float upstream = o == DEFERRED ? 1.0f : 1.0f / (float)K;
            yoloxloss_losses r;
            if (report_status(ctx, yoloxloss_renormalize(ctx, n, &r))) return -1;
            loss[o] += (double)upstream * r.total;
            if (tiny_loss_backward(ctx, images, micro, buf->grad, upstream, &grads[o])) return -1;
        }
    }
    if ((double)(fg_sum > 1 ? fg_sum : 1) != n_batch) {
        fprintf(stderr, "%d sub-batches assigned %lld foreground anchors, the whole batch %.0f\n", K,
                (long long)fg_sum, n_batch);
        return -1;
    }
    /* deferred: the batch's N is known now; the step's gradient is scaled once */
    scale_head(&grads[DEFERRED], 1.0 / n_batch);
    loss[DEFERRED] /= n_batch;
    used[DEFERRED] = n_batch;

    for (int o = 0; o < NUM_OPTIONS; o++) {
        double scale, direction;
        const double ratio = loss[o] / whole_loss;
        compare(&grads[o], whole, &scale, &direction);
        stats_add(&st[o], ratio, scale, direction);
        if (o == OWN && K > 1) continue; /* what it costs is what is measured */
        /* Every other option is the whole batch's loss times N_batch / N_used. */
        const double expect = o == OWN ? 1.0 : n_batch / used[o];
        if (fabs(scale - expect) > SCALE_TOL * expect || direction > SCALE_TOL ||
            fabs(ratio - expect) > SCALE_TOL * expect) {
            fprintf(stderr, "%s, %d sub-batches: gradient scale %.7f, direction off by %.2g, loss ratio %.7f; "
                    "expected %.7f, no change of direction\n", kOptionNames[o], K, scale, direction, ratio,
                    expect);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const int steps = argc > 1 ? atoi(argv[1]) : 100;
    if (steps < 1) {
        fprintf(stderr, "usage: %s [steps >= 1]\n", argv[0]);
        return 2;
    }
    uint32_t rng = 4242u;
    static image images[NUM_IMAGES];
    image *all[NUM_IMAGES];
    if (make_dataset(images, all, NUM_IMAGES, &rng) != 0) return 1;
    buffers buf;
    for (int l = 0; l < LEVELS; l++) {
        const size_t cells = (size_t)grid_size(l) * (size_t)grid_size(l);
        buf.out[l] = (head_planes){.fused = malloc(sizeof(float) * BATCH * OUT * cells)};
        buf.grad[l] = (head_planes){.fused = malloc(sizeof(float) * BATCH * OUT * cells)};
        if (!buf.out[l].fused || !buf.grad[l].fused) return 1;
    }
    head h, whole;
    head_init(&h, &rng);
    yoloxloss_context *ctx = example_context(NUM_CLASSES, LEVELS, kStrides);
    if (!ctx) return 1;

    static stats st[NUM_PHASES][NUM_SPLITS][NUM_OPTIONS];
    int64_t fg_min[NUM_PHASES] = {INT64_MAX, INT64_MAX}, fg_max[NUM_PHASES] = {0, 0};
    estimates est = {0, 0, 0};
    adam_state opt = {0};
    int failed = 0;
    for (int step = 1; step <= steps && !failed; step++) {
        const int phase = step > WARMUP;
        image *batch[BATCH];
        for (int b = 0; b < BATCH; b++) batch[b] = all[(int)(uniform(&rng) * NUM_IMAGES)];
        yoloxloss_losses l;
        memset(&whole, 0, sizeof(whole));
        if (tiny_loss_forward(ctx, &h, batch, BATCH, buf.out, &l) ||
            tiny_loss_backward(ctx, batch, BATCH, buf.grad, 1.0f, &whole))
            return 1;
        const double n_batch = (double)l.normalizer;
        fg_min[phase] = l.num_fg < fg_min[phase] ? l.num_fg : fg_min[phase];
        fg_max[phase] = l.num_fg > fg_max[phase] ? l.num_fg : fg_max[phase];
        for (int s = 0; s < NUM_SPLITS && !failed; s++)
            failed = measure(ctx, &h, batch, kSplits[s], &buf, &est, (double)l.total, &whole, n_batch,
                             st[phase][s]) != 0;
        est.previous = n_batch;
        est.running = est.running > 0 ? RUNNING_DECAY * est.running + (1 - RUNNING_DECAY) * n_batch : n_batch;
        if (est.fixed == 0) est.fixed = n_batch;
        adam_step(&h, &whole, &opt, 0.02f);
    }
    yoloxloss_destroy(ctx);
    for (int l = 0; l < LEVELS; l++) free(buf.out[l].fused), free(buf.grad[l].fused);
    for (int n = 0; n < NUM_IMAGES; n++) free_image(&images[n]);
    if (failed) return 1;

    printf("sub-batch loss and parameter gradient over the whole batch's, batches of %d images\n", BATCH);
    for (int p = 0; p < NUM_PHASES; p++) {
        if (st[p][0][0].count == 0) continue;
        printf("\nsteps %d to %d (batch num_fg %lld to %lld):\n\n", p ? WARMUP + 1 : 1, p ? steps : WARMUP,
               (long long)fg_min[p], (long long)fg_max[p]);
        printf("| normaliser | K | loss ratio, mean [min, max] | mean off | gradient scale, mean [min, max] | "
               "direction off, max |\n|---|---|---|---|---|---|\n");
        for (int o = 0; o < NUM_OPTIONS; o++)
            for (int s = 0; s < NUM_SPLITS; s++) {
                const stats *x = &st[p][s][o];
                printf("| %s | %d | %.3f [%.3f, %.3f] | %.1f%% | %.3f [%.3f, %.3f] | %.2g |\n", kOptionNames[o],
                       kSplits[s], x->loss_sum / x->count, x->loss_min, x->loss_max,
                       100.0 * x->loss_off / x->count, x->grad_sum / x->count, x->grad_min, x->grad_max,
                       x->dir_max);
            }
    }
    return 0;
}
