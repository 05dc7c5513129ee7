import CYAML

/// Reads YAML text with libyaml into ``Node`` trees. Aliases are replaced by the node of their
/// anchor (an anchor defined again later names the later node; an alias of an anchor not yet
/// complete, such as one inside its own node, is an error). A mapping that holds the same key
/// twice (same text and same resolved tag) is an error. Every libyaml error is a ``YAMLError``
/// with its line and column; nothing is dropped silently.
public enum YAML {
    /// At most this many nodes in one document, counting every alias as the nodes it stands for: a
    /// few anchors nested ten deep ("billion laughs") would otherwise make any walk of the tree run
    /// for hours. Such a document is an error (a ``YAMLError`` at the alias that crossed the limit).
    public static let maximumExpandedNodes = 1_000_000

    /// The single document of `yaml`, or nil when the text holds no document. A second document
    /// is an error.
    public static func compose(yaml: String, _ resolver: Resolver = .default) throws(YAMLError) -> Node? {
        try withComposer(yaml, resolver) { composer throws(YAMLError) in
            guard let root = try composer.nextDocument() else { return nil }
            let next = try composer.next()
            guard case .streamEnd = next.kind else {
                throw YAMLError(.composer, problem: "but found another document", context: "expected a single document in the stream", at: next.mark)
            }
            return root
        }
    }

    /// Every document of `yaml`, in order.
    public static func composeAll(yaml: String, _ resolver: Resolver = .default) throws(YAMLError) -> [Node] {
        try withComposer(yaml, resolver) { composer throws(YAMLError) in
            var documents: [Node] = []
            while let document = try composer.nextDocument() { documents.append(document) }
            return documents
        }
    }

    /// The single document as plain values: `String` for every scalar (whatever its spelling, as
    /// with ``Resolver/basic``), `[Any]` for a sequence, `[String: Any]` for a mapping. A key that is
    /// not a scalar is an error at the key.
    public static func loadStrings(yaml: String) throws(YAMLError) -> Any? {
        guard let root = try compose(yaml: yaml, .basic) else { return nil }
        return try plain(root)
    }

    static func plain(_ node: Node) throws(YAMLError) -> Any {
        switch node {
        case let .scalar(scalar): return scalar.string
        case let .sequence(sequence):
            var items: [Any] = []
            for item in sequence { items.append(try plain(item)) }
            return items
        case let .mapping(mapping):
            var result: [String: Any] = [:]
            for (key, value) in mapping {
                guard case let .scalar(scalar) = key else {
                    throw YAMLError(.composer, problem: "a mapping key must be a scalar", context: nil, at: key.mark ?? Mark(line: 1, column: 1))
                }
                result[scalar.string] = try plain(value)
            }
            return result
        }
    }

    private static func withComposer<T>(_ yaml: String, _ resolver: Resolver, _ body: (inout Composer) throws(YAMLError) -> T) throws(YAMLError) -> T {
        let bytes = Array(yaml.utf8)
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else { throw YAMLError(.memory, problem: "libyaml could not allocate its parser", context: nil, at: Mark(line: 1, column: 1)) }
        defer { yaml_parser_delete(parser) }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        return try bytes.withUnsafeBufferPointer { buffer throws(YAMLError) -> T in
            // libyaml reads a pointer that must stay valid while it parses: only inside this closure.
            yaml_parser_set_input_string(parser, buffer.baseAddress ?? UnsafePointer(bitPattern: 1), buffer.count)
            var composer = Composer(parser: parser, bytes: buffer, resolver: resolver)
            let start = try composer.next()
            guard case .streamStart = start.kind else { throw composer.unexpected(start) }
            return try body(&composer)
        }
    }
}

/// What went wrong reading YAML, and where.
public struct YAMLError: Error, Sendable, CustomStringConvertible {
    /// Which stage failed: libyaml's reader (bytes), scanner (tokens), parser (structure), the
    /// composer (aliases, several documents), or the duplicate-key check.
    public enum Kind: String, Sendable {
        case memory, reader, scanner, parser, composer, duplicateKeys
    }

    public let kind: Kind
    /// libyaml's description of the problem (e.g. "mapping values are not allowed in this context").
    public let problem: String
    /// What libyaml was reading when it failed (e.g. "while parsing a block mapping"), if it says.
    public let context: String?
    /// Where the problem is: for duplicate keys, the first of the repeated keys.
    public let mark: Mark
    /// The repeated keys, for ``Kind/duplicateKeys``.
    public let duplicates: [String]

    init(_ kind: Kind, problem: String, context: String?, at mark: Mark, duplicates: [String] = []) {
        self.kind = kind
        self.problem = problem
        self.context = context
        self.mark = mark
        self.duplicates = duplicates
    }

    /// `LINE:COL: KIND: [CONTEXT: ]PROBLEM` — never a copy of the text.
    public var description: String {
        "\(mark): \(kind.rawValue): \([context, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": "))"
    }
}

/// One parser event, copied out of libyaml's structure (which is freed at once).
struct Event {
    enum Kind {
        case streamStart, streamEnd, documentStart, documentEnd, sequenceEnd, mappingEnd
        case alias(anchor: String)
        case scalar(value: String, anchor: String?, tag: String?, quotedImplicit: Bool, style: Node.Scalar.Style)
        case sequenceStart(anchor: String?, tag: String?, style: Node.CollectionStyle)
        case mappingStart(anchor: String?, tag: String?, style: Node.CollectionStyle)
    }

    let kind: Kind
    let mark: Mark
}

/// Builds nodes from libyaml's events.
struct Composer {
    let parser: UnsafeMutablePointer<yaml_parser_t>
    let bytes: UnsafeBufferPointer<UInt8>
    let resolver: Resolver
    /// Nodes by anchor name, with their expanded sizes; as in Yams, anchors stay defined for the
    /// documents that follow.
    var anchors: [String: (node: Node, size: Int)] = [:]
    /// Nodes of the current document counted with every alias expanded (see ``YAML/maximumExpandedNodes``).
    var expanded = 0

    init(parser: UnsafeMutablePointer<yaml_parser_t>, bytes: UnsafeBufferPointer<UInt8>, resolver: Resolver) {
        self.parser = parser
        self.bytes = bytes
        self.resolver = resolver
    }

    /// The next document, or nil at the end of the stream.
    mutating func nextDocument() throws(YAMLError) -> Node? {
        let start = try next()
        switch start.kind {
        case .streamEnd: return nil
        case .documentStart: break
        default: throw unexpected(start)
        }
        expanded = 0
        let root = try node(from: try next())
        let end = try next()
        guard case .documentEnd = end.kind else { throw unexpected(end) }
        return root
    }

    mutating func node(from event: Event) throws(YAMLError) -> Node {
        let start = expanded
        let node = try compose(event)
        if case let .alias(anchor) = event.kind {
            expanded += anchors[anchor]?.size ?? 0
        } else {
            expanded += 1
        }
        guard expanded <= YAML.maximumExpandedNodes else {
            throw YAMLError(.composer, problem: "the document expands to more than \(YAML.maximumExpandedNodes) nodes through its aliases",
                            context: nil, at: event.mark)
        }
        if case let .scalar(_, anchor?, _, _, _) = event.kind { anchors[anchor]?.size = expanded - start }
        if case let .sequenceStart(anchor?, _, _) = event.kind { anchors[anchor]?.size = expanded - start }
        if case let .mappingStart(anchor?, _, _) = event.kind { anchors[anchor]?.size = expanded - start }
        return node
    }

    mutating func compose(_ event: Event) throws(YAMLError) -> Node {
        switch event.kind {
        case let .alias(anchor):
            guard let node = anchors[anchor]?.node else {
                throw YAMLError(.composer, problem: "found undefined alias", context: nil, at: event.mark)
            }
            return node
        case let .scalar(value, anchor, tag, quotedImplicit, style):
            let resolved: Tag
            if quotedImplicit { resolved = .str }
            else if let tag { resolved = tag == Tag.nonSpecific.rawValue ? .str : Tag(rawValue: tag) }
            else { resolved = resolver.tag(ofPlain: value) }
            return register(anchor, .scalar(Node.Scalar(value, resolved, style, event.mark)))
        case let .sequenceStart(anchor, tag, style):
            var items: [Node] = []
            while true {
                let item = try next()
                if case .sequenceEnd = item.kind { break }
                items.append(try node(from: item))
            }
            return register(anchor, .sequence(Node.Sequence(items, collectionTag(tag, default: .seq), style, event.mark)))
        case let .mappingStart(anchor, tag, style):
            var pairs: [(key: Node, value: Node)] = []
            while true {
                let keyEvent = try next()
                if case .mappingEnd = keyEvent.kind { break }
                let key = try node(from: keyEvent)
                let value = try node(from: try next())
                pairs.append((key, value))
            }
            try Self.checkDuplicates(pairs.map(\.key))
            return register(anchor, .mapping(Node.Mapping(pairs, collectionTag(tag, default: .map), style, event.mark)))
        default:
            throw unexpected(event)
        }
    }

    func collectionTag(_ tag: String?, default standard: Tag) -> Tag {
        guard let tag, tag != Tag.nonSpecific.rawValue else { return standard }
        return Tag(rawValue: tag)
    }

    mutating func register(_ anchor: String?, _ node: Node) -> Node {
        if let anchor { anchors[anchor] = (node, 1) }
        return node
    }

    /// Fails on keys that are equal (same kind, text and tag; collections item by item). As Yams
    /// reported it: every repeated key sorted by text, at the first occurrence of the first of them.
    static func checkDuplicates(_ keys: [Node]) throws(YAMLError) {
        var seen: [KeyIdentity: Int] = [:]
        var repeated: [Int] = []
        for (index, key) in keys.enumerated() {
            let identity = KeyIdentity(key)
            if let first = seen[identity] {
                if !repeated.contains(first) { repeated.append(first) }
            } else {
                seen[identity] = index
            }
        }
        guard !repeated.isEmpty else { return }
        let sorted = repeated.map { keys[$0] }.sorted { ($0.string ?? "\u{10FFFF}") < ($1.string ?? "\u{10FFFF}") }
        throw YAMLError(.duplicateKeys, problem: "duplicated key(s) in a mapping", context: nil,
                        at: sorted[0].mark ?? Mark(line: 0, column: 0), duplicates: sorted.map { $0.string ?? "<uncovertable>" })
    }

    /// The next event, or the parser's error.
    mutating func next() throws(YAMLError) -> Event {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else { throw error() }
        defer { yaml_event_delete(&event) }
        let mark = Mark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
        let kind: Event.Kind
        switch event.type {
        case YAML_STREAM_START_EVENT: kind = .streamStart
        case YAML_STREAM_END_EVENT: kind = .streamEnd
        case YAML_DOCUMENT_START_EVENT: kind = .documentStart
        case YAML_DOCUMENT_END_EVENT: kind = .documentEnd
        case YAML_ALIAS_EVENT: kind = .alias(anchor: Self.string(event.data.alias.anchor) ?? "")
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            // The value may hold NUL characters: read it by its length.
            let value = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            kind = .scalar(value: value, anchor: Self.string(scalar.anchor), tag: Self.string(scalar.tag),
                           quotedImplicit: scalar.quoted_implicit != 0, style: Node.Scalar.Style(rawValue: scalar.style.rawValue) ?? .any)
        case YAML_SEQUENCE_START_EVENT:
            let start = event.data.sequence_start
            kind = .sequenceStart(anchor: Self.string(start.anchor), tag: start.implicit != 0 ? nil : Self.string(start.tag),
                                  style: Node.CollectionStyle(rawValue: start.style.rawValue) ?? .any)
        case YAML_SEQUENCE_END_EVENT: kind = .sequenceEnd
        case YAML_MAPPING_START_EVENT:
            let start = event.data.mapping_start
            kind = .mappingStart(anchor: Self.string(start.anchor), tag: start.implicit != 0 ? nil : Self.string(start.tag),
                                 style: Node.CollectionStyle(rawValue: start.style.rawValue) ?? .any)
        case YAML_MAPPING_END_EVENT: kind = .mappingEnd
        default:
            throw YAMLError(.parser, problem: "libyaml produced an event of unknown type \(event.type.rawValue)", context: nil, at: mark)
        }
        return Event(kind: kind, mark: mark)
    }

    func unexpected(_ event: Event) -> YAMLError {
        YAMLError(.parser, problem: "unexpected parser event \(event.kind)", context: nil, at: event.mark)
    }

    /// libyaml's error, with its location; a reader error's byte offset is turned into line and column.
    func error() -> YAMLError {
        let state = parser.pointee
        let problem = state.problem.map { String(cString: $0) } ?? "unknown error"
        let context = state.context.map { String(cString: $0) }
        let problemMark = Mark(line: Int(state.problem_mark.line) + 1, column: Int(state.problem_mark.column) + 1)
        switch state.error {
        case YAML_MEMORY_ERROR: return YAMLError(.memory, problem: "libyaml ran out of memory", context: nil, at: problemMark)
        case YAML_READER_ERROR: return YAMLError(.reader, problem: problem, context: nil, at: mark(atByte: Int(state.problem_offset)))
        case YAML_SCANNER_ERROR: return YAMLError(.scanner, problem: problem, context: context, at: problemMark)
        case YAML_PARSER_ERROR: return YAMLError(.parser, problem: problem, context: context, at: problemMark)
        default: return YAMLError(.composer, problem: problem, context: context, at: problemMark)
        }
    }

    /// The line and column (in Unicode scalars) of a byte offset into the text.
    func mark(atByte offset: Int) -> Mark {
        let prefix = bytes.prefix(max(0, min(offset, bytes.count)))
        var line = 1
        var lineStart = prefix.startIndex
        for index in prefix.indices where prefix[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        let column = String(decoding: prefix[lineStart...], as: UTF8.self).unicodeScalars.count + 1
        return Mark(line: line, column: column)
    }

    static func string(_ pointer: UnsafeMutablePointer<UInt8>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: pointer)
    }
}

/// The identity of a mapping key for the duplicate check: kind, text and tag (Yams' equality).
private indirect enum KeyIdentity: Hashable {
    case scalar(String, Tag)
    case sequence([KeyIdentity], Tag)
    case mapping([KeyIdentity], Tag)

    init(_ node: Node) {
        switch node {
        case let .scalar(scalar): self = .scalar(scalar.string, scalar.tag)
        case let .sequence(sequence): self = .sequence(sequence.map(KeyIdentity.init), sequence.tag)
        case let .mapping(mapping): self = .mapping(mapping.flatMap { [KeyIdentity($0.key), KeyIdentity($0.value)] }, mapping.tag)
        }
    }
}
