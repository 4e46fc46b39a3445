// SPDX-License-Identifier: Apache-2.0
import CLibMNL
import Netns
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The netlink protocols swiftpath speaks.
public enum NetlinkProtocol: Sendable {
    /// rtnetlink: links, addresses, routes, neighbours.
    case route
    /// sock_diag: the sockets of the namespace.
    case socketDiagnostics

    var number: Int32 { self == .route ? NETLINK_ROUTE : NETLINK_SOCK_DIAG }
}

/// A netlink socket (rtnetlink unless asked otherwise), bound to the network namespace of the
/// thread that opened it.
public final class NetlinkSocket {
    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32
    private let buffer: UnsafeMutableRawBufferPointer

    static let bufferSize = 32 * 1024
    /// How often a dump the kernel marked interrupted (the table changed under it) is asked again.
    static let dumpAttempts = 5

    public init(_ protocol: NetlinkProtocol = .route) throws(SystemCallError) {
        // Close-on-exec: the IPAM plugin and nft this process runs must not inherit a root
        // netlink socket (libmnl 1.0.4, Debian 12's, has mnl_socket_open2).
        guard let socket = mnl_socket_open2(`protocol`.number, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw SystemCallError("open \(`protocol`) netlink socket", .current)
        }
        var on: Int32 = 1
        // Extended acks carry the kernel's own words for a refusal; capped acks spare it copying
        // the request back.
        guard mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size)) == 0,
              mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size)) == 0,
              mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let errno = Errno.current
            mnl_socket_close(socket)
            throw SystemCallError("set up \(`protocol`) netlink socket", errno)
        }
        self.socket = socket
        self.portID = mnl_socket_get_portid(socket)
        self.sequence = UInt32(truncatingIfNeeded: time(nil))
        self.buffer = .allocate(byteCount: Self.bufferSize, alignment: 8)
    }

    deinit {
        mnl_socket_close(socket)
        buffer.deallocate()
    }

    /// Builds a request in the socket's buffer, sends it and collects the answer.
    ///
    /// A request with `NLM_F_ACK` returns once acknowledged; a `NLM_F_DUMP` request returns every
    /// message of the dump (asked again, whole, when the kernel says the table changed under it);
    /// a plain request returns the one reply.
    @discardableResult
    func request(_ operation: @autoclosure () -> String, type: Int, flags: Int32,
                 keeping keep: (UnsafePointer<nlmsghdr>) -> Bool = { _ in true },
                 build: (MessageBuilder) -> Void) throws(SystemCallError) -> [NetlinkMessage] {
        let isDump = flags & NLM_F_DUMP == NLM_F_DUMP
        for _ in 0..<(isDump ? Self.dumpAttempts : 1) {
            let answer = try exchange(operation(), type: type, flags: flags, keeping: keep, build: build)
            if !answer.interrupted { return answer.messages }
        }
        throw SystemCallError(operation(), .interrupted, kernelMessage: "the dump was interrupted \(Self.dumpAttempts) times in a row")
    }

    private func exchange(_ operation: String, type: Int, flags: Int32, keeping keep: (UnsafePointer<nlmsghdr>) -> Bool,
                          build: (MessageBuilder) -> Void) throws(SystemCallError) -> (messages: [NetlinkMessage], interrupted: Bool) {
        sequence &+= 1
        let header = Self.writeRequest(into: buffer, type: type, flags: flags, sequence: sequence, build: build)

        guard mnl_socket_sendto(socket, header, Int(header.pointee.nlmsg_len)) >= 0 else {
            throw SystemCallError(operation, .current)
        }
        let isDump = flags & NLM_F_DUMP == NLM_F_DUMP
        return try withoutActuallyEscaping(keep) { (keep) throws(SystemCallError) -> (messages: [NetlinkMessage], interrupted: Bool) in
            let collector = MessageCollector(keep: keep)
            let context = Unmanaged.passUnretained(collector).toOpaque()
            var control = controlCallbacks
            while true {
                let received = mnl_socket_recvfrom(socket, buffer.baseAddress, Self.bufferSize)
                guard received >= 0 else { throw SystemCallError(operation, .current) }
                let status = control.withUnsafeMutableBufferPointer { control in
                    mnl_cb_run2(buffer.baseAddress, received, sequence, portID, collectMessage, context,
                                control.baseAddress, UInt32(control.count))
                }
                if status == MNL_CB_ERROR {
                    let error = SystemCallError(operation, collector.errno ?? .current, kernelMessage: collector.kernelMessage)
                    if isDump && collector.errno == nil { drain() }
                    throw error
                }
                if status == MNL_CB_STOP || !isDump && flags & NLM_F_ACK == 0 { break }
            }
            return (collector.messages, collector.interrupted)
        }
    }

    /// Reads and drops whatever is still queued, so that a dump given up half-way does not answer
    /// the socket's next request.
    private func drain() {
        while recv(mnl_socket_get_fd(socket), buffer.baseAddress, Self.bufferSize, Int32(MSG_DONTWAIT)) > 0 {}
    }
}

/// The messages of an answer that `keep` wants, copied out of the receive buffer (a dump of a
/// node's thousands of pod routes copies only the few the caller asked for), and how the answer
/// ended: an error with the kernel's words, or a dump the kernel marked interrupted.
private final class MessageCollector {
    let keep: (UnsafePointer<nlmsghdr>) -> Bool
    var messages: [NetlinkMessage] = []
    var interrupted = false
    var errno: Errno?
    var kernelMessage: String?

    init(keep: @escaping (UnsafePointer<nlmsghdr>) -> Bool) { self.keep = keep }
}

private let collectMessage: mnl_cb_t = { header, context in
    guard let header, let context else { return MNL_CB_OK }
    let collector = Unmanaged<MessageCollector>.fromOpaque(context).takeUnretainedValue()
    if Int32(header.pointee.nlmsg_flags) & NLM_F_DUMP_INTR != 0 { collector.interrupted = true }
    guard collector.keep(header) else { return MNL_CB_OK }
    let length = Int(header.pointee.nlmsg_len)
    collector.messages.append(NetlinkMessage(bytes: Array(UnsafeRawBufferPointer(start: header, count: length))))
    return MNL_CB_OK
}

/// The control messages, by type: NOOP, ERROR (an ack when its error is 0), DONE, OVERRUN.
private let controlCallbacks: [mnl_cb_t?] = [nil, { _, _ in MNL_CB_OK }, collectError, collectDone, { _, _ in
    Glibc.errno = ENOSPC
    return MNL_CB_ERROR
}]

/// The end of a dump, which carries an error when the dump failed part of the way.
private let collectDone: mnl_cb_t = { header, context in
    guard let header, let context, Int(header.pointee.nlmsg_len) >= MemoryLayout<nlmsghdr>.size + MemoryLayout<Int32>.size else {
        return MNL_CB_STOP
    }
    let error = mnl_nlmsg_get_payload(header)!.loadUnaligned(as: Int32.self)
    guard error < 0 else { return MNL_CB_STOP }
    Unmanaged<MessageCollector>.fromOpaque(context).takeUnretainedValue().errno = Errno(rawValue: -error)
    Glibc.errno = -error
    return MNL_CB_ERROR
}

/// An ack, or a refusal: its errno and, with extended acks, the kernel's message.
private let collectError: mnl_cb_t = { header, context in
    guard let header, let context else { return MNL_CB_ERROR }
    let collector = Unmanaged<MessageCollector>.fromOpaque(context).takeUnretainedValue()
    guard Int(header.pointee.nlmsg_len) >= MemoryLayout<nlmsghdr>.size + MemoryLayout<nlmsgerr>.size else {
        Glibc.errno = EBADMSG
        return MNL_CB_ERROR
    }
    let error = mnl_nlmsg_get_payload(header)!.loadUnaligned(as: nlmsgerr.self)
    if error.error == 0 { return MNL_CB_STOP }
    collector.errno = Errno(rawValue: -error.error)
    let flags = Int32(header.pointee.nlmsg_flags)
    if flags & NLM_F_ACK_TLVS != 0 {
        // The attributes follow the refused request's header (capped) or the whole request.
        let offset = flags & NLM_F_CAPPED != 0 ? MemoryLayout<nlmsgerr>.size
                                                : MemoryLayout<Int32>.size + Int(error.msg.nlmsg_len)
        let table = AttributeTable()
        defer { table.release() }
        mnl_attr_parse(header, UInt32(offset), collectAttribute, table.slots)
        collector.kernelMessage = table.string(Int(NLMSGERR_ATTR_MSG.rawValue))
    }
    Glibc.errno = -error.error
    return MNL_CB_ERROR
}

extension NetlinkSocket {
    /// Writes a request into `buffer` (cleared first): its netlink header, then what `build` adds.
    static func writeRequest(into buffer: UnsafeMutableRawBufferPointer, type: Int, flags: Int32, sequence: UInt32,
                             build: (MessageBuilder) -> Void) -> UnsafeMutablePointer<nlmsghdr> {
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let header = mnl_nlmsg_put_header(buffer.baseAddress)!
        header.pointee.nlmsg_type = UInt16(type)
        header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | flags)
        header.pointee.nlmsg_seq = sequence
        build(MessageBuilder(header: header))
        return header
    }
}

/// Appends a fixed header and attributes to a request, through libmnl.
struct MessageBuilder {
    let header: UnsafeMutablePointer<nlmsghdr>

    /// Reserves the family header (ifinfomsg, ifaddrmsg, rtmsg, ndmsg, inet_diag_req_v2) and lets
    /// `fill` set it.
    func family<Header>(_ type: Header.Type, _ fill: (inout Header) -> Void) {
        let raw = mnl_nlmsg_put_extra_header(header, MemoryLayout<Header>.size)!
        fill(&raw.assumingMemoryBound(to: Header.self).pointee)
    }

    func put(_ type: Int, _ value: UInt32) { mnl_attr_put_u32(header, UInt16(type), value) }
    func put(_ type: Int, _ value: String) { mnl_attr_put_strz(header, UInt16(type), value) }
    func put(_ type: Int, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { mnl_attr_put(header, UInt16(type), $0.count, $0.baseAddress) }
    }

    func nest(_ type: Int, _ body: () -> Void) {
        let start = mnl_attr_nest_start(header, UInt16(type))
        body()
        mnl_attr_nest_end(header, start)
    }
}

/// One message of a reply, copied out of the receive buffer.
struct NetlinkMessage {
    let bytes: [UInt8]

    /// Runs `body` with the family header and a table of the attributes that follow it.
    func withContents<Header, T>(_ type: Header.Type, _ body: (Header, AttributeTable) -> T) -> T {
        bytes.withUnsafeBytes { raw in
            let header = raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
            let family = mnl_nlmsg_get_payload(header)!.loadUnaligned(as: Header.self)
            let table = AttributeTable()
            mnl_attr_parse(header, UInt32(MemoryLayout<Header>.size), collectAttribute, table.slots)
            defer { table.release() }
            return body(family, table)
        }
    }
}

/// Attributes of one message or nest, by type. Valid only inside the closure that received it.
final class AttributeTable {
    static let capacity = 128
    let slots = UnsafeMutablePointer<UnsafePointer<nlattr>?>.allocate(capacity: capacity)
    private var children: [AttributeTable] = []

    init() { slots.initialize(repeating: nil, count: Self.capacity) }

    func release() {
        children.forEach { $0.release() }
        slots.deallocate()
    }

    subscript(type: Int) -> UnsafePointer<nlattr>? { type < Self.capacity ? slots[type] : nil }

    func u32(_ type: Int) -> UInt32? { self[type].map { mnl_attr_get_u32($0) } }
    func string(_ type: Int) -> String? { self[type].map { String(cString: mnl_attr_get_str($0)) } }
    func bytes(_ type: Int) -> [UInt8]? {
        self[type].map { Array(UnsafeRawBufferPointer(start: mnl_attr_get_payload($0), count: Int(mnl_attr_get_payload_len($0)))) }
    }

    func nested(_ type: Int) -> AttributeTable? {
        guard let attribute = self[type] else { return nil }
        let child = AttributeTable()
        children.append(child)
        mnl_attr_parse_nested(attribute, collectAttribute, child.slots)
        return child
    }
}

private let collectAttribute: mnl_attr_cb_t = { attribute, context in
    guard let attribute, let context else { return MNL_CB_OK }
    let type = Int(mnl_attr_get_type(attribute))
    if type < AttributeTable.capacity {
        context.assumingMemoryBound(to: UnsafePointer<nlattr>?.self)[type] = attribute
    }
    return MNL_CB_OK
}
