#include "schedule.h"

#include <cjson/cJSON.h>
#include <complex.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "file_util.h"
#include "text_buffer.h"

#define RATIO_TOLERANCE 1e-6
#define SCHEDULE_MAX_FILE_BYTES (1 << 20)

int dato_schedule_ratio_index(double r) {
    for (int i = 0; i < DATO_SCHEDULE_N_RATIOS; i++)
        if (fabs(r - (double)dato_schedule_ratios[i]) <= RATIO_TOLERANCE) return i;
    return -1;
}

// The allowed ratios from index `first` on, for messages: "0, 0.3, 0.4, 0.5, 0.6, 0.7" (first 0).
static const char* ratio_list(char* buf, size_t cap, int first) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = first; i < DATO_SCHEDULE_N_RATIOS && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%g", i > first ? ", " : "", (double)dato_schedule_ratios[i]);
    return buf;
}

dato_status dato_schedule_validate(const dato_schedule* s, int steps, int n_branches, dato_error* err) {
    if (s->steps < 1 || s->steps > DATO_SCHEDULE_MAX_STEPS)
        return dato_fail(err, DATO_ERR_INVALID, "schedule: field 'steps' = %d is out of range 1..%d", s->steps,
                         DATO_SCHEDULE_MAX_STEPS);
    if (s->steps != steps)
        return dato_fail(err, DATO_ERR_INVALID, "schedule: field 'steps': the schedule has %d steps, the run asks %d",
                         s->steps, steps);
    if (s->n_branches != n_branches)
        return dato_fail(err, DATO_ERR_INVALID,
                         "schedule: field 'n_branches': the schedule is for a UNet with %d branches, this model has %d",
                         s->n_branches, n_branches);
    if (s->n_branches < 1)
        return dato_fail(err, DATO_ERR_INVALID, "schedule: field 'n_branches' = %d must be at least 1", s->n_branches);
    if (s->height < 0 || s->width < 0)
        return dato_fail(err, DATO_ERR_INVALID, "schedule: field 'height'/'width' = %d/%d must not be negative",
                         s->height, s->width);
    int full = s->n_branches + 1;
    for (int k = 0; k < s->steps; k++) {
        const dato_gene* g = &s->genes[k];
        if (g->depth < 0 || g->depth > full)
            return dato_fail(err, DATO_ERR_INVALID,
                             "schedule: step %d: field 'depth' = %d is out of range 0..%d for a UNet with %d branches",
                             k, g->depth, full, s->n_branches);
        char list[64];
        if (dato_schedule_ratio_index(g->ratio) < 0)
            return dato_fail(err, DATO_ERR_INVALID, "schedule: step %d: field 'ratio' = %g is not one of %s", k,
                             (double)g->ratio, ratio_list(list, sizeof list, 0));
    }
    if (s->genes[0].depth != full)
        return dato_fail(err, DATO_ERR_INVALID,
                         "schedule: step 0: field 'depth' = %d, but step 0 must be full (depth %d): the cache is empty",
                         s->genes[0].depth, full);
    return DATO_OK;
}

// ---------------------------------------------------------------------------------------------
// JSON

static const char* const top_keys[] = {"format", "version", "model",      "sampler", "steps",
                                       "height", "width",   "n_branches", "genes",   NULL};
static const char* const gene_keys[] = {"depth", "ratio", NULL};

// Unknown and duplicate keys of obj are errors; `where` names the object in messages.
static dato_status check_keys(const cJSON* obj, const char* const* allowed, const char* label, const char* where,
                              dato_error* err) {
    for (const cJSON* a = obj->child; a; a = a->next) {
        int known = 0;
        for (int i = 0; allowed[i]; i++) known |= strcmp(a->string, allowed[i]) == 0;
        if (!known) return dato_fail(err, DATO_ERR_FORMAT, "%s: %sunknown key '%s'", label, where, a->string);
        for (const cJSON* b = a->next; b; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                return dato_fail(err, DATO_ERR_FORMAT, "%s: %skey '%s' appears twice", label, where, a->string);
    }
    return DATO_OK;
}

// An integer field in [lo, hi]; absent is an error when required, else leaves *out.
static dato_status read_int(const cJSON* obj, const char* key, int required, int lo, int hi, int* out,
                            const char* label, const char* where, dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return required ? dato_fail(err, DATO_ERR_FORMAT, "%s: %sfield '%s' is missing", label, where, key) : 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %sfield '%s': expected an integer", label, where, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %sfield '%s' = %g is out of range %d..%d", label, where, key,
                         v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return DATO_OK;
}

// An optional string field copied into out[n].
static dato_status read_string(const cJSON* obj, const char* key, char* out, size_t n, const char* label,
                               dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return DATO_OK;
    if (!cJSON_IsString(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected a string", label, key);
    if (strlen(v->valuestring) >= n)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s' is longer than %zu bytes", label, key, n - 1);
    strcpy(out, v->valuestring);
    return DATO_OK;
}

static dato_status parse_object(dato_schedule* s, const cJSON* root, const char* label, dato_error* err) {
    if (!cJSON_IsObject(root)) return dato_fail(err, DATO_ERR_FORMAT, "%s: expected a JSON object", label);
    DATO_TRY(check_keys(root, top_keys, label, "", err));
    const cJSON* format = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, "dato-schedule") != 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'format' must be the string \"dato-schedule\"", label);
    int version = 0;
    DATO_TRY(read_int(root, "version", 1, 0, 1000000, &version, label, "", err));
    if (version != 1)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field 'version' = %d is not supported (expected 1)", label,
                         version);
    DATO_TRY(read_string(root, "model", s->model, sizeof(s->model), label, err));
    DATO_TRY(read_string(root, "sampler", s->sampler, sizeof(s->sampler), label, err));
    DATO_TRY(read_int(root, "steps", 1, 1, DATO_SCHEDULE_MAX_STEPS, &s->steps, label, "", err));
    DATO_TRY(read_int(root, "height", 0, 0, 1 << 20, &s->height, label, "", err));
    DATO_TRY(read_int(root, "width", 0, 0, 1 << 20, &s->width, label, "", err));
    DATO_TRY(read_int(root, "n_branches", 1, 1, 1000, &s->n_branches, label, "", err));
    const cJSON* genes = cJSON_GetObjectItemCaseSensitive(root, "genes");
    if (!genes) return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'genes' is missing", label);
    if (!cJSON_IsArray(genes)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'genes': expected an array", label);
    int n = cJSON_GetArraySize(genes);
    if (n != s->steps)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'genes' has %d entries, field 'steps' says %d", label, n,
                         s->steps);
    int k = 0;
    for (const cJSON* g = genes->child; g; g = g->next, k++) {
        char where[48];
        snprintf(where, sizeof(where), "step %d (genes[%d]): ", k, k);
        if (!cJSON_IsObject(g))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: %sexpected an object {\"depth\": d, \"ratio\": r}", label,
                             where);
        DATO_TRY(check_keys(g, gene_keys, label, where, err));
        DATO_TRY(read_int(g, "depth", 1, 0, s->n_branches + 1, &s->genes[k].depth, label, where, err));
        const cJSON* r = cJSON_GetObjectItemCaseSensitive(g, "ratio");
        if (!r) return dato_fail(err, DATO_ERR_FORMAT, "%s: %sfield 'ratio' is missing", label, where);
        if (!cJSON_IsNumber(r)) return dato_fail(err, DATO_ERR_FORMAT, "%s: %sfield 'ratio': expected a number", label, where);
        int ri = dato_schedule_ratio_index(r->valuedouble);
        char list[64];
        if (ri < 0)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: %sfield 'ratio' = %g is not one of %s", label, where,
                             r->valuedouble, ratio_list(list, sizeof list, 0));
        s->genes[k].ratio = dato_schedule_ratios[ri];
    }
    if (dato_schedule_validate(s, s->steps, s->n_branches, err))
        return dato_error_prefix(err, DATO_ERR_FORMAT, "%s: ", label);
    return DATO_OK;
}

// JSON text is UTF-8 (RFC 8259): the offset of the first of text's len bytes that is not, or len.
static size_t utf8_valid_prefix(const char* text, size_t len) {
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t step = utf8proc_iterate((const utf8proc_uint8_t*)text + i, (utf8proc_ssize_t)(len - i), &c);
        if (step <= 0) return i;
        i += (size_t)step;
    }
    return len;
}

dato_status dato_schedule_parse(dato_schedule* out, const char* json, const char* label, dato_error* err) {
    size_t len = strlen(json), bad = utf8_valid_prefix(json, len);
    if (bad < len)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: byte %zu (0x%02x) is not valid UTF-8", label, bad,
                         (unsigned)(unsigned char)json[bad]);
    const char* end = NULL;
    cJSON* root = cJSON_ParseWithOpts(json, &end, 0);
    if (!root)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: not valid JSON (at byte %zu)", label, end ? (size_t)(end - json) : 0);
    end += strspn(end, " \t\r\n"); // JSON's whitespace may follow the object; nothing else may
    if (*end) {
        cJSON_Delete(root);
        return dato_fail(err, DATO_ERR_FORMAT, "%s: byte %zu: more text after the JSON object", label,
                         (size_t)(end - json));
    }
    dato_schedule* s = calloc(1, sizeof(*s)); // built aside so that *out is untouched on error
    if (!s) {
        cJSON_Delete(root);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate a schedule", label);
    }
    dato_status st = parse_object(s, root, label, err);
    if (st == DATO_OK) *out = *s;
    free(s);
    cJSON_Delete(root);
    return st;
}

dato_status dato_schedule_load(dato_schedule* out, const char* path, dato_error* err) {
    char* text;
    DATO_TRY(dato_read_text_file(path, &text, SCHEDULE_MAX_FILE_BYTES, err));
    dato_status st = dato_schedule_parse(out, text, path, err);
    free(text);
    return st;
}

dato_status dato_schedule_to_json(const dato_schedule* s, char** out, dato_error* err) {
    *out = NULL;
    if (s->steps < 1 || s->steps > DATO_SCHEDULE_MAX_STEPS)
        return dato_fail(err, DATO_ERR_INVALID, "schedule: field 'steps' = %d is out of range 1..%d", s->steps,
                         DATO_SCHEDULE_MAX_STEPS);
    dato_text b;
    DATO_TRY(dato_text_init(&b, 4096, "schedule JSON", err));
    dato_text_append(&b, "{\n  \"format\": \"dato-schedule\",\n  \"version\": 1,\n  \"model\": ");
    dato_text_append_json_string(&b, s->model);
    dato_text_append(&b, ",\n  \"sampler\": ");
    dato_text_append_json_string(&b, s->sampler);
    dato_text_append(&b, ",\n  \"steps\": %d,\n  \"height\": %d,\n  \"width\": %d,\n  \"n_branches\": %d,\n  \"genes\": [\n",
           s->steps, s->height, s->width, s->n_branches);
    for (int k = 0; k < s->steps; k++)
        dato_text_append(&b, "    {\"depth\": %d, \"ratio\": %.1f}%s\n", s->genes[k].depth, (double)s->genes[k].ratio,
               k + 1 < s->steps ? "," : "");
    dato_text_append(&b, "  ]\n}\n");
    if (b.failed) {
        dato_text_free(&b);
        return dato_fail(err, DATO_ERR_NOMEM, "schedule: cannot allocate the JSON text");
    }
    *out = b.data;
    return DATO_OK;
}

dato_status dato_schedule_save(const dato_schedule* s, const char* path, dato_error* err) {
    if (dato_schedule_validate(s, s->steps, s->n_branches, err))
        return dato_error_prefix(err, DATO_ERR_INVALID, "%s: not saved: ", path);
    char* text;
    DATO_TRY(dato_schedule_to_json(s, &text, err));
    char tmp[4096];
    int len = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof(tmp)) {
        free(text);
        return dato_fail(err, DATO_ERR_INVALID, "%s: path too long", path);
    }
    FILE* f = fopen(tmp, "wb");
    if (!f) {
        free(text);
        return dato_fail(err, DATO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n;
    bad |= fclose(f) != 0;
    free(text);
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return dato_fail(err, DATO_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return DATO_OK;
}

// ---------------------------------------------------------------------------------------------
// DeepCache's non-uniform schedule. The Python reference (DeepCache's sample_from_quad_center):
//     while pow > 1:
//         x_values = np.linspace((-center)**(1/pow), (total_numbers-center)**(1/pow), n_samples+1)
//         indices = [0] + [x+center for x in np.unique(np.int32(x_values**pow))[1:-1]]
//         if len(indices) == n_samples: break
//         pow -= 0.02
//     if pow <= 1: raise ValueError(...)
// For center > 0, (-center)**(1/pow) is a Python complex, so linspace and the power run in
// complex128 and np.int32 truncates the real part. Each operation below is the one numpy and
// CPython perform, in the same order, so the truncated values agree to the bit. Products and
// sums sit in separate statements so that no compiler fuses them into an FMA.

// re + im*i, exactly (C11 lays a complex out as double[2]; clang lacks CMPLX).
static double complex make_complex(double re, double im) {
    double complex z;
    ((double*)&z)[0] = re;
    ((double*)&z)[1] = im;
    return z;
}

// a * b as numpy computes it: (ar*br - ai*bi, ar*bi + ai*br), each product rounded.
static double complex complex_multiply(double complex a, double complex b) {
    double rr = creal(a) * creal(b), ii = cimag(a) * cimag(b);
    double ri = creal(a) * cimag(b), ir = cimag(a) * creal(b);
    return make_complex(rr - ii, ri + ir);
}

// x**pw as numpy's complex power does it: integer exponents by repeated multiplication,
// others by the C library's cpow (which numpy calls).
static double complex numpy_cpow(double complex x, double pw) {
    if (creal(x) == 0.0 && cimag(x) == 0.0) return 0.0;
    if (pw == floor(pw) && pw < 100) {
        long n = (long)pw;
        double complex result = 1.0, p = x;
        for (long mask = 1;; mask <<= 1) {
            if (n & mask) result = complex_multiply(result, p);
            if (n < (mask << 1)) break;
            p = complex_multiply(p, p);
        }
        return result;
    }
    return cpow(x, pw);
}

static int compare_ints(const void* a, const void* b) {
    int x = *(const int*)a, y = *(const int*)b;
    return (x > y) - (x < y);
}

// np.int32 of the n_samples+1 values of linspace(...)**pw, for one value of pw.
static void quad_center_values(int* values, int total, int n_samples, int center, double pw) {
    int num = n_samples + 1, div = num - 1;
    double exponent = 1.0 / pw;
    double stop = pow((double)(total - center), exponent);
    if (center == 0) { // Python's 0**x is the real 0.0: numpy works in float64
        double step = div > 0 ? stop / div : 0.0;
        for (int k = 0; k < num; k++) {
            double y = (double)k * step;
            if (div > 0 && k == num - 1) y = stop;
            values[k] = (int)(pw == 2.0 ? y * y : pow(y, pw)); // numpy squares for **2
        }
        return;
    }
    // CPython's complex power of (-center + 0j) by (exponent + 0j): polar form.
    double length = pow((double)center, exponent);
    double phase = atan2(0.0, -(double)center) * exponent;
    double start_re = length * cos(phase), start_im = length * sin(phase);
    // numpy: delta = stop - start; step = delta / div, done as Smith's division by (div + 0j),
    // which multiplies by 1.0 / div.
    double delta_re = stop - start_re, delta_im = 0.0 - start_im;
    double inv_div = div > 0 ? 1.0 / div : 0.0;
    double step_re = delta_re * inv_div, step_im = delta_im * inv_div;
    for (int k = 0; k < num; k++) {
        double y_re = (double)k * step_re, y_im = (double)k * step_im;
        y_re = y_re + start_re;
        y_im = y_im + start_im;
        if (div > 0 && k == num - 1) y_re = stop, y_im = 0.0;
        values[k] = (int)creal(numpy_cpow(make_complex(y_re, y_im), pw));
    }
}

int dato_deepcache_quad_center(int* indices, int total, int n_samples, int center, double power) {
    int values[DATO_SCHEDULE_MAX_STEPS + 2];
    if (n_samples < 0 || n_samples > DATO_SCHEDULE_MAX_STEPS || center < 0 || center >= total) return -1;
    for (double pw = power; pw > 1; pw -= 0.02) {
        quad_center_values(values, total, n_samples, center, pw);
        int num = n_samples + 1;
        qsort(values, (size_t)num, sizeof(int), compare_ints);
        int n_unique = 0;
        for (int i = 0; i < num; i++)
            if (n_unique == 0 || values[i] != values[n_unique - 1]) values[n_unique++] = values[i];
        int count = 0;
        indices[count++] = 0;
        for (int i = 1; i < n_unique - 1; i++) indices[count++] = values[i] + center;
        if (count == n_samples) return count;
    }
    return -1; // DeepCache raises ValueError("Cannot find suitable pow...")
}

// ---------------------------------------------------------------------------------------------
// Presets

// Parses all of text as an integer / a number; 0 on trailing junk or overflow.
static int parse_int(const char* text, int* out) {
    char* end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < -1000000000L || v > 1000000000L) return 0;
    *out = (int)v;
    return 1;
}

static int parse_double(const char* text, double* out) {
    char* end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

// Partial steps through DeepCache's cache_branch_id b run depth b + 1; past the last branch,
// depth B (every layer but the mid block), as DeepCacheSDHelper does.
static int branch_depth(int branch, int n_branches) { return branch < n_branches ? branch + 1 : n_branches; }

#define PRESET_MAX_PARTS 5 // deepcache:N:center=C:pow=P:branch=B
#define PRESET_FORMS                                                                                           \
    "baseline, deepcache:N[:branch=B], deepcache:N:center=C:pow=P[:branch=B], tome:R, dato-paper, or a .json " \
    "file"
#define DEEPCACHE_FORMS "deepcache:N[:branch=B] or deepcache:N:center=C:pow=P[:branch=B]"

// DeepCache's options after deepcache:N, named as DeepCache's own arguments (cache_branch_id
// shortened to branch).
enum { OPT_BRANCH, OPT_CENTER, OPT_POW, N_OPTS };
static const char* const option_names[N_OPTS] = {"branch", "center", "pow"};

// deepcache:N with options parts[2..n_parts-1] (docs/SCHEDULES.md): full steps where DeepCache's
// pipeline refreshes its cache, the others through the branch.
static dato_status deepcache_preset(dato_schedule* s, const char* spec, char parts[][64], int n_parts,
                                    dato_error* err) {
    int interval;
    if (!parse_int(parts[1], &interval) || interval < 1)
        return dato_fail(err, DATO_ERR_INVALID,
                         "schedule '%s': cache_interval N = '%s' must be an integer >= 1 (expected " DEEPCACHE_FORMS
                         ")",
                         spec, parts[1]);
    const char* value[N_OPTS] = {NULL};
    for (int i = 2; i < n_parts; i++) {
        char* eq = strchr(parts[i], '=');
        if (!eq)
            return dato_fail(err, DATO_ERR_INVALID,
                             "schedule '%s': option '%s' is not key=value (expected " DEEPCACHE_FORMS
                             "; the positional deepcache:N:center:power was removed: it meant branch 1 and "
                             "steps // N full steps)",
                             spec, parts[i]);
        *eq = 0;
        int k = 0;
        while (k < N_OPTS && strcmp(parts[i], option_names[k]) != 0) k++;
        if (k == N_OPTS)
            return dato_fail(err, DATO_ERR_INVALID,
                             "schedule '%s': unknown option '%s' (expected branch, center or pow: " DEEPCACHE_FORMS ")",
                             spec, parts[i]);
        if (value[k])
            return dato_fail(err, DATO_ERR_INVALID, "schedule '%s': option '%s' is given twice", spec, parts[i]);
        value[k] = eq + 1;
    }
    int branch = 0, center = 0;
    double power = 0;
    if (value[OPT_BRANCH] && (!parse_int(value[OPT_BRANCH], &branch) || branch < 0))
        return dato_fail(err, DATO_ERR_INVALID, "schedule '%s': branch = '%s' must be an integer >= 0", spec,
                         value[OPT_BRANCH]);
    if ((value[OPT_CENTER] == NULL) != (value[OPT_POW] == NULL))
        return dato_fail(err, DATO_ERR_INVALID,
                         "schedule '%s': center and pow go together (DeepCache's non-uniform rule): expected "
                         "deepcache:N:center=C:pow=P[:branch=B]",
                         spec);
    int non_uniform = value[OPT_CENTER] != NULL;
    if (non_uniform && (!parse_int(value[OPT_CENTER], &center) || center < 0 || center >= s->steps))
        return dato_fail(err, DATO_ERR_INVALID, "schedule '%s': center = '%s' must be an integer in [0, %d)", spec,
                         value[OPT_CENTER], s->steps);
    if (non_uniform && (!parse_double(value[OPT_POW], &power) || power <= 1.0 || power > 10.0))
        return dato_fail(err, DATO_ERR_INVALID,
                         "schedule '%s': pow = '%s' must be a number in (1, 10] (at pow <= 1 DeepCache raises "
                         "ValueError)",
                         spec, value[OPT_POW]);

    int full = s->n_branches + 1, depth = branch_depth(branch, s->n_branches);
    for (int k = 0; k < s->steps; k++) s->genes[k] = (dato_gene){depth, 0.0f};
    if (!non_uniform || interval == 1) { // DeepCache refreshes every step at N = 1, uniform or not
        for (int k = 0; k < s->steps; k += interval) s->genes[k].depth = full;
        return DATO_OK;
    }
    // DeepCache's pipeline: ceil(steps / N) full steps placed by sample_from_quad_center.
    int n_full = s->steps / interval + (s->steps % interval != 0);
    int indices[DATO_SCHEDULE_MAX_STEPS + 1];
    int n = dato_deepcache_quad_center(indices, s->steps, n_full, center, power);
    if (n < 0)
        return dato_fail(err, DATO_ERR_INVALID,
                         "schedule '%s': no pow from %g down to 1 places %d full steps around center %d (DeepCache "
                         "raises ValueError here); choose another center, pow or N",
                         spec, power, n_full, center);
    for (int i = 0; i < n; i++)
        if (indices[i] >= 0 && indices[i] < s->steps) s->genes[indices[i]].depth = full;
    return DATO_OK;
}

dato_status dato_schedule_preset(dato_schedule* out, const char* spec, int steps, int n_branches, dato_error* err) {
    if (steps < 1 || steps > DATO_SCHEDULE_MAX_STEPS)
        return dato_fail(err, DATO_ERR_INVALID, "schedule '%s': steps = %d is out of range 1..%d", spec, steps,
                         DATO_SCHEDULE_MAX_STEPS);
    if (n_branches < 1 || n_branches > 1000)
        return dato_fail(err, DATO_ERR_INVALID, "schedule '%s': n_branches = %d is out of range 1..1000", spec,
                         n_branches);
    char parts[PRESET_MAX_PARTS][64];
    int n_parts = 0;
    size_t spec_len = strlen(spec);
    if (spec_len >= 200) return dato_fail(err, DATO_ERR_INVALID, "schedule '%.64s...': spec too long", spec);
    for (const char* p = spec;;) { // split on ':'
        const char* colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (n_parts == PRESET_MAX_PARTS || len >= sizeof(parts[0]))
            return dato_fail(err, DATO_ERR_INVALID, "schedule '%s': unknown preset (expected " PRESET_FORMS ")", spec);
        memcpy(parts[n_parts], p, len);
        parts[n_parts++][len] = 0;
        if (!colon) break;
        p = colon + 1;
    }

    dato_schedule* s = out;
    memset(s, 0, sizeof(*s));
    s->steps = steps;
    s->n_branches = n_branches;
    int full = n_branches + 1;
    const char* name = parts[0];
    if (strcmp(name, "baseline") == 0 && n_parts == 1) {
        for (int k = 0; k < steps; k++) s->genes[k] = (dato_gene){full, 0.0f};
    } else if (strcmp(name, "tome") == 0 && n_parts == 2) {
        double r;
        int ri = parse_double(parts[1], &r) ? dato_schedule_ratio_index(r) : -1;
        char list[64];
        if (ri < 1) // 0 would be the baseline
            return dato_fail(err, DATO_ERR_INVALID, "schedule '%s': ratio '%s' is not one of %s", spec, parts[1],
                             ratio_list(list, sizeof list, 1));
        for (int k = 0; k < steps; k++) s->genes[k] = (dato_gene){full, dato_schedule_ratios[ri]};
    } else if (strcmp(name, "deepcache") == 0 && n_parts >= 2) {
        return deepcache_preset(s, spec, parts, n_parts, err);
    } else if (strcmp(name, "dato-paper") == 0 && n_parts == 1) {
        // Full at steps 0, 2, 5 (features move fastest early) and every 10th step; partial steps
        // through DeepCache's branch 1 (its paper's SD setting) in the first half and branch 0 in
        // the second; the prune ratio rises with k through the five nonzero ratios (0.3 to 0.7),
        // one per fifth of the run; step 0 does not prune (no dynamics score exists yet).
        for (int k = 0; k < steps; k++) {
            int is_full = k == 0 || k == 2 || k == 5 || k % 10 == 0;
            int depth = is_full ? full : branch_depth(2 * k < steps ? 1 : 0, n_branches);
            int fifth = 5 * k / steps; // 0..4
            s->genes[k] = (dato_gene){depth, k == 0 ? 0.0f : dato_schedule_ratios[1 + fifth]};
        }
    } else {
        return dato_fail(err, DATO_ERR_INVALID, "schedule '%s': unknown preset (expected " PRESET_FORMS ")", spec);
    }
    return DATO_OK;
}

int dato_schedule_names_file(const char* file_or_preset) {
    size_t len = strlen(file_or_preset);
    int is_json_name = len >= 5 && strcmp(file_or_preset + len - 5, ".json") == 0;
    return dato_is_file(file_or_preset) || is_json_name;
}

dato_status dato_schedule_resolve(dato_schedule* out, const char* file_or_preset, int steps, int n_branches,
                                  dato_error* err) {
    if (!dato_schedule_names_file(file_or_preset)) return dato_schedule_preset(out, file_or_preset, steps, n_branches, err);
    dato_schedule* s = malloc(sizeof(*s)); // validated before *out is touched
    if (!s) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate a schedule", file_or_preset);
    dato_status st = dato_schedule_load(s, file_or_preset, err);
    if (!st && (st = dato_schedule_validate(s, steps, n_branches, err))) dato_error_prefix(err, st, "%s: ", file_or_preset);
    if (!st) *out = *s;
    free(s);
    return st;
}

dato_schedule_counts dato_schedule_count(const dato_schedule* s) {
    dato_schedule_counts c = {0};
    double ratio_sum = 0;
    for (int k = 0; k < s->steps && k < DATO_SCHEDULE_MAX_STEPS; k++) {
        int d = s->genes[k].depth;
        if (d == 0) {
            c.reuse++;
            continue;
        }
        if (d == s->n_branches + 1) c.full++;
        else c.partial++;
        ratio_sum += s->genes[k].ratio;
    }
    int computed = c.full + c.partial;
    c.mean_ratio = computed > 0 ? ratio_sum / computed : 0.0;
    return c;
}
