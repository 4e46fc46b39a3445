// SPDX-License-Identifier: Apache-2.0
/// The verbs a runtime asks for through `CNI_COMMAND`.
public enum CNICommand: String, Sendable, CaseIterable {
    case add = "ADD"
    case del = "DEL"
    case check = "CHECK"
    case gc = "GC"
    case status = "STATUS"
    case version = "VERSION"

    /// The environment variables a verb cannot do without (the spec's table).
    var requiredVariables: [String] {
        switch self {
        case .add, .check: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
        case .del: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]
        case .gc, .status: ["CNI_PATH"]
        case .version: []
        }
    }
}

/// What the runtime passes through the environment, validated once.
public struct CNIEnvironment: Sendable {
    public let command: CNICommand
    public let containerID: String
    /// The pod's netns path; empty on a DEL whose netns is gone.
    public let netns: String
    public let ifname: String
    public let path: [String]

    /// The longest container id the store records (the ids runtimes make are 64 characters).
    public static let maxContainerIDLength = 127

    public init(_ environment: [String: String]) throws(CNIError) {
        guard let raw = environment["CNI_COMMAND"] else {
            throw CNIError(.invalidEnvironment, "CNI_COMMAND is not set")
        }
        guard let command = CNICommand(rawValue: raw) else {
            throw CNIError(.invalidEnvironment, raw.isEmpty ? "CNI_COMMAND is empty" : "CNI_COMMAND has an unknown value \"\(raw)\"",
                           details: "expected one of \(CNICommand.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for name in command.requiredVariables where (environment[name] ?? "").isEmpty {
            throw CNIError(.invalidEnvironment, "\(name) is required for \(command.rawValue) but is not set")
        }
        self.command = command
        self.containerID = environment["CNI_CONTAINERID"] ?? ""
        self.netns = environment["CNI_NETNS"] ?? ""
        self.ifname = environment["CNI_IFNAME"] ?? ""
        self.path = (environment["CNI_PATH"] ?? "").split(separator: ":").map(String.init)
        try Self.validateArgs(environment["CNI_ARGS"] ?? "")

        if command.requiredVariables.contains("CNI_CONTAINERID") { try Self.validateContainerID(containerID) }
        if command.requiredVariables.contains("CNI_IFNAME") { try Self.validateInterfaceName(ifname) }
    }

    /// Container ids start with an alphanumeric and go on with alphanumerics, `_`, `.` or `-`.
    static func validateContainerID(_ id: String) throws(CNIError) {
        let allowed = id.utf8.enumerated().allSatisfy { index, byte in
            isAlphanumeric(byte) || (index > 0 && (byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
                                                   || byte == UInt8(ascii: "-")))
        }
        guard allowed else {
            throw CNIError(.invalidEnvironment, "CNI_CONTAINERID \"\(id)\" is not a valid container id",
                           details: "it must start with a letter or digit and hold only letters, digits, '_', '.', '-'")
        }
        guard id.utf8.count <= maxContainerIDLength else {
            throw CNIError(.invalidEnvironment, "CNI_CONTAINERID is longer than \(maxContainerIDLength) characters")
        }
    }

    /// Linux interface names: 1 to 15 bytes, not "." or "..", no '/', ':', '%' or white space.
    /// The kernel reads a name with '%' as a template ("eth%d" becomes eth0, eth1, ...), so the
    /// interface would not be called what the runtime asked for.
    public static func isInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count <= 15 && name != "." && name != ".."
            && !bytes.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "%") || $0 <= 0x20 || $0 == 0x7f }
    }

    static func validateInterfaceName(_ name: String) throws(CNIError) {
        guard isInterfaceName(name) else {
            throw CNIError(.invalidEnvironment, "CNI_IFNAME \"\(name)\" is not a valid interface name",
                           details: "1 to 15 characters, not '.' or '..', without '/', ':', '%' or white space")
        }
    }

    /// CNI_ARGS is `KEY=VALUE;...`. swiftpath reads none of its keys, but refuses what is not
    /// that shape, as the spec's other plugins do.
    static func validateArgs(_ raw: String) throws(CNIError) {
        for pair in raw.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw CNIError(.invalidEnvironment, "CNI_ARGS holds \"\(pair)\", which is not KEY=VALUE")
            }
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
