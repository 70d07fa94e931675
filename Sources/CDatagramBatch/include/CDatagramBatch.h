#ifndef C_DATAGRAM_BATCH_H
#define C_DATAGRAM_BATCH_H

#include <stddef.h>
#include <sys/socket.h>

/// Batched UDP receive and send (Linux recvmmsg and sendmmsg, which need _GNU_SOURCE and so are
/// not visible through Swift's Glibc module). At most 64 datagrams per call.
///
/// Receives up to `count` datagrams without blocking, datagram i into `buffers + i * slot_bytes`;
/// fills `lengths[i]`, `addresses[i]`, `address_lengths[i]`, and `truncated[i]` (non-zero when
/// the datagram did not fit its slot). Returns how many arrived, or -1 with errno.
int rwanet_receive_datagrams(int fd, void *buffers, size_t slot_bytes, unsigned count, unsigned *lengths,
                             struct sockaddr_storage *addresses, unsigned *address_lengths, int *truncated);

/// Sends `count` datagrams without blocking, datagram i from `buffers + i * slot_bytes` with
/// `lengths[i]` bytes to `addresses[i]`. Returns how many went (fewer when the socket's buffer
/// is full), or -1 with errno.
int rwanet_send_datagrams(int fd, const void *buffers, size_t slot_bytes, const unsigned *lengths,
                          const struct sockaddr_storage *addresses, const unsigned *address_lengths, unsigned count);

#endif
