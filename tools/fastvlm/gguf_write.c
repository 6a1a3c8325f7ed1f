/*
 * gguf_write.c — the GGUF v3 writer of the `fastvlm` tools (see gguf_write.h).
 *
 * Values are encoded byte by byte in little-endian order whatever the host. Metadata is
 * re-serialized from the reader's typed accessors (so a copied entry is exactly the value
 * the engine reads), never by copying raw bytes out of the input file.
 * Not here: choosing tensor types or converting data (cmd_quantize.c).
 */
#include <stdlib.h>
#include <string.h>

#include "gguf_write.h"

#define GGUF_MAGIC 0x46554747u   /* "GGUF" little-endian */
#define GGUF_VERSION 3u

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool failed;                 /* sticky out-of-memory flag */
} wbuf;

typedef struct wtensor {
    char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[4];
    size_t nbytes;
    uint64_t offset;             /* in the data section */
} wtensor;

struct gguf_writer {
    size_t alignment;
    uint64_t n_kv;
    wbuf kv;
    wtensor *t;
    size_t n_t, cap_t;
    uint64_t data_size;          /* running layout of the data section */
    size_t next;                 /* next tensor whose data is expected */
};

/* ---- buffer primitives ------------------------------------------------------------------- */

static void put(wbuf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (n > SIZE_MAX - b->len) {
        b->failed = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        uint8_t *np;
        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_le(wbuf *b, uint64_t v, int nbytes)
{
    uint8_t x[8];
    for (int i = 0; i < nbytes; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, (size_t)nbytes);
}

static void put_str(wbuf *b, const char *s, size_t len)
{
    put_le(b, len, 8);
    put(b, s, len);
}

static void put_f32(wbuf *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_le(b, u, 4);
}

static void put_f64(wbuf *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put_le(b, u, 8);
}

/* Bytes of one scalar of a numeric GGUF type (0 for string/array). */
static int scalar_size(fvlm_gguf_type t)
{
    switch (t) {
    case FVLM_GGUF_UINT8: case FVLM_GGUF_INT8: case FVLM_GGUF_BOOL: return 1;
    case FVLM_GGUF_UINT16: case FVLM_GGUF_INT16: return 2;
    case FVLM_GGUF_UINT32: case FVLM_GGUF_INT32: case FVLM_GGUF_FLOAT32: return 4;
    case FVLM_GGUF_UINT64: case FVLM_GGUF_INT64: case FVLM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Encodes one numeric value of type t given as int64 (integers, bool) or double (floats). */
static void put_num(wbuf *b, fvlm_gguf_type t, int64_t iv, double dv)
{
    if (t == FVLM_GGUF_FLOAT32)
        put_f32(b, (float)dv);
    else if (t == FVLM_GGUF_FLOAT64)
        put_f64(b, dv);
    else
        put_le(b, (uint64_t)iv, scalar_size(t));
}

/* ---- writer -------------------------------------------------------------------------------- */

gguf_writer *gguf_writer_new(size_t alignment)
{
    gguf_writer *w;
    if (alignment == 0 || (alignment & (alignment - 1)))
        return NULL;
    w = calloc(1, sizeof *w);
    if (w)
        w->alignment = alignment;
    return w;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->t);
    free(w->kv.p);
    free(w);
}

static void key(gguf_writer *w, const char *k, fvlm_gguf_type t)
{
    put_str(&w->kv, k, strlen(k));
    put_le(&w->kv, (uint32_t)t, 4);
    w->n_kv++;
}

bool gguf_writer_kv_u32(gguf_writer *w, const char *k, uint32_t v)
{
    key(w, k, FVLM_GGUF_UINT32);
    put_le(&w->kv, v, 4);
    return !w->kv.failed;
}

bool gguf_writer_kv_str(gguf_writer *w, const char *k, const char *s, size_t len)
{
    key(w, k, FVLM_GGUF_STRING);
    put_str(&w->kv, s, len);
    return !w->kv.failed;
}

/* Reads scalar entry i (or array element j when is_arr) of numeric type t. */
static bool read_num(const fvlm_gguf *g, int64_t i, bool is_arr, uint64_t j, fvlm_gguf_type t,
                     int64_t *iv, double *dv)
{
    *iv = 0;
    *dv = 0.0;
    if (t == FVLM_GGUF_FLOAT32 || t == FVLM_GGUF_FLOAT64)
        return is_arr ? fvlm_gguf_arr_get_f64(g, i, j, dv) : fvlm_gguf_get_f64(g, i, dv);
    if (t == FVLM_GGUF_UINT64 && !is_arr) {
        uint64_t u;
        if (!fvlm_gguf_get_u64(g, i, &u))
            return false;
        *iv = (int64_t)u;   /* bit pattern preserved by put_le */
        return true;
    }
    if (t == FVLM_GGUF_BOOL && !is_arr) {
        bool b;
        if (!fvlm_gguf_get_bool(g, i, &b))
            return false;
        *iv = b;
        return true;
    }
    /* arrays of u64 above INT64_MAX cannot be read back through the i64 accessor: they
     * fail here and the caller reports it (no known model file has one). */
    return is_arr ? fvlm_gguf_arr_get_i64(g, i, j, iv) : fvlm_gguf_get_i64(g, i, iv);
}

bool gguf_writer_kv_copy(gguf_writer *w, const fvlm_gguf *g, int64_t i, char *err_msg,
                         size_t err_len)
{
    const fvlm_gguf_str name = fvlm_gguf_key_name(g, i);
    const fvlm_gguf_type t = fvlm_gguf_kv_type(g, i);
    wbuf *b = &w->kv;

    put_str(b, name.ptr, (size_t)name.len);
    put_le(b, (uint32_t)t, 4);
    w->n_kv++;
    if (t == FVLM_GGUF_STRING) {
        fvlm_gguf_str s;
        if (!fvlm_gguf_get_str(g, i, &s))
            goto bad;
        put_str(b, s.ptr, (size_t)s.len);
    } else if (t == FVLM_GGUF_ARRAY) {
        const fvlm_gguf_type at = fvlm_gguf_arr_type(g, i);
        const uint64_t n = fvlm_gguf_arr_n(g, i);
        put_le(b, (uint32_t)at, 4);
        put_le(b, n, 8);
        for (uint64_t j = 0; j < n && !b->failed; j++) {
            if (at == FVLM_GGUF_STRING) {
                fvlm_gguf_str s;
                if (!fvlm_gguf_arr_get_str(g, i, j, &s))
                    goto bad;
                put_str(b, s.ptr, (size_t)s.len);
            } else {
                int64_t iv;
                double dv;
                if (scalar_size(at) == 0 || !read_num(g, i, true, j, at, &iv, &dv))
                    goto bad;
                put_num(b, at, iv, dv);
            }
        }
    } else {
        int64_t iv;
        double dv;
        if (scalar_size(t) == 0 || !read_num(g, i, false, 0, t, &iv, &dv))
            goto bad;
        put_num(b, t, iv, dv);
    }
    if (b->failed) {
        snprintf(err_msg, err_len, "out of memory copying metadata");
        return false;
    }
    return true;
bad:
    snprintf(err_msg, err_len, "metadata key '%.*s' (type %d) cannot be copied exactly",
             (int)(name.len > 200 ? 200 : name.len), name.ptr, (int)t);
    return false;
}

bool gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                            const int64_t *ne, size_t nbytes)
{
    wtensor *t;
    if (n_dims < 1 || n_dims > 4)
        return false;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 256;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt)
            return false;
        w->t = nt;
        w->cap_t = cap;
    }
    t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name)
        return false;
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->ne[d] = ne[d];
    t->nbytes = nbytes;
    t->offset = w->data_size;
    w->data_size += ((uint64_t)nbytes + w->alignment - 1) / w->alignment * w->alignment;
    w->n_t++;
    return true;
}

static bool write_zeros(FILE *f, size_t n)
{
    static const uint8_t z[64];
    while (n > 0) {
        size_t k = n < sizeof z ? n : sizeof z;
        if (fwrite(z, 1, k, f) != k)
            return false;
        n -= k;
    }
    return true;
}

bool gguf_writer_begin(gguf_writer *w, FILE *f)
{
    wbuf h = {0};
    bool ok;

    put_le(&h, GGUF_MAGIC, 4);
    put_le(&h, GGUF_VERSION, 4);
    put_le(&h, w->n_t, 8);
    put_le(&h, w->n_kv, 8);
    put(&h, w->kv.p, w->kv.len);
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_le(&h, (uint32_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++)
            put_le(&h, (uint64_t)t->ne[d], 8);
        put_le(&h, t->type, 4);
        put_le(&h, t->offset, 8);
    }
    ok = !h.failed && !w->kv.failed && fwrite(h.p, 1, h.len, f) == h.len &&
         write_zeros(f, (w->alignment - h.len % w->alignment) % w->alignment);
    free(h.p);
    w->next = 0;
    return ok;
}

bool gguf_writer_tensor_data(gguf_writer *w, FILE *f, const void *data, size_t nbytes)
{
    const wtensor *t;
    if (w->next >= w->n_t)
        return false;
    t = &w->t[w->next++];
    if (nbytes != t->nbytes)
        return false;
    return fwrite(data, 1, nbytes, f) == nbytes &&
           write_zeros(f, (w->alignment - nbytes % w->alignment) % w->alignment);
}

bool gguf_writer_end(gguf_writer *w)
{
    return w->next == w->n_t;
}
