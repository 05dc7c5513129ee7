import FoundationEssentials
import StepGuardCore
import Glibc

/// Writes a line to standard output.
func printOut(_ text: String, terminator: String = "\n") {
    FileOutput.standardOutput.write(text + terminator)
}

/// Writes a line to standard error.
func printErr(_ text: String) {
    FileOutput.standardError.write(text + "\n")
}
