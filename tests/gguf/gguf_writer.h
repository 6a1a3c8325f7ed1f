/*
 * gguf_writer.h — a tiny GGUF writer for the tests: builds files in memory so that the
 * reader can be checked on exact, known bytes (valid ones, and hostile ones by patching or
 * by writing the raw primitives directly).
 *
 * Not the project's converter (that is Python) and not shared with engine/gguf.c: it is
 * written from the format description alone, so a misreading in the reader is not repeated
 * here. Aborts on out-of-memory (test code only).
 */
#ifndef GGUF_WRITER_H
#define GGUF_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* A growable byte buffer with little-endian primitives. */
typedef struct gw_buf {
    uint8_t *p;
    size_t len, cap;
} gw_buf;

void gw_bytes(gw_buf *b, const void *p, size_t n);
void gw_u8(gw_buf *b, uint8_t v);
void gw_u16(gw_buf *b, uint16_t v);
void gw_u32(gw_buf *b, uint32_t v);
void gw_u64(gw_buf *b, uint64_t v);
void gw_f32(gw_buf *b, float v);
void gw_f64(gw_buf *b, double v);
void gw_str(gw_buf *b, const char *s);                 /* u64 length + bytes */
void gw_strn(gw_buf *b, const char *s, size_t n);
void gw_pad(gw_buf *b, size_t align);                  /* zero bytes up to a multiple */
void gw_buf_free(gw_buf *b);

/* The file builder: metadata entries are serialized as they are added; tensors are laid out
 * at finish. GGUF value type ids as in the spec. */
enum {
    GW_U8 = 0, GW_I8 = 1, GW_U16 = 2, GW_I16 = 3, GW_U32 = 4, GW_I32 = 5, GW_F32 = 6,
    GW_BOOL = 7, GW_STRING = 8, GW_ARRAY = 9, GW_U64 = 10, GW_I64 = 11, GW_F64 = 12
};

#define GW_MAX_TENSORS 2048

typedef struct gw_tensor {
    const char *name;
    uint32_t type;             /* ggml type id */
    uint32_t n_dims;
    uint64_t ne[4];
    const void *data;
    size_t nbytes;
} gw_tensor;

typedef struct gw {
    uint32_t version;
    uint64_t alignment;        /* used for the layout (default 32) */
    uint64_t n_kv;
    gw_buf kv;                 /* serialized entries */
    int n_tensors;
    gw_tensor t[GW_MAX_TENSORS];
} gw;

void gw_init(gw *w, uint32_t version);
void gw_free(gw *w);
/* Writes a `general.alignment` u32 entry and uses `a` for the layout. */
void gw_set_alignment(gw *w, uint32_t a);

/* Starts an entry: key and type; the caller then appends the value with gw_* primitives
 * to w->kv. The helpers below cover the usual cases. */
void gw_key(gw *w, const char *key, uint32_t type);
void gw_kv_u8(gw *w, const char *key, uint8_t v);
void gw_kv_i8(gw *w, const char *key, int8_t v);
void gw_kv_u16(gw *w, const char *key, uint16_t v);
void gw_kv_i16(gw *w, const char *key, int16_t v);
void gw_kv_u32(gw *w, const char *key, uint32_t v);
void gw_kv_i32(gw *w, const char *key, int32_t v);
void gw_kv_f32(gw *w, const char *key, float v);
void gw_kv_bool(gw *w, const char *key, bool v);
void gw_kv_str(gw *w, const char *key, const char *v);
void gw_kv_u64(gw *w, const char *key, uint64_t v);
void gw_kv_i64(gw *w, const char *key, int64_t v);
void gw_kv_f64(gw *w, const char *key, double v);
/* Array header: element type and count; the caller appends the elements to w->kv. */
void gw_kv_arr(gw *w, const char *key, uint32_t elem_type, uint64_t n);

/* Adds a tensor (data copied at finish; must stay valid until then). */
void gw_add_tensor(gw *w, const char *name, uint32_t type, uint32_t n_dims,
                   const uint64_t *ne, const void *data, size_t nbytes);

/* Lays the file out: header, entries, tensor infos, padding, then each tensor's data at
 * the next aligned offset. No padding follows the last tensor, so cutting even one byte
 * off the end makes the file invalid. Returns a malloc'd buffer of *size bytes.
 * `info_off` (optional, n_tensors entries) receives the file offset of each tensor info. */
uint8_t *gw_finish(const gw *w, size_t *size, size_t *info_off);

#endif
