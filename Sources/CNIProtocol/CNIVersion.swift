// SPDX-License-Identifier: Apache-2.0
/// A CNI spec version. Only the versions swiftpath speaks can be made.
public enum CNIVersion: String, CaseIterable, Comparable, Codable, Sendable, CustomStringConvertible {
    case v0_3_0 = "0.3.0"
    case v0_3_1 = "0.3.1"
    case v0_4_0 = "0.4.0"
    case v1_0_0 = "1.0.0"
    case v1_1_0 = "1.1.0"

    public static let latest = CNIVersion.v1_1_0

    public var description: String { rawValue }

    /// Results before 1.0.0 carry `ips[].version`.
    public var resultHasIPVersion: Bool { self < .v1_0_0 }

    private var order: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (lhs: CNIVersion, rhs: CNIVersion) -> Bool { lhs.order < rhs.order }

    /// Parses a config's `cniVersion`, or fails with code 1 naming what was asked for.
    public static func negotiate(_ requested: String?) throws(CNIError) -> CNIVersion {
        guard let requested, !requested.isEmpty else {
            throw CNIError(.incompatibleVersion, "cniVersion is missing (implies 0.1.0, which swiftpath does not support)",
                           details: "supported versions: \(supportedList)")
        }
        guard let version = CNIVersion(rawValue: requested) else {
            throw CNIError(.incompatibleVersion, "incompatible CNI version \(requested)",
                           details: "supported versions: \(supportedList)")
        }
        return version
    }

    public static var supportedList: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
