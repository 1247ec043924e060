/* A mailslot client with the native API (mailslot/mailslot.h).
 *
 *   cc native_client.c $(pkg-config --cflags --libs mailslot)
 *
 * Usage: native_client [MESSAGE...] (each argument is one message; "" is a
 * zero-length one). MAILSLOT_TARGET overrides the destination, e.g.
 * \\HOST\mailslot\sample_mailslot or \\*\mailslot\sample_mailslot; for
 * those, MAILSLOT_NETBIOS_NAME, MAILSLOT_WORKGROUP, MAILSLOT_BROADCAST and
 * MAILSLOT_PORT set the network options (see mailslot_net_options). */
#include <mailslot/mailslot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *target = getenv("MAILSLOT_TARGET");
    mailslot_net_options net;
    memset(&net, 0, sizeof net);
    net.host = getenv("MAILSLOT_NETBIOS_NAME");
    net.workgroup = getenv("MAILSLOT_WORKGROUP");
    net.broadcast = getenv("MAILSLOT_BROADCAST");
    net.port = (uint16_t)(getenv("MAILSLOT_PORT") ? atoi(getenv("MAILSLOT_PORT")) : 0);
    if (mailslot_set_net_defaults(&net) != MAILSLOT_OK) {
        fprintf(stderr, "native_client: %s\n", mailslot_last_error_message());
        return 2;
    }
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
