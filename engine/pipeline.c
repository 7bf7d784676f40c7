#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "rng.h"

dato_status dato_pipeline_open(dato_pipeline* p, const char* path, dato_backend* be, const dato_unet_ldm_hints* hints,
                               dato_error* err) {
    memset(p, 0, sizeof *p);
    p->be = be;
    dato_scheduler_config_default(&p->sched);
    if (dato_is_dir(path)) {
        char sched_path[sizeof p->sched_path];
        dato_status st = dato_path_join(sched_path, sizeof sched_path, path, "scheduler/scheduler_config.json", err);
        if (st) return st;
        if (dato_is_file(sched_path)) {
            if ((st = dato_scheduler_config_load(sched_path, NULL, &p->sched, err))) return st;
            memcpy(p->sched_path, sched_path, sizeof sched_path);
        }
    }
    return dato_unet_open(&p->unet, path, be, hints, err);
}

void dato_pipeline_close(dato_pipeline* p) {
    dato_unet_free(&p->unet);
    memset(p, 0, sizeof *p);
}

// The model function the sampler calls: batch [x; x] through the UNet with [uncond; cond]
// conditioning and combine eps = u + g (c - u).
typedef struct {
    dato_pipeline* p;
    const dato_generate_params* gp;
    int n_calls;
    dato_unet_ws ws;
    int batch, cfg;               // images; 1 when guidance runs both halves
    size_t latent_numel;          // one image's latent elements
    float guidance;
    float* x2;                    // (cfg ? 2B : B, C, h, w) model input
    float* y2;                    // (cfg ? 2B : B, C, h, w) model output
    float* t2;                    // (2B) timesteps on the host
    float* ids;                   // (2B, 6) SDXL time ids
    dato_tensor x, ctx, te, y;    // device views
    void* dev;                    // device block for x, ctx, te, y (== host memory on the CPU)
} guided_model;

static dato_status guided_model_call(void* vctx, const dato_sampler_call* call, const float* model_in, float* model_out,
                                     dato_error* err) {
    guided_model* g = vctx;
    dato_backend* be = g->p->be;
    int B = g->batch, n2 = g->cfg ? 2 * B : B;
    size_t bytes = (size_t)B * g->latent_numel * sizeof(float);
    for (int half = 0; half < n2 / B; half++) memcpy(g->x2 + (size_t)half * B * g->latent_numel, model_in, bytes);
    for (int i = 0; i < n2; i++) g->t2[i] = call->timestep;
    be->ops->upload(be, g->x.data, g->x2, (size_t)n2 * g->latent_numel * sizeof(float));
    dato_unet_plan plan = dato_unet_plan_full(&g->p->unet);
    dato_unet_inputs in = {.sample = &g->x, .timesteps = g->t2, .context = &g->ctx,
                           .text_embeds = g->te.data ? &g->te : NULL, .time_ids = g->ids};
    dato_status st = dato_unet_forward(&g->p->unet, &g->ws, &plan, &in, &g->y, err);
    if (st) return st;
    be->ops->download(be, g->y2, g->y.data, (size_t)n2 * g->latent_numel * sizeof(float));
    if (g->gp->progress) g->gp->progress(g->gp->progress_ctx, call->call + 1, g->n_calls);
    size_t n = (size_t)B * g->latent_numel;
    if (!g->cfg) {
        memcpy(model_out, g->y2, n * sizeof(float));
        return DATO_OK;
    }
    const float *u = g->y2, *c = g->y2 + n; // [uncond; cond]
    for (size_t i = 0; i < n; i++) model_out[i] = u[i] + g->guidance * (c[i] - u[i]);
    return DATO_OK;
}

// Copies rows [uncond; cond] (each of `row` floats) into B copies per half: [u x B; c x B],
// or only the cond rows when guidance is off.
static void expand_halves(float* dst, const float* src, size_t row, int B, int cfg) {
    int k = 0;
    for (int half = cfg ? 0 : 1; half < 2; half++)
        for (int i = 0; i < B; i++, k++) memcpy(dst + (size_t)k * row, src + (size_t)half * row, row * sizeof(float));
}

dato_status dato_pipeline_generate(dato_pipeline* p, const dato_generate_params* gp, float* out, dato_error* err) {
    const dato_unet_config* c = &p->unet.cfg;
    dato_backend* be = p->be;
    if (gp->batch < 1 || gp->steps < 1 || gp->height < 1 || gp->width < 1 || gp->seq < 1 || !gp->context)
        return dato_fail(err, DATO_ERR_INVALID, "generate: batch, steps, size and context length must be >= 1 and "
                         "the context given");
    if (c->add_embed_in && (!gp->text_embeds || !gp->time_ids))
        return dato_fail(err, DATO_ERR_INVALID, "generate: this model (SDXL-style) needs text_embeds and time_ids");
    int B = gp->batch, cfg = gp->guidance > 1.0f, n2 = cfg ? 2 * B : B;
    size_t latent = (size_t)c->in_channels * gp->height * gp->width;
    size_t ctx_row = (size_t)gp->seq * c->cross_attention_dim;
    int P = c->add_embed_in ? c->add_embed_in - 6 * c->addition_time_embed_dim : 0;

    guided_model g = {.p = p, .gp = gp, .batch = B, .cfg = cfg, .latent_numel = latent, .guidance = gp->guidance};
    dato_sampler* s = NULL;
    float *host = NULL, *ctx_host = NULL, *te_host = NULL;
    // Keys the file lacks take the running sampler's defaults, as diffusers' from_config does.
    dato_scheduler_config sched = p->sched;
    dato_status st = DATO_OK;
    if (p->sched_path[0] && gp->sampler != p->sched.kind &&
        (st = dato_scheduler_config_load(p->sched_path, &gp->sampler, &sched, err)))
        return st;
    if ((st = dato_sampler_create(&s, &sched, gp->sampler, gp->steps, (size_t)B * latent, err))) return st;
    g.n_calls = dato_sampler_num_calls(s);
    st = dato_unet_ws_create(&g.ws, &p->unet, n2, gp->height, gp->width, gp->seq, 0, err);
    if (st) goto done;

    // Host buffers: x2, y2, t2, ids, and the expanded conditioning.
    size_t host_n = 2 * (size_t)n2 * latent + (size_t)n2 + (size_t)n2 * 6;
    host = calloc(host_n, sizeof *host);
    ctx_host = malloc((size_t)n2 * ctx_row * sizeof *ctx_host);
    te_host = P ? malloc((size_t)n2 * P * sizeof *te_host) : NULL;
    size_t dev_bytes = ((size_t)2 * n2 * latent + (size_t)n2 * ctx_row + (size_t)n2 * P) * sizeof(float);
    g.dev = be->ops->alloc(be, dev_bytes);
    if (!host || !ctx_host || (P && !te_host) || !g.dev) {
        st = dato_fail(err, DATO_ERR_NOMEM, "generate: cannot allocate the loop's buffers");
        goto done;
    }
    g.x2 = host;
    g.y2 = g.x2 + (size_t)n2 * latent;
    g.t2 = g.y2 + (size_t)n2 * latent;
    g.ids = c->add_embed_in ? g.t2 + n2 : NULL;
    float* d = g.dev;
    g.x = dato_tensor_make(d, DATO_F32, be->device, 4, (int64_t[]){n2, c->in_channels, gp->height, gp->width});
    g.y = dato_tensor_make(d + (size_t)n2 * latent, DATO_F32, be->device, 4,
                           (int64_t[]){n2, c->out_channels, gp->height, gp->width});
    g.ctx = dato_tensor_make(d + 2 * (size_t)n2 * latent, DATO_F32, be->device, 3,
                             (int64_t[]){n2, gp->seq, c->cross_attention_dim});
    expand_halves(ctx_host, gp->context, ctx_row, B, cfg);
    be->ops->upload(be, g.ctx.data, ctx_host, (size_t)n2 * ctx_row * sizeof(float));
    if (P) {
        g.te = dato_tensor_make(d + 2 * (size_t)n2 * latent + (size_t)n2 * ctx_row, DATO_F32, be->device, 2,
                                (int64_t[]){n2, P});
        expand_halves(te_host, gp->text_embeds, (size_t)P, B, cfg);
        be->ops->upload(be, g.te.data, te_host, (size_t)n2 * P * sizeof(float));
        expand_halves(g.ids, gp->time_ids, 6, B, cfg);
    }

    // Initial latent: per-image noise streams so an image does not depend on its batch.
    float sigma = dato_sampler_init_noise_sigma(s);
    for (int i = 0; i < B; i++) {
        float* xi = out + (size_t)i * latent;
        if (gp->init_latent) {
            memcpy(xi, gp->init_latent + (size_t)i * latent, latent * sizeof(float));
        } else {
            dato_rng r;
            dato_rng_seed_stream(&r, gp->seed, (uint64_t)i);
            dato_rng_fill_normal(&r, xi, latent);
        }
        for (size_t k = 0; k < latent; k++) xi[k] *= sigma;
    }
    dato_rng noise_rng;
    dato_rng_seed_stream(&noise_rng, gp->seed, 0x5a4d504c4552ull); // the sampler's own stream ("SAMPLER")
    st = dato_sampler_run(s, out, guided_model_call, &g, &noise_rng, err);

done:
    if (g.dev) be->ops->free(be, g.dev);
    free(host);
    free(ctx_host);
    free(te_host);
    if (g.ws.block) dato_unet_ws_free(&g.ws, &p->unet);
    dato_sampler_destroy(s);
    return st;
}
