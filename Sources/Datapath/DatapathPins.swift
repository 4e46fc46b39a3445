// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import CDatapathABI
import CLibBPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The datapath's pinned maps and programs as one run opens them: each on first use, checked
/// against the layout this build expects, then kept for the rest of the run. Every part of the
/// datapath opened from one `Datapath` shares them.
final class DatapathPins {
    let store: EndpointStore
    let folder: String
    private var openedMaps: [String: BPFMap] = [:]
    private var openedPrograms: [String: BPFProgram] = [:]
    /// What removals found in the store's folders and left there, not being pins.
    var leftAlone: [String] = []

    init(store: EndpointStore) {
        self.store = store
        folder = store.layout.path(.datapath)
    }

    /// The pinned map of `layout`, opened on first use and checked against the layout.
    func map(_ layout: BPFMap.Layout) throws(BPFError) -> BPFMap {
        if let map = openedMaps[layout.name] { return map }
        guard let map = try BPFMap.open(at: "\(folder)/\(layout.name)", layout) else {
            throw BPFError("the datapath map \(layout.name) is not pinned in \(folder) (swiftpath datapath load repairs it)",
                             .noSuchFileOrDirectory, kind: .missingPin)
        }
        openedMaps[layout.name] = map
        return map
    }

    /// The pinned program `name`, opened on first use.
    func program(_ name: String) throws(BPFError) -> BPFProgram {
        if let program = openedPrograms[name] { return program }
        guard let program = try BPFProgram.pinned(at: "\(folder)/\(name)") else {
            throw BPFError("the datapath program \(name) is not pinned in \(folder) (swiftpath datapath load repairs it)",
                             .noSuchFileOrDirectory, kind: .missingPin)
        }
        openedPrograms[name] = program
        return program
    }
}

/// One concern of the datapath, reading and writing the pins it shares with the others.
protocol DatapathPart {
    var pins: DatapathPins { get }
}

extension DatapathPart {
    var store: EndpointStore { pins.store }
    var storeRoot: String { pins.store.root }
    var layout: StoreLayout { pins.store.layout }
    var folder: String { pins.folder }

    func map(_ layout: BPFMap.Layout) throws(BPFError) -> BPFMap { try pins.map(layout) }
    func program(_ name: String) throws(BPFError) -> BPFProgram { try pins.program(name) }

    /// Pins `link` as `folder/<name>`, making the folder (and its group's) where missing.
    func pin(_ link: BPFLink, named name: String, in folder: String) throws(BPFError) {
        try makeFolder(String(folder[..<folder.lastIndex(of: "/")!]))
        try makeFolder(folder)
        try link.pin(at: folder + "/" + name)
    }

    /// Unpins every link in `folder` (which detaches them) and removes the folder. What is not a
    /// pin, or a folder reached through a symlink, stays where it is and goes into `leftAlone`.
    func removeLinkFolder(_ folder: String) throws(BPFError) {
        let slash = folder.lastIndex(of: "/")!
        do {
            guard let parent = try storeFolder(String(folder[..<slash])) else { return }
            pins.leftAlone += try parent.removePinFolder(String(folder[folder.index(after: slash)...]))
        } catch where error.kind == .untrusted {
            pins.leftAlone.append(error.description)
        }
    }

    /// The folder `path` of the store, reached from the store's root one folder at a time without
    /// following a symlink; nil when it is missing.
    func storeFolder(_ path: String) throws(BPFError) -> PinFolder? {
        precondition(path == storeRoot || path.hasPrefix(storeRoot + "/"), "\(path) is not in the store \(storeRoot)")
        return try PinFolder.open(storeRoot, String(path.dropFirst(storeRoot.count)))
    }

    /// swiftpath's own cls_bpf filter on `ifindex` (tc mode).
    func tcFilter(_ ifindex: Int32) -> TCFilter {
        TCFilter(ifindex: ifindex, handle: UInt32(SP_TC_HANDLE), priority: UInt32(SP_TC_PRIORITY))
    }
}

/// Makes the folder `path` (owner only) unless it is there.
func makeFolder(_ path: String) throws(BPFError) {
    guard mkdir(path, 0o700) == 0 || Errno.current == .fileExists else {
        throw BPFError("create \(path)", .current)
    }
}

/// The name of the device `index` names in this thread's netns, or nil.
func deviceName(_ index: Int32) -> String? {
    var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE))
    guard if_indextoname(UInt32(index), &name) != nil else { return nil }
    return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
