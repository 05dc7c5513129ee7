import FoundationEssentials
import StepGuardCore
import Glibc
import Synchronization
import StepGuardYAML

/// The repository a workflow belongs to, when the checker has its checkout: the workflow's path is
/// `ROOT/.github/workflows/NAME` (GitLab: `ROOT/.gitlab-ci.yml`). Local actions, scripts, Makefiles
/// and `package.json` scripts a step runs are read from there, never from outside `ROOT`.
struct RepositoryFiles {
    /// The checkout's root, or nil when the workflow was not read from a checkout.
    let root: String?

    /// Files larger than this are not read (a script that large is judged unknown).
    static let maximumSize = 1 << 20

    init(workflowPath: String) {
        let absolute = URL(fileURLWithPath: workflowPath).standardizedFileURL.path
        var found: String?
        if let range = absolute.scalarRange(of: "/.github/workflows/", backwards: true) {
            found = String(absolute[..<range.lowerBound])
        } else if FilePaths.lastComponent(absolute).hasSuffix("gitlab-ci.yml") {
            found = FilePaths.deletingLastComponent(absolute)
        }
        // A checkout at the file system's root is not read (its "repository" would be the whole machine).
        root = found.flatMap { $0.isEmpty || $0 == "/" ? nil : $0 }
    }

    /// The text of a file at `relative` (to the root, or to `directory` inside it), nil when there is no
    /// checkout, the path leaves the root, or the file is missing, too large or not UTF-8.
    func text(_ relative: String, in directory: String = "") -> String? {
        guard let root, !relative.isEmpty, !relative.hasPrefix("/"), !relative.contains("$") else { return nil }
        let joined = FilePaths.appending(relative, to: FilePaths.appending(directory, to: root))
        let path = URL(fileURLWithPath: joined).standardizedFileURL.resolvingSymlinksInPath().path
        let realRoot = URL(fileURLWithPath: root).standardizedFileURL.resolvingSymlinksInPath().path
        guard path.hasPrefix(realRoot + "/") else { return nil }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              (attributes[.type] as? FileAttributeType) == .typeRegular,
              let size = attributes[.size] as? Int, size <= Self.maximumSize,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    /// The parsed `action.yml` (or `action.yaml`) of a local action `./PATH`, nil when it cannot be read.
    func localAction(_ uses: String) -> Node? {
        let path = String(uses.dropFirst(2)).split(separator: "@").first.map(String.init) ?? ""
        for name in ["action.yml", "action.yaml"] {
            if let text = text(FilePaths.appending(name, to: path)), let node = try? YAML.compose(yaml: text), node.isMapping {
                return node
            }
        }
        return nil
    }

    /// Whether the repository's own code requests the job's OIDC token (`ACTIONS_ID_TOKEN_REQUEST_URL`,
    /// `getIDToken(`, sigstore's `detect_credential`): a bounded walk of the checkout (at most
    /// ``maximumScannedFiles`` entries, files of at most ``maximumSize``; `.git` and `node_modules` skipped), cached per root.
    func codeRequestsToken() -> Bool {
        guard let root else { return false }
        return Self.cache.value(for: root) {
            let markers = ["ACTIONS_ID_TOKEN_REQUEST", "getIDToken(", "detect_credential"]
            var seen = 0
            var found = false
            walkDirectory(root) { relative in
                guard seen < Self.maximumScannedFiles else { return .stop }
                seen += 1
                let name = FilePaths.lastComponent(relative)
                if name == ".git" || name == "node_modules" || name == "dist" || name == "vendor" { return .skipDescendants }
                if relative.hasPrefix(".github/workflows/") { return .next }
                guard let text = text(relative) else { return .next }
                if markers.contains(where: text.contains) { found = true; return .stop }
                return .next
            }
            return found
        }
    }

    /// At most this many directory entries are visited by ``codeRequestsToken()``.
    static let maximumScannedFiles = 20_000

    private static let cache = ScanCache()
}

/// Results of ``RepositoryFiles/codeRequestsToken()`` per checkout root (one walk per root per process).
private final class ScanCache: Sendable {
    private let results = Mutex<[String: Bool]>([:])

    func value(for root: String, compute: () -> Bool) -> Bool {
        if let known = results.withLock({ $0[root] }) { return known }
        let value = compute()
        results.withLock { $0[root] = value }
        return value
    }
}
