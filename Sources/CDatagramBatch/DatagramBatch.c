#define _GNU_SOURCE
#include "CDatagramBatch.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

enum { batch_max = 64 };

/// Points header `i` at its slot of `buffers` (`length` bytes) and at its address.
static void describe(struct mmsghdr *headers, struct iovec *vectors, unsigned i, const void *buffers,
                     size_t slot_bytes, size_t length, const void *address, socklen_t address_length) {
    vectors[i].iov_base = (char *)buffers + i * slot_bytes;
    vectors[i].iov_len = length;
    headers[i].msg_hdr.msg_name = (void *)address;
    headers[i].msg_hdr.msg_namelen = address_length;
    headers[i].msg_hdr.msg_iov = &vectors[i];
    headers[i].msg_hdr.msg_iovlen = 1;
}

int rwanet_receive_datagrams(int fd, void *buffers, size_t slot_bytes, unsigned count, unsigned *lengths,
                             struct sockaddr_storage *addresses, unsigned *address_lengths, int *truncated) {
    struct mmsghdr headers[batch_max];
    struct iovec vectors[batch_max];
    if (count > batch_max) count = batch_max;
    memset(headers, 0, sizeof(struct mmsghdr) * count);
    for (unsigned i = 0; i < count; i++) {
        describe(headers, vectors, i, buffers, slot_bytes, slot_bytes, &addresses[i], sizeof(struct sockaddr_storage));
    }
    int received = recvmmsg(fd, headers, count, MSG_DONTWAIT, NULL);
    for (int i = 0; i < received; i++) {
        lengths[i] = headers[i].msg_len;
        address_lengths[i] = headers[i].msg_hdr.msg_namelen;
        truncated[i] = (headers[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    }
    return received;
}

int rwanet_send_datagrams(int fd, const void *buffers, size_t slot_bytes, const unsigned *lengths,
                          const struct sockaddr_storage *addresses, const unsigned *address_lengths, unsigned count) {
    struct mmsghdr headers[batch_max];
    struct iovec vectors[batch_max];
    if (count > batch_max) count = batch_max;
    memset(headers, 0, sizeof(struct mmsghdr) * count);
    for (unsigned i = 0; i < count; i++) {
        describe(headers, vectors, i, buffers, slot_bytes, lengths[i], &addresses[i], address_lengths[i]);
    }
    unsigned sent = 0;
    while (sent < count) {
        int result = sendmmsg(fd, headers + sent, count - sent, MSG_DONTWAIT);
        if (result < 0) {
            if (errno == EINTR) continue;
            return sent > 0 ? (int)sent : -1;
        }
        if (result == 0) break;
        sent += (unsigned)result;
    }
    return (int)sent;
}
