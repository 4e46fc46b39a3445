import BPFStore
import CNIProtocol
import IPAM
import NetAddress
import Netlink
import Netns
import SystemCallSupport

/// One run of the plugin: the runtime's environment and config, and the verb it asked for.
public struct Plugin {
    let environment: CNIEnvironment
    let config: NetworkConfig
    let settings: PluginSettings
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
            let settings = try PluginSettings(parsing: stdin)
            log = Log(file: settings.logFile, prefix: "\(cni.command.rawValue) \(cni.containerID)/\(cni.ifname): ")
            let plugin = Plugin(environment: cni, config: config, settings: settings, log: log)
            return (try plugin.run(), 0)
        } catch {
            log("failed: code \(error.code) \(error)")
            return (error.json(cniVersion: requested), 1)
        }
    }

    func run() throws(CNIError) -> [UInt8] {
        switch environment.command {
        case .add:
            return try add().encoded(as: config.cniVersion)
        case .del:
            try del()
        case .check:
            try requireVersion(.v0_4_0)
            try check()
        case .gc:
            try requireVersion(.v1_1_0)
            try collectGarbage()
        case .status:
            try requireVersion(.v1_1_0)
            try status()
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

    func openStore() throws(CNIError) -> EndpointStore {
        do { return try EndpointStore.open(root: settings.bpffsRoot) } catch {
            throw CNIError(.storeFailure, "cannot open the swiftpath store at \(settings.bpffsRoot)", details: error.description)
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
        guard Subprocess.find(type, in: environment.path) != nil else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"ipam.type\" in network config",
                           details: "no plugin \"\(type)\" in CNI_PATH \(environment.path.joined(separator: ":"))")
        }
        return .delegated(type: type)
    }

    func addressManager(_ plan: IPAMPlan, store: EndpointStore) -> any AddressManager {
        switch plan {
        case .builtin(let ipamConfig): BuiltinAllocator(config: ipamConfig, network: config.name, store: store)
        case .delegated(let type): DelegatedIPAM(type: type, config: config, executor: PluginExecutor(searchPath: environment.path))
        }
    }

    func addressManager(store: EndpointStore) throws(CNIError) -> any AddressManager {
        addressManager(try ipamPlan(), store: store)
    }

    func hostNetlink() throws(CNIError) -> NetlinkSocket {
        do { return try NetlinkSocket() } catch { throw CNIError(netlink: error) }
    }

    /// Removes the host end of the attachment's veth (taking the pod end with it), identified by
    /// the record's index when the name still matches, else by the deterministic name.
    func removeVeth(_ netlink: NetlinkSocket, record: EndpointRecord?, of attachment: Attachment) throws(CNIError) {
        let name = Self.hostInterfaceName(containerID: attachment.containerID, ifname: attachment.ifname)
        do {
            if let record, let link = try netlink.link(index: record.hostIndex), link.name == record.hostName {
                try netlink.deleteLink(index: link.index)
            } else if let link = try netlink.link(named: name), link.kind == "veth" {
                try netlink.deleteLink(index: link.index)
            }
        } catch {
            throw CNIError(netlink: error)
        }
    }
}

extension CNIError {
    init(netlink error: SystemCallError) {
        self.init(.netlinkFailure, "netlink request failed", details: error.description)
    }

    init(store error: StoreError) {
        self.init(.storeFailure, "swiftpath store failed", details: error.description)
    }

    init(system error: SystemCallError) {
        self.init(.ioFailure, "system call failed", details: error.description)
    }
}
