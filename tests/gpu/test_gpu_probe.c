// The CUDA backend's device probe: counts the devices and describes each. Exits 77 (skipped)
// when the build has no CUDA (tests/gpu_skipped.c stands in) or the machine has no GPU.
#include <stdio.h>
#include <string.h>

#include "cuda_device.h"
#include "test_util.h"

int main(void) {
    int count = dato_cuda_device_count();
    printf("CUDA devices: %d\n", count);
    if (count == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    dato_error err = {{0}};
    char desc[256];
    for (int dev = 0; dev < count; dev++) {
        dato_status st = dato_cuda_describe(dev, desc, sizeof desc, &err);
        CHECK(st == DATO_OK, "describe device %d: %s", dev, err.msg);
        printf("device %d: %s\n", dev, desc);
        CHECK(strstr(desc, ", sm_") && strstr(desc, " SMs, ") && strstr(desc, " GiB"), "description '%s'", desc);
        int sms = 0;
        const char* at = strstr(desc, " SMs, ");
        while (at && at > desc && at[-1] >= '0' && at[-1] <= '9') at--;
        if (at) sms = atoi(at);
        CHECK(sms > 0, "device %d reports %d SMs", dev, sms);
    }
    // A short buffer truncates, NUL-terminated.
    char small[8];
    CHECK(dato_cuda_describe(0, small, sizeof small, &err) == DATO_OK && strlen(small) == sizeof small - 1,
          "short buffer gave '%s'", small);
    CHECK(dato_cuda_describe(count, desc, sizeof desc, &err) == DATO_ERR_INVALID && strstr(err.msg, "out of range"),
          "device %d (one past the last): %s", count, err.msg);
    CHECK(dato_cuda_describe(-1, desc, sizeof desc, &err) == DATO_ERR_INVALID, "device -1 accepted");
    CHECK(dato_cuda_describe(0, NULL, 0, &err) == DATO_ERR_INVALID, "NULL buffer accepted");
    return test_summary();
}
