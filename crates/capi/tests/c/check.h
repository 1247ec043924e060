/* A tiny test harness shared by the C tests: CHECK(cond, ...) reports the
 * failed condition with the library's last error detail and counts it;
 * main() returns test_summary(). Compiles as C11 and as C++17. */
#ifndef MAILSLOT_TEST_CHECK_H
#define MAILSLOT_TEST_CHECK_H

#include <mailslot/mailslot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        test_checks++;                                                                       \
        if (!(cond)) {                                                                       \
            test_failures++;                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n    last error: %s\n", __FILE__,      \
                    __LINE__, #cond, mailslot_last_error_message());                         \
        }                                                                                    \
    } while (0)

/* A check that later steps depend on: stop the test program if it fails.
 * (The condition is evaluated once.) */
#define REQUIRE(cond)                                                                        \
    do {                                                                                     \
        int required_ok_ = (cond) ? 1 : 0;                                                   \
        CHECK(required_ok_ && #cond);                                                        \
        if (!required_ok_) {                                                                 \
            fprintf(stderr, "stopping: a required check failed\n");                         \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline int test_summary(const char *name) {
    if (test_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, test_failures, test_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, test_checks);
    return 0;
}

#endif
