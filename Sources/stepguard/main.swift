import Dispatch
import FoundationEssentials
import Glibc
import StepGuardCore

// The entry point. `stepguard --version` is answered here, synchronously: an `async` main (or
// `@main` on an AsyncParsableCommand) first starts Swift concurrency — libdispatch's worker and
// manager threads, the main thread leaving through `pthread_exit` (a forced unwind through the
// unwinder) — and ArgumentParser's reflection, which looks up protocol conformances by scanning the
// whole binary's conformance records: together about half of what `--version` cost (issue #17).
// Everything else runs exactly as `@main` ran it: `StepGuard.main()` as a task on the main actor,
// libdispatch's main queue serviced by `dispatchMain()`, the process exiting 0 when it returns
// (errors exit from inside, with their own status).
StartupTrace.mark("main")
if CommandLine.arguments.count == 2, CommandLine.arguments[1] == "--version" {
    print(StepGuard.version)
    exit(0)
}
// A plain `run` command line (see ``RunInvocation/init(plainArguments:)``) runs on this thread
// without ArgumentParser and without starting Swift concurrency (see ``BackgroundWork``).
if let invocation = RunInvocation(plainArguments: Array(CommandLine.arguments.dropFirst())) {
    do {
        try invocation.run()
        StartupTrace.mark("run returned")
    } catch {
        StepGuard.exit(withError: error)
    }
    exit(0)
}
Task { @MainActor in
    await StepGuard.main()
    exit(0)
}
dispatchMain()
