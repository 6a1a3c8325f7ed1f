/*
 * gguf_writer.c — the tests' small GGUF writer (see gguf_writer.h). Test code only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "gguf_writer: out of memory\n");
        abort();
    }
    return q;
}

void gw_bytes(gw_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_le(gw_buf *b, uint64_t v, int n)
{
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    gw_bytes(b, t, (size_t)n);
}

void gw_u8(gw_buf *b, uint8_t v) { put_le(b, v, 1); }
void gw_u16(gw_buf *b, uint16_t v) { put_le(b, v, 2); }
void gw_u32(gw_buf *b, uint32_t v) { put_le(b, v, 4); }
void gw_u64(gw_buf *b, uint64_t v) { put_le(b, v, 8); }

void gw_f32(gw_buf *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    gw_u32(b, u);
}

void gw_f64(gw_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    gw_u64(b, u);
}

void gw_strn(gw_buf *b, const char *s, size_t n)
{
    gw_u64(b, n);
    gw_bytes(b, s, n);
}

void gw_str(gw_buf *b, const char *s) { gw_strn(b, s, strlen(s)); }

void gw_pad(gw_buf *b, size_t align)
{
    static const uint8_t zero[1] = {0};
    while (b->len % align)
        gw_bytes(b, zero, 1);
}

void gw_buf_free(gw_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void gw_init(gw *w, uint32_t version)
{
    memset(w, 0, sizeof *w);
    w->version = version;
    w->alignment = 32;
}

void gw_free(gw *w) { gw_buf_free(&w->kv); }

void gw_key(gw *w, const char *key, uint32_t type)
{
    gw_str(&w->kv, key);
    gw_u32(&w->kv, type);
    w->n_kv++;
}

void gw_set_alignment(gw *w, uint32_t a)
{
    gw_key(w, "general.alignment", GW_U32);
    gw_u32(&w->kv, a);
    w->alignment = a;
}

void gw_kv_u8(gw *w, const char *k, uint8_t v) { gw_key(w, k, GW_U8); gw_u8(&w->kv, v); }
void gw_kv_i8(gw *w, const char *k, int8_t v) { gw_key(w, k, GW_I8); gw_u8(&w->kv, (uint8_t)v); }
void gw_kv_u16(gw *w, const char *k, uint16_t v) { gw_key(w, k, GW_U16); gw_u16(&w->kv, v); }
void gw_kv_i16(gw *w, const char *k, int16_t v) { gw_key(w, k, GW_I16); gw_u16(&w->kv, (uint16_t)v); }
void gw_kv_u32(gw *w, const char *k, uint32_t v) { gw_key(w, k, GW_U32); gw_u32(&w->kv, v); }
void gw_kv_i32(gw *w, const char *k, int32_t v) { gw_key(w, k, GW_I32); gw_u32(&w->kv, (uint32_t)v); }
void gw_kv_f32(gw *w, const char *k, float v) { gw_key(w, k, GW_F32); gw_f32(&w->kv, v); }
void gw_kv_bool(gw *w, const char *k, bool v) { gw_key(w, k, GW_BOOL); gw_u8(&w->kv, v ? 1 : 0); }
void gw_kv_str(gw *w, const char *k, const char *v) { gw_key(w, k, GW_STRING); gw_str(&w->kv, v); }
void gw_kv_u64(gw *w, const char *k, uint64_t v) { gw_key(w, k, GW_U64); gw_u64(&w->kv, v); }
void gw_kv_i64(gw *w, const char *k, int64_t v) { gw_key(w, k, GW_I64); gw_u64(&w->kv, (uint64_t)v); }
void gw_kv_f64(gw *w, const char *k, double v) { gw_key(w, k, GW_F64); gw_f64(&w->kv, v); }

void gw_kv_arr(gw *w, const char *key, uint32_t elem_type, uint64_t n)
{
    gw_key(w, key, GW_ARRAY);
    gw_u32(&w->kv, elem_type);
    gw_u64(&w->kv, n);
}

void gw_add_tensor(gw *w, const char *name, uint32_t type, uint32_t n_dims,
                   const uint64_t *ne, const void *data, size_t nbytes)
{
    gw_tensor *t;
    if (w->n_tensors >= GW_MAX_TENSORS) {
        fprintf(stderr, "gguf_writer: too many tensors\n");
        abort();
    }
    t = &w->t[w->n_tensors++];
    t->name = name;
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < 4; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
}

uint8_t *gw_finish(const gw *w, size_t *size, size_t *info_off)
{
    gw_buf b = {0};
    uint64_t rel = 0;

    gw_bytes(&b, "GGUF", 4);
    gw_u32(&b, w->version);
    gw_u64(&b, (uint64_t)w->n_tensors);
    gw_u64(&b, w->n_kv);
    gw_bytes(&b, w->kv.p, w->kv.len);
    for (int i = 0; i < w->n_tensors; i++) {
        const gw_tensor *t = &w->t[i];
        if (info_off)
            info_off[i] = b.len;
        gw_str(&b, t->name);
        gw_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            gw_u64(&b, t->ne[d]);
        gw_u32(&b, t->type);
        gw_u64(&b, rel);
        rel += t->nbytes;
        rel = (rel + w->alignment - 1) / w->alignment * w->alignment;
    }
    if (w->n_tensors)
        gw_pad(&b, w->alignment);
    for (int i = 0; i < w->n_tensors; i++) {
        if (i)
            gw_pad(&b, w->alignment);
        gw_bytes(&b, w->t[i].data, w->t[i].nbytes);
    }
    *size = b.len;
    return b.p;
}
