import Foundation

/// The audit log a run of the binary wrote: one JSON object per line.
public enum AuditLogFile {
    /// Every event in the log at `path`, in order; none when the file does not exist.
    public static func events(_ path: String) throws -> [[String: Any]] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
            guard let event = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw CocoaError(.coderReadCorrupt, userInfo: [NSDebugDescriptionErrorKey: "audit log line is not a JSON object: \(line.prefix(200))"])
            }
            return event
        }
    }
}
