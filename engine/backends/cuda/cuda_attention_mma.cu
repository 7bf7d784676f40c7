// Multi-head attention on tensor cores: FlashAttention-2 style with nvcuda::wmma 16x16x16
// fragments, T = half or __nv_bfloat16 operands and f32 accumulators. cuda_attention calls it
// when the backend's opt.attention is F16 or BF16, after checking the arguments.
//
// One block of 4 warps owns (image, head, tile of MMA_BQ = 64 queries); warp w owns the 16
// query rows [16 w, 16 w + 16) of the tile from start to end. The head dim d is padded with
// zeros to dpad = round_up(d, 16) (the MMA's k and n steps). The block walks the keys in tiles
// of BK (64; 32 for head dims over 80, to fit shared memory), keeping per row a running max m
// (base 2) and sum l in f32 and the output o (16, dpad) in f32 accumulator fragments, so the
// (Nq, Nk) score matrix never exists. Per key tile:
//   all:  stage the k, v tiles (BK, dpad) as T in shared memory (zeros past Nk and past d)
//   warp: s = q k^T          (16, BK) MMAs over dpad (q: matrix_a row_major, k: matrix_b
//                            col_major, i.e. k^T), stored to shared memory as f32
//         s *= scale * log2 e in f32; keys >= Nk and, when causal, keys j > i -> -inf
//         m' = max(m, rowmax s); p = T(2^(s - m')); a = 2^(m - m'); l = l * a + rowsum p
//         o = o * a              a broadcast along each row of a (16, 16) f32 tile, loaded as an
//                                accumulator fragment: elementwise on two fragments of one type
//                                needs no knowledge of wmma's (unspecified) element layout
//         o += p v               (16, dpad) MMAs over BK (p: matrix_a row_major, v: matrix_b row_major)
// and at the end out = o / l for the rows < Nq and the columns < d. An all-masked row so far
// (m' = -inf) takes 2^(s - 0) = 0 and a = 2^(-inf - 0) = 0, never 2^(-inf + inf) = NaN; every
// real row sees key 0 in its first tile, so l > 0 at the end. Causal warps skip the key tiles
// past their last row (nothing to add), and the block stops at its last query's key.
//
// Precision: q, k and v are rounded to T (round to nearest even) as they are staged; the
// probabilities p are rounded to T before p v, as FlashAttention and PyTorch's SDPA do, and l
// sums those rounded p (so out is an exact weighted mean of v under the weights multiplied).
// Everything else is f32: the products of two T values are exact in f32 and accumulate in f32,
// the scale is applied to the f32 scores (q is never pre-scaled in T), m, l and o are f32.
// Expected error against f32 attention on the same rounded q, k, v: at most 2^-11 (F16) or
// 2^-8 (BF16) relative per probability (half an ulp), averaging out over the keys.
//
// Resources per block: 128 threads; shared memory (mma_layout_for) 51 KiB at head dim 40,
// 57 KiB at 64, 63 KiB at 80, 60 KiB at 160 (BK 32); up to ~170 registers per thread (no
// spills), so 3-4 blocks (12-16 warps) per H100 SM, 2-3 per A100 SM.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <mma.h>

#include "cuda_ops.h"

using namespace nvcuda;

#define MMA_BQ 64       // queries per block: 16 per warp
#define MMA_WARPS 4     // warps per block
#define MMA_THREADS 128 // MMA_WARPS * 32
#define MMA_MAX_D 160   // cuda_attention's limit: 10 chunks of 16

// f32 -> T (round to nearest even), and T -> f32 (exact).
static __device__ inline void store_t(__half* p, float v) { *p = __float2half_rn(v); }
static __device__ inline void store_t(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
static __device__ inline float to_f32(__half x) { return __half2float(x); }
static __device__ inline float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

// The shared memory of one block, for head dims padded to dpad and key tiles of bk. Every
// region starts at a multiple of 128 bytes (wmma wants 32-byte aligned pointers); leading dims:
// T rows ldh = dpad + 8 and ldp = bk + 8 halves (multiples of 8, and 16 bytes off a multiple of
// 32 so consecutive rows start in different banks), f32 rows lds = bk + 4 floats (a multiple of 4).
struct mma_layout {
    int ldh, lds, ldp;
    size_t q, k, v, s, p, a, linv, bytes; // byte offsets of the regions and the total
};

static __host__ __device__ inline size_t mma_align(size_t x) { return (x + 127) & ~(size_t)127; }

static __host__ __device__ inline mma_layout mma_layout_for(int dpad, int bk) {
    mma_layout L;
    L.ldh = dpad + 8, L.lds = bk + 4, L.ldp = bk + 8;
    L.q = 0;                                                        // (BQ, ldh) T queries
    L.k = L.q + mma_align((size_t)MMA_BQ * L.ldh * 2);              // (BK, ldh) T key tile
    L.v = L.k + mma_align((size_t)bk * L.ldh * 2);                  // (BK, ldh) T value tile
    L.s = L.v + mma_align((size_t)bk * L.ldh * 2);                  // (BQ, lds) f32 scores
    L.p = L.s + mma_align((size_t)MMA_BQ * L.lds * 4);              // (BQ, ldp) T probabilities
    L.a = L.p + mma_align((size_t)MMA_BQ * L.ldp * 2);              // (WARPS, 16, 16) f32 rescale tiles
    L.linv = L.a + mma_align((size_t)MMA_WARPS * 16 * 16 * 4);      // (BQ) f32 1 / l at the end
    L.bytes = L.linv + mma_align((size_t)MMA_BQ * 4);
    return L;
}

// dst (rows, ldh) T = rows [r0, r0 + rows) of src (row r at src + r * stride, (d) floats) rounded
// to T; zeros in rows r0 + r >= n and in the columns [d, dpad). vec: d, stride and src are
// multiples of 4 floats (16 bytes), so each thread moves 4 columns at a time.
template <typename T>
static __device__ inline void stage(T* dst, int ldh, const float* src, int64_t stride, int64_t r0, int rows,
                                    int64_t n, int d, int dpad, bool vec) {
    if (vec) {
        const int cols4 = dpad / 4;
        for (int e = threadIdx.x; e < rows * cols4; e += MMA_THREADS) {
            int r = e / cols4, c = (e % cols4) * 4;
            float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (r0 + r < n && c < d) x = *(const float4*)(src + (r0 + r) * stride + c);
            T* p = dst + r * ldh + c;
            store_t(p, x.x), store_t(p + 1, x.y), store_t(p + 2, x.z), store_t(p + 3, x.w);
        }
    } else {
        for (int e = threadIdx.x; e < rows * dpad; e += MMA_THREADS) {
            int r = e / dpad, c = e % dpad;
            store_t(dst + r * ldh + c, r0 + r < n && c < d ? src[(r0 + r) * stride + c] : 0.0f);
        }
    }
}

// out (B, Nq, H*D) for q (B, Nq, H*D) and k, v (B, Nk, H*D); grid (query tiles, H, B), MMA_THREADS
// threads, mma_layout_for(dpad, BK).bytes of dynamic shared memory. NC: the most 16-column chunks
// of the head dim this instantiation handles (dpad / 16 <= NC). qscale = scale * log2 e.
template <typename T, int NC, int BK>
static __global__ void __launch_bounds__(MMA_THREADS)
attention_mma_kernel(float* out, const float* q, const float* k, const float* v, int64_t nq, int64_t nk, int heads,
                     int d, float qscale, int causal, bool vec) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int dpad = (d + 15) / 16 * 16, nc = dpad / 16;
    const mma_layout L = mma_layout_for(dpad, BK);
    const int ldh = L.ldh, lds = L.lds, ldp = L.ldp;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    T* qs = (T*)(smem + L.q);                   // (BQ, ldh) queries, zeros past Nq and past d
    T* ks = (T*)(smem + L.k);                   // (BK, ldh) key tile, zeros past Nk and past d
    T* vs = (T*)(smem + L.v);                   // (BK, ldh) value tile, zeros past Nk and past d
    float* ss = (float*)(smem + L.s) + warp * 16 * lds; // (16, lds) this warp's scores, then o staging
    T* ps = (T*)(smem + L.p) + warp * 16 * ldp;         // (16, ldp) this warp's probabilities
    float* as = (float*)(smem + L.a) + warp * 256;      // (16, 16) this warp's rescale factors, per row
    float* linv = (float*)(smem + L.linv) + warp * 16;  // (16) this warp's 1 / l

    const int64_t q0 = (int64_t)blockIdx.x * MMA_BQ, b = blockIdx.z, h = blockIdx.y;
    const int64_t channels = (int64_t)heads * d;
    const float* qb = q + (b * nq * heads + h) * d; // row i at qb + i * channels, (D)
    const float* kb = k + (b * nk * heads + h) * d; // row j at kb + j * channels, (D)
    const float* vb = v + (b * nk * heads + h) * d; // row j at vb + j * channels, (D)

    stage(qs, ldh, qb, channels, q0, MMA_BQ, nq, d, dpad, vec);

    // The softmax step: lane owns row r = lane / 2 of the warp's 16 and the key columns
    // half + 2 j of each tile; both lanes of a pair hold the row's m and l.
    const int r = lane / 2, half = lane % 2;
    const int64_t row = q0 + warp * 16 + r;        // this lane's query
    const int64_t warp_last = q0 + warp * 16 + 15; // the warp's last query
    float m = -INFINITY, l = 0.0f;

    // (16, dpad) f32 output of the warp's rows: chunk n holds the columns [16 n, 16 n + 16)
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> o[NC];
#pragma unroll
    for (int n = 0; n < NC; n++) wmma::fill_fragment(o[n], 0.0f);

    const int64_t k_end = causal ? (q0 + MMA_BQ < nk ? q0 + MMA_BQ : nk) : nk;
    for (int64_t k0 = 0; k0 < k_end; k0 += BK) {
        __syncthreads(); // every warp is done with the previous tile's ks, vs (and qs is staged)
        stage(ks, ldh, kb, channels, k0, BK, nk, d, dpad, vec);
        stage(vs, ldh, vb, channels, k0, BK, nk, d, dpad, vec);
        __syncthreads();
        if (causal && k0 > warp_last) continue; // every key of the tile is after the warp's queries

        // s (16, BK) = q (16, dpad) k^T (dpad, BK): chunk of dims kc outer, key chunk jn inner.
        {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> s[BK / 16];
#pragma unroll
            for (int jn = 0; jn < BK / 16; jn++) wmma::fill_fragment(s[jn], 0.0f);
#pragma unroll
            for (int kc = 0; kc < NC; kc++) {
                if (kc < nc) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qa; // q[16 w + i][16 kc + c]
                    wmma::load_matrix_sync(qa, qs + warp * 16 * ldh + kc * 16, ldh);
#pragma unroll
                    for (int jn = 0; jn < BK / 16; jn++) {
                        // (c, j) = k[16 jn + j][16 kc + c] at kb_tile[j * ldh + c]: col_major k^T
                        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kt;
                        wmma::load_matrix_sync(kt, ks + jn * 16 * ldh + kc * 16, ldh);
                        wmma::mma_sync(s[jn], qa, kt, s[jn]);
                    }
                }
            }
#pragma unroll
            for (int jn = 0; jn < BK / 16; jn++) wmma::store_matrix_sync(ss + jn * 16, s[jn], lds, wmma::mem_row_major);
        }
        __syncwarp();

        // online softmax on row r, key columns half + 2 j (j < BK/2): the pair interleaves its
        // columns so that the 32 lanes' reads spread over the banks
        {
            const float* sr = ss + r * lds + half;
            T* pr = ps + r * ldp + half;
            const int64_t j0 = k0 + half;
            float x[BK / 2], mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < BK / 2; j++) {
                bool masked = j0 + 2 * j >= nk || (causal && j0 + 2 * j > row);
                x[j] = masked ? -INFINITY : sr[2 * j] * qscale;
                mx = fmaxf(mx, x[j]);
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            const float m_new = fmaxf(m, mx);
            const float m_sub = m_new == -INFINITY ? 0.0f : m_new; // all masked so far: 2^(-inf) = 0, not NaN
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < BK / 2; j++) {
                T p;
                store_t(&p, exp2f(x[j] - m_sub));
                pr[2 * j] = p;
                sum += to_f32(p); // l sums the rounded p that p v multiplies
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            const float a = exp2f(m - m_sub); // m = -inf: 0 (o and l are 0 anyway)
            l = l * a + sum;
            m = m_new;
            // as[i][c] = a of row i, held by lanes 2 i and 2 i + 1: element e = i * 16 + c
            // from lane e % 32 (conflict-free stores)
#pragma unroll
            for (int t = 0; t < 8; t++) {
                int e = t * 32 + lane;
                as[e] = __shfl_sync(0xffffffffu, a, e / 16 * 2);
            }
        }
        __syncwarp();

        // o = o * a (row-wise), then o += p (16, BK) v (BK, dpad)
        {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> af; // (16, 16), row i all a_i
            wmma::load_matrix_sync(af, as, 16, wmma::mem_row_major);
#pragma unroll
            for (int n = 0; n < NC; n++)
                if (n < nc)
#pragma unroll
                    for (int t = 0; t < af.num_elements; t++) o[n].x[t] *= af.x[t];
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pa; // p[i][16 kk + j]
                wmma::load_matrix_sync(pa, ps + kk * 16, ldp);
#pragma unroll
                for (int n = 0; n < NC; n++) {
                    if (n < nc) {
                        // (j, c) = v[16 kk + j][16 n + c] at vs[j * ldh + c]: row_major
                        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vb_;
                        wmma::load_matrix_sync(vb_, vs + kk * 16 * ldh + n * 16, ldh);
                        wmma::mma_sync(o[n], pa, vb_, o[n]);
                    }
                }
            }
        }
        // ss, ps, as are next written after the next tile's __syncthreads (or below, after __syncwarp)
    }

    // out = o / l: each chunk goes through the warp's score rows (16, 16 of lds) to global memory.
    if (half == 0) linv[r] = l > 0.0f ? 1.0f / l : 0.0f; // l = 0 only for rows past Nq
    __syncwarp();
    float* ob = out + (b * nq * heads + h) * d; // row i at ob + i * channels, (D)
#pragma unroll
    for (int n = 0; n < NC; n++) {
        if (n < nc) {
            wmma::store_matrix_sync(ss, o[n], lds, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                int i = e / 16, c = n * 16 + e % 16;
                int64_t qi = q0 + warp * 16 + i;
                if (qi < nq && c < d) ob[qi * channels + c] = ss[i * lds + e % 16] * linv[i];
            }
            __syncwarp(); // read before the next chunk overwrites
        }
    }
}

// Opts the instantiation in to the shared memory of its largest head dim (NC chunks), once at init:
// an op must not change function attributes, which a graph capture may not allow.
template <typename T, int NC, int BK>
static dato_status opt_in(dato_error* err) {
    size_t smem = mma_layout_for(NC * 16, BK).bytes;
    cudaError_t e = cudaFuncSetAttribute(attention_mma_kernel<T, NC, BK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem);
    if (e == cudaSuccess) return DATO_OK;
    cudaGetLastError();
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "attention: %zu bytes of shared memory for head dims up to %d: %s", smem,
                     NC * 16, cudaGetErrorString(e));
}

// Launches the instantiation (opted in by cuda_attention_mma_setup).
template <typename T, int NC, int BK>
static dato_status launch(cuda_backend* cb, float* out, const float* q, const float* k, const float* v, int64_t batch,
                          int64_t nq, int64_t nk, int heads, int d, float scale, int causal, dato_error* err) {
    int dpad = (d + 15) / 16 * 16;
    size_t smem = mma_layout_for(dpad, BK).bytes;
    // float4 loads: every row start (b, i, h) * d + i * channels is a multiple of 4 floats when d
    // is, and cudaMalloc'd tensors are 256-byte aligned (checked, not assumed).
    bool vec = d % 4 == 0 && ((uintptr_t)q | (uintptr_t)k | (uintptr_t)v) % 16 == 0;
    dim3 grid((unsigned)((nq + MMA_BQ - 1) / MMA_BQ), (unsigned)heads, (unsigned)batch);
    attention_mma_kernel<T, NC, BK><<<grid, MMA_THREADS, smem, cb->stream>>>(
        out, q, k, v, nq, nk, heads, d, scale * 1.44269504088896341f, causal, vec);
    return cuda_check_launch("attention", err);
}

// Instantiations by head dim: NC = the chunk count of the largest head dim of the class (the
// kernel skips the chunks past dpad), BK = 64 keys per tile, 32 for the largest class so that
// its shared memory stays near 60 KiB (three blocks per SM on H100).
template <typename T>
static dato_status dispatch(cuda_backend* cb, float* out, const float* q, const float* k, const float* v, int64_t batch,
                            int64_t nq, int64_t nk, int heads, int d, float scale, int causal, dato_error* err) {
    if (d <= 48) return launch<T, 3, 64>(cb, out, q, k, v, batch, nq, nk, heads, d, scale, causal, err);
    if (d <= 64) return launch<T, 4, 64>(cb, out, q, k, v, batch, nq, nk, heads, d, scale, causal, err);
    if (d <= 80) return launch<T, 5, 64>(cb, out, q, k, v, batch, nq, nk, heads, d, scale, causal, err);
    return launch<T, MMA_MAX_D / 16, 32>(cb, out, q, k, v, batch, nq, nk, heads, d, scale, causal, err);
}

// The instantiations dispatch picks, by head dim: see there.
template <typename T>
static dato_status opt_in_all(dato_error* err) {
    DATO_TRY((opt_in<T, 3, 64>(err)));
    DATO_TRY((opt_in<T, 4, 64>(err)));
    DATO_TRY((opt_in<T, 5, 64>(err)));
    return opt_in<T, MMA_MAX_D / 16, 32>(err);
}

extern "C" dato_status cuda_attention_mma_setup(dato_error* err) {
    DATO_TRY(opt_in_all<__half>(err));
    return opt_in_all<__nv_bfloat16>(err);
}

extern "C" dato_status cuda_attention_mma(cuda_backend* cb, float* out, const float* q, const float* k, const float* v,
                                          int64_t batch, int64_t nq, int64_t nk, int heads, int d, float scale,
                                          int causal, dato_dtype dt, dato_error* err) {
    if (d < 1 || d > MMA_MAX_D)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "attention: head dim %d is over the MMA kernel's %d", d, MMA_MAX_D);
    if (dt == DATO_F16)
        return dispatch<__half>(cb, out, q, k, v, batch, nq, nk, heads, d, scale, causal, err);
    if (dt == DATO_BF16)
        return dispatch<__nv_bfloat16>(cb, out, q, k, v, batch, nq, nk, heads, d, scale, causal, err);
    return dato_fail(err, DATO_ERR_INVALID, "attention: MMA kernel in %s; F16 or BF16 expected", dato_dtype_name(dt));
}
