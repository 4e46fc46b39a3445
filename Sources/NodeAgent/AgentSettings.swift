// SPDX-License-Identifier: Apache-2.0
import Datapath
import NetAddress
import NodeStore
import PluginConfig

/// What the agent is told: where the node's files live, and every node-level setting of the
/// plugin, which it carries into the conflist it writes (so that the plugin's ADD and the agent
/// make the node the same).
public struct AgentSettings: Sendable {
    public var nodeName: String
    /// The host's CNI folders: the plugin binary goes into `cniBinDir`, the conflist into `cniConfDir`.
    public var cniBinDir = "/opt/cni/bin"
    public var cniConfDir = "/etc/cni/net.d"
    public var conflistName = "10-swiftpath.conflist"
    /// The plugin binary the agent installs (the image's copy).
    public var pluginBinary: String
    /// The network's name in the conflist.
    public var networkName = "swiftpath"
    /// The conflist's cniVersion: 1.0.0, which every runtime in use reads (containerd 1.6 and 1.7
    /// and podman 4 carry a libcni that fails every pod on a 1.1.0 result).
    public var cniVersion = "1.0.0"
    public var storeRoot = StoreLayout.defaultRoot
    /// The uplinks; nil: the devices of the default routes, as the plugin picks them.
    public var devices: [String]?
    /// The socket LB's cgroup v2 directory; nil: the host's cgroup2 mount.
    public var cgroupRoot: String?
    /// The pods' MTU; nil: the first uplink's.
    public var mtu: Int?
    /// The cluster's pod CIDRs: never masqueraded.
    public var clusterCIDRs: [IPPrefix] = []
    public var masquerade = false
    /// The cluster's service (ClusterIP) ranges, when the operator gives them: no Service's
    /// external address may lie in them.
    public var serviceCIDRs: [IPPrefix] = []
    /// Where Services' `spec.externalIPs` may lie; empty: nowhere, none is programmed (see
    /// `ServiceAddressPolicy`).
    public var externalIPCIDRs: [IPPrefix] = []
    /// The plugin's log file, written into the conflist; nil: none.
    public var pluginLogFile: String?
    /// Where /healthz, /readyz and /metrics are served.
    public var healthHost = "127.0.0.1"
    public var healthPort = 9876
    /// Whether the agent is the cluster's service proxy: Services and EndpointSlices from the API
    /// programmed into the socket load balancer, which it then owns (every service it holds that
    /// the API does not list is removed).
    public var services = true
    /// How often everything is reconciled again even when the API reports no change.
    public var resyncSeconds = 300
    /// How long a watch may stay silent before it is dropped and made again (the API server sends
    /// a bookmark about once a minute); thrice that without word, /healthz says so.
    public var watchIdleSeconds = 120
    /// How long connections from outside to node ports, external and LoadBalancer IPs are kept idle.
    public var connectionTimeouts = ConnectionTimeouts()

    /// How often the datapath's figures that /metrics serves are read (a scrape reads the last).
    public var metricsSnapshotSeconds: UInt64 = 5

    /// How often the agent looks for pods that ADD started on tc, to move them to their tcx links,
    /// besides the moment ADD asks (it watches the requests' folder).
    public var promotionMilliseconds: UInt64 = 100

    /// How long a pod waits on tc while other ADDs and DELs run: the tcx attach holds the RTNL lock
    /// through a grace period, which would stall them.
    public var promotionPatienceSeconds = 1.0

    /// How often the veths that DELs marked retired are deleted, as one group.
    public var retiredVethReapMilliseconds: UInt64 = 1000

    /// Every how many of those passes the retired group is deleted whether marked or not: a DEL
    /// killed between retiring its veth and marking it leaves one only such a pass finds.
    public var retiredVethSweepPasses = 60

    /// How often idle connections are looked for: often enough that the shortest timeout is
    /// kept to within half of it, at most every ten seconds.
    var connectionSweepSeconds: UInt64 {
        max(1, min(10, min(connectionTimeouts.tcpClosingSeconds, connectionTimeouts.udpSeconds) / 2))
    }

    public init(nodeName: String, pluginBinary: String) {
        self.nodeName = nodeName
        self.pluginBinary = pluginBinary
    }

    /// The plugin's settings for this node, as the conflist carries them (and ADD reads them back):
    /// the pods' MTU is `mtu` (the node's, when the agent was given none).
    func pluginSettings(mtu: Int?) -> PluginSettings {
        var plugin = PluginSettings()
        plugin.storeRoot = storeRoot
        plugin.logFile = pluginLogFile
        plugin.mtu = mtu
        plugin.devices = devices
        plugin.ipMasq = masquerade
        plugin.clusterCIDRs = clusterCIDRs
        plugin.socketLB.cgroupRoot = cgroupRoot
        return plugin
    }

    /// What the plugin would refuse in the conflist these settings make (a relative log file,
    /// masquerading without the cluster's CIDRs): the agent starts with none, rather than write a
    /// conflist every ADD rejects.
    public var pluginProblems: [String] { PluginSettings.parse(pluginSettings(mtu: mtu).networkConfigKeys).problems.map(\.description) }

    public var conflistPath: String { cniConfDir + "/" + conflistName }
    public var installedPlugin: String { cniBinDir + "/swiftpath" }
}
