/*
 * gguf.h — reader for GGUF v2/v3 files (llama.cpp's container format).
 *
 * The file is memory-mapped (or read whole); every count, offset, size and string length is
 * checked against the file with overflow-safe arithmetic while parsing, so after a
 * successful fvlm_gguf_open() every accessor below is a plain bounds-safe lookup. A
 * truncated or hostile file gives FASTVLM_ERR_FORMAT and a message naming the file and the
 * problem (e.g. "model.gguf: tensor 'blk.0.attn_q.weight' data [offset 1234, 4096 bytes]
 * extends past the end of the file (2048 bytes)").
 * Not here: what the keys mean (llm.c, vision.c) and arithmetic on tensors (kernels.h).
 */
#ifndef FVLM_GGUF_H
#define FVLM_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "fastvlm.h"
#include "tensor.h"

typedef enum fvlm_gguf_type {
    FVLM_GGUF_UINT8 = 0,
    FVLM_GGUF_INT8 = 1,
    FVLM_GGUF_UINT16 = 2,
    FVLM_GGUF_INT16 = 3,
    FVLM_GGUF_UINT32 = 4,
    FVLM_GGUF_INT32 = 5,
    FVLM_GGUF_FLOAT32 = 6,
    FVLM_GGUF_BOOL = 7,
    FVLM_GGUF_STRING = 8,
    FVLM_GGUF_ARRAY = 9,
    FVLM_GGUF_UINT64 = 10,
    FVLM_GGUF_INT64 = 11,
    FVLM_GGUF_FLOAT64 = 12,
    FVLM_GGUF_TYPE_COUNT
} fvlm_gguf_type;

/* A string inside the file: NOT NUL-terminated. */
typedef struct fvlm_gguf_str {
    const char *ptr;
    uint64_t len;
} fvlm_gguf_str;

typedef struct fvlm_gguf fvlm_gguf;

/* Opens and validates `path`. use_mmap=false reads the whole file into memory instead.
 * Limits enforced (hostile files): at most 2^20 KV pairs and 2^20 tensors, n_dims <= 4,
 * element counts that fit int64, strings and arrays no longer than the file. */
fastvlm_status fvlm_gguf_open(const char *path, bool use_mmap, fvlm_gguf **out,
                              fastvlm_error *err);
/* The same on a caller-owned buffer (used by the fuzzer); `data` must outlive the handle. */
fastvlm_status fvlm_gguf_open_memory(const void *data, size_t size, const char *name,
                                     fvlm_gguf **out, fastvlm_error *err);
void fvlm_gguf_close(fvlm_gguf *g);

const char *fvlm_gguf_path(const fvlm_gguf *g);   /* the name given at open */
uint32_t fvlm_gguf_version(const fvlm_gguf *g);
size_t fvlm_gguf_alignment(const fvlm_gguf *g);
size_t fvlm_gguf_file_size(const fvlm_gguf *g);
/* The whole file as opened (file_size bytes) and the offset of its data section, so that a
 * tensor's file offset is (const uint8_t *)t.data - fvlm_gguf_data(g). */
const uint8_t *fvlm_gguf_data(const fvlm_gguf *g);
size_t fvlm_gguf_data_offset(const fvlm_gguf *g);

/* ---- metadata ---- */
int64_t fvlm_gguf_n_kv(const fvlm_gguf *g);
int64_t fvlm_gguf_find_key(const fvlm_gguf *g, const char *key);   /* -1 if absent */
fvlm_gguf_str fvlm_gguf_key_name(const fvlm_gguf *g, int64_t i);
fvlm_gguf_type fvlm_gguf_kv_type(const fvlm_gguf *g, int64_t i);

/* Scalars. Each returns false if the key index is invalid or the type does not fit:
 * get_u64/get_i64 accept any integer type (and bool) whose value is representable;
 * get_f64 accepts any numeric type; get_str only STRING. */
bool fvlm_gguf_get_u64(const fvlm_gguf *g, int64_t i, uint64_t *out);
bool fvlm_gguf_get_i64(const fvlm_gguf *g, int64_t i, int64_t *out);
bool fvlm_gguf_get_f64(const fvlm_gguf *g, int64_t i, double *out);
bool fvlm_gguf_get_bool(const fvlm_gguf *g, int64_t i, bool *out);
bool fvlm_gguf_get_str(const fvlm_gguf *g, int64_t i, fvlm_gguf_str *out);

/* Arrays: element type and count; elements read one at a time (data in the file may be
 * unaligned, so no raw pointers are handed out for numeric arrays). String elements are
 * O(1) (offsets indexed at open). Each returns false on a type mismatch or j out of range. */
fvlm_gguf_type fvlm_gguf_arr_type(const fvlm_gguf *g, int64_t i);  /* TYPE_COUNT if not an array */
uint64_t fvlm_gguf_arr_n(const fvlm_gguf *g, int64_t i);
bool fvlm_gguf_arr_get_i64(const fvlm_gguf *g, int64_t i, uint64_t j, int64_t *out);
bool fvlm_gguf_arr_get_f64(const fvlm_gguf *g, int64_t i, uint64_t j, double *out);
bool fvlm_gguf_arr_get_str(const fvlm_gguf *g, int64_t i, uint64_t j, fvlm_gguf_str *out);

/* Convenience for model loaders: look up `key` and convert, or fill `err`
 * (MISSING: "model.gguf: metadata key 'qwen2.block_count' is missing";
 *  FORMAT: "... has type string, expected an integer" / "value 5000000000 out of range").
 * The _opt variants return OK and leave *out untouched when the key is absent. */
fastvlm_status fvlm_gguf_req_u32(const fvlm_gguf *g, const char *key, uint32_t *out, fastvlm_error *err);
fastvlm_status fvlm_gguf_req_f32(const fvlm_gguf *g, const char *key, float *out, fastvlm_error *err);
fastvlm_status fvlm_gguf_req_str(const fvlm_gguf *g, const char *key, fvlm_gguf_str *out, fastvlm_error *err);
fastvlm_status fvlm_gguf_opt_u32(const fvlm_gguf *g, const char *key, uint32_t *out, fastvlm_error *err);
fastvlm_status fvlm_gguf_opt_f32(const fvlm_gguf *g, const char *key, float *out, fastvlm_error *err);
fastvlm_status fvlm_gguf_opt_bool(const fvlm_gguf *g, const char *key, bool *out, fastvlm_error *err);
/* Compares a file string with a C string. */
bool fvlm_gguf_str_eq(fvlm_gguf_str s, const char *c);

/* ---- tensors ---- */
int64_t fvlm_gguf_n_tensors(const fvlm_gguf *g);
/* Fills `t` for tensor i (name NUL-terminated copy owned by g; data pointer into the
 * mapping, aligned to the file's alignment). */
bool fvlm_gguf_tensor(const fvlm_gguf *g, int64_t i, fvlm_tensor *t);
int64_t fvlm_gguf_find_tensor(const fvlm_gguf *g, const char *name); /* -1 if absent */

/* For model loaders: find `name`, check its type is supported and its shape equals
 * ne[0..n_dims-1] (trailing dims 1), fill `t`. Errors name the file and tensor:
 * MISSING "model.gguf: tensor 'blk.3.ffn_up.weight' is missing",
 * SHAPE "... has shape [896, 4864], expected [896, 4800]",
 * UNSUPPORTED "... has type q3_K, which this build cannot compute with". */
fastvlm_status fvlm_gguf_req_tensor(const fvlm_gguf *g, const char *name, int n_dims,
                                    const int64_t *ne, fvlm_tensor *t, fastvlm_error *err);
/* The same, but an absent tensor returns OK with t->data == NULL. */
fastvlm_status fvlm_gguf_opt_tensor(const fvlm_gguf *g, const char *name, int n_dims,
                                    const int64_t *ne, fvlm_tensor *t, fastvlm_error *err);

#endif
