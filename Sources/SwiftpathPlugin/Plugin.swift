// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import Datapath
import IPAM
import NetAddress
import PluginConfig
import Netlink
import Netns
import SystemCallSupport

/// One run of the plugin: the runtime's environment and config, and the verb it asked for.
public struct Plugin {
    let environment: CNIEnvironment
    let config: NetworkConfig
    let settings: PluginSettings
    /// What is wrong with swiftpath's own keys. Every verb but DEL refuses such a config; DEL
    /// cleans up with what it could read, and reports the first problem only if it found nothing.
    let settingsProblems: [CNIError]
    let log: Log

    var attachment: Attachment { Attachment(containerID: environment.containerID, ifname: environment.ifname) }

    /// Runs the verb the environment names. Returns what goes to stdout and the exit status.
    public static func main(environment: [String: String], stdin: [UInt8]) -> (output: [UInt8], status: Int32) {
        let requested = NetworkConfig.requestedVersion(in: stdin).flatMap(CNIVersion.init(rawValue:))
        var log = Log(file: nil, prefix: "")
        do throws(CNIError) {
            let cni = try CNIEnvironment(environment)
            if cni.command == .version { return (versionAnswer(asked: requested), 0) }
            let config = try NetworkConfig(parsing: stdin)
            var (settings, problems) = PluginSettings.parse(config.keys)
            log = Log(file: settings.logFile, prefix: "\(cni.command.rawValue) \(cni.containerID)/\(cni.ifname): ")
            if let failure = log.failure {
                problems.append(CNIError(.invalidNetworkConfig, "invalid value for key \"logFile\" in network config", details: failure))
                settings.logFile = nil
            }
            if cni.command != .del, let problem = problems.first { throw problem }
            let plugin = Plugin(environment: cni, config: config, settings: settings, settingsProblems: problems, log: log)
            return (try plugin.run(), 0)
        } catch {
            log("failed: code \(error.code) \(error)")
            return (error.json(cniVersion: requested), 1)
        }
    }

    func run() throws(CNIError) -> [UInt8] {
        // What only the node can judge is judged the same way for every verb but DEL, which
        // never refuses to clean up over it.
        switch environment.command {
        case .add:
            return try add(checkAgainstNode()).encoded(as: config.cniVersion)
        case .del:
            try del()
        case .check:
            try requireVersion(.v0_4_0)
            try check(checkAgainstNode())
        case .gc:
            try requireVersion(.v1_1_0)
            try collectGarbage(checkAgainstNode())
        case .status:
            try requireVersion(.v1_1_0)
            try status(checkAgainstNode())
        case .version:
            return Self.versionAnswer(asked: config.cniVersion)
        }
        return []
    }

    /// CHECK came with 0.4.0, GC and STATUS with 1.1.0: older configs do not allow them.
    func requireVersion(_ minimum: CNIVersion) throws(CNIError) {
        guard config.cniVersion >= minimum else {
            throw CNIError(.incompatibleVersion,
                           "\(environment.command.rawValue) needs cniVersion \(minimum) or later, the config has \(config.cniVersion)")
        }
    }

    /// VERSION's answer, in the version the config asked for (the newest when it named none we know).
    static func versionAnswer(asked: CNIVersion?) -> [UInt8] {
        struct Answer: Encodable { var cniVersion: String; var supportedVersions: [String] }
        let version = asked ?? .latest
        return JSONCoding.encode(Answer(cniVersion: version.rawValue, supportedVersions: CNIVersion.allCases.map(\.rawValue)))
    }

    // MARK: - Shared pieces of the verbs

    /// The host end's name: stable for a container and ifname, recognisable, 15 characters.
    static func hostInterfaceName(containerID: String, ifname: String) -> String {
        let hash = fnv1a64(containerID + "/" + ifname)
        let hex = String(hash, radix: 16)
        return "spath" + String((String(repeating: "0", count: max(0, 16 - hex.count)) + hex).suffix(10))
    }

    var hostInterfaceName: String { Self.hostInterfaceName(containerID: attachment.containerID, ifname: attachment.ifname) }

    /// What the config names on the node, found there: judged the same way for every verb but
    /// DEL, which never refuses to clean up over it.
    struct NodeFacts {
        let host: NetlinkSocket
        let plan: IPAMPlan
        /// The cgroup v2 directory of the node-wide socket hooks (nil: off, or per pod).
        let socketCgroup: String?
        /// The uplinks the config names, by index (nil: the default routes' devices).
        let devices: [(name: String, index: Int32)]?
    }

    /// The config's keys that name things on the node: a place for the store, a cgroup v2
    /// directory for the socket hooks, uplinks that exist, an IPAM plugin that can be run.
    func checkAgainstNode() throws(CNIError) -> NodeFacts {
        guard EndpointStore.canHold(root: settings.storeRoot) else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"bpffsRoot\" in network config",
                           details: "\(settings.storeRoot) is not in a bpf filesystem")
        }
        let host = try hostNetlink()
        let socketCgroup = try nodeSocketCgroup()
        let devices = try settings.devices.map { names throws(CNIError) in try namedDevices(names, host) }
        return NodeFacts(host: host, plan: try ipamPlan(), socketCgroup: socketCgroup, devices: devices)
    }

    /// The node's store, created if this is the node's first ADD.
    func openStore() throws(CNIError) -> EndpointStore {
        do { return try EndpointStore.open(root: settings.storeRoot) } catch {
            throw CNIError(.storeFailure, "cannot open the swiftpath store at \(settings.storeRoot)", details: error.description)
        }
    }

    /// The node's store if it has one: the verbs that only look or clean up never create it.
    func existingStore() throws(CNIError) -> EndpointStore? {
        do { return try EndpointStore.openExisting(root: settings.storeRoot) } catch {
            throw CNIError(.storeFailure, "cannot open the swiftpath store at \(settings.storeRoot)", details: error.description)
        }
    }

    /// Where addresses come from, as the config says; checked without touching the node.
    enum IPAMPlan {
        case builtin(BuiltinIPAMConfig)
        case delegated(type: String)
    }

    func ipamPlan() throws(CNIError) -> IPAMPlan {
        guard let type = config.ipamType, !type.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "missing key \"ipam.type\" in network config")
        }
        if type == BuiltinIPAMConfig.type { return .builtin(try BuiltinIPAMConfig(parsing: config.raw)) }
        guard Subprocess.isFileName(type) else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"ipam.type\" in network config",
                           details: "\"\(type)\" is not a plugin's file name")
        }
        guard Subprocess.find(type, in: environment.path) != nil else {
            // For STATUS a plugin not (yet) installed is the plugin not being available.
            throw CNIError(environment.command == .status ? .pluginNotAvailable : .invalidNetworkConfig,
                           "invalid value for key \"ipam.type\" in network config",
                           details: "no plugin \"\(type)\" in CNI_PATH \(environment.path.joined(separator: ":"))")
        }
        return .delegated(type: type)
    }

    /// The address manager of `plan`; nil for the built-in allocator on a node without a store,
    /// which has leased nothing.
    func addressManager(_ plan: IPAMPlan, store: EndpointStore?) -> (any AddressManager)? {
        switch plan {
        case .builtin(let ipamConfig): store.map { BuiltinAllocator(config: ipamConfig, network: config.name, store: $0) }
        case .delegated(let type):
            DelegatedIPAM(type: type, config: config,
                          executor: PluginExecutor(searchPath: environment.path, timeout: .seconds(settings.ipamTimeout)))
        }
    }

    func hostNetlink() throws(CNIError) -> NetlinkSocket {
        do { return try NetlinkSocket() } catch { throw CNIError(netlink: error) }
    }

    /// The host end of `attachment`'s veth, if there is one: a veth of exactly the name swiftpath
    /// gives it. Nothing else is ever taken for it, whatever a record says.
    func hostEnd(_ netlink: NetlinkSocket, of attachment: Attachment) throws(CNIError) -> Link? {
        let name = Self.hostInterfaceName(containerID: attachment.containerID, ifname: attachment.ifname)
        do {
            guard let link = try netlink.link(named: name), link.kind == "veth" else { return nil }
            return link
        } catch {
            throw CNIError(netlink: error)
        }
    }

    /// The host end of `record`'s veth when a DEL killed while retiring it renamed it already.
    func retiredHostEnd(_ netlink: NetlinkSocket, of record: EndpointRecord?) throws(CNIError) -> Link? {
        guard let record, record.hostIndex > 0 else { return nil }
        do {
            guard let link = try netlink.link(named: RetiredVeths.name(hostIndex: record.hostIndex)), link.kind == "veth",
                  link.index == record.hostIndex else { return nil }
            return link
        } catch {
            throw CNIError(netlink: error)
        }
    }

    /// Says what the datapath's removals found in the store and left there, not being pins: a
    /// symlink someone planted is never followed, nor removed.
    func logLeftAlone(_ datapath: Datapath) {
        if !datapath.leftAlone.isEmpty { log("left alone in the store (not pins): \(datapath.leftAlone.joined(separator: ", "))") }
    }

    /// Everything an attachment has on the node, undone, whether its ADD finished or died at
    /// any point: the veth (both ends, and with them the routes and neighbour entries on them;
    /// retired for the agent to delete when `retiring`), its datapath link, map entries and
    /// counters, its socket hooks, its host ports, its addresses, its claim and its record.
    /// Whatever is already gone is skipped. Returns whether anything was found.
    @discardableResult
    func tearDown(_ attachment: Attachment, record: EndpointRecord?, store: EndpointStore?, host: NetlinkSocket,
                  ipam: (any AddressManager)?, retiring: Bool) throws(CNIError) -> Bool {
        let hostName = Self.hostInterfaceName(containerID: attachment.containerID, ifname: attachment.ifname)
        let datapath = store.flatMap { Datapath.openExisting(store: $0) }
        var found = record != nil
        // The veth goes first (or down), so the pod's traffic stops before its map entries go.
        // Deleted, it waits for the kernel's grace periods (tcx_uninstall among them); the link,
        // defunct by then, unpins without another.
        var link = try hostEnd(host, of: attachment)
        if link == nil { link = try retiredHostEnd(host, of: record) }
        if let link {
            if retiring, let datapath {
                try retireVeth(link, hostName: hostName, podNetns: environment.netns.isEmpty ? record?.netns ?? "" : environment.netns,
                               host: host, datapath: datapath)
            } else {
                do { try host.deleteLink(index: link.index) } catch { throw CNIError(netlink: error) }
            }
            found = true
        }
        if let store {
            if let datapath { found = try detachFromDatapath(datapath, record: record, hostName: hostName) || found }
            found = try releaseHostPorts(of: hostName, store: store, datapath: datapath) || found
            if let datapath { logLeftAlone(datapath) }
        }
        do {
            try ipam?.release(for: attachment, addresses: record?.addresses.map(\.address))
        } catch {
            // The record stays, for the runtime's next DEL to release the addresses; the claim's
            // folder does not: nothing of it is left to guard.
            if let store { try? bpfCall { () throws(BPFError) in try store.dropClaim(hostName) } }
            throw error
        }
        if let store {
            try bpfCall { () throws(BPFError) in
                try store.dropClaim(hostName)
                try store.removeRecord(containerID: attachment.containerID, ifname: attachment.ifname)
            }
        }
        return found
    }
}
