// Checkpoints of dato-search (search/checkpoint.c) and the resume check (search/search_config.c):
// a bit-exact round trip, refusal of damaged files with a message naming the file, the atomic
// write recipe (a failed write leaves the old checkpoint), and a SIGKILL test: a writer killed at
// seeded random moments always leaves a valid checkpoint (the old or the new one) at its path.
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "rng.h"
#include "search_config.h"
#include "test_util.h"

#define N_BRANCHES 12
#ifndef FLIPS
#define FLIPS 200 // random bit flips of a valid file
#endif

static dato_search_config make_config(int pop, int steps) {
    dato_search_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.model, sizeof cfg.model, "models/fashion-sd/unet with spaces/ünïcode.safetensors");
    snprintf(cfg.model_hash, sizeof cfg.model_hash, "fnv1a64:0123456789abcdef");
    snprintf(cfg.prompts_file, sizeof cfg.prompts_file, "prompts/fashion.txt");
    snprintf(cfg.prompts_hash, sizeof cfg.prompts_hash, "fnv1a64:fedcba9876543210");
    cfg.n_prompts = 10;
    cfg.images = 64;
    cfg.screen_images = 16; // the format 3 fields: none of them 0, so the round trip must carry each
    cfg.promote = 0.3f;
    cfg.final_images = 1000;
    cfg.confirm_images = 500;
    cfg.pairs = 7;
    cfg.timing_images = 4;
    cfg.bootstrap = 200;
    cfg.steps = steps;
    cfg.guidance = 7.3f; // not exact in binary: the float must survive the float64 attribute
    snprintf(cfg.sampler, sizeof cfg.sampler, "dpmpp-2m");
    cfg.batch = 8;
    cfg.ref_mode = DATO_REF_FILE;
    snprintf(cfg.ref, sizeof cfg.ref, "stats/fashion_ref.h5");
    snprintf(cfg.ref_hash, sizeof cfg.ref_hash, "fnv1a64:1111222233334444");
    snprintf(cfg.feature_net, sizeof cfg.feature_net, "models/featnet.safetensors");
    cfg.latency_mode = DATO_LATENCY_MEASURED;
    snprintf(cfg.latency_table_hash, sizeof cfg.latency_table_hash, "fnv1a64:aaaabbbbccccdddd");
    cfg.pop = pop;
    cfg.gens = 50;
    cfg.seed = 0xfedcba9876543210ULL; // above 2^63: needs the uint64 attribute
    cfg.n_branches = N_BRANCHES;
    cfg.threads = 2;
    cfg.backend = DATO_SEARCH_BACKEND_CUDA; // not the zero value: the round trip must carry it
    return cfg;
}

// A checkpoint whose every value is a function of (generation, row): the kill test recognises
// which write a file came from and checks every byte of it. Extras hold NaN (not measured); the
// images column alternates the screening and the full image counts.
static void fill_checkpoint(dato_checkpoint* c, int64_t generation) {
    c->generation = generation;
    c->elapsed_s = 12.5 + (double)generation;
    size_t T = (size_t)c->steps;
    for (int i = 0; i < c->pop; i++) {
        for (size_t k = 0; k < T; k++) {
            c->pop_genomes[(size_t)i * 2 * T + 2 * k] =
                (uint8_t)(k == 0 ? N_BRANCHES + 1 : (i + k + (size_t)generation) % (N_BRANCHES + 2)); // step 0 full
            c->pop_genomes[(size_t)i * 2 * T + 2 * k + 1] = (uint8_t)((i * 3 + k) % 6);
        }
        c->pop_objectives[2 * i] = 0.01 * i + 1e-3 * (double)(generation + 1); // latencies > 0
        c->pop_objectives[2 * i + 1] = 100.0 / (i + 1) - 0.1 * (double)generation;
        c->pop_violations[i] = i % 3 == 0 ? 0.0 : 0.5 * i;
    }
    for (int i = 0; i < 4; i++) c->rng_state[i] = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1) + (uint64_t)generation;
    for (int64_t r = 0; r < c->n_evaluations; r++) {
        for (size_t k = 0; k < T; k++) {
            c->arch_genomes[(size_t)r * 2 * T + 2 * k] = (uint8_t)(k == 0 ? N_BRANCHES + 1 : (r / 7 + (int64_t)k) % (N_BRANCHES + 2));
            c->arch_genomes[(size_t)r * 2 * T + 2 * k + 1] = (uint8_t)((r + (int64_t)k + generation) % 6);
        }
        c->arch_objectives[2 * r] = 1e-3 * (double)(r + 1) + (double)generation;
        c->arch_objectives[2 * r + 1] = -1.0 / (double)(r + 1);
        double* e = c->arch_extras + (size_t)r * DATO_SEARCH_N_EXTRA;
        e[0] = 0.5 * (double)r;
        e[1] = r % 2 ? NAN : 0.25 * (double)(r + 1);
        e[2] = r % 5 ? NAN : 0.5 * (double)(r + 1);
        e[3] = 300.0 - (double)r;
        e[4] = 1e-2 * (double)(r + generation);
        e[DATO_EXTRA_IMAGES] = r % 3 ? c->cfg.screen_images : c->cfg.images;
        c->arch_generations[r] = (int32_t)(r % 1000 + generation);
    }
}

static void alloc_checkpoint(dato_checkpoint* c, int pop, int steps, int64_t n_evaluations) {
    memset(c, 0, sizeof *c);
    c->cfg = make_config(pop, steps);
    c->n_evaluations = n_evaluations;
    c->pop = pop;
    c->steps = steps;
    c->genome_bytes = 2 * steps;
    c->n_obj = DATO_SEARCH_N_OBJ;
    c->n_extra = DATO_SEARCH_N_EXTRA;
    size_t n = (size_t)n_evaluations;
    c->pop_genomes = malloc((size_t)pop * 2 * (size_t)steps);
    c->pop_objectives = malloc((size_t)pop * 2 * sizeof(double));
    c->pop_violations = malloc((size_t)pop * sizeof(double));
    c->arch_genomes = malloc(n * 2 * (size_t)steps + 1);
    c->arch_objectives = malloc(n * 2 * sizeof(double) + 1);
    c->arch_extras = malloc(n * DATO_SEARCH_N_EXTRA * sizeof(double) + 1);
    c->arch_generations = malloc(n * sizeof(int32_t) + 1);
}

// 1 when every field and array of a and b is bitwise equal (NaN payloads included).
static int same_checkpoint(const dato_checkpoint* a, const dato_checkpoint* b) {
    if (memcmp(&a->cfg, &b->cfg, sizeof a->cfg) != 0) return 0;
    if (a->generation != b->generation || a->n_evaluations != b->n_evaluations || a->pop != b->pop ||
        a->steps != b->steps || a->genome_bytes != b->genome_bytes || a->n_obj != b->n_obj ||
        a->n_extra != b->n_extra || memcmp(&a->elapsed_s, &b->elapsed_s, 8) != 0 ||
        memcmp(a->rng_state, b->rng_state, sizeof a->rng_state) != 0)
        return 0;
    size_t pop = (size_t)a->pop, n = (size_t)a->n_evaluations, gb = (size_t)a->genome_bytes;
    return memcmp(a->pop_genomes, b->pop_genomes, pop * gb) == 0 &&
           memcmp(a->pop_objectives, b->pop_objectives, pop * 2 * 8) == 0 &&
           memcmp(a->pop_violations, b->pop_violations, pop * 8) == 0 &&
           memcmp(a->arch_genomes, b->arch_genomes, n * gb) == 0 &&
           memcmp(a->arch_objectives, b->arch_objectives, n * 2 * 8) == 0 &&
           memcmp(a->arch_extras, b->arch_extras, n * DATO_SEARCH_N_EXTRA * 8) == 0 &&
           memcmp(a->arch_generations, b->arch_generations, n * 4) == 0 && a->n_final == b->n_final &&
           (a->n_final == 0 ||
            (memcmp(a->final_genomes, b->final_genomes, (size_t)a->n_final * gb) == 0 &&
             memcmp(a->final_scores, b->final_scores, (size_t)a->n_final * DATO_SEARCH_N_FINAL * 8) == 0 &&
             memcmp(a->final_baseline, b->final_baseline, sizeof a->final_baseline) == 0));
}

// max |a - b| over the archive objectives and extras (NaN where both are NaN counts as 0).
static double max_payload_error(const dato_checkpoint* a, const dato_checkpoint* b) {
    double m = 0;
    size_t n = (size_t)a->n_evaluations;
    for (size_t i = 0; i < n * DATO_SEARCH_N_EXTRA; i++) {
        double x = a->arch_extras[i], y = b->arch_extras[i];
        double d = (isnan(x) && isnan(y)) || x == y ? 0 : fabs(x - y);
        if (d > m || d != d) m = d;
    }
    for (size_t i = 0; i < n * 2; i++) {
        double d = fabs(a->arch_objectives[i] - b->arch_objectives[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

// Files in dir whose name starts with prefix.
static int count_files(const char* dir, const char* prefix) {
    DIR* d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static int copy_file(const char* src, const char* dst, size_t keep_bytes) {
    size_t n = 0;
    unsigned char* bytes = read_bytes(src, &n);
    if (!bytes) return 0;
    int ok = write_bytes(dst, bytes, keep_bytes < n ? keep_bytes : n);
    free(bytes);
    return ok;
}

// The rank of dataset name in file (its dims into dims[2]), -1 if it cannot be opened.
static int dataset_dims(hid_t file, const char* name, hsize_t dims[2]) {
    hid_t ds = file >= 0 ? H5Dopen2(file, name, H5P_DEFAULT) : -1;
    if (ds < 0) return -1;
    hid_t space = H5Dget_space(ds);
    int rank = space >= 0 && H5Sget_simple_extent_ndims(space) <= 2 ? H5Sget_simple_extent_dims(space, dims, NULL) : -1;
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return rank;
}

static void test_round_trip(const char* dir) {
    dato_error err;
    char path[512];
    snprintf(path, sizeof path, "%s/round.h5", dir);
    dato_checkpoint c, back;
    alloc_checkpoint(&c, 12, 20, 1000);
    fill_checkpoint(&c, 7);
    CHECK(dato_checkpoint_write(path, &c, &err) == DATO_OK, "%s", err.msg);
    dato_status st = dato_checkpoint_read(path, &back, &err);
    CHECK(st == DATO_OK, "%s", err.msg);
    if (st == DATO_OK) {
        double e = max_payload_error(&c, &back);
        printf("round trip: max payload error %g (bitwise compare), dato %s, hdf5 %s\n", e, back.dato_version,
               back.hdf5_version);
        CHECK(same_checkpoint(&c, &back), "round trip differs");
        CHECK(e == 0, "max error %g", e);
        CHECK(back.cfg.guidance == 7.3f && back.cfg.seed == 0xfedcba9876543210ULL, "guidance %.9g seed %llx",
              back.cfg.guidance, (unsigned long long)back.cfg.seed);
        CHECK(strcmp(back.dato_version, "0.1.0") == 0, "dato_version '%s'", back.dato_version);
        CHECK(strncmp(back.hdf5_version, "1.", 2) == 0, "hdf5_version '%s'", back.hdf5_version);
        CHECK(isnan(back.arch_extras[DATO_SEARCH_N_EXTRA + 1]) && back.arch_extras[2] == 0.5, "NaN extras lost");
        CHECK(back.n_final == 0 && !back.final_genomes, "a run still going has no final front");
    }
    dato_checkpoint_free(&back);

    // the images column must be a whole number >= 1: refused before the disk is touched
    double bad_images[3] = {0, 2.5, NAN};
    for (int i = 0; i < 3; i++) {
        double keep_images = c.arch_extras[5 * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES];
        c.arch_extras[5 * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES] = bad_images[i];
        st = dato_checkpoint_write(path, &c, &err);
        CHECK(st == DATO_ERR_INVALID && strstr(err.msg, path) && strstr(err.msg, "'/archive/extras'[5][5] (images)"),
              "images %g: status %s, '%s'", bad_images[i], dato_status_name(st), err.msg);
        c.arch_extras[5 * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES] = keep_images;
    }
    printf("refused write (images column): %s\n", err.msg);

    // a finished run: the re-scored final front round-trips too, all DATO_SEARCH_N_FINAL columns,
    // NaN where a number was not computed (KID, CLIP and its interval)
    uint8_t final_genomes[3 * 40];
    double final_scores[3 * DATO_SEARCH_N_FINAL];
    for (size_t i = 0; i < sizeof final_genomes; i++) final_genomes[i] = (uint8_t)(i % 2 ? i % 6 : i % 40 ? i % (N_BRANCHES + 2) : N_BRANCHES + 1);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < DATO_SEARCH_N_FINAL; k++) {
            int nan = k == DATO_FINAL_KID || k == DATO_FINAL_CLIP || k == DATO_FINAL_CLIP_LO || k == DATO_FINAL_CLIP_HI;
            final_scores[i * DATO_SEARCH_N_FINAL + k] = nan && i != 1 ? NAN : 0.125 * (i * DATO_SEARCH_N_FINAL + k) + 1;
        }
    c.n_final = 3;
    c.final_genomes = final_genomes;
    c.final_scores = final_scores;
    for (int k = 0; k < DATO_SEARCH_N_FINAL; k++) c.final_baseline[k] = 87.5 + k;
    CHECK(dato_checkpoint_write(path, &c, &err) == DATO_OK, "%s", err.msg);
    st = dato_checkpoint_read(path, &back, &err);
    CHECK(st == DATO_OK, "%s", err.msg);
    if (st == DATO_OK) {
        CHECK(same_checkpoint(&c, &back) && back.n_final == 3, "final front round trip");
        const double* last = back.final_scores + 2 * DATO_SEARCH_N_FINAL;
        CHECK(last[DATO_FINAL_RATIO_HI] == 0.125 * (3 * DATO_SEARCH_N_FINAL - 1) + 1 &&
                  back.final_baseline[DATO_FINAL_RATIO_HI] == 87.5 + DATO_FINAL_RATIO_HI &&
                  isnan(back.final_scores[DATO_FINAL_CLIP_HI]) &&
                  !isnan(back.final_scores[DATO_SEARCH_N_FINAL + DATO_FINAL_KID]),
              "final columns");
        CHECK(back.arch_extras[1 * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES] == 16 &&
                  back.arch_extras[3 * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES] == 64,
              "images column");
    }
    dato_checkpoint_free(&back);
    // the file's layout: format 3, (n, 6) extras, (m, 14) final rows
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t version = 0;
    hid_t attr = file >= 0 ? H5Aopen(file, "format_version", H5P_DEFAULT) : -1;
    CHECK(attr >= 0 && H5Aread(attr, H5T_NATIVE_INT64, &version) >= 0 && version == 3, "format_version %lld",
          (long long)version);
    if (attr >= 0) H5Aclose(attr);
    hsize_t dims[2] = {0, 0};
    CHECK(dataset_dims(file, "/archive/extras", dims) == 2 && dims[0] == 1000 && dims[1] == 6, "extras (%llu, %llu)",
          (unsigned long long)dims[0], (unsigned long long)dims[1]);
    CHECK(dataset_dims(file, "/final/scores", dims) == 2 && dims[0] == 3 && dims[1] == 14, "final (%llu, %llu)",
          (unsigned long long)dims[0], (unsigned long long)dims[1]);
    CHECK(dataset_dims(file, "/final/baseline", dims) == 1 && dims[0] == 14, "baseline (%llu)",
          (unsigned long long)dims[0]);
    if (file >= 0) H5Fclose(file);
    c.final_genomes[1] = 6; // a ratio code out of range is refused before the disk is touched
    CHECK(dato_checkpoint_write(path, &c, &err) == DATO_ERR_INVALID && strstr(err.msg, "/final/"), "bad final gene: %s",
          err.msg);
    c.n_final = 0;
    c.final_genomes = NULL;
    c.final_scores = NULL;
    CHECK(count_files(dir, "round.h5.tmp.") == 0, "a temp file was left");
    const char* keep = getenv("DATO_CHECKPOINT_KEEP"); // a file for tools/read_checkpoint.py
    if (keep) CHECK(dato_checkpoint_write(keep, &c, &err) == DATO_OK, "%s", err.msg);

    // an empty archive (generation 0 before any evaluation is archived)
    c.n_evaluations = 0;
    fill_checkpoint(&c, 0);
    CHECK(dato_checkpoint_write(path, &c, &err) == DATO_OK, "%s", err.msg);
    st = dato_checkpoint_read(path, &back, &err);
    CHECK(st == DATO_OK, "%s", err.msg);
    if (st == DATO_OK) CHECK(same_checkpoint(&c, &back) && back.n_evaluations == 0, "empty archive round trip");
    dato_checkpoint_free(&back);
    dato_checkpoint_free(&c);
}

// Expects path to be refused with status want and a message naming the file and containing what.
static void expect_refused(const char* path, dato_status want, const char* what) {
    dato_error err = {{0}};
    dato_checkpoint c;
    dato_status st = dato_checkpoint_read(path, &c, &err);
    CHECK(st == want, "%s: status %s, expected %s (%s)", path, dato_status_name(st), dato_status_name(want), err.msg);
    CHECK(strstr(err.msg, path) && strstr(err.msg, what), "message '%s' lacks the path or '%s'", err.msg, what);
    printf("refused (%s): %s\n", what, err.msg);
    dato_checkpoint_free(&c);
}

// Opens a copy of src for editing with HDF5.
static hid_t open_copy(const char* src, const char* dst) {
    CHECK(copy_file(src, dst, SIZE_MAX), "copy %s", dst);
    hid_t file = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(file >= 0, "H5Fopen %s", dst);
    return file;
}

static void test_refusals(const char* dir) {
    dato_error err;
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    dato_checkpoint c;
    alloc_checkpoint(&c, 8, 10, 500);
    fill_checkpoint(&c, 3);
    CHECK(dato_checkpoint_write(good, &c, &err) == DATO_OK, "%s", err.msg);

    struct stat info;
    CHECK(stat(good, &info) == 0, "stat %s", good);
    snprintf(bad, sizeof bad, "%s/truncated.h5", dir);
    size_t cuts[4] = {(size_t)info.st_size / 4, (size_t)info.st_size / 2, (size_t)info.st_size * 3 / 4,
                      (size_t)info.st_size - 1};
    for (int i = 0; i < 4; i++) {
        CHECK(copy_file(good, bad, cuts[i]), "truncate");
        expect_refused(bad, DATO_ERR_FORMAT, "truncated");
    }

    // flip bytes inside the payload of /archive/objectives: only the checksum can tell
    snprintf(bad, sizeof bad, "%s/flipped.h5", dir);
    hid_t file = open_copy(good, bad);
    hid_t ds = H5Dopen2(file, "/archive/objectives", H5P_DEFAULT);
    haddr_t offset = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(file);
    CHECK(offset != HADDR_UNDEF, "no offset");
    size_t n = 0;
    unsigned char* bytes = read_bytes(bad, &n);
    if (bytes && offset + 100 < n) {
        bytes[offset + 83] ^= 0x10;
        bytes[offset + 97] ^= 0x01;
        CHECK(write_bytes(bad, bytes, n), "rewrite %s", bad);
    }
    free(bytes);
    expect_refused(bad, DATO_ERR_FORMAT, "file checksum mismatch"); // the seal sees any flipped byte
    CHECK(dato_checkpoint_seal(bad, &err) == DATO_OK, "%s", err.msg);
    expect_refused(bad, DATO_ERR_FORMAT, "checksum mismatch (stored"); // resealed: the payload checksum

    snprintf(bad, sizeof bad, "%s/version.h5", dir);
    file = open_copy(good, bad);
    hid_t attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    int64_t version = DATO_CHECKPOINT_FORMAT_VERSION + 1; // a newer writer's file
    CHECK(H5Awrite(attr, H5T_NATIVE_INT64, &version) >= 0, "H5Awrite");
    H5Aclose(attr);
    H5Fclose(file);
    CHECK(dato_checkpoint_seal(bad, &err) == DATO_OK, "%s", err.msg);
    char newer[64];
    snprintf(newer, sizeof newer, "format_version %d", DATO_CHECKPOINT_FORMAT_VERSION + 1);
    expect_refused(bad, DATO_ERR_UNSUPPORTED, newer);

    // A checkpoint from before the backend field: it ran on the CPU.
    snprintf(bad, sizeof bad, "%s/no_backend.h5", dir);
    file = open_copy(good, bad);
    hid_t config = H5Gopen2(file, "/config", H5P_DEFAULT);
    CHECK(config >= 0 && H5Adelete(config, "backend") >= 0, "H5Adelete /config/backend");
    if (config >= 0) H5Gclose(config);
    H5Fclose(file);
    CHECK(dato_checkpoint_seal(bad, &err) == DATO_OK, "%s", err.msg);
    dato_checkpoint old = {0};
    CHECK(dato_checkpoint_read(bad, &old, &err) == DATO_OK && old.cfg.backend == DATO_SEARCH_BACKEND_CPU,
          "no /config/backend: %s, backend %d", err.msg, (int)old.cfg.backend);
    dato_checkpoint_free(&old);

    snprintf(bad, sizeof bad, "%s/missing_dataset.h5", dir);
    file = open_copy(good, bad);
    CHECK(H5Ldelete(file, "/archive/extras", H5P_DEFAULT) >= 0, "H5Ldelete");
    H5Fclose(file);
    CHECK(dato_checkpoint_seal(bad, &err) == DATO_OK, "%s", err.msg);
    expect_refused(bad, DATO_ERR_FORMAT, "'/archive/extras' is missing");

    // depth N_BRANCHES + 2 at population row 1, step 3
    snprintf(bad, sizeof bad, "%s/bad_genome.h5", dir);
    file = open_copy(good, bad);
    uint8_t depth[8 * 10];
    ds = H5Dopen2(file, "/population/cache_depth", H5P_DEFAULT);
    CHECK(H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, depth) >= 0, "H5Dread");
    depth[1 * 10 + 3] = N_BRANCHES + 2;
    CHECK(H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, depth) >= 0, "H5Dwrite");
    H5Dclose(ds);
    H5Fclose(file);
    CHECK(dato_checkpoint_seal(bad, &err) == DATO_OK, "%s", err.msg);
    expect_refused(bad, DATO_ERR_FORMAT, "checksum mismatch (stored"); // genes are judged after the checksum

    snprintf(bad, sizeof bad, "%s/text.h5", dir);
    CHECK(write_bytes(bad, "this is not HDF5\n", 17), "write %s", bad);
    expect_refused(bad, DATO_ERR_FORMAT, "not an HDF5 file");
    snprintf(bad, sizeof bad, "%s/other.h5", dir); // an HDF5 file, not a checkpoint
    file = H5Fcreate(bad, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(file >= 0 && H5Fclose(file) >= 0, "H5Fcreate %s", bad);
    expect_refused(bad, DATO_ERR_FORMAT, "an HDF5 file of another kind");
    snprintf(bad, sizeof bad, "%s/empty.h5", dir);
    CHECK(write_bytes(bad, "", 0), "write %s", bad);
    expect_refused(bad, DATO_ERR_FORMAT, "not an HDF5 file");

    // seeded random bit flips anywhere in the file: refused, or (a flip in the seal's padding) read back unchanged
    dato_rng rng;
    dato_rng_seed(&rng, 77);
    bytes = read_bytes(good, &n);
    unsigned char* original = read_bytes(good, &n);
    snprintf(bad, sizeof bad, "%s/flip_any.h5", dir);
    int refused = 0, unchanged = 0;
    for (int trial = 0; bytes && original && trial < FLIPS; trial++) {
        size_t at = (size_t)dato_rng_below(&rng, n);
        bytes[at] ^= (uint8_t)(1u << dato_rng_below(&rng, 8));
        CHECK(write_bytes(bad, bytes, n), "write %s", bad);
        dato_checkpoint back;
        dato_status st = dato_checkpoint_read(bad, &back, &err);
        if (st != DATO_OK) {
            refused++;
            CHECK(strstr(err.msg, bad) != NULL, "message '%s' lacks the path", err.msg);
        } else {
            unchanged++;
            CHECK(same_checkpoint(&c, &back), "byte %zu flipped: read OK but the content changed", at);
        }
        dato_checkpoint_free(&back);
        bytes[at] = original[at];
    }
    free(bytes);
    free(original);
    remove(bad);
    printf("%d random bit flips: %d refused, %d in unused bytes read back unchanged\n", FLIPS, refused, unchanged);

    snprintf(bad, sizeof bad, "%s/absent.h5", dir);
    expect_refused(bad, DATO_ERR_IO, "No such file");
    dato_checkpoint_free(&c);
}

// ---- format 2 files (the previous release) --------------------------------------------------------
// Made here from a format 3 file with the HDF5 C API: the archive extras lose the images column,
// the final rows keep their first 4 columns, the format 3 config attributes go, format_version
// becomes 2, and the payload checksum is recomputed over the format 2 arrays by the rule of
// docs/CHECKPOINT.md (implemented again here, independently of checkpoint.c), then resealed.

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define V2_EXTRAS 5

static uint64_t fnv_le(uint64_t h, uint64_t v, int n_bytes) {
    for (int i = 0; i < n_bytes; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * FNV_PRIME;
    return h;
}

static uint64_t fnv_bytes(uint64_t h, const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static uint64_t fnv_doubles(uint64_t h, const double* x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &x[i], 8);
        h = fnv_le(h, bits, 8);
    }
    return h;
}

// The payload checksum of c as a format 2 file stores it: extras (n, 5), scores (n_final, 4), base (4).
static uint64_t v2_checksum(const dato_checkpoint* c, const double* extras, const double* scores, const double* base) {
    size_t pop = (size_t)c->pop, n = (size_t)c->n_evaluations, gb = (size_t)c->genome_bytes;
    uint64_t h = FNV_OFFSET;
    h = fnv_bytes(h, c->pop_genomes, pop * gb);
    h = fnv_doubles(h, c->pop_objectives, pop * 2);
    h = fnv_doubles(h, c->pop_violations, pop);
    for (int i = 0; i < 4; i++) h = fnv_le(h, c->rng_state[i], 8);
    h = fnv_bytes(h, c->arch_genomes, n * gb);
    h = fnv_doubles(h, c->arch_objectives, n * 2);
    h = fnv_doubles(h, extras, n * V2_EXTRAS);
    for (size_t i = 0; i < n; i++) h = fnv_le(h, (uint32_t)c->arch_generations[i], 4);
    if (c->n_final > 0) {
        h = fnv_bytes(h, c->final_genomes, (size_t)c->n_final * gb);
        h = fnv_doubles(h, scores, (size_t)c->n_final * DATO_SEARCH_N_FINAL_V2);
        h = fnv_doubles(h, base, DATO_SEARCH_N_FINAL_V2);
    }
    return h;
}

// Replaces float64 dataset name of file with data of shape dims[ndim] and a "names" attribute.
static void replace_dataset(hid_t file, const char* name, int ndim, const hsize_t* dims, const double* data,
                            const char* names) {
    CHECK(H5Ldelete(file, name, H5P_DEFAULT) >= 0, "H5Ldelete %s", name);
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(ds >= 0 && H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, "write %s", name);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    H5Tset_cset(str, H5T_CSET_UTF8);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(ds, "names", str, scalar, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(attr >= 0 && H5Awrite(attr, str, &names) >= 0, "names of %s", name);
    H5Aclose(attr);
    H5Sclose(scalar);
    H5Tclose(str);
    H5Dclose(ds);
    H5Sclose(space);
}

// Writes dst: src (a format 3 file written from c) in the format 2 layout. With right_checksum 0
// the stored checksum stays the format 3 one, which a format 2 file must not verify with.
static void rewrite_as_v2(const char* src, const char* dst, const dato_checkpoint* c, int right_checksum) {
    dato_error err;
    hid_t file = open_copy(src, dst);
    size_t n = (size_t)c->n_evaluations, m = (size_t)c->n_final;
    double* extras = malloc(n * V2_EXTRAS * sizeof(double) + 1);
    double* scores = malloc(m * DATO_SEARCH_N_FINAL_V2 * sizeof(double) + 1);
    double base[DATO_SEARCH_N_FINAL_V2];
    for (size_t r = 0; r < n; r++)
        memcpy(extras + r * V2_EXTRAS, c->arch_extras + r * DATO_SEARCH_N_EXTRA, V2_EXTRAS * sizeof(double));
    for (size_t r = 0; r < m; r++)
        memcpy(scores + r * DATO_SEARCH_N_FINAL_V2, c->final_scores + r * DATO_SEARCH_N_FINAL,
               DATO_SEARCH_N_FINAL_V2 * sizeof(double));
    memcpy(base, c->final_baseline, sizeof base);
    hsize_t extra_dims[2] = {n, V2_EXTRAS}, score_dims[2] = {m, DATO_SEARCH_N_FINAL_V2}, base_dims[1] = {4};
    replace_dataset(file, "/archive/extras", 2, extra_dims, extras,
                    "kid,measured_latency_s_per_image,table_latency_s_per_image,fid,teacher");
    if (m > 0) {
        const char* names = "measured_latency_s_per_image,fid,kid,teacher";
        replace_dataset(file, "/final/scores", 2, score_dims, scores, names);
        replace_dataset(file, "/final/baseline", 1, base_dims, base, names);
    }
    hid_t config = H5Gopen2(file, "/config", H5P_DEFAULT);
    const char* v3_fields[] = {"screen_images", "promote", "confirm_images", "pairs", "timing_images", "bootstrap"};
    for (int i = 0; i < 6; i++) CHECK(H5Adelete(config, v3_fields[i]) >= 0, "H5Adelete /config/%s", v3_fields[i]);
    H5Gclose(config);
    int64_t version = 2;
    hid_t attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    CHECK(attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT64, &version) >= 0, "format_version");
    H5Aclose(attr);
    if (right_checksum) {
        uint64_t h = v2_checksum(c, extras, scores, base);
        attr = H5Aopen(file, "checksum", H5P_DEFAULT);
        CHECK(attr >= 0 && H5Awrite(attr, H5T_NATIVE_UINT64, &h) >= 0, "checksum");
        H5Aclose(attr);
    }
    CHECK(H5Fclose(file) >= 0, "H5Fclose %s", dst);
    CHECK(dato_checkpoint_seal(dst, &err) == DATO_OK, "%s", err.msg);
    free(extras);
    free(scores);
}

// c read from a format 2 file made from want: the 5 extras and 4 final columns as written, the images
// column = cfg.images, the other final columns NaN, the format 3 config fields 0.
static void check_widened(const dato_checkpoint* want, const dato_checkpoint* c) {
    dato_search_config cfg = want->cfg;
    cfg.screen_images = cfg.confirm_images = cfg.pairs = cfg.timing_images = cfg.bootstrap = 0;
    cfg.promote = 0;
    CHECK(memcmp(&cfg, &c->cfg, sizeof cfg) == 0, "config differs (format 3 fields absent: 0)");
    CHECK(c->n_extra == DATO_SEARCH_N_EXTRA && c->n_evaluations == want->n_evaluations && c->n_final == want->n_final &&
              c->generation == want->generation,
          "n_extra %d, n_evaluations %lld, n_final %d", c->n_extra, (long long)c->n_evaluations, c->n_final);
    size_t n = (size_t)c->n_evaluations, m = (size_t)c->n_final;
    int extras_ok = 1, final_ok = 1;
    for (size_t r = 0; r < n; r++) {
        const double *x = c->arch_extras + r * DATO_SEARCH_N_EXTRA, *y = want->arch_extras + r * DATO_SEARCH_N_EXTRA;
        extras_ok &= memcmp(x, y, V2_EXTRAS * sizeof(double)) == 0 && x[DATO_EXTRA_IMAGES] == c->cfg.images;
    }
    for (size_t r = 0; r < m; r++) {
        const double *x = c->final_scores + r * DATO_SEARCH_N_FINAL, *y = want->final_scores + r * DATO_SEARCH_N_FINAL;
        final_ok &= memcmp(x, y, DATO_SEARCH_N_FINAL_V2 * sizeof(double)) == 0;
        for (int k = DATO_SEARCH_N_FINAL_V2; k < DATO_SEARCH_N_FINAL; k++) final_ok &= isnan(x[k]);
    }
    for (int k = 0; k < DATO_SEARCH_N_FINAL && m > 0; k++)
        final_ok &= k < DATO_SEARCH_N_FINAL_V2 ? c->final_baseline[k] == want->final_baseline[k]
                                               : isnan(c->final_baseline[k]);
    for (int k = 0; k < DATO_SEARCH_N_FINAL && m == 0; k++) final_ok &= c->final_baseline[k] == 0;
    CHECK(extras_ok, "format 2 extras: 5 columns as written, images = cfg.images %d", c->cfg.images);
    CHECK(final_ok, "format 2 final rows: 4 columns as written, the rest NaN");
    CHECK(memcmp(c->arch_genomes, want->arch_genomes, n * (size_t)c->genome_bytes) == 0 &&
              memcmp(c->arch_objectives, want->arch_objectives, n * 2 * sizeof(double)) == 0 &&
              (m == 0 || memcmp(c->final_genomes, want->final_genomes, m * (size_t)c->genome_bytes) == 0),
          "format 2 genomes or objectives differ");
}

static void test_format2(const char* dir) {
    dato_error err;
    char v3[512], v2[512], bad[512];
    snprintf(v3, sizeof v3, "%s/v3.h5", dir);
    snprintf(v2, sizeof v2, "%s/v2.h5", dir);
    dato_checkpoint c, back, again;
    alloc_checkpoint(&c, 6, 8, 40);
    fill_checkpoint(&c, 4);
    for (int r = 0; r < 40; r++) c.arch_extras[r * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES] = c.cfg.images;

    // a run still going (no /final), then a finished one (v3.h5 is left holding the finished one)
    uint8_t final_genomes[2 * 16];
    double final_scores[2 * DATO_SEARCH_N_FINAL];
    for (size_t i = 0; i < sizeof final_genomes; i++) final_genomes[i] = (uint8_t)(i % 2 ? i % 6 : i % 16 ? i % 5 : N_BRANCHES + 1);
    for (int i = 0; i < 2 * DATO_SEARCH_N_FINAL; i++) final_scores[i] = i % DATO_SEARCH_N_FINAL == 2 ? NAN : 0.5 + i;
    for (int finished = 0; finished < 2; finished++) {
        for (int k = 0; k < DATO_SEARCH_N_FINAL; k++) c.final_baseline[k] = finished ? 90.25 + k : 0;
        c.n_final = finished ? 2 : 0;
        c.final_genomes = finished ? final_genomes : NULL;
        c.final_scores = finished ? final_scores : NULL;
        CHECK(dato_checkpoint_write(v3, &c, &err) == DATO_OK, "%s", err.msg);
        rewrite_as_v2(v3, v2, &c, 1);
        dato_status st = dato_checkpoint_read(v2, &back, &err);
        CHECK(st == DATO_OK, "format 2 (%s): %s", finished ? "finished" : "going", err.msg);
        if (st == DATO_OK) {
            check_widened(&c, &back);
            printf("format 2 file (%s) reads back: checksum verified on the stored layout, %d extras, images = %g, "
                   "final column %d = %g\n", finished ? "finished, 2 final rows" : "still going", back.n_extra,
                   back.arch_extras[DATO_EXTRA_IMAGES], DATO_FINAL_RATIO,
                   back.n_final ? back.final_scores[DATO_FINAL_RATIO] : NAN);
            // a resume writes it back as format 3: the widened rows pass the writer's checks
            CHECK(dato_checkpoint_write(v3, &back, &err) == DATO_OK, "format 2 -> 3: %s", err.msg);
            st = dato_checkpoint_read(v3, &again, &err);
            CHECK(st == DATO_OK && same_checkpoint(&back, &again), "format 2 -> 3 round trip: %s", err.msg);
            dato_checkpoint_free(&again);
        }
        dato_checkpoint_free(&back);
        CHECK(dato_checkpoint_write(v3, &c, &err) == DATO_OK, "%s", err.msg);
    }

    // a format 2 file whose checksum is that of the format 3 arrays: damaged
    snprintf(bad, sizeof bad, "%s/v2_checksum.h5", dir);
    rewrite_as_v2(v3, bad, &c, 0);
    expect_refused(bad, DATO_ERR_FORMAT, "checksum mismatch (stored");
    // format_version 2 on the format 3 layout: the extras' shape is wrong for version 2
    snprintf(bad, sizeof bad, "%s/v2_layout.h5", dir);
    hid_t file = open_copy(v3, bad);
    int64_t version = 2;
    hid_t attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    CHECK(attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT64, &version) >= 0, "format_version");
    H5Aclose(attr);
    H5Fclose(file);
    CHECK(dato_checkpoint_seal(bad, &err) == DATO_OK, "%s", err.msg);
    expect_refused(bad, DATO_ERR_FORMAT, "'/archive/extras' has 2 dims (40, 6), expected (40, 5)");
    // version 1 (before the teacher objective and /final) stays refused
    file = open_copy(v3, bad);
    version = 1;
    attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    CHECK(attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT64, &version) >= 0, "format_version");
    H5Aclose(attr);
    H5Fclose(file);
    CHECK(dato_checkpoint_seal(bad, &err) == DATO_OK, "%s", err.msg);
    expect_refused(bad, DATO_ERR_FORMAT, "format_version 1, this build reads versions 2 to 3");
    // a format 3 file whose images column holds 0 (written by hand): refused on read too
    snprintf(bad, sizeof bad, "%s/v3_images.h5", dir);
    file = open_copy(v3, bad);
    double* extras = malloc(40 * DATO_SEARCH_N_EXTRA * sizeof(double));
    memcpy(extras, c.arch_extras, 40 * DATO_SEARCH_N_EXTRA * sizeof(double));
    extras[7 * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES] = 0;
    hid_t ds = H5Dopen2(file, "/archive/extras", H5P_DEFAULT);
    CHECK(ds >= 0 && H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, extras) >= 0, "H5Dwrite");
    H5Dclose(ds);
    c.arch_extras[7 * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES] = 0; // the checksum of what the file holds now
    uint64_t h = dato_checkpoint_checksum(&c);
    attr = H5Aopen(file, "checksum", H5P_DEFAULT);
    CHECK(attr >= 0 && H5Awrite(attr, H5T_NATIVE_UINT64, &h) >= 0, "checksum");
    H5Aclose(attr);
    H5Fclose(file);
    free(extras);
    CHECK(dato_checkpoint_seal(bad, &err) == DATO_OK, "%s", err.msg);
    expect_refused(bad, DATO_ERR_FORMAT, "'/archive/extras'[7][5] (images) is 0");
    c.n_final = 0;
    c.final_genomes = NULL;
    c.final_scores = NULL;
    dato_checkpoint_free(&c);
}

// A failed write leaves the previous checkpoint at path as it was and removes its temp file.
static void test_failed_write(const char* dir) {
    dato_error err;
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/keep.h5", dir);
    dato_checkpoint c, back;
    alloc_checkpoint(&c, 6, 8, 50);
    fill_checkpoint(&c, 1);
    CHECK(dato_checkpoint_write(path, &c, &err) == DATO_OK, "%s", err.msg);

    // the temp name taken by a directory: H5Fcreate fails
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(mkdir(tmp, 0700) == 0, "mkdir %s", tmp);
    fill_checkpoint(&c, 2);
    dato_status st = dato_checkpoint_write(path, &c, &err);
    CHECK(st == DATO_ERR_IO && strstr(err.msg, path), "status %s: %s", dato_status_name(st), err.msg);
    printf("failed write (temp blocked): %s\n", err.msg);
    rmdir(tmp);

    // a gene out of range is refused before anything is written
    c.pop_genomes[5] = 200;
    st = dato_checkpoint_write(path, &c, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "cache_depth") == NULL && strstr(err.msg, "prune_ratio_code"),
          "status %s: %s", dato_status_name(st), err.msg);
    printf("failed write (bad gene): %s\n", err.msg);
    fill_checkpoint(&c, 2);

    // a directory that does not exist
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/ckpt.h5", dir);
    st = dato_checkpoint_write(missing, &c, &err);
    CHECK(st == DATO_ERR_IO && strstr(err.msg, "no/such/dir") && strstr(err.msg, "No such file"), "status %s: %s",
          dato_status_name(st), err.msg);
    printf("failed write (no directory): %s\n", err.msg);

    // a full disk, as a file size limit (EFBIG instead of ENOSPC; no root or mount needed): a child
    // process with RLIMIT_FSIZE of 16 KiB tries a 200 KB checkpoint
    fflush(stdout); // the child must not print the parent's buffered lines again
    pid_t child = fork();
    if (child == 0) {
        signal(SIGXFSZ, SIG_IGN); // write() then fails with EFBIG instead of killing the process
        struct rlimit limit = {16384, 16384};
        setrlimit(RLIMIT_FSIZE, &limit);
        dato_checkpoint big;
        alloc_checkpoint(&big, 6, 8, 4000);
        fill_checkpoint(&big, 2);
        st = dato_checkpoint_write(path, &big, &err);
        printf("failed write (file size limit): %s\n", err.msg);
        fflush(stdout);
        _exit(st == DATO_ERR_IO && strstr(err.msg, path) && strstr(err.msg, "File too large") ? 0 : 1);
    }
    int status = -1;
    if (child > 0) waitpid(child, &status, 0);
    CHECK(child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "file size limit: child status %d", status);

    // a read-only directory (root writes anyway: skipped)
    if (geteuid() != 0) {
        char ro[512], ro_path[600];
        snprintf(ro, sizeof ro, "%s/readonly", dir);
        CHECK(mkdir(ro, 0700) == 0, "mkdir %s", ro);
        snprintf(ro_path, sizeof ro_path, "%s/ckpt.h5", ro);
        fill_checkpoint(&c, 1);
        CHECK(dato_checkpoint_write(ro_path, &c, &err) == DATO_OK, "%s", err.msg);
        chmod(ro, 0500);
        fill_checkpoint(&c, 2);
        st = dato_checkpoint_write(ro_path, &c, &err);
        CHECK(st == DATO_ERR_IO && strstr(err.msg, "Permission denied"), "status %s: %s", dato_status_name(st),
              err.msg);
        chmod(ro, 0700);
        st = dato_checkpoint_read(ro_path, &back, &err);
        CHECK(st == DATO_OK && back.generation == 1, "read-only dir: %s", err.msg);
        dato_checkpoint_free(&back);
        remove(ro_path);
        rmdir(ro);
    } else {
        printf("read-only directory case skipped: running as root\n");
    }

    fill_checkpoint(&c, 1);
    st = dato_checkpoint_read(path, &back, &err);
    CHECK(st == DATO_OK, "%s", err.msg);
    if (st == DATO_OK) CHECK(same_checkpoint(&c, &back), "the old checkpoint changed after failed writes");
    dato_checkpoint_free(&back);
    CHECK(count_files(dir, "keep.h5.tmp.") == 0, "a temp file was left");
    dato_checkpoint_free(&c);
}

static void sleep_us(long us) {
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

// A child rewrites a large checkpoint in a loop (generation 1, 2, ...) and is SIGKILLed at seeded
// random moments; the file at path must then read back valid and equal to the write it came from.
static void test_kill(const char* dir) {
    enum { KILLS = 10, POP = 16, STEPS = 20, ROWS = 200000 };
    dato_error err;
    char path[512];
    snprintf(path, sizeof path, "%s/kill.h5", dir);
    dato_checkpoint c, back, want;
    alloc_checkpoint(&c, POP, STEPS, ROWS);
    alloc_checkpoint(&want, POP, STEPS, ROWS);
    fill_checkpoint(&c, 0);
    CHECK(dato_checkpoint_write(path, &c, &err) == DATO_OK, "%s", err.msg);
    dato_rng rng;
    dato_rng_seed(&rng, 20261124);
    int temps_seen = 0, generations_seen = 0;
    for (int kill_i = 0; kill_i < KILLS; kill_i++) {
        long delay_us = 5000 + (long)dato_rng_below(&rng, 400000);
        fflush(stdout);
        pid_t child = fork();
        CHECK(child >= 0, "fork: %s", strerror(errno));
        if (child < 0) break;
        if (child == 0) {
            for (int64_t g = 1;; g++) {
                fill_checkpoint(&c, 100 * (kill_i + 1) + g);
                if (dato_checkpoint_write(path, &c, &err) != DATO_OK) _exit(2);
            }
        }
        sleep_us(delay_us);
        kill(child, SIGKILL);
        int status = 0;
        waitpid(child, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child ended otherwise (status %d)", status);
        temps_seen += count_files(dir, "kill.h5.tmp.");
        dato_status st = dato_checkpoint_read(path, &back, &err);
        CHECK(st == DATO_OK, "after kill %d: %s", kill_i, err.msg);
        if (st == DATO_OK) {
            fill_checkpoint(&want, back.generation);
            CHECK(same_checkpoint(&want, &back), "after kill %d: generation %lld content differs", kill_i,
                  (long long)back.generation);
            generations_seen += back.generation > 0;
            printf("kill %d after %ld us: checkpoint of generation %lld reads back valid\n", kill_i, delay_us,
                   (long long)back.generation);
        }
        dato_checkpoint_free(&back);
        CHECK(dato_checkpoint_remove_stale_temps(path, &err) == DATO_OK, "%s", err.msg);
        CHECK(count_files(dir, "kill.h5.tmp.") == 0, "stale temps remain after kill %d", kill_i);
    }
    printf("kill test: %d kills left a temp file behind, %d found a newer generation\n", temps_seen,
           generations_seen);
    CHECK(count_files(dir, "kill.h5") == 1, "only the checkpoint should remain");
    dato_checkpoint_free(&c);
    dato_checkpoint_free(&want);
}

// A live writer's temp file (this process's parent here: pid 1 is always alive) is kept.
static void test_remove_stale_temps(const char* dir) {
    dato_error err;
    char path[512], live[600], dead[600], other[600];
    snprintf(path, sizeof path, "%s/stale.h5", dir);
    snprintf(live, sizeof live, "%s.tmp.1", path);
    snprintf(dead, sizeof dead, "%s.tmp.999999999", path);
    snprintf(other, sizeof other, "%s.tmp.12x", path);
    CHECK(write_bytes(live, "x", 1) && write_bytes(dead, "x", 1) && write_bytes(other, "x", 1), "write temps");
    CHECK(dato_checkpoint_remove_stale_temps(path, &err) == DATO_OK, "%s", err.msg);
    CHECK(access(live, F_OK) == 0, "a live writer's temp was removed");
    CHECK(access(dead, F_OK) != 0, "a dead writer's temp was kept");
    CHECK(access(other, F_OK) == 0, "a file not named like a temp was removed");
    remove(live);
    remove(other);
}

static void test_check_resume(void) {
    dato_error err;
    dato_search_config a = make_config(16, 20);
    dato_search_config b = a;
    CHECK(dato_search_config_check_resume(&a, &b, &err) == DATO_OK, "identical configs: %s", err.msg);
    b.gens = 80;
    b.threads = a.threads == 1 ? 8 : 1; // any thread count gives the same bits
    b.final_images = 5000;
    CHECK(dato_search_config_check_resume(&a, &b, &err) == DATO_OK, "gens/threads/final_images: %s", err.msg);

#define EXPECT_REFUSED(field, change)                                                                   \
    do {                                                                                                \
        b = a;                                                                                          \
        change;                                                                                         \
        dato_status st_ = dato_search_config_check_resume(&a, &b, &err);                                \
        CHECK(st_ == DATO_ERR_INVALID && strncmp(err.msg, field ": checkpoint", strlen(field ": checkpoint")) == 0, \
              "%s: status %s, message '%s'", field, dato_status_name(st_), err.msg);                     \
    } while (0)
    EXPECT_REFUSED("model", b.model[0] = 'X');
    EXPECT_REFUSED("model_hash", b.model_hash[10] = 'f');
    EXPECT_REFUSED("prompts_file", b.prompts_file[0] = 'X');
    EXPECT_REFUSED("prompts_hash", b.prompts_hash[9] = '0');
    EXPECT_REFUSED("n_prompts", b.n_prompts++);
    EXPECT_REFUSED("images", b.images++);
    EXPECT_REFUSED("steps", b.steps++);
    EXPECT_REFUSED("guidance", b.guidance = 7.5f);
    EXPECT_REFUSED("sampler", snprintf(b.sampler, sizeof b.sampler, "euler"));
    EXPECT_REFUSED("batch", b.batch = 4);
    EXPECT_REFUSED("backend", b.backend = DATO_SEARCH_BACKEND_CPU);
    EXPECT_REFUSED("ref_mode", b.ref_mode = DATO_REF_BASELINE);
    EXPECT_REFUSED("ref", b.ref[0] = 'X');
    EXPECT_REFUSED("ref_hash", b.ref_hash[9] = '9');
    EXPECT_REFUSED("feature_net", b.feature_net[0] = 'X');
    EXPECT_REFUSED("latency_mode", b.latency_mode = DATO_LATENCY_TABLE);
    EXPECT_REFUSED("latency_table_hash", b.latency_table_hash[0] = 0);
    EXPECT_REFUSED("pop", b.pop = 32);
    EXPECT_REFUSED("seed", b.seed = 1);
    EXPECT_REFUSED("n_branches", b.n_branches = 5);
#undef EXPECT_REFUSED

    b = a;
    snprintf(b.model_hash, sizeof b.model_hash, "fnv1a64:cdcdcdcdcdcdcdcd");
    dato_search_config_check_resume(&a, &b, &err);
    CHECK(strcmp(err.msg, "model_hash: checkpoint 'fnv1a64:0123456789abcdef' vs now 'fnv1a64:cdcdcdcdcdcdcdcd'") == 0,
          "message '%s'", err.msg);
    printf("resume refused: %s\n", err.msg);
    b = a;
    b.latency_mode = DATO_LATENCY_TABLE;
    dato_search_config_check_resume(&a, &b, &err);
    CHECK(strcmp(err.msg, "latency_mode: checkpoint measured vs now table") == 0, "message '%s'", err.msg);
    // a text field without its terminating 0 is compared within its array, not past it
    b = a;
    memset(b.sampler, 'a', sizeof b.sampler);
    CHECK(dato_search_config_check_resume(&a, &b, &err) == DATO_ERR_INVALID, "unterminated sampler");
}

int main(void) {
    char dir[] = "/tmp/dato_test_checkpoint_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    test_round_trip(dir);
    test_refusals(dir);
    test_format2(dir);
    test_failed_write(dir);
    test_remove_stale_temps(dir);
    test_kill(dir);
    test_check_resume();
    // clean up the files this test made
    const char* names[] = {"round.h5",  "good.h5",       "truncated.h5", "flipped.h5", "version.h5",
                           "missing_dataset.h5", "no_backend.h5", "bad_genome.h5", "text.h5", "empty.h5", "keep.h5", "other.h5",
                           "kill.h5", "v3.h5", "v2.h5", "v2_checksum.h5", "v2_layout.h5", "v3_images.h5"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        remove(path);
    }
    CHECK(rmdir(dir) == 0, "%s not empty after cleanup", dir);
    return test_summary();
}
