import Foundation
@testable import StepGuardSecrets

/// The vectorscan prefilter with the cache `stepguard scan` would use in this environment.
let vectorscan = SecretPrefilter.vectorscan(cacheDirectory: SecretPrefilter.cacheDirectory(environment: ProcessInfo.processInfo.environment))

func scanner() throws -> SecretScanner {
    var options = ScanOptions()
    options.workers = 2
    return SecretScanner(detector: try SecretDetector.builtIn(prefilter: vectorscan), options: options)
}
