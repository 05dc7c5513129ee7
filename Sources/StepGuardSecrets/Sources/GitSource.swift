import FoundationEssentials
import CGit2
import StepGuardCore
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension SecretScanner {
    /// Keeps the findings of a blob that start or end on an added line.
    static func onAddedLines(_ found: [BufferScanner.Located], _ delta: GitDelta) -> [BufferScanner.Located] {
        found.filter { delta.adds($0.finding.line, $0.finding.endLine) }
    }

    /// Scans exactly what `git commit` would record: the index compared with HEAD (or with an
    /// empty tree before the first commit), renames detected; only added or changed lines count.
    ///
    /// When git runs the hook with `GIT_INDEX_FILE` set — `git commit -a`, `git commit FILE…`
    /// (`--only`, `--include`) record a temporary index, not `.git/index` — that index is read:
    /// libgit2 ignores the variable, and `.git/index` then lacks what is being committed. A
    /// `GIT_INDEX_FILE` that names no readable file is an error, never a fallback. `environment`
    /// is the one git gave the hook (the executable passes its own).
    ///
    /// The common case is read from git's files directly (``scanStagedDirectly``), without
    /// loading libgit2; anything that reader does not handle goes through libgit2, with the same
    /// findings.
    public func scanStaged(repository path: String, environment: [String: String]) throws -> ScanReport {
        switch scanStagedDirectly(repository: path, environment: environment) {
        case .scanned(let report): return report
        case .damaged(let reason): throw SecretsError(.git, "\(path): \(reason); the staged files cannot be read. Run `git fsck`")
        case .unsupported: return try scanStagedWithLibgit2(repository: path, environment: environment)
        }
    }

    /// ``scanStaged(repository:environment:)`` through libgit2: every repository format it reads,
    /// renames detected, added lines from patches.
    func scanStagedWithLibgit2(repository path: String, environment: [String: String]) throws -> ScanReport {
        let repo = try GitRepository(path: path)
        var index: OpaquePointer?
        if let indexFile = environment["GIT_INDEX_FILE"], !indexFile.isEmpty {
            guard FileManager.default.isReadableFile(atPath: indexFile), git_index_open(&index, indexFile) == 0, index != nil else {
                throw SecretsError(.git, "\(indexFile): cannot read the index GIT_INDEX_FILE names (\(Git.lastError())); run the scan from the hook git starts, or unset GIT_INDEX_FILE to scan .git/index")
            }
        } else {
            guard git_repository_index(&index, repo.pointer) == 0, index != nil else {
                throw SecretsError(.git, "\(path): cannot read the git index (\(Git.lastError())); is the repository corrupt or locked?")
            }
        }
        guard let index else { throw SecretsError(.git, "\(path): no git index") }
        defer { git_index_free(index) }
        var headTree: OpaquePointer?
        var object: OpaquePointer?
        if git_revparse_single(&object, repo.pointer, "HEAD^{tree}") == 0 {
            headTree = object  // a git_object that is a tree
        }  // else: unborn branch, the first commit is diffed against the empty tree
        defer { if let object { git_object_free(object) } }
        var opts = GitDiff.options()
        var diff: OpaquePointer?
        guard git_diff_tree_to_index(&diff, repo.pointer, headTree, index, &opts) == 0, let diff else {
            throw SecretsError(.git, "\(path): cannot diff the index against HEAD (\(Git.lastError()))")
        }
        defer { git_diff_free(diff) }
        GitDiff.findRenames(diff)
        var report = ScanReport()
        let scanner = bufferScanner
        for var delta in GitDiff.deltas(diff) {
            // git calls the change binary (an attribute such as `-diff`, or a binary old version):
            // a text blob then counts whole, as in history mode, instead of not at all.
            if delta.binary { delta.addedLines = nil }
            if detector.engine.pathAllowed(delta.path) { report.skippedAllowedPaths += 1; continue }
            let found: [BufferScanner.Located]?? = repo.withBlob(delta.blob) { raw in
                if raw.count > options.maxFileSize { return nil }
                if Self.looksBinary(raw) { return nil }
                report.scannedBytes += raw.count
                return scanner.scan(raw, path: delta.path)
            }
            guard let found else {
                // Fail closed: a staged file whose content cannot be read is an error, not a clean file.
                throw SecretsError(.git, "\(path): cannot read the staged content of \(delta.path) (blob \(delta.blob.hex): \(Git.lastError())); is the repository corrupt or a partial clone? Run `git fsck`")
            }
            guard let found else {
                if (repo.blobSize(delta.blob) ?? 0) > options.maxFileSize { report.skippedLarge += 1 } else { report.skippedBinary += 1 }
                continue
            }
            report.scannedFiles += 1
            for l in Self.onAddedLines(found, delta) {
                if l.inlineAllowed { report.suppressed += 1 } else { report.findings.append(l.finding) }
            }
        }
        return report
    }

    /// Bytes of inflated objects each history worker keeps as delta bases: a few hundred versions
    /// of a large file (express's History.md: 1,103 versions of about 75 KB, each a delta on the
    /// one before).
    static let deltaBaseCacheBudget = 32 << 20

    /// A history worker's repository: objects read directly from `packs` and loose objects
    /// (``GitRepository/enableDirectReads(cacheBudget:packs:)``), or only through libgit2 when
    /// `packs` is nil (tests compare both ways).
    static func historyRepository(_ path: String, packs: GitPacks?) throws -> GitRepository {
        let repo = try GitRepository(path: path)
        if let packs { repo.enableDirectReads(cacheBudget: deltaBaseCacheBudget, packs: packs) }
        return repo
    }

    /// Commit metadata attached to history findings.
    struct CommitInfo: Sendable {
        var id: String
        var author: String
        var email: String
        var date: String
    }

    /// Scans the added lines of every commit reachable from `range` (default: HEAD and all
    /// branches and tags), minus `since` and its ancestors. Each distinct blob is scanned once.
    public func scanHistory(repository path: String, range: String? = nil, since: String? = nil) throws -> ScanReport {
        let repo = try GitRepository(path: path)
        let gitDir = repo.gitDirectory
        // The packs mapped once for every worker of every phase.
        let packs = options.directObjectReads ? GitPacks(commonDirectory: GitLayout.commonDirectory(of: gitDir), populate: range == nil && since == nil) : nil
        if let packs {
            repo.enableDirectReads(cacheBudget: Self.deltaBaseCacheBudget, packs: packs)
            repo.commitsFromLibgit2Cache = true
        }
        var walk: OpaquePointer?
        guard git_revwalk_new(&walk, repo.pointer) == 0, let walk else {
            throw SecretsError(.git, "\(path): cannot walk history (\(Git.lastError()))")
        }
        defer { git_revwalk_free(walk) }
        if let range {
            let rc = range.contains("..") ? git_revwalk_push_range(walk, range) : Self.pushRevision(walk, repo, range)
            guard rc == 0 else {
                throw SecretsError(.git, "\(path): revision range `\(range)` not found (\(Git.lastError())); use A..B or a branch, tag or commit")
            }
        } else {
            if git_revwalk_push_head(walk) != 0 {
                _ = git_revwalk_push_glob(walk, "refs/heads")
            }
            _ = git_revwalk_push_glob(walk, "refs/heads")
            _ = git_revwalk_push_glob(walk, "refs/tags")
        }
        if let since {
            var oid = git_oid()
            var object: OpaquePointer?
            guard git_revparse_single(&object, repo.pointer, since) == 0, let object else {
                throw SecretsError(.git, "\(path): --since `\(since)` is not a known revision (\(Git.lastError()))")
            }
            oid = git_object_id(object).pointee
            git_object_free(object)
            _ = git_revwalk_hide(walk, &oid)
        }
        var commits: [git_oid] = []
        var oid = git_oid()
        var walked: Int32 = 0
        while true {
            walked = git_revwalk_next(&oid, walk)
            if walked != 0 { break }
            commits.append(oid)
        }
        if walked != GIT_ITEROVER.rawValue {
            // libgit2 1.5 stops at a commit whose parent is missing: the boundary of a shallow
            // clone (CI checkouts), or damage. Never a silently shorter history.
            let shallow = access(gitDir + "/shallow", F_OK) == 0
            guard shallow, range == nil, since == nil else {
                throw SecretsError(.git, "\(path): cannot walk the history (\(Git.lastError()))" + (shallow
                    ? "; a range or --since in a shallow clone needs its history: run `git fetch --unshallow`, or scan without them"
                    : "; is the repository corrupt? Run `git fsck`"))
            }
            commits = try Self.reachableCommits(repo)
        }

        // Phase 1: each commit's changed files against its first parent — tree comparisons only,
        // no rename detection, no patches (workers each open the repository).
        let perCommit = Mutex<[Int: CommitDeltas]>([:])
        let next = Atomic<Int>(0)
        let commitList = UnsafeSendableBox(commits)
        let workers = max(1, min(options.workers, commits.count))
        // Runs of consecutive commits per worker: a commit's parent is usually the next one, whose
        // tree the worker then has in its cache.
        let commitRun = max(1, min(64, commits.count / (4 * workers)))
        // Fail closed: a commit, tree or blob that cannot be read makes the scan an error, never
        // a silently shorter one.
        let failures = Mutex<[any Error]>([])
        // The first worker reads through the repository the walk used (this thread waits meanwhile,
        // so it is used by one thread at a time): the commits the walk read are in its cache.
        let walkRepository = UnsafeSendableBox(repo)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let local: GitRepository
            if worker == 0 { local = walkRepository.value } else {
                do { local = try Self.historyRepository(gitDir, packs: packs) } catch { failures.withLock { $0.append(error) }; return }
            }
            let cache = TreeCache()
            var results: [Int: CommitDeltas] = [:]
            while true {
                let first = next.wrappingAdd(commitRun, ordering: .relaxed).oldValue
                if first >= commitList.value.count { break }
                for i in first..<min(first + commitRun, commitList.value.count) {
                    do {
                        if let d = try Self.commitDeltas(local, commitList.value[i], cache: cache) { results[i] = d }
                    } catch {
                        failures.withLock { $0.append(error) }
                    }
                }
            }
            perCommit.withLock { $0.merge(results) { a, _ in a } }
        }
        if let failure = failures.withLock({ $0.first }) { throw failure }
        var diffs = perCommit.withLock { $0 }

        // Phase 2: scan each distinct blob once, whole. The versions of one path are read one after
        // the other, in runs handed to one worker, so that libgit2's delta-base cache serves the
        // next version from the one it just inflated.
        var firstSeen = Set<ObjectKey>()
        var ordered: [(path: String, commit: Int, blob: git_oid)] = []
        for i in diffs.keys.sorted() {
            for d in diffs[i]!.deltas where !d.binary && firstSeen.insert(d.blob.key).inserted {
                ordered.append((d.path, i, d.blob))
            }
        }
        ordered.sort { ($0.path, $0.commit) < ($1.path, $1.commit) }
        let blobList = UnsafeSendableBox(ordered.map(\.blob))
        let runLength = max(1, min(256, blobList.value.count / (8 * max(1, options.workers))))
        let scanned = Mutex<[ObjectKey: BlobFindings]>([:])
        let stats = Mutex(ScanReport())
        let scanner = bufferScanner
        let engine = detector.engine
        let maxSize = options.maxFileSize
        let nextRun = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: max(1, min(options.workers, blobList.value.count))) { _ in
            let local: GitRepository
            do { local = try Self.historyRepository(gitDir, packs: packs) } catch { failures.withLock { $0.append(error) }; return }
            var results: [ObjectKey: BlobFindings] = [:]
            var partial = ScanReport()
            while true {
                let first = nextRun.wrappingAdd(runLength, ordering: .relaxed).oldValue
                if first >= blobList.value.count { break }
                for blob in blobList.value[first..<min(first + runLength, blobList.value.count)] {
                    let read: Void? = local.withBlob(blob) { raw in
                        if raw.count > maxSize { partial.skippedLarge += 1; return }
                        if Self.looksBinary(raw) { partial.skippedBinary += 1; return }
                        partial.scannedFiles += 1
                        partial.scannedBytes += raw.count
                        let found = scanner.scan(raw, path: "", fingerprints: false)
                        if !found.isEmpty {
                            results[blob.key] = BlobFindings(found: found, spanLines: LineHashes.spans(raw, found.map { ($0.finding.line, $0.finding.endLine) }))
                        }
                    }
                    if read == nil {
                        failures.withLock {
                            $0.append(SecretsError(.git, "\(path): cannot read blob \(blob.hex) (\(local.damage ?? Git.lastError())); is the repository corrupt or a partial clone? Run `git fsck`"))
                        }
                    }
                }
            }
            scanned.withLock { $0.merge(results) { a, _ in a } }
            stats.withLock {
                $0.scannedFiles += partial.scannedFiles
                $0.scannedBytes += partial.scannedBytes
                $0.skippedBinary += partial.skippedBinary
                $0.skippedLarge += partial.skippedLarge
            }
        }
        if let failure = failures.withLock({ $0.first }) { throw failure }
        let blobFindings = scanned.withLock { $0 }

        // Phase 3: added lines, only for the files whose new blob has findings. A modified file:
        // the patch between its two blobs. A new file in a commit that deletes files: the commit is
        // diffed again with rename detection, and a renamed file counts only for the lines the
        // rename changed. Neither is needed when every finding of the blob has a line that the
        // blob it may come from (the old version; any deleted file) does not have at all: no diff
        // can then call that line unchanged, so every finding counts (``LineHashes``).
        var pending: [(commit: Int, deltas: [Int])] = []
        for (i, c) in diffs {
            let positions = c.deltas.indices.filter { c.deltas[$0].pending && blobFindings[c.deltas[$0].blob.key] != nil }
            if !positions.isEmpty { pending.append((i, positions)) }
        }
        let pendingList = UnsafeSendableBox(pending.map { ($0.commit, $0.deltas, diffs[$0.commit]!) })
        let resolved = Mutex<[Int: [Int: [ClosedRange<Int>]?]]>([:])
        let nextPending = Atomic<Int>(0)
        let shortcuts = options.attributionShortcuts
        DispatchQueue.concurrentPerform(iterations: max(1, min(options.workers, pendingList.value.count))) { _ in
            guard let local = try? Self.historyRepository(gitDir, packs: packs) else { return }
            var results: [Int: [Int: [ClosedRange<Int>]?]] = [:]
            while true {
                let p = nextPending.wrappingAdd(1, ordering: .relaxed).oldValue
                if p >= pendingList.value.count { break }
                let (i, positions, commit) = pendingList.value[p]
                let deltas = commit.deltas
                var renamable: [Int] = []
                for k in positions {
                    let d = deltas[k]
                    guard let old = d.oldBlob else { renamable.append(k); continue }
                    let spans = shortcuts ? blobFindings[d.blob.key]?.spanLines : nil
                    if let (added, binary) = GitDiff.addedLines(local, from: old, to: d.blob, path: d.path, unlessEveryFindingIsNew: spans) {
                        // git calls it binary (an attribute, or the old side): the text blob counts whole.
                        results[i, default: [:]][k] = .some(binary ? nil : added)
                    }
                }
                if shortcuts, !renamable.isEmpty, let deleted = commit.deleted,
                   let sources = TreeDiff.blobs(under: deleted, local, limit: LineHashes.maximumRenameSources),
                   let present = LineHashes.lines(of: sources, in: local) {
                    renamable.removeAll { k in
                        guard let spans = blobFindings[deltas[k].blob.key]?.spanLines, LineHashes.everySpanHasALineNotIn(present, spans) else { return false }
                        results[i, default: [:]][k] = .some(nil)  // new whether or not it is a rename: every finding counts
                        return true
                    }
                }
                if renamable.isEmpty { continue }
                _ = Self.withCommitDiff(local, commitList.value[i], renames: true) { _, diff in
                    // The same file (new path and blob) in the diff with renames.
                    var byFile: [String: Int] = [:]
                    for index in 0..<git_diff_num_deltas(diff) {
                        guard let delta = git_diff_get_delta(diff, index), let path = delta.pointee.new_file.path else { continue }
                        byFile[String(cString: path) + "\u{0}" + delta.pointee.new_file.id.hex] = index
                    }
                    for k in renamable {
                        let d = deltas[k]
                        guard let index = byFile[d.path + "\u{0}" + d.blob.hex], let delta = git_diff_get_delta(diff, index) else { continue }
                        if delta.pointee.status == GIT_DELTA_ADDED {
                            results[i, default: [:]][k] = .some(nil)  // a new file after all: every line
                        } else if delta.pointee.old_file.id.key == d.blob.key {
                            results[i, default: [:]][k] = .some([])  // renamed unchanged: nothing added
                        } else if let (added, binary) = GitDiff.addedLines(diff, index) {
                            results[i, default: [:]][k] = .some(binary ? nil : added)
                        }
                    }
                }
            }
            resolved.withLock { $0.merge(results) { a, _ in a } }
        }
        for (i, byDelta) in resolved.withLock({ $0 }) {
            for (k, added) in byDelta {
                diffs[i]!.deltas[k].addedLines = added
                diffs[i]!.deltas[k].pending = false
            }
        }

        // Phase 4: attribute each blob's findings to the commits that added those lines. A delta
        // whose added lines could not be computed counts whole (fail closed: more, not fewer).
        // Commit metadata is read only for the commits with findings.
        var report = stats.withLock { $0 }
        report.commits = commits.count
        var infos: [Int: CommitInfo] = [:]
        var hashes: [String: String] = [:]
        let pairAcross = options.pairAWSKeysAcrossCommits
        var aws: [(finding: Finding, blob: ObjectKey)] = []
        for i in diffs.keys.sorted() {
            let c = diffs[i]!
            for var d in c.deltas where !d.binary {
                guard let found = blobFindings[d.blob.key]?.found else { continue }
                if d.pending { d.addedLines = nil }
                if engine.pathAllowed(d.path) { continue }
                for l in Self.onAddedLines(found, d) {
                    var f = l.finding
                    // Path-dependent parts are recomputed for this commit's path.
                    let compiled = engine.rules.first { $0.rule.id == f.ruleID }
                    if let compiled, SecretEngine.anyMatch(compiled.allowPaths, d.path) { continue }
                    let info: CommitInfo
                    if let known = infos[i] { info = known } else { info = try Self.commitInfo(repo, commits[i]); infos[i] = info }
                    let hash: String
                    if let known = hashes[f.secret] { hash = known } else { hash = secretHash(f.secret); hashes[f.secret] = hash }
                    f.path = d.path
                    f.fingerprint = Finding.fingerprint(ruleID: f.ruleID, path: d.path, secretHash: hash)
                    f.commit = info.id
                    f.author = info.author
                    f.email = info.email
                    f.date = info.date
                    if l.inlineAllowed { report.suppressed += 1 } else {
                        report.findings.append(f)
                        if pairAcross, f.ruleID == AWSKeyPairs.keyRule || f.ruleID == AWSKeyPairs.secretRule { aws.append((f, d.blob.key)) }
                    }
                }
            }
        }
        if pairAcross {
            var blobs: [ObjectKey: git_oid] = [:]
            for i in diffs.keys { for d in diffs[i]!.deltas { blobs[d.blob.key] = d.blob } }
            report.awsPairsAcrossCommits = AWSKeyPairs.acrossCommits(aws) { key in
                blobs[key].flatMap { id in repo.withBlob(id) { Array($0) } }
            }
        }
        return report
    }

    /// Every commit reachable from HEAD, the branches and the tags whose object is present,
    /// newest first: the walk stops at missing parents (a shallow clone's boundary).
    static func reachableCommits(_ repo: GitRepository) throws -> [git_oid] {
        let names = ["HEAD"] + GitLayout.branchesAndTags(GitLayout.commonDirectory(of: repo.gitDirectory))
        var seen = Set<ObjectKey>()
        var stack: [git_oid] = []
        for name in names {
            var object: OpaquePointer?
            guard git_revparse_single(&object, repo.pointer, name + "^{commit}") == 0, let object else { continue }
            stack.append(git_object_id(object).pointee)
            git_object_free(object)
        }
        var found: [(time: Int64, id: git_oid)] = []
        while var id = stack.popLast() {
            guard seen.insert(id.key).inserted else { continue }
            var commit: OpaquePointer?
            guard git_commit_lookup(&commit, repo.pointer, &id) == 0, let commit else {
                if found.isEmpty { throw SecretsError(.git, "cannot read commit \(id.hex) (\(Git.lastError()))") }
                continue  // a parent beyond the shallow boundary
            }
            found.append((git_commit_author(commit)!.pointee.when.time, id))
            for n in 0..<git_commit_parentcount(commit) {
                if let parent = git_commit_parent_id(commit, n) { stack.append(parent.pointee) }
            }
            git_commit_free(commit)
        }
        return found.sorted { $0.time > $1.time }.map(\.id)
    }

    static func pushRevision(_ walk: OpaquePointer, _ repo: GitRepository, _ rev: String) -> Int32 {
        var object: OpaquePointer?
        guard git_revparse_single(&object, repo.pointer, rev) == 0, let object else { return -1 }
        defer { git_object_free(object) }
        var oid = git_object_id(object).pointee
        return git_revwalk_push(walk, &oid)
    }

    /// Runs `body` with commit `id` and its diff against its first parent (with `renames`, renamed
    /// files are found); nil for merges and unreadable commits.
    static func withCommitDiff<T>(_ repo: GitRepository, _ id: git_oid, renames: Bool, _ body: (OpaquePointer, OpaquePointer) -> T) -> T? {
        var id = id
        var commit: OpaquePointer?
        guard git_commit_lookup(&commit, repo.pointer, &id) == 0, let commit else { return nil }
        defer { git_commit_free(commit) }
        let parents = git_commit_parentcount(commit)
        if parents > 1 { return nil }  // merges: their content is attributed to the merged commits, as `git log -p` does
        var tree: OpaquePointer?
        guard git_commit_tree(&tree, commit) == 0, let tree else { return nil }
        defer { git_tree_free(tree) }
        var parentTree: OpaquePointer?
        if parents == 1 {
            var parent: OpaquePointer?
            if git_commit_parent(&parent, commit, 0) == 0, let parent {
                _ = git_commit_tree(&parentTree, parent)
                git_commit_free(parent)
            }
        }
        defer { if let parentTree { git_tree_free(parentTree) } }
        var opts = GitDiff.options()
        var diff: OpaquePointer?
        guard git_diff_tree_to_tree(&diff, repo.pointer, parentTree, tree, &opts) == 0, let diff else { return nil }
        defer { git_diff_free(diff) }
        if renames { GitDiff.findRenames(diff) }
        return body(commit, diff)
    }

    /// A commit's changed files (added lines pending) and the blobs it deleted.
    struct CommitDeltas: @unchecked Sendable {  // git_oid is a plain 20-byte value
        var deltas: [GitDelta]
        /// See ``TreeDiff/deleted``; nil when not known (libgit2's diff was used).
        var deleted: [TreeDiff.Entry]?
    }

    /// The commit's changed files, without rename detection (added lines pending):
    /// ``TreeDiff``, or libgit2's diff when a tree cannot be read that way; nil for merges. A
    /// commit whose parent is not in the repository (the boundary of a shallow clone) counts as a
    /// first commit, everything in it added, as `git log -p` shows it.
    static func commitDeltas(_ repo: GitRepository, _ id: git_oid, cache: TreeCache) throws(SecretsError) -> CommitDeltas? {
        guard let (tree, parents) = cache.commit(id, repo) else {
            throw SecretsError(.git, "cannot read commit \(id.hex) (\(Git.lastError())); is the repository corrupt? Run `git fsck`")
        }
        if parents.count > 1 { return nil }  // merges: as in withCommitDiff
        // A parent that cannot be read (the boundary of a shallow clone): compared with the empty tree.
        let parentTree = parents.first.flatMap { cache.commit($0, repo)?.tree }
        var differ = TreeDiff(repo: repo, cache: cache)
        if differ.compare(parentTree, tree) {
            var deltas = differ.deltas
            // New files in a commit that deletes some may be renames: phase 3 decides.
            if differ.deletes { for k in deltas.indices where deltas[k].addedLines == nil { deltas[k].pending = true } }
            return CommitDeltas(deltas: deltas, deleted: differ.deleted)
        }
        guard let fallback = withCommitDiff(repo, id, renames: false, { _, diff in GitDiff.deltas(diff, patches: false) }) else {
            throw SecretsError(.git, "cannot read the trees of commit \(id.hex) (\(Git.lastError())); is the repository corrupt? Run `git fsck`")
        }
        return CommitDeltas(deltas: fallback, deleted: nil)
    }

    /// The metadata of commit `id`, for its findings.
    static func commitInfo(_ repo: GitRepository, _ id: git_oid) throws(SecretsError) -> CommitInfo {
        var id = id
        var commit: OpaquePointer?
        guard git_commit_lookup(&commit, repo.pointer, &id) == 0, let commit else {
            throw SecretsError(.git, "cannot read commit \(id.hex) (\(Git.lastError())); is the repository corrupt? Run `git fsck`")
        }
        defer { git_commit_free(commit) }
        let sig = git_commit_author(commit)!.pointee
        return CommitInfo(
            id: id.hex,
            author: sig.name.map { String(cString: $0) } ?? "",
            email: sig.email.map { String(cString: $0) } ?? "",
            date: isoDate(Int(sig.when.time))
        )
    }

    static func isoDate(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ w: Int = 2) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1))-\(pad(tm.tm_mday))T\(pad(tm.tm_hour)):\(pad(tm.tm_min)):\(pad(tm.tm_sec))Z"
    }
}

/// Carries an immutable array of plain C values (git_oid) into concurrent workers.
struct UnsafeSendableBox<T>: @unchecked Sendable {  // read-only after creation
    let value: T
    init(_ value: T) { self.value = value }
}
