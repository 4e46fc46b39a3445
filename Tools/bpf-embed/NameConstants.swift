// SPDX-License-Identifier: Apache-2.0
/// The names of one object's maps and programs as Swift constants: `sp_endpoints4` in object
/// `datapath` becomes `DatapathMaps.endpoints4`, `pod_egress` becomes `DatapathPrograms.podEgress`.
struct NameConstants {
    let object: String
    let maps: [String]
    let programs: [String]

    static func camel(_ name: String, dropping prefix: String = "") -> String {
        let trimmed = name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
        let words = trimmed.split(separator: "_")
        let joined = words.enumerated().map { $0 == 0 ? String($1) : $1.prefix(1).uppercased() + $1.dropFirst() }.joined()
        return joined.first?.isNumber == true ? "_" + joined : joined
    }

    var swift: String {
        let type = Self.camel(object).prefix(1).uppercased() + Self.camel(object).dropFirst()
        func constants(_ names: [String], prefix: String) -> String {
            names.map { "    public static let \(Self.camel($0, dropping: prefix)) = \"\($0)\"" }.joined(separator: "\n")
        }
        return """
        /// The maps of object \(object), by the names its C declares.
        public enum \(type)Maps {
        \(constants(maps, prefix: "sp_"))
        }

        /// The programs of object \(object), by their function names.
        public enum \(type)Programs {
        \(constants(programs, prefix: ""))
        }

        """
    }
}
