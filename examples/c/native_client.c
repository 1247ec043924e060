/* A mailslot client with the native API (mailslot/mailslot.h).
 *
 *   cc native_client.c $(pkg-config --cflags --libs mailslot)
 *
 * Usage: native_client [MESSAGE...] (each argument is one message; "" is a
 * zero-length one). MAILSLOT_TARGET overrides the destination, e.g.
 * \\HOST\mailslot\sample_mailslot or \\*\mailslot\sample_mailslot. */
#include <mailslot/mailslot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *target = getenv("MAILSLOT_TARGET");
    mailslot_writer *writer = NULL;
    if (mailslot_writer_open(target ? target : "\\\\.\\mailslot\\sample_mailslot", &writer) != MAILSLOT_OK) {
        fprintf(stderr, "native_client: %s\n", mailslot_last_error_message());
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (mailslot_writer_write(writer, argv[i], strlen(argv[i])) != MAILSLOT_OK) {
            fprintf(stderr, "native_client: %s\n", mailslot_last_error_message());
            return 1;
        }
    }
    printf("sent %d message(s)\n", argc - 1);
    mailslot_writer_close(writer);
    return 0;
}
