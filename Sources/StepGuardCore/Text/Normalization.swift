// The standard library's NFC (the SPI swift-foundation itself uses), instead of Foundation's
// `precomposedStringWithCanonicalMapping`, which needs ICU.
@_spi(_Unicode) import Swift

extension StringProtocol {
    /// The text in Unicode Normalization Form C (canonical composition).
    public var canonicallyComposed: String { String(decoding: String(self)._nfcCodeUnits, as: UTF8.self) }
}
