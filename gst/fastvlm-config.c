/* fastvlm-config.c — applies a YAML preset (one mapping of scalars) to GObject properties.
 *
 * What it is: the implementation of fastvlm_config_apply() (contract and file format in
 * fastvlm-config.h). Three steps: read the file (size-capped), walk libyaml's event stream
 * collecting one converted GValue per key (every check happens here, errors carry the
 * libyaml mark of the offending key or value), then set the collected values in one batch.
 *
 * What it is not: a YAML document model (libyaml's event API is used directly, nothing is
 * kept but the current key), and it knows nothing about the fastvlmcaption element except
 * three conventions: which string properties are paths, which 64-bit ones are durations,
 * and which integers must be a multiple of a step (the GParamSpec cannot say so).
 */
#include "fastvlm-config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <yaml.h>

G_DEFINE_QUARK (fastvlm-config-error-quark, fastvlm_config_error)

/* String properties holding file names: relative values are resolved against the
 * directory of the YAML file so a preset can sit next to its model files. */
static const gchar *const path_properties[] = { "model", "mmproj", NULL };

/* Substrings of 64-bit integer property names that hold a GstClockTime (ns). */
static const gchar *const duration_words[] = {
  "interval", "latency", "duration", "timeout", "delay", "period", NULL
};

/* Integer properties whose value must be a multiple of a step: image-size is the side of
 * the square fed to FastViTHD, whose five stride-2 stages and 2x2 patching need 64 | side.
 * The element checks this again when it starts; here the error gets a line and column. */
static const struct {
  const gchar *name;
  guint64 step;
} stepped_properties[] = {
  { "image-size", 64 },
};

/* One accepted key: the property and its converted value. */
typedef struct {
  GParamSpec *pspec;            /* borrowed from the object's class */
  GValue value;                 /* already converted and range-checked */
} Setting;

typedef struct {
  GObject *object;
  GObjectClass *klass;
  gchar *display;               /* file name as shown in messages (UTF-8) */
  gchar *dir;                   /* absolute directory of the file, for relative paths */
  const gchar *data;            /* file contents, for locating reader errors */
  gsize len;
  GArray *settings;             /* of Setting, in file order */
  GHashTable *seen;             /* canonical property name -> 1-based line of first use */
} Loader;

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                     */

static void set_error_at (GError ** error, FastvlmConfigError code, const Loader * ld,
    gsize line0, gsize column0, const gchar * fmt, ...) G_GNUC_PRINTF (6, 7);

/* Sets @error to "FILE:LINE:COLUMN: message" with 0-based libyaml line/column shown 1-based. */
static void
set_error_at (GError ** error, FastvlmConfigError code, const Loader * ld,
    gsize line0, gsize column0, const gchar * fmt, ...)
{
  va_list args;
  gchar *msg;

  va_start (args, fmt);
  msg = g_strdup_vprintf (fmt, args);
  va_end (args);
  g_set_error (error, FASTVLM_CONFIG_ERROR, code, "%s:%" G_GSIZE_FORMAT ":%"
      G_GSIZE_FORMAT ": %s", ld->display, line0 + 1, column0 + 1, msg);
  g_free (msg);
}

/* Line and column (0-based, columns in characters) of byte @offset in the file: libyaml
 * reports reader errors (bad UTF-8, control characters) by offset rather than mark. */
static void
offset_to_mark (const Loader * ld, gsize offset, gsize * line, gsize * column)
{
  gsize i;

  *line = 0;
  *column = 0;
  for (i = 0; i < offset && i < ld->len; i++) {
    guchar c = (guchar) ld->data[i];
    if (c == '\n') {
      (*line)++;
      *column = 0;
    } else if ((c & 0xC0) != 0x80) {    /* count characters, not continuation bytes */
      (*column)++;
    }
  }
}

static void
set_syntax_error (GError ** error, const Loader * ld, const yaml_parser_t * p)
{
  gsize line = p->problem_mark.line, column = p->problem_mark.column;
  const gchar *problem = p->problem ? p->problem : "unknown problem";

  switch (p->error) {
    case YAML_MEMORY_ERROR:
      g_set_error (error, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_SYNTAX,
          "%s: out of memory while parsing", ld->display);
      return;
    case YAML_READER_ERROR:
      offset_to_mark (ld, p->problem_offset, &line, &column);
      set_error_at (error, FASTVLM_CONFIG_ERROR_SYNTAX, ld, line, column,
          "invalid YAML: %s", problem);
      return;
    default:
      break;
  }
  if (p->context)
    set_error_at (error, FASTVLM_CONFIG_ERROR_SYNTAX, ld, line, column,
        "invalid YAML: %s (%s at line %" G_GSIZE_FORMAT ", column %" G_GSIZE_FORMAT ")",
        problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
  else
    set_error_at (error, FASTVLM_CONFIG_ERROR_SYNTAX, ld, line, column,
        "invalid YAML: %s", problem);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading the file                                                                           */

static gboolean
read_capped (const gchar * path, const gchar * display, gchar ** out, gsize * out_len,
    GError ** error)
{
  GStatBuf st;
  FILE *f;
  gchar *buf;
  gsize n;

  if (g_stat (path, &st) != 0) {
    int e = errno;
    g_set_error (error, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_FILE,
        "%s: cannot read config file: %s", display, g_strerror (e));
    return FALSE;
  }
  if (S_ISDIR (st.st_mode)) {
    g_set_error (error, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_FILE,
        "%s: cannot read config file: is a directory", display);
    return FALSE;
  }
  if (S_ISREG (st.st_mode) && st.st_size > FASTVLM_CONFIG_MAX_SIZE)
    goto too_large;

  f = g_fopen (path, "rb");
  if (!f) {
    int e = errno;
    g_set_error (error, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_FILE,
        "%s: cannot read config file: %s", display, g_strerror (e));
    return FALSE;
  }
  /* Read one byte past the limit: a FIFO or a file growing under us is caught here. */
  buf = g_malloc (FASTVLM_CONFIG_MAX_SIZE + 2);
  n = fread (buf, 1, FASTVLM_CONFIG_MAX_SIZE + 1, f);
  if (ferror (f)) {
    int e = errno;
    fclose (f);
    g_free (buf);
    g_set_error (error, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_FILE,
        "%s: cannot read config file: %s", display, g_strerror (e));
    return FALSE;
  }
  fclose (f);
  if (n > FASTVLM_CONFIG_MAX_SIZE) {
    g_free (buf);
    goto too_large;
  }
  buf[n] = '\0';
  *out = buf;
  *out_len = n;
  return TRUE;

too_large:
  g_set_error (error, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_TOO_LARGE,
      "%s: config file is larger than the %d KiB limit", display,
      FASTVLM_CONFIG_MAX_SIZE / 1024);
  return FALSE;
}

/* ---------------------------------------------------------------------------------------- */
/* Scalar conversion                                                                          */

static const gchar *
scalar_text (const yaml_event_t * ev)
{
  return (const gchar *) ev->data.scalar.value;
}

/* YAML's null: an empty or `~`/`null` plain scalar (a quoted "" is an empty string). */
static gboolean
scalar_is_null (const yaml_event_t * ev)
{
  const gchar *s = scalar_text (ev);

  if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return FALSE;
  return ev->data.scalar.length == 0 || g_str_equal (s, "~") || g_str_equal (s, "null")
      || g_str_equal (s, "Null") || g_str_equal (s, "NULL");
}

static gboolean
name_in (const gchar * name, const gchar * const *list, gboolean substring)
{
  for (; *list; list++) {
    if (substring ? strstr (name, *list) != NULL : g_str_equal (name, *list))
      return TRUE;
  }
  return FALSE;
}

typedef enum { DURATION_OK, DURATION_BAD, DURATION_OVERFLOW } DurationParse;

/* Parses "[+-]DIGITS[.DIGITS][ ]UNIT" into a magnitude in ns and a sign. Exact: a value
 * finer than 1 ns ("1.5" with no unit, "0.0000000001s") is refused, not rounded. */
static DurationParse
parse_duration (const gchar * s, gboolean * negative, guint64 * ns)
{
  static const struct { const gchar *unit; guint64 factor; } units[] = {
    { "", 1 }, { "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "ms", 1000000 },
    { "s", G_GUINT64_CONSTANT (1000000000) }, { "min", G_GUINT64_CONSTANT (60000000000) },
    { "h", G_GUINT64_CONSTANT (3600000000000) },
  };
  guint64 ipart = 0, fpart = 0, fscale = 1, factor = 0, v, f;
  gsize ndigits = 0, i;
  gboolean overflow = FALSE;
  const gchar *p = s;

  *negative = FALSE;
  if (*p == '+' || *p == '-')
    *negative = (*p++ == '-');
  for (; g_ascii_isdigit (*p); p++, ndigits++) {
    if (!g_uint64_checked_mul (&ipart, ipart, 10)
        || !g_uint64_checked_add (&ipart, ipart, (guint64) (*p - '0')))
      overflow = TRUE;
  }
  if (*p == '.') {
    const gchar *frac = ++p, *end;
    while (g_ascii_isdigit (*p))
      p++;
    ndigits += (gsize) (p - frac);
    end = p;
    while (end > frac && end[-1] == '0')        /* trailing zeros change nothing */
      end--;
    for (; frac < end; frac++) {
      /* more than 19 significant decimals can never be a whole number of ns */
      if (!g_uint64_checked_mul (&fpart, fpart, 10)
          || !g_uint64_checked_add (&fpart, fpart, (guint64) (*frac - '0'))
          || !g_uint64_checked_mul (&fscale, fscale, 10))
        return DURATION_BAD;
    }
  }
  if (ndigits == 0)
    return DURATION_BAD;
  while (*p == ' ')
    p++;
  for (i = 0; i < G_N_ELEMENTS (units); i++) {
    if (g_str_equal (p, units[i].unit)) {
      factor = units[i].factor;
      break;
    }
  }
  if (factor == 0)
    return DURATION_BAD;
  if (!g_uint64_checked_mul (&f, fpart, factor) || f % fscale != 0)
    return DURATION_BAD;        /* finer than 1 ns */
  if (overflow || !g_uint64_checked_mul (&v, ipart, factor)
      || !g_uint64_checked_add (&v, v, f / fscale))
    return DURATION_OVERFLOW;
  *ns = v;
  return DURATION_OK;
}

/* Integer text (or a duration for duration-named properties) as sign + magnitude. */
static gboolean
parse_integer (const Loader * ld, const yaml_event_t * ev, const GParamSpec * pspec,
    gboolean is_duration, gboolean * negative, guint64 * mag, GError ** error)
{
  const gchar *s = scalar_text (ev);
  const gchar *digits = s;
  GError *perr = NULL;

  if (is_duration) {
    DurationParse r = parse_duration (s, negative, mag);
    if (r == DURATION_OK)
      return TRUE;
    if (r == DURATION_OVERFLOW) {
      set_error_at (error, FASTVLM_CONFIG_ERROR_RANGE, ld, ev->start_mark.line,
          ev->start_mark.column, "'%s' for '%s' is too large", s, pspec->name);
      return FALSE;
    }
    set_error_at (error, FASTVLM_CONFIG_ERROR_TYPE, ld, ev->start_mark.line,
        ev->start_mark.column, "'%s' for '%s' is not a duration (e.g. 250us, 500ms, 2s, "
        "1.5s; a plain number is nanoseconds)", s, pspec->name);
    return FALSE;
  }
  *negative = FALSE;
  if (*digits == '+' || *digits == '-')
    *negative = (*digits++ == '-');
  if (!g_ascii_isdigit (*digits)
      || !g_ascii_string_to_unsigned (digits, 10, 0, G_MAXUINT64, mag, &perr)) {
    gboolean range = perr && g_error_matches (perr, G_NUMBER_PARSER_ERROR,
        G_NUMBER_PARSER_ERROR_OUT_OF_BOUNDS);
    g_clear_error (&perr);
    set_error_at (error, range ? FASTVLM_CONFIG_ERROR_RANGE : FASTVLM_CONFIG_ERROR_TYPE,
        ld, ev->start_mark.line, ev->start_mark.column,
        range ? "'%s' for '%s' is too large" : "'%s' for '%s' is not an integer",
        s, pspec->name);
    return FALSE;
  }
  return TRUE;
}

/* Range-checks an integer given as sign + magnitude against [min, max] of a signed spec. */
static gboolean
in_signed_range (gboolean negative, guint64 mag, gint64 min, gint64 max, gint64 * out)
{
  gint64 v;

  if (negative) {
    if (mag > (guint64) G_MAXINT64 + 1)
      return FALSE;
    v = mag == (guint64) G_MAXINT64 + 1 ? G_MININT64 : -(gint64) mag;
  } else {
    if (mag > (guint64) G_MAXINT64)
      return FALSE;
    v = (gint64) mag;
  }
  if (v < min || v > max)
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
in_unsigned_range (gboolean negative, guint64 mag, guint64 min, guint64 max, guint64 * out)
{
  if (negative && mag != 0)
    return FALSE;
  if (mag < min || mag > max)
    return FALSE;
  *out = mag;
  return TRUE;
}

static gboolean
convert_integer (const Loader * ld, const yaml_event_t * ev, GParamSpec * pspec,
    GValue * out, GError ** error)
{
  GType t = G_TYPE_FUNDAMENTAL (G_PARAM_SPEC_VALUE_TYPE (pspec));
  gboolean is_duration = (t == G_TYPE_INT64 || t == G_TYPE_UINT64)
      && name_in (pspec->name, duration_words, TRUE);
  gboolean negative, ok;
  guint64 mag, u = 0;
  gint64 i = 0;
  gchar *range;

  if (!parse_integer (ld, ev, pspec, is_duration, &negative, &mag, error))
    return FALSE;

  g_value_init (out, G_PARAM_SPEC_VALUE_TYPE (pspec));
  switch (t) {
    case G_TYPE_INT:{
      GParamSpecInt *p = G_PARAM_SPEC_INT (pspec);
      ok = in_signed_range (negative, mag, p->minimum, p->maximum, &i);
      if (ok)
        g_value_set_int (out, (gint) i);
      range = g_strdup_printf ("%d..%d", p->minimum, p->maximum);
      break;
    }
    case G_TYPE_LONG:{
      GParamSpecLong *p = G_PARAM_SPEC_LONG (pspec);
      ok = in_signed_range (negative, mag, p->minimum, p->maximum, &i);
      if (ok)
        g_value_set_long (out, (glong) i);
      range = g_strdup_printf ("%ld..%ld", p->minimum, p->maximum);
      break;
    }
    case G_TYPE_INT64:{
      GParamSpecInt64 *p = G_PARAM_SPEC_INT64 (pspec);
      ok = in_signed_range (negative, mag, p->minimum, p->maximum, &i);
      if (ok)
        g_value_set_int64 (out, i);
      range = g_strdup_printf ("%" G_GINT64_FORMAT "..%" G_GINT64_FORMAT, p->minimum,
          p->maximum);
      break;
    }
    case G_TYPE_UINT:{
      GParamSpecUInt *p = G_PARAM_SPEC_UINT (pspec);
      ok = in_unsigned_range (negative, mag, p->minimum, p->maximum, &u);
      if (ok)
        g_value_set_uint (out, (guint) u);
      range = g_strdup_printf ("%u..%u", p->minimum, p->maximum);
      break;
    }
    case G_TYPE_ULONG:{
      GParamSpecULong *p = G_PARAM_SPEC_ULONG (pspec);
      ok = in_unsigned_range (negative, mag, p->minimum, p->maximum, &u);
      if (ok)
        g_value_set_ulong (out, (gulong) u);
      range = g_strdup_printf ("%lu..%lu", p->minimum, p->maximum);
      break;
    }
    default:{                  /* G_TYPE_UINT64 */
      GParamSpecUInt64 *p = G_PARAM_SPEC_UINT64 (pspec);
      ok = in_unsigned_range (negative, mag, p->minimum, p->maximum, &u);
      if (ok)
        g_value_set_uint64 (out, u);
      range = g_strdup_printf ("%" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT, p->minimum,
          p->maximum);
      break;
    }
  }
  if (!ok)
    set_error_at (error, FASTVLM_CONFIG_ERROR_RANGE, ld, ev->start_mark.line,
        ev->start_mark.column, "'%s' for '%s' is out of range (%s%s)", scalar_text (ev),
        pspec->name, range, is_duration ? " ns" : "");
  g_free (range);
  if (ok) {
    gsize k;
    for (k = 0; k < G_N_ELEMENTS (stepped_properties); k++) {
      if (g_str_equal (pspec->name, stepped_properties[k].name)
          && mag % stepped_properties[k].step != 0) {
        set_error_at (error, FASTVLM_CONFIG_ERROR_RANGE, ld, ev->start_mark.line,
            ev->start_mark.column, "'%s' for '%s' is not a multiple of %" G_GUINT64_FORMAT,
            scalar_text (ev), pspec->name, stepped_properties[k].step);
        g_value_unset (out);
        return FALSE;
      }
    }
  }
  if (!ok)
    g_value_unset (out);
  return ok;
}

static gboolean
convert_float (const Loader * ld, const yaml_event_t * ev, GParamSpec * pspec,
    GValue * out, GError ** error)
{
  const gchar *s = scalar_text (ev);
  gboolean is_float = G_IS_PARAM_SPEC_FLOAT (pspec);
  gdouble v, min, max;
  gchar *end = NULL;

  if (is_float) {
    min = G_PARAM_SPEC_FLOAT (pspec)->minimum;
    max = G_PARAM_SPEC_FLOAT (pspec)->maximum;
  } else {
    min = G_PARAM_SPEC_DOUBLE (pspec)->minimum;
    max = G_PARAM_SPEC_DOUBLE (pspec)->maximum;
  }
  errno = 0;
  v = g_ascii_strtod (s, &end);
  if (*s == '\0' || end == s || *end != '\0' || (errno == ERANGE && fabs (v) > 1.0)
      || !isfinite (v)) {
    set_error_at (error, FASTVLM_CONFIG_ERROR_TYPE, ld, ev->start_mark.line,
        ev->start_mark.column, "'%s' for '%s' is not a finite number", s, pspec->name);
    return FALSE;
  }
  if (v < min || v > max) {
    set_error_at (error, FASTVLM_CONFIG_ERROR_RANGE, ld, ev->start_mark.line,
        ev->start_mark.column, "'%s' for '%s' is out of range (%g..%g)", s, pspec->name,
        min, max);
    return FALSE;
  }
  g_value_init (out, G_PARAM_SPEC_VALUE_TYPE (pspec));
  if (is_float)
    g_value_set_float (out, (gfloat) v);
  else
    g_value_set_double (out, v);
  return TRUE;
}

static gboolean
convert_boolean (const Loader * ld, const yaml_event_t * ev, GParamSpec * pspec,
    GValue * out, GError ** error)
{
  static const gchar *const yes[] = { "true", "yes", "on", NULL };
  static const gchar *const no[] = { "false", "no", "off", NULL };
  gchar *lower = g_ascii_strdown (scalar_text (ev), -1);
  gboolean is_yes = name_in (lower, yes, FALSE), is_no = name_in (lower, no, FALSE);

  g_free (lower);
  if (!is_yes && !is_no) {
    set_error_at (error, FASTVLM_CONFIG_ERROR_TYPE, ld, ev->start_mark.line,
        ev->start_mark.column, "'%s' for '%s' is not a boolean (true/false, yes/no, "
        "on/off)", scalar_text (ev), pspec->name);
    return FALSE;
  }
  g_value_init (out, G_TYPE_BOOLEAN);
  g_value_set_boolean (out, is_yes);
  return TRUE;
}

static gchar *
enum_nicks (GEnumClass * ec)
{
  GString *s = g_string_new (NULL);
  guint i;

  for (i = 0; i < ec->n_values; i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", ec->values[i].value_nick);
  return g_string_free (s, FALSE);
}

static gboolean
convert_enum (const Loader * ld, const yaml_event_t * ev, GParamSpec * pspec,
    GValue * out, GError ** error)
{
  GEnumClass *ec = G_PARAM_SPEC_ENUM (pspec)->enum_class;
  const gchar *s = scalar_text (ev);
  GEnumValue *ev_val = g_enum_get_value_by_nick (ec, s);

  if (!ev_val)
    ev_val = g_enum_get_value_by_name (ec, s);
  if (!ev_val) {
    gchar *nicks = enum_nicks (ec);
    set_error_at (error, FASTVLM_CONFIG_ERROR_TYPE, ld, ev->start_mark.line,
        ev->start_mark.column, "'%s' is not a valid value for '%s' (expected one of: %s)",
        s, pspec->name, nicks);
    g_free (nicks);
    return FALSE;
  }
  g_value_init (out, G_PARAM_SPEC_VALUE_TYPE (pspec));
  g_value_set_enum (out, ev_val->value);
  return TRUE;
}

/* Flags as nicks or names joined by '+' or '|' ("a+b"), the form gst-launch accepts. */
static gboolean
convert_flags (const Loader * ld, const yaml_event_t * ev, GParamSpec * pspec,
    GValue * out, GError ** error)
{
  GFlagsClass *fc = G_PARAM_SPEC_FLAGS (pspec)->flags_class;
  gchar **parts = g_strsplit_set (scalar_text (ev), "+|", -1);
  guint flags = 0, i;

  for (i = 0; parts[i]; i++) {
    gchar *word = g_strstrip (parts[i]);
    GFlagsValue *fv = g_flags_get_value_by_nick (fc, word);
    if (!fv)
      fv = g_flags_get_value_by_name (fc, word);
    if (!fv) {
      set_error_at (error, FASTVLM_CONFIG_ERROR_TYPE, ld, ev->start_mark.line,
          ev->start_mark.column, "'%s' is not a flag of '%s'", word, pspec->name);
      g_strfreev (parts);
      return FALSE;
    }
    flags |= fv->value;
  }
  g_strfreev (parts);
  g_value_init (out, G_PARAM_SPEC_VALUE_TYPE (pspec));
  g_value_set_flags (out, flags);
  return TRUE;
}

static gboolean
convert_string (const Loader * ld, const yaml_event_t * ev, GParamSpec * pspec,
    GValue * out, GError ** error)
{
  const gchar *s = scalar_text (ev);

  g_value_init (out, G_TYPE_STRING);
  if (*s != '\0' && name_in (pspec->name, path_properties, FALSE)
      && !g_path_is_absolute (s))
    g_value_take_string (out, g_canonicalize_filename (s, ld->dir));
  else
    g_value_set_string (out, s);
  return TRUE;
}

static gboolean
convert_value (const Loader * ld, const yaml_event_t * ev, GParamSpec * pspec,
    GValue * out, GError ** error)
{
  GType t = G_TYPE_FUNDAMENTAL (G_PARAM_SPEC_VALUE_TYPE (pspec));
  gboolean ok;

  /* A double-quoted "\0" escape would silently truncate the C string. */
  if (strlen (scalar_text (ev)) != ev->data.scalar.length) {
    set_error_at (error, FASTVLM_CONFIG_ERROR_TYPE, ld, ev->start_mark.line,
        ev->start_mark.column, "value for '%s' contains a NUL character", pspec->name);
    return FALSE;
  }
  switch (t) {
    case G_TYPE_BOOLEAN:
      ok = convert_boolean (ld, ev, pspec, out, error);
      break;
    case G_TYPE_INT:
    case G_TYPE_UINT:
    case G_TYPE_LONG:
    case G_TYPE_ULONG:
    case G_TYPE_INT64:
    case G_TYPE_UINT64:
      ok = convert_integer (ld, ev, pspec, out, error);
      break;
    case G_TYPE_FLOAT:
    case G_TYPE_DOUBLE:
      ok = convert_float (ld, ev, pspec, out, error);
      break;
    case G_TYPE_STRING:
      ok = convert_string (ld, ev, pspec, out, error);
      break;
    case G_TYPE_ENUM:
      ok = convert_enum (ld, ev, pspec, out, error);
      break;
    case G_TYPE_FLAGS:
      ok = convert_flags (ld, ev, pspec, out, error);
      break;
    default:
      set_error_at (error, FASTVLM_CONFIG_ERROR_TYPE, ld, ev->start_mark.line,
          ev->start_mark.column, "'%s' has type %s, which cannot be set from a config file",
          pspec->name, g_type_name (G_PARAM_SPEC_VALUE_TYPE (pspec)));
      return FALSE;
  }
  if (!ok)
    return FALSE;
  /* Last word to the GParamSpec itself (custom specs may validate more than min/max). */
  if (g_param_value_validate (pspec, out)) {
    g_value_unset (out);
    set_error_at (error, FASTVLM_CONFIG_ERROR_RANGE, ld, ev->start_mark.line,
        ev->start_mark.column, "'%s' is not a valid value for '%s'", scalar_text (ev),
        pspec->name);
    return FALSE;
  }
  return TRUE;
}

/* ---------------------------------------------------------------------------------------- */
/* Keys                                                                                       */

/* Levenshtein distance, for "did you mean". Names are short; longer ones are not compared. */
static guint
edit_distance (const gchar * a, const gchar * b)
{
  guint row[65], la = (guint) strlen (a), lb = (guint) strlen (b), i, j;

  if (la > 64 || lb > 64)
    return G_MAXUINT;
  for (j = 0; j <= lb; j++)
    row[j] = j;
  for (i = 1; i <= la; i++) {
    guint diag = row[0];
    row[0] = i;
    for (j = 1; j <= lb; j++) {
      guint up = row[j];
      guint best = MIN (row[j] + 1, row[j - 1] + 1);
      row[j] = MIN (best, diag + (a[i - 1] == b[j - 1] ? 0u : 1u));
      diag = up;
    }
  }
  return row[lb];
}

/* Why a property cannot come from a config file, or NULL when it can. */
static const gchar *
not_settable_reason (const GParamSpec * pspec)
{
  GType gst_object_type = g_type_from_name ("GstObject");

  if (g_str_equal (pspec->name, "config"))
    return "a config file cannot load another config file";
  if (gst_object_type && pspec->owner_type == gst_object_type)
    return "it belongs to the GStreamer object, not the element's settings";
  if (!(pspec->flags & G_PARAM_WRITABLE))
    return "it is read-only";
  if (pspec->flags & G_PARAM_CONSTRUCT_ONLY)
    return "it can only be set when the object is created";
  return NULL;
}

static const gchar *
closest_property (const Loader * ld, const gchar * key)
{
  GParamSpec **props;
  guint n, i, best = G_MAXUINT, limit = MAX (2u, (guint) strlen (key) / 3);
  const gchar *name = NULL;

  props = g_object_class_list_properties (ld->klass, &n);
  for (i = 0; i < n; i++) {
    guint d;
    if (not_settable_reason (props[i]))
      continue;
    d = edit_distance (key, props[i]->name);
    if (d < best) {
      best = d;
      name = props[i]->name;
    }
  }
  g_free (props);
  return best <= limit ? name : NULL;
}

/* Checks one `key: value` pair and appends its converted value to ld->settings. */
static gboolean
take_pair (Loader * ld, const gchar * key, const yaml_mark_t * key_mark,
    const yaml_event_t * val, GError ** error)
{
  gchar *canon = g_strdelimit (g_strdup (key), "_", '-');
  GParamSpec *pspec = g_object_class_find_property (ld->klass, canon);
  const gchar *why;
  gpointer first_line;
  Setting s = { NULL, G_VALUE_INIT };

  if (!pspec) {
    const gchar *hint = closest_property (ld, canon);
    if (hint)
      set_error_at (error, FASTVLM_CONFIG_ERROR_UNKNOWN_KEY, ld, key_mark->line,
          key_mark->column, "unknown key '%s' (did you mean '%s'?)", key, hint);
    else
      set_error_at (error, FASTVLM_CONFIG_ERROR_UNKNOWN_KEY, ld, key_mark->line,
          key_mark->column, "unknown key '%s': %s has no such property", key,
          G_OBJECT_CLASS_NAME (ld->klass));
    g_free (canon);
    return FALSE;
  }
  g_free (canon);
  if ((why = not_settable_reason (pspec))) {
    set_error_at (error, FASTVLM_CONFIG_ERROR_NOT_SETTABLE, ld, key_mark->line,
        key_mark->column, "'%s' cannot be set from a config file: %s", key, why);
    return FALSE;
  }
  first_line = g_hash_table_lookup (ld->seen, pspec->name);
  if (first_line) {
    set_error_at (error, FASTVLM_CONFIG_ERROR_DUPLICATE_KEY, ld, key_mark->line,
        key_mark->column, "duplicate key '%s' ('%s' is already set on line %u)", key,
        pspec->name, GPOINTER_TO_UINT (first_line));
    return FALSE;
  }
  if (scalar_is_null (val)) {
    set_error_at (error, FASTVLM_CONFIG_ERROR_TYPE, ld, val->start_mark.line,
        val->start_mark.column, "'%s' has no value", key);
    return FALSE;
  }
  if (!convert_value (ld, val, pspec, &s.value, error))
    return FALSE;
  s.pspec = pspec;
  g_array_append_val (ld->settings, s);
  g_hash_table_insert (ld->seen, (gpointer) pspec->name,
      GUINT_TO_POINTER ((guint) key_mark->line + 1));
  return TRUE;
}

/* ---------------------------------------------------------------------------------------- */
/* The event loop                                                                             */

static const gchar *
node_kind (yaml_event_type_t t)
{
  switch (t) {
    case YAML_MAPPING_START_EVENT:
      return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
      return "a sequence";
    case YAML_ALIAS_EVENT:
      return "an alias";
    default:
      return "a scalar";
  }
}

/* Walks the events of the whole stream; on success ld->settings holds every pair. */
static gboolean
collect (Loader * ld, GError ** error)
{
  yaml_parser_t parser;
  yaml_event_t ev;
  gboolean in_map = FALSE, done = FALSE, ok = TRUE;
  guint n_docs = 0;
  gchar *key = NULL;            /* current key while waiting for its value */
  yaml_mark_t key_mark = { 0, 0, 0 };

  if (!yaml_parser_initialize (&parser)) {
    g_set_error (error, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_SYNTAX,
        "%s: out of memory while parsing", ld->display);
    return FALSE;
  }
  yaml_parser_set_input_string (&parser, (const guchar *) ld->data, ld->len);
  yaml_parser_set_encoding (&parser, YAML_UTF8_ENCODING);

  while (ok && !done) {
    const yaml_mark_t *m;

    if (!yaml_parser_parse (&parser, &ev)) {
      set_syntax_error (error, ld, &parser);
      ok = FALSE;
      break;
    }
    m = &ev.start_mark;
    switch (ev.type) {
      case YAML_STREAM_START_EVENT:
      case YAML_DOCUMENT_END_EVENT:
        break;
      case YAML_STREAM_END_EVENT:
        done = TRUE;
        break;
      case YAML_DOCUMENT_START_EVENT:
        if (++n_docs > 1) {
          set_error_at (error, FASTVLM_CONFIG_ERROR_STRUCTURE, ld, m->line, m->column,
              "a config file holds one document; found a second one");
          ok = FALSE;
        }
        break;
      case YAML_MAPPING_START_EVENT:
        if (!in_map) {
          in_map = TRUE;
        } else if (key) {
          set_error_at (error, FASTVLM_CONFIG_ERROR_STRUCTURE, ld, m->line, m->column,
              "value of '%s' is a mapping; values must be scalars (no nesting)", key);
          ok = FALSE;
        } else {
          set_error_at (error, FASTVLM_CONFIG_ERROR_STRUCTURE, ld, m->line, m->column,
              "keys must be scalars, not a mapping");
          ok = FALSE;
        }
        break;
      case YAML_MAPPING_END_EVENT:
        in_map = FALSE;
        break;
      case YAML_SEQUENCE_START_EVENT:
      case YAML_ALIAS_EVENT:
        if (!in_map)
          set_error_at (error, FASTVLM_CONFIG_ERROR_STRUCTURE, ld, m->line, m->column,
              "the top level must be a mapping of 'property: value' pairs, not %s",
              node_kind (ev.type));
        else if (ev.type == YAML_ALIAS_EVENT)
          set_error_at (error, FASTVLM_CONFIG_ERROR_STRUCTURE, ld, m->line, m->column,
              "aliases are not supported");
        else if (key)
          set_error_at (error, FASTVLM_CONFIG_ERROR_STRUCTURE, ld, m->line, m->column,
              "value of '%s' is a sequence; values must be scalars (no nesting)", key);
        else
          set_error_at (error, FASTVLM_CONFIG_ERROR_STRUCTURE, ld, m->line, m->column,
              "keys must be scalars, not a sequence");
        ok = FALSE;
        break;
      case YAML_SCALAR_EVENT:
        if (!in_map) {
          /* "---" alone is an empty document: a null scalar, nothing to set. */
          if (!scalar_is_null (&ev)) {
            set_error_at (error, FASTVLM_CONFIG_ERROR_STRUCTURE, ld, m->line, m->column,
                "the top level must be a mapping of 'property: value' pairs, not %s",
                node_kind (ev.type));
            ok = FALSE;
          }
        } else if (!key && strlen (scalar_text (&ev)) != ev.data.scalar.length) {
          /* A "\0" escape would truncate the key: "model\0x" must not set `model`. */
          set_error_at (error, FASTVLM_CONFIG_ERROR_UNKNOWN_KEY, ld, m->line, m->column,
              "key '%s\\0...' contains a NUL character", scalar_text (&ev));
          ok = FALSE;
        } else if (!key) {
          key = g_strndup (scalar_text (&ev), ev.data.scalar.length);
          key_mark = *m;
        } else {
          ok = take_pair (ld, key, &key_mark, &ev, error);
          g_clear_pointer (&key, g_free);
        }
        break;
      case YAML_NO_EVENT:
      default:
        break;
    }
    yaml_event_delete (&ev);
  }
  g_free (key);
  yaml_parser_delete (&parser);
  return ok;
}

static void
setting_clear (gpointer p)
{
  Setting *s = p;
  if (G_IS_VALUE (&s->value))
    g_value_unset (&s->value);
}

gboolean
fastvlm_config_apply (GObject * object, const gchar * path, GError ** error)
{
  Loader ld = { 0 };
  gchar *dir;
  gboolean ok;
  guint i;

  g_return_val_if_fail (G_IS_OBJECT (object), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  ld.object = object;
  ld.klass = G_OBJECT_GET_CLASS (object);
  ld.display = g_filename_display_name (path);
  {
    gchar *data = NULL;
    if (!read_capped (path, ld.display, &data, &ld.len, error)) {
      g_free (ld.display);
      return FALSE;
    }
    ld.data = data;
  }
  dir = g_path_get_dirname (path);
  ld.dir = g_canonicalize_filename (dir, NULL);    /* absolute, against the cwd */
  g_free (dir);
  ld.settings = g_array_new (FALSE, TRUE, sizeof (Setting));
  g_array_set_clear_func (ld.settings, setting_clear);
  ld.seen = g_hash_table_new (g_str_hash, g_str_equal);

  ok = collect (&ld, error);
  if (ok) {
    g_object_freeze_notify (object);
    for (i = 0; i < ld.settings->len; i++) {
      Setting *s = &g_array_index (ld.settings, Setting, i);
      g_object_set_property (object, s->pspec->name, &s->value);
    }
    g_object_thaw_notify (object);
  }

  g_hash_table_unref (ld.seen);
  g_array_unref (ld.settings);
  g_free ((gchar *) ld.data);
  g_free (ld.dir);
  g_free (ld.display);
  return ok;
}
