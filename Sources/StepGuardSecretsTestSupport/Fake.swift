import StepGuardSecrets

/// Fake credentials in real formats, generated at run time from ``ExampleTemplate`` (never
/// committed); `seed` varies them.
public enum Fake {
    public static func githubPAT(_ seed: UInt64 = 1) -> String { ExampleTemplate.expand("{gh:ghp}", seed: seed) }
    public static func awsKeyID(_ seed: UInt64 = 1) -> String { ExampleTemplate.expand("AK{cut}IA{b32:16}", seed: seed) }
    public static func stripe(_ seed: UInt64 = 1) -> String { ExampleTemplate.expand("sk{cut}_live_{alnum:24}", seed: seed) }
    public static func slack(_ seed: UInt64 = 1) -> String { ExampleTemplate.expand("xo{cut}xb-{digits:12}-{digits:13}-{alnum:24}", seed: seed) }
}
