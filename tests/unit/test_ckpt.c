// PyTorch checkpoints (engine/io/ckpt.c, engine/io/pickle.c) against tools/make_ckpt_fixtures.py:
// 1. torch.save files, zip and legacy: every tensor bit-exact against expected.safetensors
//    (tolerance 0), shared storages as views, the tensor source;
// 2. hostile files: each refused with its status and a message naming the file and the culprit;
// 3. the pickle alone: every truncation, forged memo indices, MARK floods, shared-dict blowups;
// 4. the tiny SD1.5 UNet loaded from an LDM .ckpt (F16) equals the diffusers-folder UNet with its
//    weights rounded to F16: weights bit-exact, forward max|diff|/max|ref| <= 1e-6; and within
//    2e-2 of diffusers' F32 output (the F16 rounding of the weights).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "fixture.h"
#include "pickle.h"
#include "test_util.h"
#include "unet.h"
#include "unet_load.h"

#define DIR "tests/fixtures/ckpt"

// Compares every tensor "<stem>/<name>" of expected.safetensors with the file's tensor <name>.
static void check_good_file(const dato_safetensors* expected, const char* file, const char* stem, int has_state_dict) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", DIR, file);
    dato_ckpt* c;
    dato_error err = {{0}};
    dato_status st = dato_ckpt_open(&c, path, &err);
    CHECK(st == DATO_OK, "%s: %s", path, err.msg);
    if (st) return;
    CHECK(c->has_state_dict == has_state_dict, "%s: has_state_dict %d", path, c->has_state_dict);
    size_t stem_len = strlen(stem);
    int n_expected = 0, n_exact = 0;
    for (int i = 0; i < expected->n_tensors; i++) {
        const dato_st_tensor* e = &expected->tensors[i];
        if (strncmp(e->name, stem, stem_len) != 0 || e->name[stem_len] != '/') continue;
        n_expected++;
        const dato_st_tensor* t = dato_ckpt_find(c, e->name + stem_len + 1);
        CHECK(t != NULL, "%s: tensor '%s' missing", path, e->name + stem_len + 1);
        if (!t) continue;
        int same = t->dtype == e->dtype && t->ndim == e->ndim && t->numel == e->numel && t->nbytes == e->nbytes &&
                   memcmp(t->shape, e->shape, (size_t)e->ndim * sizeof *e->shape) == 0 &&
                   memcmp(t->data, e->data, e->nbytes) == 0;
        CHECK(same, "%s: tensor '%s' differs from the fixture (dtype %s/%s, ndim %d/%d, %zu/%zu bytes)", path, t->name,
              dato_st_dtype_name(t->dtype), dato_st_dtype_name(e->dtype), t->ndim, e->ndim, t->nbytes, e->nbytes);
        CHECK(strcmp(t->path, path) == 0, "%s: tensor path '%s'", path, t->path);
        n_exact += same;
    }
    CHECK(n_expected > 0 && dato_ckpt_count(c) == n_expected, "%s: %d tensors, fixture has %d", path,
          dato_ckpt_count(c), n_expected);
    // The tensor source sees the same table.
    dato_tensor_source src = dato_ckpt_source(c);
    CHECK(src.count(src.ctx) == dato_ckpt_count(c) && strcmp(src.label, path) == 0, "%s: source count/label", path);
    for (int i = 0; i < src.count(src.ctx); i++) {
        const dato_st_tensor* t = src.at(src.ctx, i);
        CHECK(src.find(src.ctx, t->name) == t, "%s: source find('%s')", path, t->name);
        if (i) CHECK(strcmp(src.at(src.ctx, i - 1)->name, t->name) < 0, "%s: names not sorted at %d", path, i);
    }
    CHECK(src.find(src.ctx, "no.such.tensor") == NULL && src.at(src.ctx, -1) == NULL, "%s: absent lookups", path);
    printf("%-14s %2d tensors, %2d bit-exact against expected.safetensors (max|diff| = 0 required)\n", file,
           dato_ckpt_count(c), n_exact);
    dato_ckpt_close(c);
}

// Legacy files: not_a_zip.ckpt ({"w": ones(2)}, written by torch) and legacy_handmade.ckpt
// ({"w": arange(4).view(2, 2)}, laid out by hand as the fixture script documents).
static void check_legacy_small(void) {
    static const struct {
        const char* file;
        int64_t shape[2];
        int ndim;
        float values[4];
    } cases[] = {{DIR "/not_a_zip.ckpt", {2}, 1, {1, 1}}, {DIR "/legacy_handmade.ckpt", {2, 2}, 2, {0, 1, 2, 3}}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dato_ckpt* c;
        dato_error err = {{0}};
        dato_status st = dato_ckpt_open(&c, cases[i].file, &err);
        CHECK(st == DATO_OK, "%s: %s", cases[i].file, err.msg);
        if (st) continue;
        const dato_st_tensor* w = dato_ckpt_find(c, "w");
        int ok = c->legacy && dato_ckpt_count(c) == 1 && w && w->dtype == DATO_ST_F32 && w->ndim == cases[i].ndim &&
                 memcmp(w->shape, cases[i].shape, (size_t)w->ndim * sizeof *w->shape) == 0 &&
                 w->nbytes == (size_t)w->numel * 4 && memcmp(w->data, cases[i].values, w->nbytes) == 0;
        CHECK(ok, "%s: tensor 'w' differs (legacy %d, %d tensors)", cases[i].file, c->legacy, dato_ckpt_count(c));
        printf("legacy %s: 'w' %s (max|diff| = 0 required)\n", cases[i].file, ok ? "bit-exact" : "WRONG");
        dato_ckpt_close(c);
    }
}

// Every proper prefix of a legacy file is refused (no crash, no partial result): the five
// pickles and the storage records are each cut somewhere.
static void check_legacy_truncations(void) {
    size_t n;
    unsigned char* bytes = read_bytes(DIR "/legacy_handmade.ckpt", &n);
    CHECK(bytes != NULL, "cannot read legacy_handmade.ckpt");
    if (!bytes) return;
    char path[64];
    snprintf(path, sizeof path, "/tmp/dato_test_ckpt_%ld.ckpt", (long)getpid());
    int refused = 0;
    for (size_t k = 1; k < n; k++) { // k = 0 is an empty file: the zip path's error
        FILE* f = fopen(path, "wb");
        if (!f || fwrite(bytes, 1, k, f) != k) {
            CHECK(0, "cannot write %s", path);
            if (f) fclose(f);
            break;
        }
        fclose(f);
        dato_ckpt* c = (dato_ckpt*)1;
        dato_error err = {{0}};
        refused += dato_ckpt_open(&c, path, &err) != DATO_OK && c == NULL;
    }
    remove(path);
    free(bytes);
    printf("legacy truncations: %d of %zu refused\n", refused, n - 1);
    CHECK(refused == (int)n - 1, "%d of %zu legacy truncations accepted", (int)n - 1 - refused, n - 1);
}

static void check_views(void) {
    dato_ckpt* c;
    dato_error err;
    if (dato_ckpt_open(&c, DIR "/ldm_small.ckpt", &err)) return;
    const dato_st_tensor *a = dato_ckpt_find(c, "view_a"), *b = dato_ckpt_find(c, "view_b");
    const dato_st_tensor *s = dato_ckpt_find(c, "scalar"), *e = dato_ckpt_find(c, "empty");
    CHECK(a && b && (const char*)b->data - (const char*)a->data == 8 * 4,
          "view_a (offset 2) and view_b (offset 10) are not 8 floats apart in one storage");
    CHECK(c->n_storages == 8, "ldm_small: %d storages read, expected 8 (view_a/view_b share one)", c->n_storages);
    CHECK(s && s->ndim == 0 && s->numel == 1, "scalar: ndim %d", s ? s->ndim : -1);
    CHECK(e && e->ndim == 2 && e->numel == 0 && e->nbytes == 0, "empty: numel %lld", e ? (long long)e->numel : -1LL);
    const dato_st_tensor* p = dato_ckpt_find(c, "position_ids");
    CHECK(p && p->dtype == DATO_ST_I64, "position_ids is not I64");
    dato_ckpt_close(c);
}

typedef struct {
    const char* file;
    dato_status status;
    const char* message; // a substring of the error
} hostile_case;

static const hostile_case hostile[] = {
    {"global_os_system.ckpt", DATO_ERR_UNSUPPORTED, "refused global 'os.system'"},
    {"global_posix_system.ckpt", DATO_ERR_UNSUPPORTED, "refused global 'posix.system'"},
    {"stack_global_eval.ckpt", DATO_ERR_UNSUPPORTED, "refused global 'builtins.eval'"},
    {"load_from_bytes.ckpt", DATO_ERR_UNSUPPORTED, "refused global 'torch.storage._load_from_bytes'"},
    {"unknown_class.ckpt", DATO_ERR_UNSUPPORTED, "refused global '__main__.Evil'"},
    {"truncated_pickle.ckpt", DATO_ERR_FORMAT, "archive/data.pkl: truncated"},
    {"missing_storage.ckpt", DATO_ERR_FORMAT, "tensor 'v': storage entry 'archive/data/1' is missing"},
    {"storage_size_mismatch.ckpt", DATO_ERR_FORMAT,
     "tensor 'w': storage 'archive/data/0' holds 12 bytes, but 4 F32 elements need 16"},
    {"huge_shape.ckpt", DATO_ERR_FORMAT, "tensor 'w': element count overflows"},
    {"huge_storage.ckpt", DATO_ERR_FORMAT, "holds 16 bytes, but 1099511627776 F32 elements need 4398046511104"},
    {"out_of_range.ckpt", DATO_ERR_FORMAT, "tensor 'w': elements [2, 2 + 3) outside storage '0' of 4 elements"},
    {"non_contiguous.ckpt", DATO_ERR_UNSUPPORTED, "tensor 'w': not contiguous"},
    {"transposed.ckpt", DATO_ERR_UNSUPPORTED, "tensor 't': not contiguous"},
    {"deep_nesting.ckpt", DATO_ERR_FORMAT, "dicts nested deeper than 16 levels"},
    {"no_data_pkl.ckpt", DATO_ERR_FORMAT, "no <archive>/data.pkl entry"},
    {"expected.safetensors", DATO_ERR_FORMAT, "not a readable zip archive"},
    {"does_not_exist.ckpt", DATO_ERR_IO, "not a readable zip archive"},
    // The legacy (non-zip) format.
    {"legacy_bad_magic.ckpt", DATO_ERR_FORMAT, "no pickled magic number 0x1950a86a20f9469cfc6c at byte 0"},
    {"legacy_truncated_storage.ckpt", DATO_ERR_FORMAT,
     "storage '140001': 16 bytes of 4 F32 elements at byte 318, but the file ends at 329"},
    {"legacy_size_mismatch.ckpt", DATO_ERR_FORMAT,
     "storage '140001': size prefix says 3 elements, the pickle declares 4"},
    {"legacy_unknown_key.ckpt", DATO_ERR_FORMAT, "the storage key list names '666', which the pickle never declares"},
    {"legacy_view_metadata.ckpt", DATO_ERR_UNSUPPORTED,
     "legacy object pickle at byte 137: persistent id with storage view"},
};

static void check_hostile(void) {
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", DIR, hostile[i].file);
        dato_ckpt* c = (dato_ckpt*)1;
        dato_error err = {{0}};
        dato_status st = dato_ckpt_open(&c, path, &err);
        CHECK(st == hostile[i].status && c == NULL, "%s: status %s, expected %s (%s)", path, dato_status_name(st),
              dato_status_name(hostile[i].status), err.msg);
        CHECK(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, hostile[i].message),
              "%s: message '%s' lacks '%s'", path, err.msg, hostile[i].message);
        printf("refused %-26s %s\n", hostile[i].file, err.msg);
    }
}

// Parses n bytes; returns the status and leaves the message in err.
static dato_status parse(const void* bytes, size_t n, dato_error* err) {
    dato_pickle_tensors pt;
    dato_status st = dato_pickle_load_tensors(&pt, bytes, n, "mem", err);
    if (!st)
        dato_pickle_tensors_free(&pt);
    else
        CHECK(pt.tensors == NULL && pt.n_tensors == 0 && pt.storages == NULL, "failed parse left a table");
    return st;
}

static void check_pickle_in_memory(void) {
    size_t n;
    unsigned char* pkl = read_bytes(DIR "/ldm_small.data.pkl", &n);
    CHECK(pkl != NULL, "cannot read ldm_small.data.pkl");
    if (!pkl) return;
    dato_error err;
    dato_pickle_tensors pt;
    dato_status st = dato_pickle_load_tensors(&pt, pkl, n, "mem", &err);
    CHECK(st == DATO_OK && pt.n_tensors == 9 && pt.n_storages == 8 && pt.has_state_dict, "ldm_small pickle: %s",
          err.msg);
    if (!st) dato_pickle_tensors_free(&pt);
    // Every proper prefix is refused (no STOP), from an exact-size copy so ASan sees overreads.
    int refused = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char* prefix = malloc(k ? k : 1);
        memcpy(prefix, pkl, k);
        refused += parse(prefix, k, &err) != DATO_OK;
        free(prefix);
    }
    printf("pickle truncations: %d of %zu refused\n", refused, n);
    CHECK(refused == (int)n, "%d of %zu truncations accepted", (int)n - refused, n);
    free(pkl);

    static const struct {
        const char* what;
        const char* bytes;
        size_t n;
        const char* message;
    } cases[] = {
        {"huge LONG_BINPUT", "\x80\x02}r\xff\xff\xff\xff.", 9, "memo index 4294967295 beyond"},
        {"BINGET unset", "\x80\x02h\x05.", 5, "memo index 5 was never set"},
        {"STOP on empty stack", "\x80\x02.", 3, "stack underflow"},
        {"pop across MARK", "\x80\x02}(s.", 5, "stack underflow"},
        {"protocol 6", "\x80\x06}.", 4, "pickle protocol 6"},
        {"text INT opcode", "\x80\x02I1\n.", 6, "unsupported pickle opcode 0x49 'I'"},
        {"subprocess via STACK_GLOBAL", "\x80\x04\x8c\x0asubprocess\x8c\x05Popen\x93.", 22,
         "refused global 'subprocess.Popen'"},
        {"GLOBAL without newline",
         "\x80\x02"
         "cos",
         5, "without a newline"},
        {"list at top", "\x80\x02].", 4, "is a list, not a dict"},
        {"SETITEM into a list", "\x80\x02]K\x01K\x02s.", 9, "SETITEM into a list"},
        {"REDUCE of a str",
         "\x80\x02\x8c\x01"
         "a)R.",
         7, "REDUCE of a str"},
        {"OrderedDict with args", "\x80\x02\x63\x63ollections\nOrderedDict\nK\x01\x85R.", 34,
         "OrderedDict built from 1"},
        {"string past the end", "\x80\x02X\xff\xff\xff\x7f", 7, "truncated (a string"},
        {"LONG1 of 9 bytes", "\x80\x02\x8a\x09", 4, "LONG1 of 9 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st = parse(cases[i].bytes, cases[i].n, &err);
        CHECK(st != DATO_OK && strncmp(err.msg, "mem: ", 5) == 0 && strstr(err.msg, cases[i].message),
              "%s: '%s' lacks '%s'", cases[i].what, err.msg, cases[i].message);
    }

    // A 1100-byte key above a dict: the flattened name would pass 1024 bytes.
    char long_key[1200];
    memcpy(long_key, "\x80\x02}X\x4c\x04\x00\x00", 8); // BINUNICODE of 0x44c = 1100 bytes
    memset(long_key + 8, 'k', 1100);
    memcpy(long_key + 1108, "}s.", 3);
    st = parse(long_key, 1111, &err);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "longer than 1024 bytes"), "long name: %s", err.msg);

    // A MARK flood: 1M marks then STOP. Linear memory, refused.
    size_t flood_n = 1000000 + 3;
    char* flood = malloc(flood_n);
    memcpy(flood, "\x80\x02", 2);
    memset(flood + 2, '(', flood_n - 3);
    flood[flood_n - 1] = '.';
    st = parse(flood, flood_n, &err);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "stack underflow"), "MARK flood: %s", err.msg);
    free(flood);

    // One dict reached through 2^14 paths ({"a": d, "b": d} nested 14 times around a 0-d tensor):
    // refused by the name budget instead of allocating 16384 names.
    char bomb[1024];
    static const char tensor_dict[] = "\x80\x02}q\x00(\x8c\x01w"
                                      "ctorch._utils\n_rebuild_tensor_v2\n"
                                      "((\x8c\x07storagectorch\nFloatStorage\n\x8c\x01"
                                      "0\x8c\x03"
                                      "cpuK\x01tQK\x00))tRu";
    size_t k = sizeof tensor_dict - 1; // it holds a NUL (BINPUT 0)
    memcpy(bomb, tensor_dict, k);
    for (int level = 0; level < 14; level++) { // d_{level+1} = {"a": d_level, "b": d_level}, memo slot level+1
        unsigned char step[] = {
            '}', 'q', (unsigned char)(level + 1), '(', 0x8c, 1, 'a', 'h', (unsigned char)level, 0x8c, 1,
            'b', 'h', (unsigned char)level,       'u'};
        memcpy(bomb + k, step, sizeof step);
        k += sizeof step;
    }
    bomb[k++] = '.';
    st = parse(bomb, k, &err);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "more tensor names than"), "shared-dict bomb: %s", err.msg);
    printf("shared-dict bomb (%zu bytes, 2^14 paths): %s\n", k, err.msg);
}

// ---- the tiny UNet from an LDM .ckpt -----------------------------------------------------------

typedef struct {
    float *sample, *t, *ctx, *ref, *got; // (B, 4, H, W), (B), (B, S, 24), (B, 4, H, W), (B, 4, H, W)
    size_t n_out;
    dato_tensor x, c, out;
} io_fixture;

static int load_io(io_fixture* io) {
    dato_safetensors st;
    dato_error err;
    if (dato_safetensors_open(&st, "tests/fixtures/unet/sd15/io.safetensors", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    memset(io, 0, sizeof *io);
    io->sample = fixture_f32(&st, "sample", NULL);
    io->t = fixture_f32(&st, "timestep", NULL);
    io->ctx = fixture_f32(&st, "encoder_hidden_states", NULL);
    io->ref = fixture_f32(&st, "out", &io->n_out);
    const dato_st_tensor *xs = dato_safetensors_find(&st, "sample"),
                         *cs = dato_safetensors_find(&st, "encoder_hidden_states");
    int ok = io->sample && io->t && io->ctx && io->ref && xs && cs;
    if (ok) {
        io->x = dato_tensor_f32_4d(io->sample, xs->shape[0], xs->shape[1], xs->shape[2], xs->shape[3]);
        io->c = dato_tensor_f32_3d(io->ctx, cs->shape[0], cs->shape[1], cs->shape[2]);
        io->got = malloc(io->n_out * sizeof *io->got);
        io->out = dato_tensor_f32_4d(io->got, xs->shape[0], xs->shape[1], xs->shape[2], xs->shape[3]);
    }
    dato_safetensors_close(&st);
    return ok;
}

// Runs u's full forward on io into dst (n_out floats).
static dato_status forward(const dato_unet* u, io_fixture* io, float* dst, dato_error* err) {
    dato_unet_ws ws;
    dato_status st = dato_unet_ws_create(&ws, u, (int)io->x.shape[0], (int)io->x.shape[2], (int)io->x.shape[3],
                                         (int)io->c.shape[1], 0, err);
    if (st) return st;
    dato_net_plan plan = dato_unet_plan_full(u);
    dato_tensor t = dato_tensor_f32_1d(io->t, io->x.shape[0]);
    dato_net_inputs in = {.sample = &io->x, .timesteps = &t, .context = &io->c};
    st = dato_unet_forward(u, &ws, &plan, &in, &io->out, err);
    if (!st) memcpy(dst, io->got, io->n_out * sizeof *dst);
    dato_unet_ws_free(&ws, u);
    return st;
}

static void check_unet(dato_backend* be) {
    dato_error err = {{0}};
    io_fixture io;
    if (!load_io(&io)) {
        CHECK(0, "cannot load tests/fixtures/unet/sd15/io.safetensors");
        return;
    }
    // Reference: the diffusers folder, weights rounded to F16 as the .ckpt stores them.
    dato_unet u;
    dato_status st = dato_unet_open(&u, "tests/fixtures/unet/sd15", be, NULL, &err);
    CHECK(st == DATO_OK, "sd15 folder: %s", err.msg);
    dato_unet_config folder_cfg;
    if (!st) st = dato_unet_config_from_json(&folder_cfg, "tests/fixtures/unet/sd15/unet/config.json", &err);
    if (st) {
        free(io.sample), free(io.t), free(io.ctx), free(io.ref), free(io.got);
        return;
    }
    for (int i = 0; i < u.n_params; i++) {
        float* w = u.params[i].slot->data; // (numel) f32 on the CPU backend
        for (int64_t j = 0; j < dato_tensor_numel(u.params[i].slot); j++) w[j] = dato_f16_to_f32(dato_f32_to_f16(w[j]));
    }

    dato_ckpt* c = NULL;
    st = dato_ckpt_open(&c, DIR "/unet_sd15_ldm.ckpt", &err);
    CHECK(st == DATO_OK, "unet ckpt: %s", err.msg);
    dato_unet v;
    memset(&v, 0, sizeof v);
    dato_unet_config cfg;
    if (!st) {
        dato_tensor_source src = dato_ckpt_source(c);
        dato_unet_ldm_hints hints = {.norm_groups = folder_cfg.norm_groups};
        memcpy(hints.heads, folder_cfg.heads, sizeof hints.heads);
        st = dato_unet_config_infer_ldm(&cfg, &src, "model.diffusion_model.", &hints, &err);
        if (!st) st = dato_unet_build(&v, &cfg, be, &err);
        if (!st) st = dato_unet_check_names(&v, &src, DATO_LAYOUT_LDM, "model.diffusion_model.", 1, &err);
        if (!st) st = dato_unet_load_weights(&v, &src, DATO_LAYOUT_LDM, "model.diffusion_model.", &err);
        CHECK(st == DATO_OK, "unet from ckpt: %s", err.msg);
    }
    if (!st) {
        CHECK(v.n_params == u.n_params, "%d params from the ckpt, %d from the folder", v.n_params, u.n_params);
        double wdiff = 0;
        for (int i = 0; i < u.n_params && i < v.n_params; i++) {
            const dato_tensor *a = u.params[i].slot, *b = v.params[i].slot;
            CHECK(dato_tensor_same_shape(a, b), "param %s shape", u.params[i].name[DATO_LAYOUT_LDM]);
            if (dato_tensor_same_shape(a, b)) {
                double d = test_max_abs_diff(a->data, b->data, (size_t)dato_tensor_numel(a));
                wdiff = d > wdiff ? d : wdiff;
            }
        }
        printf("unet ckpt: %d params, max|w_ckpt - f16(w_folder)| = %.3e (tol 0)\n", v.n_params, wdiff);
        CHECK(wdiff == 0.0, "ckpt weights differ from the F16-rounded folder weights by %.3e", wdiff);
        float* a = malloc(io.n_out * sizeof *a); // (B, 4, H, W) from the folder UNet
        float* b = malloc(io.n_out * sizeof *b); // (B, 4, H, W) from the .ckpt UNet
        st = forward(&u, &io, a, &err);
        if (!st) st = forward(&v, &io, b, &err);
        CHECK(st == DATO_OK, "forward: %s", err.msg);
        if (!st) {
            double e_same = test_rel_err(b, a, io.n_out), e_ref = test_rel_err(b, io.ref, io.n_out);
            printf("unet ckpt forward: vs F16-rounded folder max|diff|/max|ref| = %.3e (tol 1e-6); "
                   "vs diffusers F32 = %.3e (tol 2e-2)\n",
                   e_same, e_ref);
            CHECK(e_same <= 1e-6, "ckpt UNet forward off by %.3e from the folder UNet", e_same);
            CHECK(e_ref <= 2e-2, "ckpt UNet forward off by %.3e from diffusers", e_ref);
        }
        free(a);
        free(b);
    }
    dato_unet_free(&v);
    dato_ckpt_close(c);
    dato_unet_free(&u);
    free(io.sample), free(io.t), free(io.ctx), free(io.ref), free(io.got);
}

int main(void) {
    dato_safetensors expected;
    dato_error err;
    if (dato_safetensors_open(&expected, DIR "/expected.safetensors", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    check_good_file(&expected, "ldm_small.ckpt", "ldm_small", 1);
    check_good_file(&expected, "plain.pt", "plain", 0);
    check_good_file(&expected, "parameter.pth", "parameter", 0);
    check_good_file(&expected, "ldm_small_legacy.ckpt", "ldm_small", 1); // torch's legacy format
    check_legacy_small();
    check_legacy_truncations();
    dato_safetensors_close(&expected);
    check_views();
    check_hostile();
    check_pickle_in_memory();
    dato_backend be;
    if (dato_backend_cpu_init(&be, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    check_unet(&be);
    dato_backend_destroy(&be);
    return test_summary();
}
