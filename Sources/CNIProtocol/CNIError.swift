// SPDX-License-Identifier: Apache-2.0
/// A CNI error: what the plugin prints on stdout, with a non-zero exit, when a verb fails.
public struct CNIError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        // Codes the spec reserves (0-99).
        public static let incompatibleVersion = Code(rawValue: 1)
        public static let unsupportedField = Code(rawValue: 2)
        public static let unknownContainer = Code(rawValue: 3)
        public static let invalidEnvironment = Code(rawValue: 4)
        public static let ioFailure = Code(rawValue: 5)
        public static let decodingFailure = Code(rawValue: 6)
        public static let invalidNetworkConfig = Code(rawValue: 7)
        public static let tryAgainLater = Code(rawValue: 11)
        public static let pluginNotAvailable = Code(rawValue: 50)
        public static let limitedConnectivity = Code(rawValue: 51)

        // swiftpath's own (100 and up).
        /// The kernel refused a netlink request.
        public static let netlinkFailure = Code(rawValue: 100)
        /// ADD found the pod's interface name already taken in its netns.
        public static let interfaceExists = Code(rawValue: 101)
        /// The IPAM plugin or the built-in allocator failed.
        public static let ipamFailure = Code(rawValue: 102)
        /// Every address of a range is leased.
        public static let addressesExhausted = Code(rawValue: 103)
        /// The bpffs store could not be opened, read or written.
        public static let storeFailure = Code(rawValue: 104)
        /// CHECK found the pod's network differs from what ADD made.
        public static let checkFailed = Code(rawValue: 105)
        /// The kernel refused to load or attach a BPF program, or the node runs a newer
        /// datapath this binary cannot use.
        public static let datapathFailure = Code(rawValue: 106)
        /// The nftables masquerade table could not be written.
        public static let masqueradeFailure = Code(rawValue: 107)
        /// The cgroup v2 directory of the socket hooks could not be used.
        public static let cgroupFailure = Code(rawValue: 108)
        /// A host port of `portMappings` is already another pod's, or a Service's.
        public static let hostPortTaken = Code(rawValue: 109)

        public var description: String { String(rawValue) }
    }

    public var code: Code
    public var msg: String
    public var details: String

    public init(_ code: Code, _ msg: String, details: String = "") {
        self.code = code
        self.msg = msg
        self.details = details
    }

    public var description: String { details.isEmpty ? msg : "\(msg): \(details)" }
}

extension CNIError {
    /// The error object of the spec, in the config's version (or the newest when that is unknown).
    public func json(cniVersion: CNIVersion?) -> [UInt8] {
        struct Body: Encodable {
            let cniVersion: String
            let code: Int
            let msg: String
            let details: String?
        }
        let body = Body(cniVersion: (cniVersion ?? .latest).description, code: code.rawValue, msg: msg,
                        details: details.isEmpty ? nil : details)
        return JSONCoding.encode(body)
    }
}
