// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address held as a 128-bit number, so that ranges can be walked with arithmetic.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Sendable, Codable {
        case v4 = 4
        case v6 = 6

        public var bitWidth: Int { self == .v4 ? 32 : 128 }
        public var byteCount: Int { bitWidth / 8 }
        public var addressFamily: Int32 { self == .v4 ? AF_INET : AF_INET6 }
    }

    public let family: Family
    /// The address as a big-endian number; an IPv4 address uses the low 32 bits.
    public let value: UInt128

    public init(family: Family, value: UInt128) {
        self.family = family
        self.value = family == .v4 ? value & 0xffff_ffff : value
    }

    /// `bytes` in network order: 4 for IPv4, 16 for IPv6.
    public init?(bytes: some Collection<UInt8>) {
        guard let family: Family = bytes.count == 4 ? .v4 : bytes.count == 16 ? .v6 : nil else { return nil }
        self.init(family: family, value: bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) })
    }

    public init?(_ text: some StringProtocol) {
        var raw = [UInt8](repeating: 0, count: 16)
        let string = String(text)
        // inet_pton reads a C string: an embedded NUL would cut the text short, unseen.
        guard !string.utf8.contains(0) else { return nil }
        if !string.contains(":"), inet_pton(AF_INET, string, &raw) == 1 {
            self.init(bytes: raw[0..<4])
        } else if inet_pton(AF_INET6, string, &raw) == 1 {
            self.init(bytes: raw)
        } else {
            return nil
        }
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        (0..<family.byteCount).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt128($0))) }
    }

    public var description: String {
        var raw = bytes
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(family.addressFamily, &raw, &text, socklen_t(text.count)) != nil else { return "?" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var isIPv4: Bool { family == .v4 }

    /// 127.0.0.0/8 or ::1: an address that means the netns it is used in.
    public var isLoopback: Bool { family == .v4 ? value >> 24 == 127 : value == 1 }

    /// 0.0.0.0 or ::: no address, "any address" where a socket binds.
    public var isUnspecified: Bool { value == 0 }

    /// 169.254.0.0/16 or fe80::/10: meaningful on one link only.
    public var isLinkLocal: Bool { family == .v4 ? value >> 16 == 0xa9fe : value >> 118 == 0x3fa }

    /// The address `offset` places further on, or nil past the end of the family's space.
    public func advanced(by offset: UInt128) -> IPAddress? {
        let (sum, overflow) = value.addingReportingOverflow(offset)
        guard !overflow, family == .v6 || sum <= 0xffff_ffff else { return nil }
        return IPAddress(family: family, value: sum)
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.family.rawValue, lhs.value) < (rhs.family.rawValue, rhs.value)
    }
}

extension IPAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let address = IPAddress(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "'\(text)' is not an IP address"))
        }
        self = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
