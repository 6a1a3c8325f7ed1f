/*
 * test_gguf.c — the GGUF reader (engine/gguf.c) on files built byte by byte in memory by the
 * tests' own writer (gguf_writer.c): every metadata type through every accessor, v2 and v3,
 * alignment, every truncation of a valid file, hostile headers/values/tensor infos (each
 * with its status and a message naming the file), the req/opt helpers and their messages,
 * reading from disk with and without mmap, and lookups in a 1000-tensor file.
 *
 * Not tested here: fp16/bf16 and dequantization (test_tensor.c), random inputs (the fuzzer;
 * a small deterministic bit-flip pass here keeps that path in the ASan run).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "gguf.h"
#include "gguf_writer.h"

#define NAME "sample.gguf"
#define HNAME "hostile.gguf"

/* ---- helpers ---------------------------------------------------------------------------- */

/* Opens a private, exactly-sized copy so that ASan catches any read past the end. The copy
 * is freed by close_copy(). */
typedef struct opened {
    fvlm_gguf *g;
    uint8_t *copy;
} opened;

static fastvlm_status open_copy(const uint8_t *p, size_t n, const char *name, opened *o,
                                fastvlm_error *err)
{
    o->copy = n ? malloc(n) : NULL;
    if (n)
        memcpy(o->copy, p, n);
    return fvlm_gguf_open_memory(o->copy, n, name, &o->g, err);
}

static void close_copy(opened *o)
{
    fvlm_gguf_close(o->g);
    free(o->copy);
    o->g = NULL;
    o->copy = NULL;
}

/* Opens `p` and checks the status, that the message names the file and contains `sub`. */
static void expect_fail_(const uint8_t *p, size_t n, fastvlm_status want, const char *sub,
                         const char *label, int line)
{
    opened o;
    fastvlm_error err;
    fastvlm_status st = open_copy(p, n, HNAME, &o, &err);
    if (st != want || !strstr(err.message, HNAME) || (sub && !strstr(err.message, sub)) ||
        o.g != NULL) {
        check_failed++;
        fprintf(stderr, "line %d: %s: status %s (want %s), message \"%s\" (want it to name "
                "the file and contain \"%s\")\n", line, label, fastvlm_status_str(st),
                fastvlm_status_str(want), err.message, sub ? sub : "");
    } else {
        check_passed++;
        if (getenv("GGUF_TEST_VERBOSE"))
            printf("%-40s %-14s %s\n", label, fastvlm_status_str(st), err.message);
    }
    close_copy(&o);
}
#define expect_fail(p, n, want, sub, label) expect_fail_(p, n, want, sub, label, __LINE__)

static void put_u64_at(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32_at(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the sample file: every value type, every supported tensor type, one unsupported ---- */

#define N_SAMPLE_TENSORS 7
static float d_f32[15], d_last[3];
static uint8_t d_f16[16], d_bf16[6], d_q8[136], d_q4[36], d_q4k[144];
static const char *const sample_names[N_SAMPLE_TENSORS] = {
    "tok.f32", "w.f16", "w.bf16", "w.q8_0", "w.q4_0", "w.q2_K", "last.f32"};

static uint8_t *make_sample(uint32_t version, uint32_t alignment, size_t *n, size_t *info_off)
{
    gw w;
    uint8_t *out;
    static const uint64_t ne_f32[] = {5, 3}, ne_f16[] = {4, 2}, ne_bf16[] = {3},
                          ne_q8[] = {64, 2}, ne_q4[] = {32, 1, 1, 2}, ne_q4k[] = {256},
                          ne_last[] = {3};

    for (int i = 0; i < 15; i++)
        d_f32[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 3; i++)
        d_last[i] = 100.0f + (float)i;
    for (size_t i = 0; i < sizeof d_f16; i++) d_f16[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof d_bf16; i++) d_bf16[i] = (uint8_t)(i * 11 + 2);
    for (size_t i = 0; i < sizeof d_q8; i++) d_q8[i] = (uint8_t)(i * 13 + 3);
    for (size_t i = 0; i < sizeof d_q4; i++) d_q4[i] = (uint8_t)(i * 17 + 4);
    for (size_t i = 0; i < sizeof d_q4k; i++) d_q4k[i] = (uint8_t)(i * 19 + 5);
    /* sane fp16 scales for the quantized blocks (so the fuzz/walk code sees numbers) */
    d_q8[0] = 0x00; d_q8[1] = 0x3c; d_q8[34] = 0x00; d_q8[35] = 0x38;
    d_q4[0] = 0x00; d_q4[1] = 0x3c;

    gw_init(&w, version);
    if (alignment)
        gw_set_alignment(&w, alignment);
    gw_kv_u8(&w, "t.u8", 200);
    gw_kv_i8(&w, "t.i8", -100);
    gw_kv_u16(&w, "t.u16", 60000);
    gw_kv_i16(&w, "t.i16", -30000);
    gw_kv_u32(&w, "t.u32", 4000000000u);
    gw_kv_i32(&w, "t.i32", -2000000000);
    gw_kv_f32(&w, "t.f32", 1.5f);
    gw_kv_bool(&w, "t.bool", true);
    gw_kv_bool(&w, "t.false", false);
    gw_kv_str(&w, "t.str", "hello \"world\"");
    gw_kv_u64(&w, "t.u64", ((uint64_t)1 << 63) + 5);
    gw_kv_i64(&w, "t.i64", -((int64_t)1 << 62));
    gw_kv_f64(&w, "t.f64", 3.141592653589793);
    gw_kv_f64(&w, "t.f64big", 1e300);
    gw_key(&w, "t.nul", GW_STRING);
    gw_strn(&w.kv, "a\0b", 3);
    gw_kv_str(&w, "t.empty", "");
    gw_kv_str(&w, "t.utf8 \xc3\xa9", "caf\xc3\xa9");

    gw_kv_arr(&w, "a.u8", GW_U8, 3);
    gw_u8(&w.kv, 1); gw_u8(&w.kv, 2); gw_u8(&w.kv, 255);
    gw_kv_arr(&w, "a.i8", GW_I8, 3);
    gw_u8(&w.kv, 0xff); gw_u8(&w.kv, 0x80); gw_u8(&w.kv, 0x7f);
    gw_kv_arr(&w, "a.u16", GW_U16, 2);
    gw_u16(&w.kv, 65535); gw_u16(&w.kv, 1);
    gw_kv_arr(&w, "a.i16", GW_I16, 2);
    gw_u16(&w.kv, 0x8000); gw_u16(&w.kv, 2);
    gw_kv_arr(&w, "a.u32", GW_U32, 2);
    gw_u32(&w.kv, 0); gw_u32(&w.kv, 4294967295u);
    gw_kv_arr(&w, "a.i32", GW_I32, 1);
    gw_u32(&w.kv, 0x80000000u);
    gw_kv_arr(&w, "a.f32", GW_F32, 2);
    gw_f32(&w.kv, 0.5f); gw_f32(&w.kv, -2.25f);
    gw_kv_arr(&w, "a.bool", GW_BOOL, 3);
    gw_u8(&w.kv, 1); gw_u8(&w.kv, 0); gw_u8(&w.kv, 1);
    gw_kv_arr(&w, "a.str", GW_STRING, 3);
    gw_str(&w.kv, "a"); gw_str(&w.kv, ""); gw_str(&w.kv, "ccc");
    gw_kv_arr(&w, "a.u64", GW_U64, 2);
    gw_u64(&w.kv, UINT64_MAX); gw_u64(&w.kv, 7);
    gw_kv_arr(&w, "a.i64", GW_I64, 2);
    gw_u64(&w.kv, (uint64_t)INT64_MIN); gw_u64(&w.kv, 5);
    gw_kv_arr(&w, "a.f64", GW_F64, 1);
    gw_f64(&w.kv, 1e300);
    gw_kv_arr(&w, "a.empty", GW_U32, 0);

    gw_add_tensor(&w, sample_names[0], 0, 2, ne_f32, d_f32, sizeof d_f32);
    gw_add_tensor(&w, sample_names[1], 1, 2, ne_f16, d_f16, sizeof d_f16);
    gw_add_tensor(&w, sample_names[2], 30, 1, ne_bf16, d_bf16, sizeof d_bf16);
    gw_add_tensor(&w, sample_names[3], 8, 2, ne_q8, d_q8, sizeof d_q8);
    gw_add_tensor(&w, sample_names[4], 2, 4, ne_q4, d_q4, sizeof d_q4);
    gw_add_tensor(&w, sample_names[5], 10, 1, ne_q4k, d_q4k, 84);   /* q2_K: 84 bytes */
    gw_add_tensor(&w, sample_names[6], 0, 1, ne_last, d_last, sizeof d_last);
    out = gw_finish(&w, n, info_off);
    gw_free(&w);
    return out;
}

static int64_t key(const fvlm_gguf *g, const char *k)
{
    int64_t i = fvlm_gguf_find_key(g, k);
    CHECK(i >= 0, "key %s not found", k);
    return i;
}

/* Checks every value of the sample through every accessor. */
static void check_sample(const fvlm_gguf *g, uint32_t version, size_t alignment)
{
    uint64_t u;
    int64_t v;
    double d;
    bool b;
    fvlm_gguf_str s;
    fvlm_tensor t;
    int64_t i;

    CHECK(fvlm_gguf_version(g) == version, "version %u", fvlm_gguf_version(g));
    CHECK(fvlm_gguf_alignment(g) == alignment, "alignment %zu want %zu", fvlm_gguf_alignment(g),
          alignment);
    CHECK(fvlm_gguf_n_kv(g) == 30 + (alignment != 32), "n_kv %lld", (long long)fvlm_gguf_n_kv(g));
    CHECK(fvlm_gguf_n_tensors(g) == N_SAMPLE_TENSORS, "n_tensors");

    /* scalars: type, and which getters accept them */
    i = key(g, "t.u8");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_UINT8, "u8 type");
    CHECK(fvlm_gguf_get_u64(g, i, &u) && u == 200, "u8 as u64");
    CHECK(fvlm_gguf_get_i64(g, i, &v) && v == 200, "u8 as i64");
    CHECK(fvlm_gguf_get_f64(g, i, &d) && d == 200.0, "u8 as f64");
    CHECK(!fvlm_gguf_get_bool(g, i, &b), "u8 is not a bool");
    CHECK(!fvlm_gguf_get_str(g, i, &s), "u8 is not a string");
    i = key(g, "t.i8");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_INT8, "i8 type");
    CHECK(!fvlm_gguf_get_u64(g, i, &u), "negative i8 is not a u64");
    CHECK(fvlm_gguf_get_i64(g, i, &v) && v == -100, "i8 as i64");
    CHECK(fvlm_gguf_get_f64(g, i, &d) && d == -100.0, "i8 as f64");
    i = key(g, "t.u16");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_UINT16 && fvlm_gguf_get_u64(g, i, &u) &&
          u == 60000, "u16");
    i = key(g, "t.i16");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_INT16 && fvlm_gguf_get_i64(g, i, &v) &&
          v == -30000, "i16");
    i = key(g, "t.u32");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_UINT32 && fvlm_gguf_get_u64(g, i, &u) &&
          u == 4000000000u, "u32");
    i = key(g, "t.i32");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_INT32 && fvlm_gguf_get_i64(g, i, &v) &&
          v == -2000000000, "i32");
    i = key(g, "t.f32");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_FLOAT32 && fvlm_gguf_get_f64(g, i, &d) &&
          d == 1.5, "f32");
    CHECK(!fvlm_gguf_get_u64(g, i, &u) && !fvlm_gguf_get_i64(g, i, &v), "float is no integer");
    i = key(g, "t.bool");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_BOOL && fvlm_gguf_get_bool(g, i, &b) && b,
          "bool true");
    CHECK(fvlm_gguf_get_u64(g, i, &u) && u == 1, "bool as u64");
    CHECK(!fvlm_gguf_get_f64(g, i, &d), "bool is not numeric for f64");
    i = key(g, "t.false");
    CHECK(fvlm_gguf_get_bool(g, i, &b) && !b, "bool false");
    i = key(g, "t.str");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_STRING && fvlm_gguf_get_str(g, i, &s) &&
          s.len == 13 && !memcmp(s.ptr, "hello \"world\"", 13), "string");
    CHECK(fvlm_gguf_str_eq(s, "hello \"world\"") && !fvlm_gguf_str_eq(s, "hello"), "str_eq");
    CHECK(!fvlm_gguf_get_u64(g, i, &u) && !fvlm_gguf_get_f64(g, i, &d), "string is no number");
    i = key(g, "t.u64");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_UINT64 && fvlm_gguf_get_u64(g, i, &u) &&
          u == ((uint64_t)1 << 63) + 5, "u64");
    CHECK(!fvlm_gguf_get_i64(g, i, &v), "u64 over 2^63 is not an i64");
    CHECK(fvlm_gguf_get_f64(g, i, &d) && d == ldexp(1.0, 63), "u64 as f64");
    i = key(g, "t.i64");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_INT64 && fvlm_gguf_get_i64(g, i, &v) &&
          v == -((int64_t)1 << 62), "i64");
    i = key(g, "t.f64");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_FLOAT64 && fvlm_gguf_get_f64(g, i, &d) &&
          d == 3.141592653589793, "f64");
    i = key(g, "t.nul");
    CHECK(fvlm_gguf_get_str(g, i, &s) && s.len == 3 && !memcmp(s.ptr, "a\0b", 3), "NUL inside");
    CHECK(!fvlm_gguf_str_eq(s, "a"), "str_eq with embedded NUL");
    i = key(g, "t.empty");
    CHECK(fvlm_gguf_get_str(g, i, &s) && s.len == 0 && fvlm_gguf_str_eq(s, ""), "empty string");
    i = key(g, "t.utf8 \xc3\xa9");
    CHECK(fvlm_gguf_get_str(g, i, &s) && fvlm_gguf_str_eq(s, "caf\xc3\xa9"), "utf-8");
    s = fvlm_gguf_key_name(g, i);
    CHECK(fvlm_gguf_str_eq(s, "t.utf8 \xc3\xa9"), "key_name");

    /* arrays */
    i = key(g, "a.u8");
    CHECK(fvlm_gguf_kv_type(g, i) == FVLM_GGUF_ARRAY && fvlm_gguf_arr_type(g, i) ==
          FVLM_GGUF_UINT8 && fvlm_gguf_arr_n(g, i) == 3, "a.u8 header");
    CHECK(fvlm_gguf_arr_get_i64(g, i, 2, &v) && v == 255, "a.u8[2]");
    CHECK(!fvlm_gguf_arr_get_i64(g, i, 3, &v), "a.u8[3] out of range");
    CHECK(!fvlm_gguf_arr_get_str(g, i, 0, &s), "a.u8 has no strings");
    CHECK(!fvlm_gguf_get_u64(g, i, &u) && !fvlm_gguf_get_str(g, i, &s), "array is no scalar");
    i = key(g, "a.i8");
    CHECK(fvlm_gguf_arr_get_i64(g, i, 0, &v) && v == -1 && fvlm_gguf_arr_get_i64(g, i, 1, &v) &&
          v == -128 && fvlm_gguf_arr_get_i64(g, i, 2, &v) && v == 127, "a.i8");
    i = key(g, "a.u16");
    CHECK(fvlm_gguf_arr_type(g, i) == FVLM_GGUF_UINT16 && fvlm_gguf_arr_get_i64(g, i, 0, &v) &&
          v == 65535, "a.u16");
    i = key(g, "a.i16");
    CHECK(fvlm_gguf_arr_get_i64(g, i, 0, &v) && v == -32768, "a.i16");
    i = key(g, "a.u32");
    CHECK(fvlm_gguf_arr_get_i64(g, i, 1, &v) && v == 4294967295ll, "a.u32");
    CHECK(fvlm_gguf_arr_get_f64(g, i, 1, &d) && d == 4294967295.0, "a.u32 as f64");
    i = key(g, "a.i32");
    CHECK(fvlm_gguf_arr_get_i64(g, i, 0, &v) && v == INT32_MIN, "a.i32");
    i = key(g, "a.f32");
    CHECK(fvlm_gguf_arr_get_f64(g, i, 0, &d) && d == 0.5 && fvlm_gguf_arr_get_f64(g, i, 1, &d) &&
          d == -2.25, "a.f32");
    CHECK(!fvlm_gguf_arr_get_i64(g, i, 0, &v), "a.f32 is no integer");
    i = key(g, "a.bool");
    CHECK(fvlm_gguf_arr_type(g, i) == FVLM_GGUF_BOOL && fvlm_gguf_arr_get_i64(g, i, 0, &v) &&
          v == 1 && fvlm_gguf_arr_get_i64(g, i, 1, &v) && v == 0, "a.bool");
    i = key(g, "a.str");
    CHECK(fvlm_gguf_arr_type(g, i) == FVLM_GGUF_STRING && fvlm_gguf_arr_n(g, i) == 3, "a.str");
    CHECK(fvlm_gguf_arr_get_str(g, i, 0, &s) && fvlm_gguf_str_eq(s, "a"), "a.str[0]");
    CHECK(fvlm_gguf_arr_get_str(g, i, 1, &s) && s.len == 0, "a.str[1]");
    CHECK(fvlm_gguf_arr_get_str(g, i, 2, &s) && fvlm_gguf_str_eq(s, "ccc"), "a.str[2]");
    CHECK(!fvlm_gguf_arr_get_str(g, i, 3, &s), "a.str[3] out of range");
    CHECK(!fvlm_gguf_arr_get_i64(g, i, 0, &v) && !fvlm_gguf_arr_get_f64(g, i, 0, &d),
          "strings are no numbers");
    i = key(g, "a.u64");
    CHECK(!fvlm_gguf_arr_get_i64(g, i, 0, &v), "a.u64[0] = 2^64-1 is not an i64");
    CHECK(fvlm_gguf_arr_get_i64(g, i, 1, &v) && v == 7, "a.u64[1]");
    CHECK(fvlm_gguf_arr_get_f64(g, i, 0, &d) && d == ldexp(1.0, 64), "a.u64[0] as f64");
    i = key(g, "a.i64");
    CHECK(fvlm_gguf_arr_get_i64(g, i, 0, &v) && v == INT64_MIN, "a.i64");
    i = key(g, "a.f64");
    CHECK(fvlm_gguf_arr_get_f64(g, i, 0, &d) && d == 1e300, "a.f64");
    i = key(g, "a.empty");
    CHECK(fvlm_gguf_arr_type(g, i) == FVLM_GGUF_UINT32 && fvlm_gguf_arr_n(g, i) == 0 &&
          !fvlm_gguf_arr_get_i64(g, i, 0, &v), "a.empty");

    /* non-arrays and bad indices */
    CHECK(fvlm_gguf_arr_type(g, key(g, "t.u8")) == FVLM_GGUF_TYPE_COUNT, "arr_type on scalar");
    CHECK(fvlm_gguf_arr_n(g, key(g, "t.str")) == 0, "arr_n on scalar");
    CHECK(fvlm_gguf_find_key(g, "nope") == -1 && fvlm_gguf_find_key(g, "") == -1 &&
          fvlm_gguf_find_key(g, "t.u") == -1 && fvlm_gguf_find_key(g, "t.u88") == -1, "absent");
    CHECK(fvlm_gguf_kv_type(g, -1) == FVLM_GGUF_TYPE_COUNT &&
          fvlm_gguf_kv_type(g, fvlm_gguf_n_kv(g)) == FVLM_GGUF_TYPE_COUNT, "kv_type range");
    CHECK(!fvlm_gguf_get_u64(g, -1, &u) && !fvlm_gguf_get_i64(g, 1000, &v) &&
          !fvlm_gguf_get_f64(g, 1000, &d) && !fvlm_gguf_get_bool(g, -5, &b) &&
          !fvlm_gguf_get_str(g, 1000, &s) && !fvlm_gguf_arr_get_str(g, -1, 0, &s) &&
          fvlm_gguf_arr_n(g, 1000) == 0, "index range");
    CHECK(fvlm_gguf_key_name(g, 1000).len == 0, "key_name range");
    for (int64_t k = 0; k < fvlm_gguf_n_kv(g); k++) {
        fvlm_gguf_str kn = fvlm_gguf_key_name(g, k);
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)kn.len, kn.ptr);
        CHECK(fvlm_gguf_find_key(g, buf) == k, "find_key(key_name(%lld))", (long long)k);
    }

    /* tensors */
    for (int k = 0; k < N_SAMPLE_TENSORS; k++)
        CHECK(fvlm_gguf_find_tensor(g, sample_names[k]) == k, "find_tensor %s", sample_names[k]);
    CHECK(fvlm_gguf_find_tensor(g, "w") == -1 && fvlm_gguf_find_tensor(g, "") == -1,
          "absent tensor");
    CHECK(!fvlm_gguf_tensor(g, -1, &t) && !fvlm_gguf_tensor(g, N_SAMPLE_TENSORS, &t),
          "tensor range");
    {
        static const struct { fvlm_type type; int n_dims; int64_t ne[4]; size_t nbytes;
                              const void *data; } want[N_SAMPLE_TENSORS] = {
            {FVLM_TYPE_F32, 2, {5, 3, 1, 1}, 60, d_f32},
            {FVLM_TYPE_F16, 2, {4, 2, 1, 1}, 16, d_f16},
            {FVLM_TYPE_BF16, 1, {3, 1, 1, 1}, 6, d_bf16},
            {FVLM_TYPE_Q8_0, 2, {64, 2, 1, 1}, 136, d_q8},
            {FVLM_TYPE_Q4_0, 4, {32, 1, 1, 2}, 36, d_q4},
            {FVLM_TYPE_Q2_K, 1, {256, 1, 1, 1}, 84, d_q4k},
            {FVLM_TYPE_F32, 1, {3, 1, 1, 1}, 12, d_last},
        };
        const uint8_t *base = fvlm_gguf_data(g);
        for (int k = 0; k < N_SAMPLE_TENSORS; k++) {
            size_t off;
            CHECK(fvlm_gguf_tensor(g, k, &t), "tensor %d", k);
            off = (size_t)((const uint8_t *)t.data - base);
            CHECK(!strcmp(t.name, sample_names[k]), "name %s", t.name);
            CHECK(t.type == want[k].type && t.n_dims == want[k].n_dims &&
                  !memcmp(t.ne, want[k].ne, sizeof t.ne) && t.nbytes == want[k].nbytes,
                  "tensor %s info", t.name);
            CHECK(off % alignment == 0 && off >= fvlm_gguf_data_offset(g) &&
                  off + t.nbytes <= fvlm_gguf_file_size(g), "tensor %s offset %zu", t.name, off);
            CHECK(!memcmp(t.data, want[k].data, t.nbytes), "tensor %s data", t.name);
        }
        CHECK(fvlm_gguf_data_offset(g) % alignment == 0, "data offset %zu",
              fvlm_gguf_data_offset(g));
    }
}

static void test_roundtrip(void)
{
    static const uint32_t versions[] = {2, 3};
    for (int vi = 0; vi < 2; vi++) {
        size_t n;
        uint8_t *f = make_sample(versions[vi], 0, &n, NULL);
        opened o;
        fastvlm_error err;
        fastvlm_status st = open_copy(f, n, NAME, &o, &err);
        CHECK(st == FASTVLM_OK, "v%u open: %s", versions[vi], err.message);
        if (st == FASTVLM_OK) {
            CHECK(err.status == FASTVLM_OK && err.message[0] == '\0', "err cleared on success");
            CHECK(!strcmp(fvlm_gguf_path(o.g), NAME), "path");
            CHECK(fvlm_gguf_file_size(o.g) == n, "size");
            check_sample(o.g, versions[vi], 32);
        }
        close_copy(&o);
        free(f);
    }
}

static void test_alignment(void)
{
    static const uint32_t aligns[] = {1, 2, 8, 64, 4096};
    for (size_t ai = 0; ai < sizeof aligns / sizeof aligns[0]; ai++) {
        size_t n;
        uint8_t *f = make_sample(3, aligns[ai], &n, NULL);
        opened o;
        fastvlm_error err;
        fastvlm_status st = open_copy(f, n, NAME, &o, &err);
        CHECK(st == FASTVLM_OK, "alignment %u: %s", aligns[ai], err.message);
        if (st == FASTVLM_OK)
            check_sample(o.g, 3, aligns[ai]);
        close_copy(&o);
        free(f);
    }

    /* general.alignment of another integer type is accepted; bad values are not */
    {
        static const struct { uint32_t type; uint64_t value; fastvlm_status want;
                              const char *sub; } cases[] = {
            {GW_U64, 16, FASTVLM_OK, NULL},
            {GW_I32, 8, FASTVLM_OK, NULL},
            {GW_U32, 0, FASTVLM_ERR_FORMAT, "general.alignment is 0"},
            {GW_U32, 3, FASTVLM_ERR_FORMAT, "general.alignment is 3"},
            {GW_U32, 48, FASTVLM_ERR_FORMAT, "general.alignment is 48"},
            {GW_U64, (uint64_t)1 << 40, FASTVLM_ERR_FORMAT, "1099511627776"},
            {GW_I32, (uint32_t)-64, FASTVLM_ERR_FORMAT, "general.alignment has type int32"},
            {GW_F32, 0x42000000, FASTVLM_ERR_FORMAT, "general.alignment has type float32"},
            {GW_STRING, 0, FASTVLM_ERR_FORMAT, "general.alignment has type string"},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            gw w;
            size_t n;
            uint8_t *f;
            static const uint64_t ne[] = {4};
            static const float data[4] = {1, 2, 3, 4};
            gw_init(&w, 3);
            gw_key(&w, "general.alignment", cases[c].type);
            switch (cases[c].type) {
            case GW_U64: gw_u64(&w.kv, cases[c].value); break;
            case GW_STRING: gw_str(&w.kv, "32"); break;
            default: gw_u32(&w.kv, (uint32_t)cases[c].value); break;
            }
            w.alignment = cases[c].want == FASTVLM_OK ? cases[c].value : 32;
            gw_add_tensor(&w, "x", 0, 1, ne, data, sizeof data);
            f = gw_finish(&w, &n, NULL);
            if (cases[c].want == FASTVLM_OK) {
                opened o;
                fastvlm_error err;
                fastvlm_status st = open_copy(f, n, NAME, &o, &err);
                CHECK(st == FASTVLM_OK && fvlm_gguf_alignment(o.g) == cases[c].value,
                      "alignment case %zu: %s", c, err.message);
                close_copy(&o);
            } else {
                expect_fail(f, n, cases[c].want, cases[c].sub, "bad general.alignment");
            }
            free(f);
            gw_free(&w);
        }
    }
}

/* Every prefix of a valid file is invalid (the last tensor ends exactly at the end). */
static void test_truncation(void)
{
    size_t n;
    uint8_t *f = make_sample(3, 0, &n, NULL);
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        opened o;
        fastvlm_error err;
        fastvlm_status st = open_copy(f, len, HNAME, &o, &err);
        if ((st != FASTVLM_ERR_FORMAT || !strstr(err.message, HNAME) || o.g) && bad++ < 5)
            CHECK(0, "cut at %zu of %zu: status %s, \"%s\"", len, n, fastvlm_status_str(st),
                  err.message);
        close_copy(&o);
    }
    CHECK(bad == 0, "%d of %zu truncations not rejected as FORMAT", bad, n);
    {
        opened o;
        fastvlm_error err;
        CHECK(open_copy(f, n, NAME, &o, &err) == FASTVLM_OK, "whole file: %s", err.message);
        close_copy(&o);
    }
    /* NULL data with size 0 is an empty file, not a crash */
    {
        fvlm_gguf *g = (fvlm_gguf *)1;
        fastvlm_error err;
        CHECK(fvlm_gguf_open_memory(NULL, 0, HNAME, &g, &err) == FASTVLM_ERR_FORMAT && !g,
              "empty buffer: %s", err.message);
        CHECK(fvlm_gguf_open_memory(NULL, 10, HNAME, &g, &err) == FASTVLM_ERR_INVALID_ARG,
              "NULL data with a size");
    }
    free(f);
}

/* A header with given counts followed by `body`. */
static uint8_t *raw_file(uint32_t version, uint64_t n_tensors, uint64_t n_kv, const gw_buf *body,
                         size_t *n)
{
    gw_buf b = {0};
    gw_bytes(&b, "GGUF", 4);
    gw_u32(&b, version);
    gw_u64(&b, n_tensors);
    gw_u64(&b, n_kv);
    if (body)
        gw_bytes(&b, body->p, body->len);
    *n = b.len;
    return b.p;
}

static void test_hostile_header(void)
{
    gw_buf body = {0};
    uint8_t *f;
    size_t n;

    /* some padding so that the count checks, not plain truncation, decide */
    for (int i = 0; i < 64; i++)
        gw_u8(&body, 0);

    f = raw_file(3, 0, 0, &body, &n);
    memcpy(f, "GGUX", 4);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "bad magic", "bad magic");
    expect_fail(f, 3, FASTVLM_ERR_FORMAT, "3 bytes", "3-byte file");
    free(f);

    f = raw_file(1, 0, 0, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_UNSUPPORTED, "version 1", "version 1");
    free(f);
    f = raw_file(4, 0, 0, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_UNSUPPORTED, "version 4", "version 4");
    free(f);
    f = raw_file(0, 0, 0, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "version 0", "version 0");
    free(f);
    f = raw_file(0x03000000u, 0, 0, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_UNSUPPORTED, "big-endian", "byte-swapped version");
    free(f);

    f = raw_file(3, 0, (uint64_t)1 << 63, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "9223372036854775808", "n_kv = 2^63");
    free(f);
    f = raw_file(3, (uint64_t)1 << 63, 0, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "9223372036854775808", "n_tensors = 2^63");
    free(f);
    f = raw_file(3, UINT64_MAX, UINT64_MAX, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, NULL, "counts 2^64-1");
    free(f);
    f = raw_file(3, 0, 1u << 20, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "1048576 metadata entries", "n_kv at the limit, tiny file");
    free(f);
    f = raw_file(3, (1u << 20) + 1, 0, &body, &n);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "1048577", "n_tensors over the limit");
    free(f);
    f = raw_file(3, 3, 0, &body, &n);     /* 3 × 24 bytes > 64 */
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "cannot fit", "3 tensors in 64 bytes");
    free(f);

    /* a valid empty file: no keys, no tensors */
    {
        opened o;
        fastvlm_error err;
        f = raw_file(2, 0, 0, NULL, &n);
        CHECK(open_copy(f, n, NAME, &o, &err) == FASTVLM_OK && fvlm_gguf_n_kv(o.g) == 0 &&
              fvlm_gguf_n_tensors(o.g) == 0 && fvlm_gguf_alignment(o.g) == 32 &&
              fvlm_gguf_find_key(o.g, "x") == -1 && fvlm_gguf_find_tensor(o.g, "x") == -1,
              "empty file: %s", err.message);
        close_copy(&o);
        free(f);
    }
    gw_buf_free(&body);
}

/* One metadata entry written by `fill`, then 32 zero bytes, as a whole file. */
typedef void (*kv_fill)(gw_buf *b);
static void kv_case(kv_fill fill, uint64_t n_kv, fastvlm_status want, const char *sub,
                    const char *label)
{
    gw_buf body = {0};
    uint8_t *f;
    size_t n;
    fill(&body);
    for (int i = 0; i < 32; i++)
        gw_u8(&body, 0);
    f = raw_file(3, 0, n_kv, &body, &n);
    expect_fail(f, n, want, sub, label);
    free(f);
    gw_buf_free(&body);
}

static void kv_key_past_end(gw_buf *b) { gw_u64(b, 1000); gw_bytes(b, "abc", 3); }
static void kv_key_huge(gw_buf *b) { gw_u64(b, UINT64_MAX); }
static void kv_str_past_end(gw_buf *b) { gw_str(b, "k"); gw_u32(b, GW_STRING); gw_u64(b, 41); }
static void kv_bad_type(gw_buf *b) { gw_str(b, "k"); gw_u32(b, 13); gw_u32(b, 0); }
static void kv_arr_huge(gw_buf *b)
{
    gw_str(b, "k"); gw_u32(b, GW_ARRAY); gw_u32(b, GW_U32); gw_u64(b, (uint64_t)1 << 62);
}
static void kv_arr_wrap(gw_buf *b)   /* n · 4 wraps to 4 in 64 bits */
{
    gw_str(b, "k"); gw_u32(b, GW_ARRAY); gw_u32(b, GW_U32); gw_u64(b, ((uint64_t)1 << 62) + 1);
}
static void kv_arr_str_huge(gw_buf *b)
{
    gw_str(b, "k"); gw_u32(b, GW_ARRAY); gw_u32(b, GW_STRING); gw_u64(b, (uint64_t)1 << 61);
}
static void kv_arr_str_past_end(gw_buf *b)   /* 2 strings, the second one too long */
{
    gw_str(b, "k"); gw_u32(b, GW_ARRAY); gw_u32(b, GW_STRING); gw_u64(b, 2);
    gw_str(b, "ok"); gw_u64(b, 100);
}
static void kv_arr_bad_type(gw_buf *b)
{
    gw_str(b, "k"); gw_u32(b, GW_ARRAY); gw_u32(b, 77); gw_u64(b, 1);
}
static void kv_arr_nested(gw_buf *b)
{
    gw_str(b, "k"); gw_u32(b, GW_ARRAY); gw_u32(b, GW_ARRAY); gw_u64(b, 1);
    gw_u32(b, GW_U8); gw_u64(b, 1); gw_u8(b, 1);
}
static void kv_dup(gw_buf *b)
{
    gw_str(b, "dup.key"); gw_u32(b, GW_U8); gw_u8(b, 1);
    gw_str(b, "other"); gw_u32(b, GW_U8); gw_u8(b, 2);
    gw_str(b, "dup.key"); gw_u32(b, GW_U32); gw_u32(b, 3);
}
static void kv_key_garbage(gw_buf *b)   /* unprintable key, then a bad type: escaped in msg */
{
    gw_strn(b, "\x01\xff'", 3); gw_u32(b, 99);
}

static void test_hostile_kv(void)
{
    kv_case(kv_key_past_end, 1, FASTVLM_ERR_FORMAT, "1000 bytes", "key longer than the file");
    kv_case(kv_key_huge, 1, FASTVLM_ERR_FORMAT, "18446744073709551615", "key length 2^64-1");
    kv_case(kv_str_past_end, 1, FASTVLM_ERR_FORMAT, "41 bytes", "string value past the end");
    kv_case(kv_bad_type, 1, FASTVLM_ERR_FORMAT, "unknown value type 13", "value type 13");
    kv_case(kv_arr_huge, 1, FASTVLM_ERR_FORMAT, "4611686018427387904", "array count 2^62");
    kv_case(kv_arr_wrap, 1, FASTVLM_ERR_FORMAT, "4611686018427387905", "array count wrapping");
    kv_case(kv_arr_str_huge, 1, FASTVLM_ERR_FORMAT, "2305843009213693952", "string array 2^61");
    kv_case(kv_arr_str_past_end, 1, FASTVLM_ERR_FORMAT, "100 bytes", "array string past end");
    kv_case(kv_arr_bad_type, 1, FASTVLM_ERR_FORMAT, "unknown type 77", "array of type 77");
    kv_case(kv_arr_nested, 1, FASTVLM_ERR_UNSUPPORTED, "array of arrays", "nested array");
    kv_case(kv_dup, 3, FASTVLM_ERR_FORMAT, "duplicate metadata key 'dup.key' (entries 0 and 2)",
            "duplicate key");
    kv_case(kv_key_garbage, 1, FASTVLM_ERR_FORMAT, "'\\x01\\xff\\x27'", "garbage key escaped");
}

/* Field offsets inside tensor info `k` of a file from gw_finish (name, n_dims, ne, type,
 * offset), given its name length and n_dims. */
typedef struct { size_t n_dims, ne, type, offset; } ti_fields;
static ti_fields ti_at(size_t info_off, size_t name_len, unsigned n_dims)
{
    ti_fields r;
    r.n_dims = info_off + 8 + name_len;
    r.ne = r.n_dims + 4;
    r.type = r.ne + 8 * n_dims;
    r.offset = r.type + 4;
    return r;
}

static void test_hostile_tensors(void)
{
    size_t n, info[N_SAMPLE_TENSORS];
    uint8_t *base = make_sample(3, 0, &n, info);
    uint8_t *f = malloc(n);
    /* tensor 0: "tok.f32", f32, n_dims 2, ne {5, 3}; tensor 3: "w.q8_0" ne {64, 2} */
    ti_fields t0 = ti_at(info[0], 7, 2), t3 = ti_at(info[3], 6, 2);

#define RESET() memcpy(f, base, n)
    RESET();
    put_u32_at(f + t0.n_dims, 5);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "'tok.f32' has 5 dimensions", "n_dims 5");
    RESET();
    put_u32_at(f + t0.n_dims, 0xffffffffu);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "4294967295 dimensions", "n_dims 2^32-1");
    RESET();
    put_u64_at(f + t0.ne, (uint64_t)1 << 63);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "9223372036854775808", "ne[0] = 2^63");
    RESET();
    put_u64_at(f + t0.ne, (uint64_t)1 << 32);
    put_u64_at(f + t0.ne + 8, (uint64_t)1 << 32);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "overflows", "ne product 2^64");
    {
        /* zero elements, but the other dims overflow: tensor 4 has 4 dims */
        ti_fields t4 = ti_at(info[4], 6, 4);
        RESET();
        put_u64_at(f + t4.ne, 0);
        put_u64_at(f + t4.ne + 8, (uint64_t)1 << 62);
        put_u64_at(f + t4.ne + 16, (uint64_t)1 << 62);
        expect_fail(f, n, FASTVLM_ERR_FORMAT, "overflows", "zero dim with overflowing others");
        RESET();
        memcpy(f + info[4] + 8, "w.q8_0", 6);
        expect_fail(f, n, FASTVLM_ERR_FORMAT, "duplicate tensor name 'w.q8_0' (tensors 3 and 4)",
                    "duplicate tensor name");
        RESET();
        memcpy(f + info[4] + 8, "w.q\0_0", 6);
        expect_fail(f, n, FASTVLM_ERR_FORMAT, "NUL", "NUL in a tensor name");
    }
    RESET();
    put_u64_at(f + t0.ne, (uint64_t)1 << 62);     /* 2^62 f32 = 2^64 bytes */
    put_u64_at(f + t0.ne + 8, 1);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "'tok.f32'", "2^64 bytes");
    RESET();
    put_u32_at(f + t0.type, 99);
    expect_fail(f, n, FASTVLM_ERR_UNSUPPORTED, "type id 99", "unknown type id 99");
    RESET();
    put_u32_at(f + t0.type, 4);
    expect_fail(f, n, FASTVLM_ERR_UNSUPPORTED, "type id 4", "removed type id 4");
    RESET();
    put_u64_at(f + t3.ne, 48);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "48 elements, not a multiple of the block size 32",
                "q8_0 row of 48");
    RESET();
    put_u64_at(f + t0.offset, 1);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "offset 1 is not a multiple of the alignment 32",
                "misaligned offset");
    RESET();
    put_u64_at(f + t0.offset, (uint64_t)1 << 40);
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "extends past the end of the file", "offset 2^40");
    RESET();
    put_u64_at(f + t0.offset, UINT64_MAX - 31);   /* aligned; offset + size wraps */
    expect_fail(f, n, FASTVLM_ERR_FORMAT, "[data section offset 18446744073709551584, 60 bytes]",
                "offset 2^64-32");
    {
        /* the last tensor one element longer: 4 bytes past the end */
        ti_fields t6 = ti_at(info[6], 8, 1);
        char want[96];
        RESET();
        put_u64_at(f + t6.ne, 4);
        snprintf(want, sizeof want, "16 bytes] extends past the end of the file (%zu bytes)", n);
        expect_fail(f, n, FASTVLM_ERR_FORMAT, want, "last tensor 4 bytes too long");
    }
#undef RESET
    free(f);
    free(base);
}

/* Random bit flips over the sample: any status is fine, no crash or out-of-bounds read
 * (the ASan run), and whatever opens must walk cleanly. */
static void test_bitflips(void)
{
    size_t n;
    uint8_t *base = make_sample(3, 0, &n, NULL);
    uint32_t r = 1;
    int opened_ok = 0;
    float row[256];
    for (int iter = 0; iter < 4000; iter++) {
        opened o;
        fastvlm_error err;
        uint8_t *f = malloc(n);
        memcpy(f, base, n);
        for (int k = 0; k < 1 + iter % 3; k++) {
            r = r * 1103515245u + 12345u;
            f[(r >> 8) % n] ^= (uint8_t)(1u << ((r >> 4) % 8));
        }
        if (fvlm_gguf_open_memory(f, n, HNAME, &o.g, &err) == FASTVLM_OK) {
            opened_ok++;
            for (int64_t i = 0; i < fvlm_gguf_n_kv(o.g); i++) {
                fvlm_gguf_str s;
                int64_t v;
                for (uint64_t j = 0; j < fvlm_gguf_arr_n(o.g, i) && j < 16; j++) {
                    fvlm_gguf_arr_get_str(o.g, i, j, &s);
                    fvlm_gguf_arr_get_i64(o.g, i, j, &v);
                }
                fvlm_gguf_get_str(o.g, i, &s);
            }
            for (int64_t i = 0; i < fvlm_gguf_n_tensors(o.g); i++) {
                fvlm_tensor t;
                const fvlm_type_traits *tt;
                fvlm_gguf_tensor(o.g, i, &t);
                tt = fvlm_type_get_traits(t.type);
                if (tt && tt->supported && t.ne[0] <= 256 && fvlm_tensor_nrows(&t) > 0)
                    fvlm_dequantize_row(t.type, t.data, row, t.ne[0]);
            }
            fvlm_gguf_close(o.g);
        } else {
            CHECK(strstr(err.message, HNAME) != NULL, "message names the file: %s",
                  err.message);
        }
        free(f);
    }
    CHECK(opened_ok > 0 && opened_ok < 4000, "bit flips: %d of 4000 still opened", opened_ok);
    free(base);
}

static void test_req_opt(void)
{
    size_t n;
    uint8_t *f = make_sample(3, 0, &n, NULL);
    opened o;
    fastvlm_error err;
    uint32_t u;
    float x;
    bool b;
    fvlm_gguf_str s;
    fvlm_tensor t;
    const fvlm_gguf *g;

    if (open_copy(f, n, NAME, &o, &err) != FASTVLM_OK) {
        CHECK(0, "open: %s", err.message);
        free(f);
        return;
    }
    g = o.g;
#define MSG_HAS(sub) (strstr(err.message, NAME) && strstr(err.message, sub))
    CHECK(fvlm_gguf_req_u32(g, "t.u32", &u, &err) == FASTVLM_OK && u == 4000000000u, "req_u32");
    CHECK(fvlm_gguf_req_u32(g, "t.u8", &u, &err) == FASTVLM_OK && u == 200, "req_u32 from u8");
    CHECK(fvlm_gguf_req_u32(g, "t.i16", &u, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("metadata key 't.i16' value -30000 out of range"), "%s", err.message);
    CHECK(fvlm_gguf_req_u32(g, "t.u64", &u, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("value 9223372036854775813 out of range"), "%s", err.message);
    CHECK(fvlm_gguf_req_u32(g, "t.str", &u, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("metadata key 't.str' has type string, expected an integer"), "%s",
          err.message);
    CHECK(fvlm_gguf_req_u32(g, "a.u32", &u, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("has type array of uint32"), "%s", err.message);
    CHECK(fvlm_gguf_req_u32(g, "t.f32", &u, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("has type float32"), "%s", err.message);
    CHECK(fvlm_gguf_req_u32(g, "qwen2.block_count", &u, &err) == FASTVLM_ERR_MISSING &&
          MSG_HAS("metadata key 'qwen2.block_count' is missing"), "%s", err.message);
    u = 77;
    CHECK(fvlm_gguf_opt_u32(g, "absent", &u, &err) == FASTVLM_OK && u == 77, "opt_u32 absent");
    CHECK(fvlm_gguf_opt_u32(g, "t.u16", &u, &err) == FASTVLM_OK && u == 60000, "opt_u32");
    CHECK(fvlm_gguf_opt_u32(g, "t.str", &u, &err) == FASTVLM_ERR_FORMAT, "opt_u32 wrong type");

    CHECK(fvlm_gguf_req_f32(g, "t.f32", &x, &err) == FASTVLM_OK && x == 1.5f, "req_f32");
    CHECK(fvlm_gguf_req_f32(g, "t.f64", &x, &err) == FASTVLM_OK && x == 3.14159265f, "f64->f32");
    CHECK(fvlm_gguf_req_f32(g, "t.i32", &x, &err) == FASTVLM_OK && x == -2e9f, "int->f32");
    CHECK(fvlm_gguf_req_f32(g, "t.f64big", &x, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("out of range for float32"), "%s", err.message);
    CHECK(fvlm_gguf_req_f32(g, "t.bool", &x, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("has type bool, expected a number"), "%s", err.message);
    CHECK(fvlm_gguf_req_f32(g, "eps", &x, &err) == FASTVLM_ERR_MISSING &&
          MSG_HAS("'eps' is missing"), "%s", err.message);
    x = 9.0f;
    CHECK(fvlm_gguf_opt_f32(g, "eps", &x, &err) == FASTVLM_OK && x == 9.0f, "opt_f32 absent");
    CHECK(fvlm_gguf_opt_f32(g, "t.str", &x, &err) == FASTVLM_ERR_FORMAT, "opt_f32 wrong type");

    CHECK(fvlm_gguf_req_str(g, "t.str", &s, &err) == FASTVLM_OK &&
          fvlm_gguf_str_eq(s, "hello \"world\""), "req_str");
    CHECK(fvlm_gguf_req_str(g, "t.u8", &s, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("'t.u8' has type uint8, expected a string"), "%s", err.message);
    CHECK(fvlm_gguf_req_str(g, "general.architecture", &s, &err) == FASTVLM_ERR_MISSING &&
          MSG_HAS("'general.architecture' is missing"), "%s", err.message);

    b = false;
    CHECK(fvlm_gguf_opt_bool(g, "t.bool", &b, &err) == FASTVLM_OK && b, "opt_bool");
    b = true;
    CHECK(fvlm_gguf_opt_bool(g, "absent", &b, &err) == FASTVLM_OK && b, "opt_bool absent");
    CHECK(fvlm_gguf_opt_bool(g, "t.u8", &b, &err) == FASTVLM_ERR_FORMAT &&
          MSG_HAS("'t.u8' has type uint8, expected bool"), "%s", err.message);

    {
        static const int64_t ne_ok[] = {5, 3}, ne_bad[] = {5, 4}, ne_q4[] = {32, 1, 1, 2},
                             ne_q4k[] = {256}, ne_3d[] = {5, 3, 1};
        CHECK(fvlm_gguf_req_tensor(g, "tok.f32", 2, ne_ok, &t, &err) == FASTVLM_OK &&
              t.data && t.type == FVLM_TYPE_F32 && !memcmp(t.data, d_f32, 60), "req_tensor");
        CHECK(fvlm_gguf_req_tensor(g, "tok.f32", 3, ne_3d, &t, &err) == FASTVLM_OK,
              "trailing 1 dims match");
        CHECK(fvlm_gguf_req_tensor(g, "tok.f32", 2, ne_bad, &t, &err) == FASTVLM_ERR_SHAPE &&
              MSG_HAS("tensor 'tok.f32' has shape [5, 3], expected [5, 4]") && !t.data, "%s",
              err.message);
        CHECK(fvlm_gguf_req_tensor(g, "tok.f32", 1, ne_ok, &t, &err) == FASTVLM_ERR_SHAPE &&
              MSG_HAS("has shape [5, 3], expected [5]"), "%s", err.message);
        CHECK(fvlm_gguf_req_tensor(g, "w.q4_0", 4, ne_q4, &t, &err) == FASTVLM_OK &&
              t.type == FVLM_TYPE_Q4_0, "q4_0 4-d");
        CHECK(fvlm_gguf_req_tensor(g, "w.q4_0", 2, ne_q4, &t, &err) == FASTVLM_ERR_SHAPE &&
              MSG_HAS("has shape [32, 1, 1, 2], expected [32, 1]"), "%s", err.message);
        CHECK(fvlm_gguf_req_tensor(g, "w.q2_K", 1, ne_q4k, &t, &err) == FASTVLM_ERR_UNSUPPORTED &&
              MSG_HAS("tensor 'w.q2_K' has type q2_K, which this build cannot compute with") &&
              !t.data, "%s", err.message);
        CHECK(fvlm_gguf_req_tensor(g, "blk.3.ffn_up.weight", 2, ne_ok, &t, &err) ==
              FASTVLM_ERR_MISSING && MSG_HAS("tensor 'blk.3.ffn_up.weight' is missing"), "%s",
              err.message);
        CHECK(fvlm_gguf_opt_tensor(g, "absent", 2, ne_ok, &t, &err) == FASTVLM_OK && !t.data,
              "opt_tensor absent");
        CHECK(fvlm_gguf_opt_tensor(g, "tok.f32", 2, ne_ok, &t, &err) == FASTVLM_OK && t.data,
              "opt_tensor present");
        CHECK(fvlm_gguf_opt_tensor(g, "tok.f32", 2, ne_bad, &t, &err) == FASTVLM_ERR_SHAPE,
              "opt_tensor wrong shape");
        CHECK(fvlm_gguf_req_tensor(g, "tok.f32", 2, NULL, &t, &err) == FASTVLM_OK && t.data,
              "NULL ne skips the shape check");
        CHECK(fvlm_gguf_req_tensor(g, "tok.f32", 5, ne_ok, &t, &err) ==
              FASTVLM_ERR_INVALID_ARG, "n_dims 5 argument");
    }
#undef MSG_HAS
    close_copy(&o);
    free(f);
}

static void test_disk(void)
{
    char dir[] = "/tmp/test_gguf_XXXXXX", path[64];
    size_t n;
    uint8_t *f = make_sample(3, 64, &n, NULL);
    FILE *fp;
    fastvlm_error err;
    fvlm_gguf *g;

    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        free(f);
        return;
    }
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    fp = fopen(path, "wb");
    CHECK(fp && fwrite(f, 1, n, fp) == n && fclose(fp) == 0, "write %s", path);
    for (int use_mmap = 0; use_mmap < 2; use_mmap++) {
        g = NULL;
        CHECK(fvlm_gguf_open(path, use_mmap, &g, &err) == FASTVLM_OK, "open mmap=%d: %s",
              use_mmap, err.message);
        if (!g)
            continue;
        CHECK(!strcmp(fvlm_gguf_path(g), path), "path");
        check_sample(g, 3, 64);
        for (int64_t i = 0; i < fvlm_gguf_n_tensors(g); i++) {
            fvlm_tensor t;
            fvlm_gguf_tensor(g, i, &t);
            CHECK((uintptr_t)t.data % 64 == 0, "mmap=%d: tensor %s data not 64-aligned in memory",
                  use_mmap, t.name);
        }
        fvlm_gguf_close(g);
    }
    /* a truncated file on disk */
    fp = fopen(path, "wb");
    CHECK(fp && fwrite(f, 1, n - 1, fp) == n - 1 && fclose(fp) == 0, "write");
    for (int use_mmap = 0; use_mmap < 2; use_mmap++) {
        CHECK(fvlm_gguf_open(path, use_mmap, &g, &err) == FASTVLM_ERR_FORMAT && !g &&
              strstr(err.message, path), "truncated on disk: %s", err.message);
    }
    /* empty file, missing file, a directory */
    fp = fopen(path, "wb");
    CHECK(fp && fclose(fp) == 0, "write empty");
    CHECK(fvlm_gguf_open(path, true, &g, &err) == FASTVLM_ERR_FORMAT && strstr(err.message, path),
          "empty file: %s", err.message);
    unlink(path);
    CHECK(fvlm_gguf_open(path, true, &g, &err) == FASTVLM_ERR_IO && strstr(err.message, path) &&
          strstr(err.message, "No such file"), "missing file: %s", err.message);
    CHECK(fvlm_gguf_open(dir, false, &g, &err) == FASTVLM_ERR_IO && strstr(err.message, dir),
          "directory: %s", err.message);
    CHECK(fvlm_gguf_open(NULL, true, &g, &err) == FASTVLM_ERR_INVALID_ARG, "NULL path");
    rmdir(dir);
    free(f);
}

/* 1000 keys and 1000 tensors: every one found by name, absent names not found. */
static void test_many(void)
{
    enum { N = 1000 };
    static char names[N][32], keys[N][32];
    static float data[N];
    static const uint64_t ne[] = {1};
    gw w;
    size_t n;
    uint8_t *f;
    opened o;
    fastvlm_error err;
    int bad = 0;

    gw_init(&w, 3);
    gw_set_alignment(&w, 4);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "key.%d", i * 7919 % 100003);
        gw_kv_u32(&w, keys[i], (uint32_t)i);
        snprintf(names[i], sizeof names[i], "blk.%d.attn_q.weight", i);
        data[i] = (float)i;
        gw_add_tensor(&w, names[i], 0, 1, ne, &data[i], 4);
    }
    f = gw_finish(&w, &n, NULL);
    gw_free(&w);
    if (open_copy(f, n, NAME, &o, &err) != FASTVLM_OK) {
        CHECK(0, "open: %s", err.message);
    } else {
        for (int i = 0; i < N; i++) {
            fvlm_tensor t;
            uint32_t u = 0;
            int64_t ti = fvlm_gguf_find_tensor(o.g, names[i]);
            if ((ti != i || !fvlm_gguf_tensor(o.g, ti, &t) || *(const float *)t.data != (float)i ||
                 fvlm_gguf_req_u32(o.g, keys[i], &u, &err) != FASTVLM_OK || u != (uint32_t)i ||
                 fvlm_gguf_find_key(o.g, keys[i]) != i + 1) && bad++ < 3)
                CHECK(0, "entry %d not found right", i);
        }
        CHECK(fvlm_gguf_find_tensor(o.g, "blk.1000.attn_q.weight") == -1 &&
              fvlm_gguf_find_key(o.g, "key.-1") == -1, "absent among many");
        CHECK(bad == 0, "%d of %d lookups wrong", bad, N);
    }
    close_copy(&o);
    free(f);
}

int main(void)
{
    test_roundtrip();
    test_alignment();
    test_truncation();
    test_hostile_header();
    test_hostile_kv();
    test_hostile_tensors();
    test_bitflips();
    test_req_opt();
    test_disk();
    test_many();
    return check_summary("test_gguf");
}
