/* Data-parallel training over MPI: the tiny head of tiny_head.h trained by R
 * ranks (processes, on one machine or several), each on its share of every
 * global batch, ending with the same parameters as one process on the whole
 * batch (to float32 rounding).
 *
 * Every rank holds a replica of the head and of the data set (all ranks draw
 * the same synthetic images from the same seed; rank 0's initial parameters
 * are broadcast, as a real trainer does). Per step, rank r takes images
 * [r B/R, (r+1) B/R) of the global batch of B images and:
 *
 *   1. runs the head forward and yoloxloss_forward on them (fused buffers);
 *   2. all-reduces num_fg (a sum) and calls
 *      yoloxloss_renormalize(ctx, max(sum / R, 1), ...): every rank divides
 *      by the same normaliser, the mean num_fg over the ranks (MMDetection's
 *      rule), instead of its own max(num_fg, 1);
 *   3. runs yoloxloss_backward and the head's backward;
 *   4. all-reduces the parameter gradients and divides them by R (what DDP
 *      does), then takes the same Adam step as every other rank.
 *
 * Why that is the whole batch's gradient: rank r's gradient is that of
 * S_r / N_global, S_r the sum of its images' loss terms. Averaged over the R
 * ranks it is the gradient of (S_1 + ... + S_R) / (R N_global), and
 * R N_global = R max(num_fg / R, 1) = max(num_fg, R) is the whole batch's
 * normaliser max(num_fg, 1) whenever the batch has at least R foreground
 * anchors (an image's assignment does not depend on the other images of its
 * batch, so the ranks' counts add up to the whole batch's). Without step 2
 * each rank would weight its images by its own 1/num_fg_r: another loss.
 *
 * Output: rank 0 prints each step's loss (the mean over the ranks of their
 * reported terms, which is the whole batch's loss) and, with --out FILE,
 * writes the per-step losses and the final parameters there, one value or
 * row per line ("loss STEP TOTAL IOU OBJ CLS L1", "num_fg STEP N", then
 * "param w|b INDEX VALUE"; 9 significant digits, enough to read float32
 * back exactly). tests/data_parallel/check_equivalence.py runs this with 1
 * and with 2 ranks for 10 steps and compares those files.
 *
 * Checks; the program exits 1 when one fails:
 *   - on the first and every CHECK_EVERY-th step, rank 0 also computes the
 *     gradient of one forward and backward over the whole global batch (with
 *     the library's own normaliser, max(num_fg, 1)) and compares it with the
 *     averaged one (GRAD_TOL, below), and the loss likewise (LOSS_TOL): the
 *     equivalence, step by step, from the same parameters (training goes on
 *     after a failed check, so the results file is complete);
 *   - at the end every rank's parameters are bit for bit rank 0's (the
 *     replicas have not drifted apart).
 *
 * Usage: mpirun -np R train_data_parallel_mpi [steps] [--out FILE] [--local-normalizer]
 * (as root, Open MPI also wants --allow-run-as-root)
 *   steps               default 40
 *   R                   any divisor of the global batch (12)
 *   --local-normalizer  leave out step 2 (each rank keeps max(num_fg_r, 1)):
 *                       the check against one process then fails, and the
 *                       losses and parameters drift from a one-process run
 *                       (the test checks both)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>
#include <yoloxloss.h>

#include "tiny_head.h"

enum { NUM_IMAGES = 24, BATCH = 12, DEFAULT_STEPS = 40, CHECK_EVERY = 10 };
#define LEARNING_RATE 0.02f
/* The averaged gradient and the whole batch's differ only in how the head's
 * backward groups its float32 sums (per rank, then across ranks, against
 * all images in one run) and in the float32 rounding of the normaliser's
 * scale (1/N against 1/(N/R) averaged): a few float32 roundings of the
 * terms summed. Relative to the largest component, as in
 * train_micro_batches.c (measured: up to 2.3e-6, on the first step, where
 * the gradients are large and cancel most), with room: */
#define GRAD_TOL 1e-5
/* Each rank's terms are double sums rounded to float32, added over ranks. */
#define LOSS_TOL 1e-5

typedef struct {
    int steps;
    const char *out_path;  /* NULL: no results file */
    int local_normalizer;  /* leave out the all-reduce of num_fg */
} options;

/* Per-rank output and gradient buffers, fused, sized for BATCH images. */
typedef struct {
    float *out[LEVELS], *grad[LEVELS];
} buffers;

static int rank_of(MPI_Comm comm) {
    int r;
    MPI_Comm_rank(comm, &r);
    return r;
}

/* Any failure on one rank ends every rank: the others would otherwise wait
 * in the next collective for ever. */
static void fail(const char *what, const char *detail) {
    fprintf(stderr, "rank %d: %s%s%s\n", rank_of(MPI_COMM_WORLD), what, detail ? ": " : "", detail ? detail : "");
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1); /* not reached: MPI_Abort does not return */
}

static void check(yoloxloss_context *ctx, yoloxloss_status st, const char *call) {
    if (st == YOLOXLOSS_OK) return;
    char detail[600];
    snprintf(detail, sizeof detail, "%s (%s)", yoloxloss_status_string(st), yoloxloss_last_error(ctx));
    fail(call, detail);
}

static int parse_options(int argc, char **argv, options *opt) {
    *opt = (options){.steps = DEFAULT_STEPS};
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
            opt->out_path = argv[++a];
        } else if (strcmp(argv[a], "--local-normalizer") == 0) {
            opt->local_normalizer = 1;
        } else {
            char *end;
            const long steps = strtol(argv[a], &end, 10);
            if (*end != '\0' || steps < 1 || steps > 100000) return -1;
            opt->steps = (int)steps;
        }
    }
    return 0;
}

static void alloc_buffers(buffers *buf) {
    for (int l = 0; l < LEVELS; l++) {
        const size_t n = (size_t)BATCH * OUT * (size_t)grid_size(l) * (size_t)grid_size(l);
        buf->out[l] = malloc(sizeof(float) * n);
        buf->grad[l] = malloc(sizeof(float) * n);
        if (!buf->out[l] || !buf->grad[l]) fail("out of memory", NULL);
    }
}

static void free_buffers(buffers *buf) {
    for (int l = 0; l < LEVELS; l++) {
        free(buf->out[l]);
        free(buf->grad[l]);
    }
}

/* Head forward and loss forward over this rank's images. */
static void local_forward(yoloxloss_context *ctx, const head *h, image *const *images, int num, buffers *buf,
                          yoloxloss_losses *losses) {
    flat_labels gt;
    flatten_labels(images, num, &gt);
    yoloxloss_level levels[LEVELS];
    for (int l = 0; l < LEVELS; l++) {
        head_forward(h, images, num, l, &(head_planes){.fused = buf->out[l]});
        levels[l] = (yoloxloss_level){.height = grid_size(l), .width = grid_size(l), .fused = buf->out[l]};
    }
    const yoloxloss_batch in = {.num_images = num, .levels = levels, .num_gt = gt.num_gt,
                                .gt_classes = gt.classes, .gt_boxes = gt.boxes};
    check(ctx, yoloxloss_forward(ctx, &in, losses), "yoloxloss_forward");
}

/* The normaliser every rank uses: max(mean num_fg over the ranks, 1). A
 * collective: every rank calls it, between its forward and its backward. */
static float global_normalizer(int64_t local_num_fg, int ranks, MPI_Comm comm, int64_t *total_num_fg) {
    int64_t fg = local_num_fg;
    MPI_Allreduce(MPI_IN_PLACE, &fg, 1, MPI_INT64_T, MPI_SUM, comm);
    *total_num_fg = fg;
    return (float)fmax((double)fg / ranks, 1.0);
}

/* grad <- the mean of every rank's grad, summed in double so that the mean
 * is rounded to float32 once. Every rank receives the same sum (an
 * all-reduce gives each rank the same result; replicas_differ checks that
 * the replicas stay identical), so every replica takes the same step. */
static void average_gradients(head *grad, int ranks, MPI_Comm comm) {
    enum { N = sizeof(head) / sizeof(float) };
    static double sum[N];
    float *g = (float *)grad;
    for (int k = 0; k < N; k++) sum[k] = (double)g[k];
    MPI_Allreduce(MPI_IN_PLACE, sum, N, MPI_DOUBLE, MPI_SUM, comm);
    for (int k = 0; k < N; k++) g[k] = (float)(sum[k] / ranks);
}

/* The batch's loss terms: the mean over the ranks of what each reported
 * (each is its images' sum over the common normaliser). */
static void global_losses(const yoloxloss_losses *l, int ranks, MPI_Comm comm, double terms[5]) {
    terms[0] = l->total, terms[1] = l->iou, terms[2] = l->obj, terms[3] = l->cls, terms[4] = l->l1;
    MPI_Allreduce(MPI_IN_PLACE, terms, 5, MPI_DOUBLE, MPI_SUM, comm);
    for (int k = 0; k < 5; k++) terms[k] /= ranks;
}

/* Backward of the last forward over images[0..num) into the output
 * gradients, then the head's backward into *grad (zeroed first). */
static void local_backward(yoloxloss_context *ctx, image *const *images, int num, buffers *buf, head *grad) {
    yoloxloss_level_grad g[LEVELS];
    for (int l = 0; l < LEVELS; l++) g[l] = (yoloxloss_level_grad){.fused = buf->grad[l]};
    check(ctx, yoloxloss_backward(ctx, g, NULL, /*accumulate=*/0), "yoloxloss_backward");
    memset(grad, 0, sizeof *grad);
    for (int l = 0; l < LEVELS; l++) head_backward(grad, images, num, l, &(head_planes){.fused = buf->grad[l]});
}

/* Largest |a - b| over the parameters, relative to the largest |b|. */
static double relative_difference(const head *a, const head *b) {
    const float *x = (const float *)a, *y = (const float *)b;
    double diff = 0.0, scale = 0.0;
    for (size_t k = 0; k < sizeof(head) / sizeof(float); k++) {
        diff = fmax(diff, fabs((double)x[k] - (double)y[k]));
        scale = fmax(scale, fabs((double)y[k]));
    }
    return scale > 0.0 ? diff / scale : diff;
}

/* Rank 0's check of one step: the gradient and loss of one process over
 * the whole global batch, from the same parameters, against the ranks'
 * averaged gradient and mean loss. Returns 0 when they agree. */
static int check_against_one_process(yoloxloss_context *ctx, const head *h, image *const *batch, buffers *buf,
                                     const head *averaged, double loss, int step) {
    yoloxloss_losses whole;
    head reference;
    local_forward(ctx, h, batch, BATCH, buf, &whole);
    local_backward(ctx, batch, BATCH, buf, &reference);
    const double dg = relative_difference(averaged, &reference);
    const double dl = fabs(loss - (double)whole.total) / fmax(fabs((double)whole.total), 1e-30);
    printf("step %3d: against one process over the whole batch: gradient difference %.2g, loss %.2g\n", step, dg,
           dl);
    if (dg <= GRAD_TOL && dl <= LOSS_TOL) return 0;
    fprintf(stderr, "step %d: the ranks' %s is not one process's (relative difference %.3g, tolerance %.0e)\n",
            step, dg > GRAD_TOL ? "averaged gradient" : "mean loss", dg > GRAD_TOL ? dg : dl,
            dg > GRAD_TOL ? GRAD_TOL : LOSS_TOL);
    return -1;
}

/* 1 on every rank if any rank's parameters differ from rank 0's in a bit. */
static int replicas_differ(const head *h, MPI_Comm comm) {
    head root = *h;
    MPI_Bcast(&root, (int)(sizeof(head) / sizeof(float)), MPI_FLOAT, 0, comm);
    int differ = memcmp(&root, h, sizeof(head)) != 0;
    MPI_Allreduce(MPI_IN_PLACE, &differ, 1, MPI_INT, MPI_MAX, comm);
    return differ;
}

static void write_parameters(FILE *f, const head *h) {
    for (int k = 0; k < OUT * FEAT; k++) fprintf(f, "param w %d %.9g\n", k, (double)h->w[k]);
    for (int k = 0; k < OUT; k++) fprintf(f, "param b %d %.9g\n", k, (double)h->b[k]);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    const MPI_Comm comm = MPI_COMM_WORLD;
    int rank, ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &ranks);
    options opt;
    if (parse_options(argc, argv, &opt) != 0 || BATCH % ranks != 0) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np R %s [steps >= 1] [--out FILE] [--local-normalizer]\n"
                    "       (R a divisor of the global batch, %d; got %d ranks)\n", argv[0], BATCH, ranks);
        MPI_Finalize();
        return 2;
    }
    const int per_rank = BATCH / ranks;

    uint32_t rng = 777u;
    float mix[FEAT * SEMANTIC];
    make_mixing(mix, &rng);
    static image images[NUM_IMAGES];
    for (int n = 0; n < NUM_IMAGES; n++)
        if (make_image(&images[n], mix, &rng) != 0) fail("out of memory", NULL);
    head h, grad;
    head_init(&h, &rng);
    /* Every replica starts from rank 0's parameters. */
    MPI_Bcast(&h, (int)(sizeof(head) / sizeof(float)), MPI_FLOAT, 0, comm);
    buffers buf;
    alloc_buffers(&buf);

    /* The same config on every rank: classes, strides, assigner, weights. */
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = NUM_CLASSES;
    cfg.num_levels = LEVELS;
    cfg.strides = kStrides;
    cfg.num_threads = 1; /* one rank per core; tiny batches */
    yoloxloss_context *ctx;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) fail("yoloxloss_create", yoloxloss_last_error(NULL));

    FILE *out = NULL;
    if (rank == 0 && opt.out_path && !(out = fopen(opt.out_path, "w"))) fail("cannot write", opt.out_path);
    if (rank == 0)
        printf("%d rank%s x %d images per global batch of %d, %s normaliser\n", ranks, ranks > 1 ? "s" : "",
               per_rank, BATCH, opt.local_normalizer ? "each rank's own" : "the global");

    adam_state adam = {0};
    int failed = 0;
    for (int step = 1; step <= opt.steps; step++) {
        image *batch[BATCH]; /* the global batch; this rank's share is batch[rank * per_rank ...] */
        for (int b = 0; b < BATCH; b++) batch[b] = &images[((step - 1) * BATCH + b) % NUM_IMAGES];
        image *const *local = batch + rank * per_rank;

        yoloxloss_losses l;
        local_forward(ctx, &h, local, per_rank, &buf, &l);
        int64_t num_fg = l.num_fg;
        if (opt.local_normalizer)
            MPI_Allreduce(MPI_IN_PLACE, &num_fg, 1, MPI_INT64_T, MPI_SUM, comm); /* for the log only */
        else
            check(ctx, yoloxloss_renormalize(ctx, global_normalizer(l.num_fg, ranks, comm, &num_fg), &l),
                  "yoloxloss_renormalize");
        local_backward(ctx, local, per_rank, &buf, &grad);
        average_gradients(&grad, ranks, comm);

        double terms[5];
        global_losses(&l, ranks, comm, terms);
        if (rank == 0) {
            if (step == 1 || step % CHECK_EVERY == 0 || step == opt.steps) {
                printf("step %3d  num_fg %3lld  total %.4f  iou %.4f  obj %.4f  cls %.4f\n", step,
                       (long long)num_fg, terms[0], terms[1], terms[2], terms[3]);
                if (check_against_one_process(ctx, &h, batch, &buf, &grad, terms[0], step)) failed = 1;
            }
            if (out)
                fprintf(out, "loss %d %.9g %.9g %.9g %.9g %.9g\nnum_fg %d %lld\n", step, terms[0], terms[1],
                        terms[2], terms[3], terms[4], step, (long long)num_fg);
        }
        adam_step(&h, &grad, &adam, LEARNING_RATE);
    }

    const int differ = replicas_differ(&h, comm);
    if (out) {
        write_parameters(out, &h);
        if (fclose(out) != 0) fail("cannot write", opt.out_path);
    }
    if (rank == 0) printf("%s\n", differ ? "the ranks' parameters differ" : "every rank holds the same parameters");

    yoloxloss_destroy(ctx);
    free_buffers(&buf);
    for (int n = 0; n < NUM_IMAGES; n++) free_image(&images[n]);
    MPI_Finalize();
    return differ || failed ? 1 : 0;
}
