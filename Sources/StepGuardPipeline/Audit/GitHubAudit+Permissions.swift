import StepGuardYAML

/// `permissions-broad`: token scopes wider than the jobs use.
extension GitHubAudit {
    /// Reports `write-all`/`read-all`, top-level write scopes that several jobs inherit, and write scopes
    /// of a job none of whose steps can use the token.
    mutating func checkBroadPermissions(topPermissions: Node?) {
        let jobs = (root.value("jobs")?.pairs ?? []).filter { $0.value.isMapping }
        let declared: [(String, Node?)] = [("every job of the workflow", topPermissions)] + jobs.map { ("job '\($0.key.text ?? "?")'", $0.value.value("permissions")) }
        for (owner, permissions) in declared {
            guard let permissions, let text = permissions.text else { continue }
            if text == "write-all" {
                report(.permissionsBroad, permissions, "`write-all` gives \(owner) a GITHUB_TOKEN that can push code, publish packages, change releases, issues and workflows runs",
                       remedy: "list only the scopes needed, e.g. `permissions: {contents: read}`, and grant a write scope only to the job that needs it", severity: .high)
            } else if text == "read-all" {
                report(.permissionsBroad, permissions, "`read-all` gives \(owner) read access to every scope (code, packages, actions, security events)",
                       remedy: "list only the scopes needed, e.g. `permissions: {contents: read}`", severity: .low)
            }
        }
        let inheriting = jobs.filter { $0.value.value("permissions") == nil }
        if let top = topPermissions, top.isMapping, let first = Self.writeScopes(top).first {
            let scopes = Self.writeScopes(top).compactMap(\.key.text)
            if inheriting.count >= 2 {
                let names = inheriting.compactMap(\.key.text)
                report(.permissionsBroad, first.key, "\(scopes.map { "\($0): write" }.joined(separator: ", ")) at the workflow level goes to all \(names.count) jobs without their own permissions (\(names.prefix(5).joined(separator: ", "))\(names.count > 5 ? ", …" : ""))",
                       remedy: "set read-only scopes at the top level and grant write scopes in the job that needs them")
            } else if let only = inheriting.first, !Self.mayUseToken(only.value) {
                reportUnused(scopes: scopes, at: first.key, job: only.key.text ?? "?")
            }
        }
        for (key, job) in jobs {
            guard let permissions = job.value("permissions"), permissions.isMapping, let first = Self.writeScopes(permissions).first,
                  !Self.mayUseToken(job) else { continue }
            reportUnused(scopes: Self.writeScopes(permissions).compactMap(\.key.text), at: first.key, job: key.text ?? "?")
        }
    }

    private mutating func reportUnused(scopes: [String], at node: Node, job: String) {
        report(.permissionsBroad, node, "job '\(job)' gets \(scopes.map { "\($0): write" }.joined(separator: ", ")) but none of its steps can use the token (no GitHub CLI, git push, API call, token input or repository script)",
               remedy: "drop the write scopes (`contents: read` is enough to check out)")
    }

    /// Scopes set to `write`, `id-token` excepted (it has rules of its own).
    static func writeScopes(_ permissions: Node) -> [(key: Node, value: Node)] {
        permissions.pairs.filter { $0.key.text != "id-token" && $0.value.text == "write" }
    }

    /// Actions that never use the GITHUB_TOKEN for writing (set-up, caches, artifacts of the same run).
    static let tokenFreeActions = [
        "actions/checkout@", "actions/setup-", "actions/cache@", "actions/cache/", "actions/upload-artifact@", "actions/download-artifact@",
        "actions/upload-pages-artifact@", "docker/setup-buildx-action@", "docker/setup-qemu-action@", "swatinem/rust-cache@",
        "dtolnay/rust-toolchain@", "astral-sh/setup-uv@", "pnpm/action-setup@", "ruby/setup-ruby@", "taiki-e/install-action@",
        "hashicorp/setup-terraform@", "oven-sh/setup-bun@", "denoland/setup-deno@", "erlef/setup-beam@", "haskell-actions/setup@",
    ]

    /// Words in a script that may use the token (directly, through the persisted checkout credential, or
    /// in a repository script or build target that cannot be seen from here).
    static let tokenUseMarkers = [
        "gh ", "hub ", "git push", "git tag", "git commit", "github_token", "gh_token", "github.token", "api.github.com", "ghcr.io",
        "curl", "wget", "./", ".sh", ".py", ".js", ".ts", "make", "npm run", "npm publish", "npx", "yarn", "pnpm", "python", "node ",
        "bash ", "sh -c", "goreleaser", "release", "publish", "deploy", "docker", "gradle", "mvn", "sbt", "upload", "secrets.",
    ]

    /// Whether any step of a job may use its GITHUB_TOKEN (unknown counts as yes).
    static func mayUseToken(_ job: Node) -> Bool {
        if job.value("uses") != nil { return true }
        let jobText = (job.value("env")?.scalars ?? []).compactMap(\.text).joined(separator: "\n").lowercased()
        if jobText.contains("github.token") || jobText.contains("github_token") { return true }
        for step in job.value("steps")?.items ?? [] {
            let text = step.scalars.compactMap(\.text).joined(separator: "\n").lowercased()
            if let uses = step.value("uses")?.text?.lowercased() {
                if !tokenFreeActions.contains(where: uses.hasPrefix) { return true }
                if text.contains("github.token") || text.contains("github_token") { return true }
            } else if tokenUseMarkers.contains(where: text.contains) {
                return true
            }
        }
        return false
    }
}
