// The result files of a dato-search run, written from plain structs (the CLI fills them):
//   front.csv               one row per front member, columns below, numbers as %.9g ("nan" if unknown)
//   confirm.csv             the confirmation table (baseline, presets, the knee and the members tried
//                           for fastest ok, on the fresh image set),
//                           the same columns
//   front.json              {"format": "dato-front", "version": 2, "config", "run", "front", "refs",
//                            "dropped", "confirmation", "warnings"}
//   schedules/front_<i>.json, schedules/ref_<j>.json, schedules/confirm_<k>.json
//                           each member's schedule (dato_schedule_save); dropped members' are not saved
//                           (their "schedule_file" in front.json is null)
//   front.svg               speedup vs FID: the front as a step line with interval bars, references, picks
//                           (the latency in ms on x instead when some front member has no speedup: no
//                           latency ratio and no baseline to divide)
//   report.html             self-contained: summary, verdict, warnings, the SVG inline, tables with
//                           intervals, members dropped (by the final FID or the re-measure), command, how to export
// Every file goes through a temporary file in the same folder and a rename, so a failure never
// leaves a partial file. Nothing depends on the clock: the same report gives the same bytes.
//
// front.csv / confirm.csv columns (stable; new columns only ever go at the end):
//   index,label,latency_s,fid,kid,measured_latency_s,speedup,full,partial,reuse,mean_ratio,schedule_file,
//   teacher,clip_score,fid_lo,fid_hi,teacher_lo,teacher_hi,clip_lo,clip_hi,latency_ratio,ratio_lo,ratio_hi,
//   pairs,images,candidate
// labels are quoted (RFC 4180) when they hold a comma, a quote or a line break. *_lo, *_hi: the
// 95% interval over images (metrics/bootstrap.h: bootstrap, half-sampling for FID); latency_ratio: the median over `pairs`
// interleaved pairs of (member's time / the baseline's time), ratio_lo and ratio_hi the least and
// the greatest pair; speedup = 1 / latency_ratio; images: the images the quality numbers rest on;
// candidate: the row's index among the final stages' candidates (-1 for a reference), which the
// clock does not move, so rows of two runs' fronts can be matched by it.
// kid is KID x 1000 against the baseline's images with Inception features (the scale papers quote),
// "nan" with a model's own feature network, whose scale makes KID meaningless.
#ifndef DATO_REPORT_H
#define DATO_REPORT_H

#include "bootstrap.h"
#include "schedule.h"
#include "search_config.h"
#include "status.h"

typedef struct {
    char label[64];            // "front 0", or for references "baseline", "deepcache:5:branch=1", "tome:0.5",
                               // "dato-paper", or in the confirmation "knee (front 5)"
    dato_schedule schedule;
    double latency_s;          // seconds per image by the search's latency objective (the cost table's
                               // prediction, or the time measured during the search): what the candidates
                               // were cut on before the final stages' clock
    double fid;                // FID against the reference on `images` images
    dato_interval fid_ci;      // its 95% interval (half-sampling)
    double kid;                // KID x 1000 against the baseline's images; NaN where not computed
    double teacher;            // mean squared feature distance to the baseline's images (NaN if not computed)
    dato_interval teacher_ci;
    double clip;               // CLIP score of the images against their prompts (NaN without --clip)
    dato_interval clip_ci;
    double measured_latency_s; // the final re-measure: the baseline's measured time x latency_ratio (NaN if none)
    double latency_ratio;      // median paired ratio of the member's time to the baseline's (1 for the baseline)
    dato_interval ratio_range; // least and greatest of the pairs' ratios
    int pairs;                 // interleaved pairs behind latency_ratio (0: not paired)
    double speedup;            // 1 / latency_ratio (NaN if unknown)
    int images;                // images behind fid, teacher, clip
    int full, partial, reuse;  // dato_schedule_count of schedule
    double mean_ratio;
    char grid_png[4096];       // this member's sample grid PNG, relative to run_dir ("" if none)
    char note[160];            // why a dropped member left the front, or what a pick is ("" if nothing)
    int candidate;             // index among the final stages' candidates ("candidate i"), -1 for a reference
} dato_report_point;

typedef struct {
    const dato_search_config* cfg;
    const char* run_dir;               // results/<run>/ (must exist); schedules/ is created in it
    const char* command;               // the reproducing command line (NULL: none)
    const char* export_example;        // a dato-export command line shown in the report (NULL: a generic note)
    int generation, n_evaluations;     // generations completed, genomes evaluated
    int n_screened;                    // of those, scored only on the screening images (multi-fidelity)
    int threads;                       // CPU threads each rank used (the actual count, not the flag's 0)
    double elapsed_s;
    const dato_report_point* front;    // (n_front) sorted by its latency ascending, FID finite, no member
    int n_front;                       // dominating another in (latency, fid); its latency is latency_ratio
                                       // where every member has one (the final stages' paired re-measure),
                                       // else latency_s
    const dato_report_point* refs;     // (n_refs) baseline + presets, scored the same way; the one labelled
    int n_refs;                        // "baseline" is the one the speedups are against
    const dato_report_point* dropped;  // (n_dropped) candidates left out of the front, each with its note (e.g.
    int n_dropped;                     // "dominated by candidate 3", "slower than the baseline when re-measured")
    const dato_report_point* confirm;  // (n_confirm) the confirmation: baseline first, presets, then the picks
    int n_confirm;                     // on confirm_images fresh images (0: no confirmation stage ran)
    int confirm_images;
    const char* verdict;               // one paragraph: did the confirmed picks beat the presets ("" / NULL: none)
    const char* const* warnings;       // (n_warnings) lines shown above the tables, e.g. FID on fewer images
    int n_warnings;                    // than feature dimensions
    int knee_index, fastest_ok_index;  // into front, -1 if none (fastest-ok: the fastest member that stays
                                       // within the baseline's upper 95% FID bound, docs/SEARCH.md)
    double fid_limit;                  // the FID the fastest-ok pick was held to on the front's images
                                       // (a dashed line in the plot; NaN: none)
    double hypervolume;                // of the front in (latency_ratio, fid / baseline fid), reference point
                                       // (1, 2): the area the front dominates below the baseline's time and
                                       // twice its FID (NaN if unknown)
} dato_report;

// Writes all the files above into r->run_dir (confirm.csv only when n_confirm > 0; an older one is
// left as it is). Errors name the file or the field at fault (a front out of latency order, a
// front member dominating another, a non-finite objective, an interval with lo > hi or one NaN
// end, a negative count, an index out of range, a bad schedule).
dato_status dato_report_write(const dato_report* r, dato_error* err);

// Writes n bytes to dir/name through a temporary file in dir and a rename (how every file of a run
// folder is written): a failure (a full disk) leaves the old file or none, never a partial one.
// Errors name the file and the system's reason.
dato_status dato_report_write_file(const char* dir, const char* name, const char* data, size_t n, dato_error* err);

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
