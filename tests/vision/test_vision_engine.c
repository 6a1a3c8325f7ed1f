/*
 * test_vision_engine.c — engine-level tests of the vision tower loader and forward pass
 * (engine/vision.c) and of the preprocessing limits (engine/image.c), on small random
 * mmproj files built in memory with the tests' own GGUF writer (tests/gguf/gguf_writer.c).
 * Runs in the 'engine' suite, so also under ASan + UBSan.
 *
 * Numerical equivalence with the PyTorch reference is tests/vision/test_vision.py; here:
 *   - a 3-stage tower (RepMixer, RepMixer, attention + RepCPE) loads, reports its info and
 *     runs at two input sizes; results are finite, non-constant, identical for 1 and 3
 *     threads;
 *   - BatchNorm folded at load time == the same BN folded by this test (double precision);
 *   - f16-stored matrices == f32 matrices holding the same f16-rounded values;
 *   - error statuses and messages: missing tensor / BN tensor, wrong shape, version,
 *     unknown mixer, projector type, mismatched stage arrays, bad input size, abort;
 *   - preprocessing limits: empty, the pixel and side limits at the limit (works) and one
 *     over (refused before reading, the message names the limit), short stride, and a 1x1
 *     image (must work).
 * Exit 1 on any failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gguf/gguf_writer.h"
#include "gguf.h"
#include "tensor.h"
#include "threadpool.h"
#include "vision.h"

#define NS 3
static const uint32_t DEPTHS[NS] = {2, 1, 1};
static const uint32_t WIDTHS[NS] = {8, 16, 32};
static const uint32_t FFN[NS] = {32, 64, 128};
static const uint32_t PE[NS] = {0, 0, 1};
#define HEAD_DIM 8
#define EMBED 64
#define SE_RED 4
#define N_EMBD 24
#define IMG 32
#define STRIDE 16
#define BN_EPS 1e-5f

static int failures;
#define FAIL(...)                                                         \
    do {                                                                  \
        fprintf(stderr, "FAIL line %d: ", __LINE__);                      \
        fprintf(stderr, __VA_ARGS__);                                     \
        fputc('\n', stderr);                                              \
        failures++;                                                       \
    } while (0)

/* ---- deterministic random numbers ---- */
static uint64_t rng;
static float frand(void) /* uniform [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* ---- building an mmproj ---- */

typedef struct {
    bool folded;              /* store ffn_dw.bias (BN folded here) instead of ffn_bn.* */
    bool f16_matrices;        /* store 2-D matrices as f16 (else f32 of f16-rounded values
                               * when round_f16, or plain f32) */
    bool round_f16;
    const char *omit;         /* leave this tensor out */
    const char *reshape;      /* give this tensor a wrong last dimension */
    uint32_t version;
    const char *mixer_last;   /* mixers[NS-1] */
    const char *proj_type;
    bool short_pos_embed;     /* pos_embed array one element short */
} mm_opts;

typedef struct {
    gw w;
    void *owned[512];
    int n_owned;
} builder;

static void *own(builder *b, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p || b->n_owned == 512) {
        fprintf(stderr, "test: out of memory\n");
        exit(1);
    }
    b->owned[b->n_owned++] = p;
    return p;
}

/* Adds a float tensor: values given as f32 (n = product of ne); stored as f32 or f16. */
static void add_t(builder *b, const mm_opts *o, const char *name, int nd, const uint64_t *ne0,
                  const float *v, bool as_f16)
{
    uint64_t ne[4] = {1, 1, 1, 1};
    size_t n = 1;
    char *nm;
    if (o->omit && !strcmp(o->omit, name))
        return;
    for (int i = 0; i < nd; i++)
        ne[i] = ne0[i];
    if (o->reshape && !strcmp(o->reshape, name))
        ne[nd - 1] += 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)ne[i];
    nm = own(b, strlen(name) + 1);
    strcpy(nm, name);
    if (as_f16) {
        uint16_t *h = own(b, n * 2);
        for (size_t i = 0; i < n; i++)
            h[i] = fvlm_f32_to_f16(v[i]);
        gw_add_tensor(&b->w, nm, 1, (uint32_t)nd, ne, h, n * 2);
    } else {
        float *f = own(b, n * 4);
        memcpy(f, v, n * 4); /* v always holds at least n values (see rnd) */
        gw_add_tensor(&b->w, nm, 0, (uint32_t)nd, ne, f, n * 4);
    }
}

/* n random values scaled by `scale` (+ offset), with slack for a reshaped tensor. */
static float *rnd(builder *b, size_t n, float scale, float offset)
{
    const size_t slack = 4096;
    float *v = own(b, (n + slack) * sizeof(float));
    for (size_t i = 0; i < n + slack; i++)
        v[i] = offset + scale * frand();
    return v;
}

static void round_to_f16(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = fvlm_f16_to_f32(fvlm_f32_to_f16(v[i]));
}

static void add_vec(builder *b, const mm_opts *o, const char *name, uint32_t n, float scale,
                    float offset)
{
    const uint64_t ne[1] = {n};
    add_t(b, o, name, 1, ne, rnd(b, n, scale, offset), false);
}

static void add_conv(builder *b, const mm_opts *o, const char *prefix, uint32_t k,
                     uint32_t cin_g, uint32_t cout, bool identity)
{
    const uint64_t ne[4] = {k, k, cin_g, cout};
    const size_t n = (size_t)k * k * cin_g * cout;
    float *w = rnd(b, n, 1.0f / sqrtf((float)(k * k * cin_g)), 0.0f);
    char name[128];
    if (identity) /* keep the no-residual convs near identity, like the real ones */
        for (uint32_t c = 0; c < cout; c++)
            w[(size_t)c * k * k + (k * k) / 2] += 1.0f;
    snprintf(name, sizeof name, "%s.weight", prefix);
    add_t(b, o, name, 4, ne, w, false);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add_vec(b, o, name, cout, 0.1f, 0.0f);
}

static void add_matrix(builder *b, const mm_opts *o, const char *prefix, uint32_t k, uint32_t n,
                       bool bias)
{
    const uint64_t ne[2] = {k, n};
    float *w = rnd(b, (size_t)k * n, 1.0f / sqrtf((float)k), 0.0f);
    char name[160];
    if (o->f16_matrices || o->round_f16)
        round_to_f16(w, (size_t)k * n);
    snprintf(name, sizeof name, "%s.weight", prefix);
    add_t(b, o, name, 2, ne, w, o->f16_matrices);
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        add_vec(b, o, name, n, 0.1f, 0.0f);
    }
}

static void add_ffn(builder *b, const mm_opts *o, const char *p, uint32_t C, uint32_t F)
{
    const uint64_t ne_w[4] = {7, 7, 1, C}, ne_v[1] = {C};
    float *w = rnd(b, (size_t)49 * C, 1.0f / 7.0f, 0.0f);
    float *g = rnd(b, C, 0.2f, 1.0f), *be = rnd(b, C, 0.1f, 0.0f);
    float *mu = rnd(b, C, 0.2f, 0.0f), *var = rnd(b, C, 0.5f, 1.2f);
    char name[128];

    snprintf(name, sizeof name, "%s.ffn_dw.weight", p);
    if (o->folded) {
        float *wf = own(b, (size_t)49 * C * sizeof(float)), *bf = own(b, C * sizeof(float));
        for (uint32_t c = 0; c < C; c++) {
            const double sc = (double)g[c] / sqrt((double)var[c] + (double)BN_EPS);
            for (int t = 0; t < 49; t++)
                wf[(size_t)c * 49 + t] = (float)(w[(size_t)c * 49 + t] * sc);
            bf[c] = (float)(be[c] - mu[c] * sc);
        }
        add_t(b, o, name, 4, ne_w, wf, false);
        snprintf(name, sizeof name, "%s.ffn_dw.bias", p);
        add_t(b, o, name, 1, ne_v, bf, false);
    } else {
        add_t(b, o, name, 4, ne_w, w, false);
        snprintf(name, sizeof name, "%s.ffn_bn.weight", p);
        add_t(b, o, name, 1, ne_v, g, false);
        snprintf(name, sizeof name, "%s.ffn_bn.bias", p);
        add_t(b, o, name, 1, ne_v, be, false);
        snprintf(name, sizeof name, "%s.ffn_bn.mean", p);
        add_t(b, o, name, 1, ne_v, mu, false);
        snprintf(name, sizeof name, "%s.ffn_bn.var", p);
        add_t(b, o, name, 1, ne_v, var, false);
    }
    snprintf(name, sizeof name, "%s.ffn_up", p);
    add_matrix(b, o, name, C, F, true);
    snprintf(name, sizeof name, "%s.ffn_down", p);
    add_matrix(b, o, name, F, C, true);
}

static void kv_u32_arr(gw *w, const char *key, const uint32_t *v, int n)
{
    gw_kv_arr(w, key, GW_U32, (uint64_t)n);
    for (int i = 0; i < n; i++)
        gw_u32(&w->kv, v[i]);
}

static void kv_f32_arr3(gw *w, const char *key, float a, float b, float c)
{
    gw_kv_arr(w, key, GW_F32, 3);
    gw_f32(&w->kv, a);
    gw_f32(&w->kv, b);
    gw_f32(&w->kv, c);
}

static uint8_t *build(const mm_opts *o, size_t *size)
{
    builder *b = calloc(1, sizeof *b);
    const char *mixers[NS] = {"repmixer", "repmixer", o->mixer_last ? o->mixer_last : "attention"};
    char p[64], name[128];
    uint8_t *file;

    rng = 0x243F6A8885A308D3ull; /* same weights for every variant */
    gw_init(&b->w, 3);
    gw_kv_str(&b->w, "general.architecture", "fastvithd");
    gw_kv_u32(&b->w, "fastvlm.mmproj.version", o->version ? o->version : 1);
    gw_kv_u32(&b->w, "fastvithd.image_size", IMG);
    gw_kv_u32(&b->w, "fastvithd.patch_stride", STRIDE);
    kv_u32_arr(&b->w, "fastvithd.stage.depths", DEPTHS, NS);
    kv_u32_arr(&b->w, "fastvithd.stage.widths", WIDTHS, NS);
    kv_u32_arr(&b->w, "fastvithd.stage.ffn_widths", FFN, NS);
    gw_kv_arr(&b->w, "fastvithd.stage.mixers", GW_STRING, NS);
    for (int s = 0; s < NS; s++)
        gw_str(&b->w.kv, mixers[s]);
    kv_u32_arr(&b->w, "fastvithd.stage.pos_embed", PE, o->short_pos_embed ? NS - 1 : NS);
    gw_kv_u32(&b->w, "fastvithd.repmixer.kernel", 3);
    gw_kv_u32(&b->w, "fastvithd.pos_embed.kernel", 7);
    gw_kv_u32(&b->w, "fastvithd.downsample.kernel", 7);
    gw_kv_u32(&b->w, "fastvithd.attention.head_dim", HEAD_DIM);
    gw_kv_f32(&b->w, "fastvithd.norm_eps", 1e-5f);
    gw_kv_f32(&b->w, "fastvithd.bn_eps", BN_EPS);
    gw_kv_bool(&b->w, "fastvithd.bn_folded", o->folded);
    gw_kv_u32(&b->w, "fastvithd.embed_dim", EMBED);
    gw_kv_u32(&b->w, "fastvithd.se.reduced", SE_RED);
    gw_kv_u32(&b->w, "fastvithd.stem.kernel", 3);
    gw_kv_str(&b->w, "fastvlm.projector.type", o->proj_type ? o->proj_type : "mlp2x_gelu");
    gw_kv_u32(&b->w, "fastvlm.projector.n_embd", N_EMBD);
    gw_kv_str(&b->w, "fastvlm.image.aspect", "pad");
    kv_f32_arr3(&b->w, "fastvlm.image.pad_color", 0.0f, 0.0f, 0.0f);
    gw_kv_str(&b->w, "fastvlm.image.resample", "bicubic");
    gw_kv_f32(&b->w, "fastvlm.image.rescale", 1.0f / 255.0f);
    kv_f32_arr3(&b->w, "fastvlm.image.mean", 0.0f, 0.0f, 0.0f);
    kv_f32_arr3(&b->w, "fastvlm.image.std", 1.0f, 1.0f, 1.0f);

    add_conv(b, o, "v.stem.0", 3, 3, WIDTHS[0], false);
    add_conv(b, o, "v.stem.1", 3, 1, WIDTHS[0], false);
    add_matrix(b, o, "v.stem.2", WIDTHS[0], WIDTHS[0], true);
    for (int s = 0; s < NS; s++) {
        const uint32_t C = WIDTHS[s];
        if (s > 0) {
            snprintf(p, sizeof p, "v.down.%d.lk", s);
            add_conv(b, o, p, 7, 1, C, false);
            snprintf(p, sizeof p, "v.down.%d.pw", s);
            add_matrix(b, o, p, C, C, true);
        }
        if (PE[s]) {
            snprintf(p, sizeof p, "v.cpe.%d", s);
            add_conv(b, o, p, 7, 1, C, true);
        }
        for (uint32_t i = 0; i < DEPTHS[s]; i++) {
            snprintf(p, sizeof p, "v.blk.%d.%u", s, i);
            if (s < NS - 1) {
                snprintf(name, sizeof name, "%s.mixer", p);
                add_conv(b, o, name, 3, 1, C, true);
                snprintf(name, sizeof name, "%s.ls", p);
                add_vec(b, o, name, C, 0.4f, 0.5f);
            } else {
                snprintf(name, sizeof name, "%s.norm.weight", p);
                add_vec(b, o, name, C, 0.1f, 1.0f);
                snprintf(name, sizeof name, "%s.norm.bias", p);
                add_vec(b, o, name, C, 0.1f, 0.0f);
                snprintf(name, sizeof name, "%s.attn_qkv", p);
                add_matrix(b, o, name, C, 3 * C, false);
                snprintf(name, sizeof name, "%s.attn_out", p);
                add_matrix(b, o, name, C, C, true);
                snprintf(name, sizeof name, "%s.ls1", p);
                add_vec(b, o, name, C, 0.4f, 0.5f);
                snprintf(name, sizeof name, "%s.ls2", p);
                add_vec(b, o, name, C, 0.4f, 0.5f);
            }
            add_ffn(b, o, p, C, FFN[s]);
        }
    }
    add_conv(b, o, "v.exp", 3, 1, EMBED, false);
    add_matrix(b, o, "v.exp.se_reduce", EMBED, SE_RED, true);
    add_matrix(b, o, "v.exp.se_expand", SE_RED, EMBED, true);
    add_matrix(b, o, "mm.0", EMBED, N_EMBD, true);
    add_matrix(b, o, "mm.2", N_EMBD, N_EMBD, true);

    file = gw_finish(&b->w, size, NULL);
    gw_free(&b->w);
    for (int i = 0; i < b->n_owned; i++)
        free(b->owned[i]);
    free(b);
    return file;
}

/* ---- helpers ---- */

typedef struct {
    uint8_t *data;
    fvlm_gguf *g;
    fvlm_vision *v;
} loaded;

static fastvlm_status load(const mm_opts *o, loaded *l, fastvlm_error *err)
{
    size_t size;
    fastvlm_status st;
    memset(l, 0, sizeof *l);
    l->data = build(o, &size);
    st = fvlm_gguf_open_memory(l->data, size, "test-mmproj.gguf", &l->g, err);
    if (st == FASTVLM_OK)
        st = fvlm_vision_load(l->g, &l->v, err);
    return st;
}

static void unload(loaded *l)
{
    fvlm_vision_free(l->v);
    fvlm_gguf_close(l->g);
    free(l->data);
}

static float *image(int32_t size, uint64_t seed)
{
    float *x = malloc(sizeof(float) * 3 * (size_t)size * size);
    rng = seed;
    for (size_t i = 0; i < 3 * (size_t)size * size; i++)
        x[i] = 0.5f + 0.5f * frand();
    return x;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static float *encode(const loaded *l, fvlm_pool *pool, int32_t size, bool tower_only,
                     fastvlm_status want, const char *want_msg)
{
    const int32_t side = size / STRIDE > 0 ? size / STRIDE : 1;
    const size_t n = (size_t)side * side * (size_t)fvlm_vision_out_dim(l->v, tower_only);
    float *x = image(size > 0 ? size : 1, 0x1234u + (uint64_t)size);
    float *out = malloc(n * sizeof(float));
    fastvlm_error err;
    fastvlm_status st = fvlm_vision_encode(l->v, pool, x, size, tower_only, out, NULL, NULL, &err);
    free(x);
    if (st != want)
        FAIL("encode at %d: status %s (%s), expected %s", size, fastvlm_status_str(st),
             st ? err.message : "", fastvlm_status_str(want));
    else if (want_msg && !strstr(err.message, want_msg))
        FAIL("encode at %d: message '%s' lacks '%s'", size, err.message, want_msg);
    if (st != FASTVLM_OK) {
        free(out);
        return NULL;
    }
    return out;
}

static void expect_load_error(const mm_opts *o, fastvlm_status want, const char *want_msg)
{
    loaded l;
    fastvlm_error err;
    fastvlm_status st = load(o, &l, &err);
    if (st != want)
        FAIL("load: status %s (%s), expected %s (%s)", fastvlm_status_str(st),
             st ? err.message : "", fastvlm_status_str(want), want_msg);
    else if (!strstr(err.message, want_msg) || !strstr(err.message, "test-mmproj.gguf"))
        FAIL("load: message '%s' should name the file and '%s'", err.message, want_msg);
    if (l.v)
        FAIL("load failed but returned a vision object");
    unload(&l);
}

static bool abort_now(void *ud)
{
    int *calls = ud;
    return ++*calls >= 2; /* let the first block through, then stop */
}

/* ---- the tests ---- */

static void test_forward(fvlm_pool *pool1, fvlm_pool *pool3)
{
    const mm_opts folded = {.folded = true}, unfolded = {.folded = false};
    const mm_opts f32r = {.folded = true, .round_f16 = true};
    const mm_opts f16 = {.folded = true, .f16_matrices = true};
    loaded a, b;
    fastvlm_error err;
    fastvlm_model_info info;
    float *o1, *o3, *ot, *ou, *oa, *ob;

    if (load(&folded, &a, &err) != FASTVLM_OK) {
        FAIL("load folded: %s", err.message);
        unload(&a);
        return;
    }
    memset(&info, 0, sizeof info);
    fvlm_vision_fill_info(a.v, &info);
    if (!info.has_vision || info.image_size != IMG || info.patch_stride != STRIDE ||
        info.vision_embd != EMBED || info.n_image_tokens != (IMG / STRIDE) * (IMG / STRIDE) ||
        fabsf(info.image_rescale - 1.0f / 255.0f) > 1e-9f || info.image_std[2] != 1.0f)
        FAIL("info: size %d stride %d embd %d tokens %d", info.image_size, info.patch_stride,
             info.vision_embd, info.n_image_tokens);
    if (fvlm_vision_out_dim(a.v, true) != EMBED || fvlm_vision_out_dim(a.v, false) != N_EMBD)
        FAIL("out_dim");

    /* 1 vs 3 threads, projector at 64 (4x4 tokens); tower-only at 32 */
    o1 = encode(&a, pool1, 64, false, FASTVLM_OK, NULL);
    o3 = encode(&a, pool3, 64, false, FASTVLM_OK, NULL);
    ot = encode(&a, pool3, 32, true, FASTVLM_OK, NULL);
    if (o1 && o3) {
        const size_t n = 16 * N_EMBD;
        double mean = 0, var = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(o1[i])) {
                FAIL("non-finite output at %zu", i);
                break;
            }
            mean += o1[i] / (double)n;
        }
        for (size_t i = 0; i < n; i++)
            var += (o1[i] - mean) * (o1[i] - mean) / (double)n;
        if (!(var > 1e-4))
            FAIL("output is (nearly) constant: variance %g", var);
        if (rel_l2(o3, o1, n) > 1e-6)
            FAIL("1 vs 3 threads differ: rel L2 %g", rel_l2(o3, o1, n));
    }
    if (ot) {
        for (size_t i = 0; i < 4 * EMBED; i++)
            if (!isfinite(ot[i])) {
                FAIL("tower output non-finite at %zu", i);
                break;
            }
    }

    /* BN folded by the loader == folded here */
    if (load(&unfolded, &b, &err) != FASTVLM_OK) {
        FAIL("load unfolded: %s", err.message);
    } else {
        ou = encode(&b, pool3, 64, false, FASTVLM_OK, NULL);
        if (o1 && ou && rel_l2(ou, o1, 16 * N_EMBD) > 1e-5)
            FAIL("BN folded at load vs in the file: rel L2 %g", rel_l2(ou, o1, 16 * N_EMBD));
        free(ou);
    }
    unload(&b);

    /* f16 matrices == f32 matrices of the same values */
    if (load(&f32r, &b, &err) != FASTVLM_OK) {
        FAIL("load f16-rounded f32: %s", err.message);
        oa = NULL;
    } else {
        oa = encode(&b, pool3, 64, false, FASTVLM_OK, NULL);
    }
    unload(&b);
    if (load(&f16, &b, &err) != FASTVLM_OK) {
        FAIL("load f16: %s", err.message);
        ob = NULL;
    } else {
        ob = encode(&b, pool3, 64, false, FASTVLM_OK, NULL);
    }
    unload(&b);
    if (oa && ob && rel_l2(ob, oa, 16 * N_EMBD) > 1e-6)
        FAIL("f16 matrices vs f32 of the same values: rel L2 %g", rel_l2(ob, oa, 16 * N_EMBD));
    free(oa);
    free(ob);

    /* input sizes the tower refuses; abort */
    encode(&a, pool1, 40, false, FASTVLM_ERR_IMAGE, "40");
    encode(&a, pool1, 0, false, FASTVLM_ERR_IMAGE, "0");
    encode(&a, pool1, -16, false, FASTVLM_ERR_IMAGE, "-16");
    {
        int calls = 0;
        float *x = image(64, 1), *out = malloc(16 * N_EMBD * sizeof(float));
        fastvlm_status st = fvlm_vision_encode(a.v, pool3, x, 64, false, out, abort_now, &calls,
                                               &err);
        if (st != FASTVLM_ERR_ABORTED || calls != 2)
            FAIL("abort: status %s after %d polls", fastvlm_status_str(st), calls);
        free(x);
        free(out);
    }
    free(o1);
    free(o3);
    free(ot);
    unload(&a);
}

static void test_load_errors(void)
{
    mm_opts o;

    o = (mm_opts){.folded = true, .omit = "v.blk.1.0.ffn_up.weight"};
    expect_load_error(&o, FASTVLM_ERR_MISSING, "v.blk.1.0.ffn_up.weight");
    o = (mm_opts){.folded = false, .omit = "v.blk.0.1.ffn_bn.var"};
    expect_load_error(&o, FASTVLM_ERR_MISSING, "v.blk.0.1.ffn_bn.var");
    o = (mm_opts){.folded = true, .omit = "v.cpe.2.weight"};
    expect_load_error(&o, FASTVLM_ERR_MISSING, "v.cpe.2.weight");
    o = (mm_opts){.folded = true, .omit = "mm.2.bias"};
    expect_load_error(&o, FASTVLM_ERR_MISSING, "mm.2.bias");
    o = (mm_opts){.folded = true, .reshape = "v.blk.2.0.attn_qkv.weight"};
    expect_load_error(&o, FASTVLM_ERR_SHAPE, "v.blk.2.0.attn_qkv.weight");
    o = (mm_opts){.folded = true, .reshape = "v.down.1.lk.weight"};
    expect_load_error(&o, FASTVLM_ERR_SHAPE, "v.down.1.lk.weight");
    o = (mm_opts){.folded = true, .version = 2};
    expect_load_error(&o, FASTVLM_ERR_UNSUPPORTED, "version 2");
    o = (mm_opts){.folded = true, .mixer_last = "conv"};
    expect_load_error(&o, FASTVLM_ERR_UNSUPPORTED, "conv");
    o = (mm_opts){.folded = true, .proj_type = "linear"};
    expect_load_error(&o, FASTVLM_ERR_UNSUPPORTED, "fastvlm.projector.type");
    o = (mm_opts){.folded = true, .short_pos_embed = true};
    expect_load_error(&o, FASTVLM_ERR_FORMAT, "same length");
}

static void test_preprocess_limits(void)
{
    const float pad[3] = {0, 0, 0}, mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    uint8_t px[3] = {10, 20, 30};
    float *out = malloc(sizeof(float) * 3 * 64 * 64);
    fastvlm_error err;
    fastvlm_status st;

    st = fvlm_image_preprocess(px, 0, 5, 3, 64, pad, 1.0f / 255, mean, std, out, &err);
    if (st != FASTVLM_ERR_IMAGE || !strstr(err.message, "0x5"))
        FAIL("0x5 image: %s '%s'", fastvlm_status_str(st), err.message);
    /* the pixel limit is checked before any pixel is read (the buffer is 3 bytes) */
    st = fvlm_image_preprocess(px, 9000, 9000, 27000, 64, pad, 1.0f / 255, mean, std, out, &err);
    if (st != FASTVLM_ERR_IMAGE || !strstr(err.message, "9000x9000"))
        FAIL("9000x9000 image: %s '%s'", fastvlm_status_str(st), err.message);
    st = fvlm_image_preprocess(px, 2, 1, 5, 64, pad, 1.0f / 255, mean, std, out, &err);
    if (st != FASTVLM_ERR_IMAGE || !strstr(err.message, "stride"))
        FAIL("short stride: %s '%s'", fastvlm_status_str(st), err.message);
    st = fvlm_image_preprocess(px, 1, 1, 3, 0, pad, 1.0f / 255, mean, std, out, &err);
    if (st != FASTVLM_ERR_IMAGE)
        FAIL("output size 0: %s", fastvlm_status_str(st));
    /* the limits of fastvlm.h (docs/limits.md), at the limit and one over: 8192x8192
     * pixels and a 65536-pixel side pass, one more pixel or one more column do not
     * (refused before any pixel is read, so the 3-byte buffer serves) */
    {
        const int32_t side = 8192;
        uint8_t *big = calloc((size_t)side * side, 3);   /* zero pages: cheap to read */
        if (!big) {
            FAIL("cannot allocate an image of %d x %d", side, side);
        } else {
            st = fvlm_image_preprocess(big, side, side, (size_t)side * 3, 64, pad, 1.0f / 255,
                                       mean, std, out, &err);
            if (st != FASTVLM_OK)
                FAIL("8192x8192 image (at FASTVLM_MAX_IMAGE_PIXELS): %s", err.message);
            free(big);
        }
        st = fvlm_image_preprocess(px, side, side + 1, (size_t)side * 3, 64, pad, 1.0f / 255,
                                   mean, std, out, &err);
        if (st != FASTVLM_ERR_IMAGE || !strstr(err.message, "8192x8193") ||
            !strstr(err.message, "67117056 pixels") ||
            !strstr(err.message, "FASTVLM_MAX_IMAGE_PIXELS"))
            FAIL("8192x8193 image: %s '%s'", fastvlm_status_str(st), err.message);
    }
    {
        uint8_t *row = calloc((size_t)FASTVLM_MAX_IMAGE_SIDE, 3);
        st = row ? fvlm_image_preprocess(row, FASTVLM_MAX_IMAGE_SIDE, 1,
                                         (size_t)FASTVLM_MAX_IMAGE_SIDE * 3, 64, pad, 1.0f / 255,
                                         mean, std, out, &err)
                 : FASTVLM_ERR_NOMEM;
        if (st != FASTVLM_OK)
            FAIL("65536x1 image (at FASTVLM_MAX_IMAGE_SIDE): %s", err.message);
        free(row);
        st = fvlm_image_preprocess(px, 1, FASTVLM_MAX_IMAGE_SIDE + 1, 3, 64, pad, 1.0f / 255,
                                   mean, std, out, &err);
        if (st != FASTVLM_ERR_IMAGE || !strstr(err.message, "1x65537") ||
            !strstr(err.message, "FASTVLM_MAX_IMAGE_SIDE"))
            FAIL("1x65537 image: %s '%s'", fastvlm_status_str(st), err.message);
    }
    /* 1x1 works: a constant image stays constant through the bicubic upscale */
    st = fvlm_image_preprocess(px, 1, 1, 3, 64, pad, 1.0f / 255, mean, std, out, &err);
    if (st != FASTVLM_OK) {
        FAIL("1x1 image: %s", err.message);
    } else {
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 64 * 64; i++)
                if (out[c * 64 * 64 + i] != (float)px[c] * (1.0f / 255)) {
                    FAIL("1x1 image: channel %d pixel %d = %g", c, i, out[c * 64 * 64 + i]);
                    c = 3;
                    break;
                }
    }
    free(out);
}

int main(void)
{
    fvlm_pool *pool1 = fvlm_pool_new(1), *pool3 = fvlm_pool_new(3);
    if (!pool1 || !pool3) {
        fprintf(stderr, "FAIL: thread pools\n");
        return 1;
    }
    test_forward(pool1, pool3);
    test_load_errors();
    test_preprocess_limits();
    fvlm_pool_free(pool1);
    fvlm_pool_free(pool3);
    if (failures) {
        fprintf(stderr, "test_vision_engine: %d failures\n", failures);
        return 1;
    }
    printf("test_vision_engine: OK\n");
    return 0;
}
