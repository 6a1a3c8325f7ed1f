/* fuzz_config.c — libFuzzer target for the YAML preset loader (gst/fastvlm-config.c).
 *
 * What it is: each input is written to one memfd and applied, through the public
 * fastvlm_config_apply() and the file path /proc/self/fd/N, to a fresh FuzzSettings: a
 * GObject with the properties of fastvlmcaption (same names, types and ranges, so the
 * presets in configs/ apply) plus one of every other kind the loader converts or must refuse
 * (long, ulong, int64, a signed duration, flags, construct-only, object, boxed). GLib
 * warnings and criticals are made fatal. Then, against libyaml's own event stream of the
 * input (read here, independently of the loader's walk):
 *   - success means: the stream parses, holds at most one document whose top level is a
 *     mapping of scalar keys to scalar values (or is empty), no aliases; every key, `_` read
 *     as `-`, names a distinct settable property and holds no NUL; no value is null or
 *     holds a NUL; set_property ran once per pair; string values read back as written, the
 *     path properties come back absolute, and booleans, enums, integers and durations hold
 *     what their text says (worked out here in 128-bit arithmetic);
 *   - failure means: no property was set (all or nothing); the error is in
 *     FASTVLM_CONFIG_ERROR, valid UTF-8, and starts with "FILE:" — "FILE:LINE:COLUMN: "
 *     with LINE inside the file for every code but FILE and TOO_LARGE.
 * A broken invariant aborts, which the fuzzer reports like a crash.
 *
 * What it is not: a test of values (tests/config/test-config.c checks them by hand).
 * Built by tests/fuzz/run_fuzz.sh (clang, ASan + UBSan, fastvlm-config.c instrumented) and,
 * with fuzz_main.c as the driver, by tests/fuzz/meson.build (suite gst) to replay
 * corpus/config/. Linux only (memfd_create).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib-object.h>
#include <yaml.h>

#include "fastvlm-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void G_GNUC_PRINTF (1, 2)
fail (const char *fmt, ...)
{
  va_list ap;
  fprintf (stderr, "fuzz_config: invariant broken: ");
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  abort ();
}

/* ---------------------------------------------------------------------------------------- */
/* FuzzSettings: every property value kept as a GValue, indexed by property id               */

enum {
  PROP_0, PROP_MODEL, PROP_MMPROJ, PROP_CONFIG, PROP_PROMPT, PROP_SYSTEM_PROMPT,
  PROP_PROMPT_ID, PROP_MAX_NEW_TOKENS, PROP_TEMPERATURE, PROP_TOP_P, PROP_SEED,
  PROP_IMAGE_SIZE, PROP_THREADS, PROP_INTERVAL, PROP_MODE, PROP_MAX_LATENCY, PROP_OVERLAY,
  PROP_STATS, PROP_STATS_INTERVAL, PROP_REUSE_THRESHOLD,
  /* not on the element: the loader's other conversions and refusals */
  PROP_NICE, PROP_BUFFER_SIZE, PROP_OFFSET, PROP_DELAY, PROP_OUTPUTS, PROP_ID, PROP_PEER,
  PROP_TAGS, N_PROPS
};

typedef struct {
  GObject parent;
  GValue v[N_PROPS];
  guint n_set;                  /* set_property calls */
} FuzzSettings;
typedef GObjectClass FuzzSettingsClass;

GType fuzz_settings_get_type (void);
G_DEFINE_TYPE (FuzzSettings, fuzz_settings, G_TYPE_OBJECT)

static GType
fuzz_mode_get_type (void)
{
  static GType type;
  static const GEnumValue values[] = {
    { 0, "FUZZ_MODE_AUTO", "auto" }, { 1, "FUZZ_MODE_LIVE", "live" },
    { 2, "FUZZ_MODE_OFFLINE", "offline" }, { 0, NULL, NULL },
  };
  if (!type)
    type = g_enum_register_static ("FuzzMode", values);
  return type;
}

static GType
fuzz_outputs_get_type (void)
{
  static GType type;
  static const GFlagsValue values[] = {
    { 1, "FUZZ_OUT_META", "meta" }, { 2, "FUZZ_OUT_TEXT", "text" },
    { 4, "FUZZ_OUT_MESSAGE", "message" }, { 0, NULL, NULL },
  };
  if (!type)
    type = g_flags_register_static ("FuzzOutputs", values);
  return type;
}

static void
fuzz_settings_set_property (GObject * o, guint id, const GValue * v, GParamSpec * pspec)
{
  FuzzSettings *self = (FuzzSettings *) o;

  self->n_set++;
  g_value_unset (&self->v[id]);
  g_value_init (&self->v[id], G_VALUE_TYPE (v));
  g_value_copy (v, &self->v[id]);
}

static void
fuzz_settings_get_property (GObject * o, guint id, GValue * v, GParamSpec * pspec)
{
  g_value_copy (&((FuzzSettings *) o)->v[id], v);
}

static void
fuzz_settings_finalize (GObject * o)
{
  FuzzSettings *self = (FuzzSettings *) o;
  for (guint i = 1; i < N_PROPS; i++)
    g_value_unset (&self->v[i]);
  G_OBJECT_CLASS (fuzz_settings_parent_class)->finalize (o);
}

static void
fuzz_settings_class_init (FuzzSettingsClass * oc)
{
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
  const guint64 s = G_GUINT64_CONSTANT (1000000000);
  GParamSpec *p[N_PROPS] = { NULL };

  oc->set_property = fuzz_settings_set_property;
  oc->get_property = fuzz_settings_get_property;
  oc->finalize = fuzz_settings_finalize;

  p[PROP_MODEL] = g_param_spec_string ("model", "", "", NULL, rw);
  p[PROP_MMPROJ] = g_param_spec_string ("mmproj", "", "", NULL, rw);
  p[PROP_CONFIG] = g_param_spec_string ("config", "", "", NULL, rw);
  p[PROP_PROMPT] = g_param_spec_string ("prompt", "", "", "Describe the image.", rw);
  p[PROP_SYSTEM_PROMPT] = g_param_spec_string ("system-prompt", "", "", "", rw);
  p[PROP_PROMPT_ID] = g_param_spec_uint ("prompt-id", "", "", 0, G_MAXUINT, 1, ro);
  p[PROP_MAX_NEW_TOKENS] = g_param_spec_uint ("max-new-tokens", "", "", 1, 4096, 64, rw);
  p[PROP_TEMPERATURE] = g_param_spec_float ("temperature", "", "", 0.0f, 10.0f, 0.0f, rw);
  p[PROP_TOP_P] = g_param_spec_float ("top-p", "", "", 0.0f, 1.0f, 1.0f, rw);
  p[PROP_SEED] = g_param_spec_uint64 ("seed", "", "", 0, G_MAXUINT64, 0, rw);
  p[PROP_IMAGE_SIZE] = g_param_spec_int ("image-size", "", "", 0, 4096, 0, rw);
  p[PROP_THREADS] = g_param_spec_int ("threads", "", "", 0, 256, 0, rw);
  p[PROP_INTERVAL] = g_param_spec_uint64 ("interval", "", "", 0, G_MAXUINT64, 0, rw);
  p[PROP_MODE] = g_param_spec_enum ("mode", "", "", fuzz_mode_get_type (), 0, rw);
  p[PROP_MAX_LATENCY] = g_param_spec_uint64 ("max-latency", "", "", 0, G_MAXUINT64, 0, rw);
  p[PROP_OVERLAY] = g_param_spec_boolean ("overlay", "", "", FALSE, rw);
  p[PROP_STATS] = g_param_spec_boxed ("stats", "", "", G_TYPE_STRV, ro);
  p[PROP_STATS_INTERVAL] = g_param_spec_uint64 ("stats-interval", "", "", 0, G_MAXUINT64, s, rw);
  p[PROP_REUSE_THRESHOLD] = g_param_spec_double ("reuse-threshold", "", "", 0, 255, 0, rw);
  p[PROP_NICE] = g_param_spec_long ("nice", "", "", -20, 19, 0, rw);
  p[PROP_BUFFER_SIZE] = g_param_spec_ulong ("buffer-size", "", "", 16, G_MAXULONG, 16, rw);
  p[PROP_OFFSET] = g_param_spec_int64 ("offset", "", "", G_MININT64, G_MAXINT64, 0, rw);
  p[PROP_DELAY] = g_param_spec_int64 ("delay", "", "", -10 * (gint64) s, 10 * (gint64) s, 0, rw);
  p[PROP_OUTPUTS] = g_param_spec_flags ("outputs", "", "", fuzz_outputs_get_type (), 1, rw);
  p[PROP_ID] = g_param_spec_int ("id", "", "", 0, 100, 0, rw | G_PARAM_CONSTRUCT_ONLY);
  p[PROP_PEER] = g_param_spec_object ("peer", "", "", G_TYPE_OBJECT, rw);
  p[PROP_TAGS] = g_param_spec_boxed ("tags", "", "", G_TYPE_STRV, rw);
  g_object_class_install_properties (oc, N_PROPS, p);
}

static void
fuzz_settings_init (FuzzSettings * self)
{
  GParamSpec **props;
  guint n;

  /* every value starts as its property's default, so get_property always has one */
  props = g_object_class_list_properties (G_OBJECT_GET_CLASS (self), &n);
  for (guint i = 0; i < n; i++) {
    GValue *v = &self->v[props[i]->param_id];
    g_value_init (v, props[i]->value_type);
    g_param_value_set_default (props[i], v);
  }
  g_free (props);
}

/* ---------------------------------------------------------------------------------------- */
/* The input as libyaml sees it                                                               */

typedef struct {
  gchar *key, *value;
  gsize key_len, value_len;
  gboolean value_null;
} Pair;

typedef struct {
  gboolean parsed;              /* the whole stream parses */
  gboolean shape_ok;            /* <= 1 document; a mapping of scalar pairs, or nothing */
  GArray *pairs;                /* of Pair */
} Oracle;

/* YAML's null: an empty or ~/null plain scalar. */
static gboolean
is_null (const yaml_event_t * ev)
{
  static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
  if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (nulls); i++)
    if (!strcmp ((const char *) ev->data.scalar.value, nulls[i]))
      return TRUE;
  return FALSE;
}

static void
oracle_read (const uint8_t * data, size_t size, Oracle * o)
{
  yaml_parser_t parser;
  yaml_event_t ev;
  int depth = 0, n_docs = 0;
  gboolean done = FALSE, have_key = FALSE;
  Pair pair = { 0 };

  o->parsed = FALSE;
  o->shape_ok = TRUE;
  o->pairs = g_array_new (FALSE, TRUE, sizeof (Pair));
  if (!yaml_parser_initialize (&parser))
    fail ("yaml_parser_initialize");
  yaml_parser_set_input_string (&parser, data, size);
  yaml_parser_set_encoding (&parser, YAML_UTF8_ENCODING);
  while (!done) {
    if (!yaml_parser_parse (&parser, &ev))
      break;
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        done = TRUE;
        break;
      case YAML_DOCUMENT_START_EVENT:
        o->shape_ok &= ++n_docs == 1;
        break;
      case YAML_MAPPING_START_EVENT:
        o->shape_ok &= depth == 0;
        depth++;
        break;
      case YAML_MAPPING_END_EVENT:
        depth--;
        break;
      case YAML_SEQUENCE_START_EVENT:
      case YAML_ALIAS_EVENT:
        o->shape_ok = FALSE;
        depth += ev.type == YAML_SEQUENCE_START_EVENT;
        break;
      case YAML_SEQUENCE_END_EVENT:
        depth--;
        break;
      case YAML_SCALAR_EVENT:
        if (depth == 0) {
          o->shape_ok &= is_null (&ev);
        } else if (depth == 1 && !have_key) {
          pair.key = g_strndup ((const char *) ev.data.scalar.value, ev.data.scalar.length);
          pair.key_len = ev.data.scalar.length;
          have_key = TRUE;
        } else if (depth == 1) {
          pair.value = g_strndup ((const char *) ev.data.scalar.value, ev.data.scalar.length);
          pair.value_len = ev.data.scalar.length;
          pair.value_null = is_null (&ev);
          g_array_append_val (o->pairs, pair);
          have_key = FALSE;
        }
        break;
      default:
        break;
    }
    yaml_event_delete (&ev);
  }
  o->parsed = done;
  yaml_parser_delete (&parser);
  if (have_key)
    g_free (pair.key);
}

static void
oracle_clear (Oracle * o)
{
  for (guint i = 0; i < o->pairs->len; i++) {
    g_free (g_array_index (o->pairs, Pair, i).key);
    g_free (g_array_index (o->pairs, Pair, i).value);
  }
  g_array_unref (o->pairs);
}

/* ---------------------------------------------------------------------------------------- */
/* What an accepted integer must be, from the grammar in fastvlm-config.h                     */

__extension__ typedef __int128 i128;   /* GCC and clang; __extension__ for -Wpedantic */

/* "[+-]DIGITS[.DIGITS][ ...]UNIT" (durations) or "[+-]DIGITS" as sign * num / den ns, exact
 * in 128 bits; FALSE when it does not have that form or has too many digits to check. */
static gboolean
ref_number (const char *s, gboolean duration, i128 * num, i128 * den)
{
  static const struct { const char *unit; i128 factor; } units[] = {
    { "", 1 }, { "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "ms", 1000000 },
    { "s", 1000000000 }, { "min", (i128) 60 * 1000000000 },
    { "h", (i128) 3600 * 1000000000 },
  };
  i128 n = 0, d = 1, sign = 1;
  int significant = 0, digits = 0;

  if (*s == '+' || *s == '-')
    sign = *s++ == '-' ? -1 : 1;
  for (; g_ascii_isdigit (*s); s++, digits++) {
    significant += n != 0 || *s != '0';
    n = n * 10 + (*s - '0');
    if (significant > 24)
      return FALSE;
  }
  if (duration && *s == '.') {
    for (s++; g_ascii_isdigit (*s); s++, digits++) {
      significant += n != 0 || *s != '0';
      n = n * 10 + (*s - '0');
      d *= 10;
      if (significant > 24 || d > (i128) 1e30)
        return FALSE;
    }
  }
  if (!digits)
    return FALSE;
  if (duration) {
    while (*s == ' ')
      s++;
    for (gsize i = 0; i < G_N_ELEMENTS (units); i++)
      if (!strcmp (s, units[i].unit)) {
        *num = sign * n * units[i].factor;
        *den = d;
        return TRUE;
      }
    return FALSE;
  }
  *num = sign * n;
  *den = 1;
  return *s == '\0';
}

/* Checks an accepted integer property against ref_number() of its text. */
static void
check_integer (GParamSpec * pspec, const GValue * v, const char *text)
{
  static const char *const duration_words[] = {
    "interval", "latency", "duration", "timeout", "delay", "period",
  };
  GType t = G_TYPE_FUNDAMENTAL (pspec->value_type);
  gboolean duration = FALSE;
  i128 got, num, den;

  if (t == G_TYPE_INT64 || t == G_TYPE_UINT64)
    for (gsize i = 0; i < G_N_ELEMENTS (duration_words); i++)
      duration |= strstr (pspec->name, duration_words[i]) != NULL;
  if (t == G_TYPE_INT)
    got = g_value_get_int (v);
  else if (t == G_TYPE_UINT)
    got = g_value_get_uint (v);
  else if (t == G_TYPE_LONG)
    got = g_value_get_long (v);
  else if (t == G_TYPE_ULONG)
    got = g_value_get_ulong (v);
  else if (t == G_TYPE_INT64)
    got = g_value_get_int64 (v);
  else if (t == G_TYPE_UINT64)
    got = g_value_get_uint64 (v);
  else
    return;
  if (!ref_number (text, duration, &num, &den))
    return;                     /* too long to check here (or a bug the loader let through) */
  if (got * den != num)
    fail ("'%s' for '%s' was set as %lld%s", text, pspec->name, (long long) got,
        duration ? " ns" : "");
}

/* ---------------------------------------------------------------------------------------- */
/* The target                                                                                 */

static void
check_success (FuzzSettings * obj, const Oracle * o, const uint8_t * data, size_t size)
{
  GObjectClass *klass = G_OBJECT_GET_CLASS (obj);
  GHashTable *seen = g_hash_table_new (NULL, NULL);

  if (!o->parsed || !o->shape_ok)
    fail ("accepted a file libyaml reads as %s: %.*s", o->parsed ? "not one mapping of "
        "scalars" : "invalid", (int) MIN (size, 200), (const char *) data);
  if (obj->n_set != o->pairs->len)
    fail ("%u properties set for %u pairs", obj->n_set, o->pairs->len);
  for (guint i = 0; i < o->pairs->len; i++) {
    const Pair *p = &g_array_index (o->pairs, Pair, i);
    gchar *canon = g_strdelimit (g_strdup (p->key), "_", '-');
    GParamSpec *pspec = g_object_class_find_property (klass, canon);
    GValue v = G_VALUE_INIT;

    if (strlen (p->key) != p->key_len)
      fail ("accepted key '%s' that holds a NUL (%zu bytes)", p->key, p->key_len);
    if (strlen (p->value) != p->value_len || p->value_null)
      fail ("accepted a null value or one with a NUL for '%s'", p->key);
    if (!pspec || !(pspec->flags & G_PARAM_WRITABLE) || (pspec->flags & G_PARAM_CONSTRUCT_ONLY)
        || !strcmp (pspec->name, "config"))
      fail ("accepted key '%s', which is not a settable property", p->key);
    if (g_hash_table_contains (seen, pspec))
      fail ("accepted '%s' twice", pspec->name);
    g_hash_table_add (seen, pspec);
    g_value_init (&v, pspec->value_type);
    g_object_get_property (G_OBJECT (obj), pspec->name, &v);
    if (!strcmp (pspec->name, "prompt") || !strcmp (pspec->name, "system-prompt")) {
      if (strcmp (g_value_get_string (&v), p->value))
        fail ("'%s' reads back as '%s', not '%s'", pspec->name, g_value_get_string (&v),
            p->value);
    } else if (!strcmp (pspec->name, "model") || !strcmp (pspec->name, "mmproj")) {
      const gchar *got = g_value_get_string (&v);
      if (*p->value && !g_path_is_absolute (got))
        fail ("path '%s' came back relative: '%s'", p->value, got);
    } else if (G_VALUE_HOLDS_BOOLEAN (&v)) {
      gchar *lower = g_ascii_strdown (p->value, -1);
      gboolean yes = !strcmp (lower, "true") || !strcmp (lower, "yes") || !strcmp (lower, "on");
      if (g_value_get_boolean (&v) != yes)
        fail ("'%s' for '%s' was set as %d", p->value, pspec->name, g_value_get_boolean (&v));
      g_free (lower);
    } else if (G_VALUE_HOLDS_ENUM (&v)) {
      GEnumValue *e = g_enum_get_value (G_PARAM_SPEC_ENUM (pspec)->enum_class,
          g_value_get_enum (&v));
      if (!e || (strcmp (e->value_nick, p->value) && strcmp (e->value_name, p->value)))
        fail ("'%s' for '%s' was set as %s", p->value, pspec->name, e ? e->value_nick : "?");
    } else {
      check_integer (pspec, &v, p->value);
    }
    g_value_unset (&v);
    g_free (canon);
  }
  g_hash_table_unref (seen);
}

static void
check_failure (FuzzSettings * obj, const GError * err, const char *display,
    const uint8_t * data, size_t size)
{
  gsize lines = 1;
  const gchar *rest;
  guint64 line, col;
  gchar *end;

  if (obj->n_set)
    fail ("failed, but %u properties were set", obj->n_set);
  if (!err || err->domain != FASTVLM_CONFIG_ERROR || err->code < FASTVLM_CONFIG_ERROR_FILE
      || err->code > FASTVLM_CONFIG_ERROR_RANGE)
    fail ("failed without a FASTVLM_CONFIG_ERROR");
  if (!g_utf8_validate (err->message, -1, NULL))
    fail ("error message is not UTF-8: %s", err->message);
  if (!g_str_has_prefix (err->message, display) || err->message[strlen (display)] != ':')
    fail ("error message does not start with the file name: %s", err->message);
  if (err->code == FASTVLM_CONFIG_ERROR_FILE || err->code == FASTVLM_CONFIG_ERROR_TOO_LARGE
      || strstr (err->message, ": out of memory while parsing"))
    return;
  rest = err->message + strlen (display) + 1;
  line = g_ascii_strtoull (rest, &end, 10);
  if (*end != ':' || end == rest)
    fail ("no line in the error: %s", err->message);
  rest = end + 1;
  col = g_ascii_strtoull (rest, &end, 10);
  if (end == rest || strncmp (end, ": ", 2))
    fail ("no column in the error: %s", err->message);
  /* an upper bound on YAML's line breaks: CR, LF (CR LF counted twice), NEL, LS, PS */
  for (size_t i = 0; i < size; i++)
    lines += data[i] == '\n' || data[i] == '\r' || (i + 1 < size && data[i] == 0xC2
        && data[i + 1] == 0x85) || (i + 2 < size && data[i] == 0xE2 && data[i + 1] == 0x80
        && (data[i + 2] == 0xA8 || data[i + 2] == 0xA9));
  if (line < 1 || line > lines + 1 || col < 1 || col > size + 2)
    fail ("error position %" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT " outside the file "
        "(%zu lines, %zu bytes): %s", line, col, lines, size, err->message);
}

static int memfd = -1;
static char path[64];

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  FuzzSettings *obj;
  GError *err = NULL;
  Oracle o;
  gboolean ok;

  if (memfd < 0) {
    g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL);
    memfd = memfd_create ("fuzz_config.yaml", MFD_CLOEXEC);
    if (memfd < 0)
      fail ("memfd_create");
    snprintf (path, sizeof path, "/proc/self/fd/%d", memfd);
  }
  if (ftruncate (memfd, 0) || (size && pwrite (memfd, data, size, 0) != (ssize_t) size))
    fail ("writing the memfd");

  obj = g_object_new (fuzz_settings_get_type (), NULL);
  obj->n_set = 0;
  ok = fastvlm_config_apply (G_OBJECT (obj), path, &err);
  oracle_read (data, size, &o);
  if (ok) {
    if (err)
      fail ("succeeded with an error set");
    check_success (obj, &o, data, size);
  } else {
    check_failure (obj, err, path, data, size);
  }
  oracle_clear (&o);
  g_clear_error (&err);
  g_object_unref (obj);
  return 0;
}
