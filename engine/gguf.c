/*
 * gguf.c — reader for GGUF v2/v3 files (the container of llama.cpp and of our mmproj).
 *
 * Layout (all little-endian, no padding except before the data section):
 *     "GGUF"  u32 version  u64 n_tensors  u64 n_kv
 *     n_kv ×      { str key, u32 value_type, value }
 *     n_tensors × { str name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *     padding to `general.alignment` (default 32), then the data section; each tensor's
 *     offset is relative to the data section and a multiple of the alignment.
 *   str   = u64 length + bytes (no NUL);  array = u32 elem_type, u64 count, elements.
 *
 * Everything is validated once, in fvlm_gguf_open*(): every read is checked against the
 * bytes left, every count against what the rest of the file could possibly hold (before
 * anything is allocated from it), every product for overflow. The accessors then only
 * check their index arguments. Values are read byte by byte (little-endian), never through
 * a cast pointer, because nothing inside the header is aligned.
 *
 * Not here: what the keys and tensors mean (llm.c, vision.c, tokenizer.c), writing GGUF
 * (the converter is Python; tests carry their own small writer).
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "gguf.h"

#define GGUF_MAX_KV        (1u << 20)
#define GGUF_MAX_TENSORS   (1u << 20)
#define GGUF_MAX_DIMS      4
#define GGUF_DEFAULT_ALIGN 32u
#define GGUF_HEADER_BYTES  24u        /* magic, version, n_tensors, n_kv */
#define GGUF_MIN_KV_BYTES  13u        /* key length (8) + type (4) + smallest value (1) */
#define GGUF_MIN_TI_BYTES  24u        /* name length (8) + n_dims (4) + type (4) + offset (8) */
#define READ_BUF_ALIGN     4096u      /* the read-into-memory path aligns like a mapping */
#define SHOWN_NAME         64         /* bytes of a key/tensor name quoted in a message */
#define NAME_BUF           (SHOWN_NAME * 4 + 8)

typedef struct gguf_kv {
    uint64_t key_off, key_len;   /* key bytes in the file */
    uint64_t val_off;            /* scalar value, string bytes, or first array element */
    uint64_t n;                  /* string length, or array element count */
    uint64_t *str_off;           /* string arrays: file offset of element j's u64 length */
    uint32_t type;               /* fvlm_gguf_type */
    uint32_t arr_type;           /* element type of an array; TYPE_COUNT otherwise */
} gguf_kv;

typedef struct gguf_ti {
    uint64_t name_off, name_len; /* name bytes in the file */
    const char *name;            /* NUL-terminated copy in g->names */
    fvlm_type type;
    int32_t n_dims;
    int64_t ne[4];               /* unused dims are 1 */
    uint64_t offset;             /* absolute file offset of the data */
    size_t nbytes;
} gguf_ti;

/* A sorted index of names for lookups: a sort, not a hash table, so that no crafted set of
 * names can make opening slow (O(n log n) always, n <= 2^20). */
typedef struct name_ref {
    const uint8_t *p;
    uint64_t len;
    int64_t idx;                 /* entry index */
} name_ref;

typedef struct name_index {
    name_ref *ref;               /* [n], ordered by (bytes, length, idx) */
    int64_t n;
} name_index;

struct fvlm_gguf {
    char *path;                  /* the name given at open (for messages) */
    const uint8_t *data;         /* the whole file */
    size_t size;
    void *map;                   /* mmap'ed region, or NULL */
    void *owned;                 /* buffer read by us, or NULL */
    uint32_t version;
    size_t alignment;
    uint64_t data_offset;        /* start of the data section */
    int64_t n_kv;
    gguf_kv *kv;                 /* [n_kv] */
    int64_t n_tensors;
    gguf_ti *ti;                 /* [n_tensors] */
    char *names;                 /* all tensor names, NUL-terminated, back to back */
    name_index kv_idx, ti_idx;
};

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t le_load(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Bytes of one scalar value of type t; 0 for STRING / ARRAY / unknown. */
static unsigned scalar_size(uint32_t t)
{
    switch (t) {
    case FVLM_GGUF_UINT8: case FVLM_GGUF_INT8: case FVLM_GGUF_BOOL: return 1;
    case FVLM_GGUF_UINT16: case FVLM_GGUF_INT16: return 2;
    case FVLM_GGUF_UINT32: case FVLM_GGUF_INT32: case FVLM_GGUF_FLOAT32: return 4;
    case FVLM_GGUF_UINT64: case FVLM_GGUF_INT64: case FVLM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *value_type_name(uint32_t t)
{
    static const char *const names[FVLM_GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
        "string", "array", "uint64", "int64", "float64",
    };
    return t < FVLM_GGUF_TYPE_COUNT ? names[t] : "unknown";
}

/* Quotes up to SHOWN_NAME bytes of a name for a message: printable ASCII as is, the rest
 * as \xHH, "..." when cut. `buf` has NAME_BUF bytes. */
static const char *esc(const uint8_t *p, uint64_t len, char *buf)
{
    size_t o = 0;
    uint64_t n = len < SHOWN_NAME ? len : SHOWN_NAME;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            buf[o++] = (char)c;
        } else {
            snprintf(buf + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    if (n < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static int name_cmp(const uint8_t *a, uint64_t alen, const uint8_t *b, uint64_t blen)
{
    int c = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int name_ref_cmp(const void *pa, const void *pb)
{
    const name_ref *a = pa, *b = pb;
    int c = name_cmp(a->p, a->len, b->p, b->len);
    if (c)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Builds the index over n names; returns false on out-of-memory. Duplicates end up
 * adjacent: *dup_a < *dup_b receive the pair whose later entry comes first in the file
 * (-1 if there is none). */
static bool index_build(name_index *ix, int64_t n, const fvlm_gguf *g, bool tensors,
                        int64_t *dup_a, int64_t *dup_b)
{
    ix->ref = malloc((size_t)(n ? n : 1) * sizeof *ix->ref);
    if (!ix->ref)
        return false;
    ix->n = n;
    for (int64_t i = 0; i < n; i++) {
        if (tensors) {
            ix->ref[i].p = g->data + g->ti[i].name_off;
            ix->ref[i].len = g->ti[i].name_len;
        } else {
            ix->ref[i].p = g->data + g->kv[i].key_off;
            ix->ref[i].len = g->kv[i].key_len;
        }
        ix->ref[i].idx = i;
    }
    qsort(ix->ref, (size_t)n, sizeof *ix->ref, name_ref_cmp);
    *dup_a = *dup_b = -1;
    for (int64_t i = 1; i < n; i++) {
        const name_ref *a = &ix->ref[i - 1], *b = &ix->ref[i];
        if (!name_cmp(a->p, a->len, b->p, b->len) && (*dup_b < 0 || b->idx < *dup_b)) {
            *dup_a = a->idx;
            *dup_b = b->idx;
        }
    }
    return true;
}

/* Finds `name` (len bytes); returns the entry index or -1. */
static int64_t index_find(const name_index *ix, const uint8_t *name, uint64_t len)
{
    int64_t lo = 0, hi = ix->n;            /* search [lo, hi) */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(ix->ref[mid].p, ix->ref[mid].len, name, len);
        if (c == 0)
            return ix->ref[mid].idx;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- the parser ----------------------------------------------------------------------- */

typedef struct rd {
    fvlm_gguf *g;
    size_t pos;
    fastvlm_error *err;
    char ctx[NAME_BUF + 64];     /* what is being read, for messages */
} rd;

static size_t rd_left(const rd *r)
{
    return r->g->size - r->pos;
}

static bool rd_need(rd *r, uint64_t n, const char *what)
{
    if (n <= rd_left(r))
        return true;
    fvlm_set_error(r->err, FASTVLM_ERR_FORMAT,
                   "%s: truncated in %s: %s at offset %zu needs %" PRIu64
                   " bytes, only %zu left (file is %zu bytes)",
                   r->g->path, r->ctx, what, r->pos, n, rd_left(r), r->g->size);
    return false;
}

static bool rd_uint(rd *r, unsigned n, const char *what, uint64_t *out)
{
    if (!rd_need(r, n, what))
        return false;
    *out = le_load(r->g->data + r->pos, n);
    r->pos += n;
    return true;
}

static bool rd_u32(rd *r, const char *what, uint32_t *out)
{
    uint64_t v;
    if (!rd_uint(r, 4, what, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

/* A string: u64 length then bytes; on success *off is the offset of the bytes. */
static bool rd_str(rd *r, const char *what, uint64_t *off, uint64_t *len)
{
    char w[96];
    if (!rd_uint(r, 8, what, len))
        return false;
    snprintf(w, sizeof w, "%s (%" PRIu64 " bytes)", what, *len);
    if (!rd_need(r, *len, w))
        return false;
    *off = r->pos;
    r->pos += (size_t)*len;
    return true;
}

static fastvlm_status fmt_err(rd *r, fastvlm_status st, const char *fmt, ...) FVLM_PRINTF(3, 4);

static fastvlm_status fmt_err(rd *r, fastvlm_status st, const char *fmt, ...)
{
    char msg[FASTVLM_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fvlm_set_error(r->err, st, "%s: %s", r->g->path, msg);
}

static fastvlm_status parse_kv(rd *r, int64_t i)
{
    fvlm_gguf *g = r->g;
    gguf_kv *kv = &g->kv[i];
    char kname[NAME_BUF];

    snprintf(r->ctx, sizeof r->ctx, "metadata entry %" PRId64, i);
    if (!rd_str(r, "the key", &kv->key_off, &kv->key_len))
        return FASTVLM_ERR_FORMAT;
    esc(g->data + kv->key_off, kv->key_len, kname);
    snprintf(r->ctx, sizeof r->ctx, "metadata entry %" PRId64 " '%s'", i, kname);
    kv->arr_type = FVLM_GGUF_TYPE_COUNT;
    if (!rd_u32(r, "the value type", &kv->type))
        return FASTVLM_ERR_FORMAT;
    if (kv->type >= FVLM_GGUF_TYPE_COUNT)
        return fmt_err(r, FASTVLM_ERR_FORMAT, "metadata key '%s' has unknown value type %" PRIu32,
                       kname, kv->type);

    if (kv->type == FVLM_GGUF_STRING) {
        if (!rd_str(r, "the string value", &kv->val_off, &kv->n))
            return FASTVLM_ERR_FORMAT;
    } else if (kv->type == FVLM_GGUF_ARRAY) {
        unsigned es;
        if (!rd_u32(r, "the array element type", &kv->arr_type) ||
            !rd_uint(r, 8, "the array length", &kv->n))
            return FASTVLM_ERR_FORMAT;
        if (kv->arr_type == FVLM_GGUF_ARRAY)
            return fmt_err(r, FASTVLM_ERR_UNSUPPORTED,
                           "metadata key '%s' is an array of arrays, which this reader does "
                           "not support", kname);
        if (kv->arr_type >= FVLM_GGUF_TYPE_COUNT)
            return fmt_err(r, FASTVLM_ERR_FORMAT,
                           "metadata key '%s' is an array of unknown type %" PRIu32,
                           kname, kv->arr_type);
        kv->val_off = r->pos;
        if (kv->arr_type == FVLM_GGUF_STRING) {
            /* each element is at least its 8-byte length: bound the count before the
             * index of element offsets is allocated */
            if (kv->n > rd_left(r) / 8)
                return fmt_err(r, FASTVLM_ERR_FORMAT,
                               "metadata key '%s': array of %" PRIu64 " strings cannot fit in "
                               "the %zu bytes left at offset %zu", kname, kv->n, rd_left(r),
                               r->pos);
            kv->str_off = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->str_off);
            if (!kv->str_off)
                return fmt_err(r, FASTVLM_ERR_NOMEM, "out of memory indexing %" PRIu64
                               " strings of metadata key '%s'", kv->n, kname);
            for (uint64_t j = 0; j < kv->n; j++) {
                uint64_t off, len;
                kv->str_off[j] = r->pos;
                if (!rd_str(r, "an array string", &off, &len))
                    return FASTVLM_ERR_FORMAT;
            }
        } else {
            es = scalar_size(kv->arr_type);
            if (kv->n > rd_left(r) / es)
                return fmt_err(r, FASTVLM_ERR_FORMAT,
                               "metadata key '%s': array of %" PRIu64 " %s (%u bytes each) "
                               "extends past the end of the file (%zu bytes left at offset %zu)",
                               kname, kv->n, value_type_name(kv->arr_type), es, rd_left(r),
                               r->pos);
            r->pos += (size_t)(kv->n * es);
        }
    } else {
        unsigned es = scalar_size(kv->type);
        if (!rd_need(r, es, "the value"))
            return FASTVLM_ERR_FORMAT;
        kv->val_off = r->pos;
        r->pos += es;
    }
    return FASTVLM_OK;
}

static fastvlm_status parse_tensor_info(rd *r, int64_t i)
{
    fvlm_gguf *g = r->g;
    gguf_ti *t = &g->ti[i];
    const fvlm_type_traits *tt;
    char tname[NAME_BUF];
    uint32_t n_dims, type;
    uint64_t nz = 1, row, nrows;   /* nz: product of the non-zero dims */

    snprintf(r->ctx, sizeof r->ctx, "tensor info %" PRId64, i);
    if (!rd_str(r, "the name", &t->name_off, &t->name_len))
        return FASTVLM_ERR_FORMAT;
    esc(g->data + t->name_off, t->name_len, tname);
    snprintf(r->ctx, sizeof r->ctx, "tensor info %" PRId64 " '%s'", i, tname);
    if (memchr(g->data + t->name_off, 0, (size_t)t->name_len))
        return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor %" PRId64 " name '%s' contains a NUL byte",
                       i, tname);

    if (!rd_u32(r, "n_dims", &n_dims))
        return FASTVLM_ERR_FORMAT;
    if (n_dims > GGUF_MAX_DIMS)
        return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' has %" PRIu32
                       " dimensions (at most %d)", tname, n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int32_t)n_dims;
    for (int d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t v;
        if (!rd_uint(r, 8, "a dimension", &v))
            return FASTVLM_ERR_FORMAT;
        if (v > (uint64_t)INT64_MAX)
            return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' dimension %" PRIu32 " is %" PRIu64
                           " (over 2^63-1)", tname, d, v);
        t->ne[d] = (int64_t)v;
        /* checked over the non-zero dims so that every sub-product (rows, elements) fits
         * int64 even when another dim is 0 */
        if (v && nz > (uint64_t)INT64_MAX / v)
            return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' element count overflows int64 "
                           "(dimension %" PRIu32 " is %" PRIu64 ")", tname, d, v);
        if (v)
            nz *= v;
    }
    if (!rd_u32(r, "the type", &type) || !rd_uint(r, 8, "the data offset", &t->offset))
        return FASTVLM_ERR_FORMAT;
    tt = fvlm_type_get_traits(type);
    if (!tt)
        return fmt_err(r, FASTVLM_ERR_UNSUPPORTED, "tensor '%s' has type id %" PRIu32
                       ", which this reader does not know", tname, type);
    t->type = (fvlm_type)type;
    if (t->ne[0] % tt->block_size)
        return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' of type %s has a row of %" PRId64
                       " elements, not a multiple of the block size %" PRIu32,
                       tname, tt->name, t->ne[0], tt->block_size);
    if ((uint64_t)t->ne[0] / tt->block_size > SIZE_MAX / tt->type_size)
        return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' row of %" PRId64 " elements overflows",
                       tname, t->ne[0]);
    row = (uint64_t)t->ne[0] / tt->block_size * tt->type_size;
    nrows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];   /* <= nz */
    if (nrows && row > SIZE_MAX / nrows)
        return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' size overflows (%" PRIu64 " rows of %"
                       PRIu64 " bytes)", tname, nrows, row);
    t->nbytes = (size_t)(row * nrows);
    return FASTVLM_OK;
}

/* Checks tensor i's data range once the data section start is known; makes offset absolute. */
static fastvlm_status check_tensor_data(rd *r, int64_t i)
{
    fvlm_gguf *g = r->g;
    gguf_ti *t = &g->ti[i];
    char tname[NAME_BUF];
    uint64_t rel = t->offset;

    esc(g->data + t->name_off, t->name_len, tname);
    if (rel % g->alignment)
        return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' offset %" PRIu64
                       " is not a multiple of the alignment %zu", tname, rel, g->alignment);
    if (g->data_offset > g->size || rel > g->size - g->data_offset ||
        t->nbytes > g->size - g->data_offset - rel) {
        if (rel > UINT64_MAX - g->data_offset)   /* the absolute offset is not even a number */
            return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' data [data section offset %" PRIu64
                           ", %zu bytes] extends past the end of the file (%zu bytes)", tname,
                           rel, t->nbytes, g->size);
        return fmt_err(r, FASTVLM_ERR_FORMAT, "tensor '%s' data [offset %" PRIu64 ", %zu bytes] "
                       "extends past the end of the file (%zu bytes)", tname,
                       g->data_offset + rel, t->nbytes, g->size);
    }
    t->offset = g->data_offset + rel;
    return FASTVLM_OK;
}

static fastvlm_status parse(fvlm_gguf *g, fastvlm_error *err)
{
    rd r = {.g = g, .pos = 0, .err = err};
    uint64_t n_tensors, n_kv, max_kv;
    uint32_t version;
    fastvlm_status st;
    size_t names_len = 0;
    char *np;
    int64_t ai, dup_a, dup_b;

    snprintf(r.ctx, sizeof r.ctx, "the header");
    if (g->size < 4)
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "not a GGUF file: only %zu bytes", g->size);
    if (memcmp(g->data, "GGUF", 4))
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "not a GGUF file: bad magic %02x %02x %02x %02x "
                       "(expected \"GGUF\")", g->data[0], g->data[1], g->data[2], g->data[3]);
    r.pos = 4;
    if (!rd_u32(&r, "the version", &version))
        return FASTVLM_ERR_FORMAT;
    g->version = version;
    if (version == 1)
        return fmt_err(&r, FASTVLM_ERR_UNSUPPORTED, "GGUF version 1 is not supported "
                       "(re-convert the model: this reader knows versions 2 and 3)");
    if ((version & 0xffffu) == 0 && version != 0)
        return fmt_err(&r, FASTVLM_ERR_UNSUPPORTED, "GGUF version field 0x%08" PRIx32 " looks "
                       "byte-swapped: big-endian files are not supported", version);
    if (version == 0)
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "GGUF version 0 is invalid");
    if (version > 3)
        return fmt_err(&r, FASTVLM_ERR_UNSUPPORTED, "GGUF version %" PRIu32 " is not supported "
                       "(this reader knows versions 2 and 3)", version);
    if (!rd_uint(&r, 8, "the tensor count", &n_tensors) ||
        !rd_uint(&r, 8, "the metadata count", &n_kv))
        return FASTVLM_ERR_FORMAT;

    /* Counts: over the hard limits, or more entries than the rest of the file could hold
     * at their smallest, is an error before anything is allocated from them. */
    if (n_kv > GGUF_MAX_KV)
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "metadata count %" PRIu64 " is over the limit %u",
                       n_kv, GGUF_MAX_KV);
    if (n_tensors > GGUF_MAX_TENSORS)
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "tensor count %" PRIu64 " is over the limit %u",
                       n_tensors, GGUF_MAX_TENSORS);
    max_kv = rd_left(&r) / GGUF_MIN_KV_BYTES;
    if (n_kv > max_kv || n_tensors > (rd_left(&r) - n_kv * GGUF_MIN_KV_BYTES) / GGUF_MIN_TI_BYTES)
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "truncated: %" PRIu64 " metadata entries and %"
                       PRIu64 " tensor infos cannot fit in the %zu bytes after the header",
                       n_kv, n_tensors, rd_left(&r));
    g->n_kv = (int64_t)n_kv;
    g->n_tensors = (int64_t)n_tensors;
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->ti = calloc(n_tensors ? n_tensors : 1, sizeof *g->ti);
    if (!g->kv || !g->ti)
        return fmt_err(&r, FASTVLM_ERR_NOMEM, "out of memory for %" PRIu64 " metadata entries "
                       "and %" PRIu64 " tensors", n_kv, n_tensors);

    for (int64_t i = 0; i < g->n_kv; i++)
        if ((st = parse_kv(&r, i)) != FASTVLM_OK)
            return st;
    if (!index_build(&g->kv_idx, g->n_kv, g, false, &dup_a, &dup_b))
        return fmt_err(&r, FASTVLM_ERR_NOMEM, "out of memory indexing %" PRIu64 " keys", n_kv);
    if (dup_b >= 0) {
        char kname[NAME_BUF];
        esc(g->data + g->kv[dup_b].key_off, g->kv[dup_b].key_len, kname);
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "duplicate metadata key '%s' (entries %" PRId64
                       " and %" PRId64 ")", kname, dup_a, dup_b);
    }

    g->alignment = GGUF_DEFAULT_ALIGN;
    ai = fvlm_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        uint64_t a;
        if (!fvlm_gguf_get_u64(g, ai, &a))
            return fmt_err(&r, FASTVLM_ERR_FORMAT, "general.alignment has type %s, expected an "
                           "unsigned integer", value_type_name(g->kv[ai].type));
        if (a == 0 || (a & (a - 1)) || a > ((uint64_t)1 << 30))
            return fmt_err(&r, FASTVLM_ERR_FORMAT, "general.alignment is %" PRIu64 ", must be a "
                           "power of two (at most 2^30)", a);
        g->alignment = (size_t)a;
    }

    for (int64_t i = 0; i < g->n_tensors; i++) {
        if ((st = parse_tensor_info(&r, i)) != FASTVLM_OK)
            return st;
        names_len += (size_t)g->ti[i].name_len + 1;   /* bounded by the file size */
    }
    if (!index_build(&g->ti_idx, g->n_tensors, g, true, &dup_a, &dup_b))
        return fmt_err(&r, FASTVLM_ERR_NOMEM, "out of memory indexing %" PRIu64 " tensors",
                       n_tensors);
    if (dup_b >= 0) {
        char tname[NAME_BUF];
        esc(g->data + g->ti[dup_b].name_off, g->ti[dup_b].name_len, tname);
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "duplicate tensor name '%s' (tensors %" PRId64
                       " and %" PRId64 ")", tname, dup_a, dup_b);
    }

    /* data section: the end of the header rounded up to the alignment */
    if ((uint64_t)r.pos > UINT64_MAX - g->alignment)
        return fmt_err(&r, FASTVLM_ERR_FORMAT, "header end %zu cannot be aligned", r.pos);
    g->data_offset = ((uint64_t)r.pos + g->alignment - 1) / g->alignment * g->alignment;
    snprintf(r.ctx, sizeof r.ctx, "the tensor data");
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((st = check_tensor_data(&r, i)) != FASTVLM_OK)
            return st;

    g->names = malloc(names_len ? names_len : 1);
    if (!g->names)
        return fmt_err(&r, FASTVLM_ERR_NOMEM, "out of memory for %zu bytes of tensor names",
                       names_len);
    np = g->names;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        gguf_ti *t = &g->ti[i];
        memcpy(np, g->data + t->name_off, (size_t)t->name_len);
        np[t->name_len] = '\0';
        t->name = np;
        np += t->name_len + 1;
    }
    return FASTVLM_OK;
}

/* ---- open / close ----------------------------------------------------------------------- */

static fvlm_gguf *gguf_new(const char *name)
{
    fvlm_gguf *g = calloc(1, sizeof *g);
    size_t n;
    if (!g)
        return NULL;
    if (!name)
        name = "<memory>";
    n = strlen(name);
    g->path = malloc(n + 1);
    if (!g->path) {
        free(g);
        return NULL;
    }
    memcpy(g->path, name, n + 1);
    g->alignment = GGUF_DEFAULT_ALIGN;
    return g;
}

static fastvlm_status finish_open(fvlm_gguf *g, fvlm_gguf **out, fastvlm_error *err)
{
    fastvlm_status st = parse(g, err);
    if (st != FASTVLM_OK) {
        fvlm_gguf_close(g);
        return st;
    }
    fvlm_clear_error(err);
    *out = g;
    return FASTVLM_OK;
}

fastvlm_status fvlm_gguf_open_memory(const void *data, size_t size, const char *name,
                                     fvlm_gguf **out, fastvlm_error *err)
{
    fvlm_gguf *g;
    if (out)
        *out = NULL;
    if (!out || (!data && size))
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fvlm_gguf_open_memory: %s",
                              out ? "data is NULL" : "out is NULL");
    if (!(g = gguf_new(name)))
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory",
                              name ? name : "<memory>");
    g->data = data ? data : (const uint8_t *)"";
    g->size = size;
    return finish_open(g, out, err);
}

fastvlm_status fvlm_gguf_open(const char *path, bool use_mmap, fvlm_gguf **out,
                              fastvlm_error *err)
{
    struct stat st;
    fvlm_gguf *g;
    size_t size;
    int fd;

    if (out)
        *out = NULL;
    if (!path || !out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fvlm_gguf_open: %s is NULL",
                              path ? "out" : "path");
    fd = open(path, O_RDONLY | O_CLOEXEC);   /* no leak into children of the pipeline */
    if (fd < 0)
        return fvlm_set_error(err, FASTVLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fvlm_set_error(err, FASTVLM_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fvlm_set_error(err, FASTVLM_ERR_IO, "%s: not a regular file", path);
    }
    if ((uintmax_t)st.st_size > SIZE_MAX - ((size_t)1 << 31)) {
        close(fd);
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: file too large (%jd bytes)", path,
                              (intmax_t)st.st_size);
    }
    size = (size_t)st.st_size;
    if (!(g = gguf_new(path))) {
        close(fd);
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory", path);
    }
    if (size == 0) {
        /* mmap cannot map 0 bytes; let the parser report the empty file */
        g->data = (const uint8_t *)"";
    } else if (use_mmap) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            fvlm_gguf_close(g);
            return fvlm_set_error(err, FASTVLM_ERR_IO, "%s: cannot mmap %zu bytes: %s", path,
                                  size, strerror(e));
        }
        g->map = m;
        g->data = m;
    } else {
        size_t got = 0;
        void *buf = NULL;
        size_t cap = (size + READ_BUF_ALIGN - 1) / READ_BUF_ALIGN * READ_BUF_ALIGN;
        if (posix_memalign(&buf, READ_BUF_ALIGN, cap) != 0) {
            close(fd);
            fvlm_gguf_close(g);
            return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: cannot allocate %zu bytes to read "
                                  "the file", path, size);
        }
        g->owned = buf;
        g->data = buf;
        while (got < size) {
            ssize_t n = read(fd, (char *)buf + got, size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                int e = n < 0 ? errno : 0;
                close(fd);
                fvlm_gguf_close(g);
                return fvlm_set_error(err, FASTVLM_ERR_IO, "%s: read failed after %zu of %zu "
                                      "bytes: %s", path, got, size,
                                      e ? strerror(e) : "unexpected end of file");
            }
            got += (size_t)n;
        }
    }
    close(fd);
    g->size = size;
    return finish_open(g, out, err);
}

void fvlm_gguf_close(fvlm_gguf *g)
{
    if (!g)
        return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].str_off);
    free(g->kv);
    free(g->ti);
    free(g->names);
    free(g->kv_idx.ref);
    free(g->ti_idx.ref);
    if (g->map)
        munmap(g->map, g->size);
    free(g->owned);
    free(g->path);
    free(g);
}

const char *fvlm_gguf_path(const fvlm_gguf *g) { return g ? g->path : ""; }
uint32_t fvlm_gguf_version(const fvlm_gguf *g) { return g ? g->version : 0; }
size_t fvlm_gguf_alignment(const fvlm_gguf *g) { return g ? g->alignment : 0; }
size_t fvlm_gguf_file_size(const fvlm_gguf *g) { return g ? g->size : 0; }
const uint8_t *fvlm_gguf_data(const fvlm_gguf *g) { return g ? g->data : NULL; }
size_t fvlm_gguf_data_offset(const fvlm_gguf *g) { return g ? (size_t)g->data_offset : 0; }

/* ---- metadata ------------------------------------------------------------------------------ */

static const gguf_kv *kv_at(const fvlm_gguf *g, int64_t i)
{
    return g && i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

int64_t fvlm_gguf_n_kv(const fvlm_gguf *g) { return g ? g->n_kv : 0; }

int64_t fvlm_gguf_find_key(const fvlm_gguf *g, const char *key)
{
    if (!g || !key)
        return -1;
    return index_find(&g->kv_idx, (const uint8_t *)key, strlen(key));
}

fvlm_gguf_str fvlm_gguf_key_name(const fvlm_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    fvlm_gguf_str s = {"", 0};
    if (kv) {
        s.ptr = (const char *)g->data + kv->key_off;
        s.len = kv->key_len;
    }
    return s;
}

fvlm_gguf_type fvlm_gguf_kv_type(const fvlm_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv ? (fvlm_gguf_type)kv->type : FVLM_GGUF_TYPE_COUNT;
}

/* One numeric value, classified so that each getter can decide what it accepts. */
typedef enum { NUM_UNSIGNED, NUM_SIGNED, NUM_FLOAT, NUM_BOOL, NUM_NONE } num_kind;
typedef struct {
    num_kind kind;
    uint64_t u;     /* NUM_UNSIGNED, NUM_BOOL (0/1) */
    int64_t i;      /* NUM_SIGNED */
    double f;       /* NUM_FLOAT */
} num;

static num num_load(const uint8_t *p, uint32_t type)
{
    num v = {NUM_NONE, 0, 0, 0.0};
    uint64_t raw = le_load(p, scalar_size(type));
    switch (type) {
    case FVLM_GGUF_UINT8: case FVLM_GGUF_UINT16: case FVLM_GGUF_UINT32: case FVLM_GGUF_UINT64:
        v.kind = NUM_UNSIGNED;
        v.u = raw;
        break;
    case FVLM_GGUF_INT8: v.kind = NUM_SIGNED; v.i = (int8_t)(uint8_t)raw; break;
    case FVLM_GGUF_INT16: v.kind = NUM_SIGNED; v.i = (int16_t)(uint16_t)raw; break;
    case FVLM_GGUF_INT32: v.kind = NUM_SIGNED; v.i = (int32_t)(uint32_t)raw; break;
    case FVLM_GGUF_INT64: v.kind = NUM_SIGNED; v.i = (int64_t)raw; break;
    case FVLM_GGUF_FLOAT32: {
        uint32_t b = (uint32_t)raw;
        float f;
        memcpy(&f, &b, sizeof f);
        v.kind = NUM_FLOAT;
        v.f = f;
        break;
    }
    case FVLM_GGUF_FLOAT64:
        v.kind = NUM_FLOAT;
        memcpy(&v.f, &raw, sizeof v.f);
        break;
    case FVLM_GGUF_BOOL:
        v.kind = NUM_BOOL;
        v.u = raw != 0;
        break;
    default:
        break;
    }
    return v;
}

static bool num_to_u64(num v, uint64_t *out)
{
    switch (v.kind) {
    case NUM_UNSIGNED: case NUM_BOOL: *out = v.u; return true;
    case NUM_SIGNED: if (v.i < 0) return false; *out = (uint64_t)v.i; return true;
    default: return false;
    }
}

static bool num_to_i64(num v, int64_t *out)
{
    switch (v.kind) {
    case NUM_UNSIGNED: case NUM_BOOL:
        if (v.u > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v.u;
        return true;
    case NUM_SIGNED: *out = v.i; return true;
    default: return false;
    }
}

static bool num_to_f64(num v, double *out)
{
    switch (v.kind) {
    case NUM_UNSIGNED: *out = (double)v.u; return true;
    case NUM_SIGNED: *out = (double)v.i; return true;
    case NUM_FLOAT: *out = v.f; return true;
    default: return false;
    }
}

static bool kv_num(const fvlm_gguf *g, int64_t i, num *v)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || !scalar_size(kv->type))
        return false;
    *v = num_load(g->data + kv->val_off, kv->type);
    return true;
}

bool fvlm_gguf_get_u64(const fvlm_gguf *g, int64_t i, uint64_t *out)
{
    num v;
    return kv_num(g, i, &v) && num_to_u64(v, out);
}

bool fvlm_gguf_get_i64(const fvlm_gguf *g, int64_t i, int64_t *out)
{
    num v;
    return kv_num(g, i, &v) && num_to_i64(v, out);
}

bool fvlm_gguf_get_f64(const fvlm_gguf *g, int64_t i, double *out)
{
    num v;
    return kv_num(g, i, &v) && num_to_f64(v, out);
}

bool fvlm_gguf_get_bool(const fvlm_gguf *g, int64_t i, bool *out)
{
    num v;
    if (!kv_num(g, i, &v) || v.kind != NUM_BOOL)
        return false;
    *out = v.u != 0;
    return true;
}

bool fvlm_gguf_get_str(const fvlm_gguf *g, int64_t i, fvlm_gguf_str *out)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != FVLM_GGUF_STRING)
        return false;
    out->ptr = (const char *)g->data + kv->val_off;
    out->len = kv->n;
    return true;
}

fvlm_gguf_type fvlm_gguf_arr_type(const fvlm_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == FVLM_GGUF_ARRAY ? (fvlm_gguf_type)kv->arr_type
                                              : FVLM_GGUF_TYPE_COUNT;
}

uint64_t fvlm_gguf_arr_n(const fvlm_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == FVLM_GGUF_ARRAY ? kv->n : 0;
}

static bool arr_num(const fvlm_gguf *g, int64_t i, uint64_t j, num *v)
{
    const gguf_kv *kv = kv_at(g, i);
    unsigned es;
    if (!kv || kv->type != FVLM_GGUF_ARRAY || j >= kv->n || !(es = scalar_size(kv->arr_type)))
        return false;
    *v = num_load(g->data + kv->val_off + j * es, kv->arr_type);
    return true;
}

bool fvlm_gguf_arr_get_i64(const fvlm_gguf *g, int64_t i, uint64_t j, int64_t *out)
{
    num v;
    return arr_num(g, i, j, &v) && num_to_i64(v, out);
}

bool fvlm_gguf_arr_get_f64(const fvlm_gguf *g, int64_t i, uint64_t j, double *out)
{
    num v;
    return arr_num(g, i, j, &v) && num_to_f64(v, out);
}

bool fvlm_gguf_arr_get_str(const fvlm_gguf *g, int64_t i, uint64_t j, fvlm_gguf_str *out)
{
    const gguf_kv *kv = kv_at(g, i);
    uint64_t off;
    if (!kv || kv->type != FVLM_GGUF_ARRAY || kv->arr_type != FVLM_GGUF_STRING || j >= kv->n)
        return false;
    off = kv->str_off[j];
    out->len = le_load(g->data + off, 8);
    out->ptr = (const char *)g->data + off + 8;
    return true;
}

bool fvlm_gguf_str_eq(fvlm_gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || !memcmp(s.ptr, c, n));
}

/* ---- req / opt helpers for loaders -------------------------------------------------------- */

static const char *kv_type_desc(const fvlm_gguf *g, int64_t i, char *buf, size_t cap)
{
    const gguf_kv *kv = &g->kv[i];
    if (kv->type == FVLM_GGUF_ARRAY)
        snprintf(buf, cap, "array of %s", value_type_name(kv->arr_type));
    else
        snprintf(buf, cap, "%s", value_type_name(kv->type));
    return buf;
}

static fastvlm_status key_lookup(const fvlm_gguf *g, const char *key, bool required, int64_t *i,
                                 fastvlm_error *err)
{
    if (!g || !key)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "gguf: NULL file or key");
    *i = fvlm_gguf_find_key(g, key);
    if (*i < 0 && required)
        return fvlm_set_error(err, FASTVLM_ERR_MISSING, "%s: metadata key '%s' is missing",
                              g->path, key);
    return FASTVLM_OK;
}

static fastvlm_status wrong_type(const fvlm_gguf *g, const char *key, int64_t i,
                                 const char *expected, fastvlm_error *err)
{
    char t[32];
    return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' has type %s, "
                          "expected %s", g->path, key, kv_type_desc(g, i, t, sizeof t), expected);
}

static fastvlm_status get_u32(const fvlm_gguf *g, const char *key, bool required, uint32_t *out,
                              fastvlm_error *err)
{
    int64_t i = -1;
    fastvlm_status st = key_lookup(g, key, required, &i, err);
    num v;
    if (st != FASTVLM_OK || i < 0)
        return st;
    if (!kv_num(g, i, &v) || (v.kind != NUM_UNSIGNED && v.kind != NUM_SIGNED))
        return wrong_type(g, key, i, "an integer", err);
    if (v.kind == NUM_SIGNED && (v.i < 0 || v.i > (int64_t)UINT32_MAX))
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' value %" PRId64
                              " out of range (expected 0..4294967295)", g->path, key, v.i);
    if (v.kind == NUM_UNSIGNED && v.u > UINT32_MAX)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' value %" PRIu64
                              " out of range (expected 0..4294967295)", g->path, key, v.u);
    *out = v.kind == NUM_SIGNED ? (uint32_t)v.i : (uint32_t)v.u;
    return FASTVLM_OK;
}

static fastvlm_status get_f32(const fvlm_gguf *g, const char *key, bool required, float *out,
                              fastvlm_error *err)
{
    int64_t i = -1;
    fastvlm_status st = key_lookup(g, key, required, &i, err);
    num v;
    double d;
    if (st != FASTVLM_OK || i < 0)
        return st;
    if (!kv_num(g, i, &v) || !num_to_f64(v, &d))
        return wrong_type(g, key, i, "a number", err);
    if (isfinite(d) && (d > FLT_MAX || d < -FLT_MAX))   /* inf and NaN pass as themselves */
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: metadata key '%s' value %g out of "
                              "range for float32", g->path, key, d);
    *out = (float)d;
    return FASTVLM_OK;
}

fastvlm_status fvlm_gguf_req_u32(const fvlm_gguf *g, const char *key, uint32_t *out,
                                 fastvlm_error *err)
{
    return get_u32(g, key, true, out, err);
}

fastvlm_status fvlm_gguf_opt_u32(const fvlm_gguf *g, const char *key, uint32_t *out,
                                 fastvlm_error *err)
{
    return get_u32(g, key, false, out, err);
}

fastvlm_status fvlm_gguf_req_f32(const fvlm_gguf *g, const char *key, float *out,
                                 fastvlm_error *err)
{
    return get_f32(g, key, true, out, err);
}

fastvlm_status fvlm_gguf_opt_f32(const fvlm_gguf *g, const char *key, float *out,
                                 fastvlm_error *err)
{
    return get_f32(g, key, false, out, err);
}

fastvlm_status fvlm_gguf_req_str(const fvlm_gguf *g, const char *key, fvlm_gguf_str *out,
                                 fastvlm_error *err)
{
    int64_t i = -1;
    fastvlm_status st = key_lookup(g, key, true, &i, err);
    if (st != FASTVLM_OK)
        return st;
    if (!fvlm_gguf_get_str(g, i, out))
        return wrong_type(g, key, i, "a string", err);
    return FASTVLM_OK;
}

fastvlm_status fvlm_gguf_opt_bool(const fvlm_gguf *g, const char *key, bool *out,
                                  fastvlm_error *err)
{
    int64_t i = -1;
    fastvlm_status st = key_lookup(g, key, false, &i, err);
    if (st != FASTVLM_OK || i < 0)
        return st;
    if (!fvlm_gguf_get_bool(g, i, out))
        return wrong_type(g, key, i, "bool", err);
    return FASTVLM_OK;
}

/* ---- tensors ----------------------------------------------------------------------------- */

int64_t fvlm_gguf_n_tensors(const fvlm_gguf *g) { return g ? g->n_tensors : 0; }

bool fvlm_gguf_tensor(const fvlm_gguf *g, int64_t i, fvlm_tensor *t)
{
    const gguf_ti *ti;
    if (!g || !t || i < 0 || i >= g->n_tensors)
        return false;
    ti = &g->ti[i];
    t->name = ti->name;
    t->type = ti->type;
    t->n_dims = ti->n_dims;
    memcpy(t->ne, ti->ne, sizeof t->ne);
    t->nbytes = ti->nbytes;
    t->data = g->data + ti->offset;
    return true;
}

int64_t fvlm_gguf_find_tensor(const fvlm_gguf *g, const char *name)
{
    if (!g || !name)
        return -1;
    return index_find(&g->ti_idx, (const uint8_t *)name, strlen(name));
}

static void shape_str(int n_dims, const int64_t *ne, char *buf, size_t cap)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, d ? ", " : "", ne[d]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* ne == NULL skips the shape check (a loader that reads the dims from the tensor). */
static fastvlm_status get_tensor(const fvlm_gguf *g, const char *name, int n_dims,
                                 const int64_t *ne, fvlm_tensor *t, bool required,
                                 fastvlm_error *err)
{
    const fvlm_type_traits *tt;
    int64_t i;

    if (t)
        memset(t, 0, sizeof *t);
    if (!g || !name || !t || n_dims < 0 || n_dims > 4)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "gguf: bad arguments looking up "
                              "tensor '%s'", name ? name : "(null)");
    i = fvlm_gguf_find_tensor(g, name);
    if (i < 0)
        return required ? fvlm_set_error(err, FASTVLM_ERR_MISSING, "%s: tensor '%s' is missing",
                                         g->path, name)
                        : FASTVLM_OK;
    fvlm_gguf_tensor(g, i, t);
    if (ne) {
        bool ok = true;
        for (int d = 0; d < 4; d++)
            ok = ok && t->ne[d] == (d < n_dims ? ne[d] : 1);
        if (!ok) {
            char have[128], want[128];
            int hd = t->n_dims > n_dims ? t->n_dims : n_dims;
            shape_str(hd, t->ne, have, sizeof have);
            shape_str(n_dims, ne, want, sizeof want);
            memset(t, 0, sizeof *t);
            return fvlm_set_error(err, FASTVLM_ERR_SHAPE, "%s: tensor '%s' has shape %s, "
                                  "expected %s", g->path, name, have, want);
        }
    }
    tt = fvlm_type_get_traits(t->type);
    if (!tt || !tt->supported) {
        memset(t, 0, sizeof *t);
        return fvlm_set_error(err, FASTVLM_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which "
                              "this build cannot compute with", g->path, name,
                              tt ? tt->name : "unknown");
    }
    return FASTVLM_OK;
}

fastvlm_status fvlm_gguf_req_tensor(const fvlm_gguf *g, const char *name, int n_dims,
                                    const int64_t *ne, fvlm_tensor *t, fastvlm_error *err)
{
    return get_tensor(g, name, n_dims, ne, t, true, err);
}

fastvlm_status fvlm_gguf_opt_tensor(const fvlm_gguf *g, const char *name, int n_dims,
                                    const int64_t *ne, fvlm_tensor *t, fastvlm_error *err)
{
    return get_tensor(g, name, n_dims, ne, t, false, err);
}
