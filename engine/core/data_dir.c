// The data dir rule (engine/core/data_dir.h).
#include "data_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_util.h"

// The installed layout, relative to the prefix; the install rules in CMakeLists.txt put the data here.
#define INSTALLED_DATA "share/dato"

// <prefix>/share/dato when the running executable sits in <prefix>/<dir>/ and that folder exists;
// "" otherwise. /proc/self/exe is the executable with symlinks resolved, so a link to an installed
// binary (~/.local/bin/dato-generate -> /opt/dato/bin/dato-generate) finds /opt/dato/share/dato.
static void installed_data_dir(char* out, size_t n) {
    out[0] = 0;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0 || (size_t)len >= sizeof exe - 1) return;
    exe[len] = 0;
    for (int up = 0; up < 2; up++) { // drop the file name, then the folder that holds it (bin/)
        char* slash = strrchr(exe, '/');
        if (!slash) return;
        *slash = 0;
    }
    int w = snprintf(out, n, "%s/" INSTALLED_DATA, exe); // exe "" (a binary in /bin): "/share/dato"
    if (w < 0 || (size_t)w >= n || !dato_is_dir(out)) out[0] = 0;
}

dato_status dato_data_path(char* buf, size_t n, const char* rel, dato_error* err) {
    char installed[4096];
    const char* dir = getenv("DATO_DATA_DIR");
    if (!dir || !dir[0]) {
        installed_data_dir(installed, sizeof installed);
        dir = installed[0] ? installed : DATO_SOURCE_DIR;
    }
    return dato_path_join(buf, n, dir, rel, err);
}
