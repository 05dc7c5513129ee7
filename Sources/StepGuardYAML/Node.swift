/// A YAML node as the composer builds it: aliases are already replaced by the node their anchor
/// names, so a tree holds only scalars, mappings and sequences.
public enum Node: Sendable {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(Sequence)

    /// Where the node starts in the text (`nil` only for nodes made in code).
    public var mark: Mark? {
        switch self {
        case let .scalar(scalar): scalar.mark
        case let .mapping(mapping): mapping.mark
        case let .sequence(sequence): sequence.mark
        }
    }

    /// The node's resolved tag (`tag:yaml.org,2002:str`, `…:map`, `…:merge`, an explicit `!tag`…).
    public var tag: Tag {
        switch self {
        case let .scalar(scalar): scalar.tag
        case let .mapping(mapping): mapping.tag
        case let .sequence(sequence): sequence.tag
        }
    }

    /// A scalar's text; nil for collections.
    public var string: String? {
        guard case let .scalar(scalar) = self else { return nil }
        return scalar.string
    }
}

extension Node {
    /// A scalar: its text exactly as the parser produced it, its tag and how it was written.
    public struct Scalar: Sendable {
        /// How a scalar was written (the values of libyaml's `yaml_scalar_style_t`).
        public enum Style: UInt32, Sendable {
            case any = 0, plain, singleQuoted, doubleQuoted, literal, folded
        }

        public var string: String
        public var tag: Tag
        public var style: Style
        public var mark: Mark?

        public init(_ string: String, _ tag: Tag = .str, _ style: Style = .any, _ mark: Mark? = nil) {
            self.string = string
            self.tag = tag
            self.style = style
            self.mark = mark
        }
    }

    /// How a mapping or sequence was written: indented lines (`block`) or brackets (`flow`).
    /// (Yams read it from the end event, where libyaml leaves it unset: it was always `any`.)
    public enum CollectionStyle: UInt32, Sendable {
        case any = 0, block, flow
    }

    /// A mapping's key/value pairs in document order (keys are unique, see ``YAML``).
    public typealias Mapping = Collection<(key: Node, value: Node)>
    /// A sequence's items in document order.
    public typealias Sequence = Collection<Node>

    /// The elements of a mapping or a sequence in document order, with the collection's tag, style
    /// and position.
    public struct Collection<Element: Sendable>: RandomAccessCollection, Sendable {
        private let elements: [Element]
        public var tag: Tag
        public var style: CollectionStyle
        public var mark: Mark?

        public init(_ elements: [Element], _ tag: Tag, _ style: CollectionStyle = .any, _ mark: Mark? = nil) {
            self.elements = elements
            self.tag = tag
            self.style = style
            self.mark = mark
        }

        public var startIndex: Int { elements.startIndex }
        public var endIndex: Int { elements.endIndex }
        public subscript(position: Int) -> Element { elements[position] }
    }
}

/// A 1-based position in the text: the line, and the column counted in Unicode scalars.
public struct Mark: Sendable, Hashable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A YAML tag, as a full name (`tag:yaml.org,2002:str`) or as written for a local tag (`!thing`).
public struct Tag: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let str = Tag(rawValue: "tag:yaml.org,2002:str")
    public static let seq = Tag(rawValue: "tag:yaml.org,2002:seq")
    public static let map = Tag(rawValue: "tag:yaml.org,2002:map")
    public static let bool = Tag(rawValue: "tag:yaml.org,2002:bool")
    public static let int = Tag(rawValue: "tag:yaml.org,2002:int")
    public static let float = Tag(rawValue: "tag:yaml.org,2002:float")
    public static let null = Tag(rawValue: "tag:yaml.org,2002:null")
    public static let merge = Tag(rawValue: "tag:yaml.org,2002:merge")
    public static let timestamp = Tag(rawValue: "tag:yaml.org,2002:timestamp")
    public static let value = Tag(rawValue: "tag:yaml.org,2002:value")
    /// The non-specific tag `!`: a scalar so tagged is a string, a collection its own kind.
    static let nonSpecific = Tag(rawValue: "!")
}
