// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BPFObjects
import BPF
import NodeStore
import Datapath
import KubeProxyDetection
import Netlink

struct DatapathCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datapath", abstract: "The node's BPF datapath: programs, maps and attachments in the store.",
        subcommands: [Status.self, Load.self, Unload.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the loaded build, programs and attachments.")
        @OptionGroup var store: StoreOptions
        @Option(name: [.customShort("o"), .long], help: "Output format: table or json.")
        var output: OutputFormat = .table

        func run() throws {
            let embedded = BPFObject.datapath.hash
            guard let opened = try EndpointStore.openExisting(root: store.storeRoot), let datapath = Datapath.openExisting(store: opened) else {
                if output == .json { print(#"{"loaded": false}"#) } else { print("no datapath loaded in \(store.storeRoot)") }
                return
            }
            let status = try datapath.status()
            let records = try opened.records()
            let names = (try? NetlinkSocket()).map { netlink in
                Dictionary(uniqueKeysWithValues: status.uplinks.map { ($0.ifindex, (try? netlink.link(index: $0.ifindex))?.name ?? "?") })
            } ?? [:]
            let view = StatusView(
                loaded: status.build != 0, build: hex(status.build), binaryBuild: hex(embedded), current: status.build == embedded,
                release: status.release?.description, binaryRelease: Release.current.description,
                programs: status.programs.map { .init(name: $0.name, id: $0.id, xlatedBytes: $0.xlated, jitedBytes: $0.jited) },
                endpoints: records.count,
                pendingEndpoints: records.filter { $0.state == .pending }.count,
                podAttachments: Dictionary(grouping: records.filter { $0.state == .ready },
                                           by: { AttachMode(rawValue: $0.attachMode)?.description ?? "none" }).mapValues(\.count),
                uplinks: status.uplinks.map { .init(device: names[$0.ifindex] ?? "?", ifindex: $0.ifindex, mode: $0.mode.description) },
                socketHookCgroups: status.socketHookCgroups,
                endpointAddresses: status.endpointAddresses.map { .init(ipv4: $0.v4, ipv6: $0.v6) },
                healthy: status.problems.isEmpty, problems: status.problems, kubeProxy: KubeProxy.evidence())
            if output == .json {
                printJSON(view)
                return
            }
            let release = view.release.map { " (swiftpath \($0))" } ?? ""
            print("build       \(view.build)\(release)\(view.current ? "" : " (this binary carries \(view.binaryBuild), swiftpath \(view.binaryRelease): run 'swiftpath datapath load' to upgrade)")")
            for program in view.programs {
                print("program     \(program.name) id \(program.id), \(program.xlatedBytes) bytes xlated, \(program.jitedBytes) jited")
            }
            let addresses = view.endpointAddresses.map { "\($0.ipv4) IPv4 and \($0.ipv6) IPv6 addresses in the maps" } ?? "endpoint maps unreadable"
            let pending = view.pendingEndpoints == 0 ? "" : ", \(view.pendingEndpoints) pending (an ADD at work, or one that died: DEL or GC removes it)"
            print("endpoints   \(view.endpoints) (\(addresses))\(pending)")
            for (mode, count) in view.podAttachments.sorted(by: { $0.key < $1.key }) {
                print("pods        \(count) attached with \(mode)\(mode == "tc" ? " (fallback: tcx unavailable)" : "")")
            }
            for cgroup in view.socketHookCgroups {
                print("socket LB   hooks on cgroup id \(cgroup.dropFirst(2))")
            }
            for uplink in view.uplinks {
                print("uplink      \(uplink.device) (#\(uplink.ifindex)) attached with \(uplink.mode)\(uplink.mode == "tc" ? " (fallback: tcx unavailable)" : "")")
            }
            for problem in view.problems {
                print("problem     \(problem) (swiftpath datapath load repairs it)")
            }
            if !view.kubeProxy.isEmpty {
                print("kube-proxy  DETECTED (\(view.kubeProxy.joined(separator: "; "))): its rules never see pod traffic routed in BPF; "
                      + "swiftpath's socket load balancer is the service proxy, run the cluster without kube-proxy")
            }
        }
    }

    struct Load: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load this binary's datapath into the store, or upgrade or repair the loaded one in place.")
        @OptionGroup var store: StoreOptions
        @Option(name: .customLong("device"), help: "An uplink to attach to (repeatable).")
        var devices: [String] = []
        @Flag(help: "Replace the datapath of a newer swiftpath release with this binary's older one.")
        var allowDowngrade = false
        @Option(help: ArgumentHelp("Entries of the confirmed connection table, when it is made (the unconfirmed one gets half).",
                                   discussion: "Default: a quarter of a percent of the node's memory. A table already pinned keeps its size."))
        var connectionTableEntries: UInt32?

        func run() throws {
            let opened = try EndpointStore.open(root: store.storeRoot)
            let before = try Datapath.loadedMeta(storeRoot: store.storeRoot)
            // A damaged store is repaired: records nobody can read go, and so does every pin the
            // loader cannot reuse (it loads the programs again against the maps it keeps).
            let unreadable = try opened.undecodableRecords()
            for key in unreadable { try opened.removeRecord(key: key) }
            if !unreadable.isEmpty { print("removed \(unreadable.count) unreadable endpoint record(s)") }
            let damaged = try Datapath.openExisting(store: opened).map { try !$0.status().problems.isEmpty } ?? false
            let datapath = try Datapath.open(store: opened, downgrade: allowDowngrade ? .allow : .refuse, repair: damaged,
                                             connectionTable: connectionTableEntries.map(ConnectionTableSize.init))
            let netlink = try NetlinkSocket()
            // The node's own addresses, refused as sources from outside (the agent keeps them current).
            try datapath.node.setOwnAddresses(Set(try netlink.addresses().map(\.address)))
            let restored = try datapath.pods.restore(try opened.records(), hostIndexExists: { index, name in
                (try? netlink.link(index: index))??.name == name
            }, policy: .auto)
            for record in restored { try opened.update(record) }
            if !restored.isEmpty { print("re-attached \(restored.count) pod(s)") }
            if !devices.isEmpty {
                var uplinks: [(name: String, index: Int32)] = []
                for name in devices {
                    guard let link = try netlink.link(named: name) else { throw ValidationError("no device \(name)") }
                    uplinks.append((name, link.index))
                }
                try datapath.node.ensureUplinks(uplinks, policy: .auto)
            }
            let now = BPFObject.datapath.hash
            print(before?.object_hash == now ? (damaged ? "datapath \(hex(now)) repaired" : "datapath \(hex(now)) already loaded")
                  : before == nil ? "datapath \(hex(now)) loaded" : "datapath upgraded from \(hex(before!.object_hash)) to \(hex(now))")
        }
    }

    struct Unload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Detach and unpin everything swiftpath attached on the node (pods keep their veths).")
        @OptionGroup var store: StoreOptions

        func run() throws {
            guard let opened = try EndpointStore.openExisting(root: store.storeRoot), let datapath = Datapath.openExisting(store: opened) else {
                print("no datapath loaded in \(store.storeRoot)")
                return
            }
            let records = try opened.records()
            try datapath.unload(podAttachments: records.map {
                ($0.hostName, $0.hostIndex, AttachMode(rawValue: $0.attachMode) ?? .tcx)
            }, netlink: try NetlinkSocket())
            for path in datapath.leftAlone { print("left alone (not a pin): \(path)") }
            print("datapath unloaded from \(store.storeRoot)")
        }
    }
}

struct StatusView: Encodable {
    struct Program: Encodable { var name: String; var id: UInt32; var xlatedBytes: Int; var jitedBytes: Int }
    struct Uplink: Encodable { var device: String; var ifindex: Int32; var mode: String }
    struct Addresses: Encodable { var ipv4: Int; var ipv6: Int }
    var loaded: Bool
    var build: String
    var binaryBuild: String
    var current: Bool
    var release: String?
    var binaryRelease: String
    var programs: [Program]
    var endpoints: Int
    var pendingEndpoints: Int
    var podAttachments: [String: Int]
    var uplinks: [Uplink]
    var socketHookCgroups: [String]
    var endpointAddresses: Addresses?
    var healthy: Bool
    var problems: [String]
    /// What shows kube-proxy at work on the node (it cannot share a node with BPF host routing).
    var kubeProxy: [String]
}

func hex(_ value: UInt64) -> String { String(value, radix: 16) }
