// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import Datapath
import NetAddress
import PluginConfig
import Netns
import Netlink
import SystemCallSupport

/// How ADD wired a pod into the datapath, as the record keeps it.
struct DatapathWiring {
    let attached: ProgramAttachment
    /// The cgroup id whose socket hooks the pod brought (per-pod socket LB), 0 for none.
    let socketCgroupID: UInt64
}

extension Plugin {
    /// The once-per-node part of ADD, cheap after the first time: the datapath loaded (or
    /// upgraded, or repaired) in the store, and the uplinks running the program for traffic to
    /// local pods.
    func prepareDatapath(store: EndpointStore, uplinks: [(name: String, index: Int32)], socketCgroup: String?) throws(CNIError) -> Datapath {
        let setup = settings.nodeSetup(uplinks: uplinks, socketCgroup: socketCgroup)
        let ensured: (datapath: Datapath, uplinks: [ProgramAttachment])
        do { ensured = try setup.ensure(store: store) } catch { throw CNIError(datapath: error) }
        if ensured.uplinks.contains(where: { $0.mode == .tc }) { log("tcx unavailable: uplinks use the tc (clsact) fallback") }
        return ensured.datapath
    }

    /// The cgroup v2 directory of the node-wide socket hooks, or nil when the socket LB is off or
    /// per pod: the configured root, else the host's cgroup2 mount.
    func nodeSocketCgroup() throws(CNIError) -> String? {
        guard settings.socketLB.enabled, !settings.socketLB.perPod else { return nil }
        guard let root = settings.socketLB.cgroupRoot ?? CgroupV2.mountPoint() else { return nil }
        guard CgroupV2.isCgroup(root) else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"socketLB.cgroupRoot\" in network config",
                           details: "\(root) is not a cgroup v2 directory")
        }
        return root
    }

    /// The per-pod part of ADD in the datapath: the pod's addresses in the endpoint maps (before
    /// its program runs, so its first packet is recognised), its program on the host end, and with
    /// per-pod socket LB, the hooks on its cgroup. Each step joins the rollback.
    func attachToDatapath(_ datapath: Datapath, store: EndpointStore, veth: VethPair, addressing: CNIResult,
                          policy: AttachPolicy, socketCgroup: String?, rollback: inout Rollback) throws(CNIError) -> DatapathWiring {
        let addresses = addressing.ips.map(\.address.address)
        try bpfCall { () throws(BPFError) in
            try datapath.pods.addEndpoint(addresses: addresses, hostIndex: veth.host.index,
                                     podMAC: veth.pod.mac ?? .zero, hostMAC: veth.host.mac ?? .zero)
        }
        rollback.onFailure("endpoint map entries") { try datapath.pods.removeEndpoint(addresses: addresses, hostIndex: veth.host.index) }

        let attached = try bpfCall { () throws(BPFError) in
            try datapath.pods.attachPod(hostName: veth.host.name, hostIndex: veth.host.index, policy: policy)
        }
        rollback.onFailure("\(attached.mode) attachment") {
            try datapath.pods.detachPod(hostName: veth.host.name, hostIndex: veth.host.index, mode: attached.mode)
        }
        if attached.mode == .tc && policy != .tc { log("tcx unavailable: \(veth.host.name) uses the tc (clsact) fallback") }

        guard let socketCgroup else { return DatapathWiring(attached: attached, socketCgroupID: 0) }
        let cgroupID = try store.withLockOrFail { () throws(CNIError) -> UInt64 in
            do throws(DatapathError) { return try datapath.node.ensureSocketHooks(cgroup: socketCgroup) } catch { throw CNIError(datapath: error) }
        }
        rollback.onFailure("socket hooks on \(socketCgroup)") { try datapath.node.detachSocketHooks(cgroupID: cgroupID) }
        return DatapathWiring(attached: attached, socketCgroupID: cgroupID)
    }

    /// The devices the config names, by index.
    func namedDevices(_ names: [String], _ netlink: NetlinkSocket) throws(CNIError) -> [(name: String, index: Int32)] {
        var devices: [(name: String, index: Int32)] = []
        for name in names {
            let link: Link?
            do { link = try netlink.link(named: name) } catch { throw CNIError(netlink: error) }
            guard let link else {
                throw CNIError(.invalidNetworkConfig, "invalid value for key \"devices\" in network config",
                               details: "no device \(name) on this node")
            }
            devices.append((name, link.index))
        }
        return devices
    }

    /// The pod's cgroup for per-pod socket hooks, from the runtime's cgroupPath capability: a path
    /// in the cgroup v2 hierarchy, absolute or relative to its mount.
    func podCgroup() throws(CNIError) -> String? {
        guard settings.socketLB.enabled, settings.socketLB.perPod else { return nil }
        guard let path = config.runtimeConfig?["cgroupPath"]?.stringValue, !path.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "missing key \"runtimeConfig.cgroupPath\" in network config",
                           details: "socketLB scope \"pod\" needs the runtime's cgroupPath capability")
        }
        // ".." would lead the pod's hooks out of its cgroup, up to the node's root cgroup.
        guard !path.split(separator: "/").contains("..") else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"runtimeConfig.cgroupPath\" in network config",
                           details: "\(path) has a \"..\" component: the pod's cgroup is named from the cgroup v2 mount down")
        }
        let mount = CgroupV2.mountPoint() ?? "/sys/fs/cgroup"
        let full = path.hasPrefix(mount + "/") ? path : mount + "/" + path.drop { $0 == "/" }
        guard CgroupV2.isCgroup(full) else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"runtimeConfig.cgroupPath\" in network config",
                           details: "\(full) is not a cgroup v2 directory")
        }
        return full
    }

    /// Undoes the datapath part of an attachment: its link or filter, its map entries and
    /// counters, its per-pod socket hooks. A map or program whose pin is missing or of another
    /// layout is passed over (`datapath load` rebuilds it, without this attachment's entries).
    /// Returns whether anything of the attachment was there.
    func detachFromDatapath(_ datapath: Datapath, record: EndpointRecord?, hostName: String) throws(CNIError) -> Bool {
        let hadLink = datapath.pods.hasPodLink(hostName)
        try bpfCall { () throws(BPFError) in
            // The veth is gone by now, and a tc filter with it: no device index from the record is
            // trusted to find one.
            try datapath.pods.detachPod(hostName: hostName, hostIndex: nil, mode: .tcx)
        }
        guard let record else { return hadLink }
        let parts: [(String, () throws(BPFError) -> Void)] = [
            ("endpoint map entries", { () throws(BPFError) in
                try datapath.pods.removeEndpoint(addresses: record.addresses.map(\.address), hostIndex: record.hostIndex)
            }),
            ("socket hooks", { () throws(BPFError) in
                if record.socketCgroupID != 0 { try datapath.node.detachSocketHooks(cgroupID: record.socketCgroupID) }
            }),
        ]
        for (what, remove) in parts {
            do throws(BPFError) { try remove() } catch where error.isRepairable {
                log("\(what) of \(hostName) left to 'swiftpath datapath load': \(error)")
            } catch {
                throw CNIError(bpf: error)
            }
        }
        return true
    }
}
