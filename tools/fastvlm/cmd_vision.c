/*
 * cmd_vision.c — `fastvlm vision`: runs the vision tower (+ projector) of an mmproj GGUF on
 * one image and writes the features, for equivalence tests and inspection.
 *
 *   fastvlm vision --mmproj P.gguf (--image FILE | --pixels RAW.f32) [--size S] -o OUT.f32
 *                  [--tower-only] [-t N] [--dump-pixels P.f32]
 *
 * --image decodes a PNG/JPEG and preprocesses it like predict.py (engine/image.c);
 * --pixels takes an already prepared planar float32 [3][S][S] (file size checked).
 * Output: little-endian float32 [tokens][width], tokens = (S/64)² in raster order, width =
 * the tower's embed_dim (--tower-only) or the projector's n_embd. --dump-pixels writes the
 * planar input the tower saw. The mmproj is used alone (no language model): this command
 * drives the engine's internal vision API directly.
 * Not a captioning tool: that is `fastvlm run`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "gguf.h"
#include "imageio.h"
#include "threadpool.h"
#include "vision.h"

static const char *const CMD = "vision";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastvlm vision --mmproj P.gguf (--image FILE | --pixels RAW.f32) -o OUT.f32 "
            "[options]\n"
            "      --mmproj FILE     vision tower + projector GGUF\n"
            "      --image FILE      PNG or JPEG, preprocessed like predict.py\n"
            "      --pixels FILE     planar float32 [3 x S x S], already preprocessed\n"
            "      --size S          input size, a multiple of 64 (default: the file's)\n"
            "  -o, --output FILE     float32 [tokens x width] output\n"
            "      --tower-only      write the tower output (embed_dim wide), not the projector's\n"
            "      --dump-pixels FILE  also write the planar input\n"
            "  -t, --threads N       threads (default 2)\n");
}

/* Writes n floats little-endian. */
static int write_f32(const char *path, const float *x, size_t n)
{
    const uint16_t probe = 1;
    FILE *f = fopen(path, "wb");
    size_t done = 0;
    if (!f)
        return -1;
    if (*(const uint8_t *)&probe == 1) {
        done = fwrite(x, sizeof(float), n, f);
    } else {
        for (; done < n; done++) {
            uint8_t b[4], r[4];
            memcpy(b, &x[done], 4);
            r[0] = b[3], r[1] = b[2], r[2] = b[1], r[3] = b[0];
            if (fwrite(r, 1, 4, f) != 4)
                break;
        }
    }
    if (fclose(f) != 0 || done != n)
        return -1;
    return 0;
}

/* Reads exactly 3·size·size little-endian floats. */
static float *read_pixels(const char *path, int32_t size, char *msg, size_t msg_len)
{
    const size_t n = (size_t)3 * (size_t)size * (size_t)size;
    const uint16_t probe = 1;
    FILE *f = fopen(path, "rb");
    float *x;
    long len;

    if (!f) {
        snprintf(msg, msg_len, "%s: cannot open", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(msg, msg_len, "%s: cannot read", path);
        fclose(f);
        return NULL;
    }
    if ((unsigned long)len != n * sizeof(float)) {
        snprintf(msg, msg_len, "%s: %ld bytes, expected %zu (planar float32 3x%dx%d)", path, len,
                 n * sizeof(float), size, size);
        fclose(f);
        return NULL;
    }
    x = malloc(n * sizeof(float));
    if (!x || fread(x, sizeof(float), n, f) != n) {
        snprintf(msg, msg_len, "%s: cannot read %zu floats", path, n);
        free(x);
        fclose(f);
        return NULL;
    }
    fclose(f);
    if (*(const uint8_t *)&probe != 1) {
        for (size_t i = 0; i < n; i++) {
            uint8_t b[4], r[4];
            memcpy(b, &x[i], 4);
            r[0] = b[3], r[1] = b[2], r[2] = b[1], r[3] = b[0];
            memcpy(&x[i], r, 4);
        }
    }
    return x;
}

int cmd_vision(int argc, char **argv)
{
    const char *mmproj = NULL, *image = NULL, *pixels = NULL, *output = NULL, *dump = NULL;
    long size = 0, threads = 2;
    bool tower_only = false;
    fvlm_gguf *g = NULL;
    fvlm_vision *v = NULL;
    fvlm_pool *pool = NULL;
    fastvlm_model_info info;
    fastvlm_error err;
    float *planar = NULL, *out = NULL;
    uint8_t *rgb = NULL;
    int32_t n_tok, width;
    double t0, t1;
    int rc = 1;

    fvlm_clear_error(&err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL() CLI_NEED_VAL(CMD, a, val, i)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--mmproj")) {
            NEED_VAL();
            mmproj = val;
        } else if (!strcmp(a, "--image")) {
            NEED_VAL();
            image = val;
        } else if (!strcmp(a, "--pixels")) {
            NEED_VAL();
            pixels = val;
        } else if (!strcmp(a, "--size")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, 1 << 16, &size))
                return cli_usage_error(CMD, "bad --size '%s'", val);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            NEED_VAL();
            output = val;
        } else if (!strcmp(a, "--dump-pixels")) {
            NEED_VAL();
            dump = val;
        } else if (!strcmp(a, "--tower-only")) {
            tower_only = true;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, 256, &threads))
                return cli_usage_error(CMD, "bad --threads '%s'", val);
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef NEED_VAL
    }
    if (!mmproj || !output || (!image == !pixels))
        return cli_usage_error(CMD, "need --mmproj, -o and exactly one of --image / --pixels");
    if (pixels && !size)
        return cli_usage_error(CMD, "--pixels needs --size");

    if (fvlm_gguf_open(mmproj, true, &g, &err) != FASTVLM_OK ||
        fvlm_vision_load(g, &v, &err) != FASTVLM_OK)
        goto fail;
    memset(&info, 0, sizeof info);
    fvlm_vision_fill_info(v, &info);
    if (!size)
        size = info.image_size;
    if (size % info.patch_stride) {
        fvlm_set_error(&err, FASTVLM_ERR_IMAGE, "--size %ld is not a multiple of %d", size,
                       info.patch_stride);
        goto fail;
    }

    if (pixels) {
        planar = read_pixels(pixels, (int32_t)size, err.message, sizeof err.message);
        if (!planar)
            goto fail;
    } else {
        int32_t w, h;
        if (fvlm_image_load(image, &rgb, &w, &h, err.message, sizeof err.message))
            goto fail;
        planar = malloc(sizeof(float) * 3 * (size_t)size * (size_t)size);
        if (!planar) {
            fvlm_set_error(&err, FASTVLM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (fvlm_image_preprocess(rgb, w, h, (size_t)w * 3, (int32_t)size, info.image_pad_rgb,
                                  info.image_rescale, info.image_mean, info.image_std, planar,
                                  &err) != FASTVLM_OK)
            goto fail;
    }
    if (dump && write_f32(dump, planar, (size_t)3 * size * size)) {
        fvlm_set_error(&err, FASTVLM_ERR_IO, "%s: cannot write", dump);
        goto fail;
    }

    n_tok = (int32_t)((size / info.patch_stride) * (size / info.patch_stride));
    width = fvlm_vision_out_dim(v, tower_only);
    out = malloc(sizeof(float) * (size_t)n_tok * (size_t)width);
    pool = fvlm_pool_new((int)threads);
    if (!out || !pool) {
        fvlm_set_error(&err, FASTVLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    t0 = fvlm_time_ms();
    if (fvlm_vision_encode(v, pool, planar, (int32_t)size, tower_only, out, NULL, NULL, &err) !=
        FASTVLM_OK)
        goto fail;
    t1 = fvlm_time_ms();
    if (write_f32(output, out, (size_t)n_tok * (size_t)width)) {
        fvlm_set_error(&err, FASTVLM_ERR_IO, "%s: cannot write", output);
        goto fail;
    }
    fprintf(stderr, "fastvlm vision: %d tokens x %d (%s) -> %s, %.1f ms\n", n_tok, width,
            tower_only ? "tower" : "projector", output, t1 - t0);
    rc = 0;
    goto done;

fail:
    rc = cli_fail(CMD, &err);
done:
    fvlm_pool_free(pool);
    free(out);
    free(planar);
    free(rgb);
    fvlm_vision_free(v);
    fvlm_gguf_close(g);
    return rc;
}
