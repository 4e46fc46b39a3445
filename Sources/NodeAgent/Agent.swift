// SPDX-License-Identifier: Apache-2.0
import BPF
import Datapath
import KubeProxyDetection
import Foundation
import KubernetesAPI
import Logging
import NetAddress
import Netlink
import Netns
import NodeStore
import SystemCallSupport
import SystemPackage

/// The node agent: keeps the node's node-wide state what the Kubernetes API and its settings say,
/// in this order: the datapath loaded and the uplinks attached, the plugin binary installed, the
/// conflist written (last: its appearance turns the node Ready), routes to the other nodes' pods;
/// and the socket load balancer's services what the API's Services and EndpointSlices say.
/// It is never on a pod's path: ADD and DEL work without it, and running pods keep talking.
public actor Agent {
    public let settings: AgentSettings
    public let metrics: AgentMetrics
    private let nodes: Reflector<Node>
    private let services: Reflector<KubernetesAPI.Service>
    private let slices: Reflector<EndpointSlice>
    private var lastServices: [String: KubernetesAPI.Service] = [:]
    private var sliceIndex = SliceIndex()
    /// The services the API calls for; the datapath holds exactly these once `servicesInSync`,
    /// except for the Services named in `pendingServices`, whose objects changed since.
    private var serviceTable = ServiceTable()
    private var servicesInSync = false
    /// Whether the Services were ever programmed whole: the conflist waits for it.
    private var servicesProgrammed = false
    /// Whether the Nodes were listed (`lastNodes` is the API's).
    private var nodesListed = false
    /// What the agent read of the Nodes when a Node event last reconciled them.
    private var reconciledNodes: [String: Node]?
    private var pendingServices = Set<String>()
    private var reportedUnsupported: [String] = []
    /// The refused external addresses last logged, by Service: logged again only when they change.
    private var reportedRefusals: [String: [ServiceAddressPolicy.Refusal]] = [:]
    private let logger: Logger
    private var datapathReady = false
    /// What showed kube-proxy on the node when the conflist was last due; empty when nothing did.
    private var kubeProxyEvidence: [String] = []
    /// kube-proxy's rules as last listed (listing runs nft: not at every change).
    private var kubeProxyRules: [String] = []
    private var reportedForeignRoutes: [IPPrefix] = []
    private var reportedFailedRoutes: [String] = []
    private var reportedRefusedCIDRs: [String] = []
    private var pluginInstalled = false
    private var conflistWritten = false
    /// The uplinks as the last datapath step found them: the conflist's MTU is the first one's.
    private var uplinks: [Link] = []
    private var netlinkSocket: NetlinkSocket?
    private var lastNodes: [String: Node] = [:]
    /// Whether the Nodes changed, or a resync is due, since the Node reconcile loop last looked;
    /// `nodeWork` wakes the loop.
    private var nodeReconcileWanted = false
    private var resyncWanted = false
    private var nodeWorkRequests: AsyncStream<Void>
    private var nodeWork: AsyncStream<Void>.Continuation
    /// Wakes the snapshot loop for a snapshot now (the datapath just appeared).
    private var snapshotWanted: AsyncStream<Void>.Continuation?
    /// This node as the service table sees it (its name, the addresses node ports answer on).
    private var serviceNode: ServiceTable.NodeView
    /// Whether `serviceNode` was made from the Nodes: until then no Service is programmed, as the
    /// addresses its external IPs must not claim are not known.
    private var serviceNodeKnown = false
    /// This node's interface addresses as last read: kept when a read fails, so that a failure
    /// never lets a Service claim one.
    private var ownAddresses: [IPAddress] = []
    private let healthCheckNodePorts: HealthCheckNodePorts
    /// The cluster's node addresses as last written to the datapath (never masqueraded); nil:
    /// not known to be in the maps (at start, after a failure, at each resync).
    private var writtenNodeAddresses: Set<IPAddress>?
    /// This node's own addresses as last written into the datapath (refused as sources from outside).
    private var writtenOwnAddresses: Set<IPAddress>?
    /// The API server's address, when the agent was given one rather than a host name.
    private let apiServerAddress: IPAddress?

    public init(settings: AgentSettings, client: KubeClient, logger: Logger) {
        self.settings = settings
        apiServerAddress = URL(string: client.access.server)?.host.flatMap { IPAddress($0.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))) }
        (nodeWorkRequests, nodeWork) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.logger = logger
        metrics = AgentMetrics(storeRoot: settings.storeRoot)
        nodes = Reflector(client: client, path: "/api/v1/nodes", logger: logger)
        services = Reflector(client: client, path: "/api/v1/services", logger: logger)
        slices = Reflector(client: client, path: "/apis/discovery.k8s.io/v1/endpointslices", logger: logger)
        serviceNode = ServiceTable.NodeView(name: settings.nodeName)
        healthCheckNodePorts = HealthCheckNodePorts(logger: logger)
    }

    /// What each watch loop last heard and last got anywhere, by collection.
    private nonisolated func watchStamps() async -> [(path: String, heard: ContinuousClock.Instant?, progress: ContinuousClock.Instant)] {
        var stamps = [("/api/v1/nodes", await nodes.lastHeard, await nodes.lastProgress)]
        if settings.services {
            stamps += [("/api/v1/services", await services.lastHeard, await services.lastProgress),
                       ("/apis/discovery.k8s.io/v1/endpointslices", await slices.lastHeard, await slices.lastProgress)]
        }
        return stamps
    }

    /// The longest a watch loop may get nowhere, or the API server stay silent on a collection:
    /// thrice the watch idle timeout (the watch given up and made again twice meanwhile).
    private nonisolated var watchPatience: Duration { .seconds(3 * settings.watchIdleSeconds) }

    /// Alive: every watch loop got somewhere lately, whether or not the API server answers (a
    /// restart would not bring back an API server that is away). Answered without waiting for
    /// the agent's own steps.
    public nonisolated func liveness() async -> (alive: Bool, detail: String) {
        let stuck = await watchStamps().filter { ContinuousClock.now - $0.progress > watchPatience }.map(\.path)
        return stuck.isEmpty ? (true, "ok") : (false, "watch loops stuck: " + stuck.joined(separator: ", "))
    }

    /// Ready: the datapath loaded, the conflist written, the watches synced, and the API server
    /// heard from lately on each (each collection's silence exported too).
    public func readiness() async -> (ready: Bool, detail: String) {
        var silent: [String] = []
        for stamp in await watchStamps() {
            // Never heard yet: the watch is not synced, said below.
            guard let heard = stamp.heard else { continue }
            let silence = ContinuousClock.now - heard
            metrics.watchSilence(stamp.path).set(to: Double(silence.components.seconds))
            if silence > watchPatience { silent.append("\(stamp.path) silent for \(silence.components.seconds) s") }
        }
        if !silent.isEmpty { return (false, "no word from the API server: " + silent.joined(separator: ", ")) }
        let nodesSynced = await nodes.synced
        var parts = [("datapath", datapathReady), ("plugin", pluginInstalled), ("conflist", conflistWritten), ("nodes watch synced", nodesSynced)]
        if settings.services {
            let servicesSynced = await services.synced, slicesSynced = await slices.synced
            parts.append(("services watch synced", servicesSynced && slicesSynced))
        }
        if !kubeProxyEvidence.isEmpty { return (false, StepError.kubeProxy(kubeProxyEvidence).description) }
        let missing = parts.filter { !$0.1 }.map(\.0)
        return (missing.isEmpty, missing.isEmpty ? "ok" : "waiting for: " + missing.joined(separator: ", "))
    }

    /// Runs until cancelled (SIGTERM). Leaves everything it made in place: pods keep working.
    /// Every loop is a child of one task group: cancelling the run cancels them all, and the run
    /// returns once each has ended.
    public func run() async {
        for folder in [settings.cniConfDir, settings.cniBinDir] {
            let removed = AtomicFile.removeLeftovers(in: folder)
            if removed > 0 { logger.info("unfinished writes of an earlier run removed", metadata: ["folder": "\(folder)", "files": "\(removed)"]) }
        }
        (nodeWorkRequests, nodeWork) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        let (snapshotRequests, snapshotWanted) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.snapshotWanted = snapshotWanted
        await ensureNodeSetup()
        await withDiscardingTaskGroup { group in
            group.addTask { await self.nodes.run { objects, changed in await self.nodesChanged(objects, changed) } }
            group.addTask { await self.reconcileNodes() }
            if settings.services {
                group.addTask { await self.services.run { objects, changed in await self.reconcileServices(objects, changed: changed) } }
                group.addTask { await self.slices.run { objects, changed in await self.reconcileServices(slices: objects, changed: changed) } }
            }
            group.addTask { [settings] in
                while (try? await Task.sleep(for: .seconds(max(1, settings.resyncSeconds)))) != nil { await self.resyncSoon() }
            }
            group.addTask { [settings, metrics, logger] in
                await Self.expireConnections(settings: settings, metrics: metrics, logger: logger)
            }
            group.addTask { [settings, metrics, logger] in
                await Self.reapRetiredVeths(settings: settings, metrics: metrics, logger: logger)
            }
            group.addTask { [settings, metrics, logger] in
                await Self.promotePods(settings: settings, metrics: metrics, logger: logger)
            }
            group.addTask { [settings] in
                repeat { snapshotWanted.yield() } while (try? await Task.sleep(for: .seconds(settings.metricsSnapshotSeconds))) != nil
                snapshotWanted.finish()
            }
            group.addTask { [metrics] in
                for await _ in snapshotRequests { await KernelLane.datapath.run { metrics.takeDatapathSnapshot() } }
            }
        }
    }

    /// Everything again from the current copy of the API: changes nothing when nothing changed.
    /// Done by the Node reconcile loop, in turn with the Nodes' changes, so that an older copy
    /// never lands after a newer one.
    private func resync() async {
        await ensureNodeSetup()
        writtenNodeAddresses = nil
        writtenOwnAddresses = nil
        if await nodes.synced { await reconcile(lastNodes) }
        if settings.services { await programServices(verify: true) }
    }

    /// Connections from outside idle past their timeout leave the uplinks' tables, every
    /// `connectionSweepSeconds`. The sweep waits on system calls for as long as the tables take to
    /// read: on the datapath lane.
    private static func expireConnections(settings: AgentSettings, metrics: AgentMetrics, logger: Logger) async {
        let sweeper = ConnectionSweeper(storeRoot: settings.storeRoot)
        while (try? await Task.sleep(for: .seconds(settings.connectionSweepSeconds))) != nil {
            let result = await KernelLane.datapath.run { Result { () throws(BPFError) in try sweeper.sweep(settings.connectionTimeouts) } }
            switch result {
            case .success(let sweep?):
                metrics.connectionsExpired.increment(by: Int64(sweep.expired))
                metrics.connectionsEvicted.increment(by: Int64(sweep.evicted))
            case .success(nil):
                break
            case .failure(let error):
                logger.warning("expiring idle connections failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Moves the pods ADD started on tc to their tcx links (see `AgentHandoff.requestPromotion`)
    /// the moment a request appears, and every `promotionMilliseconds` in any case. On a lane of
    /// its own: every attach waits for a grace period, and the loop waits for requests there.
    private static func promotePods(settings: AgentSettings, metrics: AgentMetrics, logger: Logger) async {
        let requests = FolderWatch(folder: AgentHandoff.promotionFolder(storeRoot: settings.storeRoot))
        while !Task.isCancelled {
            await KernelLane.promotions.run {
                if !requests.isWatching, AgentHandoff.preparePromotions(storeRoot: settings.storeRoot) { requests.watchIfPossible() }
                promoteRequestedPods(settings: settings, metrics: metrics, logger: logger)
                requests.wait(milliseconds: Int32(clamping: settings.promotionMilliseconds))
            }
        }
    }

    private static func promoteRequestedPods(settings: AgentSettings, metrics: AgentMetrics, logger: Logger) {
        let requested = AgentHandoff.requestedPromotions(storeRoot: settings.storeRoot)
        guard !requested.isEmpty else { return }
        do throws(BPFError) {
            guard let store = try EndpointStore.openExisting(root: settings.storeRoot),
                  let datapath = Datapath.openExisting(store: store) else { return }
            let promoted = try datapath.handoff.promotePods(requested, patience: settings.promotionPatienceSeconds)
            metrics.podsPromoted.increment(by: Int64(promoted.count))
        } catch {
            logger.warning("moving pods to tcx failed", metadata: ["error": "\(error)"])
        }
    }

    /// Announces the agent to the plugin once the store exists (the presence lives as long as this
    /// loop), then, every `retiredVethReapMilliseconds`, deletes the veths DELs retired since the
    /// last time and releases their links. The first pass, at start, takes everything retired,
    /// also before a restart; so does every `retiredVethSweepPasses`th. On a lane of its own:
    /// deleting veths waits for grace periods.
    private static func reapRetiredVeths(settings: AgentSettings, metrics: AgentMetrics, logger: Logger) async {
        var presence: AgentPresence?
        var netlink: NetlinkSocket?
        var pass = 0
        repeat {
            let everything = pass % max(settings.retiredVethSweepPasses, 1) == 0
            pass += 1
            await KernelLane.retiredVeths.run {
                do {
                    guard let store = try EndpointStore.openExisting(root: settings.storeRoot) else { return }
                    if presence == nil {
                        presence = try store.announceAgent()
                        if presence != nil { logger.info("announced to the plugin: ADDs start pods on tc for the agent to move to tcx, DELs retire their veths for it to delete") }
                    }
                    guard let datapath = Datapath.openExisting(store: store) else { return }
                    let socket = try netlink ?? NetlinkSocket()
                    netlink = socket
                    let reaped = try datapath.handoff.reapRetiredVeths(socket, everything: everything)
                    metrics.retiredVethsReaped.increment(by: Int64(reaped))
                } catch {
                    logger.warning("deleting retired veths failed", metadata: ["error": "\(error)"])
                }
            }
        } while (try? await Task.sleep(for: .milliseconds(settings.retiredVethReapMilliseconds))) != nil
        withExtendedLifetime(presence) {}
    }

    // MARK: Steps

    /// Steps 1 and 2: the datapath, then the plugin binary; and a look for kube-proxy's rules.
    private func ensureNodeSetup() async {
        let wasReady = datapathReady
        await step("datapath") { () throws(StepError) in
            kubeProxyRules = KubeProxy.rules()
            try ensureDatapath()
            datapathReady = true
        }
        // The datapath's figures as soon as there is a datapath, not at the next snapshot.
        if datapathReady && !wasReady { snapshotWanted?.yield() }
        guard datapathReady else { return }
        await step("plugin") { () throws(StepError) in
            do throws(SystemCallError) {
                if try PluginInstallation.install(settings) {
                    logger.info("plugin installed", metadata: ["path": "\(settings.installedPlugin)"])
                }
            } catch { throw .system(error) }
            pluginInstalled = true
        }
    }

    /// A Node event: reconciled only when it changed what the agent reads of the Nodes. Most
    /// events are kubelet's status heartbeats, every few seconds from every node, which change
    /// nothing of it; on a large cluster they would otherwise keep the agent reconciling. Only
    /// the Nodes an event names are compared, so a heartbeat costs the same at 5,000 nodes as at 5.
    private func nodesChanged(_ objects: [String: Node], _ changed: Set<String>) async {
        lastNodes = objects
        var read = reconciledNodes ?? objects.mapValues(Self.asRead)
        var differs = reconciledNodes == nil
        if !differs {
            for key in changed {
                let now = objects[key].map(Self.asRead)
                if read[key] != now {
                    read[key] = now
                    differs = true
                }
            }
        }
        guard differs else { return }
        reconciledNodes = read
        reconcileNodesSoon()
    }

    /// How long a burst of Node events is let gather before the next reconcile.
    private static let burstGathering = Duration.milliseconds(100)

    /// A Node as the agent reads it: what kubelet's heartbeats change is not in it but its version.
    private static func asRead(_ node: Node) -> Node {
        var node = node
        node.metadata.resourceVersion = nil
        return node
    }

    /// Asks the Node reconcile loop for a reconcile of the newest Nodes. The watch's loop goes on
    /// to the next events meanwhile: those arriving while a reconcile runs (a burst of joins) make
    /// one more, not one each, since a reconcile walks every node.
    private func reconcileNodesSoon() {
        nodeReconcileWanted = true
        nodeWork.yield()
    }

    /// Asks the Node reconcile loop for a resync.
    private func resyncSoon() {
        resyncWanted = true
        nodeWork.yield()
    }

    /// The Node reconcile loop: reconciles and resyncs, one at a time, as they are asked for.
    private func reconcileNodes() async {
        for await _ in nodeWorkRequests {
            if resyncWanted {
                (resyncWanted, nodeReconcileWanted) = (false, false)
                await resync()
            }
            if nodeReconcileWanted {
                nodeReconcileWanted = false
                await reconcile(lastNodes)
                // Events came in while the reconcile ran: more are on their way, and this actor,
                // busy reconciling, took them one by one. A moment lets them gather.
                if nodeReconcileWanted { try? await Task.sleep(for: Self.burstGathering) }
            }
        }
    }

    /// Steps 3 and 4, from the API's nodes; and this node's addresses for the node ports.
    private func reconcile(_ objects: [String: Node]) async {
        nodesListed = true
        metrics.nodes.set(to: Double(objects.count))
        metrics.watchSynced.set(to: 1)
        let nodeAddresses = Set(objects.values.flatMap { $0.ipAddresses.compactMap { IPAddress($0) } })
        var view = ServiceTable.NodeView(objects[settings.nodeName], name: settings.nodeName)
        view.addressPolicy = await addressPolicy(nodes: objects.values, nodeAddresses: nodeAddresses)
        if view != serviceNode || !serviceNodeKnown {
            // Another node's addresses change only what external addresses may claim: only the
            // Services that claim some are recomputed (a node joining a large cluster would
            // otherwise recompute every Service).
            let policyOnly = serviceNodeKnown && view.addresses == serviceNode.addresses
            serviceNode = view
            serviceNodeKnown = true
            if settings.services {
                pendingServices.formUnion(policyOnly ? lastServices.filter { !ServiceTable.externalKinds(of: $0.value).isEmpty }.map(\.key)
                                                     : Array(lastServices.keys))
                await programServices()
            }
        }
        await writeConflistStep()
        // The addresses a node translates from (its InternalIPs, which face the other nodes): an
        // ExternalIP is a public address, which pods' traffic to must stay masqueraded.
        let neverMasqueraded = Set(objects.values.flatMap { $0.internalIPs.compactMap { IPAddress($0) } })
        if datapathReady && neverMasqueraded != writtenNodeAddresses {
            await step("node addresses") { () throws(StepError) in
                writtenNodeAddresses = nil
                try withDatapath { datapath throws(BPFError) in try datapath.node.setClusterNodeAddresses(neverMasqueraded) }
                writtenNodeAddresses = neverMasqueraded
            }
        }
        let own = Set(ownAddresses)
        if datapathReady && !own.isEmpty && own != writtenOwnAddresses {
            await step("own addresses") { () throws(StepError) in
                writtenOwnAddresses = nil
                try withDatapath { datapath throws(BPFError) in try datapath.node.setOwnAddresses(own) }
                writtenOwnAddresses = own
            }
        }
        await step("routes") { () throws(StepError) in
            let desired = NodeRoutes.desired(nodes: Array(objects.values), ownName: settings.nodeName, clusterCIDRs: settings.clusterCIDRs)
            let outcome: NodeRoutes.Outcome
            do throws(SystemCallError) { outcome = try NodeRoutes.reconcile(desired, netlink: try netlink()) } catch {
                throw .system(error)
            }
            metrics.routesOwned.set(to: Double(outcome.owned))
            if outcome.added + outcome.replaced + outcome.removed > 0 {
                logger.info("routes to other nodes' pods", metadata: [
                    "added": "\(outcome.added)", "replaced": "\(outcome.replaced)", "removed": "\(outcome.removed)", "owned": "\(outcome.owned)",
                ])
            }
            let refused = NodeRoutes.refused(nodes: Array(objects.values), ownName: settings.nodeName, clusterCIDRs: settings.clusterCIDRs)
            if refused != reportedRefusedCIDRs {
                reportedRefusedCIDRs = refused
                if !refused.isEmpty {
                    logger.warning("pod CIDRs outside --cluster-cidr, or default routes: no route to them", metadata: ["cidrs": "\(refused)"])
                }
            }
            metrics.routesFailed.set(to: Double(outcome.failed.count))
            let failed = outcome.failed.map { "\($0.route.destination) via \($0.route.gateway.map(\.description) ?? "-"): \($0.error)" }
            if failed != reportedFailedRoutes {
                reportedFailedRoutes = failed
                if !failed.isEmpty {
                    // Native routing reaches other nodes' pods through their addresses: only
                    // nodes on one of this node's links can be a route's gateway.
                    logger.warning("routes to other nodes' pods refused, the others installed", metadata: ["routes": "\(failed)"])
                }
            }
            if outcome.foreign != reportedForeignRoutes {
                reportedForeignRoutes = outcome.foreign
                if !outcome.foreign.isEmpty {
                    logger.warning("pod CIDRs whose destination another route holds: left to it", metadata: [
                        "destinations": "\(outcome.foreign.map(\.description))",
                    ])
                }
            }
        }
    }

    /// What Services' external addresses may not claim, from the settings, the Nodes and this
    /// node's own interfaces (read again at each resync: an address a node gives itself need not
    /// be in the API).
    private func addressPolicy(nodes: some Collection<Node>, nodeAddresses: Set<IPAddress>) async -> ServiceAddressPolicy {
        await KernelLane.reconcile.run {
            do throws(SystemCallError) { ownAddresses = try netlink().addresses().map(\.address) } catch {
                logger.warning("this node's addresses not read again for the external address policy", metadata: ["error": "\(error)"])
            }
        }
        let podCIDRs = nodes.flatMap { $0.podCIDRs.compactMap { IPPrefix($0) } }
        return ServiceAddressPolicy(externalIPRanges: settings.externalIPCIDRs, nodeAddresses: nodeAddresses.union(ownAddresses),
                                    clusterRanges: Set(settings.clusterCIDRs + settings.serviceCIDRs + podCIDRs)
                                        .sorted { ($0.address, $0.length) < ($1.address, $1.length) },
                                    controlPlaneAddresses: Set(apiServerAddress.map { [$0] } ?? []))
    }

    private func reconcileServices(_ objects: [String: KubernetesAPI.Service], changed: Set<String>) async {
        lastServices = objects
        pendingServices.formUnion(changed)
        await programServices()
    }

    private func reconcileServices(slices objects: [String: EndpointSlice], changed: Set<String>) async {
        pendingServices.formUnion(sliceIndex.update(changed, from: objects))
        await programServices()
    }

    /// Step 5, once both watches have listed: the services the API calls for. A change recomputes
    /// and writes the Services it touched; the first time, after a failure and at each resync
    /// (`verify`), the whole table is compared with the maps as they are. Sockets still aimed at a
    /// backend that left are terminated. Then the health check node ports follow the table.
    private func programServices(verify: Bool = false) async {
        let servicesSynced = await services.synced, slicesSynced = await slices.synced
        guard datapathReady, servicesSynced, slicesSynced, serviceNodeKnown else { return }
        await step("services") { () throws(StepError) in
            let changes: ServiceTable.Changes
            if servicesInSync && !verify {
                changes = serviceTable.refresh(pendingServices, services: lastServices, slices: sliceIndex, node: serviceNode)
            } else {
                serviceTable = ServiceTable(services: lastServices, slices: sliceIndex, node: serviceNode)
                do throws(BPFError) { changes = try ServicePrograms.programmed(storeRoot: settings.storeRoot).changes(to: serviceTable) } catch {
                    throw .datapath(.bpf(error))
                }
            }
            pendingServices = []
            // Until the writes are all in, the maps are not known to hold the table.
            servicesInSync = false
            let outcome: ServicePrograms.Outcome
            do throws(BPFError) { outcome = try ServicePrograms.apply(changes, storeRoot: settings.storeRoot) } catch {
                throw .datapath(.bpf(error))
            }
            // A Service that could not be written (a full map, say) keeps the others: they are
            // programmed, pods may start; it is tried again from a full comparison.
            servicesInSync = outcome.failed.isEmpty
            servicesProgrammed = true
            if !outcome.failed.isEmpty {
                metrics.reconcileErrors("services").increment()
                logger.error("services not written, the others are", metadata: ["services": "\(outcome.failed)"])
            }
            metrics.services.set(to: Double(serviceTable.entries.count))
            if outcome.written + outcome.deleted > 0 { metrics.serviceWrites.increment(by: Int64(outcome.written + outcome.deleted)) }
            if outcome.written + outcome.deleted + outcome.terminated > 0 {
                logger.info("services programmed", metadata: [
                    "written": "\(outcome.written)", "deleted": "\(outcome.deleted)", "departed": "\(outcome.departed)",
                    "terminated": "\(outcome.terminated)", "services": "\(serviceTable.entries.count)",
                ])
            }
            if !outcome.unreachable.isEmpty {
                metrics.netnsUnreachable.increment(by: Int64(outcome.unreachable.count))
                logger.warning("pods' netns not entered: sockets there to departed backends not terminated", metadata: [
                    "netns": "\(outcome.unreachable.joined(separator: ", "))",
                ])
            }
            let unsupported = serviceTable.unsupported
            if !unsupported.isEmpty, unsupported != reportedUnsupported {
                logger.warning("ports not balanced (SCTP)", metadata: ["ports": "\(unsupported.joined(separator: ", "))"])
            }
            reportedUnsupported = unsupported
            metrics.unbalancedPorts.set(to: Double(unsupported.count))
            reportRefusals()
        }
        await healthCheckNodePorts.update(serviceTable.healthChecks)
        if !conflistWritten { await writeConflistStep() }
    }

    /// Logs the external addresses refused of each Service whose refusals changed (not at every
    /// resync), and counts those refused now by reason.
    private func reportRefusals() {
        let refusals = serviceTable.refusals
        for (key, refused) in refusals.sorted(by: { $0.key < $1.key }) where reportedRefusals[key] != refused {
            logger.warning("service addresses not programmed", metadata: [
                "service": "\(key)", "refused": "\(refused.map(\.description).joined(separator: ", "))",
            ])
        }
        reportedRefusals = refusals
        var byReason: [ServiceAddressPolicy.Reason: Int] = [:]
        for refusal in refusals.values.joined() { byReason[refusal.reason, default: 0] += 1 }
        for reason in ServiceAddressPolicy.Reason.allCases { metrics.refusedAddresses(reason).set(to: Double(byReason[reason] ?? 0)) }
    }

    /// The agent's one rtnetlink socket, opened when first needed.
    private func netlink() throws(SystemCallError) -> NetlinkSocket {
        if let netlinkSocket { return netlinkSocket }
        let opened = try NetlinkSocket()
        netlinkSocket = opened
        return opened
    }

    private func ensureDatapath() throws(StepError) {
        do throws(SystemCallError) {
            let netlink = try netlink()
            if let names = settings.devices {
                uplinks = try names.map { name throws(SystemCallError) in
                    guard let link = try netlink.link(named: name) else { throw SystemCallError("find uplink \(name)", .noSuchFileOrDirectory) }
                    return link
                }
            } else {
                uplinks = try netlink.defaultRouteLinks()
            }
        } catch {
            throw .system(error)
        }
        let socketCgroup = settings.cgroupRoot ?? CgroupV2.mountPoint()
        // The service proxy without its socket hooks would say ready and balance nothing.
        if settings.services && socketCgroup == nil {
            throw .system(SystemCallError("find a cgroup2 mount for the socket load balancer (give --cgroup-root, or run with --no-services)",
                                          .noSuchFileOrDirectory))
        }
        let setup = settings.pluginSettings(mtu: nil).nodeSetup(uplinks: uplinks.map { ($0.name, $0.index) }, socketCgroup: socketCgroup)
        let store: EndpointStore
        do { store = try EndpointStore.open(root: settings.storeRoot) } catch { throw .datapath(.bpf(error)) }
        do {
            let (datapath, _) = try setup.ensure(store: store)
            if try datapath.node.restoreMasqueradeTable() {
                logger.warning("masquerade table inet \(NodeDatapath.nftTable) was gone or changed: written again")
            }
        } catch {
            throw .datapath(error)
        }
    }

    /// kube-proxy's rules never see pod traffic routed in BPF: the node is not made Ready beside it.
    /// Its rules are listed at start and at each resync, and at every change while it is seen (so
    /// that its removal is noticed at once); its listener, cheap to find, at every change.
    private func refuseBesideKubeProxy() throws(StepError) {
        if !kubeProxyEvidence.isEmpty { kubeProxyRules = KubeProxy.rules() }
        kubeProxyEvidence = KubeProxy.listener() + kubeProxyRules
        guard kubeProxyEvidence.isEmpty else { throw .kubeProxy(kubeProxyEvidence) }
    }

    /// Step 3: the conflist, last, once pods started from it will work: the datapath and plugin in
    /// place and, when the agent is the service proxy, the Services programmed once (a pod
    /// started earlier, CoreDNS say, would find the `kubernetes` Service's address dead).
    private func writeConflistStep() async {
        guard datapathReady && pluginInstalled, !settings.services || servicesProgrammed, nodesListed else { return }
        await step("conflist") { () throws(StepError) in
            try refuseBesideKubeProxy()
            try writeConflist(own: lastNodes[settings.nodeName])
        }
    }

    private func writeConflist(own node: Node?) throws(StepError) {
        guard let node else { throw .waiting("node \(settings.nodeName) is not in the API yet") }
        let cidrs = node.podCIDRs.compactMap { IPPrefix($0) }
        guard !cidrs.isEmpty else { throw .waiting("node \(settings.nodeName) has no spec.podCIDRs yet") }
        // The conflist is written only once the datapath step has found the uplinks.
        let mtu = settings.mtu ?? uplinks.first?.mtu
        let conflist = Conflist(settings: settings, podCIDRs: cidrs, mtu: mtu)
        do throws(SystemCallError) {
            if try AtomicFile.write(conflist.bytes, to: settings.conflistPath, permissions: [.ownerReadWrite, .groupRead, .otherRead]) {
                logger.info("conflist written", metadata: ["path": "\(settings.conflistPath)", "podCIDRs": "\(node.podCIDRs)"])
            }
        } catch { throw .system(error) }
        conflistWritten = true
    }

    /// Runs `body` on the store's datapath, its errors a step's.
    private func withDatapath(_ body: (Datapath) throws(BPFError) -> Void) throws(StepError) {
        do throws(BPFError) { try body(try Datapath.open(store: try EndpointStore.open(root: settings.storeRoot))) } catch {
            throw .datapath(.bpf(error))
        }
    }

    /// Runs one step on the reconcile lane (steps wait on the kernel), timing it and counting its
    /// failures; a failed step is tried again on the next change or resync.
    private func step(_ name: String, _ body: () throws(StepError) -> Void) async {
        let start = ContinuousClock.now
        let outcome = await KernelLane.reconcile.run { Result(catching: body) }
        switch outcome {
        case .success: break
        case .failure(.waiting(let reason)):
            logger.info("\(name) waiting", metadata: ["reason": "\(reason)"])
        case .failure(let error):
            metrics.reconcileErrors(name).increment()
            logger.error("\(name) failed", metadata: ["error": "\(error)"])
            // The next Node event tries again, whether or not it changes what the agent reads.
            reconciledNodes = nil
        }
        metrics.reconcileDuration(name).record(ContinuousClock.now - start)
    }
}

/// Why a step did not complete.
enum StepError: Error, CustomStringConvertible {
    case system(SystemCallError)
    case datapath(DatapathError)
    /// Nothing is wrong; what the step needs is not there yet.
    case waiting(String)
    /// kube-proxy runs on the node (what shows it).
    case kubeProxy([String])

    var description: String {
        switch self {
        case .system(let error): error.description
        case .datapath(let error): error.description
        case .waiting(let reason): reason
        case .kubeProxy(let evidence):
            "kube-proxy runs on this node (\(evidence.joined(separator: "; "))): BPF host routing bypasses its rules, so swiftpath "
                + "does not make the node Ready beside it; swiftpath is the service proxy, remove kube-proxy from the cluster"
        }
    }
}
