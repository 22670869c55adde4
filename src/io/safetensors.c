/* safetensors.c - reader and writer of the safetensors layout
 * (include/cbctiq/safetensors.h). The reader trusts nothing in the file: every
 * size is checked against the bytes actually present before it is used. */
#include "cbctiq/safetensors.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c copies little-endian data as is: build on a little-endian host"
#endif

/* Same limit as the reference implementation: a bigger header is an attack. */
#define ST_MAX_HEADER ((uint64_t)100000000)
/* Offsets are JSON numbers (doubles here): integers beyond 2^53 are not exact. */
#define ST_MAX_EXACT 9007199254740992.0

static const struct { const char *name; size_t size; } dtypes[] = {
    [CBQ_ST_BOOL] = {"BOOL", 1}, [CBQ_ST_U8] = {"U8", 1},     [CBQ_ST_I8] = {"I8", 1},
    [CBQ_ST_I16] = {"I16", 2},   [CBQ_ST_U16] = {"U16", 2},   [CBQ_ST_F16] = {"F16", 2},
    [CBQ_ST_BF16] = {"BF16", 2}, [CBQ_ST_I32] = {"I32", 4},   [CBQ_ST_U32] = {"U32", 4},
    [CBQ_ST_F32] = {"F32", 4},   [CBQ_ST_F64] = {"F64", 8},   [CBQ_ST_I64] = {"I64", 8},
    [CBQ_ST_U64] = {"U64", 8},
};
_Static_assert(sizeof dtypes / sizeof dtypes[0] == CBQ_ST_DTYPE_COUNT, "dtype table out of step");

const char *cbq_st_dtype_name(cbq_st_dtype dtype)
{
    return (int)dtype >= 0 && dtype < CBQ_ST_DTYPE_COUNT ? dtypes[dtype].name : NULL;
}

size_t cbq_st_dtype_size(cbq_st_dtype dtype)
{
    return (int)dtype >= 0 && dtype < CBQ_ST_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

static int dtype_parse(const char *name, cbq_st_dtype *out)
{
    for (int i = 0; i < CBQ_ST_DTYPE_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *out = (cbq_st_dtype)i;
            return 1;
        }
    return 0;
}

void cbq_safetensors_free(cbq_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->buf);
    char path[sizeof st->path];
    memcpy(path, st->path, sizeof path);
    memset(st, 0, sizeof *st);
    memcpy(st->path, path, sizeof path);
}

/* A JSON number that is an exact non-negative integer up to `max`. */
static int json_uint(const cJSON *j, double max, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double v = j->valuedouble;
    if (!(v >= 0.0 && v <= max && v == floor(v)))
        return 0;
    *out = (uint64_t)v;
    return 1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int parse_tensor(cbq_safetensors *st, const cJSON *j, cbq_st_tensor *t, uint64_t off[2],
                        cbq_error *err)
{
    const char *p = st->path, *name = j->string;
    if (!cJSON_IsObject(j))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': expected an object", p, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", p, name);
    if (!dtype_parse(dt->valuestring, &t->dtype))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", p, name,
                        dt->valuestring);
    if (!cJSON_IsArray(sh))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", p, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > CBQ_ST_MAX_DIMS)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d supported)",
                        p, name, nd, CBQ_ST_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    for (int d = 0; d < nd; d++) {
        uint64_t v = 0;
        if (!json_uint(cJSON_GetArrayItem(sh, d), ST_MAX_EXACT, &v))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                            p, name, d);
        t->shape[d] = (size_t)v;
        if (!cbq_size_mul(&numel, numel, (size_t)v))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': shape overflows", p, name);
    }
    t->numel = numel;
    if (!cbq_size_mul(&t->nbytes, numel, cbq_st_dtype_size(t->dtype)))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': byte count overflows", p, name);
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
        !json_uint(cJSON_GetArrayItem(of, 0), ST_MAX_EXACT, &off[0]) ||
        !json_uint(cJSON_GetArrayItem(of, 1), ST_MAX_EXACT, &off[1]) || off[1] < off[0])
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: tensor '%s': \"data_offsets\" must be [begin, end] with 0 <= begin <= end",
                        p, name);
    if (off[1] - off[0] != (uint64_t)t->nbytes)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets span %llu bytes but dtype %s and its shape "
                        "need %zu",
                        p, name, (unsigned long long)(off[1] - off[0]), dt->valuestring, t->nbytes);
    if (cJSON_GetArraySize(j) != 3)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: tensor '%s': unexpected keys (only dtype, shape, data_offsets)", p, name);
    return CBQ_OK;
}

static int parse_metadata(cbq_safetensors *st, const cJSON *j, cbq_error *err)
{
    if (!cJSON_IsObject(j))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: __metadata__ must be an object of strings", st->path);
    size_t n = (size_t)cJSON_GetArraySize(j);
    st->meta_keys = calloc(n ? n : 1, sizeof *st->meta_keys);
    st->meta_values = calloc(n ? n : 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for metadata", st->path);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, j) {
        if (!cJSON_IsString(kv))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: __metadata__.%s: expected a string", st->path,
                            kv->string);
        size_t i = st->n_meta;
        st->meta_keys[i] = dup_str(kv->string);
        st->meta_values[i] = dup_str(kv->valuestring);
        st->n_meta++;
        if (!st->meta_keys[i] || !st->meta_values[i])
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for metadata", st->path);
    }
    return CBQ_OK;
}

typedef struct { uint64_t begin, end; size_t index; } span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const cbq_st_tensor *)a)->name, ((const cbq_st_tensor *)b)->name);
}

/* Offsets must tile the data area exactly: no gap, no overlap, nothing after. */
static int check_layout(cbq_safetensors *st, span *spans, size_t data_size, cbq_error *err)
{
    qsort(spans, st->n_tensors, sizeof *spans, span_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[spans[i].index].name;
        if (spans[i].end > data_size)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets end %llu is beyond the %zu data bytes "
                            "(file truncated?)",
                            st->path, name, (unsigned long long)spans[i].end, data_size);
        if (spans[i].begin < at)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s': data overlaps another tensor",
                            st->path, name);
        if (spans[i].begin > at)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: tensor '%s': unused bytes before its data (offsets must be contiguous)",
                            st->path, name);
        at = spans[i].end;
    }
    if (at != data_size)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: %zu data bytes but the tensors account for %llu (trailing bytes or "
                        "truncation)",
                        st->path, data_size, (unsigned long long)at);
    return CBQ_OK;
}

static int parse_header(cbq_safetensors *st, const cJSON *root, size_t data_off, cbq_error *err)
{
    if (!cJSON_IsObject(root))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: header is not a JSON object", st->path);
    size_t n_items = (size_t)cJSON_GetArraySize(root);
    st->tensors = calloc(n_items ? n_items : 1, sizeof *st->tensors);
    span *spans = calloc(n_items ? n_items : 1, sizeof *spans);
    if (!st->tensors || !spans) {
        free(spans);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for %zu tensors", st->path, n_items);
    }
    int rc = CBQ_OK, seen_meta = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (seen_meta++)
                rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: __metadata__ appears twice", st->path);
            else
                rc = parse_metadata(st, item, err);
        } else {
            cbq_st_tensor *t = &st->tensors[st->n_tensors];
            uint64_t off[2] = {0, 0};
            t->name = dup_str(item->string);
            if (!t->name)
                rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", st->path);
            else {
                st->n_tensors++;
                rc = parse_tensor(st, item, t, off, err);
            }
            if (rc == CBQ_OK)
                spans[st->n_tensors - 1] = (span){off[0], off[1], st->n_tensors - 1};
        }
        if (rc != CBQ_OK)
            break;
    }
    if (rc == CBQ_OK)
        rc = check_layout(st, spans, st->size - data_off, err);
    for (size_t i = 0; rc == CBQ_OK && i < st->n_tensors; i++) /* in range: checked above */
        st->tensors[spans[i].index].data = st->buf + data_off + spans[i].begin;
    free(spans);
    if (rc != CBQ_OK)
        return rc;
    /* Duplicate names (JSON allows them, we do not): find them on a sorted copy. */
    if (st->n_tensors > 1) {
        cbq_st_tensor *sorted = malloc(st->n_tensors * sizeof *sorted);
        if (!sorted)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", st->path);
        memcpy(sorted, st->tensors, st->n_tensors * sizeof *sorted);
        qsort(sorted, st->n_tensors, sizeof *sorted, name_cmp);
        for (size_t i = 1; i < st->n_tensors && rc == CBQ_OK; i++)
            if (strcmp(sorted[i - 1].name, sorted[i].name) == 0)
                rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: tensor '%s' appears twice", st->path,
                              sorted[i].name);
        free(sorted);
    }
    return rc;
}

/* Takes ownership of buf (malloc'd, size bytes). */
static int parse_owned(cbq_safetensors *st, unsigned char *buf, size_t size, cbq_error *err)
{
    st->buf = buf;
    st->size = size;
    if (size < 8)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %zu bytes: too short for a safetensors file", st->path,
                        size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit", st->path,
                        (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > size - 8)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: header length %llu is beyond the end of the file (%zu bytes)", st->path,
                        (unsigned long long)hlen, size);
    if (hlen < 2 || buf[8] != '{')
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: header does not start with a JSON object", st->path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)hlen, &end, 0);
    if (!root)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: header is not valid JSON", st->path);
    /* Only whitespace (the alignment padding) may follow the JSON object. */
    for (const char *c = end; c < (const char *)buf + 8 + hlen; c++)
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r') {
            cJSON_Delete(root);
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: unexpected bytes after the JSON header", st->path);
        }
    int rc = parse_header(st, root, 8 + (size_t)hlen, err);
    cJSON_Delete(root);
    return rc;
}

int cbq_safetensors_parse(cbq_safetensors *st, const void *bytes, size_t size, const char *label,
                          cbq_error *err)
{
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", label ? label : "safetensors");
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for %zu bytes", st->path, size);
    if (size)
        memcpy(buf, bytes, size);
    int rc = parse_owned(st, buf, size, err);
    if (rc != CBQ_OK)
        cbq_safetensors_free(st);
    return rc;
}

int cbq_safetensors_read(cbq_safetensors *st, const char *path, cbq_error *err)
{
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open for reading", path);
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        len = ftell(fp);
    if (len < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot determine the file size", path);
    }
    unsigned char *buf = malloc(len ? (size_t)len : 1);
    if (!buf) {
        fclose(fp);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for %ld bytes", path, len);
    }
    size_t got = fread(buf, 1, (size_t)len, fp);
    int read_err = ferror(fp);
    fclose(fp);
    if (got != (size_t)len || read_err) {
        free(buf);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: read %zu of %ld bytes", path, got, len);
    }
    int rc = parse_owned(st, buf, (size_t)len, err);
    if (rc != CBQ_OK)
        cbq_safetensors_free(st);
    return rc;
}

const cbq_st_tensor *cbq_safetensors_find(const cbq_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

const char *cbq_safetensors_meta(const cbq_safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

/* IEEE binary16 -> binary32, subnormals, infinities and NaN included. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f)
        bits = sign | 0x7f800000u | (man << 13);
    else if (exp != 0)
        bits = sign | ((exp + 112) << 23) | (man << 13);
    else if (man == 0)
        bits = sign;
    else { /* subnormal: normalise */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

int cbq_st_tensor_to_f32(const cbq_st_tensor *t, float *out, size_t n, cbq_error *err)
{
    if (n != t->numel)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "tensor '%s': %zu elements, expected %zu", t->name, t->numel, n);
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case CBQ_ST_F32: memcpy(&out[i], p + 4 * i, 4); break;
        case CBQ_ST_F64: {
            double d;
            memcpy(&d, p + 8 * i, 8);
            if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
                return CBQ_FAIL(err, CBQ_ERR_RANGE, "tensor '%s': element %zu (%g) exceeds float range",
                                t->name, i, d);
            out[i] = (float)d;
            break;
        }
        case CBQ_ST_F16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = half_to_float(h);
            break;
        }
        case CBQ_ST_BF16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        default:
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "tensor '%s': dtype %s is not a floating-point type",
                            t->name, cbq_st_dtype_name(t->dtype));
        }
    }
    return CBQ_OK;
}

int cbq_st_tensor_to_i64(const cbq_st_tensor *t, int64_t *out, size_t n, cbq_error *err)
{
    if (n != t->numel)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "tensor '%s': %zu elements, expected %zu", t->name, t->numel, n);
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case CBQ_ST_BOOL: case CBQ_ST_U8: out[i] = p[i]; break;
        case CBQ_ST_I8: out[i] = (int8_t)p[i]; break;
        case CBQ_ST_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); out[i] = v; break; }
        case CBQ_ST_U16: { uint16_t v; memcpy(&v, p + 2 * i, 2); out[i] = v; break; }
        case CBQ_ST_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); out[i] = v; break; }
        case CBQ_ST_U32: { uint32_t v; memcpy(&v, p + 4 * i, 4); out[i] = v; break; }
        case CBQ_ST_I64: memcpy(&out[i], p + 8 * i, 8); break;
        case CBQ_ST_U64: {
            uint64_t v;
            memcpy(&v, p + 8 * i, 8);
            if (v > (uint64_t)INT64_MAX)
                return CBQ_FAIL(err, CBQ_ERR_RANGE, "tensor '%s': element %zu exceeds int64", t->name, i);
            out[i] = (int64_t)v;
            break;
        }
        default:
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "tensor '%s': dtype %s is not an integer type", t->name,
                            cbq_st_dtype_name(t->dtype));
        }
    }
    return CBQ_OK;
}

/* ---- writing -------------------------------------------------------------- */

static cJSON *build_header(const cbq_st_entry *e, size_t n, const char *const *meta, size_t n_meta,
                           const size_t *nbytes, cbq_error *err)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; m && i < n_meta; i++)
            if (!cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]))
                m = NULL;
        if (!m)
            goto nomem;
    }
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *t = cJSON_AddObjectToObject(root, e[i].name);
        if (!t || !cJSON_AddStringToObject(t, "dtype", cbq_st_dtype_name(e[i].dtype)))
            goto nomem;
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        if (!shape || !offs)
            goto nomem;
        for (int d = 0; d < e[i].ndim; d++)
            if (!cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e[i].shape[d])))
                goto nomem;
        if (!cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)at)) ||
            !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(at + nbytes[i]))))
            goto nomem;
        at += nbytes[i];
    }
    return root;
nomem:
    cJSON_Delete(root);
    CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory building a safetensors header");
    return NULL;
}

static int check_entries(const char *path, const cbq_st_entry *e, size_t n, size_t *nbytes,
                         cbq_error *err)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!e[i].name || !e[i].name[0] || strcmp(e[i].name, "__metadata__") == 0)
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: tensor %zu has an empty or reserved name", path, i);
        if (!cbq_st_dtype_name(e[i].dtype) || e[i].ndim < 0 || e[i].ndim > CBQ_ST_MAX_DIMS)
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: tensor '%s': bad dtype or rank", path, e[i].name);
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++)
            if (!cbq_size_mul(&numel, numel, e[i].shape[d]))
                return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: tensor '%s': shape overflows", path, e[i].name);
        if (!cbq_size_mul(&nbytes[i], numel, cbq_st_dtype_size(e[i].dtype)))
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: tensor '%s': size overflows", path, e[i].name);
        total += (double)nbytes[i];
        if (total > ST_MAX_EXACT)
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: tensors too large for exact JSON offsets", path);
        for (size_t k = 0; k < i; k++)
            if (strcmp(e[k].name, e[i].name) == 0)
                return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: tensor name '%s' given twice", path, e[i].name);
    }
    return CBQ_OK;
}

int cbq_safetensors_write(const char *path, const cbq_st_entry *e, size_t n, const char *const *meta,
                          size_t n_meta, cbq_error *err)
{
    size_t *nbytes = calloc(n ? n : 1, sizeof *nbytes);
    if (!nbytes)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    int rc = check_entries(path, e, n, nbytes, err);
    cJSON *root = rc == CBQ_OK ? build_header(e, n, meta, n_meta, nbytes, err) : NULL;
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (rc == CBQ_OK && !json)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for the header", path);
    if (rc != CBQ_OK) {
        free(nbytes);
        free(json);
        return rc;
    }
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8; /* 8 + hlen stays a multiple of 8 */
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++)
        len_le[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    cbq_atomic_file af;
    rc = cbq_atomic_open(&af, path, err);
    if (rc == CBQ_OK) {
        int ok = fwrite(len_le, 1, 8, af.fp) == 8 && fwrite(json, 1, jlen, af.fp) == jlen;
        for (size_t i = jlen; ok && i < hlen; i++)
            ok = fputc(' ', af.fp) != EOF;
        for (size_t i = 0; ok && i < n; i++)
            ok = nbytes[i] == 0 || fwrite(e[i].data, 1, nbytes[i], af.fp) == nbytes[i];
        if (!ok) {
            cbq_atomic_abort(&af);
            rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: write failed (disk full?)", path);
        } else
            rc = cbq_atomic_commit(&af, err);
    }
    free(json);
    free(nbytes);
    return rc;
}
