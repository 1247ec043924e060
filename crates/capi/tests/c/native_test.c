/* Every function of mailslot/mailslot.h and its error paths, against the
 * installed library. Compiled as C11 and as C++17 (tests/c/run.sh).
 * Run with MAILSLOT_DIR set to a private directory. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "check.h"
#include "udp.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *SELF;

/* The writer process of the two-process test: NAME COUNT. */
static int writer_main(const char *name, int count) {
    mailslot_writer *w = NULL;
    if (mailslot_writer_open(name, &w) != MAILSLOT_OK) {
        fprintf(stderr, "writer: %s\n", mailslot_last_error_message());
        return 1;
    }
    for (int i = 0; i < count; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "message %d from pid %d", i, (int)getpid());
        if (mailslot_writer_write(w, msg, (size_t)n) != MAILSLOT_OK) {
            fprintf(stderr, "writer: %s\n", mailslot_last_error_message());
            return 1;
        }
    }
    mailslot_writer_close(w);
    return 0;
}

static void test_basics(void) {
    mailslot_reader *r = NULL;
    mailslot_writer *w = NULL;
    REQUIRE(mailslot_reader_create("\\\\.\\mailslot\\native\\basics", 64, 0, 0600, 0, &r) == MAILSLOT_OK);
    REQUIRE(r != NULL);
    /* Names are case-insensitive; the // form and bare names work too. */
    REQUIRE(mailslot_writer_open("//./MAILSLOT/Native/Basics", &w) == MAILSLOT_OK);
    CHECK(mailslot_writer_max_message_size(w) == 64);
    CHECK(mailslot_writer_fd(w) >= 0);
    CHECK(mailslot_reader_fd(r) >= 0);

    mailslot_info info;
    CHECK(mailslot_reader_info(r, &info) == MAILSLOT_OK);
    CHECK(info.max_message_size == 64);
    CHECK(info.next_size == MAILSLOT_NO_MESSAGE);
    CHECK(info.count == 0);
    CHECK(info.read_timeout_ms == 0);

    CHECK(mailslot_writer_write(w, "hello", 5) == MAILSLOT_OK);
    CHECK(mailslot_writer_write(w, NULL, 0) == MAILSLOT_OK); /* zero-length messages are real */
    CHECK(mailslot_reader_info(r, &info) == MAILSLOT_OK);
    CHECK(info.next_size == 5);
    CHECK(info.count == 2);

    /* A short buffer fails, tells the size needed, and keeps the message. */
    char buf[64];
    size_t len = 99;
    CHECK(mailslot_reader_read(r, buf, 4, &len, NULL) == MAILSLOT_E_BUFFER_TOO_SMALL);
    CHECK(len == 5);
    CHECK(mailslot_last_error() == MAILSLOT_E_BUFFER_TOO_SMALL);
    CHECK(strstr(mailslot_last_error_message(), "native\\basics") != NULL);
    CHECK(mailslot_reader_info(r, &info) == MAILSLOT_OK);
    CHECK(info.count == 2 && info.next_size == 5);

    mailslot_sender s;
    memset(&s, 0x55, sizeof s);
    CHECK(mailslot_reader_read(r, buf, sizeof buf, &len, &s) == MAILSLOT_OK);
    CHECK(len == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK(s.pid == (uint32_t)getpid());
    CHECK(s.uid == (uint32_t)getuid());
    CHECK(s.gid == (uint32_t)getgid());
    CHECK(!s.is_remote);
    CHECK(s.source_name[0] == 0);
    CHECK(mailslot_reader_info(r, &info) == MAILSLOT_OK);
    CHECK(info.next_size == 0 && info.count == 1);
    /* NULL buffer with capacity 0 reads a zero-length message. */
    CHECK(mailslot_reader_read(r, NULL, 0, &len, NULL) == MAILSLOT_OK);
    CHECK(len == 0);

    /* Timeout 0 on an empty slot fails at once. */
    len = 7;
    CHECK(mailslot_reader_read(r, buf, sizeof buf, &len, NULL) == MAILSLOT_E_TIMED_OUT);
    CHECK(len == 0);
    /* A per-call timeout waits about that long. */
    double t0 = now_ms();
    CHECK(mailslot_reader_read_timeout(r, buf, sizeof buf, 80, &len, NULL) == MAILSLOT_E_TIMED_OUT);
    CHECK(now_ms() - t0 >= 75);
    /* set_timeout changes later reads and what info reports. */
    CHECK(mailslot_reader_set_timeout(r, 60) == MAILSLOT_OK);
    CHECK(mailslot_reader_info(r, &info) == MAILSLOT_OK && info.read_timeout_ms == 60);
    t0 = now_ms();
    CHECK(mailslot_reader_read(r, buf, sizeof buf, &len, NULL) == MAILSLOT_E_TIMED_OUT);
    CHECK(now_ms() - t0 >= 55);
    CHECK(mailslot_reader_set_timeout(r, MAILSLOT_WAIT_FOREVER) == MAILSLOT_OK);
    CHECK(mailslot_reader_info(r, &info) == MAILSLOT_OK && info.read_timeout_ms == MAILSLOT_WAIT_FOREVER);

    /* The descriptor becomes readable when a message arrives. */
    CHECK(mailslot_reader_read_timeout(r, buf, sizeof buf, 0, &len, NULL) == MAILSLOT_E_TIMED_OUT);
    CHECK(mailslot_writer_write(w, "poll me", 7) == MAILSLOT_OK);
    struct pollfd p;
    p.fd = mailslot_reader_fd(r);
    p.events = POLLIN;
    p.revents = 0;
    CHECK(poll(&p, 1, 5000) == 1);
    CHECK(mailslot_reader_read_timeout(r, buf, sizeof buf, 0, &len, NULL) == MAILSLOT_OK);
    CHECK(len == 7 && memcmp(buf, "poll me", 7) == 0);

    /* Over the maximum: refused, nothing queued. */
    char big[65];
    memset(big, 'x', sizeof big);
    CHECK(mailslot_writer_write(w, big, sizeof big) == MAILSLOT_E_MESSAGE_TOO_LARGE);
    CHECK(strstr(mailslot_last_error_message(), "64") != NULL);
    CHECK(mailslot_reader_info(r, &info) == MAILSLOT_OK && info.count == 0);
    CHECK(mailslot_writer_set_timeout(w, 1000) == MAILSLOT_OK);
    CHECK(mailslot_writer_set_timeout(w, MAILSLOT_WAIT_FOREVER) == MAILSLOT_OK);

    /* A second create of a live name fails, and the message says which. */
    mailslot_reader *r2 = (mailslot_reader *)1;
    CHECK(mailslot_reader_create("native\\BASICS", 0, 0, 0, 0, &r2) == MAILSLOT_E_ALREADY_EXISTS);
    CHECK(r2 == NULL);
    CHECK(strstr(mailslot_last_error_message(), "already exists") != NULL);

    /* Closing the reader: the writer's writes fail, the name is free again. */
    mailslot_reader_close(r);
    mailslot_status st = mailslot_writer_write(w, "late", 4);
    CHECK(st == MAILSLOT_E_READER_CLOSED);
    mailslot_writer_close(w);
    CHECK(mailslot_reader_create("native\\basics", 0, 0, 0, 0, &r) == MAILSLOT_OK);
    mailslot_reader_close(r);
}

static void test_errors(void) {
    mailslot_reader *r = NULL;
    mailslot_writer *w = NULL;
    char buf[8];
    size_t len = 0;
    mailslot_info info;

    /* NULL pointers are errors, never crashes. */
    CHECK(mailslot_reader_create(NULL, 0, 0, 0, 0, &r) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_create("x", 0, 0, 0, 0, NULL) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_writer_open(NULL, &w) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_writer_open("x", NULL) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_read(NULL, buf, sizeof buf, &len, NULL) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_read_timeout(NULL, buf, sizeof buf, 0, &len, NULL) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_info(NULL, &info) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_set_timeout(NULL, 0) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_wake(NULL) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_fd(NULL) == -1);
    CHECK(mailslot_writer_write(NULL, "x", 1) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(strstr(mailslot_last_error_message(), "mailslot_writer_write") != NULL);
    CHECK(mailslot_writer_set_timeout(NULL, 0) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_writer_fd(NULL) == -1);
    CHECK(mailslot_writer_max_message_size(NULL) == 0);
    mailslot_reader_close(NULL);
    mailslot_writer_close(NULL);

    /* Bad names and flags. */
    CHECK(mailslot_reader_create("\\\\.\\pipe\\x", 0, 0, 0, 0, &r) == MAILSLOT_E_INVALID_NAME);
    CHECK(mailslot_reader_create("\\\\HOST\\mailslot\\x", 0, 0, 0, 0, &r) == MAILSLOT_E_INVALID_NAME);
    CHECK(mailslot_reader_create("\\\\.\\mailslot\\", 0, 0, 0, 0, &r) == MAILSLOT_E_INVALID_NAME);
    CHECK(mailslot_reader_create("bad\xff" "utf8", 0, 0, 0, 0, &r) == MAILSLOT_E_INVALID_NAME);
    CHECK(strstr(mailslot_last_error_message(), "UTF-8") != NULL);
    CHECK(mailslot_reader_create("x", 0, 0, 0, 0x80, &r) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_create("x", 0, 0, 01000, 0, &r) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(r == NULL);

    /* A missing slot. */
    CHECK(mailslot_writer_open("\\\\.\\mailslot\\nobody\\here", &w) == MAILSLOT_E_NOT_FOUND);
    CHECK(w == NULL);
    CHECK(strstr(mailslot_last_error_message(), "nobody\\here") != NULL);

    /* A NULL buffer with a size, NULL data with a length, NULL info. */
    REQUIRE(mailslot_reader_create("native\\errors", 0, 0, 0, MAILSLOT_LOCAL_ONLY, &r) == MAILSLOT_OK);
    REQUIRE(mailslot_writer_open("native\\errors", &w) == MAILSLOT_OK);
    CHECK(mailslot_writer_write(w, NULL, 3) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_writer_write(w, "abc", 3) == MAILSLOT_OK);
    CHECK(mailslot_reader_read(r, NULL, 3, &len, NULL) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_info(r, NULL) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_read(r, buf, sizeof buf, NULL, NULL) == MAILSLOT_OK); /* len may be NULL */
    /* Sizes no buffer can have are refused, not trusted. */
    CHECK(mailslot_writer_write(w, "abc", (size_t)-1) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(mailslot_reader_read(r, buf, (size_t)-1, &len, NULL) == MAILSLOT_E_INVALID_ARGUMENT);
    mailslot_writer_close(w);
    mailslot_reader_close(r);

    /* strerror and version. */
    CHECK(strcmp(mailslot_strerror(MAILSLOT_OK), "success") == 0);
    CHECK(strstr(mailslot_strerror(MAILSLOT_E_TIMED_OUT), "timed out") != NULL);
    CHECK(strstr(mailslot_strerror(9999), "unknown") != NULL);
    CHECK(strstr(mailslot_strerror(-1), "unknown") != NULL);
    CHECK(mailslot_version()[0] >= '0' && mailslot_version()[0] <= '9');
}

struct waiter {
    mailslot_reader *r;
    volatile int started;
    mailslot_status result;
};

static void *wait_forever(void *arg) {
    struct waiter *w = (struct waiter *)arg;
    char buf[16];
    size_t len;
    w->started = 1;
    w->result = mailslot_reader_read_timeout(w->r, buf, sizeof buf, MAILSLOT_WAIT_FOREVER, &len, NULL);
    return NULL;
}

/* mailslot_reader_wake ends a read waiting forever on another thread. */
static void test_wake(void) {
    struct waiter w;
    pthread_t t;
    w.started = 0;
    w.result = MAILSLOT_OK;
    REQUIRE(mailslot_reader_create("native\\wake", 0, MAILSLOT_WAIT_FOREVER, 0, 0, &w.r) == MAILSLOT_OK);
    REQUIRE(pthread_create(&t, NULL, wait_forever, &w) == 0);
    while (!w.started) sched_yield();
    /* Whether the read is already waiting or not, it returns Interrupted. */
    CHECK(mailslot_reader_wake(w.r) == MAILSLOT_OK);
    pthread_join(t, NULL);
    CHECK(w.result == MAILSLOT_E_INTERRUPTED);
    mailslot_reader_close(w.r);
}

/* Shared slots: two readers of one name each get every message. */
static void test_shared(void) {
    mailslot_reader *a = NULL, *b = NULL;
    mailslot_writer *w = NULL;
    char buf[16];
    size_t len = 0;
    REQUIRE(mailslot_reader_create("native\\shared", 0, 1000, 0, MAILSLOT_SHARED, &a) == MAILSLOT_OK);
    REQUIRE(mailslot_reader_create("native\\shared", 0, 1000, 0, MAILSLOT_SHARED, &b) == MAILSLOT_OK);
    mailslot_reader *c = NULL;
    CHECK(mailslot_reader_create("native\\shared", 0, 0, 0, 0, &c) == MAILSLOT_E_SHARING_CONFLICT);
    REQUIRE(mailslot_writer_open("native\\shared", &w) == MAILSLOT_OK);
    CHECK(mailslot_writer_write(w, "both", 4) == MAILSLOT_OK);
    CHECK(mailslot_reader_read(a, buf, sizeof buf, &len, NULL) == MAILSLOT_OK && len == 4);
    CHECK(mailslot_reader_read(b, buf, sizeof buf, &len, NULL) == MAILSLOT_OK && len == 4);
    mailslot_writer_close(w);
    mailslot_reader_close(a);
    mailslot_reader_close(b);
}

/* A C reader and a C writer in two processes. */
static void test_two_processes(void) {
    enum { COUNT = 1000 };
    mailslot_reader *r = NULL;
    REQUIRE(mailslot_reader_create("native\\two-processes", 0, 10000, 0, 0, &r) == MAILSLOT_OK);
    char count[16];
    snprintf(count, sizeof count, "%d", (int)COUNT);
    char *argv[] = {(char *)SELF, (char *)"--writer", (char *)"\\\\.\\mailslot\\native\\two-processes", count, NULL};
    pid_t child;
    REQUIRE(posix_spawn(&child, SELF, NULL, NULL, argv, environ) == 0);
    int ok = 1;
    for (int i = 0; i < COUNT && ok; i++) {
        char buf[64], want[64];
        size_t len = 0;
        mailslot_sender s;
        if (mailslot_reader_read(r, buf, sizeof buf, &len, &s) != MAILSLOT_OK) {
            ok = 0;
            break;
        }
        int n = snprintf(want, sizeof want, "message %d from pid %d", i, (int)child);
        if (len != (size_t)n || memcmp(buf, want, len) != 0 || s.pid != (uint32_t)child) {
            fprintf(stderr, "message %d: got %.*s from pid %u\n", i, (int)len, buf, s.pid);
            ok = 0;
        }
    }
    CHECK(ok);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    mailslot_reader_close(r);
}

/* \\* and \\HOST writes are NetBIOS datagrams: a UDP peer on 127.0.0.1
 * receives them. */
static void test_network(void) {
    uint16_t port;
    int peer = udp_peer(&port);
    unsigned char d[1024];
    mailslot_net_options o;
    memset(&o, 0, sizeof o);
    o.host = "CAPITEST";
    o.workgroup = "OFFICE";
    o.port = port;
    o.broadcast = "127.0.0.1";
    o.address = "127.0.0.1";

    mailslot_writer *w = NULL;
    REQUIRE(mailslot_writer_open_net("\\\\*\\mailslot\\chat", &o, &w) == MAILSLOT_OK);
    CHECK(mailslot_writer_max_message_size(w) == 424);
    CHECK(mailslot_writer_fd(w) >= 0);
    CHECK(mailslot_writer_write(w, "hello, workgroup", 16) == MAILSLOT_OK);
    long n = udp_receive(peer, d, sizeof d, 5000);
    CHECK(n > 16);
    CHECK(n > 0 && d[0] == 0x11); /* DIRECT_GROUP */
    CHECK(contains(d, n, "\\MAILSLOT\\chat"));
    CHECK(n > 16 && memcmp(d + n - 16, "hello, workgroup", 16) == 0);
    /* 424 bytes fit; 425 fail before anything is sent. */
    char big[425];
    memset(big, 'b', sizeof big);
    CHECK(mailslot_writer_write(w, big, 424) == MAILSLOT_OK);
    n = udp_receive(peer, d, sizeof d, 5000);
    CHECK(n > 424 && memcmp(d + n - 424, big, 424) == 0);
    CHECK(mailslot_writer_write(w, big, 425) == MAILSLOT_E_MESSAGE_TOO_LARGE);
    CHECK(strstr(mailslot_last_error_message(), "424") != NULL);
    CHECK(udp_receive(peer, d, sizeof d, 200) == -1);
    mailslot_writer_close(w);

    /* \\HOST goes DIRECT_UNIQUE to the given address. */
    REQUIRE(mailslot_writer_open_net("\\\\PEERA\\mailslot\\chat", &o, &w) == MAILSLOT_OK);
    CHECK(mailslot_writer_write(w, "just you", 8) == MAILSLOT_OK);
    n = udp_receive(peer, d, sizeof d, 5000);
    CHECK(n > 8 && d[0] == 0x10); /* DIRECT_UNIQUE */
    mailslot_writer_close(w);

    /* Process defaults apply to mailslot_writer_open; NULL restores them. */
    CHECK(mailslot_set_net_defaults(&o) == MAILSLOT_OK);
    REQUIRE(mailslot_writer_open("\\\\*\\mailslot\\defaults", &w) == MAILSLOT_OK);
    CHECK(mailslot_writer_write(w, "via defaults", 12) == MAILSLOT_OK);
    n = udp_receive(peer, d, sizeof d, 5000);
    CHECK(contains(d, n, "\\MAILSLOT\\defaults"));
    mailslot_writer_close(w);
    CHECK(mailslot_set_net_defaults(NULL) == MAILSLOT_OK);

    /* Bad options are refused and say what is wrong. */
    o.broadcast = "not-an-address";
    CHECK(mailslot_set_net_defaults(&o) == MAILSLOT_E_INVALID_ARGUMENT);
    CHECK(strstr(mailslot_last_error_message(), "not-an-address") != NULL);
    CHECK(mailslot_writer_open_net("\\\\*\\mailslot\\chat", &o, &w) == MAILSLOT_E_INVALID_ARGUMENT);
    o.broadcast = "127.0.0.1";
    o.workgroup = "THIS NAME IS FAR TOO LONG FOR NETBIOS";
    CHECK(mailslot_writer_open_net("\\\\*\\mailslot\\chat", &o, &w) == MAILSLOT_E_INVALID_ARGUMENT);
    close(peer);
}

int main(int argc, char **argv) {
    SELF = argv[0];
    if (argc == 4 && strcmp(argv[1], "--writer") == 0) return writer_main(argv[2], atoi(argv[3]));
    if (!getenv("MAILSLOT_DIR")) {
        fprintf(stderr, "set MAILSLOT_DIR to a private directory first\n");
        return 2;
    }
    test_basics();
    test_errors();
    test_wake();
    test_shared();
    test_two_processes();
    test_network();
    return test_summary("native_test");
}
