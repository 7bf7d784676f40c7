// Samplers against diffusers (fixtures from tools/make_sampler_fixtures.py): alphas_cumprod
// bit-exact, timesteps exact, input scales and init_noise_sigma to 1e-6, and the latent after every
// model call of a toy-model run within 1e-5 relative. Also: the scheduler_config.json reader and
// its errors, sampler names, PLMS call indexing, run() against manual stepping, reset().
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "fixture.h"
#include "sampler.h"
#include "scheduler_config.h"
#include "test_util.h"

#define FIXTURES "tests/fixtures/samplers/"
#define LATENT_NUMEL 256 // (1, 4, 8, 8)
#ifndef SAMPLER_GRIDS
#define SAMPLER_GRIDS FIXTURES "grids.json"
#endif

// ---- fixture reading --------------------------------------------------------------------------------

static cJSON* read_json(const char* path) {
    cJSON* root = fixture_json(path);
    CHECK(root != NULL, "cannot read %s", path);
    return root;
}

static int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// Decodes a base64 little-endian float32 string ("f32le") into out[0..n). Returns 0 on a size mismatch.
static int decode_f32le(const cJSON* item, float* out, size_t n) {
    if (!cJSON_IsString(item)) return 0;
    const char* s = item->valuestring;
    uint8_t* bytes = (uint8_t*)out;
    size_t len = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        int v = base64_value(*s);
        if (v < 0) return 0;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len == n * sizeof(float)) return 0;
            bytes[len++] = (uint8_t)(acc >> bits);
        }
    }
    return len == n * sizeof(float); // x86: the host is little-endian like the file
}

// ---- the toy model: model_out = 0.3f*model_in + (float)(0.05*cos(t/100)) * B --------------------------

typedef struct {
    float B[LATENT_NUMEL];
} toy_model;

static void toy_forward(const toy_model* m, float timestep, const float* model_in, float* model_out) {
    float c = (float)(0.05 * cos((double)timestep / 100.0));
    for (int i = 0; i < LATENT_NUMEL; i++) model_out[i] = 0.3f * model_in[i] + c * m->B[i];
}

static dato_status toy_fn(void* ctx, const dato_sampler_call* call, const float* model_in, float* model_out,
                          dato_error* err) {
    (void)err;
    toy_forward(ctx, call->timestep, model_in, model_out);
    return DATO_OK;
}

// ---- tests --------------------------------------------------------------------------------------------

static void test_alphas_cumprod(void) {
    cJSON* tables = read_json(FIXTURES "tables.json");
    if (!tables) return;
    const cJSON* table;
    cJSON_ArrayForEach(table, tables) {
        dato_scheduler_config cfg;
        dato_scheduler_config_default(&cfg);
        cfg.beta_start = cJSON_GetObjectItem(table, "beta_start")->valuedouble;
        cfg.beta_end = cJSON_GetObjectItem(table, "beta_end")->valuedouble;
        cfg.beta_schedule = strcmp(cJSON_GetObjectItem(table, "beta_schedule")->valuestring, "linear") == 0
                                ? DATO_BETA_LINEAR
                                : DATO_BETA_SCALED_LINEAR;
        cfg.num_train_timesteps = cJSON_GetObjectItem(table, "num_train_timesteps")->valueint;
        float ref[1000], got[1000];
        CHECK(cfg.num_train_timesteps == 1000, "%s: table size", table->string);
        CHECK(decode_f32le(cJSON_GetObjectItem(table, "alphas_cumprod"), ref, 1000), "%s: decode", table->string);
        dato_error err = {{0}};
        CHECK(dato_alphas_cumprod(&cfg, got, &err) == DATO_OK, "%s", err.msg);
        int mismatches = 0;
        for (int i = 0; i < 1000; i++) mismatches += memcmp(&got[i], &ref[i], sizeof(float)) != 0;
        printf("alphas_cumprod %-28s bit mismatches %d / 1000, max rel err %.3g\n", table->string, mismatches,
               test_rel_err(got, ref, 1000));
        CHECK(mismatches == 0, "%s: alphas_cumprod differs from diffusers in %d entries", table->string, mismatches);
    }
    cJSON_Delete(tables);
}

// One fixture case: config from its scheduler_config, timesteps, scales, and the toy-model run.
static void test_case(const char* name) {
    char path[512];
    snprintf(path, sizeof path, FIXTURES "%s.json", name);
    cJSON* fx = read_json(path);
    if (!fx) return;
    dato_error err = {{0}};

    // The config as diffusers saved it, read with the kind from its _class_name.
    char* config_text = cJSON_PrintUnformatted(cJSON_GetObjectItem(fx, "scheduler_config"));
    dato_scheduler_config cfg;
    dato_status st = dato_scheduler_config_parse(config_text, name, NULL, &cfg, &err);
    free(config_text);
    CHECK(st == DATO_OK, "%s: %s", name, err.msg);
    dato_sampler_kind kind;
    CHECK(dato_sampler_kind_parse(cJSON_GetObjectItem(fx, "sampler")->valuestring, &kind, &err) == DATO_OK, "%s",
          err.msg);
    CHECK(cfg.kind == kind, "%s: _class_name gives %s", name, dato_sampler_kind_name(cfg.kind));
    cfg.eta = cJSON_GetObjectItem(fx, "eta")->valuedouble;
    int steps = cJSON_GetObjectItem(fx, "steps")->valueint;

    dato_sampler* s = NULL;
    if (st != DATO_OK || dato_sampler_create(&s, &cfg, kind, steps, LATENT_NUMEL, &err) != DATO_OK) {
        CHECK(0, "%s: create: %s", name, err.msg);
        cJSON_Delete(fx);
        return;
    }
    const cJSON* timesteps = cJSON_GetObjectItem(fx, "timesteps");
    const cJSON* scales = cJSON_GetObjectItem(fx, "input_scale");
    const cJSON* latents = cJSON_GetObjectItem(fx, "latents");
    const cJSON* noises = cJSON_GetObjectItem(fx, "noise");
    int calls = cJSON_GetArraySize(timesteps);
    CHECK(dato_sampler_num_calls(s) == calls, "%s: %d calls, diffusers %d", name, dato_sampler_num_calls(s), calls);
    if (dato_sampler_num_calls(s) != calls) calls = 0;

    double ref_sigma = cJSON_GetObjectItem(fx, "init_noise_sigma")->valuedouble;
    double sigma_err = fabs(dato_sampler_init_noise_sigma(s) - ref_sigma) / ref_sigma;
    CHECK(sigma_err <= 1e-6, "%s: init_noise_sigma %.9g, diffusers %.9g", name, dato_sampler_init_noise_sigma(s),
          ref_sigma);

    toy_model model;
    float x[LATENT_NUMEL], ref[LATENT_NUMEL], noise[LATENT_NUMEL], model_in[LATENT_NUMEL], model_out[LATENT_NUMEL];
    CHECK(decode_f32le(cJSON_GetObjectItem(fx, "B"), model.B, LATENT_NUMEL), "%s: B", name);
    CHECK(decode_f32le(cJSON_GetObjectItem(fx, "x_init"), x, LATENT_NUMEL), "%s: x_init", name);
    double max_scale_err = 0, max_latent_err = 0;
    int timestep_mismatches = 0;
    for (int c = 0; c < calls; c++) {
        dato_sampler_call info = dato_sampler_call_info(s, c);
        timestep_mismatches += info.timestep != (float)cJSON_GetArrayItem(timesteps, c)->valuedouble;
        double ref_scale = cJSON_GetArrayItem(scales, c)->valuedouble;
        double scale_err = fabs(info.input_scale - ref_scale) / ref_scale;
        max_scale_err = scale_err > max_scale_err ? scale_err : max_scale_err;

        for (int i = 0; i < LATENT_NUMEL; i++) model_in[i] = x[i] * info.input_scale;
        toy_forward(&model, info.timestep, model_in, model_out);
        const float* noise_arg = NULL;
        if (dato_sampler_needs_noise(s, c)) {
            CHECK(cJSON_IsArray(noises) && decode_f32le(cJSON_GetArrayItem(noises, c), noise, LATENT_NUMEL),
                  "%s: call %d needs noise the fixture lacks", name, c);
            noise_arg = noise;
        }
        CHECK(cJSON_IsNull(noises) || noise_arg, "%s: diffusers drew noise at call %d", name, c);
        st = dato_sampler_step(s, c, model_out, x, noise_arg, &err);
        CHECK(st == DATO_OK, "%s: step %d: %s", name, c, err.msg);
        CHECK(decode_f32le(cJSON_GetArrayItem(latents, c), ref, LATENT_NUMEL), "%s: latents[%d]", name, c);
        double e = test_rel_err(x, ref, LATENT_NUMEL);
        if (e > max_latent_err || e != e) max_latent_err = e;
    }
    printf("%-30s %2d calls: timestep mismatches %d, max rel err input_scale %.2g init_noise_sigma %.2g latents %.3g\n",
           name, calls, timestep_mismatches, max_scale_err, sigma_err, max_latent_err);
    CHECK(timestep_mismatches == 0, "%s: %d timesteps differ from diffusers", name, timestep_mismatches);
    CHECK(max_scale_err <= 1e-6, "%s: input_scale rel err %.3g", name, max_scale_err);
    CHECK(max_latent_err <= 1e-5, "%s: latent rel err %.3g > 1e-5", name, max_latent_err);
    dato_sampler_destroy(s);
    cJSON_Delete(fx);
}

static void test_fixture_cases(void) {
    cJSON* index = read_json(FIXTURES "index.json");
    if (!index) return;
    const cJSON* name;
    int n = 0;
    cJSON_ArrayForEach(name, cJSON_GetObjectItem(index, "cases")) {
        test_case(name->valuestring);
        n++;
    }
    CHECK(n >= 15, "only %d fixture cases", n);
    cJSON_Delete(index);
}

// Every sampler x spacing x step count of grids.json: timesteps exact; init_noise_sigma and Euler's
// input scale 1/sqrt(sigma^2 + 1) to 1e-6 relative (not exact: the torch build that made the fixtures
// rounds float32 sqrt off by an ulp for ~1 in 5 inputs, dato's sqrtf is correctly rounded); the step
// counts whose grid diffusers sizes wrongly are refused.
static void test_grids(void) {
    cJSON* grids = read_json(SAMPLER_GRIDS);
    if (!grids) return;
    int runs = 0, refused = 0, timestep_mismatches = 0;
    double max_sigma_err = 0, max_scale_err = 0;
    const cJSON* family;
    cJSON_ArrayForEach(family, grids) {
        char sampler[32], spacing[32];
        CHECK(sscanf(family->string, "%31s %31s", sampler, spacing) == 2, "grid name %s", family->string);
        dato_scheduler_config cfg;
        dato_scheduler_config_default(&cfg);
        dato_error err = {{0}};
        dato_sampler_kind kind;
        CHECK(dato_sampler_kind_parse(sampler, &kind, &err) == DATO_OK, "%s", err.msg);
        char json[128];
        snprintf(json, sizeof json, "{\"_class_name\": \"PNDMScheduler\", \"timestep_spacing\": \"%s\"}", spacing);
        CHECK(dato_scheduler_config_parse(json, family->string, NULL, &cfg, &err) == DATO_OK, "%s", err.msg);
        cfg.beta_start = 0.00085, cfg.beta_end = 0.012, cfg.beta_schedule = DATO_BETA_SCALED_LINEAR;
        cfg.steps_offset = 1;
        const cJSON* run;
        cJSON_ArrayForEach(run, family) {
            int steps = atoi(run->string);
            dato_sampler* s = NULL;
            dato_status st = dato_sampler_create(&s, &cfg, kind, steps, 1, &err);
            if (cJSON_GetObjectItem(run, "unsupported")) {
                CHECK(st == DATO_ERR_UNSUPPORTED, "%s %d steps: diffusers' grid has the wrong size, dato accepts it",
                      family->string, steps);
                refused++;
                dato_sampler_destroy(s);
                continue;
            }
            CHECK(st == DATO_OK, "%s %d steps: %s", family->string, steps, err.msg);
            if (st != DATO_OK) continue;
            runs++;
            const cJSON* timesteps = cJSON_GetObjectItem(run, "timesteps");
            const cJSON* sigmas = cJSON_GetObjectItem(run, "sigmas");
            int calls = cJSON_GetArraySize(timesteps);
            CHECK(dato_sampler_num_calls(s) == calls, "%s %d steps: %d calls, diffusers %d", family->string, steps,
                  dato_sampler_num_calls(s), calls);
            for (int c = 0; c < calls && c < dato_sampler_num_calls(s); c++) {
                dato_sampler_call info = dato_sampler_call_info(s, c);
                timestep_mismatches += info.timestep != (float)cJSON_GetArrayItem(timesteps, c)->valuedouble;
                if (sigmas) {
                    double sigma = cJSON_GetArrayItem(sigmas, c)->valuedouble;
                    double scale = 1.0 / sqrt(sigma * sigma + 1.0);
                    double e = fabs(info.input_scale - scale) / scale;
                    max_scale_err = e > max_scale_err ? e : max_scale_err;
                }
            }
            double ref = cJSON_GetObjectItem(run, "init_noise_sigma")->valuedouble;
            double e = fabs(dato_sampler_init_noise_sigma(s) - ref) / ref;
            max_sigma_err = e > max_sigma_err ? e : max_sigma_err;
            dato_sampler_destroy(s);
        }
    }
    printf("grids: %d plans, %d refused: timestep mismatches %d, max rel err input_scale %.2g init_noise_sigma %.2g\n",
           runs, refused, timestep_mismatches, max_scale_err, max_sigma_err);
    CHECK(runs > 300, "only %d grids", runs);
    CHECK(timestep_mismatches == 0, "%d timesteps differ from diffusers", timestep_mismatches);
    CHECK(max_scale_err <= 1e-6, "input_scale rel err %.3g", max_scale_err);
    CHECK(max_sigma_err <= 1e-6, "init_noise_sigma rel err %.3g", max_sigma_err);
    cJSON_Delete(grids);
}

static void test_plms_calls(void) {
    dato_scheduler_config cfg;
    dato_scheduler_config_default(&cfg);
    dato_sampler* s = NULL;
    dato_error err = {{0}};
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_PNDM, 50, 16, &err) == DATO_OK, "%s", err.msg);
    if (!s) return;
    CHECK(dato_sampler_num_calls(s) == 51, "PLMS 50 steps: %d calls", dato_sampler_num_calls(s));
    dato_sampler_call c0 = dato_sampler_call_info(s, 0), c1 = dato_sampler_call_info(s, 1);
    dato_sampler_call c2 = dato_sampler_call_info(s, 2), last = dato_sampler_call_info(s, 50);
    CHECK(c0.step == 0 && c1.step == 0 && c2.step == 1 && last.step == 49, "steps %d %d %d %d", c0.step, c1.step,
          c2.step, last.step);
    CHECK(c0.timestep == 981 && c1.timestep == 961 && c2.timestep == 961 && last.timestep == 1,
          "timesteps %g %g %g %g (ENGINE.md: 981, 961, 961, ..., 1)", c0.timestep, c1.timestep, c2.timestep,
          last.timestep);
    CHECK(dato_sampler_call_info(s, 51).step == -1 && dato_sampler_call_info(s, -1).step == -1, "bad call index");
    CHECK(c1.input_scale == 1.0f && dato_sampler_init_noise_sigma(s) == 1.0f, "PLMS scales");
    dato_sampler_destroy(s);

    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_PNDM, 1, 16, &err) == DATO_ERR_INVALID, "PLMS with 1 step");
    CHECK(strstr(err.msg, "steps") != NULL, "message: %s", err.msg);
}

// Runs the toy model through run() and through manual step() calls with the same noise stream.
static void test_run_matches_steps(dato_sampler_kind kind, double eta, dato_timestep_spacing spacing, int steps) {
    dato_scheduler_config cfg;
    dato_scheduler_config_default(&cfg);
    cfg.eta = eta;
    cfg.timestep_spacing = spacing;
    dato_sampler* s = NULL;
    dato_error err = {{0}};
    if (dato_sampler_create(&s, &cfg, kind, steps, LATENT_NUMEL, &err) != DATO_OK) {
        CHECK(0, "%s: %s", dato_sampler_kind_name(kind), err.msg);
        return;
    }
    toy_model model;
    dato_rng rng;
    dato_rng_seed(&rng, 7);
    dato_rng_fill_normal(&rng, model.B, LATENT_NUMEL);
    float x0[LATENT_NUMEL], x_run[LATENT_NUMEL], x_again[LATENT_NUMEL], x_manual[LATENT_NUMEL];
    dato_rng_fill_normal(&rng, x0, LATENT_NUMEL);
    for (int i = 0; i < LATENT_NUMEL; i++) x0[i] *= dato_sampler_init_noise_sigma(s);

    dato_rng noise_rng;
    memcpy(x_run, x0, sizeof x0);
    dato_rng_seed(&noise_rng, 11);
    CHECK(dato_sampler_run(s, x_run, toy_fn, &model, &noise_rng, &err) == DATO_OK, "run: %s", err.msg);

    // A second run after reset (run resets too; reset twice to check it is idempotent).
    dato_sampler_reset(s);
    memcpy(x_again, x0, sizeof x0);
    dato_rng_seed(&noise_rng, 11);
    CHECK(dato_sampler_run(s, x_again, toy_fn, &model, &noise_rng, &err) == DATO_OK, "run again: %s", err.msg);

    dato_sampler_reset(s);
    memcpy(x_manual, x0, sizeof x0);
    dato_rng_seed(&noise_rng, 11);
    float model_in[LATENT_NUMEL], model_out[LATENT_NUMEL], noise[LATENT_NUMEL];
    for (int c = 0; c < dato_sampler_num_calls(s); c++) {
        dato_sampler_call info = dato_sampler_call_info(s, c);
        for (int i = 0; i < LATENT_NUMEL; i++) model_in[i] = x_manual[i] * info.input_scale;
        toy_forward(&model, info.timestep, model_in, model_out);
        const float* noise_arg = NULL;
        if (dato_sampler_needs_noise(s, c)) {
            dato_rng_fill_normal(&noise_rng, noise, LATENT_NUMEL);
            noise_arg = noise;
        }
        CHECK(dato_sampler_step(s, c, model_out, x_manual, noise_arg, &err) == DATO_OK, "step %d: %s", c, err.msg);
    }
    double d_manual = test_max_abs_diff(x_run, x_manual, LATENT_NUMEL);
    double d_again = test_max_abs_diff(x_run, x_again, LATENT_NUMEL);
    printf("run vs step %-9s eta %.1f: max|diff| manual %g, after reset %g, max|x| %.4g\n",
           dato_sampler_kind_name(kind), eta, d_manual, d_again, test_max_abs(x_run, LATENT_NUMEL));
    CHECK(memcmp(x_run, x_manual, sizeof x_run) == 0, "%s: run() and step() differ", dato_sampler_kind_name(kind));
    CHECK(memcmp(x_run, x_again, sizeof x_run) == 0, "%s: a second run differs", dato_sampler_kind_name(kind));
    CHECK(isfinite(test_max_abs(x_run, LATENT_NUMEL)), "%s: non-finite latent", dato_sampler_kind_name(kind));

    // Steps must come in order; a deterministic sampler's run needs no generator, a stochastic one does.
    dato_sampler_reset(s);
    CHECK(dato_sampler_step(s, 1, model_out, x_manual, noise, &err) == DATO_ERR_INVALID, "out-of-order step accepted");
    CHECK(strstr(err.msg, "expected call 0") != NULL, "message: %s", err.msg);
    bool stochastic = dato_sampler_needs_noise(s, 0);
    memcpy(x_manual, x0, sizeof x0);
    dato_status st = dato_sampler_run(s, x_manual, toy_fn, &model, NULL, &err);
    CHECK(stochastic ? st == DATO_ERR_INVALID : st == DATO_OK, "%s: run without rng gives %s",
          dato_sampler_kind_name(kind), dato_status_name(st));
    dato_sampler_destroy(s);
}

static bool config_equal(const dato_scheduler_config* a, const dato_scheduler_config* b) {
    return a->kind == b->kind && a->num_train_timesteps == b->num_train_timesteps && a->beta_start == b->beta_start &&
           a->beta_end == b->beta_end && a->beta_schedule == b->beta_schedule &&
           a->prediction_type == b->prediction_type && a->timestep_spacing == b->timestep_spacing &&
           a->steps_offset == b->steps_offset && a->set_alpha_to_one == b->set_alpha_to_one &&
           a->clip_sample == b->clip_sample && a->clip_sample_range == b->clip_sample_range && a->eta == b->eta;
}

// Error messages must name the field.
static void expect_config_error(const char* json, const dato_sampler_kind* kind_override, dato_status want,
                                const char* field) {
    dato_scheduler_config cfg;
    dato_error err = {{0}};
    dato_status st = dato_scheduler_config_parse(json, "cfg.json", kind_override, &cfg, &err);
    CHECK(st == want, "%s: got %s (%s), want %s", json, dato_status_name(st), err.msg, dato_status_name(want));
    CHECK(strstr(err.msg, field) != NULL && strstr(err.msg, "cfg.json") != NULL, "%s: message '%s' lacks '%s'", json,
          err.msg, field);
}

static void test_config_reader(void) {
    dato_scheduler_config cfg, sd15;
    dato_error err = {{0}};
    dato_scheduler_config_default(&sd15);

    // SD1.5's file as diffusers saves it gives the defaults.
    CHECK(dato_scheduler_config_load(FIXTURES "sd15_scheduler_config.json", NULL, &cfg, &err) == DATO_OK, "%s",
          err.msg);
    CHECK(config_equal(&cfg, &sd15), "SD1.5 scheduler_config.json differs from the defaults");

    // The original SD1.5 file (no timestep_spacing): switched to Euler or DPM-Solver it is linspace,
    // kept as PNDM or DDIM it is leading, as in diffusers' from_config.
    const char* sd15_v060 =
        "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", \"beta_end\": 0.012,"
        " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000,"
        " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1,"
        " \"trained_betas\": null, \"clip_sample\": false}";
    dato_sampler_kind euler = DATO_SAMPLER_EULER, ddim = DATO_SAMPLER_DDIM;
    CHECK(dato_scheduler_config_parse(sd15_v060, "sd15", NULL, &cfg, &err) == DATO_OK, "%s", err.msg);
    CHECK(config_equal(&cfg, &sd15), "SD1.5 v0.6.0 file differs from the defaults");
    CHECK(dato_scheduler_config_parse(sd15_v060, "sd15", &euler, &cfg, &err) == DATO_OK, "%s", err.msg);
    CHECK(cfg.kind == DATO_SAMPLER_EULER && cfg.timestep_spacing == DATO_SPACING_LINSPACE && cfg.steps_offset == 1,
          "SD1.5 -> Euler: kind %d spacing %d", (int)cfg.kind, (int)cfg.timestep_spacing);
    CHECK(dato_scheduler_config_parse(sd15_v060, "sd15", &ddim, &cfg, &err) == DATO_OK, "%s", err.msg);
    CHECK(cfg.timestep_spacing == DATO_SPACING_LEADING && !cfg.set_alpha_to_one && !cfg.clip_sample, "SD1.5 -> DDIM");
    // A bare DDIM config takes DDIMScheduler's defaults.
    CHECK(dato_scheduler_config_parse("{\"_class_name\": \"DDIMScheduler\"}", "ddim", NULL, &cfg, &err) == DATO_OK,
          "%s", err.msg);
    CHECK(cfg.kind == DATO_SAMPLER_DDIM && cfg.set_alpha_to_one && cfg.clip_sample &&
              cfg.beta_schedule == DATO_BETA_LINEAR && cfg.beta_start == 0.0001 && cfg.beta_end == 0.02,
          "DDIM defaults");

    expect_config_error("{\"_class_name\": \"PNDMScheduler\", \"beta_start\": \"0.1\"}", NULL, DATO_ERR_FORMAT,
                        "'beta_start'");
    expect_config_error("{\"_class_name\": \"PNDMScheduler\", \"steps_offset\": 1.5}", NULL, DATO_ERR_FORMAT,
                        "'steps_offset'");
    expect_config_error("{\"_class_name\": \"PNDMScheduler\", \"set_alpha_to_one\": 0}", NULL, DATO_ERR_FORMAT,
                        "'set_alpha_to_one'");
    expect_config_error("{\"_class_name\": \"PNDMScheduler\", \"timestep_spacing\": \"uniform\"}", NULL,
                        DATO_ERR_UNSUPPORTED, "'timestep_spacing'");
    expect_config_error("{\"_class_name\": \"DDIMScheduler\", \"prediction_type\": \"sample\"}", NULL,
                        DATO_ERR_UNSUPPORTED, "'prediction_type'");
    expect_config_error("{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": \"squaredcos_cap_v2\"}", NULL,
                        DATO_ERR_UNSUPPORTED, "'beta_schedule'");
    expect_config_error("{\"_class_name\": \"EulerDiscreteScheduler\", \"use_karras_sigmas\": true}", NULL,
                        DATO_ERR_UNSUPPORTED, "'use_karras_sigmas'");
    expect_config_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"solver_order\": 3}", NULL,
                        DATO_ERR_UNSUPPORTED, "'solver_order'");
    expect_config_error("{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": false}", NULL, DATO_ERR_UNSUPPORTED,
                        "'skip_prk_steps'");
    expect_config_error("{\"_class_name\": \"LMSDiscreteScheduler\"}", NULL, DATO_ERR_UNSUPPORTED, "'_class_name'");
    expect_config_error("{\"beta_start\": 0.00085}", NULL, DATO_ERR_NOT_FOUND, "'_class_name'");
    expect_config_error("{\"_class_name\": 3}", NULL, DATO_ERR_FORMAT, "'_class_name'");
    expect_config_error("{\"_class_name\": \"PNDMScheduler\", \"beta_start\": 0.5, \"beta_end\": 0.1}", NULL,
                        DATO_ERR_INVALID, "beta_start");
    expect_config_error("{\"_class_name\": \"PNDMScheduler\", \"num_train_timesteps\": 1}", NULL, DATO_ERR_INVALID,
                        "num_train_timesteps");
    expect_config_error("{\"_class_name\": \"PNDMScheduler\",", NULL, DATO_ERR_FORMAT, "invalid JSON");
    expect_config_error("[1, 2]", NULL, DATO_ERR_FORMAT, "JSON object");
    // An unknown class with an override, and a PRK config switched to a sampler that ignores it, are fine.
    CHECK(dato_scheduler_config_parse("{\"_class_name\": \"LMSDiscreteScheduler\", \"skip_prk_steps\": false}", "lms",
                                      &euler, &cfg, &err) == DATO_OK &&
              cfg.kind == DATO_SAMPLER_EULER,
          "override: %s", err.msg);

    CHECK(dato_scheduler_config_load("tests/fixtures/samplers/missing.json", NULL, &cfg, &err) == DATO_ERR_IO &&
              strstr(err.msg, "missing.json") != NULL,
          "missing file: %s", err.msg);
}

static void test_kind_names(void) {
    const char* names[] = {"ddim", "pndm", "dpmpp-2m", "euler", "euler-a"};
    const dato_sampler_kind kinds[] = {DATO_SAMPLER_DDIM, DATO_SAMPLER_PNDM, DATO_SAMPLER_DPMPP_2M, DATO_SAMPLER_EULER,
                                       DATO_SAMPLER_EULER_A};
    dato_error err = {{0}};
    for (int i = 0; i < 5; i++) {
        dato_sampler_kind kind;
        CHECK(dato_sampler_kind_parse(names[i], &kind, &err) == DATO_OK && kind == kinds[i], "parse %s", names[i]);
        CHECK(strcmp(dato_sampler_kind_name(kinds[i]), names[i]) == 0, "name of %d", i);
    }
    dato_sampler_kind kind;
    CHECK(dato_sampler_kind_parse("plms", &kind, &err) == DATO_OK && kind == DATO_SAMPLER_PNDM, "plms");
    CHECK(dato_sampler_kind_parse("dpm++", &kind, &err) == DATO_ERR_INVALID && strstr(err.msg, "dpm++"), "%s", err.msg);
    const char* classes[] = {"DDIMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
                             "EulerAncestralDiscreteScheduler"};
    for (int i = 0; i < 5; i++)
        CHECK(dato_sampler_kind_from_class(classes[i], &kind, &err) == DATO_OK && kind == kinds[i], "%s", classes[i]);
}

static void test_create_errors(void) {
    dato_scheduler_config cfg;
    dato_scheduler_config_default(&cfg);
    dato_sampler* s = NULL;
    dato_error err = {{0}};
    cfg.timestep_spacing = DATO_SPACING_TRAILING; // numpy's arange(1000, 0, -1000/61) has 62 entries
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_DDIM, 61, 16, &err) == DATO_ERR_UNSUPPORTED && !s, "trailing 61");
    CHECK(strstr(err.msg, "trailing") != NULL, "message: %s", err.msg);
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_DDIM, 60, 16, &err) == DATO_OK, "trailing 60: %s", err.msg);
    dato_sampler_destroy(s);
    s = NULL;
    cfg.timestep_spacing = DATO_SPACING_LEADING; // 1000 steps + offset 1 reaches t = 1000
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_DDIM, 1000, 16, &err) == DATO_ERR_INVALID && !s, "t = 1000");
    CHECK(strstr(err.msg, "1000") != NULL, "message: %s", err.msg);
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_EULER, 0, 16, &err) == DATO_ERR_INVALID, "0 steps");
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_EULER, 10, 0, &err) == DATO_ERR_INVALID, "0 latent");
    cfg.eta = -1;
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_DDIM, 10, 16, &err) == DATO_ERR_INVALID && strstr(err.msg, "eta"),
          "eta -1: %s", err.msg);
    dato_sampler_destroy(NULL);
}

int main(void) {
    test_alphas_cumprod();
    test_fixture_cases();
    test_grids();
    test_plms_calls();
    test_run_matches_steps(DATO_SAMPLER_DDIM, 0.0, DATO_SPACING_LEADING, 10);
    test_run_matches_steps(DATO_SAMPLER_DDIM, 0.5, DATO_SPACING_TRAILING, 10);
    test_run_matches_steps(DATO_SAMPLER_PNDM, 0.0, DATO_SPACING_LEADING, 20);
    test_run_matches_steps(DATO_SAMPLER_DPMPP_2M, 0.0, DATO_SPACING_LINSPACE, 20);
    test_run_matches_steps(DATO_SAMPLER_EULER, 0.0, DATO_SPACING_LEADING, 15);
    test_run_matches_steps(DATO_SAMPLER_EULER_A, 0.0, DATO_SPACING_LINSPACE, 15);
    test_config_reader();
    test_kind_names();
    test_create_errors();
    return test_summary();
}
