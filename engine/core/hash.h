// FNV-1a 64, the one hash of dato: checksums (file seals, checkpoint payloads), identities (genomes,
// features, architectures, weights files) and hash tables all continue it from an offset basis.
#ifndef DATO_HASH_H
#define DATO_HASH_H

#include <stddef.h>
#include <stdint.h>

#define DATO_FNV_OFFSET 0xcbf29ce484222325ULL // FNV-1a 64's offset basis: the hash of no bytes
// The basis of the hashes dato's files have recorded since the first ones: a weights file's hash
// (statistics' weights_hash, the extractor's identity) and a model's architecture hash (latency
// tables' model_hash). It is FNV's basis short of its last decimal digit, a slip kept so that
// those files stay valid; every new hash starts from DATO_FNV_OFFSET.
#define DATO_FNV_RECORDED_OFFSET 1469598103934665603ULL

// FNV-1a 64 of n bytes, continuing from h (an offset basis to start).
uint64_t dato_fnv1a64(uint64_t h, const void* bytes, size_t n);

#endif
