import StepGuardCore
import FoundationEssentials
import Glibc
import StepGuardYAML

/// Loads policy files: YAML with source locations, every problem reported with `file:line:col`.
public enum PolicyLoader {
    static let topLevelKeys = [
        "version", "mode", "on_violation", "grace_period", "identity", "credentials", "egress",
        "services", "network", "isolation", "filesystem", "tripwires", "revoke", "limits", "steps",
    ]

    /// Reads and validates the policy at `path`. Relative paths inside it resolve against its directory.
    public static func load(file path: String) throws(PolicyError) -> Policy {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PolicyError(file: path, message: "cannot read the policy file: \(describeError(error))",
                              expected: "a readable UTF-8 YAML file")
        }
        // Plain string work (Foundation's URL costs a noticeable part of `run`'s start-up).
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let slash = absolute.lastIndex(of: "/")!
        let directory = slash == absolute.startIndex ? "/" : String(absolute[..<slash])
        return try load(yaml: text, source: path, baseDirectory: directory)
    }

    /// Validates policy text. `source` names it in diagnostics; `baseDirectory` resolves relative paths
    /// (nil: relative to the current directory).
    public static func load(yaml: String, source: String, baseDirectory: String? = nil) throws(PolicyError) -> Policy {
        let root: Node
        do {
            // The basic resolver: the reader types every scalar itself (and reports wrong types with their
            // location), so the default resolver's regular expressions would only cost start-up time.
            guard let node = try YAML.compose(yaml: yaml, .basic) else {
                throw PolicyError(file: source, message: "the policy is empty", expected: "a mapping that starts with 'version: 1'")
            }
            root = node
        } catch let error as PolicyError {
            throw error
        } catch {
            throw PolicyError([yamlDiagnostic(error, file: source)])
        }
        let reader = PolicyReader(file: source)
        let builder = PolicyBuilder(reader: reader, baseDirectory: baseDirectory)
        let policy = builder.build(root, source: source)
        guard reader.diagnostics.isEmpty, let policy else {
            throw PolicyError(reader.diagnostics.sorted { ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column) })
        }
        return policy
    }

    static func yamlDiagnostic(_ error: Error, file: String) -> PolicyDiagnostic {
        func at(_ mark: Mark?, _ message: String) -> PolicyDiagnostic {
            PolicyDiagnostic(location: SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1),
                             message: message, expected: "valid YAML")
        }
        guard let error = error as? YAMLError else { return at(nil, "cannot parse YAML: \(error)") }
        switch error.kind {
        case .duplicateKeys:
            return at(error.mark, "duplicate key \(error.duplicates.map { "'\($0)'" }.joined(separator: ", ")) in a mapping")
        case .reader, .scanner, .parser, .composer, .memory:
            return at(error.mark, "YAML syntax error: \(error.problem)")
        }
    }
}

/// Turns the YAML tree into a ``Policy``, section by section, reporting into a ``PolicyReader``.
struct PolicyBuilder {
    let reader: PolicyReader
    let baseDirectory: String?

    func build(_ root: Node, source: String) -> Policy? {
        guard let entries = reader.mapping(root, "policy", keys: PolicyLoader.topLevelKeys) else { return nil }
        var policy = Policy(source: source)
        if let node = reader.require(entries, "version", in: root, "policy") {
            if let version = reader.integer(node, "version", range: 1...1000), version != 1 {
                reader.error(node, "unsupported policy version \(version)", expected: "version: 1")
            }
        }
        if let node = entries["mode"]?.value, let value = reader.choice(node, "mode", as: EnforcementMode.self) { policy.mode = value }
        if let node = entries["on_violation"]?.value, let value = reader.choice(node, "on_violation", as: ViolationAction.self) { policy.onViolation = value }
        if let node = entries["grace_period"]?.value, let value = reader.duration(node, "grace_period") { policy.gracePeriod = value }
        if let node = entries["identity"]?.value { policy.identity = identity(node) }
        if let node = entries["credentials"]?.value, let value = credentials(node, "credentials") { policy.credentials = value }
        if let node = entries["egress"]?.value { policy.egress = egress(node, "egress") }
        if let node = entries["services"]?.value { policy.services = services(node, "services") }
        if let node = entries["network"]?.value { policy.network = network(node) }
        if let node = entries["isolation"]?.value, let value = reader.choice(node, "isolation", as: IsolationMode.self) { policy.isolation = value }
        if let node = entries["filesystem"]?.value { policy.filesystem = filesystem(node) }
        if let node = entries["tripwires"]?.value, let value = reader.choice(node, "tripwires", as: TripwireMode.self) { policy.tripwires = value }
        if let node = entries["revoke"]?.value, let value = reader.choice(node, "revoke", as: RevokeMode.self) { policy.revoke = value }
        if let node = entries["limits"]?.value { policy.limits = limits(node) }
        if let node = entries["steps"]?.value { policy.steps = steps(node, hasIdentity: policy.identity != nil) }
        return policy
    }

    // MARK: identity

    func identity(_ node: Node) -> IdentityPolicy? {
        let keys = ["token", "issuer", "audience", "jwks", "algorithms", "claims", "lifetime", "required"]
        guard let entries = reader.mapping(node, "identity", keys: keys) else { return nil }
        let issuerNode = reader.require(entries, "issuer", in: node, "identity")
        let audienceNode = reader.require(entries, "audience", in: node, "identity")
        let issuer = issuerNode.flatMap { reader.string($0, "identity.issuer", expected: "the issuer URL, e.g. https://token.actions.githubusercontent.com") }
        if let issuer, let issuerNode, !(issuer.hasPrefix("https://") && URL(string: issuer)?.host != nil) {
            reader.error(issuerNode, "identity.issuer '\(issuer)' is not an https URL", expected: "an https URL compared exactly with the token's iss")
        }
        let audience = audienceNode.flatMap { reader.string($0, "identity.audience") }
        var identity = IdentityPolicy(issuer: issuer ?? "", audience: audience ?? "")
        if let node = entries["token"]?.value { identity.token = tokenSource(node) }
        if let node = entries["jwks"]?.value, let text = reader.string(node, "identity.jwks", expected: "an https URL or a file path relative to the policy") {
            identity.jwks = resolveURLOrPath(text, node, "identity.jwks")
        }
        if let node = entries["algorithms"]?.value {
            identity.algorithms = reader.strings(node, "identity.algorithms").compactMap { name, item in
                if name.lowercased() == "none" || name.uppercased().hasPrefix("HS") {
                    reader.error(item, "algorithm '\(name)' is never accepted (unsigned or symmetric)",
                                 expected: "asymmetric algorithms: \(IdentityPolicy.supportedAlgorithms.joined(separator: ", "))")
                    return nil
                }
                guard IdentityPolicy.supportedAlgorithms.contains(name) else {
                    reader.error(item, "unknown algorithm '\(name)'", expected: "one of: \(IdentityPolicy.supportedAlgorithms.joined(separator: ", "))")
                    return nil
                }
                return name
            }
        }
        if let node = entries["claims"]?.value { identity.claims = claims(node, "identity.claims") }
        if let node = entries["lifetime"]?.value { identity.lifetime = lifetime(node) }
        if let node = entries["required"]?.value, let value = reader.bool(node, "identity.required") { identity.required = value }
        return identity
    }

    func tokenSource(_ node: Node) -> TokenSource? {
        let expected = "one of: \(TokenSource.providerNames.joined(separator: ", ")), env:NAME, file:PATH"
        guard let text = reader.string(node, "identity.token", expected: expected) else { return nil }
        switch text {
        case "github": return .github
        case "gitlab": return .gitlab
        case "buildkite": return .buildkite
        case "circleci": return .circleci
        case "azure": return .azure
        default:
            if text.hasPrefix("env:"), text.count > 4 {
                let name = String(text.dropFirst(4))
                if name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) { return .environment(name) }
            }
            if text.hasPrefix("file:"), text.count > 5 {
                return .file(resolvePath(String(text.dropFirst(5))))
            }
            let hint = nearest(to: text, in: TokenSource.providerNames).map { "; did you mean '\($0)'?" } ?? ""
            reader.error(node, "'\(text)' is not a token source\(hint)", expected: expected)
            return nil
        }
    }

    func claims(_ node: Node, _ context: String) -> [String: [ClaimMatcher]] {
        var result: [String: [ClaimMatcher]] = [:]
        for (name, _, value) in reader.freeMapping(node, context, expected: "claim: glob, or claim: [glob, ...]") {
            let items: [Node]
            if case .sequence(let sequence) = value { items = Array(sequence) } else { items = [value] }
            if items.isEmpty { reader.error(value, "\(context).\(name) lists no values", expected: "at least one glob") }
            result[name] = items.compactMap { claimMatcher($0, "\(context).\(name)") }
        }
        return result
    }

    func claimMatcher(_ node: Node, _ context: String) -> ClaimMatcher? {
        guard case .scalar(let scalar) = node, !reader.isNull(scalar) else {
            reader.error(node, "\(context) must be a string, number or boolean, not \(reader.kind(node))", expected: "a glob such as \"refs/tags/v*\"")
            return nil
        }
        if scalar.style == .plain {
            if let value = Bool(scalar.string) { return .bool(value) }
            if let value = Double(scalar.string), scalar.string.first.map({ $0.isNumber || $0 == "-" }) == true { return .number(value) }
        }
        return reader.parse(node, "\(context) glob") { () throws(MatcherError) in .glob(try Glob(scalar.string)) }
    }

    func lifetime(_ node: Node) -> LifetimePolicy {
        var lifetime = LifetimePolicy()
        guard let entries = reader.mapping(node, "identity.lifetime", keys: ["max_ttl", "max_age", "leeway", "min_remaining"]) else { return lifetime }
        if let node = entries["max_ttl"]?.value { lifetime.maxTTL = reader.duration(node, "identity.lifetime.max_ttl") }
        if let node = entries["max_age"]?.value { lifetime.maxAge = reader.duration(node, "identity.lifetime.max_age") }
        if let node = entries["leeway"]?.value, let value = reader.duration(node, "identity.lifetime.leeway") { lifetime.leeway = value }
        if let node = entries["min_remaining"]?.value { lifetime.minRemaining = reader.duration(node, "identity.lifetime.min_remaining") }
        return lifetime
    }

    // MARK: credentials, egress, services

    func credentials(_ node: Node, _ context: String) -> CredentialsPolicy? {
        guard let entries = reader.mapping(node, context, keys: ["long_lived", "allow_vars"]) else { return nil }
        var credentials = CredentialsPolicy()
        if let node = entries["long_lived"]?.value, let value = reader.choice(node, "\(context).long_lived", as: CredentialsPolicy.LongLived.self) {
            credentials.longLived = value
        }
        if let node = entries["allow_vars"]?.value {
            credentials.allowVars = globs(node, "\(context).allow_vars")
        }
        return credentials
    }

    static let egressKeys = ["default", "allow", "deny", "resolve_names_for_address_rules"]

    func egress(_ node: Node, _ context: String) -> EgressPolicy {
        var egress = EgressPolicy()
        guard let entries = reader.mapping(node, context, keys: Self.egressKeys) else { return egress }
        if let node = entries["default"]?.value, let value = reader.choice(node, "\(context).default", as: EgressPolicy.Default.self) {
            egress.defaultAction = value
        }
        if let node = entries["resolve_names_for_address_rules"]?.value, let value = reader.bool(node, "\(context).resolve_names_for_address_rules") {
            egress.resolveNamesForAddressRules = value
        }
        if let node = entries["allow"]?.value { egress.allow = egressRules(node, "\(context).allow") }
        if let node = entries["deny"]?.value { egress.deny = egressRules(node, "\(context).deny") }
        return egress
    }

    func egressRules(_ node: Node, _ context: String) -> [EgressRule] {
        reader.strings(node, context, expected: "a list of hosts, host:port or networks").compactMap { text, item in
            reader.parse(item, "\(context) entry") { () throws(MatcherError) in try EgressRule(text) }
        }
    }

    func services(_ node: Node, _ context: String) -> [ServiceRule] {
        guard case .sequence(let sequence) = node else {
            reader.error(node, "\(context) must be a list, not \(reader.kind(node))", expected: "a list of '- service: NAME' entries")
            return []
        }
        return sequence.compactMap { item in
            guard let entries = reader.mapping(item, "\(context) entry", keys: ["service", "hosts", "allow"]),
                  let nameNode = reader.require(entries, "service", in: item, "\(context) entry"),
                  let name = reader.string(nameNode, "\(context)[].service", expected: "a service name from rules/services") else { return nil }
            var rule = ServiceRule(service: name)
            rule.location = reader.location(nameNode)
            if let node = entries["hosts"]?.value {
                rule.hosts = reader.strings(node, "\(context).\(name).hosts").compactMap { text, hostNode in
                    reader.parse(hostNode, "host") { () throws(MatcherError) in try HostPattern(text) }
                }
            }
            if let node = entries["allow"]?.value {
                let blocks: [Node]
                if case .sequence(let list) = node { blocks = Array(list) } else { blocks = [node] }
                rule.allow = blocks.compactMap { allowance($0, "\(context).\(name).allow") }
            }
            return rule
        }
    }

    func allowance(_ node: Node, _ context: String) -> ServiceAllowance? {
        let keys = ["methods", "paths", "claims", "credential", "window", "audience"]
        guard let entries = reader.mapping(node, context, keys: keys) else { return nil }
        var allowance = ServiceAllowance()
        if let node = entries["methods"]?.value {
            allowance.methods = reader.strings(node, "\(context).methods").compactMap { method, item in
                guard !method.isEmpty, method.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                    reader.error(item, "'\(method)' is not an HTTP method", expected: "a method such as GET, POST, PUT")
                    return nil
                }
                return method.uppercased()
            }
        }
        if let node = entries["paths"]?.value { allowance.paths = globs(node, "\(context).paths") }
        if let node = entries["claims"]?.value { allowance.claims = claims(node, "\(context).claims") }
        if let node = entries["credential"]?.value, let value = reader.choice(node, "\(context).credential", as: ServiceAllowance.Credential.self) {
            allowance.credential = value
        }
        if let node = entries["window"]?.value { allowance.window = reader.duration(node, "\(context).window") }
        if let node = entries["audience"]?.value { allowance.audiences = globs(node, "\(context).audience") }
        return allowance
    }

    func globs(_ node: Node, _ context: String) -> [Glob] {
        reader.strings(node, context).compactMap { text, item in
            reader.parse(item, "\(context) glob") { () throws(MatcherError) in try Glob(text) }
        }
    }

    // MARK: network, filesystem, limits

    func network(_ node: Node) -> NetworkPolicy {
        var network = NetworkPolicy()
        guard let entries = reader.mapping(node, "network", keys: ["resolve", "upstream_ca", "dns"]) else { return network }
        if let node = entries["resolve"]?.value {
            for (key, keyNode, value) in reader.freeMapping(node, "network.resolve", expected: "\"host:port\": \"ip:port\"") {
                guard let from = reader.parse(keyNode, "network.resolve key", { () throws(MatcherError) in try HostPort(key) }),
                      let text = reader.string(value, "network.resolve.\(key)", expected: "ip:port"),
                      let to = reader.parse(value, "network.resolve target", { () throws(MatcherError) in try HostPort(text) }) else { continue }
                guard IPAddress(to.host) != nil else {
                    reader.error(value, "network.resolve target '\(text)' is not an IP address and port", expected: "ip:port, e.g. 127.0.0.1:8443")
                    continue
                }
                network.resolve[from] = to
            }
        }
        if let node = entries["upstream_ca"]?.value, let path = reader.string(node, "network.upstream_ca", expected: "a PEM file relative to the policy") {
            let resolved = resolvePath(path)
            if !FileManager.default.fileExists(atPath: resolved) {
                reader.error(node, "network.upstream_ca file '\(resolved)' does not exist", expected: "a PEM file relative to the policy")
            }
            network.upstreamCA = resolved
        }
        if let node = entries["dns"]?.value, let text = reader.string(node, "network.dns", expected: "host:port of a DNS server, e.g. 10.0.0.2:53") {
            let expected = "host:port of a DNS server, e.g. 10.0.0.2:53 or dns.internal:53"
            if let server = reader.parse(node, "network.dns", { () throws(MatcherError) in try HostPort(text) }) {
                if IPAddress(server.host) == nil, !server.host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) {
                    reader.error(node, "network.dns '\(text)' is neither an IP address nor a host name", expected: expected)
                } else {
                    network.dns = server
                }
            }
        }
        return network
    }

    func filesystem(_ node: Node) -> FilesystemPolicy {
        var filesystem = FilesystemPolicy()
        guard let entries = reader.mapping(node, "filesystem", keys: ["hide"]) else { return filesystem }
        if let node = entries["hide"]?.value {
            filesystem.hide = reader.strings(node, "filesystem.hide").compactMap { path, item in
                guard path.hasPrefix("/") || path == "~" || path.hasPrefix("~/") else {
                    reader.error(item, "filesystem.hide entry '\(path)' is not an absolute path", expected: "a path starting with / or ~/")
                    return nil
                }
                return path
            }
        }
        return filesystem
    }

    func limits(_ node: Node) -> LimitsPolicy {
        var limits = LimitsPolicy()
        guard let entries = reader.mapping(node, "limits", keys: ["processes"]) else { return limits }
        if let node = entries["processes"]?.value { limits.processes = reader.integer(node, "limits.processes", range: 1...1_000_000) }
        return limits
    }

    // MARK: steps

    func steps(_ node: Node, hasIdentity: Bool) -> [String: StepOverride] {
        var steps: [String: StepOverride] = [:]
        let keys = ["mode", "on_violation", "grace_period", "egress", "credentials", "services", "identity", "isolation", "tripwires"]
        for (name, _, value) in reader.freeMapping(node, "steps", expected: "step-name: { overrides }") {
            let context = "steps.\(name)"
            var step = StepOverride()
            if case .scalar(let scalar) = value, reader.isNull(scalar) { steps[name] = step; continue }
            guard let entries = reader.mapping(value, context, keys: keys) else { continue }
            if let node = entries["mode"]?.value { step.mode = reader.choice(node, "\(context).mode", as: EnforcementMode.self) }
            if let node = entries["on_violation"]?.value { step.onViolation = reader.choice(node, "\(context).on_violation", as: ViolationAction.self) }
            if let node = entries["grace_period"]?.value { step.gracePeriod = reader.duration(node, "\(context).grace_period") }
            if let node = entries["egress"]?.value {
                let given = reader.mapping(node, "\(context).egress", keys: Self.egressKeys)
                let egress = self.egress(node, "\(context).egress")
                step.egressDefault = given?["default"] != nil ? egress.defaultAction : nil
                step.egressResolveNames = given?["resolve_names_for_address_rules"] != nil ? egress.resolveNamesForAddressRules : nil
                step.egressAllow = egress.allow
                step.egressDeny = egress.deny
            }
            if let node = entries["credentials"]?.value { step.credentials = credentials(node, "\(context).credentials") }
            if let node = entries["services"]?.value { step.services = services(node, "\(context).services") }
            if let node = entries["isolation"]?.value { step.isolation = reader.choice(node, "\(context).isolation", as: IsolationMode.self) }
            if let node = entries["tripwires"]?.value { step.tripwires = reader.choice(node, "\(context).tripwires", as: TripwireMode.self) }
            if let node = entries["identity"]?.value {
                if !hasIdentity {
                    reader.error(node, "\(context).identity adds claims, but the policy has no identity section", expected: "a top-level identity: section")
                } else if let identityEntries = reader.mapping(node, "\(context).identity", keys: ["claims"]), let claimsNode = identityEntries["claims"]?.value {
                    step.identityClaims = claims(claimsNode, "\(context).identity.claims")
                }
            }
            steps[name] = step
        }
        return steps
    }

    // MARK: paths

    func resolvePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let base = baseDirectory ?? FileManager.default.currentDirectoryPath
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: base, isDirectory: true)).standardizedFileURL.path
    }

    func resolveURLOrPath(_ text: String, _ node: Node, _ context: String) -> String {
        if text.hasPrefix("https://") { return text }
        if text.contains("://") {
            reader.error(node, "\(context) '\(text)' is not an https URL", expected: "an https URL or a file path")
            return text
        }
        let resolved = resolvePath(text)
        if !FileManager.default.fileExists(atPath: resolved) {
            reader.error(node, "\(context) file '\(resolved)' does not exist", expected: "an https URL or a file path relative to the policy")
        }
        return resolved
    }
}
