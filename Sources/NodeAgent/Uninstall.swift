// SPDX-License-Identifier: Apache-2.0
import BPF
import Datapath
import Netlink
import NodeStore
import SystemCallSupport
#if canImport(Glibc)
import Glibc
#endif

/// Removes what the agent installed on the node: the conflist first (the node stops taking
/// pods), the plugin binary, swiftpath's routes, and the datapath. Pods already running keep
/// their veths and addresses and fall back to the kernel's routing.
public enum Uninstall {
    public static func run(settings: AgentSettings) throws -> [String] {
        var done: [String] = []
        if unlink(settings.conflistPath) == 0 { done.append("removed \(settings.conflistPath)") }
        if unlink(settings.installedPlugin) == 0 { done.append("removed \(settings.installedPlugin)") }
        let netlink = try NetlinkSocket()
        let routes = try NodeRoutes.removeAll(netlink: netlink)
        done.append("removed \(routes) routes of proto \(NodeRoutes.proto.rawValue)")
        if let store = try EndpointStore.openExisting(root: settings.storeRoot), let datapath = Datapath.openExisting(store: store) {
            try datapath.unload(podAttachments: [], netlink: netlink)
            done.append("unloaded the datapath from \(settings.storeRoot)")
        }
        return done
    }
}
