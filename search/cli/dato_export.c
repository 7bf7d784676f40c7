// dato-export: a schedule from a dato-search checkpoint's Pareto front, as a JSON file that
// dato-generate --schedule applies.
//
//   dato-export results/<run>/checkpoint.h5 --list
//   dato-export results/<run>/checkpoint.h5 --pick knee --out knee.json
//   dato-export results/<run>/checkpoint.h5 --pick fastest --max-fid 30 --out fast.json
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "genome.h"
#include "nsga2.h"
#include "report.h"
#include "schedule.h"

static void usage(FILE* f) {
    fprintf(f,
            "usage: dato-export CHECKPOINT.h5 (--list | --pick knee | --pick fastest --max-fid X |\n"
            "                                  --pick best-fid --max-latency S | --index I) [--out FILE]\n"
            "\n"
            "Picks a schedule from the front of a dato-search checkpoint and writes it as schedule JSON.\n"
            "A finished run's front is the final one: re-measured latency and FID on the final image set.\n"
            "A run still going has its search-time front: latency and the search objective (FID, or the\n"
            "teacher distance, which --max-fid cannot compare with).\n"
            "\n"
            "  --list             print the front, fastest first, and exit\n"
            "  --pick knee        the knee: the member farthest from the line between the two extremes\n"
            "  --pick fastest     the fastest member with FID <= --max-fid X\n"
            "  --pick best-fid    the lowest-FID member with latency <= --max-latency S (seconds per image)\n"
            "  --index I          member I of --list\n"
            "  --out FILE         where to write the schedule (default: standard output)\n"
            "  --help             this text\n");
}

typedef struct {
    const uint8_t* genome; // (genome_bytes) in the checkpoint
    double latency, fid;   // fid: the final FID, or the search objective on a search-time front
} front_row;

static int cmp_rows(const void* a, const void* b) {
    const front_row *x = a, *y = b;
    if (x->latency != y->latency) return x->latency < y->latency ? -1 : 1;
    return (x->fid > y->fid) - (x->fid < y->fid);
}

int main(int argc, char** argv) {
    const char *path = NULL, *pick = NULL, *out = NULL;
    double max_fid = NAN, max_latency = NAN;
    int index = -1, list = 0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--list")) {
            list = 1;
            continue;
        }
        if (a[0] != '-') {
            if (path) {
                fprintf(stderr, "dato-export: one checkpoint only (got %s and %s)\n", path, a);
                return 2;
            }
            path = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dato-export: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char* v = argv[++i];
        char* end = NULL;
        if (!strcmp(a, "--pick")) pick = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--max-fid")) max_fid = strtod(v, &end);
        else if (!strcmp(a, "--max-latency")) max_latency = strtod(v, &end);
        else if (!strcmp(a, "--index")) index = (int)strtol(v, &end, 10);
        else {
            fprintf(stderr, "dato-export: unknown option %s (see --help)\n", a);
            return 2;
        }
        if (end && (*end || end == v)) {
            fprintf(stderr, "dato-export: %s: '%s' is not a number\n", a, v);
            return 2;
        }
    }
    int picks = !!pick + (index >= 0) + list;
    if (!path || picks != 1) {
        fprintf(stderr, "dato-export: give a checkpoint and exactly one of --list, --pick, --index (see --help)\n");
        return 2;
    }
    if (pick && strcmp(pick, "knee") && strcmp(pick, "fastest") && strcmp(pick, "best-fid")) {
        fprintf(stderr, "dato-export: --pick %s: expected knee, fastest or best-fid\n", pick);
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
        return 1;
    }
    int rc = 1, n = 0, chosen = -1;
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
    for (int i = 0; final && i < ck.n_final; i++)
        rows[n++] = (front_row){ck.final_genomes + (size_t)i * ck.genome_bytes, ck.final_scores[i * DATO_SEARCH_N_FINAL],
                                ck.final_scores[i * DATO_SEARCH_N_FINAL + 1]};
    for (int i = 0; !final && i < ck.pop; i++) {
        const uint8_t* g = ck.pop_genomes + (size_t)i * ck.genome_bytes;
        if (ranks[i]) continue;
        int dup = 0;
        for (int j = 0; j < n; j++) dup |= !memcmp(g, rows[j].genome, (size_t)ck.genome_bytes);
        if (!dup) rows[n++] = (front_row){g, ck.pop_objectives[2 * i], ck.pop_objectives[2 * i + 1]};
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_rows);
    const char* quality = fid_known ? "FID" : "teacher";
    if (list) {
        if (final)
            printf("%s: the final front, %d images per schedule; baseline %.4f ms/image, FID %.4f\n", path,
                   ck.cfg.final_images, 1e3 * ck.final_baseline[0], ck.final_baseline[1]);
        else
            printf("%s: generation %lld of a run still going, %lld evaluations, %d images per evaluation, "
                   "objective %s\n", path, (long long)ck.generation, (long long)ck.n_evaluations, ck.cfg.images,
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
            fprintf(stderr, "dato-export: %s\n", err.msg);
            goto done;
        }
    } else {
        int fastest = !strcmp(pick, "fastest");
        if (fastest && !fid_known) {
            fprintf(stderr, "dato-export: %s has no final front yet (the run has not finished) and searches the "
                            "teacher distance: there is no FID for --max-fid; use --pick knee or --index\n", path);
            goto done;
        }
        for (int i = 0; i < n; i++) {
            int ok = fastest ? rows[i].fid <= max_fid : rows[i].latency <= max_latency;
            if (!ok) continue;
            if (chosen < 0 || (fastest ? rows[i].latency < rows[chosen].latency : rows[i].fid < rows[chosen].fid))
                chosen = i;
        }
    }
    if (chosen < 0) {
        fprintf(stderr, "dato-export: no front member meets %s (see --list)\n",
                !strcmp(pick, "fastest") ? "--max-fid" : !strcmp(pick, "best-fid") ? "--max-latency" : "the pick");
        goto done;
    }
    if (dato_genome_to_schedule(&space, rows[chosen].genome, sched, &err)) {
        fprintf(stderr, "dato-export: %s: %s\n", path, err.msg);
        goto done;
    }
    snprintf(sched->model, sizeof sched->model, "%.255s", ck.cfg.model);
    snprintf(sched->sampler, sizeof sched->sampler, "%s", ck.cfg.sampler);
    char* json = NULL;
    if (out ? dato_schedule_save(sched, out, &err) : dato_schedule_to_json(sched, &json, &err)) {
        fprintf(stderr, "dato-export: %s\n", err.msg);
        goto done;
    }
    if (json) fputs(json, stdout);
    free(json);
    fprintf(stderr, "dato-export: front member %d: %.4f ms/image, %s %.4f (%s)%s%s\n", chosen,
            1e3 * rows[chosen].latency, quality, rows[chosen].fid, final ? "final front" : "search-time",
            out ? ", wrote " : "", out ? out : "");
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
