import Foundation
import StepGuardTestSupport

/// Damage to git's packs, for the tests that check history scans fail on what cannot be read.
public enum PackDamage {
    /// Why the damage could not be done.
    public struct Failure: Error, CustomStringConvertible {
        public let what: String
        public var description: String { what }
    }

    /// Flips four bytes in the middle of object `id`'s compressed data in the repository's only
    /// pack (the zlib stream, or its checksum, no longer decodes).
    public static func damage(_ id: String, in repo: TemporaryDirectory) throws {
        let directory = repo.path + "/.git/objects/pack/"
        guard let pack = try FileManager.default.contentsOfDirectory(atPath: directory).first(where: { $0.hasSuffix(".pack") }),
              let entry = try repo.git("verify-pack", "-v", ".git/objects/pack/" + pack).split(separator: "\n").first(where: { $0.hasPrefix(id) }) else {
            throw Failure(what: "\(id) is in no pack of \(repo.path); run `git repack -ad` first")
        }
        // `verify-pack -v`: id, type, size, size in the pack, offset[, depth, base].
        let fields = entry.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 5, let stored = Int(fields[3]), let offset = Int(fields[4]), stored >= 12 else {
            throw Failure(what: "`\(entry)` from git verify-pack -v is not id, type, size, size in the pack, offset")
        }
        chmod(directory + pack, 0o644)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + pack)))
        for k in (offset + stored / 2)..<(offset + stored / 2 + 4) { bytes[k] ^= 0x5A }
        try Data(bytes).write(to: URL(fileURLWithPath: directory + pack))
    }
}
