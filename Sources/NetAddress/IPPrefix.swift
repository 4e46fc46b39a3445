// SPDX-License-Identifier: Apache-2.0
/// An address with a prefix length, as CNI writes it: "10.1.0.5/24", "fd00::5/64".
/// The address keeps its host bits: `10.1.0.5/24` is an interface address, `network` its subnet.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init?(address: IPAddress, length: Int) {
        guard (0...address.family.bitWidth).contains(length) else { return nil }
        self.address = address
        self.length = length
    }

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(parts[0]),
              !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let length = Int(parts[1]) else { return nil }
        self.init(address: address, length: length)
    }

    /// The single-address prefix of `address`: /32 or /128.
    public static func host(_ address: IPAddress) -> IPPrefix {
        IPPrefix(address: address, length: address.family.bitWidth)!
    }

    public var family: IPAddress.Family { address.family }

    private var hostMask: UInt128 {
        let hostBits = family.bitWidth - length
        return hostBits == 0 ? 0 : (hostBits >= 128 ? UInt128.max : (UInt128(1) << UInt128(hostBits)) - 1)
    }

    /// The first address of the subnet.
    public var network: IPAddress { IPAddress(family: family, value: address.value & ~hostMask) }
    /// The subnet itself: "10.1.0.5/24" is "10.1.0.0/24".
    public var networkPrefix: IPPrefix { IPPrefix(address: network, length: length)! }
    /// The last address of the subnet.
    public var last: IPAddress { IPAddress(family: family, value: address.value | hostMask) }
    /// How many addresses the subnet holds, minus one (so that a /0 in IPv6 still fits).
    public var span: UInt128 { hostMask }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && other.value & ~hostMask == network.value
    }

    /// Whether every address of `other` is one of this prefix's.
    public func contains(_ other: IPPrefix) -> Bool { other.length >= length && contains(other.address) }

    public var description: String { "\(address)/\(length)" }
}

extension IPPrefix: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let prefix = IPPrefix(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "'\(text)' is not an address/prefix"))
        }
        self = prefix
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
