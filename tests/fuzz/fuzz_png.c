// libFuzzer target for the PNG reader (dato_png_read, engine/io/image.c: libpng with dato's
// limits and conversions; dato-fid reads image folders with it). It takes a path: the input is
// written to a scratch file on tmpfs and the real reader runs on it. Before writing, the target
// recomputes the CRC of every whole chunk after the signature, so that mutations reach libpng's
// chunk handling and dato's conversions instead of stopping at a CRC error (libpng checks CRCs;
// the zlib checksum inside IDAT is left as it is). Any bytes must be accepted or refused without
// a sanitizer report; an accepted image has 1 or 3 channels and every pixel of it is read.
// Build and run: docs/FUZZING.md.
#include <zlib.h>

#include "fuzz_util.h"
#include "image.h"

static uint32_t be32(const uint8_t* p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    uint8_t* png = malloc(size + 1); // (size,) the input with its chunk CRCs made right
    if (!png) return 0;
    memcpy(png, data, size);
    for (size_t at = 8; at + 12 <= size;) { // chunk: length, type, data, CRC of type + data
        uint32_t len = be32(png + at);
        if (len > size - at - 12) break;
        uint32_t crc = (uint32_t)crc32(0L, png + at + 4, 4 + len);
        for (int i = 0; i < 4; i++) png[at + 8 + len + i] = (uint8_t)(crc >> (24 - 8 * i));
        at += 12 + (size_t)len;
    }
    const char* path = fuzz_file(0, "input.png", png, size);
    free(png);
    uint8_t* px = NULL; // (h, w, c)
    int h = 0, w = 0, c = 0;
    dato_error err;
    if (dato_png_read(path, &px, &h, &w, &c, &err) != DATO_OK) {
        fuzz_check_error(&err, path);
        INVARIANT(px == NULL);
        return 0;
    }
    INVARIANT(h >= 1 && w >= 1 && (c == 1 || c == 3));
    fuzz_touch(px, (size_t)h * w * c);
    free(px);
    return 0;
}
