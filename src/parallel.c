/* yl_parallel_for (parallel.h). */
#include "parallel.h"

void yl_parallel_for(int threads, size_t n, yl_work_fn fn, void *arg) {
    if (threads <= 1 || n <= 1) {
        /* no parallel region: a one-thread call costs no team start-up or spin-wait */
        for (size_t i = 0; i < n; i++) fn(arg, i);
        return;
    }
    const int team = n < (size_t)threads ? (int)n : threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
    for (size_t i = 0; i < n; i++) fn(arg, i);
}
