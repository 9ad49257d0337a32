/* Times forward + backward of the C API on a named scenario, as a C trainer
 * calls it (caller-owned gradient buffers reused across steps), beside the
 * memory floor: one streaming pass that reads the head outputs and writes
 * gradient buffers of the same size, already allocated. The floor runs right
 * after each step, so both see the same machine load. With --dtype float16
 * or bfloat16 the head outputs and gradients are 16-bit, and so is the
 * floor's pass. Prints one line of key=value pairs per scenario (see
 * bench/README.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_inference.h"
#include "bench_inputs.h"
#include "bench_time.h"
#include "yoloxloss.h"

typedef struct {
    const char *scenario;     /* NULL: all */
    const char *inputs_path;  /* NULL: synthetic inputs */
    int max_iters, min_iters, warmup;
    double seconds;           /* stop after this much timed work once min_iters are done; 0 = no limit */
    int threads, images, boxes;
    yoloxloss_isa isa;
    yoloxloss_iou_loss iou_loss; /* --iou-loss; the default IoU loss unless given */
    yoloxloss_dtype dtype;
    int inference;            /* --inference: decode and detect instead of the loss */
    float score_threshold;    /* --score-threshold: detect's (default 0.01) */
} options;

/* The box losses by the names the Python drop-in uses. */
static const char *const IOU_LOSS_NAMES[] = {"iou", "giou", "iou-linear", "diou", "ciou", "eiou", "siou"};
#define NUM_IOU_LOSSES (sizeof IOU_LOSS_NAMES / sizeof IOU_LOSS_NAMES[0])

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

static const char *dtype_name(yoloxloss_dtype dt) {
    return dt == YOLOXLOSS_DTYPE_FLOAT16 ? "float16" : dt == YOLOXLOSS_DTYPE_BFLOAT16 ? "bfloat16" : "float32";
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
    yoloxloss_context *ctx = NULL;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) {
        yoloxloss_config_validate(&cfg, why, sizeof why);
        fprintf(stderr, "cannot create a context: %s\n", why);
        bench_inputs_free(&in);
        return 1;
    }

    void *grads[BENCH_LEVELS] = {NULL};
    const size_t esize = o->dtype == YOLOXLOSS_DTYPE_FLOAT32 ? sizeof(float) : sizeof(uint16_t);
    yoloxloss_level_grad level_grads[BENCH_LEVELS];
    double *t = malloc((size_t)o->max_iters * sizeof *t), *f = malloc((size_t)o->max_iters * sizeof *f);
    int ok = t && f;
    for (int l = 0; l < BENCH_LEVELS; l++) {
        grads[l] = calloc(in.level_floats[l], esize); /* calloc: first touched below, untimed */
        level_grads[l] = (yoloxloss_level_grad){grads[l], NULL, NULL, NULL};
        ok = ok && grads[l];
    }
    if (!ok) fprintf(stderr, "%s: out of memory for the gradient buffers\n", sc->name);
    if (ok) stream_pass(&in, grads);

    yoloxloss_batch batch = {B, in.levels, in.num_gt, in.gt_classes, in.gt_boxes};
    yoloxloss_losses losses;
    memset(&losses, 0, sizeof losses);
    int done = 0;
    double spent = 0;
    for (int it = -o->warmup; ok && it < o->max_iters; it++) {
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
        done++;
        spent += t2 - t0;
        if (o->seconds > 0 && done >= o->min_iters && spent >= o->seconds * 1e3) break;
    }
    if (ok) {
        double fastest = t[0];
        for (int i = 1; i < done; i++) fastest = t[i] < fastest ? t[i] : fastest;
        printf("scenario=%s images=%d size=%d boxes=%d classes=%d threads=%d isa=%s iters=%d "
               "median_ms=%.4f min_ms=%.4f floor_ms=%.4f bytes=%zu num_fg=%lld total=%.9g iou_loss=%s dtype=%s\n",
               sc->name, B, sc->size, nbox, sc->classes, o->threads, yoloxloss_isa_name(yoloxloss_get_isa(ctx)),
               done, median(t, done), fastest, median(f, done), bench_inputs_bytes(&in),
               (long long)losses.num_fg, (double)losses.total, IOU_LOSS_NAMES[o->iou_loss], dtype_name(o->dtype));
        fflush(stdout);
    }
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
    yoloxloss_context *ctx = NULL;
    if (yoloxloss_create(&cfg, &ctx) != YOLOXLOSS_OK) {
        char why[512];
        yoloxloss_config_validate(&cfg, why, sizeof why);
        fprintf(stderr, "cannot create a context: %s\n", why);
        return 1;
    }
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
                                        "--iou-loss", "--dtype", "--score-threshold"};
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
            "       %s --list | --list-isas\n"
            "Times forward + backward on each scenario (or only NAME) and prints one key=value line\n"
            "per scenario. T = 0 is OpenMP's default. --iters is the most timed steps (default 9);\n"
            "with --seconds, timing stops once at least --min-iters steps (default 3) took S seconds.\n"
            "--inputs reads the inputs of one scenario from FILE instead of generating them.\n"
            "--iou-loss sets the box loss (iou, giou, iou-linear, diou, ciou, eiou, siou; default iou).\n"
            "--dtype: the head outputs and gradients in float16 or bfloat16 (the inputs rounded to it).\n"
            "--inference: times yoloxloss_decode and yoloxloss_detect instead (one line each, op=decode,\n"
            "op=detect); --score-threshold is detect's (default 0.01).\n",
            argv0, argv0);
}

int main(int argc, char **argv) {
    options o = {NULL, NULL, 9, 3, 1, 0.0, 1, 0, -1, YOLOXLOSS_ISA_AUTO, YOLOXLOSS_IOU_LOSS_IOU, YOLOXLOSS_DTYPE_FLOAT32,
                 0, 0.01f};
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
    for (size_t s = 0; s < BENCH_NUM_SCENARIOS; s++) {
        const bench_scenario *sc = &BENCH_SCENARIOS[s];
        if (o.scenario && strcmp(o.scenario, sc->name)) continue;
        if (time_scenario(sc, &o)) return 1;
    }
    return 0;
}
