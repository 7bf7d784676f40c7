// What a single file is taken for and the options that override it (engine/models/single_file.h,
// dato_pipeline_options):
// - the model type of name/shape sets equals diffusers' infer_diffusers_model_type
//   (tests/fixtures/single_file/model_types.json);
// - each built-in scheduler config is the hub file the fixture script fed diffusers, and read under
//   every sampler it gives the config diffusers' X.from_config gives (schedulers.json);
// - scheduler_config (a file, a scheduler folder, a diffusers folder) replaces the model's; a bad one
//   is an error naming the file and the field;
// - prediction_type reaches the sampler: the override's latents equal those of a config file that
//   says v_prediction, bit for bit, and differ from epsilon's;
// - a file diffusers takes for a model whose scheduler dato lacks is refused, naming the type;
// - the hints set by name; an unknown name lists the valid ones, a bad value names the range.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_util.h"
#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"

#define FIX "tests/fixtures/single_file/"
#define MODEL "tests/fixtures/pipeline/sd15"

// ---- a tensor source over a name/shape table --------------------------------------------------------

typedef struct {
    dato_st_tensor t[8];
    int n;
} table;

static const dato_st_tensor* table_find(const void* ctx, const char* name) {
    const table* tb = ctx;
    for (int i = 0; i < tb->n; i++)
        if (!strcmp(tb->t[i].name, name)) return &tb->t[i];
    return NULL;
}
static int table_count(const void* ctx) { return ((const table*)ctx)->n; }
static const dato_st_tensor* table_at(const void* ctx, int i) { return &((const table*)ctx)->t[i]; }

static void test_model_types(void) {
    cJSON* root = fixture_json(FIX "model_types.json");
    const cJSON* cases = cJSON_GetObjectItem(root, "cases");
    CHECK(cJSON_GetArraySize(cases) >= 10, "model_types.json: %d cases", cJSON_GetArraySize(cases));
    int agree = 0;
    const cJSON* c;
    cJSON_ArrayForEach(c, cases) {
        table tb = {0};
        const cJSON* t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(c, "tensors")) {
            dato_st_tensor* x = &tb.t[tb.n++];
            x->name = t->string;
            x->ndim = cJSON_GetArraySize(t);
            for (int d = 0; d < x->ndim; d++) x->shape[d] = (int64_t)cJSON_GetArrayItem(t, d)->valuedouble;
        }
        dato_tensor_source src = {.ctx = &tb, .label = "table", .find = table_find, .count = table_count,
                                  .at = table_at};
        const char* want = cJSON_GetObjectItem(c, "model_type")->valuestring;
        const dato_single_file_model* got = dato_single_file_model_infer(&src);
        CHECK(!strcmp(got->type, want), "%s: dato takes it for %s, diffusers for %s",
              cJSON_GetObjectItem(c, "name")->valuestring, got->type, want);
        agree += !strcmp(got->type, want);
    }
    printf("model types: %d of %d cases as diffusers infers them\n", agree, cJSON_GetArraySize(cases));
    cJSON_Delete(root);
}

static void test_builtin_schedulers(void) {
    cJSON* root = fixture_json(FIX "schedulers.json");
    static const char* const spacings[] = {"leading", "trailing", "linspace"};
    static const char* const betas[] = {"scaled_linear", "linear"};
    int n_types = 0, n_configs = 0;
    const cJSON* type;
    cJSON_ArrayForEach(type, cJSON_GetObjectItem(root, "types")) {
        const dato_single_file_model* m = dato_single_file_model_find(type->string);
        CHECK(m && m->scheduler_json, "no built-in scheduler for %s", type->string);
        if (!m || !m->scheduler_json) continue;
        n_types++;
        CHECK(!strcmp(m->repo, cJSON_GetObjectItem(type, "repo")->valuestring), "%s: repo %s", m->type, m->repo);
        CHECK(m->sample_size == cJSON_GetObjectItem(type, "sample_size")->valueint, "%s: sample_size %d", m->type,
              m->sample_size);
        char path[256], *hub = NULL;
        dato_error err;
        snprintf(path, sizeof path, FIX "schedulers/%s/scheduler_config.json", m->type);
        CHECK(dato_read_text_file(path, &hub, 1 << 20, &err) == DATO_OK && !strcmp(hub, m->scheduler_json),
              "%s: the built-in text differs from %s, the file diffusers read", m->type, path);
        free(hub);
        dato_scheduler_config cfg;
        dato_sampler_kind own;
        const char* class_name = cJSON_GetObjectItem(type, "class")->valuestring;
        CHECK(dato_scheduler_config_parse(m->scheduler_json, m->type, NULL, &cfg, &err) == DATO_OK &&
                  dato_sampler_kind_from_class(class_name, &own, &err) == DATO_OK && cfg.kind == own,
              "%s: own class %s", m->type, err.msg);
        const cJSON* want;
        cJSON_ArrayForEach(want, cJSON_GetObjectItem(type, "samplers")) {
            dato_sampler_kind kind;
            CHECK(dato_sampler_kind_parse(want->string, &kind, &err) == DATO_OK, "%s", err.msg);
            CHECK(dato_scheduler_config_parse(m->scheduler_json, m->type, &kind, &cfg, &err) == DATO_OK, "%s",
                  err.msg);
#define FIELD(key) cJSON_GetObjectItem(want, key)
            const cJSON* alpha = FIELD("set_alpha_to_one");
            const cJSON* clip = FIELD("clip_sample");
            int same = cfg.num_train_timesteps == FIELD("num_train_timesteps")->valueint &&
                       cfg.beta_start == FIELD("beta_start")->valuedouble &&
                       cfg.beta_end == FIELD("beta_end")->valuedouble &&
                       !strcmp(betas[cfg.beta_schedule], FIELD("beta_schedule")->valuestring) &&
                       !strcmp(dato_prediction_type_name(cfg.prediction_type), FIELD("prediction_type")->valuestring) &&
                       !strcmp(spacings[cfg.timestep_spacing], FIELD("timestep_spacing")->valuestring) &&
                       cfg.steps_offset == FIELD("steps_offset")->valueint &&
                       (!alpha || cfg.set_alpha_to_one == cJSON_IsTrue(alpha)) &&
                       (!clip || cfg.clip_sample == cJSON_IsTrue(clip));
            CHECK(same, "%s under %s: spacing %s offset %d prediction %s, diffusers: %s %d %s", m->type, want->string,
                  spacings[cfg.timestep_spacing], cfg.steps_offset, dato_prediction_type_name(cfg.prediction_type),
                  FIELD("timestep_spacing")->valuestring, FIELD("steps_offset")->valueint,
                  FIELD("prediction_type")->valuestring);
#undef FIELD
            n_configs++;
        }
    }
    printf("built-in schedulers: %d model types, %d (type, sampler) configs as diffusers' from_config\n", n_types,
           n_configs);
    CHECK(n_types == 3 && n_configs == 15, "%d types, %d configs", n_types, n_configs);
    cJSON_Delete(root);
}

// ---- options on a pipeline ---------------------------------------------------------------------------

// Opens MODEL with opt; expect: the status wanted; on success the sampler kind, prediction and spacing.
static void expect_open(dato_backend* be, const dato_pipeline_options* opt, dato_status want_st, const char* msg_has,
                        const char* msg_has2, int kind, int prediction, int spacing, const char* what) {
    dato_pipeline p;
    dato_error err = {{0}};
    dato_status st = dato_pipeline_open(&p, MODEL, be, opt, &err);
    CHECK(st == want_st, "%s: status %d (%s), expected %d", what, (int)st, err.msg, (int)want_st);
    if (st) {
        CHECK(!msg_has || strstr(err.msg, msg_has), "%s: '%s' lacks '%s'", what, err.msg, msg_has);
        CHECK(!msg_has2 || strstr(err.msg, msg_has2), "%s: '%s' lacks '%s'", what, err.msg, msg_has2);
        printf("%s: %s\n", what, err.msg);
        return;
    }
    CHECK((int)p.sched.kind == kind && (int)p.sched.prediction_type == prediction &&
              (int)p.sched.timestep_spacing == spacing,
          "%s: kind %s, prediction %s, spacing %d", what, dato_sampler_kind_name(p.sched.kind),
          dato_prediction_type_name(p.sched.prediction_type), (int)p.sched.timestep_spacing);
    CHECK(!msg_has || strstr(p.sched_source, msg_has), "%s: source '%s'", what, p.sched_source);
    dato_pipeline_close(&p);
}

static int write_text(const char* path, const char* text) {
    FILE* f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static void test_scheduler_override(dato_backend* be, const char* dir) {
    dato_pipeline_options opt = {0};
    // The folder's own: DDIM with SD1.5's values.
    expect_open(be, &opt, DATO_OK, MODEL "/scheduler", NULL, DATO_SAMPLER_DDIM, DATO_PREDICT_EPSILON,
                DATO_SPACING_LEADING, "folder");
    opt.scheduler_config = FIX "schedulers/xl_base/scheduler_config.json"; // a file
    expect_open(be, &opt, DATO_OK, "xl_base", NULL, DATO_SAMPLER_EULER, DATO_PREDICT_EPSILON, DATO_SPACING_LEADING,
                "--scheduler-config FILE");
    opt.scheduler_config = FIX "schedulers/v2"; // a scheduler folder
    expect_open(be, &opt, DATO_OK, "v2/scheduler_config.json", NULL, DATO_SAMPLER_DDIM, DATO_PREDICT_V,
                DATO_SPACING_LEADING, "--scheduler-config DIR (scheduler folder)");
    opt.scheduler_config = "tests/fixtures/unet/sd2v"; // a diffusers folder: its scheduler/
    expect_open(be, &opt, DATO_OK, "sd2v/scheduler/scheduler_config.json", NULL, DATO_SAMPLER_PNDM, DATO_PREDICT_V,
                DATO_SPACING_LEADING, "--scheduler-config DIR (diffusers folder)");

    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad_scheduler.json", dir);
    CHECK(write_text(bad, "{\"_class_name\": \"EulerDiscreteScheduler\", \"timestep_spacing\": \"sideways\"}"),
          "write %s", bad);
    opt.scheduler_config = bad;
    expect_open(be, &opt, DATO_ERR_UNSUPPORTED, bad, "'timestep_spacing'", 0, 0, 0, "bad field");
    CHECK(write_text(bad, "{\"_class_name\": \"EulerDiscreteScheduler\", \"steps_offset\": 1.5}"), "write %s", bad);
    expect_open(be, &opt, DATO_ERR_FORMAT, bad, "'steps_offset'", 0, 0, 0, "bad type");
    opt.scheduler_config = dir; // a folder with no scheduler_config.json
    expect_open(be, &opt, DATO_ERR_NOT_FOUND, dir, "scheduler_config.json", 0, 0, 0, "folder without one");
    opt.scheduler_config = "tests/fixtures/single_file/missing.json";
    expect_open(be, &opt, DATO_ERR_IO, "missing.json", NULL, 0, 0, 0, "missing file");
    unlink(bad);
}

// Euler, 3 steps, one image of the tiny pipeline: the final latents (1, 4, 8, 8).
static int generate(dato_backend* be, const dato_pipeline_options* opt, float* out) {
    dato_pipeline p;
    dato_error err;
    if (dato_pipeline_open(&p, MODEL, be, opt, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    const char* prompt = "a photo of a cat";
    dato_conditioning cond;
    int ok = dato_pipeline_encode(&p, &prompt, NULL, 1, 16, 16, &cond, &err) == DATO_OK;
    dato_generate_params gp = {.steps = 3, .sampler = DATO_SAMPLER_EULER, .guidance = 7.5f, .seed = 7, .height = 8,
                               .width = 8, .cond = &cond};
    ok = ok && dato_pipeline_generate(&p, &gp, out, &err) == DATO_OK;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    dato_conditioning_free(&cond);
    dato_pipeline_close(&p);
    return ok;
}

static void test_prediction_override(dato_backend* be, const char* dir) {
    char vfile[512];
    snprintf(vfile, sizeof vfile, "%s/v_scheduler.json", dir); // the folder's config, saying v_prediction
    char* text = NULL;
    dato_error err;
    CHECK(dato_read_text_file(MODEL "/scheduler/scheduler_config.json", &text, 1 << 20, &err) == DATO_OK, "%s",
          err.msg);
    char* eps = text ? strstr(text, "\"epsilon\"") : NULL;
    char v_text[4096] = "";
    if (eps) snprintf(v_text, sizeof v_text, "%.*s\"v_prediction\"%s", (int)(eps - text), text,
                      eps + strlen("\"epsilon\""));
    free(text);
    CHECK(eps && write_text(vfile, v_text), "the folder's config names epsilon; %s written", vfile);

    dato_pipeline_options over = {.prediction_type = "v_prediction"}, file = {.scheduler_config = vfile}, none = {0};
    dato_pipeline p;
    CHECK(dato_pipeline_open(&p, MODEL, be, &over, &err) == DATO_OK, "%s", err.msg);
    dato_scheduler_config euler;
    CHECK(dato_pipeline_scheduler(&p, DATO_SAMPLER_EULER, &euler, &err) == DATO_OK, "%s", err.msg);
    CHECK(p.sched.prediction_type == DATO_PREDICT_V && euler.prediction_type == DATO_PREDICT_V &&
              euler.kind == DATO_SAMPLER_EULER && euler.timestep_spacing == DATO_SPACING_LEADING,
          "override: %s, under euler %s", dato_prediction_type_name(p.sched.prediction_type),
          dato_prediction_type_name(euler.prediction_type));
    dato_pipeline_close(&p);

    float a[256], b[256], c[256]; // (1, 4, 8, 8)
    CHECK(generate(be, &over, a) && generate(be, &file, b) && generate(be, &none, c), "generation failed");
    double vs_file = test_max_abs_diff(a, b, 256), vs_eps = test_max_abs_diff(a, c, 256);
    printf("prediction_type v_prediction: max |diff| vs a v_prediction config %g (tol 0), vs epsilon %g (> 1e-2)\n",
           vs_file, vs_eps);
    CHECK(vs_file == 0 && vs_eps > 1e-2, "override %g from the file's v, %g from epsilon", vs_file, vs_eps);

    over.prediction_type = "x_prediction";
    expect_open(be, &over, DATO_ERR_INVALID, "x_prediction", "epsilon or v_prediction", 0, 0, 0, "bad prediction");
    unlink(vfile);
}

// A file diffusers takes for an inpainting model (9 input channels): dato carries no scheduler for it.
static void test_unsupported_type(dato_backend* be, const char* dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/inpainting.safetensors", dir);
    float w[32 * 9 * 3 * 3] = {0};
    int64_t shape[4] = {32, 9, 3, 3};
    dato_st_write_entry e = {.name = "model.diffusion_model.input_blocks.0.0.weight", .dtype = DATO_F32, .ndim = 4,
                             .shape = shape, .data = w};
    dato_error err;
    CHECK(dato_safetensors_write(path, &e, 1, NULL, &err) == DATO_OK, "%s", err.msg);
    dato_pipeline p;
    dato_status st = dato_pipeline_open(&p, path, be, NULL, &err);
    printf("inpainting file: %s\n", st ? err.msg : "opened");
    CHECK(st == DATO_ERR_UNSUPPORTED && strstr(err.msg, path) && strstr(err.msg, "'inpainting'") &&
              strstr(err.msg, "stable-diffusion-v1-5/stable-diffusion-inpainting"),
          "status %d: %s", (int)st, err.msg);
    unlink(path);
}

// ---- hints by name -----------------------------------------------------------------------------------

static void test_hints(void) {
    int n = 0;
    const dato_single_file_hint* table = dato_single_file_hint_table(&n);
    CHECK(n == 12, "%d hints", n);
    dato_error err;
    // Every row: a valid value sets its field, and names are unique.
    for (int i = 0; i < n; i++) {
        dato_single_file_hints h = {0}, zero = {0};
        char v[32];
        if (table[i].kind == DATO_HINT_ACT) snprintf(v, sizeof v, "gelu");
        else snprintf(v, sizeof v, "%.10g", table[i].max);
        CHECK(dato_single_file_hint_set(&h, table[i].name, v, &err) == DATO_OK && memcmp(&h, &zero, sizeof h) != 0,
              "%s %s: %s", table[i].name, v, err.msg);
        CHECK(table[i].help[0] && table[i].value[0], "%s: no help", table[i].name);
        for (int j = 0; j < i; j++) CHECK(strcmp(table[i].name, table[j].name), "%s twice", table[i].name);
    }
    dato_single_file_hints h = {0};
    CHECK(dato_single_file_hint_set(&h, "unet-attention-heads", "8", &err) == DATO_OK && h.unet.heads[0] == 8 &&
              h.unet.heads[3] == 8,
          "one value for every level: %d %d", h.unet.heads[0], h.unet.heads[3]);
    CHECK(dato_single_file_hint_set(&h, "unet-attention-heads", "2,4", &err) == DATO_OK && h.unet.heads[0] == 2 &&
              h.unet.heads[1] == 4 && h.unet.heads[2] == 0,
          "per level: %d %d %d", h.unet.heads[0], h.unet.heads[1], h.unet.heads[2]);
    CHECK(dato_single_file_hint_set(&h, "text-encoder-2-hidden-act", "quick_gelu", &err) == DATO_OK &&
              h.text[1].act == DATO_TE_ACT_QUICK_GELU && h.text[0].act == 0,
          "second encoder's act");
    CHECK(dato_single_file_hint_set(&h, "text-encoder-layer-norm-eps", "1e-6", &err) == DATO_OK &&
              h.text[0].eps == 1e-6f,
          "eps %g", h.text[0].eps);
    CHECK(dato_single_file_hint_set(&h, "vae-norm-num-groups", "4", &err) == DATO_OK && h.vae_norm_groups == 4,
          "vae groups");

    // An unknown name lists every valid one.
    dato_status st = dato_single_file_hint_set(&h, "unet-heads", "8", &err);
    int all = 1;
    for (int i = 0; i < n; i++) all &= strstr(err.msg, table[i].name) != NULL;
    printf("unknown hint: %s\n", err.msg);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "'unet-heads'") && all, "%s", err.msg);

    // A bad value names the form and the range, and changes nothing.
    const char* bad[][3] = {
        {"unet-norm-num-groups", "0", "an integer in [1, 4096]"},
        {"unet-norm-num-groups", "32x", "an integer in [1, 4096]"},
        {"unet-norm-num-groups", "", "an integer in [1, 4096]"},
        {"unet-attention-heads", "1,2,3,4,5", "1 to 4 comma-separated integers in [1, 4096]"},
        {"unet-attention-heads", "8,,8", "1 to 4 comma-separated integers"},
        {"text-encoder-layer-norm-eps", "-1", "a number in [1e-12, 1]"},
        {"text-encoder-eos-token-id", "99999999999", "an integer in [1, 2147483647]"},
        {"text-encoder-hidden-act", "relu", "quick_gelu or gelu"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dato_single_file_hints before = h;
        st = dato_single_file_hint_set(&h, bad[i][0], bad[i][1], &err);
        CHECK(st == DATO_ERR_INVALID && strstr(err.msg, bad[i][0]) && strstr(err.msg, bad[i][2]) &&
                  !memcmp(&before, &h, sizeof h),
              "%s '%s': %s", bad[i][0], bad[i][1], err.msg);
    }
    printf("bad hint value: %s\n", err.msg);
}

int main(void) {
    test_model_types();
    test_builtin_schedulers();
    test_hints();
    dato_backend be;
    dato_error err;
    if (dato_backend_cpu_init(&be, 0, &err)) return 1;
    char dir[] = "/tmp/dato-single-opts-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    test_scheduler_override(&be, dir);
    test_prediction_override(&be, dir);
    test_unsupported_type(&be, dir);
    rmdir(dir);
    dato_backend_destroy(&be);
    return test_summary();
}
