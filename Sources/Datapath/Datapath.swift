// SPDX-License-Identifier: Apache-2.0
import BPFObjects
import BPF
import NodeStore
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
/// `<store>/uplinks/if<index>`. Each concern is a part of its own over the same pins: the pods'
/// attachments and endpoints, the plugin's handoffs to the agent, the service maps, the node-wide
/// attachments and address sets, and the connections the uplinks translated. This type loads,
/// upgrades, reports on and unloads the whole.
///
/// Loading and verifying happens once per node (and again only when a different build of the
/// programs arrives, or a pin went missing); every later run opens just the pins it uses, when it
/// first uses them.
public struct Datapath: DatapathPart {
    let pins: DatapathPins

    private init(store: EndpointStore) { pins = DatapathPins(store: store) }

    public var store: EndpointStore { pins.store }
    public var storeRoot: String { pins.store.root }
    public var folder: String { pins.folder }
    /// What removals found in the store's folders and left there, not being pins (a symlink, say):
    /// for the caller to report.
    public var leftAlone: [String] { pins.leftAlone }

    /// The pods' attachments and endpoints.
    public var pods: PodAttachments { PodAttachments(pins: pins) }
    /// The work the plugin hands to the node agent: pods to promote to tcx, veths to delete.
    public var handoff: AgentHandoff { AgentHandoff(pins: pins) }
    /// The services' frontends, backend slots, source ranges and host ports.
    public var services: ServiceMaps { ServiceMaps(pins: pins) }
    /// What the datapath holds for the node as a whole: uplinks, address sets, masquerading, socket hooks.
    public var node: NodeDatapath { NodeDatapath(pins: pins) }
    /// The connections the uplinks translated, and the termination of sockets to departed backends.
    public var connections: Connections { Connections(pins: pins) }

    /// What to do when the store holds the datapath of a newer swiftpath release than this binary's.
    public enum Downgrade: Sendable {
        /// Use it as it is when its maps are laid out as this binary reads them; refuse otherwise.
        case keepNewer
        /// Refuse: the caller asked to load this binary's datapath, which would be older.
        case refuse
        /// Load this binary's datapath all the same (the operator said so).
        case allow
    }

    /// Opens the node's datapath, first loading it, or upgrading it in place when the pinned one
    /// is another build than `object`, or repairing it when a pin is missing. An upgrade swaps the
    /// program behind every pinned link atomically (BPF_LINK_UPDATE); maps whose layout is
    /// unchanged keep their entries; the endpoint and service maps that start empty are refilled
    /// from the store's records. A newer release's datapath is never replaced unless `downgrade`
    /// allows it. `repair` loads again even a datapath that looks whole (one of whose maps is of
    /// another layout, say: only a full check, `status`, finds that).
    /// `connectionTable` sizes the uplinks' connection tables where they are made anew (nil: from
    /// the node's memory, asked only then); tables already pinned keep their size.
    public static func open(store: EndpointStore, object: BPFObject = .datapath, downgrade: Downgrade = .keepNewer,
                            repair: Bool = false, connectionTable: ConnectionTableSize? = nil) throws(BPFError) -> Datapath {
        let folder = store.layout.path(.datapath)
        if !repair, try isCurrent(loadedMeta(storeRoot: store.root), object, folder) { return Datapath(store: store) }
        return try store.withLockOrThrow { () throws(BPFError) -> Datapath in
            // Another run may have loaded or repaired it while this one waited for the lock.
            let meta = try loadedMeta(storeRoot: store.root)
            if !repair, isCurrent(meta, object, folder) { return Datapath(store: store) }
            if let meta, Release(packed: meta.release) > .current, downgrade != .allow {
                guard downgrade == .keepNewer, meta.layout_version == UInt32(SP_LAYOUT_VERSION), isComplete(folder, for: object) else {
                    throw BPFError("the node runs the datapath of swiftpath \(Release(packed: meta.release)), newer than this binary's "
                                     + "\(Release.current): refusing to replace it (datapath load --allow-downgrade does)",
                                     kind: .newerBuild)
                }
                return Datapath(store: store)
            }
            try install(object, store: store, connectionTable: connectionTable)
            return Datapath(store: store)
        }
    }

    /// The datapath already in the store, as it is (no load, no upgrade, no repair), or nil when
    /// there is none: what DEL, GC and the CLI use, which must not load programs just to look.
    /// Its pins are opened as they are used, so a missing one fails only what needs it.
    public static func openExisting(store: EndpointStore) -> Datapath? {
        access(store.layout.path(.datapath), F_OK) == 0 ? Datapath(store: store) : nil
    }

    /// The hash of the build pinned in the store, or nil when there is none.
    public static func loadedBuild(storeRoot: String) throws(BPFError) -> UInt64? {
        try loadedMeta(storeRoot: storeRoot)?.object_hash
    }

    /// What the store records of the loaded datapath (build, layout version, release), or nil.
    public static func loadedMeta(storeRoot: String) throws(BPFError) -> sp_meta? {
        let meta: BPFMap?
        do { meta = try BPFMap.open(at: "\(StoreLayout(root: storeRoot).path(.datapath))/\(Layouts.meta.name)", Layouts.meta) } catch where error.isRepairable {
            return nil
        }
        guard let meta, let value = try meta.lookup(UInt32(0), as: sp_meta.self), value.object_hash != 0 else { return nil }
        return value
    }

    /// Whether the store runs `object` as this binary lays its maps out, with every pin in place.
    static func isCurrent(_ meta: sp_meta?, _ object: BPFObject, _ folder: String) -> Bool {
        guard let meta, meta.object_hash == object.hash, meta.layout_version == UInt32(SP_LAYOUT_VERSION) else { return false }
        return isComplete(folder, for: object)
    }

    /// Whether every map and program of `object` is pinned in `folder` (one directory read).
    static func isComplete(_ folder: String, for object: BPFObject) -> Bool {
        Set(folderEntries(folder)).isSuperset(of: object.maps + object.programs)
    }

    private static func install(_ object: BPFObject, store: EndpointStore, connectionTable: ConnectionTableSize?) throws(BPFError) {
        let folder = store.layout.path(.datapath)
        try makeFolder(folder)
        // Maps written under another SP_LAYOUT_VERSION may match in size and still mean other
        // bytes: all of them are made anew (and refilled below), whatever their sizes.
        if let meta = try loadedMeta(storeRoot: store.root), meta.layout_version != UInt32(SP_LAYOUT_VERSION) {
            for name in object.maps {
                guard unlink("\(folder)/\(name)") == 0 || Errno.current == .noSuchFileOrDirectory else {
                    throw BPFError("unpin \(folder)/\(name) of layout version \(meta.layout_version)", .current)
                }
            }
        }
        let loaded = try BPFObjectLoader.load(name: object.name, bytes: object.bytes, mapFolder: folder,
                                              sizes: (connectionTable ?? .fromMemory()).sizes)
        guard loaded.programs[DatapathPrograms.podEgress] != nil, loaded.programs[DatapathPrograms.uplinkIngress] != nil else {
            throw BPFError("BPF object \(object.name) lacks \(DatapathPrograms.podEgress) or \(DatapathPrograms.uplinkIngress)")
        }
        // Maps that start empty are refilled before any program that uses them runs.
        let datapath = Datapath(store: store)
        if loaded.freshMaps.contains(where: { $0.hasPrefix("sp_endpoints") || $0 == Layouts.podDevices.name }) {
            try datapath.pods.refillEndpoints(from: store.records())
        }
        if loaded.freshMaps.contains(Layouts.services.name) || loaded.freshMaps.contains(Layouts.slots.name) {
            try datapath.services.reprogramServices()
        } else if loaded.freshMaps.contains(Layouts.sourceRanges.name) {
            try datapath.services.refillSourceRanges()
        }
        for (name, program) in loaded.programs.sorted(by: { $0.key < $1.key }) {
            try program.pin(at: "\(folder)/\(name)")
        }
        // Every link pin is named for its program: swap the new build's program in behind it.
        for group in linkGroups {
            for path in pinnedLinks(under: store.layout.path(group)) {
                let name = String(path[path.index(after: path.lastIndex(of: "/")!)...])
                guard let program = loaded.programs[name] else { continue }
                try BPFLink.pinned(at: path)?.update(to: program)
            }
        }
        // Pods on tc (waiting for the agent to move them, or configured so) run the program their
        // filter names: the new build's takes its place, where the filter is ours, on the pod's device.
        if let podEgress = loaded.programs[DatapathPrograms.podEgress] {
            for var record in try store.records() where record.state == .ready && record.attachMode == AttachMode.tc.rawValue {
                let filter = datapath.tcFilter(record.hostIndex)
                guard deviceName(record.hostIndex) == record.hostName, filter.programID() != nil else { continue }
                try filter.attach(podEgress)
                record.attachID = podEgress.id
                try store.update(record)
            }
        }
        try datapath.map(Layouts.meta).upsert(UInt32(0), sp_meta(object_hash: object.hash, layout_version: UInt32(SP_LAYOUT_VERSION),
                                                                  release: Release.current.packed))
    }

    /// The folders of the store that hold link pins, one subfolder per device or cgroup.
    static let linkGroups: [StoreLayout.Folder] = [.podLinks, .uplinkLinks, .socketHookLinks]

    /// The link pins one level below `folder` (one subfolder per endpoint, uplink or cgroup).
    static func pinnedLinks(under folder: String) -> [String] {
        folderEntries(folder).flatMap { sub in folderEntries("\(folder)/\(sub)").map { "\(folder)/\(sub)/\($0)" } }
    }
}

/// A swiftpath release, which the store records with the datapath it loads, so that a node is
/// never taken back to an older release's datapath by an older binary without being told to.
public struct Release: Comparable, Sendable, CustomStringConvertible {
    public static let current = Release(major: 0, minor: 5, patch: 0)

    public let major: UInt32
    public let minor: UInt32
    public let patch: UInt32

    public init(major: UInt32, minor: UInt32, patch: UInt32) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// As sp_meta keeps it: major << 16 | minor << 8 | patch (0: loaded before releases were recorded).
    public init(packed: UInt32) { self.init(major: packed >> 16, minor: packed >> 8 & 0xff, patch: packed & 0xff) }

    public var packed: UInt32 { major << 16 | (minor & 0xff) << 8 | (patch & 0xff) }

    public static func < (lhs: Release, rhs: Release) -> Bool { lhs.packed < rhs.packed }

    public var description: String { "\(major).\(minor).\(patch)" }
}

/// The datapath's maps as the loader opens their pins: a name and the C types of key and value.
/// Their type, size and flags are declared once, in bpf/lib (maps.h, lb.h, terminate.h); opening a
/// pin checks only that key and value still have the sizes this build expects.
enum Layouts {
    static func pin<Key, Value>(_ name: String, _: Key.Type, _: Value.Type) -> BPFMap.Layout {
        BPFMap.Layout(name: name, type: BPF_MAP_TYPE_UNSPEC, keySize: MemoryLayout<Key>.size,
                      valueSize: MemoryLayout<Value>.size, maxEntries: 0)
    }

    static let endpoints4 = pin(DatapathMaps.endpoints4, UInt32.self, sp_endpoint.self)
    static let endpoints6 = pin(DatapathMaps.endpoints6, sp_addr6.self, sp_endpoint.self)
    static let podDevices = pin(DatapathMaps.podDevices, UInt32.self, sp_endpoint.self)
    static let counters = pin(DatapathMaps.counters, sp_counter_key.self, sp_counter.self)
    static let node = pin(DatapathMaps.node, UInt32.self, sp_node_config.self)
    static let cluster4 = pin(DatapathMaps.cluster4, sp_lpm4.self, UInt8.self)
    static let cluster6 = pin(DatapathMaps.cluster6, sp_lpm6.self, UInt8.self)
    static let uplinks = pin(DatapathMaps.uplinks, UInt32.self, UInt32.self)
    static let services = pin(DatapathMaps.services, sp_service_key.self, sp_service.self)
    static let slots = pin(DatapathMaps.slots, sp_slot_key.self, sp_backend.self)
    static let translations = pin(DatapathMaps.translations, sp_translation_key.self, sp_translation.self)
    static let lbConfig = pin(DatapathMaps.lb, UInt32.self, sp_lb_config.self)
    static let departures = pin(TerminateMaps.departures, sp_departure.self, UInt8.self)
    static let terminated = pin(TerminateMaps.terminated, UInt32.self, UInt64.self)
    static let sticky = pin(DatapathMaps.sticky, sp_sticky_key.self, sp_backend.self)
    static let affinity = pin(DatapathMaps.affinity, sp_affinity_key.self, sp_affinity.self)
    static let meta = pin(DatapathMaps.meta, UInt32.self, sp_meta.self)
    static let nat = pin(DatapathMaps.nat, sp_tuple.self, sp_nat.self)
    static let natNew = pin(DatapathMaps.natNew, sp_tuple.self, sp_nat.self)
    static let nodes4 = pin(DatapathMaps.nodes4, UInt32.self, UInt8.self)
    static let nodes6 = pin(DatapathMaps.nodes6, sp_addr6.self, UInt8.self)
    static let local4 = pin(DatapathMaps.local4, UInt32.self, UInt8.self)
    static let local6 = pin(DatapathMaps.local6, sp_addr6.self, UInt8.self)
    static let sourceRanges = pin(DatapathMaps.sourceRanges, sp_source_range_key.self, UInt8.self)
}
