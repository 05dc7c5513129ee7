/// A call to a signing or secret service found in a shell script line.
struct ServiceCall: Equatable {
    /// The service, e.g. "Sigstore signing (cosign)".
    let service: String
    /// The command as written, e.g. "cosign sign".
    let command: String
    /// 1-based source line and column of the command's first word.
    let line: Int
    let column: Int
    /// True when the same logical command line runs it under `stepguard run`.
    let guarded: Bool
}

/// Finds calls to signing and secret services in shell scripts (`run:`, `script:`), word by word,
/// joining lines continued with a trailing backslash and ignoring `#` comments.
enum ShellScan {
    struct Word { let text: String; let line: Int; let column: Int; let isOperator: Bool }

    /// Service calls in the content lines of one script (from ``SourceText/contentLines(of:)``).
    static func serviceCalls(in lines: [(text: String, line: Int, column: Int)]) -> [ServiceCall] {
        var calls: [ServiceCall] = []
        var logical: [Word] = []
        for (text, line, column) in lines {
            var words = tokenize(text, line: line, column: column)
            let continued = words.last?.text == "\\" || text.hasSuffix("\\")
            if words.last?.text == "\\" { words.removeLast() }
            logical.append(contentsOf: words)
            if !continued {
                calls.append(contentsOf: scan(logical))
                logical.removeAll()
            }
        }
        calls.append(contentsOf: scan(logical))
        return calls
    }

    /// Whether a script line (or a `shell:` value) runs its command under `stepguard run`.
    static func mentionsStepGuardRun(_ text: String) -> Bool {
        let words = tokenize(text, line: 1, column: 1).map(\.text)
        return zip(words, words.dropFirst()).contains { basename($0) == "stepguard" && $1 == "run" }
    }

    /// Words of a shell line with their positions; stops at a `#` comment.
    static func tokenize(_ text: String, line: Int, column: Int) -> [Word] {
        var words: [Word] = []
        var current = ""
        var start = 0
        var quote: Unicode.Scalar?
        let scalars = Array(text.unicodeScalars)
        func flush() {
            if !current.isEmpty { words.append(Word(text: current, line: line, column: column + start, isOperator: false)) }
            current = ""
        }
        var index = 0
        while index < scalars.count {
            let c = scalars[index]
            if let q = quote {
                if c == q { quote = nil } else { current.unicodeScalars.append(c) }
            } else if c == "\"" {
                // Double quotes do not hide commands ("$(aws kms …)"); their words are scanned like any other.
            } else if c == "'" {
                if current.isEmpty { start = index }
                quote = c
            } else if c == " " || c == "\t" || c == "\r" || c == "\n" {
                flush()
            } else if c == ";" || c == "|" || c == "&" || c == "(" || c == ")" || c == "`" {
                flush()
                words.append(Word(text: String(c), line: line, column: column + index, isOperator: true))
            } else if c == "#" && current.isEmpty {
                break
            } else {
                if current.isEmpty { start = index }
                current.unicodeScalars.append(c)
            }
            index += 1
        }
        flush()
        return words
    }

    static func basename(_ word: String) -> String {
        word.split(separator: "/").last.map(String.init) ?? word
    }

    /// Subcommand words after `index` up to the next operator, flags skipped.
    private static func arguments(_ words: [Word], after index: Int) -> [String] {
        var result: [String] = []
        var cursor = index + 1
        while cursor < words.count, !words[cursor].isOperator {
            result.append(words[cursor].text)
            cursor += 1
        }
        return result
    }

    private static func scan(_ words: [Word]) -> [ServiceCall] {
        var calls: [ServiceCall] = []
        var guarded = false
        for (index, word) in words.enumerated() where !word.isOperator {
            let name = basename(word.text)
            if name == "stepguard", index + 1 < words.count, words[index + 1].text == "run" { guarded = true; continue }
            let args = arguments(words, after: index)
            let positional = args.filter { !$0.hasPrefix("-") }
            let first = positional.first ?? ""
            var service: String?
            var command = name
            switch name {
            case "cosign" where ["sign", "sign-blob", "attest", "attest-blob"].contains(first):
                service = "Sigstore signing (cosign \(first))"; command += " " + first
            case "aws" where positional.prefix(3).contains("kms"):
                service = "AWS KMS"; command += " kms"
            case "aws" where positional.prefix(3).contains("secretsmanager"):
                service = "AWS Secrets Manager"; command += " secretsmanager"
            case "vault" where ["kv", "read", "write", "login", "token", "secrets", "transit", "list"].contains(first):
                service = "HashiCorp Vault"; command += " " + first
            case "npm" where first == "publish", "pnpm" where first == "publish":
                service = "npm registry publish"; command += " publish"
            case "yarn" where first == "publish" || (first == "npm" && positional.dropFirst().first == "publish"):
                service = "npm registry publish"; command += first == "npm" ? " npm publish" : " publish"
            case "twine" where first == "upload":
                service = "PyPI upload (twine)"; command += " upload"
            case _ where ["uv", "poetry", "hatch", "flit"].contains(name) && first == "publish":
                service = "PyPI upload (\(name) publish)"; command += " publish"
            case _ where (name == "docker" || name == "podman") && (first == "push" || (first == "image" && positional.dropFirst().first == "push")):
                service = "container registry push"; command += first == "push" ? " push" : " image push"
            case "docker" where first == "buildx" && args.contains("--push"):
                service = "container registry push"; command += " buildx --push"
            case "gh" where first == "secret":
                service = "GitHub secrets (gh secret)"; command += " secret"
            default:
                break
            }
            if let service {
                calls.append(ServiceCall(service: service, command: command, line: word.line, column: word.column, guarded: guarded))
            }
        }
        return calls
    }
}
