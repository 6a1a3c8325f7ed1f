/*
 * model.c — loading and freeing a fastvlm_model (model.h): the qwen2 GGUF (tokenizer and
 * decoder), the optional mmproj (vision tower + projector), the consistency checks between
 * them, the model info, and every *_default_params() of the public API.
 *
 * Not here: anything per-stream (session.c), the decoder itself (llm.c), the tower
 * (vision.c), the tokenizer (tokenizer.c).
 */
#include <stdlib.h>
#include <string.h>

#include "model.h"

fastvlm_model_params fastvlm_model_default_params(void)
{
    fastvlm_model_params p;
    memset(&p, 0, sizeof p);
    p.mmproj_path = NULL;
    p.use_mmap = true;
    p.vocab_only = false;
    p.log = NULL;
    p.log_user_data = NULL;
    p.log_level = FASTVLM_LOG_INFO;
    return p;
}

fastvlm_session_params fastvlm_session_default_params(void)
{
    fastvlm_session_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 2;
    p.n_ctx = 4096;
    p.image_size = 0;
    p.matmul_precision = FASTVLM_PRECISION_FAST;
    return p;
}

fastvlm_sampler_params fastvlm_sampler_default_params(void)
{
    fastvlm_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0;
    return p;
}

fastvlm_generate_params fastvlm_generate_default_params(void)
{
    fastvlm_generate_params p;
    memset(&p, 0, sizeof p);
    p.prompt = "Describe the image.";
    p.system_prompt = "You are a helpful assistant.";
    p.chat = true;
    p.max_new_tokens = 256;
    p.sampler = fastvlm_sampler_default_params();
    p.on_token = NULL;
    p.should_abort = NULL;
    p.user_data = NULL;
    p.reuse_kv = true;
    p.speculative = true;
    p.draft = NULL;
    p.n_draft = 0;
    p.n_draft_max = 8;
    return p;
}

/* An optional token id key (tokenizer.ggml.*_token_id) checked against the vocabulary;
 * -1 when absent or out of range (a warning then). */
static int32_t opt_token_key(const fastvlm_model *m, const char *key, int32_t n_vocab)
{
    uint32_t v = UINT32_MAX;
    fastvlm_error e;
    if (fvlm_gguf_opt_u32(m->llm_file, key, &v, &e) != FASTVLM_OK) {
        fvlm_log(&m->log, FASTVLM_LOG_WARN, "%s", e.message);
        return -1;
    }
    if (v == UINT32_MAX)
        return -1;
    if (v >= (uint32_t)n_vocab) {
        fvlm_log(&m->log, FASTVLM_LOG_WARN, "%s: %s = %u is outside the vocabulary (%d), ignored",
                 fvlm_gguf_path(m->llm_file), key, v, n_vocab);
        return -1;
    }
    return (int32_t)v;
}

static void fill_info(fastvlm_model *m)
{
    fastvlm_model_info *info = &m->info;
    int32_t n_tok = fvlm_tokenizer_n_vocab(m->tok);

    memset(info, 0, sizeof *info);
    if (m->llm) {
        const fvlm_llm_hparams *hp = fvlm_llm_hparams_get(m->llm);
        info->n_vocab = hp->n_vocab;
        info->n_ctx_train = hp->n_ctx_train;
        info->n_embd = hp->n_embd;
        info->n_layer = hp->n_layer;
        info->n_head = hp->n_head;
        info->n_head_kv = hp->n_head_kv;
        info->n_ff = hp->n_ff;
        info->rope_theta = hp->rope_theta;
        info->rms_eps = hp->rms_eps;
        info->tied_output = hp->tied_output;
    } else {
        info->n_vocab = n_tok;
    }
    info->token_bos = opt_token_key(m, "tokenizer.ggml.bos_token_id", n_tok);
    info->token_eos = opt_token_key(m, "tokenizer.ggml.eos_token_id", n_tok);
    if (info->token_eos < 0)
        info->token_eos = fvlm_tokenizer_find(m->tok, "<|endoftext|>");
    info->token_im_start = fvlm_tokenizer_find(m->tok, "<|im_start|>");
    info->token_im_end = fvlm_tokenizer_find(m->tok, "<|im_end|>");
    if (m->vision)
        fvlm_vision_fill_info(m->vision, info);
}

fastvlm_status fastvlm_model_load(const char *llm_path, const fastvlm_model_params *params,
                                  fastvlm_model **out_model, fastvlm_error *err)
{
    fastvlm_model_params defaults = fastvlm_model_default_params();
    fastvlm_model *m;
    fastvlm_status st;
    fastvlm_error local;
    const double t0 = fvlm_time_ms();

    if (!err)
        err = &local;   /* so the failure can still be logged */
    fvlm_clear_error(err);
    if (!out_model)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fastvlm_model_load: out_model is NULL");
    *out_model = NULL;
    if (!llm_path || !*llm_path)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fastvlm_model_load: no model path");
    if (!params)
        params = &defaults;

    m = calloc(1, sizeof *m);
    if (!m)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory", llm_path);
    m->log.fn = params->log;
    m->log.user_data = params->log_user_data;
    m->log.level = params->log_level;

    st = fvlm_gguf_open(llm_path, params->use_mmap, &m->llm_file, err);
    if (st != FASTVLM_OK)
        goto fail;
    st = fvlm_tokenizer_load(m->llm_file, &m->tok, err);
    if (st != FASTVLM_OK)
        goto fail;

    if (!params->vocab_only) {
        st = fvlm_llm_load(m->llm_file, &m->llm, err);
        if (st != FASTVLM_OK)
            goto fail;
        const fvlm_llm_hparams *hp = fvlm_llm_hparams_get(m->llm);
        if (fvlm_tokenizer_n_vocab(m->tok) > hp->n_vocab) {
            st = fvlm_set_error(err, FASTVLM_ERR_SHAPE,
                                "%s: the tokenizer has %d tokens but token_embd.weight only %d rows",
                                llm_path, fvlm_tokenizer_n_vocab(m->tok), hp->n_vocab);
            goto fail;
        }
    }

    {
        fvlm_gguf_str tmpl;
        if (fvlm_gguf_find_key(m->llm_file, "tokenizer.chat_template") >= 0 &&
            fvlm_gguf_req_str(m->llm_file, "tokenizer.chat_template", &tmpl, NULL) == FASTVLM_OK) {
            m->chat_template = malloc((size_t)tmpl.len + 1);
            if (!m->chat_template) {
                st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory", llm_path);
                goto fail;
            }
            memcpy(m->chat_template, tmpl.ptr, (size_t)tmpl.len);
            m->chat_template[tmpl.len] = '\0';
        }
    }

    if (params->mmproj_path) {
        st = fvlm_gguf_open(params->mmproj_path, params->use_mmap, &m->mmproj_file, err);
        if (st != FASTVLM_OK)
            goto fail;
        st = fvlm_vision_load(m->mmproj_file, &m->vision, err);
        if (st != FASTVLM_OK)
            goto fail;
        if (m->llm) {
            const int32_t proj = fvlm_vision_out_dim(m->vision, false);
            const int32_t embd = fvlm_llm_hparams_get(m->llm)->n_embd;
            if (proj != embd) {
                st = fvlm_set_error(err, FASTVLM_ERR_SHAPE,
                                    "projector output width %d (%s) does not match the language "
                                    "model hidden size %d (%s)",
                                    proj, params->mmproj_path, embd, llm_path);
                goto fail;
            }
        }
    }

    fill_info(m);
    if (m->llm) {
        const fastvlm_model_info *in = &m->info;
        fvlm_log(&m->log, FASTVLM_LOG_INFO,
                 "%s: qwen2, %d layers, n_embd %d, heads %d/%d, n_ff %d, vocab %d, ctx %d, "
                 "theta %g, eps %g, %s output, %.1f MiB of weights",
                 llm_path, in->n_layer, in->n_embd, in->n_head, in->n_head_kv, in->n_ff,
                 in->n_vocab, in->n_ctx_train, (double)in->rope_theta, (double)in->rms_eps,
                 in->tied_output ? "tied" : "separate",
                 (double)fvlm_llm_weight_bytes(m->llm) / (1024.0 * 1024.0));
    }
    if (m->vision)
        fvlm_log(&m->log, FASTVLM_LOG_INFO, "%s: vision tower, image %d, %d tokens of %d",
                 params->mmproj_path, m->info.image_size, m->info.n_image_tokens,
                 m->info.vision_embd);
    fvlm_log(&m->log, FASTVLM_LOG_INFO, "model loaded in %.1f ms", fvlm_time_ms() - t0);
    *out_model = m;
    return FASTVLM_OK;

fail:
    /* The caller gets the message in `err`; logging it as an error too would print it twice. */
    fvlm_log(&m->log, FASTVLM_LOG_DEBUG, "fastvlm_model_load failed: %s", err->message);
    fastvlm_model_free(m);
    return st;
}

void fastvlm_model_free(fastvlm_model *model)
{
    if (!model)
        return;
    if (model->vision)
        fvlm_vision_free(model->vision);
    fvlm_llm_free(model->llm);
    if (model->tok)
        fvlm_tokenizer_free(model->tok);
    free(model->chat_template);
    if (model->mmproj_file)
        fvlm_gguf_close(model->mmproj_file);
    if (model->llm_file)
        fvlm_gguf_close(model->llm_file);
    free(model);
}

void fastvlm_model_get_info(const fastvlm_model *model, fastvlm_model_info *info)
{
    if (!info)
        return;
    if (!model) {
        memset(info, 0, sizeof *info);
        return;
    }
    *info = model->info;
}

const char *fastvlm_model_chat_template(const fastvlm_model *model)
{
    return model ? model->chat_template : NULL;
}
