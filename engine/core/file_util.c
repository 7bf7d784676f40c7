#include "file_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

dato_status dato_read_text_file(const char* path, char** out, size_t max_bytes, dato_error* err) {
    *out = NULL;
    FILE* f = fopen(path, "rb");
    if (!f) return dato_fail(err, DATO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    // A regular file's size bounds the buffer (a 1 KB config does not take max_bytes); one byte
    // more is read, and room kept for the NUL, so that a file that grows meanwhile cannot overrun it.
    struct stat sb;
    size_t cap = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (unsigned long long)sb.st_size < max_bytes
                     ? (size_t)sb.st_size
                     : max_bytes;
    char* buf = malloc(cap + 2);
    if (!buf) {
        fclose(f);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap + 2);
    }
    size_t n = fread(buf, 1, cap + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return dato_fail(err, DATO_ERR_IO, "%s: read error", path);
    }
    if (n > max_bytes) {
        free(buf);
        return dato_fail(err, DATO_ERR_FORMAT, "%s: larger than the %zu bytes expected of it", path, max_bytes);
    }
    const char* nul = memchr(buf, 0, n); // a reader would stop there and never see the rest
    if (nul) {
        size_t at = (size_t)(nul - buf);
        free(buf);
        return dato_fail(err, DATO_ERR_FORMAT, "%s: byte %zu is NUL: not a text file", path, at);
    }
    buf[n] = 0;
    *out = buf;
    return DATO_OK;
}

int dato_is_file(const char* path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

int dato_is_dir(const char* path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

dato_status dato_mkdir_parents(const char* path, dato_error* err) {
    char dir[4096];
    const char* slash = strrchr(path, '/');
    if (!slash || slash == path) return DATO_OK;
    if ((size_t)(slash - path) >= sizeof dir) return dato_fail(err, DATO_ERR_INVALID, "%s: path too long", path);
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = 0;
    for (char* q = dir + 1;; q++) { // each prefix ending before a '/', then the whole folder
        int end = *q == 0;
        if (*q != '/' && !end) continue;
        *q = 0;
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            return dato_fail(err, DATO_ERR_IO, "%s: cannot create folder %s: %s", path, dir, strerror(errno));
        if (end) break;
        *q = '/';
    }
    if (!dato_is_dir(dir)) return dato_fail(err, DATO_ERR_IO, "%s: %s is not a folder", path, dir);
    return DATO_OK;
}

dato_status dato_path_join(char* buf, size_t n, const char* dir, const char* name, dato_error* err) {
    int len = snprintf(buf, n, "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= n) return dato_fail(err, DATO_ERR_INVALID, "path too long: %s/%s", dir, name);
    return DATO_OK;
}
