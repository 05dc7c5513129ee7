import Foundation

/// Writes a line to standard output.
func printOut(_ text: String, terminator: String = "\n") {
    FileHandle.standardOutput.write(Data((text + terminator).utf8))
}

/// Writes a line to standard error.
func printErr(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
