// Exact hypervolume of a point set for minimisation: the volume dominated by the points and
// bounded by the reference point. Points that are not strictly better than the reference in
// every objective add nothing and are ignored (so are points with NaN objectives); dominated
// and duplicate points add nothing. 2 objectives: sort and sweep, O(n log n). 3 objectives:
// slices along f3, each a 2-D sweep over an f1-sorted list kept by insertion, O(n^2).
#ifndef DATO_HYPERVOLUME_H
#define DATO_HYPERVOLUME_H

#include "status.h"

// points (n, n_obj), reference (n_obj); n_obj 2 or 3 (else DATO_ERR_UNSUPPORTED).
dato_status dato_hypervolume(const double* points, int n, int n_obj, const double* reference, double* out,
                             dato_error* err);

#endif
