// UNet forward against diffusers (tools/make_fixtures.py) on three tiny models shaped like SD1.5
// (conv projections, F32), SD2 (linear projections, v-prediction, F16 weights) and SDXL
// (text_time add_embedding, transformer depth per level, BF16 weights in two shards).
// Each model is loaded twice: from its diffusers folder and from an LDM single file made here
// by renaming with the Python-side name map (ldm_names.tsv), config inferred from shapes.
// Tolerance: max|diff| / max|ref| <= 1e-4 (f32). Then the DeepCache invariant: a partial step
// at every depth, reading the cache its own full step wrote, equals the full output.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test_util.h"
#include "unet.h"
#include "unet_load.h"

#define TOL 1e-4

// Writes dir/unet's weights under LDM names (ldm_names.tsv) into one .safetensors file.
static int write_ldm_file(const char* dir, const char* out_path) {
    char path[512];
    snprintf(path, sizeof path, "%s/unet", dir);
    dato_weight_files wf;
    dato_error err;
    if (dato_weight_files_open(&wf, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    snprintf(path, sizeof path, "%s/ldm_names.tsv", dir);
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    int cap = 2048, n = 0;
    dato_st_write_entry* e = calloc((size_t)cap, sizeof *e);
    char** names = calloc((size_t)cap, sizeof *names);
    char line[1024];
    int ok = 1;
    while (fgets(line, sizeof line, f) && n < cap) {
        if (line[0] == '#') continue;
        char *dn = strtok(line, "\t"), *ln = strtok(NULL, "\t\n");
        if (!dn || !ln) continue;
        const dato_st_tensor* t = dato_weight_files_find(&wf, dn);
        if (!t) {
            fprintf(stderr, "ldm_names.tsv names %s, absent from the diffusers weights\n", dn);
            ok = 0;
            break;
        }
        names[n] = malloc(strlen(ln) + 32);
        sprintf(names[n], "model.diffusion_model.%s", ln);
        dato_dtype dt;
        dato_st_dtype_to_dato(t->dtype, &dt);
        e[n] = (dato_st_write_entry){.name = names[n], .dtype = dt, .ndim = t->ndim, .shape = t->shape, .data = t->data};
        n++;
    }
    fclose(f);
    if (ok && dato_safetensors_write(out_path, e, n, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        ok = 0;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(e);
    dato_weight_files_close(&wf);
    return ok && n > 0;
}

typedef struct {
    float *sample, *t, *ctx, *text_embeds, *time_ids, *ref;
    size_t n_sample, n_ctx, n_te, n_out;
    dato_tensor x, c, te, out, t_t, ids_t; // t_t (B) and ids_t (B, 6) view t and time_ids
    float* got;
} io_fixture;

static int load_io(const char* dir, const dato_unet_config* cfg, io_fixture* io) {
    char path[512];
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    dato_safetensors st;
    dato_error err;
    if (dato_safetensors_open(&st, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    memset(io, 0, sizeof *io);
    io->sample = fixture_f32(&st, "sample", &io->n_sample);
    io->t = fixture_f32(&st, "timestep", NULL);
    io->ctx = fixture_f32(&st, "encoder_hidden_states", &io->n_ctx);
    io->ref = fixture_f32(&st, "out", &io->n_out);
    const dato_st_tensor* xs = dato_safetensors_find(&st, "sample");
    const dato_st_tensor* cs = dato_safetensors_find(&st, "encoder_hidden_states");
    int ok = io->sample && io->t && io->ctx && io->ref && xs && cs;
    if (ok) {
        io->x = dato_tensor_f32_4d(io->sample, xs->shape[0], xs->shape[1], xs->shape[2], xs->shape[3]);
        io->c = dato_tensor_f32_3d(io->ctx, cs->shape[0], cs->shape[1], cs->shape[2]);
        io->got = malloc(io->n_out * sizeof *io->got);
        io->out = dato_tensor_f32_4d(io->got, xs->shape[0], cfg->out_channels, xs->shape[2], xs->shape[3]);
    }
    if (ok && cfg->add_embed_in) {
        io->text_embeds = fixture_f32(&st, "text_embeds", &io->n_te);
        io->time_ids = fixture_f32(&st, "time_ids", NULL);
        ok = io->text_embeds && io->time_ids;
        if (ok) io->te = dato_tensor_f32_2d(io->text_embeds, xs->shape[0], (int64_t)(io->n_te / xs->shape[0]));
    }
    dato_safetensors_close(&st);
    return ok;
}

static void free_io(io_fixture* io) {
    free(io->sample);
    free(io->t);
    free(io->ctx);
    free(io->ref);
    free(io->got);
    free(io->text_embeds);
    free(io->time_ids);
}

static dato_net_inputs inputs_of(io_fixture* io) {
    io->t_t = dato_tensor_f32_1d(io->t, io->x.shape[0]);
    io->ids_t = dato_tensor_f32_2d(io->time_ids, io->x.shape[0], 6);
    return (dato_net_inputs){.sample = &io->x, .timesteps = &io->t_t, .context = &io->c,
                              .text_embeds = io->text_embeds ? &io->te : NULL,
                              .time_ids = io->time_ids ? &io->ids_t : NULL};
}

// Runs a full forward of u on the fixture and returns max|diff|/max|ref|.
static double run_full(const dato_unet* u, io_fixture* io, dato_unet_ws* ws, int write_cache) {
    dato_error err;
    dato_net_plan plan = dato_unet_plan_full(u);
    plan.write_cache = write_cache;
    dato_net_inputs in = inputs_of(io);
    if (dato_unet_forward(u, ws, &plan, &in, &io->out, &err)) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return 1e30;
    }
    return test_rel_err(io->got, io->ref, io->n_out);
}

static void check_model(dato_backend* be, const char* name) {
    char dir[256], cfg_path[512];
    snprintf(dir, sizeof dir, "tests/fixtures/unet/%s", name);
    snprintf(cfg_path, sizeof cfg_path, "%s/unet/config.json", dir);
    dato_error err = {{0}};
    dato_unet_config cfg;
    dato_status st = dato_unet_config_from_json(&cfg, cfg_path, &err);
    CHECK(st == DATO_OK, "%s: %s", name, err.msg);
    if (st) return;
    io_fixture io;
    if (!load_io(dir, &cfg, &io)) {
        CHECK(0, "%s: cannot load io.safetensors", name);
        return;
    }

    // 1. diffusers folder
    dato_unet u;
    st = dato_unet_open(&u, dir, be, NULL, &err);
    CHECK(st == DATO_OK, "%s: open folder: %s", name, err.msg);
    if (st) {
        free_io(&io);
        return;
    }
    dato_unet_ws ws;
    st = dato_unet_ws_create(&ws, &u, (int)io.x.shape[0], (int)io.x.shape[2], (int)io.x.shape[3], (int)io.c.shape[1],
                             1, &err);
    CHECK(st == DATO_OK, "%s: workspace: %s", name, err.msg);
    if (st) {
        dato_unet_free(&u);
        free_io(&io);
        return;
    }
    double e = run_full(&u, &io, &ws, 1);
    printf("%-5s diffusers layout: max|diff|/max|ref| = %.3e (tol %.0e), workspace %.2f MB\n", name, e, TOL,
           (double)ws.arena.cap / 1e6);
    CHECK(e <= TOL, "%s: diffusers-layout UNet output off by %.3e", name, e);

    // 2. DeepCache invariant: partial steps reading their own full step's cache.
    float* full = malloc(io.n_out * sizeof *full);
    memcpy(full, io.got, io.n_out * sizeof *full);
    double worst = 0;
    for (int d = 1; d <= u.n_branches; d++) {
        dato_net_plan plan = {.depth = d};
        dato_net_inputs in = inputs_of(&io);
        st = dato_unet_forward(&u, &ws, &plan, &in, &io.out, &err);
        CHECK(st == DATO_OK, "%s: partial depth %d: %s", name, d, err.msg);
        double dd = test_max_abs_diff(io.got, full, io.n_out);
        worst = dd > worst ? dd : worst;
    }
    printf("%-5s partial steps at depths 1..%d vs the full step: max|diff| = %.3e (tol 0)\n", name, u.n_branches,
           worst);
    CHECK(worst == 0.0, "%s: a partial step differs from its full step by %.3e", name, worst);
    free(full);
    dato_unet_ws_free(&ws, &u);

    // 3. LDM single file, config inferred from shapes (+ what shapes cannot tell).
    char tmpl[] = "/tmp/dato-ldm-XXXXXX";
    char ldm_path[512];
    CHECK(mkdtemp(tmpl) != NULL, "mkdtemp");
    snprintf(ldm_path, sizeof ldm_path, "%s/%s.safetensors", tmpl, name);
    CHECK(write_ldm_file(dir, ldm_path), "%s: cannot write the LDM file", name);
    dato_unet_ldm_hints hints = {.norm_groups = cfg.norm_groups, .addition_time_embed_dim = cfg.addition_time_embed_dim};
    memcpy(hints.heads, cfg.heads, sizeof hints.heads);
    dato_unet v;
    st = dato_unet_open(&v, ldm_path, be, &hints, &err);
    CHECK(st == DATO_OK, "%s: open LDM file: %s", name, err.msg);
    if (!st) {
        st = dato_unet_ws_create(&ws, &v, (int)io.x.shape[0], (int)io.x.shape[2], (int)io.x.shape[3],
                                 (int)io.c.shape[1], 0, &err);
        CHECK(st == DATO_OK, "%s: LDM workspace: %s", name, err.msg);
        if (!st) {
            double el = run_full(&v, &io, &ws, 0);
            printf("%-5s LDM layout:       max|diff|/max|ref| = %.3e (tol %.0e)\n", name, el, TOL);
            CHECK(el <= TOL, "%s: LDM-layout UNet output off by %.3e", name, el);
            dato_unet_ws_free(&ws, &v);
        }
        dato_unet_free(&v);
    }
    unlink(ldm_path);
    rmdir(tmpl);
    dato_unet_free(&u);
    free_io(&io);
}

int main(void) {
    dato_backend be;
    dato_error err;
    if (dato_backend_cpu_init(&be, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    check_model(&be, "sd15");
    check_model(&be, "sd2v");
    check_model(&be, "sdxl");
    dato_backend_destroy(&be);
    return test_summary();
}
