// The CLIP BPE tokenizer, id-for-id with transformers' CLIPTokenizer (5.x, tokenizers backend) on a
// diffusers tokenizer folder: vocab.json + merges.txt, or tokenizer.json alone (what transformers 5
// saves), with the optional special_tokens_map.json and tokenizer_config.json. Rules and the parity
// record: docs/TOKENIZER.md; background ENGINE.md §7.
//
// encode: special tokens split out of the raw text (unnormalized ones) -> NFC, whitespace runs ->
// " ", per-code-point lowercase -> special tokens split out (normalized ones) -> the CLIP split
// pattern -> bytes to byte symbols, "</w>" on the last, merges lowest rank first -> bos + ids + eos,
// truncated to max_len (eos kept last), padded with the pad token.
#ifndef DATO_TOKENIZER_H
#define DATO_TOKENIZER_H

#include <stdint.h>

#include "status.h"

typedef struct dato_tokenizer dato_tokenizer;

// Opens dir/vocab.json and dir/merges.txt, or without them dir/tokenizer.json (CLIP's BPE, checked:
// its model's vocab and merges, its added_tokens), with the special tokens and model_max_length of
// dir/special_tokens_map.json and dir/tokenizer_config.json (each optional; CLIPTokenizer's
// defaults otherwise: bos <|startoftext|>, eos = unk = pad = <|endoftext|>, 77 tokens).
dato_status dato_tokenizer_open(dato_tokenizer** out, const char* dir, dato_error* err);
// The same with the vocabulary and merges given by path: config_dir holds only the optional
// config files (a variant sharing one vocabulary, e.g. SD2's pad "!"); config_dir may be NULL.
dato_status dato_tokenizer_open_files(dato_tokenizer** out, const char* vocab_path, const char* merges_path,
                                      const char* config_dir, dato_error* err);
void dato_tokenizer_free(dato_tokenizer* t);

// Tokenizes a NUL-terminated UTF-8 prompt into exactly max_len ids: bos, up to max_len - 2
// content ids, eos, then pad ids. *n_tokens (if non-NULL) gets the count before padding
// (bos and eos included, after truncation). Invalid UTF-8 is DATO_ERR_INVALID naming the byte
// offset (Python cannot hold such text either). Not thread-safe: it updates the word cache.
dato_status dato_tokenizer_encode(dato_tokenizer* t, const char* utf8, int32_t* ids /* (max_len) */, int* n_tokens,
                                  dato_error* err);

// Sets the length encode writes, as model_max_length does (2..65536). CLIP score
// (metrics/clip.c) encodes one id past the model's 77 to cut long prompts as torchmetrics does
// (no eos), where the default keeps the eos last.
dato_status dato_tokenizer_set_max_len(dato_tokenizer* t, int max_len, dato_error* err);
int dato_tokenizer_max_len(const dato_tokenizer* t);
int32_t dato_tokenizer_bos_id(const dato_tokenizer* t);
int32_t dato_tokenizer_eos_id(const dato_tokenizer* t);
int32_t dato_tokenizer_pad_id(const dato_tokenizer* t);
int dato_tokenizer_vocab_size(const dato_tokenizer* t);

#endif
