#include "scheduler_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"

// ---- sampler kinds ------------------------------------------------------------------------------

// Per diffusers class: its name and the defaults of its __init__ for the keys dato reads. All five
// share num_train_timesteps 1000, beta 0.0001..0.02 linear, epsilon and steps_offset 0; the classes
// without set_alpha_to_one or clip_sample do not use them (false here).
typedef struct {
    const char* class_name;
    const char* cli_name;
    dato_timestep_spacing spacing;
    bool set_alpha_to_one;
    bool clip_sample;
} class_defaults;

static const class_defaults CLASSES[] = {
    [DATO_SAMPLER_DDIM] = {"DDIMScheduler", "ddim", DATO_SPACING_LEADING, true, true},
    [DATO_SAMPLER_PNDM] = {"PNDMScheduler", "pndm", DATO_SPACING_LEADING, false, false},
    [DATO_SAMPLER_DPMPP_2M] = {"DPMSolverMultistepScheduler", "dpmpp-2m", DATO_SPACING_LINSPACE, false, false},
    [DATO_SAMPLER_EULER] = {"EulerDiscreteScheduler", "euler", DATO_SPACING_LINSPACE, false, false},
    [DATO_SAMPLER_EULER_A] = {"EulerAncestralDiscreteScheduler", "euler-a", DATO_SPACING_LINSPACE, false, false},
};
#define NUM_KINDS ((int)(sizeof CLASSES / sizeof CLASSES[0]))

static bool kind_valid(dato_sampler_kind kind) { return (int)kind >= 0 && (int)kind < NUM_KINDS; }

const char* dato_sampler_kind_name(dato_sampler_kind kind) {
    return kind_valid(kind) ? CLASSES[kind].cli_name : "unknown";
}

dato_status dato_sampler_kind_parse(const char* name, dato_sampler_kind* kind, dato_error* err) {
    if (!name || !kind) return dato_fail(err, DATO_ERR_INVALID, "sampler name: NULL argument");
    if (strcmp(name, "plms") == 0) {
        *kind = DATO_SAMPLER_PNDM;
        return DATO_OK;
    }
    for (int k = 0; k < NUM_KINDS; k++) {
        if (strcmp(name, CLASSES[k].cli_name) == 0) {
            *kind = (dato_sampler_kind)k;
            return DATO_OK;
        }
    }
    return dato_fail(err, DATO_ERR_INVALID,
                     "unknown sampler '%s' (expected ddim, pndm, plms, dpmpp-2m, euler or euler-a)", name);
}

dato_status dato_sampler_kind_from_class(const char* class_name, dato_sampler_kind* kind, dato_error* err) {
    if (!class_name || !kind) return dato_fail(err, DATO_ERR_INVALID, "scheduler class: NULL argument");
    for (int k = 0; k < NUM_KINDS; k++) {
        if (strcmp(class_name, CLASSES[k].class_name) == 0) {
            *kind = (dato_sampler_kind)k;
            return DATO_OK;
        }
    }
    return dato_fail(err, DATO_ERR_UNSUPPORTED,
                     "unsupported scheduler class '%s' (dato has PNDMScheduler, DDIMScheduler, "
                     "DPMSolverMultistepScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler)",
                     class_name);
}

// ---- prediction types ------------------------------------------------------------------------------

static const char* const PREDICTION_NAMES[] = {[DATO_PREDICT_EPSILON] = "epsilon", [DATO_PREDICT_V] = "v_prediction"};
#define NUM_PREDICTIONS ((int)(sizeof PREDICTION_NAMES / sizeof PREDICTION_NAMES[0]))

const char* dato_prediction_type_name(dato_prediction_type type) {
    return (int)type >= 0 && (int)type < NUM_PREDICTIONS ? PREDICTION_NAMES[type] : "unknown";
}

dato_status dato_prediction_type_parse(const char* name, dato_prediction_type* type, dato_error* err) {
    if (!name || !type) return dato_fail(err, DATO_ERR_INVALID, "prediction type: NULL argument");
    for (int i = 0; i < NUM_PREDICTIONS; i++) {
        if (strcmp(name, PREDICTION_NAMES[i]) == 0) {
            *type = (dato_prediction_type)i;
            return DATO_OK;
        }
    }
    return dato_fail(err, DATO_ERR_INVALID, "unknown prediction type '%s' (expected epsilon or v_prediction)", name);
}

// ---- defaults and validation ----------------------------------------------------------------------

void dato_scheduler_config_default(dato_scheduler_config* cfg) {
    *cfg = (dato_scheduler_config){
        .kind = DATO_SAMPLER_PNDM,
        .num_train_timesteps = 1000,
        .beta_start = 0.00085,
        .beta_end = 0.012,
        .beta_schedule = DATO_BETA_SCALED_LINEAR,
        .prediction_type = DATO_PREDICT_EPSILON,
        .timestep_spacing = DATO_SPACING_LEADING,
        .steps_offset = 1,
        .set_alpha_to_one = false,
        .clip_sample = false,
        .clip_sample_range = 1.0,
        .eta = 0.0,
    };
}

dato_status dato_scheduler_config_validate(const dato_scheduler_config* cfg, dato_error* err) {
    if (!cfg) return dato_fail(err, DATO_ERR_INVALID, "scheduler config: NULL");
    if (!kind_valid(cfg->kind))
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: bad sampler kind %d", (int)cfg->kind);
    if (cfg->num_train_timesteps < 2 || cfg->num_train_timesteps > (1 << 20))
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: num_train_timesteps %d not in [2, 2^20]",
                         cfg->num_train_timesteps);
    if (!(cfg->beta_start > 0 && cfg->beta_start <= cfg->beta_end && cfg->beta_end < 1))
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: need 0 < beta_start (%g) <= beta_end (%g) < 1",
                         cfg->beta_start, cfg->beta_end);
    if (cfg->beta_schedule != DATO_BETA_SCALED_LINEAR && cfg->beta_schedule != DATO_BETA_LINEAR)
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: bad beta_schedule %d", (int)cfg->beta_schedule);
    if (cfg->prediction_type != DATO_PREDICT_EPSILON && cfg->prediction_type != DATO_PREDICT_V)
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: bad prediction_type %d", (int)cfg->prediction_type);
    if (cfg->timestep_spacing != DATO_SPACING_LEADING && cfg->timestep_spacing != DATO_SPACING_TRAILING &&
        cfg->timestep_spacing != DATO_SPACING_LINSPACE)
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: bad timestep_spacing %d",
                         (int)cfg->timestep_spacing);
    if (cfg->steps_offset < 0 || cfg->steps_offset >= cfg->num_train_timesteps)
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: steps_offset %d not in [0, %d)", cfg->steps_offset,
                         cfg->num_train_timesteps);
    if (!(cfg->eta >= 0 && cfg->eta <= 1e6))
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: eta %g must be >= 0 and finite", cfg->eta);
    if (!(cfg->clip_sample_range > 0 && isfinite(cfg->clip_sample_range)))
        return dato_fail(err, DATO_ERR_INVALID, "scheduler config: clip_sample_range %g must be > 0",
                         cfg->clip_sample_range);
    return DATO_OK;
}

// ---- JSON reader ------------------------------------------------------------------------------------

// Each getter leaves *out alone when the key is absent and fails when it has the wrong type.
static dato_status get_number(const cJSON* root, const char* source, const char* key, double* out, dato_error* err) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item) return DATO_OK;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected a finite number", source, key);
    *out = item->valuedouble;
    return DATO_OK;
}

static dato_status get_int(const cJSON* root, const char* source, const char* key, int* out, dato_error* err) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item) return DATO_OK;
    double v = item->valuedouble;
    if (!cJSON_IsNumber(item) || v != floor(v) || fabs(v) > 1e9)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected an integer", source, key);
    *out = (int)v;
    return DATO_OK;
}

static dato_status get_bool(const cJSON* root, const char* source, const char* key, bool* out, dato_error* err) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item) return DATO_OK;
    if (!cJSON_IsBool(item))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected true or false", source, key);
    *out = cJSON_IsTrue(item);
    return DATO_OK;
}

// Matches a string field against names[0..n); *out = index. Absent: untouched.
static dato_status get_choice(const cJSON* root, const char* source, const char* key, const char* const* names, int n,
                              const char* expected, int* out, dato_error* err) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item) return DATO_OK;
    if (!cJSON_IsString(item))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected a string (%s)", source, key, expected);
    for (int i = 0; i < n; i++) {
        if (strcmp(item->valuestring, names[i]) == 0) {
            *out = i;
            return DATO_OK;
        }
    }
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s': unsupported value '%s' (dato supports %s)", source,
                     key, item->valuestring, expected);
}

// Options of the diffusers classes that dato does not implement: present with any value other than
// the one given, they are an error for the samplers in `kinds` (a bit mask of 1 << kind).
typedef enum { EXPECT_NULL, EXPECT_FALSE, EXPECT_TRUE, EXPECT_STRING, EXPECT_NUMBER } expect_type;
typedef struct {
    const char* key;
    unsigned kinds;
    expect_type type;
    const char* string; // EXPECT_STRING
    double number;      // EXPECT_NUMBER
} fixed_option;

#define K(kind) (1u << (kind))
#define ALL_KINDS                                                                                                      \
    (K(DATO_SAMPLER_DDIM) | K(DATO_SAMPLER_PNDM) | K(DATO_SAMPLER_DPMPP_2M) | K(DATO_SAMPLER_EULER) |                  \
     K(DATO_SAMPLER_EULER_A))
static const fixed_option FIXED_OPTIONS[] = {
    {"trained_betas", ALL_KINDS, EXPECT_NULL, NULL, 0},
    {"rescale_betas_zero_snr", ALL_KINDS & ~K(DATO_SAMPLER_PNDM), EXPECT_FALSE, NULL, 0},
    {"thresholding", K(DATO_SAMPLER_DDIM) | K(DATO_SAMPLER_DPMPP_2M), EXPECT_FALSE, NULL, 0},
    {"skip_prk_steps", K(DATO_SAMPLER_PNDM), EXPECT_TRUE, NULL, 0},
    {"algorithm_type", K(DATO_SAMPLER_DPMPP_2M), EXPECT_STRING, "dpmsolver++", 0},
    {"solver_order", K(DATO_SAMPLER_DPMPP_2M), EXPECT_NUMBER, NULL, 2},
    {"solver_type", K(DATO_SAMPLER_DPMPP_2M), EXPECT_STRING, "midpoint", 0},
    {"lower_order_final", K(DATO_SAMPLER_DPMPP_2M), EXPECT_TRUE, NULL, 0},
    {"euler_at_final", K(DATO_SAMPLER_DPMPP_2M), EXPECT_FALSE, NULL, 0},
    {"use_lu_lambdas", K(DATO_SAMPLER_DPMPP_2M), EXPECT_FALSE, NULL, 0},
    {"use_flow_sigmas", K(DATO_SAMPLER_DPMPP_2M), EXPECT_FALSE, NULL, 0},
    {"use_dynamic_shifting", K(DATO_SAMPLER_DPMPP_2M), EXPECT_FALSE, NULL, 0},
    {"variance_type", K(DATO_SAMPLER_DPMPP_2M), EXPECT_NULL, NULL, 0},
    {"lambda_min_clipped", K(DATO_SAMPLER_DPMPP_2M), EXPECT_NULL, NULL, 0}, // JSON cannot hold the default -inf
    {"use_karras_sigmas", K(DATO_SAMPLER_DPMPP_2M) | K(DATO_SAMPLER_EULER), EXPECT_FALSE, NULL, 0},
    {"use_exponential_sigmas", K(DATO_SAMPLER_DPMPP_2M) | K(DATO_SAMPLER_EULER), EXPECT_FALSE, NULL, 0},
    {"use_beta_sigmas", K(DATO_SAMPLER_DPMPP_2M) | K(DATO_SAMPLER_EULER), EXPECT_FALSE, NULL, 0},
    {"final_sigmas_type", K(DATO_SAMPLER_DPMPP_2M) | K(DATO_SAMPLER_EULER), EXPECT_STRING, "zero", 0},
    {"interpolation_type", K(DATO_SAMPLER_EULER), EXPECT_STRING, "linear", 0},
    {"timestep_type", K(DATO_SAMPLER_EULER), EXPECT_STRING, "discrete", 0},
};

static dato_status check_fixed_options(const cJSON* root, const char* source, dato_sampler_kind kind, dato_error* err) {
    for (size_t i = 0; i < sizeof FIXED_OPTIONS / sizeof FIXED_OPTIONS[0]; i++) {
        const fixed_option* opt = &FIXED_OPTIONS[i];
        const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, opt->key);
        if (!item || !(opt->kinds & K(kind))) continue;
        bool ok = false;
        const char* expected = "";
        char number[32];
        switch (opt->type) {
        case EXPECT_NULL: ok = cJSON_IsNull(item), expected = "null"; break;
        case EXPECT_FALSE: ok = cJSON_IsFalse(item), expected = "false"; break;
        case EXPECT_TRUE: ok = cJSON_IsTrue(item), expected = "true"; break;
        case EXPECT_STRING:
            ok = cJSON_IsString(item) && strcmp(item->valuestring, opt->string) == 0, expected = opt->string;
            break;
        case EXPECT_NUMBER:
            ok = cJSON_IsNumber(item) && item->valuedouble == opt->number;
            snprintf(number, sizeof number, "%g", opt->number);
            expected = number;
            break;
        }
        if (!ok)
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s': dato's %s sampler supports only %s", source,
                             opt->key, dato_sampler_kind_name(kind), expected);
    }
    return DATO_OK;
}
#undef K
#undef ALL_KINDS

static dato_status parse_root(const cJSON* root, const char* source, const dato_sampler_kind* kind_override,
                              dato_scheduler_config* cfg, dato_error* err) {
    if (!cJSON_IsObject(root)) return dato_fail(err, DATO_ERR_FORMAT, "%s: expected a JSON object", source);
    dato_status st;

    const cJSON* class_item = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    if (class_item && !cJSON_IsString(class_item))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '_class_name': expected a string", source);
    dato_sampler_kind kind = DATO_SAMPLER_PNDM;
    if (kind_override) {
        kind = *kind_override;
        if (!kind_valid(kind)) return dato_fail(err, DATO_ERR_INVALID, "%s: bad sampler kind %d", source, (int)kind);
    } else if (!class_item) {
        return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: field '_class_name' is missing; choose a sampler explicitly",
                         source);
    } else {
        dato_error class_err;
        if (dato_sampler_kind_from_class(class_item->valuestring, &kind, &class_err))
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '_class_name': %s; choose a sampler explicitly",
                             source, class_err.msg);
    }

    // Keys the file lacks take the defaults of the class that runs (diffusers' from_config drops
    // the values a config only inherited from its own class's defaults).
    const class_defaults* defaults = &CLASSES[kind];
    dato_scheduler_config c = {
        .kind = kind,
        .num_train_timesteps = 1000,
        .beta_start = 0.0001,
        .beta_end = 0.02,
        .beta_schedule = DATO_BETA_LINEAR,
        .prediction_type = DATO_PREDICT_EPSILON,
        .timestep_spacing = defaults->spacing,
        .steps_offset = 0,
        .set_alpha_to_one = defaults->set_alpha_to_one,
        .clip_sample = defaults->clip_sample,
        .clip_sample_range = 1.0,
        .eta = 0.0,
    };
    if ((st = get_int(root, source, "num_train_timesteps", &c.num_train_timesteps, err))) return st;
    if ((st = get_number(root, source, "beta_start", &c.beta_start, err))) return st;
    if ((st = get_number(root, source, "beta_end", &c.beta_end, err))) return st;
    if ((st = get_int(root, source, "steps_offset", &c.steps_offset, err))) return st;
    if ((st = get_bool(root, source, "set_alpha_to_one", &c.set_alpha_to_one, err))) return st;
    if ((st = get_bool(root, source, "clip_sample", &c.clip_sample, err))) return st;
    if ((st = get_number(root, source, "clip_sample_range", &c.clip_sample_range, err))) return st;

    static const char* const schedules[] = {"scaled_linear", "linear"};
    static const char* const spacings[] = {"leading", "trailing", "linspace"};
    int choice = (int)c.beta_schedule;
    if ((st = get_choice(root, source, "beta_schedule", schedules, 2, "scaled_linear or linear", &choice, err)))
        return st;
    c.beta_schedule = (dato_beta_schedule)choice;
    choice = (int)c.prediction_type;
    if ((st = get_choice(root, source, "prediction_type", PREDICTION_NAMES, NUM_PREDICTIONS, "epsilon or v_prediction",
                         &choice, err)))
        return st;
    c.prediction_type = (dato_prediction_type)choice;
    choice = (int)c.timestep_spacing;
    if ((st = get_choice(root, source, "timestep_spacing", spacings, 3, "leading, trailing or linspace", &choice, err)))
        return st;
    c.timestep_spacing = (dato_timestep_spacing)choice;

    if ((st = check_fixed_options(root, source, kind, err))) return st;
    dato_error range_err;
    if (dato_scheduler_config_validate(&c, &range_err))
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s", source, range_err.msg);
    *cfg = c;
    return DATO_OK;
}

dato_status dato_scheduler_config_parse(const char* json, const char* source, const dato_sampler_kind* kind_override,
                                        dato_scheduler_config* cfg, dato_error* err) {
    if (!source) source = "scheduler config";
    if (!json || !cfg) return dato_fail(err, DATO_ERR_INVALID, "%s: NULL argument", source);
    cJSON* root = cJSON_Parse(json);
    if (!root) {
        const char* at = cJSON_GetErrorPtr();
        return dato_fail(err, DATO_ERR_FORMAT, "%s: invalid JSON near byte %ld", source,
                         at && at >= json ? (long)(at - json) : -1L);
    }
    dato_status st = parse_root(root, source, kind_override, cfg, err);
    cJSON_Delete(root);
    return st;
}

dato_status dato_scheduler_config_read(const char* path, char** json, char* file, size_t file_size, dato_error* err) {
    if (!path || !json || !file) return dato_fail(err, DATO_ERR_INVALID, "scheduler config: NULL argument");
    *json = NULL;
    if (dato_is_file(path)) {
        if (strlen(path) >= file_size) return dato_fail(err, DATO_ERR_INVALID, "%s: path too long", path);
        strcpy(file, path);
    } else if (dato_is_dir(path)) {
        DATO_TRY(dato_path_join(file, file_size, path, "scheduler_config.json", err));
        if (!dato_is_file(file))
            DATO_TRY(dato_path_join(file, file_size, path, "scheduler/scheduler_config.json", err));
        if (!dato_is_file(file))
            return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: no scheduler_config.json in this folder or in its "
                             "scheduler/", path);
    } else {
        return dato_fail(err, DATO_ERR_IO, "%s: no such file or folder (expected a scheduler_config.json, a scheduler "
                         "folder or a diffusers folder)", path);
    }
    return dato_read_text_file(file, json, 1 << 20, err);
}

dato_status dato_scheduler_config_load(const char* path, const dato_sampler_kind* kind_override,
                                       dato_scheduler_config* cfg, dato_error* err) {
    if (!cfg) return dato_fail(err, DATO_ERR_INVALID, "scheduler config: NULL argument");
    char file[4096], *text = NULL;
    DATO_TRY(dato_scheduler_config_read(path, &text, file, sizeof file, err));
    dato_status st = dato_scheduler_config_parse(text, file, kind_override, cfg, err);
    free(text);
    return st;
}

// ---- the training schedule -----------------------------------------------------------------------

dato_status dato_alphas_cumprod(const dato_scheduler_config* cfg, float* alphas_cumprod, dato_error* err) {
    dato_status st = dato_scheduler_config_validate(cfg, err);
    if (st) return st;
    if (!alphas_cumprod) return dato_fail(err, DATO_ERR_INVALID, "alphas_cumprod: NULL output");
    int n = cfg->num_train_timesteps;
    bool scaled = cfg->beta_schedule == DATO_BETA_SCALED_LINEAR;
    // torch.linspace(start, end, n, dtype=float32) on the CPU: float32 step, the first half counted
    // up from start and the second half down from end, each with one fused multiply-add.
    float start = (float)(scaled ? pow(cfg->beta_start, 0.5) : cfg->beta_start);
    float end = (float)(scaled ? pow(cfg->beta_end, 0.5) : cfg->beta_end);
    float step = (end - start) / (float)(n - 1);
    double product = 1.0; // torch's CPU cumprod accumulates float32 in double
    for (int i = 0; i < n; i++) {
        float lin = i < n / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
        float beta = scaled ? lin * lin : lin;
        float alpha = 1.0f - beta;
        product *= (double)alpha;
        alphas_cumprod[i] = (float)product;
    }
    return DATO_OK;
}
