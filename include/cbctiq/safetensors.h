/* safetensors.h - read and write the standard safetensors layout
 * (huggingface/safetensors): an 8-byte little-endian header length N, N
 * bytes of JSON header {"NAME": {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}, then the
 * raw little-endian tensor data. Offsets are relative to the end of the
 * header. This module knows nothing about networks (see model_file.h).
 *
 * Reading checks everything a malformed or hostile file can get wrong: header
 * length beyond the file, non-JSON or non-object header, unknown dtype,
 * shapes whose byte count overflows or differs from the offsets, offsets out
 * of range, overlapping or leaving holes, duplicate names, bad metadata. Any
 * such file gives an error naming the file and the tensor, never a crash.
 *
 *   cbq_safetensors st;
 *   CBQ_TRY(cbq_safetensors_read(&st, "weights.safetensors", &err));
 *   const cbq_st_tensor *t = cbq_safetensors_find(&st, "head.weight");
 *   ... cbq_st_tensor_to_f32(t, dst, n, &err) ...
 *   cbq_safetensors_free(&st);
 *
 * The host must be little-endian (checked at compile time).
 */
#ifndef CBCTIQ_SAFETENSORS_H
#define CBCTIQ_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The standard's dtype names; reading accepts all of them, conversion to
 * float covers F32, F64, F16 and BF16, to int64 covers the integer types. */
typedef enum {
    CBQ_ST_BOOL, CBQ_ST_U8, CBQ_ST_I8, CBQ_ST_I16, CBQ_ST_U16, CBQ_ST_F16, CBQ_ST_BF16,
    CBQ_ST_I32, CBQ_ST_U32, CBQ_ST_F32, CBQ_ST_F64, CBQ_ST_I64, CBQ_ST_U64,
    CBQ_ST_DTYPE_COUNT
} cbq_st_dtype;

enum { CBQ_ST_MAX_DIMS = 8 };

/* "F32" etc.; NULL for an invalid value. */
const char *cbq_st_dtype_name(cbq_st_dtype dtype);
/* Bytes per element. */
size_t cbq_st_dtype_size(cbq_st_dtype dtype);

typedef struct {
    char *name;                      /* owned by the cbq_safetensors */
    cbq_st_dtype dtype;
    int ndim;                        /* 0 for a scalar */
    size_t shape[CBQ_ST_MAX_DIMS];
    size_t numel;                    /* product of shape (1 for a scalar) */
    size_t nbytes;                   /* numel * dtype size */
    const unsigned char *data;       /* little-endian, possibly unaligned; owned */
} cbq_st_tensor;

typedef struct {
    char path[1024];                 /* for messages */
    size_t n_tensors;
    cbq_st_tensor *tensors;          /* in data-offset order */
    size_t n_meta;
    char **meta_keys, **meta_values; /* __metadata__, n_meta each */
    unsigned char *buf;              /* the whole file */
    size_t size;
} cbq_safetensors;

/* Reads and validates a whole file. On failure *st is left empty (free is
 * still safe). Files whose header exceeds 100 MB are refused. */
int cbq_safetensors_read(cbq_safetensors *st, const char *path, cbq_error *err);
/* Same from bytes in memory (copied); `label` names the source in messages. */
int cbq_safetensors_parse(cbq_safetensors *st, const void *bytes, size_t size, const char *label,
                          cbq_error *err);
void cbq_safetensors_free(cbq_safetensors *st);

/* The tensor with this name, or NULL. Pointer valid until free. */
const cbq_st_tensor *cbq_safetensors_find(const cbq_safetensors *st, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *cbq_safetensors_meta(const cbq_safetensors *st, const char *key);

/* Converts all numel elements of a float tensor (F32, F64, F16, BF16) into
 * out[0..n) (n must equal numel); F64 values beyond float range fail. */
int cbq_st_tensor_to_f32(const cbq_st_tensor *t, float *out, size_t n, cbq_error *err);
/* Same for integer tensors (I8..I64, U8..U32, BOOL; U64 above INT64_MAX fails). */
int cbq_st_tensor_to_i64(const cbq_st_tensor *t, int64_t *out, size_t n, cbq_error *err);

/* One tensor to write: `data` holds numel elements of `dtype`, host order. */
typedef struct {
    const char *name;
    cbq_st_dtype dtype;
    int ndim;
    const size_t *shape;             /* ndim entries (may be NULL when ndim = 0) */
    const void *data;
} cbq_st_entry;

/* Writes tensors (in the given order, contiguous) and optional metadata
 * pairs meta[2*i] = key, meta[2*i+1] = value, atomically to `path`. The
 * header is padded with spaces so the data starts at a multiple of 8 bytes,
 * as the reference writer does. Names must be unique and not "__metadata__". */
int cbq_safetensors_write(const char *path, const cbq_st_entry *entries, size_t n,
                          const char *const *meta, size_t n_meta, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
