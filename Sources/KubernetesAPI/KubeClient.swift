// SPDX-License-Identifier: Apache-2.0
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL

/// A failure talking to the API server.
public enum KubeError: Error, CustomStringConvertible, Sendable {
    /// The resourceVersion asked for is older than the server keeps (410 Gone): list again.
    case gone(String)
    /// The server answered with another status.
    case status(code: Int, message: String)
    /// The connection failed, or the answer could not be read.
    case transport(String)

    public var description: String {
        switch self {
        case .gone(let message): "410 Gone: \(message)"
        case .status(let code, let message): "HTTP \(code): \(message)"
        case .transport(let message): message
        }
    }
}

/// Lists and watches objects of the Kubernetes API over HTTPS, trusting the cluster's own CA.
public final class KubeClient: Sendable {
    public let access: ClusterAccess
    private let http: HTTPClient

    /// `readIdleTimeout`: how long a response, a watch's included, may stay silent before it
    /// fails. The API server sends a watch a bookmark about once a minute; a server that vanished
    /// without a FIN or a reset (a reboot, a VIP moved, a partition) sends nothing, and without
    /// this deadline its watches would wait for ever.
    public init(access: ClusterAccess, readIdleTimeout: TimeAmount = .seconds(120)) throws {
        try access.checkTransport()
        self.access = access
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = access.caPEM {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
        }
        if let certificate = access.clientCertificatePEM, let key = access.clientKeyPEM {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
        }
        if access.insecureSkipTLSVerify { tls.certificateVerification = .none }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: readIdleTimeout)
        // TCP keepalive on every connection (HTTP/1.1, or HTTP/2 as a real API server offers it):
        // a peer that is gone stops answering the probes, and the connection fails within about a
        // minute, whatever the read deadline.
        configuration.http1_1ConnectionDebugInitializer = Self.keepAlive
        configuration.http2ConnectionDebugInitializer = Self.keepAlive
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Probes after 30 s of silence, every 10 s, 3 unanswered: the connection is given up.
    private static let keepAlive: @Sendable (Channel) -> EventLoopFuture<Void> = { channel in
        let tcp = SocketOptionLevel(IPPROTO_TCP)
        return channel.setOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .flatMap { channel.setOption(ChannelOptions.Types.SocketOption(level: tcp, name: TCP_KEEPIDLE), value: 30) }
            .flatMap { channel.setOption(ChannelOptions.Types.SocketOption(level: tcp, name: TCP_KEEPINTVL), value: 10) }
            .flatMap { channel.setOption(ChannelOptions.Types.SocketOption(level: tcp, name: TCP_KEEPCNT), value: 3) }
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    private func request(_ pathAndQuery: String) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: access.server + pathAndQuery)
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "swiftpath-agent")
        if let token = try access.currentToken() { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request
    }

    private static func failure(_ response: HTTPClientResponse) async -> KubeError {
        let body = (try? await response.body.collect(upTo: 1 << 20)).map { String(buffer: $0) } ?? ""
        let status = try? JSONDecoder().decode(Status.self, from: Data(body.utf8))
        let message = status?.message ?? body
        return response.status.code == 410 ? .gone(message) : .status(code: Int(response.status.code), message: message)
    }

    /// Objects asked for per page of a list: the API server and the agent each hold one page's
    /// answer at a time, not a 5,000-node cluster's in one body.
    public static let pageSize = 500

    /// Lists the collection at `path` (`/api/v1/nodes`).
    ///
    /// The first list (no `notOlderThan`) comes in pages, all from one snapshot: the first page's,
    /// the most recent (no resourceVersion asked: a consistent read). When the snapshot is
    /// compacted away before the last page (410), the collection is listed again in one answer,
    /// as client-go's pager falls back. A list again (`notOlderThan`: the version the copy has
    /// seen) asks for any state not older than that, in one answer, which the API server serves
    /// from its watch cache: a fleet of agents listing again at once (after an API server
    /// restart, say) does not land on etcd, and the copy never goes back in time. A server that
    /// does not have that version yet is asked for a consistent read instead.
    public func list<Object: KubeObject>(_ path: String, as _: Object.Type, notOlderThan version: String? = nil,
                                         pageSize: Int = KubeClient.pageSize) async throws(KubeError) -> ObjectList<Object> {
        if let version, !version.isEmpty {
            do {
                return try await listPage(path, as: Object.self, query: ["resourceVersion=\(version)", "resourceVersionMatch=NotOlderThan"])
            } catch {
                guard case .status(504, _) = error else { throw error }
            }
        }
        var items: [Object] = []
        var next: String?
        while true {
            let page: ObjectList<Object>
            do {
                page = try await listPage(path, as: Object.self, limit: pageSize, continuing: next)
            } catch {
                guard case .gone = error, next != nil else { throw error }
                return try await listPage(path, as: Object.self, limit: nil, continuing: nil)
            }
            items += page.items
            guard let token = page.metadata.continueToken, !token.isEmpty else {
                return ObjectList(metadata: page.metadata, items: items)
            }
            guard token != next else { throw .transport("list \(path): the server gave the same continue token twice") }
            next = token
        }
    }

    func listPage<Object: KubeObject>(_ path: String, as _: Object.Type, limit: Int?, continuing token: String?)
        async throws(KubeError) -> ObjectList<Object> {
        var query: [String] = []
        if let limit { query.append("limit=\(limit)") }
        if let token {
            guard let escaped = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) else {
                throw .transport("list \(path): a continue token that cannot be sent")
            }
            query.append("continue=\(escaped)")
        }
        return try await listPage(path, as: Object.self, query: query)
    }

    private func listPage<Object: KubeObject>(_ path: String, as _: Object.Type, query: [String]) async throws(KubeError)
        -> ObjectList<Object> {
        do {
            let response = try await http.execute(try request(path + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))),
                                                  timeout: .seconds(30))
            guard response.status.code == 200 else { throw await Self.failure(response) }
            let body = try await response.body.collect(upTo: 256 << 20)
            return try JSONDecoder().decode(ObjectList<Object>.self, from: Data(body.readableBytesView))
        } catch let error as KubeError {
            throw error
        } catch {
            throw .transport("list \(path): \(error)")
        }
    }

    /// Watches the collection at `path` from `resourceVersion`, with bookmarks. The stream ends
    /// when the server ends the watch (its timeout), and throws when the connection fails or the
    /// version is gone.
    public func watch<Object: KubeObject>(_ path: String, from resourceVersion: String, as _: Object.Type,
                                          timeoutSeconds: Int = 300) -> AsyncThrowingStream<WatchEvent<Object>, Error> {
        let query = "?watch=1&allowWatchBookmarks=true&resourceVersion=\(resourceVersion)&timeoutSeconds=\(timeoutSeconds)"
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await http.execute(try request(path + query), timeout: .seconds(Int64(timeoutSeconds + 30)))
                    guard response.status.code == 200 else { throw await Self.failure(response) }
                    var line = [UInt8]()
                    for try await buffer in response.body {
                        for byte in buffer.readableBytesView {
                            guard byte == UInt8(ascii: "\n") else { line.append(byte); continue }
                            if !line.isEmpty { continuation.yield(try Self.event(from: line)) }
                            line.removeAll(keepingCapacity: true)
                        }
                    }
                    if !line.isEmpty { continuation.yield(try Self.event(from: line)) }
                    continuation.finish()
                } catch let error as KubeError {
                    continuation.finish(throwing: error)
                } catch {
                    continuation.finish(throwing: KubeError.transport("watch \(path): \(error)"))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// One line of a watch stream: `{"type": ..., "object": ...}`, where ERROR carries a Status
    /// and BOOKMARK an object with nothing but its resourceVersion.
    private struct EventLine<Object: KubeObject>: Decodable {
        let event: WatchEvent<Object>

        private enum CodingKeys: String, CodingKey { case type, object }

        private struct Bookmark: Decodable {
            struct Meta: Decodable { let resourceVersion: String }
            let metadata: Meta
        }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let type = try container.decode(String.self, forKey: .type)
            switch type {
            case "ADDED": event = .added(try container.decode(Object.self, forKey: .object))
            case "MODIFIED": event = .modified(try container.decode(Object.self, forKey: .object))
            case "DELETED": event = .deleted(try container.decode(Object.self, forKey: .object))
            case "BOOKMARK":
                event = .bookmark(resourceVersion: try container.decode(Bookmark.self, forKey: .object).metadata.resourceVersion)
            case "ERROR": event = .error(try container.decode(Status.self, forKey: .object))
            default:
                throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown watch event type \(type)")
            }
        }
    }

    static func event<Object: KubeObject>(from line: [UInt8]) throws -> WatchEvent<Object> {
        try JSONDecoder().decode(EventLine<Object>.self, from: Data(line)).event
    }
}
