/* A mailslot server with the native API (mailslot/mailslot.h).
 *
 *   cc native_server.c $(pkg-config --cflags --libs mailslot)
 *
 * Usage: native_server [COUNT] (reads COUNT messages, default: forever). */
#include <mailslot/mailslot.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : -1;
    mailslot_reader *reader = NULL;
    /* Any message size, reads wait forever, writable by this user, no flags. */
    if (mailslot_reader_create("\\\\.\\mailslot\\sample_mailslot", 0, MAILSLOT_WAIT_FOREVER, 0600, 0,
                               &reader) != MAILSLOT_OK) {
        fprintf(stderr, "native_server: %s\n", mailslot_last_error_message());
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    size_t cap = 256;
    char *buf = (char *)malloc(cap);
    for (long i = 0; buf && (count < 0 || i < count); i++) {
        size_t len = 0;
        mailslot_sender from;
        mailslot_status st = mailslot_reader_read(reader, buf, cap - 1, &len, &from);
        if (st == MAILSLOT_E_BUFFER_TOO_SMALL) { /* the message waits; len says how big it is */
            char *bigger = (char *)realloc(buf, len + 1);
            if (!bigger) break;
            buf = bigger;
            cap = len + 1;
            st = mailslot_reader_read(reader, buf, cap - 1, &len, &from);
        }
        if (st != MAILSLOT_OK) {
            fprintf(stderr, "native_server: %s\n", mailslot_last_error_message());
            return 1;
        }
        buf[len] = 0;
        if (len == 0)
            printf("message %ld: (0 bytes) from pid %u\n", i + 1, from.pid);
        else if (from.is_remote) /* forwarded by the mailslot daemon */
            printf("message %ld: %s (%zu bytes) from %s at %u.%u.%u.%u:%u, sent to %s\n", i + 1, buf, len,
                   from.source_name, from.remote_ip[0], from.remote_ip[1], from.remote_ip[2], from.remote_ip[3],
                   from.remote_port, from.dest_name);
        else
            printf("message %ld: %s (%zu bytes) from pid %u uid %u\n", i + 1, buf, len, from.pid, from.uid);
        fflush(stdout);
    }
    free(buf);
    mailslot_reader_close(reader);
    return 0;
}
