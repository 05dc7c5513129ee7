import CSandbox
import FoundationEssentials
import StepGuardCore
#if canImport(Glibc)
import Glibc
#endif

/// Tripwires on names: the step's calls that remove, rename, link or make a name (mkdir, mknod,
/// symlink's new name) or that act on the mount at a name (mount, umount, move_mount, open_tree,
/// fspick, mount_setattr) reach stepguard through a seccomp listener (`sg_names_listen`, installed
/// before the step exists), so that `rm ~/.npmrc`, `mv ~/.aws x`, `rmdir ~/.aws`, `ln ~/.npmrc
/// /tmp/x`, `mkdir ~/.aws`, `ln -s x ~/.npmrc` or `mount --bind /tmp/x ~/.aws` (in a user
/// namespace of the step's own) trip although the kernel refuses most of them on the cover (EBUSY,
/// EXDEV, EEXIST, EPERM) before inotify could see anything.
/// Each call's names are looked up in the step's mount namespace and compared by device and inode
/// with the hidden paths (the covers, the hidden directories, and anything inside one); then the
/// call goes ahead as the step made it: this only looks, the mounts decide.
final class NameTripwire: @unchecked Sendable {
    /// The listener (owned: closed by ``close()``).
    let listener: Int32
    /// The hidden files and directories by device and inode, as the step sees them.
    private let entries: [Identity: String]
    /// The devices of the hidden directories' tmpfs: any name on one is inside that directory.
    private let directories: [UInt64: String]
    /// One call at a time (the reader thread, or ``TripwireWatch/finish()`` after it), in a buffer
    /// made once: `sg_name_call` holds two paths of PATH_MAX.
    private let call = UnsafeMutablePointer<sg_name_call>.allocate(capacity: 1)

    private struct Identity: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    /// The hidden files and directories of `plan` as the step's first child found them once
    /// covered (`identities`: device and inode per watch, from `sg_spawn_options.tripwire_identities`).
    init(listener: Int32, plan: TripwirePlan, identities: [UInt64]) {
        self.listener = listener
        var entries: [Identity: String] = [:]
        var directories: [UInt64: String] = [:]
        for (index, watch) in plan.watches.enumerated() where watch.path == watch.hiddenEntry && 2 * index + 1 < identities.count {
            let identity = Identity(device: identities[2 * index], inode: identities[2 * index + 1])
            guard identity.device != 0 || identity.inode != 0 else { continue }
            entries[identity] = watch.path
            if watch.mask == UInt32(truncatingIfNeeded: SG_TRIPWIRE_DIRECTORY) { directories[identity.device] = watch.path }
        }
        self.entries = entries
        self.directories = directories
    }

    deinit { call.deallocate() }

    /// Receives one call, answers it (it goes ahead) and returns the trip it is, if any. `processes`
    /// lists the step's processes for the trip.
    func next(processes: () -> [String]) -> Trip? {
        guard sg_names_next(listener, call) == 0 else { return nil }  // ENOENT: the caller has gone
        defer { _ = sg_names_continue(listener, call.pointee.id) }
        let found = [call.pointee.found.0, call.pointee.found.1]
        let devices = [call.pointee.device.0, call.pointee.device.1]
        let inodes = [call.pointee.inode.0, call.pointee.inode.1]
        for index in 0..<min(Int(call.pointee.count), 2) where found[index] != 0 {
            let identity = Identity(device: devices[index], inode: inodes[index])
            let named = found[index] == 1 ? entries[identity] : nil
            guard let entry = named ?? directories[identity.device] else { continue }
            let given = name(at: index)
            let operation = switch Int(call.pointee.operation) {
            case SG_NAME_RENAME: "rename"
            case SG_NAME_LINK: "link"
            case SG_NAME_MAKE: "create"
            case SG_NAME_MOUNT: "mount"
            case SG_NAME_UNMOUNT: "unmount"
            default: "delete"
            }
            let pid = call.pointee.pid
            let program = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                .trimmingWhitespaceAndNewlines() ?? "?"
            return Trip(path: named ?? (given.hasPrefix("/") ? given : entry), operation: operation, hiddenEntry: entry,
                        processes: processes(), actor: "\(pid) \(program)")
        }
        return nil
    }

    /// The `index`th name of the call (absolute unless its directory could not be told).
    private func name(at index: Int) -> String {
        withUnsafeBytes(of: &call.pointee.paths) { bytes in
            let path = bytes[(index * Int(SG_NAME_MAX))...].prefix(Int(SG_NAME_MAX))
            return String(decoding: path.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    func close() { Glibc.close(listener) }
}
