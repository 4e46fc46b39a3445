// SPDX-License-Identifier: Apache-2.0
import ArgumentParser

/// `swiftpath` run by an operator (no CNI_COMMAND in the environment).
public struct SwiftpathCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "swiftpath",
        abstract: "A CNI plugin with a BPF datapath. Run with CNI_COMMAND set, it speaks CNI; without, it is this CLI.",
        subcommands: [EndpointCommand.self, ServiceCommand.self, DatapathCommand.self, StatsCommand.self])

    public init() {}
}
