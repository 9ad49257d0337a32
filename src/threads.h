/* How many OpenMP threads a call runs on, and the one place that starts
 * them.
 *
 * A call that runs on one thread executes no OpenMP construct at all: even
 * a team of one makes libgomp allocate (and exit the process when that
 * fails) and wake or signal its pool (futex calls). Every parallel loop of
 * the library therefore goes through yl_parallel_for, which is a plain loop
 * for one thread.
 *
 * The count: an explicit config.num_threads (or yoloxloss_set_num_threads)
 * is used as given, capped only by the units the work has (images, plane
 * ranges, candidates), so no thread ever waits with nothing to do. The
 * default (0) also caps it by an estimate of the call's single-thread time:
 * one thread per YL_WORK_PER_THREAD of it, so small calls, where starting
 * and joining a team costs more than it saves (and far more when other
 * processes keep the cores busy), run on the calling thread alone
 * (docs/trainer-guide.md, "Threads"; the numbers behind the constants are
 * in docs/performance.md, "Threads"). */
#ifndef YL_THREADS_H
#define YL_THREADS_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* Estimated single-thread time of a call, in nanoseconds, that earns the
 * default one more thread. */
#define YL_WORK_PER_THREAD 250000.0

/* What the thread count is chosen from. */
typedef struct {
    int requested; /* the context's num_threads: 0 = automatic */
    int ceiling;   /* the most threads the context has room for (>= 1) */
} yl_thread_policy;

/* Threads for `units` independent pieces of work whose single-thread time
 * is about work_ns: at most units, at most the ceiling, and for the default
 * at most one per YL_WORK_PER_THREAD of work. Always >= 1. */
int yl_threads_for(yl_thread_policy p, size_t units, double work_ns);

/* Estimated single-thread time of a forward of step s (its shape and gt
 * boxes are set), of its backward, and of one of its images' assignment. */
double yl_forward_work_ns(const yl_step *s, const float *strides, float radius, int legacy);
double yl_backward_work_ns(const yl_step *s);

/* Calls fn(arg, i, t) for every i in [0, n), t being the calling thread's
 * index in [0, threads). With threads <= 1 a plain loop on the calling
 * thread (t = 0), with no OpenMP call; otherwise an OpenMP team of
 * `threads` that takes the i one at a time. */
void yl_parallel_for(int threads, int n, void (*fn)(void *arg, int i, int t), void *arg);

#endif
