import Testing
@testable import StepGuardPipeline

/// The `$GITHUB_ENV` parser reads entries as the runner does, and fails on what the runner would not read.
@Suite struct LaterStepFilesTests {
    func names(_ text: String) throws -> [String] {
        try LaterStepFiles.environmentNames(ArraySlice(text.utf8))
    }

    @Test func linesAndBlocksAreReadAsTheRunnerReadsThem() throws {
        #expect(try names("A=1\nB<<EOF\nC=2\nEOF\n") == ["A", "B"], "a block's content is not an entry")
        #expect(try names("A=b<<c\n") == ["A"], "the first '=' before any '<<' makes a NAME=value line")
        #expect(try names("A<<B=c\nx\nB=c\n") == ["A"], "a '<<' before the first '=' starts a block")
        #expect(try names("A=1\r\nLD_PRELOAD=/x\r\n\n") == ["A", "LD_PRELOAD"], "CRLF lines (one Character in Swift) are split")
        #expect(try names("A=1\rBASH_ENV=/x") == ["A", "BASH_ENV"], "a lone CR is a line break too")
    }

    @Test func whatTheRunnerCannotReadIsAnError() {
        for text in ["words\n", "=value\n", "A<<END\nno end\n", "<<END\nEND\n"] {
            #expect(throws: LaterStepFiles.ParseError.self, "\(text)") { try names(text) }
        }
    }

    @Test func dangerousNamesAreComparedWithoutRegardToCase() {
        #expect(LaterStepFiles.isDangerous("stepguard_step"))
        #expect(LaterStepFiles.isDangerous("Path"))
        #expect(LaterStepFiles.isDangerous("NODE_OPTIONS"))
        #expect(!LaterStepFiles.isDangerous("GREETING"))
        #expect(!LaterStepFiles.isDangerous("PATHFINDER"))
        // Cloud SDK settings are handed on; what chooses credentials, endpoints or trust is not.
        #expect(!LaterStepFiles.isDangerous("AWS_REGION") && !LaterStepFiles.isDangerous("GOOGLE_CLOUD_PROJECT"))
        #expect(LaterStepFiles.isDangerous("AWS_SECRET_ACCESS_KEY") && LaterStepFiles.isDangerous("aws_profile")
                && LaterStepFiles.isDangerous("AWS_ENDPOINT_URL_STS") && LaterStepFiles.isDangerous("GOOGLE_APPLICATION_CREDENTIALS")
                && LaterStepFiles.isDangerous("AZURE_CLIENT_SECRET"))
        #expect(LaterStepFiles.isDangerous("\u{FEFF}LD_PRELOAD"), "a byte-order mark does not hide a name")
        #expect(LaterStepFiles.isDangerous(" LD_PRELOAD "))
        #expect(LaterStepFiles.isDangerous("LD_PRELOAD\u{200B}"), "a name that is not plain is not trusted")
    }
}
