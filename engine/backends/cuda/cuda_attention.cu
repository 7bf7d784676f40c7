// Multi-head attention on the GPU: one fused flash-attention kernel with an online softmax,
// f32 throughout. One thread block owns (image, head, tile of ATTN_BQ queries) and walks the
// keys in tiles of ATTN_BK, keeping per query a running max m, a running sum l and an output
// accumulator o, so the (Nq, Nk) score matrix never exists. Per key tile:
//   stage k, v tiles (BK, D) in shared memory
//   s = q k^T                       (BQ, BK) in shared memory, q pre-scaled by scale * log2 e
//   m' = max(m, rowmax s); p = 2^(s - m'); a = 2^(m - m'); l = l * a + rowsum p
//   o = o * a + p v                 o in registers, spread over the block
// and at the end out = o / l. Causal blocks stop at their last query's key and mask the scores
// above the diagonal to -inf; key 0 is in every query's first tile, so m is finite after it.
//
// Inputs are read as f32 and every product is an f32 FMA on the CUDA cores. The faster version,
// cuda_attention_mma.cu, rounds q, k, v (and the probabilities) to f16/bf16 and runs both
// products as tensor-core MMAs (wmma) with f32 accumulation, FlashAttention-2 style: the op
// calls it instead of this kernel when the backend's opt.attention is F16 or BF16
// (dato_backend_cuda_configure); the argument checks below serve both.
#include <math.h>

#include "cuda_ops.h"

#define ATTN_BQ 32       // queries per block
#define ATTN_BK 32       // keys per tile: one per lane in the softmax step
#define ATTN_THREADS 128 // 4 warps
#define ATTN_MAX_D 160   // the largest head dim (SD 2.x at 1280 channels / 8 heads)
#define ATTN_ROWS 4      // output rows per accumulator item
// Accumulator items per thread: (BQ / ROWS) row groups x D columns spread over the threads.
#define ATTN_ITEMS ((ATTN_BQ / ATTN_ROWS * ATTN_MAX_D + ATTN_THREADS - 1) / ATTN_THREADS)

// Shared memory of one block for head dim d: q, k, v tiles (rows of ld = d | 1 floats: an odd
// stride puts the 32 keys a warp reads at one dim in 32 different banks), the scores (BQ, BK + 1),
// and m, l, a (BQ) each.
static size_t attn_smem_bytes(int d) {
    int ld = d | 1;
    return sizeof(float) * ((size_t)(ATTN_BQ + 2 * ATTN_BK) * ld + ATTN_BQ * (ATTN_BK + 1) + 3 * ATTN_BQ);
}

// out (B, Nq, H*D) for q (B, Nq, H*D) and k, v (B, Nk, H*D); grid (query tiles, H, B), ATTN_THREADS
// threads, attn_smem_bytes(d) of dynamic shared memory. qscale = scale * log2 e (scores in base 2).
static __global__ void __launch_bounds__(ATTN_THREADS)
attention_kernel(float* out, const float* q, const float* k, const float* v, int64_t nq, int64_t nk, int heads, int d,
                 float qscale, int causal) {
    extern __shared__ float smem[];
    const int ld = d | 1, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    float* qs = smem;                          // (BQ, ld) pre-scaled queries, zeros past Nq
    float* ks = qs + ATTN_BQ * ld;             // (BK, ld) key tile, zeros past the end
    float* vs = ks + ATTN_BK * ld;             // (BK, ld) value tile, zeros past the end
    float* ss = vs + ATTN_BK * ld;             // (BQ, BK + 1) scores, then probabilities
    float* ms = ss + ATTN_BQ * (ATTN_BK + 1);  // (BQ) running max (base 2)
    float* ls = ms + ATTN_BQ;                  // (BQ) running sum
    float* as = ls + ATTN_BQ;                  // (BQ) rescale factor of this tile

    const int64_t q0 = (int64_t)blockIdx.x * ATTN_BQ, b = blockIdx.z, h = blockIdx.y;
    const int64_t channels = (int64_t)heads * d;
    const float* qb = q + (b * nq * heads + h) * d; // row i at qb + i * channels, (D)
    const float* kb = k + (b * nk * heads + h) * d; // row j at kb + j * channels, (D)
    const float* vb = v + (b * nk * heads + h) * d; // row j at vb + j * channels, (D)

    for (int e = tid; e < ATTN_BQ * d; e += ATTN_THREADS) {
        int i = e / d, c = e % d;
        qs[i * ld + c] = q0 + i < nq ? qb[(q0 + i) * channels + c] * qscale : 0.0f;
    }
    for (int i = tid; i < ATTN_BQ; i += ATTN_THREADS) ms[i] = -INFINITY, ls[i] = 0.0f;

    // Item s of this thread covers rows [4 g, 4 g + 4) of column c, for u = tid + s * THREADS,
    // g = u / d, c = u % d, while u < (BQ / 4) * d.
    float acc[ATTN_ITEMS][ATTN_ROWS];
#pragma unroll
    for (int s = 0; s < ATTN_ITEMS; s++)
#pragma unroll
        for (int r = 0; r < ATTN_ROWS; r++) acc[s][r] = 0.0f;

    int64_t k_end = causal ? (q0 + ATTN_BQ < nk ? q0 + ATTN_BQ : nk) : nk;
    for (int64_t k0 = 0; k0 < k_end; k0 += ATTN_BK) {
        __syncthreads(); // the previous tile's ks, vs, ss are no longer read (and qs, ms, ls are set)
        for (int e = tid; e < ATTN_BK * d; e += ATTN_THREADS) {
            int j = e / d, c = e % d;
            bool in = k0 + j < nk;
            ks[j * ld + c] = in ? kb[(k0 + j) * channels + c] : 0.0f;
            vs[j * ld + c] = in ? vb[(k0 + j) * channels + c] : 0.0f;
        }
        __syncthreads();

        // scores: lane = key j, rows warp + 4 r (the same row across a warp: a broadcast read)
        {
            const int j = lane;
            float sc[ATTN_BQ / 4];
#pragma unroll
            for (int r = 0; r < ATTN_BQ / 4; r++) sc[r] = 0.0f;
            for (int c = 0; c < d; c++) {
                float kv = ks[j * ld + c];
#pragma unroll
                for (int r = 0; r < ATTN_BQ / 4; r++) sc[r] = fmaf(qs[(warp + 4 * r) * ld + c], kv, sc[r]);
            }
#pragma unroll
            for (int r = 0; r < ATTN_BQ / 4; r++) {
                int64_t i = q0 + warp + 4 * r, kj = k0 + j;
                bool masked = kj >= nk || (causal && kj > i);
                ss[(warp + 4 * r) * (ATTN_BK + 1) + j] = masked ? -INFINITY : sc[r];
            }
        }
        __syncthreads();

        // online softmax: warp w updates rows [8 w, 8 w + 8), one key per lane
        for (int rr = 0; rr < ATTN_BQ / 4; rr++) {
            int i = warp * (ATTN_BQ / 4) + rr;
            float s = ss[i * (ATTN_BK + 1) + lane], mx = s;
            for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float m_old = ms[i], m_new = fmaxf(m_old, mx);
            float m_sub = m_new == -INFINITY ? 0.0f : m_new; // all masked so far: keep 2^(-inf) = 0, not NaN
            float p = exp2f(s - m_sub), sum = p;
            for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            ss[i * (ATTN_BK + 1) + lane] = p;
            __syncwarp(); // every lane has read ms[i] before lane 0 overwrites it
            if (lane == 0) {
                float a = exp2f(m_old - m_sub);
                as[i] = a;
                ls[i] = ls[i] * a + sum;
                ms[i] = m_new;
            }
        }
        __syncthreads();

        // o = o * a + p v
#pragma unroll
        for (int s = 0; s < ATTN_ITEMS; s++) {
            int u = tid + s * ATTN_THREADS;
            if (u < ATTN_BQ / ATTN_ROWS * d) {
                int g = u / d, c = u % d;
                const float* pr = ss + g * ATTN_ROWS * (ATTN_BK + 1); // (ROWS, BK + 1)
#pragma unroll
                for (int r = 0; r < ATTN_ROWS; r++) acc[s][r] *= as[g * ATTN_ROWS + r];
                for (int j = 0; j < ATTN_BK; j++) {
                    float vv = vs[j * ld + c];
#pragma unroll
                    for (int r = 0; r < ATTN_ROWS; r++) acc[s][r] = fmaf(pr[r * (ATTN_BK + 1) + j], vv, acc[s][r]);
                }
            }
        }
    }
    __syncthreads(); // the last tile's ls is final

#pragma unroll
    for (int s = 0; s < ATTN_ITEMS; s++) {
        int u = tid + s * ATTN_THREADS;
        if (u < ATTN_BQ / ATTN_ROWS * d) {
            int g = u / d, c = u % d;
#pragma unroll
            for (int r = 0; r < ATTN_ROWS; r++) {
                int i = g * ATTN_ROWS + r;
                if (q0 + i < nq) out[(b * nq * heads + h) * d + (q0 + i) * channels + c] = acc[s][r] / ls[i];
            }
        }
    }
}

extern "C" dato_status cuda_attention_setup(dato_error* err) {
    // Over 48 KiB of shared memory (head dims above 80) needs each kernel's opt-in, made once here:
    // an op must not change function attributes, which a graph capture may not allow.
    size_t smem = attn_smem_bytes(ATTN_MAX_D);
    cudaError_t e = cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "attention: %zu bytes of shared memory for head dim %d: %s", smem,
                         ATTN_MAX_D, cudaGetErrorString(e));
    }
    return cuda_attention_mma_setup(err);
}

extern "C" dato_status cuda_attention(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                                      const dato_tensor* v, int heads, float scale, int causal, dato_error* err) {
    DATO_TRY(dato_op_check_attention(out, q, k, v, heads, causal, DATO_DEV_CUDA, err));
    char sq[96];
    int64_t batch = q->shape[0], nq = q->shape[1], nk = k->shape[1], channels = q->shape[2];
    if (batch == 0 || nq == 0) return DATO_OK;
    int64_t d = channels / heads;
    if (d > ATTN_MAX_D)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "attention: head dim %lld of q %s is over the kernel's %d",
                         (long long)d, dato_shape_str(q, sq, sizeof sq), ATTN_MAX_D);
    int64_t q_tiles = (nq + ATTN_BQ - 1) / ATTN_BQ;
    if (batch > 65535 || heads > 65535 || q_tiles > INT32_MAX)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "attention: q %s with %d heads exceeds the grid",
                         dato_shape_str(q, sq, sizeof sq), heads);

    cuda_backend* cb = cuda_impl(be);
    if (cb->opt.attention != DATO_F32)
        return cuda_attention_mma(cb, (float*)out->data, (const float*)q->data, (const float*)k->data,
                                  (const float*)v->data, batch, nq, nk, heads, (int)d, scale, causal,
                                  cb->opt.attention, err);

    size_t smem = attn_smem_bytes((int)d); // over 48 KiB above head dim 80: opted in at init
    dim3 grid((unsigned)q_tiles, (unsigned)heads, (unsigned)batch);
    attention_kernel<<<grid, ATTN_THREADS, smem, cb->stream>>>((float*)out->data, (const float*)q->data,
                                                               (const float*)k->data, (const float*)v->data, nq, nk,
                                                               heads, (int)d, scale * 1.44269504088896341f, causal);
    return cuda_check_launch("attention", err);
}
