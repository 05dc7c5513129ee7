import Foundation
@testable import StepGuardSecrets

func scanner() throws -> SecretScanner {
    var options = ScanOptions()
    options.workers = 2
    return SecretScanner(detector: try SecretDetector.builtIn(), options: options)
}
