// A whole-file checksum in the first DATO_SEAL_BYTES bytes of a file, where an HDF5 file keeps its
// user block (bytes the library skips): a magic line naming the kind of file, the file's size and
// the FNV-1a 64 of every byte after the block. Search checkpoints and FID statistics carry it; it
// is checked before HDF5 parses anything. It stops accidents (a flipped bit, a truncated copy),
// not crafted files.
#ifndef DATO_FILE_SEAL_H
#define DATO_FILE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h" // dato_fnv1a64: the checksum
#include "status.h"

#define DATO_SEAL_BYTES 512
// Writes the seal of image (size bytes, its first DATO_SEAL_BYTES reserved) into its start.
void dato_seal_image(uint8_t* image, size_t size, const char* magic);
// Seals the file at path in place (its first DATO_SEAL_BYTES reserved), then fsyncs it.
dato_status dato_seal_file(const char* path, const char* magic, dato_error* err);
// What dato_seal_check found at the start of a file.
typedef enum {
    DATO_SEAL_INTACT,    // magic, and the size and checksum match
    DATO_SEAL_NONE_HDF5, // no seal: the HDF5 signature at byte 0 (an HDF5 file without a user block)
    DATO_SEAL_NONE,      // no seal and no HDF5 signature at byte 0
} dato_seal_state;

// Checks the seal of path into *state (DATO_OK for all three states); DATO_ERR_FORMAT, naming the
// file, when a block starting with magic is damaged or the size or checksum differ; DATO_ERR_IO
// when the file cannot be read.
dato_status dato_seal_check(const char* path, const char* magic, dato_seal_state* state, dato_error* err);
// The same check of a whole file already in memory (image, size bytes); messages name label.
dato_status dato_seal_check_image(const uint8_t* image, size_t size, const char* label, const char* magic,
                                  dato_seal_state* state, dato_error* err);

#endif
