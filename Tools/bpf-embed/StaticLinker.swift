// SPDX-License-Identifier: Apache-2.0
import CLibBPF

/// libbpf's static linker: the object files of one BPF object's programs become one object, their
/// BTF merged, and what the shared headers declare weak (every map, the licence) merged into one.
enum StaticLinker {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func link(_ inputs: [String], into output: String) throws {
        guard let linker = bpf_linker__new(output, nil) else { throw Failure(description: "cannot create \(output)") }
        defer { bpf_linker__free(linker) }
        for input in inputs {
            let result = bpf_linker__add_file(linker, input, nil)
            guard result == 0 else { throw Failure(description: "linking \(input): error \(-result)") }
        }
        let result = bpf_linker__finalize(linker)
        guard result == 0 else { throw Failure(description: "writing \(output): error \(-result)") }
    }
}
