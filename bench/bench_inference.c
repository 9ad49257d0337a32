/* yoloxloss_bench --inference: decode and detect, each timed call by call
 * beside its memory floor, run right after it so both see the same load.
 *
 * decode's floor is one pass that reads every head output once and writes
 * outputs of the size decode writes (boxes [B, A, 4] and scores [B, A, C],
 * float32). detect writes almost nothing: its floor is the read alone (it
 * can beat it, since it skips the class logits of anchors whose objectness
 * is below the threshold). */
#include "bench_inference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_time.h"
#include "half.h" /* yl_dtype_name */

enum { MAX_DETECTIONS = 100 };

/* Element i of level l's outputs as a float (a 16-bit one's bits as an integer: no conversion cost). */
static float output_value(const bench_inputs *in, int l, size_t i) {
    return in->dtype == YOLOXLOSS_DTYPE_FLOAT32 ? in->outputs[l][i] : (float)in->outputs16[l][i];
}

static volatile float sink;

/* The floor's pass: every head output read once; out[0..n_out) written
 * with the first n_out of them, the rest summed. */
static void floor_pass(const bench_inputs *in, float *out, size_t n_out) {
    size_t k = 0;
    float rest = 0.0f;
    for (int l = 0; l < BENCH_LEVELS; l++)
        for (size_t i = 0; i < in->level_floats[l]; i++, k++) {
            const float v = output_value(in, l, i);
            if (k < n_out)
                out[k] = v * 0.5f;
            else
                rest += v;
        }
    sink = rest;
}

typedef struct {
    double median, fastest, floor;
    int done;
} timing;

/* One operation timed (op 0: decode, 1: detect) under the options. */
static int time_op(yoloxloss_context *ctx, const bench_inputs *in, int op, const bench_inference_options *o,
                   float *boxes, float *scores, yoloxloss_detection *det, int32_t *counts, float *floor_out,
                   size_t floor_n, timing *out) {
    double *t = malloc((size_t)o->max_iters * sizeof *t), *f = malloc((size_t)o->max_iters * sizeof *f);
    if (!t || !f) {
        free(t);
        free(f);
        fprintf(stderr, "out of memory for the timings\n");
        return 1;
    }
    yoloxloss_detect_params p;
    yoloxloss_detect_params_defaults(&p);
    p.score_threshold = o->score_threshold;
    p.max_detections = MAX_DETECTIONS;
    int done = 0, failed = 0;
    double spent = 0;
    for (int it = -o->warmup; it < o->max_iters; it++) {
        const double t0 = now_ms();
        const yoloxloss_status st = op == 0 ? yoloxloss_decode(ctx, in->images, in->levels, boxes, scores)
                                            : yoloxloss_detect(ctx, in->images, in->levels, &p, det, counts, NULL);
        const double t1 = now_ms();
        if (st != YOLOXLOSS_OK) {
            fprintf(stderr, "%s: %s: %s\n", op == 0 ? "decode" : "detect", yoloxloss_status_string(st),
                    yoloxloss_last_error(ctx));
            failed = 1;
            break;
        }
        floor_pass(in, floor_out, floor_n);
        const double t2 = now_ms();
        if (it < 0) continue;
        t[done] = t1 - t0;
        f[done] = t2 - t1;
        done++;
        spent += t2 - t0;
        if (o->seconds > 0 && done >= o->min_iters && spent >= o->seconds * 1e3) break;
    }
    if (!failed) {
        out->median = median(t, done); /* sorts t */
        out->fastest = t[0];
        out->floor = median(f, done);
        out->done = done;
    }
    free(t);
    free(f);
    return failed;
}

int bench_time_inference(const bench_scenario *sc, const bench_inputs *in, const bench_inference_options *o) {
    yoloxloss_config cfg;
    yoloxloss_config_defaults(&cfg);
    cfg.num_classes = sc->classes;
    cfg.num_threads = o->threads;
    cfg.check_finite = 0;
    cfg.isa = o->isa;
    yoloxloss_context *ctx = bench_create_context(&cfg);
    if (!ctx) return 1;
    size_t anchors = 0;
    for (int l = 0; l < BENCH_LEVELS; l++) anchors += (size_t)in->levels[l].height * (size_t)in->levels[l].width;
    const size_t B = (size_t)in->images, nb = B * anchors * 4, ns = B * anchors * (size_t)sc->classes;
    const size_t in_bytes = bench_inputs_bytes(in), out_bytes = (nb + ns) * sizeof(float);
    /* calloc: first touched untimed, by the warm-up calls */
    float *boxes = calloc(nb, sizeof *boxes), *scores = calloc(ns, sizeof *scores);
    float *floor_out = calloc(nb + ns, sizeof *floor_out);
    yoloxloss_detection *det = calloc(B * MAX_DETECTIONS, sizeof *det);
    int32_t *counts = calloc(B, sizeof *counts);
    int rc = 1;
    timing dec, detect;
    if (!boxes || !scores || !floor_out || !det || !counts) {
        fprintf(stderr, "%s: out of memory for the outputs\n", sc->name);
    } else if (!time_op(ctx, in, 0, o, boxes, scores, det, counts, floor_out, nb + ns, &dec) &&
               !time_op(ctx, in, 1, o, boxes, scores, det, counts, floor_out, 0, &detect)) {
        const char *dt = yl_dtype_name(in->dtype);
        long long detections = 0;
        for (size_t b = 0; b < B; b++) detections += counts[b];
        const char *isa = yoloxloss_isa_name(yoloxloss_get_isa(ctx));
        printf("scenario=%s op=decode images=%d size=%d classes=%d threads=%d isa=%s iters=%d median_ms=%.4f "
               "min_ms=%.4f floor_ms=%.4f bytes_in=%zu bytes_out=%zu dtype=%s\n",
               sc->name, in->images, sc->size, sc->classes, o->threads, isa, dec.done, dec.median, dec.fastest,
               dec.floor, in_bytes, out_bytes, dt);
        printf("scenario=%s op=detect images=%d size=%d classes=%d threads=%d isa=%s iters=%d median_ms=%.4f "
               "min_ms=%.4f floor_ms=%.4f bytes_in=%zu bytes_out=0 dtype=%s score_threshold=%g detections=%lld\n",
               sc->name, in->images, sc->size, sc->classes, o->threads, isa, detect.done, detect.median,
               detect.fastest, detect.floor, in_bytes, dt, (double)o->score_threshold, detections);
        fflush(stdout);
        rc = 0;
    }
    free(boxes);
    free(scores);
    free(floor_out);
    free(det);
    free(counts);
    yoloxloss_destroy(ctx);
    return rc;
}
