// The restricted pickle interpreter (see pickle.h and docs/CKPT.md). A stack machine over a
// pool of values: containers hold indices into the pool, so the memo, shared references and
// self-references need no ownership rules and everything is freed in one linear pass. The
// interpreter loop never recurses; only the final walk over nested dicts does, to a fixed depth.
// Every value costs at least one opcode byte, so memory is linear in the pickle's size.
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

#define MAX_PICKLE_BYTES ((size_t)1 << 30) // data.pkl of a real checkpoint is well under 10 MB
#define MAX_GLOBAL_LINE 256

typedef enum {
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_BYTES,
    V_TUPLE,
    V_LIST,
    V_DICT,
    V_GLOBAL,
    V_STORAGE,
    V_TENSOR,
    V_OPAQUE
} value_kind;
static const char* const value_kind_names[] = {"None",  "bool",   "int",     "float",  "str",
                                               "bytes", "tuple",  "list",    "dict",   "global",
                                               "storage", "tensor", "opaque object"};

typedef enum {
    G_ORDERED_DICT, // REDUCE with () -> an empty dict
    G_REBUILD_TENSOR, // (storage, offset, size, stride) -> a tensor
    G_REBUILD_TENSOR_V2, // (storage, offset, size, stride, requires_grad, hooks[, metadata]) -> a tensor
    G_REBUILD_PARAMETER, // (tensor, requires_grad, hooks[, state]) -> the tensor
    G_STORAGE, // a storage class, only as the type in a persistent id
    G_OPAQUE, // REDUCE/NEWOBJ -> an opaque value; never called
} global_kind;

// The only globals a pickle may name. Everything else is refused when it is named.
static const struct {
    const char* module;
    const char* name;
    global_kind kind;
    dato_st_dtype dtype; // G_STORAGE
} allowed_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, 0},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_TENSOR, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, 0},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAMETER, 0},
    {"torch", "FloatStorage", G_STORAGE, DATO_ST_F32},
    {"torch", "HalfStorage", G_STORAGE, DATO_ST_F16},
    {"torch", "BFloat16Storage", G_STORAGE, DATO_ST_BF16},
    {"torch", "DoubleStorage", G_STORAGE, DATO_ST_F64},
    {"torch", "LongStorage", G_STORAGE, DATO_ST_I64},
    {"torch", "IntStorage", G_STORAGE, DATO_ST_I32},
    {"torch", "ShortStorage", G_STORAGE, DATO_ST_I16},
    {"torch", "CharStorage", G_STORAGE, DATO_ST_I8},
    {"torch", "ByteStorage", G_STORAGE, DATO_ST_U8},
    {"torch", "BoolStorage", G_STORAGE, DATO_ST_BOOL},
    // Non-tensor entries of LDM / PyTorch Lightning checkpoints (callback state, numpy scalars
    // such as a best score): kept as opaque values so the file loads; never called.
    {"numpy.core.multiarray", "scalar", G_OPAQUE, 0},
    {"numpy._core.multiarray", "scalar", G_OPAQUE, 0},
    {"numpy.core.multiarray", "_reconstruct", G_OPAQUE, 0},
    {"numpy._core.multiarray", "_reconstruct", G_OPAQUE, 0},
    {"numpy", "ndarray", G_OPAQUE, 0},
    {"numpy", "dtype", G_OPAQUE, 0},
    {"_codecs", "encode", G_OPAQUE, 0},
    {"torch", "device", G_OPAQUE, 0},
    {"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint", G_OPAQUE, 0},
};
#define N_ALLOWED_GLOBALS ((int)(sizeof allowed_globals / sizeof allowed_globals[0]))

typedef struct {
    value_kind kind;
    int64_t i; // V_BOOL, V_INT; V_GLOBAL: allowed_globals index; V_STORAGE, V_TENSOR: table index
    double f; // V_FLOAT
    char* s; // V_STR, V_BYTES: len bytes plus a NUL
    size_t len;
    int32_t* items; // V_TUPLE, V_LIST: elements; V_DICT: key, value, key, value, ...
    int n, cap;
} value;

typedef struct {
    int32_t key; // a V_STR value
    dato_st_dtype dtype;
    int64_t numel;
} raw_storage;

typedef struct {
    int storage; // raw_storage index
    int64_t offset;
    int ndim;
    int64_t shape[DATO_ST_MAX_DIMS], stride[DATO_ST_MAX_DIMS];
} raw_tensor;

typedef struct {
    char* name;
    int tensor; // raw_tensor index
} named_tensor;

typedef struct {
    const uint8_t* p;
    size_t size, pos, op_pos;
    const char* label;
    dato_error* err;
    value* values;
    int n_values, cap_values;
    int32_t* stack;
    int n_stack, cap_stack;
    int* marks; // stack heights at each MARK
    int n_marks, cap_marks;
    int32_t* memo; // value index or -1
    int memo_cap;
    int memo_count; // distinct entries set (MEMOIZE's next index)
    raw_storage* storages;
    int n_storages, cap_storages;
    raw_tensor* tensors;
    int n_tensors, cap_tensors;
    named_tensor* named; // the flattened dict
    int n_named, cap_named, max_named;
} reader;

static dato_status fail(reader* r, dato_status st, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static dato_status fail(reader* r, dato_status st, const char* fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->op_pos == SIZE_MAX) return dato_fail(r->err, st, "%s: %s", r->label, msg); // after STOP
    return dato_fail(r->err, st, "%s: %s (pickle byte %zu)", r->label, msg, r->op_pos);
}

// Makes room for need elements of elem bytes in *arr (capacity *cap). 0 on overflow or OOM.
static int grow(void** arr, int* cap, int need, size_t elem) {
    if (need <= *cap) return 1;
    if (need < 0 || need > (1 << 30)) return 0;
    int c = *cap ? *cap : 16;
    while (c < need) c = c > (1 << 29) ? (1 << 30) : c * 2;
    void* p = realloc(*arr, (size_t)c * elem);
    if (!p) return 0;
    *arr = p;
    *cap = c;
    return 1;
}

// A new value of kind k; returns its index or -1 (the error is set).
static int32_t new_value(reader* r, value_kind k) {
    if (!grow((void**)&r->values, &r->cap_values, r->n_values + 1, sizeof *r->values)) {
        fail(r, DATO_ERR_NOMEM, "out of memory for values");
        return -1;
    }
    value* v = &r->values[r->n_values];
    memset(v, 0, sizeof *v);
    v->kind = k;
    return r->n_values++;
}

static dato_status push(reader* r, int32_t v) {
    if (v < 0) return DATO_ERR_NOMEM; // new_value failed and set the message
    if (!grow((void**)&r->stack, &r->cap_stack, r->n_stack + 1, sizeof *r->stack))
        return fail(r, DATO_ERR_NOMEM, "out of memory for the stack");
    r->stack[r->n_stack++] = v;
    return DATO_OK;
}

// Stack height above which pops are allowed: the last MARK (as in CPython's fence).
static int fence(const reader* r) { return r->n_marks ? r->marks[r->n_marks - 1] : 0; }

static dato_status pop(reader* r, int32_t* v) {
    if (r->n_stack <= fence(r)) return fail(r, DATO_ERR_FORMAT, "stack underflow");
    *v = r->stack[--r->n_stack];
    return DATO_OK;
}

static dato_status top(reader* r, int32_t* v) {
    if (r->n_stack <= fence(r)) return fail(r, DATO_ERR_FORMAT, "stack underflow");
    *v = r->stack[r->n_stack - 1];
    return DATO_OK;
}

// Pops everything above the last MARK and the MARK itself: *first is the stack index of the
// first item, *n the count. The items stay readable in r->stack until the next push.
static dato_status pop_mark(reader* r, int* first, int* n) {
    if (!r->n_marks) return fail(r, DATO_ERR_FORMAT, "no MARK on the stack");
    *first = r->marks[--r->n_marks];
    *n = r->n_stack - *first;
    r->n_stack = *first;
    return DATO_OK;
}

static dato_status append_items(reader* r, int32_t container, const int32_t* items, int n) {
    if (n == 0) return DATO_OK; // items may be NULL (an empty container)
    value* c = &r->values[container];
    if (!grow((void**)&c->items, &c->cap, c->n + n, sizeof *c->items))
        return fail(r, DATO_ERR_NOMEM, "out of memory for a %s", value_kind_names[c->kind]);
    memcpy(c->items + c->n, items, (size_t)n * sizeof *items);
    c->n += n;
    return DATO_OK;
}

// A new tuple/list/dict holding n items.
static dato_status push_container(reader* r, value_kind k, const int32_t* items, int n) {
    int32_t c = new_value(r, k);
    if (c < 0) return DATO_ERR_NOMEM;
    dato_status st = append_items(r, c, items, n);
    return st ? st : push(r, c);
}

static int need(reader* r, size_t n) { return r->size - r->pos >= n; }

static uint64_t read_le(reader* r, int n) {
    uint64_t x = 0;
    for (int i = 0; i < n; i++) x |= (uint64_t)r->p[r->pos + i] << (8 * i);
    r->pos += (size_t)n;
    return x;
}

// Reads an n-byte little-endian length field.
static dato_status read_len(reader* r, int n, uint64_t* len) {
    if (!need(r, (size_t)n)) return fail(r, DATO_ERR_FORMAT, "truncated (a %d-byte length)", n);
    *len = read_le(r, n);
    return DATO_OK;
}

// Pushes a V_STR or V_BYTES copy of the next len bytes.
static dato_status push_string(reader* r, value_kind k, uint64_t len) {
    if (len > r->size - r->pos)
        return fail(r, DATO_ERR_FORMAT, "truncated (a string of %llu bytes)", (unsigned long long)len);
    int32_t v = new_value(r, k);
    if (v < 0) return DATO_ERR_NOMEM;
    char* s = malloc((size_t)len + 1);
    if (!s) return fail(r, DATO_ERR_NOMEM, "out of memory for a string");
    memcpy(s, r->p + r->pos, (size_t)len);
    s[len] = '\0';
    r->values[v].s = s;
    r->values[v].len = (size_t)len;
    r->pos += (size_t)len;
    return push(r, v);
}

static dato_status push_int(reader* r, int64_t x) {
    int32_t v = new_value(r, V_INT);
    if (v < 0) return DATO_ERR_NOMEM;
    r->values[v].i = x;
    return push(r, v);
}

// Resolves module.name against the allow list and pushes it; anything else is refused.
static dato_status push_global(reader* r, const char* module, size_t module_len, const char* name, size_t name_len) {
    for (int g = 0; g < N_ALLOWED_GLOBALS; g++) {
        if (strlen(allowed_globals[g].module) == module_len && strlen(allowed_globals[g].name) == name_len &&
            memcmp(allowed_globals[g].module, module, module_len) == 0 &&
            memcmp(allowed_globals[g].name, name, name_len) == 0) {
            int32_t v = new_value(r, V_GLOBAL);
            if (v < 0) return DATO_ERR_NOMEM;
            r->values[v].i = g;
            return push(r, v);
        }
    }
    // Print at most 200 bytes of each, with non-printable bytes as '?'.
    char shown[2][201];
    const char* src[2] = {module, name};
    size_t lens[2] = {module_len, name_len};
    for (int k = 0; k < 2; k++) {
        size_t n = lens[k] < 200 ? lens[k] : 200;
        for (size_t i = 0; i < n; i++) shown[k][i] = src[k][i] >= 32 && src[k][i] < 127 ? src[k][i] : '?';
        shown[k][n] = '\0';
    }
    return fail(r, DATO_ERR_UNSUPPORTED, "refused global '%s.%s': only tensor-rebuild globals are allowed", shown[0],
                shown[1]);
}

// GLOBAL's argument: "module\nname\n".
static dato_status read_line(reader* r, const char** s, size_t* len) {
    size_t avail = r->size - r->pos;
    const uint8_t* nl = memchr(r->p + r->pos, '\n', avail < MAX_GLOBAL_LINE ? avail : MAX_GLOBAL_LINE);
    if (!nl) return fail(r, DATO_ERR_FORMAT, "GLOBAL argument without a newline in %d bytes", MAX_GLOBAL_LINE);
    *s = (const char*)r->p + r->pos;
    *len = (size_t)(nl - (r->p + r->pos));
    r->pos += *len + 1;
    return DATO_OK;
}

static const value* val(const reader* r, int32_t v) { return &r->values[v]; }

// BINPERSID: ('storage', storage class, key, location, numel) in zip files, with a sixth item,
// view_metadata, in legacy files; it must be None (storage views predate torch 1.0) -> a V_STORAGE.
static dato_status persistent_load(reader* r) {
    int32_t pid = 0;
    dato_status st = pop(r, &pid);
    if (st) return st;
    const value* t = val(r, pid);
    if (t->kind != V_TUPLE || (t->n != 5 && t->n != 6))
        return fail(r, DATO_ERR_FORMAT, "persistent id is not a 5- or 6-tuple");
    if (t->n == 6 && val(r, t->items[5])->kind != V_NONE)
        return fail(r, DATO_ERR_UNSUPPORTED, "persistent id with storage view metadata (a pre-1.0 storage view)");
    const value *tag = val(r, t->items[0]), *cls = val(r, t->items[1]), *key = val(r, t->items[2]),
                *numel = val(r, t->items[4]);
    if (tag->kind != V_STR || strcmp(tag->s, "storage") != 0 || tag->len != 7)
        return fail(r, DATO_ERR_UNSUPPORTED, "persistent id is not a ('storage', ...) tuple");
    if (cls->kind != V_GLOBAL || allowed_globals[cls->i].kind != G_STORAGE)
        return fail(r, DATO_ERR_FORMAT, "persistent id's storage type is not a torch storage class");
    if (key->kind != V_STR || key->len == 0 || key->len > DATO_PICKLE_MAX_KEY)
        return fail(r, DATO_ERR_FORMAT, "persistent id's storage key is not a string of 1..%d bytes",
                    DATO_PICKLE_MAX_KEY);
    for (size_t i = 0; i < key->len; i++) {
        char c = key->s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'))
            return fail(r, DATO_ERR_FORMAT, "storage key has a byte other than [A-Za-z0-9_]");
    }
    if (numel->kind != V_INT || numel->i < 0 || numel->i > INT64_MAX / 16)
        return fail(r, DATO_ERR_FORMAT, "storage '%s': element count is not an integer in [0, 2^59]", key->s);
    if (!grow((void**)&r->storages, &r->cap_storages, r->n_storages + 1, sizeof *r->storages))
        return fail(r, DATO_ERR_NOMEM, "out of memory for storages");
    r->storages[r->n_storages] =
        (raw_storage){.key = t->items[2], .dtype = allowed_globals[cls->i].dtype, .numel = numel->i};
    int32_t v = new_value(r, V_STORAGE);
    if (v < 0) return DATO_ERR_NOMEM;
    r->values[v].i = r->n_storages++;
    return push(r, v);
}

// Reads a tuple of at most DATO_ST_MAX_DIMS ints into dims; *n gets the count.
static dato_status int_tuple(reader* r, int32_t v, const char* what, int64_t* dims, int* n) {
    const value* t = val(r, v);
    if (t->kind != V_TUPLE)
        return fail(r, DATO_ERR_FORMAT, "tensor %s is a %s, not a tuple", what, value_kind_names[t->kind]);
    if (t->n > DATO_ST_MAX_DIMS)
        return fail(r, DATO_ERR_UNSUPPORTED, "tensor has %d dims (at most %d)", t->n, DATO_ST_MAX_DIMS);
    for (int d = 0; d < t->n; d++) {
        const value* x = val(r, t->items[d]);
        if (x->kind != V_INT) return fail(r, DATO_ERR_FORMAT, "tensor %s holds a %s", what, value_kind_names[x->kind]);
        dims[d] = x->i;
    }
    *n = t->n;
    return DATO_OK;
}

// _rebuild_tensor(_v2)(storage, offset, size, stride, ...): records a view; checked once named.
static dato_status rebuild_tensor(reader* r, const value* args) {
    if (args->n < 4) return fail(r, DATO_ERR_FORMAT, "_rebuild_tensor with %d arguments", args->n);
    const value *storage = val(r, args->items[0]), *offset = val(r, args->items[1]);
    if (storage->kind != V_STORAGE)
        return fail(r, DATO_ERR_FORMAT, "_rebuild_tensor of a %s, not a storage", value_kind_names[storage->kind]);
    if (offset->kind != V_INT)
        return fail(r, DATO_ERR_FORMAT, "tensor storage offset is a %s", value_kind_names[offset->kind]);
    raw_tensor t = {.storage = (int)storage->i, .offset = offset->i};
    int n_stride;
    dato_status st = int_tuple(r, args->items[2], "size", t.shape, &t.ndim);
    if (!st) st = int_tuple(r, args->items[3], "stride", t.stride, &n_stride);
    if (st) return st;
    if (n_stride != t.ndim) return fail(r, DATO_ERR_FORMAT, "tensor with %d sizes and %d strides", t.ndim, n_stride);
    if (!grow((void**)&r->tensors, &r->cap_tensors, r->n_tensors + 1, sizeof *r->tensors))
        return fail(r, DATO_ERR_NOMEM, "out of memory for tensors");
    r->tensors[r->n_tensors] = t;
    int32_t v = new_value(r, V_TENSOR);
    if (v < 0) return DATO_ERR_NOMEM;
    r->values[v].i = r->n_tensors++;
    return push(r, v);
}

// REDUCE and NEWOBJ: callable(*args), modelled for the allowed globals only.
static dato_status reduce(reader* r, int newobj) {
    int32_t args_v = 0, fn_v = 0;
    dato_status st = pop(r, &args_v);
    if (!st) st = pop(r, &fn_v);
    if (st) return st;
    const value *fn = val(r, fn_v), *args = val(r, args_v);
    const char* op = newobj ? "NEWOBJ" : "REDUCE";
    if (fn->kind != V_GLOBAL)
        return fail(r, DATO_ERR_FORMAT, "%s of a %s, not a global", op, value_kind_names[fn->kind]);
    if (args->kind != V_TUPLE)
        return fail(r, DATO_ERR_FORMAT, "%s with %s arguments, not a tuple", op, value_kind_names[args->kind]);
    global_kind g = allowed_globals[fn->i].kind;
    const char* gname = allowed_globals[fn->i].name;
    if (g == G_OPAQUE) return push(r, new_value(r, V_OPAQUE));
    if (g == G_ORDERED_DICT) {
        if (args->n != 0) return fail(r, DATO_ERR_UNSUPPORTED, "OrderedDict built from %d arguments", args->n);
        return push(r, new_value(r, V_DICT));
    }
    if (newobj || g == G_STORAGE) return fail(r, DATO_ERR_UNSUPPORTED, "%s of %s is not supported", op, gname);
    if (g == G_REBUILD_PARAMETER) {
        if (args->n < 1 || val(r, args->items[0])->kind != V_TENSOR)
            return fail(r, DATO_ERR_FORMAT, "%s without a tensor argument", gname);
        return push(r, args->items[0]);
    }
    return rebuild_tensor(r, args);
}

static dato_status memo_put(reader* r, uint64_t idx) {
    int32_t v = 0;
    dato_status st = top(r, &v);
    if (st) return st;
    // Writers number memo entries from 0, one per PUT: an index beyond the bytes read so far is
    // forged (the bound is the position, not the size: a legacy file's pickle is read from a
    // window that also holds the storages).
    if (idx > r->pos)
        return fail(r, DATO_ERR_FORMAT, "memo index %llu beyond the pickle's size", (unsigned long long)idx);
    if ((int)idx >= r->memo_cap) {
        int old = r->memo_cap;
        if (!grow((void**)&r->memo, &r->memo_cap, (int)idx + 1, sizeof *r->memo))
            return fail(r, DATO_ERR_NOMEM, "out of memory for the memo");
        for (int i = old; i < r->memo_cap; i++) r->memo[i] = -1;
    }
    if (r->memo[idx] < 0) r->memo_count++;
    r->memo[idx] = v;
    return DATO_OK;
}

static dato_status memo_get(reader* r, uint64_t idx) {
    if (idx >= (uint64_t)r->memo_cap || r->memo[idx] < 0)
        return fail(r, DATO_ERR_FORMAT, "memo index %llu was never set", (unsigned long long)idx);
    return push(r, r->memo[idx]);
}

// Runs the opcodes up to STOP; *result gets the pickled object.
static dato_status run(reader* r, int32_t* result) {
    for (;;) {
        if (r->pos >= r->size) return fail(r, DATO_ERR_FORMAT, "truncated: no STOP opcode");
        r->op_pos = r->pos;
        uint8_t op = r->p[r->pos++];
        dato_status st = DATO_OK;
        uint64_t n = 0;
        int32_t a = 0, b = 0, c = 0;
        int first = 0, count = 0;
        switch (op) {
        case 0x80: // PROTO
            if (!(st = read_len(r, 1, &n)) && n > 5)
                st = fail(r, DATO_ERR_UNSUPPORTED, "pickle protocol %llu", (unsigned long long)n);
            break;
        case 0x95: st = read_len(r, 8, &n); break; // FRAME: a length hint; opcodes simply continue
        case '}': st = push(r, new_value(r, V_DICT)); break;
        case ']': st = push(r, new_value(r, V_LIST)); break;
        case ')': st = push(r, new_value(r, V_TUPLE)); break;
        case 'N': st = push(r, new_value(r, V_NONE)); break;
        case 0x88:
        case 0x89: // NEWTRUE, NEWFALSE
            if ((a = new_value(r, V_BOOL)) >= 0) r->values[a].i = op == 0x88;
            st = push(r, a);
            break;
        case '(': // MARK
            if (!grow((void**)&r->marks, &r->cap_marks, r->n_marks + 1, sizeof *r->marks))
                st = fail(r, DATO_ERR_NOMEM, "out of memory for marks");
            else
                r->marks[r->n_marks++] = r->n_stack;
            break;
        case 't':
        case 'l':
        case 'd': // TUPLE, LIST, DICT from the items above MARK
            if ((st = pop_mark(r, &first, &count))) break;
            if (op == 'd' && count % 2)
                st = fail(r, DATO_ERR_FORMAT, "DICT with an odd number of items");
            else
                st = push_container(r, op == 't' ? V_TUPLE : op == 'l' ? V_LIST : V_DICT, r->stack + first, count);
            break;
        case 0x85:
        case 0x86:
        case 0x87: // TUPLE1..3
            count = op - 0x84;
            if (r->n_stack - fence(r) < count)
                st = fail(r, DATO_ERR_FORMAT, "stack underflow");
            else {
                r->n_stack -= count;
                st = push_container(r, V_TUPLE, r->stack + r->n_stack, count);
            }
            break;
        case 's':
        case 'u':
        case 'a':
        case 'e': // SETITEM, SETITEMS, APPEND, APPENDS
            if (op == 's' || op == 'a') {
                count = op == 's' ? 2 : 1;
                if (r->n_stack - fence(r) < count + 1) {
                    st = fail(r, DATO_ERR_FORMAT, "stack underflow");
                    break;
                }
                first = r->n_stack - count;
                r->n_stack = first;
            } else if ((st = pop_mark(r, &first, &count)))
                break;
            if ((st = top(r, &c))) break;
            value_kind want = op == 's' || op == 'u' ? V_DICT : V_LIST;
            if (val(r, c)->kind != want)
                st = fail(r, DATO_ERR_FORMAT, "%s into a %s", want == V_DICT ? "SETITEM" : "APPEND",
                          value_kind_names[val(r, c)->kind]);
            else if (want == V_DICT && count % 2)
                st = fail(r, DATO_ERR_FORMAT, "SETITEMS with an odd number of items");
            else
                st = append_items(r, c, r->stack + first, count);
            break;
        case 'J': // BININT
            if (!(st = read_len(r, 4, &n))) st = push_int(r, (int32_t)(uint32_t)n);
            break;
        case 'K': // BININT1
            if (!(st = read_len(r, 1, &n))) st = push_int(r, (int64_t)n);
            break;
        case 'M': // BININT2
            if (!(st = read_len(r, 2, &n))) st = push_int(r, (int64_t)n);
            break;
        case 0x8a: // LONG1: n bytes of little-endian two's complement
            if ((st = read_len(r, 1, &n))) break;
            if (n > 8) {
                st = fail(r, DATO_ERR_UNSUPPORTED, "LONG1 of %llu bytes (at most 8)", (unsigned long long)n);
                break;
            }
            if (!need(r, n)) {
                st = fail(r, DATO_ERR_FORMAT, "truncated LONG1");
                break;
            }
            {
                int bytes = (int)n;
                uint64_t x = read_le(r, bytes);
                if (bytes > 0 && bytes < 8 && (x >> (8 * bytes - 1)) & 1)
                    x |= ~(uint64_t)0 << (8 * bytes); // sign-extend
                st = push_int(r, (int64_t)x);
            }
            break;
        case 'G': // BINFLOAT: big-endian double
            if (!need(r, 8)) {
                st = fail(r, DATO_ERR_FORMAT, "truncated BINFLOAT");
                break;
            }
            {
                uint64_t bits = 0;
                for (int i = 0; i < 8; i++) bits = bits << 8 | r->p[r->pos + i];
                r->pos += 8;
                if ((a = new_value(r, V_FLOAT)) >= 0) memcpy(&r->values[a].f, &bits, 8);
                st = push(r, a);
            }
            break;
        case 'X': // BINUNICODE
            if (!(st = read_len(r, 4, &n))) st = push_string(r, V_STR, n);
            break;
        case 0x8c: // SHORT_BINUNICODE
            if (!(st = read_len(r, 1, &n))) st = push_string(r, V_STR, n);
            break;
        case 0x8d: // BINUNICODE8
            if (!(st = read_len(r, 8, &n))) st = push_string(r, V_STR, n);
            break;
        case 'U': // SHORT_BINSTRING
            if (!(st = read_len(r, 1, &n))) st = push_string(r, V_STR, n);
            break;
        case 'T': // BINSTRING: signed 4-byte length
            if (!(st = read_len(r, 4, &n)))
                st = (int32_t)(uint32_t)n < 0 ? fail(r, DATO_ERR_FORMAT, "negative BINSTRING length")
                                              : push_string(r, V_STR, n);
            break;
        case 'C': // SHORT_BINBYTES
            if (!(st = read_len(r, 1, &n))) st = push_string(r, V_BYTES, n);
            break;
        case 'B': // BINBYTES
            if (!(st = read_len(r, 4, &n))) st = push_string(r, V_BYTES, n);
            break;
        case 0x8e:
        case 0x96: // BINBYTES8, BYTEARRAY8
            if (!(st = read_len(r, 8, &n))) st = push_string(r, V_BYTES, n);
            break;
        case 'q': // BINPUT
            if (!(st = read_len(r, 1, &n))) st = memo_put(r, n);
            break;
        case 'r': // LONG_BINPUT
            if (!(st = read_len(r, 4, &n))) st = memo_put(r, n);
            break;
        case 0x94: st = memo_put(r, (uint64_t)r->memo_count); break; // MEMOIZE
        case 'h': // BINGET
            if (!(st = read_len(r, 1, &n))) st = memo_get(r, n);
            break;
        case 'j': // LONG_BINGET
            if (!(st = read_len(r, 4, &n))) st = memo_get(r, n);
            break;
        case 'c': { // GLOBAL "module\nname\n"
            const char *module = NULL, *name = NULL;
            size_t module_len = 0, name_len = 0;
            if (!(st = read_line(r, &module, &module_len)) && !(st = read_line(r, &name, &name_len)))
                st = push_global(r, module, module_len, name, name_len);
            break;
        }
        case 0x93: // STACK_GLOBAL: module, name strings on the stack
            if ((st = pop(r, &b)) || (st = pop(r, &a))) break;
            if (val(r, a)->kind != V_STR || val(r, b)->kind != V_STR)
                st = fail(r, DATO_ERR_FORMAT, "STACK_GLOBAL of non-strings");
            else
                st = push_global(r, val(r, a)->s, val(r, a)->len, val(r, b)->s, val(r, b)->len);
            break;
        case 'R': st = reduce(r, 0); break;
        case 0x81: st = reduce(r, 1); break; // NEWOBJ
        case 'b': // BUILD: the state (OrderedDict attributes, numpy state) is dropped, never applied
            if (!(st = pop(r, &a))) st = top(r, &b);
            break;
        case 'Q': st = persistent_load(r); break; // BINPERSID
        case '0': st = pop(r, &a); break; // POP
        case '1': st = pop_mark(r, &first, &count); break; // POP_MARK
        case '.': // STOP
            if ((st = pop(r, result))) return st;
            return DATO_OK;
        default:
            if (op >= 32 && op < 127)
                return fail(r, DATO_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x '%c'", op, op);
            return fail(r, DATO_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x", op);
        }
        if (st) return st;
    }
}

static char* copy_string(const char* s, size_t n) {
    char* d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

// Adds name -> tensor t to the flattened dict.
static dato_status add_named(reader* r, const char* name, int t) {
    if (r->n_named >= r->max_named)
        return fail(r, DATO_ERR_FORMAT, "more tensor names than the pickle's size allows (dicts shared many times?)");
    if (!grow((void**)&r->named, &r->cap_named, r->n_named + 1, sizeof *r->named))
        return fail(r, DATO_ERR_NOMEM, "out of memory for tensor names");
    char* copy = copy_string(name, strlen(name));
    if (!copy) return fail(r, DATO_ERR_NOMEM, "out of memory for tensor names");
    r->named[r->n_named++] = (named_tensor){.name = copy, .tensor = t};
    return DATO_OK;
}

// Collects the tensors of dict d (and of the dicts in it) under prefix.
static dato_status flatten(reader* r, int32_t d, const char* prefix, int depth) {
    const value* dict = val(r, d);
    for (int i = 0; i + 1 < dict->n; i += 2) {
        const value *k = val(r, dict->items[i]), *v = val(r, dict->items[i + 1]);
        if (k->kind != V_STR || (v->kind != V_TENSOR && v->kind != V_DICT)) continue;
        if (strlen(k->s) != k->len) return fail(r, DATO_ERR_FORMAT, "a dict key under '%s' holds a NUL byte", prefix);
        char name[DATO_PICKLE_MAX_NAME + 1];
        size_t plen = strlen(prefix);
        if (plen + 1 + k->len > DATO_PICKLE_MAX_NAME)
            return fail(r, DATO_ERR_FORMAT, "tensor name under '%.64s' longer than %d bytes", prefix,
                        DATO_PICKLE_MAX_NAME);
        memcpy(name, prefix, plen);
        if (plen) name[plen++] = '.';
        memcpy(name + plen, k->s, k->len + 1);
        dato_status st;
        if (v->kind == V_TENSOR)
            st = add_named(r, name, (int)v->i);
        else if (depth >= DATO_PICKLE_MAX_DEPTH)
            st = fail(r, DATO_ERR_FORMAT, "dicts nested deeper than %d levels at '%.64s...'", DATO_PICKLE_MAX_DEPTH,
                      name);
        else
            st = flatten(r, dict->items[i + 1], name, depth + 1);
        if (st) return st;
    }
    return DATO_OK;
}

// Checks a named tensor: numel, contiguity, and range within its storage.
static dato_status check_tensor(reader* r, const char* name, const raw_tensor* t, int64_t* numel_out) {
    const raw_storage* s = &r->storages[t->storage];
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return fail(r, DATO_ERR_FORMAT, "tensor '%s': negative size %lld", name, (long long)t->shape[d]);
        if (t->shape[d] && numel > INT64_MAX / 16 / t->shape[d])
            return fail(r, DATO_ERR_FORMAT, "tensor '%s': element count overflows", name);
        numel *= t->shape[d];
    }
    if (numel > 0) { // strides of size-1 dims are free, as in torch's is_contiguous
        int64_t expect = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (t->shape[d] != 1 && t->stride[d] != expect)
                return fail(r, DATO_ERR_UNSUPPORTED,
                            "tensor '%s': not contiguous (stride %lld in dim %d, expected %lld)", name,
                            (long long)t->stride[d], d, (long long)expect);
            expect *= t->shape[d];
        }
    }
    if (t->offset < 0 || t->offset > s->numel || numel > s->numel - t->offset)
        return fail(
            r, DATO_ERR_FORMAT, "tensor '%s': elements [%lld, %lld + %lld) outside storage '%s' of %lld elements", name,
            (long long)t->offset, (long long)t->offset, (long long)numel, val(r, s->key)->s, (long long)s->numel);
    *numel_out = numel;
    return DATO_OK;
}

static int cmp_named(const void* a, const void* b) {
    return strcmp(((const named_tensor*)a)->name, ((const named_tensor*)b)->name);
}

typedef struct {
    const char* key;
    int raw;
} keyed_storage;

static int cmp_keyed(const void* a, const void* b) {
    return strcmp(((const keyed_storage*)a)->key, ((const keyed_storage*)b)->key);
}

// By key, then by order of appearance, so that the first declaration of a key comes first.
static int cmp_keyed_first(const void* a, const void* b) {
    int c = cmp_keyed(a, b);
    return c ? c : ((const keyed_storage*)a)->raw - ((const keyed_storage*)b)->raw;
}

// out->declared: every storage key a persistent id names, once, with its first declaration
// (a legacy file stores each key's bytes as that first declaration's type wrote them).
static dato_status build_declared(reader* r, dato_pickle_tensors* out) {
    keyed_storage* ks = calloc((size_t)r->n_storages + 1, sizeof *ks);
    out->declared = calloc((size_t)r->n_storages + 1, sizeof *out->declared);
    dato_status st = ks && out->declared ? DATO_OK : fail(r, DATO_ERR_NOMEM, "out of memory for the storage list");
    for (int i = 0; !st && i < r->n_storages; i++)
        ks[i] = (keyed_storage){.key = val(r, r->storages[i].key)->s, .raw = i};
    if (!st && r->n_storages) qsort(ks, (size_t)r->n_storages, sizeof *ks, cmp_keyed_first);
    for (int i = 0; !st && i < r->n_storages; i++) {
        if (i && strcmp(ks[i - 1].key, ks[i].key) == 0) continue;
        const raw_storage* s = &r->storages[ks[i].raw];
        char* key = copy_string(ks[i].key, strlen(ks[i].key));
        if (!key)
            st = fail(r, DATO_ERR_NOMEM, "out of memory for storage keys");
        else
            out->declared[out->n_declared++] = (dato_pickle_storage){.key = key, .dtype = s->dtype, .numel = s->numel};
    }
    free(ks);
    return st;
}

// Turns the flattened dict into out: sorted unique names, storages merged by key.
static dato_status build_result(reader* r, dato_pickle_tensors* out) {
    if (r->n_named) qsort(r->named, (size_t)r->n_named, sizeof *r->named, cmp_named); // named is NULL when empty
    for (int i = 1; i < r->n_named; i++)
        if (strcmp(r->named[i - 1].name, r->named[i].name) == 0)
            return fail(r, DATO_ERR_FORMAT, "duplicate tensor name '%s'", r->named[i].name);
    out->tensors = calloc((size_t)r->n_named + 1, sizeof *out->tensors);
    keyed_storage* ks = calloc((size_t)r->n_named + 1, sizeof *ks);
    int* unique_of_raw = malloc(((size_t)r->n_storages + 1) * sizeof *unique_of_raw);
    dato_status st = DATO_OK;
    if (!out->tensors || !ks || !unique_of_raw) st = fail(r, DATO_ERR_NOMEM, "out of memory for the tensor table");
    // Each named tensor's raw storage, listed once, ordered by key.
    int n_keyed = 0;
    for (int i = 0; !st && i < r->n_storages; i++) unique_of_raw[i] = -1;
    for (int i = 0; !st && i < r->n_named; i++) {
        int raw = r->tensors[r->named[i].tensor].storage;
        if (unique_of_raw[raw] == -1) {
            unique_of_raw[raw] = 0;
            ks[n_keyed++] = (keyed_storage){.key = val(r, r->storages[raw].key)->s, .raw = raw};
        }
    }
    if (!st) {
        qsort(ks, (size_t)n_keyed, sizeof *ks, cmp_keyed);
        out->storages = calloc((size_t)n_keyed + 1, sizeof *out->storages);
        if (!out->storages) st = fail(r, DATO_ERR_NOMEM, "out of memory for the storage table");
    }
    // Raw storages with one key (torch writes a new persistent id per tensor) become one.
    for (int i = 0; !st && i < n_keyed; i++) {
        const raw_storage* s = &r->storages[ks[i].raw];
        if (out->n_storages && strcmp(out->storages[out->n_storages - 1].key, ks[i].key) == 0) {
            const dato_pickle_storage* prev = &out->storages[out->n_storages - 1];
            if (prev->dtype != s->dtype || prev->numel != s->numel)
                st = fail(r, DATO_ERR_FORMAT, "storage '%s' declared with two types or sizes", ks[i].key);
        } else {
            char* key = copy_string(ks[i].key, strlen(ks[i].key));
            if (!key)
                st = fail(r, DATO_ERR_NOMEM, "out of memory for storage keys");
            else
                out->storages[out->n_storages++] =
                    (dato_pickle_storage){.key = key, .dtype = s->dtype, .numel = s->numel};
        }
        unique_of_raw[ks[i].raw] = out->n_storages - 1;
    }
    for (int i = 0; !st && i < r->n_named; i++) {
        const raw_tensor* t = &r->tensors[r->named[i].tensor];
        dato_pickle_tensor* o = &out->tensors[i];
        if ((st = check_tensor(r, r->named[i].name, t, &o->numel))) break;
        o->name = r->named[i].name;
        r->named[i].name = NULL; // moved into out
        o->storage = unique_of_raw[t->storage];
        o->offset = t->offset;
        o->ndim = t->ndim;
        memcpy(o->shape, t->shape, sizeof o->shape);
        out->n_tensors = i + 1;
    }
    free(ks);
    free(unique_of_raw);
    return st;
}

static void reader_free(reader* r) {
    for (int i = 0; i < r->n_values; i++) {
        free(r->values[i].s);
        free(r->values[i].items);
    }
    for (int i = 0; i < r->n_named; i++) free(r->named[i].name);
    free(r->values);
    free(r->stack);
    free(r->marks);
    free(r->memo);
    free(r->storages);
    free(r->tensors);
    free(r->named);
}

dato_status dato_pickle_load_tensors(dato_pickle_tensors* out, const void* bytes, size_t size, const char* label,
                                     dato_error* err) {
    memset(out, 0, sizeof *out);
    reader r = {.p = bytes, .size = size, .label = label ? label : "<memory>", .err = err};
    if (size > MAX_PICKLE_BYTES) return fail(&r, DATO_ERR_UNSUPPORTED, "pickle of %zu bytes (at most 1 GiB)", size);
    int32_t result = 0;
    // The stack exists from the start, so that r.stack + i is defined even when nothing was pushed.
    dato_status st = grow((void**)&r.stack, &r.cap_stack, 64, sizeof *r.stack)
                         ? DATO_OK
                         : fail(&r, DATO_ERR_NOMEM, "out of memory for the stack");
    if (!st) st = run(&r, &result);
    r.op_pos = SIZE_MAX; // what follows checks the object, not an opcode
    out->pickle_size = r.pos;
    // A real tensor entry costs far more than 4 bytes of pickle; more names than that means
    // one dict reached through many paths, which could otherwise blow up exponentially.
    r.max_named = (int)(r.pos / 4);
    if (!st && val(&r, result)->kind != V_DICT)
        st = fail(&r, DATO_ERR_UNSUPPORTED, "the pickled object is a %s, not a dict of tensors",
                  value_kind_names[val(&r, result)->kind]);
    if (!st) {
        const value* top_dict = val(&r, result);
        int32_t root = result;
        for (int i = 0; i + 1 < top_dict->n; i += 2) {
            const value *k = val(&r, top_dict->items[i]), *v = val(&r, top_dict->items[i + 1]);
            if (k->kind == V_STR && k->len == 10 && strcmp(k->s, "state_dict") == 0 && v->kind == V_DICT) {
                root = top_dict->items[i + 1];
                out->has_state_dict = 1;
            }
        }
        st = flatten(&r, root, "", 0);
    }
    if (!st) st = build_result(&r, out);
    if (!st) st = build_declared(&r, out);
    reader_free(&r);
    if (st) dato_pickle_tensors_free(out);
    return st;
}

void dato_pickle_tensors_free(dato_pickle_tensors* t) {
    for (int i = 0; i < t->n_tensors; i++) free(t->tensors[i].name);
    for (int i = 0; i < t->n_storages; i++) free(t->storages[i].key);
    for (int i = 0; i < t->n_declared; i++) free(t->declared[i].key);
    free(t->tensors);
    free(t->storages);
    free(t->declared);
    memset(t, 0, sizeof *t);
}

dato_status dato_pickle_load_strings(dato_pickle_strings* out, const void* bytes, size_t size, const char* label,
                                     dato_error* err) {
    memset(out, 0, sizeof *out);
    reader r = {.p = bytes, .size = size, .label = label ? label : "<memory>", .err = err};
    if (size > MAX_PICKLE_BYTES) return fail(&r, DATO_ERR_UNSUPPORTED, "pickle of %zu bytes (at most 1 GiB)", size);
    int32_t result = 0;
    dato_status st = grow((void**)&r.stack, &r.cap_stack, 64, sizeof *r.stack)
                         ? DATO_OK
                         : fail(&r, DATO_ERR_NOMEM, "out of memory for the stack");
    if (!st) st = run(&r, &result);
    r.op_pos = SIZE_MAX;
    out->pickle_size = r.pos;
    const value* list = st ? NULL : val(&r, result);
    if (list && list->kind != V_LIST && list->kind != V_TUPLE)
        st = fail(&r, DATO_ERR_FORMAT, "the pickled object is a %s, not a list of strings",
                  value_kind_names[list->kind]);
    if (!st) {
        out->strings = calloc((size_t)list->n + 1, sizeof *out->strings);
        if (!out->strings) st = fail(&r, DATO_ERR_NOMEM, "out of memory for a list of %d strings", list->n);
    }
    for (int i = 0; !st && i < list->n; i++) {
        const value* s = val(&r, list->items[i]);
        if (s->kind != V_STR || strlen(s->s) != s->len)
            st = fail(&r, DATO_ERR_FORMAT, "item %d of the list is a %s, not a string without NUL bytes", i,
                      value_kind_names[s->kind]);
        else if (!(out->strings[i] = copy_string(s->s, s->len)))
            st = fail(&r, DATO_ERR_NOMEM, "out of memory for a list of strings");
        else
            out->n = i + 1;
    }
    reader_free(&r);
    if (st) dato_pickle_strings_free(out);
    return st;
}

void dato_pickle_strings_free(dato_pickle_strings* s) {
    for (int i = 0; i < s->n; i++) free(s->strings[i]);
    free(s->strings);
    memset(s, 0, sizeof *s);
}
