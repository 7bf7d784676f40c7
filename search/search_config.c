// The resume check of a dato-search run's config. See search_config.h.
#include "search_config.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

// Every field that changes the run's answer, walked by one table so a new field is one line.
// gens, final_images and threads are absent on purpose: a resume may run longer, re-score the
// final front with more images, or use another number of threads without changing the search.
typedef enum { FIELD_TEXT, FIELD_INT, FIELD_FLOAT, FIELD_U64, FIELD_LATENCY_MODE, FIELD_REF_MODE } field_kind;

typedef struct {
    const char* name;
    field_kind kind;
    size_t offset;
    size_t size; // bytes of a FIELD_TEXT array
} config_field;

#define TEXT(f) {#f, FIELD_TEXT, offsetof(dato_search_config, f), sizeof(((dato_search_config*)0)->f)}
#define NUMBER(f, kind) {#f, kind, offsetof(dato_search_config, f), 0}

static const config_field answer_fields[] = {
    TEXT(model),
    TEXT(model_hash),
    TEXT(prompts_file),
    TEXT(prompts_hash),
    NUMBER(n_prompts, FIELD_INT),
    NUMBER(images, FIELD_INT),
    NUMBER(steps, FIELD_INT),
    NUMBER(guidance, FIELD_FLOAT),
    TEXT(sampler),
    NUMBER(batch, FIELD_INT),
    NUMBER(ref_mode, FIELD_REF_MODE),
    TEXT(ref),
    TEXT(ref_hash),
    TEXT(feature_net),
    NUMBER(latency_mode, FIELD_LATENCY_MODE),
    TEXT(latency_table_hash),
    NUMBER(pop, FIELD_INT),
    NUMBER(seed, FIELD_U64),
    NUMBER(n_branches, FIELD_INT),
};

static const char* latency_mode_name(dato_latency_mode m) {
    return m == DATO_LATENCY_TABLE ? "table" : m == DATO_LATENCY_MEASURED ? "measured" : "(unknown)";
}

static const char* ref_mode_name(dato_ref_mode m) {
    return m == DATO_REF_FILE ? "file" : m == DATO_REF_BASELINE ? "baseline" : "(unknown)";
}

// The length of a text field, which may lack its terminating 0 in a damaged config.
static int text_length(const char* s, size_t cap) {
    const char* end = memchr(s, 0, cap);
    return (int)(end ? (size_t)(end - s) : cap);
}

dato_status dato_search_config_check_resume(const dato_search_config* saved, const dato_search_config* now,
                                            dato_error* err) {
    const char* a = (const char*)saved;
    const char* b = (const char*)now;
    for (size_t i = 0; i < sizeof answer_fields / sizeof answer_fields[0]; i++) {
        const config_field* f = &answer_fields[i];
        const char* pa = a + f->offset;
        const char* pb = b + f->offset;
        switch (f->kind) {
        case FIELD_TEXT: {
            int na = text_length(pa, f->size), nb = text_length(pb, f->size);
            if (na != nb || memcmp(pa, pb, (size_t)na) != 0)
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint '%.*s' vs now '%.*s'", f->name, na, pa, nb,
                                 pb);
            break;
        }
        case FIELD_INT: {
            int va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb) return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %d vs now %d", f->name, va, vb);
            break;
        }
        case FIELD_FLOAT: {
            float va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb && !(isnan(va) && isnan(vb)))
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %.9g vs now %.9g", f->name, va, vb);
            break;
        }
        case FIELD_U64: {
            uint64_t va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb)
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %llu vs now %llu", f->name,
                                 (unsigned long long)va, (unsigned long long)vb);
            break;
        }
        case FIELD_LATENCY_MODE: {
            dato_latency_mode va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb)
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %s vs now %s", f->name, latency_mode_name(va),
                                 latency_mode_name(vb));
            break;
        }
        case FIELD_REF_MODE: {
            dato_ref_mode va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb)
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %s vs now %s", f->name, ref_mode_name(va),
                                 ref_mode_name(vb));
            break;
        }
        }
    }
    return DATO_OK;
}
