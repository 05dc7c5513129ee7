import Foundation
import Testing
@testable import StepGuardSecrets

/// The reports' JSON writer: what it writes parses back to what it was given.
@Suite struct JSONWriterTests {
    @Test func writesWhatJSONSerializationReadsBack() throws {
        let value: [String: Any] = [
            "text": "quote \" backslash \\ slash / newline \n tab \t bell \u{07} nul \u{0} é ✓ 𝄞",
            "numbers": [0, -12, 1 << 40] as [Any],
            "double": 2.5, "yes": true, "no": false,
            "empty": [String: Any](), "none": [Any](),
            "nested": ["b": ["z": 1, "a": [["x": "y"]]] as [String: Any]] as [String: Any],
        ]
        let text = JSONWriter.write(value)
        #expect(text.hasSuffix("}\n") && text.contains("slash / newline \\n tab \\t") && text.contains("\\u0007"))
        let back = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
        #expect(back == (value as NSDictionary), "\(text)")
        // Sorted keys: "double" before "empty" before "nested".
        let keys = ["double", "empty", "nested", "no", "none", "numbers", "text", "yes"].map { text.range(of: "\"\($0)\" :")!.lowerBound }
        #expect(keys == keys.sorted())
    }
}
