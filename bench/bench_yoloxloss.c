/* Times forward + backward of the C API on a named scenario, as a C trainer
 * calls it (caller-owned gradient buffers reused across steps), beside the
 * memory floor: one streaming pass that reads the head outputs and writes
 * gradient buffers of the same size, already allocated. The floor runs right
 * after each step, so both see the same machine load. With --dtype float16
 * or bfloat16 the head outputs and gradients are 16-bit, and so is the
 * floor's pass. With --placement fresh the head outputs are copied into new
 * buffers before each call, as a training step's outputs are new every step
 * (see place_outputs). Prints one line of key=value pairs per scenario (see
 * bench/README.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_inference.h"
#include "bench_inputs.h"
#include "bench_time.h"
#include "half.h" /* yl_dtype_size, yl_dtype_name */
#include "yoloxloss.h"

#define MAX_ROUNDS 8

typedef struct {
    const char *scenario;     /* NULL: all */
    const char *inputs_path;  /* NULL: synthetic inputs */
    int max_iters, min_iters, warmup;
    double seconds;           /* stop after this much timed work once min_iters are done; 0 = no limit */
    int threads, images, boxes;
    yoloxloss_isa isa;
    yoloxloss_iou_loss iou_loss; /* --iou-loss; the default IoU loss unless given */
    yoloxloss_dtype dtype;
    int placement;            /* PLACE_*: where the head outputs of each call lie */
    int load;                 /* --load: busy processes kept running meanwhile */
    int rounds[MAX_ROUNDS];   /* --thread-rounds: thread counts timed in turn, or none */
    int num_rounds;
    int inference;            /* --inference: decode and detect instead of the loss */
    float score_threshold;    /* --score-threshold: detect's (default 0.01) */
} options;

/* Where each timed call finds the head outputs: the same buffers every call
 * (a C trainer that owns them), or new buffers each call written like a
 * clone while the previous call's are still alive (a training step's head
 * outputs); fresh-touched also reads one byte of each 4 KiB page of the new
 * buffers before the timer, which tells a cost of first touching those
 * pages apart from a cost of the call's own access pattern; fresh-huge puts
 * the new buffers on 2 MiB pages where the kernel grants them (Linux's
 * MADV_HUGEPAGE), which tells whether fewer, larger pages avoid that cost. */
enum { PLACE_REUSE, PLACE_FRESH, PLACE_FRESH_TOUCHED, PLACE_FRESH_HUGE };
static const char *const PLACEMENT_NAMES[] = {"reuse", "fresh", "fresh-touched", "fresh-huge"};
#define NUM_PLACEMENTS (sizeof PLACEMENT_NAMES / sizeof PLACEMENT_NAMES[0])

/* The box losses by the names the Python drop-in uses. */
static const char *const IOU_LOSS_NAMES[] = {"iou", "giou", "iou-linear", "diou", "ciou", "eiou", "siou"};
#define NUM_IOU_LOSSES (sizeof IOU_LOSS_NAMES / sizeof IOU_LOSS_NAMES[0])

/* The head outputs of one call at their own addresses (PLACE_FRESH*):
 * buf[l] from malloc, or within a mapping of mapped[l] bytes at map[l]. */
typedef struct {
    void *buf[BENCH_LEVELS];
    void *map[BENCH_LEVELS];
    size_t mapped[BENCH_LEVELS];
    yoloxloss_level levels[BENCH_LEVELS];
} placed_outputs;

#define HUGE_PAGE ((size_t)2 << 20)

/* A new block of bytes into p's level l: malloc (a block this large is a
 * fresh mapping), or with huge an anonymous mapping whose block starts on a
 * 2 MiB boundary, advised MADV_HUGEPAGE. Returns 0, or -1. */
static int new_block(placed_outputs *p, int l, size_t bytes, int huge) {
    p->map[l] = NULL;
    p->mapped[l] = 0;
    if (!huge) return (p->buf[l] = malloc(bytes)) ? 0 : -1;
#ifdef MADV_HUGEPAGE
    size_t len = bytes + HUGE_PAGE;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return -1;
    char *at = m + (HUGE_PAGE - (size_t)((uintptr_t)m % HUGE_PAGE)) % HUGE_PAGE;
    madvise(at, bytes, MADV_HUGEPAGE); /* advice: where the kernel refuses, 4 KiB pages remain */
    p->buf[l] = at;
    p->map[l] = m;
    p->mapped[l] = len;
    return 0;
#else
    return -1;
#endif
}

static void free_block(placed_outputs *p, int l) {
    if (p->mapped[l])
        munmap(p->map[l], p->mapped[l]);
    else
        free(p->buf[l]);
    p->buf[l] = NULL;
}

/* Copies the head outputs of in into new blocks at *next, as a framework
 * clones a tensor: plain stores in blocks small enough that memcpy does not
 * stream past the cache; then frees *prev, which was alive meanwhile, and
 * moves next into prev. Returns 0, or -1 when memory runs out. */
static int place_outputs(const bench_inputs *in, int huge, placed_outputs *prev, placed_outputs *next) {
    enum { CLONE_BLOCK = 64 * 1024 };
    const size_t esize = yl_dtype_size(in->dtype);
    for (int l = 0; l < BENCH_LEVELS; l++) {
        const size_t bytes = in->level_floats[l] * esize;
        const char *src = in->levels[l].fused;
        if (new_block(next, l, bytes, huge)) {
            for (int k = 0; k < l; k++) free_block(next, k);
            return -1;
        }
        char *dst = next->buf[l];
        for (size_t o = 0; o < bytes; o += CLONE_BLOCK)
            memcpy(dst + o, src + o, bytes - o < CLONE_BLOCK ? bytes - o : CLONE_BLOCK);
        next->levels[l] = in->levels[l];
        next->levels[l].fused = dst;
    }
    for (int l = 0; l < BENCH_LEVELS; l++)
        if (prev->buf[l]) free_block(prev, l);
    *prev = *next;
    return 0;
}

/* Reads one byte of every 4 KiB page of the placed outputs. */
static void touch_pages(const bench_inputs *in, const placed_outputs *p) {
    const size_t esize = yl_dtype_size(in->dtype);
    for (int l = 0; l < BENCH_LEVELS; l++) {
        const volatile unsigned char *bytes = p->buf[l];
        for (size_t o = 0; o < in->level_floats[l] * esize; o += 4096) (void)bytes[o];
    }
}

/* The floor's pass: read every head output once, write every gradient once,
 * in the dtype of the levels (a 16-bit value's sign flipped: no arithmetic
 * a memory-bound pass would notice). */
static void stream_pass(const bench_inputs *in, void *const *grads) {
    for (int l = 0; l < BENCH_LEVELS; l++) {
        if (in->dtype == YOLOXLOSS_DTYPE_FLOAT32) {
            const float *src = in->outputs[l];
            float *dst = grads[l];
            for (size_t i = 0; i < in->level_floats[l]; i++) dst[i] = src[i] * 0.5f;
        } else {
            const uint16_t *src = in->outputs16[l];
            uint16_t *dst = grads[l];
            for (size_t i = 0; i < in->level_floats[l]; i++) dst[i] = (uint16_t)(src[i] ^ 0x8000u);
        }
    }
}

/* ---- --load: a bounded competing load ------------------------------------
 * n child processes that spin on arithmetic, as other jobs (or a trainer's
 * own busy threads) keep every core busy. Each dies with the benchmark
 * (PR_SET_PDEATHSIG), after at most LOAD_SECONDS (alarm), or when
 * stop_load kills it. */
#define LOAD_SECONDS 900

static pid_t load_pids[256];
static int load_count;

static void start_load(int n) {
    for (int i = 0; i < n && load_count < (int)(sizeof load_pids / sizeof load_pids[0]); i++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            alarm(LOAD_SECONDS);
            volatile double x = 1.0;
            for (;;) x = x * 1.0000001 + 1e-9;
        }
        if (pid > 0) load_pids[load_count++] = pid;
    }
}

static void stop_load(void) {
    for (int i = 0; i < load_count; i++) kill(load_pids[i], SIGKILL);
    for (int i = 0; i < load_count; i++) waitpid(load_pids[i], NULL, 0);
    load_count = 0;
}

/* ---- --thread-rounds: thread counts in turn on one context ---------------
 * Each round times `per_round` steps with each count (set by
 * yoloxloss_set_num_threads, one untimed step after each change), so every
 * count sees the same machine state; one line per count. */
static int time_thread_rounds(const bench_scenario *sc, const options *o, yoloxloss_context *ctx,
                              const yoloxloss_batch *batch, const yoloxloss_level_grad *grads, int B, int nbox) {
    const int per_round = 3, rounds = (o->max_iters + per_round - 1) / per_round;
    double *t[MAX_ROUNDS];
    int n = rounds * per_round, ok = 1;
    for (int k = 0; k < o->num_rounds; k++) ok = (t[k] = malloc((size_t)n * sizeof(double))) != NULL && ok;
    yoloxloss_losses losses;
    for (int r = 0; ok && r < rounds; r++)
        for (int k = 0; ok && k < o->num_rounds; k++) {
            if (yoloxloss_set_num_threads(ctx, o->rounds[k]) != YOLOXLOSS_OK) ok = 0;
            for (int i = -1; ok && i < per_round; i++) {
                double t0 = now_ms();
                yoloxloss_status st = yoloxloss_forward(ctx, batch, &losses);
                if (st == YOLOXLOSS_OK) st = yoloxloss_backward(ctx, grads, NULL, 0);
                if (st != YOLOXLOSS_OK) {
                    fprintf(stderr, "%s: %s\n", sc->name, yoloxloss_last_error(ctx));
                    ok = 0;
                }
                if (i >= 0) t[k][r * per_round + i] = now_ms() - t0;
            }
        }
    for (int k = 0; k < o->num_rounds; k++) {
        if (ok) {
            const double mid = median(t[k], n); /* sorts t[k] */
            printf("scenario=%s images=%d size=%d boxes=%d classes=%d threads=%d isa=%s iters=%d median_ms=%.4f "
                   "p90_ms=%.4f max_ms=%.4f min_ms=%.4f load=%d num_fg=%lld total=%.9g thread_rounds=1\n",
                   sc->name, B, sc->size, nbox, sc->classes, o->rounds[k],
                   yoloxloss_isa_name(yoloxloss_get_isa(ctx)), n, mid, nearest_rank(t[k], n, 0.9), t[k][n - 1],
                   t[k][0], o->load, (long long)losses.num_fg, (double)losses.total);
        }
        free(t[k]);
    }
    fflush(stdout);
    return ok ? 0 : 1;
}

static int time_scenario(const bench_scenario *sc, const options *o) {
    int B = o->images > 0 ? o->images : sc->images;
    int nbox = o->boxes >= 0 ? o->boxes : sc->boxes;
    char why[512];
    bench_inputs in;
    int rc = o->inputs_path ? bench_inputs_load(&in, o->inputs_path, B, sc->size, sc->classes, nbox, why, sizeof why)
                            : bench_inputs_synthetic(&in, B, sc->size, sc->classes, nbox, why, sizeof why);
    if (rc || bench_inputs_convert(&in, o->dtype, why, sizeof why)) {
        fprintf(stderr, "%s: %s\n", sc->name, why);
        if (!rc) bench_inputs_free(&in);
        return 1;
    }
    if (o->inference) {
        const bench_inference_options io = {o->max_iters, o->min_iters, o->warmup, o->seconds, o->threads, o->isa,
                                            o->score_threshold};
        rc = bench_time_inference(sc, &in, &io);
        bench_inputs_free(&in);
        return rc;
    }

    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = sc->classes;
    cfg.assigner = sc->assigner;
    cfg.num_threads = o->threads;
    cfg.check_finite = 0;
    cfg.isa = o->isa;
    cfg.iou_loss = o->iou_loss;
    yoloxloss_context *ctx = bench_create_context(&cfg);
    if (!ctx) {
        bench_inputs_free(&in);
        return 1;
    }

    void *grads[BENCH_LEVELS] = {NULL};
    const size_t esize = yl_dtype_size(o->dtype);
    yoloxloss_level_grad level_grads[BENCH_LEVELS];
    double *t = malloc((size_t)o->max_iters * sizeof *t), *f = malloc((size_t)o->max_iters * sizeof *f);
    double *touch = malloc((size_t)o->max_iters * sizeof *touch); /* --placement fresh-touched's read pass */
    int ok = t && f && touch;
    for (int l = 0; l < BENCH_LEVELS; l++) {
        grads[l] = calloc(in.level_floats[l], esize); /* calloc: first touched below, untimed */
        level_grads[l] = (yoloxloss_level_grad){grads[l], NULL, NULL, NULL};
        ok = ok && grads[l];
    }
    if (!ok) fprintf(stderr, "%s: out of memory for the gradient buffers\n", sc->name);
    if (ok) stream_pass(&in, grads);

    yoloxloss_batch batch = {B, in.levels, in.num_gt, in.gt_classes, in.gt_boxes, NULL};
    /* --thread-rounds times its own steps; the loop below then does nothing */
    const int rounds = o->num_rounds > 0;
    if (ok && rounds && time_thread_rounds(sc, o, ctx, &batch, level_grads, B, nbox)) ok = 0;
    yoloxloss_losses losses;
    memset(&losses, 0, sizeof losses);
    placed_outputs placed, next;
    memset(&placed, 0, sizeof placed);
    int done = 0;
    double spent = 0;
    for (int it = -o->warmup; ok && !rounds && it < o->max_iters; it++) {
        double tt = 0;
        if (o->placement != PLACE_REUSE) {
            if (place_outputs(&in, o->placement == PLACE_FRESH_HUGE, &placed, &next)) {
                fprintf(stderr, "%s: out of memory for new head-output buffers\n", sc->name);
                ok = 0;
                break;
            }
            batch.levels = placed.levels;
            if (o->placement == PLACE_FRESH_TOUCHED) {
                double s0 = now_ms();
                touch_pages(&in, &placed);
                tt = now_ms() - s0;
            }
        }
        double t0 = now_ms();
        yoloxloss_status st = yoloxloss_forward(ctx, &batch, &losses);
        if (st == YOLOXLOSS_OK) st = yoloxloss_backward(ctx, level_grads, NULL, 0);
        double t1 = now_ms();
        if (st != YOLOXLOSS_OK) {
            fprintf(stderr, "%s: %s: %s\n", sc->name, yoloxloss_status_string(st), yoloxloss_last_error(ctx));
            ok = 0;
            break;
        }
        stream_pass(&in, grads);
        double t2 = now_ms();
        if (it < 0) continue;
        t[done] = t1 - t0;
        f[done] = t2 - t1;
        touch[done] = tt;
        done++;
        spent += t2 - t0;
        if (o->seconds > 0 && done >= o->min_iters && spent >= o->seconds * 1e3) break;
    }
    if (ok && !rounds) {
        const double mid = median(t, done), fastest = t[0]; /* median sorts t */
        const double touch_mid = median(touch, done);
        printf("scenario=%s images=%d size=%d boxes=%d classes=%d threads=%d isa=%s iters=%d "
               "median_ms=%.4f min_ms=%.4f floor_ms=%.4f bytes=%zu num_fg=%lld total=%.9g iou_loss=%s dtype=%s "
               "placement=%s p90_ms=%.4f max_ms=%.4f touch_ms=%.4f touch_p90_ms=%.4f touch_max_ms=%.4f\n",
               sc->name, B, sc->size, nbox, sc->classes, o->threads, yoloxloss_isa_name(yoloxloss_get_isa(ctx)),
               done, mid, fastest, median(f, done), bench_inputs_bytes(&in),
               (long long)losses.num_fg, (double)losses.total, IOU_LOSS_NAMES[o->iou_loss], yl_dtype_name(o->dtype),
               PLACEMENT_NAMES[o->placement], nearest_rank(t, done, 0.9), t[done - 1], touch_mid,
               nearest_rank(touch, done, 0.9), touch[done - 1]);
        fflush(stdout);
    }
    for (int l = 0; l < BENCH_LEVELS; l++)
        if (placed.buf[l]) free_block(&placed, l);
    free(touch);
    for (int l = 0; l < BENCH_LEVELS; l++) free(grads[l]);
    free(t);
    free(f);
    yoloxloss_destroy(ctx);
    bench_inputs_free(&in);
    return ok ? 0 : 1;
}

static void list_scenarios(void) {
    for (size_t s = 0; s < BENCH_NUM_SCENARIOS; s++) {
        const bench_scenario *sc = &BENCH_SCENARIOS[s];
        printf("%s images=%d size=%d classes=%d boxes=%d assigner=%s\n", sc->name, sc->images, sc->size,
               sc->classes, sc->boxes, sc->assigner == YOLOXLOSS_ASSIGNER_YOLOX ? "yolox" : "yolox-legacy");
    }
}

/* Every instruction set the library names (the enum after AUTO, up to the
 * first value it calls "unknown"), whether this build on this CPU has it,
 * and which one a context with isa = AUTO picks (YOLOXLOSS_ISA included). */
static int list_isas(void) {
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    yoloxloss_context *ctx = bench_create_context(&cfg);
    if (!ctx) return 1;
    yoloxloss_isa chosen = yoloxloss_get_isa(ctx);
    yoloxloss_destroy(ctx);
    for (int i = YOLOXLOSS_ISA_AUTO + 1; strcmp(yoloxloss_isa_name((yoloxloss_isa)i), "unknown"); i++)
        printf("isa=%s supported=%d default=%d\n", yoloxloss_isa_name((yoloxloss_isa)i),
               yoloxloss_isa_supported((yoloxloss_isa)i), i == (int)chosen);
    return 0;
}

/* The instruction set called name; prints why and returns -1 when there is
 * none of that name or this build on this CPU lacks it. */
static int parse_isa(const char *name, yoloxloss_isa *isa) {
    for (int i = YOLOXLOSS_ISA_AUTO; strcmp(yoloxloss_isa_name((yoloxloss_isa)i), "unknown"); i++) {
        if (strcmp(name, yoloxloss_isa_name((yoloxloss_isa)i))) continue;
        if (!yoloxloss_isa_supported((yoloxloss_isa)i)) {
            fprintf(stderr, "--isa %s: this build on this CPU lacks it (--list-isas shows what it has)\n", name);
            return -1;
        }
        *isa = (yoloxloss_isa)i;
        return 0;
    }
    fprintf(stderr, "--isa %s: no such instruction set (auto, or one --list-isas names)\n", name);
    return -1;
}

/* The box loss called name; prints the names and returns -1 for another. */
static int parse_iou_loss(const char *name, yoloxloss_iou_loss *loss) {
    for (size_t i = 0; i < NUM_IOU_LOSSES; i++)
        if (!strcmp(name, IOU_LOSS_NAMES[i])) {
            *loss = (yoloxloss_iou_loss)i;
            return 0;
        }
    fprintf(stderr, "--iou-loss %s: no such box loss (iou, giou, iou-linear, diou, ciou, eiou, siou)\n", name);
    return -1;
}

/* Parses a whole-string integer >= lo into *v; -1 if it is not one. */
static int parse_int(const char *s, int lo, int *v) {
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || *end || x < lo || x > 1000000) return -1;
    *v = (int)x;
    return 0;
}

static int takes_value(const char *option) {
    static const char *const names[] = {"--scenario", "--inputs", "--isa", "--seconds", "--iters",
                                        "--min-iters", "--warmup", "--threads", "--images", "--boxes",
                                        "--iou-loss", "--dtype", "--placement", "--load", "--thread-rounds",
                                        "--score-threshold"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(option, names[i])) return 1;
    return 0;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--scenario NAME] [--inputs FILE] [--threads T] [--isa NAME] [--images B]\n"
            "          [--boxes N] [--iters MAX] [--min-iters N] [--seconds S] [--warmup W]\n"
            "          [--iou-loss NAME]\n"
            "          [--dtype float32|float16|bfloat16] [--inference [--score-threshold T]]\n"
            "          [--placement reuse|fresh|fresh-touched|fresh-huge]\n"
            "          [--load N] [--thread-rounds T1,T2,...]\n"
            "       %s --list | --list-isas\n"
            "Times forward + backward on each scenario (or only NAME) and prints one key=value line\n"
            "per scenario. T = 0 is OpenMP's default. --iters is the most timed steps (default 9);\n"
            "with --seconds, timing stops once at least --min-iters steps (default 3) took S seconds.\n"
            "--inputs reads the inputs of one scenario from FILE instead of generating them.\n"
            "--iou-loss sets the box loss (iou, giou, iou-linear, diou, ciou, eiou, siou; default iou).\n"
            "--dtype: the head outputs and gradients in float16 or bfloat16 (the inputs rounded to it).\n"
            "--placement fresh: the head outputs copied into new buffers before each call while the\n"
            "previous call's are alive (a training step's); fresh-touched also reads each of their pages\n"
            "once before the timer; fresh-huge puts them on 2 MiB pages (MADV_HUGEPAGE); reuse (default):\n"
            "the same buffers every call.\n"
            "--load N: N processes spin on arithmetic while the benchmark runs (stopped at its end).\n"
            "--thread-rounds: times each thread count in turn (0 = the default) on one context,\n"
            "--iters steps each in rounds of 3, and prints one line per count.\n"
            "--inference: times yoloxloss_decode and yoloxloss_detect instead (one line each, op=decode,\n"
            "op=detect); --score-threshold is detect's (default 0.01).\n",
            argv0, argv0);
}

int main(int argc, char **argv) {
    options o = {NULL, NULL, 9, 3, 1, 0.0, 1, 0, -1, YOLOXLOSS_ISA_AUTO, YOLOXLOSS_IOU_LOSS_IOU,
                 YOLOXLOSS_DTYPE_FLOAT32, PLACE_REUSE, 0, {0}, 0, 0, 0.01f};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(argv[0]);
            return 0;
        } else if (!strcmp(a, "--list")) {
            list_scenarios();
            return 0;
        } else if (!strcmp(a, "--list-isas")) {
            return list_isas();
        } else if (!strcmp(a, "--inference")) {
            o.inference = 1;
            continue;
        } else if (!takes_value(a)) {
            fprintf(stderr, "unknown option %s\n", a);
            usage(argv[0]);
            return 2;
        } else if (!v) {
            fprintf(stderr, "%s needs a value\n", a);
            usage(argv[0]);
            return 2;
        } else if (!strcmp(a, "--scenario")) {
            o.scenario = v;
        } else if (!strcmp(a, "--inputs")) {
            o.inputs_path = v;
        } else if (!strcmp(a, "--isa")) {
            if (parse_isa(v, &o.isa)) return 2;
        } else if (!strcmp(a, "--iou-loss")) {
            if (parse_iou_loss(v, &o.iou_loss)) return 2;
        } else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "float32"))
                o.dtype = YOLOXLOSS_DTYPE_FLOAT32;
            else if (!strcmp(v, "float16"))
                o.dtype = YOLOXLOSS_DTYPE_FLOAT16;
            else if (!strcmp(v, "bfloat16"))
                o.dtype = YOLOXLOSS_DTYPE_BFLOAT16;
            else
                bad = 1;
        } else if (!strcmp(a, "--placement")) {
            bad = 1;
            for (size_t k = 0; k < NUM_PLACEMENTS; k++)
                if (!strcmp(v, PLACEMENT_NAMES[k])) {
                    o.placement = (int)k;
                    bad = 0;
                }
#ifndef MADV_HUGEPAGE
            if (o.placement == PLACE_FRESH_HUGE) {
                fprintf(stderr, "--placement fresh-huge: this system has no MADV_HUGEPAGE\n");
                return 2;
            }
#endif
        } else if (!strcmp(a, "--score-threshold")) {
            char *end;
            o.score_threshold = strtof(v, &end);
            bad = end == v || *end || !(o.score_threshold == o.score_threshold);
        } else if (!strcmp(a, "--seconds")) {
            char *end;
            o.seconds = strtod(v, &end);
            bad = end == v || *end || !(o.seconds >= 0);
        } else if (!strcmp(a, "--iters")) {
            bad = parse_int(v, 1, &o.max_iters);
        } else if (!strcmp(a, "--min-iters")) {
            bad = parse_int(v, 1, &o.min_iters);
        } else if (!strcmp(a, "--warmup")) {
            bad = parse_int(v, 0, &o.warmup);
        } else if (!strcmp(a, "--threads")) {
            bad = parse_int(v, 0, &o.threads);
        } else if (!strcmp(a, "--load")) {
            bad = parse_int(v, 0, &o.load) || o.load > 256;
        } else if (!strcmp(a, "--thread-rounds")) {
            o.num_rounds = 0;
            for (const char *c = v; *c && !bad; c++) {
                char *end;
                long x = strtol(c, &end, 10);
                bad = end == c || x < 0 || x > YOLOXLOSS_MAX_THREADS || o.num_rounds == MAX_ROUNDS ||
                      (*end && *end != ',');
                if (!bad) o.rounds[o.num_rounds++] = (int)x;
                c = end;
                if (!*c) break;
            }
            bad = bad || o.num_rounds == 0;
        } else if (!strcmp(a, "--images")) {
            bad = parse_int(v, 1, &o.images);
        } else {
            bad = parse_int(v, 0, &o.boxes); /* --boxes */
        }
        if (bad) {
            fprintf(stderr, "bad value for %s: %s\n", a, v);
            usage(argv[0]);
            return 2;
        }
        i++;
    }
    if (o.inputs_path && !o.scenario) {
        fprintf(stderr, "--inputs needs --scenario: a file holds the inputs of one scenario\n");
        return 2;
    }
    if (o.scenario && !bench_find_scenario(o.scenario)) {
        fprintf(stderr, "unknown scenario %s (see --list)\n", o.scenario);
        return 2;
    }
    start_load(o.load);
    int rc = 0;
    for (size_t s = 0; s < BENCH_NUM_SCENARIOS && !rc; s++) {
        const bench_scenario *sc = &BENCH_SCENARIOS[s];
        if (o.scenario && strcmp(o.scenario, sc->name)) continue;
        rc = time_scenario(sc, &o);
    }
    stop_load();
    return rc;
}
