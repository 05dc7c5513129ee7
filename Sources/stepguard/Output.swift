import FoundationEssentials
import StepGuardCore
import Glibc

/// Writes a line to standard output.
func printOut(_ text: String, terminator: String = "\n") {
    FileOutput.standardOutput.write(Data((text + terminator).utf8))
}

/// Writes a line to standard error.
func printErr(_ text: String) {
    FileOutput.standardError.write(Data((text + "\n").utf8))
}
