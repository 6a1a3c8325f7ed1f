/*
 * gstfastvlmcaptionmeta.c — registration and attachment of FastVLMCaptionMeta.
 * What it is not: the place the fields are chosen (the element builds the structure once
 * per result and hands the same fields to the meta, the bus message and the signal).
 * No transform function: GstCustomMeta's default copies the structure on copy
 * transforms, which is all a caption needs (it does not depend on the pixels).
 */
#include "gstfastvlmcaptionmeta.h"

const GstMetaInfo *
fvlm_caption_meta_get_info (void)
{
  static gsize info = 0;

  if (g_once_init_enter (&info)) {
    const gchar *tags[] = { NULL };
    const GstMetaInfo *registered;

    /* another copy of this code in the process (a test linking it) may have registered
     * the name already: reuse that registration */
    registered = gst_meta_get_info (FVLM_CAPTION_META_NAME);
    if (registered == NULL)
      registered = gst_meta_register_custom (FVLM_CAPTION_META_NAME, tags,
          NULL, NULL, NULL);
    g_once_init_leave (&info, (gsize) registered);
  }
  return (const GstMetaInfo *) info;
}

static gboolean
fvlm_caption_meta_copy_field (GQuark field, const GValue * value, gpointer dest)
{
  gst_structure_id_set_value ((GstStructure *) dest, field, value);
  return TRUE;
}

GstCustomMeta *
fvlm_caption_meta_add (GstBuffer * buffer, const GstStructure * fields)
{
  GstCustomMeta *meta;

  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);

  fvlm_caption_meta_get_info ();
  meta = gst_buffer_add_custom_meta (buffer, FVLM_CAPTION_META_NAME);
  if (meta)
    gst_structure_foreach (fields, fvlm_caption_meta_copy_field,
        gst_custom_meta_get_structure (meta));
  return meta;
}
