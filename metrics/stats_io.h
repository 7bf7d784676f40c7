// FID reference statistics on disk (docs/EVALUATION.md): dato's own HDF5 files, which carry what the
// statistics were taken with, and import of the .npz files of pytorch-fid / TTUR and of ADM's
// reference batches (openai/guided-diffusion), whose `mu` and `sigma` entries are .npy arrays.
//
// HDF5 layout ("dato-fid-stats" version 1): datasets /mu (dim) and /sigma (dim, dim), float64
// (float32 accepted on read); root attributes format = "dato-fid-stats", version = 1,
// count (int64), extractor, weights_hash, preprocessing, source (strings: fixed-size, or
// variable-length ASCII/UTF-8 as h5py writes them). A 512-byte user block holds the file's seal
// (file_seal.h), checked on read when present. Statistics read or written pass
// dato_fid_stats_check (finite, bounded, sigma symmetric and positive semi-definite).
#ifndef DATO_STATS_IO_H
#define DATO_STATS_IO_H

#include <stddef.h>
#include <stdint.h>

#include "fid.h"
#include "isolated.h"
#include "status.h"

#define DATO_STATS_FORMAT "dato-fid-stats"
#define DATO_STATS_SEAL_MAGIC "dato-fid-stats seal\n" // the seal's first line (file_seal.h)
#define DATO_STATS_VERSION 1

// What the statistics were taken with. Two statistics are comparable only when extractor,
// weights_hash and preprocessing all agree (docs/FID.md §2.6, §10.7).
typedef struct {
    char extractor[128];    // feature network, e.g. "pytorch-fid-inception-v3-pool3"
    char weights_hash[128]; // hash of its weights file
    char preprocessing[64]; // resize/normalisation mode, e.g. "pytorch-fid", "tf1-legacy", "clean"
    char source[512];       // free text: the data set or run behind the statistics
} dato_stats_meta;

// Writes stats and meta to path, sealed (via path.tmp and a rename: no partial file is left at
// path). stats->count is the number of images behind the statistics: at least 2, or 0 when
// unknown (statistics imported from .npz). Statistics failing dato_fid_stats_check are refused.
dato_status dato_stats_write_h5(const char* path, const dato_fid_stats* stats, const dato_stats_meta* meta,
                                dato_error* err);
// Reads and validates a file written by dato_stats_write_h5 (or by h5py in its layout). stats is
// allocated here (free with dato_fid_stats_free). The seal is checked here, then libhdf5 parses the
// file in a child process (isolated.h: it crashes on some crafted files, which are then refused)
// and the statistics it sends back are checked here. A seal that does not match, a user block that
// is not a seal, a missing dataset or attribute, a wrong shape, a non-float dataset, a wrong format
// name or version, or statistics failing dato_fid_stats_check are refused with a message naming
// them.
dato_status dato_stats_read_h5(const char* path, dato_fid_stats* stats, dato_stats_meta* meta, dato_error* err);

// The parent's side of the isolated parse, exposed for fuzzing and tests: the child's answer (answer,
// len bytes: meta, count int64, dim int32, mu, sigma) into stats and meta, checked as
// dato_stats_read_h5 checks them. DATO_ERR_FORMAT naming label; on failure both hold nothing.
dato_status dato_stats_decode_answer(const uint8_t* answer, size_t len, const char* label, dato_fid_stats* stats,
                                     dato_stats_meta* meta, dato_error* err);
// The child's side: stats and meta appended to answer in the form decode_answer takes.
void dato_stats_encode_answer(const dato_fid_stats* stats, const dato_stats_meta* meta, dato_bytes* answer);

// Refuses (DATO_ERR_INVALID) two statistics whose extractor, weights hash or preprocessing
// differ, naming the field and both values; labels name the two sides in the message.
// An empty field differs from a filled one: imported statistics need their metadata filled in.
dato_status dato_stats_check_compatible(const dato_stats_meta* a, const char* label_a, const dato_stats_meta* b,
                                        const char* label_b, dato_error* err);
// dato_stats_check_compatible (the sources label the sides), then the Fréchet distance.
dato_status dato_stats_fid(const dato_fid_stats* a, const dato_stats_meta* meta_a, const dato_fid_stats* b,
                           const dato_stats_meta* meta_b, dato_fid_result* out, dato_error* err);

// Imports `mu` and `sigma` from an .npz archive (stored or deflated entries; other entries such
// as ADM's arr_0 images are ignored), checked by dato_fid_stats_check. count is set to 0: .npz
// files do not record it. The caller fills the dato_stats_meta: the file does not say what
// produced it.
dato_status dato_stats_read_npz(const char* path, dato_fid_stats* stats, dato_error* err);

#endif
