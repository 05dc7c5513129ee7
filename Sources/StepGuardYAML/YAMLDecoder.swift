/// Decodes `Decodable` values from YAML as Yams' `YAMLDecoder` did: `<<` merge keys are applied,
/// strings are any scalar's text, numbers and booleans must be plain scalars, and a plain `null`,
/// `~` or empty value decodes as nil. Errors are `DecodingError`s with the coding path; invalid
/// YAML is `dataCorrupted` whose underlying error is the ``YAMLError`` (with its line and column).
public struct YAMLDecoder: Sendable {
    public init() {}

    /// Decodes `type` from the single document of `yaml` (an empty text is an empty scalar).
    public func decode<T: Decodable>(_ type: T.Type = T.self, from yaml: String) throws -> T {
        let root: Node
        do {
            root = try YAML.compose(yaml: yaml, .mergeOnly) ?? .scalar(Node.Scalar("", .str, .any))
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "The given data was not valid YAML (\(error)).",
                                                    underlyingError: error))
        }
        return try NodeDecoder(node: root, codingPath: []).decode(type)
    }
}

private struct IndexKey: CodingKey {
    let intValue: Int?
    let stringValue: String
    init(_ index: Int) { intValue = index; stringValue = "Index \(index)" }
    init?(intValue: Int) { self.init(intValue) }
    init?(stringValue: String) { nil }
}

private func kindName(_ node: Node) -> String {
    switch node {
    case .scalar: "Scalar"
    case .mapping: "Mapping"
    case .sequence: "Sequence"
    }
}

private func typeMismatch(_ path: [any CodingKey], expected: Any.Type, found: String) -> DecodingError {
    .typeMismatch(expected, .init(codingPath: path, debugDescription: "Expected to decode \(expected) but found \(found) instead."))
}

private struct NodeDecoder: Decoder, SingleValueDecodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case let .mapping(mapping) = node else { throw typeMismatch(codingPath, expected: Node.Mapping.self, found: "Node") }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, pairs: Self.flatten(mapping)))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case let .sequence(sequence) = node else { throw typeMismatch(codingPath, expected: Node.Sequence.self, found: "Node") }
        return UnkeyedContainer(decoder: self, items: Array(sequence))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool {
        guard case let .scalar(scalar) = node, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let isScalarType = type == String.self || type == Bool.self || type is any FixedWidthInteger.Type || type is any BinaryFloatingPoint.Type
        guard isScalarType else { return try T(from: self) }
        guard case let .scalar(scalar) = node else { throw typeMismatch(codingPath, expected: type, found: kindName(node)) }
        let value: Any?
        switch type {
        case is String.Type: value = scalar.string
        case is Bool.Type: value = Self.bool(scalar)
        case let integer as any FixedWidthInteger.Type: value = Self.integer(scalar).flatMap { integer.init(exactly: $0) }
        case let floating as any BinaryFloatingPoint.Type: value = Self.double(scalar).map { floating.init($0) }
        default: value = nil
        }
        guard let result = value as? T else { throw typeMismatch(codingPath, expected: type, found: "Scalar") }
        return result
    }

    func child(_ node: Node, _ key: any CodingKey) -> NodeDecoder { NodeDecoder(node: node, codingPath: codingPath + [key]) }

    /// A mapping's pairs with `<<` merges applied as Yams did: merged pairs first (of a list of
    /// mappings, the last one first), then the mapping's own; a later key wins at lookup.
    static func flatten(_ mapping: Node.Mapping) -> [(key: Node, value: Node)] {
        var merged: [(key: Node, value: Node)] = []
        var own: [(key: Node, value: Node)] = []
        for pair in mapping {
            guard pair.key.tag == .merge else { own.append(pair); continue }
            switch pair.value {
            case let .mapping(source): merged += flatten(source)
            case let .sequence(sources):
                for case let .mapping(source) in sources.reversed() { merged += flatten(source) }
            case .scalar: break
            }
        }
        return merged + own
    }

    static func bool(_ scalar: Node.Scalar) -> Bool? {
        guard scalar.tag != .str || scalar.style == .plain else { return nil }  // a quoted or block "yes" is text
        switch scalar.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }

    static func integer(_ scalar: Node.Scalar) -> Int? {
        guard scalar.style == .any || scalar.style == .plain else { return nil }
        let withSign = scalar.string.filter { $0 != "_" }
        if withSign == "0" { return 0 }
        let negative = withSign.hasPrefix("-")
        let digits = withSign.dropFirst(negative || withSign.hasPrefix("+") ? 1 : 0)
        for (prefix, radix) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where digits.hasPrefix(prefix) {
            return Int((negative ? "-" : "") + digits.dropFirst(prefix.count), radix: radix)
        }
        guard !digits.contains(":") else { return nil }
        return Int(withSign)
    }

    static func double(_ scalar: Node.Scalar) -> Double? {
        guard scalar.style == .any || scalar.style == .plain else { return nil }
        switch scalar.string.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default:
            let text = scalar.string.filter { $0 != "_" }
            return text.contains(":") ? nil : Double(text)
        }
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoder
    let pairs: [(key: Node, value: Node)]

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { pairs.compactMap { $0.key.string.flatMap(Key.init(stringValue:)) } }

    /// The value of the last pair whose key is the plain string `name` (as Yams looked keys up).
    func value(_ name: String) -> Node? {
        let tag = Resolver.mergeOnly.tag(ofPlain: name)
        return pairs.last { pair in
            guard case let .scalar(scalar) = pair.key else { return false }
            return scalar.string == name && scalar.tag == tag
        }?.value
    }

    func child(_ key: Key) throws -> NodeDecoder {
        guard let node = value(key.stringValue) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."))
        }
        return decoder.child(node, key)
    }

    func contains(_ key: Key) -> Bool { value(key.stringValue) != nil }
    func decodeNil(forKey key: Key) throws -> Bool { try child(key).decodeNil() }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).decode(type) }
    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try child(key).unkeyedContainer() }
    func superDecoder() throws -> any Decoder { throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "super is not supported")) }
    func superDecoder(forKey key: Key) throws -> any Decoder { try child(key) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoder
    let items: [Node]
    var currentIndex = 0

    init(decoder: NodeDecoder, items: [Node]) {
        self.decoder = decoder
        self.items = items
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    mutating func current<T>(_ type: T.Type) throws -> NodeDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [IndexKey(currentIndex)], debugDescription: "Unkeyed container is at end."))
        }
        defer { currentIndex += 1 }
        return decoder.child(items[currentIndex], IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return try current(Any?.self).decodeNil() }
        guard decoder.child(items[currentIndex], IndexKey(currentIndex)).decodeNil() else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try current(type).decode(type) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try current(type).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try current(Any.self).unkeyedContainer() }
    mutating func superDecoder() throws -> any Decoder { try current(Any.self) }
}
