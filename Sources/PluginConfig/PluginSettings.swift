// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import Datapath
import NetAddress

/// swiftpath's own keys of the network config: what the agent writes into the conflist and what
/// the plugin reads back, one type for both sides. Read without looking at the node: what the node
/// must also satisfy (a store root on bpffs, a cgroup v2 directory) is checked by the verbs.
public struct PluginSettings: Sendable, Equatable {
    /// The MTU of both veth ends; nil takes the MTU of the default route's device.
    public var mtu: Int?
    /// The bpffs folder of the node's shared store (the key `bpffsRoot`).
    public var storeRoot = StoreLayout.defaultRoot
    /// Where diagnostics go; nil sends them to stderr.
    public var logFile: String?
    /// The node's uplinks, which get the program for traffic arriving for local pods. nil means
    /// the devices of the default routes; an empty list attaches none.
    public var devices: [String]?
    /// tcx with a fallback to tc (auto), or one of them only.
    public var attachMode = AttachPolicy.auto
    /// Masquerade pod traffic that leaves `clusterCIDRs` behind the node's address.
    public var ipMasq = false
    /// The cluster's (pod and native-routing) CIDRs: traffic among them is never masqueraded.
    public var clusterCIDRs: [IPPrefix] = []
    /// Socket load balancing, on unless `enabled` is false.
    public var socketLB = SocketLB()
    /// Seconds a delegated IPAM plugin may take before it is killed and the verb fails.
    public var ipamTimeout = 60

    public init() {}

    /// The keys `parse` reads, at the top level and in `socketLB`: any other key of the plugin's
    /// entry is not swiftpath's (the CNI spec's own, or one swiftpath ignores).
    public static let keys: Set<String> = ["mtu", "bpffsRoot", "logFile", "devices", "attachMode", "ipMasq", "clusterCIDRs",
                                           "socketLB", "ipamTimeout"]
    public static let socketLBKeys: Set<String> = ["enabled", "scope", "cgroupRoot", "hostNamespace"]

    public struct SocketLB: Sendable, Equatable {
        public var enabled = true
        /// Hooks once per node on a cgroup v2 directory, or per pod on the runtime's cgroupPath.
        public var perPod = false
        /// The node scope's cgroup v2 directory; nil: the host's cgroup2 mount.
        public var cgroupRoot: String?
        /// Whether the node's own processes are balanced too.
        public var hostNamespace = true

        public init() {}
    }

    /// Reads every key it knows; a key with a bad value keeps its default and is reported among
    /// `problems` (code 7, naming the key). ADD refuses a config with a problem; DEL cleans up
    /// with what it could read.
    public static func parse(_ keys: [String: JSONValue]) -> (settings: PluginSettings, problems: [CNIError]) {
        var settings = PluginSettings()
        var problems: [CNIError] = []
        func bad(_ key: String, _ why: String) { problems.append(CNIError(.invalidNetworkConfig, "invalid value for key \"\(key)\" in network config", details: why)) }
        func present(_ key: String, in object: [String: JSONValue] = keys) -> JSONValue? {
            guard let value = object[key], value != .null else { return nil }
            return value
        }

        if let value = present("mtu") {
            if let mtu = value.integerValue, (68...65535).contains(mtu) { settings.mtu = mtu } else { bad("mtu", "expected an integer in 68...65535") }
        }
        if let value = present("bpffsRoot") {
            if let root = value.stringValue, isAbsolutePath(root), root.count > 1, !root.contains(".") {
                settings.storeRoot = root
            } else {
                bad("bpffsRoot", "expected an absolute path without '.' (bpffs refuses such names)")
            }
        }
        if let value = present("logFile") {
            if let file = value.stringValue, isAbsolutePath(file) { settings.logFile = file } else { bad("logFile", "expected an absolute path") }
        }
        if let value = present("devices") {
            if let names = value.arrayValue?.compactMap(\.stringValue), names.count == value.arrayValue?.count,
               names.allSatisfy(CNIEnvironment.isInterfaceName) {
                settings.devices = names
            } else {
                bad("devices", "expected a list of interface names")
            }
        }
        if let value = present("attachMode") {
            if let policy = value.stringValue.flatMap(AttachPolicy.init(rawValue:)) { settings.attachMode = policy } else {
                bad("attachMode", "expected auto, tcx or tc")
            }
        }
        if let value = present("ipMasq") {
            if let enabled = value.boolValue { settings.ipMasq = enabled } else { bad("ipMasq", "expected true or false") }
        }
        if let value = present("clusterCIDRs") {
            if let prefixes = value.arrayValue?.compactMap({ $0.stringValue.flatMap(IPPrefix.init) }), prefixes.count == value.arrayValue?.count {
                settings.clusterCIDRs = prefixes
            } else {
                bad("clusterCIDRs", "expected a list of CIDRs")
            }
        }
        if let value = present("ipamTimeout") {
            if let seconds = value.integerValue, (1...600).contains(seconds) { settings.ipamTimeout = seconds } else {
                bad("ipamTimeout", "expected a number of seconds in 1...600")
            }
        }
        if settings.ipMasq, settings.clusterCIDRs.isEmpty {
            problems.append(CNIError(.invalidNetworkConfig, "missing key \"clusterCIDRs\" in network config",
                                     details: "ipMasq needs the cluster's CIDRs, the destinations never masqueraded"))
        }
        if let value = present("socketLB") {
            if let object = value.objectValue {
                settings.socketLB = parseSocketLB(object, present: { present($0, in: object) }, bad: bad)
            } else {
                bad("socketLB", "expected an object")
            }
        }
        return (settings, problems)
    }

    private static func parseSocketLB(_ object: [String: JSONValue], present: (String) -> JSONValue?,
                                      bad: (String, String) -> Void) -> SocketLB {
        var socketLB = SocketLB()
        if let value = present("enabled") {
            if let enabled = value.boolValue { socketLB.enabled = enabled } else { bad("socketLB.enabled", "expected true or false") }
        }
        if let value = present("scope") {
            switch value.stringValue {
            case "node"?: socketLB.perPod = false
            case "pod"?: socketLB.perPod = true
            default: bad("socketLB.scope", "expected node or pod")
            }
        }
        if let value = present("cgroupRoot") {
            if let root = value.stringValue, isAbsolutePath(root) { socketLB.cgroupRoot = root } else {
                bad("socketLB.cgroupRoot", "expected an absolute path")
            }
        }
        if let value = present("hostNamespace") {
            if let enabled = value.boolValue { socketLB.hostNamespace = enabled } else { bad("socketLB.hostNamespace", "expected true or false") }
        }
        return socketLB
    }

    /// The keys as the conflist carries them, for `parse` to read back as they are: the store's
    /// root and masquerading always, every other key where it is not its default.
    public var networkConfigKeys: [String: JSONValue] {
        var keys: [String: JSONValue] = ["bpffsRoot": .string(storeRoot), "ipMasq": .bool(ipMasq)]
        let defaults = PluginSettings()
        if let mtu { keys["mtu"] = .number(Double(mtu)) }
        if let logFile { keys["logFile"] = .string(logFile) }
        if let devices { keys["devices"] = .array(devices.map(JSONValue.string)) }
        if attachMode != defaults.attachMode { keys["attachMode"] = .string(attachMode.rawValue) }
        if !clusterCIDRs.isEmpty { keys["clusterCIDRs"] = .array(clusterCIDRs.map { .string($0.description) }) }
        if ipamTimeout != defaults.ipamTimeout { keys["ipamTimeout"] = .number(Double(ipamTimeout)) }
        var socketLBKeys: [String: JSONValue] = [:]
        if socketLB.enabled != defaults.socketLB.enabled { socketLBKeys["enabled"] = .bool(socketLB.enabled) }
        if socketLB.perPod != defaults.socketLB.perPod { socketLBKeys["scope"] = .string(socketLB.perPod ? "pod" : "node") }
        if let cgroupRoot = socketLB.cgroupRoot { socketLBKeys["cgroupRoot"] = .string(cgroupRoot) }
        if socketLB.hostNamespace != defaults.socketLB.hostNamespace { socketLBKeys["hostNamespace"] = .bool(socketLB.hostNamespace) }
        if !socketLBKeys.isEmpty { keys["socketLB"] = .object(socketLBKeys) }
        return keys
    }

    /// What these settings make of the node as a whole, on `uplinks` with the node-wide socket
    /// hooks on `socketCgroup`: the plugin's ADD and the agent make the node the same.
    public func nodeSetup(uplinks: [(name: String, index: Int32)], socketCgroup: String?) -> NodeSetup {
        NodeSetup(uplinks: uplinks, attachPolicy: attachMode, masquerade: ipMasq, clusterCIDRs: clusterCIDRs,
                  socketCgroup: socketCgroup, socketLB: socketLB.enabled, balanceNodeProcesses: socketLB.hostNamespace)
    }

    /// An absolute path the kernel can take: no component over NAME_MAX, the whole under PATH_MAX.
    public static func isAbsolutePath(_ path: String) -> Bool {
        path.hasPrefix("/") && path.utf8.count < 4096 && path.split(separator: "/").allSatisfy { $0.utf8.count <= 255 }
    }
}
