/*
 * test_gguf_info.c — `fastvlm info` (tools/fastvlm/cmd_info.c) run as a process on a GGUF
 * written by the tests' writer: header line, each key's type and value (escaping, the
 * string and array cut-offs, --full), the tensor table (type, shape, file offset found by
 * searching the file for the tensor's bytes, size), totals, and the exit codes (0 ok,
 * 1 bad file, 2 usage).
 *
 * Not a test of the reader itself (test_gguf.c). Needs FASTVLM_CLI (set by meson).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "gguf_writer.h"

static const char *cli;
static char dir[] = "/tmp/test_gguf_info_XXXXXX";

/* Runs `cli args`, returns the exit code; stdout and stderr into malloc'd strings. */
static int run(const char *args, char **out, char **err)
{
    char cmd[1024], po[128], pe[128];
    int rc;
    snprintf(po, sizeof po, "%s/out.txt", dir);
    snprintf(pe, sizeof pe, "%s/err.txt", dir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", cli, args, po, pe);
    rc = system(cmd);
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(k ? pe : po, "rb");
        char *buf = NULL;
        long n = 0;
        if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)n + 1);
            n = (long)fread(buf, 1, (size_t)n, f);
            buf[n] = '\0';
        }
        if (f)
            fclose(f);
        if (!buf) {
            buf = malloc(1);
            buf[0] = '\0';
        }
        *(k ? err : out) = buf;
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The line of `text` that contains `a`, copied into buf (or "" if none). */
static const char *line_with(const char *text, const char *a, char *buf, size_t cap)
{
    const char *p = strstr(text, a), *s, *e;
    buf[0] = '\0';
    if (!p)
        return buf;
    for (s = p; s > text && s[-1] != '\n'; s--)
        ;
    e = strchr(p, '\n');
    if (!e)
        e = p + strlen(p);
    snprintf(buf, cap, "%.*s", (int)(e - s), s);
    return buf;
}

#define LINE_HAS(text, anchor, sub)                                                     \
    do {                                                                              \
        char lb_[1024];                                                               \
        line_with(text, anchor, lb_, sizeof lb_);                                     \
        CHECK(strstr(lb_, sub) != NULL, "line with '%s' should contain '%s': [%s]",   \
              anchor, sub, lb_);                                                      \
    } while (0)

static size_t find_bytes(const uint8_t *hay, size_t n, const void *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k))
            return i;
    return (size_t)-1;
}

int main(void)
{
    char path[128], args[512], want[256];
    char *out, *err, *out2, *err2;
    gw w;
    size_t n;
    uint8_t *file;
    FILE *fp;
    float f32[6];
    uint8_t q8[2 * 34];
    char longstr[201];
    static const uint64_t ne_f32[] = {3, 2}, ne_q8[] = {32, 2};
    int rc;

    cli = getenv("FASTVLM_CLI");
    if (!cli || !*cli) {
        fprintf(stderr, "FASTVLM_CLI is not set\n");
        return 1;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/m.gguf", dir);

    for (int i = 0; i < 6; i++)
        f32[i] = 0.5f + (float)i;
    for (size_t i = 0; i < sizeof q8; i++)
        q8[i] = (uint8_t)(0xa0 + i);
    memset(longstr, 'x', 200);
    longstr[200] = '\0';

    gw_init(&w, 3);
    gw_set_alignment(&w, 64);
    gw_kv_str(&w, "general.architecture", "qwen2");
    gw_kv_u32(&w, "qwen2.block_count", 24);
    gw_kv_i32(&w, "t.neg", -7);
    gw_kv_f32(&w, "t.eps", 1e-6f);
    gw_kv_f64(&w, "t.f64", 0.1);
    gw_kv_bool(&w, "t.flag", true);
    gw_kv_u64(&w, "t.big", 18446744073709551615ull);
    gw_kv_str(&w, "t.quote", "say \"hi\"\n\tback\\slash \x01");
    gw_kv_str(&w, "t.long", longstr);
    gw_kv_arr(&w, "t.toks", GW_STRING, 3);
    gw_str(&w.kv, "a");
    gw_str(&w.kv, "");
    gw_str(&w.kv, "\xc4\xa0the");
    gw_kv_arr(&w, "t.ids", GW_U32, 20);
    for (uint32_t i = 0; i < 20; i++)
        gw_u32(&w.kv, 100 + i);
    gw_kv_arr(&w, "t.scores", GW_F32, 2);
    gw_f32(&w.kv, -1.5f);
    gw_f32(&w.kv, 2.0f);
    gw_kv_arr(&w, "t.bools", GW_BOOL, 2);
    gw_u8(&w.kv, 1);
    gw_u8(&w.kv, 0);
    gw_add_tensor(&w, "token_embd.weight", 8, 2, ne_q8, q8, sizeof q8);
    gw_add_tensor(&w, "output_norm.weight", 0, 2, ne_f32, f32, sizeof f32);
    file = gw_finish(&w, &n, NULL);
    gw_free(&w);
    fp = fopen(path, "wb");
    CHECK(fp && fwrite(file, 1, n, fp) == n && fclose(fp) == 0, "write %s", path);

    /* --- the default listing --- */
    snprintf(args, sizeof args, "info '%s'", path);
    rc = run(args, &out, &err);
    CHECK(rc == 0, "exit %d, stderr: %s", rc, err);
    snprintf(want, sizeof want, "(%zu bytes)", n);
    LINE_HAS(out, "file ", want);
    LINE_HAS(out, "version 3", "alignment 64");
    LINE_HAS(out, "metadata", "14 keys");
    LINE_HAS(out, "general.alignment", "uint32");
    LINE_HAS(out, "general.alignment ", " 64");
    LINE_HAS(out, "general.architecture", "string");
    LINE_HAS(out, "general.architecture", "\"qwen2\"");
    LINE_HAS(out, "qwen2.block_count", " 24");
    LINE_HAS(out, "t.neg", "int32");
    LINE_HAS(out, "t.neg", " -7");
    LINE_HAS(out, "t.eps", "9.99999997e-07");
    LINE_HAS(out, "t.f64", "0.10000000000000001");
    LINE_HAS(out, "t.flag", "true");
    LINE_HAS(out, "t.big", "18446744073709551615");
    LINE_HAS(out, "t.quote", "\"say \\\"hi\\\"\\n\\tback\\\\slash \\x01\"");
    LINE_HAS(out, "t.long", "xxx...\" (200 bytes)");
    {
        char lb[1024];
        line_with(out, "t.long", lb, sizeof lb);
        CHECK(strstr(lb, longstr) == NULL, "long string must be cut: %s", lb);
    }
    LINE_HAS(out, "t.toks", "string[3]");
    LINE_HAS(out, "t.toks", "[\"a\", \"\", \"\xc4\xa0the\"]");
    LINE_HAS(out, "t.ids", "uint32[20]");
    LINE_HAS(out, "t.ids", "[100, 101, 102, 103, 104, 105, 106, 107, ... (12 more)]");
    LINE_HAS(out, "t.scores", "[-1.5, 2]");
    LINE_HAS(out, "t.bools", "[true, false]");
    LINE_HAS(out, "tensors", "2");
    /* tensor rows: type, shape, file offset (found independently), bytes */
    snprintf(want, sizeof want, " %zu ", find_bytes(file, n, q8, sizeof q8));
    LINE_HAS(out, "token_embd.weight", "q8_0");
    LINE_HAS(out, "token_embd.weight", "[32, 2]");
    LINE_HAS(out, "token_embd.weight", want);
    LINE_HAS(out, "token_embd.weight", " 68");
    snprintf(want, sizeof want, " %zu ", find_bytes(file, n, f32, sizeof f32));
    LINE_HAS(out, "output_norm.weight", "f32");
    LINE_HAS(out, "output_norm.weight", "[3, 2]");
    LINE_HAS(out, "output_norm.weight", want);
    LINE_HAS(out, "output_norm.weight", " 24");
    LINE_HAS(out, "total", "2 tensors, 70 elements, 92 bytes");

    /* --- --no-mmap prints the same --- */
    snprintf(args, sizeof args, "info --no-mmap '%s'", path);
    rc = run(args, &out2, &err2);
    CHECK(rc == 0 && !strcmp(out, out2), "--no-mmap output differs");
    free(out2);
    free(err2);
    free(out);
    free(err);

    /* --- --full: whole strings, every element --- */
    snprintf(args, sizeof args, "info --full '%s'", path);
    rc = run(args, &out, &err);
    CHECK(rc == 0, "--full exit %d", rc);
    LINE_HAS(out, "t.long", longstr);
    LINE_HAS(out, "t.ids", "117, 118, 119]");
    free(out);
    free(err);

    /* --- errors: bad file -> 1 naming it; usage -> 2 --- */
    fp = fopen(path, "wb");
    CHECK(fp && fwrite(file, 1, n - 1, fp) == n - 1 && fclose(fp) == 0, "rewrite");
    snprintf(args, sizeof args, "info '%s'", path);
    rc = run(args, &out, &err);
    CHECK(rc == 1 && strstr(err, path) && strstr(err, "extends past the end"),
          "truncated: exit %d, stderr %s", rc, err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "info '%s/absent.gguf'", dir);
    rc = run(args, &out, &err);
    CHECK(rc == 1 && strstr(err, "absent.gguf"), "missing: exit %d, stderr %s", rc, err);
    free(out);
    free(err);
    rc = run("info", &out, &err);
    CHECK(rc == 2 && strstr(err, "no GGUF file"), "no file: exit %d, %s", rc, err);
    free(out);
    free(err);
    rc = run("info --bogus x.gguf", &out, &err);
    CHECK(rc == 2 && strstr(err, "--bogus"), "unknown option: exit %d, %s", rc, err);
    free(out);
    free(err);
    rc = run("info a.gguf b.gguf", &out, &err);
    CHECK(rc == 2, "two files: exit %d", rc);
    free(out);
    free(err);
    rc = run("info --help", &out, &err);
    CHECK(rc == 0 && strstr(out, "usage: fastvlm info"), "--help: exit %d", rc);
    free(out);
    free(err);

    snprintf(args, sizeof args, "%s/out.txt", dir);
    unlink(args);
    snprintf(args, sizeof args, "%s/err.txt", dir);
    unlink(args);
    unlink(path);
    rmdir(dir);
    free(file);
    return check_summary("test_gguf_info");
}
