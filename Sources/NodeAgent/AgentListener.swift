// SPDX-License-Identifier: Apache-2.0
import Synchronization
import NIOCore
import NIOHTTP1
import NIOPosix
import NetAddress

/// What a client of one of the agent's HTTP listeners may hold: the agent runs on every node with
/// a handful of descriptors to spare, and a health check node port answers whoever reaches the
/// node, so neither many connections nor slow ones may pile up.
struct ListenerLimits: Sendable {
    /// Connections open at once; one more is closed as soon as it is accepted.
    var maxConnections: Int
    /// Connections open at once from one address (one IPv6 /64, which a single host may hold
    /// whole): a single client cannot take the whole cap and keep everyone else's probes out.
    var maxConnectionsPerSource: Int
    /// How long a connection may take to send a whole request, counted from its opening or from
    /// the end of the previous answer; it is closed when the time is up (slowloris).
    var requestDeadline: TimeAmount

    /// Load balancers probe every node's health check node port every few seconds, one
    /// connection a probe.
    static let healthCheckNodePort = ListenerLimits(maxConnections: 64, maxConnectionsPerSource: 8, requestDeadline: .seconds(5))
    /// /healthz, /readyz and /metrics: kubelet's probes and a scraper or two.
    static let health = ListenerLimits(maxConnections: 16, maxConnectionsPerSource: 8, requestDeadline: .seconds(5))
}

/// HTTP/1.1 listeners with `ListenerLimits` enforced.
enum AgentListener {
    /// A bootstrap whose connections get the HTTP server pipeline, the request deadline and a
    /// fresh `handler()`.
    static func bootstrap(_ limits: ListenerLimits, handler: @escaping @Sendable () -> any ChannelHandler) -> ServerBootstrap {
        ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ConnectionCap(limit: limits.maxConnections,
                                                                                 perSource: limits.maxConnectionsPerSource))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RequestDeadline(limits.requestDeadline))
                    try channel.pipeline.syncOperations.addHandler(handler())
                }
            }
    }
}

/// Counts a listener's open connections, in all and by source address, and closes each one
/// accepted beyond either cap. It sits in the listening channel's pipeline ahead of the
/// bootstrap's own accept handler, so it sees the connections in the order the kernel hands them
/// over, before any reaches an event loop.
final class ConnectionCap: ChannelInboundHandler, Sendable {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private struct Open {
        var total = 0
        var bySource: [String: Int] = [:]
    }

    private let limit: Int
    private let perSource: Int
    private let open = Mutex(Open())

    init(limit: Int, perSource: Int) {
        self.limit = limit
        self.perSource = perSource
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let accepted = unwrapInboundIn(data)
        let source = Self.source(of: accepted.remoteAddress)
        let admitted = open.withLock { open -> Bool in
            guard open.total < limit, open.bySource[source, default: 0] < perSource else { return false }
            open.total += 1
            open.bySource[source, default: 0] += 1
            return true
        }
        guard admitted else {
            accepted.close(promise: nil)
            return
        }
        accepted.closeFuture.whenComplete { [self] _ in
            self.open.withLock { open in
                open.total -= 1
                open.bySource[source, default: 1] -= 1
                if open.bySource[source] == 0 { open.bySource[source] = nil }
            }
        }
        context.fireChannelRead(data)
    }

    /// Whom a connection counts against: its IPv4 address, or its IPv6 address's /64.
    private static func source(of address: SocketAddress?) -> String {
        guard let text = address?.ipAddress, let ip = IPAddress(text) else { return "" }
        let bytes = ip.bytes
        if ip.isIPv4 { return ip.description }
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d, all in one /64.
        if bytes.prefix(10).allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return IPAddress(bytes: bytes.suffix(4))?.description ?? ""
        }
        return IPPrefix(address: ip, length: 64)!.network.description
    }
}

/// Closes a connection that has not delivered a whole request (head and body) within the deadline
/// of its opening or of the end of the previous answer. A timeout between reads would not do: a
/// client sending a byte every few seconds would hold the connection for ever.
final class RequestDeadline: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let deadline: TimeAmount
    private var timer: Scheduled<Void>?

    init(_ deadline: TimeAmount) { self.deadline = deadline }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { disarm() }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The request is whole; answering it may take its time (readiness asks the agent).
        if case .end = unwrapInboundIn(data) { disarm() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Answered: a kept-alive connection has the same time again for its next request.
        if case .end = unwrapOutboundIn(data) { arm(context) }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: deadline) { context.close(promise: nil) }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
