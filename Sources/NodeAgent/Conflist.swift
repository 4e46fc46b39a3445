// SPDX-License-Identifier: Apache-2.0
import CNIProtocol
import NetAddress
import PluginConfig

/// The conflist the agent writes for its node: the plugin with the node-level settings the agent
/// was given (`PluginSettings`, as the plugin reads them back), the built-in allocator over the
/// node's pod CIDRs (one range per family), and the `portMappings` capability (hostPort).
struct Conflist: Equatable {
    let cniVersion: String
    let name: String
    let plugin: PluginSettings
    let podCIDRs: [IPPrefix]

    init(settings: AgentSettings, podCIDRs: [IPPrefix], mtu: Int?) {
        cniVersion = settings.cniVersion
        name = settings.networkName
        plugin = settings.pluginSettings(mtu: mtu)
        self.podCIDRs = podCIDRs
    }

    /// The plugin's entry: its own keys, the allocator, and what the runtime passes in `runtimeConfig`.
    var pluginEntry: [String: JSONValue] {
        plugin.networkConfigKeys.merging([
            "type": .string("swiftpath"),
            "capabilities": .object(["portMappings": .bool(true)]),
            "ipam": .object(["type": .string("swiftpath"), "ranges": .array(podCIDRs.map { .object(["subnet": .string($0.description)]) })]),
        ]) { own, _ in own }
    }

    /// The file's bytes: the same conflist always gives the same bytes, so an unchanged one is
    /// never rewritten.
    var bytes: [UInt8] {
        let file: JSONValue = .object(["cniVersion": .string(cniVersion), "name": .string(name), "plugins": .array([.object(pluginEntry)])])
        return JSONCoding.encode(file) + [UInt8(ascii: "\n")]
    }
}
