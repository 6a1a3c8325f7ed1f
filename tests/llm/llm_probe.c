/*
 * llm_probe.c — a helper of test_equivalence.py (not a test by itself): runs
 * fastvlm_session_ask() with an image and reports what the reference needs to redo the
 * same answer independently.
 *
 *   llm_probe ask LLM.gguf MMPROJ.gguf SIZE N_NEW ROWS_OUT.f32
 *
 * Sets a synthetic planar image (a smooth pattern in [0, 1], SIZE×SIZE) with
 * fastvlm_session_set_image_planar(), writes the projected rows the session splices
 * (fastvlm_session_encode_image, tokens × n_embd float32 little-endian) to ROWS_OUT, asks
 * "Describe the image." greedily with the default system prompt and prints:
 *   n_prompt_tokens P / n_image_rows K / tokens id id ... / stop S
 * The Python side tokenizes the template text around <image> with the CLI, splices the rows
 * between the two embedding runs in the PyTorch reference, and compares the greedy ids.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastvlm.h"

static int fail(const char *what, const fastvlm_error *err)
{
    fprintf(stderr, "llm_probe: %s: %s\n", what, err->message);
    return 1;
}

int main(int argc, char **argv)
{
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_session_params sp = fastvlm_session_default_params();
    sp.matmul_precision = FASTVLM_PRECISION_EXACT;   /* compared with the float reference */
    fastvlm_generate_params gp = fastvlm_generate_default_params();
    fastvlm_model *m = NULL;
    fastvlm_session *s = NULL;
    fastvlm_model_info info;
    fastvlm_result r;
    fastvlm_error err;
    float *planar, *rows;
    int32_t size, n_new, n_tok = 0;
    FILE *f;
    int rc = 1;

    if (argc != 7 || strcmp(argv[1], "ask") != 0) {
        fprintf(stderr, "usage: llm_probe ask LLM.gguf MMPROJ.gguf SIZE N_NEW ROWS_OUT.f32\n");
        return 2;
    }
    size = atoi(argv[4]);
    n_new = atoi(argv[5]);
    mp.mmproj_path = argv[3];
    if (fastvlm_model_load(argv[2], &mp, &m, &err) != FASTVLM_OK)
        return fail("load", &err);
    fastvlm_model_get_info(m, &info);
    sp.n_threads = 2;
    sp.n_ctx = 2048;
    sp.image_size = size;
    if (fastvlm_session_new(m, &sp, &s, &err) != FASTVLM_OK) {
        fastvlm_model_free(m);
        return fail("session", &err);
    }

    planar = malloc((size_t)3 * size * size * sizeof *planar);
    rows = malloc((size_t)(size / 64) * (size / 64) * info.n_embd * sizeof *rows);
    if (!planar || !rows)
        goto out;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                planar[((size_t)c * size + y) * size + x] =
                    0.5f + 0.4f * sinf(0.07f * (float)x * (float)(c + 1) + 0.05f * (float)y);

    if (fastvlm_session_set_image_planar(s, planar, size, &err) != FASTVLM_OK) {
        fail("set_image_planar", &err);
        goto out;
    }
    if (fastvlm_session_encode_image(s, planar, size, false, rows, &n_tok, &err) != FASTVLM_OK) {
        fail("encode_image", &err);
        goto out;
    }
    f = fopen(argv[6], "wb");
    if (!f || fwrite(rows, sizeof *rows, (size_t)n_tok * info.n_embd, f) !=
                  (size_t)n_tok * info.n_embd) {
        fprintf(stderr, "llm_probe: cannot write %s\n", argv[6]);
        if (f)
            fclose(f);
        goto out;
    }
    fclose(f);

    gp.prompt = "Describe the image.";
    gp.max_new_tokens = n_new;
    if (fastvlm_session_ask(s, &gp, &r, &err) != FASTVLM_OK) {
        fail("ask", &err);
        fastvlm_result_clear(&r);
        goto out;
    }
    printf("n_prompt_tokens %d\nn_image_rows %d\ntokens", r.n_prompt_tokens, n_tok);
    for (int i = 0; i < r.n_tokens; i++)
        printf(" %d", r.tokens[i]);
    printf("\nstop %d\nvision_ms_reported %d\n", (int)r.stop, r.t_vision_ms > 0.0);
    fastvlm_result_clear(&r);
    rc = 0;
out:
    free(planar);
    free(rows);
    fastvlm_session_free(s);
    fastvlm_model_free(m);
    return rc;
}
