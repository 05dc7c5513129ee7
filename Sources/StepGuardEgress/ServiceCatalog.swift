import FoundationEssentials
import StepGuardCore
import Glibc
import StepGuardPolicy
import StepGuardYAML

/// Where a service carries the credential on the wire.
public struct CredentialLocation: Sendable, Equatable {
    /// The part of the request: a header, a query parameter, a form field or a JSON body field.
    public enum Place: String, Sendable { case header, query, form, json }
    /// Where in the request the credential is.
    public let place: Place
    /// Header name, query/form parameter, or dotted JSON path (`credentials.oidcIdentityToken`).
    public let name: String

    /// The credential at `name` in `place`.
    public init(place: Place, name: String) {
        self.place = place
        self.name = name
    }
}

/// A request shape the catalog calls sensitive (signing, minting, reading secrets).
public struct SensitiveOperation: Sendable, Equatable {
    /// The methods of the operation; empty: any method.
    public let methods: [String]
    /// The path globs of the operation; empty: any path.
    public let paths: [Glob]

    func matches(method: String, path: String) -> Bool {
        (methods.isEmpty || methods.contains(method)) && (paths.isEmpty || paths.contains { $0.matches(path) })
    }

    /// Whether one request could be of both shapes: a method both accept and a path both match.
    func overlaps(_ other: SensitiveOperation) -> Bool {
        let methodsMeet = methods.isEmpty || other.methods.isEmpty || methods.contains { other.methods.contains($0) }
        let pathsMeet = paths.isEmpty || other.paths.isEmpty || paths.contains { mine in other.paths.contains { mine.overlaps($0) } }
        return methodsMeet && pathsMeet
    }

    /// `METHODS paths` as the catalog writes it, for messages.
    var described: String {
        (methods.isEmpty ? "any method" : methods.joined(separator: "|")) + " " + (paths.isEmpty ? "any path" : paths.map(\.pattern).joined(separator: ", "))
    }
}

/// A token exchange whose response holds a credential minted for the caller (npm and PyPI trusted
/// publishing): after an allowed request of this shape, the token in the response's JSON `field`
/// is known to stepguard as short-lived and minted in this run (see ``MintedCredentials``).
public struct MintOperation: Sendable, Equatable {
    /// The request shape of the exchange.
    public let operation: SensitiveOperation
    /// Dotted JSON path of the minted token in the response body (`token`).
    public let field: String
}

/// One catalog entry (`rules/services/NAME.yaml`): a signing or secret service that stepguard
/// intercepts when a policy names it in `services:`.
public struct ServiceDefinition: Sendable, Equatable {
    /// The service's name, as policies write it in `services[].service` (`sigstore-fulcio`).
    public let name: String
    /// One line saying what the service is.
    public let description: String
    /// The hosts the service answers on (empty when they come from the policy).
    public let hosts: [HostPattern]
    /// True when the host is site-specific and must come from the policy (`services[].hosts`).
    public let hostsFromPolicy: Bool
    /// The requests the catalog calls sensitive (signing, minting, reading secrets).
    public let sensitive: [SensitiveOperation]
    /// Where the service's requests carry credentials, besides `Authorization`.
    public let credentials: [CredentialLocation]
    /// The query parameter that names the audience of a token request (token endpoints).
    public let audienceParameter: String?
    /// Token exchanges whose responses mint credentials for later requests.
    public let mints: [MintOperation]
    /// Requests and what stepguard makes of them; the test suite runs every one.
    public let examples: [ServiceExample]
    /// Whether the service's paths may hold an encoded `/` (`%2F`, npm's `/@scope%2fname`); other
    /// services' requests with one are refused (see ``InterceptedPath``).
    public var encodedSlashes = false

    /// Whether a request is one of the catalog's sensitive operations.
    public func isSensitive(method: String, path: String) -> Bool {
        sensitive.contains { $0.matches(method: method, path: path) }
    }

    /// The token exchange a request is, if any.
    public func mint(method: String, path: String) -> MintOperation? {
        mints.first { $0.operation.matches(method: method, path: path) }
    }

    /// The service's endpoints as the catalog declares them: its sensitive operations and its
    /// token exchanges. On a host several named services share, a request is decided by the
    /// service one of whose endpoints it is (see ``BoundService/members``).
    public var endpoints: [SensitiveOperation] { sensitive + mints.map(\.operation) }

    /// Whether a request is one of the service's ``endpoints``.
    public func declares(method: String, path: String) -> Bool {
        endpoints.contains { $0.matches(method: method, path: path) }
    }

    /// Whether the body must be read before deciding (the credential may be in it).
    var credentialInBody: Bool { credentials.contains { $0.place == .form || $0.place == .json } }
}

/// The catalog of signing and secret services (`rules/services/*.yaml`).
public struct ServiceCatalog: Sendable {
    /// Definitions parsed already, or the built-in YAML texts, parsed when a policy names them.
    private enum Storage: Sendable {
        case parsed([String: ServiceDefinition])
        case builtIn([String: String])
    }
    private let storage: Storage

    /// A catalog of `services` (the first of two with the same name wins).
    public init(services: [ServiceDefinition]) {
        storage = .parsed(Dictionary(services.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first }))
    }

    /// The catalog compiled into stepguard (the same text as `rules/services/*.yaml`, a test keeps
    /// them equal). A service is parsed only when a policy names it: parsing all of them cost
    /// every `stepguard run` with services a few milliseconds before the step could start.
    public static let builtIn = ServiceCatalog(storage: .builtIn(builtInServiceYAML))

    private init(storage: Storage) { self.storage = storage }

    /// The names of the catalog's services, sorted.
    public var names: [String] {
        switch storage {
        case .parsed(let definitions): definitions.keys.sorted()
        case .builtIn(let texts): texts.keys.sorted()
        }
    }

    /// The definition of the service called `name`, if the catalog has one.
    public func definition(named name: String) -> ServiceDefinition? {
        switch storage {
        case .parsed(let definitions):
            return definitions[name]
        case .builtIn(let texts):
            guard let text = texts[name] else { return nil }
            do { return try Self.parse(yaml: text, file: "rules/services/\(name).yaml") } catch {
                preconditionFailure("the built-in service catalog is invalid: \(error)")
            }
        }
    }

    /// Every definition by name (the built-in ones are all parsed for this).
    public var services: [String: ServiceDefinition] {
        Dictionary(uniqueKeysWithValues: names.compactMap { name in definition(named: name).map { (name, $0) } })
    }

    /// Loads every `*.yaml` in `directory`.
    public static func load(directory: String) throws(EgressError) -> ServiceCatalog {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        var definitions: [ServiceDefinition] = []
        for file in files {
            let path = FilePaths.appending(file, to: directory)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw .invalidCatalog(file: path, problem: "cannot be read")
            }
            definitions.append(try parse(yaml: text, file: path))
        }
        return ServiceCatalog(services: definitions)
    }

    /// `true` or `false` as YAML spells it (the files are read with every scalar left a string).
    static func flag(_ value: Any?) -> Bool? {
        switch (value as? String)?.lowercased() {
        case "true": true
        case "false": false
        default: nil
        }
    }

    /// Parses one catalog file.
    public static func parse(yaml: String, file: String) throws(EgressError) -> ServiceDefinition {
        let root: Any?
        do { root = try YAML.loadStrings(yaml: yaml) } catch { throw .invalidCatalog(file: file, problem: "\(error)") }
        guard let map = root as? [String: Any] else { throw .invalidCatalog(file: file, problem: "the top level must be a mapping") }
        let known: Set<String> = ["name", "description", "hosts", "hosts_from_policy", "sensitive", "credentials", "audience_parameter", "mints", "examples",
                                  "encoded_slashes"]
        if let unknown = map.keys.first(where: { !known.contains($0) }) {
            throw .invalidCatalog(file: file, problem: "unknown key '\(unknown)'")
        }
        guard let name = map["name"] as? String, !name.isEmpty else { throw .invalidCatalog(file: file, problem: "'name' is missing") }
        var hosts: [HostPattern] = []
        for host in map["hosts"] as? [String] ?? [] {
            do { hosts.append(try HostPattern(host)) } catch { throw .invalidCatalog(file: file, problem: "host: \(error)") }
        }
        let fromPolicy = flag(map["hosts_from_policy"]) ?? false
        if hosts.isEmpty && !fromPolicy { throw .invalidCatalog(file: file, problem: "'hosts' is empty and hosts_from_policy is not true") }
        func operation(_ entry: [String: Any]) throws(EgressError) -> SensitiveOperation {
            var paths: [Glob] = []
            for path in entry["paths"] as? [String] ?? [] {
                do { paths.append(try Glob(path)) } catch { throw .invalidCatalog(file: file, problem: "path: \(error)") }
            }
            return SensitiveOperation(methods: (entry["methods"] as? [String] ?? []).map { $0.uppercased() }, paths: paths)
        }
        var sensitive: [SensitiveOperation] = []
        for entry in map["sensitive"] as? [[String: Any]] ?? [] { sensitive.append(try operation(entry)) }
        var mints: [MintOperation] = []
        for entry in map["mints"] as? [[String: Any]] ?? [] {
            guard let field = entry["json"] as? String, !field.isEmpty, entry["paths"] != nil else {
                throw .invalidCatalog(file: file, problem: "each mints entry needs 'paths' and 'json' (where the minted token is in the response)")
            }
            mints.append(MintOperation(operation: try operation(entry), field: field))
        }
        var credentials: [CredentialLocation] = []
        for entry in map["credentials"] as? [[String: Any]] ?? [] {
            guard let placeText = entry["in"] as? String, let place = CredentialLocation.Place(rawValue: placeText),
                  let credentialName = entry["name"] as? String else {
                throw .invalidCatalog(file: file, problem: "each credentials entry needs 'in' (header|query|form|json) and 'name'")
            }
            credentials.append(CredentialLocation(place: place, name: credentialName))
        }
        return ServiceDefinition(name: name, description: map["description"] as? String ?? name, hosts: hosts,
                                 hostsFromPolicy: fromPolicy, sensitive: sensitive, credentials: credentials,
                                 audienceParameter: map["audience_parameter"] as? String, mints: mints,
                                 examples: try parseExamples(map["examples"], file: file), encodedSlashes: flag(map["encoded_slashes"]) ?? false)
    }

    /// Binds a policy's `services:` to catalog entries; unknown names are an error at the rule's location.
    public func bind(_ rules: [ServiceRule]) throws(EgressError) -> [BoundService] {
        var bound: [BoundService] = []
        for rule in rules {
            guard let definition = definition(named: rule.service) else {
                throw .unknownService(rule.service, at: rule.location, known: names)
            }
            let hosts = definition.hosts + rule.hosts
            if hosts.isEmpty { throw .serviceNeedsHosts(rule.service, at: rule.location) }
            bound.append(BoundService(definition: definition, rule: rule, hosts: hosts))
        }
        for (index, first) in bound.enumerated() {
            for second in bound[(index + 1)...] {
                guard let host = first.sharedHost(with: second), let problem = first.ambiguity(with: second) else { continue }
                throw .servicesShareHost(first.rule.service, second.rule.service, host: host, problem: problem, at: second.rule.location)
            }
        }
        return bound
    }
}

/// A catalog service as a policy names it: the definition, the policy's rule, and the hosts to intercept.
public struct BoundService: Sendable {
    /// The catalog entry.
    public let definition: ServiceDefinition
    /// The policy's `services:` entry for it.
    public let rule: ServiceRule
    /// The hosts intercepted for it: the catalog's, or the policy's `hosts`.
    public let hosts: [HostPattern]
    /// When this stands for a host that several named services intercept (see
    /// ``EgressDecider/service(for:)``): those services, in policy order, each request being
    /// decided by the one whose ``ServiceDefinition/endpoints`` it matches. Empty for one service.
    public private(set) var members: [BoundService] = []

    /// The policy's service `rule` bound to `definition`, intercepted at `hosts`.
    init(definition: ServiceDefinition, rule: ServiceRule, hosts: [HostPattern]) {
        (self.definition, self.rule, self.hosts) = (definition, rule, hosts)
    }

    /// The services of `members` (two or more) on a host they share, as one: named after all of
    /// them, reading a request's body when any of them finds credentials in bodies, and accepting
    /// an encoded `/` only when all of them do (the policy refuses services that differ in it). It
    /// allows nothing itself: each request is decided by the member it is an endpoint of.
    init(sharing members: [BoundService]) {
        let names = members.map(\.definition.name).joined(separator: ", ")
        definition = ServiceDefinition(name: names, description: "services sharing a host: \(names)", hosts: members.flatMap(\.hosts),
                                       hostsFromPolicy: false, sensitive: members.flatMap(\.definition.sensitive),
                                       credentials: members.flatMap(\.definition.credentials), audienceParameter: nil, mints: [], examples: [],
                                       encodedSlashes: members.allSatisfy(\.definition.encodedSlashes))
        rule = ServiceRule(service: names)
        hosts = members.flatMap(\.hosts)
        self.members = members
    }

    func matches(host: String) -> Bool { hosts.contains { $0.matches(host) } }

    /// Why a request on a host this service shares with `other` could not always be given to one
    /// of the two, or nil when it always can: each must declare endpoints, no request may be an
    /// endpoint of both, and both must read paths alike (encoded slashes).
    func ambiguity(with other: BoundService) -> String? {
        for (service, peer) in [(self, other), (other, self)] where service.definition.endpoints.isEmpty {
            return "'\(service.definition.name)' declares no endpoints (sensitive: or mints: in rules/services), so no request there could be told to be its rather than '\(peer.definition.name)'s"
        }
        for mine in definition.endpoints {
            for theirs in other.definition.endpoints where mine.overlaps(theirs) {
                return "a request can be an endpoint of both ('\(definition.name)': \(mine.described); '\(other.definition.name)': \(theirs.described)), so which service's rules decide it is ambiguous"
            }
        }
        if definition.encodedSlashes != other.definition.encodedSlashes {
            let (with, without) = definition.encodedSlashes ? (self, other) : (other, self)
            return "'\(with.definition.name)' accepts an encoded '/' in paths and '\(without.definition.name)' does not, so their paths cannot be read alike"
        }
        return nil
    }

    /// A host both services would intercept, if any: the same pattern, or one pattern matching a
    /// name the other stands for (its wildcards filled in).
    func sharedHost(with other: BoundService) -> String? {
        func example(_ host: HostPattern) -> String { String(host.pattern.map { $0 == "*" || $0 == "?" ? "a" : $0 }) }
        for mine in hosts {
            for theirs in other.hosts where mine.pattern == theirs.pattern || mine.matches(example(theirs)) || theirs.matches(example(mine)) {
                return mine.pattern == theirs.pattern || theirs.matches(example(mine)) ? mine.pattern : theirs.pattern
            }
        }
        return nil
    }
}
