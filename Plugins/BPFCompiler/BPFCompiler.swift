// SPDX-License-Identifier: Apache-2.0
import Foundation
import PackagePlugin

/// Compiles the BPF objects of a target during the normal `swift build` and embeds each in the
/// binary as a generated Swift file. A `.c` file at the top of the target's folder is an object of
/// its own; a subfolder is one object of all its `.c` files (one per hook, linked by libbpf's
/// static linker), named after the folder.
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
        // Every header and source can change every object: list them all as inputs.
        let shared = try FileManager.default.subpathsOfDirectory(atPath: library.path)
            .filter { $0.hasSuffix(".h") || $0.hasSuffix(".c") }.map { library.appendingPathComponent($0) }
        var objects: [String: [String]] = [:]
        for file in files where file.hasSuffix(".c") {
            let parts = file.split(separator: "/")
            switch parts.count {
            case 1: objects[String(file.dropLast(2)), default: []].append(file)
            case 2 where ["lib", "abi", "include"].contains(String(parts[0])) == false: objects[String(parts[0]), default: []].append(file)
            default: continue
            }
        }
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
        return commands + objects.keys.sorted().map { name in
            let sources = objects[name]!.sorted().map { folder.appendingPathComponent($0) }
            let output = context.pluginWorkDirectoryURL.appendingPathComponent("\(name).bpf.swift")
            return .buildCommand(
                displayName: "Compiling BPF object \(name)",
                executable: embed.url,
                arguments: [clang.url.path, output.path, name, importing] + sources.map(\.path) + [
                    "--",
                    // The few arch-specific UAPI headers, for BPF: no host multiarch folder.
                    "-I", library.appendingPathComponent("include").path,
                    "-I", library.appendingPathComponent("lib").path,
                    "-I", library.appendingPathComponent("abi/include").path],
                inputFiles: sources + shared,
                outputFiles: [output])
        }
    }
}
