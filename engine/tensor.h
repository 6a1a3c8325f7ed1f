/*
 * tensor.h — weight tensor types shared by the GGUF reader, the kernels and the models.
 *
 * Type ids and block layouts are ggml's (so llama.cpp's files load unchanged). A tensor's
 * ne[0] is the innermost (fastest-varying) dimension, as in GGUF: a PyTorch Linear weight
 * [out, in] is stored with ne = {in, out}, i.e. `ne[1]` rows of `ne[0]` elements.
 * Not here: arithmetic (kernels.h) and file parsing (gguf.h).
 */
#ifndef FVLM_TENSOR_H
#define FVLM_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum fvlm_type {
    FVLM_TYPE_F32 = 0,
    FVLM_TYPE_F16 = 1,
    FVLM_TYPE_Q4_0 = 2,
    FVLM_TYPE_Q4_1 = 3,
    FVLM_TYPE_Q5_0 = 6,
    FVLM_TYPE_Q5_1 = 7,
    FVLM_TYPE_Q8_0 = 8,
    FVLM_TYPE_Q8_1 = 9,
    FVLM_TYPE_Q2_K = 10,
    FVLM_TYPE_Q3_K = 11,
    FVLM_TYPE_Q4_K = 12,
    FVLM_TYPE_Q5_K = 13,
    FVLM_TYPE_Q6_K = 14,
    FVLM_TYPE_Q8_K = 15,
    FVLM_TYPE_BF16 = 30,
    FVLM_TYPE_COUNT = 40       /* upper bound of ids we know about */
} fvlm_type;

/* Per-type facts. A row of n elements (n a multiple of block_size) takes
 * n / block_size * type_size bytes. */
typedef struct fvlm_type_traits {
    const char *name;        /* "f32", "q8_0", ... ; NULL for ids we do not know */
    uint32_t block_size;     /* elements per block (1 for float types) */
    uint32_t type_size;      /* bytes per block */
    bool supported;          /* the kernels can compute with it */
} fvlm_type_traits;

/* Traits for `type`, or NULL for an unknown/out-of-range id. */
const fvlm_type_traits *fvlm_type_get_traits(uint32_t type);

/* Bytes of a row of `n` elements; 0 if n is not a multiple of the block size. */
size_t fvlm_row_size(fvlm_type type, int64_t n);

/* Quantized block layouts (ggml's), pinned with static_assert in tensor.c. */
#define FVLM_QK4_0 32
typedef struct { uint16_t d; uint8_t qs[FVLM_QK4_0 / 2]; } fvlm_block_q4_0;
#define FVLM_QK8_0 32
typedef struct { uint16_t d; int8_t qs[FVLM_QK8_0]; } fvlm_block_q8_0;
/* x = d·q + m, q the nibble (byte j: element j low, j+16 high) */
typedef struct { uint16_t d, m; uint8_t qs[16]; } fvlm_block_q4_1;
/* 5-bit q = nibble | bit j of the little-endian uint32 qh << 4; x = d·(q − 16) */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } fvlm_block_q5_0;
/* the same bits, x = d·q + m */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } fvlm_block_q5_1;

/* K-quants: super-blocks of 256. Q4_K/Q5_K: 8 sub-blocks of 32 with 6-bit scale sc and
 * min mn packed in 12 bytes; x = d·sc·q − dmin·mn. Within each 64 elements, the first 32
 * take the low nibbles of 32 bytes, the next 32 the high nibbles; Q5_K's fifth bit of
 * element l of chunk c (c = 0..3; 2c for the low half, 2c+1 for the high) is bit of qh[l].
 * Q6_K: 16 sub-blocks of 16 with int8 scales, 6-bit q = 4 bits of ql | 2 bits of qh,
 * x = d·sc·(q − 32). Q8_K: the activation side, float d, sums of each 16 q in bsums. */
#define FVLM_QK_K 256
#define FVLM_K_SCALE_SIZE 12
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[FVLM_K_SCALE_SIZE];
    uint8_t qs[FVLM_QK_K / 2];
} fvlm_block_q4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[FVLM_K_SCALE_SIZE];
    uint8_t qh[FVLM_QK_K / 8];
    uint8_t qs[FVLM_QK_K / 2];
} fvlm_block_q5_K;
typedef struct {
    uint8_t ql[FVLM_QK_K / 2];
    uint8_t qh[FVLM_QK_K / 4];
    int8_t scales[FVLM_QK_K / 16];
    uint16_t d;
} fvlm_block_q6_K;
typedef struct {
    float d;
    int8_t qs[FVLM_QK_K];
    int16_t bsums[FVLM_QK_K / 16];
} fvlm_block_q8_K;

/* fp16 / bf16 <-> fp32 (IEEE, round-to-nearest-even on the way down). */
float fvlm_f16_to_f32(uint16_t h);
uint16_t fvlm_f32_to_f16(float f);
float fvlm_bf16_to_f32(uint16_t h);
uint16_t fvlm_f32_to_bf16(float f);

/* Dequantizes one row of `n` elements of `type` (any supported type) into `out`. */
void fvlm_dequantize_row(fvlm_type type, const void *src, float *out, int64_t n);

/* Scale and min (6 bits each) of sub-block j (0..7) from a Q4_K/Q5_K `scales` field. */
void fvlm_k_scale_min(const uint8_t *scales, int j, uint8_t *sc, uint8_t *mn);

/* Quantizes `n` floats (a multiple of the block size) into `dst` as `type`: F32, F16, BF16,
 * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q8_K. The 32-element types follow
 * llama.cpp's reference quantizer exactly (same bytes); the K-quants take their scales from
 * each block's range with plain rounding (no error search as in llama.cpp's quantize tool,
 * so slightly less accurate than llama.cpp's, in the same format). Returns the
 * bytes written (fvlm_row_size), or 0 for another type or a bad n (nothing written).
 * Non-finite inputs give non-finite scales; callers should check their weights. */
size_t fvlm_quantize_row(fvlm_type type, const float *src, void *dst, int64_t n);

/* A weight tensor as the models use it: a view into mapped file memory (or an owned
 * buffer). At most 4 dims; unused dims are 1. Rows are contiguous (GGUF guarantees it). */
typedef struct fvlm_tensor {
    const char *name;        /* points into the file's memory or a static string */
    fvlm_type type;
    int32_t n_dims;
    int64_t ne[4];           /* elements per dim, ne[0] innermost */
    size_t nbytes;
    const void *data;
} fvlm_tensor;

static inline int64_t fvlm_tensor_nelements(const fvlm_tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}
static inline int64_t fvlm_tensor_nrows(const fvlm_tensor *t) {
    return t->ne[1] * t->ne[2] * t->ne[3];
}

#endif
