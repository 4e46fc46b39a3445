// SPDX-License-Identifier: Apache-2.0
import BPF
import Datapath
import Foundation
import Synchronization
import NodeStore
import Prometheus

/// The agent's Prometheus metrics, and the datapath's own counters read from the pinned maps by a
/// periodic snapshot (they are the programs' counters, monotonic, not the agent's).
public final class AgentMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let storeRoot: String
    let nodes: Gauge
    let routesOwned: Gauge
    let routesFailed: Gauge
    let watchSynced: Gauge
    let services: Gauge
    let serviceWrites: Counter
    let unbalancedPorts: Gauge
    let connectionsExpired: Counter
    let connectionsEvicted: Counter
    let retiredVethsReaped: Counter
    let podsPromoted: Counter
    let netnsUnreachable: Counter

    init(storeRoot: String) {
        self.storeRoot = storeRoot
        nodes = registry.makeGauge(descriptor: Self.agent("nodes", unit: "count", "Nodes in the agent's copy of the API"))
        routesOwned = registry.makeGauge(descriptor: Self.agent("routes_owned", unit: "count", "Routes to other nodes' pods the agent keeps"))
        routesFailed = registry.makeGauge(descriptor: Self.agent("routes_failed", unit: "count",
                                                                 "Routes to other nodes' pods the kernel refused (a gateway not on the node's links)"))
        watchSynced = registry.makeGauge(descriptor: Self.agent("watch_synced", unit: "bool", "1 once the nodes watch has listed"))
        services = registry.makeGauge(descriptor: Self.agent("services", unit: "count",
                                                             "Service addresses, ports and protocols programmed into the socket load balancer"))
        serviceWrites = registry.makeCounter(descriptor: Self.agent("service_writes", unit: "total",
                                                                    "Services set or deleted in the socket load balancer's maps"))
        unbalancedPorts = registry.makeGauge(descriptor: Self.agent("service_ports_unbalanced", unit: "count",
                                                                    "Service ports the socket load balancer leaves alone (SCTP)"))
        connectionsExpired = registry.makeCounter(descriptor: Self.agent("connections_expired", unit: "total",
                                                                         "Connections from outside removed from the uplinks' table when idle"))
        connectionsEvicted = registry.makeCounter(descriptor: Self.agent("connections_evicted", unit: "total",
                                                                         "Halves of connections from outside whose other half the uplinks' full table evicted"))
        retiredVethsReaped = registry.makeCounter(descriptor: Self.agent("retired_veths_reaped", unit: "total",
                                                                         "Veths retired by DEL whose devices and links are gone"))
        podsPromoted = registry.makeCounter(descriptor: Self.agent("pods_promoted", unit: "total",
                                                                   "Pods that ADD started on tc moved to their tcx links"))
        netnsUnreachable = registry.makeCounter(descriptor: Self.agent("netns_unreachable", unit: "total",
                                                                       "Pods' netns a socket termination sweep could not enter"))
    }

    private static func agent(_ name: String, unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "swiftpath", subsystem: "agent", metricName: name, unitName: unit, helpText: help)
    }

    func reconcileErrors(_ step: String) -> Counter {
        registry.makeCounter(descriptor: Self.agent("reconcile_errors", unit: "total", "Reconcile steps that failed"),
                             labels: [("step", step)])
    }

    func refusedAddresses(_ reason: ServiceAddressPolicy.Reason) -> Gauge {
        registry.makeGauge(descriptor: Self.agent("service_addresses_refused", unit: "count",
                                                  "External and LoadBalancer IPs of Services not programmed, by why"),
                           labels: [("reason", reason.rawValue)])
    }

    func watchSilence(_ path: String) -> Gauge {
        registry.makeGauge(descriptor: Self.agent("watch_silence", unit: "seconds",
                                                  "Seconds since the API server last said anything of a watched collection (as of the last /healthz)"),
                           labels: [("path", path)])
    }

    func reconcileDuration(_ step: String) -> DurationHistogram {
        registry.makeDurationHistogram(descriptor: Self.agent("reconcile_duration", unit: "seconds", "How long each reconcile step took"),
                                       labels: [("step", step)],
                                       buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
                                                 .milliseconds(500), .seconds(2), .seconds(10)])
    }

    /// The datapath's part of the exposition text, as the last snapshot left it.
    private let datapathText = Mutex("")

    /// The exposition text: the agent's metrics, then the datapath's figures as the last snapshot
    /// took them. Never touches the store: a scrape must neither wait for the store's lock (held
    /// by ADDs and DELs, and by anyone who takes it) nor walk maps on the cooperative pool.
    public func exposition() -> [UInt8] {
        Array((registry.emitToString() + datapathText.withLock { $0 }).utf8)
    }

    /// Reads the datapath's figures into the text /metrics serves. Waits for the store's lock and
    /// walks maps: call it off the cooperative pool (the agent does, on its datapath lane).
    func takeDatapathSnapshot(now: Double = Date().timeIntervalSince1970) {
        guard let store = try? EndpointStore.openExisting(root: storeRoot), let datapath = Datapath.openExisting(store: store) else { return }
        var text = Self.counterFigures(datapath) + Self.endpointFigures(datapath) + Self.connectionTableFigures(datapath)
        text += "# HELP swiftpath_agent_datapath_snapshot_timestamp_seconds When the datapath's figures were read\n"
        text += "# TYPE swiftpath_agent_datapath_snapshot_timestamp_seconds gauge\n"
        text += "swiftpath_agent_datapath_snapshot_timestamp_seconds \(now)\n"
        datapathText.withLock { $0 = text }
    }

    /// The programs' packet and byte counters, by interface and path.
    private static func counterFigures(_ datapath: Datapath) -> String {
        guard let counters = try? datapath.counters() else { return "" }
        var text = "# HELP swiftpath_datapath_packets_total Packets by the path the BPF programs gave them\n"
        text += "# TYPE swiftpath_datapath_packets_total counter\n"
        for counter in counters {
            text += "swiftpath_datapath_packets_total{ifindex=\"\(counter.ifindex)\",path=\"\(counter.path.name)\"} \(counter.packets)\n"
        }
        text += "# HELP swiftpath_datapath_bytes_total Bytes by the path the BPF programs gave them\n"
        text += "# TYPE swiftpath_datapath_bytes_total counter\n"
        for counter in counters {
            text += "swiftpath_datapath_bytes_total{ifindex=\"\(counter.ifindex)\",path=\"\(counter.path.name)\"} \(counter.bytes)\n"
        }
        return text
    }

    /// The pod addresses in the endpoint maps, by family.
    private static func endpointFigures(_ datapath: Datapath) -> String {
        guard let endpoints = try? datapath.pods.endpointCounts() else { return "" }
        return "# HELP swiftpath_endpoints Pod addresses in the datapath's endpoint maps\n# TYPE swiftpath_endpoints gauge\n"
            + "swiftpath_endpoints{family=\"ipv4\"} \(endpoints.v4)\nswiftpath_endpoints{family=\"ipv6\"} \(endpoints.v6)\n"
    }

    /// The uplinks' connection tables (`sp_nat`, `sp_nat_new`), from one read of them: every figure
    /// about them belongs here. Evictions the agent's sweep counts
    /// (swiftpath_agent_connections_evicted_total), drops the programs (the `drop_no_snat_port` path).
    private static func connectionTableFigures(_ datapath: Datapath) -> String {
        var text = ""
        if let occupancy = try? datapath.connections.occupancy() {
            text += "# HELP swiftpath_translated_connections Connections from outside the uplinks translated to a backend\n"
            text += "# TYPE swiftpath_translated_connections gauge\nswiftpath_translated_connections \(occupancy.connections)\n"
            text += "# HELP swiftpath_connection_table_entries Entries in the uplinks' connection tables, two per connection\n"
            text += "# TYPE swiftpath_connection_table_entries gauge\n"
            text += "swiftpath_connection_table_entries{table=\"confirmed\"} \(occupancy.confirmed)\n"
            text += "swiftpath_connection_table_entries{table=\"unconfirmed\"} \(occupancy.unconfirmed)\n"
            text += "# HELP swiftpath_connection_table_capacity Entries the uplinks' connection tables hold at most\n"
            text += "# TYPE swiftpath_connection_table_capacity gauge\n"
            text += "swiftpath_connection_table_capacity{table=\"confirmed\"} \(occupancy.confirmedCapacity)\n"
            text += "swiftpath_connection_table_capacity{table=\"unconfirmed\"} \(occupancy.unconfirmedCapacity)\n"
        }
        return text
    }
}
