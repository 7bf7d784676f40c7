// The one clock of dato: every elapsed time (progress lines, evaluation times, the latency meter of
// metrics/latency.h) is a difference of two readings.
#ifndef DATO_CLOCK_H
#define DATO_CLOCK_H

// Seconds on CLOCK_MONOTONIC (never steps back; its origin is arbitrary: use differences).
double dato_clock_s(void);

#endif
