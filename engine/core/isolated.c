// A parse in a forked child, its answer through a pipe. See isolated.h.
#include "isolated.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

// A child still parsing after 3 s plus 1 s per 4 MB of input is killed: a library may loop forever
// on a crafted file, and HDF5 parses a real one in milliseconds per MB.
#define CHILD_SECONDS 3
#define CHILD_BYTES_PER_SECOND ((size_t)4 << 20)
// The parent's buffer starts here and doubles as the answer arrives: an answer that announces
// gigabytes costs what the child really sends.
#define FIRST_CAP ((size_t)64 << 10)

// ---- byte buffer ---------------------------------------------------------------------------------

static int bytes_reserve(dato_bytes* b, size_t cap) {
    if (cap <= b->cap) return 1;
    uint8_t* grown = realloc(b->data, cap);
    if (!grown) return 0;
    b->data = grown;
    b->cap = cap;
    return 1;
}

void dato_bytes_append(dato_bytes* b, const void* p, size_t n) {
    if (b->failed || n == 0) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n && cap <= SIZE_MAX / 2) cap *= 2;
    if (cap - b->len < n || !bytes_reserve(b, cap)) {
        b->failed = 1;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void dato_bytes_free(dato_bytes* b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

int dato_bytes_take(const dato_bytes* b, size_t* at, void* out, size_t n) {
    if (*at > b->len || b->len - *at < n) return 0;
    if (n) memcpy(out, b->data + *at, n);
    *at += n;
    return 1;
}

// ---- the pipe ------------------------------------------------------------------------------------

static int send_all(int fd, const void* p, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const uint8_t*)p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        done += (size_t)w;
    }
    return 1;
}

typedef enum { GOT, ENDED, LATE } receive_outcome; // ENDED: end of file or a read error

// n bytes from fd into p before deadline (dato_clock_s seconds).
static receive_outcome receive_all(int fd, void* p, size_t n, double deadline) {
    for (size_t done = 0; done < n;) {
        double left = deadline - dato_clock_s();
        if (left <= 0) return LATE;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, left * 1000 > INT_MAX ? INT_MAX : (int)(left * 1000) + 1);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return ENDED;
        if (ready == 0) continue; // the deadline is checked above
        ssize_t r = read(fd, (uint8_t*)p + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return ENDED;
        done += (size_t)r;
    }
    return GOT;
}

// The child: parse, send [status, message] and on success [length, answer], exit.
static void child_main(int fd, dato_isolated_parse parse, void* ctx, const char* label) {
    dato_bytes answer = {0};
    dato_error e = {{0}};
    int32_t status = (int32_t)parse(ctx, &answer, &e);
    if (status == DATO_OK && answer.failed) {
        status = DATO_ERR_NOMEM;
        snprintf(e.msg, sizeof e.msg, "%s: the parse's answer outgrew memory at %zu bytes", label, answer.len);
    }
    uint64_t len = answer.len;
    int ok = send_all(fd, &status, sizeof status) && send_all(fd, e.msg, sizeof e.msg);
    if (ok && status == DATO_OK) ok = send_all(fd, &len, sizeof len) && send_all(fd, answer.data, answer.len);
    _exit(ok ? 0 : 1); // no atexit handlers, no flush of the parent's buffers: the child only answers
}

// The parent's side. *ended is set when the pipe closed early: the child ended on its own and its
// exit status says why.
static dato_status receive_answer(int fd, const char* label, const char* parser, double seconds, size_t max_answer,
                                  dato_bytes* answer, int* ended, dato_error* err) {
    double deadline = dato_clock_s() + seconds;
    int32_t status = 0;
    dato_error e;
    uint64_t len = 0;
    receive_outcome got = receive_all(fd, &status, sizeof status, deadline);
    if (got == GOT) got = receive_all(fd, e.msg, sizeof e.msg, deadline);
    if (got == GOT && status == DATO_OK) got = receive_all(fd, &len, sizeof len, deadline);
    if (got == GOT && status != DATO_OK) {
        e.msg[sizeof e.msg - 1] = 0;
        return dato_fail(err, status > DATO_OK && status <= DATO_ERR_PEER ? (dato_status)status : DATO_ERR_FORMAT, "%s",
                         e.msg);
    }
    if (got == GOT && len > max_answer)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %s's answer has %llu bytes, more than the %zu allowed", label,
                         parser, (unsigned long long)len, max_answer);
    while (got == GOT && answer->len < len) {
        size_t cap = answer->cap ? (answer->cap > len / 2 ? (size_t)len : 2 * answer->cap)
                                 : (len < FIRST_CAP ? (size_t)len : FIRST_CAP);
        if (!bytes_reserve(answer, cap))
            return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot hold %s's answer of %llu bytes", label, parser,
                             (unsigned long long)len);
        got = receive_all(fd, answer->data + answer->len, answer->cap - answer->len, deadline);
        if (got == GOT) answer->len = answer->cap;
    }
    *ended = got == ENDED;
    if (got == LATE)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %s gave no answer in %.0f s (the file is damaged or crafted)",
                         label, parser, seconds);
    if (got == ENDED) return dato_fail(err, DATO_ERR_FORMAT, "%s: %s's answer stopped short", label, parser);
    return DATO_OK;
}

dato_status dato_isolated_run(dato_isolated_parse parse, void* ctx, const char* label, const char* parser,
                              size_t input_bytes, size_t max_answer, dato_bytes* answer, dato_error* err) {
    memset(answer, 0, sizeof *answer);
    int fds[2];
    if (pipe(fds) != 0) return dato_fail(err, DATO_ERR_IO, "%s: pipe failed (%s)", label, strerror(errno));
    pid_t pid = fork();
    if (pid == 0) { // the child prints nothing: its stdout and stderr (the library's, a sanitizer's) go to /dev/null
        close(fds[0]);
        int null_fd = open("/dev/null", O_WRONLY);
        if (null_fd >= 0) dup2(null_fd, STDOUT_FILENO), dup2(null_fd, STDERR_FILENO);
        child_main(fds[1], parse, ctx, label);
    }
    int fork_errno = errno;
    close(fds[1]);
    int ended = 0;
    double seconds = CHILD_SECONDS + (double)(input_bytes / CHILD_BYTES_PER_SECOND);
    dato_status st = pid < 0 ? dato_fail(err, DATO_ERR_IO, "%s: fork failed (%s)", label, strerror(fork_errno))
                             : receive_answer(fds[0], label, parser, seconds, max_answer, answer, &ended, err);
    close(fds[0]);
    if (pid > 0) {
        if (st != DATO_OK) kill(pid, SIGKILL); // late, refused or silent: maybe still parsing (a dead one keeps its status)
        int ws = 0;
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
        }
        if (ended && WIFSIGNALED(ws))
            st = dato_fail(err, DATO_ERR_FORMAT,
                           "%s: %s crashed parsing it (signal %d, %s): the file is damaged or crafted", label, parser,
                           WTERMSIG(ws), strsignal(WTERMSIG(ws)));
        else if (ended && WIFEXITED(ws)) // a sanitizer's report ends with status 1
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: %s %s (exit status %d): the file is damaged or crafted", label,
                           parser, WEXITSTATUS(ws) ? "failed parsing it" : "exited without a full answer",
                           WEXITSTATUS(ws));
    }
    if (st != DATO_OK) dato_bytes_free(answer);
    return st;
}
