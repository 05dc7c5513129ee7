import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Options of a scan.
public struct ScanOptions: Sendable {
    /// Honour `.gitignore` inside a work tree (`--no-ignore` turns it off).
    public var respectGitignore = true
    /// Files (and blobs) larger than this many bytes are skipped and counted.
    public var maxFileSize = 10 * 1024 * 1024
    /// Worker threads (defaults to the number of cores).
    public var workers = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Enforce rule checksums (GitHub tokens): quieter on look-alikes.
    public var verifyChecksums = true
    /// History mode: skip a diff whose answer cannot change which findings count (``LineHashes``).
    /// Off only in tests, which compare both ways.
    var attributionShortcuts = true
    /// History mode: read objects from git's packs directly (``GitObjectStore``), libgit2 only
    /// for what that reader gives up on. Off only in tests, which compare both ways.
    var directObjectReads = true
    /// History mode: pair AWS key ids and secret access keys of one file added in different
    /// commits (``AWSKeyPairs/AcrossCommits``), for `--verify`; costs a read of their blobs.
    public var pairAWSKeysAcrossCommits = false

    public init() {}
}

/// Runs scans over the sources (files, stdin, git index and history) with one detector.
public struct SecretScanner: Sendable {
    /// The detector (rules) used.
    public let detector: SecretDetector
    /// Options.
    public var options: ScanOptions
    /// Rules that gave up on a file in this scanner's scans (a PCRE2 limit): when not empty, the
    /// scan is incomplete and the caller must fail (`stepguard scan` exits 2).
    public let incomplete = IncompleteScanLog()

    public init(detector: SecretDetector, options: ScanOptions = ScanOptions()) {
        self.detector = detector
        self.options = options
    }

    var bufferScanner: BufferScanner {
        BufferScanner(engine: detector.engine, options: MatchOptions(verifyChecksums: options.verifyChecksums), incomplete: incomplete)
    }

    /// Whether the content is binary and skipped: a NUL byte in the first 8000 bytes (git's
    /// heuristic), unless it may be a binary key container (PKCS#12, Java keystore, DER key),
    /// which the container rules check by structure.
    static func looksBinary(_ bytes: UnsafeRawBufferPointer) -> Bool {
        SecretEngine.isBinary(bytes) && !KeyContainer.mayStart(bytes)
    }

    /// Scans files and directories.
    public func scan(paths: [String]) throws -> ScanReport {
        let walked = try FileWalker(respectGitignore: options.respectGitignore).walk(paths)
        var report = ScanReport()
        report.skippedSymlinks = walked.skippedSymlinks
        let files = walked.files
        let next = Atomic<Int>(0)
        let collected = Mutex<[(Int, [BufferScanner.Located], ScanReport)]>([])
        let scanner = bufferScanner
        let engine = detector.engine
        let maxSize = options.maxFileSize
        let workers = max(1, min(options.workers, files.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            var local = ScanReport()
            var located: [(Int, [BufferScanner.Located])] = []
            var buffer = [UInt8]()
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= files.count { break }
                let file = files[i]
                if engine.pathAllowed(file.displayPath) { local.skippedAllowedPaths += 1; continue }
                switch Self.read(file.openPath, maxSize: maxSize, into: &buffer) {
                case .tooLarge: local.skippedLarge += 1; continue
                case .unreadable: continue
                case .ok: break
                }
                let found: [BufferScanner.Located]? = buffer.withUnsafeBytes { raw in
                    if Self.looksBinary(raw) { return nil }
                    return scanner.scan(raw, path: file.displayPath)
                }
                guard let found else { local.skippedBinary += 1; continue }
                local.scannedFiles += 1
                local.scannedBytes += buffer.count
                if !found.isEmpty { located.append((i, found)) }
            }
            let batch = located.map { ($0.0, $0.1, ScanReport()) } + [(-1, [], local)]
            collected.withLock { $0.append(contentsOf: batch) }
        }
        var findings: [(Int, BufferScanner.Located)] = []
        for (index, found, partial) in collected.withLock({ $0 }) {
            if index < 0 {
                report.scannedFiles += partial.scannedFiles
                report.scannedBytes += partial.scannedBytes
                report.skippedBinary += partial.skippedBinary
                report.skippedLarge += partial.skippedLarge
                report.skippedAllowedPaths += partial.skippedAllowedPaths
            } else {
                findings += found.map { (index, $0) }
            }
        }
        findings.sort { ($0.0, $0.1.finding.line, $0.1.finding.column) < ($1.0, $1.1.finding.line, $1.1.finding.column) }
        for (_, l) in findings {
            if l.inlineAllowed { report.suppressed += 1 } else { report.findings.append(l.finding) }
        }
        return report
    }

    /// Scans one buffer (stdin), naming it `path` in findings.
    public func scan(bytes: [UInt8], path: String = "-") -> ScanReport {
        var report = ScanReport()
        let found = bytes.withUnsafeBytes { bufferScanner.scan($0, path: path) }
        report.scannedFiles = 1
        report.scannedBytes = bytes.count
        for l in found {
            if l.inlineAllowed { report.suppressed += 1 } else { report.findings.append(l.finding) }
        }
        return report
    }

    enum ReadResult { case ok, tooLarge, unreadable }

    /// Reads a whole file into `buffer` (reused between files).
    static func read(_ path: String, maxSize: Int, into buffer: inout [UInt8]) -> ReadResult {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .unreadable }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .unreadable }
        let size = Int(st.st_size)
        if size > maxSize { return .tooLarge }
        buffer.removeAll(keepingCapacity: true)
        if size == 0 { return .ok }
        buffer = [UInt8](unsafeUninitializedCapacity: size) { raw, count in
            var total = 0
            while total < size {
                let n = Glibc.read(fd, raw.baseAddress! + total, size - total)
                if n <= 0 { break }
                total += n
            }
            count = total
        }
        return .ok
    }
}
