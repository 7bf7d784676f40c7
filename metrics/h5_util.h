// HDF5 helpers shared by metrics/stats_io.c and search/checkpoint.c.
//
// HDF5 prints its error stack to stderr by default; dato's messages say what failed, so readers
// and writers of HDF5 files silence it for one call and restore it after (the handler is
// process-wide).
#ifndef DATO_H5_UTIL_H
#define DATO_H5_UTIL_H

#include <hdf5.h>

#include "status.h"

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

// Opens the scalar attribute name of loc, of class cls; -1 and a message naming the file (path)
// and the attribute (where + name, e.g. "config/" "seed") when it is missing or something else.
static inline hid_t dato_h5_open_attr(hid_t loc, const char* path, const char* where, const char* name,
                                      H5T_class_t cls, dato_error* err) {
    if (H5Aexists(loc, name) <= 0) {
        dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s%s' is missing", path, where, name);
        return -1;
    }
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t type = attr < 0 ? -1 : H5Aget_type(attr);
    hid_t space = attr < 0 ? -1 : H5Aget_space(attr);
    int ok = type >= 0 && space >= 0 && H5Tget_class(type) == cls && H5Sget_simple_extent_npoints(space) == 1;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (!ok) {
        if (attr >= 0) H5Aclose(attr);
        dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s%s' is not a single %s", path, where, name,
                  cls == H5T_STRING ? "string" : cls == H5T_FLOAT ? "float" : "integer");
        return -1;
    }
    return attr;
}

#endif
