/*
 * testnet.h - a loopback port nothing listens on, for unit tests that start
 * a real raft voter. A port derived from the pid (what these tests did)
 * collided with other tests running at the same time; the kernel's choice
 * of a free port leaves only the moment between close and bind.
 */
#ifndef BO_TESTNET_H
#define BO_TESTNET_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

static inline int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

#endif
