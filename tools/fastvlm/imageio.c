/*
 * imageio.c — PNG (libpng) and JPEG (libjpeg) decoding to interleaved RGB8 for the
 * `fastvlm` tool, matching what PIL's Image.open(path).convert("RGB") gives predict.py:
 *   PNG : palette → its RGB entries (tRNS ignored), grey → R=G=B (1/2/4-bit scaled to
 *         0..255), alpha dropped (not composited), 16-bit → high byte, gAMA ignored.
 *         (PIL turns 16-bit *grey* into mode "I" and clips it to 0..255 instead; such files
 *         are rare and differ here.)
 *   JPEG: libjpeg's default decode (islow DCT, fancy upsampling) to RGB; grey expanded;
 *         CMYK/YCCK converted with PIL's formula (Adobe files stored inverted).
 * Sizes are checked from the header against FASTVLM_MAX_IMAGE_PIXELS before any pixel
 * buffer is allocated. Not here: resizing and normalisation (engine/image.c).
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FVLM_HAVE_PNG
#include <png.h>
#endif
#ifdef FVLM_HAVE_JPEG
#include <jpeglib.h>
#include <jerror.h>
#endif

#include "fastvlm.h"
#include "imageio.h"

/* Refuses sizes the engine would refuse anyway, before allocating for them. */
static int check_size(const char *path, uint64_t w, uint64_t h, char *msg, size_t msg_len)
{
    if (w == 0 || h == 0) {
        snprintf(msg, msg_len, "%s: image has no pixels (%llux%llu)", path,
                 (unsigned long long)w, (unsigned long long)h);
        return -1;
    }
    if (w * h > FASTVLM_MAX_IMAGE_PIXELS) {
        snprintf(msg, msg_len, "%s: image %llux%llu has %llu pixels, over the limit of %u "
                 "(FASTVLM_MAX_IMAGE_PIXELS)", path, (unsigned long long)w,
                 (unsigned long long)h, (unsigned long long)(w * h), FASTVLM_MAX_IMAGE_PIXELS);
        return -1;
    }
    if (w > FASTVLM_MAX_IMAGE_SIDE || h > FASTVLM_MAX_IMAGE_SIDE) {
        snprintf(msg, msg_len, "%s: image %llux%llu: a side is over the limit of %d pixels "
                 "(FASTVLM_MAX_IMAGE_SIDE)", path, (unsigned long long)w,
                 (unsigned long long)h, FASTVLM_MAX_IMAGE_SIDE);
        return -1;
    }
    return 0;
}

/* ---- PNG ------------------------------------------------------------------------------ */

#ifdef FVLM_HAVE_PNG
typedef struct {
    jmp_buf jb;
    const char *path;
    char *msg;
    size_t msg_len;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp m)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, c->msg_len, "%s: bad PNG: %s", c->path, m);
    longjmp(c->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp m)
{
    (void)png;
    (void)m;
}

static int load_png(FILE *f, const char *path, uint8_t **out, int32_t *ow, int32_t *oh,
                    char *msg, size_t msg_len)
{
    png_ctx ctx;
    png_structp png;
    png_infop info = NULL;
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    png_uint_32 w, h;
    int depth, color;

    ctx.path = path;
    ctx.msg = msg;
    ctx.msg_len = msg_len;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!png || !(info = png_create_info_struct(png))) {
        snprintf(msg, msg_len, "%s: out of memory", path);
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return -1;
    }
    if (setjmp(ctx.jb)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(buf);
        free((void *)rows);
        return -1;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    w = png_get_image_width(png, info);
    h = png_get_image_height(png, info);
    if (check_size(path, w, h, msg, msg_len)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    depth = png_get_bit_depth(png, info);
    color = png_get_color_type(png, info);
    if (depth == 16)
        png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    /* palette expansion also turns tRNS into an alpha channel: drop it like PIL's RGB */
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        snprintf(msg, msg_len, "%s: unsupported PNG layout (color type %d, depth %d)", path,
                 color, depth);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    buf = malloc((size_t)w * h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!buf || !rows) {
        snprintf(msg, msg_len, "%s: out of memory for %ux%u pixels", path, (unsigned)w,
                 (unsigned)h);
        longjmp(ctx.jb, 1);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = buf + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    free((void *)rows);
    *out = buf;
    *ow = (int32_t)w;
    *oh = (int32_t)h;
    return 0;
}
#endif

/* ---- JPEG ----------------------------------------------------------------------------- */

#ifdef FVLM_HAVE_JPEG
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    bool truncated;           /* libjpeg only warns at a premature end; PIL refuses */
} jpeg_err;

static void jpeg_on_error(j_common_ptr c)
{
    longjmp(((jpeg_err *)c->err)->jb, 1);
}

static void jpeg_on_message(j_common_ptr c)
{
    (void)c;
}

static void jpeg_on_emit(j_common_ptr c, int level)
{
    jpeg_err *e = (jpeg_err *)c->err;
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF)
        e->truncated = true;
}

/* PIL's CMYK → RGB: channel = (255 − k) − (255 − k)·c/255 with its rounding division. */
static uint8_t cmyk_channel(unsigned c, unsigned k)
{
    const unsigned nk = 255 - k, t = c * nk + 128;
    return (uint8_t)(nk - (((t >> 8) + t) >> 8));
}

static int load_jpeg(FILE *f, const char *path, uint8_t **out, int32_t *ow, int32_t *oh,
                     char *msg, size_t msg_len)
{
    struct jpeg_decompress_struct ci;
    jpeg_err je;
    uint8_t *volatile buf = NULL;
    uint8_t *volatile line = NULL;
    volatile int cmyk = 0;

    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_on_error;
    je.pub.output_message = jpeg_on_message;
    je.pub.emit_message = jpeg_on_emit;
    je.truncated = false;
    if (setjmp(je.jb)) {
        char m[JMSG_LENGTH_MAX];
        je.pub.format_message((j_common_ptr)&ci, m);
        snprintf(msg, msg_len, "%s: bad JPEG: %s", path, m);
        jpeg_destroy_decompress(&ci);
        free(buf);
        free(line);
        return -1;
    }
    jpeg_create_decompress(&ci);
    jpeg_stdio_src(&ci, f);
    jpeg_read_header(&ci, TRUE);
    if (check_size(path, ci.image_width, ci.image_height, msg, msg_len)) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
        ci.out_color_space = JCS_CMYK;
        cmyk = 1;
    } else {
        ci.out_color_space = JCS_RGB;
    }
    jpeg_start_decompress(&ci);
    if (ci.output_components != (cmyk ? 4 : 3)) {
        snprintf(msg, msg_len, "%s: unsupported JPEG (%d components)", path,
                 ci.output_components);
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    buf = malloc((size_t)ci.output_width * ci.output_height * 3);
    line = cmyk ? malloc((size_t)ci.output_width * 4) : NULL;
    if (!buf || (cmyk && !line)) {
        snprintf(msg, msg_len, "%s: out of memory", path);
        jpeg_destroy_decompress(&ci);
        free(buf);
        free(line);
        return -1;
    }
    while (ci.output_scanline < ci.output_height) {
        uint8_t *row = buf + (size_t)ci.output_scanline * ci.output_width * 3;
        JSAMPROW rp = cmyk ? line : row;
        jpeg_read_scanlines(&ci, &rp, 1);
        if (cmyk) {
            /* Adobe's CMYK JPEGs store inverted values (PIL reads them as "CMYK;I") */
            const unsigned inv = ci.saw_Adobe_marker ? 255 : 0;
            for (JDIMENSION x = 0; x < ci.output_width; x++) {
                const unsigned k = line[4 * x + 3] ^ inv;
                for (int c = 0; c < 3; c++)
                    row[3 * x + c] = cmyk_channel(line[4 * x + c] ^ inv, k);
            }
        }
    }
    if (je.truncated) {
        snprintf(msg, msg_len, "%s: bad JPEG: the file is truncated", path);
        jpeg_destroy_decompress(&ci);
        free(buf);
        free(line);
        return -1;
    }
    *ow = (int32_t)ci.output_width;
    *oh = (int32_t)ci.output_height;
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(line);
    *out = buf;
    return 0;
}
#endif

int fvlm_image_load(const char *path, uint8_t **rgb, int32_t *width, int32_t *height,
                    char *msg, size_t msg_len)
{
    unsigned char magic[8];
    size_t n;
    int rc = -1;
    FILE *f = fopen(path, "rb");

    *rgb = NULL;
    if (!f) {
        snprintf(msg, msg_len, "%s: cannot open", path);
        return -1;
    }
    n = fread(magic, 1, sizeof magic, f);
    rewind(f);
    if (n == 0) {
        snprintf(msg, msg_len, "%s: empty file", path);
    } else if (n >= 8 && !memcmp(magic, "\x89PNG\r\n\x1a\n", 8)) {
#ifdef FVLM_HAVE_PNG
        rc = load_png(f, path, rgb, width, height, msg, msg_len);
#else
        snprintf(msg, msg_len, "%s: PNG support was not built in (libpng missing)", path);
#endif
    } else if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
#ifdef FVLM_HAVE_JPEG
        rc = load_jpeg(f, path, rgb, width, height, msg, msg_len);
#else
        snprintf(msg, msg_len, "%s: JPEG support was not built in (libjpeg missing)", path);
#endif
    } else {
        snprintf(msg, msg_len, "%s: not a PNG or JPEG file", path);
    }
    fclose(f);
    return rc;
}
