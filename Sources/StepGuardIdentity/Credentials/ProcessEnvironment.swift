#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// This process's own environment block, where the kernel shows it to others.
///
/// `/proc/PID/environ` reads the process's memory between `env_start` and `env_end`: the strings
/// the process was started with, whatever `unsetenv` does afterwards (it only drops the pointer
/// from `environ`). A credential stripped from the step's environment stays readable there — by
/// the step itself when it shares stepguard's user and isolation is off — until its bytes are
/// overwritten.
public enum ProcessEnvironment {
    /// Overwrites the value bytes of every `NAME=value` entry of `environ` for the given names with
    /// NULs (in the original block, where `/proc/PID/environ` reads them), then unsets the names.
    /// Returns the names that were present. Copies made earlier — the `[String: String]` that
    /// `ProcessInfo.environment` returned — live on the heap and are not touched.
    @discardableResult
    public static func wipe(_ names: Set<String>) -> [String] {
        var wiped: [String] = []
        for name in names where !name.isEmpty && !name.contains("=") {
            let prefix = Array(name.utf8) + [UInt8(ascii: "=")]
            var found = false
            var index = 0
            while let entry = currentEnviron()?[index] {
                index += 1
                guard strncmp(entry, prefix.map { CChar(bitPattern: $0) }, prefix.count) == 0 else { continue }
                let value = entry + prefix.count
                memset(value, 0, strlen(value))
                found = true
            }
            unsetenv(name)
            if found { wiped.append(name) }
        }
        return wiped
    }

    private static func currentEnviron() -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        #if canImport(Glibc)
        return environ
        #else
        return _NSGetEnviron().pointee
        #endif
    }
}
