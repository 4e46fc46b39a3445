import BPFStore
import CNIProtocol
import Datapath
import NetAddress

/// swiftpath's own keys of the network config.
public struct PluginSettings: Sendable {
    /// The MTU of both veth ends; nil takes the MTU of the default route's device.
    public let mtu: Int?
    /// The bpffs folder of the node's shared store.
    public let bpffsRoot: String
    /// Where diagnostics go; nil sends them to stderr.
    public let logFile: String?
    /// The node's uplinks, which get the program for traffic arriving for local pods. nil means
    /// the devices of the default routes; an empty list attaches none.
    public let devices: [String]?
    /// tcx with a fallback to tc (auto), or one of them only.
    public let attachMode: AttachPolicy
    /// Masquerade pod traffic that leaves `clusterCIDRs` behind the node's address.
    public let ipMasq: Bool
    /// The cluster's (pod and native-routing) CIDRs: traffic among them is never masqueraded.
    public let clusterCIDRs: [IPPrefix]
    /// Socket load balancing: on by default, its hooks attached once per node to this cgroup v2
    /// directory (default: the host's cgroup2 mount); nil when off or per pod.
    public let socketLBCgroup: String?
    /// Socket hooks per pod, on the cgroup the runtime passes (the cgroupPath capability).
    public let socketLBPerPod: Bool
    /// Whether the node's own processes are balanced too.
    public let socketLBHostNamespace: Bool

    private struct Wire: Decodable {
        var mtu: Int?
        var bpffsRoot: String?
        var logFile: String?
        var devices: [String]?
        var attachMode: String?
        var ipMasq: Bool?
        var clusterCIDRs: [IPPrefix]?
        var socketLB: SocketLB?

        struct SocketLB: Decodable {
            var enabled: Bool?
            var cgroupRoot: String?
            var scope: String?
            var hostNamespace: Bool?
        }
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
        if let devices = wire.devices, let bad = devices.first(where: { $0.isEmpty || $0.utf8.count > 15 || $0.contains("/") }) {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"devices\" in network config",
                           details: "\"\(bad)\" is not an interface name")
        }
        guard let policy = AttachPolicy(rawValue: wire.attachMode ?? "auto") else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"attachMode\" in network config",
                           details: "expected auto, tcx or tc")
        }
        if wire.ipMasq == true, (wire.clusterCIDRs ?? []).isEmpty {
            throw CNIError(.invalidNetworkConfig, "missing key \"clusterCIDRs\" in network config",
                           details: "ipMasq needs the cluster's CIDRs, the destinations never masqueraded")
        }
        let enabled = wire.socketLB?.enabled ?? true
        guard ["node", "pod"].contains(wire.socketLB?.scope ?? "node") else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"socketLB.scope\" in network config",
                           details: "expected node or pod")
        }
        socketLBPerPod = enabled && wire.socketLB?.scope == "pod"
        socketLBHostNamespace = wire.socketLB?.hostNamespace ?? true
        if enabled && !socketLBPerPod {
            let root = wire.socketLB?.cgroupRoot ?? Datapath.cgroup2Mount()
            if let root, !Datapath.isCgroup2(root) {
                throw CNIError(.invalidNetworkConfig, "invalid value for key \"socketLB.cgroupRoot\" in network config",
                               details: "\(root) is not a cgroup v2 directory")
            }
            socketLBCgroup = root
        } else {
            socketLBCgroup = nil
        }
        mtu = wire.mtu
        bpffsRoot = wire.bpffsRoot ?? EndpointStore.defaultRoot
        logFile = wire.logFile
        devices = wire.devices
        attachMode = policy
        ipMasq = wire.ipMasq ?? false
        clusterCIDRs = wire.clusterCIDRs ?? []
    }
}
