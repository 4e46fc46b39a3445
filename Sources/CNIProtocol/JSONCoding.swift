// SPDX-License-Identifier: Apache-2.0
import FoundationEssentials

/// The one place JSON is read and written, so that every output looks alike and every decoding
/// failure becomes the right CNI error.
public enum JSONCoding {
    public static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding our own value types cannot fail: they hold strings, numbers and arrays only.
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    /// Decodes `bytes`; malformed JSON is code 6, a key with a bad value code 7 naming the key.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>,
                                            what: String = "network config") throws(CNIError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw CNIError(error: error, what: what)
        } catch {
            throw CNIError(.decodingFailure, "failed to decode \(what)", details: "\(error)")
        }
    }
}

extension CNIError {
    init(error: DecodingError, what: String) {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
                .trimmingPrefix(".").description
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            self.init(.decodingFailure, "failed to decode \(what): not valid JSON",
                      details: "\(context.underlyingError.map { "\($0)" } ?? context.debugDescription)")
        case .dataCorrupted(let context):
            self.init(.invalidNetworkConfig, "invalid value for key \"\(path(context.codingPath))\" in \(what)",
                      details: context.debugDescription)
        case .keyNotFound(let key, let context):
            self.init(.invalidNetworkConfig,
                      "missing key \"\(path(context.codingPath + [key]))\" in \(what)")
        case .typeMismatch(let type, let context):
            self.init(.invalidNetworkConfig, "invalid value for key \"\(path(context.codingPath))\" in \(what)",
                      details: "expected \(type)")
        case .valueNotFound(let type, let context):
            self.init(.invalidNetworkConfig, "invalid value for key \"\(path(context.codingPath))\" in \(what)",
                      details: "expected \(type), found null")
        @unknown default:
            self.init(.decodingFailure, "failed to decode \(what)", details: "\(error)")
        }
    }
}
