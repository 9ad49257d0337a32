/* SimOTA label assignment of one image (docs/algorithm.md, section 3). */
#include <math.h>

#include "assign.h"
#include "threads.h"

yl_assign_params yl_assign_params_for(const yoloxloss_config *cfg, const yl_kernels *kernels) {
    const int legacy = cfg->assigner == YOLOXLOSS_ASSIGNER_YOLOX_LEGACY;
    yl_assign_params p = {
        .assigner = cfg->assigner,
        .arithmetic = cfg->arithmetic,
        .center_radius = cfg->center_radius > 0.0f ? cfg->center_radius : legacy ? 2.5f : 1.5f,
        .penalty = cfg->cost_penalty > 0.0f ? cfg->cost_penalty : legacy ? 100000.0f : 1000000.0f,
        .iou_eps = cfg->cost_iou_eps,
        .topk = cfg->candidate_topk,
        .iou_cost_weight = cfg->iou_cost_weight,
        .cls_cost_weight = cfg->cls_cost_weight,
        .num_classes = cfg->num_classes,
        .kernels = kernels,
        .threads = 1,
    };
    return p;
}

/* A total order on (value, index) that puts NaN after every number, so a
 * NaN cost is never preferred and a NaN IoU always counts as the largest
 * (torch.topk's order), and breaks exact ties by the lower index. */
static int before(float a, int ia, float b, int ib) {
    if (isnan(a)) return isnan(b) && ia < ib;
    if (isnan(b)) return 1;
    return a < b || (a == b && ia < ib);
}

/* Sum of the m largest values of row[0..n), taken in descending order as
 * torch.topk returns them. top[m] is scratch. */
static float sum_largest(const yl_kernels *k, const float *row, int n, int m, float *top) {
    int len = 0;
    for (int c = 0; c < n; c++) {
        /* Most values do not beat the m-th largest: a vector scan skips
         * them (a NaN on either side stops it for the full test). */
        if (len == m && (c = k->scan_not_le(row, c, n, top[m - 1])) == n) break;
        float v = row[c];
        /* keep top[] sorted descending; NaN counts as the largest */
        if (len == m && !before(top[len - 1], 0, v, 1)) continue;
        int pos = len < m ? len++ : m - 1;
        while (pos > 0 && before(top[pos - 1], 0, v, 1)) {
            top[pos] = top[pos - 1];
            pos--;
        }
        top[pos] = v;
    }
    float s = 0.0f;
    for (int i = 0; i < len; i++) s += top[i];
    return s;
}

size_t yl_simota_work_bytes(int n_cand, int topk) {
    size_t m = (size_t)(topk < n_cand ? topk : n_cand);
    return (size_t)n_cand * sizeof(int32_t) + m * (sizeof(float) + sizeof(int));
}

void yl_simota_match(const yl_kernels *kt, int n_gt, int n_cand, const float *iou, const float *cost, int topk,
                     int32_t *dynamic_k, int32_t *match, void *work) {
    int m = topk < n_cand ? topk : n_cand;
    /* k never exceeds m, so m slots serve both the IoU sum and the choice
     * of the cheapest candidates. */
    int32_t *taken = work; /* how many gts took each candidate */
    float *top = (float *)(taken + n_cand);
    int *pick = (int *)(top + m);
    for (int c = 0; c < n_cand; c++) {
        match[c] = -1;
        taken[c] = 0;
    }

    for (int g = 0; g < n_gt; g++) {
        const float *irow = iou + (size_t)g * n_cand;
        const float *crow = cost + (size_t)g * n_cand;
        float s = sum_largest(kt, irow, n_cand, m, top);
        /* k never exceeds m: cap before truncating, as an infinite or huge
         * IoU sum (corner rounding at large coordinates) has no int. */
        int k = (isnan(s) || s < 1.0f) ? 1 : s >= (float)m ? m : (int)s;
        if (k > m) k = m;
        dynamic_k[g] = k;

        /* the k cheapest candidates, sorted ascending by (cost, index) */
        int len = 0;
        for (int c = 0; c < n_cand; c++) {
            /* The common rejection, by a vector scan: not cheaper than the
             * k-th pick, whose index is lower, so a tie loses too. */
            if (len == k && (c = kt->scan_not_ge(crow, c, n_cand, crow[pick[k - 1]])) == n_cand) break;
            if (len == k && !before(crow[c], c, crow[pick[len - 1]], pick[len - 1])) continue;
            int pos = len < k ? len++ : k - 1;
            while (pos > 0 && before(crow[c], c, crow[pick[pos - 1]], pick[pos - 1])) {
                pick[pos] = pick[pos - 1];
                pos--;
            }
            pick[pos] = c;
        }
        for (int i = 0; i < len; i++) {
            int c = pick[i];
            taken[c]++;
            match[c] = g;
        }
    }
    for (int c = 0; c < n_cand; c++) {
        if (taken[c] <= 1) continue;
        int best = 0;
        for (int g = 1; g < n_gt; g++)
            if (before(cost[(size_t)g * n_cand + c], g, cost[(size_t)best * n_cand + c], best)) best = g;
        match[c] = best;
    }
}

void yl_assign_scratch_free(yl_assign_scratch *s) {
    for (size_t i = 0; i < sizeof s->slot / sizeof s->slot[0]; i++) yl_buffer_free(&s->slot[i]);
}

/* The scratch slots of yl_assign_image. */
enum { S_CAND, S_FIRST, S_SOA, S_SUM, S_IOU, S_COST, S_MATCH, S_WORK, S_CLSROW, S_KEEP, S_CLSCOST };

static void *scratch_get(yl_assign_scratch *s, int slot, size_t bytes) {
    return yl_buffer_reserve(&s->slot[slot], bytes);
}

/* Anchor centre as each reference computes it: (j + 0.5) s in current YOLOX,
 * j s + 0.5 s in the legacy code and in MMDetection (its prior j s plus half
 * the stride). Equal for the usual integer strides. */
static float anchor_centre(int j, float s, int offset_form) {
    return offset_form ? (float)j * s + 0.5f * s : ((float)j + 0.5f) * s;
}

/* Whether anchor centres take the j s + 0.5 s form. */
static int offset_centres(const yl_assign_params *p) {
    return p->assigner == YOLOXLOSS_ASSIGNER_YOLOX_LEGACY || p->arithmetic == YOLOXLOSS_ARITHMETIC_MMDET;
}

/* Grid index range [*lo, *hi] that may hold anchor centres within `half`
 * of `c`, widened by one cell so rounding can only add cells, which the
 * exact test then rejects. Returns 0 if the range is empty. */
static int cell_range(float c, float half, float s, int n, int *lo, int *hi) {
    double a = ((double)c - (double)half) / s - 0.5 - 1.0;
    double b = ((double)c + (double)half) / s - 0.5 + 1.0;
    if (!(b >= 0.0) || !(a <= (double)(n - 1))) return 0;
    *lo = a <= 0.0 ? 0 : (int)floor(a);
    *hi = b >= (double)(n - 1) ? n - 1 : (int)ceil(b);
    return *lo <= *hi;
}

/* Marks (matched[a] = -2) every anchor that is a candidate of some gt: in a
 * centre box, or for the legacy rule also in a box. */
static void mark_candidates(const yl_assign_params *p, const yl_level_view *levels, int num_levels,
                            int n_gt, const float *gt_boxes, int32_t *matched) {
    const int legacy = p->assigner == YOLOXLOSS_ASSIGNER_YOLOX_LEGACY;
    const int offset_form = offset_centres(p);
    for (int l = 0; l < num_levels; l++) {
        const yl_level_view *v = &levels[l];
        const float s = v->stride;
        const float rs = p->center_radius * s;
        int32_t *mark = matched + v->anchor_offset;
        for (int g = 0; g < n_gt; g++) {
            const float *gt = gt_boxes + 4 * g;
            float hw = legacy ? fmaxf(rs, 0.5f * gt[2]) : rs;
            float hh = legacy ? fmaxf(rs, 0.5f * gt[3]) : rs;
            int j0, j1, i0, i1;
            if (!cell_range(gt[0], hw, s, v->width, &j0, &j1) ||
                !cell_range(gt[1], hh, s, v->height, &i0, &i1))
                continue;
            for (int i = i0; i <= i1; i++) {
                float yc = anchor_centre(i, s, offset_form);
                for (int j = j0; j <= j1; j++) {
                    float xc = anchor_centre(j, s, offset_form);
                    int in = yl_inside(xc, yc, gt[0], gt[1], rs, rs) ||
                             (legacy && yl_inside(xc, yc, gt[0], gt[1], 0.5f * gt[2], 0.5f * gt[3]));
                    if (in) mark[(size_t)i * v->width + j] = -2;
                }
            }
        }
    }
}

/* Decoded box, objectness probability and class-cost sum S of candidates
 * [c0, c0 + n) of one level; for each class some gt has (row_of[class] >=
 * 0), p and BCE(p, 0) into that class's rows of keep_p and keep_b0, whose
 * rows are nc floats long and indexed like the candidates. */
static void candidate_terms(const yl_assign_params *p, const yl_level_view *v, const yl_cands *cd, size_t c0,
                            size_t n, const int32_t *row_of, float *keep_p, float *keep_b0, size_t nc) {
    const yl_kernels *k = p->kernels;
    k->decode(v->reg, v->obj, v->hw, v->stride, p->arithmetic == YOLOXLOSS_ARITHMETIC_MMDET, cd, c0, n, v->dtype);
    for (size_t c = c0; c < c0 + n; c++) cd->sum0[c] = 0.0;
    /* A few candidates read scattered logits of each class plane, which
     * miss the cache: asking for those of two planes ahead hides the wait.
     * Dense candidates read whole runs, which the hardware prefetches. */
    const int sparse = n * 4 < v->hw;
    /* log2 of the element size, once: the prefetch loop runs per class and candidate */
    const unsigned esz_log2 = yl_dtype_size(v->dtype) == sizeof(float) ? 2u : 1u;
    for (int cls = 0; cls < p->num_classes; cls++) {
        if (sparse && cls + 2 < p->num_classes) {
            const char *ahead = yl_elem_at(v->cls, v->dtype, (size_t)(cls + 2) * v->hw);
            for (size_t c = c0; c < c0 + n; c++) __builtin_prefetch(ahead + ((size_t)cd->pos[c] << esz_log2));
        }
        size_t at = row_of[cls] >= 0 ? (size_t)row_of[cls] * nc + c0 : 0;
        k->cost_bce0_accumulate(yl_elem_at(v->cls, v->dtype, (size_t)cls * v->hw), cd->pos + c0, n, cd->sig_obj + c0,
                                cd->sum0 + c0, row_of[cls] >= 0 ? keep_p + at : NULL,
                                row_of[cls] >= 0 ? keep_b0 + at : NULL, v->dtype);
    }
}

/* The three stages of one image's cost matrices, for yl_parallel_for. */
typedef struct {
    const yl_assign_params *p;
    const yl_level_view *levels;
    int num_levels;
    const int *first;
    const yl_cands *cd;
    const int32_t *row_of;
    float *keep_p, *keep_b0;
    const double *sum0;
    float *cls_cost, *iou, *cost;
    size_t nc;
    const float *gt_boxes;
    const int32_t *gt_classes;
    int parts;
} image_job;

/* Part `part` of every level's candidates: boxes, sigmoids, class costs. */
static void candidate_part(void *arg, size_t part, int t) {
    (void)t;
    const image_job *j = arg;
    const size_t parts = (size_t)j->parts;
    for (int l = 0; l < j->num_levels; l++) {
        size_t c0 = (size_t)j->first[l], n = (size_t)(j->first[l + 1] - j->first[l]);
        size_t lo = c0 + n * (size_t)part / parts, hi = c0 + n * (size_t)(part + 1) / parts;
        if (hi > lo) candidate_terms(j->p, &j->levels[l], j->cd, lo, hi - lo, j->row_of, j->keep_p, j->keep_b0, j->nc);
    }
}

/* The class part of the cost for the gts of one class. */
static void class_cost_row(void *arg, size_t row, int t) {
    (void)t;
    const image_job *j = arg;
    size_t at = row * j->nc;
    j->p->kernels->class_costs(j->keep_p + at, j->keep_b0 + at, j->sum0, j->nc, j->cls_cost + at);
}

/* IoU and cost rows of gt g against every candidate. */
static void gt_pair_costs(void *arg, size_t g, int t) {
    (void)t;
    const image_job *j = arg;
    const yl_assign_params *p = j->p;
    const float *gt = j->gt_boxes + 4 * g;
    const size_t nc = j->nc;
    yl_pair_params pp = {.cx = gt[0],
                         .cy = gt[1],
                         .w = gt[2],
                         .h = gt[3],
                         .cls_cost = j->cls_cost + (size_t)j->row_of[j->gt_classes[g]] * nc,
                         .legacy = p->assigner == YOLOXLOSS_ASSIGNER_YOLOX_LEGACY,
                         .cls_weight = p->cls_cost_weight,
                         .iou_weight = p->iou_cost_weight,
                         .penalty = p->penalty,
                         .iou_eps = p->iou_eps,
                         .mmdet = p->arithmetic == YOLOXLOSS_ARITHMETIC_MMDET};
    for (int l = 0; l < j->num_levels; l++) {
        size_t c0 = (size_t)j->first[l], n = (size_t)(j->first[l + 1] - j->first[l]);
        if (n == 0) continue;
        pp.radius = p->center_radius * j->levels[l].stride;
        p->kernels->pair_costs(&pp, j->cd, c0, n, j->iou + (size_t)g * nc + c0, j->cost + (size_t)g * nc + c0);
    }
}

int64_t yl_assign_image(const yl_assign_params *p, const yl_level_view *levels, int num_levels,
                        int64_t num_anchors, int n_gt, const float *gt_boxes,
                        const int32_t *gt_classes, yl_assign_scratch *scratch, int32_t *matched,
                        float *pred_iou, int32_t *dynamic_k) {
    const int offset_form = offset_centres(p);
    for (int64_t a = 0; a < num_anchors; a++) {
        matched[a] = -1;
        pred_iou[a] = 0.0f;
    }
    if (n_gt == 0) return 0;
    mark_candidates(p, levels, num_levels, n_gt, gt_boxes, matched);

    /* Candidate list in anchor order; level l owns [first[l], first[l+1]). */
    int32_t *cand = scratch_get(scratch, S_CAND, (size_t)num_anchors * sizeof *cand);
    int *first = scratch_get(scratch, S_FIRST, (size_t)(num_levels + 1) * sizeof *first);
    if (!cand || !first) return -1;
    int n_cand = 0;
    for (int l = 0; l < num_levels; l++) {
        first[l] = n_cand;
        int64_t end = levels[l].anchor_offset + (int64_t)levels[l].hw;
        for (int64_t a = levels[l].anchor_offset; a < end; a++)
            if (matched[a] == -2) {
                matched[a] = -1;
                cand[n_cand++] = (int32_t)a;
            }
    }
    first[num_levels] = n_cand;
    if (n_cand == 0) {
        for (int g = 0; g < n_gt; g++) dynamic_k[g] = 0;
        return 0;
    }

    size_t nc = (size_t)n_cand, pairs = (size_t)n_gt * nc;
    /* Ten float/int32 arrays of n_cand, then sum0 in its own slot so it
     * stays 8-byte aligned. */
    float *soa = scratch_get(scratch, S_SOA, 10 * nc * sizeof(float));
    double *sum0 = scratch_get(scratch, S_SUM, nc * sizeof *sum0);
    float *iou = scratch_get(scratch, S_IOU, pairs * sizeof *iou);
    float *cost = scratch_get(scratch, S_COST, pairs * sizeof *cost);
    int32_t *match = scratch_get(scratch, S_MATCH, nc * sizeof *match);
    void *work = scratch_get(scratch, S_WORK, yl_simota_work_bytes(n_cand, p->topk));
    if (!soa || !sum0 || !iou || !cost || !match || !work) return -1;
    yl_cands cd = {.pos = (int32_t *)soa,
                   .gi = soa + nc,
                   .gj = soa + 2 * nc,
                   .xc = soa + 3 * nc,
                   .yc = soa + 4 * nc,
                   .bx = soa + 5 * nc,
                   .by = soa + 6 * nc,
                   .bw = soa + 7 * nc,
                   .bh = soa + 8 * nc,
                   .sig_obj = soa + 9 * nc,
                   .sum0 = sum0};

    /* Grid cell and anchor centre of every candidate. */
    for (int l = 0; l < num_levels; l++) {
        const yl_level_view *v = &levels[l];
        for (int c = first[l]; c < first[l + 1]; c++) {
            int q = (int)(cand[c] - v->anchor_offset);
            int i = q / v->width, j = q % v->width;
            cd.pos[c] = q;
            cd.gi[c] = (float)i;
            cd.gj[c] = (float)j;
            cd.xc[c] = anchor_centre(j, v->stride, offset_form);
            cd.yc[c] = anchor_centre(i, v->stride, offset_form);
        }
    }

    /* The class part of the cost is computed once per class present in the
     * image: row_of[class] is its row of keep_p, keep_b0 and cls_cost, or -1. */
    int32_t *row_of = scratch_get(scratch, S_CLSROW, (size_t)p->num_classes * sizeof *row_of);
    float *keep = scratch_get(scratch, S_KEEP, 2 * pairs * sizeof *keep);
    float *cls_cost = scratch_get(scratch, S_CLSCOST, pairs * sizeof *cls_cost);
    if (!row_of || !keep || !cls_cost) return -1;
    float *keep_p = keep, *keep_b0 = keep + pairs;
    for (int c = 0; c < p->num_classes; c++) row_of[c] = -1;
    int rows = 0;
    for (int g = 0; g < n_gt; g++)
        if (row_of[gt_classes[g]] < 0) row_of[gt_classes[g]] = rows++;

    /* Every element below depends on its own candidate (and gt) only, so
     * splitting the work across threads leaves every bit as it is. */
    image_job job = {.p = p, .levels = levels, .num_levels = num_levels, .first = first, .cd = &cd,
                     .row_of = row_of, .keep_p = keep_p, .keep_b0 = keep_b0, .sum0 = sum0, .cls_cost = cls_cost,
                     .iou = iou, .cost = cost, .nc = nc, .gt_boxes = gt_boxes, .gt_classes = gt_classes,
                     .parts = p->threads < n_cand ? p->threads : n_cand};
    if (job.parts < 1) job.parts = 1;
    yl_parallel_for(job.parts, (size_t)job.parts, candidate_part, &job);
    yl_parallel_for(job.parts, (size_t)rows, class_cost_row, &job);
    yl_parallel_for(job.parts, (size_t)n_gt, gt_pair_costs, &job);

    yl_simota_match(p->kernels, n_gt, n_cand, iou, cost, p->topk, dynamic_k, match, work);

    int64_t num_fg = 0;
    for (int c = 0; c < n_cand; c++) {
        if (match[c] < 0) continue;
        matched[cand[c]] = match[c];
        pred_iou[cand[c]] = iou[(size_t)match[c] * nc + (size_t)c];
        num_fg++;
    }
    return num_fg;
}
