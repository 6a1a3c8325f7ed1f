/*
 * plugin.c — the `fastvlm` GStreamer plugin: registers its one element, fastvlmcaption.
 * What it is not: the element (gstfastvlmcaption.c).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstfastvlmcaption.h"
#include "gstfastvlmcaptionmeta.h"
#ifdef HAVE_FASTVLM_JSONWRITER
#include "gstfastvlmjsonwriter.h"
#endif

static gboolean
plugin_init (GstPlugin * plugin)
{
  /* the meta first, so a pipeline can look it up before any caption exists */
  fvlm_caption_meta_get_info ();
#ifdef HAVE_FASTVLM_JSONWRITER
  if (!GST_ELEMENT_REGISTER (fastvlmjsonwriter, plugin))
    return FALSE;
#endif
  return GST_ELEMENT_REGISTER (fastvlmcaption, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, fastvlm,
    "FastVLM vision-language captioning of video", plugin_init, PACKAGE_VERSION,
    "MIT", PACKAGE_NAME, PACKAGE_ORIGIN)
