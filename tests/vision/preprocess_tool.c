/*
 * preprocess_tool.c — test driver for fvlm_image_preprocess(): reads raw interleaved RGB8
 * (height rows of `stride` bytes) and writes the planar float32 [3][size][size] result, so
 * test_preprocess.py can compare it with PIL. Not a user tool.
 *
 * usage: preprocess_tool IN.rgb WIDTH HEIGHT STRIDE SIZE OUT.f32
 *                        PAD_R PAD_G PAD_B RESCALE MEAN_R MEAN_G MEAN_B STD_R STD_G STD_B
 * Exit 0 on success, 1 on a preprocessing error (message on stderr), 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>

#include "vision.h"

int main(int argc, char **argv)
{
    float pad[3], mean[3], std[3], rescale;
    long w, h, stride, size;
    size_t n_in, n_out;
    unsigned char *rgb;
    float *out;
    FILE *f;
    fastvlm_error err;
    fastvlm_status st;

    if (argc != 17) {
        fprintf(stderr, "usage: %s IN W H STRIDE SIZE OUT PAD*3 RESCALE MEAN*3 STD*3\n", argv[0]);
        return 2;
    }
    w = atol(argv[2]);
    h = atol(argv[3]);
    stride = atol(argv[4]);
    size = atol(argv[5]);
    for (int c = 0; c < 3; c++) {
        pad[c] = strtof(argv[7 + c], NULL);
        mean[c] = strtof(argv[11 + c], NULL);
        std[c] = strtof(argv[14 + c], NULL);
    }
    rescale = strtof(argv[10], NULL);
    n_in = (h > 0 && stride > 0) ? (size_t)h * (size_t)stride : 1;
    rgb = calloc(n_in, 1);
    n_out = size > 0 ? (size_t)3 * (size_t)size * (size_t)size : 1;
    out = calloc(n_out, sizeof(float));
    if (!rgb || !out)
        return 2;
    f = fopen(argv[1], "rb");
    if (!f || fread(rgb, 1, n_in, f) != n_in) {
        fprintf(stderr, "%s: cannot read %zu bytes\n", argv[1], n_in);
        return 2;
    }
    fclose(f);
    st = fvlm_image_preprocess(rgb, (int32_t)w, (int32_t)h, (size_t)stride, (int32_t)size, pad,
                               rescale, mean, std, out, &err);
    if (st != FASTVLM_OK) {
        fprintf(stderr, "preprocess_tool: %s\n", err.message);
        free(rgb);
        free(out);
        return 1;
    }
    f = fopen(argv[6], "wb");
    if (!f || fwrite(out, sizeof(float), n_out, f) != n_out) {
        fprintf(stderr, "%s: cannot write\n", argv[6]);
        return 2;
    }
    fclose(f);
    free(rgb);
    free(out);
    return 0;
}
