/* A UDP "peer" on 127.0.0.1 for the network tests: it receives what the
 * library sends to \\*, \\DOMAIN or \\HOST names, so those tests need no
 * privileges and no real LAN. */
#ifndef MAILSLOT_TEST_UDP_H
#define MAILSLOT_TEST_UDP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Binds a UDP socket to 127.0.0.1 on an ephemeral port; returns the fd. */
static inline int udp_peer(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("udp_peer");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* One datagram within timeout_ms: its length, or -1 if none came. */
static inline long udp_receive(int fd, unsigned char *buf, size_t cap, int timeout_ms) {
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, timeout_ms) != 1) return -1;
    return (long)recv(fd, buf, cap, 0);
}

/* Whether `needle` occurs in the datagram. */
static inline int contains(const unsigned char *hay, long n, const char *needle) {
    size_t k = strlen(needle);
    for (long i = 0; n >= 0 && i + (long)k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return 1;
    return 0;
}

#endif
