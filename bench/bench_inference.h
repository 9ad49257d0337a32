/* The benchmark of the inference path (yoloxloss_bench --inference):
 * yoloxloss_decode and yoloxloss_detect on a scenario's head outputs, each
 * beside its memory floor. */
#ifndef YOLOXLOSS_BENCH_INFERENCE_H
#define YOLOXLOSS_BENCH_INFERENCE_H

#include "bench_inputs.h"
#include "yoloxloss.h"

typedef struct {
    int max_iters, min_iters, warmup;
    double seconds;        /* stop once min_iters calls took this long; 0 = no limit */
    int threads;
    yoloxloss_isa isa;
    float score_threshold; /* detect's */
} bench_inference_options;

/* Times decode and detect on `in` (a scenario's inputs, in their dtype)
 * and prints one key=value line for each (bench/README.md). Returns 0, or
 * 1 with a message on stderr. */
int bench_time_inference(const bench_scenario *sc, const bench_inputs *in, const bench_inference_options *o);

#endif
