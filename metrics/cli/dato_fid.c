// dato-fid: FID statistics of an image set, and FID/KID of images against statistics.
//
//   dato-fid images/ ref_stats.npz --weights pt_inception-2015-12-05-6726825d.pth   (as python -m pytorch_fid)
//   dato-fid stats --images DIR|FILE.idx[.gz] --weights pt_inception-2015-12-05-6726825d.pth --out ref.h5
//   dato-fid score --images DIR --stats ref.h5|ref.npz --weights ... [--kid-ref DIR|FILE.idx]
//   dato-fid stats --images FILE.idx --extractor featnet[:DIR] --out ref.h5   (the default model's network)
//
// Images: a folder of PNGs (sorted by name), an IDX file (Fashion-MNIST: grey 28x28, made RGB
// by repeating the channel), or an HDF5 file whose dataset "images" is uint8 (N, H, W, C), C 1 or 3.
// Features: pytorch-fid's Inception-v3 pool3 (2048-d) after the chosen preprocessing (pytorch-fid
// by default; tf; clean). Statistics record the extractor, a hash of its weights file and the
// preprocessing; scoring refuses statistics made differently.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_args.h"
#include "clock.h"
#include "data_dir.h"
#include "fid.h"
#include "file_util.h"
#include "extractor.h"
#include "featnet.h"
#include "image_set.h"
#include "stats_io.h"

typedef struct {
    const char *cmd, *images, *weights, *out, *stats, *kid_ref, *source, *extractor, *prep_name;
    const char* paths[2];   // two-path mode (cmd NULL): an image set or statistics each
    char featnet_dir[4096]; // --extractor featnet[:DIR]; "": inception
    int batch, threads, limit, kid_subsets, kid_subset_size, json, help;
    dato_fid_prep prep;
} options;

#define N_OPTIONS 15
// The options, as data (cli_args.h); the defaults are set in parse.
static void options_table(options* o, dato_arg* t) {
    dato_arg rows[N_OPTIONS] = {
        {"images", NULL, DATO_ARG_TEXT, &o->images, 0, 0, NULL, NULL, "DIR|FILE",
         "a folder of PNG images (sorted by name), an IDX image file, or an HDF5 file with a "
         "uint8 dataset 'images' (N, H, W, 1 or 3)"},
        {"extractor", NULL, DATO_ARG_TEXT, &o->extractor, 0, 0, NULL, NULL, "NAME",
         "inception (default; pytorch-fid's FID network), or featnet[:DIR]: the default "
         "model's feature network (64-d, grey 28x28 images only, no --weights; DIR default: "
         "models/fashion-sd/featnet in dato's data folder)"},
        {"weights", NULL, DATO_ARG_TEXT, &o->weights, 0, 0, NULL, NULL, "FILE",
         "Inception weights: pt_inception-2015-12-05-6726825d.pth or .safetensors"},
        {"out", NULL, DATO_ARG_TEXT, &o->out, 0, 0, NULL, NULL, "FILE.h5",
         "stats: where to write mu, sigma and what made them (folders are created)"},
        {"stats", NULL, DATO_ARG_TEXT, &o->stats, 0, 0, NULL, NULL, "FILE",
         "score: reference statistics (.h5 from dato-fid, or a pytorch-fid/ADM .npz)"},
        {"kid-ref", NULL, DATO_ARG_TEXT, &o->kid_ref, 0, 0, NULL, NULL, "DIR|FILE",
         "score: also KID against these reference images"},
        {"kid-subsets", NULL, DATO_ARG_INT, &o->kid_subsets, 1, 1000000, NULL, NULL, "N", "KID subsets (default 100)"},
        {"kid-subset-size", NULL, DATO_ARG_INT, &o->kid_subset_size, 2, 100000000, NULL, NULL, "N",
         "KID subset size (default 1000, capped at the smaller set)"},
        {"preprocess", NULL, DATO_ARG_TEXT, &o->prep_name, 0, 0, NULL, NULL, "MODE",
         "pytorch-fid (default) | tf | clean (docs/FID_PREPROCESSING.md)"},
        {"batch", "batch-size", DATO_ARG_INT, &o->batch, 1, 1024, NULL, NULL, "N", "images per forward (default 16)"},
        {"limit", NULL, DATO_ARG_INT, &o->limit, 1, 2147483647, NULL, NULL, "N", "use at most N images of each set"},
        {"source", NULL, DATO_ARG_TEXT, &o->source, 0, 0, NULL, NULL, "TEXT",
         "stats: a description stored with the statistics"},
        {"threads", NULL, DATO_ARG_INT, &o->threads, 1, 1024, NULL, NULL, "N", "CPU threads (default: all)"},
        {"json", NULL, DATO_ARG_FLAG, &o->json, 0, 0, NULL, NULL, NULL,
         "the result as one JSON object on standard output (docs/CLI.md)"},
        {"help", NULL, DATO_ARG_FLAG, &o->help, 0, 0, NULL, NULL, NULL, "this text"},
    };
    memcpy(t, rows, sizeof rows);
}

static void usage(FILE* f) {
    options o;
    dato_arg t[N_OPTIONS];
    options_table(&o, t);
    dato_text h;
    dato_error err;
    if (dato_text_init(&h, 8192, "--help", &err)) return;
    dato_text_append(&h,
        "usage: dato-fid PATH1 PATH2 [--weights FILE] [options]\n"
        "       dato-fid stats --images DIR|FILE.idx[.gz] --weights FILE --out STATS.h5 [options]\n"
        "       dato-fid score --images DIR|FILE.idx[.gz] --weights FILE --stats STATS.h5|.npz [options]\n"
        "\n"
        "PATH1 PATH2: the FID between two sets, as python -m pytorch_fid PATH1 PATH2: each an image set\n"
        "(a PNG folder, an IDX file, an HDF5 'images' file) or statistics (.npz, or .h5 from dato-fid\n"
        "stats); --weights is needed unless both are statistics. Prints 'FID:  <value>'.\n"
        "A value follows its option as the next argument or after '=' (--batch=32).\n\n");
    dato_args_help(t, N_OPTIONS, &h);
    fputs(h.data, f);
    dato_text_free(&h);
}

static int has_suffix(const char* s, const char* suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

// ---- features --------------------------------------------------------------------------------------------

// Runs every image of s through the network: stats accumulate; all (n, 2048) kept if keep != NULL.
static dato_status extract(dato_feature_extractor* fx, const dato_image_set* s, const options* o, const char* what,
                           dato_feature_stats* stats, float** keep, dato_error* err) {
    int B = o->batch, D = fx->dim;
    size_t in = (size_t)fx->in_c * fx->in_h * fx->in_w;
    float* x = malloc((size_t)B * in * sizeof *x);
    float* f = malloc((size_t)B * D * sizeof *f);
    float* all = keep ? malloc((size_t)s->n * D * sizeof *all) : NULL;
    dato_status st = x && f && (!keep || all) ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    double t0 = dato_clock_s();
    int tty = isatty(STDERR_FILENO); // a terminal: one progress line rewritten in place
    for (int64_t i = 0; i < s->n && !st; i += B) {
        int b = s->n - i < B ? (int)(s->n - i) : B;
        for (int k = 0; k < b && !st; k++) st = dato_image_set_load(s, i + k, fx, x + (size_t)k * in, err);
        if (st) break;
        dato_tensor tx = dato_tensor_f32_4d(x, b, fx->in_c, fx->in_h, fx->in_w), tf = dato_tensor_f32_2d(f, b, D);
        if ((st = fx->forward(fx, &tx, &tf, err))) break;
        if ((st = dato_feature_stats_add(stats, f, b, err))) break;
        if (all) memcpy(all + (size_t)i * D, f, (size_t)b * D * sizeof *f);
        double el = dato_clock_s() - t0, done = i + b;
        if (tty || i + b == s->n) // a log file gets the last line only
            fprintf(stderr, "%sdato-fid: %s: %lld/%lld images, %.1f img/s, ETA %.0f s%s", tty ? "\r" : "", what,
                    (long long)(i + b), (long long)s->n, done / el, el / done * (s->n - done), tty ? "   " : "\n");
    }
    if (tty) fprintf(stderr, "\n");
    free(x);
    free(f);
    if (keep && !st) *keep = all;
    else free(all);
    return st;
}

// Fills o: 1 go on, 0 stop with status 0 (--help), -1 a usage error (reported).
static int parse(int argc, char** argv, options* o) {
    *o = (options){.batch = 16, .kid_subsets = 100, .kid_subset_size = 1000, .prep = DATO_FID_PREP_PYTORCH_FID};
    dato_arg t[N_OPTIONS];
    options_table(o, t);
    const char* pos[3];
    int n_pos = 0;
    dato_error err;
    if (dato_args_parse(argc, argv, t, N_OPTIONS, pos, 3, &n_pos, &err)) {
        fprintf(stderr, "dato-fid: %s\n", err.msg);
        return -1;
    }
    if (o->help || argc < 2) {
        usage(o->help ? stdout : stderr);
        return o->help ? 0 : -1;
    }
    int sub = n_pos >= 1 && (!strcmp(pos[0], "stats") || !strcmp(pos[0], "score"));
    if (sub && n_pos == 1) o->cmd = pos[0];
    else if (!sub && n_pos == 2) o->paths[0] = pos[0], o->paths[1] = pos[1];
    else {
        fprintf(stderr, "dato-fid: give 'stats' or 'score' with --images, or two paths PATH1 PATH2 (see --help)\n");
        return -1;
    }
    if (o->prep_name && dato_fid_prep_parse(o->prep_name, &o->prep, &err)) {
        fprintf(stderr, "dato-fid: --preprocess: %s\n", err.msg);
        return -1;
    }
    if (o->extractor && !strcmp(o->extractor, "featnet")) {
        if (dato_data_path(o->featnet_dir, sizeof o->featnet_dir, "models/fashion-sd/featnet", &err)) {
            fprintf(stderr, "dato-fid: --extractor featnet: %s\n", err.msg);
            return -1;
        }
    } else if (o->extractor && !strncmp(o->extractor, "featnet:", 8) && o->extractor[8]) {
        snprintf(o->featnet_dir, sizeof o->featnet_dir, "%s", o->extractor + 8);
    } else if (o->extractor && strcmp(o->extractor, "inception")) {
        fprintf(stderr, "dato-fid: --extractor '%s': expected inception, featnet or featnet:DIR\n", o->extractor);
        return -1;
    }
    if (o->featnet_dir[0] && o->weights) {
        fprintf(stderr, "dato-fid: --weights is for inception; featnet reads its folder's model.safetensors\n");
        return -1;
    }
    if (o->cmd) {
        const char* missing = !o->images ? "--images" : !o->weights && !o->featnet_dir[0] ? "--weights"
                              : !strcmp(o->cmd, "stats") && !o->out ? "--out"
                              : !strcmp(o->cmd, "score") && !o->stats ? "--stats" : NULL;
        if (missing) {
            fprintf(stderr, "dato-fid %s: %s is required (see --help)\n", o->cmd, missing);
            return -1;
        }
    } else if (o->images || o->stats || o->out || o->kid_ref) {
        fprintf(stderr, "dato-fid: with two paths, --images, --stats, --out and --kid-ref do not apply (see --help)\n");
        return -1;
    }
    return 1;
}

// Statistics of one side of a two-path comparison: read from a statistics file (.npz, or an .h5
// that dato-fid stats wrote), or computed from an image set through fx (opened on first use).
static dato_status side_stats(const char* path, const options* o, dato_backend* be, dato_feature_extractor* fx,
                              dato_fid_stats* stats, dato_stats_meta* meta, int64_t* n_images, dato_error* err) {
    memset(meta, 0, sizeof *meta);
    *n_images = 0;
    if (has_suffix(path, ".npz")) {
        DATO_TRY(dato_stats_read_npz(path, stats, err));
        snprintf(meta->source, sizeof meta->source, "%s", path);
        meta->extractor[0] = 0; // no metadata: taken as made like the other side (said on stderr)
        return DATO_OK;
    }
    dato_error stats_err = {{0}};
    if ((has_suffix(path, ".h5") || has_suffix(path, ".hdf5")) && !dato_stats_read_h5(path, stats, meta, &stats_err))
        return DATO_OK;
    if (!fx->forward) {
        if (!o->weights && !o->featnet_dir[0] && stats_err.msg[0]) // an .h5 that is not statistics says why
            return dato_fail(err, DATO_ERR_INVALID, "not statistics (%s); as an image set it needs --weights FILE "
                             "(Inception's) or --extractor featnet", stats_err.msg);
        if (!o->weights && !o->featnet_dir[0])
            return dato_fail(err, DATO_ERR_INVALID, "%s is an image set: --weights FILE (Inception's) or --extractor "
                             "featnet is needed to take its features", path);
        DATO_TRY(o->featnet_dir[0] ? dato_extractor_featnet_open(fx, o->featnet_dir, be, err)
                                   : dato_extractor_inception_open(fx, o->weights, o->prep, be, err));
    }
    dato_image_set set;
    dato_feature_stats acc = {0};
    dato_status st = dato_image_set_open(&set, path, o->limit, err);
    int singular = 0;
    if (!st) st = dato_feature_stats_init(&acc, fx->dim, err);
    if (!st) st = extract(fx, &set, o, path, &acc, NULL, err);
    if (!st) st = dato_feature_stats_finalize(&acc, stats, &singular, err);
    if (!st && singular)
        fprintf(stderr, "dato-fid: warning: %s: %lld images <= %d features: the covariance is singular; compare only "
                        "FIDs taken with the same number of images\n", path, (long long)set.n, fx->dim);
    if (!st) {
        snprintf(meta->extractor, sizeof meta->extractor, "%s", fx->name);
        snprintf(meta->weights_hash, sizeof meta->weights_hash, "%s", fx->weights_hash);
        snprintf(meta->preprocessing, sizeof meta->preprocessing, "%s", fx->preprocessing);
        snprintf(meta->source, sizeof meta->source, "%s", path);
        *n_images = set.n;
    }
    dato_feature_stats_free(&acc);
    dato_image_set_close(&set);
    return st;
}

// The FID between two paths, as python -m pytorch_fid PATH1 PATH2.
static int run_two_paths(const options* o, dato_backend* be) {
    dato_error err = {{0}};
    dato_feature_extractor fx = {0};
    dato_fid_stats s[2] = {{0}};
    dato_stats_meta m[2];
    int64_t n[2] = {0};
    int rc = 1;
    dato_status st = DATO_OK;
    for (int i = 0; i < 2 && !st; i++) st = side_stats(o->paths[i], o, be, &fx, &s[i], &m[i], &n[i], &err);
    for (int i = 0; i < 2 && !st; i++) // a side without metadata (.npz) is taken as made like the other
        if (!m[i].extractor[0]) {
            char source[sizeof m[i].source];
            memcpy(source, m[i].source, sizeof source);
            m[i] = m[1 - i];
            memcpy(m[i].source, source, sizeof source);
            fprintf(stderr, "dato-fid: %s carries no metadata: assuming it was made like %s\n", o->paths[i],
                    o->paths[1 - i]);
        }
    dato_fid_result r;
    if (!st) st = dato_stats_fid(&s[0], &m[0], &s[1], &m[1], &r, &err);
    if (st) fprintf(stderr, "dato-fid: %s\n", err.msg);
    else if (o->json) {
        dato_text j;
        if (!dato_text_init(&j, 1024, "json", &err)) {
            dato_text_append(&j, "{\"fid\": %.17g, \"paths\": [", r.fid);
            for (int i = 0; i < 2; i++) {
                dato_text_append_json_string(&j, o->paths[i]);
                dato_text_append(&j, i ? "], \"images\": [" : ", ");
            }
            dato_text_append(&j, "%lld, %lld], \"extractor\": ", (long long)n[0], (long long)n[1]);
            dato_text_append_json_string(&j, m[0].extractor);
            dato_text_append(&j, ", \"preprocessing\": ");
            dato_text_append_json_string(&j, m[0].preprocessing);
            dato_text_append(&j, "}\n");
            if (!j.failed) fputs(j.data, stdout), rc = 0;
            dato_text_free(&j);
        }
    } else {
        printf("FID:  %.6f\n", r.fid);
        rc = 0;
    }
    for (int i = 0; i < 2; i++) dato_fid_stats_free(&s[i]);
    if (fx.destroy) fx.destroy(&fx);
    return rc;
}

int main(int argc, char** argv) {
    options o;
    int pr = parse(argc, argv, &o);
    if (pr <= 0) return pr < 0 ? 2 : 0;
    dato_error err = {{0}};
    dato_backend be;
    if (dato_backend_cpu_init(&be, o.threads, &err)) {
        fprintf(stderr, "dato-fid: %s\n", err.msg);
        return 1;
    }
    if (!o.cmd) {
        int rc = run_two_paths(&o, &be);
        dato_backend_destroy(&be);
        return rc;
    }
    dato_feature_extractor fx = {0};
    dato_image_set set, ref;
    dato_feature_stats acc = {0}, acc_ref = {0};
    dato_fid_stats mine = {0}, theirs = {0};
    float *feat = NULL, *feat_ref = NULL;
    dato_stats_meta meta = {0}, ref_meta = {0};
    int rc = 1, singular = 0;
    memset(&set, 0, sizeof set);
    memset(&ref, 0, sizeof ref);
    dato_status st = o.featnet_dir[0] ? dato_extractor_featnet_open(&fx, o.featnet_dir, &be, &err)
                                      : dato_extractor_inception_open(&fx, o.weights, o.prep, &be, &err);
    if (!st) st = dato_image_set_open(&set, o.images, o.limit, &err);
    if (!st) st = dato_feature_stats_init(&acc, fx.dim, &err);
    snprintf(meta.extractor, sizeof meta.extractor, "%s", fx.name);
    snprintf(meta.weights_hash, sizeof meta.weights_hash, "%s", fx.weights_hash);
    snprintf(meta.preprocessing, sizeof meta.preprocessing, "%s", fx.preprocessing);
    snprintf(meta.source, sizeof meta.source, "%s", o.source ? o.source : o.images);
    if (!st) st = extract(&fx, &set, &o, "images", &acc, o.kid_ref ? &feat : NULL, &err);
    if (!st) st = dato_feature_stats_finalize(&acc, &mine, &singular, &err);
    if (!st && singular)
        fprintf(stderr, "dato-fid: warning: %lld images <= %d features: the covariance is singular; compare only FIDs "
                        "taken with the same number of images\n", (long long)set.n, fx.dim);
    dato_text j = {0};
    if (!st && o.json) st = dato_text_init(&j, 1024, "json", &err);
    if (!st && !strcmp(o.cmd, "stats")) {
        if (!(st = dato_mkdir_parents(o.out, &err))) st = dato_stats_write_h5(o.out, &mine, &meta, &err);
        if (!st && !o.json)
            printf("wrote %s (%lld images, %s preprocessing)\n", o.out, (long long)set.n, meta.preprocessing);
        if (!st && o.json) {
            dato_text_append(&j, "{\"stats\": ");
            dato_text_append_json_string(&j, o.out);
            dato_text_append(&j, ", \"images\": %lld, \"extractor\": ", (long long)set.n);
        }
    } else if (!st) {
        if (has_suffix(o.stats, ".npz")) { // pytorch-fid / ADM statistics carry no metadata: assume ours
            st = dato_stats_read_npz(o.stats, &theirs, &err);
            ref_meta = meta;
            snprintf(ref_meta.source, sizeof ref_meta.source, "%s", o.stats);
            if (!st) fprintf(stderr, "dato-fid: %s carries no metadata: assuming it was made like these images\n", o.stats);
        } else {
            st = dato_stats_read_h5(o.stats, &theirs, &ref_meta, &err);
        }
        dato_fid_result r;
        if (!st) st = dato_stats_fid(&mine, &meta, &theirs, &ref_meta, &r, &err);
        if (!st && !o.json)
            printf("FID %.6f (%lld images vs %s; %s preprocessing)\n", r.fid, (long long)set.n, o.stats,
                   meta.preprocessing);
        if (!st && o.json) {
            dato_text_append(&j, "{\"fid\": %.17g, \"stats\": ", r.fid);
            dato_text_append_json_string(&j, o.stats);
            dato_text_append(&j, ", \"images\": %lld, ", (long long)set.n);
        }
        if (!st && o.kid_ref) {
            st = dato_image_set_open(&ref, o.kid_ref, o.limit, &err);
            if (!st) st = dato_feature_stats_init(&acc_ref, fx.dim, &err);
            if (!st) st = extract(&fx, &ref, &o, "KID reference", &acc_ref, &feat_ref, &err);
            int64_t smaller = set.n < ref.n ? set.n : ref.n;
            int m = o.kid_subset_size < smaller ? o.kid_subset_size : (int)smaller;
            dato_kid_config ko = {.n_subsets = o.kid_subsets, .subset_size = m, .seed = 0};
            dato_kid_result kr;
            if (!st) st = dato_kid(feat, set.n, feat_ref, ref.n, fx.dim, &ko, &kr, &err);
            if (!st && !o.json) printf("KID %.6f +- %.6f (%d subsets of %d)\n", kr.mean, kr.std, o.kid_subsets, m);
            if (!st && o.json)
                dato_text_append(&j, "\"kid\": %.17g, \"kid_std\": %.17g, \"kid_subsets\": %d, \"kid_subset_size\": %d, ",
                                 kr.mean, kr.std, o.kid_subsets, m);
        }
        if (!st && o.json) dato_text_append(&j, "\"extractor\": ");
    }
    if (!st && o.json) {
        dato_text_append_json_string(&j, meta.extractor);
        dato_text_append(&j, ", \"preprocessing\": ");
        dato_text_append_json_string(&j, meta.preprocessing);
        dato_text_append(&j, "}\n");
        if (j.failed) st = dato_fail(&err, DATO_ERR_NOMEM, "--json: out of memory");
        else fputs(j.data, stdout);
    }
    if (st) fprintf(stderr, "dato-fid: %s\n", err.msg);
    else rc = 0;
    if (j.data) dato_text_free(&j);
    free(feat);
    free(feat_ref);
    dato_fid_stats_free(&mine);
    dato_fid_stats_free(&theirs);
    dato_feature_stats_free(&acc);
    dato_feature_stats_free(&acc_ref);
    dato_image_set_close(&set);
    dato_image_set_close(&ref);
    if (fx.destroy) fx.destroy(&fx);
    dato_backend_destroy(&be);
    return rc;
}
