import StepGuardCore
import ArgumentParser
import FoundationEssentials
import Glibc
import StepGuardAudit
import StepGuardIdentity
import StepGuardPolicy

/// `stepguard identity verify`: wiring only; the checks live in StepGuardIdentity.
struct IdentityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Verify the job's workload identity (OIDC token) against a policy.",
        subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Fetch (or read) the job's OIDC token and verify it strictly against the policy's identity: section.",
            discussion: """
            Without --token-file or --token-env the token comes from the policy's identity.token \
            (or the detected CI provider). The JWKS comes from identity.jwks or OIDC discovery.

            Exit status: 0 verified (the claims are printed); 77 rejected (the failed check and its \
            values are printed, never the token); 78 invalid policy or configuration.

            Examples:
              stepguard identity verify --policy rules/policies/release.yaml
              stepguard identity verify --policy policy.yaml --token-file token.jwt --format json
              stepguard identity verify --policy policy.yaml --token-env SIGSTORE_ID_TOKEN
            """
        )

        /// The policy whose identity: section is verified against, with a step's identity.claims overrides.
        @OptionGroup var policyOptions: PolicyOptions

        @Option(name: .long, help: ArgumentHelp("Read the token from this file instead of the CI provider.", valueName: "file"))
        var tokenFile: String?

        @Option(name: .long, help: ArgumentHelp("Read the token from this environment variable instead of the CI provider.", valueName: "name"))
        var tokenEnv: String?

        @Option(name: .long, help: ArgumentHelp("CA bundle (PEM) trusted for the JWKS, discovery and token endpoints (default: network.upstream_ca, else the system's).", valueName: "file"))
        var caFile: String?

        @OptionGroup var output: TextOrJSONOption

        func validate() throws {
            if tokenFile != nil, tokenEnv != nil {
                throw ValidationError("give either --token-file or --token-env, not both")
            }
        }

        func run() async throws {
            let policy = try policyOptions.load()
            guard let identityPolicy = policy.identity else {
                printErr("stepguard: \(policy.source) has no identity: section; nothing to verify. Add identity: with issuer and audience.")
                throw ExitCode(ExitStatus.config)
            }
            let environment = ProcessInfo.processInfo.environment
            do {
                let keyStore = KeyStoreOptions(cacheDirectory: KeyStoreOptions.defaultCacheDirectory(environment: environment))
                let verifier = try IdentityVerifier(policy: identityPolicy, caFile: caFile ?? policy.network.upstreamCA, keyStoreOptions: keyStore)
                let override: TokenSource? = tokenFile.map { .file($0) } ?? tokenEnv.map { .environment($0) }
                let identity: VerifiedIdentity?
                if let override {
                    let token = try await TokenAcquirer(options: verifier.acquisition)
                        .acquire(source: override, audience: verifier.rules.audience, environment: environment)
                    identity = try verifier.verify(token: token)
                } else {
                    identity = try await verifier.acquireAndVerify(environment: environment)
                }
                guard let identity else {
                    report(.object(["decision": "allow", "reason": "no token available and identity.required is false"]),
                           text: "stepguard: no token available; identity.required is false, so the step would run without an identity")
                    return
                }
                report(.object(["decision": "allow", "identity": identity.jsonValue]),
                       text: "stepguard: identity verified\n" + identity.textReport)
            } catch {
                let code = error.isConfigurationError ? ExitStatus.config : ExitStatus.blocked
                if output.json {
                    printOut(JSONValue.object(["decision": "deny", "check": .string(error.check.name),
                                               "reason": .string(error.detail), "remedy": .string(error.remedy)]).jsonText)
                }
                printErr("stepguard: identity rejected: \(error)")
                throw ExitCode(code)
            }
        }

        private func report(_ json: JSONValue, text: String) {
            printOut(output.json ? json.jsonText : text)
        }
    }
}
