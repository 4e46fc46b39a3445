// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Datapath
@preconcurrency import Foundation
import KubernetesAPI
import Logging
import NetAddress
import NodeAgent
import NodeStore

/// `swiftpath-agent`: the node agent the DaemonSet runs (see deploy/kubernetes).
@main
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftpath-agent",
        abstract: "Keeps a node's swiftpath datapath, plugin, conflist and routes what the Kubernetes API says.",
        subcommands: [Run.self, InstallCommand.self, UninstallCommand.self], defaultSubcommand: Run.self)
}

/// The options every subcommand shares: where things live on the node, and its settings.
struct NodeOptions: ParsableArguments {
    @Option(help: "This node's name (default: $NODE_NAME)") var nodeName: String?
    @Option(help: "The host's CNI bin folder") var cniBinDir = "/opt/cni/bin"
    @Option(help: "The host's CNI conf folder") var cniConfDir = "/etc/cni/net.d"
    @Option(help: "The conflist's file name") var conflistName = "10-swiftpath.conflist"
    @Option(help: "The plugin binary to install (default: swiftpath beside this executable)") var pluginBinary: String?
    @Option(help: "The store's folder in bpffs") var storeRoot = StoreLayout.defaultRoot
    @Option(parsing: .upToNextOption, help: "Uplinks (default: the devices of the default routes)") var device: [String] = []
    @Option(help: "The socket LB's cgroup v2 directory (default: the cgroup2 mount)") var cgroupRoot: String?
    @Option(help: "The pods' MTU (default: the first uplink's)") var mtu: Int?
    @Option(parsing: .upToNextOption, help: "The cluster's pod CIDRs (default: $SWIFTPATH_CLUSTER_CIDRS, separated by commas or spaces)")
    var clusterCIDR: [String] = []
    @Flag(help: "Masquerade pod traffic leaving the cluster CIDRs (default: $SWIFTPATH_MASQUERADE == true)") var masquerade = false
    @Option(parsing: .upToNextOption, help: "The cluster's service CIDRs, where no external address may lie (default: $SWIFTPATH_SERVICE_CIDRS, separated by commas or spaces)")
    var serviceCIDR: [String] = []
    @Option(name: .customLong("external-ip-cidrs"),
            help: ArgumentHelp("CIDRs where Services' externalIPs may lie, comma-separated (default: $SWIFTPATH_EXTERNAL_IP_CIDRS; empty: none)",
                               discussion: "Node addresses, pod and service ranges and special addresses are refused whatever this allows."))
    var externalIPCIDRs: String?
    @Flag(inversion: .prefixedNo,
          help: "Program the API's Services and EndpointSlices into the socket load balancer, which the agent then owns")
    var services = true
    @Option(help: "The conflist's cniVersion") var cniVersion = "1.0.0"
    @Option(help: "The plugin's log file, written into the conflist") var pluginLogFile: String?

    func settings() throws -> AgentSettings {
        guard let name = nodeName ?? ProcessInfo.processInfo.environment["NODE_NAME"], !name.isEmpty else {
            throw ValidationError("give --node-name or set NODE_NAME")
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var settings = AgentSettings(nodeName: name, pluginBinary: pluginBinary
                                     ?? executable.deletingLastPathComponent().appendingPathComponent("swiftpath").path)
        settings.cniBinDir = cniBinDir
        settings.cniConfDir = cniConfDir
        settings.conflistName = conflistName
        settings.storeRoot = storeRoot
        settings.devices = device.isEmpty ? nil : device
        settings.cgroupRoot = cgroupRoot
        settings.mtu = mtu
        // A DaemonSet passes ConfigMap values through the environment: a list cannot be one argument.
        let environment = ProcessInfo.processInfo.environment
        // Each value may itself be a list: kube-controller-manager's dual-stack form is one
        // comma-separated argument (10.244.0.0/16,fd00:10:244::/56).
        let cidrs = clusterCIDR.isEmpty ? Self.list(environment["SWIFTPATH_CLUSTER_CIDRS"]) : clusterCIDR.flatMap { Self.list($0) }
        settings.clusterCIDRs = try Self.prefixes(cidrs, option: "--cluster-cidr")
        settings.serviceCIDRs = try Self.prefixes(serviceCIDR.isEmpty ? Self.list(environment["SWIFTPATH_SERVICE_CIDRS"])
                                                      : serviceCIDR.flatMap { Self.list($0) },
                                                  option: "--service-cidr")
        settings.externalIPCIDRs = try Self.prefixes(Self.list(externalIPCIDRs ?? environment["SWIFTPATH_EXTERNAL_IP_CIDRS"]),
                                                     option: "--external-ip-cidrs")
        settings.masquerade = masquerade || environment["SWIFTPATH_MASQUERADE"] == "true"
        settings.cniVersion = cniVersion
        settings.services = services
        settings.pluginLogFile = pluginLogFile
        return settings
    }

    /// A list as a ConfigMap value or an option gives it: separated by commas or spaces.
    private static func list(_ text: String?) -> [String] {
        (text ?? "").split { $0 == "," || $0.isWhitespace }.map(String.init)
    }

    private static func prefixes(_ texts: [String], option: String) throws -> [IPPrefix] {
        try texts.map { text in
            guard let prefix = IPPrefix(text) else { throw ValidationError("\(option) \(text) is no CIDR") }
            return prefix
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the agent (the default).")

    @OptionGroup var node: NodeOptions
    @Option(help: "A kubeconfig file (out of cluster); default: the pod's service account") var kubeconfig: String?
    @Option(help: "The API server's address, https://HOST:PORT (needed in-cluster without kube-proxy; default: $SWIFTPATH_API_SERVER)")
    var apiServer: String?
    @Option(help: "Address of /healthz, /readyz and /metrics") var healthAddress = "127.0.0.1"
    @Option(help: "Port of /healthz, /readyz and /metrics") var healthPort = 9876
    @Option(help: "Seconds between full resyncs") var resyncSeconds = 300
    @Option(help: "Seconds a watch may stay silent before it is made again (bookmarks come about once a minute)")
    var watchIdleTimeout = 120
    @Option(help: "Seconds between reads of the datapath's figures that /metrics serves") var metricsInterval: UInt64 = 5
    @Option(help: "Seconds an idle TCP connection from outside (to a node port, external or LoadBalancer IP) is kept")
    var tcpTimeout: UInt64 = ConnectionTimeouts().tcpSeconds
    @Option(help: "Seconds such a TCP connection is kept after a RST or a FIN each way") var tcpClosingTimeout: UInt64 = ConnectionTimeouts().tcpClosingSeconds
    @Option(help: "Seconds an idle UDP flow from outside is kept") var udpTimeout: UInt64 = ConnectionTimeouts().udpSeconds

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = JSONLogHandler(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "swiftpath-agent")
        do {
            let limit = try OpenFileLimit.raiseToHard()
            logger.info("open file limit", metadata: ["soft": "\(limit.soft)", "hard": "\(limit.hard)"])
        } catch {
            logger.warning("open file limit not raised", metadata: ["error": "\(error)"])
        }
        var settings = try node.settings()
        settings.healthHost = healthAddress
        settings.healthPort = healthPort
        settings.resyncSeconds = resyncSeconds
        settings.watchIdleSeconds = max(1, watchIdleTimeout)
        settings.metricsSnapshotSeconds = max(1, metricsInterval)
        settings.connectionTimeouts.tcpSeconds = tcpTimeout
        settings.connectionTimeouts.tcpClosingSeconds = tcpClosingTimeout
        settings.connectionTimeouts.udpSeconds = udpTimeout
        if let problem = settings.pluginProblems.first { throw ValidationError("the plugin would refuse this node's conflist: \(problem)") }
        // A ConfigMap key left empty means none, not a URL.
        let server = (apiServer ?? ProcessInfo.processInfo.environment["SWIFTPATH_API_SERVER"]).flatMap { $0.isEmpty ? nil : $0 }
        let access = try kubeconfig.map { try ClusterAccess.kubeconfig(at: $0, server: server) }
            ?? ClusterAccess.inCluster(server: server, environment: ProcessInfo.processInfo.environment)
        let client = try KubeClient(access: access, readIdleTimeout: .seconds(Int64(settings.watchIdleSeconds)))
        let agent = Agent(settings: settings, client: client, logger: logger)
        let health = try await HealthServer.start(host: settings.healthHost, port: settings.healthPort, agent: agent)
        logger.info("agent started", metadata: ["node": "\(settings.nodeName)", "apiServer": "\(access.server)",
                                                "health": "\(settings.healthHost):\(health.port ?? 0)"])
        // The agent runs until the first SIGTERM or SIGINT, which cancels it.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await agent.run() }
            group.addTask { await stopSignal() }
            await group.next()
            group.cancelAll()
        }
        await health.stop()
        await client.shutdown()
        logger.info("agent stopped; the datapath, plugin and conflist stay in place")
    }
}

struct InstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "install",
                                                    abstract: "Install the plugin binary into the host's CNI bin folder, and nothing else.")

    @OptionGroup var node: NodeOptions

    func run() throws {
        var options = node
        options.nodeName = options.nodeName ?? "-"   // installing names no node
        let settings = try options.settings()
        print(try PluginInstallation.install(settings) ? "installed \(settings.installedPlugin)" : "\(settings.installedPlugin) is up to date")
    }
}

struct UninstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "uninstall",
                                                    abstract: "Remove the conflist, the plugin, swiftpath's routes and the datapath from the node.")

    @OptionGroup var node: NodeOptions

    func run() throws {
        for line in try Uninstall.run(settings: node.settings()) { print(line) }
    }
}

/// Returns at the first SIGTERM or SIGINT, or when cancelled. Their default action (ending the
/// process) is turned off: the agent ends by returning, its loops cancelled.
func stopSignal() async {
    let (signals, received) = AsyncStream.makeStream(of: Int32.self)
    let sources = [SIGTERM, SIGINT].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { received.yield(number) }
        source.resume()
        return source
    }
    defer { sources.forEach { $0.cancel() } }
    for await _ in signals { return }
}
