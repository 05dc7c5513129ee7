import CCurl
import CGit2
import CLazyLoad
import CPCRE2
import CVectorscan
import Foundation
import StepGuardServerTestSupport
import StepGuardTestSupport
import Testing

/// Proves the C libraries are wired in: each is called for real, not just linked.
@Suite struct SystemLibraryTests {
    @Test func libcurlFetchesFromALocalServer() throws {
        let server = try LocalHTTPServer.start { request in ServerResponse(body: "hello \(request.uri)") }
        defer { server.shutdown() }
        #expect(sg_curl_load(nil) == 0)
        let curl = try #require(curl_easy_init())
        defer { curl_easy_cleanup(curl) }
        final class Sink { var data = Data() }
        let sink = Sink()
        _ = sg_curl_setopt_string(curl, CURLOPT_URL, "\(server.url)/ping")
        _ = sg_curl_setopt_write_function(curl) { pointer, size, count, context in
            let sink = Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue()
            sink.data.append(UnsafeRawPointer(pointer!).assumingMemoryBound(to: UInt8.self), count: size * count)
            return size * count
        }
        _ = sg_curl_setopt_pointer(curl, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
        #expect(curl_easy_perform(curl) == CURLE_OK)
        var status = 0
        _ = sg_curl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &status)
        #expect(status == 200)
        #expect(String(decoding: sink.data, as: UTF8.self) == "hello /ping")
    }

    @Test func libgit2ReadsARepositoryMadeByGit() throws {
        let repository = try GitRepository()
        defer { repository.directory.remove() }
        let commit = try repository.commit("README", "hello\n")
        #expect(sg_git2_load(nil) == 0)
        git_libgit2_init()
        var repo: OpaquePointer?
        #expect(git_repository_open_ext(&repo, repository.path, 0, nil) == 0)
        defer { git_repository_free(repo) }
        var head: OpaquePointer?
        #expect(git_revparse_single(&head, repo, "HEAD") == 0)
        defer { git_object_free(head) }
        var text = [CChar](repeating: 0, count: 41)
        _ = git_oid_tostr(&text, text.count, git_object_id(head))
        #expect(text.nulTerminatedString == commit)
    }

    /// `sg_lazy_load` on C strings that live for the call: the sonames to try and the symbols.
    static func lazyLoad(_ sonames: [String], package: String, symbols: [String], error: inout [CChar]) -> (Int32, [UnsafeMutableRawPointer?]) {
        let sonameCopies = sonames.map { strdup($0) }
        let symbolCopies = symbols.map { strdup($0) }
        defer { (sonameCopies + symbolCopies).forEach { free($0) } }
        let list: [UnsafePointer<CChar>?] = sonameCopies.map { UnsafePointer($0) } + [nil]
        let names: [UnsafePointer<CChar>?] = symbolCopies.map { UnsafePointer($0) }
        var slots = [UnsafeMutableRawPointer?](repeating: nil, count: symbols.count)
        let status = sg_lazy_load(list, package, names, &slots, symbols.count, &error, error.count)
        return (status, slots)
    }

    @Test func aMissingLibraryIsReportedWithTheRemedy() {
        var error = [CChar](repeating: 0, count: 256)
        let (status, _) = Self.lazyLoad(["libstepguard-absent.so.9", "libstepguard-absent.so.8"], package: "libstepguard-absent9",
                                        symbols: [], error: &error)
        #expect(status == -1)
        let message = error.nulTerminatedString
        #expect(message.hasPrefix("cannot load libstepguard-absent.so.9, libstepguard-absent.so.8 ("), "\(message)")
        #expect(message.hasSuffix("install it with: apt-get install libstepguard-absent9"))
    }

    @Test func theFirstLibraryOfTheListThatExistsIsLoaded() {
        var error = [CChar](repeating: 0, count: 256)
        let (status, slots) = Self.lazyLoad(["libstepguard-absent.so.9", "libc.so.6"], package: "libc6", symbols: ["getpid"], error: &error)
        #expect(status == 0, "\(error.nulTerminatedString)")
        #expect(slots.first.flatMap { $0 } != nil)
    }

    @Test func aMissingSymbolIsReported() {
        var error = [CChar](repeating: 0, count: 256)
        let (status, _) = Self.lazyLoad(["libc.so.6"], package: "libc6", symbols: ["sg_no_such_function"], error: &error)
        #expect(status == -1)
        #expect(error.nulTerminatedString == "libc.so.6 has no symbol sg_no_such_function; install a version stepguard supports (libc6)")
    }

    @Test func vectorscanAndPCRE2Match() throws {
        var database: OpaquePointer?
        var compileError: UnsafeMutablePointer<hs_compile_error_t>?
        #expect(hs_compile("ghp_[A-Za-z0-9]{36}", UInt32(HS_FLAG_SINGLEMATCH), UInt32(HS_MODE_BLOCK), nil, &database, &compileError) == HS_SUCCESS)
        defer { hs_free_database(database) }
        var errorCode: Int32 = 0
        var offset = 0
        let pattern = Array("token=(\\w+)".utf8)
        let code = try #require(pcre2_compile_8(pattern, pattern.count, 0, &errorCode, &offset, nil))
        defer { pcre2_code_free_8(code) }
        let subject = Array("x token=abc123 y".utf8)
        let match = try #require(pcre2_match_data_create_from_pattern_8(code, nil))
        defer { pcre2_match_data_free_8(match) }
        #expect(pcre2_match_8(code, subject, subject.count, 0, 0, match, nil) == 2)
        let ovector = try #require(pcre2_get_ovector_pointer_8(match))
        #expect(String(decoding: subject[ovector[2]..<ovector[3]], as: UTF8.self) == "abc123")
    }
}

extension [CChar] {
    /// The text up to the first NUL of a C buffer.
    var nulTerminatedString: String { String(decoding: prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
}
