import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardPolicy

/// Normalises a host name as the proxy sees it: IP literals in any spelling become the address they
/// are; names are lower-cased, lose a trailing dot, and Unicode labels become IDNA A-labels (`xn--…`).
public enum HostName {
    /// A normalised request target host.
    public enum Normalised: Sendable, Equatable {
        case name(String)
        case address(IPAddress)

        /// The text used for rule matching and audit.
        public var text: String {
            switch self {
            case .name(let name): name
            case .address(let address): address.description
            }
        }
    }

    /// Normalises `raw` (as written in a CONNECT line, URL or Host header, brackets allowed).
    /// Returns nil for text no resolver would accept as a host.
    public static func normalise(_ raw: String) -> Normalised? {
        isAlreadyNormal(raw) ? .name(raw) : fullyNormalised(raw)
    }

    /// ``normalise(_:)`` without the shortcut for names already in normal form.
    static func fullyNormalised(_ raw: String) -> Normalised? {
        guard !raw.isEmpty, raw.count <= 255 + 2 else { return nil }
        if let address = IPAddress(anySpelling: raw) { return .address(address) }
        if raw.hasPrefix("[") { return nil }
        var name = raw.canonicallyComposed.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        // Full-width and ideographic dots are label separators in IDNA.
        name = name.replacingAll("\u{3002}", with: ".").replacingAll("\u{FF0E}", with: ".").replacingAll("\u{FF61}", with: ".")
        var labels: [String] = []
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.count <= 63 else { return nil }
            if label.allSatisfy(\.isASCII) {
                guard label.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else { return nil }
                labels.append(String(label))
            } else {
                guard let encoded = Punycode.encode(String(label)), encoded.count + 4 <= 63 else { return nil }
                labels.append("xn--" + encoded)
            }
        }
        let result = labels.joined(separator: ".")
        // A name whose labels are all numbers is an address spelling inet_aton would not take: refuse it.
        if labels.last?.allSatisfy(\.isNumber) == true { return nil }
        return .name(result)
    }
}

extension HostName {
    /// Whether `raw` is a name the full normalisation would return unchanged (most are): lower-case
    /// ASCII letters, digits, `-` and `_` in labels of 1–63 bytes, no trailing dot, and a last label
    /// that no inet_aton spelling could be (not all digits, no `0x`). A shortcut: the full path
    /// (Unicode normalisation, IDNA, address spellings) costs tens of microseconds.
    static func isAlreadyNormal(_ raw: String) -> Bool {
        var raw = raw
        return raw.withUTF8 { bytes in
            guard !bytes.isEmpty, bytes.count <= 255 else { return false }
            var labelLength = 0
            var lastLabelStart = 0
            for (index, byte) in bytes.enumerated() {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    labelLength += 1
                    guard labelLength <= 63 else { return false }
                case UInt8(ascii: "."):
                    guard labelLength > 0 else { return false }
                    labelLength = 0
                    lastLabelStart = index + 1
                default:
                    return false
                }
            }
            guard labelLength > 0 else { return false }
            let last = bytes[lastLabelStart...]
            return !last.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } && !last.starts(with: [UInt8(ascii: "0"), UInt8(ascii: "x")])
        }
    }
}

/// RFC 3492 Punycode encoder (the ASCII-compatible encoding of IDNA labels).
enum Punycode {
    static func encode(_ input: String) -> String? {
        let base = 36, tMin = 1, tMax = 26, skew = 38, damp = 700, initialBias = 72, initialN = 128
        let scalars = input.unicodeScalars.map { Int($0.value) }
        var output = scalars.filter { $0 < 0x80 }.map { Character(Unicode.Scalar(UInt8($0))) }
        let basicCount = output.count
        var handled = basicCount
        if basicCount > 0 { output.append("-") }
        func digit(_ d: Int) -> Character { Character(Unicode.Scalar(UInt8(d < 26 ? d + 97 : d + 22))) }
        func adapt(_ delta: Int, _ numPoints: Int, _ first: Bool) -> Int {
            var delta = first ? delta / damp : delta / 2
            delta += delta / numPoints
            var k = 0
            while delta > ((base - tMin) * tMax) / 2 { delta /= base - tMin; k += base }
            return k + (base - tMin + 1) * delta / (delta + skew)
        }
        var n = initialN, delta = 0, bias = initialBias
        while handled < scalars.count {
            guard let m = scalars.filter({ $0 >= n }).min() else { return nil }
            let (product, overflow) = (m - n).multipliedReportingOverflow(by: handled + 1)
            guard !overflow else { return nil }
            delta += product
            n = m
            for c in scalars {
                if c < n { delta += 1 }
                if c == n {
                    var q = delta, k = base
                    while true {
                        let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, handled + 1, handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return String(output)
    }
}
