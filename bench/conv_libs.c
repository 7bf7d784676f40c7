// 3x3 convolutions (stride 1, pad 1, no bias, NCHW f32) of the UNets' shapes: dato's conv2d (the CPU
// backend's op) and im2col + OpenBLAS SGEMM per image against oneDNN's direct and Winograd
// algorithms (issue 22).
// Built only where CMake found oneDNN; a bench, never an engine dependency.
//   conv_libs [--threads-max 2] [--repeats 5] [--set sd|default|all]
// oneDNN runs three ways: direct with plain NCHW activations (weights in the layout it asks for,
// reordered once, untimed, as a loader would); direct and Winograd with every tensor in the layout
// it asks for (blocked), the reorders from and to NCHW untimed. An algorithm the library refuses
// on this CPU prints "unsupported". Timing as gemm_libs: warm-up, then `repeats` interleaved rounds.
// Prints tab-separated lines: set, shape, batch, threads, method, median ms, GFLOP/s of the median
// and of the fastest round (direct convolution's 2 x B x Co x H x W x Ci x 9 flops, for every
// method), max error, oneDNN's implementation name. The error is max |y - ref| / sum |terms| over
// up to 2048 outputs against a double-precision reference.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h> // dnnl_status2str

#include "backend.h"
#include "bench_util.h"

#define MAX_REPEATS 64
#define MIN_SAMPLE_S 0.02
#define CHECKED_OUTPUTS 2048

typedef struct {
    const char* set;  // "sd" (SD1.5, 64x64 latent) or "default" (models/fashion-sd)
    int batch, ci, co, h, w;
} conv_shape;

static const conv_shape SHAPES[] = {
    {"sd", 2, 320, 320, 64, 64},   {"sd", 2, 640, 640, 32, 32},     {"sd", 2, 1280, 1280, 16, 16},
    {"sd", 2, 1280, 1280, 8, 8},   {"default", 40, 32, 32, 14, 14}, {"default", 40, 48, 48, 7, 7},
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

// The oneDNN variants: algorithm and whether activations stay plain NCHW.
typedef struct {
    const char* name;
    dnnl_alg_kind_t alg;
    int plain_activations;
} dnnl_variant;

static const dnnl_variant VARIANTS[] = {
    {"onednn direct, NCHW", dnnl_convolution_direct, 1},
    {"onednn direct, blocked", dnnl_convolution_direct, 0},
    {"onednn winograd, blocked", dnnl_convolution_winograd, 0},
};
#define N_VARIANTS ((int)(sizeof VARIANTS / sizeof VARIANTS[0]))
#define N_IM2COL 3 // dato's conv2d; im2col + OpenBLAS: one image at a time, images over threads
#define N_METHODS (N_IM2COL + N_VARIANTS)
static const char* const IM2COL_NAMES[N_IM2COL] = {"dato", "im2col + openblas", "im2col + openblas, images over threads"};

// ---- im2col + OpenBLAS ----------------------------------------------------------------------------------
// col (Ci*9, H*W) of one image x (Ci, H, W), 3x3, stride 1, pad 1: row (c, dy, dx) is x[c] shifted
// by (dy, dx) with zeros where it falls outside.
static void im2col_3x3(float* col, const float* x, int ci, int h, int w) {
    for (int r = 0; r < ci * 9; r++) {
        int c = r / 9, dy = r % 9 / 3 - 1, dx = r % 3 - 1;
        int x0 = dx < 0 ? 1 : 0, x1 = dx > 0 ? w - 1 : w; // the output columns whose source is inside
        float* dst = col + (size_t)r * (size_t)(h * w);    // (H, W)
        const float* src = x + (size_t)c * (size_t)(h * w); // (H, W)
        for (int y = 0; y < h; y++) {
            float* d = dst + y * w;
            int sy = y + dy;
            if (sy < 0 || sy >= h) {
                memset(d, 0, (size_t)w * sizeof *d);
                continue;
            }
            d[0] = 0.0f;
            d[w - 1] = 0.0f;
            if (x1 > x0) memcpy(d + x0, src + sy * w + x0 + dx, (size_t)(x1 - x0) * sizeof *d);
        }
    }
}

// y (B, Co, H, W) = conv(x (B, Ci, H, W), wt (Co, Ci, 3, 3)), one image at a time, the GEMM on
// `threads` OpenBLAS threads; col is (Ci*9, H*W) scratch.
static void conv_im2col(const conv_shape* s, const float* x, const float* wt, float* col, float* y, int threads) {
    int hw = s->h * s->w, k = s->ci * 9;
    openblas_set_num_threads(threads);
    for (int n = 0; n < s->batch; n++) {
        im2col_3x3(col, x + (size_t)n * (size_t)(s->ci * hw), s->ci, s->h, s->w);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->co, hw, k, 1.0f, wt, k, col, hw, 0.0f,
                    y + (size_t)n * (size_t)(s->co * hw), hw);
    }
}

// The same with the images split over `threads` OpenMP threads, each with its own col (threads x
// (Ci*9, H*W)) and a single-threaded OpenBLAS GEMM: the way to use 2 cores on many small images.
static void conv_im2col_images(const conv_shape* s, const float* x, const float* wt, float* col, float* y,
                               int threads) {
    int hw = s->h * s->w, k = s->ci * 9;
    openblas_set_num_threads(1);
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int n = 0; n < s->batch; n++) {
        float* c = col + (size_t)omp_get_thread_num() * (size_t)k * (size_t)hw; // (Ci*9, H*W)
        im2col_3x3(c, x + (size_t)n * (size_t)(s->ci * hw), s->ci, s->h, s->w);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->co, hw, k, 1.0f, wt, k, c, hw, 0.0f,
                    y + (size_t)n * (size_t)(s->co * hw), hw);
    }
}

// ---- oneDNN ------------------------------------------------------------------------------------------
typedef struct {
    dnnl_primitive_t prim;                 // the convolution; NULL when refused
    dnnl_memory_t src, wei, dst;           // in the layouts the primitive asked for
    dnnl_memory_t user_src, user_wei, user_dst; // plain NCHW / OIHW over the caller's buffers
    char impl[64];                         // oneDNN's name for the implementation it picked
    dnnl_status_t status;                  // of the primitive descriptor's creation
} dnnl_conv;

// Copies from -> to (any two layouts of one tensor) with a reorder primitive.
static dnnl_status_t dnnl_copy(dnnl_engine_t eng, dnnl_stream_t st, dnnl_memory_t from, dnnl_memory_t to) {
    const dnnl_memory_desc_t *fmd, *tmd;
    dnnl_memory_get_memory_desc(from, &fmd);
    dnnl_memory_get_memory_desc(to, &tmd);
    dnnl_primitive_desc_t pd;
    dnnl_status_t rc = dnnl_reorder_primitive_desc_create(&pd, fmd, eng, tmd, eng, NULL);
    if (rc != dnnl_success) return rc;
    dnnl_primitive_t p;
    rc = dnnl_primitive_create(&p, pd);
    dnnl_primitive_desc_destroy(pd);
    if (rc != dnnl_success) return rc;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    rc = dnnl_primitive_execute(p, st, 2, args);
    dnnl_stream_wait(st);
    dnnl_primitive_destroy(p);
    return rc;
}

// The memory a primitive wants for `what`: the user's own when the layouts match, else a new one
// (filled from the user's when fill is set).
static dnnl_memory_t dnnl_wanted(dnnl_engine_t eng, dnnl_stream_t st, dnnl_primitive_desc_t pd, dnnl_query_t what,
                                 dnnl_memory_t user, int fill) {
    const dnnl_memory_desc_t* want = dnnl_primitive_desc_query_md(pd, what, 0);
    const dnnl_memory_desc_t* have;
    dnnl_memory_get_memory_desc(user, &have);
    if (dnnl_memory_desc_equal(want, have)) return user;
    dnnl_memory_t m;
    if (dnnl_memory_create(&m, want, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success) return NULL;
    if (fill) dnnl_copy(eng, st, user, m);
    return m;
}

static dnnl_conv dnnl_conv_create(dnnl_engine_t eng, dnnl_stream_t st, const conv_shape* s, const dnnl_variant* v,
                                  float* x, float* wt, float* y) {
    dnnl_conv c = {0};
    dnnl_dims_t xd = {s->batch, s->ci, s->h, s->w}, wd = {s->co, s->ci, 3, 3}, yd = {s->batch, s->co, s->h, s->w};
    dnnl_dims_t stride = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t xm, wm, ym, xu, wu, yu;
    dnnl_format_tag_t act = v->plain_activations ? dnnl_nchw : dnnl_format_tag_any;
    dnnl_memory_desc_init_by_tag(&xm, 4, xd, dnnl_f32, act);
    dnnl_memory_desc_init_by_tag(&wm, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&ym, 4, yd, dnnl_f32, act);
    dnnl_memory_desc_init_by_tag(&xu, 4, xd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&wu, 4, wd, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&yu, 4, yd, dnnl_f32, dnnl_nchw);
    dnnl_convolution_desc_t cd;
    c.status = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, v->alg, &xm, &wm, NULL, &ym, stride,
                                                  pad, pad);
    dnnl_primitive_desc_t pd = NULL;
    if (c.status == dnnl_success) c.status = dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL);
    if (c.status != dnnl_success) return c;
    dnnl_memory_create(&c.user_src, &xu, eng, x);
    dnnl_memory_create(&c.user_wei, &wu, eng, wt);
    dnnl_memory_create(&c.user_dst, &yu, eng, y);
    c.src = dnnl_wanted(eng, st, pd, dnnl_query_src_md, c.user_src, 1);
    c.wei = dnnl_wanted(eng, st, pd, dnnl_query_weights_md, c.user_wei, 1);
    c.dst = dnnl_wanted(eng, st, pd, dnnl_query_dst_md, c.user_dst, 0);
    const char* impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(c.impl, sizeof c.impl, "%s", impl ? impl : "?");
    if (c.src && c.wei && c.dst) c.status = dnnl_primitive_create(&c.prim, pd);
    else c.status = dnnl_out_of_memory;
    dnnl_primitive_desc_destroy(pd); // the primitive keeps its own copy
    return c;
}

static void dnnl_conv_run(const dnnl_conv* c, dnnl_stream_t st) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wei}, {DNNL_ARG_DST, c->dst}};
    dnnl_primitive_execute(c->prim, st, 3, args);
    dnnl_stream_wait(st);
}

static void dnnl_conv_destroy(dnnl_conv* c) {
    dnnl_memory_t own[3] = {c->src != c->user_src ? c->src : NULL, c->wei != c->user_wei ? c->wei : NULL,
                            c->dst != c->user_dst ? c->dst : NULL};
    for (int i = 0; i < 3; i++)
        if (own[i]) dnnl_memory_destroy(own[i]);
    if (c->user_src) dnnl_memory_destroy(c->user_src);
    if (c->user_wei) dnnl_memory_destroy(c->user_wei);
    if (c->user_dst) dnnl_memory_destroy(c->user_dst);
    if (c->prim) dnnl_primitive_destroy(c->prim);
}

// ---- data, reference, timing -------------------------------------------------------------------------------
// max over up to CHECKED_OUTPUTS outputs (a fixed stride through y) of |y - ref| / sum |x w|;
// INFINITY if any checked output is not finite.
static double conv_error(const conv_shape* s, const float* x, const float* wt, const float* y) {
    size_t hw = (size_t)(s->h * s->w), total = (size_t)s->batch * (size_t)s->co * hw;
    size_t stride = total > CHECKED_OUTPUTS ? total / CHECKED_OUTPUTS : 1;
    double worst = 0;
    for (size_t e = 0; e < total; e += stride) {
        size_t n = e / ((size_t)s->co * hw), o = e / hw % (size_t)s->co;
        int p = (int)(e % hw), oy = p / s->w, ox = p % s->w;
        const float* xn = x + n * (size_t)s->ci * hw;   // (Ci, H, W)
        const float* wo = wt + o * (size_t)s->ci * 9;   // (Ci, 3, 3)
        double ref = 0, mag = 0;
        for (int c = 0; c < s->ci; c++)
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    int iy = oy + ky - 1, ix = ox + kx - 1;
                    if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                    double t = (double)xn[(size_t)c * hw + (size_t)(iy * s->w + ix)] * (double)wo[c * 9 + ky * 3 + kx];
                    ref += t;
                    mag += fabs(t);
                }
        if (!isfinite(y[e])) return INFINITY;
        double err = fabs((double)y[e] - ref) / (mag > 0 ? mag : 1);
        if (err > worst) worst = err;
    }
    return worst;
}

// y = conv(x, wt) by dato's CPU backend (made for `threads` by the caller, kept across calls).
static void conv_dato(dato_backend* be, const conv_shape* s, const float* x, const float* wt, float* y) {
    dato_tensor tx = dato_tensor_f32_4d((float*)x, s->batch, s->ci, s->h, s->w);
    dato_tensor tw = dato_tensor_f32_4d((float*)wt, s->co, s->ci, 3, 3);
    dato_tensor ty = dato_tensor_f32_4d(y, s->batch, s->co, s->h, s->w);
    dato_error err;
    if (be->ops->conv2d(be, &ty, &tx, &tw, NULL, 1, 1, 1, 1, &err) != DATO_OK) {
        fprintf(stderr, "conv_libs: dato conv2d: %s\n", err.msg); // the bench cannot go on without it
        exit(1);
    }
}

typedef struct {
    const conv_shape* s;
    const float *x, *wt;
    float *col, *y;
    int threads;
    dato_backend* dato;
    const dnnl_conv* convs; // (N_VARIANTS)
    dnnl_stream_t st;
} conv_run;

// Seconds per call of method m (0, 1: the im2col ones, then VARIANTS[m - N_IM2COL]) over `calls` calls.
static double time_method(const conv_run* r, int m, int calls) {
    double t0 = dato_clock_s();
    for (int i = 0; i < calls; i++) {
        if (m == 0) conv_dato(r->dato, r->s, r->x, r->wt, r->y);
        else if (m == 1) conv_im2col(r->s, r->x, r->wt, r->col, r->y, r->threads);
        else if (m == 2) conv_im2col_images(r->s, r->x, r->wt, r->col, r->y, r->threads);
        else dnnl_conv_run(&r->convs[m - N_IM2COL], r->st);
    }
    return (dato_clock_s() - t0) / calls;
}

static void usage(void) {
    printf("usage: conv_libs [--threads-max N] [--repeats R] [--set sd|default|all]\n"
           "  3x3 convs: im2col + OpenBLAS vs oneDNN direct and Winograd, 1..N threads; tab-separated\n"
           "  lines: set shape batch threads method ms GFLOP/s best_GFLOP/s max_error impl\n");
}

int main(int argc, char** argv) {
    int threads_max = 2, repeats = 5;
    const char* set = "all";
    int rc = bench_parse_lib_options(argc, argv, "conv_libs", usage, MAX_REPEATS, &threads_max, &repeats, &set);
    if (rc) return rc - 1;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&st, eng, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "conv_libs: oneDNN has no CPU engine\n");
        return 1;
    }
    printf("set\tshape\tbatch\tthreads\tmethod\tms\tgflops\tgflops_best\tmax_error\timpl\n");
    for (int si = 0; si < N_SHAPES; si++) {
        const conv_shape* s = &SHAPES[si];
        if (strcmp(set, "all") && strcmp(set, s->set)) continue;
        size_t hw = (size_t)(s->h * s->w);
        size_t nx = (size_t)s->batch * (size_t)s->ci * hw, nw = (size_t)s->co * (size_t)s->ci * 9;
        size_t ny = (size_t)s->batch * (size_t)s->co * hw, ncol = (size_t)s->ci * 9 * hw; // col per thread
        float* x = malloc(nx * sizeof *x);       // (B, Ci, H, W)
        float* wt = malloc(nw * sizeof *wt);     // (Co, Ci, 3, 3)
        float* y = malloc(ny * sizeof *y);       // (B, Co, H, W)
        float* col = malloc((size_t)threads_max * ncol * sizeof *col); // (threads, Ci*9, H*W)
        if (!x || !wt || !y || !col) {
            fprintf(stderr, "conv_libs: out of memory for shape %d\n", si);
            return 1;
        }
        bench_fill_uniform(x, nx, 1 + (uint64_t)si);
        bench_fill_uniform(wt, nw, 1000 + (uint64_t)si);
        char shape[64];
        snprintf(shape, sizeof shape, "%d->%d %dx%d", s->ci, s->co, s->h, s->w);
        double flops = 2.0 * s->batch * s->co * (double)hw * s->ci * 9;
        for (int t = 1; t <= threads_max; t++) {
            omp_set_num_threads(t); // oneDNN's OpenMP runtime reads it at creation and at execution
            dnnl_conv convs[N_VARIANTS];
            for (int v = 0; v < N_VARIANTS; v++) convs[v] = dnnl_conv_create(eng, st, s, &VARIANTS[v], x, wt, y);
            dato_backend dato;
            dato_error derr;
            if (dato_backend_cpu_init(&dato, t, &derr) != DATO_OK) {
                fprintf(stderr, "conv_libs: %s\n", derr.msg);
                return 1;
            }
            conv_run run = {s, x, wt, col, y, t, &dato, convs, st};
            // Warm-up and check; the im2col time sets the calls per sample for every method.
            double err[N_METHODS];
            int calls = 1;
            for (int m = 0; m < N_METHODS; m++) {
                const dnnl_conv* cv = m < N_IM2COL ? NULL : &convs[m - N_IM2COL];
                err[m] = NAN;
                if (cv && !cv->prim) continue;
                memset(y, 0, ny * sizeof *y);
                double dt = time_method(&run, m, 1);
                if (cv && cv->dst != cv->user_dst) dnnl_copy(eng, st, cv->dst, cv->user_dst); // blocked -> NCHW y
                err[m] = conv_error(s, x, wt, y);
                if (m == 0) calls = bench_calls_for(dt, MIN_SAMPLE_S);
            }
            double times[N_METHODS][MAX_REPEATS];
            for (int r = 0; r < repeats; r++)
                for (int m = 0; m < N_METHODS; m++)
                    if (m < N_IM2COL || convs[m - N_IM2COL].prim) times[m][r] = time_method(&run, m, calls);
            for (int m = 0; m < N_METHODS; m++) {
                const dnnl_conv* cv = m < N_IM2COL ? NULL : &convs[m - N_IM2COL];
                const char* name = cv ? VARIANTS[m - N_IM2COL].name : IM2COL_NAMES[m];
                if (cv && !cv->prim) {
                    printf("%s\t%s\t%d\t%d\t%s\tunsupported\t-\t-\t-\t%s\n", s->set, shape, s->batch, t, name,
                           dnnl_status2str(cv->status));
                    continue;
                }
                qsort(times[m], (size_t)repeats, sizeof times[m][0], cmp_double);
                double med = times[m][repeats / 2];
                printf("%s\t%s\t%d\t%d\t%s\t%.3f\t%.1f\t%.1f\t%.2e\t%s\n", s->set, shape, s->batch, t, name, med * 1e3,
                       flops / med * 1e-9, flops / times[m][0] * 1e-9, err[m], cv ? cv->impl : "-");
            }
            fflush(stdout);
            for (int v = 0; v < N_VARIANTS; v++) dnnl_conv_destroy(&convs[v]);
            dato_backend_destroy(&dato);
        }
        free(x);
        free(wt);
        free(y);
        free(col);
    }
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return 0;
}
