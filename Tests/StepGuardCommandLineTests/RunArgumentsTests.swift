import Testing
@testable import stepguard

/// `stepguard run` reads plain command lines without ArgumentParser (start-up time); these tests
/// hold the two readers to the same result, and send everything else to ArgumentParser.
@Suite struct RunArgumentsTests {
    /// What ArgumentParser makes of `arguments` (which start with "run").
    private func parsedByArgumentParser(_ arguments: [String]) throws -> RunInvocation {
        try RunCommand.parse(Array(arguments.dropFirst())).invocation
    }

    @Test(arguments: [
        ["run", "--", "/bin/true"],
        ["run", "--policy", "p.yaml", "--", "make", "test"],
        ["run", "--policy", "p.yaml", "--step", "publish", "--mode", "audit", "--audit-log", "a.jsonl", "-v", "--", "npm", "publish"],
        ["run", "--verbose", "--mode", "enforce", "--", "sh", "-c", "exit 3"],
        ["run", "--step", "", "--", "x", "--policy", "inner", "--", "-v"],
        ["run", "--audit-log", "a b.jsonl", "--policy", "rules/policies/release.yaml", "--", "./deploy.sh", "--dry-run"],
    ])
    func plainCommandLinesReadAlike(_ arguments: [String]) throws {
        let fast = try #require(RunInvocation(plainArguments: arguments))
        #expect(fast == (try parsedByArgumentParser(arguments)))
    }

    @Test(arguments: [
        ["run", "--help"],
        ["run", "-h", "--", "x"],
        ["run", "--policy=p.yaml", "--", "x"],
        ["run", "--policy", "a", "--policy", "b", "--", "x"],
        ["run", "-v", "--verbose", "--", "x"],
        ["run", "--policy", "--", "x"],
        ["run", "--step", "-x", "--", "x"],
        ["run", "--mode", "loud", "--", "x"],
        ["run", "--unknown", "--", "x"],
        ["run", "--"],
        ["run", "make"],
        ["policy", "check", "--", "x"],
        [],
    ])
    func everythingElseGoesToArgumentParser(_ arguments: [String]) {
        #expect(RunInvocation(plainArguments: arguments) == nil)
    }
}
