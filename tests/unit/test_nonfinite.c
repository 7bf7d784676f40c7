// No NaN or infinity passes silently through a generation (issue 23): each stops it with an error
// naming where it first appeared. Weights at load (the tensor and the value), conditioning (the
// row), the guidance scale (NaN > 1 is false: it meant "no guidance"), the initial latents, and
// latents after a sampler step (the step), in the host loop and in the device loop (run here on the
// CPU backend), which must name the same step. On the tiny SD1.5-shaped UNet fixture.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pipeline.h"
#include "sampler.h"
#include "table_source.h"
#include "test_util.h"
#include "weight_files.h"

#define MODEL "tests/fixtures/unet/sd15"
#define CONTEXT MODEL "/loop_ddim.safetensors"
#define SIZE 16 // latent height and width

static dato_backend be;
static dato_pipeline pipe_;
static float* ctx; // (2, 8, 24) [uncond; cond] of the fixture

// Generates one image with the fixture's conditioning (context_edit, if set, changes one value
// first); returns the status, the message in err.
static dato_status generate(float guidance, dato_loop_kind loop, const float* init, long context_edit, float value,
                            dato_error* err) {
    const dato_unet_config* c = &pipe_.unet.cfg;
    float* out = malloc((size_t)c->out_channels * SIZE * SIZE * sizeof *out);
    dato_conditioning cond;
    dato_status st = dato_conditioning_repeat(&cond, 1, 8, c->cross_attention_dim, ctx, 0, NULL, NULL, err);
    if (st) {
        free(out);
        return st;
    }
    if (context_edit >= 0) cond.context[context_edit] = value;
    dato_generate_params gp = {.steps = 4, .sampler = DATO_SAMPLER_DDIM, .guidance = guidance, .seed = 3,
                               .height = SIZE, .width = SIZE, .cond = &cond, .init_latent = init, .loop = loop};
    st = dato_pipeline_generate(&pipe_, &gp, out, err);
    dato_conditioning_free(&cond);
    free(out);
    return st;
}

static void expect(const char* what, dato_status st, const dato_error* err, const char* needle1, const char* needle2) {
    CHECK(st == DATO_ERR_INVALID, "%s: status %d, want an error (%s)", what, (int)st, st ? err->msg : "accepted");
    if (!st) return;
    CHECK(strstr(err->msg, needle1) && strstr(err->msg, needle2), "%s: '%s' lacks '%s' / '%s'", what, err->msg,
          needle1, needle2);
    printf("%s: %s\n", what, err->msg);
}

static void test_arguments(void) {
    dato_error err;
    CHECK(generate(7.5f, DATO_LOOP_HOST, NULL, -1, 0, &err) == DATO_OK, "the fixture itself fails: %s", err.msg);
    expect("guidance nan", generate(NAN, DATO_LOOP_HOST, NULL, -1, 0, &err), &err, "guidance nan", "not a finite");
    expect("guidance inf", generate(INFINITY, DATO_LOOP_HOST, NULL, -1, 0, &err), &err, "guidance inf", "finite");
    // context (2, 8, 24): row 1 (cond), token 2, channel 5 = value 53 of its row
    expect("context nan", generate(7.5f, DATO_LOOP_HOST, NULL, 1 * 8 * 24 + 2 * 24 + 5, NAN, &err), &err,
           "conditioning 'context'", "row 1 of 2 ([uncond x 1; cond x 1]), value 53 of 192 is nan");
    expect("context inf", generate(1.0f, DATO_LOOP_DEVICE, NULL, 7, -INFINITY, &err), &err, "conditioning 'context'",
           "row 0 of 2");
    float init[4 * SIZE * SIZE] = {0}; // (1, 4, 16, 16)
    init[700] = INFINITY;
    expect("initial latents", generate(7.5f, DATO_LOOP_HOST, init, -1, 0, &err), &err, "initial latents",
           "value 700 is inf");
}

// The UNet made to overflow: a bias of 1e36 on its output makes the first prediction and the
// latents after step 1 huge but finite; step 2's update overflows (measured: NaN from step 2 with
// biases 1e36..3e37, inf from step 1 with 1e38). Both loops must name step 2.
static void test_latents_after_a_step(void) {
    float* bias = pipe_.unet.conv_out.b.data; // (4) on the CPU backend's host memory
    float kept = bias[0];
    bias[0] = 1e36f;
    dato_error host_err, dev_err;
    dato_status host = generate(7.5f, DATO_LOOP_HOST, NULL, -1, 0, &host_err);
    dato_status dev = generate(7.5f, DATO_LOOP_DEVICE, NULL, -1, 0, &dev_err);
    bias[0] = kept;
    expect("host loop", host, &host_err, "sampler: the latents are not finite after step 2 of 4 (model call 2 of 4",
           "latent value 0 is");
    expect("device loop", dev, &dev_err, "sampler: the latents are not finite after step 2 of 4 (model call 2 of 4",
           "image 0, channel 0 holds a NaN or infinity");
    dato_error err;
    CHECK(generate(7.5f, DATO_LOOP_DEVICE, NULL, -1, 0, &err) == DATO_OK, "after the bias is restored: %s", err.msg);
}

// The sampler's own loop, with a model that turns non-finite at call 2 of 5: step 3 is named.
static dato_status poisoned_model(void* vctx, const dato_sampler_call* call, const float* in, float* out,
                                  dato_error* err) {
    (void)vctx;
    (void)err;
    for (int i = 0; i < 64; i++) out[i] = call->call == 2 && i == 9 ? NAN : 0.1f * in[i];
    return DATO_OK;
}

static void test_sampler_loop(void) {
    dato_scheduler_config cfg;
    dato_error err;
    dato_sampler* s = NULL;
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)(i % 7) - 3.0f;
    dato_scheduler_config_default(&cfg);
    dato_status st = dato_sampler_create(&s, &cfg, DATO_SAMPLER_DDIM, 5, 64, &err);
    if (!st) st = dato_sampler_run(s, x, poisoned_model, NULL, NULL, &err);
    expect("sampler loop", st, &err, "after step 3 of 5 (model call 3 of 5", "latent value 9 is nan");
    dato_sampler_destroy(s);
}

// A weight file with one NaN (or infinite) value: the loader names the file, the tensor and the value.
static void test_weights(void) {
    dato_weight_files wf;
    dato_unet_config cfg;
    dato_unet u;
    dato_error err;
    if (dato_weight_files_open(&wf, MODEL "/unet", &err) ||
        dato_unet_config_from_json(&cfg, MODEL "/unet/config.json", &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    int n = dato_weight_files_count(&wf);
    table_source ts = {.t = calloc((size_t)n, sizeof *ts.t), .n = n, .label = "poisoned.safetensors"};
    static const struct {
        const char* tensor;
        size_t index;
        float value;
        const char* needle;
    } cases[] = {
        {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", 5, NAN,
         "tensor 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight': value 5 of 256 is nan"},
        {"conv_out.bias", 3, INFINITY, "tensor 'conv_out.bias': value 3 of 4 is inf"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        float* poisoned = NULL;
        for (int i = 0; i < n; i++) {
            ts.t[i] = *dato_weight_files_tensor(&wf, i);
            ts.t[i].name = strdup(ts.t[i].name);
            if (strcmp(ts.t[i].name, cases[k].tensor) != 0) continue;
            poisoned = malloc(ts.t[i].nbytes); // an F32 tensor: the fixture's dtype
            memcpy(poisoned, ts.t[i].data, ts.t[i].nbytes);
            poisoned[cases[k].index] = cases[k].value;
            ts.t[i].data = poisoned;
        }
        table_sort(&ts);
        dato_tensor_source src = table_as_source(&ts);
        dato_status st = dato_unet_build(&u, &cfg, &be, &err);
        if (!st) st = dato_unet_load_weights(&u, &src, DATO_LAYOUT_DIFFUSERS, "", &err);
        CHECK(poisoned && st == DATO_ERR_FORMAT, "%s: status %d (%s)", cases[k].tensor, (int)st, st ? err.msg : "");
        CHECK(st && strstr(err.msg, "poisoned.safetensors") && strstr(err.msg, cases[k].needle), "'%s' lacks '%s'",
              err.msg, cases[k].needle);
        if (st) printf("weights: %s\n", err.msg);
        if (u.params) dato_unet_free(&u);
        for (int i = 0; i < n; i++) free(ts.t[i].name);
        free(poisoned);
    }
    free(ts.t);
    dato_weight_files_close(&wf);
}

int main(void) {
    dato_error err;
    dato_safetensors st;
    if (dato_backend_cpu_init(&be, 2, &err) || dato_pipeline_open(&pipe_, MODEL, &be, NULL, &err) ||
        dato_safetensors_open(&st, CONTEXT, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    ctx = fixture_f32(&st, "context", NULL);
    dato_safetensors_close(&st);
    if (!ctx) return 1;
    test_arguments();
    test_latents_after_a_step();
    test_sampler_loop();
    test_weights();
    free(ctx);
    dato_pipeline_close(&pipe_);
    dato_backend_destroy(&be);
    return test_summary();
}
