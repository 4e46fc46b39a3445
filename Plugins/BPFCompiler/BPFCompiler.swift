import Foundation
import PackagePlugin

/// Compiles every `bpf/*.c` with the toolchain's clang (`-target bpf`, BTF on) during the normal
/// `swift build` and embeds each object in the binary as a generated Swift file.
@main
struct BPFCompiler: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let folder = target.directoryURL
        let clang = try context.tool(named: "clang")
        let embed = try context.tool(named: "bpf-embed")
        let files = try FileManager.default.subpathsOfDirectory(atPath: folder.path)
        // Every header can change every object: list them all as inputs of each compile.
        let headers = files.filter { $0.hasSuffix(".h") }.map { folder.appendingPathComponent($0) }
        let sources = files.filter { $0.hasSuffix(".c") && !$0.contains("/") }.sorted()
        return sources.map { source in
            let name = String(source.dropLast(2))
            let output = context.pluginWorkDirectoryURL.appendingPathComponent("\(name).bpf.swift")
            return .buildCommand(
                displayName: "Compiling BPF \(source)",
                executable: embed.url,
                arguments: [clang.url.path, folder.appendingPathComponent(source).path, output.path, name,
                            "-I", folder.appendingPathComponent("lib").path,
                            "-I", folder.appendingPathComponent("abi/include").path],
                inputFiles: [folder.appendingPathComponent(source)] + headers,
                outputFiles: [output])
        }
    }
}
