// SPDX-License-Identifier: Apache-2.0
import CLibBPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A BPF map pinned in bpffs, seen through libbpf's syscall wrappers.
/// Keys and values are fixed-size byte strings; the table types above give them meaning.
public final class BPFMap {
    public let path: String
    public let keySize: Int
    public let valueSize: Int
    let descriptor: OwnedDescriptor

    public struct Layout: Sendable {
        public let name: String
        public let type: bpf_map_type
        public let keySize: Int
        public let valueSize: Int
        public let maxEntries: Int

        /// Why a map with these sizes cannot be read as this layout, or nil when it can.
        func mismatch(keySize: Int, valueSize: Int, of what: String) -> BPFError? {
            guard keySize != self.keySize || valueSize != self.valueSize else { return nil }
            return BPFError("\(what) has key/value sizes \(keySize)/\(valueSize), this swiftpath expects \(self.keySize)/\(self.valueSize)",
                              kind: .layoutMismatch)
        }

        public init(name: String, type: bpf_map_type, keySize: Int, valueSize: Int, maxEntries: Int) {
            self.name = name
            self.type = type
            self.keySize = keySize
            self.valueSize = valueSize
            self.maxEntries = maxEntries
        }
    }

    private init(path: String, descriptor: FileDescriptor, layout: Layout) {
        self.path = path
        self.descriptor = OwnedDescriptor(descriptor)
        self.keySize = layout.keySize
        self.valueSize = layout.valueSize
    }

    /// This map, checked against `layout` as `open(at:_:)` checks a pin.
    func checked(_ layout: Layout) throws(BPFError) -> BPFMap {
        if let mismatch = layout.mismatch(keySize: keySize, valueSize: valueSize, of: "map \(path)") { throw mismatch }
        return self
    }

    /// A map no pin names, held by its descriptor alone (a guest object's own map).
    convenience init(unpinned descriptor: FileDescriptor, layout: Layout, of object: String) {
        self.init(path: "\(object):\(layout.name)", descriptor: descriptor, layout: layout)
    }

    /// Opens the map pinned at `path`, or creates and pins it. A concurrent run that pins first wins
    /// and both end up with the same map. A pinned map whose sizes differ from `layout` is refused.
    public static func openOrCreate(at path: String, _ layout: Layout) throws(BPFError) -> BPFMap {
        if let map = try open(at: path, layout) { return map }
        var options = bpf_map_create_opts()
        options.sz = libbpfOptionsSize(\bpf_map_create_opts.map_ifindex)
        // Entries are allocated as pods come, not up front: an idle node pays for nothing.
        options.map_flags = UInt32(BPF_F_NO_PREALLOC)
        let fd = bpf_map_create(layout.type, layout.name, UInt32(layout.keySize), UInt32(layout.valueSize),
                                UInt32(layout.maxEntries), &options)
        try libbpf(fd, "create map \(layout.name)")
        let descriptor = FileDescriptor(rawValue: fd)
        let pinned = bpf_obj_pin(fd, path)
        if pinned == 0 { return BPFMap(path: path, descriptor: descriptor, layout: layout) }
        try? descriptor.close()
        if -pinned == EEXIST, let map = try open(at: path, layout) { return map }
        throw BPFError("pin map at \(path)", libbpfErrno(pinned))
    }

    /// The map pinned at `path`, or nil when nothing is pinned there.
    public static func open(at path: String, _ layout: Layout) throws(BPFError) -> BPFMap? {
        guard let descriptor = try openPinned(path, "map") else { return nil }
        let fd = descriptor.rawValue
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        let status = bpf_obj_get_info_by_fd(fd, &info, &length)
        guard status == 0 else {
            try? descriptor.close()
            throw BPFError("inspect pinned map \(path)", libbpfErrno(status))
        }
        if let mismatch = layout.mismatch(keySize: Int(info.key_size), valueSize: Int(info.value_size), of: "pinned map \(path)") {
            try? descriptor.close()
            throw mismatch
        }
        return BPFMap(path: path, descriptor: descriptor, layout: layout)
    }

    /// How many entries the kernel made the map for (as loaded, which a loader may have resized).
    public var maxEntries: Int {
        get throws(BPFError) {
            var info = bpf_map_info()
            var length = UInt32(MemoryLayout<bpf_map_info>.size)
            try libbpf(bpf_obj_get_info_by_fd(descriptor.rawValue, &info, &length), "inspect map \(path)")
            return Int(info.max_entries)
        }
    }

    public func lookup(_ key: [UInt8]) throws(BPFError) -> [UInt8]? {
        precondition(key.count == keySize)
        var value = [UInt8](repeating: 0, count: valueSize)
        let status = bpf_map_lookup_elem(descriptor.rawValue, key, &value)
        if status == 0 { return value }
        if -status == ENOENT { return nil }
        throw BPFError("look up in \(path)", libbpfErrno(status))
    }

    /// Inserts `key` only if absent. Returns false when the key was already there.
    public func insert(_ key: [UInt8], _ value: [UInt8]) throws(BPFError) -> Bool {
        let status = update(key, value, flags: UInt64(BPF_NOEXIST))
        if status == 0 { return true }
        if -status == EEXIST { return false }
        throw BPFError("insert into \(path)", libbpfErrno(status))
    }

    public func upsert(_ key: [UInt8], _ value: [UInt8]) throws(BPFError) {
        let status = update(key, value, flags: UInt64(BPF_ANY))
        try libbpf(status, "update \(path)")
    }

    private func update(_ key: [UInt8], _ value: [UInt8], flags: UInt64) -> Int32 {
        precondition(key.count == keySize && value.count == valueSize)
        return bpf_map_update_elem(descriptor.rawValue, key, value, flags)
    }

    /// Deletes `key`. Returns false when it was not there.
    @discardableResult
    public func delete(_ key: [UInt8]) throws(BPFError) -> Bool {
        let status = bpf_map_delete_elem(descriptor.rawValue, key)
        if status == 0 { return true }
        if -status == ENOENT { return false }
        throw BPFError("delete from \(path)", libbpfErrno(status))
    }

    /// Every key and value. Taken as a snapshot: callers may change the map while they walk it.
    public func entries() throws(BPFError) -> [(key: [UInt8], value: [UInt8])] {
        var result: [(key: [UInt8], value: [UInt8])] = []
        for key in try rawKeys() {
            if let value = try lookup(key) { result.append((key, value)) }
        }
        return result
    }

    /// Every key and value, read in batches (BPF_MAP_LOOKUP_BATCH): a few system calls for a map
    /// of any size, where `entries()` makes two per entry. For hash maps; a snapshot as `entries()`
    /// is, each batch consistent in itself.
    public func batchedEntries(batchSize: Int = 4096) throws(BPFError) -> [(key: [UInt8], value: [UInt8])] {
        var result: [(key: [UInt8], value: [UInt8])] = []
        var keys = [UInt8](repeating: 0, count: keySize * batchSize)
        var values = [UInt8](repeating: 0, count: valueSize * batchSize)
        // Where the next batch starts: opaque to the caller (a bucket index, for hash maps).
        var position: UInt64 = 0, next: UInt64 = 0
        var first = true
        while true {
            var count = UInt32(batchSize)
            let status = withUnsafeMutablePointer(to: &position) { position in
                bpf_map_lookup_batch(descriptor.rawValue, first ? nil : UnsafeMutableRawPointer(position), &next, &keys, &values,
                                     &count, nil)
            }
            let finished = -status == ENOENT
            if !finished { try libbpf(status, "read \(path) in batches") }
            for index in 0..<Int(count) {
                result.append((Array(keys[index * keySize..<(index + 1) * keySize]),
                               Array(values[index * valueSize..<(index + 1) * valueSize])))
            }
            if finished { return result }
            position = next
            first = false
        }
    }

    /// Every key, walked with BPF_MAP_GET_NEXT_KEY.
    public func rawKeys() throws(BPFError) -> [[UInt8]] {
        var keys: [[UInt8]] = []
        var next = [UInt8](repeating: 0, count: keySize)
        while true {
            let status: Int32
            if let previous = keys.last { status = bpf_map_get_next_key(descriptor.rawValue, previous, &next) }
            else { status = bpf_map_get_next_key(descriptor.rawValue, nil, &next) }
            if -status == ENOENT { return keys }
            try libbpf(status, "walk \(path)")
            keys.append(next)
        }
    }
}

extension BPFMap {
    /// Typed access for maps whose key and value are C structs of the datapath ABI. Keys are copied
    /// as bytes, which is why the ABI spells out every padding byte (Swift leaves implicit padding
    /// undefined).
    public func lookup<Key, Value>(_ key: Key, as type: Value.Type) throws(BPFError) -> Value? {
        try lookup(Self.bytes(of: key)).map { bytes in bytes.withUnsafeBytes { $0.loadUnaligned(as: Value.self) } }
    }

    public func upsert<Key, Value>(_ key: Key, _ value: Value) throws(BPFError) {
        try upsert(Self.bytes(of: key), Self.bytes(of: value))
    }

    @discardableResult
    public func delete<Key>(_ key: Key) throws(BPFError) -> Bool {
        try delete(Self.bytes(of: key))
    }

    /// The value of `key` on every possible CPU, for per-CPU maps.
    public func lookupPerCPU<Key, Value>(_ key: Key, as type: Value.Type) throws(BPFError) -> [Value] {
        let cpus = Int(libbpf_num_possible_cpus())
        let stride = (MemoryLayout<Value>.size + 7) & ~7
        var values = [UInt8](repeating: 0, count: stride * max(cpus, 1))
        let status = Self.bytes(of: key).withUnsafeBytes { key in
            bpf_map_lookup_elem(descriptor.rawValue, key.baseAddress, &values)
        }
        if -status == ENOENT { return [] }
        try libbpf(status, "look up in \(path)")
        return (0..<cpus).map { cpu in values.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: cpu * stride, as: Value.self) } }
    }

    /// Deletes every entry for which `matches` says so, by the keys' bytes as the map holds them.
    public func removeAll<Key, Value>(keys: Key.Type, values: Value.Type,
                                      where matches: (Key, Value) -> Bool) throws(BPFError) {
        for raw in try rawKeys() {
            guard let value = try lookup(raw) else { continue }
            let key = raw.withUnsafeBytes { $0.loadUnaligned(as: Key.self) }
            if matches(key, value.withUnsafeBytes { $0.loadUnaligned(as: Value.self) }) { try delete(raw) }
        }
    }

    /// Every key of the map, decoded as `Key`.
    public func keys<Key>(as type: Key.Type) throws(BPFError) -> [Key] {
        try rawKeys().map { $0.withUnsafeBytes { $0.loadUnaligned(as: Key.self) } }
    }

    static func bytes<T>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }
}

/// The BPF object (map, program, link) pinned at `path`, or nil when nothing is pinned there.
func openPinned(_ path: String, _ kind: String) throws(BPFError) -> FileDescriptor? {
    let fd = bpf_obj_get(path)
    if fd >= 0 { return FileDescriptor(rawValue: fd) }
    if -fd == ENOENT { return nil }
    throw BPFError("open pinned \(kind) \(path)", libbpfErrno(fd))
}
