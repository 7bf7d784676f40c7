#include "extractor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "hash.h"
#include "inception.h"
#include "tensor_source.h"

dato_status dato_file_hash(const char* path, char* out, size_t n, dato_error* err) {
    FILE* fp = fopen(path, "rb");
    if (!fp) return dato_fail(err, DATO_ERR_IO, "%s: cannot open", path);
    uint64_t h = DATO_FNV_RECORDED_OFFSET; // statistics files record this hash
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, fp)) > 0) h = dato_fnv1a64(h, buf, got);
    fclose(fp);
    snprintf(out, n, "fnv1a64:%016llx", (unsigned long long)h);
    return DATO_OK;
}

typedef struct {
    dato_inception net;
    dato_fid_prep prep;
    uint8_t* rgb; // grey -> RGB staging, grown as needed (outside any loop that must not allocate)
    size_t rgb_cap;
} inception_impl;

static dato_status inception_preprocess(dato_feature_extractor* fx, const uint8_t* img, int h, int w, int c,
                                        float* out, dato_error* err) {
    inception_impl* m = fx->impl;
    if (c == 3) return dato_fid_preprocess(m->prep, img, h, w, out, err);
    if (c != 1) return dato_fail(err, DATO_ERR_INVALID, "inception: images must have 1 or 3 channels, not %d", c);
    size_t need = (size_t)h * w * 3;
    if (need > m->rgb_cap) {
        uint8_t* p = realloc(m->rgb, need);
        if (!p) return dato_fail(err, DATO_ERR_NOMEM, "inception: out of memory");
        m->rgb = p;
        m->rgb_cap = need;
    }
    dato_fid_grey_to_rgb(img, (int64_t)h * w, m->rgb);
    return dato_fid_preprocess(m->prep, m->rgb, h, w, out, err);
}

static dato_status inception_forward(dato_feature_extractor* fx, const dato_tensor* x, dato_tensor* features,
                                     dato_error* err) {
    return dato_inception_forward(&((inception_impl*)fx->impl)->net, x, features, err);
}

static void inception_destroy(dato_feature_extractor* fx) {
    inception_impl* m = fx->impl;
    if (!m) return;
    dato_inception_free(&m->net);
    free(m->rgb);
    free(m);
    fx->impl = NULL;
}

static int has_suffix(const char* s, const char* suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

dato_status dato_extractor_inception_open(dato_feature_extractor* fx, const char* weights_path, dato_fid_prep prep,
                                          dato_backend* be, dato_error* err) {
    memset(fx, 0, sizeof *fx);
    inception_impl* m = calloc(1, sizeof *m);
    if (!m) return dato_fail(err, DATO_ERR_NOMEM, "inception: out of memory");
    *fx = (dato_feature_extractor){.dim = DATO_INCEPTION_FEATURES, .in_c = 3, .in_h = DATO_FID_SIZE,
                                   .in_w = DATO_FID_SIZE, .preprocess = inception_preprocess,
                                   .forward = inception_forward, .destroy = inception_destroy, .impl = m};
    snprintf(fx->name, sizeof fx->name, "pytorch-fid-inception-v3-pool3");
    snprintf(fx->preprocessing, sizeof fx->preprocessing, "%s", dato_fid_prep_name(prep));
    m->prep = prep;
    dato_inception_init(&m->net, be);
    dato_status st = dato_file_hash(weights_path, fx->weights_hash, sizeof fx->weights_hash, err);
    if (!st && (has_suffix(weights_path, ".pth") || has_suffix(weights_path, ".pt") || has_suffix(weights_path, ".ckpt"))) {
        dato_ckpt* ck = NULL;
        st = dato_ckpt_open(&ck, weights_path, err);
        if (!st) {
            dato_tensor_source src = dato_ckpt_source(ck);
            st = dato_inception_load(&m->net, &src, err);
            dato_ckpt_close(ck);
        }
    } else if (!st) {
        dato_weight_files wf;
        st = dato_weight_files_open(&wf, weights_path, err);
        if (!st) {
            dato_tensor_source src = dato_tensor_source_files(&wf);
            st = dato_inception_load(&m->net, &src, err);
            dato_weight_files_close(&wf);
        }
    }
    if (st) inception_destroy(fx);
    return st;
}
