// SPDX-License-Identifier: Apache-2.0
import Foundation
import PackagePlugin

/// Compiles every `bpf/*.c` with the toolchain's clang (`-target bpf`, BTF on) during the normal
/// `swift build` and embeds each object in the binary as a generated Swift file.
@main
struct BPFCompiler: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let folder = target.directoryURL
        // Every BPF target builds against the datapath's library and ABI headers.
        let library = context.package.directoryURL.appendingPathComponent("bpf")
        let clang = try context.tool(named: "clang")
        let embed = try context.tool(named: "bpf-embed")
        let files = try FileManager.default.subpathsOfDirectory(atPath: folder.path)
        // Every header and the datapath source can change every object: list them all as inputs.
        let shared = try FileManager.default.subpathsOfDirectory(atPath: library.path)
            .filter { $0.hasSuffix(".h") || $0.hasSuffix(".c") }.map { library.appendingPathComponent($0) }
        let sources = files.filter { $0.hasSuffix(".c") && !$0.contains("/") }.sorted()
        // Objects built outside BPFObjects extend its BPFObject type from another module.
        let importing = target.name == "BPFObjects" ? "-" : "BPFObjects"
        // The datapath's own module also gets the Swift side of the ABI's enums, generated from the C.
        var commands: [Command] = []
        if target.name == "BPFObjects" {
            let header = library.appendingPathComponent("abi/include/datapath_abi.h")
            let output = context.pluginWorkDirectoryURL.appendingPathComponent("PacketPath.swift")
            commands.append(.buildCommand(displayName: "Generating PacketPath from datapath_abi.h", executable: embed.url,
                                          arguments: ["--enum", header.path, "sp_path", "PacketPath", output.path],
                                          inputFiles: [header], outputFiles: [output]))
        }
        return commands + sources.map { source in
            let name = String(source.dropLast(2))
            let output = context.pluginWorkDirectoryURL.appendingPathComponent("\(name).bpf.swift")
            return .buildCommand(
                displayName: "Compiling BPF \(source)",
                executable: embed.url,
                arguments: [clang.url.path, folder.appendingPathComponent(source).path, output.path, name, importing,
                            // The few arch-specific UAPI headers, for BPF: no host multiarch folder.
                            "-I", library.appendingPathComponent("include").path,
                            "-I", library.appendingPathComponent("lib").path,
                            "-I", library.appendingPathComponent("abi/include").path],
                inputFiles: [folder.appendingPathComponent(source)] + shared,
                outputFiles: [output])
        }
    }
}
