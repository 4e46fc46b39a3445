// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import Synchronization
import NIOCore
import NIOHTTP1
import NIOPosix

/// The health check node ports of Services with externalTrafficPolicy Local, answered as kube-proxy
/// answers them: 200 while this node has a ready endpoint of the Service, 503 while it has none, a
/// JSON body naming the Service and the count. Load balancers probe them to send traffic only to
/// nodes that can serve it locally.
final class HealthCheckNodePorts: Sendable {
    private struct State {
        var checks: [UInt16: ServiceTable.HealthCheck] = [:]
        var listeners: [UInt16: any Channel] = [:]
        /// Ports an update is opening now: another update running meanwhile leaves them to it.
        var opening: Set<UInt16> = []
    }

    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Serves exactly `checks`: opens the ports that are new, closes the ones that went, and answers
    /// with the counts given. A port that cannot be opened (in use) is tried again at the next update.
    func update(_ checks: [UInt16: ServiceTable.HealthCheck]) async {
        let (opening, closing) = state.withLock { state -> ([UInt16], [any Channel]) in
            state.checks = checks
            let closing = state.listeners.filter { checks[$0.key] == nil }
            for port in closing.keys { state.listeners[port] = nil }
            let opening = checks.keys.filter { state.listeners[$0] == nil && !state.opening.contains($0) }.sorted()
            state.opening.formUnion(opening)
            return (opening, Array(closing.values))
        }
        for channel in closing { try? await channel.close() }
        for port in opening {
            do {
                let channel = try await listen(on: port)
                let kept = state.withLock { state -> Bool in
                    state.opening.remove(port)
                    guard state.checks[port] != nil else { return false }
                    state.listeners[port] = channel
                    return true
                }
                if !kept { try? await channel.close() }
            } catch {
                _ = state.withLock { $0.opening.remove(port) }
                logger.error("health check node port not served", metadata: ["port": "\(port)", "error": "\(error)"])
            }
        }
    }

    /// Every address of both families; IPv4 alone where the node has no IPv6.
    private func listen(on port: UInt16) async throws -> any Channel {
        let bootstrap = AgentListener.bootstrap(.healthCheckNodePort) { [self] in Handler(port: port, ports: self) }
        do { return try await bootstrap.bind(host: "::", port: Int(port)).get() } catch {
            return try await bootstrap.bind(host: "0.0.0.0", port: Int(port)).get()
        }
    }

    /// kube-proxy's answer, field for field.
    private struct Answer: Encodable {
        struct Service: Encodable {
            var namespace: String
            var name: String
        }
        var service: Service
        var localEndpoints: Int
        var serviceProxyHealthy = true
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let port: UInt16
        let ports: HealthCheckNodePorts

        init(port: UInt16, ports: HealthCheckNodePorts) {
            self.port = port
            self.ports = ports
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            let check = ports.state.withLock { $0.checks[port] }
            var status = HTTPResponseStatus.serviceUnavailable
            var body = Data()
            if let check {
                status = check.localEndpoints > 0 ? .ok : .serviceUnavailable
                let answer = Answer(service: .init(namespace: check.namespace, name: check.name), localEndpoints: check.localEndpoints)
                body = (try? JSONEncoder().encode(answer)) ?? Data()
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "X-Content-Type-Options", value: "nosniff")
            headers.add(name: "Content-Length", value: String(body.count))
            // One probe, one connection, as kube-proxy answers: a load balancer holds none open.
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}
