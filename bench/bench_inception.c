// Inception-v3 (pytorch-fid's FID network) feature extraction on the CPU or CUDA backend: images
// per second at 299x299, seeded random weights (no file needed). Prints one JSON line with the same
// fields as bench/inception_torch.py; bench/inception_cpu.sh runs both side by side.
//
//   bench_inception --batch 16 --iters 3 --threads 2
//   bench_inception --batch 64 --iters 5 --backend cuda
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_backend.h"
#include "bench_util.h"
#include "inception.h"
#include "rng.h"
#include "tensor_source.h"

static void usage(void) {
    printf("usage: bench_inception [--batch B] [--iters K] [--threads T] [--backend cpu|cuda] [--device N]\n"
           "  Times pytorch-fid's Inception-v3 pool3 features at 299x299 with seeded random weights.\n");
}

int main(int argc, char** argv) {
    const char* backend = "cpu";
    int batch = 16, iters = 3, threads = 0, device = 0;
    const bench_opt opts[] = {
        {"--batch", .int_value = &batch},
        {"--iters", .int_value = &iters},
        {"--threads", .int_value = &threads},
        {"--backend", .str_value = &backend},
        {"--device", .int_value = &device},
    };
    int pr = bench_parse(argc, argv, "bench_inception", opts, (int)(sizeof opts / sizeof opts[0]), usage);
    if (pr) return pr == 1 ? 0 : 2;
    if (batch < 1 || iters < 1) return 2;
    dato_error err;
    dato_backend be;
    dato_backend_spec spec = {.name = backend, .threads = threads, .device = device};
    if (!bench_backend_init(&be, &spec, "bench_inception")) return 1;
    dato_inception net;
    dato_inception_init(&net, &be);

    // Seeded weights in the exact shapes (the architecture is what is timed), through the file loader.
    char path[] = "/tmp/dato-bench-inception-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 1;
    close(fd);
    dato_weight_files wf;
    dato_status st = dato_inception_write_seeded(&net, path, 11, &err);
    if (!st) st = dato_weight_files_open(&wf, path, &err);
    if (!st) {
        dato_tensor_source src = dato_tensor_source_files(&wf);
        st = dato_inception_load(&net, &src, &err);
        dato_weight_files_close(&wf);
    }
    unlink(path);
    if (st) {
        fprintf(stderr, "bench_inception: %s\n", err.msg);
        return 1;
    }
    dato_rng rng;
    dato_rng_seed(&rng, 11);
    size_t nx = (size_t)batch * 3 * 299 * 299;
    float* x = malloc(nx * sizeof *x);
    float* f = malloc((size_t)batch * DATO_INCEPTION_FEATURES * sizeof *f);
    for (size_t k = 0; k < nx; k++) x[k] = (float)(2.0 * dato_rng_uniform(&rng) - 1.0);
    dato_tensor hx = dato_tensor_f32_4d(x, batch, 3, 299, 299), hf = dato_tensor_f32_2d(f, batch, 2048);
    dato_tensor tx = bench_to_device(&be, &hx), tf = bench_to_device(&be, &hf); // on the backend's device
    if (!tx.data || !tf.data) {
        fprintf(stderr, "bench_inception: cannot allocate the images and features on the %s backend\n", be.name);
        return 1;
    }
    double best = 1e30;
    for (int it = 0; it < iters + 1; it++) { // the first forward plans the workspace: not timed
        double t0 = dato_clock_s();
        if (dato_inception_forward(&net, &tx, &tf, &err)) {
            fprintf(stderr, "bench_inception: %s\n", err.msg);
            return 1;
        }
        be.ops->synchronize(&be);
        double s = dato_clock_s() - t0;
        if (it > 0 && s < best) best = s;
    }
    printf("{\"impl\":\"dato\",\"backend\":\"%s\",\"batch\":%d,\"threads\":%d,\"images_per_s\":%.2f,\"ms_per_batch\":%.1f,"
           "\"peak_rss_mb\":%.0f}\n",
           be.name, batch, threads, batch / best, best * 1e3, peak_rss_mb());
    free(x);
    free(f);
    be.ops->free(&be, tx.data);
    be.ops->free(&be, tf.data);
    dato_inception_free(&net);
    dato_backend_destroy(&be);
    return 0;
}
