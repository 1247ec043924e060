/* A mailslot server written for Windows: CreateMailslot, GetMailslotInfo,
 * ReadFile. It builds unchanged on Linux against libmailslot:
 *
 *   cc win32_server.c $(pkg-config --cflags --libs mailslot) \
 *      -I$(pkg-config --variable=includedir mailslot)/mailslot/compat
 *
 * Add -DUNICODE for the wide-character build. Usage: win32_server [COUNT]
 * (reads COUNT messages, default: forever). */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

#define SLOT TEXT("\\\\.\\mailslot\\sample_mailslot")

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : -1;
    HANDLE slot = CreateMailslot(SLOT, 0, MAILSLOT_WAIT_FOREVER, (LPSECURITY_ATTRIBUTES)NULL);
    if (slot == INVALID_HANDLE_VALUE) {
        printf("CreateMailslot failed with %u\n", (unsigned)GetLastError());
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (long i = 0; count < 0 || i < count; i++) {
        DWORD next = 0, waiting = 0, n = 0;
        /* Wait for a message with an empty buffer: a zero-length message is
         * read at once, a longer one fails with ERROR_INSUFFICIENT_BUFFER
         * and stays queued, and GetMailslotInfo tells its size. */
        char probe[1];
        if (ReadFile(slot, probe, 0, &n, NULL)) {
            printf("message %ld: (0 bytes)\n", i + 1);
            fflush(stdout);
            continue;
        }
        if (GetLastError() != ERROR_INSUFFICIENT_BUFFER) {
            printf("ReadFile failed with %u\n", (unsigned)GetLastError());
            return 1;
        }
        if (!GetMailslotInfo(slot, NULL, &next, &waiting, NULL)) {
            printf("GetMailslotInfo failed with %u\n", (unsigned)GetLastError());
            return 1;
        }
        char *buf = (char *)malloc(next + 1);
        if (!buf || !ReadFile(slot, buf, next, &n, NULL)) {
            printf("ReadFile failed with %u\n", (unsigned)GetLastError());
            return 1;
        }
        buf[n] = 0;
        printf("message %ld: %s (%u bytes, %u waiting)\n", i + 1, buf, (unsigned)n, (unsigned)waiting - 1);
        fflush(stdout);
        free(buf);
    }
    CloseHandle(slot);
    return 0;
}
