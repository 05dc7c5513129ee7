import StepGuardPolicy

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
    /// The words after the command, up to the next operator (flags included).
    var arguments: [String] = []
}

/// Finds calls to signing and secret services in shell scripts (`run:`, `script:`), word by word,
/// joining lines continued with a trailing backslash and ignoring `#` comments.
enum ShellScan {
    struct Word { let text: String; let line: Int; let column: Int; let isOperator: Bool }

    /// Service calls in the content lines of one script (from ``SourceText/contentLines(of:)``).
    static func serviceCalls(in lines: [(text: String, line: Int, column: Int)]) -> [ServiceCall] {
        var calls: [ServiceCall] = []
        forEachLogicalLine(lines) { calls.append(contentsOf: scan($0)) }
        return calls
    }

    /// Commands that fetch a stored secret into the job at run time (`aws ssm get-parameter
    /// --with-decryption`, `aws secretsmanager get-secret-value`): the job then holds a long-lived credential.
    /// `service` names the store, `command` the full subcommand.
    static func secretFetches(in lines: [(text: String, line: Int, column: Int)]) -> [ServiceCall] {
        var fetches: [ServiceCall] = []
        forEachLogicalLine(lines) { words in
            for (index, word) in words.enumerated() where !word.isOperator && basename(word.text) == "aws" {
                let before = words[..<index].map(\.text)
                let guarded = zip(before, before.dropFirst()).contains { basename($0) == "stepguard" && $1 == "run" }
                let args = arguments(words, after: index)
                let positional = args.filter { !$0.hasPrefix("-") }
                if let ssm = positional.prefix(3).firstIndex(of: "ssm"), let sub = positional.dropFirst(ssm + 1).first,
                   sub.hasPrefix("get-parameter"), args.contains("--with-decryption") {
                    fetches.append(ServiceCall(service: "AWS SSM Parameter Store", command: "aws ssm \(sub) --with-decryption",
                                               line: word.line, column: word.column, guarded: guarded))
                }
                if let manager = positional.prefix(3).firstIndex(of: "secretsmanager"), let sub = positional.dropFirst(manager + 1).first,
                   sub == "get-secret-value" || sub == "batch-get-secret-value" {
                    fetches.append(ServiceCall(service: "AWS Secrets Manager", command: "aws secretsmanager \(sub)",
                                               line: word.line, column: word.column, guarded: guarded))
                }
            }
        }
        return fetches
    }

    /// Calls `body` with the words of each logical line (lines joined at a trailing backslash).
    private static func forEachLogicalLine(_ lines: [(text: String, line: Int, column: Int)], _ body: ([Word]) -> Void) {
        var logical: [Word] = []
        for (text, line, column) in lines {
            var words = tokenize(text, line: line, column: column)
            let continued = words.last?.text == "\\" || text.hasSuffix("\\")
            if words.last?.text == "\\" { words.removeLast() }
            logical.append(contentsOf: words)
            if !continued {
                body(logical)
                logical.removeAll()
            }
        }
        if !logical.isEmpty { body(logical) }
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
            case "sigstore" where ["sign", "attest"].contains(first):
                service = "Sigstore signing (sigstore \(first))"; command += " " + first
            case "aws" where positional.prefix(3).contains("kms"):
                service = "AWS KMS"; command += " kms"
            case "aws" where positional.prefix(3).contains("secretsmanager"):
                service = "AWS Secrets Manager"; command += " secretsmanager"
            case "vault" where ["kv", "read", "write", "login", "token", "secrets", "transit", "list"].contains(first):
                service = "HashiCorp Vault"; command += " " + first
            case "npm" where first == "publish", "pnpm" where first == "publish", "pn" where first == "publish":
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
                calls.append(ServiceCall(service: service, command: command, line: word.line, column: word.column, guarded: guarded, arguments: args))
            }
        }
        return calls
    }
}

extension Finding {
    /// The `long-lived-credential` finding for a secret a job fetches at run time (``ShellScan/secretFetches(in:)``).
    static func secretFetch(_ fetch: ServiceCall, job: String, at location: SourceLocation, federation: String) -> Finding {
        Finding(.longLivedCredential, at: location,
                "`\(fetch.command)` fetches a stored secret from \(fetch.service) in job '\(job)': the job holds a long-lived credential",
                remedy: "replace it with \(federation) where there is one; else fetch it only inside `stepguard run` (the step that needs it)")
    }
}
