// dato-generate on hostile inputs (issue 23): each gives a non-zero exit and a message naming the
// option, the file (and line) and what was expected, once; none gives a black image and exit 0.
// A --context tensor of a dtype that is not F32/F16/BF16 (its file and tensor named once, not
// twice) or holding a NaN; a prompts file line with invalid UTF-8 (FILE:LINE), a prompts file
// that is a folder or empty; an image size from dato.json that the model cannot take (says it came
// from dato.json); a dato.json guidance beyond float. argv[1] is the dato-generate binary.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#define MODEL "tests/fixtures/unet/sd15"

static char tmpdir[] = "/tmp/dato-gen-inputs-XXXXXX";
static char err_text[8192];

// Runs a shell command; returns its exit status, its stderr in err_text.
static int run(const char* cmd) {
    char full[4096], path[256];
    snprintf(path, sizeof path, "%s/stderr.txt", tmpdir);
    snprintf(full, sizeof full, "%s 2>%s >/dev/null", cmd, path);
    int rc = system(full);
    size_t n = 0;
    unsigned char* text = read_bytes(path, &n);
    snprintf(err_text, sizeof err_text, "%.*s", text ? (int)n : 0, text ? (const char*)text : "");
    free(text);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int count(const char* s, const char* needle) {
    int n = 0;
    for (const char* p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

// Exit status want and every needle in stderr.
static void expect(const char* what, const char* cmd, int want, const char* needle1, const char* needle2) {
    int rc = run(cmd);
    CHECK(rc == want, "%s: exit %d, want %d (%s)", what, rc, want, err_text);
    CHECK(strstr(err_text, needle1) && strstr(err_text, needle2), "%s: '%s' lacks '%s' / '%s'", what, err_text, needle1,
          needle2);
    printf("%s: %s", what, err_text);
}

// A one-tensor safetensors file 'context' (2, 8, 24) of dtype ("F32" or "I32"), 4-byte values.
static int write_context(const char* path, const char* dtype, const float* values) {
    char header[160];
    int n = snprintf(header, sizeof header,
                     "{\"context\":{\"dtype\":\"%s\",\"shape\":[2,8,24],\"data_offsets\":[0,1536]}}", dtype);
    while (n % 8) header[n++] = ' '; // the data starts 8-aligned
    uint64_t len = (uint64_t)n;
    unsigned char bytes[8 + 160 + 1536];
    memcpy(bytes, &len, 8); // little-endian, as this x86-64 machine is
    memcpy(bytes + 8, header, (size_t)n);
    memcpy(bytes + 8 + n, values, 1536);
    return write_bytes(path, bytes, 8 + (size_t)n + 1536);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_generate_inputs PATH/TO/dato-generate\n");
        return 2;
    }
    const char* exe = argv[1];
    if (!mkdtemp(tmpdir)) return 1;
    char cmd[4096], ctx[256], model[256], path[300];

    // --context: an I32 tensor names the file and the tensor once ("--context: F: tensor 'context':
    // dtype I32 ...", where F and the tensor were said twice); a NaN is refused, naming the value.
    float values[2 * 8 * 24];
    for (int i = 0; i < 2 * 8 * 24; i++) values[i] = 0.01f * (float)(i % 13);
    snprintf(ctx, sizeof ctx, "%s/ctx_i32.safetensors", tmpdir);
    CHECK(write_context(ctx, "I32", values), "cannot write %s", ctx);
    snprintf(cmd, sizeof cmd, "%s --model %s --context %s --steps 2", exe, MODEL, ctx);
    expect("I32 context", cmd, 1, "dtype I32 cannot be converted to F32", "--context");
    CHECK(count(err_text, ctx) == 1 && count(err_text, "'context'") == 1, "I32 context: '%s' says the file or the "
          "tensor more than once", err_text);
    values[200] = NAN;
    snprintf(ctx, sizeof ctx, "%s/ctx_nan.safetensors", tmpdir);
    CHECK(write_context(ctx, "F32", values), "cannot write %s", ctx);
    snprintf(cmd, sizeof cmd, "%s --model %s --context %s --steps 2", exe, MODEL, ctx);
    expect("NaN context", cmd, 1, "tensor 'context': value 200 of 384 is nan", "ctx_nan.safetensors");

    // --prompts-file: the line of a prompt the tokenizer refuses; a folder; no prompts.
    snprintf(path, sizeof path, "%s/prompts.txt", tmpdir);
    static const char prompts[] = "a cat\n\na dog\xff\xfe\n";
    CHECK(write_bytes(path, prompts, sizeof prompts - 1), "cannot write %s", path);
    snprintf(cmd, sizeof cmd, "%s --model tests/fixtures/pipeline/sd15 --prompts-file %s --steps 2 --out %s/p.png", exe,
             path, tmpdir);
    expect("invalid UTF-8 prompt", cmd, 1, "prompts.txt:3: encode: prompt 0: tokenizer: invalid UTF-8 at byte 5",
           "--prompts-file");
    snprintf(cmd, sizeof cmd, "%s --model %s --prompts-file %s", exe, MODEL, tmpdir);
    expect("prompts file is a folder", cmd, 2, "--prompts-file", "cannot read: Is a directory");
    snprintf(path, sizeof path, "%s/empty.txt", tmpdir);
    CHECK(write_bytes(path, "\n\r\n", 3), "cannot write %s", path);
    snprintf(cmd, sizeof cmd, "%s --model %s --prompts-file %s", exe, MODEL, path);
    expect("empty prompts file", cmd, 2, "empty.txt: no prompts", "--prompts-file");

    // A model folder whose dato.json asks what cannot run: the message says where the value came from.
    snprintf(model, sizeof model, "%s/model", tmpdir);
    CHECK(mkdir(model, 0755) == 0, "mkdir %s", model);
    char cwd[1024], link[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    snprintf(link, sizeof link, "ln -s %s/%s/unet %s/%s/scheduler %s/", cwd, MODEL, cwd, MODEL, model);
    CHECK(system(link) == 0, "%s", link);
    static const char size_json[] = "{\"format\": \"dato-model-defaults\", \"version\": 1, \"height\": 15, \"width\": 16}";
    snprintf(path, sizeof path, "%s/dato.json", model);
    CHECK(write_bytes(path, size_json, sizeof size_json - 1), "cannot write %s", path);
    snprintf(cmd, sizeof cmd, "%s --model %s --context %s/loop_ddim.safetensors --steps 2", exe, model, MODEL);
    expect("size from dato.json", cmd, 1, "16x15 (width x height, from the model's dato.json) must be a multiple of 8",
           "dato-generate");
    snprintf(cmd, sizeof cmd, "%s --model %s --context %s/loop_ddim.safetensors --steps 2 --size 15", exe, model,
             MODEL);
    expect("size from --size", cmd, 1, "15x15 (width x height, from --size)", "multiple of 8");
    static const char guidance_json[] = "{\"format\": \"dato-model-defaults\", \"version\": 1, \"guidance\": 1e300}";
    CHECK(write_bytes(path, guidance_json, sizeof guidance_json - 1), "cannot write %s", path);
    snprintf(cmd, sizeof cmd, "%s --model %s --context %s/loop_ddim.safetensors --steps 2 --out %s/g.png", exe, model,
             MODEL, tmpdir);
    expect("guidance 1e300 in dato.json", cmd, 1, "dato.json: field 'guidance': expected a finite number", "");

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
