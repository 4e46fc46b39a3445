// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOHTTP1
import NIOPosix

/// `/healthz` (the agent runs), `/readyz` (ready: datapath loaded, conflist written, watch synced)
/// and `/metrics` (Prometheus text), over plain HTTP on a local port for the kubelet's probes and
/// a scraper.
public final class HealthServer: Sendable {
    private let channel: any Channel

    public static func start(host: String, port: Int, agent: Agent) async throws -> HealthServer {
        let bootstrap = AgentListener.bootstrap(.health) { Handler(agent: agent) }
        return HealthServer(channel: try await bootstrap.bind(host: host, port: port).get())
    }

    private init(channel: any Channel) { self.channel = channel }

    public var port: Int? { channel.localAddress?.port }

    public func stop() async { try? await channel.close() }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let agent: Agent
        private var path = ""

        init(agent: Agent) { self.agent = agent }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): path = String(head.uri.split(separator: "?").first ?? "")
            case .body: break
            case .end:
                let path = self.path
                let agent = self.agent
                let loop = context.eventLoop
                let bound = NIOLoopBound(context, eventLoop: loop)
                Task {
                    let (status, body) = await Self.answer(path, agent: agent)
                    loop.execute { Self.respond(bound.value, status: status, body: body) }
                }
            }
        }

        static func answer(_ path: String, agent: Agent) async -> (HTTPResponseStatus, [UInt8]) {
            switch path {
            case "/healthz":
                let liveness = await agent.liveness()
                return (liveness.alive ? .ok : .serviceUnavailable, Array((liveness.detail + "\n").utf8))
            case "/readyz":
                let readiness = await agent.readiness()
                return (readiness.ready ? .ok : .serviceUnavailable, Array((readiness.detail + "\n").utf8))
            // The last snapshot: a scrape never waits for the store's lock nor walks a map.
            case "/metrics": return (.ok, agent.metrics.exposition())
            default: return (.notFound, Array("not found\n".utf8))
            }
        }

        static func respond(_ context: ChannelHandlerContext, status: HTTPResponseStatus, body: [UInt8]) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
            headers.add(name: "Content-Length", value: String(body.count))
            context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
        }
    }
}
