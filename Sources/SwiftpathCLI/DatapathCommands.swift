import ArgumentParser
import BPFObjects
import BPFStore
import CNIProtocol
import Datapath
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
            guard let datapath = try Datapath.openExisting(storeRoot: store.root) else {
                if output == .json { print(#"{"loaded": false}"#) } else { print("no datapath loaded in \(store.root)") }
                return
            }
            let status = try datapath.status()
            let records = try EndpointStore.open(root: store.root).records()
            let names = (try? NetlinkSocket()).map { netlink in
                Dictionary(uniqueKeysWithValues: status.uplinks.map { ($0.ifindex, (try? netlink.link(index: $0.ifindex))?.name ?? "?") })
            } ?? [:]
            let view = StatusView(
                loaded: true, build: hex(status.build), binaryBuild: hex(embedded), current: status.build == embedded,
                programs: status.programs.map { .init(name: $0.name, id: $0.id, xlatedBytes: $0.xlated, jitedBytes: $0.jited) },
                endpoints: records.count,
                podAttachments: Dictionary(grouping: records, by: { AttachMode(rawValue: $0.attachMode)?.description ?? "none" })
                    .mapValues(\.count),
                uplinks: status.uplinks.map { .init(device: names[$0.ifindex] ?? "?", ifindex: $0.ifindex, mode: $0.mode.description) },
                socketHookCgroups: status.socketHookCgroups,
                endpointAddresses: .init(ipv4: status.endpointAddresses.v4, ipv6: status.endpointAddresses.v6))
            if output == .json {
                print(String(decoding: JSONCoding.encode(view), as: UTF8.self))
                return
            }
            print("build       \(view.build)\(view.current ? "" : " (this binary carries \(view.binaryBuild): run 'swiftpath datapath load' to upgrade)")")
            for program in view.programs {
                print("program     \(program.name) id \(program.id), \(program.xlatedBytes) bytes xlated, \(program.jitedBytes) jited")
            }
            print("endpoints   \(view.endpoints) (\(view.endpointAddresses.ipv4) IPv4 and \(view.endpointAddresses.ipv6) IPv6 addresses in the maps)")
            for (mode, count) in view.podAttachments.sorted(by: { $0.key < $1.key }) {
                print("pods        \(count) attached with \(mode)\(mode == "tc" ? " (fallback: tcx unavailable)" : "")")
            }
            for cgroup in view.socketHookCgroups {
                print("socket LB   hooks on cgroup id \(cgroup.dropFirst(2))")
            }
            for uplink in view.uplinks {
                print("uplink      \(uplink.device) (#\(uplink.ifindex)) attached with \(uplink.mode)\(uplink.mode == "tc" ? " (fallback: tcx unavailable)" : "")")
            }
        }
    }

    struct Load: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load this binary's datapath into the store, or upgrade the loaded one in place.")
        @OptionGroup var store: StoreOptions
        @Option(name: .customLong("device"), help: "An uplink to attach to (repeatable).")
        var devices: [String] = []

        func run() throws {
            let opened = try EndpointStore.open(root: store.root)
            let before = try Datapath.loadedBuild(storeRoot: store.root)
            let datapath = try Datapath.open(store: opened)
            let netlink = try NetlinkSocket()
            let restored = try datapath.restore(try opened.records(), hostIndexExists: { index, name in
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
                try datapath.ensureUplinks(uplinks, policy: .auto)
            }
            let now = BPFObject.datapath.hash
            print(before == now ? "datapath \(hex(now)) already loaded"
                  : before == nil ? "datapath \(hex(now)) loaded" : "datapath upgraded from \(hex(before!)) to \(hex(now))")
        }
    }

    struct Unload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Detach and unpin everything swiftpath attached on the node (pods keep their veths).")
        @OptionGroup var store: StoreOptions

        func run() throws {
            guard let datapath = try Datapath.openExisting(storeRoot: store.root) else {
                print("no datapath loaded in \(store.root)")
                return
            }
            let records = try EndpointStore.open(root: store.root).records()
            try datapath.unload(podAttachments: records.map {
                ($0.hostName, $0.hostIndex, AttachMode(rawValue: $0.attachMode) ?? .tcx)
            })
            print("datapath unloaded from \(store.root)")
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
    var programs: [Program]
    var endpoints: Int
    var podAttachments: [String: Int]
    var uplinks: [Uplink]
    var socketHookCgroups: [String]
    var endpointAddresses: Addresses
}

func hex(_ value: UInt64) -> String { String(value, radix: 16) }
