import FoundationEssentials
import Glibc

/// The PEM file handed to a step whose policy names services: the system's CAs followed by the
/// per-run CA that intercepts them, in a private 0700 directory removed when the step ends.
struct TrustBundle: Sendable {
    /// The private directory, which holds nothing else.
    let directory: String
    /// `directory`/ca-bundle.pem.
    let path: String

    /// Writes the system CAs and `caPEM` into a fresh 0700 directory under `base`.
    static func write(caPEM: String, in base: String) throws(EgressError) -> TrustBundle {
        var template = Array("\(base)/stepguard-egress-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw .cannotWriteTrustBundle(path: base, reason: String(cString: strerror(errno)))
        }
        let directory = String(cString: made)
        chmod(directory, 0o700)
        let path = directory + "/ca-bundle.pem"
        guard writeBundle(path, caPEM: caPEM) else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: directory)
            throw .cannotWriteTrustBundle(path: path, reason: reason)
        }
        return TrustBundle(directory: directory, path: path)
    }

    /// Removes the bundle and its directory (plain calls: this runs after every step with services).
    func remove() {
        unlink(path)
        if rmdir(directory) != 0 { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Creates `path` (mode 0644; it must not exist) with the first readable system bundle, copied
    /// by the kernel, followed by the per-run CA. False with errno set on failure.
    private static func writeBundle(_ path: String, caPEM: String) -> Bool {
        let output = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard output >= 0 else { return false }
        defer { close(output) }
        var endsWithNewline = true
        if let input = EgressSession.systemBundles.lazy.map({ open($0, O_RDONLY | O_CLOEXEC) }).first(where: { $0 >= 0 }) {
            defer { close(input) }
            var info = stat()
            guard fstat(input, &info) == 0 else { return false }
            var copied = 0
            while copied < Int(info.st_size) {
                let count = sendfile(output, input, nil, Int(info.st_size) - copied)
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { return false }
                if count == 0 { break }  // the file shrank while being copied
                copied += count
            }
            var last: UInt8 = 0
            if copied > 0, pread(input, &last, 1, off_t(copied - 1)) == 1 { endsWithNewline = last == UInt8(ascii: "\n") }
        }
        let text = Array("\(endsWithNewline ? "" : "\n")# stepguard per-run CA (intercepts the services named in the policy)\n\(caPEM)\n".utf8)
        var written = 0
        while written < text.count {
            let count = text.withUnsafeBytes { Glibc.write(output, $0.baseAddress! + written, $0.count - written) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            written += count
        }
        return fchmod(output, 0o644) == 0
    }

}

extension EgressSession {
    /// The system CA bundle stepguard trusts upstream and hands to steps, and how many certificates
    /// it holds; nil when none of the usual locations has one.
    public static func systemTrustBundle() -> (path: String, certificates: Int)? {
        for path in systemBundles {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let count = text.components(separatedBy: "-----BEGIN CERTIFICATE-----").count - 1
            if count > 0 { return (path, count) }
        }
        return nil
    }

    /// Candidate locations of the system CA bundle (Debian/Ubuntu, RHEL/Fedora, Alpine/macOS).
    public static let systemBundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
}
