import CLibBPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Loads a BPF ELF object from memory with libbpf, its maps pinned in `mapFolder`.
///
/// A pinned map whose type, sizes, entries and flags match the object's is reused, entries and all;
/// one that no longer matches is unpinned and created anew (reported in `replacedMaps`, so that
/// the caller can refill it before anything uses the new programs).
public struct BPFObjectLoader {
    public struct Loaded {
        public let programs: [String: BPFProgram]
        public let replacedMaps: [String]
    }

    public static func load(name: String, bytes: [UInt8], mapFolder: String) throws(StoreError) -> Loaded {
        var options = bpf_object_open_opts()
        options.sz = libbpfOptionsSize(\bpf_object_open_opts.kernel_log_level)
        let object: OpaquePointer? = name.withCString { objectName in
            options.object_name = objectName
            return bytes.withUnsafeBytes { bpf_object__open_mem($0.baseAddress, $0.count, &options) }
        }
        guard let object, libbpf_get_error(UnsafeRawPointer(object)) == 0 else {
            throw StoreError("open BPF object \(name)", .current)
        }
        defer { bpf_object__close(object) }

        var replaced: [String] = []
        var map = bpf_object__next_map(object, nil)
        while let current = map {
            let mapName = String(cString: bpf_map__name(current))
            let path = "\(mapFolder)/\(mapName)"
            if try !pinnedMapMatches(current, at: path) {
                if unlink(path) == 0 { replaced.append(mapName) }
            }
            let status = bpf_map__set_pin_path(current, path)
            guard status == 0 else { throw StoreError("set pin path \(path)", Errno(rawValue: -status)) }
            map = bpf_object__next_map(object, current)
        }

        let loaded = bpf_object__load(object)
        guard loaded == 0 else { throw StoreError("load BPF object \(name) (verifier log on stderr)", Errno(rawValue: -loaded)) }

        var programs: [String: BPFProgram] = [:]
        var program = bpf_object__next_program(object, nil)
        while let current = program {
            // The object's descriptors close with it: keep a duplicate per program.
            let fd = dup(bpf_program__fd(current))
            guard fd >= 0 else { throw StoreError("keep program descriptor", .current) }
            programs[String(cString: bpf_program__name(current))] = BPFProgram(descriptor: FileDescriptor(rawValue: fd))
            program = bpf_object__next_program(object, current)
        }
        return Loaded(programs: programs, replacedMaps: replaced)
    }

    /// Whether the map pinned at `path` (if any) is one libbpf can reuse for `map`.
    private static func pinnedMapMatches(_ map: OpaquePointer, at path: String) throws(StoreError) -> Bool {
        let fd = bpf_obj_get(path)
        if fd < 0 { return true }   // nothing pinned: libbpf creates and pins it
        defer { close(fd) }
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        let status = bpf_obj_get_info_by_fd(fd, &info, &length)
        guard status == 0 else { throw StoreError("inspect pinned map \(path)", Errno(rawValue: -status)) }
        return info.type == bpf_map__type(map).rawValue && info.key_size == bpf_map__key_size(map)
            && info.value_size == bpf_map__value_size(map) && info.max_entries == bpf_map__max_entries(map)
            && info.map_flags == bpf_map__map_flags(map)
    }
}
