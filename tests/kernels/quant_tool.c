/*
 * quant_tool.c — a helper of test_quant_ref.py: runs tensor.c's row conversions on files.
 *   quant_tool dequant TYPE IN OUT   raw blocks of TYPE → float32 (little-endian)
 *   quant_tool quant TYPE IN OUT     float32 → raw blocks of TYPE
 * TYPE is a name of fvlm_type_get_traits ("q4_K", ...). Exits non-zero on any error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

static void *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    void *buf = NULL;
    long len;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
        *n = (size_t)len;
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    fvlm_type type = FVLM_TYPE_COUNT;
    size_t n_in = 0;
    void *in, *out;
    size_t n_out;
    int64_t n_el;

    if (argc != 5) {
        fprintf(stderr, "usage: quant_tool dequant|quant TYPE IN OUT\n");
        return 2;
    }
    for (uint32_t t = 0; t < FVLM_TYPE_COUNT; t++) {
        const fvlm_type_traits *tt = fvlm_type_get_traits(t);
        if (tt && !strcmp(tt->name, argv[2]))
            type = (fvlm_type)t;
    }
    const fvlm_type_traits *tt = fvlm_type_get_traits((uint32_t)type);
    if (!tt || !tt->supported || !(in = read_all(argv[3], &n_in))) {
        fprintf(stderr, "quant_tool: bad type or input\n");
        return 1;
    }
    if (!strcmp(argv[1], "dequant")) {
        n_el = (int64_t)(n_in / tt->type_size * tt->block_size);
        n_out = (size_t)n_el * sizeof(float);
        out = malloc(n_out + 1);
        fvlm_dequantize_row(type, in, out, n_el);
    } else {
        n_el = (int64_t)(n_in / sizeof(float));
        n_out = fvlm_row_size(type, n_el);
        out = malloc(n_out + 1);
        if (fvlm_quantize_row(type, in, out, n_el) != n_out) {
            fprintf(stderr, "quant_tool: cannot quantize %lld floats to %s\n", (long long)n_el,
                    tt->name);
            return 1;
        }
    }
    FILE *f = fopen(argv[4], "wb");
    if (!f || fwrite(out, 1, n_out, f) != n_out || fclose(f) != 0) {
        fprintf(stderr, "quant_tool: cannot write %s\n", argv[4]);
        return 1;
    }
    free(in);
    free(out);
    return 0;
}
