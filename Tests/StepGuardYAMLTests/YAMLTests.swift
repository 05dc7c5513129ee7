import Testing
import StepGuardYAML

/// The libyaml reader: the tree, tags and marks the policy, workflow and catalog readers rely on,
/// and every kind of error failing with its location.
@Suite struct YAMLTests {
    func root(_ text: String, _ resolver: Resolver = .default) throws -> Node {
        try #require(try YAML.compose(yaml: text, resolver))
    }

    func error(_ text: String, _ resolver: Resolver = .default) -> YAMLError? {
        do {
            _ = try YAML.composeAll(yaml: text, resolver)
            return nil
        } catch {
            return error
        }
    }

    @Test func mappingsKeepOrderMarksAndStyles() throws {
        let node = try root("b: 1\na: 'two'\nc: |\n  three\nd: [x, \"y\"]\n")
        guard case let .mapping(mapping) = node else { Issue.record("not a mapping"); return }
        #expect(mapping.map { $0.key.string } == ["b", "a", "c", "d"])
        #expect(mapping.map { $0.value.mark?.description } == ["1:4", "2:4", "3:4", "5:4"])
        guard case let .scalar(quoted) = mapping[1].value, case let .scalar(literal) = mapping[2].value,
              case let .sequence(flow) = mapping[3].value, case let .scalar(x) = flow[0], case let .scalar(y) = flow[1] else {
            Issue.record("unexpected node kinds"); return
        }
        #expect(quoted.style == .singleQuoted && quoted.string == "two")
        #expect(literal.style == .literal && literal.string == "three\n")
        #expect(x.style == .plain && y.style == .doubleQuoted)
    }

    @Test func plainScalarsResolveAsYAML11() throws {
        let cases: [(String, StepGuardYAML.Tag)] = [
            ("true", .bool), ("On", .bool), ("no", .bool), ("maybe", .str), ("12", .int), ("-0x1F", .int), ("0o17", .int), ("0b1_0", .int),
            ("1:30", .int), ("1.5", .float), ("1e3", .float), ("09", .float), (".inf", .float), ("-.Inf", .float), (".NaN", .float),
            ("1.2.3", .str), ("<<", .merge), ("~", .null), ("null", .null), ("", .null), ("2024-01-02", .timestamp),
            ("2024-1-2 10:00:00 +01:00", .timestamp), ("2024-1-2", .str), ("=", .value), ("v1", .str),
        ]
        for (text, tag) in cases {
            let node = try root("k: \(text)\n")
            guard case let .mapping(mapping) = node else { Issue.record("not a mapping"); return }
            #expect(mapping[0].value.tag == tag, "\(text)")
            #expect(try self.root("k: '\(text)'\n").value(forKey: "k")?.tag == .str, "'\(text)' quoted")
            #expect(try self.root("k: \(text)\n", .basic).value(forKey: "k")?.tag == .str, "\(text) with the basic resolver")
        }
        #expect(try root("k: !!str 12\n").value(forKey: "k")?.tag == .str)
        #expect(try root("k: !custom 12\n").value(forKey: "k")?.tag == StepGuardYAML.Tag(rawValue: "!custom"))
        #expect(try root("k: ! 12\n").value(forKey: "k")?.tag == .str)
    }

    @Test func aliasesAreTheAnchoredNode() throws {
        let node = try root("a: &x {k: v}\nb: *x\nc: &x 2\nd: *x\n")
        #expect(node.value(forKey: "b")?.value(forKey: "k")?.string == "v")
        #expect(node.value(forKey: "b")?.mark?.description == "1:4")  // the anchored node, where it was written
        #expect(node.value(forKey: "d")?.string == "2")  // the later anchor of the same name
    }

    @Test func undefinedAndSelfReferencingAliasesFail() {
        let undefined = error("a: 1\nb: *nowhere\n")
        #expect(undefined?.kind == .composer && undefined?.mark.description == "2:4")
        let recursive = error("a: &x [1, *x]\n")
        #expect(recursive?.kind == .composer && recursive?.problem == "found undefined alias")
    }

    @Test func duplicateKeysFailAtTheFirstOccurrence() {
        let duplicate = error("x: 0\nb: 1\na: 2\nb: 3\na: 4\n")
        #expect(duplicate?.kind == .duplicateKeys)
        #expect(duplicate?.duplicates == ["a", "b"])
        #expect(duplicate?.mark.description == "3:1")
        // The same text with a different tag is another key with the default resolver, not with the basic one.
        #expect(error("1: a\n'1': b\n") == nil)
        #expect(error("1: a\n'1': b\n", .basic)?.duplicates == ["1"])
        #expect(error("<<: {a: 1}\n<<: {b: 2}\n")?.duplicates == ["<<"])
    }

    @Test func syntaxErrorsHaveTheirLocation() {
        let scanner = error("a: b: c\n")
        #expect(scanner?.kind == .scanner && scanner?.mark.description == "1:5")
        #expect(scanner?.problem == "mapping values are not allowed in this context")
        let parser = error("a:\n  - 1\n b: 2\n")
        #expect(parser?.kind == .parser && parser?.mark.line == 3)
        #expect(parser?.context == "while parsing a block mapping")
        // A control character is refused by libyaml's reader, at its own line and column.
        let reader = error("a: 1\nbé: x\u{1}y\n")
        #expect(reader?.kind == .reader && reader?.mark.description == "2:6")
        #expect(reader?.description.contains("x") == false)  // no copy of the text
    }

    /// Nine levels of ten aliases each stand for 10^9 nodes: refused at the alias that crosses the
    /// limit, instead of a tree every reader would walk for hours. Shared anchors below the limit stay.
    @Test func aliasExpansionIsBounded() throws {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...8 { text += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let laughs = error(text)
        #expect(laughs?.kind == .composer && laughs?.problem.contains("through its aliases") == true)
        #expect(laughs?.mark.line == 6)  // a5 stands for 1,111,111 nodes: the first anchor past the limit
        #expect(error("a: &a [1, 2]\nb: [*a, *a, *a]\n") == nil)
    }

    @Test func documents() throws {
        #expect(try YAML.compose(yaml: "") == nil)
        #expect(try YAML.compose(yaml: "# only a comment\n") == nil)
        #expect(try YAML.composeAll(yaml: "a: 1\n---\nb: 2\n").count == 2)
        do {
            _ = try YAML.compose(yaml: "a: 1\n---\nb: 2\n")
            Issue.record("two documents accepted where one is expected")
        } catch {
            #expect(error.kind == .composer && error.mark.line == 2)
        }
    }

    @Test func loadStringsGivesPlainValues() throws {
        let value = try YAML.loadStrings(yaml: "name: x\nflag: true\nlist: [1, b]\nmaps: [{k: v}]\n") as? [String: Any]
        #expect(value?["name"] as? String == "x")
        #expect(value?["flag"] as? String == "true")
        #expect(value?["list"] as? [String] == ["1", "b"])
        #expect((value?["maps"] as? [[String: Any]])?.first?["k"] as? String == "v")
        #expect(throws: YAMLError.self) { try YAML.loadStrings(yaml: "[a]: b\n") }
    }

    struct Rule: Decodable, Equatable {
        var id: String
        var group: Int?
        var ratio: Double?
        var enabled: Bool?
        var words: [String]?
    }

    @Test func decoderReadsTypesAndMerges() throws {
        let rule = try YAMLDecoder().decode(Rule.self, from: "base: &b {group: 2, words: [a]}\n<<: *b\nid: r\nratio: 1_000.5\nenabled: yes\n")
        #expect(rule == Rule(id: "r", group: 2, ratio: 1000.5, enabled: true, words: ["a"]))
        #expect(try YAMLDecoder().decode(Rule.self, from: "id: r\ngroup: ~\n").group == nil)
        #expect(try YAMLDecoder().decode(Rule.self, from: "id: 12\n").id == "12")
        #expect(throws: DecodingError.self) { try YAMLDecoder().decode(Rule.self, from: "id: r\nenabled: 'yes'\n") }
        #expect(throws: DecodingError.self) { try YAMLDecoder().decode(Rule.self, from: "id: r\ngroup: '2'\n") }
        #expect(throws: DecodingError.self) { try YAMLDecoder().decode(Rule.self, from: "group: 2\n") }
        #expect(throws: DecodingError.self) { try YAMLDecoder().decode(Rule.self, from: "id: [r]\n") }
        #expect(throws: DecodingError.self) { try YAMLDecoder().decode(Rule.self, from: "id: r\nid: s\n") }
    }
}

extension Node {
    /// The value of the last pair with a scalar key `key`.
    func value(forKey key: String) -> Node? {
        guard case let .mapping(mapping) = self else { return nil }
        return mapping.last { $0.key.string == key }?.value
    }
}
