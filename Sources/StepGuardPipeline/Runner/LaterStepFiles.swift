import FoundationEssentials
import StepGuardCore
import StepGuardPolicy
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One way a step changed how the job's later steps run, found in a runner file after it ended.
public struct LaterStepChange: Sendable, Equatable {
    /// The file: `GITHUB_ENV` or `GITHUB_PATH` (the variables naming them), or the path of a
    /// GitLab dotenv report.
    public let file: String
    /// The variable the step set (`LD_PRELOAD`), `PATH` for a `$GITHUB_PATH` entry, or nil when the
    /// file itself was tampered with or could not be read.
    public let variable: String?
    /// Why it matters, in one sentence.
    public let reason: String
}

/// The files through which a GitHub Actions step changes the environment of the job's later
/// steps — `$GITHUB_ENV` (`NAME=value` lines and `NAME<<DELIMITER` … `DELIMITER` blocks) and
/// `$GITHUB_PATH` (one directory per line) — and GitLab dotenv reports (`NAME=value` lines) named
/// by the caller. ``init(environment:dotenvReports:)`` records where each file stands
/// before the step starts; ``changes()`` reads only what the step appended and reports the
/// entries that would change how later steps are guarded, started or trusted. Fails closed: a
/// file that was truncated, rewritten, replaced (a new inode, a symlink), removed or cannot be
/// parsed is a change.
public struct LaterStepFiles: Sendable {
    /// Where a watched file stood before the step.
    struct Mark: Sendable {
        /// `GITHUB_ENV`, `GITHUB_PATH`, or the path of a dotenv report.
        let variable: String
        /// How messages name the file: `$GITHUB_ENV`, `the dotenv report build.env`.
        let label: String
        let path: String
        /// nil when the file did not exist.
        let identity: (device: UInt64, inode: UInt64)?
        let content: [UInt8]
    }

    let marks: [Mark]

    /// The runner variables whose files are watched.
    public static let fileVariables = ["GITHUB_ENV", "GITHUB_PATH"]

    /// Variables that change how later steps are guarded (`STEPGUARD_*`), what programs load or
    /// run at start, where they connect, whom they trust, or which credentials they use. Globs,
    /// compared without regard to case.
    public static let dangerousVariables = [
        "STEPGUARD_*", "PATH", "LD_*", "DYLD_*", "BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS4",
        "PROMPT_COMMAND", "IFS", "HOME", "XDG_CONFIG_HOME", "TMPDIR",
        "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED", "NPM_CONFIG_*",
        "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PIP_*",
        "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB", "GEM_HOME", "GEM_PATH", "BUNDLE_*",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "MAVEN_OPTS", "GRADLE_OPTS", "DOTNET_STARTUP_HOOKS", "CORECLR_*",
        "GIT_*", "SSH_AUTH_SOCK", "DOCKER_HOST", "DOCKER_CONFIG", "KUBECONFIG",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_HOME", "WGETRC", "OPENSSL_CONF",
        "GITHUB_*", "GH_*", "ACTIONS_*", "RUNNER_*", "CI_*",
        // Cloud SDKs: the variables that choose credentials, identities, endpoints or trust — not
        // settings such as AWS_REGION or GOOGLE_CLOUD_PROJECT, which steps hand on as a matter of course.
        "AWS_ACCESS_KEY*", "AWS_SECRET*", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_*PROFILE", "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL*", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
        "AWS_CONTAINER_*", "AWS_EC2_METADATA_*",
        "AZURE_CLIENT_*", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN*", "AZURE_AUTHORITY_HOST", "AZURE_CONFIG_DIR",
        "AZURE_USERNAME", "AZURE_PASSWORD", "ARM_*",
        "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS", "GOOGLE_GHA_CREDS_PATH", "GOOGLE_OAUTH_ACCESS_TOKEN",
        "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT", "CLOUDSDK_*",
    ]

    /// Records where `$GITHUB_ENV` and `$GITHUB_PATH` (as named in `environment`) and the GitLab
    /// dotenv reports at `dotenvReports` (paths as the job declares them) stand now.
    public init(environment: [String: String], dotenvReports: [String] = []) {
        func mark(_ variable: String, _ label: String, _ path: String) -> Mark {
            let identity = Self.identity(of: path)
            return Mark(variable: variable, label: label, path: path, identity: identity.flatMap { $0 },
                        content: identity == nil ? [] : (FileManager.default.contents(atPath: path).map { Array($0) } ?? []))
        }
        marks = Self.fileVariables.compactMap { variable in
            environment[variable].flatMap { $0.isEmpty ? nil : mark(variable, "$" + variable, $0) }
        } + dotenvReports.map { mark($0, "the dotenv report \($0)", $0) }
    }

    /// What the step appended that changes later steps, and any tampering with the files.
    public func changes() -> [LaterStepChange] {
        marks.flatMap(changes(in:))
    }

    private func changes(in mark: Mark) -> [LaterStepChange] {
        func tampered(_ what: String) -> [LaterStepChange] {
            [LaterStepChange(file: mark.variable, variable: nil,
                             reason: "\(mark.label) (\(mark.path)) \(what) while the step ran; later steps would read whatever it holds now")]
        }
        let now = Self.identity(of: mark.path)
        guard let now else {
            return mark.identity == nil ? [] : tampered("was removed")
        }
        guard let current = now else { return tampered("was replaced by something other than a regular file") }
        if let before = mark.identity, before != current { return tampered("was replaced by another file") }
        guard let data = FileManager.default.contents(atPath: mark.path) else { return tampered("became unreadable") }
        let content = Array(data)
        guard content.count >= mark.content.count else { return tampered("was truncated") }
        guard content.starts(with: mark.content) else { return tampered("was rewritten") }
        let appended = content[mark.content.count...]
        switch mark.variable {
        case "GITHUB_PATH":
            return Self.lines(appended).filter { !$0.isEmpty }.prefix(1).map { _ in
                LaterStepChange(file: mark.variable, variable: "PATH",
                                reason: "the step added a directory to $GITHUB_PATH: later steps would look up programs there first")
            }
        default:
            do {
                return try Self.environmentNames(appended).filter(Self.isDangerous).map { name in
                    LaterStepChange(file: mark.variable, variable: name,
                                    reason: "the step set \(name) for later steps through \(mark.label)")
                }
            } catch {
                return tampered("holds an entry stepguard cannot parse (\(error.reason))")
            }
        }
    }

    /// Puts back what `file` (`GITHUB_ENV`…) held before the step, so later steps get nothing the
    /// step appended, truncated or rewrote; a file the step created is emptied. Only when it is
    /// still the same regular file (opened without following a symlink, same device and inode):
    /// a replaced file is left alone. Returns whether it was restored.
    public func restore(_ file: String) -> Bool {
        guard let mark = marks.first(where: { $0.variable == file }) else { return false }
        let fd = open(mark.path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        if let before = mark.identity, UInt64(info.st_dev) != before.device || UInt64(info.st_ino) != before.inode { return false }
        let written = mark.content.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return written == mark.content.count && ftruncate(fd, off_t(mark.content.count)) == 0
    }

    /// True when setting `name` for later steps changes how they are guarded, started or trusted —
    /// or when it is not a plain `[A-Za-z_][A-Za-z0-9_]*` name once spaces and a byte-order mark are
    /// trimmed (a reader that trims them, as .NET drops a BOM at the start of a file, must not see
    /// `LD_PRELOAD` where this one saw something else).
    public static func isDangerous(_ name: String) -> Bool {
        let trimmed = name.trimming { $0.isWhitespaceOrNewline || $0 == "\u{FEFF}" }
        let plain = trimmed.utf8.first.map { !(0x30...0x39).contains($0) } == true
            && trimmed.utf8.allSatisfy { $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
        guard plain else { return true }
        return dangerousPatterns.contains { $0.matches(trimmed) }
    }

    private static let dangerousPatterns = dangerousVariables.map { pattern in
        do { return try Glob(pattern, caseInsensitive: true) } catch { preconditionFailure("\(pattern): \(error)") }
    }

    /// Why an appended `$GITHUB_ENV` part could not be parsed.
    struct ParseError: Error { let reason: String }

    /// The names set by `NAME=value` lines and `NAME<<DELIMITER` blocks, parsed as the runner does:
    /// a line is `NAME=value` when its first `=` comes before any `<<`, a block otherwise.
    static func environmentNames(_ bytes: ArraySlice<UInt8>) throws(ParseError) -> [String] {
        var names: [String] = []
        var lines = Self.lines(bytes)[...]
        while let line = lines.popFirst() {
            if line.isEmpty { continue }
            let equals = line.scalarRange(of: "=")
            let heredoc = line.scalarRange(of: "<<")
            if let equals, heredoc.map({ equals.lowerBound < $0.lowerBound }) ?? true {
                let name = String(line[..<equals.lowerBound])
                guard !name.isEmpty else { throw ParseError(reason: "a line with an empty name") }
                names.append(name)
            } else if let heredoc {
                let name = String(line[..<heredoc.lowerBound])
                let delimiter = String(line[heredoc.upperBound...])
                guard !name.isEmpty, !delimiter.isEmpty else { throw ParseError(reason: "a '<<' block without a name or delimiter") }
                guard let end = lines.firstIndex(of: delimiter) else {
                    throw ParseError(reason: "the block of \(name) has no closing delimiter")
                }
                lines = lines[lines.index(after: end)...]
                names.append(name)
            } else {
                throw ParseError(reason: "a line that is neither NAME=value nor NAME<<DELIMITER")
            }
        }
        return names
    }

    /// Lines split at `\n`, `\r\n` and a lone `\r` (a reader that takes `\r` as a line break
    /// must not see a name this one misses), on bytes: Swift's `Character` would take `\r\n` as
    /// one character and never split there. Invalid UTF-8 is replaced, so it cannot hide a name.
    private static func lines(_ bytes: ArraySlice<UInt8>) -> [String] {
        var lines: [String] = []
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == 0x0A || byte == 0x0D {
                lines.append(String(decoding: bytes[start..<index], as: UTF8.self))
                if byte == 0x0D, index + 1 < bytes.endIndex, bytes[index + 1] == 0x0A { index += 1 }
                start = index + 1
            }
            index += 1
        }
        if start < bytes.endIndex { lines.append(String(decoding: bytes[start...], as: UTF8.self)) }
        return lines
    }

    /// nil when `path` does not exist; .some(nil) when it is not a regular file (a symlink, a
    /// FIFO…); the device and inode of a regular file otherwise.
    private static func identity(of path: String) -> (device: UInt64, inode: UInt64)?? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return errno == ENOENT ? nil : .some(nil) }
        guard info.st_mode & S_IFMT == S_IFREG else { return .some(nil) }
        return .some((UInt64(info.st_dev), UInt64(info.st_ino)))
    }
}
