// libFuzzer target for the search checkpoint reader (dato_checkpoint_read_image, search/checkpoint.c:
// the seal, HDF5 in a forked child, the checks of what a resume relies on). The input is the file
// after its 512-byte user block: the target prepends the block and seals it, as an attacker would,
// so every mutation reaches HDF5 and the checks behind it. The seeds (tests/fuzz/corpus-checkpoint/)
// are real checkpoints without their seal block. Any bytes must be accepted or refused without a
// sanitizer report in this process and without a leak; a refusal names the label and leaves the
// checkpoint holding nothing; an accepted checkpoint keeps the promises of checkpoint.h.
// HDF5 itself runs in the child: a crash there is a refusal here (the child's own report, if
// any, goes to stderr and to a crash- file of the child, see docs/FUZZING.md).
// Build and run: docs/FUZZING.md.
#include "file_seal.h"
#include "fuzz_checkpoint_checks.h"

#define LABEL "fuzz-input.h5"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    uint8_t* image = malloc(DATO_SEAL_BYTES + size); // (512 + size) the whole file
    if (!image) return 0;
    memcpy(image + DATO_SEAL_BYTES, data, size);
    dato_seal_image(image, DATO_SEAL_BYTES + size, DATO_CHECKPOINT_SEAL_MAGIC);
    dato_checkpoint c;
    dato_error err;
    dato_status st = dato_checkpoint_read_image(image, DATO_SEAL_BYTES + size, LABEL, &c, &err);
    free(image);
    fuzz_check_checkpoint(st, &c, &err, LABEL);
    return 0;
}
