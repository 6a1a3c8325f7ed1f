/*
 * vision.c — FastViTHD vision tower + mlp2x_gelu projector of Apple's FastVLM, read from an
 * mmproj GGUF (docs/model-format.md) and run in float32.
 *
 * The network, in its released (reparameterized) inference form, for an S×S input
 * (S a multiple of the total stride, 64) and stage widths C_s (96,192,384,768,1536):
 *
 *   stem      3×3 s2 conv 3→C0 + GELU, dw 3×3 s2 + GELU, 1×1 C0→C0 + GELU      (S/4)²
 *   stage s   [PatchEmbed if s > 0: 7×7 s2 grouped conv, C_{s-1}→C_s (output channel o
 *              reads input channel o/(C_s/C_{s-1})) + GELU, then 1×1 + GELU]
 *             [RepCPE if pos_embed[s]: dw 7×7 + bias, identity folded in, no residual]
 *             depth_s blocks:
 *               RepMixer : x ← dw3×3(x) + b (identity folded in, no residual)
 *                          x ← x + ls ⊙ ConvFFN(x)
 *               attention: x ← x + ls1 ⊙ MHSA(LayerNormChannel(x))
 *                          x ← x + ls2 ⊙ ConvFFN(x)
 *   conv_exp  3×3 grouped conv C4→E (2 outputs per channel) + bias → SE → GELU  (S/64)²×E
 *   projector Linear E→H + GELU(erf) + Linear H→H, per token
 *
 *   ConvFFN(x) = fc2(GELU(fc1(BN(dw7×7(x)))))   (BN folded into the dw conv at load time)
 *   MHSA: heads of 32 channels, qkv without bias, q·32^-½ before q·kᵀ, softmax over keys,
 *         tokens in raster order, proj with bias.
 *   SE: channel means over H×W → 1×1 reduce + ReLU → 1×1 expand + sigmoid → scale.
 *
 * Layout: feature maps are token-major (HWC): a 1×1 conv is then fvlm_matmul over the
 * H·W token rows, and the output of conv_exp is already the [tokens][E] matrix the
 * projector and the decoder want. Matrices stay in the file (any type fvlm_matmul
 * supports); conv kernels, biases, norms and layer scales are dequantized to owned float
 * buffers at load time (conv kernels rearranged tap-major, the FFN's BatchNorm folded in).
 * Memory per call is allocated from the input size: at 1024 the stem's first output
 * (512²×96 floats, 100 MB) is the largest map and is freed before stage 0; afterwards two
 * maps of (S/4)²·C0 floats (25 MB) plus bounded scratch are live.
 *
 * Not here: image preprocessing (image.c), the conv kernels (kernels_conv.c), splicing
 * image rows into the prompt (session.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels.h"
#include "kernels_vision.h"
#include "vision.h"

#define VIS_MAX_STAGES 8
#define VIS_MAX_WIDTH 65536
#define VIS_MAX_DEPTH 4096
#define VIS_MAX_KERNEL 15
#define VIS_MAX_SIZE FASTVLM_MAX_IMAGE_SIZE /* largest accepted input side, pixels */
#define VIS_FFN_KERNEL 7           /* ConvFFN depthwise kernel (fixed by the architecture) */
#define VIS_EXP_KERNEL 3           /* conv_exp kernel (fixed by the architecture) */
#define VIS_STEM_STRIDE 2          /* stride of stem convs 0 and 1 */
#define VIS_DOWN_STRIDE 2          /* PatchEmbed stride */
#define VIS_FFN_CHUNK_FLOATS (1 << 22) /* ConvFFN hidden activations per chunk (16 MB) */
#define VIS_ATTN_QBLOCK 256        /* query rows per attention score block */

/* A k×k conv kept as owned float32, tap-major: channel-wise [k·k][cout], dense
 * [k·k][cin][cout]; bias [cout]. */
typedef struct vis_conv {
    float *w;
    float *b;
} vis_conv;

/* A 1×1 conv / Linear: weight viewed in the file with ne = {k, n}; owned bias [n] or NULL. */
typedef struct vis_linear {
    fvlm_tensor w;
    float *b;
} vis_linear;

typedef struct vis_block {
    bool attn;
    vis_conv mixer;           /* RepMixer: dw k_rep×k_rep [k²][C] + [C] */
    float *norm_w, *norm_b;   /* attention: LayerNormChannel [C] */
    vis_linear qkv;           /* attention: {C, 3C}, no bias */
    vis_linear attn_out;      /* attention: {C, C} + bias */
    float *ls1;               /* attention branch layer scale [C] */
    float *ls;                /* FFN branch layer scale [C] (RepMixer ls, attention ls2) */
    vis_conv ffn_dw;          /* dw 7×7 [49][C] with BN folded, bias [C] */
    vis_linear ffn_up;        /* {C, F} + bias */
    vis_linear ffn_down;      /* {F, C} + bias */
} vis_block;

typedef struct vis_stage {
    int32_t depth, width, ffn_width;
    bool attn, pos_embed;
    int32_t down_mult;        /* s > 0: width / previous width */
    vis_conv down_lk;         /* s > 0: grouped k_down×k_down, [k²][C] + [C] */
    vis_linear down_pw;       /* s > 0: {C, C} + bias */
    vis_conv cpe;             /* pos_embed: dw k_pe×k_pe [k²][C] + [C] */
    vis_block *blocks;        /* [depth] */
} vis_stage;

struct fvlm_vision {
    const char *path;         /* the mmproj file, for messages */
    /* hyperparameters */
    int32_t image_size, patch_stride, n_stages;
    int32_t k_stem, k_rep, k_pe, k_down, head_dim, embed_dim, se_reduced, n_embd;
    int32_t exp_mult;         /* embed_dim / last width */
    float norm_eps, bn_eps;
    float pad_rgb[3], rescale, mean[3], std[3];
    /* weights */
    vis_conv stem0;           /* dense [k²][3][C0] */
    vis_conv stem1;           /* dw [k²][C0] */
    vis_linear stem2;         /* {C0, C0} */
    vis_stage stages[VIS_MAX_STAGES];
    vis_conv exp;             /* grouped 3×3 [9][E] + [E] */
    vis_linear se_reduce;     /* {E, R} + bias */
    vis_linear se_expand;     /* {R, E} + bias */
    vis_linear mm0;           /* {E, H} + bias */
    vis_linear mm2;           /* {H, H} + bias */
    /* every owned float buffer, freed together */
    void **owned;
    size_t n_owned, cap_owned;
};

/* ======================================================================================
 * Loading
 * ==================================================================================== */

static float *vis_alloc(fvlm_vision *v, int64_t n)
{
    float *p;
    if (n <= 0 || (uint64_t)n > SIZE_MAX / sizeof(float))
        return NULL;
    if (v->n_owned == v->cap_owned) {
        size_t cap = v->cap_owned ? v->cap_owned * 2 : 256;
        void **o = realloc(v->owned, cap * sizeof *o);
        if (!o)
            return NULL;
        v->owned = o;
        v->cap_owned = cap;
    }
    p = malloc((size_t)n * sizeof(float));
    if (p)
        v->owned[v->n_owned++] = p;
    return p;
}

static fastvlm_status nomem(const fvlm_vision *v, const char *what, fastvlm_error *err)
{
    return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory loading '%s'", v->path,
                          what);
}

/* Dequantizes a whole tensor (any type, row by row) into a new owned float buffer. */
static fastvlm_status tensor_to_f32(fvlm_vision *v, const fvlm_tensor *t, float **out,
                                    fastvlm_error *err)
{
    const int64_t n = fvlm_tensor_nelements(t), rows = fvlm_tensor_nrows(t);
    const size_t rs = fvlm_row_size(t->type, t->ne[0]);
    float *buf;

    if (rs == 0 || (uint64_t)rows * rs > t->nbytes)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: tensor '%s' has %zu bytes, too few "
                              "for its shape", v->path, t->name, t->nbytes);
    buf = vis_alloc(v, n);
    if (!buf)
        return nomem(v, t->name, err);
    for (int64_t r = 0; r < rows; r++)
        fvlm_dequantize_row(t->type, (const char *)t->data + (size_t)r * rs, buf + r * t->ne[0],
                            t->ne[0]);
    *out = buf;
    return FASTVLM_OK;
}

/* A 1-D vector of n elements, dequantized into an owned buffer. */
static fastvlm_status load_vec(fvlm_vision *v, const fvlm_gguf *g, const char *name,
                               int32_t n, float **out, fastvlm_error *err)
{
    const int64_t ne[1] = {n};
    fvlm_tensor t;
    fastvlm_status st = fvlm_gguf_req_tensor(g, name, 1, ne, &t, err);
    if (st != FASTVLM_OK)
        return st;
    return tensor_to_f32(v, &t, out, err);
}

/* A 1×1 conv / Linear weight {k, n}: stored 2-D (ne {k, n}) or as a 4-D 1×1 conv
 * (ne {1, 1, k, n}, same memory order); kept as a 2-D view into the file. Optional bias. */
static fastvlm_status load_linear(fvlm_vision *v, const fvlm_gguf *g, const char *prefix,
                                  int32_t k, int32_t n, bool bias, vis_linear *out,
                                  fastvlm_error *err)
{
    char name[128];
    fvlm_tensor t;
    int64_t idx;
    fastvlm_status st;

    snprintf(name, sizeof name, "%s.weight", prefix);
    idx = fvlm_gguf_find_tensor(g, name);
    if (idx >= 0 && fvlm_gguf_tensor(g, idx, &t) && t.n_dims == 4) {
        const int64_t ne[4] = {1, 1, k, n};
        st = fvlm_gguf_req_tensor(g, name, 4, ne, &t, err);
        if (st != FASTVLM_OK)
            return st;
        t.n_dims = 2;
        t.ne[0] = k;
        t.ne[1] = n;
        t.ne[2] = t.ne[3] = 1;
    } else {
        const int64_t ne[2] = {k, n};
        st = fvlm_gguf_req_tensor(g, name, 2, ne, &t, err);
        if (st != FASTVLM_OK)
            return st;
    }
    out->w = t;
    out->b = NULL;
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        return load_vec(v, g, name, n, &out->b, err);
    }
    return FASTVLM_OK;
}

/* A k×k conv [cout][cin_g][k][k] (GGUF ne {k, k, cin_g, cout}) → owned tap-major weights:
 * channel-wise (cin_g == 1) [k²][cout], dense [k²][cin_g][cout]. With `bn` (γ, β, μ, σ²,
 * each [cout]) the eval BatchNorm that follows the conv is folded in:
 * w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε) (+ the conv's own bias·γ/√(σ²+ε) if any). */
static fastvlm_status load_conv(fvlm_vision *v, const fvlm_gguf *g, const char *prefix,
                                int32_t k, int32_t cin_g, int32_t cout, bool bias,
                                const float *const bn[4], vis_conv *out, fastvlm_error *err)
{
    char name[128];
    const int64_t ne[4] = {k, k, cin_g, cout};
    fvlm_tensor t;
    float *raw, *w, *b;
    fastvlm_status st;
    const int32_t kk = k * k;

    snprintf(name, sizeof name, "%s.weight", prefix);
    st = fvlm_gguf_req_tensor(g, name, 4, ne, &t, err);
    if (st != FASTVLM_OK)
        return st;
    st = tensor_to_f32(v, &t, &raw, err);
    if (st != FASTVLM_OK)
        return st;
    w = vis_alloc(v, (int64_t)kk * cin_g * cout);
    b = vis_alloc(v, cout);
    if (!w || !b)
        return nomem(v, name, err);
    if (bias) {
        float *fb;
        snprintf(name, sizeof name, "%s.bias", prefix);
        st = load_vec(v, g, name, cout, &fb, err);
        if (st != FASTVLM_OK)
            return st;
        memcpy(b, fb, sizeof(float) * (size_t)cout);
    } else {
        memset(b, 0, sizeof(float) * (size_t)cout);
    }
    for (int32_t o = 0; o < cout; o++) {
        float scale = 1.0f;
        if (bn) {
            scale = bn[0][o] / sqrtf(bn[3][o] + v->bn_eps);
            b[o] = bn[1][o] - bn[2][o] * scale + b[o] * scale;
        }
        for (int32_t j = 0; j < cin_g; j++)
            for (int32_t tap = 0; tap < kk; tap++)
                w[((int64_t)tap * cin_g + j) * cout + o] =
                    raw[((int64_t)o * cin_g + j) * kk + tap] * scale;
    }
    out->w = w;
    out->b = b;
    return FASTVLM_OK;
}

/* ---- metadata helpers ---- */

static fastvlm_status key_index(const fvlm_gguf *g, const char *key, int64_t *idx,
                                fastvlm_error *err)
{
    *idx = fvlm_gguf_find_key(g, key);
    if (*idx < 0)
        return fvlm_set_error(err, FASTVLM_ERR_MISSING, "%s: metadata key '%s' is missing",
                              fvlm_gguf_path(g), key);
    return FASTVLM_OK;
}

/* A u32 array of exactly n elements (n = 0: any length up to n_max, returned in *n_out). */
static fastvlm_status req_u32_array(const fvlm_gguf *g, const char *key, int32_t *out,
                                    uint64_t n_max, uint64_t *n_out, int64_t lo, int64_t hi,
                                    fastvlm_error *err)
{
    int64_t idx;
    uint64_t n;
    fastvlm_status st = key_index(g, key, &idx, err);
    if (st != FASTVLM_OK)
        return st;
    n = fvlm_gguf_arr_n(g, idx);
    if (fvlm_gguf_kv_type(g, idx) != FVLM_GGUF_ARRAY || n == 0 || n > n_max)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' must be an "
                              "integer array of 1..%llu elements", fvlm_gguf_path(g), key,
                              (unsigned long long)n_max);
    for (uint64_t j = 0; j < n; j++) {
        int64_t x;
        if (!fvlm_gguf_arr_get_i64(g, idx, j, &x))
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' element %llu "
                                  "is not an integer", fvlm_gguf_path(g), key,
                                  (unsigned long long)j);
        if (x < lo || x > hi)
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' element %llu "
                                  "= %lld is out of range [%lld, %lld]", fvlm_gguf_path(g), key,
                                  (unsigned long long)j, (long long)x, (long long)lo,
                                  (long long)hi);
        out[j] = (int32_t)x;
    }
    *n_out = n;
    return FASTVLM_OK;
}

static fastvlm_status req_f32_array3(const fvlm_gguf *g, const char *key, float out[3],
                                     fastvlm_error *err)
{
    int64_t idx;
    fastvlm_status st = key_index(g, key, &idx, err);
    if (st != FASTVLM_OK)
        return st;
    if (fvlm_gguf_kv_type(g, idx) != FVLM_GGUF_ARRAY || fvlm_gguf_arr_n(g, idx) != 3)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' must be an "
                              "array of 3 numbers", fvlm_gguf_path(g), key);
    for (uint64_t j = 0; j < 3; j++) {
        double x;
        if (!fvlm_gguf_arr_get_f64(g, idx, j, &x) || !isfinite(x))
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' element %llu "
                                  "is not a finite number", fvlm_gguf_path(g), key,
                                  (unsigned long long)j);
        out[j] = (float)x;
    }
    return FASTVLM_OK;
}

/* A u32 scalar within [lo, hi]. */
static fastvlm_status req_u32_range(const fvlm_gguf *g, const char *key, int32_t *out,
                                    uint32_t lo, uint32_t hi, fastvlm_error *err)
{
    uint32_t x;
    fastvlm_status st = fvlm_gguf_req_u32(g, key, &x, err);
    if (st != FASTVLM_OK)
        return st;
    if (x < lo || x > hi)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' = %u is out of "
                              "range [%u, %u]", fvlm_gguf_path(g), key, x, lo, hi);
    *out = (int32_t)x;
    return FASTVLM_OK;
}

/* An odd kernel size in [1, VIS_MAX_KERNEL]. */
static fastvlm_status req_kernel(const fvlm_gguf *g, const char *key, int32_t *out,
                                 fastvlm_error *err)
{
    fastvlm_status st = req_u32_range(g, key, out, 1, VIS_MAX_KERNEL, err);
    if (st == FASTVLM_OK && *out % 2 == 0)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' = %d must be odd",
                              fvlm_gguf_path(g), key, *out);
    return st;
}

static fastvlm_status req_str_is(const fvlm_gguf *g, const char *key, const char *want,
                                 fastvlm_status bad, fastvlm_error *err)
{
    fvlm_gguf_str s;
    fastvlm_status st = fvlm_gguf_req_str(g, key, &s, err);
    if (st != FASTVLM_OK)
        return st;
    if (!fvlm_gguf_str_eq(s, want))
        return fvlm_set_error(err, bad, "%s: metadata key '%s' is '%.*s', expected '%s'",
                              fvlm_gguf_path(g), key, (int)(s.len > 64 ? 64 : s.len), s.ptr,
                              want);
    return FASTVLM_OK;
}

static fastvlm_status req_pos_f32(const fvlm_gguf *g, const char *key, float *out,
                                  fastvlm_error *err)
{
    fastvlm_status st = fvlm_gguf_req_f32(g, key, out, err);
    if (st == FASTVLM_OK && !(*out > 0.0f && isfinite(*out)))
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' = %g must be a "
                              "positive number", fvlm_gguf_path(g), key, (double)*out);
    return st;
}

/* ---- hyperparameters ---- */

static fastvlm_status load_hparams(fvlm_vision *v, const fvlm_gguf *g, bool *bn_folded,
                                   fastvlm_error *err)
{
    const char *path = v->path;
    int32_t depths[VIS_MAX_STAGES], widths[VIS_MAX_STAGES], ffn[VIS_MAX_STAGES];
    int32_t pe[VIS_MAX_STAGES];
    uint64_t n, n2;
    uint32_t version;
    int64_t idx, mixers_idx;
    fastvlm_status st;

    if ((st = req_str_is(g, "general.architecture", "fastvithd", FASTVLM_ERR_UNSUPPORTED, err)))
        return st;
    if ((st = fvlm_gguf_req_u32(g, "fastvlm.mmproj.version", &version, err)))
        return st;
    if (version != 1)
        return fvlm_set_error(err, FASTVLM_ERR_UNSUPPORTED, "%s: mmproj version %u is not "
                              "supported (this build reads version 1)", path, version);

    if ((st = req_u32_array(g, "fastvithd.stage.depths", depths, VIS_MAX_STAGES, &n, 0,
                            VIS_MAX_DEPTH, err)))
        return st;
    v->n_stages = (int32_t)n;
    if ((st = req_u32_array(g, "fastvithd.stage.widths", widths, VIS_MAX_STAGES, &n2, 1,
                            VIS_MAX_WIDTH, err)))
        return st;
    if (n2 != n)
        goto count_mismatch;
    if ((st = req_u32_array(g, "fastvithd.stage.ffn_widths", ffn, VIS_MAX_STAGES, &n2, 1,
                            4 * VIS_MAX_WIDTH, err)))
        return st;
    if (n2 != n)
        goto count_mismatch;
    if ((st = req_u32_array(g, "fastvithd.stage.pos_embed", pe, VIS_MAX_STAGES, &n2, 0, 1, err)))
        return st;
    if (n2 != n)
        goto count_mismatch;

    if ((st = key_index(g, "fastvithd.stage.mixers", &mixers_idx, err)))
        return st;
    if (fvlm_gguf_arr_type(g, mixers_idx) != FVLM_GGUF_STRING ||
        fvlm_gguf_arr_n(g, mixers_idx) != n)
        goto count_mismatch;

    if ((st = req_u32_range(g, "fastvithd.image_size", &v->image_size, 1, VIS_MAX_SIZE, err)) ||
        (st = req_u32_range(g, "fastvithd.patch_stride", &v->patch_stride, 1, 1u << 16, err)) ||
        (st = req_kernel(g, "fastvithd.stem.kernel", &v->k_stem, err)) ||
        (st = req_kernel(g, "fastvithd.repmixer.kernel", &v->k_rep, err)) ||
        (st = req_kernel(g, "fastvithd.pos_embed.kernel", &v->k_pe, err)) ||
        (st = req_kernel(g, "fastvithd.downsample.kernel", &v->k_down, err)) ||
        (st = req_u32_range(g, "fastvithd.attention.head_dim", &v->head_dim, 1, 4096, err)) ||
        (st = req_u32_range(g, "fastvithd.embed_dim", &v->embed_dim, 1, 4 * VIS_MAX_WIDTH, err)) ||
        (st = req_u32_range(g, "fastvithd.se.reduced", &v->se_reduced, 1, 4 * VIS_MAX_WIDTH,
                            err)) ||
        (st = req_pos_f32(g, "fastvithd.norm_eps", &v->norm_eps, err)) ||
        (st = req_pos_f32(g, "fastvithd.bn_eps", &v->bn_eps, err)))
        return st;

    if ((st = key_index(g, "fastvithd.bn_folded", &idx, err)))
        return st;
    if (!fvlm_gguf_get_bool(g, idx, bn_folded))
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key 'fastvithd.bn_folded' "
                              "must be a bool", path);

    if ((st = req_str_is(g, "fastvlm.projector.type", "mlp2x_gelu", FASTVLM_ERR_UNSUPPORTED,
                         err)) ||
        (st = req_u32_range(g, "fastvlm.projector.n_embd", &v->n_embd, 1, 4 * VIS_MAX_WIDTH,
                            err)) ||
        (st = req_str_is(g, "fastvlm.image.aspect", "pad", FASTVLM_ERR_UNSUPPORTED, err)) ||
        (st = req_str_is(g, "fastvlm.image.resample", "bicubic", FASTVLM_ERR_UNSUPPORTED, err)) ||
        (st = req_f32_array3(g, "fastvlm.image.pad_color", v->pad_rgb, err)) ||
        (st = req_pos_f32(g, "fastvlm.image.rescale", &v->rescale, err)) ||
        (st = req_f32_array3(g, "fastvlm.image.mean", v->mean, err)) ||
        (st = req_f32_array3(g, "fastvlm.image.std", v->std, err)))
        return st;
    for (int c = 0; c < 3; c++) {
        if (v->pad_rgb[c] < 0.0f || v->pad_rgb[c] > 255.0f)
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: fastvlm.image.pad_color[%d] = "
                                  "%g is outside [0, 255]", path, c, (double)v->pad_rgb[c]);
        if (!(v->std[c] != 0.0f))
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: fastvlm.image.std[%d] is 0",
                                  path, c);
    }

    /* stages: each PatchEmbed multiplies the width by an integer; attention needs whole
     * heads; the total stride is 4 (stem) × 2 per PatchEmbed */
    for (int32_t s = 0; s < v->n_stages; s++) {
        vis_stage *sg = &v->stages[s];
        fvlm_gguf_str mix;
        sg->depth = depths[s];
        sg->width = widths[s];
        sg->ffn_width = ffn[s];
        sg->pos_embed = pe[s] != 0;
        if (!fvlm_gguf_arr_get_str(g, mixers_idx, (uint64_t)s, &mix))
            goto count_mismatch;
        if (fvlm_gguf_str_eq(mix, "repmixer"))
            sg->attn = false;
        else if (fvlm_gguf_str_eq(mix, "attention"))
            sg->attn = true;
        else
            return fvlm_set_error(err, FASTVLM_ERR_UNSUPPORTED, "%s: fastvithd.stage.mixers[%d] "
                                  "= '%.*s' (expected 'repmixer' or 'attention')", path, s,
                                  (int)(mix.len > 64 ? 64 : mix.len), mix.ptr);
        if (sg->attn && sg->width % v->head_dim)
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: stage %d width %d is not a "
                                  "multiple of fastvithd.attention.head_dim %d", path, s,
                                  sg->width, v->head_dim);
        if (s > 0) {
            if (sg->width % widths[s - 1])
                return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: stage %d width %d is not a "
                                      "multiple of stage %d width %d", path, s, sg->width,
                                      s - 1, widths[s - 1]);
            sg->down_mult = sg->width / widths[s - 1];
        }
    }
    if (v->embed_dim % widths[v->n_stages - 1])
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: fastvithd.embed_dim %d is not a "
                              "multiple of the last stage width %d", path, v->embed_dim,
                              widths[v->n_stages - 1]);
    v->exp_mult = v->embed_dim / widths[v->n_stages - 1];
    if (v->patch_stride != (4 << (v->n_stages - 1)))
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: fastvithd.patch_stride %d does not "
                              "match %d stages (expected %d)", path, v->patch_stride,
                              v->n_stages, 4 << (v->n_stages - 1));
    if (v->image_size % v->patch_stride)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: fastvithd.image_size %d is not a "
                              "multiple of the patch stride %d", path, v->image_size,
                              v->patch_stride);
    return FASTVLM_OK;

count_mismatch:
    return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: fastvithd.stage.{depths,widths,"
                          "ffn_widths,mixers,pos_embed} must be arrays of the same length "
                          "(%llu stages)", path, (unsigned long long)n);
}

/* ---- tensors ---- */

static fastvlm_status load_block(fvlm_vision *v, const fvlm_gguf *g, int32_t s, int32_t i,
                                 bool bn_folded, vis_block *b, fastvlm_error *err)
{
    const vis_stage *sg = &v->stages[s];
    const int32_t C = sg->width, F = sg->ffn_width;
    char p[96], name[128];
    fastvlm_status st;

    snprintf(p, sizeof p, "v.blk.%d.%d", s, i);
    b->attn = sg->attn;
    if (!b->attn) {
        snprintf(name, sizeof name, "%s.mixer", p);
        if ((st = load_conv(v, g, name, v->k_rep, 1, C, true, NULL, &b->mixer, err)))
            return st;
        snprintf(name, sizeof name, "%s.ls", p);
        if ((st = load_vec(v, g, name, C, &b->ls, err)))
            return st;
    } else {
        snprintf(name, sizeof name, "%s.norm.weight", p);
        if ((st = load_vec(v, g, name, C, &b->norm_w, err)))
            return st;
        snprintf(name, sizeof name, "%s.norm.bias", p);
        if ((st = load_vec(v, g, name, C, &b->norm_b, err)))
            return st;
        snprintf(name, sizeof name, "%s.attn_qkv", p);
        if ((st = load_linear(v, g, name, C, 3 * C, false, &b->qkv, err)))
            return st;
        snprintf(name, sizeof name, "%s.attn_out", p);
        if ((st = load_linear(v, g, name, C, C, true, &b->attn_out, err)))
            return st;
        snprintf(name, sizeof name, "%s.ls1", p);
        if ((st = load_vec(v, g, name, C, &b->ls1, err)))
            return st;
        snprintf(name, sizeof name, "%s.ls2", p);
        if ((st = load_vec(v, g, name, C, &b->ls, err)))
            return st;
    }

    snprintf(name, sizeof name, "%s.ffn_dw", p);
    if (bn_folded) {
        if ((st = load_conv(v, g, name, VIS_FFN_KERNEL, 1, C, true, NULL, &b->ffn_dw, err)))
            return st;
    } else {
        static const char *const bn_names[4] = {"weight", "bias", "mean", "var"};
        float *bn[4];
        char bname[128];
        for (int j = 0; j < 4; j++) {
            snprintf(bname, sizeof bname, "%s.ffn_bn.%s", p, bn_names[j]);
            if ((st = load_vec(v, g, bname, C, &bn[j], err)))
                return st;
        }
        for (int32_t c = 0; c < C; c++)
            if (!(bn[3][c] + v->bn_eps > 0.0f))
                return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: tensor '%s.ffn_bn.var' "
                                      "element %d = %g makes var + eps <= 0", v->path, p, c,
                                      (double)bn[3][c]);
        if ((st = load_conv(v, g, name, VIS_FFN_KERNEL, 1, C, false,
                            (const float *const *)bn, &b->ffn_dw, err)))
            return st;
    }
    snprintf(name, sizeof name, "%s.ffn_up", p);
    if ((st = load_linear(v, g, name, C, F, true, &b->ffn_up, err)))
        return st;
    snprintf(name, sizeof name, "%s.ffn_down", p);
    return load_linear(v, g, name, F, C, true, &b->ffn_down, err);
}

static fastvlm_status load_tensors(fvlm_vision *v, const fvlm_gguf *g, bool bn_folded,
                                   fastvlm_error *err)
{
    const int32_t C0 = v->stages[0].width, E = v->embed_dim;
    char name[128];
    fastvlm_status st;

    if ((st = load_conv(v, g, "v.stem.0", v->k_stem, 3, C0, true, NULL, &v->stem0, err)) ||
        (st = load_conv(v, g, "v.stem.1", v->k_stem, 1, C0, true, NULL, &v->stem1, err)) ||
        (st = load_linear(v, g, "v.stem.2", C0, C0, true, &v->stem2, err)))
        return st;

    for (int32_t s = 0; s < v->n_stages; s++) {
        vis_stage *sg = &v->stages[s];
        if (s > 0) {
            snprintf(name, sizeof name, "v.down.%d.lk", s);
            if ((st = load_conv(v, g, name, v->k_down, 1, sg->width, true, NULL, &sg->down_lk,
                                err)))
                return st;
            snprintf(name, sizeof name, "v.down.%d.pw", s);
            if ((st = load_linear(v, g, name, sg->width, sg->width, true, &sg->down_pw, err)))
                return st;
        }
        if (sg->pos_embed) {
            snprintf(name, sizeof name, "v.cpe.%d", s);
            if ((st = load_conv(v, g, name, v->k_pe, 1, sg->width, true, NULL, &sg->cpe, err)))
                return st;
        }
        if (sg->depth > 0) {
            sg->blocks = calloc((size_t)sg->depth, sizeof *sg->blocks);
            if (!sg->blocks)
                return nomem(v, "v.blk", err);
        }
        for (int32_t i = 0; i < sg->depth; i++)
            if ((st = load_block(v, g, s, i, bn_folded, &sg->blocks[i], err)))
                return st;
    }

    if ((st = load_conv(v, g, "v.exp", VIS_EXP_KERNEL, 1, E, true, NULL, &v->exp, err)) ||
        (st = load_linear(v, g, "v.exp.se_reduce", E, v->se_reduced, true, &v->se_reduce, err)) ||
        (st = load_linear(v, g, "v.exp.se_expand", v->se_reduced, E, true, &v->se_expand, err)) ||
        (st = load_linear(v, g, "mm.0", E, v->n_embd, true, &v->mm0, err)) ||
        (st = load_linear(v, g, "mm.2", v->n_embd, v->n_embd, true, &v->mm2, err)))
        return st;
    return FASTVLM_OK;
}

fastvlm_status fvlm_vision_load(const fvlm_gguf *g, fvlm_vision **out, fastvlm_error *err)
{
    fvlm_vision *v;
    bool bn_folded = false;
    fastvlm_status st;

    if (!out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fvlm_vision_load: out is NULL");
    *out = NULL;
    if (!g)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fvlm_vision_load: no file");
    v = calloc(1, sizeof *v);
    if (!v)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory", fvlm_gguf_path(g));
    v->path = fvlm_gguf_path(g);
    st = load_hparams(v, g, &bn_folded, err);
    if (st == FASTVLM_OK)
        st = load_tensors(v, g, bn_folded, err);
    if (st != FASTVLM_OK) {
        fvlm_vision_free(v);
        return st;
    }
    *out = v;
    return FASTVLM_OK;
}

void fvlm_vision_free(fvlm_vision *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_owned; i++)
        free(v->owned[i]);
    free(v->owned);
    for (int32_t s = 0; s < VIS_MAX_STAGES; s++)
        free(v->stages[s].blocks);
    free(v);
}

void fvlm_vision_fill_info(const fvlm_vision *v, fastvlm_model_info *info)
{
    if (!info)
        return;
    if (!v) {
        info->has_vision = false;
        return;
    }
    info->has_vision = true;
    info->image_size = v->image_size;
    info->patch_stride = v->patch_stride;
    info->vision_embd = v->embed_dim;
    info->n_image_tokens = (v->image_size / v->patch_stride) * (v->image_size / v->patch_stride);
    for (int c = 0; c < 3; c++) {
        info->image_pad_rgb[c] = v->pad_rgb[c];
        info->image_mean[c] = v->mean[c];
        info->image_std[c] = v->std[c];
    }
    info->image_rescale = v->rescale;
}

int32_t fvlm_vision_out_dim(const fvlm_vision *v, bool tower_only)
{
    if (!v)
        return 0;
    return tower_only ? v->embed_dim : v->n_embd;
}

/* ======================================================================================
 * Forward pass
 * ==================================================================================== */

/* ---- threaded element-wise helpers: fn(ctx, i0, i1) over a split of [0, n) ---- */

typedef void (*vis_range_fn)(void *ctx, int64_t i0, int64_t i1);
typedef struct {
    vis_range_fn fn;
    void *ctx;
    int64_t n;
} vis_par;

static void vis_par_worker(void *arg, int ith, int nth)
{
    const vis_par *p = arg;
    const int64_t i0 = p->n * ith / nth, i1 = p->n * (ith + 1) / nth;
    if (i0 < i1)
        p->fn(p->ctx, i0, i1);
}

static void vis_par_for(fvlm_pool *pool, int64_t n, vis_range_fn fn, void *ctx)
{
    vis_par p = {fn, ctx, n};
    fvlm_pool_run(pool, vis_par_worker, &p);
}

static void gelu_range(void *ctx, int64_t i0, int64_t i1)
{
    fvlm_gelu_erf((float *)ctx + i0, i1 - i0);
}

/* x ← GELU(x) over n floats. */
static void par_gelu(fvlm_pool *pool, float *x, int64_t n)
{
    vis_par_for(pool, n, gelu_range, x);
}

/* Token-wise helpers: ranges are token indices; rows of C floats. */
typedef struct {
    float *x;                 /* [N][C] */
    const float *y;           /* [N][C] */
    const float *w, *b;       /* [C] */
    int32_t C;
    float eps;                /* LayerNorm epsilon */
    float scale;              /* q scaling */
} tok_ctx;

/* x[t] += w ⊙ y[t] (layer-scaled residual). */
static void residual_range(void *ctx, int64_t t0, int64_t t1)
{
    const tok_ctx *c = ctx;
    for (int64_t t = t0; t < t1; t++) {
        float *restrict xr = c->x + t * c->C;
        const float *restrict yr = c->y + t * c->C;
        for (int32_t i = 0; i < c->C; i++)
            xr[i] += c->w[i] * yr[i];
    }
}

/* x[t] = LayerNorm(y[t]) · w + b (LayerNormChannel: over the C channels of one pixel). */
static void layernorm_range(void *ctx, int64_t t0, int64_t t1)
{
    const tok_ctx *c = ctx;
    for (int64_t t = t0; t < t1; t++)
        fvlm_layernorm(c->x + t * c->C, c->y + t * c->C, c->w, c->b, c->C, c->eps);
}

/* x[t] = GELU(x[t] ⊙ w): SE channel scaling, then conv_exp's activation. */
static void se_scale_gelu_range(void *ctx, int64_t t0, int64_t t1)
{
    const tok_ctx *c = ctx;
    for (int64_t t = t0; t < t1; t++) {
        float *xr = c->x + t * c->C;
        for (int32_t i = 0; i < c->C; i++)
            xr[i] *= c->w[i];
        fvlm_gelu_erf(xr, c->C);
    }
}

/* q columns of a [N][3C] qkv matrix ×= scale. */
static void scale_q_range(void *ctx, int64_t t0, int64_t t1)
{
    const tok_ctx *c = ctx;
    for (int64_t t = t0; t < t1; t++) {
        float *q = c->x + t * 3 * (int64_t)c->C;
        for (int32_t i = 0; i < c->C; i++)
            q[i] *= c->scale;
    }
}

/* ---- multi-head self-attention over a [N][3C] q|k|v matrix, heads split over threads ---- */

typedef struct {
    const float *qkv;         /* [N][3C], q already scaled */
    float *out;               /* [N][C], head h at columns h·hd … */
    float *scratch;           /* per thread: vᵀ [hd][N] + scores [qblk][N] */
    int64_t scratch_per_thread;
    int32_t N, C, hd, n_head, qblk;
} attn_ctx;

static void attn_worker(void *arg, int ith, int nth)
{
    const attn_ctx *a = arg;
    const int64_t N = a->N, C3 = 3 * (int64_t)a->C;
    float *vt = a->scratch + a->scratch_per_thread * ith;
    float *sc = vt + (int64_t)a->hd * N;

    for (int32_t h = ith; h < a->n_head; h += nth) {
        const float *q = a->qkv + (int64_t)h * a->hd;
        const float *k = q + a->C;
        const float *vsrc = q + 2 * (int64_t)a->C;
        /* vᵀ so that P·V is an NT product */
        for (int64_t t = 0; t < N; t++)
            for (int32_t d = 0; d < a->hd; d++)
                vt[d * N + t] = vsrc[t * C3 + d];
        for (int64_t q0 = 0; q0 < N; q0 += a->qblk) {
            const int64_t nq = N - q0 < a->qblk ? N - q0 : a->qblk;
            fvlm_sgemm_nt(NULL, nq, N, a->hd, q + q0 * C3, C3, k, C3, sc, N, NULL);
            for (int64_t r = 0; r < nq; r++)
                fvlm_softmax(sc + r * N, N);
            fvlm_sgemm_nt(NULL, nq, a->hd, N, sc, N, vt, N, a->out + q0 * a->C + (int64_t)h * a->hd,
                          a->C, NULL);
        }
    }
}

/* ---- the pass ---- */

typedef struct {
    const fvlm_vision *v;
    fvlm_pool *pool;
    int nth;
    float *x, *t;             /* two token-major maps, map_cap floats each */
    float *hbuf;              /* FFN hidden chunk / projector hidden */
    float *qkv;               /* attention q|k|v, then the proj output */
    float *attn_scratch;
    int64_t ffn_chunk_floats;
} vis_run;

static void swap_maps(vis_run *r)
{
    float *tmp = r->x;
    r->x = r->t;
    r->t = tmp;
}

/* Tokens per FFN chunk for a hidden width F. */
static int64_t ffn_chunk_tokens(int64_t N, int32_t F)
{
    int64_t m = VIS_FFN_CHUNK_FLOATS / F;
    if (m < 1)
        m = 1;
    return m < N ? m : N;
}

/* x ← x + ls ⊙ ConvFFN(x) on an H×W×C map. */
static void run_convffn(vis_run *r, const vis_block *b, int32_t C, int32_t F, int32_t H,
                        int32_t W)
{
    const int64_t N = (int64_t)H * W, chunk = ffn_chunk_tokens(N, F);

    fvlm_conv2d_cw_hwc(r->pool, r->x, C, H, W, b->ffn_dw.w, b->ffn_dw.b, 1, VIS_FFN_KERNEL, 1,
                       VIS_FFN_KERNEL / 2, r->t);
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
        const int64_t m = N - n0 < chunk ? N - n0 : chunk;
        float *trows = r->t + n0 * C;
        tok_ctx rc = {.x = r->x + n0 * C, .y = trows, .w = b->ls, .C = C};
        fvlm_matmul(r->pool, &b->ffn_up.w, trows, m, r->hbuf, b->ffn_up.b);
        par_gelu(r->pool, r->hbuf, m * F);
        /* the chunk's rows of t were consumed by fc1: fc2 writes over them */
        fvlm_matmul(r->pool, &b->ffn_down.w, r->hbuf, m, trows, b->ffn_down.b);
        vis_par_for(r->pool, m, residual_range, &rc);
    }
}

/* x ← x + ls1 ⊙ MHSA(LNc(x)) on N tokens of C channels. */
static void run_attention(vis_run *r, const vis_block *b, int32_t C, int64_t N)
{
    const fvlm_vision *v = r->v;
    tok_ctx ln = {.x = r->t, .y = r->x, .w = b->norm_w, .b = b->norm_b, .C = C,
                  .eps = v->norm_eps};
    tok_ctx sq = {.x = r->qkv, .C = C, .scale = 1.0f / sqrtf((float)v->head_dim)};
    tok_ctx rc = {.x = r->x, .y = r->qkv, .w = b->ls1, .C = C};
    attn_ctx a = {
        .qkv = r->qkv, .out = r->t, .scratch = r->attn_scratch,
        .scratch_per_thread = (int64_t)(v->head_dim + VIS_ATTN_QBLOCK) * N,
        .N = (int32_t)N, .C = C, .hd = v->head_dim, .n_head = C / v->head_dim,
        .qblk = VIS_ATTN_QBLOCK,
    };

    vis_par_for(r->pool, N, layernorm_range, &ln);
    fvlm_matmul(r->pool, &b->qkv.w, r->t, N, r->qkv, NULL);
    vis_par_for(r->pool, N, scale_q_range, &sq);
    fvlm_pool_run(r->pool, attn_worker, &a);
    fvlm_matmul(r->pool, &b->attn_out.w, r->t, N, r->qkv, b->attn_out.b);
    vis_par_for(r->pool, N, residual_range, &rc);
}

/* Shapes of one pass, computed before anything is allocated. */
typedef struct {
    int32_t s2, s4;           /* stem output sides */
    int32_t side[VIS_MAX_STAGES];
    int64_t stem0_floats, map_cap, hbuf_cap, qkv_cap, attn_scratch;
    int64_t n_out;            /* output tokens */
} vis_plan;

static void make_plan(const fvlm_vision *v, int32_t size, int nth, vis_plan *p)
{
    const int32_t ks = v->k_stem;
    int32_t side;

    memset(p, 0, sizeof *p);
    p->s2 = fvlm_conv_out_size(size, ks, VIS_STEM_STRIDE, ks / 2);
    p->s4 = fvlm_conv_out_size(p->s2, ks, VIS_STEM_STRIDE, ks / 2);
    p->stem0_floats = (int64_t)p->s2 * p->s2 * v->stages[0].width;
    p->map_cap = (int64_t)p->s4 * p->s4 * v->stages[0].width;
    side = p->s4;
    for (int32_t s = 0; s < v->n_stages; s++) {
        const vis_stage *sg = &v->stages[s];
        int64_t N, m;
        if (s > 0)
            side = fvlm_conv_out_size(side, v->k_down, VIS_DOWN_STRIDE, v->k_down / 2);
        p->side[s] = side;
        N = (int64_t)side * side;
        if (N * sg->width > p->map_cap)
            p->map_cap = N * sg->width;
        m = ffn_chunk_tokens(N, sg->ffn_width) * sg->ffn_width;
        if (m > p->hbuf_cap)
            p->hbuf_cap = m;
        if (sg->attn && sg->depth > 0) {
            const int64_t sc = (int64_t)nth * (v->head_dim + VIS_ATTN_QBLOCK) * N;
            if (3 * N * sg->width > p->qkv_cap)
                p->qkv_cap = 3 * N * sg->width;
            if (sc > p->attn_scratch)
                p->attn_scratch = sc;
        }
    }
    p->n_out = (int64_t)side * side;
    if (p->n_out * v->embed_dim > p->map_cap)
        p->map_cap = p->n_out * v->embed_dim;
    if (p->n_out * v->n_embd > p->hbuf_cap)
        p->hbuf_cap = p->n_out * v->n_embd;
}

static float *alloc_floats(int64_t n)
{
    if (n <= 0)
        return NULL;
    if ((uint64_t)n > SIZE_MAX / sizeof(float))
        return NULL;
    return malloc((size_t)n * sizeof(float));
}

static bool aborted(fastvlm_abort_fn should_abort, void *ud)
{
    return should_abort && should_abort(ud);
}

fastvlm_status fvlm_vision_encode(const fvlm_vision *v, fvlm_pool *pool,
                                  const float *planar, int32_t size, bool tower_only,
                                  float *out, fastvlm_abort_fn should_abort, void *abort_ud,
                                  fastvlm_error *err)
{
    const int32_t C0 = v ? v->stages[0].width : 0;
    vis_plan plan;
    vis_run r;
    float *stem0 = NULL, *red = NULL;
    fastvlm_status st = FASTVLM_OK;
    int32_t side, C;

    if (!v || !planar || !out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fvlm_vision_encode: NULL argument");
    if (size <= 0 || size % v->patch_stride || size > VIS_MAX_SIZE)
        return fvlm_set_error(err, FASTVLM_ERR_IMAGE, "vision input size %d is not a positive "
                              "multiple of %d up to %d", size, v->patch_stride, VIS_MAX_SIZE);

    memset(&r, 0, sizeof r);
    r.v = v;
    r.pool = pool;
    r.nth = pool ? fvlm_pool_size(pool) : 1;
    if (r.nth < 1)
        r.nth = 1;
    make_plan(v, size, r.nth, &plan);

    /* stem 0: planar image → (S/2)² × C0 */
    stem0 = alloc_floats(plan.stem0_floats);
    r.x = alloc_floats(plan.map_cap);
    r.t = alloc_floats(plan.map_cap);
    if (!stem0 || !r.x || !r.t) {
        st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "vision: out of memory for a %dx%d input "
                            "(%lld MB of maps)", size, size,
                            (long long)((plan.stem0_floats + 2 * plan.map_cap) >> 18));
        goto done;
    }
    fvlm_conv2d_dense_chw_hwc(pool, planar, 3, size, size, v->stem0.w, v->stem0.b, C0, v->k_stem,
                              VIS_STEM_STRIDE, v->k_stem / 2, stem0);
    par_gelu(pool, stem0, plan.stem0_floats);
    /* stem 1: depthwise stride 2 → (S/4)² × C0; stem 2: 1×1 */
    fvlm_conv2d_cw_hwc(pool, stem0, C0, plan.s2, plan.s2, v->stem1.w, v->stem1.b, 1, v->k_stem,
                       VIS_STEM_STRIDE, v->k_stem / 2, r.x);
    free(stem0);
    stem0 = NULL;
    par_gelu(pool, r.x, (int64_t)plan.s4 * plan.s4 * C0);
    fvlm_matmul(pool, &v->stem2.w, r.x, (int64_t)plan.s4 * plan.s4, r.t, v->stem2.b);
    swap_maps(&r);
    par_gelu(pool, r.x, (int64_t)plan.s4 * plan.s4 * C0);

    r.hbuf = alloc_floats(plan.hbuf_cap);
    if (plan.qkv_cap) {
        r.qkv = alloc_floats(plan.qkv_cap);
        r.attn_scratch = alloc_floats(plan.attn_scratch);
    }
    if (!r.hbuf || (plan.qkv_cap && (!r.qkv || !r.attn_scratch))) {
        st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "vision: out of memory for scratch at %dx%d",
                            size, size);
        goto done;
    }

    side = plan.s4;
    C = C0;
    for (int32_t s = 0; s < v->n_stages; s++) {
        const vis_stage *sg = &v->stages[s];
        int64_t N;
        if (aborted(should_abort, abort_ud))
            goto abort;
        if (s > 0) {
            /* PatchEmbed: grouped k×k stride 2 + GELU, then 1×1 + GELU */
            const int32_t ns = plan.side[s];
            fvlm_conv2d_cw_hwc(pool, r.x, C, side, side, sg->down_lk.w, sg->down_lk.b,
                               sg->down_mult, v->k_down, VIS_DOWN_STRIDE, v->k_down / 2, r.t);
            side = ns;
            C = sg->width;
            N = (int64_t)side * side;
            par_gelu(pool, r.t, N * C);
            fvlm_matmul(pool, &sg->down_pw.w, r.t, N, r.x, sg->down_pw.b);
            par_gelu(pool, r.x, N * C);
        }
        N = (int64_t)side * side;
        if (sg->pos_embed) {
            fvlm_conv2d_cw_hwc(pool, r.x, C, side, side, sg->cpe.w, sg->cpe.b, 1, v->k_pe, 1,
                               v->k_pe / 2, r.t);
            swap_maps(&r);
        }
        for (int32_t i = 0; i < sg->depth; i++) {
            const vis_block *b = &sg->blocks[i];
            if (aborted(should_abort, abort_ud))
                goto abort;
            if (!b->attn) {
                fvlm_conv2d_cw_hwc(pool, r.x, C, side, side, b->mixer.w, b->mixer.b, 1, v->k_rep,
                                   1, v->k_rep / 2, r.t);
                swap_maps(&r);
            } else {
                run_attention(&r, b, C, N);
            }
            run_convffn(&r, b, C, sg->ffn_width, side, side);
        }
    }
    if (aborted(should_abort, abort_ud))
        goto abort;

    /* conv_exp: grouped 3×3 → SE → GELU, written as the [tokens][E] tower output */
    {
        const int32_t E = v->embed_dim, R = v->se_reduced;
        const int64_t N = plan.n_out;
        float *e = tower_only ? out : r.t;
        float *mean, *scale;
        tok_ctx sc;

        fvlm_conv2d_cw_hwc(pool, r.x, C, side, side, v->exp.w, v->exp.b, v->exp_mult,
                           VIS_EXP_KERNEL, 1, VIS_EXP_KERNEL / 2, e);
        red = alloc_floats(2 * (int64_t)E + R);
        if (!red) {
            st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "vision: out of memory");
            goto done;
        }
        mean = red + R;
        scale = mean + E;
        for (int32_t c = 0; c < E; c++) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; n++)
                acc += e[n * E + c];
            mean[c] = (float)(acc / (double)N);
        }
        fvlm_matmul(NULL, &v->se_reduce.w, mean, 1, red, v->se_reduce.b);
        for (int32_t j = 0; j < R; j++)
            red[j] = red[j] > 0.0f ? red[j] : 0.0f;
        fvlm_matmul(NULL, &v->se_expand.w, red, 1, scale, v->se_expand.b);
        for (int32_t c = 0; c < E; c++)
            scale[c] = 1.0f / (1.0f + expf(-scale[c]));
        sc = (tok_ctx){.x = e, .w = scale, .C = E};
        vis_par_for(pool, N, se_scale_gelu_range, &sc);

        if (!tower_only) {
            /* projector mlp2x_gelu */
            fvlm_matmul(pool, &v->mm0.w, e, N, r.hbuf, v->mm0.b);
            par_gelu(pool, r.hbuf, N * v->n_embd);
            fvlm_matmul(pool, &v->mm2.w, r.hbuf, N, out, v->mm2.b);
        }
    }
    goto done;

abort:
    st = fvlm_set_error(err, FASTVLM_ERR_ABORTED, "vision: aborted");
done:
    free(stem0);
    free(red);
    free(r.x);
    free(r.t);
    free(r.hbuf);
    free(r.qkv);
    free(r.attn_scratch);
    return st;
}
