#include "weight_files.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"

#define MAX_INDEX_BYTES (100u << 20) // an index of a few thousand names is well under 1 MB

// ---- hash table ------------------------------------------------------------------------------------

static uint64_t name_hash(const char* s) { return dato_fnv1a64(DATO_FNV_OFFSET, s, strlen(s)); }

// Indexes wf->tensors by name; a name seen twice is an error naming what (the index or file).
static dato_status build_table(dato_weight_files* wf, const char* what, dato_error* err) {
    size_t n_slots = 8;
    while (n_slots < 2 * (size_t)wf->n_tensors) n_slots *= 2;
    wf->slots = malloc(n_slots * sizeof *wf->slots);
    if (!wf->slots) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for the name table", what);
    wf->n_slots = n_slots;
    for (size_t i = 0; i < n_slots; i++) wf->slots[i] = -1;
    for (int i = 0; i < wf->n_tensors; i++) {
        const char* name = wf->tensors[i]->name;
        size_t k = (size_t)name_hash(name) & (n_slots - 1);
        while (wf->slots[k] >= 0) {
            if (!strcmp(wf->tensors[wf->slots[k]]->name, name))
                return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%.200s' is listed twice", what, name);
            k = (k + 1) & (n_slots - 1);
        }
        wf->slots[k] = i;
    }
    return DATO_OK;
}

const dato_st_tensor* dato_weight_files_find(const dato_weight_files* wf, const char* name) {
    if (!wf->slots) return NULL;
    size_t k = (size_t)name_hash(name) & (wf->n_slots - 1);
    while (wf->slots[k] >= 0) {
        const dato_st_tensor* t = wf->tensors[wf->slots[k]];
        if (!strcmp(t->name, name)) return t;
        k = (k + 1) & (wf->n_slots - 1);
    }
    return NULL;
}

int dato_weight_files_count(const dato_weight_files* wf) { return wf->n_tensors; }

const dato_st_tensor* dato_weight_files_tensor(const dato_weight_files* wf, int i) {
    return i >= 0 && i < wf->n_tensors ? wf->tensors[i] : NULL;
}

void dato_weight_files_release(const dato_weight_files* wf, const dato_st_tensor* t) {
    for (int i = 0; i < wf->n_files; i++) dato_safetensors_release(&wf->files[i], t); // only its own file acts
}

void dato_weight_files_close(dato_weight_files* wf) {
    for (int i = 0; i < wf->n_files; i++) dato_safetensors_close(&wf->files[i]);
    free(wf->files);
    free(wf->tensors);
    free(wf->slots);
    free(wf->path);
    memset(wf, 0, sizeof *wf);
}

// ---- opening ----------------------------------------------------------------------------------------

static int is_regular_file(const char* path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int ends_with(const char* s, const char* suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

// malloc'd "dir/name" ("name" when dir is empty).
static char* path_join(const char* dir, size_t dir_len, const char* name) {
    size_t n = dir_len + 1 + strlen(name) + 1;
    char* p = malloc(n);
    if (p) {
        if (dir_len) snprintf(p, n, "%.*s/%s", (int)dir_len, dir, name);
        else snprintf(p, n, "%s", name);
    }
    return p;
}

// Picks the one checkpoint file in directory dir (see the header); *out is malloc'd.
static dato_status resolve_dir(const char* dir, char** out, dato_error* err) {
    static const char* const full[] = {"diffusion_pytorch_model.safetensors",
                                       "diffusion_pytorch_model.safetensors.index.json", "model.safetensors",
                                       "model.safetensors.index.json"};
    static const char* const fp16[] = {"diffusion_pytorch_model.fp16.safetensors",
                                       "diffusion_pytorch_model.safetensors.index.fp16.json", "model.fp16.safetensors",
                                       "model.safetensors.index.fp16.json"};
    const char* const* sets[2] = {full, fp16};
    size_t dir_len = strlen(dir);
    while (dir_len > 1 && dir[dir_len - 1] == '/') dir_len--;
    for (int set = 0; set < 2; set++) {
        char* found = NULL;
        for (int i = 0; i < 4; i++) {
            char* p = path_join(dir, dir_len, sets[set][i]);
            if (!p) {
                free(found);
                return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", dir);
            }
            if (!is_regular_file(p)) {
                free(p);
                continue;
            }
            if (found) {
                dato_status s = dato_fail(err, DATO_ERR_FORMAT, "%s: holds both %s and %s; open one of them directly",
                                          dir, found, p);
                free(found);
                free(p);
                return s;
            }
            found = p;
        }
        if (found) {
            *out = found;
            return DATO_OK;
        }
    }
    return dato_fail(err, DATO_ERR_NOT_FOUND,
                     "%s: no diffusion_pytorch_model.safetensors or model.safetensors (nor their .index.json or "
                     ".fp16 variants) in this directory",
                     dir);
}

// Reads a whole small file into a NUL-terminated malloc'd buffer.
static dato_status read_text_file(const char* path, char** out, size_t* out_len, dato_error* err) {
    FILE* f = fopen(path, "rb");
    if (!f) return dato_fail(err, DATO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (off_t)MAX_INDEX_BYTES) {
        fclose(f);
        return dato_fail(err, DATO_ERR_IO, "%s: not a regular file of at most %u bytes", path, MAX_INDEX_BYTES);
    }
    size_t n = (size_t)sb.st_size;
    char* buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        return dato_fail(err, DATO_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return DATO_OK;
}

// Shard names stay inside the index's folder.
static int is_safe_shard_name(const char* s) {
    if (!*s || *s == '/') return 0;
    for (const char* p = s; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        p += len;
        if (*p == '/') p++;
    }
    return 1;
}

static dato_status open_index(dato_weight_files* wf, const cJSON* root, dato_error* err) {
    const char* index = wf->path;
    const cJSON* map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) return dato_fail(err, DATO_ERR_FORMAT, "%s: no \"weight_map\" object", index);
    int n_names = cJSON_GetArraySize(map);

    // Distinct shard names, in order of first appearance (a checkpoint has at most a few dozen).
    const char** shards = calloc(n_names ? (size_t)n_names : 1, sizeof *shards);
    int* shard_of = calloc(n_names ? (size_t)n_names : 1, sizeof *shard_of);
    wf->tensors = calloc(n_names ? (size_t)n_names : 1, sizeof *wf->tensors);
    dato_status s = DATO_OK;
    if (!shards || !shard_of || !wf->tensors) {
        s = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", index);
        goto done;
    }
    int n_shards = 0, i = 0;
    for (const cJSON* e = map->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || !is_safe_shard_name(e->valuestring)) {
            s = dato_fail(err, DATO_ERR_FORMAT,
                          "%s: weight_map['%.200s'] is not a file name inside the index's folder", index, e->string);
            goto done;
        }
        int k = 0;
        while (k < n_shards && strcmp(shards[k], e->valuestring)) k++;
        if (k == n_shards) shards[n_shards++] = e->valuestring;
        shard_of[i] = k;
    }

    const char* slash = strrchr(index, '/');
    size_t dir_len = slash ? (size_t)(slash - index) : 0;
    if (slash == index) dir_len = 1; // an index in "/" itself
    wf->files = calloc(n_shards ? (size_t)n_shards : 1, sizeof *wf->files);
    if (!wf->files) {
        s = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", index);
        goto done;
    }
    for (int k = 0; k < n_shards; k++) {
        char* shard_path = path_join(index, dir_len, shards[k]);
        if (!shard_path) {
            s = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", index);
            goto done;
        }
        s = dato_safetensors_open(&wf->files[k], shard_path, err);
        free(shard_path);
        if (s != DATO_OK) goto done;
        wf->n_files++;
    }

    i = 0;
    for (const cJSON* e = map->child; e; e = e->next, i++) {
        const dato_safetensors* shard = &wf->files[shard_of[i]];
        const dato_st_tensor* t = dato_safetensors_find(shard, e->string);
        if (!t) {
            s = dato_fail(err, DATO_ERR_NOT_FOUND, "%s: weight_map puts tensor '%.200s' in %s, which does not hold it",
                          index, e->string, shard->path);
            goto done;
        }
        wf->tensors[wf->n_tensors++] = t;
    }
    s = build_table(wf, index, err);

done:
    free(shards);
    free(shard_of);
    return s;
}

dato_status dato_weight_files_open(dato_weight_files* wf, const char* path, dato_error* err) {
    memset(wf, 0, sizeof *wf);
    if (!path) return dato_fail(err, DATO_ERR_INVALID, "weight files: no path given");
    struct stat sb;
    if (stat(path, &sb) != 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    dato_status s = DATO_OK;
    if (S_ISDIR(sb.st_mode)) s = resolve_dir(path, &wf->path, err);
    else if (!(wf->path = strdup(path))) s = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    if (s != DATO_OK) return s;

    if (ends_with(wf->path, ".json")) {
        char* text = NULL;
        size_t len = 0;
        s = read_text_file(wf->path, &text, &len, err);
        if (s == DATO_OK) {
            cJSON* root = cJSON_ParseWithLength(text, len);
            if (!cJSON_IsObject(root)) s = dato_fail(err, DATO_ERR_FORMAT, "%s: not a JSON object", wf->path);
            else s = open_index(wf, root, err);
            cJSON_Delete(root);
            free(text);
        }
    } else {
        wf->files = calloc(1, sizeof *wf->files);
        if (!wf->files) {
            s = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", wf->path);
        } else if ((s = dato_safetensors_open(&wf->files[0], wf->path, err)) == DATO_OK) {
            wf->n_files = 1;
            wf->tensors = malloc((wf->files[0].n_tensors ? (size_t)wf->files[0].n_tensors : 1) * sizeof *wf->tensors);
            if (!wf->tensors) {
                s = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", wf->path);
            } else {
                for (int i = 0; i < wf->files[0].n_tensors; i++)
                    wf->tensors[wf->n_tensors++] = &wf->files[0].tensors[i];
                s = build_table(wf, wf->path, err);
            }
        }
    }
    if (s != DATO_OK) dato_weight_files_close(wf);
    return s;
}
