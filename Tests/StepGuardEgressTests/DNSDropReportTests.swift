import Foundation
import StepGuardAudit
import StepGuardPolicy
import Testing
@testable import StepGuardEgress

/// The report of dropped UDP (``StepResolver/reportDroppedDatagram(to:port:now:)``) against a step
/// that sends to ever new destinations: bounded per interval, and still fail-closed past the bound.
@Suite struct DNSDropReportTests {
    static let second: UInt64 = 1_000_000_000

    func session(_ egress: String, destinations: Int) throws -> DNSResolverTests.Session {
        var limits = StepResolver.Limits()
        limits.dropReportDestinations = destinations
        return try DNSResolverTests.Session("egress: \(egress)\n", limits: limits)
    }

    func violations(_ session: DNSResolverTests.Session) -> [AuditEvent] {
        session.denials.filter { $0.subject["violation"] == .bool(true) }
    }

    /// Before, each new destination was one event: 100 ports, 100 events (a step at full speed
    /// wrote thousands a second to the audit log and stderr).
    @Test func destinationsPastTheBoundAreSummarisedOncePerInterval() throws {
        let session = try session("{ default: deny, allow: ['192.0.2.10:7000'] }", destinations: 4)
        defer { session.stop() }
        let address = try #require(IPAddress("192.0.2.10"))
        let start = 1000 * Self.second
        for port in 1...100 { session.resolver.reportDroppedDatagram(to: address, port: UInt16(port), now: start) }
        var denials = session.denials
        #expect(denials.count == 5, "4 destinations and one summary: \(denials.map(\.reason))")
        #expect(denials.allSatisfy { $0.subject["violation"] == .bool(true) })
        #expect(denials.last?.reason.contains("more than 4 destinations within 60 s") == true, "\(denials.last?.reason ?? "")")
        // Within the interval nothing more; once it has passed, destinations are reported again.
        for port in 101...200 { session.resolver.reportDroppedDatagram(to: address, port: UInt16(port), now: start + 30 * Self.second) }
        #expect(session.denials.count == 5)
        for port in 201...300 { session.resolver.reportDroppedDatagram(to: address, port: UInt16(port), now: start + 61 * Self.second) }
        denials = session.denials
        #expect(denials.count == 10, "\(denials.count)")
    }

    /// The step fills the bound with destinations TCP may reach (no violation: QUIC falling back),
    /// then sends to a denied one: that is still recorded as a violation, so `on_violation` applies.
    @Test func pastTheBoundADeniedDestinationIsStillAViolation() throws {
        let session = try session("{ default: allow, deny: ['192.0.2.20'] }", destinations: 4)
        defer { session.stop() }
        let allowed = try #require(IPAddress("192.0.2.10"))
        let now = 1000 * Self.second
        for port in 1...50 { session.resolver.reportDroppedDatagram(to: allowed, port: UInt16(port), now: now) }
        #expect(session.denials.count == 5 && violations(session).isEmpty, "\(session.denials.map(\.reason))")
        session.resolver.reportDroppedDatagram(to: try #require(IPAddress("192.0.2.20")), port: 9, now: now + Self.second)
        let violated = violations(session)
        #expect(violated.count == 1 && violated.first?.subject["host"] == .string("192.0.2.20"), "\(session.denials.map(\.reason))")
        #expect(violated.first?.reason.contains("to destinations TCP would be denied too are not recorded one by one") == true)
        session.resolver.reportDroppedDatagram(to: try #require(IPAddress("192.0.2.20")), port: 10, now: now + Self.second)
        #expect(session.denials.count == 6, "one violation summary per interval")
    }
}
