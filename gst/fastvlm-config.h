/* fastvlm-config.h — YAML configuration presets applied to a GObject's properties.
 *
 * What it is: one function, fastvlm_config_apply(), that reads a small YAML file (a single
 * top-level mapping of `property: scalar` pairs) and sets the matching writable properties
 * of any GObject, converting each scalar to the property's type and checking it against the
 * GParamSpec's range. The fastvlmcaption element uses it for its `config` property; it is
 * written against GObject only so it can be tested without the element.
 *
 * What it is not: a general YAML loader (no nesting, sequences, aliases or multiple
 * documents), and not a schema for the element (the GParamSpecs are the schema).
 *
 * Usage:
 *
 *   GError *err = NULL;
 *   if (!fastvlm_config_apply (G_OBJECT (element), "configs/fast-edge.yaml", &err)) {
 *     g_printerr ("%s\n", err->message);   // "configs/fast-edge.yaml:3:15: ..."
 *     g_clear_error (&err);
 *   }
 *
 * File format (the presets in configs/ are commented examples):
 *   - keys are property names; `max_new_tokens` and `max-new-tokens` are the same key;
 *   - gboolean: true/false, yes/no, on/off (any case);
 *   - integers: decimal, checked against the property's minimum and maximum (and
 *     `image-size` must be a multiple of 64, which a GParamSpec cannot express);
 *   - floats/doubles: decimal or exponent notation, range-checked, no nan/inf;
 *   - strings: the scalar as written (quote it to keep leading/trailing blanks or `#`);
 *   - enums: the value's nick (`live`) or its full name;
 *   - 64-bit integer properties whose name says they hold a duration (contains `interval`,
 *     `latency`, `duration`, `timeout`, `delay` or `period`; GstClockTime in ns) also take
 *     a unit: `250us`, `500ms`, `2s`, `1.5s`, `1min` (plain numbers are nanoseconds);
 *   - relative paths in `model:` and `mmproj:` are taken relative to the YAML file's
 *     directory, not the process's working directory;
 *   - an empty file (or one with only comments) sets nothing and succeeds.
 *
 * Refused (each with a FastvlmConfigError and a "FILE:LINE:COLUMN: " prefix on the message,
 * line and column counted from 1): malformed YAML, a top level that is not a mapping, nested
 * mappings/sequences, aliases, more than one document, unknown keys (with "did you mean" when
 * a property name is close), duplicate keys, keys with no value, read-only or construct-only
 * properties, the `config` key itself (no includes), GstObject's `name`/`parent`, values of
 * the wrong type or out of range, properties of a type that has no text form (objects,
 * boxed), files larger than FASTVLM_CONFIG_MAX_SIZE (64 KiB), and missing/unreadable files
 * (those messages name the file but no line).
 *
 * All or nothing: every key is parsed, converted and checked before the first property is
 * set; on any error no property has changed. The properties are then set in file order with
 * notifications frozen, so listeners see one batch.
 *
 * Thread safety: the function takes no lock of its own; properties are set through
 * g_object_set_property(), so it is as safe as setting the same properties by hand.
 */
#ifndef FASTVLM_CONFIG_H
#define FASTVLM_CONFIG_H

#include <glib-object.h>

G_BEGIN_DECLS

/* Larger files are refused before parsing: a preset is a dozen lines, and the limit keeps
 * a mistaken `config=/dev/zero` or a huge file from being read into memory. */
#define FASTVLM_CONFIG_MAX_SIZE (64 * 1024)

#define FASTVLM_CONFIG_ERROR (fastvlm_config_error_quark ())

typedef enum {
  FASTVLM_CONFIG_ERROR_FILE,          /* missing, unreadable or not a regular file */
  FASTVLM_CONFIG_ERROR_TOO_LARGE,     /* larger than FASTVLM_CONFIG_MAX_SIZE */
  FASTVLM_CONFIG_ERROR_SYNTAX,        /* libyaml refused the text */
  FASTVLM_CONFIG_ERROR_STRUCTURE,     /* not one mapping of scalars: top level, nesting, aliases */
  FASTVLM_CONFIG_ERROR_UNKNOWN_KEY,   /* no property of that name */
  FASTVLM_CONFIG_ERROR_DUPLICATE_KEY, /* same property twice (also `a_b` and `a-b`) */
  FASTVLM_CONFIG_ERROR_NOT_SETTABLE,  /* read-only, construct-only, `config`, `name`, `parent` */
  FASTVLM_CONFIG_ERROR_TYPE,          /* value has the wrong form for the property's type */
  FASTVLM_CONFIG_ERROR_RANGE,         /* value outside the property's minimum..maximum */
} FastvlmConfigError;

GQuark fastvlm_config_error_quark (void);

/* Reads the YAML file at @path (in the GLib filename encoding) and sets the properties it
 * names on @object. Returns TRUE when every key was applied; FALSE with @error set (domain
 * FASTVLM_CONFIG_ERROR) and no property changed otherwise. */
gboolean fastvlm_config_apply (GObject *object, const gchar *path, GError **error);

G_END_DECLS

#endif /* FASTVLM_CONFIG_H */
