// The parity fixtures of tests/parity on the CUDA backend, end to end: the three tiny UNets
// (tests/fixtures/unet: SD1.5-, SD2- and SDXL-shaped) with the DeepCache invariant, the three
// tiny VAE decoders (tests/fixtures/vae), prompt to image on the tiny SD1.5 pipeline
// (tests/fixtures/pipeline, DDIM 10 steps, CFG 7.5) and the DaTo runtime's baseline and
// DeepCache loops (tests/fixtures/dato, every UNet call's raw output). Each output is compared
// with the committed reference at the CPU parity tests' tolerances, and with the CPU backend's
// own output at max|diff| / max|cpu| <= 1e-4. Exits 77 (skipped) without CUDA or a GPU.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend_cuda.h"
#include "cuda_device.h"
#include "dato_loop_fixture.h"
#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"
#include "unet_load.h"
#include "vae.h"

#define TOL 1e-4         // vs the references of test_unet/vae/dato_parity, and vs the CPU backend
#define TOL_LATENTS 1e-3 // the pipeline's final latents vs diffusers (test_pipeline_parity)
#define TOL_PARTIAL 1e-5 // a partial step vs its own full step (exact on the CPU; f32 rel here)

// A tensor shaped like the host tensor t in memory on be, holding a copy of t (data NULL on failure).
static dato_tensor to_device(dato_backend* be, const dato_tensor* t) {
    size_t bytes = dato_tensor_nbytes(t);
    dato_tensor d = dato_tensor_make(be->ops->alloc(be, bytes), t->dtype, be->device, t->ndim, t->shape);
    if (d.data) be->ops->upload(be, d.data, t->data, bytes);
    return d;
}

// An output tensor on be of shape (n0, n1, n2, n3) filled with NaN, so a skipped write shows.
static dato_tensor poisoned(dato_backend* be, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    size_t n = (size_t)(n0 * n1 * n2 * n3);
    float* nan = malloc(n * sizeof *nan);
    for (size_t i = 0; i < n; i++) nan[i] = NAN;
    dato_tensor h = dato_tensor_f32_4d(nan, n0, n1, n2, n3);
    dato_tensor d = to_device(be, &h);
    free(nan);
    return d;
}

// ---- UNet ------------------------------------------------------------------------------------------

typedef struct {
    float *sample, *t, *ctx, *text_embeds, *time_ids, *ref; // host, from io.safetensors
    size_t n_te, n_out;
    int64_t xs[4], cs[3];
} unet_io;

static int unet_io_load(const char* dir, int sdxl, unet_io* io) {
    char path[512];
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    dato_safetensors st;
    dato_error err;
    memset(io, 0, sizeof *io);
    if (dato_safetensors_open(&st, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    const dato_st_tensor* x = dato_safetensors_find(&st, "sample");
    const dato_st_tensor* c = dato_safetensors_find(&st, "encoder_hidden_states");
    io->sample = fixture_f32(&st, "sample", NULL);
    io->t = fixture_f32(&st, "timestep", NULL);
    io->ctx = fixture_f32(&st, "encoder_hidden_states", NULL);
    io->ref = fixture_f32(&st, "out", &io->n_out);
    if (sdxl) {
        io->text_embeds = fixture_f32(&st, "text_embeds", &io->n_te);
        io->time_ids = fixture_f32(&st, "time_ids", NULL);
    }
    int ok = x && c && x->ndim == 4 && c->ndim == 3 && io->sample && io->t && io->ctx && io->ref &&
             (!sdxl || (io->text_embeds && io->time_ids));
    if (ok) {
        memcpy(io->xs, x->shape, sizeof io->xs);
        memcpy(io->cs, c->shape, sizeof io->cs);
    }
    dato_safetensors_close(&st);
    return ok;
}

static void unet_io_free(unet_io* io) {
    free(io->sample);
    free(io->t);
    free(io->ctx);
    free(io->text_embeds);
    free(io->time_ids);
    free(io->ref);
}

// Runs the fixture's full forward on be into got (host, n_out) and then every partial depth,
// reading the cache that full step wrote; *partial gets the worst max|diff| / max|full| of those.
static dato_status unet_run(dato_backend* be, const char* dir, const unet_io* io, float* got, double* partial,
                            dato_error* err) {
    dato_unet u;
    DATO_TRY(dato_unet_open(&u, dir, be, NULL, err));
    const int64_t* xs = io->xs;
    dato_unet_ws ws = {0};
    dato_tensor hx = dato_tensor_f32_4d(io->sample, xs[0], xs[1], xs[2], xs[3]);
    dato_tensor hc = dato_tensor_f32_3d(io->ctx, io->cs[0], io->cs[1], io->cs[2]);
    dato_tensor hte = dato_tensor_f32_2d(io->text_embeds ? io->text_embeds : io->sample, xs[0],
                                         io->text_embeds ? (int64_t)io->n_te / xs[0] : 1);
    dato_tensor x = to_device(be, &hx);   // (B, Ci, H, W)
    dato_tensor c = to_device(be, &hc);   // (B, S, X)
    dato_tensor te = to_device(be, &hte); // (B, P), SDXL only
    dato_tensor ht = dato_tensor_f32_1d(io->t, xs[0]);
    dato_tensor hids = dato_tensor_f32_2d(io->time_ids ? io->time_ids : io->sample, xs[0], 6);
    dato_tensor t = to_device(be, &ht);     // (B)
    dato_tensor ids = to_device(be, &hids); // (B, 6), SDXL only
    dato_tensor y = poisoned(be, xs[0], u.cfg.out_channels, xs[2], xs[3]); // (B, Co, H, W)
    float* part = malloc(io->n_out * sizeof *part);
    dato_status st = x.data && c.data && te.data && t.data && ids.data && y.data && part
                         ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "unet %s: cannot allocate the inputs", dir);
    if (!st) st = dato_unet_ws_create(&ws, &u, (int)xs[0], (int)xs[2], (int)xs[3], (int)io->cs[1], 1, err);
    dato_net_inputs in = {.sample = &x, .timesteps = &t, .context = &c,
                           .text_embeds = io->text_embeds ? &te : NULL, .time_ids = io->time_ids ? &ids : NULL};
    dato_net_plan plan = dato_unet_plan_full(&u);
    plan.write_cache = 1;
    if (!st) st = dato_unet_forward(&u, &ws, &plan, &in, &y, err);
    if (!st) be->ops->download(be, got, y.data, io->n_out * sizeof *got);
    *partial = 0;
    for (int d = 1; d <= u.n_branches && !st; d++) {
        dato_net_plan pd = {.depth = d};
        st = dato_unet_forward(&u, &ws, &pd, &in, &y, err);
        if (!st) be->ops->download(be, part, y.data, io->n_out * sizeof *part);
        double e = test_rel_err(part, got, io->n_out);
        *partial = e > *partial || e != e ? e : *partial;
    }
    free(part);
    if (ws.block) dato_unet_ws_free(&ws, &u);
    void* bufs[] = {x.data, c.data, te.data, t.data, ids.data, y.data};
    for (int i = 0; i < 6; i++)
        if (bufs[i]) be->ops->free(be, bufs[i]);
    dato_unet_free(&u);
    return st;
}

static void check_unet(dato_backend* cpu, dato_backend* gpu, const char* name) {
    char dir[256], cfg_path[512];
    snprintf(dir, sizeof dir, "tests/fixtures/unet/%s", name);
    snprintf(cfg_path, sizeof cfg_path, "%s/unet/config.json", dir);
    dato_error err = {{0}};
    dato_unet_config cfg;
    unet_io io;
    if (dato_unet_config_from_json(&cfg, cfg_path, &err) || !unet_io_load(dir, cfg.add_embed_in != 0, &io)) {
        CHECK(0, "unet %s: fixture unreadable: %s", name, err.msg);
        return;
    }
    float* on_cpu = malloc(io.n_out * sizeof *on_cpu);
    float* on_gpu = malloc(io.n_out * sizeof *on_gpu);
    double part_cpu = 0, part_gpu = 0;
    dato_status sc = unet_run(cpu, dir, &io, on_cpu, &part_cpu, &err);
    CHECK(sc == DATO_OK, "unet %s on the CPU: %s", name, err.msg);
    dato_status sg = unet_run(gpu, dir, &io, on_gpu, &part_gpu, &err);
    CHECK(sg == DATO_OK, "unet %s on CUDA: %s", name, err.msg);
    if (!sc && !sg) {
        double e_ref = test_rel_err(on_gpu, io.ref, io.n_out), e_cpu = test_rel_err(on_gpu, on_cpu, io.n_out);
        printf("unet %-5s cuda vs diffusers %.3e, vs cpu %.3e (tol %.0e); partial steps vs full: cuda %.3e "
               "(tol %.0e), cpu %.3e\n", name, e_ref, e_cpu, TOL, part_gpu, TOL_PARTIAL, part_cpu);
        CHECK(e_ref <= TOL, "unet %s: CUDA output off diffusers' by %.3e", name, e_ref);
        CHECK(e_cpu <= TOL, "unet %s: CUDA output off the CPU backend's by %.3e", name, e_cpu);
        CHECK(part_gpu <= TOL_PARTIAL, "unet %s: a CUDA partial step differs from its full step by %.3e", name,
              part_gpu);
    }
    free(on_cpu);
    free(on_gpu);
    unet_io_free(&io);
}

// ---- VAE -------------------------------------------------------------------------------------------

// Decodes latents (host, shape ls) with the VAE folder dir on be into img (host, shape is).
static dato_status vae_run(dato_backend* be, const char* dir, const float* latents, const int64_t* ls,
                           const int64_t* is, float* img, dato_error* err) {
    dato_vae v;
    DATO_TRY(dato_vae_open_folder(&v, dir, be, err));
    dato_vae_ws ws = {0};
    dato_tensor hz = dato_tensor_f32_4d((float*)latents, ls[0], ls[1], ls[2], ls[3]);
    dato_tensor z = to_device(be, &hz);                       // (B, zc, h, w)
    dato_tensor x = poisoned(be, is[0], is[1], is[2], is[3]); // (B, 3, H, W)
    dato_status st = z.data && x.data ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "vae %s: cannot allocate", dir);
    if (!st) st = dato_vae_ws_create(&ws, &v, (int)ls[0], (int)ls[2], (int)ls[3], err);
    if (!st) st = dato_vae_decode(&v, &ws, &z, &x, err);
    if (!st) be->ops->download(be, img, x.data, dato_tensor_nbytes(&x));
    if (ws.block) dato_vae_ws_free(&ws, &v);
    if (z.data) be->ops->free(be, z.data);
    if (x.data) be->ops->free(be, x.data);
    dato_vae_free(&v);
    return st;
}

static void check_vae(dato_backend* cpu, dato_backend* gpu, const char* name) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "tests/fixtures/vae/%s", name);
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    dato_error err = {{0}};
    dato_safetensors st;
    if (dato_safetensors_open(&st, path, &err)) {
        CHECK(0, "vae %s: %s", name, err.msg);
        return;
    }
    size_t n_img = 0;
    float* lat = fixture_f32(&st, "latents", NULL);
    float* ref = fixture_f32(&st, "image", &n_img);
    const dato_st_tensor* lt = dato_safetensors_find(&st, "latents");
    const dato_st_tensor* it = dato_safetensors_find(&st, "image");
    if (lat && ref && lt && it && lt->ndim == 4 && it->ndim == 4) {
        float* on_cpu = malloc(n_img * sizeof *on_cpu);
        float* on_gpu = malloc(n_img * sizeof *on_gpu);
        dato_status sc = vae_run(cpu, dir, lat, lt->shape, it->shape, on_cpu, &err);
        CHECK(sc == DATO_OK, "vae %s on the CPU: %s", name, err.msg);
        dato_status sg = vae_run(gpu, dir, lat, lt->shape, it->shape, on_gpu, &err);
        CHECK(sg == DATO_OK, "vae %s on CUDA: %s", name, err.msg);
        if (!sc && !sg) {
            double e_ref = test_rel_err(on_gpu, ref, n_img), e_cpu = test_rel_err(on_gpu, on_cpu, n_img);
            printf("vae  %-5s cuda vs diffusers %.3e, vs cpu %.3e (tol %.0e)\n", name, e_ref, e_cpu, TOL);
            CHECK(e_ref <= TOL, "vae %s: CUDA image off diffusers' by %.3e", name, e_ref);
            CHECK(e_cpu <= TOL, "vae %s: CUDA image off the CPU backend's by %.3e", name, e_cpu);
        }
        free(on_cpu);
        free(on_gpu);
    } else {
        CHECK(0, "vae %s: fixture incomplete", name);
    }
    free(lat);
    free(ref);
    dato_safetensors_close(&st);
}

// ---- prompt to image (tests/fixtures/pipeline) -------------------------------------------------------

typedef struct {
    float* context;  // (2B, S, X) [uncond; cond]
    float* latents;  // (B, C, h, w) final
    uint8_t* rgb;    // (B, H, W, 3)
} prompt_out;

// Encodes, denoises from the fixture's latents and decodes the sd15_negative case on be.
static dato_status prompt_run(dato_backend* be, const cJSON* js, const float* init, const int64_t* ls, size_t n_img,
                              prompt_out* o, dato_error* err) {
    const cJSON* pr = cJSON_GetObjectItem(js, "prompt");
    const cJSON* ng = cJSON_GetObjectItem(js, "negative_prompt");
    int B = (int)ls[0];
    const char *prompts[8], *negs[8];
    for (int i = 0; i < B && i < 8; i++) {
        prompts[i] = cJSON_GetArrayItem(pr, i)->valuestring;
        negs[i] = cJSON_GetArrayItem(ng, i)->valuestring;
    }
    dato_pipeline p;
    DATO_TRY(dato_pipeline_open(&p, "tests/fixtures/pipeline/sd15", be, NULL, err));
    dato_conditioning cond = {0};
    dato_status st = dato_pipeline_encode(&p, prompts, negs, B, cJSON_GetObjectItem(js, "height")->valueint,
                                          cJSON_GetObjectItem(js, "width")->valueint, &cond, err);
    size_t n_ctx = (size_t)2 * B * cond.seq * cond.dim, n_lat = (size_t)(ls[0] * ls[1] * ls[2] * ls[3]);
    o->context = malloc((n_ctx ? n_ctx : 1) * sizeof(float));
    o->latents = malloc(n_lat * sizeof(float));
    o->rgb = malloc(n_img);
    if (!st) memcpy(o->context, cond.context, n_ctx * sizeof(float));
    dato_generate_params gp = {.steps = cJSON_GetObjectItem(js, "num_inference_steps")->valueint,
                               .sampler = p.sched.kind,
                               .guidance = (float)cJSON_GetObjectItem(js, "guidance_scale")->valuedouble,
                               .height = (int)ls[2], .width = (int)ls[3], .cond = &cond, .init_latent = init};
    if (!st) st = dato_pipeline_generate(&p, &gp, o->latents, err);
    int ch = 0;
    if (!st) st = dato_pipeline_decode(&p, o->latents, B, (int)ls[2], (int)ls[3], o->rgb, NULL, &ch, err);
    if (!st && ch != 3) st = dato_fail(err, DATO_ERR_INVALID, "decode gave %d channels", ch);
    dato_conditioning_free(&cond);
    dato_pipeline_close(&p);
    return st;
}

static void prompt_out_free(prompt_out* o) {
    free(o->context);
    free(o->latents);
    free(o->rgb);
}

static void check_prompt(dato_backend* cpu, dato_backend* gpu) {
    const char* name = "sd15_negative";
    size_t n = 0;
    char* text = (char*)read_bytes("tests/fixtures/pipeline/reference/sd15_negative.json", &n);
    char* z = text ? realloc(text, n + 1) : NULL;
    if (z) z[n] = 0;
    cJSON* js = z ? cJSON_Parse(z) : NULL;
    free(z);
    dato_error err = {{0}};
    dato_safetensors st;
    if (!js || dato_safetensors_open(&st, "tests/fixtures/pipeline/reference/sd15_negative.safetensors", &err)) {
        CHECK(0, "%s: reference unreadable: %s", name, err.msg);
        cJSON_Delete(js);
        return;
    }
    size_t n_lat = 0, n_pe = 0, n_ne = 0;
    float* init = fixture_f32(&st, "latents_in", NULL);
    float* ref_lat = fixture_f32(&st, "latents_out", &n_lat);
    float* pe = fixture_f32(&st, "prompt_embeds", &n_pe);
    float* ne = fixture_f32(&st, "negative_prompt_embeds", &n_ne);
    const dato_st_tensor* ls = dato_safetensors_find(&st, "latents_in");
    const dato_st_tensor* img = dato_safetensors_find(&st, "image_u8");
    if (init && ref_lat && pe && ne && ls && img && ls->ndim == 4) {
        size_t n_img = (size_t)img->numel;
        prompt_out oc = {0}, og = {0};
        dato_status sc = prompt_run(cpu, js, init, ls->shape, n_img, &oc, &err);
        CHECK(sc == DATO_OK, "%s on the CPU: %s", name, err.msg);
        dato_status sg = prompt_run(gpu, js, init, ls->shape, n_img, &og, &err);
        CHECK(sg == DATO_OK, "%s on CUDA: %s", name, err.msg);
        if (!sc && !sg) {
            // context rows [uncond; cond]: the negative embeddings come first
            double e_ctx = fmax(test_rel_err(og.context, ne, n_ne), test_rel_err(og.context + n_ne, pe, n_pe));
            double e_ctx_cpu = test_rel_err(og.context, oc.context, n_ne + n_pe);
            double e_lat = test_rel_err(og.latents, ref_lat, n_lat);
            double e_lat_cpu = test_rel_err(og.latents, oc.latents, n_lat);
            int worst = 0;
            const uint8_t* ref = img->data;
            for (size_t i = 0; i < n_img; i++) {
                int d = abs((int)og.rgb[i] - (int)ref[i]);
                worst = d > worst ? d : worst;
            }
            printf("%s cuda: context vs transformers %.3e, vs cpu %.3e (tol %.0e); latents vs diffusers %.3e "
                   "(tol %.0e), vs cpu %.3e (tol %.0e); image max |diff| %d/255 (tol 2/255)\n",
                   name, e_ctx, e_ctx_cpu, TOL, e_lat, TOL_LATENTS, e_lat_cpu, TOL, worst);
            CHECK(e_ctx <= TOL && e_ctx_cpu <= TOL, "%s: CUDA context off by %.3e / %.3e", name, e_ctx, e_ctx_cpu);
            CHECK(e_lat <= TOL_LATENTS, "%s: CUDA final latents off diffusers' by %.3e", name, e_lat);
            CHECK(e_lat_cpu <= TOL, "%s: CUDA final latents off the CPU backend's by %.3e", name, e_lat_cpu);
            CHECK(worst <= 2, "%s: CUDA image off by %d/255", name, worst);
        }
        prompt_out_free(&oc);
        prompt_out_free(&og);
    } else {
        CHECK(0, "%s: reference incomplete", name);
    }
    free(init);
    free(ref_lat);
    free(pe);
    free(ne);
    dato_safetensors_close(&st);
    cJSON_Delete(js);
}

// ---- main (the DaTo loops without pruning: dato_loop_fixture.h) --------------------------------------

int main(void) {
    int count = dato_cuda_device_count();
    if (count == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    dato_error err = {{0}};
    dato_backend cpu, gpu;
    if (dato_backend_cpu_init(&cpu, 0, &err) || dato_backend_cuda_init(&gpu, 0, &err)) {
        fprintf(stderr, "backend init: %s\n", err.msg);
        return 1;
    }
    check_unet(&cpu, &gpu, "sd15");
    check_unet(&cpu, &gpu, "sd2v");
    check_unet(&cpu, &gpu, "sdxl");
    check_vae(&cpu, &gpu, "sd");
    check_vae(&cpu, &gpu, "xl");
    check_vae(&cpu, &gpu, "shift");
    check_prompt(&cpu, &gpu);
    check_fixture_loop(&cpu, &gpu, "baseline_ddim", TOL);
    check_fixture_loop(&cpu, &gpu, "deepcache_ddim", TOL);
    dato_backend_destroy(&gpu);
    dato_backend_destroy(&cpu);
    return test_summary();
}
