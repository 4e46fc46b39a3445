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
        #elseif arch(arm64)
        let multiarch = "aarch64-linux-gnu"
        #endif
        // Where the linker looks: Package.swift's -L first, then the system's folders.
        let folders = ["\(context.package.directoryURL.path)/.build-deps/libmnl/usr/lib/\(multiarch)",
                       "/usr/lib/\(multiarch)", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
        let missing = ["libmnl.a", "libbpf.a", "libelf.a", "libz.a"].filter { archive in
            !folders.contains { FileManager.default.fileExists(atPath: "\($0)/\(archive)") }
        }
        guard missing.isEmpty else { throw Missing(archives: missing) }
        return []
    }
}
