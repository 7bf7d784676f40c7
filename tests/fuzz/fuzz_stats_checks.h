// The promises of a statistics read (stats_io.h), checked by the two statistics targets: the file
// reader (fuzz_stats_h5) and the parent's decoder of the child's answer (fuzz_stats_answer).
#ifndef DATO_FUZZ_STATS_CHECKS_H
#define DATO_FUZZ_STATS_CHECKS_H
#include <math.h>

#include "fuzz_util.h"
#include "stats_io.h"

// A refusal names label and holds nothing; accepted statistics have dim >= 1, a count of 0 or >= 2,
// finite values (every one read) and terminated metadata strings. Frees s.
static inline void fuzz_check_stats(dato_status st, dato_fid_stats* s, const dato_stats_meta* meta,
                                    const dato_error* err, const char* label) {
    if (st != DATO_OK) {
        fuzz_check_error(err, label);
        INVARIANT(s->mu == NULL && s->sigma == NULL);
        return;
    }
    INVARIANT(s->dim >= 1 && (s->count == 0 || s->count >= 2));
    for (int i = 0; i < s->dim; i++) INVARIANT(isfinite(s->mu[i]));
    for (size_t i = 0; i < (size_t)s->dim * s->dim; i++) INVARIANT(isfinite(s->sigma[i]));
    INVARIANT(memchr(meta->extractor, '\0', sizeof meta->extractor) &&
              memchr(meta->weights_hash, '\0', sizeof meta->weights_hash) &&
              memchr(meta->preprocessing, '\0', sizeof meta->preprocessing) &&
              memchr(meta->source, '\0', sizeof meta->source));
    dato_fid_stats_free(s);
}
#endif
