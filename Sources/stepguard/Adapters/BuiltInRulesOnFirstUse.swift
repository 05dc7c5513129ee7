import StepGuardCore
import StepGuardSecrets

/// The secret scanner's built-in rules as the proxy's credential detector, fetched on first use
/// rather than when the proxy starts: the preflight builds the same rules to check the step's
/// environment, at the same time as the proxy starts, and the proxy's start no longer waits for
/// them (it did, on the rules' lock). By the first request the preflight has built them (the step
/// starts only after it), so the first use finds them ready.
struct BuiltInRulesOnFirstUse: CredentialDetector {
    /// Built once, thread-safely, by the first call.
    private static let rules: SecretDetector? = try? SecretDetector.builtIn(prefilter: .keywords)

    func credentials(in value: String) -> [CredentialMatch] {
        guard let rules = Self.rules else {
            // Cannot happen once the preflight passed (it fails the run without the rules); if it
            // did, every value counts as a long-lived credential: fail closed.
            return [CredentialMatch(ruleID: "built-in rules unavailable", description: "the secret rules could not be built",
                                    lifetime: .longLived)]
        }
        return rules.credentials(in: value)
    }
}
