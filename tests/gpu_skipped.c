// What each gpu-labelled test is in a build without CUDA (-DDATO_CUDA=OFF, or no nvcc): a program
// that exits 77, which ctest reports as skipped.
#include <stdio.h>

int main(void) {
    printf("no CUDA in this build: skipped\n");
    return 77;
}
