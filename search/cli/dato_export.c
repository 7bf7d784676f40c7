// dato-export: a schedule from a dato-search checkpoint's Pareto front, as a JSON file that
// dato-generate --schedule applies, and a line that says how sure the pick is.
//
//   dato-export results/<run>/checkpoint.h5 --list
//   dato-export results/<run>/checkpoint.h5 --pick knee --out knee.json
//   dato-export results/<run>/checkpoint.h5 --pick fastest --max-fid 30 --out fast.json
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli_args.h"
#include "file_util.h"
#include "genome.h"
#include "nsga2.h"
#include "report.h"
#include "schedule.h"

typedef struct {
    const char* out;
    double max_fid, max_latency;
    int pick, index, list, help; // pick: an index of PICKS, -1 none; index: -1 none
} options;

static const char* const PICKS[] = {"knee", "fastest", "best-fid", NULL};

#define N_OPTIONS 7
// The options, as data (cli_args.h).
static void options_table(options* o, dato_arg* t) {
    dato_arg rows[N_OPTIONS] = {
        {"list", NULL, DATO_ARG_FLAG, &o->list, 0, 0, NULL, NULL, NULL,
         "print the front, fastest first, with the baseline, and exit"},
        {"pick", NULL, DATO_ARG_CHOICE, &o->pick, 0, 0, PICKS, NULL, "knee|fastest|best-fid",
         "knee: the member farthest from the line between the two extremes. A front "
         "without one (1 or 2 members, straight or concave) gives its only member, else the "
         "fastest whose FID interval overlaps the baseline's (or lies below it), else the "
         "lowest FID, and says so.\n"
         "fastest: the fastest member with FID <= --max-fid X.\n"
         "best-fid: the lowest-FID member with latency <= --max-latency S (s per image)"},
        {"max-fid", NULL, DATO_ARG_DOUBLE, &o->max_fid, 0, 1e300, NULL, NULL, "X", "with --pick fastest"},
        {"max-latency", NULL, DATO_ARG_DOUBLE, &o->max_latency, 1e-300, 1e300, NULL, NULL, "S",
         "with --pick best-fid: seconds per image"},
        {"index", NULL, DATO_ARG_INT, &o->index, 0, 999999, NULL, NULL, "I", "member I of --list"},
        {"out", NULL, DATO_ARG_TEXT, &o->out, 0, 0, NULL, NULL, "FILE",
         "where to write the schedule (default: standard output; folders are created)"},
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
        "usage: dato-export CHECKPOINT.h5 (--list | --pick knee | --pick fastest --max-fid X |\n"
        "                                  --pick best-fid --max-latency S | --index I) [--out FILE]\n"
        "\n"
        "Picks a schedule from the front of a dato-search checkpoint and writes it as schedule JSON.\n"
        "A finished run's front is the final one: latency from timing pairs interleaved with the\n"
        "baseline, FID and the teacher distance on the final image set, with bootstrap 95%% intervals\n"
        "(checkpoints of format 2 have neither the pairs nor the intervals). A run still going has its\n"
        "search-time front: latency and the search objective (FID, or the teacher distance, which\n"
        "--max-fid cannot compare with).\n"
        "After a pick, a line on standard error says how sure it is: the speedup's spread over the\n"
        "pairs, and whether the FID interval lies above, across or below the baseline's.\n"
        "A value follows its option as the next argument or after '=' (--pick=knee).\n\n");
    dato_args_help(t, N_OPTIONS, &h);
    dato_text_append(&h, "\nExit status: 0 written (or listed), 1 no member meets the pick or the checkpoint is "
                         "refused,\n2 a usage error.\n");
    fputs(h.data, f);
    dato_text_free(&h);
}

typedef struct {
    const uint8_t* genome; // (genome_bytes) in the checkpoint
    double latency, fid;   // s per image and FID on the final front; the two objectives on a search-time one
    const double* scores;  // (DATO_SEARCH_N_FINAL) its final row, columns DATO_FINAL_*; NULL on a search-time front
} front_row;

static int cmp_rows(const void* a, const void* b) {
    const front_row *x = a, *y = b;
    if (x->latency != y->latency) return x->latency < y->latency ? -1 : 1;
    return (x->fid > y->fid) - (x->fid < y->fid);
}

static int known(double lo, double hi) { return isfinite(lo) && isfinite(hi); }

// The member's speedup over the baseline: 1 / its median paired ratio, or, where the checkpoint
// has no ratio (format 2), the baseline's latency / its latency; NaN when neither is known.
static double speedup_of(const front_row* r, const double* base) {
    if (!r->scores) return NAN;
    double ratio = r->scores[DATO_FINAL_RATIO];
    if (ratio > 0 && isfinite(ratio)) return 1 / ratio;
    double l = r->scores[DATO_FINAL_LATENCY], b = base[DATO_FINAL_LATENCY];
    return l > 0 && b > 0 && isfinite(l) && isfinite(b) ? b / l : NAN;
}

// The speedup's spread over the pairs, "2.95x..3.30x" (1 / the greatest and 1 / the least paired
// ratio), or "-" without pairs.
static const char* speedup_range(const front_row* r, char* buf, size_t cap) {
    double lo = r->scores[DATO_FINAL_RATIO_HI], hi = r->scores[DATO_FINAL_RATIO_LO];
    if (known(lo, hi) && lo > 0 && hi > 0) snprintf(buf, cap, "%.2fx..%.2fx", 1 / lo, 1 / hi);
    else snprintf(buf, cap, "-");
    return buf;
}

// "[lo, hi]" with decimals digits, or "[no interval]".
static const char* interval_text(double lo, double hi, int decimals, char* buf, size_t cap) {
    if (known(lo, hi)) snprintf(buf, cap, "[%.*f, %.*f]", decimals, lo, decimals, hi);
    else snprintf(buf, cap, "[no interval]");
    return buf;
}

// x written with the fewest significant digits (3 or more) that read back >= x: a value to suggest
// for --max-fid / --max-latency that the member it comes from meets.
static const char* at_least(double x, char* buf, size_t cap) {
    for (int digits = 3; digits <= 17; digits++) {
        snprintf(buf, cap, "%.*g", digits, x);
        if (strtod(buf, NULL) >= x) return buf;
    }
    return buf;
}

// Why the final front has no FID intervals, and what to do: a format 2 checkpoint (its config has
// no bootstrap field, read as 0) predates them.
static void no_intervals_note(const dato_checkpoint* ck, const char* path, char* buf, size_t cap) {
    if (ck->cfg.bootstrap == 0)
        snprintf(buf, cap, "no intervals in this checkpoint (format 2): re-run dato-search --resume %s to re-score",
                 path);
    else
        snprintf(buf, cap, "no FID interval in this checkpoint for it");
}

// The pick when the front has no knee (dato_report_knee gives -1: fewer than 3 members, or a
// straight or concave front). One member: that one. Else on the final front the fastest member
// whose FID interval overlaps the baseline's or lies below it (its FID_LO <= the baseline's
// FID_HI; the point FIDs where the checkpoint has no intervals), else the lowest FID; on a
// search-time front, which has no baseline scores, the member of least objective. why gets what
// was done and why.
static int knee_fallback(const front_row* rows, int n, const double* base, const char* quality, char* why,
                         size_t cap) {
    char shape[96];
    if (n < 3) snprintf(shape, sizeof shape, "the front has %d member%s", n, n == 1 ? "" : "s");
    else snprintf(shape, sizeof shape, "the front of %d members is straight or concave", n);
    if (n == 1) {
        snprintf(why, cap, "no knee: %s; picked it (front 0)", shape);
        return 0;
    }
    int best = 0; // rows are by latency: the first of least FID is the fastest of them
    for (int i = 1; i < n; i++)
        if (rows[i].fid < rows[best].fid) best = i;
    if (!base) {
        snprintf(why, cap,
                 "no knee: %s; picked front %d, the lowest %s (a run still going has no baseline scores to compare "
                 "with); see --list, or --index I",
                 shape, best, quality);
        return best;
    }
    int intervals = known(base[DATO_FINAL_FID_LO], base[DATO_FINAL_FID_HI]);
    double limit = intervals ? base[DATO_FINAL_FID_HI] : base[DATO_FINAL_FID];
    for (int i = 0; i < n; i++) {
        const double* s = rows[i].scores;
        double lo = intervals && known(s[DATO_FINAL_FID_LO], s[DATO_FINAL_FID_HI]) ? s[DATO_FINAL_FID_LO] : rows[i].fid;
        if (lo <= limit) {
            snprintf(why, cap, "no knee: %s; picked front %d, the fastest whose %s; see --list, or --pick fastest "
                               "--max-fid X", shape, i,
                     intervals ? "FID interval overlaps the baseline's (or lies below it)"
                               : "FID is at most the baseline's (no intervals in this checkpoint)");
            return i;
        }
    }
    snprintf(why, cap, "no knee: %s; no member's FID %s, so picked front %d, the lowest FID; see --list, or "
                       "--pick fastest --max-fid X", shape,
             intervals ? "interval overlaps the baseline's" : "is at most the baseline's", best);
    return best;
}

// The line after a pick that says how sure it is: the speedup and its spread over the timing
// pairs, the FID and its interval against the baseline's.
static void print_sureness(const dato_checkpoint* ck, const char* path, const front_row* r, int index,
                           const char* quality) {
    if (!r->scores) {
        fprintf(stderr,
                "dato-export: front %d: %.4f ms/image, %s %.6g on the search's %d images (generation %lld of a run "
                "still going): no final re-score yet, so no FID intervals nor paired timing; the finished run has "
                "them (dato-search --resume %s)\n",
                index, 1e3 * r->latency, quality, r->fid, ck->cfg.images, (long long)ck->generation, path);
        return;
    }
    const double *s = r->scores, *base = ck->final_baseline;
    char speed[160], range[64], verdict[4600];
    double x = speedup_of(r, base);
    if (!(x > 0)) snprintf(speed, sizeof speed, "speedup unknown");
    else if (x >= 1) snprintf(speed, sizeof speed, "%.2fx faster", x);
    else snprintf(speed, sizeof speed, "%.2fx slower", 1 / x);
    size_t m = strlen(speed);
    if (strcmp(speedup_range(r, range, sizeof range), "-") != 0) {
        if (ck->cfg.pairs > 0) snprintf(speed + m, sizeof speed - m, " (%d pairs %s)", ck->cfg.pairs, range);
        else snprintf(speed + m, sizeof speed - m, " (pairs %s)", range);
    } else if (x > 0) {
        snprintf(speed + m, sizeof speed - m, " (baseline latency / latency: no paired timing)");
    }
    int member_ci = known(s[DATO_FINAL_FID_LO], s[DATO_FINAL_FID_HI]);
    int base_ci = known(base[DATO_FINAL_FID_LO], base[DATO_FINAL_FID_HI]);
    if (!member_ci || !base_ci) {
        no_intervals_note(ck, path, verdict, sizeof verdict);
        fprintf(stderr, "dato-export: front %d: %s, FID %.2f vs baseline %.2f on %d images: %s\n", index, speed,
                s[DATO_FINAL_FID], base[DATO_FINAL_FID], ck->cfg.final_images, verdict);
        return;
    }
    const char* where = s[DATO_FINAL_FID_LO] > base[DATO_FINAL_FID_HI] ? "worse than the baseline beyond its interval"
                        : s[DATO_FINAL_FID_HI] < base[DATO_FINAL_FID_LO]
                            ? "better than the baseline beyond its interval"
                            : "within the baseline's interval (the intervals overlap)";
    fprintf(stderr, "dato-export: front %d: %s, FID %.2f [%.2f, %.2f] vs baseline %.2f [%.2f, %.2f] on %d images: %s\n",
            index, speed, s[DATO_FINAL_FID], s[DATO_FINAL_FID_LO], s[DATO_FINAL_FID_HI], base[DATO_FINAL_FID],
            base[DATO_FINAL_FID_LO], base[DATO_FINAL_FID_HI], ck->cfg.final_images, where);
}

// --list of the final front: the baseline, then one line per member, fastest first.
static void list_final(const dato_checkpoint* ck, const char* path, const front_row* rows, int n,
                       const dato_genome_space* space, dato_schedule* sched) {
    const double* base = ck->final_baseline;
    char ci[96], range[64], note[4600];
    printf("%s: the final front, %d images per schedule; baseline %.4f ms/image, FID %.4f %s\n", path,
           ck->cfg.final_images, 1e3 * base[DATO_FINAL_LATENCY], base[DATO_FINAL_FID],
           interval_text(base[DATO_FINAL_FID_LO], base[DATO_FINAL_FID_HI], 4, ci, sizeof ci));
    printf("%5s %10s %8s %14s %10s %22s %10s %5s %8s %6s %10s\n", "index", "ms/image", "speedup", "pairs range", "FID",
           "FID 95%", "teacher", "full", "partial", "reuse", "mean ratio");
    int from_latency = 0, no_ci = 0;
    dato_error err = {{0}};
    for (int i = 0; i < n; i++) {
        const double* s = rows[i].scores;
        if (dato_genome_to_schedule(space, rows[i].genome, sched, &err)) {
            fprintf(stderr, "dato-export: %s: front %d: %s\n", path, i, err.msg);
            break;
        }
        dato_schedule_counts k = dato_schedule_count(sched);
        double x = speedup_of(&rows[i], base);
        from_latency |= x > 0 && !(s[DATO_FINAL_RATIO] > 0 && isfinite(s[DATO_FINAL_RATIO]));
        no_ci |= !known(s[DATO_FINAL_FID_LO], s[DATO_FINAL_FID_HI]);
        char speed[32] = "-";
        if (x > 0) snprintf(speed, sizeof speed, "%.2fx", x);
        printf("%5d %10.4f %8s %14s %10.4f %22s %10.4g %5d %8d %6d %10.3f\n", i, 1e3 * rows[i].latency, speed,
               speedup_range(&rows[i], range, sizeof range), rows[i].fid,
               interval_text(s[DATO_FINAL_FID_LO], s[DATO_FINAL_FID_HI], 4, ci, sizeof ci), s[DATO_FINAL_TEACHER],
               k.full, k.partial, k.reuse, k.mean_ratio);
    }
    if (ck->cfg.pairs > 0)
        printf("speedup: 1 / the median ratio of the member's time to the baseline's over %d interleaved pairs; "
               "pairs: the least and greatest speedup among them\n", ck->cfg.pairs);
    if (from_latency) printf("note: no paired ratios in this checkpoint: speedup = baseline latency / latency\n");
    if (no_ci) {
        no_intervals_note(ck, path, note, sizeof note);
        printf("note: %s\n", note);
    }
}

int main(int argc, char** argv) {
    options o = {.max_fid = NAN, .max_latency = NAN, .pick = -1, .index = -1};
    dato_arg t[N_OPTIONS];
    options_table(&o, t);
    const char* pos[1];
    int n_pos = 0;
    dato_error perr;
    if (dato_args_parse(argc, argv, t, N_OPTIONS, pos, 1, &n_pos, &perr)) {
        fprintf(stderr, "dato-export: %s\n", perr.msg);
        return 2;
    }
    if (o.help) {
        usage(stdout);
        return 0;
    }
    const char *path = n_pos ? pos[0] : NULL, *pick = o.pick >= 0 ? PICKS[o.pick] : NULL, *out = o.out;
    double max_fid = o.max_fid, max_latency = o.max_latency;
    int index = o.index, list = o.list;
    int picks = !!pick + (index >= 0) + list;
    if (!path || picks != 1) {
        fprintf(stderr, "dato-export: give a checkpoint and exactly one of --list, --pick, --index (see --help)\n");
        return 2;
    }
    if (pick && !strcmp(pick, "fastest") && !(max_fid >= 0)) {
        fprintf(stderr, "dato-export: --pick fastest needs --max-fid X (X >= 0)\n");
        return 2;
    }
    if (pick && !strcmp(pick, "best-fid") && !(max_latency > 0)) {
        fprintf(stderr, "dato-export: --pick best-fid needs --max-latency S (seconds per image, > 0)\n");
        return 2;
    }

    dato_error err = {{0}};
    dato_checkpoint ck = {0};
    if (dato_checkpoint_read(path, &ck, &err)) {
        fprintf(stderr, "dato-export: %s\n", err.msg);
        dato_checkpoint_free(&ck);
        return 1;
    }
    int rc = 1, n = 0, chosen = -1;
    char why[1024] = "";
    size_t max_rows = (size_t)(ck.n_final > ck.pop ? ck.n_final : ck.pop); // the final front may outnumber pop
    int* ranks = malloc((size_t)ck.pop * sizeof *ranks);
    front_row* rows = malloc(max_rows * sizeof *rows);
    double *lat = malloc(max_rows * sizeof *lat), *fid = malloc(max_rows * sizeof *fid);
    dato_genome_space space;
    dato_schedule* sched = malloc(sizeof *sched);
    if (!ranks || !rows || !lat || !fid || !sched) {
        fprintf(stderr, "dato-export: out of memory\n");
        goto done;
    }
    if (dato_nsga2_nondominated_sort(ck.pop_objectives, ck.pop_violations, ck.pop, ck.n_obj, ranks, &err) ||
        dato_genome_space_init(&space, ck.steps, ck.cfg.n_branches, &err)) {
        fprintf(stderr, "dato-export: %s: %s\n", path, err.msg);
        goto done;
    }
    // The final front when the run finished; else the population's first front, one row per
    // distinct genome.
    int final = ck.n_final > 0, fid_known = final || ck.cfg.objective == DATO_OBJECTIVE_FID;
    for (int i = 0; final && i < ck.n_final; i++) {
        const double* s = ck.final_scores + (size_t)i * DATO_SEARCH_N_FINAL;
        rows[n++] = (front_row){ck.final_genomes + (size_t)i * ck.genome_bytes, s[DATO_FINAL_LATENCY],
                                s[DATO_FINAL_FID], s};
    }
    for (int i = 0; !final && i < ck.pop; i++) {
        const uint8_t* g = ck.pop_genomes + (size_t)i * ck.genome_bytes;
        if (ranks[i]) continue;
        int dup = 0;
        for (int j = 0; j < n; j++) dup |= !memcmp(g, rows[j].genome, (size_t)ck.genome_bytes);
        if (!dup) rows[n++] = (front_row){g, ck.pop_objectives[2 * i], ck.pop_objectives[2 * i + 1], NULL};
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_rows);
    const char* quality = fid_known ? "FID" : "teacher";
    if (list) {
        if (final) {
            list_final(&ck, path, rows, n, &space, sched);
            rc = 0;
            goto done;
        }
        printf("%s: generation %lld of a run still going, %lld evaluations, %d images per evaluation, "
               "objective %s (no final re-score yet: no baseline, intervals or paired timing)\n", path,
               (long long)ck.generation, (long long)ck.n_evaluations, ck.cfg.images,
               dato_quality_objective_name(ck.cfg.objective));
        printf("%5s %12s %10s %5s %8s %6s %10s\n", "index", "ms/image", quality, "full", "partial", "reuse",
               "mean ratio");
        for (int i = 0; i < n; i++) {
            if (dato_genome_to_schedule(&space, rows[i].genome, sched, &err)) break;
            dato_schedule_counts k = dato_schedule_count(sched);
            printf("%5d %12.4f %10.4f %5d %8d %6d %10.3f\n", i, 1e3 * rows[i].latency, rows[i].fid, k.full, k.partial,
                   k.reuse, k.mean_ratio);
        }
        rc = 0;
        goto done;
    }
    if (n == 0) {
        fprintf(stderr, "dato-export: %s: the front is empty\n", path);
        goto done;
    }
    char value[64];
    if (index >= 0) {
        if (index >= n) {
            fprintf(stderr, "dato-export: --index %d: the front has %d members (0..%d)\n", index, n, n - 1);
            goto done;
        }
        chosen = index;
    } else if (!strcmp(pick, "knee")) {
        for (int i = 0; i < n; i++) {
            lat[i] = rows[i].latency;
            fid[i] = rows[i].fid;
        }
        if (dato_report_knee(lat, fid, n, &chosen, &err)) {
            fprintf(stderr, "dato-export: %s: %s\n", path, err.msg);
            goto done;
        }
        if (chosen < 0) chosen = knee_fallback(rows, n, final ? ck.final_baseline : NULL, quality, why, sizeof why);
    } else {
        int fastest = !strcmp(pick, "fastest");
        if (fastest && !fid_known) {
            fprintf(stderr, "dato-export: %s has no final front yet (the run has not finished) and searches the "
                            "teacher distance: there is no FID for --max-fid; use --pick knee or --index\n", path);
            goto done;
        }
        int least = 0; // the member of least FID (fastest) and the fastest member: what to suggest
        for (int i = 0; i < n; i++) {
            if (rows[i].fid < rows[least].fid) least = i;
            int ok = fastest ? rows[i].fid <= max_fid : rows[i].latency <= max_latency;
            if (!ok) continue;
            if (chosen < 0 || (fastest ? rows[i].latency < rows[chosen].latency : rows[i].fid < rows[chosen].fid))
                chosen = i;
        }
        if (chosen < 0 && fastest) {
            fprintf(stderr, "dato-export: no front member has FID <= %.10g: the least FID on the %s front is %.4f "
                            "(front %d, %.4f ms/image); use --max-fid %s, or --pick knee (see --list)\n",
                    max_fid, final ? "final" : "search-time", rows[least].fid, least, 1e3 * rows[least].latency,
                    at_least(rows[least].fid, value, sizeof value));
            goto done;
        }
        if (chosen < 0) {
            fprintf(stderr, "dato-export: no front member is as fast as --max-latency %.10g s/image: the fastest "
                            "on the %s front is front 0 at %.6g s/image (%.4f ms/image, %s %.4f); use --max-latency %s, "
                            "or --pick knee (see --list)\n",
                    max_latency, final ? "final" : "search-time", rows[0].latency, 1e3 * rows[0].latency, quality,
                    rows[0].fid, at_least(rows[0].latency, value, sizeof value));
            goto done;
        }
    }
    if (dato_genome_to_schedule(&space, rows[chosen].genome, sched, &err)) {
        fprintf(stderr, "dato-export: %s: %s\n", path, err.msg);
        goto done;
    }
    snprintf(sched->model, sizeof sched->model, "%.255s", ck.cfg.model);
    snprintf(sched->sampler, sizeof sched->sampler, "%s", ck.cfg.sampler);
    char* json = NULL;
    if (out ? dato_mkdir_parents(out, &err) || dato_schedule_save(sched, out, &err)
            : dato_schedule_to_json(sched, &json, &err)) {
        fprintf(stderr, "dato-export: %s\n", err.msg);
        goto done;
    }
    if (json) fputs(json, stdout);
    free(json);
    if (why[0]) fprintf(stderr, "dato-export: %s\n", why);
    fprintf(stderr, "dato-export: front member %d: %.4f ms/image, %s %.4f (%s)%s%s\n", chosen,
            1e3 * rows[chosen].latency, quality, rows[chosen].fid, final ? "final front" : "search-time",
            out ? ", wrote " : "", out ? out : "");
    print_sureness(&ck, path, &rows[chosen], chosen, quality);
    rc = 0;
done:
    free(ranks);
    free(rows);
    free(lat);
    free(fid);
    free(sched);
    dato_checkpoint_free(&ck);
    return rc;
}
