/*
 * fastvlm.h — the one public header of libfastvlm, a plain-C11 runtime for Apple's
 * FastVLM (FastViTHD vision tower + mlp2x_gelu projector + Qwen2 decoder).
 *
 * Files: the language model is a GGUF in llama.cpp's own `qwen2` layout; the vision tower
 * and projector live in a second GGUF, the "mmproj" (format: docs/model-format.md).
 *
 * Usage (error handling shortened):
 *
 *     fastvlm_model_params mp = fastvlm_model_default_params();
 *     mp.mmproj_path = "FastVLM-0.5B-mmproj.gguf";
 *     fastvlm_model *model = NULL;
 *     fastvlm_error err;
 *     if (fastvlm_model_load("FastVLM-0.5B.gguf", &mp, &model, &err) != FASTVLM_OK)
 *         fprintf(stderr, "%s\n", err.message);
 *
 *     fastvlm_session_params sp = fastvlm_session_default_params();
 *     sp.n_threads = 2;
 *     fastvlm_session *s = NULL;
 *     fastvlm_session_new(model, &sp, &s, &err);
 *
 *     fastvlm_session_set_image_rgb8(s, pixels, width, height, stride, &err);
 *     fastvlm_generate_params gp = fastvlm_generate_default_params();
 *     gp.prompt = "Describe the image.";
 *     fastvlm_result res;
 *     fastvlm_session_ask(s, &gp, &res, &err);
 *     printf("%s\n", res.text);
 *     fastvlm_result_clear(&res);
 *
 *     fastvlm_session_free(s);
 *     fastvlm_model_free(model);
 *
 * Thread safety: a fastvlm_model is immutable after load; any number of sessions on any
 * threads may share one (weights are memory-mapped once). A fastvlm_session is NOT
 * thread-safe: call it from one thread at a time. The only exceptions are the callbacks'
 * own contract (the abort callback is polled from the calling thread) and
 * fastvlm_session_request_abort(), which may be called from any thread.
 *
 * Errors: every function that can fail returns a fastvlm_status and, when `err` is not
 * NULL, fills it with the status and a one-line message naming the file/tensor/key/value
 * at fault. Nothing in this library calls exit() or abort(); bad input is an error status.
 *
 * Logging: through the callback in fastvlm_model_params (NULL = silent). The library keeps
 * no process-wide state: no globals, no shared thread pool.
 */
#ifndef FASTVLM_H
#define FASTVLM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(FASTVLM_SHARED) && defined(FASTVLM_BUILD)
#  define FASTVLM_API __declspec(dllexport)
#elif defined(__GNUC__)
#  define FASTVLM_API __attribute__((visibility("default")))
#else
#  define FASTVLM_API
#endif

#define FASTVLM_VERSION_MAJOR 0
#define FASTVLM_VERSION_MINOR 1
#define FASTVLM_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------------------- */

typedef enum fastvlm_status {
    FASTVLM_OK = 0,
    FASTVLM_ERR_INVALID_ARG,     /* NULL pointer, out-of-range parameter */
    FASTVLM_ERR_IO,              /* file missing, unreadable, mmap failed */
    FASTVLM_ERR_FORMAT,          /* not a GGUF, truncated, hostile or inconsistent file */
    FASTVLM_ERR_UNSUPPORTED,     /* valid file, but an architecture/type/version we lack */
    FASTVLM_ERR_MISSING,         /* a required tensor or metadata key is absent */
    FASTVLM_ERR_SHAPE,           /* a tensor has the wrong shape or type for its role */
    FASTVLM_ERR_NOMEM,           /* allocation failed or a size limit was exceeded */
    FASTVLM_ERR_TOKEN_RANGE,     /* a token id outside [0, n_vocab) */
    FASTVLM_ERR_CONTEXT_FULL,    /* the sequence does not fit in the context */
    FASTVLM_ERR_IMAGE,           /* bad image: empty, too large, wrong size, undecodable */
    FASTVLM_ERR_NO_VISION,       /* an image operation on a model loaded without mmproj */
    FASTVLM_ERR_ABORTED,         /* stopped by the abort callback / request_abort() */
    FASTVLM_ERR_INTERNAL
} fastvlm_status;

/* A readable, constant name for a status ("ok", "format error", ...). Never NULL. */
FASTVLM_API const char *fastvlm_status_str(fastvlm_status status);

#define FASTVLM_ERROR_MESSAGE_MAX 512
typedef struct fastvlm_error {
    fastvlm_status status;
    char message[FASTVLM_ERROR_MESSAGE_MAX]; /* NUL-terminated; "" when status == OK */
} fastvlm_error;

/* ---------------------------------------------------------------------------------------
 * Limits (docs/limits.md). Input beyond one is refused before any work is done, with the
 * status given here and a message naming the limit and the value ("prompt is 70000 bytes,
 * over the limit of 65536 (FASTVLM_MAX_PROMPT_BYTES)"). The token limit is the session's
 * context, n_ctx: a prompt (text tokens + image rows) longer than it is
 * FASTVLM_ERR_CONTEXT_FULL, and an answer stops when the context is full
 * (FASTVLM_STOP_CONTEXT) whatever max_new_tokens asks for.
 * ------------------------------------------------------------------------------------- */

/* width*height of an RGB8 image (set_image_rgb8, preprocess_rgb8): FASTVLM_ERR_IMAGE. */
#define FASTVLM_MAX_IMAGE_PIXELS (8192u * 8192u)
/* Longest side of an RGB8 image (its padded square is that side squared, in rows of
 * the resize): FASTVLM_ERR_IMAGE. */
#define FASTVLM_MAX_IMAGE_SIDE 65536
/* The square the vision tower sees (session image_size, set_image_planar, encode_image):
 * FASTVLM_ERR_INVALID_ARG in session_new, FASTVLM_ERR_IMAGE for an image. */
#define FASTVLM_MAX_IMAGE_SIZE 4096
/* Bytes (without the NUL) of a prompt or a system prompt: FASTVLM_ERR_INVALID_ARG. */
#define FASTVLM_MAX_PROMPT_BYTES 65536
/* Prompts of one fastvlm_session_ask_many(): FASTVLM_ERR_INVALID_ARG. */
#define FASTVLM_MAX_PROMPTS 64

typedef enum fastvlm_log_level {
    FASTVLM_LOG_ERROR = 0,
    FASTVLM_LOG_WARN = 1,
    FASTVLM_LOG_INFO = 2,
    FASTVLM_LOG_DEBUG = 3
} fastvlm_log_level;

/* Log callback: `msg` is one line without a trailing newline. May be called from any
 * thread that calls into the library (never from threads it does not own or borrow). */
typedef void (*fastvlm_log_fn)(fastvlm_log_level level, const char *msg, void *user_data);

/* ---------------------------------------------------------------------------------------
 * Model: load once, share everywhere
 * ------------------------------------------------------------------------------------- */

typedef struct fastvlm_model fastvlm_model;

typedef struct fastvlm_model_params {
    const char *mmproj_path;   /* vision tower + projector GGUF; NULL = text-only model */
    bool use_mmap;             /* map the files (default true); false = read into memory */
    bool vocab_only;           /* load only the tokenizer (for `fastvlm tokenize`) */
    fastvlm_log_fn log;        /* NULL = no logging */
    void *log_user_data;
    fastvlm_log_level log_level; /* most verbose level passed to `log` (default INFO) */
} fastvlm_model_params;

FASTVLM_API fastvlm_model_params fastvlm_model_default_params(void);

/* Loads the language model GGUF at `llm_path` (and the mmproj if params->mmproj_path).
 * On success *out_model owns everything and must be freed with fastvlm_model_free().
 * On failure returns the status, leaves *out_model NULL and fills `err`. */
FASTVLM_API fastvlm_status fastvlm_model_load(const char *llm_path,
                                              const fastvlm_model_params *params,
                                              fastvlm_model **out_model,
                                              fastvlm_error *err);
FASTVLM_API void fastvlm_model_free(fastvlm_model *model);

typedef struct fastvlm_model_info {
    /* language model */
    int32_t n_vocab;
    int32_t n_ctx_train;       /* context length from the file */
    int32_t n_embd;            /* hidden size */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    float rope_theta;
    float rms_eps;
    bool tied_output;          /* true when output.weight is absent (lm_head = token_embd) */
    int32_t token_bos;         /* -1 when absent */
    int32_t token_eos;         /* <|endoftext|> or the file's eos id */
    int32_t token_im_start;    /* -1 when absent */
    int32_t token_im_end;      /* -1 when absent */
    /* vision (all zero when no mmproj is loaded) */
    bool has_vision;
    int32_t image_size;        /* default input size, e.g. 1024 */
    int32_t patch_stride;      /* total stride, 64 for FastViTHD */
    int32_t vision_embd;       /* tower output channels, e.g. 3072 */
    int32_t n_image_tokens;    /* at image_size: (image_size/patch_stride)^2 */
    float image_pad_rgb[3];    /* pad colour in [0,255] */
    float image_mean[3];       /* applied after ×rescale */
    float image_std[3];
    float image_rescale;       /* e.g. 1/255 */
} fastvlm_model_info;

FASTVLM_API void fastvlm_model_get_info(const fastvlm_model *model, fastvlm_model_info *info);

/* The chat template string stored in the file (tokenizer.chat_template), or NULL. */
FASTVLM_API const char *fastvlm_model_chat_template(const fastvlm_model *model);

/* ---------------------------------------------------------------------------------------
 * Tokenizer (byte-level BPE, Qwen2 pre-tokenizer, NFC; equals Qwen's tokenizer.json)
 * ------------------------------------------------------------------------------------- */

/* Tokenizes `len` bytes of UTF-8 `text`. With `parse_special`, special tokens written in the
 * text (<|im_start|> ...) become their ids; otherwise they are tokenized as plain text.
 * Writes at most `n_max` ids; *n_out receives the full count even when it exceeds n_max
 * (then returns FASTVLM_ERR_NOMEM, so a caller can retry with a bigger buffer).
 * Invalid UTF-8 is tokenized byte by byte, never rejected. Thread-safe. */
FASTVLM_API fastvlm_status fastvlm_tokenize(const fastvlm_model *model,
                                            const char *text, size_t len,
                                            bool parse_special,
                                            int32_t *ids, size_t n_max, size_t *n_out,
                                            fastvlm_error *err);

/* The raw bytes of one token (after byte-level decoding), or NULL for an id out of range.
 * Special tokens give their text. Bytes may be an incomplete UTF-8 sequence. */
FASTVLM_API const char *fastvlm_token_bytes(const fastvlm_model *model, int32_t id,
                                            size_t *len);

/* True for control/special tokens (<|im_end|>, ...). */
FASTVLM_API bool fastvlm_token_is_special(const fastvlm_model *model, int32_t id);

/* Streaming detokenizer: feeds token bytes and hands back only complete UTF-8 characters,
 * so a character split across tokens is never printed in halves. Its output is always
 * valid UTF-8 without NUL: ill-formed bytes and U+0000 come out as U+FFFD. */
typedef struct fastvlm_detok {
    unsigned char pending[8];
    size_t n_pending;
} fastvlm_detok;

/* Appends the text of `id` to `out` (capacity `cap`, always NUL-terminated when cap > 0)
 * and returns the number of bytes written. With skip_special, special tokens add nothing.
 * Incomplete trailing UTF-8 is held in `d` until the next call; fastvlm_detok_flush()
 * emits what is left (invalid bytes as U+FFFD). */
FASTVLM_API size_t fastvlm_detok_push(fastvlm_detok *d, const fastvlm_model *model,
                                      int32_t id, bool skip_special, char *out, size_t cap);
FASTVLM_API size_t fastvlm_detok_flush(fastvlm_detok *d, char *out, size_t cap);

/* ---------------------------------------------------------------------------------------
 * Sampling
 * ------------------------------------------------------------------------------------- */

typedef struct fastvlm_sampler_params {
    float temperature;       /* <= 0: greedy (argmax). Default 0. */
    int32_t top_k;           /* <= 0: off. Default 0. */
    float top_p;             /* >= 1: off. Default 1. */
    float repeat_penalty;    /* 1: off. Default 1. */
    int32_t repeat_last_n;   /* window for repeat_penalty, default 64 */
    uint64_t seed;           /* same seed + same inputs = same output */
} fastvlm_sampler_params;

FASTVLM_API fastvlm_sampler_params fastvlm_sampler_default_params(void);

/* ---------------------------------------------------------------------------------------
 * Session: per-stream state (KV cache, scratch, thread pool, image features)
 * ------------------------------------------------------------------------------------- */

typedef struct fastvlm_session fastvlm_session;

/* How the decoder multiplies by quantized weight matrices (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q4_K, Q5_K, Q6_K; F32/F16/BF16 weights and the vision tower are always exact).
 *   EXACT: the weights are dequantized and multiplied with float32 activations — the
 *          numerics of the float reference (PyTorch on the dequantized weights, ~1e-6).
 *   FAST:  each activation row is quantized on the fly to 8-bit blocks (32 elements for
 *          the 32-element weight types, 256 for K-quants), the dot products run on
 *          integers (AVX-512 VNNI / AVX2 / NEON dotprod) and only the block scales are
 *          float — llama.cpp's numerics. On tiny random models the logits move by
 *          ~1.5-2% (relative L2) from EXACT (tests/llm/test_fast.py prints the numbers).
 * FAST is the default: a quantized file already trades more accuracy than that for size,
 * it is what llama.cpp users compare against, and integer dots need fewer instructions per
 * weight than converting blocks to float. EXACT is what the float-reference tests use.
 * Both are deterministic and batch-invariant: a row's logits are the same whether it is
 * evaluated alone, in a batch or verified in a speculative draft, with any thread count. */
typedef enum fastvlm_precision {
    FASTVLM_PRECISION_EXACT = 0,
    FASTVLM_PRECISION_FAST = 1
} fastvlm_precision;

typedef struct fastvlm_session_params {
    int32_t n_threads;       /* worker threads for this session (default 2, >= 1) */
    int32_t n_ctx;           /* context length in tokens (default 4096, capped at the file's) */
    int32_t image_size;      /* vision input size, multiple of 64, <= FASTVLM_MAX_IMAGE_SIZE;
                              * 0 = the model's default */
    fastvlm_precision matmul_precision; /* decoder matrices (default FASTVLM_PRECISION_FAST) */
} fastvlm_session_params;

FASTVLM_API fastvlm_session_params fastvlm_session_default_params(void);

FASTVLM_API fastvlm_status fastvlm_session_new(const fastvlm_model *model,
                                               const fastvlm_session_params *params,
                                               fastvlm_session **out_session,
                                               fastvlm_error *err);
FASTVLM_API void fastvlm_session_free(fastvlm_session *session);

/* -- Low level: drive the decoder yourself ------------------------------------------- */

/* Forgets the KV cache (position back to 0). */
FASTVLM_API void fastvlm_session_reset(fastvlm_session *session);

/* Current number of positions in the KV cache. */
FASTVLM_API int32_t fastvlm_session_n_past(const fastvlm_session *session);

/* Runs the decoder over `n` token ids at positions n_past..n_past+n-1 (as one batch) and
 * appends them to the KV cache. If `logits` is not NULL it receives n × n_vocab floats
 * (one row per input position); in any case the last row is kept and readable with
 * fastvlm_session_logits(). Errors: TOKEN_RANGE (names the id and its index),
 * CONTEXT_FULL (names the lengths), ABORTED. On error the KV cache is unchanged. */
FASTVLM_API fastvlm_status fastvlm_session_eval_tokens(fastvlm_session *session,
                                                       const int32_t *ids, int32_t n,
                                                       float *logits,
                                                       fastvlm_error *err);

/* The same with embedding rows as input: `rows` holds n × n_embd floats (e.g. projected
 * image features spliced into a prompt). */
FASTVLM_API fastvlm_status fastvlm_session_eval_embeddings(fastvlm_session *session,
                                                           const float *rows, int32_t n,
                                                           float *logits,
                                                           fastvlm_error *err);

/* Logits of the last evaluated position (n_vocab floats), or NULL before any eval. Valid
 * until the next eval/reset. */
FASTVLM_API const float *fastvlm_session_logits(const fastvlm_session *session);

/* Picks the next token from the last logits. `history`/`n_history` are the tokens the
 * repetition penalty looks at (may be NULL/0). The session keeps the RNG state, seeded by
 * fastvlm_session_set_seed (or the generate params). */
FASTVLM_API int32_t fastvlm_session_sample(fastvlm_session *session,
                                           const fastvlm_sampler_params *params,
                                           const int32_t *history, int32_t n_history);
FASTVLM_API void fastvlm_session_set_seed(fastvlm_session *session, uint64_t seed);

/* Batched decode across sessions: evaluates one token per session, ids[i] in sessions[i]
 * (n distinct sessions of one model, 1 <= n <= FASTVLM_BATCH_MAX_SESSIONS and <= the first
 * session's n_ctx), each at its own position, as ONE forward pass: the matrix products
 * read every weight once for all n rows (a decode step is bound by memory bandwidth), the
 * attention of each row runs over its own session's cache. Each session ends as after
 * fastvlm_session_eval_tokens(sessions[i], &ids[i], 1, NULL, ...): the same KV cache, the
 * same logits (bit-identical: same kernels, same order per row), n_past + 1. The work
 * runs on the first session's thread pool; fastvlm_session_request_abort() on the first
 * session stops it. Not thread-safe with any other call on these sessions.
 * Errors: INVALID_ARG (NULL, n out of range, sessions repeated or on another model),
 * TOKEN_RANGE, CONTEXT_FULL (name the index), NOMEM, ABORTED; on error every KV cache is
 * unchanged and no logits are offered. */
#define FASTVLM_BATCH_MAX_SESSIONS 64
FASTVLM_API fastvlm_status fastvlm_sessions_eval_batch(fastvlm_session *const *sessions,
                                                       const int32_t *ids, int32_t n,
                                                       fastvlm_error *err);

/* A batcher joins the decode steps of sessions that run fastvlm_session_ask() at the same
 * time on their own threads: each step a session posts waits until every session of the
 * batcher that is decoding has posted its own (or 20 ms), and the first poster runs them
 * all as one fastvlm_sessions_eval_batch() on its own thread pool while the others wait.
 * Answers are unchanged (bit-identical steps); the gain is reading the weights once per
 * step for all of them. Sessions in other stages (vision, prefill, speculative batches)
 * are not waited for. Thread-safe: that is its purpose. Free it after every session
 * attached to it is freed or detached. NOMEM/INVALID_ARG on failure. */
typedef struct fastvlm_batcher fastvlm_batcher;
FASTVLM_API fastvlm_status fastvlm_batcher_new(const fastvlm_model *model,
                                               fastvlm_batcher **out, fastvlm_error *err);
FASTVLM_API void fastvlm_batcher_free(fastvlm_batcher *batcher);
/* Decode forwards run so far and the steps (rows) they carried: rows / batches is the mean
 * batch size. Either pointer may be NULL. */
FASTVLM_API void fastvlm_batcher_get_stats(fastvlm_batcher *batcher, uint64_t *n_batches,
                                           uint64_t *n_rows);
/* Attaches the session to `batcher` (NULL detaches); the model must be the batcher's.
 * Not while the session is inside an ask. */
FASTVLM_API fastvlm_status fastvlm_session_set_batcher(fastvlm_session *session,
                                                       fastvlm_batcher *batcher,
                                                       fastvlm_error *err);

/* -- Vision ---------------------------------------------------------------------------- */

/* Sets the session's image from interleaved 8-bit RGB (`stride` bytes per row, >= 3*width).
 * Preprocesses exactly as the reference (pad to a centred square with the model's pad
 * colour, antialiased bicubic resize to the session's image size, ×rescale, mean/std) and
 * runs the tower + projector. Limits: width, height >= 1 and <= FASTVLM_MAX_IMAGE_SIDE;
 * width*height <= FASTVLM_MAX_IMAGE_PIXELS (FASTVLM_ERR_IMAGE). */
FASTVLM_API fastvlm_status fastvlm_session_set_image_rgb8(fastvlm_session *session,
                                                          const uint8_t *rgb,
                                                          int32_t width, int32_t height,
                                                          size_t stride,
                                                          fastvlm_error *err);

/* Sets an already-prepared planar float image [3][size][size] (R, G, B planes, values
 * after rescale/mean/std). `size` must be a multiple of 64, <= FASTVLM_MAX_IMAGE_SIZE. */
FASTVLM_API fastvlm_status fastvlm_session_set_image_planar(fastvlm_session *session,
                                                            const float *planar,
                                                            int32_t size,
                                                            fastvlm_error *err);

/* Preprocessing alone: RGB8 → planar float [3][size][size] into `out` (3*size*size floats). */
FASTVLM_API fastvlm_status fastvlm_preprocess_rgb8(const fastvlm_model *model,
                                                   const uint8_t *rgb,
                                                   int32_t width, int32_t height,
                                                   size_t stride, int32_t size,
                                                   float *out, fastvlm_error *err);

/* Runs the tower on a planar image and writes either the tower output
 * [tokens × vision_embd] (tower_only) or the projector output [tokens × n_embd].
 * `out` must hold n_tokens × width floats; *n_tokens_out receives (size/64)². */
FASTVLM_API fastvlm_status fastvlm_session_encode_image(fastvlm_session *session,
                                                        const float *planar, int32_t size,
                                                        bool tower_only,
                                                        float *out, int32_t *n_tokens_out,
                                                        fastvlm_error *err);

/* Drops the session's image (the next ask is text-only). */
FASTVLM_API void fastvlm_session_clear_image(fastvlm_session *session);

/* -- High level: ask a question ------------------------------------------------------- */

/* Called for every generated token with its decoded text piece: valid UTF-8, complete
 * characters only (a character split across tokens comes whole with its last token;
 * ill-formed bytes come as U+FFFD); may be "". Return false to stop generation (the
 * result is then marked truncated). */
typedef bool (*fastvlm_token_fn)(int32_t token, const char *piece, void *user_data);

/* Polled between tokens and between layers of long stages; return true to abort
 * (the call then returns FASTVLM_ERR_ABORTED with the partial result filled). */
typedef bool (*fastvlm_abort_fn)(void *user_data);

typedef struct fastvlm_generate_params {
    const char *prompt;          /* the user's question (default "Describe the image."),
                                  * at most FASTVLM_MAX_PROMPT_BYTES */
    const char *system_prompt;   /* default "You are a helpful assistant.", at most
                                  * FASTVLM_MAX_PROMPT_BYTES */
    bool chat;                   /* apply the qwen_2 chat template (default true) */
    int32_t max_new_tokens;      /* default 256, >= 0; the context bounds it too */
    fastvlm_sampler_params sampler;
    fastvlm_token_fn on_token;   /* may be NULL */
    fastvlm_abort_fn should_abort; /* may be NULL */
    void *user_data;             /* passed to both callbacks */
    /* Reuse (docs/reuse.md). None of these changes the answer, only how much is computed. */
    bool reuse_kv;               /* start from the longest prefix of this prompt (text tokens
                                  * and image rows) still in the KV cache (default true) */
    bool speculative;            /* evaluate up to n_draft_max draft tokens per decoder call
                                  * (default true). Exact with any sampler (every token is
                                  * still sampled from its own logits); pays with greedy. */
    const int32_t *draft;        /* explicit draft ids (n_draft of them); NULL = the session's
                                  * previous answer to the same system prompt + prompt.
                                  * Ignored unless speculative. */
    int32_t n_draft;
    int32_t n_draft_max;         /* draft tokens per verification batch (default 8, >= 1) */
} fastvlm_generate_params;

FASTVLM_API fastvlm_generate_params fastvlm_generate_default_params(void);

typedef enum fastvlm_stop_reason {
    FASTVLM_STOP_EOS = 0,        /* <|im_end|> or end-of-text */
    FASTVLM_STOP_LENGTH,         /* max_new_tokens reached */
    FASTVLM_STOP_CONTEXT,        /* context full */
    FASTVLM_STOP_CALLBACK,       /* on_token returned false */
    FASTVLM_STOP_ABORT           /* should_abort / request_abort */
} fastvlm_stop_reason;

typedef struct fastvlm_result {
    char *text;                  /* valid UTF-8 (ill-formed bytes from the model become
                                  * U+FFFD), special tokens skipped; the streamed pieces
                                  * concatenated, plus U+FFFD when the answer ends inside a
                                  * UTF-8 sequence; owned, free with _clear */
    int32_t *tokens;             /* generated ids (owned) */
    int32_t n_tokens;
    int32_t n_prompt_tokens;     /* positions prefilled (text + image rows) */
    fastvlm_stop_reason stop;
    bool truncated;              /* stopped before EOS */
    double t_preprocess_ms;      /* image preparation for this answer (0 if image reused) */
    double t_vision_ms;          /* tower + projector */
    double t_prefill_ms;
    double t_decode_ms;
    double t_total_ms;
    /* reuse (docs/reuse.md) */
    int32_t prompt_index;        /* index into the prompts of fastvlm_session_ask_many(); 0 for ask */
    bool image_reused;           /* the image rows were not computed for this answer (asked
                                  * again, or attached features): t_preprocess/vision are 0 */
    int32_t n_reused_positions;  /* prompt positions taken from the KV cache, not prefilled
                                  * (n_prompt_tokens - n_reused_positions were computed) */
    int32_t n_prefix_positions;  /* positions before the question's text (system prompt,
                                  * user-turn header, image rows): the same for every question
                                  * about this image; a snapshot of that many forks the image */
    int32_t n_draft;             /* draft tokens verified (0 without speculative decoding) */
    int32_t n_accepted;          /* of which the model agreed with (n_accepted <= n_draft) */
} fastvlm_result;

/* Answers `params->prompt` about the session's image (or as text only when none is set):
 * builds the prompt with the chat template, splices the image rows at the image position,
 * prefills what the KV cache does not already hold (params->reuse_kv; see "Reuse across
 * frames" below), and decodes until <|im_end|>/EOS, max_new_tokens, a callback stop or
 * abort. The answer is the same whatever was in the cache before. `out` is always initialised (empty on early errors) and must be
 * released with fastvlm_result_clear(). */
FASTVLM_API fastvlm_status fastvlm_session_ask(fastvlm_session *session,
                                               const fastvlm_generate_params *params,
                                               fastvlm_result *out,
                                               fastvlm_error *err);

/* Thread-safe: makes the session's running call return FASTVLM_ERR_ABORTED at its next
 * check. The flag is cleared when the next ask/eval starts. */
FASTVLM_API void fastvlm_session_request_abort(fastvlm_session *session);

FASTVLM_API void fastvlm_result_clear(fastvlm_result *result);

/* ---------------------------------------------------------------------------------------
 * Reuse across frames (docs/reuse.md)
 *
 * What a session reuses by itself: ask() compares the prompt it is about to prefill
 * (position by position: text token ids, and image rows by their features' id and row)
 * with what its KV cache holds, keeps the longest common prefix and computes only the rest
 * (n_reused_positions). A new frame with the same system prompt therefore prefills from
 * the image on; the same image with another question only the question. The previous
 * answer to the same prompt is a draft that batched decoder calls verify (n_draft,
 * n_accepted; worth it with greedy decoding). All of it is exact: the answer, token for
 * token, and the logits, bit for bit, equal those of a fresh ask on a reset session (the
 * decoder computes every row the same way whatever batch it is in).
 *
 * What the caller decides: whether a frame needs the tower at all. Keep the features of
 * the last encoded frame (fastvlm_session_get_image_features) and attach them again
 * (fastvlm_session_set_image_features) when the picture has not changed.
 * ------------------------------------------------------------------------------------- */

/* Projected image rows (n_rows × n_embd floats), immutable and reference counted. Each
 * encoded image gets an id unique within its model: the KV cache recognises image rows by
 * that id, never by address. References may be taken and dropped on any thread. */
typedef struct fastvlm_image_features fastvlm_image_features;

/* A new reference to the session's current image features (those the next ask splices)
 * in *out. Errors: INVALID_ARG (NULL argument, or the session has no image; *out NULL). */
FASTVLM_API fastvlm_status fastvlm_session_get_image_features(fastvlm_session *session,
                                                              fastvlm_image_features **out,
                                                              fastvlm_error *err);

/* Makes `features` the session's image without running preprocessing or the tower; the
 * session takes its own reference (the caller keeps, and later drops, its own). The next
 * answer reports image_reused with t_preprocess_ms = t_vision_ms = 0. `features` may come
 * from any session of the same model (any image size). Errors: INVALID_ARG (NULL, or
 * features of another model); on error the session's image is unchanged. */
FASTVLM_API fastvlm_status fastvlm_session_set_image_features(fastvlm_session *session,
                                                              fastvlm_image_features *features,
                                                              fastvlm_error *err);

/* Takes a reference (returns `features`; NULL stays NULL). */
FASTVLM_API fastvlm_image_features *fastvlm_image_features_ref(fastvlm_image_features *features);
/* Drops a reference; the last one frees the rows. NULL is a no-op. */
FASTVLM_API void fastvlm_image_features_unref(fastvlm_image_features *features);
/* Row count, row width (n_embd), id (>= 1) and the rows themselves; 0 / NULL for NULL. */
FASTVLM_API int32_t fastvlm_image_features_n_rows(const fastvlm_image_features *features);
FASTVLM_API int32_t fastvlm_image_features_n_embd(const fastvlm_image_features *features);
FASTVLM_API uint64_t fastvlm_image_features_id(const fastvlm_image_features *features);
FASTVLM_API const float *fastvlm_image_features_data(const fastvlm_image_features *features);

/* A copy of the first positions of a KV cache (keys, values, and what each position
 * holds), to fork one prefix into several continuations or several sessions. */
typedef struct fastvlm_kv_snapshot fastvlm_kv_snapshot;

/* Copies positions [0, n_pos) of the session's KV cache into a new snapshot (*out);
 * n_pos = -1 takes all of them (fastvlm_session_n_past()). Errors: INVALID_ARG (NULL,
 * n_pos < -1 or > n_past), NOMEM; *out NULL on error. */
FASTVLM_API fastvlm_status fastvlm_session_kv_snapshot(fastvlm_session *session, int32_t n_pos,
                                                       fastvlm_kv_snapshot **out,
                                                       fastvlm_error *err);

/* Replaces the session's KV cache with the snapshot's positions (n_past becomes its
 * n_pos; the last logits are forgotten). The next ask reuses them as far as its prompt
 * agrees. Any session of the model that made the snapshot may restore it, any number of
 * times. Errors: INVALID_ARG (NULL, another model), CONTEXT_FULL (n_pos > the session's
 * n_ctx); on error the cache is unchanged. */
FASTVLM_API fastvlm_status fastvlm_session_kv_restore(fastvlm_session *session,
                                                      const fastvlm_kv_snapshot *snapshot,
                                                      fastvlm_error *err);

/* Positions held (0 for NULL). */
FASTVLM_API int32_t fastvlm_kv_snapshot_n_pos(const fastvlm_kv_snapshot *snapshot);
FASTVLM_API void fastvlm_kv_snapshot_free(fastvlm_kv_snapshot *snapshot);

/* Asks each of prompts[0..n_prompts) (1 <= n_prompts <= FASTVLM_MAX_PROMPTS; each at most
 * FASTVLM_MAX_PROMPT_BYTES, else FASTVLM_ERR_INVALID_ARG before any is asked) in turn
 * about the session's image with `params`
 * for everything else (params->prompt and params->draft are ignored: each prompt drafts
 * from its own previous answer). results[i] receives answer i with prompt_index = i; the
 * system prompt and image are prefilled once and every later question reuses them. All
 * n_prompts results are always initialised and must each be cleared. Returns the first
 * error; the prompts after it are not asked (their results stay empty). */
FASTVLM_API fastvlm_status fastvlm_session_ask_many(fastvlm_session *session,
                                                    const fastvlm_generate_params *params,
                                                    const char *const *prompts,
                                                    int32_t n_prompts,
                                                    fastvlm_result *results,
                                                    fastvlm_error *err);

/* Forgets the previous answers kept as drafts (they are kept per system prompt + prompt,
 * for the last FASTVLM_MAX_DRAFT_PROMPTS distinct ones). */
#define FASTVLM_MAX_DRAFT_PROMPTS 16
FASTVLM_API void fastvlm_session_clear_drafts(fastvlm_session *session);

#ifdef __cplusplus
}
#endif

#endif /* FASTVLM_H */
