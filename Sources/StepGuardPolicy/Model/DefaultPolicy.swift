extension Policy {
    /// The text of the built-in policy used when `stepguard run` is given no `--policy`.
    /// It is the same as `rules/policies/default.yaml` (a test keeps the two equal).
    public static let defaultPolicyYAML = """
    # stepguard built-in default policy (used when --policy is not given).
    # - asks for no workload identity token;
    # - refuses to start a step whose environment holds a long-lived credential;
    # - lets the step reach any host except the destinations every policy protects: the host's
    #   loopback, link-local addresses and cloud metadata, credential and wire-server endpoints
    #   (`stepguard policy show` lists them);
    # - isolates the step when the machine allows it, and stops it at once on a violation.
    version: 1
    mode: enforce
    on_violation: kill
    grace_period: 5s
    credentials:
      long_lived: deny
    egress:
      default: allow
    isolation: auto

    """

    /// The built-in default policy (see ``defaultPolicyYAML``).
    public static func builtInDefault() -> Policy {
        do {
            return try PolicyLoader.load(yaml: defaultPolicyYAML, source: "<built-in default>")
        } catch {
            preconditionFailure("the built-in default policy is invalid: \(error)")
        }
    }
}
