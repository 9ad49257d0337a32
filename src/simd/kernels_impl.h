/* The SIMD kernels, written once over a small set of vector operations.
 *
 * Each kernels_<isa>.c defines, for its vector width, the types
 *   vf  (VN floats), vm (a mask of VN lanes), vd (VN/2 doubles)
 * and the operations used below (vf_load, vf_exp, vm_lt, vd_lo, ...), then
 * includes this file once with YL_KERNELS_TABLE and YL_KERNELS_ISA set.
 * The logic of every kernel therefore lives here, shared by AVX2, AVX-512
 * and NEON, and follows kernels_scalar.c operation for operation: the same
 * float32 formulas of bce.h and box.h in the same order, so a lane gives
 * the same bits as the scalar kernel wherever SLEEF's vector and scalar
 * functions agree.
 *
 * Arrays need no alignment. A run shorter than VN goes through small
 * stack arrays padded with harmless values, and its unused lanes are
 * masked out of every sum and every store.
 */

#define YL_CHUNK 64 /* strided class logits are copied in runs of this many */

static const float YL_IOTA[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* Lanes [0, n) set, the others clear (n may exceed VN). */
static inline vm lanes_below(size_t n) {
    return vm_lt(vf_load(YL_IOTA), vf_set1(n >= VN ? (float)VN : (float)n));
}

/* Up to VN floats from p: all VN when n >= VN, else n then `pad`. */
static inline vf load_n(const float *p, size_t n, float pad) {
    if (n >= VN) return vf_load(p);
    float t[VN];
    for (size_t i = 0; i < VN; i++) t[i] = i < n ? p[i] : pad;
    return vf_load(t);
}

static inline void store_n(float *p, vf v, size_t n) {
    if (n >= VN) {
        vf_store(p, v);
        return;
    }
    float t[VN];
    vf_store(t, v);
    for (size_t i = 0; i < n; i++) p[i] = t[i];
}

/* base[idx[i]] for i < min(n, VN); idx[0] stands in for the missing ones.
 * The idx arrays are candidate positions, strictly increasing, so a full
 * run whose ends are VN - 1 apart is contiguous: one load instead of a
 * gather (dense candidate sets are mostly such runs). */
static inline vf gather_n(const float *base, const int32_t *idx, size_t n) {
    if (n >= VN) {
        if (idx[VN - 1] - idx[0] == VN - 1) return vf_load(base + idx[0]);
        return vf_gather(base, idx);
    }
    int32_t t[VN];
    for (size_t i = 0; i < VN; i++) t[i] = i < n ? idx[i] : idx[0];
    return vf_gather(base, t);
}

/* 1.0 where matched[a] >= 0 (a foreground anchor), else 0.0. */
static inline vf fg_target_n(const int32_t *matched, size_t n) {
    int32_t t[VN];
    const int32_t *m = matched;
    if (n < VN) {
        for (size_t i = 0; i < VN; i++) t[i] = i < n ? matched[i] : -1;
        m = t;
    }
    return vf_select(vm_matched(m), vf_set1(1.0f), vf_set1(0.0f));
}

/* Adds the first min(n, VN) lanes of v, widened to double, into (*lo, *hi). */
static inline void accumulate_n(vd *lo, vd *hi, vf v, size_t n) {
    if (n < VN) v = vf_select(lanes_below(n), v, vf_set1(0.0f));
    *lo = vd_add(*lo, vd_lo(v));
    *hi = vd_add(*hi, vd_hi(v));
}

static inline double vd_total(vd lo, vd hi) {
    double t[VN / 2];
    vd_store(t, vd_add(lo, hi));
    double s = 0.0;
    for (size_t i = 0; i < VN / 2; i++) s += t[i];
    return s;
}

/* The element formulas of bce.h. */
static inline vf v_sigmoid(vf x) {
    vf one = vf_set1(1.0f);
    return vf_div(one, vf_add(one, vf_exp(vf_neg(x))));
}

static inline vf v_bce_logits(vf x, vf t) {
    vf lin = vf_sub(vf_max_c(x, vf_set1(0.0f)), vf_mul(x, t));
    return vf_add(lin, vf_log1p(vf_exp(vf_neg(vf_abs(x)))));
}

static inline vf v_bce_prob0(vf p) {
    return vf_neg(vf_max_c(vf_log(vf_sub(vf_set1(1.0f), p)), vf_set1(-100.0f)));
}

static inline vf v_bce_prob1(vf p) { return vf_neg(vf_max_c(vf_log(p), vf_set1(-100.0f))); }

static double obj_loss(const float *x, const int32_t *matched, size_t n) {
    vd lo = vd_zero(), hi = vd_zero();
    for (size_t a = 0; a < n; a += VN) {
        size_t r = n - a;
        accumulate_n(&lo, &hi, v_bce_logits(load_n(x + a, r, 0.0f), fg_target_n(matched + a, r)), r);
    }
    return vd_total(lo, hi);
}

static void obj_grad(const float *x, const int32_t *matched, size_t n, float scale, float *g,
                     int accumulate) {
    vf s = vf_set1(scale);
    for (size_t a = 0; a < n; a += VN) {
        size_t r = n - a;
        vf v = vf_mul(s, vf_sub(v_sigmoid(load_n(x + a, r, 0.0f)), fg_target_n(matched + a, r)));
        if (accumulate) v = vf_add(load_n(g + a, r, 0.0f), v);
        store_n(g + a, v, r);
    }
}

static void cost_bce0_accumulate(const float *plane, const int32_t *pos, size_t n, const float *sig_obj,
                                 double *acc, float *keep_p, float *keep_b0) {
    for (size_t i = 0; i < n; i += VN) {
        size_t r = n - i;
        vf p = vf_sqrt(vf_mul(v_sigmoid(gather_n(plane, pos + i, r)), load_n(sig_obj + i, r, 1.0f)));
        vf e = v_bce_prob0(p);
        if (keep_p) {
            store_n(keep_p + i, p, r);
            store_n(keep_b0 + i, e, r);
        }
        if (r >= VN) {
            vd_store(acc + i, vd_add(vd_load(acc + i), vd_lo(e)));
            vd_store(acc + i + VN / 2, vd_add(vd_load(acc + i + VN / 2), vd_hi(e)));
        } else {
            double t[VN];
            vd_store(t, vd_lo(e));
            vd_store(t + VN / 2, vd_hi(e));
            for (size_t k = 0; k < r; k++) acc[i + k] += t[k];
        }
    }
}

/* Copies logits k0..k0+m-1 (stride apart) and their targets into xs, ts. */
static void class_run(const float *x, size_t stride, int k0, int m, int cls, float t, float *xs,
                      float *ts) {
    for (int i = 0; i < m; i++) {
        xs[i] = x[(size_t)(k0 + i) * stride];
        ts[i] = k0 + i == cls ? t : 0.0f;
    }
}

static double cls_loss(const float *x, size_t stride, int num_classes, int cls, float t) {
    vd lo = vd_zero(), hi = vd_zero();
    float xs[YL_CHUNK], ts[YL_CHUNK];
    for (int k0 = 0; k0 < num_classes; k0 += YL_CHUNK) {
        int m = num_classes - k0 < YL_CHUNK ? num_classes - k0 : YL_CHUNK;
        class_run(x, stride, k0, m, cls, t, xs, ts);
        for (size_t i = 0; i < (size_t)m; i += VN) {
            size_t r = (size_t)m - i;
            accumulate_n(&lo, &hi, v_bce_logits(load_n(xs + i, r, 0.0f), load_n(ts + i, r, 0.0f)), r);
        }
    }
    return vd_total(lo, hi);
}

static void cls_grad(const float *x, size_t stride, int num_classes, int cls, float t, float scale,
                     float *g, int accumulate) {
    vf s = vf_set1(scale);
    float xs[YL_CHUNK], ts[YL_CHUNK], gs[YL_CHUNK];
    for (int k0 = 0; k0 < num_classes; k0 += YL_CHUNK) {
        int m = num_classes - k0 < YL_CHUNK ? num_classes - k0 : YL_CHUNK;
        class_run(x, stride, k0, m, cls, t, xs, ts);
        for (size_t i = 0; i < (size_t)m; i += VN) {
            size_t r = (size_t)m - i;
            store_n(gs + i, vf_mul(s, vf_sub(v_sigmoid(load_n(xs + i, r, 0.0f)), load_n(ts + i, r, 0.0f))), r);
        }
        for (int i = 0; i < m; i++) {
            float *out = g + (size_t)(k0 + i) * stride;
            *out = accumulate ? *out + gs[i] : gs[i];
        }
    }
}

static void decode(const float *reg, const float *obj, size_t hw, float stride, const yl_cands *cd,
                   size_t c0, size_t n) {
    vf s = vf_set1(stride);
    for (size_t i = 0; i < n; i += VN) {
        size_t c = c0 + i, r = n - i;
        const int32_t *pos = cd->pos + c;
        store_n(cd->bx + c, vf_mul(vf_add(gather_n(reg, pos, r), load_n(cd->gj + c, r, 0.0f)), s), r);
        store_n(cd->by + c, vf_mul(vf_add(gather_n(reg + hw, pos, r), load_n(cd->gi + c, r, 0.0f)), s), r);
        store_n(cd->bw + c, vf_mul(vf_exp(gather_n(reg + 2 * hw, pos, r)), s), r);
        store_n(cd->bh + c, vf_mul(vf_exp(gather_n(reg + 3 * hw, pos, r)), s), r);
        store_n(cd->sig_obj + c, v_sigmoid(gather_n(obj, pos, r)), r);
    }
}

/* Centre (cx, cy) with half sizes (hw, hh): yl_inside of box.h. */
static inline vm v_inside(vf xc, vf yc, float cx, float cy, float half_w, float half_h) {
    vf zero = vf_set1(0.0f);
    vf l = vf_sub(xc, vf_set1(cx - half_w)), r = vf_sub(vf_set1(cx + half_w), xc);
    vf t = vf_sub(yc, vf_set1(cy - half_h)), b = vf_sub(vf_set1(cy + half_h), yc);
    return vm_and(vm_and(vm_gt(l, zero), vm_gt(r, zero)), vm_and(vm_gt(t, zero), vm_gt(b, zero)));
}

static void class_costs(const float *p, const float *b0, const double *sum0, size_t n, float *out) {
    for (size_t i = 0; i < n; i += VN) {
        size_t r = n - i;
        vf e0 = load_n(b0 + i, r, 0.0f), e1 = v_bce_prob1(load_n(p + i, r, 1.0f));
        vd s_lo, s_hi;
        if (r >= VN) {
            s_lo = vd_load(sum0 + i);
            s_hi = vd_load(sum0 + i + VN / 2);
        } else {
            double t[VN] = {0};
            for (size_t k = 0; k < r; k++) t[k] = sum0[i + k];
            s_lo = vd_load(t);
            s_hi = vd_load(t + VN / 2);
        }
        store_n(out + i, vf_from_vd(vd_add(vd_sub(s_lo, vd_lo(e0)), vd_lo(e1)),
                                    vd_add(vd_sub(s_hi, vd_hi(e0)), vd_hi(e1))), r);
    }
}

static void pair_costs(const yl_pair_params *p, const yl_cands *cd, size_t c0, size_t n, float *iou,
                       float *cost) {
    /* The gt's side of yl_pair_iou, computed as it does. */
    const vf g_l = vf_set1(p->cx - p->w / 2.0f), g_t = vf_set1(p->cy - p->h / 2.0f);
    const vf g_r = vf_set1(p->cx + p->w / 2.0f), g_b = vf_set1(p->cy + p->h / 2.0f);
    const vf g_area = vf_set1(p->w * p->h), two = vf_set1(2.0f), zero = vf_set1(0.0f);
    const vf eps = vf_set1(1e-8f);
    /* -log(0 + 1e-8) by the same vector log, for runs of pairs that do not
     * overlap at all (most of them when gts are many or large). */
    const vf cost_of_zero = vf_neg(vf_log(eps));
    for (size_t i = 0; i < n; i += VN) {
        size_t c = c0 + i, r = n - i;
        vf bx = load_n(cd->bx + c, r, 0.0f), by = load_n(cd->by + c, r, 0.0f);
        vf bw = load_n(cd->bw + c, r, 1.0f), bh = load_n(cd->bh + c, r, 1.0f);
        vf tlx = vf_max_num(g_l, vf_sub(bx, vf_div(bw, two)));
        vf tly = vf_max_num(g_t, vf_sub(by, vf_div(bh, two)));
        vf brx = vf_min_num(g_r, vf_add(bx, vf_div(bw, two)));
        vf bry = vf_min_num(g_b, vf_add(by, vf_div(bh, two)));
        vm overlap = vm_and(vm_lt(tlx, brx), vm_lt(tly, bry));
        vf en = vf_select(overlap, vf_set1(1.0f), zero);
        vf inter = vf_mul(vf_mul(vf_sub(brx, tlx), vf_sub(bry, tly)), en);
        vf u = vf_div(inter, vf_sub(vf_add(g_area, vf_mul(bw, bh)), inter));
        vf iou_cost = vm_none(vm_ne(u, zero)) ? cost_of_zero : vf_neg(vf_log(vf_add(u, eps)));
        vf cst = vf_add(vf_mul(vf_set1(p->cls_weight), load_n(p->cls_cost + c, r, 0.0f)),
                        vf_mul(vf_set1(p->iou_weight), iou_cost));

        vf xc = load_n(cd->xc + c, r, 0.0f), yc = load_n(cd->yc + c, r, 0.0f);
        vm in = v_inside(xc, yc, p->cx, p->cy, p->radius, p->radius);
        if (p->legacy) in = vm_and(in, v_inside(xc, yc, p->cx, p->cy, 0.5f * p->w, 0.5f * p->h));
        store_n(iou + i, u, r);
        store_n(cost + i, vf_select(in, cst, vf_add(cst, vf_set1(p->penalty))), r);
    }
}

static int scan_not_le(const float *row, int from, int n, float thr) {
    const vf t = vf_set1(thr);
    int c = from;
    for (; c + VN <= n; c += VN) {
        int first = vm_first(vm_not_le(vf_load(row + c), t));
        if (first < VN) return c + first;
    }
    while (c < n && row[c] <= thr) c++;
    return c;
}

static int scan_not_ge(const float *row, int from, int n, float thr) {
    const vf t = vf_set1(thr);
    int c = from;
    for (; c + VN <= n; c += VN) {
        int first = vm_first(vm_not_ge(vf_load(row + c), t));
        if (first < VN) return c + first;
    }
    while (c < n && row[c] >= thr) c++;
    return c;
}

static void zero(float *p, size_t n) {
    size_t i = 0;
    /* Streaming stores need aligned addresses: plain stores up to the
     * first vector boundary and after the last whole vector. */
    while (i < n && ((uintptr_t)(p + i) % (VN * sizeof(float))) != 0) p[i++] = 0.0f;
    for (; i + VN <= n; i += VN) vf_stream(p + i, vf_set1(0.0f));
    for (; i < n; i++) p[i] = 0.0f;
    vf_stream_fence();
}

const yl_kernels YL_KERNELS_TABLE = {
    .isa = YL_KERNELS_ISA,
    .obj_loss = obj_loss,
    .obj_grad = obj_grad,
    .cost_bce0_accumulate = cost_bce0_accumulate,
    .cls_loss = cls_loss,
    .cls_grad = cls_grad,
    .decode = decode,
    .class_costs = class_costs,
    .pair_costs = pair_costs,
    .scan_not_le = scan_not_le,
    .scan_not_ge = scan_not_ge,
    .zero = zero,
};
