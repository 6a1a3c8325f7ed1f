/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader: opens the input with
 * fvlm_gguf_open_memory() and, if it is accepted, walks every accessor (keys, scalars,
 * arrays, tensors, the req/opt helpers) and dequantizes the first row of each tensor of a
 * supported type, checking the invariants the reader promises (lookups find what was
 * listed, tensor data lies inside the input, sizes agree with the traits). A broken
 * invariant aborts, which the fuzzer reports like a crash.
 *
 * Built by tests/fuzz/run_fuzz.sh (clang -fsanitize=fuzzer,address,undefined) and, with
 * fuzz_main.c as the driver, by tests/fuzz/meson.build to replay the corpus in the test
 * suite. Not a test of values (tests/gguf/ does that).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

#define FUZZ_NAME "fuzz.gguf"
#define MAX_ELEMS_WALKED 64
#define MAX_ROW 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_gguf: invariant broken: %s\n", what);
    abort();
}

/* Reads every byte of a file string, so ASan checks the whole range. */
static unsigned touch(fvlm_gguf_str s)
{
    unsigned h = 0;
    for (uint64_t i = 0; i < s.len; i++)
        h = h * 31u + (unsigned char)s.ptr[i];
    return h;
}

static volatile unsigned sink;

static void walk_kv(const fvlm_gguf *g, int64_t i)
{
    fvlm_gguf_str s = fvlm_gguf_key_name(g, i), v;
    fvlm_gguf_type t = fvlm_gguf_kv_type(g, i);
    char key[256];
    uint64_t u;
    int64_t x;
    double d;
    bool b;

    sink += touch(s);
    if ((unsigned)t >= FVLM_GGUF_TYPE_COUNT)
        fail("kv_type out of range");
    /* the index finds each key (keys are unique; one with a NUL cannot be asked for) */
    if (s.len < sizeof key && !memchr(s.ptr, 0, (size_t)s.len)) {
        memcpy(key, s.ptr, (size_t)s.len);
        key[s.len] = '\0';
        if (fvlm_gguf_find_key(g, key) != i)
            fail("find_key(key_name(i)) != i");
    }
    sink += fvlm_gguf_get_u64(g, i, &u) + fvlm_gguf_get_i64(g, i, &x) +
            fvlm_gguf_get_f64(g, i, &d) + fvlm_gguf_get_bool(g, i, &b);
    if (fvlm_gguf_get_str(g, i, &v)) {
        if (t != FVLM_GGUF_STRING)
            fail("get_str on a non-string");
        sink += touch(v);
    }
    if (t == FVLM_GGUF_ARRAY) {
        fvlm_gguf_type at = fvlm_gguf_arr_type(g, i);
        uint64_t n = fvlm_gguf_arr_n(g, i);
        if ((unsigned)at >= FVLM_GGUF_TYPE_COUNT || at == FVLM_GGUF_ARRAY)
            fail("bad array element type");
        for (uint64_t j = 0; j < n && j < MAX_ELEMS_WALKED; j++) {
            sink += fvlm_gguf_arr_get_i64(g, i, j, &x) + fvlm_gguf_arr_get_f64(g, i, j, &d);
            if (fvlm_gguf_arr_get_str(g, i, j, &v))
                sink += touch(v);
            else if (at == FVLM_GGUF_STRING)
                fail("arr_get_str failed in range");
        }
        if (n) {   /* the last element too: the far end of the array */
            sink += fvlm_gguf_arr_get_i64(g, i, n - 1, &x) +
                    fvlm_gguf_arr_get_f64(g, i, n - 1, &d);
            if (fvlm_gguf_arr_get_str(g, i, n - 1, &v))
                sink += touch(v);
        }
        if (fvlm_gguf_arr_get_i64(g, i, n, &x) || fvlm_gguf_arr_get_str(g, i, n, &v))
            fail("array element n accepted");
    } else if (fvlm_gguf_arr_type(g, i) != FVLM_GGUF_TYPE_COUNT || fvlm_gguf_arr_n(g, i)) {
        fail("array accessors on a scalar");
    }
}

static void walk_tensor(const fvlm_gguf *g, int64_t i, float *row)
{
    const uint8_t *base = fvlm_gguf_data(g);
    size_t size = fvlm_gguf_file_size(g), off;
    const fvlm_type_traits *tt;
    fvlm_tensor t;
    fastvlm_error err;
    int64_t nrows, ne[4];

    if (!fvlm_gguf_tensor(g, i, &t))
        fail("tensor(i) failed in range");
    if (fvlm_gguf_find_tensor(g, t.name) != i)
        fail("find_tensor(name) != i");
    tt = fvlm_type_get_traits(t.type);
    if (!tt)
        fail("tensor of an unknown type accepted");
    if (t.n_dims < 0 || t.n_dims > 4 || t.ne[0] < 0 || t.ne[1] < 0 || t.ne[2] < 0 || t.ne[3] < 0)
        fail("bad dims");
    nrows = fvlm_tensor_nrows(&t);
    if (t.ne[0] % tt->block_size ||
        t.nbytes != (size_t)(t.ne[0] / tt->block_size) * tt->type_size * (size_t)nrows)
        fail("nbytes disagrees with the traits");
    off = (size_t)((const uint8_t *)t.data - base);
    if ((const uint8_t *)t.data < base || off > size || t.nbytes > size - off ||
        off % fvlm_gguf_alignment(g) || off < fvlm_gguf_data_offset(g))
        fail("tensor data outside the file or misaligned");
    if (t.nbytes) {
        const uint8_t *p = t.data;
        sink += p[0] + p[t.nbytes - 1];
    }
    if (tt->supported && nrows > 0 && t.ne[0] > 0 && t.ne[0] <= MAX_ROW)
        fvlm_dequantize_row(t.type, t.data, row, t.ne[0]);
    /* the loader helper agrees with itself on the tensor's own shape (it clears t first,
     * so the shape is passed from a copy) */
    memcpy(ne, t.ne, sizeof ne);
    if (fvlm_gguf_req_tensor(g, t.name, t.n_dims, ne, &t, &err) == FASTVLM_OK) {
        if (!tt->supported || !t.data)
            fail("req_tensor accepted an unsupported type");
    } else if (tt->supported || err.status != FASTVLM_ERR_UNSUPPORTED) {
        fail("req_tensor rejected a tensor's own shape");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float row[MAX_ROW];
    fvlm_gguf *g = NULL;
    fastvlm_error err;
    uint32_t u;
    float f;
    bool b;
    fvlm_gguf_str s;

    if (fvlm_gguf_open_memory(data, size, FUZZ_NAME, &g, &err) != FASTVLM_OK) {
        if (g || !strstr(err.message, FUZZ_NAME) || err.status == FASTVLM_OK)
            fail("a failed open must leave no handle and name the file");
        return 0;
    }
    if (fvlm_gguf_version(g) < 2 || fvlm_gguf_version(g) > 3 || !fvlm_gguf_alignment(g) ||
        (fvlm_gguf_alignment(g) & (fvlm_gguf_alignment(g) - 1)))
        fail("header values");
    for (int64_t i = 0; i < fvlm_gguf_n_kv(g); i++)
        walk_kv(g, i);
    for (int64_t i = 0; i < fvlm_gguf_n_tensors(g); i++)
        walk_tensor(g, i, row);
    /* out-of-range indices are refused */
    if (fvlm_gguf_tensor(g, fvlm_gguf_n_tensors(g), &(fvlm_tensor){0}) ||
        fvlm_gguf_kv_type(g, fvlm_gguf_n_kv(g)) != FVLM_GGUF_TYPE_COUNT)
        fail("index past the end accepted");
    /* the loader helpers on the keys a real loader asks for */
    sink += fvlm_gguf_opt_u32(g, "general.alignment", &u, &err);
    sink += fvlm_gguf_opt_u32(g, "qwen2.block_count", &u, &err);
    sink += fvlm_gguf_opt_f32(g, "qwen2.rope.freq_base", &f, &err);
    sink += fvlm_gguf_opt_bool(g, "tokenizer.ggml.add_bos_token", &b, &err);
    if (fvlm_gguf_req_str(g, "general.architecture", &s, &err) == FASTVLM_OK)
        sink += touch(s);
    fvlm_gguf_close(g);
    return 0;
}
