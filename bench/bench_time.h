/* The benchmark's clock and medians, shared by the loss's timing
 * (bench_yoloxloss.c) and the inference's (bench_inference.c). */
#ifndef YOLOXLOSS_BENCH_TIME_H
#define YOLOXLOSS_BENCH_TIME_H

#include <stdlib.h>
#include <time.h>

static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v. */
static inline double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The q-quantile of the n values of sorted v (ascending), by nearest rank:
 * the smallest value with at least q n values at or below it. */
static inline double nearest_rank(const double *v, int n, double q) {
    int k = (int)(q * n + 0.999999);
    return v[k < 1 ? 0 : k > n ? n - 1 : k - 1];
}

#endif
