import StepGuardCore
import CCurl
import FoundationEssentials
import Glibc

/// ``HTTPTransport`` over libcurl: HTTPS only, peer and host verified, bounded time and size,
/// no redirects followed, no proxy from the environment (the step's proxy is stepguard itself).
public struct CurlTransport: HTTPTransport {
    /// Total time limit per request, in seconds.
    public var timeout: TimeInterval
    /// Connect time limit, in seconds.
    public var connectTimeout: TimeInterval
    /// A PEM bundle of CA certificates to trust instead of the system's (for tests and private CAs).
    public var caFile: String?
    /// A directory of CA certificates trusted too (with `caFile`: the system's, so that a private
    /// CA is trusted in addition to them rather than instead).
    public var caPath: String?
    /// Where to connect instead: `host:port:other-host:other-port` (libcurl's CONNECT_TO), e.g. the
    /// policy's `network.resolve`. The certificate is still checked against the URL's host.
    public var connectTo: [String]
    /// Maximum response body size in bytes.
    public var maximumResponseSize: Int

    /// Creates a transport.
    public init(timeout: TimeInterval = 10, connectTimeout: TimeInterval = 5, caFile: String? = nil, caPath: String? = nil,
                connectTo: [String] = [], maximumResponseSize: Int = 1 << 20) {
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.caFile = caFile
        self.caPath = caPath
        self.connectTo = connectTo
        self.maximumResponseSize = maximumResponseSize
    }

    /// Loads libcurl (it is not linked, see CCurl) and initialises it once; nil or why it failed.
    private static let loadError: String? = {
        var message: UnsafePointer<CChar>?
        guard sg_curl_load(&message) == 0 else { return message.map { String(cString: $0) } ?? "cannot load libcurl" }
        let code = curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        return code == CURLE_OK ? nil : "libcurl failed to initialise: \(String(cString: curl_easy_strerror(code)))"
    }()

    /// The loaded libcurl's version line (`libcurl/7.88.1 OpenSSL/3.0.17 …`); throws when it cannot
    /// be loaded (JWKS, discovery documents and CI tokens are fetched with it).
    public static func libraryVersion() throws(IdentityError) -> String {
        if let loadError {
            throw IdentityError(.jwks, "libcurl is needed to fetch JWKS and CI tokens: \(loadError)",
                                remedy: "install the libcurl4 package (or point the policy's identity.jwks at a file)")
        }
        return String(cString: curl_version())
    }

    /// Accumulates the response body; referenced from the C write callback through an opaque pointer.
    private final class Sink {
        var data: [UInt8] = []
        var limit: Int
        var overflow = false
        init(limit: Int) { self.limit = limit }
    }

    public func perform(_ request: HTTPRequest, purpose: IdentityError.Check) throws(IdentityError) -> HTTPResponse {
        if let loadError = Self.loadError {
            throw IdentityError(purpose, "cannot fetch \(request.url): \(loadError)",
                                remedy: "install libcurl (apt-get install libcurl4) or give the keys as a file")
        }
        guard request.url.lowercased().hasPrefix("https://") else {
            throw IdentityError(purpose, "refusing to fetch \(request.url): only https:// URLs are allowed",
                                remedy: "use an https URL (keys and tokens must not travel in clear text)")
        }
        guard let handle = curl_easy_init() else {
            throw IdentityError(purpose, "libcurl could not create a handle for \(request.url)", remedy: "this is an internal error; retry")
        }
        defer { curl_easy_cleanup(handle) }
        let sink = Sink(limit: maximumResponseSize)
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        var connectList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(connectList) }

        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            var rc = CURLE_OK
            func set(_ result: CURLcode) { if rc == CURLE_OK { rc = result } }
            set(sg_curl_setopt_string(handle, CURLOPT_URL, request.url))
            set(sg_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "https"))
            set(sg_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
            set(sg_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
            set(sg_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
            set(sg_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
            set(sg_curl_setopt_string(handle, CURLOPT_NOPROXY, "*"))
            set(sg_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout * 1000)))
            set(sg_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeout * 1000)))
            set(sg_curl_setopt_string(handle, CURLOPT_USERAGENT, "stepguard"))
            if let caFile { set(sg_curl_setopt_string(handle, CURLOPT_CAINFO, caFile)) }
            if let caPath { set(sg_curl_setopt_string(handle, CURLOPT_CAPATH, caPath)) }
            for entry in connectTo { connectList = curl_slist_append(connectList, entry) }
            if let connectList { set(sg_curl_setopt_pointer(handle, CURLOPT_CONNECT_TO, UnsafeMutableRawPointer(connectList))) }
            set(sg_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorPointer.baseAddress))
            set(sg_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer))
            set(sg_curl_setopt_write_function(handle) { data, size, count, context in
                guard let data, let context else { return 0 }
                let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
                let total = size * count
                if sink.data.count + total > sink.limit {
                    sink.overflow = true
                    return 0
                }
                data.withMemoryRebound(to: UInt8.self, capacity: total) { bytes in
                    sink.data.append(contentsOf: UnsafeBufferPointer(start: bytes, count: total))
                }
                return total
            })
            for (name, value) in request.headers {
                headerList = curl_slist_append(headerList, "\(name): \(value)")
            }
            if request.method == .delete { set(sg_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "DELETE")) }
            if request.method == .post {
                set(sg_curl_setopt_long(handle, CURLOPT_POST, 1))
                set(sg_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, request.body.count))
                var body = request.body.map { CChar(bitPattern: $0) }
                body.append(0)
                // COPYPOSTFIELDS copies POSTFIELDSIZE bytes, so the buffer may go away after this call.
                set(body.withUnsafeMutableBufferPointer { sg_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) })
            }
            if let headerList { set(sg_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))) }
            for entry in connectTo { connectList = curl_slist_append(connectList, entry) }
            if let connectList { set(sg_curl_setopt_pointer(handle, CURLOPT_CONNECT_TO, UnsafeMutableRawPointer(connectList))) }
            guard rc == CURLE_OK else { return rc }
            return curl_easy_perform(handle)
        }
        if sink.overflow {
            throw IdentityError(purpose, "the response from \(request.url) is larger than \(maximumResponseSize) bytes",
                                remedy: "check that the URL points at the right document")
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            throw IdentityError(purpose, "cannot fetch \(request.url): curl error \(code.rawValue): \(message)",
                                remedy: "check the URL, the network and the TLS trust (a CA file can be configured); stepguard fails closed")
        }
        var status = 0
        _ = sg_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, body: sink.data)
    }
}
