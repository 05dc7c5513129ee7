import CZlib
import FoundationEssentials
import StepGuardCore
#if canImport(Glibc)
import Glibc
#endif

/// Git's objects read directly: loose (zlib) and packed (`.idx` version 2, with offset and
/// reference deltas). SHA-1 repositories only (``GitLayout`` refuses the others). Object ids are
/// not re-hashed (like the libgit2 path, which turns strict hash verification off).
///
/// Not shared between threads (one zlib stream, reset for each object, and a cache of the objects
/// read from packs, which the delta chains of the next versions of a file start from).
final class GitObjectStore {
    enum ObjectType: Int { case commit = 1, tree = 2, blob = 3, tag = 4 }

    private let objects: String
    private lazy var packs: [Pack] = shared?.packs ?? Self.loadPacks(objects, populate: false)
    /// Packs mapped once for every worker of a scan (``GitPacks``), or nil: this store maps its own.
    private let shared: GitPacks?
    /// One zlib stream for every object (`inflateReset`, not a new state of 40 KB each time).
    private let stream: UnsafeMutablePointer<z_stream>
    private var streamReady = false
    /// libdeflate's decompressor, when the system has the library and the caller wants it.
    private let deflater: (library: LibDeflate, decompressor: OpaquePointer)?
    /// Objects read from packs, by pack and offset (``cacheKey``), up to ``cacheBudget`` bytes,
    /// the oldest dropped first: a delta's base is usually the version of the same file read
    /// just before (history mode reads each path's versions in a row).
    private var cache: [Int: (type: ObjectType, data: [UInt8])] = [:]
    private var cacheOrder: [Int] = []
    private var cacheOldest = 0
    private var cacheBytes = 0
    private let cacheBudget: Int

    /// `cacheBudget`: bytes of inflated pack objects kept as delta bases (0: none). `libdeflate`:
    /// inflate pack objects with libdeflate when the system has it (`libdeflate.so.0`; zlib
    /// otherwise, and for loose objects): whole-buffer inflation without zlib's per-stream set-up,
    /// about 1.4× faster on git's small objects.
    init(_ layout: GitLayout, cacheBudget: Int = 0, libdeflate: Bool = true, packs: GitPacks? = nil) {
        objects = layout.commonDirectory + "/objects"
        self.cacheBudget = cacheBudget
        shared = packs
        stream = .allocate(capacity: 1)
        if libdeflate, let library = LibDeflate.shared, let decompressor = library.allocate() {
            deflater = (library, decompressor)
        } else {
            deflater = nil
        }
    }

    /// The store of the repository whose objects are in `commonDirectory + "/objects"`.
    convenience init(commonDirectory: String, cacheBudget: Int, libdeflate: Bool = true, packs: GitPacks? = nil) {
        self.init(GitLayout(gitDirectory: commonDirectory, commonDirectory: commonDirectory), cacheBudget: cacheBudget, libdeflate: libdeflate, packs: packs)
    }

    /// Whether pack objects are inflated with libdeflate.
    var usesLibdeflate: Bool { deflater != nil }

    deinit {
        if streamReady { inflateEnd(stream) }
        stream.deallocate()
        if let deflater { deflater.library.free(deflater.decompressor) }
    }

    /// The longest delta chain read: git writes none longer than 4,095 (pack.depth's limit), so a
    /// longer one loops — a reference delta whose base is, some deltas on, itself — which libgit2
    /// would follow forever: an error (``GitDirectUnsupported/damaged``), not a fallback.
    static let maximumChain = 5_000

    /// The object `id` (20 bytes); unsupported when it is in none of the packs and loose objects
    /// (an alternate object store, a promisor remote) or cannot be decoded; damaged when its delta
    /// chain loops.
    ///
    /// A delta chain is walked down to an object that is whole (or cached), then its deltas are
    /// applied on the way back up: a loop, not a recursion, so that no chain, however long, can
    /// overflow the stack of the thread that reads it (the recursion it replaces crashed a debug
    /// build's scan, exit 139, about 2,800 reference deltas down a loop).
    func read(_ id: [UInt8]) throws(GitDirectUnsupported) -> (type: ObjectType, data: [UInt8]) {
        guard id.count == 20 else { throw GitDirectUnsupported("an object id of \(id.count) bytes") }
        var next = Link.id(id)
        var deltas: [(key: Int, pack: Pack, offset: Int, at: Int, size: Int)] = []
        var object: (type: ObjectType, data: [UInt8])
        walk: while true {
            guard deltas.count <= Self.maximumChain else {
                throw GitDirectUnsupported("object \(Hex.string(id)): a delta chain of more than \(Self.maximumChain) objects: it loops or the pack is damaged",
                                           damaged: true)
            }
            let ordinal: Int, offset: Int
            switch next {
            case .packed(let o, let at): (ordinal, offset) = (o, at)
            case .id(let base):
                var found: (ordinal: Int, offset: Int)?
                for (o, pack) in packs.enumerated() {
                    if let at = pack.offset(of: base) { found = (o, at); break }
                }
                guard let found else {
                    object = try looseObject(base)
                    break walk
                }
                (ordinal, offset) = found
            }
            let key = Self.cacheKey(ordinal: ordinal, offset: offset)
            if let known = cached(key) { object = known; break walk }
            switch try packs[ordinal].entry(at: offset, store: self) {
            case .whole(let whole):
                object = whole
                remember(key, object)
                break walk
            case .delta(let at, let size, let base):
                deltas.append((key, packs[ordinal], offset, at, size))
                switch base {
                case .offset(let baseOffset): next = .packed(ordinal: ordinal, offset: baseOffset)
                case .id(let baseID): next = .id(baseID)
                }
            }
        }
        for link in deltas.reversed() {
            guard let delta = inflateExactly(UnsafeRawBufferPointer(rebasing: link.pack.pack[link.at...]), size: link.size),
                  let data = Self.applyDelta(delta, to: object.data) else {
                throw GitDirectUnsupported("pack delta at \(link.offset) cannot be applied")
            }
            object = (object.type, data)
            remember(link.key, object)
        }
        return object
    }

    /// Where the next object of a delta chain is.
    private enum Link {
        case packed(ordinal: Int, offset: Int)
        case id([UInt8])
    }

    /// The loose object `id`.
    private func looseObject(_ id: [UInt8]) throws(GitDirectUnsupported) -> (type: ObjectType, data: [UInt8]) {
        let hex = Hex.string(id)
        if let compressed = readFile(objects + "/" + hex.prefix(2) + "/" + hex.dropFirst(2)) {
            guard let object = Self.loose(compressed) else { throw GitDirectUnsupported("loose object \(hex) cannot be decoded") }
            return object
        }
        throw GitDirectUnsupported("object \(hex) is not in this repository's objects")
    }

    fileprivate static func cacheKey(ordinal: Int, offset: Int) -> Int { ordinal << 44 | offset }

    fileprivate func cached(_ key: Int) -> (type: ObjectType, data: [UInt8])? {
        return cacheBudget > 0 ? cache[key] : nil
    }

    fileprivate func remember(_ key: Int, _ object: (type: ObjectType, data: [UInt8])) {
        let size = object.data.count
        guard cacheBudget > 0, size <= cacheBudget / 4, cache[key] == nil else { return }
        while cacheBytes + size > cacheBudget, cacheOldest < cacheOrder.count {
            if let dropped = cache.removeValue(forKey: cacheOrder[cacheOldest]) { cacheBytes -= dropped.data.count }
            cacheOldest += 1
        }
        if cacheOldest > 4096, cacheOldest * 2 > cacheOrder.count {
            cacheOrder.removeFirst(cacheOldest)
            cacheOldest = 0
        }
        cache[key] = object
        cacheOrder.append(key)
        cacheBytes += size
    }

    /// The packs in `objects/pack` (`populate`: their pages mapped at once, for a scan that reads
    /// nearly every object).
    fileprivate static func loadPacks(_ objects: String, populate: Bool) -> [Pack] {
        guard let dir = opendir(objects + "/pack") else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".idx") { names.append(String(name.dropLast(4))) }
        }
        return names.sorted().compactMap { Pack(objects + "/pack/" + $0, populate: populate) }
    }

    /// A loose object: zlib over `type size\0content`.
    private static func loose(_ compressed: [UInt8]) -> (type: ObjectType, data: [UInt8])? {
        compressed.withUnsafeBytes { input -> (type: ObjectType, data: [UInt8])? in
            var stream = z_stream()
            guard inflateInit_(&stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
            defer { inflateEnd(&stream) }
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = UInt32(input.count)
            var header = [UInt8](repeating: 0, count: 32)
            let rc = header.withUnsafeMutableBufferPointer { out -> Int32 in
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                return inflate(&stream, Z_NO_FLUSH)
            }
            guard rc == Z_OK || rc == Z_STREAM_END else { return nil }
            let produced = 32 - Int(stream.avail_out)
            guard let nul = header[..<produced].firstIndex(of: 0), let space = header[..<nul].firstIndex(of: UInt8(ascii: " ")),
                  let size = Int(String(decoding: header[(space + 1)..<nul], as: UTF8.self)), size >= 0,
                  size <= maximumInflated(input.count) else { return nil }
            let type: ObjectType
            switch String(decoding: header[..<space], as: UTF8.self) {
            case "commit": type = .commit
            case "tree": type = .tree
            case "blob": type = .blob
            case "tag": type = .tag
            default: return nil
            }
            let already = produced - nul - 1
            guard already <= size else { return nil }
            var data = [UInt8](repeating: 0, count: size)
            data.replaceSubrange(0..<already, with: header[(nul + 1)..<produced])
            var ended = rc == Z_STREAM_END
            if !ended && already < size {
                let r = data.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress! + already
                    stream.avail_out = UInt32(size - already)
                    return inflate(&stream, Z_FINISH)
                }
                guard (r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK), stream.avail_out == 0 else { return nil }
                ended = r == Z_STREAM_END
            } else if already < size {
                return nil  // the stream ended early
            }
            if !ended {
                // The content is complete: the stream must end now, with no byte more.
                var spare: UInt8 = 0
                let r = withUnsafeMutablePointer(to: &spare) { out -> Int32 in
                    stream.next_out = out
                    stream.avail_out = 1
                    return inflate(&stream, Z_FINISH)
                }
                guard r == Z_STREAM_END, stream.avail_out == 1 else { return nil }
            }
            return (type, data)
        }
    }

    /// Inflates a zlib stream that must produce exactly `size` bytes (its checksum verified).
    func inflateExactly(_ input: UnsafeRawBufferPointer, size: Int) -> [UInt8]? {
        guard size <= Self.maximumInflated(input.count) else { return nil }
        if let deflater {
            var valid = false
            let data = [UInt8](unsafeUninitializedCapacity: size) { out, initialized in
                var consumed = 0, produced = 0
                // Exactly `size` bytes of room: a stream longer than announced fails (no space).
                // The input runs on to the pack's end; libdeflate stops at the stream's end.
                let rc = deflater.library.zlibDecompress(deflater.decompressor, input.baseAddress, input.count, out.baseAddress, size, &consumed, &produced)
                valid = rc == 0 && produced == size
                initialized = valid ? size : 0
            }
            return valid ? data : nil
        }
        if streamReady {
            guard inflateReset(stream) == Z_OK else { return nil }
        } else {
            stream.initialize(to: z_stream())
            guard inflateInit_(stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
            streamReady = true
        }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.pointee.avail_in = UInt32(clamping: input.count)
        // One spare byte: a stream longer than announced is an error, not a truncation.
        var rc: Int32 = Z_DATA_ERROR
        let data = [UInt8](unsafeUninitializedCapacity: size + 1) { out, initialized in
            stream.pointee.next_out = out.baseAddress
            stream.pointee.avail_out = UInt32(out.count)
            rc = inflate(stream, Z_FINISH)
            initialized = min(size, Int(stream.pointee.total_out))
        }
        guard rc == Z_STREAM_END, Int(stream.pointee.total_out) == size, data.count == size else { return nil }
        return data
    }

    /// The most bytes `count` bytes of zlib can inflate to (deflate's limit is 1032:1), and at most
    /// 256 MiB: a size announced beyond it is a damaged object, or one left to libgit2, not a
    /// reason to allocate that much.
    static func maximumInflated(_ count: Int) -> Int { min(1 << 28, count < Int.max / 2048 ? count * 1032 + 64 : Int.max) }

    /// Applies a git delta to `base`; nil when it is malformed.
    static func applyDelta(_ delta: [UInt8], to base: [UInt8]) -> [UInt8]? {
        delta.withUnsafeBufferPointer { delta in base.withUnsafeBufferPointer { base in applyDelta(delta, to: base) } }
    }

    private static func applyDelta(_ delta: UnsafeBufferPointer<UInt8>, to base: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var p = 0
        func size() -> Int? {
            var value = 0, shift = 0
            while p < delta.count {
                let c = delta[p]; p += 1
                value |= Int(c & 0x7f) << shift
                shift += 7
                if c & 0x80 == 0 { return value }
                if shift > 56 { return nil }
            }
            return nil
        }
        guard let sourceSize = size(), sourceSize == base.count, let targetSize = size(), targetSize <= 1 << 28 else { return nil }
        var valid = false
        let out = [UInt8](unsafeUninitializedCapacity: targetSize) { out, written in
            var n = 0
            while p < delta.count {
                let command = delta[p]; p += 1
                if command & 0x80 != 0 {
                    var offset = 0, length = 0
                    for bit in 0..<4 where command & (1 << bit) != 0 {
                        guard p < delta.count else { written = n; return }
                        offset |= Int(delta[p]) << (8 * bit); p += 1
                    }
                    for bit in 0..<3 where command & (0x10 << bit) != 0 {
                        guard p < delta.count else { written = n; return }
                        length |= Int(delta[p]) << (8 * bit); p += 1
                    }
                    if length == 0 { length = 0x10000 }
                    guard offset + length <= base.count, n + length <= targetSize else { written = n; return }
                    (out.baseAddress! + n).initialize(from: base.baseAddress! + offset, count: length)
                    n += length
                } else if command != 0 {
                    let length = Int(command)
                    guard p + length <= delta.count, n + length <= targetSize else { written = n; return }
                    (out.baseAddress! + n).initialize(from: delta.baseAddress! + p, count: length)
                    n += length
                    p += length
                } else {
                    written = n; return  // reserved
                }
            }
            written = n
            valid = n == targetSize
        }
        return valid ? out : nil
    }

    /// A 40-digit lowercase hexadecimal id as 20 bytes; nil otherwise.
    static func id<S: StringProtocol>(hex: S) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count == 40 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(20)
        for i in stride(from: 0, to: 40, by: 2) {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }
}

/// libdeflate's decompression entry points, from `libdeflate.so.0` when the system has it.
struct LibDeflate: @unchecked Sendable {  // C function pointers, immutable
    typealias Allocate = @convention(c) () -> OpaquePointer?
    typealias Free = @convention(c) (OpaquePointer?) -> Void
    /// `libdeflate_zlib_decompress_ex`: 0 on success, the bytes read and written through the pointers.
    typealias Decompress = @convention(c) (OpaquePointer?, UnsafeRawPointer?, Int, UnsafeMutableRawPointer?, Int,
                                           UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> Int32
    let allocate: Allocate
    let free: Free
    let zlibDecompress: Decompress

    /// Nil when the library or one of its functions is missing.
    static let shared: LibDeflate? = {
        guard let handle = dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL) else { return nil }
        guard let allocate = dlsym(handle, "libdeflate_alloc_decompressor"),
              let free = dlsym(handle, "libdeflate_free_decompressor"),
              let decompress = dlsym(handle, "libdeflate_zlib_decompress_ex") else { return nil }
        return LibDeflate(allocate: unsafeBitCast(allocate, to: Allocate.self), free: unsafeBitCast(free, to: Free.self),
                          zlibDecompress: unsafeBitCast(decompress, to: Decompress.self))
    }()
}

/// The packs of one repository, mapped once and shared by the ``GitObjectStore``s of a history
/// scan's workers (each keeps its own zlib state and delta-base cache). The mappings are read-only.
final class GitPacks: @unchecked Sendable {  // immutable after init
    fileprivate let packs: [Pack]

    /// Maps the packs of the repository whose objects are in `commonDirectory + "/objects"`;
    /// `populate`: every page at once (a scan of the whole history reads nearly every object; a
    /// range may read few of a large pack's).
    init(commonDirectory: String, populate: Bool) {
        packs = GitObjectStore.loadPacks(commonDirectory + "/objects", populate: populate)
    }
}

/// One pack: its `.idx` (version 2) and `.pack`, mapped read-only.
private final class Pack {
    let index: UnsafeRawBufferPointer
    let pack: UnsafeRawBufferPointer
    let count: Int

    init?(_ base: String, populate: Bool) {
        guard let index = Self.map(base + ".idx", populate: populate), let pack = Self.map(base + ".pack", populate: populate) else { return nil }
        self.index = index
        self.pack = pack
        // Version 2: "\377tOc", version, fanout[256], ids, CRCs, 4-byte offsets, 8-byte offsets.
        guard index.count >= 8 + 1024 + 40, index.starts(with: [0xff, 0x74, 0x4f, 0x63]), Self.be32(index, 4) == 2,
              pack.count >= 32, pack.starts(with: Array("PACK".utf8)) else {
            munmap(UnsafeMutableRawPointer(mutating: index.baseAddress), index.count)
            munmap(UnsafeMutableRawPointer(mutating: pack.baseAddress), pack.count)
            return nil
        }
        count = Int(Self.be32(index, 8 + 255 * 4))
        guard index.count >= 8 + 1024 + count * 28 + 40 else {
            munmap(UnsafeMutableRawPointer(mutating: index.baseAddress), index.count)
            munmap(UnsafeMutableRawPointer(mutating: pack.baseAddress), pack.count)
            return nil
        }
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: index.baseAddress), index.count)
        munmap(UnsafeMutableRawPointer(mutating: pack.baseAddress), pack.count)
    }

    static func map(_ path: String, populate: Bool) -> UnsafeRawBufferPointer? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return nil }
        guard let base = mmap(nil, Int(info.st_size), PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0), base != MAP_FAILED else { return nil }
        return UnsafeRawBufferPointer(start: base, count: Int(info.st_size))
    }

    static func be32(_ buffer: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(buffer[at]) << 24 | UInt32(buffer[at + 1]) << 16 | UInt32(buffer[at + 2]) << 8 | UInt32(buffer[at + 3])
    }

    /// The offset of object `id` in the pack, by binary search in the fanout's range.
    func offset(of id: [UInt8]) -> Int? {
        let first = Int(id[0])
        var low = first == 0 ? 0 : Int(Self.be32(index, 8 + (first - 1) * 4))
        var high = Int(Self.be32(index, 8 + first * 4))
        guard low <= high, high <= count else { return nil }
        let ids = 8 + 1024
        while low < high {
            let mid = (low + high) / 2
            let order = id.withUnsafeBytes { memcmp(index.baseAddress! + ids + mid * 20, $0.baseAddress!, 20) }
            if order == 0 {
                let small = Int(Self.be32(index, ids + count * 24 + mid * 4))
                if small & 0x8000_0000 == 0 { return small }
                let at = ids + count * 28 + (small & 0x7fff_ffff) * 8
                guard at + 8 <= index.count - 40 else { return nil }
                return Int(Self.be32(index, at)) << 32 | Int(Self.be32(index, at + 4))
            }
            if order < 0 { low = mid + 1 } else { high = mid }
        }
        return nil
    }

    /// One entry of a pack, as ``GitObjectStore/read(_:)`` walks a delta chain.
    enum Entry {
        /// A whole object, inflated.
        case whole((type: GitObjectStore.ObjectType, data: [UInt8]))
        /// A delta whose `size` bytes of zlib start at `at`, on the object at `base`.
        case delta(at: Int, size: Int, base: Base)
    }

    /// Where a delta's base is: earlier in this pack, or by id (anywhere in the repository).
    enum Base {
        case offset(Int)
        case id([UInt8])
    }

    /// The entry at `offset`: a whole object (inflated with `store`'s inflater) or a delta.
    func entry(at offset: Int, store: GitObjectStore) throws(GitDirectUnsupported) -> Entry {
        guard offset >= 12, offset < pack.count - 20 else { throw GitDirectUnsupported("bad pack offset") }
        var p = offset
        var c = pack[p]; p += 1
        let kind = Int(c >> 4) & 7
        var size = Int(c & 15), shift = 4
        while c & 0x80 != 0 {
            guard p < pack.count, shift < 57 else { throw GitDirectUnsupported("bad pack object header") }
            c = pack[p]; p += 1
            size |= Int(c & 0x7f) << shift
            shift += 7
        }
        switch kind {
        case 1, 2, 3, 4:
            guard let data = store.inflateExactly(UnsafeRawBufferPointer(rebasing: pack[p...]), size: size) else {
                throw GitDirectUnsupported("pack object at \(offset) cannot be inflated")
            }
            return .whole((GitObjectStore.ObjectType(rawValue: kind)!, data))
        case 6:
            guard p < pack.count else { throw GitDirectUnsupported("bad delta offset") }
            c = pack[p]; p += 1
            var back = Int(c & 0x7f)
            while c & 0x80 != 0 {
                guard p < pack.count, back < 1 << 48 else { throw GitDirectUnsupported("bad delta offset") }
                c = pack[p]; p += 1
                back = ((back + 1) << 7) | Int(c & 0x7f)
            }
            guard back > 0, back < offset else { throw GitDirectUnsupported("bad delta offset") }
            return .delta(at: p, size: size, base: .offset(offset - back))
        case 7:
            guard p + 20 <= pack.count else { throw GitDirectUnsupported("bad delta base") }
            return .delta(at: p + 20, size: size, base: .id(Array(pack[p..<(p + 20)])))
        default:
            throw GitDirectUnsupported("pack object type \(kind) at \(offset)")
        }
    }
}
