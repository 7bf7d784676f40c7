// Exact 2-D and 3-D hypervolume (minimisation). See hypervolume.h.
#include "hypervolume.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double f1, f2, f3;
} point3;

// Ascending f1, ties by ascending f2: the sweep then meets the dominating copy first.
static int by_f1_then_f2(const void* pa, const void* pb) {
    const point3* a = pa;
    const point3* b = pb;
    if (a->f1 != b->f1) return a->f1 < b->f1 ? -1 : 1;
    return (a->f2 > b->f2) - (a->f2 < b->f2);
}

static int by_f3(const void* pa, const void* pb) {
    const point3* a = pa;
    const point3* b = pb;
    return (a->f3 > b->f3) - (a->f3 < b->f3);
}

// Area dominated by points (n) sorted by (f1, f2), bounded by (r1, r2): each point that lowers the
// best f2 so far adds the strip between its f2 and the previous best.
static double sweep_2d(const point3* points, int n, double r1, double r2) {
    double area = 0, best_f2 = r2;
    for (int i = 0; i < n; i++) {
        if (points[i].f2 < best_f2) {
            area += (r1 - points[i].f1) * (best_f2 - points[i].f2);
            best_f2 = points[i].f2;
        }
    }
    return area;
}

dato_status dato_hypervolume(const double* points, int n, int n_obj, const double* reference, double* out,
                             dato_error* err) {
    if (!out || !reference || n < 0 || (n > 0 && !points))
        return dato_fail(err, DATO_ERR_INVALID, "hypervolume: bad arguments (n %d)", n);
    if (n_obj != 2 && n_obj != 3)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "hypervolume: %d objectives (only 2 or 3 are exact here)", n_obj);
    *out = 0;
    point3* kept = malloc((size_t)(n > 0 ? n : 1) * sizeof(point3));
    point3* slice = malloc((size_t)(n > 0 ? n : 1) * sizeof(point3)); // (n) f1-sorted points below the slice
    if (!kept || !slice) {
        free(kept), free(slice);
        return dato_fail(err, DATO_ERR_NOMEM, "hypervolume: %d points: out of memory", n);
    }
    int n_kept = 0;
    for (int i = 0; i < n; i++) {
        const double* p = points + (size_t)i * n_obj;
        int inside = 1;
        for (int m = 0; m < n_obj; m++) inside &= p[m] < reference[m]; // false for NaN too
        if (inside) kept[n_kept++] = (point3){p[0], p[1], n_obj == 3 ? p[2] : 0};
    }
    if (n_obj == 2) {
        qsort(kept, (size_t)n_kept, sizeof(point3), by_f1_then_f2);
        *out = sweep_2d(kept, n_kept, reference[0], reference[1]);
    } else {
        // slab between consecutive f3 values: its area is the 2-D volume of every point at or below it
        qsort(kept, (size_t)n_kept, sizeof(point3), by_f3);
        double volume = 0;
        for (int i = 0; i < n_kept; i++) {
            int j = i; // insertion keeps the slice sorted by (f1, f2)
            while (j > 0 && by_f1_then_f2(&slice[j - 1], &kept[i]) > 0) slice[j] = slice[j - 1], j--;
            slice[j] = kept[i];
            double next_f3 = i + 1 < n_kept ? kept[i + 1].f3 : reference[2];
            if (next_f3 > kept[i].f3)
                volume += sweep_2d(slice, i + 1, reference[0], reference[1]) * (next_f3 - kept[i].f3);
        }
        *out = volume;
    }
    free(kept), free(slice);
    return DATO_OK;
}
