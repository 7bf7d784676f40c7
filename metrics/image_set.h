// The image sets FID reads (dato-fid's --images, PATH1 PATH2, --kid-ref): a folder of PNGs
// (sorted by name), an HDF5 file (.h5/.hdf5) whose dataset "images" is uint8 (N, H, W, 1 or 3),
// or an IDX image file (.gz or not; Fashion-MNIST: grey (N, 28, 28)). Counts are 64-bit.
#ifndef DATO_IMAGE_SET_H
#define DATO_IMAGE_SET_H

#include <stdint.h>

#include "extractor.h"
#include "idx.h"

typedef struct {
    char path[4096]; // the set, for messages
    char** files;    // (n) PNG paths, sorted; NULL for an IDX or HDF5 set
    dato_idx idx;    // an IDX set: (n, rows, cols) grey
    uint8_t* pixels; // an HDF5 set: (n, h, w, c)
    int h, w, c;     // the image size of an IDX or HDF5 set
    int64_t n;       // images used: at most the limit given to open
} dato_image_set;

// Opens the set at path, keeping at most limit images (0: all). Errors name the file and what
// was wrong; HDF5 prints nothing (its messages come back in err).
dato_status dato_image_set_open(dato_image_set* s, const char* path, int64_t limit, dato_error* err);
// Image i (< s->n) through fx's preprocessing into out (in_c, in_h, in_w); a failure names the
// PNG, or the set and the image's index.
dato_status dato_image_set_load(const dato_image_set* s, int64_t i, dato_feature_extractor* fx, float* out,
                                dato_error* err);
void dato_image_set_close(dato_image_set* s);

#endif
