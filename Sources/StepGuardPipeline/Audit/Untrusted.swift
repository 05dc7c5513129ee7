import StepGuardCore
/// What an outsider controls in a pipeline run: GitHub event fields and GitLab predefined variables
/// whose text the author of an issue, comment, pull request, branch or commit chooses.
enum Untrusted {
    /// Attacker-controlled GitHub context paths (lower case; `*` is any one index or key), with the
    /// events that fill them. A path read in a workflow that none of these events triggers is empty.
    static let githubFields: [(path: [Substring], events: Set<String>)] = {
        let pullRequest: Set<String> = ["pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"]
        let rows: [(String, Set<String>)] = [
            ("github.head_ref", pullRequest),
            ("github.event.issue.title", ["issues", "issue_comment"]),
            ("github.event.issue.body", ["issues", "issue_comment"]),
            ("github.event.pull_request.title", pullRequest),
            ("github.event.pull_request.body", pullRequest),
            ("github.event.pull_request.head.ref", pullRequest),
            ("github.event.pull_request.head.label", pullRequest),
            ("github.event.pull_request.head.repo.default_branch", pullRequest),
            ("github.event.comment.body", ["issue_comment", "pull_request_review_comment", "commit_comment", "discussion_comment"]),
            ("github.event.review.body", ["pull_request_review"]),
            ("github.event.discussion.title", ["discussion", "discussion_comment"]),
            ("github.event.discussion.body", ["discussion", "discussion_comment"]),
            ("github.event.pages.*.page_name", ["gollum"]),
            ("github.event.commits.*.message", ["push"]),
            ("github.event.commits.*.author.name", ["push"]),
            ("github.event.commits.*.author.email", ["push"]),
            ("github.event.head_commit.message", ["push"]),
            ("github.event.head_commit.author.name", ["push"]),
            ("github.event.head_commit.author.email", ["push"]),
            ("github.event.workflow_run.head_branch", ["workflow_run"]),
            ("github.event.workflow_run.display_title", ["workflow_run"]),
            ("github.event.workflow_run.head_commit.message", ["workflow_run"]),
            ("github.event.workflow_run.head_commit.author.name", ["workflow_run"]),
            ("github.event.workflow_run.head_commit.author.email", ["workflow_run"]),
            ("github.event.workflow_run.pull_requests.*.head.ref", ["workflow_run"]),
        ]
        return rows.map { ($0.0.split(separator: "."), $0.1) }
    }()

    /// Events whose runs get the base repository's secrets and a writable token although an outsider
    /// starts them (and whose caches are the default branch's).
    static let privilegedEvents: Set<String> = ["pull_request_target", "workflow_run", "issue_comment", "pull_request_review",
                                                "pull_request_review_comment", "discussion", "discussion_comment", "issues"]

    /// `${{ … }}` expressions in a text: the raw `${{ … }}` and its body.
    static func expressions(in text: String) -> [(raw: String, body: String)] {
        var result: [(String, String)] = []
        var rest = text[...]
        while let open = rest.scalarRange(of: "${{") {
            guard let close = rest[open.upperBound...].scalarRange(of: "}}") else { break }
            result.append((String(rest[open.lowerBound..<close.upperBound]), String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return result
    }

    /// The attacker-controlled fields an expression body reads, for a workflow triggered by `events`
    /// (a reusable workflow, `workflow_call`, may be called from any event).
    static func fields(inExpression body: String, events: Set<String>) -> [String] {
        let lower = body.lowercased()
        let wholeObject = lower.contains("tojson(") || lower.contains("join(") || lower.contains("format(")
        var found: [String] = []
        for path in contextPaths(in: lower) {
            for field in githubFields where events.contains("workflow_call") || !field.events.isDisjoint(with: events) {
                let matches = path.count >= field.path.count
                    ? zip(path, field.path).allSatisfy { $1 == "*" || $0 == $1 }
                    : wholeObject && zip(path, field.path).allSatisfy { $1 == "*" || $0 == $1 }
                if matches {
                    let name = path.joined(separator: ".")
                    if !found.contains(name) { found.append(name) }
                    break
                }
            }
        }
        return found
    }

    /// Dotted context paths in an expression body (`github.event.issue.title`): `['title']` reads as the
    /// segment `title`, `[0]`, `[*]` or any other index as `*`; other string literals are skipped.
    static func contextPaths(in body: String) -> [[Substring]] {
        var flat = ""
        var quote: Character?
        var bracket: String?
        for c in body {
            if let content = bracket {
                guard c == "]" else { bracket = content + String(c); continue }
                let trimmed = content.trimmingWhitespace()
                let quoted = trimmed.count >= 2 && (trimmed.first == "'" || trimmed.first == "\"") && trimmed.last == trimmed.first
                let key = quoted ? String(trimmed.dropFirst().dropLast()) : ""
                flat += "." + (!key.isEmpty && key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } ? key : "*")
                bracket = nil
                continue
            }
            if let q = quote { if c == q { quote = nil }; continue }
            if c == "'" || c == "\"" { quote = c; flat += " "; continue }
            if c == "[" { bracket = ""; continue }
            flat.append(c)
        }
        let tokens = flat.split { !($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." || $0 == "*") }
        return tokens.filter { $0.first.map { $0.isLetter || $0 == "_" } ?? false }.map { $0.split(separator: ".") }
    }

    /// GitLab predefined variables whose value an outsider (a merge request from a fork, a pushed branch
    /// or commit) chooses.
    static let gitlabVariables: [String] = [
        "CI_MERGE_REQUEST_TITLE", "CI_MERGE_REQUEST_DESCRIPTION", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
        "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_MESSAGE", "CI_COMMIT_TITLE", "CI_COMMIT_DESCRIPTION",
        "CI_COMMIT_BRANCH", "CI_COMMIT_REF_NAME", "CI_COMMIT_AUTHOR", "CI_COMMIT_TAG_MESSAGE",
    ]
}
