// SPDX-License-Identifier: Apache-2.0
import Foundation
import NetAddress

/// The conflist the agent writes for its node: the plugin with the built-in allocator over the
/// node's pod CIDRs (one range per family), the node-level settings the agent was given, and the
/// `portMappings` capability (hostPort).
struct Conflist: Encodable, Equatable {
    struct Plugin: Encodable, Equatable {
        struct IPAM: Encodable, Equatable {
            struct Range: Encodable, Equatable { let subnet: String }
            let type = "swiftpath"
            let ranges: [Range]
        }

        struct SocketLB: Encodable, Equatable {
            let cgroupRoot: String
        }

        /// What the runtime passes in `runtimeConfig`: the pods' host ports.
        struct Capabilities: Encodable, Equatable {
            let portMappings = true
        }

        let type = "swiftpath"
        let capabilities = Capabilities()
        let bpffsRoot: String
        let logFile: String?
        let mtu: Int?
        let devices: [String]?
        let ipMasq: Bool
        let clusterCIDRs: [String]?
        let socketLB: SocketLB?
        let ipam: IPAM
    }

    let cniVersion: String
    let name: String
    let plugins: [Plugin]

    init(settings: AgentSettings, podCIDRs: [IPPrefix], mtu: Int?) {
        cniVersion = settings.cniVersion
        name = settings.networkName
        let clusterCIDRs = settings.clusterCIDRs.map(\.description)
        plugins = [Plugin(bpffsRoot: settings.storeRoot, logFile: settings.pluginLogFile, mtu: mtu, devices: settings.devices,
                          ipMasq: settings.masquerade, clusterCIDRs: clusterCIDRs.isEmpty ? nil : clusterCIDRs,
                          socketLB: settings.cgroupRoot.map(Plugin.SocketLB.init),
                          ipam: Plugin.IPAM(ranges: podCIDRs.map { Plugin.IPAM.Range(subnet: $0.description) }))]
    }

    /// The file's bytes: the same conflist always gives the same bytes, so an unchanged one is
    /// never rewritten.
    var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data()) + [UInt8(ascii: "\n")]
    }
}
