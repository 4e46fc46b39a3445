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
    /// The config exactly as it came on stdin.
    public let raw: [UInt8]

    public var ipamType: String? { ipam?["type"]?.stringValue }

    private struct Wire: Decodable {
        var cniVersion: String?
        var name: String
        var type: String
        var ipam: JSONValue?
        var prevResult: JSONValue?
        var runtimeConfig: JSONValue?
        var validAttachments: [Attachment]?
        var attachments: [Attachment]?

        enum CodingKeys: String, CodingKey {
            case cniVersion, name, type, ipam, prevResult, runtimeConfig
            case validAttachments = "cni.dev/valid-attachments"
            case attachments = "cni.dev/attachments"
        }
    }

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
        let versionOnly = try JSONCoding.decode(VersionOnly.self, from: raw)
        let version = try CNIVersion.negotiate(versionOnly.cniVersion)
        let wire = try JSONCoding.decode(Wire.self, from: raw)
        try Self.validateNetworkName(wire.name)
        if let ipam = wire.ipam {
            guard case .object = ipam else {
                throw CNIError(.invalidNetworkConfig, "invalid value for key \"ipam\" in network config",
                               details: "expected an object")
            }
        }
        cniVersion = version
        name = wire.name
        type = wire.type
        ipam = wire.ipam
        runtimeConfig = wire.runtimeConfig
        validAttachments = wire.validAttachments ?? wire.attachments
        self.raw = raw
        switch wire.prevResult {
        case nil, .null?: prevResult = nil
        case let value?: prevResult = try CNIResult(value, what: "prevResult")
        }
    }

    /// Network names: alphanumerics, `_`, `.`, `-`, not empty.
    static func validateNetworkName(_ name: String) throws(CNIError) {
        let ok = !name.isEmpty && name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
        guard ok else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"name\" in network config",
                           details: "\"\(name)\" must be non-empty and hold only letters, digits, '_', '.', '-'")
        }
    }
}
