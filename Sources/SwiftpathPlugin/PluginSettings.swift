import CNIProtocol
import EndpointStore

/// swiftpath's own keys of the network config.
public struct PluginSettings: Sendable {
    /// The MTU of both veth ends; nil takes the MTU of the default route's device.
    public let mtu: Int?
    /// The bpffs folder of the node's shared store.
    public let bpffsRoot: String
    /// Where diagnostics go; nil sends them to stderr.
    public let logFile: String?

    private struct Wire: Decodable {
        var mtu: Int?
        var bpffsRoot: String?
        var logFile: String?
    }

    public init(parsing raw: [UInt8]) throws(CNIError) {
        let wire = try JSONCoding.decode(Wire.self, from: raw)
        if let mtu = wire.mtu, !(68...65535).contains(mtu) {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"mtu\" in network config",
                           details: "\(mtu) is outside 68...65535")
        }
        if let root = wire.bpffsRoot, !root.hasPrefix("/") || root.contains(".") {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"bpffsRoot\" in network config",
                           details: "\"\(root)\" must be an absolute path without '.' (bpffs refuses such names)")
        }
        if let file = wire.logFile, !file.hasPrefix("/") {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"logFile\" in network config",
                           details: "\"\(file)\" must be an absolute path")
        }
        mtu = wire.mtu
        bpffsRoot = wire.bpffsRoot ?? EndpointStore.defaultRoot
        logFile = wire.logFile
    }
}
