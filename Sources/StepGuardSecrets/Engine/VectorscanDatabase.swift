import CVectorscan
import Crypto
import FoundationEssentials
import StepGuardCore
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A vectorscan (Hyperscan) block-mode database holding every rule's pattern, used as the
/// first pass: it tells which rules may match a buffer, and PCRE2 confirms them.
///
/// `@unchecked Sendable`: the database is immutable after `init`; scratch space, which is
/// per-scan mutable state, is handed out from a mutex-protected pool, one per concurrent scan.
final class VectorscanDatabase: @unchecked Sendable {
    private let database: OpaquePointer
    private let prototype: OpaquePointer
    private let pool = Mutex<[Scratch]>([])

    /// A vectorscan scratch region; used by one scan at a time (the pool hands it out exclusively).
    private struct Scratch: @unchecked Sendable { let pointer: OpaquePointer }
    /// Rule indexes whose pattern vectorscan cannot compile, even in prefilter mode;
    /// the engine confirms them with PCRE2 whenever one of their keywords is present.
    let unsupported: Set<Int>
    /// Number of rule slots (the ids reported by a scan are below this).
    let count: Int

    /// Compiles `patterns` (one per rule, id = index), or loads them from the cache in
    /// `cacheDirectory` (nil: no cache). Patterns vectorscan rejects are left out and listed in
    /// `unsupported`.
    init(patterns: [String], cacheDirectory: String?) throws {
        count = patterns.count
        let cacheFile = cacheDirectory.map { Self.cacheFile(for: patterns, in: $0) }
        if let cacheFile, let (cached, rejected) = Self.loadCache(cacheFile) {
            database = cached
            unsupported = rejected
            var scratch: OpaquePointer?
            guard hs_alloc_scratch(database, &scratch) == HS_SUCCESS, let scratch else {
                throw SecretsError(.engine, "vectorscan could not allocate scratch space; the machine may be out of memory")
            }
            prototype = scratch
            return
        }
        var rejected = Set<Int>()
        var db: OpaquePointer?
        while true {
            let ids = (0..<patterns.count).filter { !rejected.contains($0) }
            if ids.isEmpty { break }
            var compileError: UnsafeMutablePointer<hs_compile_error_t>?
            let cStrings = ids.map { strdup(patterns[$0])! }
            defer { cStrings.forEach { free($0) } }
            let exprs: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
            let flags = [UInt32](repeating: UInt32(HS_FLAG_PREFILTER | HS_FLAG_SINGLEMATCH), count: ids.count)
            let idValues = ids.map { UInt32($0) }
            let rc = hs_compile_multi(exprs, flags, idValues, UInt32(ids.count), UInt32(HS_MODE_BLOCK), nil, &db, &compileError)
            if rc == HS_SUCCESS { break }
            let failing = compileError.map { Int($0.pointee.expression) } ?? -1
            let message = compileError.flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "unknown"
            if let compileError { hs_free_compile_error(compileError) }
            guard failing >= 0, failing < ids.count else {
                throw SecretsError(.engine, "vectorscan could not compile the rule database: \(message); run with --rules to isolate the offending rule")
            }
            rejected.insert(ids[failing])
            db = nil
        }
        unsupported = rejected
        if let db {
            database = db
            if let cacheFile { Self.storeCache(cacheFile, db, rejected) }
        } else {
            // Every pattern was rejected: compile a database that never matches.
            var empty: OpaquePointer?
            var compileError: UnsafeMutablePointer<hs_compile_error_t>?
            let rc = hs_compile("(?!)\\x00\\xff\\x00never", 0, UInt32(HS_MODE_BLOCK), nil, &empty, &compileError)
            if let compileError { hs_free_compile_error(compileError) }
            guard rc == HS_SUCCESS, let empty else { throw SecretsError(.engine, "vectorscan could not compile an empty database") }
            database = empty
        }
        var scratch: OpaquePointer?
        guard hs_alloc_scratch(database, &scratch) == HS_SUCCESS, let scratch else {
            throw SecretsError(.engine, "vectorscan could not allocate scratch space; the machine may be out of memory")
        }
        prototype = scratch
    }

    // MARK: On-disk cache of the compiled database
    //
    // Compiling ~120 patterns takes about a second; deserializing takes well under a millisecond.
    // The cache key covers the vectorscan version, the flags and every pattern, so a changed rule
    // set or library compiles afresh; a database built for another CPU fails to deserialize and is
    // recompiled. The directory comes from the caller (``SecretPrefilter/cacheDirectory(environment:)``).

    static func cacheFile(for patterns: [String], in dir: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(String(cString: hs_version()).utf8))
        hasher.update(data: Array("flags:\(HS_FLAG_PREFILTER | HS_FLAG_SINGLEMATCH)".utf8))
        for p in patterns { hasher.update(data: Array(p.utf8) + [0]) }
        let key = hasher.finalize().prefix(16).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        return dir + "/rules-\(key).hsdb"
    }

    static func loadCache(_ path: String) -> (OpaquePointer, Set<Int>)? {
        var bytes: [UInt8] = []
        guard SecretScanner.read(path, maxSize: 1 << 30, into: &bytes) == .ok, bytes.count > 4 else { return nil }
        let n = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        let header = 4 + 4 * n
        guard n >= 0, bytes.count > header else { return nil }
        var rejected = Set<Int>()
        for i in 0..<n {
            let o = 4 + 4 * i
            rejected.insert(Int(bytes[o]) | Int(bytes[o + 1]) << 8 | Int(bytes[o + 2]) << 16 | Int(bytes[o + 3]) << 24)
        }
        var db: OpaquePointer?
        let rc = bytes.withUnsafeBytes { raw in
            hs_deserialize_database(raw.baseAddress!.advanced(by: header).assumingMemoryBound(to: CChar.self), bytes.count - header, &db)
        }
        guard rc == HS_SUCCESS, let db else { return nil }
        return (db, rejected)
    }

    static func storeCache(_ path: String, _ db: OpaquePointer, _ rejected: Set<Int>) {
        var raw: UnsafeMutablePointer<CChar>?
        var length = 0
        guard hs_serialize_database(db, &raw, &length) == HS_SUCCESS, let raw else { return }
        defer { free(raw) }
        var out: [UInt8] = []
        func u32(_ v: Int) { out += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 24) & 0xFF)] }
        u32(rejected.count)
        rejected.sorted().forEach(u32)
        out += UnsafeRawBufferPointer(start: raw, count: length)
        let dir = FilePaths.deletingLastComponent(path)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = path + ".\(getpid()).tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(out)) else { return }
        if rename(tmp, path) != 0 { unlink(tmp) }
    }

    deinit {
        pool.withLock { $0.forEach { hs_free_scratch($0.pointer) } }
        hs_free_scratch(prototype)
        hs_free_database(database)
    }

    private func takeScratch() -> OpaquePointer? {
        if let s = pool.withLock({ $0.popLast() }) { return s.pointer }
        var clone: OpaquePointer?
        guard hs_clone_scratch(prototype, &clone) == HS_SUCCESS else { return nil }
        return clone
    }

    /// Marks in `hits` (indexed by rule) every rule whose prefilter pattern matches `bytes`.
    /// Returns false if the scan failed (the caller then confirms every rule with PCRE2).
    func scan(_ bytes: UnsafeRawBufferPointer, hits: inout [Bool]) -> Bool {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return true }
        guard bytes.count < Int(UInt32.max) else { return false }
        guard let scratch = takeScratch() else { return false }
        defer { pool.withLock { $0.append(Scratch(pointer: scratch)) } }
        let rc = hits.withUnsafeMutableBufferPointer { buffer -> hs_error_t in
            withUnsafeMutablePointer(to: &buffer) { ctx in
                hs_scan(database, base.assumingMemoryBound(to: CChar.self), UInt32(bytes.count), 0, scratch, { id, _, _, _, context in
                    let buf = context!.assumingMemoryBound(to: UnsafeMutableBufferPointer<Bool>.self)
                    if Int(id) < buf.pointee.count { buf.pointee[Int(id)] = true }
                    return 0
                }, ctx)
            }
        }
        return rc == HS_SUCCESS
    }
}
