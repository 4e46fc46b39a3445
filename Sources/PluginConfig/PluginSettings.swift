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

    /// The keys of the plugin's entry that are swiftpath's: `parse` reads these and no others,
    /// `networkConfigKeys` writes them. Any other key is the CNI spec's own, or one swiftpath ignores.
    public enum Key: String, CaseIterable, Sendable {
        case mtu, bpffsRoot, logFile, devices, attachMode, ipMasq, clusterCIDRs, socketLB, ipamTimeout
    }

    /// The keys of `socketLB`.
    public enum SocketLBKey: String, CaseIterable, Sendable {
        case enabled, scope, cgroupRoot, hostNamespace
    }

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
        func bad(_ key: Key, _ why: String) { bad(key.rawValue, why) }
        func present(_ key: String, in object: [String: JSONValue]) -> JSONValue? {
            guard let value = object[key], value != .null else { return nil }
            return value
        }
        func present(_ key: Key) -> JSONValue? { present(key.rawValue, in: keys) }

        if let value = present(.mtu) {
            if let mtu = value.integerValue, (68...65535).contains(mtu) { settings.mtu = mtu } else { bad(.mtu, "expected an integer in 68...65535") }
        }
        if let value = present(.bpffsRoot) {
            if let root = value.stringValue, isAbsolutePath(root), root.count > 1, !root.contains(".") {
                settings.storeRoot = root
            } else {
                bad(.bpffsRoot, "expected an absolute path without '.' (bpffs refuses such names)")
            }
        }
        if let value = present(.logFile) {
            if let file = value.stringValue, isAbsolutePath(file) { settings.logFile = file } else { bad(.logFile, "expected an absolute path") }
        }
        if let value = present(.devices) {
            if let names = value.arrayValue?.compactMap(\.stringValue), names.count == value.arrayValue?.count,
               names.allSatisfy(CNIEnvironment.isInterfaceName) {
                settings.devices = names
            } else {
                bad(.devices, "expected a list of interface names")
            }
        }
        if let value = present(.attachMode) {
            if let policy = value.stringValue.flatMap(AttachPolicy.init(rawValue:)) { settings.attachMode = policy } else {
                bad(.attachMode, "expected auto, tcx or tc")
            }
        }
        if let value = present(.ipMasq) {
            if let enabled = value.boolValue { settings.ipMasq = enabled } else { bad(.ipMasq, "expected true or false") }
        }
        if let value = present(.clusterCIDRs) {
            if let prefixes = value.arrayValue?.compactMap({ $0.stringValue.flatMap(IPPrefix.init) }), prefixes.count == value.arrayValue?.count {
                settings.clusterCIDRs = prefixes
            } else {
                bad(.clusterCIDRs, "expected a list of CIDRs")
            }
        }
        if let value = present(.ipamTimeout) {
            if let seconds = value.integerValue, (1...600).contains(seconds) { settings.ipamTimeout = seconds } else {
                bad(.ipamTimeout, "expected a number of seconds in 1...600")
            }
        }
        if settings.ipMasq, settings.clusterCIDRs.isEmpty {
            problems.append(CNIError(.invalidNetworkConfig, "missing key \"\(Key.clusterCIDRs.rawValue)\" in network config",
                                     details: "ipMasq needs the cluster's CIDRs, the destinations never masqueraded"))
        }
        if let value = present(.socketLB) {
            if let object = value.objectValue {
                settings.socketLB = parseSocketLB(present: { present($0.rawValue, in: object) },
                                                  bad: { key, why in bad("\(Key.socketLB.rawValue).\(key.rawValue)", why) })
            } else {
                bad(.socketLB, "expected an object")
            }
        }
        return (settings, problems)
    }

    private static func parseSocketLB(present: (SocketLBKey) -> JSONValue?, bad: (SocketLBKey, String) -> Void) -> SocketLB {
        var socketLB = SocketLB()
        if let value = present(.enabled) {
            if let enabled = value.boolValue { socketLB.enabled = enabled } else { bad(.enabled, "expected true or false") }
        }
        if let value = present(.scope) {
            switch value.stringValue {
            case "node"?: socketLB.perPod = false
            case "pod"?: socketLB.perPod = true
            default: bad(.scope, "expected node or pod")
            }
        }
        if let value = present(.cgroupRoot) {
            if let root = value.stringValue, isAbsolutePath(root) { socketLB.cgroupRoot = root } else {
                bad(.cgroupRoot, "expected an absolute path")
            }
        }
        if let value = present(.hostNamespace) {
            if let enabled = value.boolValue { socketLB.hostNamespace = enabled } else { bad(.hostNamespace, "expected true or false") }
        }
        return socketLB
    }

    /// The keys as the conflist carries them, for `parse` to read back as they are: the store's
    /// root and masquerading always, every other key where it is not its default.
    public var networkConfigKeys: [String: JSONValue] {
        var keys: [String: JSONValue] = [Key.bpffsRoot.rawValue: .string(storeRoot), Key.ipMasq.rawValue: .bool(ipMasq)]
        let defaults = PluginSettings()
        if let mtu { keys[Key.mtu.rawValue] = .number(Double(mtu)) }
        if let logFile { keys[Key.logFile.rawValue] = .string(logFile) }
        if let devices { keys[Key.devices.rawValue] = .array(devices.map(JSONValue.string)) }
        if attachMode != defaults.attachMode { keys[Key.attachMode.rawValue] = .string(attachMode.rawValue) }
        if !clusterCIDRs.isEmpty { keys[Key.clusterCIDRs.rawValue] = .array(clusterCIDRs.map { .string($0.description) }) }
        if ipamTimeout != defaults.ipamTimeout { keys[Key.ipamTimeout.rawValue] = .number(Double(ipamTimeout)) }
        var socketLBKeys: [String: JSONValue] = [:]
        if socketLB.enabled != defaults.socketLB.enabled { socketLBKeys[SocketLBKey.enabled.rawValue] = .bool(socketLB.enabled) }
        if socketLB.perPod != defaults.socketLB.perPod { socketLBKeys[SocketLBKey.scope.rawValue] = .string(socketLB.perPod ? "pod" : "node") }
        if let cgroupRoot = socketLB.cgroupRoot { socketLBKeys[SocketLBKey.cgroupRoot.rawValue] = .string(cgroupRoot) }
        if socketLB.hostNamespace != defaults.socketLB.hostNamespace { socketLBKeys[SocketLBKey.hostNamespace.rawValue] = .bool(socketLB.hostNamespace) }
        if !socketLBKeys.isEmpty { keys[Key.socketLB.rawValue] = .object(socketLBKeys) }
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
