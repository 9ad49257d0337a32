/* The threading of decode and detect, in one place: a loop of independent
 * work items spread over the context's threads. Each item writes only its
 * own outputs, so results do not depend on the thread count. */
#ifndef YL_PARALLEL_H
#define YL_PARALLEL_H

#include <stddef.h>

typedef void (*yl_work_fn)(void *arg, size_t item);

/* fn(arg, item) for every item in [0, n), on at most `threads` OpenMP
 * threads taking items one at a time; with threads <= 1 or n <= 1 on the
 * calling thread, entering no OpenMP construct at all. */
void yl_parallel_for(int threads, size_t n, yl_work_fn fn, void *arg);

#endif
