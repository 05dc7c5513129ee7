import Foundation
import StepGuardCore
import Testing
@testable import StepGuardIdentity

/// The lenient base64 reader (either alphabet, padding anywhere or none, whitespace when asked)
/// gives back what Foundation encoded, refuses what is not base64, and the encoded runs of a value
/// are found on its bytes as they were on its characters.
@Suite struct LenientBase64Tests {
    @Test func decodesWhatFoundationEncodesInEveryLenientSpelling() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<96 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let standard = Data(bytes).base64EncodedString()
            let url = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            let unpadded = url.replacingOccurrences(of: "=", with: "")
            let wrapped = Data(bytes).base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
            for spelling in [standard, url, unpadded] {
                #expect(Base64URL.decodeLeniently(spelling.utf8) == bytes, "\(spelling)")
            }
            #expect(Base64URL.decodeLeniently(wrapped.utf8, ignoringWhitespace: true) == bytes)
            if wrapped.contains("\n") { #expect(Base64URL.decodeLeniently(wrapped.utf8) == nil, "whitespace only when asked") }
        }
    }

    @Test(arguments: ["abc.def", "QQ?=", "A", "AAAAA", "QUJD\u{00e9}", "QUJD\0"])
    func refusesWhatIsNotBase64(_ text: String) {
        #expect(Base64URL.decodeLeniently(text.utf8, ignoringWhitespace: true) == nil)
    }

    @Test func encodedRunsAreSplitAtEveryOtherCharacter() {
        let token = String(repeating: "Ab0+/=-_", count: 3)  // 24 encoded bytes
        #expect(EncodedValue.encodedCandidates(in: token) == [token])
        let value = "x: \(token).é\(token) short!"
        #expect(EncodedValue.encodedCandidates(in: value) == [value, token, token])
        #expect(EncodedValue.encodedCandidates(in: "é" + String(repeating: "a", count: 15)) == ["é" + String(repeating: "a", count: 15)])
    }
}
