// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
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
        let output = try invoke(.add)
        let result = try CNIResult.decode(output, what: "\(type) result")
        guard !result.ips.isEmpty else {
            try? release(for: attachment, addresses: nil)
            throw CNIError(.ipamFailure, "IPAM plugin \(type) returned no address")
        }
        return result
    }

    public func release(for attachment: Attachment, addresses: [IPAddress]?) throws(CNIError) {
        _ = try invoke(.del, overrides: overrides(for: attachment))
    }

    public func check(for attachment: Attachment, expecting addresses: [IPAddress]) throws(CNIError) {
        _ = try invoke(.check, overrides: overrides(for: attachment))
    }

    public func collectGarbage(keeping valid: Set<Attachment>, stale: [Attachment]) throws(CNIError) {
        if try supportedVersions().contains(.v1_1_0) {
            _ = try invoke(.gc)
        } else {
            // Plugins older than CNI 1.1 have no GC: release what GC found stale one by one.
            for attachment in stale { try release(for: attachment, addresses: nil) }
        }
    }

    public func status() throws(CNIError) {
        guard executor.find(type) != nil else {
            throw CNIError(.pluginNotAvailable, "IPAM plugin \(type) is not in CNI_PATH \(executor.searchPath.joined(separator: ":"))")
        }
        guard try supportedVersions().contains(.v1_1_0) else { return }
        do {
            _ = try invoke(.status)
        } catch {
            throw CNIError(.pluginNotAvailable, "IPAM plugin \(type) is not available", details: error.description)
        }
    }

    /// Runs the plugin with the runtime's config. A plugin that does not speak the config's version
    /// (Debian's host-local stops at 1.0.0) is asked again in the newest version both speak, so a
    /// 1.1.0 conflist can still delegate to it.
    private func invoke(_ command: CNICommand, overrides: [String: String] = [:]) throws(CNIError) -> [UInt8] {
        do {
            return try executor.run(type, command: command, overrides: overrides, stdin: config.raw)
        } catch where error.code == .incompatibleVersion {
            guard let common = try supportedVersions().filter({ $0 <= config.cniVersion }).max(),
                  common != config.cniVersion,
                  case .object(var object) = try JSONCoding.decode(JSONValue.self, from: config.raw) else { throw error }
            object["cniVersion"] = .string(common.rawValue)
            return try executor.run(type, command: command, overrides: overrides, stdin: JSONCoding.encode(JSONValue.object(object)))
        }
    }

    private func supportedVersions() throws(CNIError) -> [CNIVersion] {
        struct Versions: Decodable { var supportedVersions: [String]? }
        let output = try executor.run(type, command: .version, stdin: Array(#"{"cniVersion":"1.1.0"}"#.utf8))
        let versions = try JSONCoding.decode(Versions.self, from: output, what: "\(type) VERSION answer")
        return (versions.supportedVersions ?? []).compactMap(CNIVersion.init(rawValue:))
    }

    /// A DEL or CHECK for one attachment; the netns may be gone, and the IPAM plugin never needs it.
    private func overrides(for attachment: Attachment) -> [String: String] {
        ["CNI_CONTAINERID": attachment.containerID, "CNI_IFNAME": attachment.ifname]
    }
}
