// SPDX-License-Identifier: Apache-2.0
import Foundation
import PackagePlugin

/// Stops the build of the static plugin at once, naming what to run, when an archive it links is
/// missing: the linker would only say `cannot find -lmnl` after everything else was compiled.
/// Debian 12 ships no libmnl.a; scripts/setup.sh puts one in .build-deps (see Package.swift).
@main
struct StaticLibraries: BuildToolPlugin {
    struct Missing: Error, CustomStringConvertible {
        let archives: [String]
        var description: String {
            "the static plugin links \(archives.joined(separator: ", ")), not found: run `bash scripts/setup.sh` once "
                + "(as root: it installs libbpf-dev and the rest, and fetches the libmnl.a Debian 12 lacks into .build-deps)"
        }
    }

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        #if arch(x86_64)
        let multiarch = "x86_64-linux-gnu"
        #else
        let multiarch = "aarch64-linux-gnu"
        #endif
        let package = context.package.directoryURL.path
        let archives = ["\(package)/.build-deps/libmnl/usr/lib/\(multiarch)/libmnl.a",
                        "/usr/lib/\(multiarch)/libbpf.a", "/usr/lib/\(multiarch)/libelf.a", "/usr/lib/\(multiarch)/libz.a"]
        let missing = archives.filter { !FileManager.default.fileExists(atPath: $0) }
        guard missing.isEmpty else { throw Missing(archives: missing) }
        return []
    }
}
