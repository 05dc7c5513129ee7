import Testing
@testable import StepGuardSandbox

/// Reading how much of stepguard's code is mapped in 2 MiB pages from /proc/self/smaps.
@Suite struct ExecutableCodeTests {
    static let smaps = """
    55d2a6400000-55d2a8000000 r--p 00000000 fe:00 123                        /opt/stepguard/stepguard
    Size:              28672 kB
    Rss:               10240 kB
    FilePmdMapped:         0 kB
    55d2a8000000-55d2aa400000 r-xp 01c00000 fe:00 123                        /opt/stepguard/stepguard
    Size:              36864 kB
    KernelPageSize:        4 kB
    Rss:               26624 kB
    Pss:               26624 kB
    FilePmdMapped:     24576 kB
    VmFlags: rd ex mr mw me
    7f0000000000-7f0000021000 rw-p 00000000 00:00 0
    Size:                132 kB
    Rss:                   8 kB
    """

    @Test func theMappingHoldingTheAddressIsRead() {
        let code = ExecutableCode.mapping(in: Self.smaps, containing: 0x55d2_a900_0000)
        #expect(code?.mapped == 26_624 * 1024)
        #expect(code?.inHugePages == 24_576 * 1024)
        let first = ExecutableCode.mapping(in: Self.smaps, containing: 0x55d2_a640_0000)
        #expect(first?.mapped == 10_240 * 1024 && first?.inHugePages == 0)
    }

    @Test func anAddressOutsideEveryMappingOrAMappingWithoutTheFieldGivesNothing() {
        #expect(ExecutableCode.mapping(in: Self.smaps, containing: 0x1000) == nil)
        #expect(ExecutableCode.mapping(in: Self.smaps, containing: 0x55d2_aa40_0000) == nil)  // the end is exclusive
        #expect(ExecutableCode.mapping(in: Self.smaps, containing: 0x7f00_0000_0010) == nil)  // no FilePmdMapped line
    }

    @Test func thisProcessCodeIsFound() throws {
        let code = try #require(ExecutableCode.mapping())
        #expect(code.mapped > 0)
        #expect(code.inHugePages >= 0 && code.inHugePages <= code.mapped)
    }
}
