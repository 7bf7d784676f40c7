// Small file helpers shared by the loaders.
#ifndef DATO_FILE_UTIL_H
#define DATO_FILE_UTIL_H

#include <stddef.h>

#include "status.h"

// Reads a whole text file (at most max_bytes) into a NUL-terminated malloc'd buffer; a NUL byte in
// the file is an error naming its offset (every reader would stop there, blind to the rest).
dato_status dato_read_text_file(const char* path, char** out, size_t max_bytes, dato_error* err);
// 1 if path names an existing regular file / directory.
int dato_is_file(const char* path);
int dato_is_dir(const char* path);
// Creates the folders above path's last '/' that do not exist yet (mkdir -p of its parent), so a
// file can be written there; errors name the folder that could not be made.
dato_status dato_mkdir_parents(const char* path, dato_error* err);
// Writes "dir/name" into buf; DATO_ERR_INVALID if it does not fit.
dato_status dato_path_join(char* buf, size_t n, const char* dir, const char* name, dato_error* err);

#endif
