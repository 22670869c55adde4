/* test_safetensors.c - the safetensors reader against hand-built files laid
 * out as the format specification describes them (not by our writer), the
 * writer's byte layout, every malformed case, and random corruption
 * (byte flips, truncations) that must give an error or success, never a
 * crash (run under ASan in the sanitizer tree). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/rng.h"
#include "cbctiq/safetensors.h"

static char dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/safetensors", base ? base : "tmp");
    cbq_error err = {0};
    return cbq_mkdir_p(dir, &err);
}

/* A file as the specification lays it out: u64 LE header size, header, data. */
static size_t build(unsigned char *out, const char *header, const void *data, size_t data_len)
{
    uint64_t n = strlen(header);
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(n >> (8 * i));
    memcpy(out + 8, header, n);
    if (data_len)
        memcpy(out + 8 + n, data, data_len);
    return 8 + n + data_len;
}

static void test_reads_hand_built_file(void **state)
{
    (void)state;
    /* F32 [2] = {1.5, -2}, I64 [] = 7, F16 [5] and BF16 [2] with IEEE values. */
    unsigned char data[8 + 8 + 10 + 4];
    float f[2] = {1.5f, -2.0f};
    int64_t i64 = 7;
    uint16_t h[5] = {0x3C00, 0xC000, 0x0001, 0x7C00, 0x3555}, bf[2] = {0x3F80, 0x4049};
    memcpy(data, f, 8);
    memcpy(data + 8, &i64, 8);
    memcpy(data + 16, h, 10);
    memcpy(data + 26, bf, 4);
    const char *header =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[16,26]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[26,30]}}   ";
    unsigned char file[1024];
    size_t len = build(file, header, data, sizeof data);
    cbq_safetensors st;
    cbq_error err = {0};
    assert_int_equal(cbq_safetensors_parse(&st, file, len, "mem", &err), CBQ_OK);
    assert_int_equal(st.n_tensors, 4);
    assert_string_equal(cbq_safetensors_meta(&st, "format"), "pt");
    const cbq_st_tensor *w = cbq_safetensors_find(&st, "w"), *n = cbq_safetensors_find(&st, "n");
    const cbq_st_tensor *th = cbq_safetensors_find(&st, "h"), *tb = cbq_safetensors_find(&st, "b");
    assert_non_null(w);
    assert_int_equal(n->ndim, 0);
    assert_int_equal(n->numel, 1);
    assert_int_equal(tb->ndim, 2);
    float out[5];
    int64_t iv;
    assert_int_equal(cbq_st_tensor_to_f32(w, out, 2, &err), CBQ_OK);
    assert_true(out[0] == 1.5f && out[1] == -2.0f);
    assert_int_equal(cbq_st_tensor_to_i64(n, &iv, 1, &err), CBQ_OK);
    assert_int_equal(iv, 7);
    assert_int_equal(cbq_st_tensor_to_f32(th, out, 5, &err), CBQ_OK);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1.0f, -24) && isinf(out[3]));
    assert_true(out[4] == 0.333251953125f); /* 0x3555: nearest half to 1/3 */
    assert_int_equal(cbq_st_tensor_to_f32(tb, out, 2, &err), CBQ_OK);
    assert_true(out[0] == 1.0f && out[1] == 3.140625f);
    assert_int_not_equal(cbq_st_tensor_to_f32(n, out, 1, &err), CBQ_OK); /* I64 is not float */
    cbq_safetensors_free(&st);
}

static void test_writer_layout_and_round_trip(void **state)
{
    (void)state;
    char path[1200];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    double d[3] = {0.1, -1e300, 3.0};
    float f[6] = {1, 2, 3, 4, 5, 6};
    int64_t nbt = 123456789012345LL;
    size_t s_d[1] = {3}, s_f[2] = {2, 3};
    cbq_st_entry e[3] = {{"a.weight", CBQ_ST_F32, 2, s_f, f}, {"b", CBQ_ST_F64, 1, s_d, d},
                         {"c.num_batches_tracked", CBQ_ST_I64, 0, NULL, &nbt}};
    const char *meta[] = {"format", "pt"};
    cbq_error err = {0};
    assert_int_equal(cbq_safetensors_write(path, e, 3, meta, 1, &err), CBQ_OK);

    FILE *fp = fopen(path, "rb");
    unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    assert_int_equal((8 + hlen) % 8, 0);             /* data aligned as the reference writer does */
    assert_int_equal(len, 8 + hlen + 24 + 24 + 8);
    assert_int_equal(buf[8], '{');
    assert_true(buf[8 + hlen - 1] == ' ' || buf[8 + hlen - 1] == '}');
    assert_memory_equal(buf + 8 + hlen, f, 24);      /* raw LE data in the given order */

    cbq_safetensors st;
    assert_int_equal(cbq_safetensors_read(&st, path, &err), CBQ_OK);
    assert_int_equal(st.n_tensors, 3);
    const cbq_st_tensor *b = cbq_safetensors_find(&st, "b");
    assert_int_equal(b->dtype, CBQ_ST_F64);
    assert_memory_equal(b->data, d, sizeof d);
    int64_t got;
    assert_int_equal(cbq_st_tensor_to_i64(cbq_safetensors_find(&st, "c.num_batches_tracked"), &got, 1, &err),
                     CBQ_OK);
    assert_true(got == nbt);
    float conv[3];
    /* -1e300 does not fit a float: a clear range error, not inf. */
    assert_int_equal(cbq_st_tensor_to_f32(b, conv, 3, &err), CBQ_ERR_RANGE);
    assert_non_null(strstr(err.msg, "'b'"));
    cbq_safetensors_free(&st);

    /* Writer refuses duplicates and the reserved name. */
    cbq_st_entry dup[2] = {e[0], e[0]};
    assert_int_equal(cbq_safetensors_write(path, dup, 2, NULL, 0, &err), CBQ_ERR_ARG);
    cbq_st_entry res = {"__metadata__", CBQ_ST_F32, 2, s_f, f};
    assert_int_equal(cbq_safetensors_write(path, &res, 1, NULL, 0, &err), CBQ_ERR_ARG);
}

typedef struct {
    const char *header;
    size_t data_len;
    const char *expect;  /* substring of the message */
} bad_case;

static void test_malformed_headers(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"[1,2]", 0, "does not start with a JSON object"},
        {"{} {}", 0, "after the JSON header"},
        {"{\"a\":", 0, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"F33\""},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing or non-string \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "non-array \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "need 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2, "beyond the 2 data bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "unused bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, "trailing bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,1]}}", 1,
         "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unexpected keys"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__.k"},
        {"{\"__metadata__\":[]}", 0, "__metadata__ must be an object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, "after the JSON header"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 4, "data_offsets"},
    };
    unsigned char data[16] = {0}, file[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = build(file, cases[i].header, data, cases[i].data_len);
        cbq_safetensors st;
        cbq_error err = {0};
        int rc = cbq_safetensors_parse(&st, file, len, "bad.safetensors", &err);
        if (rc != CBQ_ERR_FORMAT || !strstr(err.msg, cases[i].expect) || !strstr(err.msg, "bad.safetensors"))
            fail_msg("case %zu (%s): rc %d, message '%s', expected '%s'", i, cases[i].header, rc, err.msg,
                     cases[i].expect);
        assert_int_equal(st.n_tensors, 0); /* left empty */
        cbq_safetensors_free(&st);
    }
}

static void test_header_length_checks(void **state)
{
    (void)state;
    unsigned char file[64] = {0};
    cbq_safetensors st;
    cbq_error err = {0};
    assert_int_equal(cbq_safetensors_parse(&st, file, 5, "short", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "too short"));
    size_t len = build(file, "{}", NULL, 0);
    file[0] = 200; /* header claims 200 bytes, file has 10 */
    assert_int_equal(cbq_safetensors_parse(&st, file, len, "f", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "beyond the end of the file"));
    memset(file, 0xff, 8); /* 2^64 - 1 */
    assert_int_equal(cbq_safetensors_parse(&st, file, len, "f", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "limit"));
    /* An empty header object is a valid file with no tensors. */
    len = build(file, "{}", NULL, 0);
    assert_int_equal(cbq_safetensors_parse(&st, file, len, "f", &err), CBQ_OK);
    assert_int_equal(st.n_tensors, 0);
    cbq_safetensors_free(&st);
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/does-not-exist.safetensors", dir);
    assert_int_equal(cbq_safetensors_read(&st, missing, &err), CBQ_ERR_IO);
    assert_non_null(strstr(err.msg, "does-not-exist.safetensors"));
}

/* Parses and, on success, touches every byte of every tensor (ASan sees any
 * pointer that strays outside the file). */
static int parse_and_touch(const unsigned char *bytes, size_t len)
{
    cbq_safetensors st;
    cbq_error err = {0};
    int rc = cbq_safetensors_parse(&st, bytes, len, "fuzz", &err);
    if (rc == CBQ_OK) {
        unsigned sum = 0;
        for (size_t t = 0; t < st.n_tensors; t++)
            for (size_t b = 0; b < st.tensors[t].nbytes; b++)
                sum += st.tensors[t].data[b];
        (void)sum;
    } else {
        assert_true(rc == CBQ_ERR_FORMAT);
        assert_true(err.msg[0] != '\0');
    }
    cbq_safetensors_free(&st);
    return rc;
}

static void test_fuzz_flips_and_truncations(void **state)
{
    (void)state;
    float f[12];
    int64_t n = 3;
    for (int i = 0; i < 12; i++)
        f[i] = (float)i;
    size_t s1[2] = {3, 4};
    cbq_st_entry e[2] = {{"x.weight", CBQ_ST_F32, 2, s1, f}, {"x.num_batches_tracked", CBQ_ST_I64, 0, NULL, &n}};
    char path[1200];
    snprintf(path, sizeof path, "%s/fuzz.safetensors", dir);
    cbq_error err = {0};
    const char *meta[] = {"format", "pt"};
    assert_int_equal(cbq_safetensors_write(path, e, 2, meta, 1, &err), CBQ_OK);
    unsigned char orig[4096], buf[4096];
    FILE *fp = fopen(path, "rb");
    size_t len = fread(orig, 1, sizeof orig, fp);
    fclose(fp);
    assert_int_equal(parse_and_touch(orig, len), CBQ_OK);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(parse_and_touch(orig, cut), CBQ_ERR_FORMAT); /* any truncation is detected */
    cbq_rng rng;
    cbq_rng_seed(&rng, 2024);
    size_t ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, orig, len);
        int flips = 1 + (int)cbq_rng_below(&rng, 4);
        for (int k = 0; k < flips; k++) {
            size_t at = cbq_rng_below(&rng, len);
            /* Mostly inside the header, where the structure is. */
            if (iter % 2 == 0)
                at = cbq_rng_below(&rng, len < 120 ? len : 120);
            buf[at] = (unsigned char)cbq_rng_below(&rng, 256);
        }
        size_t cut = iter % 7 == 0 ? cbq_rng_below(&rng, len + 1) : len;
        ok += parse_and_touch(buf, cut) == CBQ_OK;
    }
    /* Flips in the raw data leave a valid file: some must succeed. */
    assert_true(ok > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_hand_built_file),
        cmocka_unit_test(test_writer_layout_and_round_trip),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_header_length_checks),
        cmocka_unit_test(test_fuzz_flips_and_truncations),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
