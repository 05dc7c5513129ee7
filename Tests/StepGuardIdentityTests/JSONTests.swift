import StepGuardCore
import Testing
@testable import StepGuardIdentity

@Suite("Strict JSON and base64url")
struct JSONTests {
    @Test func parsesObjectsArraysAndNumbers() throws {
        let value = try StrictJSON.parse(#"{"a": [1, 2.5, -3e2, true, null], "b": "x\u00e9\n", "c": {}}"#)
        #expect(value.objectValue?["a"]?.arrayValue?.count == 5)
        #expect(value.objectValue?["b"] == .string("xé\n"))
        #expect(value.objectValue?["c"] == .object([:]))
    }

    @Test(arguments: [
        #"{"sub": "a", "sub": "b"}"#,          // duplicate key
        #"{"a": {"x": 1, "x": 1}}"#,           // duplicate key nested
        #"{"a": 1} x"#,                        // trailing data
        #"{"a": 01}"#,                         // leading zero
        #"{"a": "\ud800"}"#,                   // lone surrogate
        "{\"a\": \"\u{01}\"}",                  // control character
        #"{'a': 1}"#,                          // single quotes
        #"{"a": 1,}"#,                         // trailing comma
        #"{"a": NaN}"#,
    ])
    func rejectsNonStrictJSON(text: String) {
        #expect(throws: JSONSyntaxError.self) { try StrictJSON.parse(text) }
    }

    @Test func duplicateKeyErrorNamesTheKey() {
        do {
            _ = try StrictJSON.parse(#"{"aud": "x", "aud": "y"}"#)
            Issue.record("accepted a duplicate key")
        } catch {
            #expect(error.reason.contains("duplicate key \"aud\""))
        }
    }

    @Test func numbersCompareByValue() throws {
        #expect(JSONNumber(literal: "1")! == JSONNumber(literal: "1.0")!)
        #expect(JSONNumber(literal: "957014466")! == JSONNumber(literal: "957014466")!)
        #expect(JSONNumber(literal: "12345678901234567890")! != JSONNumber(literal: "12345678901234567891")!)
    }

    @Test func base64URLRoundTrips() {
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
    }

    @Test(arguments: ["YQ==", "YQ=", "a+b/", "YW Jj", "Y", "YR", "YWJjZA\n"])
    func base64URLRejectsNonStrictInput(text: String) {
        #expect(Base64URL.decode(text) == nil)
    }
}
