// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BPF
import BPFObjects
import NodeStore
import Datapath
import Netlink

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Packets and bytes by path, per endpoint and per uplink.")
    @OptionGroup var store: StoreOptions
    @Option(name: [.customShort("o"), .long], help: "Output format: table or json.")
    var output: OutputFormat = .table

    struct Row: Encodable {
        var device: String
        var ifindex: Int32
        var role: String
        var container: String?
        var path: String
        var packets: UInt64
        var bytes: UInt64
    }

    func run() throws {
        guard let opened = try EndpointStore.openExisting(root: store.storeRoot), let datapath = Datapath.openExisting(store: opened) else {
            if output == .json { print("[]") } else { print("no datapath loaded in \(store.storeRoot)") }
            return
        }
        let records = try opened.records()
        let pods = Dictionary(records.map { ($0.hostIndex, $0) }, uniquingKeysWith: { $1 })
        let netlink = try? NetlinkSocket()
        let counters = try datapath.counters()
        var rows = counters.map { counter in
            let pod = pods[counter.ifindex]
            return Row(device: pod?.hostName ?? (try? netlink?.link(index: counter.ifindex))??.name ?? "#\(counter.ifindex)",
                       ifindex: counter.ifindex, role: pod == nil ? "uplink" : "endpoint", container: pod?.containerID,
                       path: counter.path.name, packets: counter.packets, bytes: counter.bytes)
        }
        // The node's totals: every device's counters, path by path.
        for path in PacketPath.allCases {
            let matching = counters.filter { $0.path == path }
            guard !matching.isEmpty else { continue }
            rows.append(Row(device: "(node)", ifindex: 0, role: "node", container: nil, path: path.name,
                            packets: matching.reduce(0) { $0 + $1.packets }, bytes: matching.reduce(0) { $0 + $1.bytes }))
        }
        if output == .json {
            printJSON(rows)
            return
        }
        print("DEVICE           ROLE      CONTAINER     PATH                      PACKETS          BYTES")
        for row in rows {
            let device = row.device.padding(16), role = row.role.padding(8), container = String((row.container ?? "-").prefix(12)).padding(12)
            print("\(device) \(role)  \(container)  \(row.path.padding(24)) \(String(row.packets).leftPadding(8)) \(String(row.bytes).leftPadding(14))")
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
    func leftPadding(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
