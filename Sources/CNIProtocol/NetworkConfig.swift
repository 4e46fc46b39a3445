// SPDX-License-Identifier: Apache-2.0
/// The parts of a network config that every CNI plugin reads the same way. The plugin's own keys
/// are read from `raw` by the plugin.
public struct NetworkConfig: Sendable {
    /// A container's attachment to the network, as GC lists the ones to keep.
    public struct Attachment: Codable, Hashable, Sendable {
        public var containerID: String
        public var ifname: String

        public init(containerID: String, ifname: String) {
            self.containerID = containerID
            self.ifname = ifname
        }
    }

    public let cniVersion: CNIVersion
    public let name: String
    public let type: String
    /// The `ipam` object as given, passed on unchanged to a delegated IPAM plugin.
    public let ipam: JSONValue?
    public let prevResult: CNIResult?
    public let runtimeConfig: JSONValue?
    /// GC's list of attachments to keep (`cni.dev/valid-attachments`, or the older `cni.dev/attachments`).
    public let validAttachments: [Attachment]?
    /// Every key of the config, decoded once: the plugin reads its own keys from here.
    public let keys: [String: JSONValue]
    /// The config exactly as it came on stdin.
    public let raw: [UInt8]

    public var ipamType: String? { ipam?["type"]?.stringValue }

    /// Network names are stored whole in fixed slots of the store's records: longer ones are refused.
    public static let maxNameLength = 63

    private struct VersionOnly: Decodable {
        var cniVersion: String?
    }

    /// Reads just the version: what VERSION and the error path need even when the rest is bad.
    public static func requestedVersion(in raw: [UInt8]) -> String? {
        (try? JSONCoding.decode(VersionOnly.self, from: raw))?.cniVersion
    }

    public init(parsing raw: [UInt8]) throws(CNIError) {
        guard !raw.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x09 || $0 == 0x0d }) else {
            throw CNIError(.decodingFailure, "failed to decode network config: stdin is empty")
        }
        guard case .object(let keys) = try JSONCoding.decode(JSONValue.self, from: raw) else {
            throw CNIError(.decodingFailure, "failed to decode network config: not a JSON object")
        }
        cniVersion = try CNIVersion.negotiate(try Self.string(keys, "cniVersion", required: false))
        if let path = JSONValue.object(keys).pathOfStringWithNUL() {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"\(path)\" in network config",
                           details: "it holds a NUL character")
        }
        name = try Self.string(keys, "name") ?? ""
        try Self.validateNetworkName(name)
        type = try Self.string(keys, "type") ?? ""
        switch keys["ipam"] {
        case nil, .null?: ipam = nil
        case .object?: ipam = keys["ipam"]
        default: throw CNIError(.invalidNetworkConfig, "invalid value for key \"ipam\" in network config", details: "expected an object")
        }
        runtimeConfig = keys["runtimeConfig"]
        if let valid = try Self.attachments(keys, "cni.dev/valid-attachments") {
            validAttachments = valid
        } else {
            validAttachments = try Self.attachments(keys, "cni.dev/attachments")
        }
        switch keys["prevResult"] {
        case nil, .null?: prevResult = nil
        case let value?: prevResult = try CNIResult(value, what: "prevResult")
        }
        self.keys = keys
        self.raw = raw
    }

    private static func string(_ keys: [String: JSONValue], _ key: String, required: Bool = true) throws(CNIError) -> String? {
        switch keys[key] {
        case .string(let value)?: return value
        case nil, .null?:
            guard !required else { throw CNIError(.invalidNetworkConfig, "missing key \"\(key)\" in network config") }
            return nil
        default:
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"\(key)\" in network config", details: "expected a string")
        }
    }

    private static func attachments(_ keys: [String: JSONValue], _ key: String) throws(CNIError) -> [Attachment]? {
        guard let value = keys[key], value != .null else { return nil }
        guard let list = value.arrayValue else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"\(key)\" in network config", details: "expected a list")
        }
        var attachments: [Attachment] = []
        for (index, entry) in list.enumerated() {
            guard let containerID = entry["containerID"]?.stringValue, let ifname = entry["ifname"]?.stringValue else {
                throw CNIError(.invalidNetworkConfig, "invalid value for key \"\(key)[\(index)]\" in network config",
                               details: "expected {\"containerID\": ..., \"ifname\": ...}")
            }
            attachments.append(Attachment(containerID: containerID, ifname: ifname))
        }
        return attachments
    }

    /// Network names: alphanumerics, `_`, `.`, `-`, 1 to 63 characters.
    static func validateNetworkName(_ name: String) throws(CNIError) {
        let ok = !name.isEmpty && name.utf8.count <= maxNameLength && name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
        guard ok else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"name\" in network config",
                           details: "\"\(name)\" must be 1 to \(maxNameLength) letters, digits, '_', '.', '-'")
        }
    }
}
