// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BPF
import NodeStore
import Datapath
import NetAddress
import FoundationEssentials

struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Services balanced at the socket: VIP:PORT/PROTO -> backends.",
        subcommands: [Set.self, Delete.self, List.self, Apply.self, Connections.self])

    /// The node's datapath, loaded if no ADD has loaded it yet: services can come before pods.
    static func open(_ root: String) throws -> (store: EndpointStore, datapath: Datapath) {
        let store = try EndpointStore.open(root: root)
        return (store, try Datapath.open(store: store))
    }

    /// The node's datapath when one is loaded, for a listing; otherwise says so (an empty JSON list)
    /// and returns nil.
    static func loaded(_ root: String, output: OutputFormat) throws -> Datapath? {
        guard let store = try EndpointStore.openExisting(root: root), let datapath = Datapath.openExisting(store: store) else {
            print(output == .json ? "[]" : "no datapath loaded in \(root)")
            return nil
        }
        return datapath
    }

    /// Terminates the sockets still aimed at backends that left, on the node and in every pod,
    /// and says how many.
    static func terminate(_ departures: [(service: Service, backend: Backend)], datapath: Datapath, store: EndpointStore) throws {
        guard !departures.isEmpty else { return }
        let namespaces = try store.records().map(\.netns).filter { !$0.isEmpty }
        let sweep = try datapath.connections.terminate(departures: departures, namespaces: namespaces)
        print("terminated \(sweep.terminated) socket(s) of \(departures.count) departed backend(s)")
        for (path, error) in sweep.unreachable { print("netns \(path) not swept: \(error)") }
    }

    static func parseService(_ text: String) throws -> Service {
        guard let service = Service(text) else {
            throw ValidationError("'\(text)' is not a service: VIP:PORT/tcp|udp, IPv6 as [fd00::10]:53/udp")
        }
        return service
    }

    static func parseBackends(_ texts: [String]) throws -> [Backend] {
        try texts.map { text in
            guard let backend = Backend(text) else {
                throw ValidationError("'\(text)' is not a backend: ADDRESS:PORT, [IPv6]:PORT, optionally @WEIGHT (1-100)")
            }
            return backend
        }
    }

    /// CIDRs of `service`'s family, as `--source-range` and a listing's `sourceRanges` give them.
    static func parseSourceRanges(_ texts: [String], for service: Service) throws -> [IPPrefix] {
        try texts.map { text in
            guard let range = IPPrefix(text) else { throw ValidationError("'\(text)' is not a source range: ADDRESS/LENGTH") }
            guard range.family == service.address.family else {
                throw ValidationError("source range \(text) is not of \(service)'s address family")
            }
            return range
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a service or replace its backends, atomically.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The service, VIP:PORT/PROTO.") var service: String
        @Argument(help: "Its backends, ADDRESS:PORT[@WEIGHT]; none keeps the service, refusing connections.")
        var backends: [String] = []
        @Option(help: "Per-client affinity: a client (pod) keeps its backend while it comes back within SECONDS.")
        var affinity: UInt32 = 0
        @Flag(help: "Answer clients outside the node too, at its uplinks (as a node port or an external IP is).")
        var external = false
        @Option(name: .customLong("source-range"),
                help: "With --external: a CIDR whose clients outside the node may connect (repeatable; none: every client, so setting a service again without it opens it).")
        var sourceRanges: [String] = []

        func run() throws {
            let service = try ServiceCommand.parseService(self.service)
            let backends = try ServiceCommand.parseBackends(self.backends)
            guard backends.allSatisfy({ $0.address.family == service.address.family || service.address.family == .v6 }) else {
                throw ValidationError("an IPv4 service cannot have IPv6 backends")
            }
            guard sourceRanges.isEmpty || external else { throw ValidationError("--source-range limits outside clients: it needs --external") }
            let ranges = sourceRanges.isEmpty ? nil : try ServiceCommand.parseSourceRanges(sourceRanges, for: service)
            let (opened, datapath) = try ServiceCommand.open(store.storeRoot)
            let departed = try datapath.services.setService(service, backends: backends, affinitySeconds: affinity,
                                                   external: external ? .cluster : .none, sourceRanges: ranges)
            print("\(service) -> \(backends.isEmpty ? "no backend (connections refused)" : backends.map(\.description).joined(separator: " "))")
            try datapath.connections.forget(departed.map { (service, $0) })
            try ServiceCommand.terminate(departed.map { (service, $0) }, datapath: datapath, store: opened)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a service.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The service, VIP:PORT/PROTO.") var service: String

        func run() throws {
            let service = try ServiceCommand.parseService(self.service)
            let (opened, datapath) = try ServiceCommand.open(store.storeRoot)
            guard let departed = try datapath.services.deleteService(service) else {
                print("no service \(service)")
                return
            }
            print("deleted \(service)")
            try datapath.connections.forget(departed.map { (service, $0) })
            try ServiceCommand.terminate(departed.map { (service, $0) }, datapath: datapath, store: opened)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the services and their backends.")
        @OptionGroup var store: StoreOptions
        @Option(name: [.customShort("o"), .long], help: "Output format: table or json.")
        var output: OutputFormat = .table

        func run() throws {
            guard let datapath = try ServiceCommand.loaded(store.storeRoot, output: output) else { return }
            let services = try datapath.services.programs()
            // A host port a Service took over is listed as the Service's.
            let hostPorts = try datapath.store.offeredHostPorts()
            if output == .json {
                printJSON(services.map {
                    ServiceView(service: $0.service.description, backends: $0.backends.map(\.description),
                                affinitySeconds: $0.affinitySeconds == 0 ? nil : $0.affinitySeconds,
                                external: ServiceView.external($0.external), localBackends: ServiceView.localBackends($0.external),
                                sourceRanges: $0.sourceRanges?.map(\.description), hostPortOf: hostPorts[$0.service])
                })
                return
            }
            for entry in services {
                let affinity = entry.affinitySeconds == 0 ? "" : "  (affinity \(entry.affinitySeconds) s)"
                let external = switch entry.external {
                case .none: ""
                case .cluster: "  (external)"
                case .local(let local): "  (external, local: \(local.isEmpty ? "none" : local.map(\.description).joined(separator: " ")))"
                }
                let owner = hostPorts[entry.service].map { "  (host port of \($0))" } ?? ""
                let sources = entry.sourceRanges.map { "  (sources: \($0.isEmpty ? "none" : $0.map(\.description).joined(separator: " ")))" } ?? ""
                print("\(entry.service.description.padding(32)) \(entry.backends.map(\.description).joined(separator: " "))\(affinity)\(external)\(sources)\(owner)")
            }
        }
    }

    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the services exactly those of a JSON file: [{\"service\": \"10.96.0.10:53/udp\", \"backends\": [\"10.1.0.5:53\"]}].")
        @OptionGroup var store: StoreOptions
        @Option(name: .shortAndLong, help: "The desired services (JSON); - for stdin.") var file: String

        func run() throws {
            let data: Data
            if file == "-" {
                var bytes: [UInt8] = []
                while let line = readLine(strippingNewline: false) { bytes += Array(line.utf8) }
                data = Data(bytes)
            } else {
                data = try Data(contentsOf: URL(fileURLWithPath: file))
            }
            // A listing fed back leaves pods' host ports to their pods: as Services they would take them over.
            let views = try JSONDecoder().decode([ServiceView].self, from: data).filter { $0.hostPortOf == nil }
            let desired = try views.map { view throws -> ServiceProgram in
                let service = try ServiceCommand.parseService(view.service)
                let external = try view.externalTraffic()
                guard view.sourceRanges == nil || external != .none else {
                    throw ValidationError("\(view.service): sourceRanges limit outside clients: it needs external")
                }
                return (service, try ServiceCommand.parseBackends(view.backends), view.affinitySeconds ?? 0, external,
                        try view.sourceRanges.map { ranges throws in try ServiceCommand.parseSourceRanges(ranges, for: service) })
            }
            let (opened, datapath) = try ServiceCommand.open(store.storeRoot)
            let result = try datapath.services.applyServices(desired)
            print("\(result.set) service(s) set, \(result.deleted) deleted")
            try datapath.connections.forget(result.departures)
            try ServiceCommand.terminate(result.departures, datapath: datapath, store: opened)
            if let failure = result.failures.first {
                throw ValidationError("\(result.failures.count) service(s) not set, \(failure.service) first: \(failure.error)")
            }
        }
    }
}

extension ServiceCommand {
    struct Connections: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the connections from outside the node that its uplinks translated to a service's backend.")
        @OptionGroup var store: StoreOptions
        @Option(name: [.customShort("o"), .long], help: "Output format: table or json.")
        var output: OutputFormat = .table

        func run() throws {
            guard let datapath = try ServiceCommand.loaded(store.storeRoot, output: output) else { return }
            let connections = try datapath.connections.translated()
            if output == .json {
                printJSON(connections.map {
                    ConnectionView(proto: $0.proto.rawValue, client: $0.client, service: $0.service, nodeSource: $0.nodeSource,
                                   backend: $0.backend.endpoint, idleSeconds: $0.idleNanoseconds / 1_000_000_000, closing: $0.closing,
                                   unconfirmed: $0.unconfirmed)
                })
                return
            }
            for connection in connections { print("\(connection)  idle \(connection.idleNanoseconds / 1_000_000_000) s") }
        }
    }
}

struct ConnectionView: Codable {
    var proto: String
    var client: String
    var service: String
    var nodeSource: String?
    var backend: String
    var idleSeconds: UInt64
    var closing: Bool
    /// Its client has not shown it gets the backend's replies (a SYN or a datagram, no more).
    var unconfirmed: Bool
}

struct ServiceView: Codable {
    var service: String
    var backends: [String]
    var affinitySeconds: UInt32?
    /// "cluster" or "local": clients outside the node reach it too; absent: they do not.
    var external: String?
    /// With "local": the backends outside clients get.
    var localBackends: [String]?
    /// The CIDRs whose clients outside the node may connect; absent: every client.
    var sourceRanges: [String]?
    /// A pod's host port: the host device of the attachment that owns it (listed, never applied).
    var hostPortOf: String?

    static func external(_ traffic: ExternalTraffic) -> String? {
        switch traffic {
        case .none: nil
        case .cluster: "cluster"
        case .local: "local"
        }
    }

    static func localBackends(_ traffic: ExternalTraffic) -> [String]? {
        if case .local(let local) = traffic { return local.map(\.description) }
        return nil
    }

    func externalTraffic() throws -> ExternalTraffic {
        switch external {
        case nil: return .none
        case "cluster": return .cluster
        case "local": return .local(try ServiceCommand.parseBackends(localBackends ?? []))
        case let other?: throw ValidationError("\(service): external is \"cluster\" or \"local\", not \"\(other)\"")
        }
    }
}
