// Hostile model configs (issue 23): the UNet, VAE and text encoder configs, their JSON number
// readers, dato.json and configs inferred from tensor shapes refuse every out-of-range value with a
// message naming the file and the field, before any arithmetic could overflow on it; a caller that
// prefixes a callee's message (dato_error_prefix) gets it whole, its label once, never garbled.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_defaults.h"
#include "table_source.h"
#include "test_util.h"
#include "text_encoder.h"
#include "unet.h"
#include "vae.h"

// The tiny configs every case starts from; a case puts its fields first (cJSON reads the first of
// two equal keys), so each differs from a valid config in the fields it names only.
#define UNET_BASE                                                                                                  \
    "\"block_out_channels\": [16, 32], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"       \
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"norm_num_groups\": 8, \"attention_head_dim\": 2," \
    " \"cross_attention_dim\": 32, \"layers_per_block\": 1}"
#define VAE_BASE "\"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"layers_per_block\": 1}"
#define TE_BASE                                                                                                     \
    "\"vocab_size\": 100, \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2,"                 \
    " \"num_attention_heads\": 2, \"max_position_embeddings\": 77}"

// Occurrences of needle in s.
static int count(const char* s, const char* needle) {
    int n = 0;
    for (const char* p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

// The status is want and the message holds needle, with the label "cfg.json" exactly once at its start.
static void expect(const char* what, dato_status st, dato_status want, const dato_error* err, const char* needle) {
    CHECK(st == want, "%s: status %d, want %d (%s)", what, (int)st, (int)want, st ? err->msg : "accepted");
    if (st != want) return;
    CHECK(strstr(err->msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err->msg, needle);
    CHECK(strncmp(err->msg, "cfg.json: ", 10) == 0 && count(err->msg, "cfg.json") == 1,
          "%s: message '%s' does not name cfg.json once, first", what, err->msg);
    printf("%s: %s\n", what, err->msg);
}

static void test_error_prefix(void) {
    dato_error err;
    dato_fail(&err, DATO_ERR_INVALID, "block_out_channels[0] = 12 is not a multiple of norm_num_groups 8");
    CHECK(dato_error_prefix(&err, DATO_ERR_FORMAT, "%s: ", "config.json") == DATO_ERR_FORMAT, "status not passed on");
    CHECK(strcmp(err.msg, "config.json: block_out_channels[0] = 12 is not a multiple of norm_num_groups 8") == 0,
          "prefixed: '%s'", err.msg);
    // The prefix may itself read the message: it is formatted aside first.
    dato_fail(&err, DATO_ERR_IO, "abc");
    dato_error_prefix(&err, DATO_ERR_IO, "[%s] ", err.msg);
    CHECK(strcmp(err.msg, "[abc] abc") == 0, "self-prefixed: '%s'", err.msg);
    // A long message is cut at the buffer's end, still NUL-terminated.
    memset(err.msg, 'x', sizeof err.msg - 1);
    err.msg[sizeof err.msg - 1] = '\0';
    dato_error_prefix(&err, DATO_ERR_IO, "head: ");
    CHECK(strlen(err.msg) == sizeof err.msg - 1 && strncmp(err.msg, "head: xxx", 9) == 0, "cut: %zu bytes",
          strlen(err.msg));
    CHECK(dato_error_prefix(NULL, DATO_ERR_NOMEM, "x") == DATO_ERR_NOMEM, "NULL err");
}

static void test_unet(void) {
    static const struct {
        const char* what;
        const char* fields; // put before UNET_BASE
        dato_status want;
        const char* needle;
    } cases[] = {
        // was "cfg.json: cfg.json: itive multiple ...": dato_fail formatted into the buffer it read
        {"channels not a multiple of groups", "\"block_out_channels\": [12, 32],", DATO_ERR_INVALID,
         "cfg.json: block_out_channels[0] = 12 is not a multiple of norm_num_groups 8"},
        // 4 * 1073741824 overflowed int before any check (and 2^30 splits into 8 groups and 2 heads)
        {"huge channels", "\"block_out_channels\": [1073741824, 32],", DATO_ERR_INVALID,
         "block_out_channels[0] = 1073741824 is outside 1..65536"},
        {"huge layers_per_block", "\"layers_per_block\": 2147483647,", DATO_ERR_INVALID,
         "layers_per_block = 2147483647 is outside 1..15"},
        {"huge text_time widths",
         "\"addition_embed_type\": \"text_time\", \"addition_time_embed_dim\": 1000000000,"
         " \"projection_class_embeddings_input_dim\": 2000000000,",
         DATO_ERR_INVALID, "addition_time_embed_dim = 1000000000 is outside 0..65536"},
        {"huge cross_attention_dim", "\"cross_attention_dim\": 2147483647,", DATO_ERR_INVALID,
         "cross_attention_dim = 2147483647 is outside 1..65536"},
        {"heads beyond int", "\"attention_head_dim\": 1e10,", DATO_ERR_FORMAT,
         "field 'attention_head_dim': expected an integer"},
        // (float)1e300 is undefined; it came out as inf, and inf eps blackened every image
        {"norm_eps beyond float", "\"norm_eps\": 1e300,", DATO_ERR_FORMAT, "field 'norm_eps': expected a finite number"},
        {"norm_eps 0", "\"norm_eps\": 0,", DATO_ERR_INVALID, "norm_eps 0 must be finite and > 0"},
        {"freq_shift beyond float", "\"freq_shift\": -1e39,", DATO_ERR_FORMAT, "field 'freq_shift'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{%s " UNET_BASE, cases[i].fields);
        dato_unet_config cfg;
        dato_error err;
        expect(cases[i].what, dato_unet_config_from_json_text(&cfg, text, "cfg.json", &err), cases[i].want, &err,
               cases[i].needle);
    }
    dato_unet_config cfg;
    dato_error err;
    CHECK(dato_unet_config_from_json_text(&cfg, "{" UNET_BASE, "cfg.json", &err) == DATO_OK && cfg.time_embed_dim == 64,
          "the base config: %s", err.msg);
}

static void test_vae_and_text_encoder(void) {
    dato_vae_config vc;
    dato_te_config tc;
    dato_error err;
    // was "cfg.json: cfg.json: ..." (vae.c prefixed into the buffer it read)
    expect("vae groups", dato_vae_config_from_json_text(&vc, "{\"block_out_channels\": [6, 16], " VAE_BASE, "cfg.json",
                                                        &err),
           DATO_ERR_INVALID, &err, "cfg.json: vae config: block_out_channels[0] = 6 is not a positive multiple of 4");
    // layers_per_block + 1 overflowed, wrapped negative and passed the check
    expect("vae layers_per_block", dato_vae_config_from_json_text(&vc, "{\"layers_per_block\": 2147483647, " VAE_BASE,
                                                                  "cfg.json", &err),
           DATO_ERR_INVALID, &err, "vae config: layers_per_block = 2147483647 is outside 0..7");
    expect("vae scaling_factor", dato_vae_config_from_json_text(&vc, "{\"scaling_factor\": 1e40, " VAE_BASE, "cfg.json",
                                                                &err),
           DATO_ERR_FORMAT, &err, "field 'scaling_factor': expected a finite number");
    expect("text encoder width", dato_te_config_from_json_text(&tc, "{\"hidden_size\": 2147483647, "
                                                                    "\"num_attention_heads\": 1, " TE_BASE,
                                                               "cfg.json", &err),
           DATO_ERR_INVALID, &err, "text encoder config: hidden_size = 2147483647 is outside 1..65536");
    expect("text encoder vocabulary", dato_te_config_from_json_text(&tc, "{\"vocab_size\": 2000000000, " TE_BASE,
                                                                    "cfg.json", &err),
           DATO_ERR_INVALID, &err, "vocab_size = 2000000000 is outside 1..1048576");
    expect("text encoder eps", dato_te_config_from_json_text(&tc, "{\"layer_norm_eps\": 1e-300, " TE_BASE, "cfg.json",
                                                             &err),
           DATO_ERR_INVALID, &err, "layer_norm_eps 0 is not in (0, 1)");
    CHECK(dato_vae_config_from_json_text(&vc, "{" VAE_BASE, "cfg.json", &err) == DATO_OK, "vae base: %s", err.msg);
    CHECK(dato_te_config_from_json_text(&tc, "{" TE_BASE, "cfg.json", &err) == DATO_OK, "te base: %s", err.msg);
}

// A VAE decoder inferred from shapes: a dimension beyond int (a tensor with a 0 dimension holds no
// bytes, so any other dimension fits in a file) is refused by name, not truncated to a small int.
static void test_inferred_shapes(void) {
    dato_st_tensor t[] = {
        {.name = strdup("first_stage_model.decoder.conv_in.weight"), .ndim = 4, .shape = {0, 4294967300LL, 3, 3}},
        {.name = strdup("first_stage_model.decoder.conv_out.weight"), .ndim = 4, .shape = {3, 8, 3, 3}, .numel = 216},
        {.name = strdup("first_stage_model.decoder.up.0.block.0.conv2.weight"), .ndim = 4, .shape = {8, 8, 3, 3},
         .numel = 576},
        {.name = strdup("first_stage_model.decoder.up.0.block.0.conv1.weight"), .ndim = 4, .shape = {8, 8, 3, 3},
         .numel = 576},
    };
    table_source ts = {.t = t, .n = 4, .label = "cfg.json"};
    table_sort(&ts);
    dato_tensor_source src = table_as_source(&ts);
    dato_vae_config vc;
    dato_error err;
    // (int)4294967300 was 4: a 4-channel decoder, inferred from a tensor that has no such width
    expect("inferred width beyond int", dato_vae_config_infer_ldm(&vc, &src, "first_stage_model.", 0.18215f, 4, &err),
           DATO_ERR_INVALID, &err, "inferred VAE config: vae config: latent_channels = 2147483647 is outside 1..4096");
    for (int i = 0; i < ts.n; i++) free(t[i].name);
}

// dato.json: numbers in the command line's ranges (a guidance of 1e300 was inf, and every image black).
static void test_model_defaults(void) {
    static const struct {
        const char* json;
        const char* needle;
    } cases[] = {
        {"{\"format\": \"dato-model-defaults\", \"version\": 1, \"guidance\": 1e300}", "field 'guidance': expected a finite"},
        {"{\"format\": \"dato-model-defaults\", \"version\": 1, \"guidance\": 1000}", "guidance = 1000 is outside 0..100"},
        {"{\"format\": \"dato-model-defaults\", \"version\": 1, \"height\": 1000000}", "height = 1000000 is outside 0..16384"},
    };
    char dir[] = "/tmp/dato-limits-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/dato.json", dir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(write_bytes(path, cases[i].json, strlen(cases[i].json)), "write %s", path);
        dato_model_defaults d;
        dato_error err;
        dato_status st = dato_model_defaults_load(&d, dir, &err);
        CHECK(st == DATO_ERR_INVALID || st == DATO_ERR_FORMAT, "dato.json %zu accepted", i);
        CHECK(st && strstr(err.msg, cases[i].needle) && strstr(err.msg, "dato.json"), "dato.json %zu: '%s' lacks '%s'",
              i, st ? err.msg : "", cases[i].needle);
        if (st) printf("dato.json %zu: %s\n", i, err.msg);
    }
    remove(path);
    rmdir(dir);
}

int main(void) {
    test_error_prefix();
    test_unet();
    test_vae_and_text_encoder();
    test_inferred_shapes();
    test_model_defaults();
    return test_summary();
}
