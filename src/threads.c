/* The thread count of a call and the parallel loop (threads.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <omp.h>
#include <time.h>

#include "threads.h"

/* Single-thread costs on the AVX2 machine of docs/performance.md, in ns,
 * fitted to forward and backward timed apart on one thread over the
 * benchmark's scenarios (1 to 16 images, 2 to 50 boxes, 80 and 1203
 * classes): within about 2x of every one of them, which is all a threshold
 * needs. The class part of the matching cost is the largest: each
 * candidate's logits are gathered from C planes, a cache line each. */
#define NS_PER_ANCHOR 5.0         /* objectness BCE and the per-anchor passes of one image */
#define NS_PER_CAND_CLASS 12.0    /* the class part of the matching cost */
#define NS_PER_PAIR 3.0           /* IoU, cost and matching of a gt and a candidate */
#define NS_PER_GRAD_BYTE 0.08     /* writing the dense gradient planes */
#define NS_PER_FG_CLASS 2.0       /* a foreground anchor's class loss or gradient */
#define NS_PER_READ_BYTE 0.2      /* decode's pass over the head outputs (sigmoids of every logit) */
#define CANDS_PER_FG 4.0          /* foreground anchors per gt box, roughly dynamic k */

/* Tries of the other choice: first soon, then, while they confirm the
 * choice, twice as far apart, up to MAX_PERIOD calls; a try that finds the
 * other choice faster switches to it and starts again at MIN_PERIOD. */
#define MIN_PERIOD 8
#define MAX_PERIOD 256
/* The other choice must be this much cheaper to switch to it (timing noise). */
#define SWITCH_MARGIN 1.1
/* Weight of a new call in the moving average of its choice's cost. */
#define COST_WEIGHT 0.25

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

yl_thread_plan yl_plan_threads(yl_thread_policy p, yl_thread_memory *m, size_t units, double work_ns) {
    yl_thread_plan plan = {.threads = 1, .most = 1, .learning = 0, .team = 0, .work_ns = work_ns};
    size_t t = p.requested > 0 ? (size_t)p.requested : (size_t)p.ceiling;
    if (p.requested == 0) {
        const double useful = work_ns < YL_MIN_PARALLEL_WORK ? 1.0 : floor(work_ns / YL_WORK_PER_THREAD);
        if (useful < (double)t) t = useful >= 1.0 ? (size_t)useful : 1;
    }
    if ((size_t)p.ceiling < t) t = (size_t)p.ceiling;
    if (units < t) t = units;
    plan.most = t < 1 ? 1 : (int)t;
    plan.threads = plan.most;
    if (p.requested > 0 || plan.most < 2) return plan;

    /* The default, with a team possible: the choice, or once in a while the other. */
    if (m->period == 0) { /* first call: a team, then one thread soon after */
        m->team = 1;
        m->period = MIN_PERIOD;
        m->countdown = 1;
    }
    plan.learning = 1;
    plan.team = m->countdown > 0 ? m->team : !m->team;
    if (m->countdown > 0) m->countdown--;
    plan.threads = plan.team ? plan.most : 1;
    plan.start_ns = now_ns();
    return plan;
}

void yl_plan_done(yl_thread_memory *m, const yl_thread_plan *plan) {
    if (!plan->learning) return;
    yl_thread_learn(m, plan->team, (now_ns() - plan->start_ns) / (plan->work_ns > 1.0 ? plan->work_ns : 1.0));
}

void yl_thread_learn(yl_thread_memory *m, int mine, double cost) {
    const int other = !m->team;
    if (mine == m->team) {
        m->cost[mine] = m->cost[mine] > 0.0 ? m->cost[mine] + COST_WEIGHT * (cost - m->cost[mine]) : cost;
        /* The choice got dearer than the other was when last tried (the
         * cores got busy, say): switch now, not at the next try. */
        if (m->cost[other] > 0.0 && m->cost[other] * SWITCH_MARGIN < m->cost[mine]) {
            m->team = other;
            m->period = MIN_PERIOD;
            m->countdown = m->period;
        }
        return;
    }
    /* A try of the other choice (rare): its latest time is what counts.
     * Switch if it was clearly cheaper; else try it again twice as late. */
    m->cost[mine] = cost;
    if (m->cost[mine] * SWITCH_MARGIN < m->cost[m->team]) {
        m->team = mine;
        m->period = MIN_PERIOD;
    } else {
        m->period = m->period * 2 > MAX_PERIOD ? MAX_PERIOD : m->period * 2;
    }
    m->countdown = m->period;
}

/* Candidates one gt box makes at one level: the centre box of radius r
 * strides, and for the legacy rule also the anchors inside the box, capped
 * by the grid. */
static double cands_of(const float *box, float stride, double hw, float radius, int legacy) {
    double side = 2.0 * radius + 1.0, n = side * side;
    if (legacy) n += (box[2] / stride + 1.0) * (box[3] / stride + 1.0);
    return n < hw ? n : hw;
}

double yl_forward_work_ns(const yl_step *s, const float *strides, float radius, int legacy) {
    const double B = s->num_images, A = (double)s->num_anchors, C = s->num_classes;
    double cand_class = 0.0, pairs = 0.0;
    const int64_t *gt_offset = s->gt_offset.ptr;
    const float *boxes = s->gt_boxes.ptr;
    for (int b = 0; b < s->num_images; b++) {
        double cands = 0.0;
        for (int64_t g = gt_offset[b]; g < gt_offset[b + 1]; g++)
            for (int l = 0; l < s->num_levels; l++) {
                const double hw = (double)s->levels[l].height * (double)s->levels[l].width;
                cands += cands_of(boxes + 4 * g, strides[l], hw, radius, legacy);
            }
        if (cands > A) cands = A;
        cand_class += cands * C;
        pairs += cands * (double)(gt_offset[b + 1] - gt_offset[b]);
    }
    const double fg_class = (double)s->total_gt * CANDS_PER_FG * C;
    return B * A * NS_PER_ANCHOR + cand_class * NS_PER_CAND_CLASS + pairs * NS_PER_PAIR +
           fg_class * NS_PER_FG_CLASS;
}

double yl_backward_work_ns(const yl_step *s) {
    double bytes = 0.0;
    for (int l = 0; l < s->num_levels; l++) {
        const double hw = (double)s->levels[l].height * (double)s->levels[l].width;
        bytes += hw * (5.0 + s->num_classes) * (double)yl_dtype_size(s->levels[l].dtype);
    }
    const double B = s->num_images, A = (double)s->num_anchors, C = s->num_classes;
    return B * bytes * NS_PER_GRAD_BYTE + B * A * NS_PER_ANCHOR +
           (double)s->total_gt * CANDS_PER_FG * C * NS_PER_FG_CLASS;
}

double yl_inference_work_ns(const yoloxloss_level *levels, int num_levels, int num_images, int num_classes,
                            int boxes, int scores) {
    double read = 0.0, anchors = 0.0;
    for (int l = 0; l < num_levels; l++) {
        const double hw = (double)levels[l].height * (double)levels[l].width;
        anchors += hw;
        read += hw * (5.0 + num_classes) * (double)yl_dtype_size(levels[l].dtype);
    }
    const double written = anchors * ((boxes ? 4.0 : 0.0) + (scores ? (double)num_classes : 0.0)) * sizeof(float);
    return (double)num_images * (read * NS_PER_READ_BYTE + written * NS_PER_GRAD_BYTE);
}

void yl_parallel_for(int threads, size_t n, yl_work_fn fn, void *arg) {
    if (threads <= 1 || n <= 1) {
        for (size_t i = 0; i < n; i++) fn(arg, i, 0);
        return;
    }
    const int team = n < (size_t)threads ? (int)n : threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
    for (size_t i = 0; i < n; i++) fn(arg, i, omp_get_thread_num());
}
