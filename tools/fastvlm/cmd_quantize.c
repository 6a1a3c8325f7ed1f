/*
 * cmd_quantize.c — `fastvlm quantize`: re-types the large matrices of a GGUF file (the
 * language model file or the mmproj) by model component and writes a new GGUF v3 file.
 *
 *   fastvlm quantize IN.gguf OUT.gguf (--plan PLAN.yaml | --type TYPE) [--allow-requantize]
 *
 * Components (quant_plan.h): vision (v.* ffn_up/ffn_down/attn_qkv/attn_out/down.N.pw),
 * projector (mm.*), attention (attn_q/k/v/output), ffn (ffn_gate/up/down), embeddings
 * (token_embd), output (output.weight). Every other tensor — 1-D vectors, conv kernels,
 * norms, biases, SE — is copied byte for byte, as is a matrix already of the wanted type.
 * Rows that are not a multiple of the target's block size fall back as llama.cpp does
 * (q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, then f16). Metadata is copied in order, with
 * general.file_type set to the llama_ftype of the type holding most converted elements
 * (kept when nothing is converted); general.quantization_version = 2 is added if absent.
 * Quantization is engine/tensor.c's fvlm_quantize_row (ggml's block formats; q8_0 and q4_0
 * bit-identical to ggml's reference quantizers; no importance matrix).
 * The file is written under OUT.tmp and renamed when complete.
 * A plan serves both files of a model: components absent from a file are simply not met.
 * Not here: the plan format and tensor classification (quant_plan.c), the GGUF encoding
 * (gguf_write.c), the quantizers (engine/tensor.c). A type the engine can write but not
 * compute with gets a warning (the file is then for llama.cpp).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "gguf.h"
#include "gguf_write.h"
#include "quant_plan.h"
#include "tensor.h"

static const char *const CMD = "quantize";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastvlm quantize IN.gguf OUT.gguf (--plan PLAN.yaml | --type TYPE) [options]\n"
            "      --plan FILE          per-component types (YAML; see configs/quant/*.yaml):\n"
            "                           vision, projector, attention, ffn, embeddings, output\n"
            "      --type TYPE          the same type for every component\n"
            "      --allow-requantize   allow re-quantizing already quantized matrices\n"
            "  -v                       list every tensor that changes or falls back\n"
            "types: %s\n", qplan_type_names());
}

/* ---- row conversion ------------------------------------------------------------------- */

static bool is_float_type(fvlm_type t)
{
    return t == FVLM_TYPE_F32 || t == FVLM_TYPE_F16 || t == FVLM_TYPE_BF16;
}

/* Whether engine/tensor.c can write type t: fvlm_quantize_row returns 0 for a type it does
 * not handle, so ask it with one zero row of 256 elements (every block size divides 256). */
static bool can_write(fvlm_type t)
{
    static const float zeros[256];
    uint8_t out[256 * sizeof(float)];   /* the largest row: f32 */
    return fvlm_row_size(t, 256) <= sizeof out && fvlm_quantize_row(t, zeros, out, 256) != 0;
}

/* ---- per-tensor decisions ------------------------------------------------------------- */

typedef struct tplan {
    fvlm_tensor src;
    qplan_component comp;
    fvlm_type out;           /* output type */
    bool convert;            /* false: copy the bytes unchanged */
    bool fell_back;          /* out differs from the plan's type because of the row length */
    size_t out_bytes;
} tplan;

typedef struct comp_stats {
    int n_tensors, n_converted, n_fallback;
    uint64_t elements, bytes_in, bytes_out;
    uint64_t elems_by_type[FVLM_TYPE_COUNT];   /* output elements per type */
} comp_stats;

static int check_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Converts tensor p->src into buf (p->out_bytes). Returns false with a message on a
 * non-finite weight (a quantizer's scale would be meaningless). */
static bool convert_tensor(const tplan *p, uint8_t *buf, float *row, char *msg, size_t msg_len)
{
    const int64_t n = p->src.ne[0], nrows = fvlm_tensor_nrows(&p->src);
    const size_t in_row = fvlm_row_size(p->src.type, n), out_row = fvlm_row_size(p->out, n);
    const uint8_t *src = p->src.data;

    for (int64_t r = 0; r < nrows; r++) {
        fvlm_dequantize_row(p->src.type, src + (size_t)r * in_row, row, n);
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(row[i])) {
                snprintf(msg, msg_len, "tensor '%s' row %" PRId64 " element %" PRId64
                         " is not finite (%g)", p->src.name, r, i, (double)row[i]);
                return false;
            }
        if (fvlm_quantize_row(p->out, row, buf + (size_t)r * out_row, n) != out_row) {
            snprintf(msg, msg_len, "tensor '%s': cannot encode a row of %" PRId64 " as %s",
                     p->src.name, n, qplan_type_name(p->out));
            return false;
        }
    }
    return true;
}

int cmd_quantize(int argc, char **argv)
{
    const char *in_path = NULL, *out_path = NULL, *plan_path = NULL, *type_arg = NULL;
    bool allow_requant = false;
    qplan plan;
    fvlm_gguf *g = NULL;
    gguf_writer *w = NULL;
    tplan *tp = NULL;
    comp_stats cs[QPLAN_N_COMPONENTS + 1];   /* last: tensors of no component */
    uint64_t converted_by_type[FVLM_TYPE_COUNT] = {0};
    fastvlm_error err;
    fastvlm_status st;
    char msg[512], *tmp_path = NULL;
    FILE *f = NULL;
    uint8_t *buf = NULL;
    float *row = NULL;
    int64_t n_t, n_kv, max_row = 1;
    size_t max_bytes = 1;
    int rc = 1, file_type = -1, n_llama_only = 0;
    bool converted_any = false, have_qver = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-v")) {
            cli_verbosity++;
        } else if (!strcmp(a, "--plan") || !strcmp(a, "--type")) {
            if (!val)
                return cli_usage_error(CMD, "option %s needs a value", a);
            *(a[2] == 'p' ? &plan_path : &type_arg) = val;
            i++;
        } else if (!strcmp(a, "--allow-requantize")) {
            allow_requant = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (!in_path) {
            in_path = a;
        } else if (!out_path) {
            out_path = a;
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s'", a);
        }
    }
    if (!in_path || !out_path)
        return cli_usage_error(CMD, "IN.gguf and OUT.gguf are required");
    if (!plan_path == !type_arg)
        return cli_usage_error(CMD, "give exactly one of --plan PLAN.yaml and --type TYPE");
    if (type_arg) {
        fvlm_type t;
        if (!qplan_parse_type(type_arg, &t))
            return cli_usage_error(CMD, "unknown --type '%s' (known: %s)", type_arg,
                                   qplan_type_names());
        qplan_init(&plan);
        qplan_set_all(&plan, t);
    } else if (!qplan_load(plan_path, &plan, msg, sizeof msg)) {
        return cli_usage_error(CMD, "%s", msg);
    }
    if (check_same_file(in_path, out_path))
        return cli_usage_error(CMD, "OUT.gguf must not be the input file");

    st = fvlm_gguf_open(in_path, true, &g, &err);
    if (st != FASTVLM_OK)
        return cli_fail(CMD, &err);
    memset(cs, 0, sizeof cs);

    /* 1. decide every tensor's type before anything is written */
    n_t = fvlm_gguf_n_tensors(g);
    tp = calloc((size_t)(n_t > 0 ? n_t : 1), sizeof *tp);
    w = gguf_writer_new(fvlm_gguf_alignment(g));
    if (!tp || !w) {
        fprintf(stderr, "fastvlm quantize: out of memory\n");
        goto out;
    }
    for (int64_t i = 0; i < n_t; i++) {
        tplan *p = &tp[i];
        comp_stats *c;
        int want;

        if (!fvlm_gguf_tensor(g, i, &p->src)) {
            fprintf(stderr, "fastvlm quantize: %s: cannot read tensor %" PRId64 "\n", in_path, i);
            goto out;
        }
        p->comp = qplan_classify(p->src.name, p->src.n_dims);
        want = p->comp == QPLAN_NONE ? QPLAN_KEEP : plan.type[p->comp];
        p->out = p->src.type;
        if (want != QPLAN_KEEP && (fvlm_type)want != p->src.type) {
            const fvlm_type_traits *src_tt = fvlm_type_get_traits(p->src.type);
            p->out = qplan_fallback((fvlm_type)want, p->src.ne[0]);
            p->fell_back = p->out != (fvlm_type)want;
            p->convert = p->out != p->src.type;
            if (p->convert && (!src_tt || !src_tt->supported)) {
                fprintf(stderr, "fastvlm quantize: %s: tensor '%s' has type %s, which this "
                        "build cannot read (to convert it to %s)\n", in_path, p->src.name,
                        src_tt ? src_tt->name : "?", qplan_type_name(p->out));
                goto out;
            }
            if (p->convert && !can_write(p->out)) {
                char why[160] = "";
                if (p->fell_back)
                    snprintf(why, sizeof why, ", the fallback of %s for its rows of %" PRId64
                             " elements", qplan_type_name((fvlm_type)want), p->src.ne[0]);
                fprintf(stderr, "fastvlm quantize: no %s quantizer in this build (needed for "
                        "'%s', component %s%s)\n",
                        qplan_type_name(p->out), p->src.name, qplan_component_name(p->comp), why);
                goto out;
            }
            if (p->convert && !is_float_type(p->src.type) && !is_float_type(p->out) &&
                !allow_requant) {
                fprintf(stderr, "fastvlm quantize: tensor '%s' is already %s; re-quantizing it "
                        "to %s compounds the error (start from an f32/f16 file, or pass "
                        "--allow-requantize)\n", p->src.name, src_tt->name,
                        qplan_type_name(p->out));
                rc = 2;
                goto out;
            }
        }
        p->out_bytes = p->convert ? (size_t)fvlm_tensor_nrows(&p->src) *
                                        fvlm_row_size(p->out, p->src.ne[0])
                                  : p->src.nbytes;
        if (!gguf_writer_add_tensor(w, p->src.name, (uint32_t)p->out, p->src.n_dims, p->src.ne,
                                    p->out_bytes)) {
            fprintf(stderr, "fastvlm quantize: out of memory\n");
            goto out;
        }
        c = &cs[p->comp == QPLAN_NONE ? QPLAN_N_COMPONENTS : p->comp];
        c->n_tensors++;
        c->n_converted += p->convert;
        c->n_fallback += p->fell_back;
        c->elements += (uint64_t)fvlm_tensor_nelements(&p->src);
        c->bytes_in += p->src.nbytes;
        c->bytes_out += p->out_bytes;
        if (p->comp != QPLAN_NONE)
            c->elems_by_type[p->out] += (uint64_t)fvlm_tensor_nelements(&p->src);
        if (p->convert)
            converted_by_type[p->out] += (uint64_t)fvlm_tensor_nelements(&p->src);
        if (p->convert) {
            const fvlm_type_traits *ot = fvlm_type_get_traits(p->out);
            converted_any = true;
            n_llama_only += !(ot && ot->supported);
            if (p->src.ne[0] > max_row)
                max_row = p->src.ne[0];
            if (p->out_bytes > max_bytes)
                max_bytes = p->out_bytes;
        }
        if (cli_verbosity >= 2 && (p->convert || p->fell_back)) {
            const fvlm_type_traits *it = fvlm_type_get_traits(p->src.type);
            fprintf(stderr, "  %-36s %-10s %-5s -> %-5s%s\n", p->src.name,
                    qplan_component_name(p->comp), it ? it->name : "?", qplan_type_name(p->out),
                    p->fell_back ? "  (row length fallback)" : "");
        }
    }
    if (n_llama_only)
        fprintf(stderr, "fastvlm quantize: warning: %d tensors get a type libfastvlm cannot "
                "compute with (the file is for llama.cpp)\n", n_llama_only);

    /* general.file_type: the type holding most of the converted elements (llama.cpp's
     * "mostly <type>"); unchanged when nothing was converted */
    if (converted_any) {
        uint64_t best = 0;
        for (int t = 0; t < FVLM_TYPE_COUNT; t++)
            if (converted_by_type[t] > best && qplan_ftype_of((fvlm_type)t) >= 0) {
                best = converted_by_type[t];
                file_type = qplan_ftype_of((fvlm_type)t);
            }
    }

    /* 2. metadata, in the input's order */
    n_kv = fvlm_gguf_n_kv(g);
    for (int64_t i = 0; i < n_kv; i++) {
        const fvlm_gguf_str k = fvlm_gguf_key_name(g, i);
        bool ok;
        if (file_type >= 0 && fvlm_gguf_str_eq(k, "general.file_type")) {
            ok = gguf_writer_kv_u32(w, "general.file_type", (uint32_t)file_type);
            file_type = -2;   /* written */
            if (!ok)
                snprintf(msg, sizeof msg, "out of memory");
        } else {
            have_qver |= fvlm_gguf_str_eq(k, "general.quantization_version");
            ok = gguf_writer_kv_copy(w, g, i, msg, sizeof msg);
        }
        if (!ok) {
            fprintf(stderr, "fastvlm quantize: %s: %s\n", in_path, msg);
            goto out;
        }
    }
    if ((file_type >= 0 && !gguf_writer_kv_u32(w, "general.file_type", (uint32_t)file_type)) ||
        (converted_any && !have_qver &&
         !gguf_writer_kv_u32(w, "general.quantization_version", 2))) {
        fprintf(stderr, "fastvlm quantize: out of memory\n");
        goto out;
    }

    /* 3. write OUT.tmp, then rename */
    tmp_path = malloc(strlen(out_path) + 5);
    buf = malloc(max_bytes);
    row = malloc((size_t)max_row * sizeof *row);
    if (!tmp_path || !buf || !row) {
        fprintf(stderr, "fastvlm quantize: out of memory (%zu bytes for one tensor)\n", max_bytes);
        goto out;
    }
    sprintf(tmp_path, "%s.tmp", out_path);
    f = fopen(tmp_path, "wb");
    if (!f) {
        fprintf(stderr, "fastvlm quantize: cannot create '%s': %s\n", tmp_path, strerror(errno));
        goto out;
    }
    if (!gguf_writer_begin(w, f))
        goto write_error;
    for (int64_t i = 0; i < n_t; i++) {
        const tplan *p = &tp[i];
        if (p->convert && !convert_tensor(p, buf, row, msg, sizeof msg)) {
            fprintf(stderr, "fastvlm quantize: %s: %s\n", in_path, msg);
            goto out;
        }
        if (!gguf_writer_tensor_data(w, f, p->convert ? buf : p->src.data, p->out_bytes))
            goto write_error;
    }
    if (!gguf_writer_end(w) || fflush(f) != 0)
        goto write_error;
    if (fclose(f) != 0) {
        f = NULL;
        goto write_error;
    }
    f = NULL;
    if (rename(tmp_path, out_path) != 0) {
        fprintf(stderr, "fastvlm quantize: cannot rename '%s' to '%s': %s\n", tmp_path, out_path,
                strerror(errno));
        goto out;
    }
    free(tmp_path);
    tmp_path = NULL;

    /* 4. summary */
    {
        uint64_t bin = 0, bout = 0;
        printf("%s -> %s\n", in_path, out_path);
        printf("%-11s %7s %9s %14s %14s  %s\n", "component", "tensors", "converted", "bytes in",
               "bytes out", "output types (elements)");
        for (int c = 0; c <= QPLAN_N_COMPONENTS; c++) {
            const comp_stats *s = &cs[c];
            bin += s->bytes_in;
            bout += s->bytes_out;
            if (!s->n_tensors)
                continue;
            printf("%-11s %7d %9d %14" PRIu64 " %14" PRIu64 "  ",
                   c < QPLAN_N_COMPONENTS ? qplan_component_name((qplan_component)c) : "other",
                   s->n_tensors, s->n_converted, s->bytes_in, s->bytes_out);
            if (c == QPLAN_N_COMPONENTS)
                printf("unchanged");
            for (int t = 0; t < FVLM_TYPE_COUNT; t++)
                if (s->elems_by_type[t])
                    printf("%s %" PRIu64 " ", fvlm_type_get_traits((uint32_t)t)->name,
                           s->elems_by_type[t]);
            if (s->n_fallback)
                printf(" (%d row-length fallbacks)", s->n_fallback);
            printf("\n");
        }
        printf("%-11s %7" PRId64 " %9s %14" PRIu64 " %14" PRIu64 "  (%.1f%%)\n", "total", n_t, "",
               bin, bout, bin ? 100.0 * (double)bout / (double)bin : 0.0);
    }
    rc = 0;
    goto out;

write_error:
    fprintf(stderr, "fastvlm quantize: error writing '%s': %s\n", tmp_path, strerror(errno));
out:
    if (f)
        fclose(f);
    if (tmp_path) {
        remove(tmp_path);
        free(tmp_path);
    }
    free(buf);
    free(row);
    free(tp);
    gguf_writer_free(w);
    fvlm_gguf_close(g);
    return rc;
}
