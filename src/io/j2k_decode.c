/* j2k_decode.c - JPEG 2000 frames through OpenJPEG (see j2k_decode.h).
 *
 * OpenJPEG reads through a stream of callbacks; here they walk a buffer in
 * memory. Its messages go to a per-call collector (no global state), and
 * the first error becomes the message that names the frame. Strict mode
 * makes a truncated codestream an error instead of a partly grey image.
 * Not here: which DICOM fragments make a frame, and how samples become
 * stored values (dicom_adapter.cpp).
 */
#include "j2k_decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openjpeg.h>

typedef struct {
    const unsigned char *data;
    size_t len, pos;
} mem_stream;

static OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *user)
{
    mem_stream *m = user;
    if (m->pos >= m->len)
        return (OPJ_SIZE_T)-1; /* OpenJPEG's end of stream */
    size_t left = m->len - m->pos, take = n < left ? n : left;
    memcpy(buf, m->data + m->pos, take);
    m->pos += take;
    return take;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *user)
{
    mem_stream *m = user;
    if (n < 0) {
        size_t back = (size_t)-n <= m->pos ? (size_t)-n : m->pos;
        m->pos -= back;
        return -(OPJ_OFF_T)back;
    }
    size_t left = m->len - m->pos, take = (size_t)n < left ? (size_t)n : left;
    m->pos += take;
    return take ? (OPJ_OFF_T)take : (OPJ_OFF_T)-1;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T off, void *user)
{
    mem_stream *m = user;
    if (off < 0 || (size_t)off > m->len)
        return OPJ_FALSE;
    m->pos = (size_t)off;
    return OPJ_TRUE;
}

/* OpenJPEG's messages for one decode; the first error is the one shown. */
typedef struct {
    char first_error[256];
} opj_messages;

static void on_error(const char *msg, void *user)
{
    opj_messages *m = user;
    if (m->first_error[0])
        return;
    snprintf(m->first_error, sizeof m->first_error, "%s", msg);
    size_t n = strlen(m->first_error);
    while (n > 0 && (m->first_error[n - 1] == '\n' || m->first_error[n - 1] == ' '))
        m->first_error[--n] = '\0';
}

static void ignore_message(const char *msg, void *user)
{
    (void)msg;
    (void)user;
}

/* A JP2 file starts with its signature box; anything else is tried as a
 * raw codestream (which starts with SOC, FF 4F). */
static OPJ_CODEC_FORMAT codec_format(const unsigned char *data, size_t len)
{
    static const unsigned char jp2[] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' '};
    return len >= sizeof jp2 && memcmp(data, jp2, sizeof jp2) == 0 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K;
}

static int check_geometry(const opj_image_t *im, uint32_t width, uint32_t height,
                          const char *what, cbq_error *err)
{
    if (im->numcomps != 1)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the JPEG 2000 image has %u components, expected 1 (greyscale)", what,
                        im->numcomps);
    const opj_image_comp_t *c = &im->comps[0];
    if (c->w != width || c->h != height || c->dx != 1 || c->dy != 1)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the JPEG 2000 image is %ux%u (subsampling %ux%u), but Columns x Rows "
                        "say %ux%u", what, c->w, c->h, c->dx, c->dy, width, height);
    if (c->prec < 1 || c->prec > 32)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the JPEG 2000 image has %u-bit samples, expected 1 to 32", what,
                        c->prec);
    return CBQ_OK;
}

static int decode_image(opj_image_t **image, opj_codec_t *codec, opj_stream_t *stream,
                        opj_messages *msgs, uint32_t width, uint32_t height, const char *what,
                        cbq_error *err)
{
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    if (!opj_setup_decoder(codec, &params) || !opj_decoder_set_strict_mode(codec, OPJ_TRUE))
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: cannot set up the JPEG 2000 decoder", what);
    if (!opj_read_header(stream, codec, image))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: damaged JPEG 2000 header: OpenJPEG reports "
                        "\"%s\"", what, msgs->first_error[0] ? msgs->first_error : "no reason");
    CBQ_TRY(check_geometry(*image, width, height, what, err));
    if (!opj_decode(codec, stream, *image) || !opj_end_decompress(codec, stream))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: truncated or damaged JPEG 2000 data: OpenJPEG reports \"%s\"", what,
                        msgs->first_error[0] ? msgs->first_error : "no reason");
    if (!(*image)->comps[0].data)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: the JPEG 2000 data decoded to no samples", what);
    return CBQ_OK;
}

int cbq_j2k_decode(cbq_j2k_frame *out, const unsigned char *data, size_t len, uint32_t width,
                   uint32_t height, const char *what, cbq_error *err)
{
    memset(out, 0, sizeof *out);
    if (len < 4)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %zu bytes of JPEG 2000 data: too short for a "
                        "codestream", what, len);
    mem_stream mem = {data, len, 0};
    opj_messages msgs = {{0}};
    opj_codec_t *codec = opj_create_decompress(codec_format(data, len));
    opj_stream_t *stream = opj_stream_create(1 << 16, OPJ_TRUE);
    if (!codec || !stream) {
        if (codec)
            opj_destroy_codec(codec);
        if (stream)
            opj_stream_destroy(stream);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for the JPEG 2000 decoder", what);
    }
    opj_set_error_handler(codec, on_error, &msgs);
    opj_set_warning_handler(codec, ignore_message, NULL);
    opj_set_info_handler(codec, ignore_message, NULL);
    opj_stream_set_user_data(stream, &mem, NULL);
    opj_stream_set_user_data_length(stream, len);
    opj_stream_set_read_function(stream, mem_read);
    opj_stream_set_skip_function(stream, mem_skip);
    opj_stream_set_seek_function(stream, mem_seek);
    opj_image_t *image = NULL;
    int rc = decode_image(&image, codec, stream, &msgs, width, height, what, err);
    if (rc == CBQ_OK) {
        size_t n = (size_t)width * height;
        out->samples = malloc(n * sizeof *out->samples);
        if (!out->samples) {
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", what);
        } else {
            memcpy(out->samples, image->comps[0].data, n * sizeof *out->samples);
            out->width = width;
            out->height = height;
            out->precision = image->comps[0].prec;
            out->is_signed = image->comps[0].sgnd != 0;
        }
    }
    if (image)
        opj_image_destroy(image);
    opj_stream_destroy(stream);
    opj_destroy_codec(codec);
    return rc;
}

const char *cbq_j2k_library_version(void)
{
    return opj_version();
}
