// SPDX-License-Identifier: Apache-2.0
import FoundationEssentials

/// A BPF object file compiled from `bpf/*.c` at build time and carried inside the binary, so the
/// installed plugin needs neither clang nor object files on the node.
public struct BPFObject: Sendable {
    public let name: String
    /// FNV-1a of the object's bytes: two builds with the same hash are the same datapath.
    public let hash: UInt64
    /// The maps the object declares, by name (read from its symbol table at build time).
    public let maps: [String]
    /// Its programs, by function name.
    public let programs: [String]
    /// Each program's section (`SEC("...")`), in the order of `programs`: its type and attach point.
    public let sections: [String]
    private let base64: StaticString

    public init(name: String, hash: UInt64, maps: [String], programs: [String], sections: [String], base64: StaticString) {
        self.name = name
        self.hash = hash
        self.maps = maps
        self.programs = programs
        self.sections = sections
        self.base64 = base64
    }

    /// The programs whose section starts with `prefix` ("cgroup/", "tc"), with their sections.
    public func programs(inSectionsStartingWith prefix: String) -> [(program: String, section: String)] {
        zip(programs, sections).filter { $0.1.hasPrefix(prefix) }.map { ($0.0, $0.1) }
    }

    /// The ELF object, ready for `bpf_object__open_mem`.
    public var bytes: [UInt8] {
        let text = base64.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }
        return Array(Data(base64Encoded: text) ?? Data())
    }
}
