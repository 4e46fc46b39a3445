// SPDX-License-Identifier: Apache-2.0
import Foundation
import Yams

/// How to reach and authenticate to an API server: its address, the CA that signs its
/// certificate, and a bearer token or a client certificate.
public struct ClusterAccess: Sendable, Equatable {
    public enum Token: Sendable, Equatable {
        case literal(String)
        /// A file read again on every connection: service account tokens rotate.
        case file(String)
    }

    /// `https://host:port`, without a trailing slash.
    public var server: String
    public var caPEM: [UInt8]?
    public var token: Token?
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    public var insecureSkipTLSVerify: Bool

    public init(server: String, caPEM: [UInt8]? = nil, token: Token? = nil, clientCertificatePEM: [UInt8]? = nil,
                clientKeyPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.caPEM = caPEM
        self.token = token
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Refuses what would hand the credentials to whoever sits on the path: plain HTTP to anything
    /// but this host's loopback, and a CA together with insecure-skip-tls-verify (client-go
    /// refuses that pair too: the CA would be silently ignored).
    public func checkTransport() throws {
        guard let url = URL(string: server), let scheme = url.scheme?.lowercased(), let host = url.host else {
            throw Invalid(description: "API server \(server) is no URL")
        }
        switch scheme {
        case "https": break
        case "http" where Self.isLoopback(host): break
        case "http": throw Invalid(description: "API server \(server): plain HTTP would send the credentials in clear; use https")
        default: throw Invalid(description: "API server \(server): \(scheme) is neither https nor http")
        }
        if caPEM != nil && insecureSkipTLSVerify {
            throw Invalid(description: "API server \(server): a certificate authority and insecure-skip-tls-verify together; keep one")
        }
    }

    private static func isLoopback(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if bare == "localhost" || bare == "::1" { return true }
        let octets = bare.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// The bearer token as of now.
    public func currentToken() throws -> String? {
        switch token {
        case .none: return nil
        case .literal(let token): return token
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else { throw Invalid(description: "cannot read token file \(path)") }
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    // MARK: In cluster

    public static let serviceAccountFolder = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// A pod's access: the service account's token and CA, and the API server at `server`, else
    /// the `kubernetes` Service's address from the environment (which a kube-proxy-free cluster
    /// serves only once its network plugin runs: give the address explicitly there).
    public static func inCluster(server: String?, environment: [String: String],
                                 folder: String = serviceAccountFolder) throws -> ClusterAccess {
        let address: String
        if let server {
            address = server
        } else if let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"] {
            address = "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        } else {
            throw Invalid(description: "no API server: give --api-server, or run in a pod (KUBERNETES_SERVICE_HOST)")
        }
        guard let ca = FileManager.default.contents(atPath: folder + "/ca.crt") else {
            throw Invalid(description: "cannot read \(folder)/ca.crt")
        }
        return ClusterAccess(server: address, caPEM: Array(ca), token: .file(folder + "/token"))
    }

    // MARK: kubeconfig

    /// The access a kubeconfig file's current context gives, read as kubectl reads it: inline
    /// `*-data` (base64) or file paths (relative to the kubeconfig's folder), a token or token
    /// file, or a client certificate. `server` overrides the cluster's address.
    public static func kubeconfig(at path: String, server: String? = nil) throws -> ClusterAccess {
        guard let data = FileManager.default.contents(atPath: path) else { throw Invalid(description: "cannot read kubeconfig \(path)") }
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let config: Kubeconfig
        do { config = try YAMLDecoder().decode(Kubeconfig.self, from: data) } catch {
            throw Invalid(description: "kubeconfig \(path): \(error)")
        }
        guard let contextName = config.currentContext ?? config.contexts?.first?.name,
              let context = config.contexts?.first(where: { $0.name == contextName })?.context else {
            throw Invalid(description: "kubeconfig \(path): no current context")
        }
        guard let cluster = config.clusters?.first(where: { $0.name == context.cluster })?.cluster else {
            throw Invalid(description: "kubeconfig \(path): no cluster \(context.cluster)")
        }
        let user = config.users?.first(where: { $0.name == context.user })?.user
        func material(inline: String?, file: String?, _ what: String) throws -> [UInt8]? {
            if let inline {
                guard let decoded = Data(base64Encoded: inline) else { throw Invalid(description: "kubeconfig \(path): \(what) is not base64") }
                return Array(decoded)
            }
            guard let file else { return nil }
            let full = file.hasPrefix("/") ? file : folder + "/" + file
            guard let contents = FileManager.default.contents(atPath: full) else { throw Invalid(description: "cannot read \(full)") }
            return Array(contents)
        }
        var token: Token?
        if let literal = user?.token { token = .literal(literal) } else if let file = user?.tokenFile {
            token = .file(file.hasPrefix("/") ? file : folder + "/" + file)
        }
        return ClusterAccess(
            server: server ?? cluster.server,
            caPEM: try material(inline: cluster.certificateAuthorityData, file: cluster.certificateAuthority, "certificate-authority-data"),
            token: token,
            clientCertificatePEM: try material(inline: user?.clientCertificateData, file: user?.clientCertificate, "client-certificate-data"),
            clientKeyPEM: try material(inline: user?.clientKeyData, file: user?.clientKey, "client-key-data"),
            insecureSkipTLSVerify: cluster.insecureSkipTLSVerify ?? false)
    }
}

/// The fields of a kubeconfig file (clientcmd/api/v1) swiftpath reads.
private struct Kubeconfig: Decodable {
    struct Named<Value: Decodable>: Decodable {
        let name: String
        let value: Value?

        enum CodingKeys: String, CodingKey { case name, cluster, user, context }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            value = try container.decodeIfPresent(Value.self, forKey: .cluster)
                ?? container.decodeIfPresent(Value.self, forKey: .user)
                ?? container.decodeIfPresent(Value.self, forKey: .context)
        }
    }

    struct Cluster: Decodable {
        let server: String
        let certificateAuthority: String?
        let certificateAuthorityData: String?
        let insecureSkipTLSVerify: Bool?

        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
        }
    }

    struct User: Decodable {
        let token: String?
        let tokenFile: String?
        let clientCertificate: String?
        let clientCertificateData: String?
        let clientKey: String?
        let clientKeyData: String?

        enum CodingKeys: String, CodingKey {
            case token, tokenFile
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
        }
    }

    struct Context: Decodable {
        let cluster: String
        let user: String?
    }

    let currentContext: String?
    let clusters: [Named<Cluster>]?
    let users: [Named<User>]?
    let contexts: [Named<Context>]?

    enum CodingKeys: String, CodingKey {
        case currentContext = "current-context"
        case clusters, users, contexts
    }
}

extension Kubeconfig.Named where Value == Kubeconfig.Cluster { var cluster: Value? { value } }
extension Kubeconfig.Named where Value == Kubeconfig.User { var user: Value? { value } }
extension Kubeconfig.Named where Value == Kubeconfig.Context { var context: Value? { value } }
