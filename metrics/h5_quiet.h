// HDF5 prints its error stack to stderr by default; dato's messages say what failed, so readers
// and writers of HDF5 files silence it for one call and restore it after (the handler is
// process-wide). Shared by metrics/stats_io.c and search/checkpoint.c.
#ifndef DATO_H5_QUIET_H
#define DATO_H5_QUIET_H

#include <hdf5.h>

typedef struct {
    H5E_auto2_t func;
    void* data;
} dato_h5_quiet;

static inline dato_h5_quiet dato_h5_silence(void) {
    dato_h5_quiet q;
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

static inline void dato_h5_restore(dato_h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.func, q.data); }

#endif
