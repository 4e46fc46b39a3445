// SPDX-License-Identifier: Apache-2.0
import FoundationEssentials

/// Prints `value` as the CLI's `-o json` does: pretty, keys sorted, slashes as they are.
func printJSON(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    // The CLI's views hold strings, numbers and lists only: encoding them cannot fail.
    print(String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self))
}
