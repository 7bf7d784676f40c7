// The result files of a search run (report.h). Each file is built as text in memory and
// then written with a temporary file + rename. Layout of the chart (front.svg):
//
//   +------------------------------------------------------------+
//   | title                                                      |
//   |  FID  +--------------------------------------+  legend     |
//   |  ticks|  step line, interval bars, points,   |             |
//   |       |  refs, FID limit line                |             |
//   |       +--------------------------------------+             |
//   |         ticks, "speedup over the baseline (×)"             |
//   +------------------------------------------------------------+
//
// The x axis is the speedup (higher is better) when every front member has one, from its paired
// latency ratio or else from the baseline's latency; otherwise (no ratio and no baseline) it is
// the latency in ms, as before the ratios existed.
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text_buffer.h"

// The four lists of points a report holds; each has its own schedule file prefix (dropped members
// have none: they are not answers, and their schedules are not saved).
typedef enum { SET_FRONT, SET_REF, SET_CONFIRM, SET_DROPPED } point_set;

static const char* const set_names[] = {"front member", "reference", "confirmation row", "dropped member"};

// ---------------------------------------------------------------------------------------------
// text escapes (an allocation failure is remembered by the buffer and reported once at the end)

// Text for HTML and SVG (XML): & < > " ' escaped, control bytes other than tab and newline
// dropped (XML 1.0 does not allow them), other bytes as they are (UTF-8 passes through).
static void append_xml(dato_text* b, const char* s) {
    for (const unsigned char* c = (const unsigned char*)s; *c; c++) {
        if (*c == '&') dato_text_append(b, "&amp;");
        else if (*c == '<') dato_text_append(b, "&lt;");
        else if (*c == '>') dato_text_append(b, "&gt;");
        else if (*c == '"') dato_text_append(b, "&quot;");
        else if (*c == '\'') dato_text_append(b, "&#39;");
        else if (*c < 0x20 && *c != '\t' && *c != '\n') continue;
        else dato_text_append(b, "%c", *c);
    }
}

// A relative path as a URL for src/href: bytes outside the unreserved set and '/' are
// percent-encoded, so the result needs no further escaping.
static void append_url(dato_text* b, const char* s) {
    for (const unsigned char* c = (const unsigned char*)s; *c; c++) {
        int plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                    strchr("-._~/", *c);
        if (plain) dato_text_append(b, "%c", *c);
        else dato_text_append(b, "%%%02X", *c);
    }
}

// A JSON number (%.9g), or null when not finite (JSON has no NaN).
static void append_json_number(dato_text* b, double x) {
    if (isfinite(x)) dato_text_append(b, "%.9g", x);
    else dato_text_append(b, "null");
}

// A CSV number: %.9g, "nan" for any NaN (printf may write "-nan"), "inf" / "-inf".
static void append_csv_number(dato_text* b, double x) {
    if (isnan(x)) dato_text_append(b, "nan");
    else dato_text_append(b, "%.9g", x);
}

// A CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180).
static void append_csv_string(dato_text* b, const char* s) {
    if (!strpbrk(s, ",\"\r\n")) {
        dato_text_append(b, "%s", s);
        return;
    }
    dato_text_append(b, "\"");
    for (const char* c = s; *c; c++) {
        if (*c == '"') dato_text_append(b, "\"\"");
        else dato_text_append(b, "%c", *c);
    }
    dato_text_append(b, "\"");
}

// A number for people: %.*f, or "–" when unknown.
static void append_html_number(dato_text* b, double x, int decimals) {
    if (isfinite(x)) dato_text_append(b, "%.*f", decimals, x);
    else dato_text_append(b, "&ndash;");
}

// ---------------------------------------------------------------------------------------------
// files

dato_status dato_report_write_file(const char* dir, const char* name, const char* data, size_t n, dato_error* err) {
    char path[4096], tmp[4200];
    int len = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= sizeof(path))
        return dato_fail(err, DATO_ERR_INVALID, "%s/%s: path too long", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE* f = fopen(tmp, "wb");
    if (!f) return dato_fail(err, DATO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(data, 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return dato_fail(err, DATO_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return DATO_OK;
}

// A text as dato_report_write_file; frees nothing.
static dato_status write_file_atomic(const char* dir, const char* name, const dato_text* text, dato_error* err) {
    if (text->failed) return dato_fail(err, DATO_ERR_NOMEM, "%s/%s: cannot allocate the text", dir, name);
    return dato_report_write_file(dir, name, text->data, text->len, err);
}

// The schedule file of point i of a set, relative to the run folder ("" for a dropped member).
static void schedule_file_name(char* out, size_t n, point_set set, int i) {
    static const char* const prefix[] = {"front", "ref", "confirm", NULL};
    if (prefix[set]) snprintf(out, n, "schedules/%s_%d.json", prefix[set], i);
    else if (n > 0) out[0] = 0;
}

// ---------------------------------------------------------------------------------------------
// the knee and the fastest acceptable point

dato_status dato_report_knee(const double* latency, const double* fid, int n, int* knee, dato_error* err) {
    *knee = -1;
    if (n < 0) return dato_fail(err, DATO_ERR_INVALID, "knee: n = %d is negative", n);
    if (n > 0 && (!latency || !fid)) return dato_fail(err, DATO_ERR_INVALID, "knee: NULL objectives");
    for (int i = 0; i < n; i++)
        if (!isfinite(latency[i]) || !isfinite(fid[i]))
            return dato_fail(err, DATO_ERR_INVALID, "knee: point %d has a non-finite objective (%g, %g)", i,
                             latency[i], fid[i]);
    if (n < 3) return DATO_OK;
    double lat_min = latency[0], lat_max = latency[0], fid_min = fid[0], fid_max = fid[0];
    int fastest = 0, best = 0; // the two extremes
    for (int i = 1; i < n; i++) {
        lat_min = fmin(lat_min, latency[i]);
        lat_max = fmax(lat_max, latency[i]);
        fid_min = fmin(fid_min, fid[i]);
        fid_max = fmax(fid_max, fid[i]);
        if (latency[i] < latency[fastest] || (latency[i] == latency[fastest] && fid[i] < fid[fastest])) fastest = i;
        if (fid[i] < fid[best] || (fid[i] == fid[best] && latency[i] < latency[best])) best = i;
    }
    if (fastest == best) return DATO_OK;
    double lat_range = lat_max > lat_min ? lat_max - lat_min : 1.0;
    double fid_range = fid_max > fid_min ? fid_max - fid_min : 1.0;
    // normalized extremes a (fastest) and b (best FID); the ideal point (0, 0) lies on the side
    // where the cross product (b - a) x (p - a) has the sign of (b - a) x (0 - a).
    double ax = (latency[fastest] - lat_min) / lat_range, ay = (fid[fastest] - fid_min) / fid_range;
    double bx = (latency[best] - lat_min) / lat_range, by = (fid[best] - fid_min) / fid_range;
    double dx = bx - ax, dy = by - ay, length = sqrt(dx * dx + dy * dy);
    if (!(length > 0)) return DATO_OK;
    double ideal_side = dx * (0 - ay) - dy * (0 - ax) >= 0 ? 1.0 : -1.0;
    double farthest = 1e-12;
    for (int i = 0; i < n; i++) {
        double px = (latency[i] - lat_min) / lat_range, py = (fid[i] - fid_min) / fid_range;
        double distance = ideal_side * (dx * (py - ay) - dy * (px - ax)) / length;
        if (distance > farthest) {
            farthest = distance;
            *knee = i;
        }
    }
    return DATO_OK;
}

int dato_report_fastest_within(const double* latency, const double* fid, int n, double fid_limit) {
    int found = -1;
    for (int i = 0; i < n; i++) {
        if (!isfinite(latency[i]) || !isfinite(fid[i]) || !(fid[i] <= fid_limit)) continue;
        if (found < 0 || latency[i] < latency[found] || (latency[i] == latency[found] && fid[i] < fid[found]))
            found = i;
    }
    return found;
}

// ---------------------------------------------------------------------------------------------
// checks before anything is written

static int has_terminator(const char* s, size_t n) { return memchr(s, 0, n) != NULL; }

// An interval is unknown (both ends NaN) or ordered; one NaN end, or lo > hi, is a caller's bug.
static dato_status check_interval(dato_interval ci, const dato_report_point* p, point_set set, int i,
                                  const char* field, dato_error* err) {
    if (isnan(ci.lo) && isnan(ci.hi)) return DATO_OK;
    if (ci.lo <= ci.hi) return DATO_OK;
    return dato_fail(err, DATO_ERR_INVALID, "report: %s %d ('%s'): %s [%g, %g] is neither unknown (both NaN) nor "
                     "ordered (lo <= hi)", set_names[set], i, p->label, field, ci.lo, ci.hi);
}

// need_finite: the objectives must be finite (the front's); the schedule is validated for the sets
// whose schedules are saved.
static dato_status check_point(const dato_report_point* p, point_set set, int i, int need_finite, dato_error* err) {
    const char* what = set_names[set];
    if (!has_terminator(p->label, sizeof(p->label)))
        return dato_fail(err, DATO_ERR_INVALID, "report: %s %d: label is not NUL-terminated", what, i);
    if (!has_terminator(p->grid_png, sizeof(p->grid_png)))
        return dato_fail(err, DATO_ERR_INVALID, "report: %s %d ('%s'): grid_png is not NUL-terminated", what, i,
                         p->label);
    if (!has_terminator(p->note, sizeof(p->note)))
        return dato_fail(err, DATO_ERR_INVALID, "report: %s %d ('%s'): note is not NUL-terminated", what, i,
                         p->label);
    if (need_finite && (!isfinite(p->latency_s) || !isfinite(p->fid)))
        return dato_fail(err, DATO_ERR_INVALID, "report: %s %d ('%s'): objectives (%g, %g) are not finite", what, i,
                         p->label, p->latency_s, p->fid);
    DATO_TRY(check_interval(p->fid_ci, p, set, i, "fid_ci", err));
    DATO_TRY(check_interval(p->teacher_ci, p, set, i, "teacher_ci", err));
    DATO_TRY(check_interval(p->clip_ci, p, set, i, "clip_ci", err));
    DATO_TRY(check_interval(p->ratio_range, p, set, i, "ratio_range", err));
    if (p->pairs < 0)
        return dato_fail(err, DATO_ERR_INVALID, "report: %s %d ('%s'): pairs = %d is negative", what, i, p->label,
                         p->pairs);
    if (p->images < 0)
        return dato_fail(err, DATO_ERR_INVALID, "report: %s %d ('%s'): images = %d is negative", what, i, p->label,
                         p->images);
    if (set == SET_DROPPED) return DATO_OK;
    dato_error inner;
    if (dato_schedule_validate(&p->schedule, p->schedule.steps, p->schedule.n_branches, &inner))
        return dato_fail(err, DATO_ERR_INVALID, "report: %s %d ('%s'): %s", what, i, p->label, inner.msg);
    return DATO_OK;
}

// A latency ratio is usable when finite and positive (a zeroed struct's 0 is no measurement).
static int has_ratio(const dato_report_point* p) { return isfinite(p->latency_ratio) && p->latency_ratio > 0; }

// The latency a front is ranked by: the paired ratio where every member has one (the final
// stages' re-measure, which the front is cut on last), else latency_s.
static int ranked_by_ratio(const dato_report* r) {
    for (int i = 0; i < r->n_front; i++)
        if (!has_ratio(&r->front[i])) return 0;
    return 1;
}

static double rank_latency(const dato_report_point* p, int by_ratio) { return by_ratio ? p->latency_ratio : p->latency_s; }

// The front sorted by its latency, and no member dominating another in (its latency, FID); equal
// points dominate neither.
static dato_status check_front_order(const dato_report* r, dato_error* err) {
    int by_ratio = ranked_by_ratio(r);
    const char* key = by_ratio ? "latency ratio" : "latency";
    for (int i = 1; i < r->n_front; i++)
        if (rank_latency(&r->front[i], by_ratio) < rank_latency(&r->front[i - 1], by_ratio))
            return dato_fail(err, DATO_ERR_INVALID, "report: front member %d (%s %g) is faster than member %d (%g): "
                             "the front must be sorted by %s", i, key, rank_latency(&r->front[i], by_ratio), i - 1,
                             rank_latency(&r->front[i - 1], by_ratio), key);
    for (int i = 0; i < r->n_front; i++)
        for (int j = i + 1; j < r->n_front; j++) {
            const dato_report_point *a = &r->front[i], *b = &r->front[j];
            double xa = rank_latency(a, by_ratio), xb = rank_latency(b, by_ratio);
            int winner = -1, loser = -1;
            if (xa <= xb && a->fid <= b->fid && (xa < xb || a->fid < b->fid)) winner = i, loser = j;
            else if (xb <= xa && b->fid <= a->fid && (xb < xa || b->fid < a->fid)) winner = j, loser = i;
            if (winner < 0) continue;
            const dato_report_point *w = &r->front[winner], *l = &r->front[loser];
            return dato_fail(err, DATO_ERR_INVALID, "report: front %d dominates front %d (%s %.6g <= %.6g, FID %.6g "
                             "<= %.6g): no member of the front may dominate another", winner, loser, key,
                             rank_latency(w, by_ratio), rank_latency(l, by_ratio), w->fid, l->fid);
        }
    return DATO_OK;
}

// A point list: n >= 0, and the array present when n > 0.
static dato_status check_set(const dato_report_point* points, int n, point_set set, int need_finite,
                             dato_error* err) {
    static const char* const fields[] = {"front", "refs", "confirm", "dropped"};
    if (n < 0) return dato_fail(err, DATO_ERR_INVALID, "report: n_%s = %d is negative", fields[set], n);
    if (n > 0 && !points)
        return dato_fail(err, DATO_ERR_INVALID, "report: n_%s = %d but %s is NULL", fields[set], n, fields[set]);
    for (int i = 0; i < n; i++) DATO_TRY(check_point(&points[i], set, i, need_finite, err));
    return DATO_OK;
}

static dato_status check_report(const dato_report* r, dato_error* err) {
    if (!r->cfg) return dato_fail(err, DATO_ERR_INVALID, "report: no config");
    if (!r->run_dir || !r->run_dir[0]) return dato_fail(err, DATO_ERR_INVALID, "report: no run folder");
    DATO_TRY(check_set(r->front, r->n_front, SET_FRONT, 1, err));
    if (r->knee_index < -1 || r->knee_index >= r->n_front)
        return dato_fail(err, DATO_ERR_INVALID, "report: knee_index %d is outside -1..%d", r->knee_index,
                         r->n_front - 1);
    if (r->fastest_ok_index < -1 || r->fastest_ok_index >= r->n_front)
        return dato_fail(err, DATO_ERR_INVALID, "report: fastest_ok_index %d is outside -1..%d", r->fastest_ok_index,
                         r->n_front - 1);
    DATO_TRY(check_front_order(r, err));
    DATO_TRY(check_set(r->refs, r->n_refs, SET_REF, 0, err));
    DATO_TRY(check_set(r->dropped, r->n_dropped, SET_DROPPED, 0, err));
    DATO_TRY(check_set(r->confirm, r->n_confirm, SET_CONFIRM, 0, err));
    if (r->confirm_images < 0)
        return dato_fail(err, DATO_ERR_INVALID, "report: confirm_images = %d is negative", r->confirm_images);
    if (r->n_warnings < 0 || (r->n_warnings > 0 && !r->warnings))
        return dato_fail(err, DATO_ERR_INVALID, "report: bad warnings (n_warnings = %d, %s)", r->n_warnings,
                         r->warnings ? "present" : "NULL");
    for (int k = 0; k < r->n_warnings; k++)
        if (!r->warnings[k]) return dato_fail(err, DATO_ERR_INVALID, "report: warnings[%d] is NULL", k);
    return DATO_OK;
}

// ---------------------------------------------------------------------------------------------
// front.csv, confirm.csv and front.json

static const char csv_header[] =
    "index,label,latency_s,fid,kid,measured_latency_s,speedup,full,partial,reuse,mean_ratio,schedule_file,teacher,"
    "clip_score,fid_lo,fid_hi,teacher_lo,teacher_hi,clip_lo,clip_hi,latency_ratio,ratio_lo,ratio_hi,pairs,images,"
    "candidate\n";

static void csv_row(dato_text* b, const dato_report_point* p, point_set set, int i) {
    char file[64];
    schedule_file_name(file, sizeof(file), set, i);
    dato_text_append(b, "%d,", i);
    append_csv_string(b, p->label);
    const double numbers[5] = {p->latency_s, p->fid, p->kid, p->measured_latency_s, p->speedup};
    for (int k = 0; k < 5; k++) {
        dato_text_append(b, ",");
        append_csv_number(b, numbers[k]);
    }
    dato_text_append(b, ",%d,%d,%d,", p->full, p->partial, p->reuse);
    append_csv_number(b, p->mean_ratio);
    dato_text_append(b, ",%s", file);
    const double more[11] = {p->teacher,      p->clip,          p->fid_ci.lo,       p->fid_ci.hi,
                             p->teacher_ci.lo, p->teacher_ci.hi, p->clip_ci.lo,      p->clip_ci.hi,
                             p->latency_ratio, p->ratio_range.lo, p->ratio_range.hi};
    for (int k = 0; k < 11; k++) {
        dato_text_append(b, ",");
        append_csv_number(b, more[k]);
    }
    dato_text_append(b, ",%d,%d,%d\n", p->pairs, p->images, p->candidate);
}

static void csv_table(dato_text* b, const dato_report_point* points, int n, point_set set) {
    dato_text_append(b, "%s", csv_header);
    for (int i = 0; i < n; i++) csv_row(b, &points[i], set, i);
}

// A float config value as the shortest %.Ng that reads back as the same float: 0.3f is "0.3", not
// %.9g's "0.300000012".
static void append_json_float(dato_text* b, float x) {
    if (!isfinite(x)) {
        dato_text_append(b, "null");
        return;
    }
    char text[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(text, sizeof(text), "%.*g", digits, (double)x);
        if ((float)strtod(text, NULL) == x) break;
    }
    dato_text_append(b, "%s", text);
}

// [lo, hi], null for an unknown end.
static void append_json_interval(dato_text* b, dato_interval ci) {
    dato_text_append(b, "[");
    append_json_number(b, ci.lo);
    dato_text_append(b, ", ");
    append_json_number(b, ci.hi);
    dato_text_append(b, "]");
}

static void json_point(dato_text* b, const dato_report_point* p, point_set set, int i) {
    char file[64];
    schedule_file_name(file, sizeof(file), set, i);
    dato_text_append(b, "    {\"index\": %d, \"label\": ", i);
    dato_text_append_json_string(b, p->label);
    dato_text_append(b, ", \"latency_s\": ");
    append_json_number(b, p->latency_s);
    dato_text_append(b, ", \"fid\": ");
    append_json_number(b, p->fid);
    dato_text_append(b, ", \"kid\": ");
    append_json_number(b, p->kid);
    dato_text_append(b, ", \"teacher\": ");
    append_json_number(b, p->teacher);
    dato_text_append(b, ", \"clip_score\": ");
    append_json_number(b, p->clip);
    dato_text_append(b, ", \"measured_latency_s\": ");
    append_json_number(b, p->measured_latency_s);
    dato_text_append(b, ", \"speedup\": ");
    append_json_number(b, p->speedup);
    dato_text_append(b, ", \"full\": %d, \"partial\": %d, \"reuse\": %d, \"mean_ratio\": ", p->full, p->partial, p->reuse);
    append_json_number(b, p->mean_ratio);
    dato_text_append(b, ", \"schedule_file\": ");
    if (file[0]) dato_text_append_json_string(b, file);
    else dato_text_append(b, "null"); // a dropped member's schedule is not saved
    dato_text_append(b, ", \"grid_png\": ");
    dato_text_append_json_string(b, p->grid_png);
    dato_text_append(b, ",\n     \"fid_ci\": ");
    append_json_interval(b, p->fid_ci);
    dato_text_append(b, ", \"teacher_ci\": ");
    append_json_interval(b, p->teacher_ci);
    dato_text_append(b, ", \"clip_ci\": ");
    append_json_interval(b, p->clip_ci);
    dato_text_append(b, ", \"latency_ratio\": ");
    append_json_number(b, p->latency_ratio);
    dato_text_append(b, ", \"ratio_range\": ");
    append_json_interval(b, p->ratio_range);
    dato_text_append(b, ", \"pairs\": %d, \"images\": %d, \"candidate\": %d, \"note\": ", p->pairs, p->images,
                     p->candidate);
    dato_text_append_json_string(b, p->note);
    dato_text_append(b, "}");
}

static void json_points(dato_text* b, const char* key, const dato_report_point* points, int n, point_set set) {
    dato_text_append(b, "  \"%s\": [\n", key);
    for (int i = 0; i < n; i++) {
        json_point(b, &points[i], set, i);
        dato_text_append(b, "%s\n", i + 1 < n ? "," : "");
    }
    dato_text_append(b, "  ]");
}

static void json_key_string(dato_text* b, const char* key, const char* value) {
    dato_text_append(b, "    \"%s\": ", key);
    dato_text_append_json_string(b, value);
    dato_text_append(b, ",\n");
}

static void json_front(dato_text* b, const dato_report* r) {
    const dato_search_config* c = r->cfg;
    dato_text_append(b, "{\n  \"format\": \"dato-front\",\n  \"version\": 2,\n  \"config\": {\n");
    json_key_string(b, "model", c->model);
    json_key_string(b, "model_hash", c->model_hash);
    json_key_string(b, "prompts_file", c->prompts_file);
    json_key_string(b, "prompts_hash", c->prompts_hash);
    dato_text_append(b, "    \"n_prompts\": %d,\n    \"images\": %d,\n    \"screen_images\": %d,\n    \"promote\": ",
                     c->n_prompts, c->images, c->screen_images);
    append_json_float(b, c->promote);
    dato_text_append(b, ",\n    \"final_images\": %d,\n    \"confirm_images\": %d,\n    \"pairs\": %d,\n"
                     "    \"timing_images\": %d,\n    \"bootstrap\": %d,\n    \"height\": %d,\n    \"width\": %d,\n"
                     "    \"steps\": %d,\n", c->final_images, c->confirm_images, c->pairs, c->timing_images,
                     c->bootstrap, c->height, c->width, c->steps);
    dato_text_append(b, "    \"guidance\": ");
    append_json_float(b, c->guidance);
    dato_text_append(b, ",\n");
    json_key_string(b, "sampler", c->sampler);
    dato_text_append(b, "    \"batch\": %d,\n", c->batch);
    json_key_string(b, "ref_mode", c->ref_mode == DATO_REF_BASELINE ? "baseline" : "file");
    json_key_string(b, "ref", c->ref);
    json_key_string(b, "ref_hash", c->ref_hash);
    json_key_string(b, "extractor", dato_extractor_kind_name(c->extractor));
    json_key_string(b, "feature_net", c->feature_net);
    json_key_string(b, "preprocess", c->preprocess);
    json_key_string(b, "latency_mode", c->latency_mode == DATO_LATENCY_MEASURED ? "measured" : "table");
    json_key_string(b, "latency_table_hash", c->latency_table_hash);
    // the seed as a decimal string: a JSON number reader may keep only 53 bits
    dato_text_append(b, "    \"pop\": %d,\n    \"gens\": %d,\n    \"seed\": \"%llu\",\n    \"n_branches\": %d,\n"
           "    \"threads\": %d\n  },\n", c->pop, c->gens, (unsigned long long)c->seed, c->n_branches, c->threads);
    dato_text_append(b, "  \"run\": {\n");
    json_key_string(b, "command", r->command ? r->command : "");
    dato_text_append(b, "    \"generation\": %d,\n    \"n_evaluations\": %d,\n    \"n_screened\": %d,\n"
                     "    \"threads\": %d,\n    \"elapsed_s\": ", r->generation, r->n_evaluations, r->n_screened,
                     r->threads);
    append_json_number(b, r->elapsed_s);
    dato_text_append(b, ",\n    \"hypervolume\": ");
    append_json_number(b, r->hypervolume);
    dato_text_append(b, ",\n    \"knee_index\": %d,\n    \"fastest_ok_index\": %d,\n    \"fid_limit\": ",
                     r->knee_index, r->fastest_ok_index);
    append_json_number(b, r->fid_limit);
    dato_text_append(b, ",\n    \"confirm_images\": %d,\n", r->confirm_images);
    dato_text_append(b, "    \"verdict\": ");
    dato_text_append_json_string(b, r->verdict ? r->verdict : "");
    dato_text_append(b, "\n  },\n");
    json_points(b, "front", r->front, r->n_front, SET_FRONT);
    dato_text_append(b, ",\n");
    json_points(b, "refs", r->refs, r->n_refs, SET_REF);
    dato_text_append(b, ",\n");
    json_points(b, "dropped", r->dropped, r->n_dropped, SET_DROPPED);
    dato_text_append(b, ",\n");
    json_points(b, "confirmation", r->confirm, r->n_confirm, SET_CONFIRM);
    dato_text_append(b, ",\n  \"warnings\": [");
    for (int k = 0; k < r->n_warnings; k++) {
        dato_text_append(b, "%s\n    ", k ? "," : "");
        dato_text_append_json_string(b, r->warnings[k]);
    }
    dato_text_append(b, "%s]\n}\n", r->n_warnings ? "\n  " : "");
}

// ---------------------------------------------------------------------------------------------
// front.svg

#define SVG_W 860
#define SVG_H 540
#define PLOT_X0 80.0  // plot area, pixels
#define PLOT_X1 640.0
#define PLOT_Y0 60.0
#define PLOT_Y1 470.0
#define MAX_TICKS 40

typedef struct {
    double lo, hi; // data range shown on the axis
} axis_range;

// A padded range over the finite values seen; a single value gets +-10% (or +-1 at 0).
static axis_range padded_range(double lo, double hi) {
    if (!(lo <= hi)) return (axis_range){0, 1};
    if (hi == lo) {
        double half = lo != 0 ? fabs(lo) * 0.1 : 1.0;
        return (axis_range){lo - half, hi + half};
    }
    double pad = (hi - lo) * 0.06;
    return (axis_range){lo - pad, hi + pad};
}

// A 1-2-5 tick step giving about five ticks over the range.
static double tick_step(axis_range a) {
    double raw = (a.hi - a.lo) / 5;
    double magnitude = pow(10, floor(log10(raw)));
    double norm = raw / magnitude;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
}

static int tick_decimals(double step) {
    int d = (int)-floor(log10(step) + 1e-9);
    return d < 0 ? 0 : d > 9 ? 9 : d;
}

static double map_x(axis_range a, double x) { return PLOT_X0 + (x - a.lo) / (a.hi - a.lo) * (PLOT_X1 - PLOT_X0); }
static double map_y(axis_range a, double y) { return PLOT_Y1 - (y - a.lo) / (a.hi - a.lo) * (PLOT_Y1 - PLOT_Y0); }

// The last path component of a model path (trailing slashes ignored), into out[n].
static void model_name(char* out, size_t n, const char* path) {
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t len = end - start < n - 1 ? end - start : n - 1;
    memcpy(out, path + start, len);
    out[len] = 0;
    if (!out[0]) snprintf(out, n, "(unnamed model)");
}

static int is_baseline(const dato_report_point* p) { return strcmp(p->label, "baseline") == 0; }

// A reference marker: the baseline a square, presets a diamond; never a <circle>, which the
// front's points alone use.
static void svg_ref_marker(dato_text* b, double x, double y, int baseline) {
    if (baseline)
        dato_text_append(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"10\" height=\"10\" fill=\"#222\"/>\n", x - 5, y - 5);
    else
        dato_text_append(b, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f %.2f,%.2f\" fill=\"#8e44ad\"/>\n", x, y - 6, x + 6,
               y, x, y + 6, x - 6, y);
}

// A dot drawn as a path (two arcs), for the legend, so that <circle> counts the front's points.
static void svg_legend_dot(dato_text* b, double x, double y, double radius, const char* fill, const char* stroke) {
    dato_text_append(b, "<path d=\"M%.2f,%.2f a%.2f,%.2f 0 1,0 %.2f,0 a%.2f,%.2f 0 1,0 %.2f,0\" fill=\"%s\" stroke=\"%s\" "
           "stroke-width=\"2\"/>\n", x - radius, y, radius, radius, 2 * radius, radius, radius, -2 * radius, fill,
           stroke);
}

// The x axis: the speedup over the baseline, or (when some front member has none) the latency.
typedef struct {
    int speedup;         // 1: x = speedup; 0: x = latency in ms
    double base_latency; // the baseline's latency_s (NaN if none): the speedup of a point without a ratio
} x_axis;

// A point's x, NaN when it has none (not drawn).
static double point_x(const x_axis* a, const dato_report_point* p) {
    if (!a->speedup) return isfinite(p->latency_s) ? p->latency_s * 1e3 : NAN;
    if (has_ratio(p)) return 1 / p->latency_ratio;
    if (isfinite(a->base_latency) && a->base_latency > 0 && isfinite(p->latency_s) && p->latency_s > 0)
        return a->base_latency / p->latency_s;
    return NAN;
}

static int has_interval(dato_interval ci) { return isfinite(ci.lo) && isfinite(ci.hi); }

// A vertical interval bar with caps, from FID lo to hi at px.
static void svg_interval_bar(dato_text* b, double px, double y_lo, double y_hi, const char* color) {
    dato_text_append(b, "<path d=\"M%.2f,%.2f V%.2f M%.2f,%.2f h8 M%.2f,%.2f h8\" stroke=\"%s\" stroke-width=\"1.2\" "
                     "fill=\"none\"/>\n", px, y_lo, y_hi, px - 4, y_lo, px - 4, y_hi, color);
}

// A label beside a marker at (px, py): right of it in the left half of the plot, left of it in
// the right half, so that no label runs into the legend.
static void svg_label_at(dato_text* b, double px, double py, double gap) {
    int left = px > (PLOT_X0 + PLOT_X1) / 2;
    dato_text_append(b, "x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\"", left ? px - gap : px + gap, py,
                     left ? "end" : "start");
}

static void svg_front(dato_text* b, const dato_report* r) {
    const dato_report_point* baseline = NULL;
    for (int i = 0; i < r->n_refs; i++)
        if (is_baseline(&r->refs[i]) && isfinite(r->refs[i].fid)) baseline = &r->refs[i];
    x_axis xa = {.speedup = 1, .base_latency = baseline ? baseline->latency_s : NAN};
    for (int i = 0; i < r->n_front; i++)
        if (!isfinite(point_x(&xa, &r->front[i]))) xa.speedup = 0;
    // ranges over every point shown, interval bars included
    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    for (int set = 0; set < 2; set++) {
        const dato_report_point* points = set ? r->refs : r->front;
        int n = set ? r->n_refs : r->n_front;
        for (int i = 0; i < n; i++) {
            double x = point_x(&xa, &points[i]);
            if (!isfinite(x) || !isfinite(points[i].fid)) continue;
            x_lo = fmin(x_lo, x);
            x_hi = fmax(x_hi, x);
            y_lo = fmin(y_lo, points[i].fid);
            y_hi = fmax(y_hi, points[i].fid);
            if (has_interval(points[i].fid_ci)) {
                y_lo = fmin(y_lo, points[i].fid_ci.lo);
                y_hi = fmax(y_hi, points[i].fid_ci.hi);
            }
        }
    }
    if (baseline) y_hi = fmax(y_hi, baseline->fid * 1.1);
    axis_range ax = padded_range(x_lo, x_hi), ay = padded_range(y_lo, y_hi);

    char model[256];
    model_name(model, sizeof(model), r->cfg->model);
    dato_text_append(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
           "font-family=\"sans-serif\" font-size=\"13\">\n", SVG_W, SVG_H, SVG_W, SVG_H);
    dato_text_append(b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", SVG_W, SVG_H);
    dato_text_append(b, "<text x=\"%d\" y=\"30\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">"
           "DaTo search front: ",
           SVG_W / 2);
    append_xml(b, model);
    dato_text_append(b, ", %d images per evaluation</text>\n", r->cfg->images);

    // grid, ticks and tick labels
    dato_text_append(b, "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n");
    double step_x = tick_step(ax), step_y = tick_step(ay);
    double first_x = ceil(ax.lo / step_x) * step_x, first_y = ceil(ay.lo / step_y) * step_y;
    for (int k = 0; k < MAX_TICKS && first_x + k * step_x <= ax.hi; k++) {
        double px = map_x(ax, first_x + k * step_x);
        dato_text_append(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px, PLOT_Y0, px, PLOT_Y1);
    }
    for (int k = 0; k < MAX_TICKS && first_y + k * step_y <= ay.hi; k++) {
        double py = map_y(ay, first_y + k * step_y);
        dato_text_append(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", PLOT_X0, py, PLOT_X1, py);
    }
    dato_text_append(b, "</g>\n<g fill=\"#333\">\n");
    for (int k = 0; k < MAX_TICKS && first_x + k * step_x <= ax.hi; k++) {
        double value = first_x + k * step_x, px = map_x(ax, value);
        if (fabs(value) < step_x * 1e-9) value = 0; // no "-0"
        dato_text_append(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333\"/>\n", px, PLOT_Y1, px,
               PLOT_Y1 + 5);
        dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%.*f</text>\n", px, PLOT_Y1 + 20,
               tick_decimals(step_x), value);
    }
    for (int k = 0; k < MAX_TICKS && first_y + k * step_y <= ay.hi; k++) {
        double value = first_y + k * step_y, py = map_y(ay, value);
        if (fabs(value) < step_y * 1e-9) value = 0;
        dato_text_append(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333\"/>\n", PLOT_X0 - 5, py,
               PLOT_X0, py);
        dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%.*f</text>\n", PLOT_X0 - 8, py + 4,
               tick_decimals(step_y), value);
    }
    dato_text_append(b, "</g>\n");
    dato_text_append(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" stroke=\"#333\"/>\n", PLOT_X0,
           PLOT_Y0, PLOT_X1 - PLOT_X0, PLOT_Y1 - PLOT_Y0);
    // &#215; not &times;: SVG is XML, which knows only the five predefined entities
    dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n",
           (PLOT_X0 + PLOT_X1) / 2, PLOT_Y1 + 45,
           xa.speedup ? "speedup over the baseline (&#215;, higher is faster)" : "latency per image (ms)");
    dato_text_append(b, "<text x=\"24\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"14\" transform=\"rotate(-90 24 %.2f)\">"
           "FID</text>\n", (PLOT_Y0 + PLOT_Y1) / 2, (PLOT_Y0 + PLOT_Y1) / 2);

    // the FID the fastest-ok pick was held to
    if (isfinite(r->fid_limit) && r->fid_limit >= ay.lo && r->fid_limit <= ay.hi) {
        double py = map_y(ay, r->fid_limit);
        dato_text_append(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#c0392b\" "
               "stroke-dasharray=\"6 4\"/>\n",
               PLOT_X0, py, PLOT_X1, py);
        dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\" fill=\"#c0392b\" font-size=\"11\">"
               "fastest-ok FID limit</text>\n", PLOT_X1 - 4, py - 4);
    }

    // the interval bars first, under the markers
    for (int set = 0; set < 2; set++) {
        const dato_report_point* points = set ? r->refs : r->front;
        int n = set ? r->n_refs : r->n_front;
        for (int i = 0; i < n; i++) {
            double x = point_x(&xa, &points[i]);
            if (!isfinite(x) || !isfinite(points[i].fid) || !has_interval(points[i].fid_ci)) continue;
            svg_interval_bar(b, map_x(ax, x), map_y(ay, points[i].fid_ci.lo), map_y(ay, points[i].fid_ci.hi),
                             set ? "#8e44ad" : "#7fb3d5");
        }
    }
    // the front: the boundary of the region it dominates (away from the faster end, then down), then
    // its points; the front is sorted by its latency, so the path runs from the fastest member
    if (r->n_front > 0) {
        dato_text_append(b, "<path fill=\"none\" stroke=\"#2471a3\" stroke-width=\"2\" d=\"M%.2f,%.2f",
               map_x(ax, point_x(&xa, &r->front[0])), map_y(ay, r->front[0].fid));
        for (int i = 1; i < r->n_front; i++)
            dato_text_append(b, " H%.2f V%.2f", map_x(ax, point_x(&xa, &r->front[i])), map_y(ay, r->front[i].fid));
        dato_text_append(b, "\"/>\n");
    }
    for (int i = 0; i < r->n_front; i++) {
        const dato_report_point* p = &r->front[i];
        double x = point_x(&xa, p), px = map_x(ax, x), py = map_y(ay, p->fid);
        const char* fill = i == r->knee_index ? "#e67e22" : i == r->fastest_ok_index ? "#27ae60" : "#2471a3";
        double radius = i == r->knee_index || i == r->fastest_ok_index ? 7 : 4.5;
        dato_text_append(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.1f\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"1.5\"><title>",
               px, py, radius, fill);
        append_xml(b, p->label);
        if (xa.speedup) dato_text_append(b, ": %.2f&#215; faster, %.3f ms, FID %.3f", x, p->latency_s * 1e3, p->fid);
        else dato_text_append(b, ": %.3f ms, FID %.3f", x, p->fid);
        if (has_interval(p->fid_ci)) dato_text_append(b, " [%.3f, %.3f]", p->fid_ci.lo, p->fid_ci.hi);
        dato_text_append(b, "</title></circle>\n");
        if (i == r->knee_index || i == r->fastest_ok_index) {
            const char* what = i == r->knee_index && i == r->fastest_ok_index ? "knee, fastest ok"
                               : i == r->knee_index                          ? "knee"
                                                                             : "fastest ok";
            dato_text_append(b, "<text ");
            svg_label_at(b, px, py - 9, 9);
            dato_text_append(b, " fill=\"%s\" font-weight=\"bold\">%s</text>\n", fill, what);
        }
    }
    for (int i = 0; i < r->n_refs; i++) {
        const dato_report_point* p = &r->refs[i];
        double x = point_x(&xa, p);
        if (!isfinite(x) || !isfinite(p->fid)) continue;
        double px = map_x(ax, x), py = map_y(ay, p->fid);
        svg_ref_marker(b, px, py, is_baseline(p));
        dato_text_append(b, "<text ");
        svg_label_at(b, px, py + 14, 8);
        dato_text_append(b, " font-size=\"11\" fill=\"#444\">");
        append_xml(b, p->label);
        dato_text_append(b, "</text>\n");
    }

    // legend, right of the plot
    double lx = PLOT_X1 + 25, ly = PLOT_Y0 + 10;
    dato_text_append(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#2471a3\" stroke-width=\"2\"/>\n", lx - 8,
           ly, lx + 8, ly);
    svg_legend_dot(b, lx, ly, 4.5, "#2471a3", "#fff");
    dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\">front (%d)</text>\n", lx + 16, ly + 4, r->n_front);
    svg_legend_dot(b, lx, ly + 24, 6, "#e67e22", "#fff");
    dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\">knee</text>\n", lx + 16, ly + 28);
    svg_legend_dot(b, lx, ly + 48, 6, "#27ae60", "#fff");
    dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\">fastest within the</text>\n", lx + 16, ly + 52);
    dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\">baseline's bound</text>\n", lx + 16, ly + 67);
    svg_ref_marker(b, lx, ly + 90, 1);
    dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\">baseline</text>\n", lx + 16, ly + 94);
    svg_ref_marker(b, lx, ly + 114, 0);
    dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\">presets</text>\n", lx + 16, ly + 118);
    svg_interval_bar(b, lx, ly + 148, ly + 132, "#7fb3d5");
    dato_text_append(b, "<text x=\"%.2f\" y=\"%.2f\">FID 95%% interval</text>\n", lx + 16, ly + 144);
    dato_text_append(b, "</svg>\n");
}

// ---------------------------------------------------------------------------------------------
// report.html

static void html_summary_row(dato_text* b, const char* name, const char* value) {
    dato_text_append(b, "<tr><th>%s</th><td>", name);
    append_xml(b, value);
    dato_text_append(b, "</td></tr>\n");
}

// A value with its interval: "95.61 [92.10, 99.03]", the brackets only when the interval is known.
static void append_html_ci(dato_text* b, double x, dato_interval ci, int decimals) {
    append_html_number(b, x, decimals);
    if (isfinite(x) && has_interval(ci))
        dato_text_append(b, " <span class=\"ci\">[%.*f, %.*f]</span>", decimals, ci.lo, decimals, ci.hi);
}

static void html_table_head(dato_text* b) {
    dato_text_append(b, "<table class=\"points\">\n<tr><th>#</th><th>label</th><th>latency (ms)</th><th>speedup</th>"
           "<th>FID</th><th>KID ×10³</th><th>teacher distance</th><th>CLIP score</th><th>images</th>"
           "<th>measured latency (ms)</th><th>full / partial / reuse</th><th>mean ratio</th><th>schedule</th>"
           "<th>samples</th></tr>\n");
}

static void html_point_row(dato_text* b, const dato_report* r, const dato_report_point* p, point_set set, int i) {
    char file[64];
    schedule_file_name(file, sizeof(file), set, i);
    int knee = set == SET_FRONT && i == r->knee_index, fastest = set == SET_FRONT && i == r->fastest_ok_index;
    dato_text_append(b, "<tr%s><td>%d</td><td>", knee ? " class=\"knee\"" : fastest ? " class=\"fastest\"" : "", i);
    append_xml(b, p->label);
    if (knee) dato_text_append(b, " <span class=\"badge knee\">knee</span>");
    if (fastest) dato_text_append(b, " <span class=\"badge fastest\">fastest ok</span>");
    if (p->note[0]) {
        dato_text_append(b, "<br><span class=\"note\">");
        append_xml(b, p->note);
        dato_text_append(b, "</span>");
    }
    dato_text_append(b, "</td><td>");
    append_html_number(b, p->latency_s * 1e3, 3);
    dato_text_append(b, "</td><td>");
    append_html_number(b, p->speedup, 2);
    if (isfinite(p->speedup)) {
        dato_text_append(b, "&times;");
        // the pairs' spread as speedups: the greatest ratio is the least speedup
        dato_interval q = p->ratio_range;
        if (p->pairs > 0 && has_interval(q) && q.lo > 0)
            dato_text_append(b, " <span class=\"ci\">(%.2f&ndash;%.2f, %d pair%s)</span>", 1 / q.hi, 1 / q.lo, p->pairs,
                             p->pairs == 1 ? "" : "s");
    }
    dato_text_append(b, "</td><td>");
    append_html_ci(b, p->fid, p->fid_ci, 2);
    dato_text_append(b, "</td><td>");
    append_html_number(b, p->kid, 2);
    dato_text_append(b, "</td><td>");
    append_html_ci(b, p->teacher, p->teacher_ci, 3);
    dato_text_append(b, "</td><td>");
    append_html_ci(b, p->clip, p->clip_ci, 2);
    dato_text_append(b, "</td><td>");
    if (p->images > 0) dato_text_append(b, "%d", p->images);
    else dato_text_append(b, "&ndash;");
    dato_text_append(b, "</td><td>");
    append_html_number(b, p->measured_latency_s * 1e3, 3);
    dato_text_append(b, "</td><td>%d / %d / %d</td><td>", p->full, p->partial, p->reuse);
    append_html_number(b, p->mean_ratio, 2);
    dato_text_append(b, "</td><td>");
    if (file[0]) {
        dato_text_append(b, "<a href=\"");
        append_url(b, file);
        dato_text_append(b, "\">");
        append_xml(b, file);
        dato_text_append(b, "</a>");
    } else {
        dato_text_append(b, "&ndash;");
    }
    dato_text_append(b, "</td><td>");
    if (p->grid_png[0]) {
        dato_text_append(b, "<a href=\"");
        append_url(b, p->grid_png);
        dato_text_append(b, "\"><img src=\"");
        append_url(b, p->grid_png);
        dato_text_append(b, "\" alt=\"samples of ");
        append_xml(b, p->label);
        dato_text_append(b, "\" loading=\"lazy\"></a>");
    } else {
        dato_text_append(b, "&ndash;");
    }
    dato_text_append(b, "</td></tr>\n");
}

static void html_table(dato_text* b, const dato_report* r, const dato_report_point* points, int n, point_set set) {
    html_table_head(b);
    for (int i = 0; i < n; i++) html_point_row(b, r, &points[i], set, i);
    dato_text_append(b, "</table>\n");
}

static void html_report(dato_text* b, const dato_report* r, const dato_text* svg) {
    const dato_search_config* c = r->cfg;
    char model[256], value[4200];
    model_name(model, sizeof(model), c->model);
    dato_text_append(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>DaTo search: ");
    append_xml(b, model);
    dato_text_append(b, "</title>\n<style>\n"
              "body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }\n"
              "h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; }\n"
              "table { border-collapse: collapse; margin: 0.5em 0; }\n"
              "th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: middle; }\n"
              "table.points td { text-align: right; } table.points td:nth-child(2) { text-align: left; }\n"
              "table.summary th { background: #f4f4f4; font-weight: normal; }\n"
              "tr.knee { background: #fdebd0; } tr.fastest { background: #d5f5e3; }\n"
              ".badge { font-size: 0.75em; padding: 1px 5px; border-radius: 3px; color: #fff; }\n"
              ".badge.knee { background: #e67e22; } .badge.fastest { background: #27ae60; }\n"
              ".ci, .note { color: #666; font-size: 0.85em; } .ci { white-space: nowrap; }\n"
              ".verdict { font-size: 1.1em; border-left: 4px solid #2471a3; padding-left: 0.8em; }\n"
              ".warn { background: #fff3b0; border: 1px solid #e0c000; padding: 0.6em 0.6em 0.6em 2em; }\n"
              "img { max-height: 96px; display: block; }\n"
              "pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; white-space: pre-wrap; }\n"
              "</style>\n</head>\n<body>\n<h1>DaTo search: ");
    append_xml(b, model);
    dato_text_append(b, "</h1>\n");
    if (r->verdict && r->verdict[0]) {
        dato_text_append(b, "<h2>Verdict</h2>\n<p class=\"verdict\">");
        append_xml(b, r->verdict);
        dato_text_append(b, "</p>\n");
    }
    if (r->n_warnings > 0) {
        dato_text_append(b, "<h2>Warnings</h2>\n<ul class=\"warn\">\n");
        for (int k = 0; k < r->n_warnings; k++) {
            dato_text_append(b, "<li>");
            append_xml(b, r->warnings[k]);
            dato_text_append(b, "</li>\n");
        }
        dato_text_append(b, "</ul>\n");
    }
    dato_text_append(b, "<h2>Run</h2>\n<table class=\"summary\">\n");
    html_summary_row(b, "model", c->model);
    html_summary_row(b, "model hash", c->model_hash);
    snprintf(value, sizeof(value), "%s (%d prompts%s%s)", c->prompts_file, c->n_prompts, c->prompts_hash[0] ? ", " : "",
             c->prompts_hash);
    html_summary_row(b, "prompts", value);
    char screening[128] = "";
    if (c->screen_images > 0)
        snprintf(screening, sizeof(screening), ", screened on %d first (top %g%% promoted)", c->screen_images,
                 100.0 * (double)c->promote);
    snprintf(value, sizeof(value), "%d per evaluation%s, %d per final re-score, batch %d, %dx%d pixels (h x w)",
             c->images, screening, c->final_images, c->batch, c->height, c->width);
    html_summary_row(b, "images", value);
    if (r->confirm_images > 0)
        snprintf(value, sizeof(value), "%d fresh images (noises the search never saw): the baseline, the presets "
                 "and the picks", r->confirm_images);
    else
        snprintf(value, sizeof(value), "none");
    html_summary_row(b, "confirmation", value);
    if (c->bootstrap > 0)
        snprintf(value, sizeof(value), "95%% bootstrap over images, %d replicates", c->bootstrap);
    else
        snprintf(value, sizeof(value), "none");
    html_summary_row(b, "intervals", value);
    if (c->pairs > 0)
        snprintf(value, sizeof(value), "%d interleaved baseline / member pairs of %d images each; speedup = 1 / the "
                 "median time ratio", c->pairs, c->timing_images);
    else
        snprintf(value, sizeof(value), "no paired timing");
    html_summary_row(b, "timing", value);
    snprintf(value, sizeof(value), "%s, %d steps, guidance %g, %d skip branches", c->sampler, c->steps,
             (double)c->guidance, c->n_branches);
    html_summary_row(b, "sampler", value);
    if (c->ref_mode == DATO_REF_BASELINE)
        snprintf(value, sizeof(value), "the baseline's own images");
    else
        snprintf(value, sizeof(value), "%s%s%s%s", c->ref, c->ref_hash[0] ? " (" : "", c->ref_hash,
                 c->ref_hash[0] ? ")" : "");
    html_summary_row(b, "FID reference", value);
    html_summary_row(b, "search objective", c->objective == DATO_OBJECTIVE_TEACHER
                                                ? "teacher distance (the front below is re-scored with FID)"
                                            : c->objective == DATO_OBJECTIVE_CLIP
                                                ? "100 - CLIP score (the front below is re-scored with FID too)"
                                                : "FID");
    if (c->clip[0]) html_summary_row(b, "CLIP model", c->clip);
    snprintf(value, sizeof(value), "%s: %.3900s%s%s", c->extractor == DATO_EXTRACTOR_INCEPTION
             ? "pytorch-fid's Inception-v3 pool3" : "the model's feature network", c->feature_net,
             c->preprocess[0] ? ", preprocessing " : "", c->preprocess);
    html_summary_row(b, "features", value);
    if (c->latency_mode == DATO_LATENCY_MEASURED)
        snprintf(value, sizeof(value), "measured");
    else
        snprintf(value, sizeof(value), "cost table%s%s%s", c->latency_table_hash[0] ? " (" : "",
                 c->latency_table_hash, c->latency_table_hash[0] ? ")" : "");
    html_summary_row(b, "latency", value);
    snprintf(value, sizeof(value), "population %d, %d of %d generations, seed %llu, %d threads per rank", c->pop,
             r->generation, c->gens, (unsigned long long)c->seed, r->threads);
    html_summary_row(b, "search", value);
    if (r->n_screened > 0)
        snprintf(value, sizeof(value), "%d (%d of them scored on the screening images only)", r->n_evaluations,
                 r->n_screened);
    else
        snprintf(value, sizeof(value), "%d", r->n_evaluations);
    html_summary_row(b, "evaluations", value);
    double elapsed = isfinite(r->elapsed_s) && r->elapsed_s >= 0 && r->elapsed_s < 1e9 ? r->elapsed_s : 0;
    long whole = (long)elapsed;
    snprintf(value, sizeof(value), "%.1f s (%ld h %02ld min %02ld s)", elapsed, whole / 3600, whole / 60 % 60,
             whole % 60);
    html_summary_row(b, "elapsed", value);
    snprintf(value, sizeof(value), "%.6g of the front in (time ratio, FID / baseline FID), reference (1, 2)",
             r->hypervolume);
    html_summary_row(b, "hypervolume", isfinite(r->hypervolume) ? value : "unknown");
    dato_text_append(b, "</table>\n");
    if (r->n_confirm > 0) {
        dato_text_append(b, "<h2>Confirmation on %d fresh images</h2>\n<p>The baseline, the presets and the picks "
                         "scored again on images the search never saw, timed in interleaved pairs with the "
                         "baseline: the knee, and the members tried for <em>fastest ok</em>, the fastest member "
                         "whose FID stays within the baseline's upper 95%% bound (from the fastest under the "
                         "dashed limit of the plot, slower ones while they land over the bound). Brackets: "
                         "bootstrap 95%% intervals over the images.</p>\n", r->confirm_images);
        html_table(b, r, r->confirm, r->n_confirm, SET_CONFIRM);
    }
    dato_text_append(b, "<h2>Front</h2>\n");
    dato_text_append(b, "%s", svg->data);
    dato_text_append(b, "<h2>Front members</h2>\n<p>Sorted by %s. The speedup is 1 / the member's time ratio to the "
              "baseline, the median over interleaved pairs, with the slowest and the fastest pair in brackets; "
              "measured latency is the baseline's measured time &times; that ratio; latency is the search's own "
              "objective (the cost table's prediction, or the time measured during the search). Brackets after "
              "FID, teacher distance and CLIP score: bootstrap 95%% intervals over the images.</p>\n",
              ranked_by_ratio(r) ? "the paired time ratio (fastest first)" : "latency");
    html_table(b, r, r->front, r->n_front, SET_FRONT);
    if (r->n_dropped > 0) {
        dato_text_append(b, "<h2>Dropped by the re-score and the re-measure</h2>\n<p>Candidates the search kept "
                         "that the final images' FID showed dominated or not faster than the baseline by the search's "
                         "latency (not timed), or that the paired re-measure showed slower than the baseline or "
                         "dominated in time ratio and FID, each with the reason.</p>\n");
        html_table(b, r, r->dropped, r->n_dropped, SET_DROPPED);
    }
    dato_text_append(b, "<h2>References</h2>\n");
    html_table(b, r, r->refs, r->n_refs, SET_REF);
    dato_text_append(b, "<h2>Reproduce</h2>\n<pre>");
    append_xml(b, r->command ? r->command : "");
    dato_text_append(b, "</pre>\n<h2>Use a schedule</h2>\n<p>Each <code>schedules/front_&lt;i&gt;.json</code> is a DaTo "
              "schedule file that <code>dato-generate --schedule FILE</code> accepts as it is. "
              "<code>dato-export</code> writes a front member's schedule from the run's checkpoint, stamped with "
              "the model, sampler and image size it was searched for");
    if (r->export_example && r->export_example[0]) {
        dato_text_append(b, ", for example:</p>\n<pre>");
        append_xml(b, r->export_example);
        dato_text_append(b, "</pre>\n");
    } else {
        dato_text_append(b, " (see <code>dato-export --help</code>).</p>\n");
    }
    dato_text_append(b, "</body>\n</html>\n");
}

// ---------------------------------------------------------------------------------------------

static dato_status write_schedules(const dato_report* r, dato_error* err) {
    char dir[4096];
    int len = snprintf(dir, sizeof(dir), "%s/schedules", r->run_dir);
    if (len < 0 || (size_t)len >= sizeof(dir)) return dato_fail(err, DATO_ERR_INVALID, "%s: path too long", r->run_dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return dato_fail(err, DATO_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    const point_set sets[3] = {SET_FRONT, SET_REF, SET_CONFIRM};
    for (int k = 0; k < 3; k++) {
        const dato_report_point* points = sets[k] == SET_FRONT ? r->front : sets[k] == SET_REF ? r->refs : r->confirm;
        int n = sets[k] == SET_FRONT ? r->n_front : sets[k] == SET_REF ? r->n_refs : r->n_confirm;
        for (int i = 0; i < n; i++) {
            char file[64], path[4200];
            schedule_file_name(file, sizeof(file), sets[k], i);
            snprintf(path, sizeof(path), "%s/%s", r->run_dir, file);
            DATO_TRY(dato_schedule_save(&points[i].schedule, path, err));
        }
    }
    return DATO_OK;
}

// Builds one text with fill(b, r) and writes it to run_dir/name.
static dato_status write_text(const dato_report* r, const char* name, void (*fill)(dato_text*, const dato_report*),
                              dato_error* err) {
    dato_text text;
    DATO_TRY(dato_text_init(&text, 1 << 16, name, err));
    fill(&text, r);
    dato_status st = write_file_atomic(r->run_dir, name, &text, err);
    free(text.data);
    return st;
}

static void fill_front_csv(dato_text* b, const dato_report* r) { csv_table(b, r->front, r->n_front, SET_FRONT); }
static void fill_confirm_csv(dato_text* b, const dato_report* r) {
    csv_table(b, r->confirm, r->n_confirm, SET_CONFIRM);
}

dato_status dato_report_write(const dato_report* r, dato_error* err) {
    DATO_TRY(check_report(r, err));
    DATO_TRY(write_schedules(r, err));
    DATO_TRY(write_text(r, "front.csv", fill_front_csv, err));
    if (r->n_confirm > 0) DATO_TRY(write_text(r, "confirm.csv", fill_confirm_csv, err)); // none without the stage
    DATO_TRY(write_text(r, "front.json", json_front, err));

    // the SVG is written and then inlined in the HTML
    dato_text svg, html;
    DATO_TRY(dato_text_init(&svg, 1 << 16, "front.svg", err));
    svg_front(&svg, r);
    dato_status st = write_file_atomic(r->run_dir, "front.svg", &svg, err);
    if (st) {
        free(svg.data);
        return st;
    }
    st = dato_text_init(&html, 1 << 16, "report.html", err);
    if (!st) {
        html_report(&html, r, &svg);
        st = write_file_atomic(r->run_dir, "report.html", &html, err);
        free(html.data);
    }
    free(svg.data);
    return st;
}
