// Weights converted at load (--dtype, engine/io/weight_dtype.h). On a recording fake backend (host
// memory tagged as the CUDA device, so half weights are allowed; every other op is the null
// backend's), the SD1.5-shaped fixture pipeline (UNet, VAE, text encoder) is loaded with F16 and
// with BF16 weights, and each model is checked:
// - exactly its Linear/Conv2d weights became half: every 2-D or 4-D parameter but the text
//   encoder's token and position embeddings (found by their slots, not their names);
// - their bits equal dato_f32_to_f16 / dato_f32_to_bf16 of the file's values (0 bits off), and
//   every other parameter is the file's f32 value (0 bits off);
// - the weight block the loader allocated is exactly the planned size (half GEMM weights, f32
//   rest, each slot 64-byte aligned) and smaller than the f32 block.
// Then the CPU and null backends refuse half weights with the message, and so does a late
// dato_unet_set_weight_dtype once the weights are loaded.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "test_util.h"
#include "weight_dtype.h"

#define MODEL "tests/fixtures/pipeline/sd15"
#define MAX_ALLOCS 64

// ---- the recording backend -----------------------------------------------------------------------------

typedef struct {
    dato_backend be;          // first member: ops receive &hb->be
    dato_backend_ops ops;     // the null backend's, with host memory
    void* ptr[MAX_ALLOCS];    // every live allocation and its size
    size_t bytes[MAX_ALLOCS];
    int n;
} host_backend;

static void* hb_alloc(dato_backend* be, size_t bytes) {
    host_backend* hb = (host_backend*)be;
    if (hb->n == MAX_ALLOCS) return NULL;
    void* p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p) {
        hb->ptr[hb->n] = p;
        hb->bytes[hb->n++] = bytes;
    }
    return p;
}
static void hb_free(dato_backend* be, void* p) {
    host_backend* hb = (host_backend*)be;
    for (int i = 0; i < hb->n; i++)
        if (hb->ptr[i] == p) hb->ptr[i] = NULL;
    free(p);
}
static void hb_copy(dato_backend* be, void* dst, const void* src, size_t bytes) {
    (void)be;
    memcpy(dst, src, bytes);
}

static void host_backend_init(host_backend* hb) {
    memset(hb, 0, sizeof *hb);
    dato_backend null;
    dato_backend_null_init(&null);
    hb->ops = *null.ops;
    hb->ops.alloc = hb_alloc;
    hb->ops.free = hb_free;
    hb->ops.upload = hb_copy;
    hb->ops.download = hb_copy;
    hb->be = (dato_backend){.name = "fake-cuda", .device = DATO_DEV_CUDA, .ops = &hb->ops, .impl = NULL};
}

// Bytes of the allocation at p; 0 if p was never allocated.
static size_t alloc_size(const host_backend* hb, const void* p) {
    for (int i = 0; i < hb->n; i++)
        if (hb->ptr[i] == p) return hb->bytes[i];
    return 0;
}

// ---- checks per parameter ---------------------------------------------------------------------------------

typedef struct {
    int n_half, n_f32;         // slots checked in each dtype
    int wrong_dtype;           // slots whose dtype is not the expected one
    long long bits_off;        // elements whose stored bits differ from the expected ones
    size_t planned, planned_f32; // block bytes: as loaded, and all in f32
} model_stats;

// Checks one slot against the file's tensor: dtype, then every element's bits.
static void check_slot(const dato_weight_files* wf, const char* name, const char* alt, const dato_tensor* slot,
                       int is_gemm, dato_dtype dt, model_stats* s) {
    size_t n = (size_t)dato_tensor_numel(slot);
    dato_dtype want = is_gemm ? dt : DATO_F32;
    s->planned += dato_arena_bytes(want, n);
    s->planned_f32 += dato_arena_bytes(DATO_F32, n);
    if (slot->dtype != want) {
        s->wrong_dtype++;
        fprintf(stderr, "%s: %s, expected %s\n", name, dato_dtype_name(slot->dtype), dato_dtype_name(want));
        return;
    }
    *(want == DATO_F32 ? &s->n_f32 : &s->n_half) += 1;
    const dato_st_tensor* t = dato_weight_files_find(wf, name);
    if (!t && alt) t = dato_weight_files_find(wf, alt);
    float* ref = malloc(n * sizeof *ref); // (numel) the file's values in f32
    dato_error err;
    if (!t || !ref || dato_st_tensor_to_f32(t, ref, n, &err)) {
        fprintf(stderr, "%s: cannot read the file's tensor\n", name);
        s->bits_off += (long long)n;
        free(ref);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int same;
        if (want == DATO_F32) {
            same = memcmp((const float*)slot->data + i, ref + i, sizeof *ref) == 0;
        } else {
            uint16_t expect = want == DATO_F16 ? dato_f32_to_f16(ref[i]) : dato_f32_to_bf16(ref[i]);
            same = ((const uint16_t*)slot->data)[i] == expect;
        }
        s->bits_off += !same;
    }
    free(ref);
}

static void report(const char* model, dato_dtype dt, const model_stats* s, size_t allocated) {
    printf("%-12s %-4s: %d half slots, %d f32 slots, %d of wrong dtype, %lld elements off in bits (max error 0), "
           "block %zu bytes (planned %zu, f32 %zu: %.2fx)\n",
           model, dato_dtype_name(dt), s->n_half, s->n_f32, s->wrong_dtype, s->bits_off, allocated, s->planned,
           s->planned_f32, (double)s->planned_f32 / (double)(s->planned ? s->planned : 1));
    CHECK(s->n_half > 0 && s->n_f32 > 0, "%s: %d half and %d f32 slots", model, s->n_half, s->n_f32);
    CHECK(s->wrong_dtype == 0, "%s: %d slots of the wrong dtype", model, s->wrong_dtype);
    CHECK(s->bits_off == 0, "%s: %lld elements differ from the expected bits", model, s->bits_off);
    CHECK(allocated == s->planned, "%s: block of %zu bytes, planned %zu", model, allocated, s->planned);
    CHECK(s->planned < s->planned_f32, "%s: %zu bytes, not below f32's %zu", model, s->planned, s->planned_f32);
}

static int open_files(dato_weight_files* wf, const char* sub) {
    char dir[256];
    dato_error err;
    snprintf(dir, sizeof dir, "%s/%s", MODEL, sub);
    if (!dato_weight_files_open(wf, dir, &err)) return 1;
    fprintf(stderr, "%s\n", err.msg);
    return 0;
}

// The pipeline with GEMM weights in dt on the recording backend; every model checked.
static void test_half_load(dato_dtype dt) {
    host_backend hb;
    host_backend_init(&hb);
    dato_pipeline p;
    dato_pipeline_options opt = {.dtype = dt};
    dato_error err;
    dato_status st = dato_pipeline_open(&p, MODEL, &hb.be, &opt, &err);
    CHECK(st == DATO_OK, "open %s with %s weights: %s", MODEL, dato_dtype_name(dt), err.msg);
    if (st) return;
    CHECK(p.n_text == 1 && p.has_vae, "the fixture has one text encoder and a VAE");
    dato_weight_files wf;

    model_stats s = {0};
    CHECK(p.unet.weight_dtype == dt, "unet weight_dtype %s", dato_dtype_name(p.unet.weight_dtype));
    if (open_files(&wf, "unet")) {
        for (int i = 0; i < p.unet.n_params; i++) {
            const dato_unet_param* q = &p.unet.params[i];
            check_slot(&wf, q->name[DATO_LAYOUT_DIFFUSERS], NULL, q->slot, q->ndim >= 2, dt, &s);
        }
        dato_weight_files_close(&wf);
    }
    report("unet", dt, &s, alloc_size(&hb, p.unet.weights));

    s = (model_stats){0};
    if (open_files(&wf, "vae")) {
        for (int i = 0; i < p.vae.n_params; i++) {
            const dato_vae_param* q = &p.vae.params[i];
            check_slot(&wf, q->name[DATO_LAYOUT_DIFFUSERS], q->legacy[0] ? q->legacy : NULL, q->slot, q->ndim >= 2,
                       dt, &s);
        }
        dato_weight_files_close(&wf);
    }
    report("vae", dt, &s, alloc_size(&hb, p.vae.weights));

    s = (model_stats){0};
    const dato_text_encoder* te = &p.text[0];
    if (open_files(&wf, "text_encoder")) {
        for (int i = 0; i < te->n_params; i++) {
            const dato_te_param* q = &te->params[i];
            const char* hf = q->name[DATO_TE_LAYOUT_HF];
            const char* bare = strncmp(hf, "text_model.", 11) == 0 ? hf + 11 : NULL; // saved without text_model.
            int embedding = q->slot == &te->token_embedding || q->slot == &te->position_embedding;
            check_slot(&wf, hf, bare, q->slot, q->ndim == 2 && !embedding, dt, &s);
        }
        dato_weight_files_close(&wf);
    }
    report("text encoder", dt, &s, alloc_size(&hb, te->weights));

    // Too late: the block is planned and filled.
    st = dato_unet_set_weight_dtype(&p.unet, DATO_F32, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "before the weights are loaded"), "late set_weight_dtype: %s",
          err.msg);
    dato_pipeline_close(&p);
}

// A backend without half GEMMs refuses at load, naming the flag and itself.
static void test_refused(dato_backend* be, dato_dtype dt, const char* want) {
    dato_pipeline p;
    dato_pipeline_options opt = {.dtype = dt};
    dato_error err = {{0}};
    dato_status st = dato_pipeline_open(&p, MODEL, be, &opt, &err);
    printf("%s backend, %s weights: %s\n", be->name, dato_dtype_name(dt), err.msg);
    CHECK(st == DATO_ERR_UNSUPPORTED, "%s backend with %s weights: status %d", be->name, dato_dtype_name(dt), (int)st);
    CHECK(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
}

int main(void) {
    test_half_load(DATO_F16);
    test_half_load(DATO_BF16);

    dato_backend cpu, null;
    dato_error err;
    if (dato_backend_cpu_init(&cpu, 1, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_refused(&cpu, DATO_F16, "--dtype f16 needs the CUDA backend; the cpu backend computes in F32");
    test_refused(&cpu, DATO_BF16, "--dtype bf16 needs the CUDA backend; the cpu backend computes in F32");
    dato_backend_destroy(&cpu);
    dato_backend_null_init(&null);
    test_refused(&null, DATO_F16, "--dtype f16 needs the CUDA backend; the null backend computes in F32");

    dato_dtype dt;
    CHECK(dato_weight_dtype_parse("BF16", &dt, &err) == DATO_OK && dt == DATO_BF16, "parse BF16");
    CHECK(dato_weight_dtype_parse("fp16", &dt, &err) == DATO_ERR_INVALID, "fp16 is not a --dtype value");
    return test_summary();
}
