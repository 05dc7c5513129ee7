import CVectorscan
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

    /// Compiles `patterns` (one per rule, id = index). Patterns vectorscan rejects are left out
    /// and listed in `unsupported`.
    init(patterns: [String]) throws {
        count = patterns.count
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
