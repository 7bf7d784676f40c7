// The resume check of a dato-search run's config. See search_config.h.
#include "search_config.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

// Every field, in the header's order. gens and the final stage's counts (final_images, confirm_images,
// pairs, timing_images, bootstrap) do not change the search's answer: a resume may run longer, re-score
// or confirm the final front with more images or pairs. Nor does threads: the engine's bits do not
// depend on the thread count (the CPU GEMM is one FMA chain per element, engine/backends/cpu/cpu_gemm.c).
// Enums are stored as ints: the checkpoint and the check read them that way.
_Static_assert(sizeof(dato_latency_mode) == sizeof(int) && sizeof(dato_ref_mode) == sizeof(int) &&
                   sizeof(dato_quality_objective) == sizeof(int) && sizeof(dato_search_backend) == sizeof(int) &&
                   sizeof(dato_extractor_kind) == sizeof(int),
               "enum size");
static const char* const objective_names[] = {"teacher", "fid", "clip"}; // indexed by dato_quality_objective
static const char* const latency_mode_names[] = {"table", "measured"}; // indexed by dato_latency_mode
static const char* const ref_mode_names[] = {"file", "baseline"};      // indexed by dato_ref_mode
static const char* const backend_names[] = {"cpu", "cuda"};            // indexed by dato_search_backend
static const char* const extractor_names[] = {"featnet", "inception"};  // indexed by dato_extractor_kind

#define TEXT(f, answer) \
    {#f, DATO_FIELD_TEXT, offsetof(dato_search_config, f), sizeof(((dato_search_config*)0)->f), answer, NULL, 0, 0}
#define NUMBER(f, kind, answer) {#f, kind, offsetof(dato_search_config, f), 0, answer, NULL, 0, 0}
// Fields added after checkpoints existed: absent in older ones, where they read as 0 or "".
#define TEXT_OPTIONAL(f, answer) \
    {#f, DATO_FIELD_TEXT, offsetof(dato_search_config, f), sizeof(((dato_search_config*)0)->f), answer, NULL, 0, 1}
#define NUMBER_OPTIONAL(f, kind, answer) {#f, kind, offsetof(dato_search_config, f), 0, answer, NULL, 0, 1}
#define ENUM(f, names, answer, optional) \
    {#f, DATO_FIELD_ENUM, offsetof(dato_search_config, f), 0, answer, names, sizeof names / sizeof names[0], optional}

const dato_config_field dato_search_config_fields[] = {
    TEXT(model, 1),
    TEXT(model_hash, 1),
    TEXT(prompts_file, 1),
    TEXT(prompts_hash, 1),
    NUMBER(n_prompts, DATO_FIELD_INT, 1),
    NUMBER(images, DATO_FIELD_INT, 1),
    NUMBER_OPTIONAL(screen_images, DATO_FIELD_INT, 1),
    NUMBER_OPTIONAL(promote, DATO_FIELD_FLOAT, 1),
    NUMBER(final_images, DATO_FIELD_INT, 0),
    NUMBER_OPTIONAL(confirm_images, DATO_FIELD_INT, 0),
    NUMBER_OPTIONAL(pairs, DATO_FIELD_INT, 0),
    NUMBER_OPTIONAL(timing_images, DATO_FIELD_INT, 0),
    NUMBER_OPTIONAL(bootstrap, DATO_FIELD_INT, 0),
    NUMBER_OPTIONAL(height, DATO_FIELD_INT, 1),
    NUMBER_OPTIONAL(width, DATO_FIELD_INT, 1),
    NUMBER(steps, DATO_FIELD_INT, 1),
    NUMBER(guidance, DATO_FIELD_FLOAT, 1),
    TEXT(sampler, 1),
    TEXT_OPTIONAL(scheduler_config, 1),
    TEXT_OPTIONAL(prediction_type, 1),
    NUMBER(batch, DATO_FIELD_INT, 1),
    ENUM(backend, backend_names, 1, 1), // optional: checkpoints written before it ran on the CPU
    ENUM(objective, objective_names, 1, 0),
    ENUM(ref_mode, ref_mode_names, 1, 0),
    TEXT(ref, 1),
    TEXT(ref_hash, 1),
    ENUM(extractor, extractor_names, 1, 1),
    TEXT(feature_net, 1),
    TEXT_OPTIONAL(preprocess, 1),
    TEXT_OPTIONAL(clip, 1),
    TEXT_OPTIONAL(clip_hash, 1),
    ENUM(latency_mode, latency_mode_names, 1, 0),
    TEXT(latency_table_hash, 1),
    NUMBER(pop, DATO_FIELD_INT, 1),
    NUMBER(gens, DATO_FIELD_INT, 0),
    NUMBER(seed, DATO_FIELD_U64, 1),
    NUMBER(n_branches, DATO_FIELD_INT, 1),
    NUMBER(threads, DATO_FIELD_INT, 0),
};
const int dato_search_config_n_fields = sizeof dato_search_config_fields / sizeof dato_search_config_fields[0];

// The name of value v of an enum field ("(unknown)" out of range, as in a damaged config).
static const char* enum_name(const dato_config_field* f, int v) {
    return v >= 0 && v < f->n_names ? f->names[v] : "(unknown)";
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
        case DATO_FIELD_ENUM: {
            int va, vb;
            memcpy(&va, pa, sizeof va);
            memcpy(&vb, pb, sizeof vb);
            if (va != vb)
                return dato_fail(err, DATO_ERR_INVALID, "%s: checkpoint %s vs now %s", f->name, enum_name(f, va),
                                 enum_name(f, vb));
            break;
        }
        }
    }
    return DATO_OK;
}

const char* dato_search_backend_name(dato_search_backend b) {
    return b >= 0 && b < (int)(sizeof backend_names / sizeof backend_names[0]) ? backend_names[b] : "(unknown)";
}

const char* dato_quality_objective_name(dato_quality_objective o) {
    return o >= 0 && o < (int)(sizeof objective_names / sizeof objective_names[0]) ? objective_names[o] : "(unknown)";
}

const char* dato_extractor_kind_name(dato_extractor_kind k) {
    return k >= 0 && k < (int)(sizeof extractor_names / sizeof extractor_names[0]) ? extractor_names[k] : "(unknown)";
}
