// dato-search: NSGA-II over DaTo schedules (cache depth, prune ratio per step) of one model,
// against latency and FID, with a crash-safe checkpoint after every generation.
//
//   dato-search --pop 32 --gens 50                 # the embedded default model
//   dato-search --model sd-v1-5/ --fid-weights pt_inception-2015-12-05-6726825d.pth --prompts coco.txt
//       --ref fid_stats_coco.npz --clip clip-vit-large-patch14/ --size 512 --backend cuda
//   dato-search --resume results/<run>/checkpoint.h5 --gens 80
//   mpirun -np 8 dato-search --pop 32 --gens 50     # evaluations spread over 8 ranks
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_defaults.h"
#include "sampler.h"
#include "search_run.h"
#ifdef DATO_HAVE_CUDA
#include "backend_cuda.h"
#include "cuda_device.h"
#endif

static void usage(FILE* f) {
    fprintf(f,
            "usage: dato-search [options]\n"
            "       dato-search --resume RUN/checkpoint.h5 [--gens N] [--final-images M] [--confirm-images C]\n"
            "                       [--pairs N] [--timing-images N] [--bootstrap B] [--threads N] [--device N]\n"
            "\n"
            "Searches per-step DaTo schedules (cache depth, token prune ratio) of a model with NSGA-II,\n"
            "minimizing latency and a quality objective; re-scores the front with FID and 95%% intervals,\n"
            "re-measures its latency as paired ratios against the baseline, drops what that shows dominated,\n"
            "confirms the picks beside the presets on fresh images, and writes the front, its schedules\n"
            "and a report.\n"
            "\n"
            "  dato-search --pop 32 --gens 50                       the embedded default model\n"
            "  dato-search --model sd-v1-5/ --fid-weights pt_inception-2015-12-05-6726825d.pth \\\n"
            "      --prompts coco_captions.txt --ref fid_stats_coco.npz --clip clip-vit-large-patch14/ \\\n"
            "      --size 512 --steps 50 --backend cuda              a Stable Diffusion model (docs/EVALUATION.md)\n"
            "\n"
            "  --model DIR|FILE     the model: a diffusers folder or an LDM single file (SD1.x, SD2.x, SDXL;\n"
            "                       default: the embedded models/fashion-sd, or $DATO_DEFAULT_MODEL)\n"
            "  --height H, --width W, --size S  image size in pixels, non-square allowed: multiples of 64 for SD\n"
            "                       (the VAE factor times the UNet's downsampling); --size sets both\n"
            "                       (default: the model's sample size)\n"
            "  --pop N              population size (default 32)\n"
            "  --gens N             generations (default 50)\n"
            "  --images N           images per evaluation, spread over the prompts in order: each gets N / P,\n"
            "                       the first N %% P one more (default 10)\n"
            "  --screen-images K    multi-fidelity: each new candidate is scored first on K of the images (the\n"
            "                       first of each prompt), and only the best --promote fraction of them (by\n"
            "                       non-dominated rank, then crowding) on all --images; 0: all on all\n"
            "                       (default: --images / 5 from 10 images up, else 0)\n"
            "  --promote F          the fraction promoted from the screening (default 0.25)\n"
            "  --final-images M     images per schedule when the archive's front and the presets are re-scored,\n"
            "                       with 95%% intervals over images (default 200)\n"
            "  --confirm-images C   fresh images on which the picks (knee, fastest within +10%% FID) are\n"
            "                       confirmed beside the baseline and every preset (default 1000; 0: none)\n"
            "  --pairs N            interleaved baseline/schedule timing pairs behind every final speedup,\n"
            "                       the median reported with its spread (default 5)\n"
            "  --timing-images N    images per timed call in those pairs (default 2)\n"
            "  --bootstrap B        replicates behind each 95%% interval: bootstrap resamples for the teacher\n"
            "                       distance and CLIP score, random halves for FID (default 200)\n"
            "  --prompts FILE       one prompt per line, UTF-8, any count, e.g. COCO captions (default: the\n"
            "                       model's dato.json eval_prompts)\n"
            "  --extractor featnet|inception  the features quality is scored on: the feature network the model\n"
            "                       ships for its domain (default where there is one), or pytorch-fid's\n"
            "                       Inception-v3 pool3 (2048-d; the FID of papers; images resized as pytorch-fid)\n"
            "  --fid-weights FILE   Inception's weights: pt_inception-2015-12-05-6726825d.pth, or its state dict\n"
            "                       as .safetensors (implies --extractor inception)\n"
            "  --preprocess MODE    Inception's input: pytorch-fid (default), tf or clean (clean-fid), as dato-fid\n"
            "  --objective teacher|fid|clip  quality objective of the search: the mean squared feature distance\n"
            "                       of each image to the baseline's image from the same prompt and noise\n"
            "                       (default: low variance at small --images, see docs/SEARCH.md), FID\n"
            "                       against --ref, or 100 - the CLIP score (needs --clip). The final front is\n"
            "                       re-scored with FID (and CLIP score) either way.\n"
            "  --clip DIR           a CLIP model folder in transformers' layout (DaTo uses ViT-L/14): the CLIP\n"
            "                       score of torchmetrics' CLIPScore for every evaluation and front member\n"
            "  --ref FILE|baseline  FID reference: real-data statistics (dato-fid stats HDF5, or a pytorch-fid /\n"
            "                       clean-fid .npz, taken as made with the same extractor), or the\n"
            "                       baseline schedule's own images on the same prompts and seeds\n"
            "                       (default: the model's reference statistics if it ships them, else baseline)\n"
            "  --latency table|measured  latency objective: predicted from a per-call cost table calibrated\n"
            "                       at the start (default; deterministic), or measured per evaluation.\n"
            "                       The final front is always re-measured.\n"
            "  --latency-table FILE reuse this calibrated table (e.g. another run's latency_table.json)\n"
            "                       instead of calibrating: runs that share a table and a seed give the\n"
            "                       same front bit for bit\n"
            "  --steps N            sampler steps (default: the model's dato.json, else 25)\n"
            "  --guidance G         guidance scale (default: the model's dato.json, else 7.5)\n"
            "  --sampler NAME       ddim | pndm | dpmpp-2m | euler | euler-a (default: the model's)\n"
            "  --batch B            images per generate call (default: the most, up to --images and 64, whose\n"
            "                       UNet workspace fits the device's free memory; said at the start)\n"
            "  --seed S             seed of every random choice (default 0)\n"
            "  --out DIR            run folder (default results/<model>-pop<P>-gens<G>-seed<S>)\n"
            "  --resume FILE        continue a run from its checkpoint (the run folder is FILE's folder)\n"
            "  --backend cpu|cuda   where the networks run (default cpu). Under MPI each rank takes the\n"
            "                       GPU of its local rank: one rank per GPU on each host\n"
            "  --device N           the CUDA device of every rank instead (taken modulo the devices)\n"
            "  --threads N          CPU threads per rank (default: all the cores, split among the ranks on a\n"
            "                       host); above 4, the images' last bits, and so the front, depend on it\n"
            "  --rank-timeout S     under MPI: a rank silent this long on one task stops the run (default 600)\n"
            "  --quiet              no progress output\n"
            "  --log-json           one JSON object per generation on stdout\n"
            "  --help               this text\n"
            "\n"
            "Outputs in the run folder: checkpoint.h5 (after every generation), latency_table.json,\n"
            "front.csv, confirm.csv, front.json, front.svg, report.html, schedules/front_<i>.json, grids/*.png,\n"
            "evaluations.csv and generations.csv (where and how long each evaluation ran).\n"
            "Export a schedule with dato-export RUN/checkpoint.h5 --pick knee.\n"
            "\n"
            "Under MPI (mpirun -np K dato-search ...) rank 0 runs the search and every rank evaluates;\n"
            "with table latency and at most 4 threads per rank (or the same number) the front is the\n"
            "one-process front, bit for bit.\n"
            "Every rank must see the model, prompts and reference at the same paths; see\n"
            "docs/DISTRIBUTED.md.%s\n",
            dato_eval_pool_have_mpi() ? "" : "\nThis build has no MPI (rebuild with libopenmpi-dev installed).");
}

#ifdef DATO_HAVE_CUDA
// The search's CUDA backend on device (modulo the devices present).
static dato_status open_cuda(int device, dato_backend* be, dato_error* err) {
    int n = dato_cuda_device_count();
    if (n < 1) return dato_fail(err, DATO_ERR_UNSUPPORTED, "backend cuda: no CUDA device (or driver) on this host");
    return dato_backend_cuda_init(be, device % n, err);
}
#endif

// Messages come from rank 0 alone: every rank parses the same command line.
static FILE* msg_out;

// Where a run stopped by a signal (Ctrl-C; mpirun ending the job when a rank died) goes on from.
// Checkpoints are replaced atomically, so the last one is whole.
static char stop_note[4500];
static size_t stop_note_len;

static void on_stop_signal(int sig) {
    ssize_t n = write(STDERR_FILENO, stop_note, stop_note_len);
    (void)n;
    signal(sig, SIG_DFL);
    raise(sig);
}

static int parse_int(const char* flag, const char* v, int lo, int hi, int* out) {
    char* end = NULL;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(msg_out, "dato-search: %s: '%s' is not an integer in %d..%d\n", flag, v, lo, hi);
        return 0;
    }
    *out = (int)x;
    return 1;
}

// Fills o from the command line: -1 when the run should go on, else the exit code.
static int parse_args(int argc, char** argv, dato_search_options* o_, dato_eval_pool* pool, char* cmd, size_t cmd_size,
                      char* run_dir, char* model_dir) {
    dato_search_options o = {.cfg = {.pop = 32, .gens = 50, .images = 10, .screen_images = -1, .promote = 0.25f,
                                     .final_images = 200, .confirm_images = 1000, .pairs = 5, .timing_images = 2,
                                     .bootstrap = 200, .guidance = -1.0f},
                             .device = -1, .confirm_images_override = -1};
    const char *out = NULL, *model = NULL;
    int seed = 0, have_gens = 0, have_final = 0, batch = 0, have_extractor = 0, have_confirm = 0, have_pairs = 0,
        have_timing = 0, have_bootstrap = 0;
    for (int i = 0, n = 0; i < argc && n < (int)cmd_size - 1; i++)
        n += snprintf(cmd + n, cmd_size - n, i ? " %s" : "%s", argv[i]);
    o.command = cmd;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (pool->rank == 0) usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
            continue;
        }
        if (!strcmp(a, "--log-json")) {
            o.log_json = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(msg_out, "dato-search: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char* v = argv[++i];
        int ok = 1;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--pop")) ok = parse_int(a, v, 4, 4096, &o.cfg.pop);
        else if (!strcmp(a, "--gens")) ok = parse_int(a, v, 0, 100000, &o.cfg.gens), have_gens = 1;
        else if (!strcmp(a, "--images")) ok = parse_int(a, v, 2, 1000000, &o.cfg.images);
        else if (!strcmp(a, "--final-images")) ok = parse_int(a, v, 2, 1000000, &o.cfg.final_images), have_final = 1;
        else if (!strcmp(a, "--screen-images")) ok = parse_int(a, v, 0, 1000000, &o.cfg.screen_images);
        else if (!strcmp(a, "--promote")) {
            char* end = NULL;
            o.cfg.promote = strtof(v, &end);
            ok = *v && !*end && o.cfg.promote > 0 && o.cfg.promote <= 1;
            if (!ok) fprintf(msg_out, "dato-search: --promote: '%s' is not a fraction in (0, 1]\n", v);
        }
        else if (!strcmp(a, "--confirm-images")) ok = parse_int(a, v, 0, 1000000, &o.cfg.confirm_images), have_confirm = 1;
        else if (!strcmp(a, "--pairs")) ok = parse_int(a, v, 1, 1000, &o.cfg.pairs), have_pairs = 1;
        else if (!strcmp(a, "--timing-images")) ok = parse_int(a, v, 1, 4096, &o.cfg.timing_images), have_timing = 1;
        else if (!strcmp(a, "--bootstrap")) ok = parse_int(a, v, 10, 100000, &o.cfg.bootstrap), have_bootstrap = 1;
        else if (!strcmp(a, "--steps")) ok = parse_int(a, v, 2, 1000, &o.cfg.steps);
        else if (!strcmp(a, "--height")) ok = parse_int(a, v, 1, 16384, &o.cfg.height);
        else if (!strcmp(a, "--width")) ok = parse_int(a, v, 1, 16384, &o.cfg.width);
        else if (!strcmp(a, "--size")) ok = parse_int(a, v, 1, 16384, &o.cfg.height), o.cfg.width = o.cfg.height;
        else if (!strcmp(a, "--fid-weights")) {
            snprintf(o.cfg.feature_net, sizeof o.cfg.feature_net, "%s", v);
            if (!have_extractor) o.cfg.extractor = DATO_EXTRACTOR_INCEPTION;
        } else if (!strcmp(a, "--extractor")) {
            ok = !strcmp(v, "featnet") || !strcmp(v, "inception");
            if (ok) o.cfg.extractor = !strcmp(v, "inception") ? DATO_EXTRACTOR_INCEPTION : DATO_EXTRACTOR_FEATNET;
            else fprintf(msg_out, "dato-search: --extractor: '%s': expected featnet or inception\n", v);
            have_extractor = 1;
        } else if (!strcmp(a, "--preprocess")) {
            ok = !strcmp(v, "pytorch-fid") || !strcmp(v, "tf") || !strcmp(v, "clean");
            if (ok) snprintf(o.cfg.preprocess, sizeof o.cfg.preprocess, "%s", v);
            else fprintf(msg_out, "dato-search: --preprocess: '%s': expected pytorch-fid, tf or clean\n", v);
        }
        else if (!strcmp(a, "--batch")) ok = parse_int(a, v, 1, 4096, &batch);
        else if (!strcmp(a, "--seed")) ok = parse_int(a, v, 0, 2147483647, &seed);
        else if (!strcmp(a, "--threads")) ok = parse_int(a, v, 1, 1024, &o.cfg.threads);
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--device")) ok = parse_int(a, v, 0, 1023, &o.device);
        else if (!strcmp(a, "--backend")) {
            ok = !strcmp(v, "cpu") || !strcmp(v, "cuda");
            o.cfg.backend = !strcmp(v, "cuda") ? DATO_SEARCH_BACKEND_CUDA : DATO_SEARCH_BACKEND_CPU;
            if (!ok) fprintf(msg_out, "dato-search: --backend: '%s': expected cpu or cuda\n", v);
        }
        else if (!strcmp(a, "--rank-timeout")) {
            char* end = NULL;
            pool->timeout_s = strtod(v, &end);
            ok = *v && !*end && pool->timeout_s >= 1;
            if (!ok) fprintf(msg_out, "dato-search: --rank-timeout: '%s' is not a number of seconds >= 1\n", v);
        }
        else if (!strcmp(a, "--resume")) o.resume = v;
        else if (!strcmp(a, "--latency-table")) o.latency_table = v;
        else if (!strcmp(a, "--prompts")) snprintf(o.cfg.prompts_file, sizeof o.cfg.prompts_file, "%s", v);
        else if (!strcmp(a, "--sampler")) snprintf(o.cfg.sampler, sizeof o.cfg.sampler, "%s", v);
        else if (!strcmp(a, "--guidance")) {
            char* end = NULL;
            o.cfg.guidance = strtof(v, &end);
            ok = *v && !*end && o.cfg.guidance >= 0 && o.cfg.guidance <= 100;
            if (!ok) fprintf(msg_out, "dato-search: --guidance: '%s' is not a number in 0..100\n", v);
        } else if (!strcmp(a, "--objective")) {
            ok = !strcmp(v, "teacher") || !strcmp(v, "fid") || !strcmp(v, "clip");
            if (ok) o.cfg.objective = !strcmp(v, "fid") ? DATO_OBJECTIVE_FID : !strcmp(v, "clip") ? DATO_OBJECTIVE_CLIP
                                                                                                  : DATO_OBJECTIVE_TEACHER;
            else fprintf(msg_out, "dato-search: --objective: '%s': expected teacher, fid or clip\n", v);
        } else if (!strcmp(a, "--clip")) {
            snprintf(o.cfg.clip, sizeof o.cfg.clip, "%s", v);
        } else if (!strcmp(a, "--ref")) {
            if (!strcmp(v, "baseline")) o.cfg.ref_mode = DATO_REF_BASELINE;
            else snprintf(o.cfg.ref, sizeof o.cfg.ref, "%s", v);
        } else if (!strcmp(a, "--latency")) {
            ok = !strcmp(v, "table") || !strcmp(v, "measured");
            o.cfg.latency_mode = !strcmp(v, "measured") ? DATO_LATENCY_MEASURED : DATO_LATENCY_TABLE;
            if (!ok) fprintf(msg_out, "dato-search: --latency: '%s': expected table or measured\n", v);
        } else {
            fprintf(msg_out, "dato-search: unknown option %s (see --help)\n", a);
            return 2;
        }
        if (!ok) return 2;
    }
    if (o.cfg.objective == DATO_OBJECTIVE_CLIP && !o.cfg.clip[0] && !o.resume) {
        fprintf(msg_out, "dato-search: --objective clip needs --clip DIR (a CLIP model folder, e.g. "
                         "openai/clip-vit-large-patch14 as transformers saves it)\n");
        return 2;
    }
    if (have_extractor && o.cfg.extractor == DATO_EXTRACTOR_FEATNET && o.cfg.feature_net[0]) {
        fprintf(msg_out, "dato-search: --fid-weights is Inception's: it goes with --extractor inception\n");
        return 2;
    }
    if (o.cfg.sampler[0]) {
        dato_sampler_kind k;
        dato_error err;
        if (dato_sampler_kind_parse(o.cfg.sampler, &k, &err)) {
            fprintf(msg_out, "dato-search: --sampler: %s\n", err.msg);
            return 2;
        }
    }
    if (o.resume) { // the run folder is the checkpoint's; only gens, final images and threads may change
        const char* slash = strrchr(o.resume, '/');
        snprintf(run_dir, 4096, "%.*s", slash ? (int)(slash - o.resume) : 1, slash ? o.resume : ".");
        o.run_dir = run_dir;
        o.gens_override = have_gens ? o.cfg.gens : 0;
        o.final_images_override = have_final ? o.cfg.final_images : 0;
        o.confirm_images_override = have_confirm ? o.cfg.confirm_images : -1;
        o.pairs_override = have_pairs ? o.cfg.pairs : 0;
        o.timing_images_override = have_timing ? o.cfg.timing_images : 0;
        o.bootstrap_override = have_bootstrap ? o.cfg.bootstrap : 0;
        o.threads_override = o.cfg.threads;
        if (have_gens && o.cfg.gens < 1) {
            fprintf(msg_out, "dato-search: --gens must be >= 1 on resume\n");
            return 2;
        }
    } else {
        dato_error err;
        if (!model) {
            if (dato_default_model_dir(model_dir, 4096, &err)) {
                fprintf(msg_out, "dato-search: %s\n", err.msg);
                return 1;
            }
            model = model_dir;
        }
        snprintf(o.cfg.model, sizeof o.cfg.model, "%s", model);
        o.cfg.seed = (uint64_t)seed;
        o.cfg.batch = batch; // 0: chosen to fit the device's memory once the model is open
        if (out) {
            snprintf(run_dir, 4096, "%.4000s", out);
        } else {
            const char* base = strrchr(model, '/');
            base = base && base[1] ? base + 1 : model;
            snprintf(run_dir, 4096, "results/%.200s-pop%d-gens%d-seed%d", base, o.cfg.pop, o.cfg.gens, seed);
        }
        o.run_dir = run_dir;
    }
    *o_ = o;
    return -1;
}

int main(int argc, char** argv) {
    static char cmd[8192], run_dir[4096], model_dir[4096];
    dato_eval_pool pool;
    dato_error err = {{0}};
    msg_out = stderr;
    if (dato_eval_pool_init(&pool, &argc, &argv, &err)) {
        fprintf(stderr, "dato-search: %s\n", err.msg);
        return 1;
    }
    if (pool.rank != 0) msg_out = fopen("/dev/null", "w");
    if (!msg_out) msg_out = stderr;
    dato_search_options o;
    int rc = parse_args(argc, argv, &o, &pool, cmd, sizeof cmd, run_dir, model_dir);
    if (rc < 0) {
        o.command = cmd;
        o.pool = &pool;
#ifdef DATO_HAVE_CUDA
        o.open_cuda = open_cuda;
#endif
        if (pool.rank == 0) {
            snprintf(stop_note, sizeof stop_note, "\ndato-search: stopped by a signal; continue from the last finished "
                     "generation with: dato-search --resume %s/checkpoint.h5\n", run_dir);
            stop_note_len = strlen(stop_note);
            struct sigaction sa = {.sa_handler = on_stop_signal};
            sigaction(SIGTERM, &sa, NULL);
            sigaction(SIGINT, &sa, NULL);
        }
        rc = (pool.rank == 0 ? dato_search_run : dato_search_serve)(&o, &err) ? 1 : 0;
        if (rc) fprintf(stderr, "dato-search: %s\n", err.msg);
    }
    if (dato_eval_pool_close(&pool, &err)) {
        fprintf(stderr, "dato-search: %s\n", err.msg);
        if (pool.hung) {
            fprintf(stderr, "dato-search: ending every rank; continue from the last finished generation with: "
                    "dato-search --resume %s/checkpoint.h5\n", run_dir);
            dato_eval_pool_abort(&pool, 1);
        }
        rc = 1;
    }
    if (msg_out != stderr) fclose(msg_out);
    return rc;
}
