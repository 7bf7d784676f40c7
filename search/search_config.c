// The resume check of a dato-search run's config. See search_config.h.
#include "search_config.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

// Every field, in the header's order. gens, final_images and threads do not change the answer: a
// resume may run longer, re-score the final front with more images, or use other threads.
#define TEXT(f, answer) {#f, DATO_FIELD_TEXT, offsetof(dato_search_config, f), sizeof(((dato_search_config*)0)->f), answer}
#define NUMBER(f, kind, answer) {#f, kind, offsetof(dato_search_config, f), 0, answer}

const dato_config_field dato_search_config_fields[] = {
    TEXT(model, 1),
    TEXT(model_hash, 1),
    TEXT(prompts_file, 1),
    TEXT(prompts_hash, 1),
    NUMBER(n_prompts, DATO_FIELD_INT, 1),
    NUMBER(images, DATO_FIELD_INT, 1),
    NUMBER(final_images, DATO_FIELD_INT, 0),
    NUMBER(steps, DATO_FIELD_INT, 1),
    NUMBER(guidance, DATO_FIELD_FLOAT, 1),
    TEXT(sampler, 1),
    NUMBER(batch, DATO_FIELD_INT, 1),
    NUMBER(ref_mode, DATO_FIELD_REF_MODE, 1),
    TEXT(ref, 1),
    TEXT(ref_hash, 1),
    TEXT(feature_net, 1),
    NUMBER(latency_mode, DATO_FIELD_LATENCY_MODE, 1),
    TEXT(latency_table_hash, 1),
    NUMBER(pop, DATO_FIELD_INT, 1),
    NUMBER(gens, DATO_FIELD_INT, 0),
    NUMBER(seed, DATO_FIELD_U64, 1),
    NUMBER(n_branches, DATO_FIELD_INT, 1),
    NUMBER(threads, DATO_FIELD_INT, 0),
};
const int dato_search_config_n_fields = sizeof dato_search_config_fields / sizeof dato_search_config_fields[0];

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
    for (int i = 0; i < dato_search_config_n_fields; i++) {
        const dato_config_field* f = &dato_search_config_fields[i];
        if (!f->answer) continue;
        const char* pa = a + f->offset;
        const char* pb = b + f->offset;
        switch (f->kind) {
        case DATO_FIELD_TEXT: {
            int na = text_length(pa, f->size), nb = text_length(pb, f->size);
            if (na != nb || memcmp(pa, pb, (size_t)na) != 0)
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint '%.*s' vs now '%.*s'", f->name, na, pa, nb,
                                 pb);
            break;
        }
        case DATO_FIELD_INT: {
            int va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb) return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %d vs now %d", f->name, va, vb);
            break;
        }
        case DATO_FIELD_FLOAT: {
            float va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb && !(isnan(va) && isnan(vb)))
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %.9g vs now %.9g", f->name, va, vb);
            break;
        }
        case DATO_FIELD_U64: {
            uint64_t va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb)
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %llu vs now %llu", f->name,
                                 (unsigned long long)va, (unsigned long long)vb);
            break;
        }
        case DATO_FIELD_LATENCY_MODE: {
            dato_latency_mode va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb)
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %s vs now %s", f->name, latency_mode_name(va),
                                 latency_mode_name(vb));
            break;
        }
        case DATO_FIELD_REF_MODE: {
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
