/* How many OpenMP threads a call runs on, and the one place that starts
 * them.
 *
 * A call that runs on one thread executes no OpenMP construct at all: even
 * a team of one makes libgomp allocate (and exit the process when that
 * fails) and wake or signal its pool (futex calls). Every parallel loop of
 * the library therefore goes through yl_parallel_for, which is a plain loop
 * for one thread.
 *
 * The count. An explicit config.num_threads (or yoloxloss_set_num_threads)
 * is used as given, capped only by the units the work has (images, plane
 * ranges, candidates), so no thread ever waits with nothing to do. The
 * default (0) estimates the call's single-thread time from its shape:
 * below YL_MIN_PARALLEL_WORK it runs on the calling thread alone; above,
 * the work allows one thread per YL_WORK_PER_THREAD (up to the context's
 * ceiling), and the default runs on either that many or one, whichever its
 * own recent calls of that kind found faster per unit of work. Parallel
 * calls are fast on idle cores and far slower than one thread when other
 * processes keep the cores busy (a team waits at its barriers for threads
 * the scheduler has not run): timing its own calls (two clock reads) and
 * now and then trying the other choice once lets the default follow the
 * machine (docs/trainer-guide.md, "Threads"; the numbers behind the
 * constants are in docs/performance.md, "Threads"). Results are the same
 * bits whatever the count. */
#ifndef YL_THREADS_H
#define YL_THREADS_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* Estimated single-thread time of a call, in nanoseconds, below which the
 * default never starts a team, and per thread of a team. */
#define YL_MIN_PARALLEL_WORK 500000.0
#define YL_WORK_PER_THREAD 250000.0

/* What the thread count is chosen from. */
typedef struct {
    int requested; /* the context's num_threads: 0 = automatic */
    int ceiling;   /* the most threads the context has room for (>= 1) */
} yl_thread_policy;

/* What the default has seen of one kind of call (forward, backward): the
 * wall time per estimated single-thread nanosecond on one thread and on a
 * team, as moving averages of its own calls; zero-initialise. */
typedef struct {
    double cost[2];  /* [0] one thread, [1] a team; 0 = not measured yet */
    int team;        /* 1: the next calls run on a team, 0: on one thread */
    int countdown;   /* calls of the current choice until the other is tried once */
    int period;      /* calls between such tries */
} yl_thread_memory;

/* One call's thread count, and what it will teach the memory. */
typedef struct {
    int threads;   /* the count for this call, >= 1 */
    int most;      /* the most threads a call of this work may run on (scratch is kept for them) */
    int learning;  /* 1 if the default chose between one thread and a team (then timed), else 0 */
    int team;      /* which of the two it chose */
    double work_ns, start_ns;
} yl_thread_plan;

/* The count of a call with `units` independent pieces of work whose
 * single-thread time is about work_ns: at most units and the ceiling; for
 * the default as said above. Starts the call's clock when it learns. */
yl_thread_plan yl_plan_threads(yl_thread_policy p, yl_thread_memory *m, size_t units, double work_ns);

/* Stops the call's clock and updates the memory with its time. */
void yl_plan_done(yl_thread_memory *m, const yl_thread_plan *plan);

/* What yl_plan_done does with a call's cost (wall ns per estimated ns) on
 * a team (team = 1) or one thread (0): the choice's moving average, a
 * switch when it got dearer than the other's last cost, and after a try of
 * the other, a switch to it or the next try twice as late. */
void yl_thread_learn(yl_thread_memory *m, int team, double cost);

/* Estimated single-thread time of a forward of step s (its shape and gt
 * boxes are set), and of its backward, in nanoseconds. */
double yl_forward_work_ns(const yl_step *s, const float *strides, float radius, int legacy);
double yl_backward_work_ns(const yl_step *s);

/* Estimated single-thread time of decoding (or, detect, thresholding) B
 * images of `levels` (config.num_levels of them) of C classes: a pass over
 * the head outputs, and the writes of the outputs asked for. */
double yl_inference_work_ns(const yoloxloss_level *levels, int num_levels, int num_images, int num_classes,
                            int boxes, int scores);

/* One item of a parallel loop: i in [0, n), on the thread of index t in
 * [0, threads). */
typedef void (*yl_work_fn)(void *arg, size_t i, int t);

/* Calls fn(arg, i, t) for every i in [0, n). With threads <= 1 or n <= 1 a
 * plain loop on the calling thread (t = 0), with no OpenMP call; otherwise
 * an OpenMP team of min(threads, n) that takes the i one at a time. Each
 * item must write only its own outputs: then results do not depend on the
 * thread count. */
void yl_parallel_for(int threads, size_t n, yl_work_fn fn, void *arg);

#endif
