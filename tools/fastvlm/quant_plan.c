/*
 * quant_plan.c — quantization plans for `fastvlm quantize` (see quant_plan.h): tensor name
 * classification, type names and fallbacks, and the YAML plan reader (libyaml's event API,
 * as in libyaml's tests/run-parser.c; errors carry the parser's line and column).
 * Not here: converting tensor data or writing files.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "quant_plan.h"

static const char *const component_names[QPLAN_N_COMPONENTS] = {
    [QPLAN_VISION] = "vision",         [QPLAN_PROJECTOR] = "projector",
    [QPLAN_ATTENTION] = "attention",   [QPLAN_FFN] = "ffn",
    [QPLAN_EMBEDDINGS] = "embeddings", [QPLAN_OUTPUT] = "output",
};

static const struct {
    const char *name;
    fvlm_type type;
} type_names[] = {
    {"f32", FVLM_TYPE_F32},   {"f16", FVLM_TYPE_F16},   {"bf16", FVLM_TYPE_BF16},
    {"q8_0", FVLM_TYPE_Q8_0}, {"q4_0", FVLM_TYPE_Q4_0}, {"q4_1", FVLM_TYPE_Q4_1},
    {"q5_0", FVLM_TYPE_Q5_0}, {"q5_1", FVLM_TYPE_Q5_1}, {"q4_k", FVLM_TYPE_Q4_K},
    {"q5_k", FVLM_TYPE_Q5_K}, {"q6_k", FVLM_TYPE_Q6_K},
};
#define N_TYPE_NAMES (sizeof type_names / sizeof type_names[0])

void qplan_init(qplan *p)
{
    for (int c = 0; c < QPLAN_N_COMPONENTS; c++)
        p->type[c] = QPLAN_KEEP;
}

void qplan_set_all(qplan *p, fvlm_type type)
{
    for (int c = 0; c < QPLAN_N_COMPONENTS; c++)
        p->type[c] = (int)type;
}

bool qplan_parse_type(const char *s, fvlm_type *out)
{
    for (size_t i = 0; i < N_TYPE_NAMES; i++)
        if (!strcasecmp(s, type_names[i].name)) {
            *out = type_names[i].type;
            return true;
        }
    return false;
}

const char *qplan_type_name(fvlm_type t)
{
    for (size_t i = 0; i < N_TYPE_NAMES; i++)
        if (type_names[i].type == t)
            return type_names[i].name;
    return "?";
}

const char *qplan_type_names(void)
{
    return "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k";
}

const char *qplan_component_name(qplan_component c)
{
    return c >= 0 && c < QPLAN_N_COMPONENTS ? component_names[c] : "other";
}

/* ---- tensor names ------------------------------------------------------------------------ */

/* Matches `name` against `pat`, where '#' in the pattern stands for one or more digits. */
static bool match(const char *name, const char *pat)
{
    while (*pat) {
        if (*pat == '#') {
            if (!isdigit((unsigned char)*name))
                return false;
            while (isdigit((unsigned char)*name))
                name++;
            pat++;
        } else if (*pat++ != *name++) {
            return false;
        }
    }
    return *name == '\0';
}

static const struct {
    const char *pattern;
    qplan_component component;
} name_rules[] = {
    /* language model (llama.cpp's qwen2 names) */
    {"token_embd.weight", QPLAN_EMBEDDINGS},
    {"output.weight", QPLAN_OUTPUT},
    {"blk.#.attn_q.weight", QPLAN_ATTENTION},
    {"blk.#.attn_k.weight", QPLAN_ATTENTION},
    {"blk.#.attn_v.weight", QPLAN_ATTENTION},
    {"blk.#.attn_output.weight", QPLAN_ATTENTION},
    {"blk.#.ffn_gate.weight", QPLAN_FFN},
    {"blk.#.ffn_up.weight", QPLAN_FFN},
    {"blk.#.ffn_down.weight", QPLAN_FFN},
    /* vision tower: the matrices of docs/model-format.md §3.2 class M */
    {"v.blk.#.#.ffn_up.weight", QPLAN_VISION},
    {"v.blk.#.#.ffn_down.weight", QPLAN_VISION},
    {"v.blk.#.#.attn_qkv.weight", QPLAN_VISION},
    {"v.blk.#.#.attn_out.weight", QPLAN_VISION},
    {"v.down.#.pw.weight", QPLAN_VISION},
    /* projector */
    {"mm.#.weight", QPLAN_PROJECTOR},
};

qplan_component qplan_classify(const char *name, int n_dims)
{
    if (n_dims != 2)
        return QPLAN_NONE;
    for (size_t i = 0; i < sizeof name_rules / sizeof name_rules[0]; i++)
        if (match(name, name_rules[i].pattern))
            return name_rules[i].component;
    return QPLAN_NONE;
}

fvlm_type qplan_fallback(fvlm_type target, int64_t row_len)
{
    const fvlm_type_traits *tt = fvlm_type_get_traits((uint32_t)target);
    fvlm_type t = target;

    if (!tt || row_len % tt->block_size == 0)
        return target;
    switch (target) {
    case FVLM_TYPE_Q4_K: t = FVLM_TYPE_Q5_0; break;
    case FVLM_TYPE_Q5_K: t = FVLM_TYPE_Q5_1; break;
    case FVLM_TYPE_Q6_K: t = FVLM_TYPE_Q8_0; break;
    default: break;
    }
    tt = fvlm_type_get_traits((uint32_t)t);
    return tt && row_len % tt->block_size == 0 ? t : FVLM_TYPE_F16;
}

int qplan_ftype_of(fvlm_type t)
{
    switch (t) {
    case FVLM_TYPE_F32: return 0;
    case FVLM_TYPE_F16: return 1;
    case FVLM_TYPE_Q4_0: return 2;
    case FVLM_TYPE_Q4_1: return 3;
    case FVLM_TYPE_Q8_0: return 7;
    case FVLM_TYPE_Q5_0: return 8;
    case FVLM_TYPE_Q5_1: return 9;
    case FVLM_TYPE_Q4_K: return 14;   /* LLAMA_FTYPE_MOSTLY_Q4_K_S */
    case FVLM_TYPE_Q5_K: return 16;   /* LLAMA_FTYPE_MOSTLY_Q5_K_S */
    case FVLM_TYPE_Q6_K: return 18;
    case FVLM_TYPE_BF16: return 32;
    default: return -1;
    }
}

/* ---- the YAML plan ---------------------------------------------------------------------- */

/* "PATH:LINE:COL: message" into err (libyaml marks are 0-based). */
static void fail_at(char *err, size_t len, const char *path, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void fail_at(char *err, size_t len, const char *path, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    int o = snprintf(err, len, "%s:%zu:%zu: ", path, m.line + 1, m.column + 1);
    if (o < 0 || (size_t)o >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(err + o, len - (size_t)o, fmt, ap);
    va_end(ap);
}

static const char *event_kind(yaml_event_type_t t)
{
    switch (t) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_ALIAS_EVENT: return "an alias";
    case YAML_SCALAR_EVENT: return "a scalar";
    default: return "something else";
    }
}

bool qplan_load(const char *path, qplan *p, char *err, size_t err_len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    FILE *f;
    bool ok = false, seen[QPLAN_N_COMPONENTS] = {false};
    int depth = 0;          /* 0 outside the top mapping, 1 inside it */
    int component = -1;     /* key just read, waiting for its value */
    bool have_root = false, done = false;

    qplan_init(p);
    f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(err, err_len, "%s: cannot initialise the YAML parser", path);
        return false;
    }
    yaml_parser_set_input_file(&parser, f);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            const yaml_mark_t m = parser.problem_mark;
            snprintf(err, err_len, "%s:%zu:%zu: YAML error: %s%s%s", path, m.line + 1,
                     m.column + 1, parser.problem ? parser.problem : "parse error",
                     parser.context ? " " : "", parser.context ? parser.context : "");
            goto out;
        }
        const yaml_mark_t m = ev.start_mark;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth != 0 || have_root) {
                fail_at(err, err_len, path, m, "%s", component >= 0
                            ? "a component's value must be a type name, not a mapping"
                            : "the plan must be a single flat mapping");
                yaml_event_delete(&ev);
                goto out;
            }
            depth = 1;
            have_root = true;
            break;
        case YAML_MAPPING_END_EVENT:
            depth = 0;
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (depth == 0) {
                fail_at(err, err_len, path, m, "the plan must be a mapping of component: type, "
                        "not the scalar '%s'", v);
                yaml_event_delete(&ev);
                goto out;
            }
            if (component < 0) {   /* a key */
                int c;
                for (c = 0; c < QPLAN_N_COMPONENTS; c++)
                    if (!strcmp(v, component_names[c]))
                        break;
                if (c == QPLAN_N_COMPONENTS) {
                    fail_at(err, err_len, path, m, "unknown component '%s' (known: vision, "
                            "projector, attention, ffn, embeddings, output)", v);
                    yaml_event_delete(&ev);
                    goto out;
                }
                if (seen[c]) {
                    fail_at(err, err_len, path, m, "component '%s' is given twice", v);
                    yaml_event_delete(&ev);
                    goto out;
                }
                seen[c] = true;
                component = c;
            } else {               /* its value */
                fvlm_type t;
                if (!strcasecmp(v, "keep")) {
                    p->type[component] = QPLAN_KEEP;
                } else if (qplan_parse_type(v, &t)) {
                    p->type[component] = (int)t;
                } else {
                    fail_at(err, err_len, path, m, "unknown type '%s' for '%s' (known: %s, keep)",
                            v, component_names[component], qplan_type_names());
                    yaml_event_delete(&ev);
                    goto out;
                }
                component = -1;
            }
            break;
        }
        default:
            fail_at(err, err_len, path, m, "%s is not allowed here: the plan is a flat "
                    "mapping of component: type", event_kind(ev.type));
            yaml_event_delete(&ev);
            goto out;
        }
        yaml_event_delete(&ev);
    }
    if (!have_root) {
        snprintf(err, err_len, "%s: empty plan (expected a mapping of component: type)", path);
        goto out;
    }
    ok = true;
out:
    yaml_parser_delete(&parser);
    fclose(f);
    return ok;
}
