// SPDX-License-Identifier: Apache-2.0
import NetAddress

/// A CNI result, independent of the version it is read or printed in.
public struct CNIResult: Equatable, Sendable {
    public struct Interface: Codable, Equatable, Sendable {
        public var name: String
        public var mac: String?
        public var mtu: Int?
        public var sandbox: String?

        public init(name: String, mac: String? = nil, mtu: Int? = nil, sandbox: String? = nil) {
            self.name = name
            self.mac = mac
            self.mtu = mtu
            self.sandbox = sandbox
        }
    }

    public struct IPConfig: Equatable, Sendable {
        public var address: IPPrefix
        public var gateway: IPAddress?
        /// Index into `interfaces`.
        public var interface: Int?

        public init(address: IPPrefix, gateway: IPAddress? = nil, interface: Int? = nil) {
            self.address = address
            self.gateway = gateway
            self.interface = interface
        }
    }

    public struct Route: Codable, Equatable, Sendable {
        public var dst: IPPrefix
        public var gw: IPAddress?

        public init(dst: IPPrefix, gw: IPAddress? = nil) {
            self.dst = dst
            self.gw = gw
        }

        private enum CodingKeys: String, CodingKey { case dst, gw }

        /// A route's gateway is of its destination's family, or the route cannot exist.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            dst = try container.decode(IPPrefix.self, forKey: .dst)
            gw = try container.decodeIfPresent(IPAddress.self, forKey: .gw)
            if let gw, gw.family != dst.family {
                throw DecodingError.dataCorruptedError(forKey: .gw, in: container,
                                                       debugDescription: "gateway \(gw) is not of the family of \(dst)")
            }
        }
    }

    public struct DNS: Codable, Equatable, Sendable {
        public var nameservers: [String]?
        public var domain: String?
        public var search: [String]?
        public var options: [String]?

        public init() {}
        var isEmpty: Bool { nameservers == nil && domain == nil && search == nil && options == nil }
    }

    public var interfaces: [Interface]
    public var ips: [IPConfig]
    public var routes: [Route]
    public var dns: DNS

    public init(interfaces: [Interface] = [], ips: [IPConfig] = [], routes: [Route] = [], dns: DNS = DNS()) {
        self.interfaces = interfaces
        self.ips = ips
        self.routes = routes
        self.dns = dns
    }
}

// MARK: - Reading and printing in every version

extension CNIResult {
    private struct Wire: Codable {
        var cniVersion: String?
        var interfaces: [Interface]?
        var ips: [WireIP]?
        var routes: [Route]?
        var dns: DNS?
    }

    private struct WireIP: Codable {
        var version: String?
        var address: IPPrefix
        var gateway: IPAddress?
        var interface: Int?
    }

    /// Reads a result of any supported version (a prevResult, or what an IPAM plugin printed).
    public static func decode(_ bytes: some Collection<UInt8>, what: String) throws(CNIError) -> CNIResult {
        try CNIResult(wire: JSONCoding.decode(Wire.self, from: bytes, what: what))
    }

    /// Reads a result nested in a config (`prevResult`).
    public init(_ value: JSONValue, what: String) throws(CNIError) {
        try self.init(wire: JSONCoding.decode(Wire.self, from: JSONCoding.encode(value), what: what))
    }

    private init(wire decoded: Wire) {
        self.init(interfaces: decoded.interfaces ?? [],
                  ips: (decoded.ips ?? []).map { IPConfig(address: $0.address, gateway: $0.gateway, interface: $0.interface) },
                  routes: decoded.routes ?? [], dns: decoded.dns ?? DNS())
    }

    /// The result as the spec of `version` writes it.
    public func encoded(as version: CNIVersion) -> [UInt8] {
        let wire = Wire(
            cniVersion: version.description,
            interfaces: interfaces.isEmpty ? nil : interfaces.map {
                var interface = $0
                if version < .v1_1_0 { interface.mtu = nil }
                return interface
            },
            ips: ips.isEmpty ? nil : ips.map {
                WireIP(version: version.resultHasIPVersion ? ($0.address.family == .v4 ? "4" : "6") : nil,
                       address: $0.address, gateway: $0.gateway, interface: $0.interface)
            },
            routes: routes.isEmpty ? nil : routes,
            dns: dns.isEmpty ? nil : dns)
        return JSONCoding.encode(wire)
    }
}

/// A JSON value kept as it came, for the parts of a config that are passed on rather than read
/// (`prevResult`, `ipam`, `runtimeConfig`).
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    /// The value as an integer, when it is a number without a fractional part.
    public var integerValue: Int? {
        guard case .number(let value) = self, value == value.rounded(), abs(value) < 1e15 else { return nil }
        return Int(value)
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The key path (as error messages name keys: `ipam.ranges[0].subnet`) of the first string,
    /// key included, that holds a NUL character, or nil when none does. C sees such a string cut
    /// short at the NUL, so swiftpath refuses it rather than read less than it was given.
    public func pathOfStringWithNUL(_ path: String = "") -> String? {
        switch self {
        case .string(let value):
            return value.utf8.contains(0) ? path : nil
        case .array(let values):
            for (index, value) in values.enumerated() {
                if let found = value.pathOfStringWithNUL("\(path)[\(index)]") { return found }
            }
        case .object(let object):
            for (key, value) in object.sorted(by: { $0.key < $1.key }) {
                let child = path.isEmpty ? key : "\(path).\(key)"
                if key.utf8.contains(0) { return child }
                if let found = value.pathOfStringWithNUL(child) { return found }
            }
        case .null, .bool, .number:
            break
        }
        return nil
    }
}
