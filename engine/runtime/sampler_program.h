// The sampler updates of sampler.h as short programs of axpby instructions, so that a backend
// (the GPU) runs the denoising loop with its existing op axpby (out = alpha*a + beta*b, out may
// alias a or b; backend.h) and no sampler code of its own.
//
// A program works on slots, each a latent-sized (latent_numel) float buffer the caller owns:
//   X      the latent, updated in place (the `x` of dato_sampler_step);
//   OUT    this call's (guided) model output; read only, never written by a program;
//   NOISE  this call's standard normals, read only and only when dato_sampler_needs_noise(s, call);
//   H0..   history that persists across the calls of one image: dato_sampler_program_slots(s) of
//          them (PLMS: its eps ring and the start latent; DPM-Solver: the x0 predictions). Their
//          contents before call 0 do not matter (call 0 never reads them), so a new image needs
//          no reset.
// Which history slot holds which past value is a function of the call index, resolved here, so the
// instructions name fixed slots. A program is a function of the sampler's tables and the call index
// only (never of data): it can be planned before the loop or captured in a graph.
//
//   for (int c = 0; c < dato_sampler_num_calls(s); c++) {
//       ... OUT = guided UNet(X * info.input_scale, info.timestep); NOISE = normals if needs_noise ...
//       dato_sampler_program(s, c, prog, &n, &err);
//       for (int k = 0; k < n; k++)
//           axpby(slot[prog[k].dst], prog[k].alpha, slot[prog[k].a], prog[k].beta, slot[prog[k].b]);
//   }
//
// The coefficients come from the tables dato_sampler_step uses, combined in double and rounded to
// float once. The rounding order differs from dato_sampler_step (which reproduces torch's op order
// for bit-level parity with diffusers), so the two agree to ~1e-6 relative, not bit for bit; the CPU
// pipeline keeps dato_sampler_step. Configurations with a nonlinear update (DDIM with clip_sample)
// have no program: DATO_ERR_UNSUPPORTED.
#ifndef DATO_SAMPLER_PROGRAM_H
#define DATO_SAMPLER_PROGRAM_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" { // the CUDA backend may include this header from .cu files
#endif

typedef struct dato_sampler dato_sampler; // sampler.h

typedef enum {
    DATO_SLOT_X,     // the latent, updated in place
    DATO_SLOT_OUT,   // this call's model output (read only)
    DATO_SLOT_NOISE, // this call's standard normals (read only; only when needs_noise)
    DATO_SLOT_H0,    // history slots, persistent across calls
    DATO_SLOT_H1,
    DATO_SLOT_H2,
    DATO_SLOT_COUNT
} dato_sampler_slot;

#define DATO_SAMPLER_MAX_HISTORY (DATO_SLOT_COUNT - DATO_SLOT_H0)

// slot[dst] = alpha * slot[a] + beta * slot[b], elementwise (dst may equal a or b). A single-input
// instruction (a scale or a copy) has beta = 0 and b = a: axpby still reads b, so b is always a
// valid slot, and the caller needs no zero buffer.
typedef struct {
    int8_t dst, a, b;
    float alpha, beta;
} dato_sampler_instr;

#define DATO_SAMPLER_MAX_INSTR 8

// The update of model call `call` (0..num_calls-1) as instructions prog[0..*n), run in order.
// prog: room for DATO_SAMPLER_MAX_INSTR. Fails with DATO_ERR_INVALID naming the call when it is out
// of range, DATO_ERR_UNSUPPORTED for a configuration whose update is not linear (clip_sample).
dato_status dato_sampler_program(const dato_sampler* s, int call, dato_sampler_instr* prog, int* n, dato_error* err);

// How many history slots (H0, H1, ...) the sampler's programs use: the caller allocates that many
// latent-sized buffers. DDIM and Euler 0, DPM-Solver++(2M) 2, PLMS 3.
int dato_sampler_program_slots(const dato_sampler* s);

// "x", "out", "noise", "h0", ... ("?" out of range), for logs and messages.
const char* dato_sampler_slot_name(int slot);

#ifdef __cplusplus
}
#endif

#endif
