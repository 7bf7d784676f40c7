// The command-line tools as diffusers and pytorch-fid users call them: dato-generate with torch's
// noise reproduces diffusers' image for generator=torch.Generator().manual_seed(3) (DDIM and Euler,
// within 2/255); a --latents file gives the same image; --height/--width; images independent of
// --batch; a schedule file's steps and sampler are the run's, and a --steps that disagrees is refused
// before the model loads with the flag to use; folders of --out are created, also from a fresh
// working folder; PNGs carry A1111's "parameters"; "--name=value" and diffusers' option names;
// dato-fid with two paths (as python -m pytorch_fid A B) and --json; no checkout path in --help;
// --prediction-type and the single-file hint flags checked before the model loads.
// argv[1] is dato-generate; the other tools are beside it.
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "image.h"
#include "pipeline.h"
#include "schedule.h"
#include "test_util.h"

#define SD15 "tests/fixtures/pipeline/sd15"
#define NOISE "tests/fixtures/noise/"

static char tmp[] = "/tmp/dato-cli-XXXXXX";
static char generate[4096], fid[4096], search[4096], repo[4096];

// Runs a shell command with stdout and stderr captured into tmp/out.txt and tmp/err.txt; its exit status.
static int run(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char* fmt, ...) {
    char cmd[8192], full[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s >%s/out.txt 2>%s/err.txt", cmd, tmp, tmp);
    int rc = system(full);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The text of tmp/<name> (static buffer).
static const char* captured(const char* name) {
    static char buf[1 << 16];
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    size_t n = 0;
    unsigned char* b = read_bytes(path, &n);
    n = b && n < sizeof buf ? n : 0;
    if (b) memcpy(buf, b, n);
    buf[n] = 0;
    free(b);
    return buf;
}

static int file_has(const char* path, const char* needle) {
    size_t n = 0;
    unsigned char* b = read_bytes(path, &n);
    int found = 0;
    for (size_t i = 0; b && !found && i + strlen(needle) <= n; i++) found = !memcmp(b + i, needle, strlen(needle));
    free(b);
    return found;
}

static uint8_t* read_png(const char* path, int* h, int* w) {
    uint8_t* px = NULL;
    int c = 0;
    dato_error err;
    if (dato_png_read(path, &px, h, w, &c, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    return px;
}

static int max_diff(const uint8_t* a, const uint8_t* b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) m = abs(a[i] - b[i]) > m ? abs(a[i] - b[i]) : m;
    return m;
}

// The largest pixel difference between tmp/<a> and tmp/<b> (RGB PNGs of one size), or -1 if they
// cannot be read or differ in size.
static int png_diff(const char* a, const char* b) {
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s/%s", tmp, a);
    snprintf(pb, sizeof pb, "%s/%s", tmp, b);
    int h1 = 0, w1 = 0, h2 = 0, w2 = 0;
    uint8_t *x = read_png(pa, &h1, &w1), *y = read_png(pb, &h2, &w2);
    int d = x && y && h1 == h2 && w1 == w2 ? max_diff(x, y, (size_t)h1 * w1 * 3) : -1;
    free(x);
    free(y);
    return d;
}

// diffusers' image for seed 3 (tests/fixtures/noise/parity.*) against dato-generate --noise torch-avx2.
static void torch_noise_matches_diffusers(void) {
    dato_safetensors st;
    dato_error err;
    if (dato_safetensors_open(&st, NOISE "parity.safetensors", &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const char* cases[][2] = {{"ddim", "ddim_image_u8"}, {"euler", "euler_image_u8"}};
    for (int k = 0; k < 2; k++) {
        size_t n = 0;
        uint8_t* ref = NULL;
        const dato_st_tensor* t = dato_safetensors_find(&st, cases[k][1]);
        if (t && (ref = malloc((size_t)t->numel))) memcpy(ref, t->data, (size_t)t->numel), n = (size_t)t->numel;
        CHECK(run("%s --model " SD15 " --prompt \"a photo of a cat\" --seed 3 --noise torch-avx2 --steps 10 "
                  "--guidance-scale 7.5 --sampler %s --out %s/torch_%s.png --threads 2",
                  generate, cases[k][0], tmp, cases[k][0]) == 0,
              "%s: %s", cases[k][0], captured("err.txt"));
        char path[4200];
        snprintf(path, sizeof path, "%s/torch_%s.png", tmp, cases[k][0]);
        int h = 0, w = 0;
        uint8_t* px = read_png(path, &h, &w);
        int d = px && ref && n == (size_t)h * w * 3 ? max_diff(px, ref, n) : 256;
        printf("--noise torch-avx2 --seed 3 --sampler %s: max diff vs diffusers %d/255\n", cases[k][0], d);
        CHECK(d <= 2, "%s: %d/255 from diffusers' image (2 allowed)", cases[k][0], d);
        CHECK(file_has(path, k ? "Steps: 10, Sampler: Euler, " : "Steps: 10, Sampler: DDIM, "),
              "%s: no A1111 parameters text", path);
        CHECK(file_has(path, "Seed: 3, Size: 16x16"), "%s: no seed and size in the parameters", path);
        free(px);
        free(ref);
    }
    dato_safetensors_close(&st);
    // The same noise from a file: the same image, bit for bit.
    CHECK(run("%s --model " SD15 " --prompt \"a photo of a cat\" --latents " NOISE "seed3_f32.npy --steps 10 "
              "--sampler ddim --out %s/file.png --threads 2", generate, tmp) == 0, "--latents: %s", captured("err.txt"));
    int d = png_diff("torch_ddim.png", "file.png");
    printf("--latents seed3_f32.npy vs --noise torch-avx2: max diff %d/255\n", d);
    CHECK(d == 0, "--latents gives %d/255 from the same noise drawn by --noise torch-avx2", d);
    CHECK(run("%s --model " SD15 " --prompt cat --latents " NOISE "seed3_f32.npy --num-images-per-prompt 2 --steps 2 "
              "--out %s/f2.png", generate, tmp) == 1, "a latents file of the wrong shape must be refused");
    CHECK(strstr(captured("err.txt"), "seed3_f32.npy") && strstr(captured("err.txt"), "(2, 4, 8, 8)"),
          "a latents file of the wrong shape must be named with the expected shape: %s", captured("err.txt"));
}

// Images do not depend on --batch; --height/--width; the schedule file's steps and sampler.
static void generate_options(void) {
    CHECK(run("%s --model " SD15 " --prompt cat --steps=3 --sampler ddim --num-images-per-prompt 3 --batch 3 "
              "--out %s/b3/x.png", generate, tmp) == 0, "%s", captured("err.txt"));
    CHECK(run("%s --model " SD15 " --prompt cat --steps=3 --sampler ddim --num-images-per-prompt 3 --batch 2 "
              "--out %s/b2/x.png", generate, tmp) == 0, "%s", captured("err.txt"));
    int worst = 0;
    for (int i = 0; i < 3; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "b3/x-0-%d.png", i);
        snprintf(b, sizeof b, "b2/x-0-%d.png", i);
        int d = png_diff(a, b);
        worst = d < 0 ? 256 : d > worst ? d : worst;
    }
    printf("--batch 2 vs --batch 3: max diff %d/255 over 3 images\n", worst);
    CHECK(worst == 0, "images depend on --batch (%d/255)", worst);

    CHECK(run("%s --model " SD15 " --prompt cat --steps 2 --height 16 --width 32 --out %s/wide.png", generate, tmp) == 0,
          "%s", captured("err.txt"));
    char path[4200];
    snprintf(path, sizeof path, "%s/wide.png", tmp);
    int h = 0, w = 0;
    free(read_png(path, &h, &w));
    CHECK(h == 16 && w == 32, "--height 16 --width 32 gave %dx%d (w x h)", w, h);

    // A schedule file made for 5 DDIM steps: its steps and sampler are the run's.
    dato_pipeline p;
    dato_backend be;
    dato_error err;
    dato_schedule s;
    int ok = !dato_backend_cpu_init(&be, 1, &err) && !dato_pipeline_open(&p, SD15, &be, NULL, &err);
    CHECK(ok, "%s", err.msg);
    if (!ok) return;
    ok = !dato_schedule_preset(&s, "deepcache:2", 5, p.unet.n_branches, &err);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    snprintf(s.sampler, sizeof s.sampler, "ddim");
    snprintf(path, sizeof path, "%s/five.json", tmp);
    CHECK(ok && !dato_schedule_save(&s, path, &err), "%s", err.msg);
    CHECK(run("%s --model " SD15 " --prompt cat --schedule %s --steps 7 --out %s/s.png", generate, path, tmp) == 2,
          "--steps 7 with a 5-step schedule must be refused");
    const char* e = captured("err.txt");
    CHECK(strstr(e, "made for 5 steps of ddim") && strstr(e, "--steps 5") && !strstr(e, "loaded"),
          "the refusal must come before the model loads and say --steps 5: %s", e);
    CHECK(run("%s --model " SD15 " --prompt cat --schedule %s --out %s/s.png", generate, path, tmp) == 0, "%s",
          captured("err.txt"));
    snprintf(path, sizeof path, "%s/s.png", tmp);
    CHECK(file_has(path, "Steps: 5, Sampler: DDIM"), "the schedule's steps and sampler are not the run's");
}

// The default --out from a fresh folder (results/ created), and the usage conventions of all tools.
static void conventions(void) {
    CHECK(run("mkdir -p %s/fresh && cd %s/fresh && %s --model %s/" SD15 " --prompt cat --steps 2", tmp, tmp, generate,
              repo) == 0, "from a fresh folder: %s", captured("err.txt"));
    char path[4200];
    snprintf(path, sizeof path, "%s/fresh/results/dato-generate.png", tmp);
    CHECK(access(path, F_OK) == 0, "%s was not written", path);
    CHECK(run("%s --pop=3", search) == 2 && strstr(captured("err.txt"), "--pop: '3' is not an integer in 4..4096"),
          "dato-search --pop=3: %s", captured("err.txt"));
    CHECK(run("%s --prompt cat --bogus 1", generate) == 2 && strstr(captured("err.txt"), "unknown option '--bogus'"),
          "unknown option: %s", captured("err.txt"));
    // Single-file options: checked before the model loads; the prediction type reaches the sampler.
    CHECK(run("%s --prompt cat --prediction-type vee", generate) == 2 &&
              strstr(captured("err.txt"), "--prediction-type") && strstr(captured("err.txt"), "v_prediction"),
          "a bad --prediction-type must name the accepted values: %s", captured("err.txt"));
    CHECK(run("%s --prompt cat --unet-norm-num-groups x", generate) == 2 &&
              strstr(captured("err.txt"), "--unet-norm-num-groups"),
          "a bad hint must name its flag: %s", captured("err.txt"));
    CHECK(run("%s --model " SD15 " --prompt cat --steps 3 --sampler ddim --out %s/eps.png && %s --model " SD15
              " --prompt cat --steps 3 --sampler ddim --prediction-type v_prediction --out %s/v.png",
              generate, tmp, generate, tmp) == 0, "%s", captured("err.txt"));
    int d = png_diff("eps.png", "v.png");
    printf("--prediction-type v_prediction vs the folder's epsilon: max diff %d/255\n", d);
    CHECK(d > 8, "--prediction-type v_prediction did not change the image (%d/255)", d);
    const char* tools[] = {generate, search, fid};
    for (int i = 0; i < 3; i++) {
        CHECK(run("%s --help", tools[i]) == 0, "%s --help", tools[i]);
        CHECK(!strstr(captured("out.txt"), DATO_SOURCE_DIR), "%s --help shows the checkout's path %s", tools[i],
              DATO_SOURCE_DIR);
    }
}

// dato-fid A B (two PNG folders of the default model, its feature network) and against statistics.
static void fid_two_paths(void) {
    CHECK(run("%s --prompt \"a sneaker\" --steps 4 --num-images-per-prompt 6 --seed 1 --out %s/A/a.png && "
              "%s --prompt \"a shirt\" --steps 4 --num-images-per-prompt 6 --seed 2 --out %s/B/b.png",
              generate, tmp, generate, tmp) == 0, "%s", captured("err.txt"));
    CHECK(run("%s %s/A %s/B --extractor featnet --json", fid, tmp, tmp) == 0, "%s", captured("err.txt"));
    cJSON* js = cJSON_Parse(captured("out.txt"));
    double ab = js && cJSON_IsNumber(cJSON_GetObjectItem(js, "fid")) ? cJSON_GetObjectItem(js, "fid")->valuedouble : -1;
    const cJSON* imgs = js ? cJSON_GetObjectItem(js, "images") : NULL;
    CHECK(ab > 0 && cJSON_GetArraySize(imgs) == 2 && cJSON_GetArrayItem(imgs, 0)->valueint == 6,
          "--json: %s", captured("out.txt"));
    cJSON_Delete(js);
    CHECK(run("%s stats --images %s/A --extractor featnet --out %s/stats/a.h5 && %s %s/B %s/stats/a.h5 --extractor "
              "featnet", fid, tmp, tmp, fid, tmp, tmp) == 0, "%s", captured("err.txt"));
    double ba = -1;
    CHECK(sscanf(captured("out.txt"), "FID: %lf", &ba) == 1, "pytorch-fid's output line: %s", captured("out.txt"));
    printf("dato-fid A B %.6f, B A.h5 %.6f\n", ab, ba);
    CHECK(fabs(ab - ba) <= 1e-6 * ab, "FID(A, B) %.9g vs FID(B, stats of A) %.9g", ab, ba);
}

int main(int argc, char** argv) {
    if (argc < 2 || !mkdtemp(tmp) || !getcwd(repo, sizeof repo)) {
        fprintf(stderr, "usage: test_cli_interop DATO_GENERATE (run from the source tree)\n");
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    const char* bin = dirname(dir);
    snprintf(generate, sizeof generate, "OMP_WAIT_POLICY=PASSIVE %s", argv[1]);
    snprintf(fid, sizeof fid, "%s/dato-fid", bin);
    snprintf(search, sizeof search, "%s/dato-search", bin);
    torch_noise_matches_diffusers();
    generate_options();
    conventions();
    fid_two_paths();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    return test_summary();
}
