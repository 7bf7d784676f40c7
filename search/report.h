// The result files of a dato-search run, written from plain structs (the CLI fills them):
//   front.csv               one row per front member, columns below, numbers as %.9g ("nan" if unknown)
//   front.json              {"format": "dato-front", "version": 1, "config", "run", "front", "refs"}
//   schedules/front_<i>.json, schedules/ref_<j>.json   each member's schedule (dato_schedule_save)
//   front.svg               latency (ms) vs FID: the front as a step line, references, knee, fastest-ok
//   report.html             self-contained: summary, the SVG inline, tables, command, how to export
// Every file goes through a temporary file in the same folder and a rename, so a failure never
// leaves a partial file. Nothing depends on the clock: the same report gives the same bytes.
//
// front.csv columns (stable; new columns only ever go at the end):
//   index,label,latency_s,fid,kid,measured_latency_s,speedup,full,partial,reuse,mean_ratio,schedule_file,teacher
// labels are quoted (RFC 4180) when they hold a comma, a quote or a line break.
#ifndef DATO_REPORT_H
#define DATO_REPORT_H

#include "schedule.h"
#include "search_config.h"
#include "status.h"

typedef struct {
    char label[64];            // "front 0", or for references "baseline", "deepcache:5", "tome:0.5", "dato-paper"
    dato_schedule schedule;
    double latency_s;          // objective 0 (seconds per image)
    double fid;                // objective 1
    double kid;                // NaN if not computed
    double teacher;            // mean squared feature distance to the baseline's images (NaN if not computed)
    double clip;               // CLIP score of the images against their prompts (NaN without --clip)
    double measured_latency_s; // NaN if not measured
    double speedup;            // baseline latency / latency (NaN if unknown)
    int full, partial, reuse;  // dato_schedule_count of schedule
    double mean_ratio;
    char grid_png[4096];       // this member's sample grid PNG, relative to run_dir ("" if none)
} dato_report_point;

typedef struct {
    const dato_search_config* cfg;
    const char* run_dir;               // results/<run>/ (must exist); schedules/ is created in it
    const char* command;               // the reproducing command line (NULL: none)
    const char* export_example;        // a dato-export command line shown in the report (NULL: a generic note)
    int generation, n_evaluations;     // generations completed, genomes evaluated
    double elapsed_s;
    const dato_report_point* front;    // (n_front) sorted by latency ascending; latency and FID finite
    int n_front;
    const dato_report_point* refs;     // (n_refs) baseline + presets, scored the same way; the one labelled
    int n_refs;                        // "baseline" also draws the +10% FID line
    int knee_index, fastest_ok_index;  // into front, -1 if none (fastest-ok: within +10% FID of baseline)
    double hypervolume;                // of the normalized front (NaN if unknown)
} dato_report;

// Writes all the files above into r->run_dir. Errors name the file or the field at fault
// (a front out of latency order, a non-finite objective, an index out of range, a bad schedule).
dato_status dato_report_write(const dato_report* r, dato_error* err);

// The knee of a 2-D front (both objectives minimized): both objectives are scaled to [0, 1] by
// their min and max over the n points; the line through the two extremes (the point of least
// latency, ties to least FID, and the point of least FID, ties to least latency) is drawn; the
// knee is the point farthest from that line on the side of the ideal point (0, 0), ties to the
// lowest index. *knee = -1 when there is none: n < 3, the extremes coincide, or no point lies
// strictly (by more than 1e-12) on the ideal side, e.g. a straight or concave front.
// Non-finite values are DATO_ERR_INVALID naming the index.
dato_status dato_report_knee(const double* latency, const double* fid, int n, int* knee, dato_error* err);

// The index of the fastest point (least latency, ties to least FID, then lowest index) with
// fid <= fid_limit (e.g. 1.1 * the baseline's FID), or -1 if none. Non-finite values are skipped.
int dato_report_fastest_within(const double* latency, const double* fid, int n, double fid_limit);

#endif
