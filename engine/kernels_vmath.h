/*
 * kernels_vmath.h — the element-wise kernels (exp, erf-based GELU, SiLU, softmax, RMSNorm,
 * LayerNorm, RoPE) written once over a small vector vocabulary, included by each
 * kernels_<arch>.c after it has defined that vocabulary for its registers:
 *
 *   vf (float vector of VL lanes), vi (int32 vector), VM_(name) (suffixes names),
 *   vf_set1 vf_load vf_store vf_add vf_sub vf_mul vf_div vf_fma(a,b,c)=a·b+c vf_max vf_min
 *   vf_abs vf_sel_lt(a,b,x,y)=(a<b?x:y) vf_sel_ge0(a,x,y)=(a>=0?x:y) vf_hsum
 *   vf_rint_i (round to nearest int) vi_set1 vi_add vi_sub vi_srai1 vi_shl23 vf_from_bits
 *
 * Tails (n not a multiple of VL) go through a zero-padded stack vector, so every element
 * gets the same arithmetic. Accuracy (checked against the scalar twins in tests):
 * exp ≤ 2 ulp over its whole range including subnormal results; erf ≤ 2e-7 relative;
 * GELU via erfc for negative inputs, so its tail keeps ~4e-7 relative accuracy where
 * 1 + erf(x) would cancel. Not here: the matrix kernels (the arch files themselves).
 */

/* ---- exp -------------------------------------------------------------------------------
 * x = n·ln2 + r, |r| ≤ ln2/2 (Cody–Waite, ln2 split in a 16-bit head and a tail), exp(r) by
 * its degree-7 Taylor polynomial (truncation 5e-9), then × 2^n as 2^(n/2)·2^(n−n/2) so that
 * both factors are normal floats: results overflow to inf above 88.72 and go through the
 * subnormals to 0 below −87.3 with a single rounding. */
static inline vf VM_(vexp)(vf x)
{
    x = vf_min(vf_max(x, vf_set1(-104.0f)), vf_set1(89.0f));
    const vf fn = vf_from_i(vf_rint_i(vf_mul(x, vf_set1(1.44269504088896341f))));
    vf r = vf_fma(fn, vf_set1(-0.693145751953125f), x);
    r = vf_fma(fn, vf_set1(-1.42860682030941723e-06f), r);
    vf p = vf_set1(1.0f / 5040.0f);
    p = vf_fma(p, r, vf_set1(1.0f / 720.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 120.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 24.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 6.0f));
    p = vf_fma(p, r, vf_set1(0.5f));
    p = vf_fma(p, r, vf_set1(1.0f));
    p = vf_fma(p, r, vf_set1(1.0f));
    const vi n = vf_rint_i(fn);
    const vi n1 = vi_srai1(n), n2 = vi_sub(n, n1);
    const vf s1 = vf_from_bits(vi_shl23(vi_add(n1, vi_set1(127))));
    const vf s2 = vf_from_bits(vi_shl23(vi_add(n2, vi_set1(127))));
    return vf_mul(vf_mul(p, s1), s2);
}

/* ---- erf / erfc pieces --------------------------------------------------------------------
 * z < 1:  erf(z) = z·P(z²), P fitted (relative least squares, degree 7) to erf(z)/z.
 * z ≥ 1:  erfc(z) = exp(−z²)·Q(t), t = 1/(1 + z/2), Q fitted (degree 9) to erfc·exp(z²)
 *         on [1, 10] (relative error 2.4e-9); z² carries its rounding error e (from an FMA)
 *         into the result as ·(1 − e), so erfc stays ~4e-7 relative down to 1e-37. */
static inline vf VM_(erf_small)(vf z)   /* erf(z) for 0 <= z < 1 */
{
    const vf t = vf_mul(z, z);
    vf p = vf_set1(-9.6896623497794154e-06f);
    p = vf_fma(p, t, vf_set1(1.1274713097168820e-04f));
    p = vf_fma(p, t, vf_set1(-8.4854358961412857e-04f));
    p = vf_fma(p, t, vf_set1(5.2211385194535914e-03f));
    p = vf_fma(p, t, vf_set1(-2.6865475464792149e-02f));
    p = vf_fma(p, t, vf_set1(1.1283783443294856e-01f));
    p = vf_fma(p, t, vf_set1(-3.7612638552814970e-01f));
    p = vf_fma(p, t, vf_set1(1.1283791670801104e+00f));
    return vf_mul(z, p);
}

/* erfc(z) for z >= 1 given zz = z² rounded and its rounding error ez (zz + ez = z² exactly) */
static inline vf VM_(erfc_large)(vf z, vf zz, vf ez)
{
    const vf t = vf_div(vf_set1(1.0f), vf_fma(z, vf_set1(0.5f), vf_set1(1.0f)));
    vf q = vf_set1(-6.0357741149524760e-02f);
    q = vf_fma(q, t, vf_set1(3.0107584629571010e-01f));
    q = vf_fma(q, t, vf_set1(-5.3346486695153439e-01f));
    q = vf_fma(q, t, vf_set1(3.3848723606289827e-01f));
    q = vf_fma(q, t, vf_set1(-7.1031550946621780e-02f));
    q = vf_fma(q, t, vf_set1(2.2234311535258702e-01f));
    q = vf_fma(q, t, vf_set1(2.3779621080418956e-01f));
    q = vf_fma(q, t, vf_set1(2.8322271207571975e-01f));
    q = vf_fma(q, t, vf_set1(2.8201369517252728e-01f));
    q = vf_fma(q, t, vf_set1(2.5554485161325119e-06f));
    const vf e = VM_(vexp)(vf_sub(vf_set1(0.0f), zz));
    const vf r = vf_mul(e, q);
    return vf_sub(r, vf_mul(r, ez));
}

/* 0.5·x·(1 + erf(x/√2)); for x < 0 written as 0.5·x·erfc(|x|/√2). */
static inline vf VM_(vgelu)(vf x)
{
    const vf ax = vf_abs(x);
    const vf z = vf_mul(ax, vf_set1(0.70710678118654752f));
    /* z² = x²/2: x² and its exact rounding error from one FMA, halving is exact */
    const vf xx = vf_mul(x, x);
    const vf exx = vf_fma(x, x, vf_sub(vf_set1(0.0f), xx));
    const vf zz = vf_mul(xx, vf_set1(0.5f)), ez = vf_mul(exx, vf_set1(0.5f));
    const vf zc = vf_max(z, vf_set1(1.0f));          /* keep the large branch finite */
    const vf zs = vf_min(z, vf_set1(1.0f));
    const vf erf_s = VM_(erf_small)(zs);
    const vf erfc_l = VM_(erfc_large)(zc, vf_max(zz, vf_set1(0.5f)), ez);
    const vf erfc_z = vf_sel_lt(z, vf_set1(1.0f), vf_sub(vf_set1(1.0f), erf_s), erfc_l);
    const vf erf_z = vf_sel_lt(z, vf_set1(1.0f), erf_s, vf_sub(vf_set1(1.0f), erfc_l));
    const vf f = vf_sel_ge0(x, vf_add(vf_set1(1.0f), erf_z), erfc_z);
    return vf_mul(vf_mul(vf_set1(0.5f), x), f);
}

static inline vf VM_(vsilu)(vf x)
{
    const vf e = VM_(vexp)(vf_sub(vf_set1(0.0f), x));
    return vf_div(x, vf_add(vf_set1(1.0f), e));
}

/* Applies f to x[0..n) in place, the tail through a zero-padded vector. */
#define VM_MAP(f, x, n)                                                               \
    do {                                                                              \
        int64_t i_ = 0;                                                               \
        for (; i_ + VL <= (n); i_ += VL)                                              \
            vf_store((x) + i_, f(vf_load((x) + i_)));                                 \
        if (i_ < (n)) {                                                               \
            float t_[VL] = {0};                                                       \
            memcpy(t_, (x) + i_, (size_t)((n) - i_) * sizeof(float));                 \
            vf_store(t_, f(vf_load(t_)));                                             \
            memcpy((x) + i_, t_, (size_t)((n) - i_) * sizeof(float));                 \
        }                                                                             \
    } while (0)

static void VM_(silu)(float *x, int64_t n)
{
    VM_MAP(VM_(vsilu), x, n);
}

static void VM_(gelu_erf)(float *x, int64_t n)
{
    VM_MAP(VM_(vgelu), x, n);
}

static void VM_(softmax)(float *x, int64_t n)
{
    int64_t i;
    float mx, t[VL];
    double sum;
    vf vmax, vs;

    if (n <= 0)
        return;
    mx = x[0];
    vmax = vf_set1(x[0]);
    for (i = 0; i + VL <= n; i += VL)
        vmax = vf_max(vmax, vf_load(x + i));
    vf_store(t, vmax);
    for (int l = 0; l < VL; l++)
        mx = t[l] > mx ? t[l] : mx;
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    const vf vm = vf_set1(mx);
    vs = vf_set1(0.0f);
    for (i = 0; i + VL <= n; i += VL) {
        const vf e = VM_(vexp)(vf_sub(vf_load(x + i), vm));
        vf_store(x + i, e);
        vs = vf_add(vs, e);
    }
    sum = vf_hsum(vs);
    if (i < n) {
        float u[VL];
        for (int l = 0; l < VL; l++)
            u[l] = i + l < n ? x[i + l] - mx : -200.0f;   /* exp(-200) = 0 */
        vf_store(u, VM_(vexp)(vf_load(u)));
        for (int64_t j = i; j < n; j++) {
            x[j] = u[j - i];
            sum += u[j - i];
        }
    }
    const vf inv = vf_set1((float)(1.0 / sum));
    for (i = 0; i + VL <= n; i += VL)
        vf_store(x + i, vf_mul(vf_load(x + i), inv));
    for (; i < n; i++)
        x[i] *= (float)(1.0 / sum);
}

/* Σ x[i]² with four vector partial sums, finished in double. */
static double VM_(sumsq)(const float *x, int64_t n, double shift)
{
    const vf s = vf_set1((float)shift);
    vf a0 = vf_set1(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    double tot;
    for (; i + 4 * VL <= n; i += 4 * VL) {
        const vf d0 = vf_sub(vf_load(x + i), s), d1 = vf_sub(vf_load(x + i + VL), s);
        const vf d2 = vf_sub(vf_load(x + i + 2 * VL), s), d3 = vf_sub(vf_load(x + i + 3 * VL), s);
        a0 = vf_fma(d0, d0, a0);
        a1 = vf_fma(d1, d1, a1);
        a2 = vf_fma(d2, d2, a2);
        a3 = vf_fma(d3, d3, a3);
    }
    for (; i + VL <= n; i += VL) {
        const vf d = vf_sub(vf_load(x + i), s);
        a0 = vf_fma(d, d, a0);
    }
    tot = (double)vf_hsum(vf_add(vf_add(a0, a1), vf_add(a2, a3)));
    for (; i < n; i++)
        tot += ((double)x[i] - (double)(float)shift) * ((double)x[i] - (double)(float)shift);
    return tot;
}

static void VM_(rmsnorm)(float *out, const float *x, const float *w, int64_t n, float eps)
{
    const float scale = (float)(1.0 / sqrt(VM_(sumsq)(x, n, 0.0) / (double)n + (double)eps));
    const vf vs = vf_set1(scale);
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        vf_store(out + i, vf_mul(vf_mul(vf_load(x + i), vs), vf_load(w + i)));
    for (; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

static void VM_(layernorm)(float *out, const float *x, const float *w, const float *b,
                           int64_t n, float eps)
{
    vf a = vf_set1(0.0f);
    int64_t i = 0;
    double mean;
    for (; i + VL <= n; i += VL)
        a = vf_add(a, vf_load(x + i));
    mean = (double)vf_hsum(a);
    for (; i < n; i++)
        mean += x[i];
    mean /= (double)n;
    /* two-pass variance around the float mean; the mean's own rounding is tiny */
    const double var = VM_(sumsq)(x, n, mean) / (double)n;
    const float inv = (float)(1.0 / sqrt(var + (double)eps)), mf = (float)mean;
    const vf vinv = vf_set1(inv), vm = vf_set1(mf);
    for (i = 0; i + VL <= n; i += VL) {
        const vf y = vf_mul(vf_mul(vf_sub(vf_load(x + i), vm), vinv), vf_load(w + i));
        vf_store(out + i, b ? vf_add(y, vf_load(b + i)) : y);
    }
    for (; i < n; i++)
        out[i] = (x[i] - mf) * inv * w[i] + (b ? b[i] : 0.0f);
}

/* Same operations as the scalar twin (no fused multiply-add): identical results. */
static void VM_(rope_apply)(float *x, const float *cs, int32_t head_dim)
{
    const int32_t half = head_dim / 2;
    int32_t i = 0;
    for (; i + VL <= half; i += VL) {
        const vf c = vf_load(cs + i), s = vf_load(cs + half + i);
        const vf x0 = vf_load(x + i), x1 = vf_load(x + half + i);
        vf_store(x + i, vf_sub(vf_mul(x0, c), vf_mul(x1, s)));
        vf_store(x + half + i, vf_add(vf_mul(x1, c), vf_mul(x0, s)));
    }
    for (; i < half; i++) {
        const float c = cs[i], s = cs[half + i];
        const float x0 = x[i], x1 = x[half + i];
        x[i] = x0 * c - x1 * s;
        x[half + i] = x1 * c + x0 * s;
    }
}
