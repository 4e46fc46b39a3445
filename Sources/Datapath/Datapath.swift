import BPFObjects
import BPFStore
import CDatapathABI
import CLibBPF
import NetAddress
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The node's BPF datapath as the store holds it: programs and maps pinned under
/// `<store>/datapath`, per-pod links under `<store>/endpoints/<host device>`, uplink links under
/// `<store>/uplinks/if<index>`.
///
/// Loading and verifying happens once per node (and again only when a different build of the
/// programs arrives); every later run just opens the pins.
public final class Datapath {
    public let storeRoot: String
    public let folder: String
    let podEgress: BPFProgram
    let uplinkIngress: BPFProgram
    let endpoints4: BPFMap
    let endpoints6: BPFMap
    let counterMap: BPFMap
    let node: BPFMap
    let cluster4: BPFMap
    let cluster6: BPFMap
    let uplinksMap: BPFMap
    let servicesMap: BPFMap
    let slotsMap: BPFMap

    static let programNames = (pod: "pod_egress", uplink: "uplink_ingress")

    private init(storeRoot: String) throws(StoreError) {
        self.storeRoot = storeRoot
        folder = storeRoot + "/datapath"
        guard let pod = try BPFProgram.pinned(at: "\(folder)/\(Self.programNames.pod)"),
              let uplink = try BPFProgram.pinned(at: "\(folder)/\(Self.programNames.uplink)") else {
            throw StoreError("the datapath programs are not pinned in \(folder)")
        }
        podEgress = pod
        uplinkIngress = uplink
        endpoints4 = try Self.map(folder, Layouts.endpoints4)
        endpoints6 = try Self.map(folder, Layouts.endpoints6)
        counterMap = try Self.map(folder, Layouts.counters)
        node = try Self.map(folder, Layouts.node)
        cluster4 = try Self.map(folder, Layouts.cluster4)
        cluster6 = try Self.map(folder, Layouts.cluster6)
        uplinksMap = try Self.map(folder, Layouts.uplinks)
        servicesMap = try Self.map(folder, Layouts.services)
        slotsMap = try Self.map(folder, Layouts.slots)
    }

    static func map(_ folder: String, _ layout: BPFMap.Layout) throws(StoreError) -> BPFMap {
        guard let map = try BPFMap.open(at: "\(folder)/\(layout.name)", layout) else {
            throw StoreError("the datapath map \(layout.name) is not pinned in \(folder)")
        }
        return map
    }

    /// Opens the node's datapath, first loading it, or upgrading it in place when the pinned one
    /// is another build than `object`. An upgrade swaps the program behind every pinned link
    /// atomically (BPF_LINK_UPDATE); maps whose layout is unchanged keep their entries, the
    /// endpoint maps are refilled from the store's records when their layout changed.
    public static func open(store: EndpointStore, object: BPFObject = .datapath) throws(StoreError) -> Datapath {
        if try loadedBuild(storeRoot: store.root) == object.hash { return try Datapath(storeRoot: store.root) }
        return try store.withLockOrThrow { () throws(StoreError) -> Datapath in
            // Another run may have upgraded while this one waited for the lock.
            if try loadedBuild(storeRoot: store.root) != object.hash {
                try install(object, store: store)
            }
            return try Datapath(storeRoot: store.root)
        }
    }

    /// The datapath already in the store, as it is (no load, no upgrade), or nil when there is
    /// none: what DEL, GC and the CLI use, which must not load programs just to look.
    public static func openExisting(storeRoot: String) throws(StoreError) -> Datapath? {
        guard try loadedBuild(storeRoot: storeRoot) != nil else { return nil }
        return try Datapath(storeRoot: storeRoot)
    }

    /// The hash of the build pinned in the store, or nil when there is none.
    public static func loadedBuild(storeRoot: String) throws(StoreError) -> UInt64? {
        guard let meta = try BPFMap.open(at: "\(storeRoot)/datapath/\(Layouts.meta.name)", Layouts.meta),
              let value = try meta.lookup(UInt32(0), as: sp_meta.self), value.object_hash != 0 else { return nil }
        return value.object_hash
    }

    private static func install(_ object: BPFObject, store: EndpointStore) throws(StoreError) {
        let folder = store.root + "/datapath"
        try makeFolder(folder)
        let loaded = try BPFObjectLoader.load(name: object.name, bytes: object.bytes, mapFolder: folder)
        guard loaded.programs[programNames.pod] != nil, loaded.programs[programNames.uplink] != nil else {
            throw StoreError("BPF object \(object.name) lacks \(programNames.pod) or \(programNames.uplink)")
        }
        if loaded.replacedMaps.contains(where: { $0.hasPrefix("sp_endpoints") }) {
            try refillEndpoints(folder: folder, records: store.records())
        }
        for (name, program) in loaded.programs.sorted(by: { $0.key < $1.key }) {
            try program.pin(at: "\(folder)/\(name)")
        }
        // Every link pin is named for its program: swap the new build's program in behind it.
        for group in linkGroups {
            for path in pinnedLinks(under: "\(store.root)/\(group)") {
                let name = String(path[path.index(after: path.lastIndex(of: "/")!)...])
                guard let program = loaded.programs[name] else { continue }
                try BPFLink.pinned(at: path)?.update(to: program)
            }
        }
        let meta = try map(folder, Layouts.meta)
        try meta.upsert(UInt32(0), sp_meta(object_hash: object.hash, layout_version: UInt32(SP_LAYOUT_VERSION), reserved: 0))
    }

    /// Rebuilds the endpoint maps from the records (after a layout change created them empty).
    private static func refillEndpoints(folder: String, records: [EndpointRecord]) throws(StoreError) {
        let v4 = try map(folder, Layouts.endpoints4), v6 = try map(folder, Layouts.endpoints6)
        for record in records {
            let value = sp_endpoint(record)
            for address in record.addresses.map(\.address) {
                if address.family == .v4 { try v4.upsert(address.ipv4Key, value) } else { try v6.upsert(address.ipv6Key, value) }
            }
        }
    }

    /// The folders of the store that hold link pins, one subfolder per device or cgroup.
    static let linkGroups = ["endpoints", "uplinks", "socketlb"]

    /// The link pins one level below `folder` (one subfolder per endpoint, uplink or cgroup).
    static func pinnedLinks(under folder: String) -> [String] {
        subfolders(of: folder).flatMap { sub in subfolders(of: "\(folder)/\(sub)").map { "\(folder)/\(sub)/\($0)" } }
    }

    static func subfolders(of folder: String) -> [String] {
        guard let directory = opendir(folder) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func makeFolder(_ path: String) throws(StoreError) {
        guard mkdir(path, 0o700) == 0 || Errno.current == .fileExists else {
            throw StoreError("create \(path)", .current)
        }
    }
}

extension IPAddress {
    /// The endpoint map key of an IPv4 address: its four bytes in network order.
    var ipv4Key: UInt32 { bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } }
    var ipv6Key: sp_addr6 {
        var key = sp_addr6()
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: bytes) }
        return key
    }
}

extension sp_endpoint {
    init(ifindex: Int32, podMAC: MACAddress, hostMAC: MACAddress) {
        self.init()
        self.ifindex = UInt32(ifindex)
        withUnsafeMutableBytes(of: &pod_mac) { $0.copyBytes(from: podMAC.bytes) }
        withUnsafeMutableBytes(of: &host_mac) { $0.copyBytes(from: hostMAC.bytes) }
    }

    init(_ record: EndpointRecord) {
        self.init(ifindex: record.hostIndex, podMAC: record.podMAC, hostMAC: record.hostMAC)
    }
}

extension EndpointStore {
    /// `withLock` for bodies that throw StoreError themselves.
    func withLockOrThrow<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try withLock(body).get()
    }
}

/// The datapath's maps as the loader opens their pins: a name and the C types of key and value.
/// Their type, size and flags are declared once, in bpf/lib (maps.h, lb.h, terminate.h); opening a
/// pin checks only that key and value still have the sizes this build expects.
enum Layouts {
    static func pin<Key, Value>(_ name: String, _: Key.Type, _: Value.Type) -> BPFMap.Layout {
        BPFMap.Layout(name: name, type: BPF_MAP_TYPE_UNSPEC, keySize: MemoryLayout<Key>.size,
                      valueSize: MemoryLayout<Value>.size, maxEntries: 0)
    }

    static let endpoints4 = pin("sp_endpoints4", UInt32.self, sp_endpoint.self)
    static let endpoints6 = pin("sp_endpoints6", sp_addr6.self, sp_endpoint.self)
    static let counters = pin("sp_counters", sp_counter_key.self, sp_counter.self)
    static let node = pin("sp_node", UInt32.self, sp_node_config.self)
    static let cluster4 = pin("sp_cluster4", sp_lpm4.self, UInt8.self)
    static let cluster6 = pin("sp_cluster6", sp_lpm6.self, UInt8.self)
    static let uplinks = pin("sp_uplinks", UInt32.self, UInt32.self)
    static let services = pin("sp_services", sp_service_key.self, sp_service.self)
    static let slots = pin("sp_slots", sp_slot_key.self, sp_backend.self)
    static let lbConfig = pin("sp_lb", UInt32.self, sp_lb_config.self)
    static let departures = pin("sp_departures", sp_departure.self, UInt8.self)
    static let terminated = pin("sp_terminated", UInt32.self, UInt64.self)
    static let sticky = pin("sp_sticky", sp_sticky_key.self, sp_backend.self)
    static let affinity = pin("sp_affinity", sp_affinity_key.self, sp_affinity.self)
    static let meta = pin("sp_meta", UInt32.self, sp_meta.self)
}
