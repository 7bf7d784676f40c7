// The DaTo token-pruning kernels: see cuda_dato.h. Simple kernels that repeat the reference's
// arithmetic (double sums in the same order, strict > for argmax) so that indices come out
// identical; the only f32 GEMM is the similarity, whose sums run over channels in order.
#include "cuda_dato.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define DATO_THREADS 256      // threads per block of the elementwise kernels
#define DATO_MAX_BLOCKS 65535 // grid cap of the grid-stride kernels

// Blocks for n elements at DATO_THREADS each, capped: the kernels loop over the rest.
static unsigned int blocks_for(size_t n) {
    size_t blocks = (n + DATO_THREADS - 1) / DATO_THREADS;
    return (unsigned int)(blocks < DATO_MAX_BLOCKS ? blocks : DATO_MAX_BLOCKS);
}

// DATO_OK, or the launch error (no code for this GPU, a bad configuration, an earlier fault) naming op.
static dato_status launched(const char* op, dato_error* err) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: kernel launch: %s", op, cudaGetErrorString(e));
    return DATO_OK;
}

// ---- dynamics scores ----------------------------------------------------------------------------

// d (B, HW) = mean over C of |a - b|, a, b (B, C, HW): one thread per position, channels in order.
static __global__ void diffscore_kernel(const float* a, const float* b, int B, int C, int HW, float* d) {
    size_t total = (size_t)B * HW;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t n = t / HW, p = t % HW;
        double acc = 0;
        for (int c = 0; c < C; c++) {
            size_t i = (n * C + c) * HW + p;
            acc += fabs((double)a[i] - (double)b[i]);
        }
        d[t] = (float)(acc / C);
    }
}

// out (B, Ho, Wo) = k x k means of d (B, H, W): one thread per output, rows then columns in order.
static __global__ void pool_scores_kernel(const float* d, int B, int H, int W, int k, float* out) {
    int Ho = H / k, Wo = W / k;
    size_t total = (size_t)B * Ho * Wo;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int x = (int)(t % Wo), y = (int)(t / Wo % Ho);
        size_t n = t / ((size_t)Ho * Wo);
        double acc = 0;
        for (int dy = 0; dy < k; dy++)
            for (int dx = 0; dx < k; dx++) acc += d[(n * H + y * k + dy) * W + x * k + dx];
        out[t] = (float)(acc / (k * k));
    }
}

// base (B, P): one thread per patch scans it in ascending index order, strict > keeps the first max.
static __global__ void choose_base_kernel(const float* score, int B, int H, int W, int s, int32_t* base) {
    int Pw = (W + s - 1) / s, P = ((H + s - 1) / s) * Pw;
    size_t total = (size_t)B * P;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int p = (int)(t % P);
        const float* sc = score + t / P * (size_t)H * W; // (H, W) of this row
        int py = p / Pw * s, px = p % Pw * s;
        int best = py * W + px;
        for (int y = py; y < py + s && y < H; y++)
            for (int x = px; x < px + s && x < W; x++)
                if (sc[y * W + x] > sc[best]) best = y * W + x;
        base[t] = best;
    }
}

// ---- similarity to the base tokens ----------------------------------------------------------------

// xn (B*N, C) = x scaled to unit norm, one warp per token: the squared norm in double as dato.c
// (lanes sum strided channels, then a fixed butterfly: deterministic, within an ulp of the
// reference's sequential sum), the same float inverse and float products.
static __global__ void normalize_kernel(const float* x, size_t tokens, int C, float* xn) {
    int lane = threadIdx.x % 32, warps = blockDim.x / 32;
    size_t first = (size_t)blockIdx.x * warps + threadIdx.x / 32;
    for (size_t tok = first; tok < tokens; tok += (size_t)gridDim.x * warps) { // whole warps take the branch
        const float* xt = x + tok * C;
        double nn = 0;
        for (int c = lane; c < C; c += 32) nn += (double)xt[c] * xt[c];
        for (int off = 16; off > 0; off >>= 1) nn += __shfl_xor_sync(0xffffffffu, nn, off);
        float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
        for (int c = lane; c < C; c += 32) xn[tok * C + c] = xt[c] * inv;
    }
}

// is_base (B, N) |= 1 at each base (B, P) index (zeroed before); indices outside [0, N) are skipped.
static __global__ void mark_base_kernel(const int32_t* base, int B, int N, int P, uint8_t* is_base) {
    size_t total = (size_t)B * P;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int v = base[t];
        if (v >= 0 && v < N) is_base[t / P * N + v] = 1;
    }
}

#define SIM_TI 64 // tokens per block
#define SIM_TJ 64 // base tokens per tile
#define SIM_TK 16 // channels per step

// sim, assign (B, N) from xn (B, N, C), base (B, P), is_base (B, N). Block (16, 16) on SIM_TI tokens
// of row blockIdx.y walks all base tokens in tiles of SIM_TJ; thread (tx, ty) owns tokens
// ty + 16 r and base tokens tx + 16 q of a tile (r, q < 4). Each dot product is one fmaf chain over
// the channels in order, so equal inputs give equal sims. Each thread keeps the first max over
// its base tokens (ascending j); the 16 threads of a token row merge by (sim desc, j asc).
static __global__ void __launch_bounds__(256)
    similarity_kernel(const float* xn, const int32_t* base, const uint8_t* is_base, int N, int C, int P, float* sim,
                      int32_t* assign) {
    __shared__ float xs[SIM_TK][SIM_TI + 1]; // token tile, channel-major (+1: no bank conflicts on store)
    __shared__ float bs[SIM_TK][SIM_TJ + 1]; // base tile, channel-major
    __shared__ int32_t brow[SIM_TJ];         // token index of each base of the tile, -1 past P or invalid
    int b = blockIdx.y, i0 = blockIdx.x * SIM_TI;
    int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const float* xb = xn + (size_t)b * N * C; // (N, C) of this row
    const int32_t* bb = base + (size_t)b * P; // (P)
    float best_v[4];
    int best_j[4];
    for (int r = 0; r < 4; r++) {
        best_v[r] = -INFINITY;
        best_j[r] = -1;
    }
    for (int j0 = 0; j0 < P; j0 += SIM_TJ) {
        if (tid < SIM_TJ) {
            int v = j0 + tid < P ? bb[j0 + tid] : -1;
            brow[tid] = v >= 0 && v < N ? v : -1;
        }
        __syncthreads();
        float acc[4][4] = {{0.0f}};
        for (int k0 = 0; k0 < C; k0 += SIM_TK) {
            // Both tiles are 64 rows x 16 channels: element e is row e / 16, channel e % 16.
            for (int e = tid; e < SIM_TI * SIM_TK; e += 256) {
                int row = e / SIM_TK, k = e % SIM_TK, c = k0 + k, i = i0 + row, v = brow[row];
                xs[k][row] = i < N && c < C ? xb[(size_t)i * C + c] : 0.0f;
                bs[k][row] = v >= 0 && c < C ? xb[(size_t)v * C + c] : 0.0f;
            }
            __syncthreads();
            for (int k = 0; k < SIM_TK; k++) {
                float xv[4], bv[4];
                for (int r = 0; r < 4; r++) xv[r] = xs[k][ty + 16 * r];
                for (int q = 0; q < 4; q++) bv[q] = bs[k][tx + 16 * q];
                for (int r = 0; r < 4; r++)
                    for (int q = 0; q < 4; q++) acc[r][q] = fmaf(xv[r], bv[q], acc[r][q]);
            }
            __syncthreads(); // the tiles (and brow, after the last step) are rewritten next
        }
        for (int q = 0; q < 4; q++) {
            int j = j0 + tx + 16 * q;
            if (j >= P) continue;
            for (int r = 0; r < 4; r++)
                if (acc[r][q] > best_v[r] || best_j[r] < 0) {
                    best_v[r] = acc[r][q];
                    best_j[r] = j;
                }
        }
    }
    // The 16 lanes of a token row are lanes 0-15 or 16-31 of one warp (tid = ty * 16 + tx):
    // xor offsets 8..1 stay inside them. The merge is a max in a total order: all lanes agree.
    for (int r = 0; r < 4; r++) {
        float v = best_v[r];
        int j = best_j[r];
        for (int off = 8; off > 0; off >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, v, off);
            int oj = __shfl_xor_sync(0xffffffffu, j, off);
            if (oj >= 0 && (j < 0 || ov > v || (ov == v && oj < j))) {
                v = ov;
                j = oj;
            }
        }
        int i = i0 + ty + 16 * r;
        if (tx == 0 && i < N) {
            size_t t = (size_t)b * N + i;
            sim[t] = v;
            assign[t] = is_base[t] ? i : bb[j];
        }
    }
}

// ---- selection ------------------------------------------------------------------------------------

// The order of dato_select_pruned as one integer: larger key = pruned first (higher sim, then
// lower index). -0 is read as +0, as the reference's comparisons do; keys of a row are unique.
static __device__ uint64_t prune_key(float s, int i) {
    if (s == 0.0f) s = 0.0f;
    uint32_t u = __float_as_uint(s);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); // ascending in s
    return ((uint64_t)u << 32) | (uint32_t)~(uint32_t)i;
}

// keep (B, N): one block per row finds the n-th largest key T of its non-base tokens by radix
// select (8 passes of 8 bits, shared histogram: integer counts, deterministic), then prunes the
// keys >= T, exactly n of them.
static __global__ void select_pruned_kernel(const float* sim, const uint8_t* is_base, int N, int n,
                                            uint8_t* keep) {
    __shared__ unsigned int hist[256];
    __shared__ uint64_t prefix_s;
    __shared__ int need_s;
    const float* sb = sim + (size_t)blockIdx.x * N;
    const uint8_t* ib = is_base + (size_t)blockIdx.x * N;
    uint8_t* kb = keep + (size_t)blockIdx.x * N;
    uint64_t prefix = 0, mask = 0; // the top bits of T found so far
    int need = n;                  // T's rank (1 = largest) among the keys matching prefix
    for (int shift = 56; n > 0 && shift >= 0; shift -= 8) {
        for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < N; i += blockDim.x) {
            if (ib[i]) continue;
            uint64_t key = prune_key(sb[i], i);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) { // the digit whose bin holds the need-th largest key
            int d = 255;
            unsigned int above = 0;
            while (d > 0 && above + hist[d] < (unsigned int)need) {
                above += hist[d];
                d--;
            }
            prefix_s = prefix | ((uint64_t)d << shift);
            need_s = need - (int)above;
        }
        __syncthreads(); // thread 0 writes prefix_s again only after the next pass's two barriers
        prefix = prefix_s;
        need = need_s;
        mask |= (uint64_t)255 << shift;
    }
    for (int i = threadIdx.x; i < N; i += blockDim.x)
        kb[i] = n > 0 && !ib[i] && prune_key(sb[i], i) >= prefix ? 0 : 1;
}

// ---- gather and scatter ---------------------------------------------------------------------------

// pos (B, N) = exclusive prefix count of keep (B, N) per row, -1 where pruned: one block per row
// scans chunks of blockDim tokens (warp shuffles, then the warp totals in shared memory).
static __global__ void positions_kernel(const uint8_t* keep, int N, int32_t* pos) {
    __shared__ int warp_sum[32];
    const uint8_t* kb = keep + (size_t)blockIdx.x * N;
    int32_t* pb = pos + (size_t)blockIdx.x * N;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    int offset = 0; // kept tokens before the chunk
    for (int c0 = 0; c0 < N; c0 += blockDim.x) {
        int i = c0 + threadIdx.x;
        int f = i < N && kb[i] ? 1 : 0;
        int incl = f; // inclusive count within the warp
        for (int d = 1; d < 32; d <<= 1) {
            int t = __shfl_up_sync(0xffffffffu, incl, d);
            if (lane >= d) incl += t;
        }
        if (lane == 31) warp_sum[warp] = incl;
        __syncthreads();
        int before = offset, total = 0;
        for (int w = 0; w < warps; w++) {
            before += w < warp ? warp_sum[w] : 0;
            total += warp_sum[w];
        }
        if (i < N) pb[i] = f ? before + incl - 1 : -1;
        offset += total;
        __syncthreads(); // warp_sum is rewritten by the next chunk
    }
}

// x_kept (B, Nk, C) row pos[t] = x (B, N, C) row t, for kept tokens (0 <= pos < Nk).
static __global__ void gather_kept_kernel(const float* x, const int32_t* pos, int N, int C, int Nk, size_t total,
                                          float* x_kept) {
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t tok = t / C; // b * N + i
        int k = pos[tok];
        if (k >= 0 && k < Nk) x_kept[(tok / N * Nk + k) * C + t % C] = x[t];
    }
}

// out (B, N, C) row t = o_kept (B, Nk, C) row pos[t], or row pos[assign[t]] for a pruned token.
static __global__ void scatter_recover_kernel(const float* o_kept, const int32_t* pos, const int32_t* assign, int N,
                                              int C, int Nk, size_t total, float* out) {
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t tok = t / C, b = tok / N;
        int k = pos[tok];
        if (k < 0) {
            int a = assign[tok];
            k = a >= 0 && a < N ? pos[b * N + a] : -1;
        }
        out[t] = k >= 0 && k < Nk ? o_kept[(b * Nk + k) * C + t % C] : NAN;
    }
}

// ---- launchers ------------------------------------------------------------------------------------

extern "C" dato_status dato_cuda_diffscore(const float* a, const float* b, int B, int C, int HW, float* d,
                                           void* stream, dato_error* err) {
    if (!a || !b || !d || B < 1 || C < 1 || HW < 1)
        return dato_fail(err, DATO_ERR_INVALID, "cuda diffscore: NULL buffer or bad shape B %d, C %d, HW %d", B, C, HW);
    size_t total = (size_t)B * HW;
    diffscore_kernel<<<blocks_for(total), DATO_THREADS, 0, (cudaStream_t)stream>>>(a, b, B, C, HW, d);
    return launched("cuda diffscore", err);
}

extern "C" dato_status dato_cuda_pool_scores(const float* d, int B, int H, int W, int k, float* out, void* stream,
                                             dato_error* err) {
    if (!d || !out || B < 1 || k < 1 || H < k || W < k || H % k || W % k)
        return dato_fail(err, DATO_ERR_INVALID,
                         "cuda pool_scores: NULL buffer or bad shape B %d, %d x %d (must be multiples of k %d)", B,
                         H, W, k);
    size_t total = (size_t)B * (H / k) * (W / k);
    pool_scores_kernel<<<blocks_for(total), DATO_THREADS, 0, (cudaStream_t)stream>>>(d, B, H, W, k, out);
    return launched("cuda pool_scores", err);
}

extern "C" dato_status dato_cuda_choose_base(const float* score, int B, int H, int W, int s, int32_t* base,
                                             void* stream, dato_error* err) {
    if (!score || !base || B < 1 || H < 1 || W < 1 || s < 1)
        return dato_fail(err, DATO_ERR_INVALID, "cuda choose_base: NULL buffer or bad B %d, grid %d x %d, patch %d", B,
                         H, W, s);
    size_t total = (size_t)B * ((H + s - 1) / s) * ((W + s - 1) / s);
    choose_base_kernel<<<blocks_for(total), DATO_THREADS, 0, (cudaStream_t)stream>>>(score, B, H, W, s, base);
    return launched("cuda choose_base", err);
}

extern "C" dato_status dato_cuda_similarity(const float* x, const int32_t* base, int B, int N, int C, int P, float* xn,
                                            uint8_t* is_base, float* sim, int32_t* assign, void* stream,
                                            dato_error* err) {
    if (!x || !base || !xn || !is_base || !sim || !assign)
        return dato_fail(err, DATO_ERR_INVALID, "cuda similarity: NULL buffer");
    if (B < 1 || B > 65535 || N < 1 || C < 1 || P < 1 || P > N)
        return dato_fail(err, DATO_ERR_INVALID, "cuda similarity: bad shape B %d, N %d, C %d, P %d (1 <= P <= N)", B,
                         N, C, P);
    cudaStream_t st = (cudaStream_t)stream;
    size_t tokens = (size_t)B * N;
    size_t warps = DATO_THREADS / 32, blocks = (tokens + warps - 1) / warps;
    normalize_kernel<<<(unsigned int)(blocks < DATO_MAX_BLOCKS ? blocks : DATO_MAX_BLOCKS), DATO_THREADS, 0, st>>>(
        x, tokens, C, xn);
    DATO_TRY(launched("cuda similarity: normalize", err));
    cudaError_t e = cudaMemsetAsync(is_base, 0, tokens, st);
    if (e != cudaSuccess)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "cuda similarity: clearing is_base: %s", cudaGetErrorString(e));
    mark_base_kernel<<<blocks_for((size_t)B * P), DATO_THREADS, 0, st>>>(base, B, N, P, is_base);
    DATO_TRY(launched("cuda similarity: mark base", err));
    dim3 grid((unsigned int)((N + SIM_TI - 1) / SIM_TI), (unsigned int)B), block(16, 16);
    similarity_kernel<<<grid, block, 0, st>>>(xn, base, is_base, N, C, P, sim, assign);
    return launched("cuda similarity", err);
}

extern "C" dato_status dato_cuda_select_pruned(const float* sim, const uint8_t* is_base, int B, int N, int P, int n,
                                               uint8_t* keep, void* stream, dato_error* err) {
    if (!sim || !is_base || !keep || B < 1 || N < 1 || P < 1 || P > N)
        return dato_fail(err, DATO_ERR_INVALID, "cuda select_pruned: NULL buffer or bad shape B %d, N %d, P %d", B, N,
                         P);
    if (n < 0 || n > N - P)
        return dato_fail(err, DATO_ERR_INVALID, "cuda select_pruned: n %d outside [0, N - P = %d]", n, N - P);
    select_pruned_kernel<<<(unsigned int)B, DATO_THREADS, 0, (cudaStream_t)stream>>>(sim, is_base, N, n, keep);
    return launched("cuda select_pruned", err);
}

extern "C" dato_status dato_cuda_gather_kept(const float* x, const uint8_t* keep, int B, int N, int C, int Nk,
                                             int32_t* pos, float* x_kept, void* stream, dato_error* err) {
    if (!x || !keep || !pos || !x_kept || B < 1 || N < 1 || C < 1 || Nk < 1 || Nk > N)
        return dato_fail(err, DATO_ERR_INVALID, "cuda gather_kept: NULL buffer or bad shape B %d, N %d, C %d, Nk %d", B,
                         N, C, Nk);
    cudaStream_t st = (cudaStream_t)stream;
    positions_kernel<<<(unsigned int)B, DATO_THREADS, 0, st>>>(keep, N, pos);
    DATO_TRY(launched("cuda gather_kept: positions", err));
    size_t total = (size_t)B * N * C;
    gather_kept_kernel<<<blocks_for(total), DATO_THREADS, 0, st>>>(x, pos, N, C, Nk, total, x_kept);
    return launched("cuda gather_kept", err);
}

extern "C" dato_status dato_cuda_scatter_recover(const float* o_kept, const int32_t* pos, const int32_t* assign,
                                                 int B, int N, int C, int Nk, float* out, void* stream,
                                                 dato_error* err) {
    if (!o_kept || !pos || !assign || !out || B < 1 || N < 1 || C < 1 || Nk < 1 || Nk > N)
        return dato_fail(err, DATO_ERR_INVALID,
                         "cuda scatter_recover: NULL buffer or bad shape B %d, N %d, C %d, Nk %d", B, N, C, Nk);
    size_t total = (size_t)B * N * C;
    scatter_recover_kernel<<<blocks_for(total), DATO_THREADS, 0, (cudaStream_t)stream>>>(o_kept, pos, assign, N, C,
                                                                                        Nk, total, out);
    return launched("cuda scatter_recover", err);
}
