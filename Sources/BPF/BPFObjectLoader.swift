// SPDX-License-Identifier: Apache-2.0
import CLibBPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Loads a BPF ELF object from memory with libbpf, sharing the maps pinned in `mapFolder`.
public struct BPFObjectLoader {
    /// Who the maps in `mapFolder` belong to.
    public enum MapPinning: Sendable {
        /// This object owns the folder: every map is pinned there. A pinned map whose type, sizes,
        /// entries and flags match the object's is reused, entries and all; one that no longer
        /// matches is unpinned and created anew; a missing one is created (both reported in
        /// `freshMaps`, so that the caller can refill them before anything uses the new programs).
        case owner
        /// This object borrows the owner's maps: those pinned in the folder are reused and must
        /// match; the object's other maps are its own, unpinned, gone when the last user closes them.
        case guest
    }

    public struct Loaded {
        public let programs: [String: BPFProgram]
        /// The maps that start empty: created because none was pinned, or replacing one of
        /// another layout.
        public let freshMaps: [String]
        /// A guest's own maps, by name.
        public let privateMaps: [String: BPFMap]

        /// The guest's own map named by `layout`, checked against it.
        public func privateMap(_ layout: BPFMap.Layout) throws(BPFError) -> BPFMap {
            guard let map = privateMaps[layout.name] else { throw BPFError("the BPF object has no map \(layout.name) of its own") }
            return try map.checked(layout)
        }
    }

    /// `sizes` gives some maps another number of entries than the object declares: they take it
    /// when made anew, and a pinned one of any size is theirs to reuse (a size is chosen once, by
    /// whoever makes the map, and kept across builds).
    public static func load(name: String, bytes: [UInt8], mapFolder: String,
                            pinning: MapPinning = .owner, sizes: [String: UInt32] = [:]) throws(BPFError) -> Loaded {
        let object = try open(name: name, bytes: bytes)
        defer { bpf_object__close(object) }

        var fresh: [String] = [], unpinned: [OpaquePointer] = []
        var map = bpf_object__next_map(object, nil)
        while let current = map {
            map = bpf_object__next_map(object, current)
            let mapName = String(cString: bpf_map__name(current))
            let path = "\(mapFolder)/\(mapName)"
            if let size = sizes[mapName] {
                try libbpf(bpf_map__set_max_entries(current, try pinnedMaxEntries(at: path) ?? size), "size map \(mapName)")
            }
            switch (pinning, try pinnedMapMatches(current, at: path)) {
            case (.guest, nil):
                unpinned.append(current)
                continue
            case (.guest, false?):
                throw BPFError("pinned map \(path) is not the one BPF object \(name) expects: it comes from another build")
            case (.owner, false?):
                guard unlink(path) == 0 else { throw BPFError("unpin map \(path) of another layout", .current) }
                fresh.append(mapName)
            case (.owner, nil):
                fresh.append(mapName)
            case (_, true?):
                break
            }
            let status = bpf_map__set_pin_path(current, path)
            try libbpf(status, "set pin path \(path)")
        }

        let loaded = bpf_object__load(object)
        try libbpf(loaded, "load BPF object \(name) (verifier log on stderr)", kind: .program)

        var programs: [String: BPFProgram] = [:]
        var program = bpf_object__next_program(object, nil)
        while let current = program {
            // The object's descriptors close with it: keep a duplicate per program.
            let fd = dup(bpf_program__fd(current))
            guard fd >= 0 else { throw BPFError("keep program descriptor", .current) }
            programs[String(cString: bpf_program__name(current))] = BPFProgram(descriptor: FileDescriptor(rawValue: fd))
            program = bpf_object__next_program(object, current)
        }
        var privateMaps: [String: BPFMap] = [:]
        for current in unpinned {
            let fd = dup(bpf_map__fd(current))
            guard fd >= 0 else { throw BPFError("keep map descriptor", .current) }
            let layout = BPFMap.Layout(name: String(cString: bpf_map__name(current)), type: bpf_map__type(current),
                                       keySize: Int(bpf_map__key_size(current)), valueSize: Int(bpf_map__value_size(current)),
                                       maxEntries: Int(bpf_map__max_entries(current)))
            privateMaps[layout.name] = BPFMap(unpinned: FileDescriptor(rawValue: fd), layout: layout, of: name)
        }
        return Loaded(programs: programs, freshMaps: fresh, privateMaps: privateMaps)
    }

    /// How a map the object declares stands in the folder it would be pinned in.
    public enum PinState: Sendable, Equatable {
        case matching, missing, mismatched
    }

    /// The state of each of the object's maps in `mapFolder`, found without loading anything
    /// (what `datapath status` reports and `datapath load` repairs).
    /// Maps named in `resizable` match whatever their number of entries (see `load`).
    public static func pinnedMaps(of name: String, bytes: [UInt8], in mapFolder: String,
                                  resizable: Set<String> = []) throws(BPFError) -> [String: PinState] {
        let object = try open(name: name, bytes: bytes)
        defer { bpf_object__close(object) }
        var states: [String: PinState] = [:]
        var map = bpf_object__next_map(object, nil)
        while let current = map {
            map = bpf_object__next_map(object, current)
            let mapName = String(cString: bpf_map__name(current))
            if resizable.contains(mapName), let size = try pinnedMaxEntries(at: "\(mapFolder)/\(mapName)") {
                try libbpf(bpf_map__set_max_entries(current, size), "size map \(mapName)")
            }
            states[mapName] = switch try pinnedMapMatches(current, at: "\(mapFolder)/\(mapName)") {
            case nil: .missing
            case true?: .matching
            case false?: .mismatched
            }
        }
        return states
    }

    private static func open(name: String, bytes: [UInt8]) throws(BPFError) -> OpaquePointer {
        var options = bpf_object_open_opts()
        options.sz = libbpfOptionsSize(\bpf_object_open_opts.kernel_log_level)
        let object: OpaquePointer? = name.withCString { objectName in
            options.object_name = objectName
            return bytes.withUnsafeBytes { bpf_object__open_mem($0.baseAddress, $0.count, &options) }
        }
        guard let object, libbpf_get_error(UnsafeRawPointer(object)) == 0 else {
            throw BPFError("open BPF object \(name)", .current)
        }
        return object
    }

    /// The number of entries of the map pinned at `path`, or nil when nothing is pinned there.
    private static func pinnedMaxEntries(at path: String) throws(BPFError) -> UInt32? {
        let fd = bpf_obj_get(path)
        if fd < 0 { return nil }
        defer { close(fd) }
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        try libbpf(bpf_obj_get_info_by_fd(fd, &info, &length), "inspect pinned map \(path)")
        return info.max_entries
    }

    /// Whether the map pinned at `path` is one libbpf can reuse for `map`; nil when nothing is
    /// pinned there.
    private static func pinnedMapMatches(_ map: OpaquePointer, at path: String) throws(BPFError) -> Bool? {
        let fd = bpf_obj_get(path)
        if fd < 0 { return nil }
        defer { close(fd) }
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        let status = bpf_obj_get_info_by_fd(fd, &info, &length)
        try libbpf(status, "inspect pinned map \(path)")
        return info.type == bpf_map__type(map).rawValue && info.key_size == bpf_map__key_size(map)
            && info.value_size == bpf_map__value_size(map) && info.max_entries == bpf_map__max_entries(map)
            && info.map_flags == bpf_map__map_flags(map)
    }
}
