import StepGuardYAML

extension Node {
    /// Key/value pairs of a mapping, with `<<:` merge keys resolved as GitLab's parser (Ruby Psych)
    /// does: in file order, each own key or merged mapping overwrites the keys already there, so the
    /// last `<<:` wins over earlier ones, and a `<<:` written after an own key wins over it too; in
    /// `<<: [*a, *b]` the earlier entry wins. Empty for other nodes.
    var pairs: [(key: Node, value: Node)] {
        guard case let .mapping(mapping) = self else { return [] }
        let own = Array(mapping)
        guard own.contains(where: { $0.key.isMergeKey }) else { return own }
        var result: [(key: Node, value: Node)] = []
        var position: [String: Int] = [:]
        func put(_ pair: (key: Node, value: Node)) {
            guard let key = pair.key.text else { result.append(pair); return }
            if let index = position[key] { result[index] = pair } else { position[key] = result.count; result.append(pair) }
        }
        for pair in own {
            guard pair.key.isMergeKey else { put(pair); continue }
            let sources = pair.value.isSequence ? pair.value.items : [pair.value]
            var merged: [(key: Node, value: Node)] = []
            var seen: Set<String> = []
            for source in sources {
                for entry in source.pairs where entry.key.text.map({ seen.insert($0).inserted }) ?? true { merged.append(entry) }
            }
            merged.forEach(put)
        }
        return result
    }

    /// Whether this is a `<<` merge key (plain `<<`, or the stand-in the checker gives a repeated one).
    var isMergeKey: Bool {
        guard case let .scalar(scalar) = self else { return false }
        if scalar.tag == .merge { return true }
        let scalars = Array(scalar.string.unicodeScalars)
        return scalars.count == 2 && scalars[0].value == WorkflowChecker.mergeStandIn && scalars[1].value > WorkflowChecker.mergeStandIn
    }

    /// Items of a sequence; empty for other nodes.
    var items: [Node] {
        guard case let .sequence(sequence) = self else { return [] }
        return Array(sequence)
    }

    /// The text of a scalar; nil for other nodes.
    var text: String? {
        guard case let .scalar(scalar) = self else { return nil }
        return scalar.string
    }

    var isMapping: Bool { if case .mapping = self { true } else { false } }
    var isSequence: Bool { if case .sequence = self { true } else { false } }

    /// The key node for `key` in a mapping.
    func key(_ key: String) -> Node? { pairs.first { $0.key.text == key }?.key }

    /// The value for `key` in a mapping.
    func value(_ key: String) -> Node? { pairs.first { $0.key.text == key }?.value }

    /// Every scalar below this node (keys excluded), in file order.
    var scalars: [Node] {
        switch self {
        case .scalar: [self]
        case .mapping: pairs.flatMap { $0.value.scalars }
        case .sequence: items.flatMap { $0.scalars }
        }
    }
}

/// Text patterns shared by the audits.
enum Expression {
    /// Names of secrets referenced as `secrets.NAME` or `secrets['NAME']` in a scalar.
    static func secretNames(in text: String) -> [String] {
        var names: [String] = []
        let scalars = Array(text.unicodeScalars)
        let needle = Array("secrets".unicodeScalars)
        var index = 0
        while let found = SourceText.find(needle, in: scalars, from: index) {
            index = found + needle.count
            if found > 0, isIdentifier(scalars[found - 1]) || scalars[found - 1] == "." { continue }
            var cursor = index
            while cursor < scalars.count, scalars[cursor] == " " { cursor += 1 }
            guard cursor < scalars.count else { break }
            if scalars[cursor] == "." {
                cursor += 1
                let start = cursor
                while cursor < scalars.count, isIdentifier(scalars[cursor]) || scalars[cursor] == "-" { cursor += 1 }
                if cursor > start { names.append(String(String.UnicodeScalarView(scalars[start..<cursor]))) }
            } else if scalars[cursor] == "[" {
                cursor += 1
                while cursor < scalars.count, scalars[cursor] == "'" || scalars[cursor] == "\"" || scalars[cursor] == " " { cursor += 1 }
                let start = cursor
                while cursor < scalars.count, isIdentifier(scalars[cursor]) || scalars[cursor] == "-" { cursor += 1 }
                if cursor > start { names.append(String(String.UnicodeScalarView(scalars[start..<cursor]))) }
            }
        }
        return names
    }

    /// Whether the text contains `toJSON(secrets)` (any case, any spacing).
    static func containsToJSONSecrets(_ text: String) -> Bool {
        let squeezed = text.lowercased().filter { !$0.isWhitespace }
        return squeezed.contains("tojson(secrets)")
    }

    static func isIdentifier(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }
}
