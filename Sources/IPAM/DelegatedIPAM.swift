import CNIProtocol
import EndpointStore
import NetAddress

/// An IPAM plugin found in CNI_PATH (host-local, dhcp, whereabouts, ...), called with the same
/// config and environment the runtime gave swiftpath, as the spec's delegation asks.
public struct DelegatedIPAM: AddressManager {
    public let type: String
    public let config: NetworkConfig
    public let executor: PluginExecutor
    public var source: EndpointRecord.AddressSource { .delegated }

    public init(type: String, config: NetworkConfig, executor: PluginExecutor) {
        self.type = type
        self.config = config
        self.executor = executor
    }

    public func allocate(for attachment: Attachment) throws(CNIError) -> CNIResult {
        let output = try executor.run(type, command: .add, stdin: config.raw)
        let result = try CNIResult.decode(output, what: "\(type) result")
        guard !result.ips.isEmpty else {
            try? release(for: attachment, addresses: nil)
            throw CNIError(.ipamFailure, "IPAM plugin \(type) returned no address")
        }
        return result
    }

    public func release(for attachment: Attachment, addresses: [IPAddress]?) throws(CNIError) {
        _ = try executor.run(type, command: .del, overrides: overrides(for: attachment), stdin: config.raw)
    }

    public func check(for attachment: Attachment, expecting addresses: [IPAddress]) throws(CNIError) {
        _ = try executor.run(type, command: .check, overrides: overrides(for: attachment), stdin: config.raw)
    }

    public func collectGarbage(keeping valid: Set<Attachment>, stale: [Attachment]) throws(CNIError) {
        if try speaksGCAndStatus() {
            _ = try executor.run(type, command: .gc, stdin: config.raw)
        } else {
            // Plugins older than CNI 1.1 have no GC: release what GC found stale one by one.
            for attachment in stale { try release(for: attachment, addresses: nil) }
        }
    }

    public func status() throws(CNIError) {
        guard executor.find(type) != nil else {
            throw CNIError(.pluginNotAvailable, "IPAM plugin \(type) is not in CNI_PATH \(executor.searchPath.joined(separator: ":"))")
        }
        guard try speaksGCAndStatus() else { return }
        do {
            _ = try executor.run(type, command: .status, stdin: config.raw)
        } catch {
            throw CNIError(.pluginNotAvailable, "IPAM plugin \(type) is not available", details: error.description)
        }
    }

    private func speaksGCAndStatus() throws(CNIError) -> Bool {
        struct Versions: Decodable { var supportedVersions: [String]? }
        let output = try executor.run(type, command: .version, stdin: Array(#"{"cniVersion":"1.1.0"}"#.utf8))
        let versions = try JSONCoding.decode(Versions.self, from: output, what: "\(type) VERSION answer")
        return versions.supportedVersions?.contains(CNIVersion.v1_1_0.rawValue) ?? false
    }

    /// A DEL or CHECK for one attachment; the netns may be gone, and the IPAM plugin never needs it.
    private func overrides(for attachment: Attachment) -> [String: String] {
        ["CNI_CONTAINERID": attachment.containerID, "CNI_IFNAME": attachment.ifname]
    }
}
