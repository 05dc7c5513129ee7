import Testing
@testable import StepGuardSecrets

/// Where `stepguard scan` caches the compiled vectorscan database, from the environment the
/// executable passes (the library reads none itself).
@Suite struct PrefilterCacheTests {
    @Test func theCacheDirectoryFollowsTheEnvironmentInOrder() {
        let home = ["HOME": "/home/ci"]
        #expect(SecretPrefilter.cacheDirectory(environment: home) == "/home/ci/.cache/stepguard")
        #expect(SecretPrefilter.cacheDirectory(environment: home.merging(["XDG_CACHE_HOME": "/xdg"]) { $1 }) == "/xdg/stepguard")
        #expect(SecretPrefilter.cacheDirectory(environment: home.merging(["XDG_CACHE_HOME": ""]) { $1 }) == "/home/ci/.cache/stepguard")
        #expect(SecretPrefilter.cacheDirectory(environment: ["STEPGUARD_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/xdg"]) == "/c")
        #expect(SecretPrefilter.cacheDirectory(environment: home.merging(["STEPGUARD_CACHE_DIR": "off"]) { $1 }) == nil)
        #expect(SecretPrefilter.cacheDirectory(environment: [:]) == nil)
        // Empty is unset: the database file is never put at `/rules-….hsdb`.
        #expect(SecretPrefilter.cacheDirectory(environment: home.merging(["STEPGUARD_CACHE_DIR": ""]) { $1 }) == "/home/ci/.cache/stepguard")
    }
}
