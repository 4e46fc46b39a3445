// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BPF
import NodeStore
import NetAddress

/// Options every command that reads the store shares.
struct StoreOptions: ParsableArguments {
    /// `--root` is the name earlier releases gave it.
    @Option(name: [.customLong("store-root"), .customLong("root")], help: "The bpffs folder of the swiftpath store.")
    var storeRoot: String = StoreLayout.defaultRoot
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table
    case json
}

struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoint", abstract: "Pod attachments recorded in the store.",
        subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the endpoints of the node.")

        @OptionGroup var store: StoreOptions
        @Option(name: [.customShort("o"), .long], help: "Output format: table or json.")
        var output: OutputFormat = .table

        func run() throws {
            guard let opened = try EndpointStore.openExisting(root: store.storeRoot) else {
                if output == .json { print("[]") } else { print("no swiftpath store at \(store.storeRoot)") }
                return
            }
            let records = try opened.records()
            switch output {
            case .json:
                printJSON(records.map(EndpointView.init))
            case .table:
                printTable(records)
            }
        }

        private func printTable(_ records: [EndpointRecord]) {
            let header = ["CONTAINER", "IFNAME", "NETWORK", "NETNS", "HOST DEVICE", "ADDRESSES", "ATTACHED"]
            let rows = records.map { record in
                [String(record.containerID.prefix(12)), record.ifname, record.network, record.netns,
                 "\(record.hostName) (#\(record.hostIndex))", record.addresses.map(\.address.description).joined(separator: ","),
                 EndpointView(record).attachment]
            }
            let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
            for row in [header] + rows {
                print(zip(row, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }
                    .joined(separator: "  ").trimmingTrailingSpaces())
            }
        }
    }
}

/// The JSON shape of an endpoint.
struct EndpointView: Encodable {
    var containerID: String
    var ifname: String
    var network: String
    var netns: String
    var hostInterface: String
    var hostIfindex: Int32
    var hostMAC: String
    var podMAC: String
    var mtu: Int
    var addresses: [String]
    var ipam: String
    /// "tcx link 12", "tc prog 40", or "none".
    var attachment: String

    init(_ record: EndpointRecord) {
        containerID = record.containerID
        ifname = record.ifname
        network = record.network
        netns = record.netns
        hostInterface = record.hostName
        hostIfindex = record.hostIndex
        hostMAC = record.hostMAC.description
        podMAC = record.podMAC.description
        mtu = record.mtu
        addresses = record.addresses.map(\.description)
        ipam = record.addressSource == .builtin ? "builtin" : "delegated"
        attachment = switch record.attachMode {
        case 1: "tcx link \(record.attachID)"
        case 2: "tc prog \(record.attachID)"
        default: "none"
        }
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var copy = Substring(self)
        while copy.last == " " { copy.removeLast() }
        return String(copy)
    }
}
