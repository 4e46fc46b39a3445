// SPDX-License-Identifier: Apache-2.0
/// The names a BPF object declares, read from its ELF symbol table the way libbpf reads them:
/// a map is an object symbol in the `.maps` section, a program a global function in a section of
/// its own (its `SEC("...")`). Only little-endian ELF64, which is what clang's `bpf` target emits
/// on every host swiftpath builds on.
struct ELFSymbols {
    private(set) var maps: [String] = []
    /// Each program with its section, the `SEC("...")` that tells libbpf its type and attach point.
    private(set) var programs: [(name: String, section: String)] = []

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    // ELF64 constants (elf.h): the identification bytes, section types, symbol types and bindings.
    private static let magic: [UInt8] = [0x7f, 0x45, 0x4c, 0x46]
    private static let classELF64: UInt8 = 2
    private static let littleEndian: UInt8 = 1
    private static let sectionSymbolTable: UInt32 = 2
    private static let symbolObject: UInt8 = 1
    private static let symbolFunction: UInt8 = 2
    private static let bindingGlobal: UInt8 = 1
    private static let symbolEntrySize = 24

    init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 64, Array(bytes[0..<4]) == Self.magic, bytes[4] == Self.classELF64, bytes[5] == Self.littleEndian else {
            throw Malformed(description: "not a little-endian ELF64 object")
        }
        func read<T: FixedWidthInteger>(_ offset: Int, _: T.Type) throws -> T {
            guard offset >= 0, offset + MemoryLayout<T>.size <= bytes.count else { throw Malformed(description: "truncated ELF object") }
            return bytes[offset..<offset + MemoryLayout<T>.size].reversed().reduce(T.zero) { $0 << 8 | T($1) }
        }
        func string(_ offset: Int) throws -> String {
            guard offset >= 0, offset < bytes.count, let end = bytes[offset...].firstIndex(of: 0) else {
                throw Malformed(description: "string table entry out of bounds")
            }
            return String(decoding: bytes[offset..<end], as: UTF8.self)
        }
        let sectionTable = Int(try read(0x28, UInt64.self))
        let sectionEntrySize = Int(try read(0x3a, UInt16.self))
        let sectionCount = Int(try read(0x3c, UInt16.self))
        let namesIndex = Int(try read(0x3e, UInt16.self))
        func section(_ index: Int) throws -> (name: Int, type: UInt32, offset: Int, size: Int, link: Int) {
            let base = sectionTable + index * sectionEntrySize
            return (Int(try read(base, UInt32.self)), try read(base + 4, UInt32.self), Int(try read(base + 0x18, UInt64.self)),
                    Int(try read(base + 0x20, UInt64.self)), Int(try read(base + 0x28, UInt32.self)))
        }
        let sectionNames = try section(namesIndex).offset
        let names = try (0..<sectionCount).map { try string(sectionNames + section($0).name) }
        for index in 0..<sectionCount {
            let table = try section(index)
            guard table.type == Self.sectionSymbolTable else { continue }
            let strings = try section(table.link).offset
            for entry in stride(from: table.offset, to: table.offset + table.size, by: Self.symbolEntrySize) {
                let info: UInt8 = try read(entry + 4, UInt8.self)
                let sectionIndex = Int(try read(entry + 6, UInt16.self))
                guard sectionIndex > 0, sectionIndex < sectionCount else { continue }
                let (type, binding) = (info & 0xf, info >> 4)
                let name = try string(strings + Int(try read(entry, UInt32.self)))
                if type == Self.symbolObject, names[sectionIndex] == ".maps" {
                    maps.append(name)
                } else if type == Self.symbolFunction, binding == Self.bindingGlobal, names[sectionIndex] != ".text" {
                    programs.append((name, names[sectionIndex]))
                }
            }
        }
        maps.sort()
        programs.sort { $0.name < $1.name }
    }
}
