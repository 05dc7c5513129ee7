/// Python source for tests whose client must send a real TLS ClientHello by hand (to fragment it,
/// or to send it where no TLS client would): Python's ssl module (OpenSSL) writes it into memory.
public enum PythonTLS {
    /// Top-level Python lines (needs `import ssl`) that set `hello` to the bytes of a ClientHello
    /// naming `serverName`, made with `context` (an `ssl.SSLContext` expression); nothing is sent.
    public static func clientHello(serverName: String, context: String = "ssl.create_default_context()") -> String {
        """
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = (\(context)).wrap_bio(incoming, outgoing, server_hostname="\(serverName)")
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outgoing.read()
        """
    }
}
