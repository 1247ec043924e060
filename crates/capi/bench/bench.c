/* Throughput of the native C API: one writer process, one reader process,
 * COUNT messages of SIZE bytes, each carrying its sequence number (checked:
 * any loss or reordering fails the run). The rate is measured at the reader
 * from the first message to the last. crates/capi/examples/bench_rust.rs
 * runs the same loop through the Rust API; bench/run.sh compares them.
 *
 * Usage: bench SIZE COUNT        (prints one line: c SIZE COUNT SECONDS MSGS_PER_SEC) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <mailslot/mailslot.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what) {
    fprintf(stderr, "bench: %s: %s\n", what, mailslot_last_error_message());
    return 1;
}

static int writer(const char *name, size_t size, uint64_t count) {
    mailslot_writer *w = NULL;
    if (mailslot_writer_open(name, &w) != MAILSLOT_OK) return fail("open");
    unsigned char *msg = (unsigned char *)calloc(1, size);
    for (uint64_t i = 0; i < count; i++) {
        memcpy(msg, &i, sizeof i);
        if (mailslot_writer_write(w, msg, size) != MAILSLOT_OK) return fail("write");
    }
    free(msg);
    mailslot_writer_close(w);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--writer") == 0)
        return writer(argv[2], (size_t)atol(argv[3]), (uint64_t)atoll(argv[4]));
    if (argc != 3) {
        fprintf(stderr, "usage: bench SIZE COUNT\n");
        return 2;
    }
    size_t size = (size_t)atol(argv[1]);
    uint64_t count = (uint64_t)atoll(argv[2]);
    if (size < 8 || count < 2) {
        fprintf(stderr, "bench: SIZE must be at least 8 and COUNT at least 2\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "bench\\c-%d", (int)getpid());
    mailslot_reader *r = NULL;
    if (mailslot_reader_create(name, 0, MAILSLOT_WAIT_FOREVER, 0600, MAILSLOT_LOCAL_ONLY, &r) != MAILSLOT_OK)
        return fail("create");
    char sz[32], cnt[32];
    snprintf(sz, sizeof sz, "%zu", size);
    snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)count);
    char *args[] = {argv[0], (char *)"--writer", name, sz, cnt, NULL};
    pid_t child;
    if (posix_spawn(&child, argv[0], NULL, NULL, args, environ) != 0) {
        perror("bench: posix_spawn");
        return 1;
    }
    unsigned char *buf = (unsigned char *)malloc(size);
    double start = 0;
    for (uint64_t i = 0; i < count; i++) {
        size_t len = 0;
        if (mailslot_reader_read(r, buf, size, &len, NULL) != MAILSLOT_OK) return fail("read");
        uint64_t seq;
        memcpy(&seq, buf, sizeof seq);
        if (len != size || seq != i) {
            fprintf(stderr, "bench: message %llu: got sequence %llu, %zu bytes\n", (unsigned long long)i,
                    (unsigned long long)seq, len);
            return 1;
        }
        if (i == 0) start = now_s();
    }
    double secs = now_s() - start;
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench: the writer failed\n");
        return 1;
    }
    printf("c %zu %llu %.6f %.0f\n", size, (unsigned long long)count, secs, (double)(count - 1) / secs);
    free(buf);
    mailslot_reader_close(r);
    return 0;
}
