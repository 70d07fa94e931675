import CDatagramBatch
import Foundation
import Glibc
import NIOCore
import RWAWire
import Synchronization

/// The cookie step of a UDP listener (proto/README.md, "UDP cookies"), on its own socket and
/// thread, so that a flood of spoofed `hello`s can neither starve nor crowd out anyone else.
///
/// The listener's port is shared (`SO_REUSEPORT`) by two sockets: this one and the NIO channel
/// that holds every session. A classic BPF program on the port steers each datagram: a plain
/// `hello` (kind `01`, type `0x0001`) comes here, everything else (cookie echoes, the rest of
/// every handshake, sealed packets) goes to the channel. A flood of `hello`s therefore fills only
/// this socket's queue: what the kernel drops under it are other `hello`s, never a session's
/// packets or a handshake that has proved its address.
///
/// Under load (as the endpoint decides: `load`) each `hello` is answered with its cookie in a
/// tight loop of `recvmmsg` and `sendmmsg` over preallocated buffers: no decoding, no NIO
/// envelope, no event-loop hop. (Against a flood of about 135,000 `hello`s a second from the same
/// two cores, the kernel dropped 1–5% of the datagrams, against 29% when the channel answered
/// them, and a legitimate client's worst UDP answer fell from seconds to 45–130 ms.) Without
/// load, and for anything else that lands here (a short datagram the filter could not read
/// whole, the moments before the channel joins the port), the datagram is handed to the
/// endpoint on its event loop, which treats it as if its own socket had read it.
final class UDPHelloResponder: @unchecked Sendable {
    /// Whether the endpoint wants cookies for new `hello`s; set on its event loop.
    final class Load: Sendable {
        private let loaded = Atomic<Bool>(false)
        var isLoaded: Bool {
            get { loaded.load(ordering: .relaxed) }
            set { loaded.store(newValue, ordering: .relaxed) }
        }
    }

    static let datagramsPerRead = 64
    /// How long the thread sleeps in `poll` before looking whether it was stopped (`stop()`
    /// wakes it at once: `shutdown` wakes a socket's pollers even when it is not connected).
    static let pollMilliseconds: Int32 = 1_000

    let load = Load()
    let port: Int
    private let fd: Int32
    private let cookies: HelloCookies
    /// 0 before `start()`, 1 running, 2 stopped: the socket is closed exactly once, by the
    /// thread if it ran, else by `stop()`.
    private let phase = Atomic<Int>(0)
    /// Statistics (approximate, read from other threads for tests and logs).
    private let answered = Atomic<Int>(0)
    private let forwarded = Atomic<Int>(0)

    var cookiesSent: Int { answered.load(ordering: .relaxed) }
    var datagramsForwarded: Int { forwarded.load(ordering: .relaxed) }

    /// Binds the listener's port (port 0: a free one, then `port`) with `SO_REUSEPORT`, before the
    /// channel binds it too, so that this socket is the group's first (the filter's index 0).
    init(binding address: SocketAddress, cookies: HelloCookies) throws {
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        func setOption(_ level: Int32, _ name: Int32, _ value: Int32) throws {
            var value = value
            guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw IOError(errnoCode: errno, reason: "setsockopt \(name)")
            }
        }
        do {
            try setOption(SOL_SOCKET, SO_REUSEPORT, 1)
            try setOption(SOL_SOCKET, SO_REUSEADDR, 1)
            try setOption(SOL_SOCKET, SO_RCVBUF, Int32(UDPTransport.receiveBufferBytes))
            if family == AF_INET { try setOption(Int32(IPPROTO_IP), IP_MTU_DISCOVER, IP_PMTUDISC_DO) }
            let bound = address.withSockAddr { bind(fd, $0, socklen_t($1)) }
            guard bound == 0 else { throw IOError(errnoCode: errno, reason: "bind \(address)") }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let named = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
            self.port = withUnsafeBytes(of: storage) { raw in
                // sin_port and sin6_port sit at the same offset, in network order.
                Int(UInt16(raw[2]) << 8 | UInt16(raw[3]))
            }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.cookies = cookies
    }

    /// Attaches the steering filter to the port's group, once the channel has joined it.
    func steerHellosHere() throws {
        let hello = MessageType.hello.rawValue
        // A = payload[0]; if A == 01: A = payload[1..2]; if A == hello: socket 0. Else socket 1.
        // A load past the end of the datagram ends the program with 0: such a datagram comes here
        // and is forwarded like any other that is not a whole `hello`.
        var program: [SocketFilterInstruction] = [
            .init(code: 0x30, jt: 0, jf: 0, k: 0),  // ldb [0]
            .init(code: 0x15, jt: 0, jf: 3, k: UInt32(UDPPacketKind.handshake.rawValue)),  // jeq #1
            .init(code: 0x28, jt: 0, jf: 0, k: 1),  // ldh [1]
            .init(code: 0x15, jt: 0, jf: 1, k: UInt32(hello)),  // jeq #hello
            .init(code: 0x06, jt: 0, jf: 0, k: 0),  // ret #0: here
            .init(code: 0x06, jt: 0, jf: 0, k: 1),  // ret #1: the channel
        ]
        let attached = program.withUnsafeMutableBufferPointer { instructions in
            var filter = SocketFilterProgram(
                length: UInt16(instructions.count), instructions: instructions.baseAddress!)
            return setsockopt(
                fd, SOL_SOCKET, Self.soAttachReuseportCBPF, &filter, socklen_t(MemoryLayout<SocketFilterProgram>.size))
        }
        guard attached == 0 else { throw IOError(errnoCode: errno, reason: "SO_ATTACH_REUSEPORT_CBPF") }
    }

    /// Runs the loop on a thread of its own until `stop()`. `forward` carries a datagram that is
    /// not a `hello` to answer with a cookie to the endpoint's event loop.
    func start(forward: @escaping @Sendable (ByteBuffer, SocketAddress) -> Void) {
        guard phase.compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged else { return }
        let thread = Thread { [self] in
            run(forward: forward)
            close(fd)
        }
        thread.name = "rwanet-udp-hellos"
        thread.start()
    }

    /// Stops the thread (it closes the socket on its way out), or closes the socket if it never
    /// started. Idempotent.
    func stop() {
        switch phase.exchange(2, ordering: .relaxed) {
        case 0: close(fd)  // never started
        case 1: shutdown(fd, Int32(SHUT_RDWR))  // wakes the thread, which closes it
        default: return  // stopped already
        }
    }

    private func run(forward: @Sendable (ByteBuffer, SocketAddress) -> Void) {
        let count = Self.datagramsPerRead
        let slotBytes = 2_048
        let replySlotBytes = 32
        let cookiePacketBytes = 1 + WireLimits.udpCookieBytes
        let received = UnsafeMutableRawBufferPointer.allocate(byteCount: count * slotBytes, alignment: 16)
        let replies = UnsafeMutableRawBufferPointer.allocate(byteCount: count * replySlotBytes, alignment: 16)
        var lengths = [UInt32](repeating: 0, count: count)
        var addresses = [sockaddr_storage](repeating: sockaddr_storage(), count: count)
        var addressLengths = [UInt32](repeating: 0, count: count)
        var truncated = [Int32](repeating: 0, count: count)
        var replyLengths = [UInt32](repeating: UInt32(cookiePacketBytes), count: count)
        var replyAddresses = [sockaddr_storage](repeating: sockaddr_storage(), count: count)
        var replyAddressLengths = [UInt32](repeating: 0, count: count)
        defer {
            received.deallocate()
            replies.deallocate()
        }
        for index in 0..<count {
            replies.storeBytes(of: UDPPacketKind.cookie.rawValue, toByteOffset: index * replySlotBytes, as: UInt8.self)
        }
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while phase.load(ordering: .relaxed) == 1 {
            guard poll(&poller, 1, Self.pollMilliseconds) > 0 else { continue }
            let arrived = rwanet_receive_datagrams(
                fd, received.baseAddress, slotBytes, UInt32(count), &lengths, &addresses, &addressLengths,
                &truncated)
            guard arrived > 0 else { continue }
            let loaded = load.isLoaded
            let now = NIODeadline.now().uptimeNanoseconds
            var answers = 0
            for index in 0..<Int(arrived) {
                let length = Int(lengths[index])
                let datagram = UnsafeRawBufferPointer(
                    rebasing: received[index * slotBytes..<index * slotBytes + length])
                if loaded, truncated[index] == 0, length > 0, datagram[0] == UDPPacketKind.handshake.rawValue,
                    HelloCookies.earnsCookie(frame: UnsafeRawBufferPointer(rebasing: datagram.dropFirst())),
                    let source = Self.cookieSource(addresses[index])
                {
                    let cookie = cookies.cookie(source: source, now: now)
                    cookie.withUnsafeBytes {
                        (replies.baseAddress! + answers * replySlotBytes + 1).copyMemory(
                            from: $0.baseAddress!, byteCount: $0.count)
                    }
                    replyAddresses[answers] = addresses[index]
                    replyAddressLengths[answers] = addressLengths[index]
                    answers += 1
                } else if let address = Self.socketAddress(addresses[index]) {
                    forwarded.add(1, ordering: .relaxed)
                    forward(ByteBuffer(bytes: datagram), address)
                }
            }
            guard answers > 0 else { continue }
            // A full send buffer leaves the rest of the cookies unsent: their `hello`s are repeated.
            let sent = rwanet_send_datagrams(
                fd, replies.baseAddress, replySlotBytes, &replyLengths, &replyAddresses, &replyAddressLengths,
                UInt32(answers))
            if sent > 0 { answered.add(Int(sent), ordering: .relaxed) }
        }
    }

    /// The address bytes the cookie is bound to (`HelloCookies.source`).
    private static func cookieSource(_ storage: sockaddr_storage) -> [UInt8]? {
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: storage) { raw in
            switch family {
            case AF_INET:
                let v4 = raw.load(as: sockaddr_in.self)
                return HelloCookies.source(address: v4.sin_addr, port: v4.sin_port)
            case AF_INET6:
                let v6 = raw.load(as: sockaddr_in6.self)
                return HelloCookies.source(address: v6.sin6_addr, port: v6.sin6_port)
            default:
                return nil
            }
        }
    }

    private static func socketAddress(_ storage: sockaddr_storage) -> SocketAddress? {
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: storage) { raw in
            switch family {
            case AF_INET: return SocketAddress(raw.load(as: sockaddr_in.self))
            case AF_INET6: return SocketAddress(raw.load(as: sockaddr_in6.self))
            default: return nil
            }
        }
    }

    /// `SO_ATTACH_REUSEPORT_CBPF` from <asm-generic/socket.h> (not exported by Glibc).
    private static let soAttachReuseportCBPF: Int32 = 51
}

/// `struct sock_filter` of <linux/filter.h>: one classic BPF instruction.
private struct SocketFilterInstruction {
    var code: UInt16
    var jt: UInt8
    var jf: UInt8
    var k: UInt32
}

/// `struct sock_fprog` of <linux/filter.h>.
private struct SocketFilterProgram {
    var length: UInt16
    var instructions: UnsafeMutablePointer<SocketFilterInstruction>
}
