// Where dato's data lives (models/fashion-sd, models/clip_tokenizer, datasets/fashion-mnist): one
// rule, applied at run time, for every default path the tools take.
#ifndef DATO_DATA_DIR_H
#define DATO_DATA_DIR_H

#include <stddef.h>

#include "status.h"

// Writes "<data dir>/<rel>" into buf. The data dir is, first that applies:
//   1. $DATO_DATA_DIR when set and not empty;
//   2. <prefix>/share/dato when it is a folder, <prefix> being the folder above the one that holds
//      the running executable (/proc/self/exe): the layout `cmake --install` makes (bin/, share/dato/);
//   3. the source tree the binary was built from (DATO_SOURCE_DIR): binaries run from a build folder.
// Nothing is cached: each call looks again. DATO_ERR_INVALID when the path does not fit in n.
dato_status dato_data_path(char* buf, size_t n, const char* rel, dato_error* err);

#endif
