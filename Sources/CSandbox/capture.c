// Transparent capture inside the step's network namespace, set up by the child between clone and
// exec (see csandbox.c: only system calls, buffers on the stack). Two netlink conversations:
//
// - rtnetlink: a `local` default route for IPv4 and IPv6 in the local table, so that every address
//   is local to the namespace: a connect() to any address is routed (to loopback) instead of
//   failing with "network unreachable", and a UDP datagram to any address is delivered locally (and
//   refused at once when no socket takes it);
// - nfnetlink (nf_tables): one table with one NAT chain on the output hook that redirects every
//   new TCP connection whose destination is not loopback to SG_CAPTURE_PORT on loopback, where
//   stepguard reads its original destination (SO_ORIGINAL_DST). This is
//       table inet stepguard {
//         chain capture { type nat hook output priority -100; policy accept;
//           ip daddr 127.0.0.0/8 return; ip6 daddr ::1 return; meta l4proto tcp redirect to :1023 } }
//
// Both need CAP_NET_ADMIN over the namespace, which the child holds through the user namespace it
// created; the host's routes and firewall are not touched. The step itself runs in a nested user
// namespace and cannot change either.
#define _GNU_SOURCE
#include "capture.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/// A netlink message under construction in a caller's buffer.
typedef struct {
    char *buffer;
    size_t capacity;
    size_t length;
    int overflow;
} nl_writer;

static void *nl_reserve(nl_writer *writer, size_t size) {
    size_t aligned = NLMSG_ALIGN(size);
    if (writer->length + aligned > writer->capacity) {
        writer->overflow = 1;
        return NULL;
    }
    void *at = writer->buffer + writer->length;
    memset(at, 0, aligned);
    writer->length += aligned;
    return at;
}

/// Starts a message; returns its offset (its length is fixed by nl_end_message).
static size_t nl_begin_message(nl_writer *writer, uint16_t type, uint16_t flags, uint32_t sequence) {
    size_t start = writer->length;
    struct nlmsghdr *header = nl_reserve(writer, sizeof *header);
    if (header) {
        header->nlmsg_type = type;
        header->nlmsg_flags = flags;
        header->nlmsg_seq = sequence;
    }
    return start;
}

static void nl_end_message(nl_writer *writer, size_t start) {
    if (writer->overflow) return;
    ((struct nlmsghdr *)(writer->buffer + start))->nlmsg_len = (uint32_t)(writer->length - start);
}

static void nl_put(nl_writer *writer, uint16_t type, const void *data, size_t size) {
    struct nlattr *attribute = nl_reserve(writer, NLA_HDRLEN + size);
    if (!attribute) return;
    attribute->nla_type = type;
    attribute->nla_len = (uint16_t)(NLA_HDRLEN + size);
    if (size) memcpy((char *)attribute + NLA_HDRLEN, data, size);
}

static void nl_put_be32(nl_writer *writer, uint16_t type, uint32_t value) {
    uint32_t big = htonl(value);
    nl_put(writer, type, &big, sizeof big);
}

static void nl_put_string(nl_writer *writer, uint16_t type, const char *text) {
    nl_put(writer, type, text, strlen(text) + 1);
}

static size_t nl_begin_nest(nl_writer *writer, uint16_t type) {
    size_t start = writer->length;
    struct nlattr *attribute = nl_reserve(writer, NLA_HDRLEN);
    if (attribute) attribute->nla_type = type | NLA_F_NESTED;
    return start;
}

static void nl_end_nest(nl_writer *writer, size_t start) {
    if (writer->overflow) return;
    ((struct nlattr *)(writer->buffer + start))->nla_len = (uint16_t)(writer->length - start);
}

/// Sends the messages in `writer` and reads the kernel's answers until `acks` acknowledgements
/// (or the first error) have arrived. Returns 0 or an errno.
static int nl_talk(int protocol, nl_writer *writer, int acks) {
    if (writer->overflow) return ENOBUFS;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) return errno;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    int error = 0;
    if (sendto(fd, writer->buffer, writer->length, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)writer->length) error = errno;
    char answer[4096] __attribute__((aligned(4)));
    while (!error && acks > 0) {
        ssize_t got = recv(fd, answer, sizeof answer, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            error = errno;
            break;
        }
        for (struct nlmsghdr *header = (struct nlmsghdr *)answer; NLMSG_OK(header, (size_t)got); header = NLMSG_NEXT(header, got)) {
            if (header->nlmsg_type != NLMSG_ERROR) continue;
            const struct nlmsgerr *result = NLMSG_DATA(header);
            if (result->error) { error = -result->error; break; }
            acks--;
        }
    }
    close(fd);
    return error;
}

/// `ip route add local default dev lo table local` for `family`.
static int add_local_default_route(int family, int loopback_index) {
    char buffer[256] __attribute__((aligned(4)));
    nl_writer writer = { buffer, sizeof buffer, 0, 0 };
    size_t message = nl_begin_message(&writer, RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 1);
    struct rtmsg *route = nl_reserve(&writer, sizeof *route);
    if (route) {
        route->rtm_family = (unsigned char)family;
        route->rtm_table = RT_TABLE_LOCAL;
        route->rtm_protocol = RTPROT_BOOT;
        route->rtm_scope = RT_SCOPE_HOST;
        route->rtm_type = RTN_LOCAL;
    }
    uint32_t table = RT_TABLE_LOCAL;
    nl_put(&writer, RTA_TABLE, &table, sizeof table);
    uint32_t index = (uint32_t)loopback_index;
    nl_put(&writer, RTA_OIF, &index, sizeof index);
    nl_end_message(&writer, message);
    return nl_talk(NETLINK_ROUTE, &writer, 1);
}

static const char table_name[] = "stepguard";
static const char chain_name[] = "capture";

/// Starts an nf_tables message of `type` for the inet family.
static size_t nft_begin(nl_writer *writer, uint16_t type, uint16_t flags, uint32_t sequence) {
    size_t message = nl_begin_message(writer, (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | type), NLM_F_REQUEST | flags, sequence);
    struct nfgenmsg *generic = nl_reserve(writer, sizeof *generic);
    if (generic) {
        generic->nfgen_family = NFPROTO_INET;
        generic->version = NFNETLINK_V0;
    }
    return message;
}

/// The batch markers around nf_tables messages (one transaction).
static void nft_batch_marker(nl_writer *writer, uint16_t type, uint32_t sequence) {
    size_t message = nl_begin_message(writer, type, NLM_F_REQUEST, sequence);
    struct nfgenmsg *generic = nl_reserve(writer, sizeof *generic);
    if (generic) {
        generic->nfgen_family = AF_UNSPEC;
        generic->version = NFNETLINK_V0;
        generic->res_id = htons(NFNL_SUBSYS_NFTABLES);
    }
    nl_end_message(writer, message);
}

/// Writes `value` (`size` bytes) as an nft_data value attribute of `type`.
static void put_data_value(nl_writer *writer, uint16_t type, const void *value, size_t size) {
    size_t nest = nl_begin_nest(writer, type);
    nl_put(writer, NFTA_DATA_VALUE, value, size);
    nl_end_nest(writer, nest);
}

/// One expression of a rule: an element of the rule's expression list naming the expression, with
/// its attributes nested in NFTA_EXPR_DATA. Begin returns the offsets expression_end closes.
typedef struct { size_t element, data; } nft_expression;

static nft_expression expression_begin(nl_writer *writer, const char *name) {
    nft_expression expression;
    expression.element = nl_begin_nest(writer, NFTA_LIST_ELEM);
    nl_put_string(writer, NFTA_EXPR_NAME, name);
    expression.data = nl_begin_nest(writer, NFTA_EXPR_DATA);
    return expression;
}

static void expression_end(nl_writer *writer, nft_expression expression) {
    nl_end_nest(writer, expression.data);
    nl_end_nest(writer, expression.element);
}

static void expression_meta(nl_writer *writer, uint32_t key) {
    nft_expression expression = expression_begin(writer, "meta");
    nl_put_be32(writer, NFTA_META_KEY, key);
    nl_put_be32(writer, NFTA_META_DREG, NFT_REG_1);
    expression_end(writer, expression);
}

static void expression_equal(nl_writer *writer, const void *value, size_t size) {
    nft_expression expression = expression_begin(writer, "cmp");
    nl_put_be32(writer, NFTA_CMP_SREG, NFT_REG_1);
    nl_put_be32(writer, NFTA_CMP_OP, NFT_CMP_EQ);
    put_data_value(writer, NFTA_CMP_DATA, value, size);
    expression_end(writer, expression);
}

static void expression_network_header(nl_writer *writer, uint32_t offset, uint32_t size) {
    nft_expression expression = expression_begin(writer, "payload");
    nl_put_be32(writer, NFTA_PAYLOAD_DREG, NFT_REG_1);
    nl_put_be32(writer, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
    nl_put_be32(writer, NFTA_PAYLOAD_OFFSET, offset);
    nl_put_be32(writer, NFTA_PAYLOAD_LEN, size);
    expression_end(writer, expression);
}

static void expression_return(nl_writer *writer) {
    nft_expression expression = expression_begin(writer, "immediate");
    nl_put_be32(writer, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    size_t immediate = nl_begin_nest(writer, NFTA_IMMEDIATE_DATA);
    size_t verdict = nl_begin_nest(writer, NFTA_DATA_VERDICT);
    nl_put_be32(writer, NFTA_VERDICT_CODE, (uint32_t)NFT_RETURN);
    nl_end_nest(writer, verdict);
    nl_end_nest(writer, immediate);
    expression_end(writer, expression);
}

static void expression_redirect(nl_writer *writer, uint16_t port) {
    // The port goes into register 1, then redir takes its port from there.
    nft_expression load = expression_begin(writer, "immediate");
    nl_put_be32(writer, NFTA_IMMEDIATE_DREG, NFT_REG_1);
    uint16_t big = htons(port);
    put_data_value(writer, NFTA_IMMEDIATE_DATA, &big, sizeof big);
    expression_end(writer, load);

    nft_expression redirect = expression_begin(writer, "redir");
    nl_put_be32(writer, NFTA_REDIR_REG_PROTO_MIN, NFT_REG_1);
    nl_put_be32(writer, NFTA_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
    expression_end(writer, redirect);
}

/// Starts a rule of the capture chain; returns the offsets to close (message, expression list).
static void rule_begin(nl_writer *writer, uint32_t sequence, size_t *message, size_t *list) {
    *message = nft_begin(writer, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, sequence);
    nl_put_string(writer, NFTA_RULE_TABLE, table_name);
    nl_put_string(writer, NFTA_RULE_CHAIN, chain_name);
    *list = nl_begin_nest(writer, NFTA_RULE_EXPRESSIONS);
}

static void rule_end(nl_writer *writer, size_t message, size_t list) {
    nl_end_nest(writer, list);
    nl_end_message(writer, message);
}

/// A rule that leaves the chain (accept, no redirect) for packets of `family` whose network
/// header holds `value` (`size` bytes) at `offset`: the destination address or its first byte.
static void add_return_rule(nl_writer *writer, uint32_t sequence, uint8_t family, uint32_t offset,
                            const void *value, uint32_t size) {
    size_t message, list;
    rule_begin(writer, sequence, &message, &list);
    expression_meta(writer, NFT_META_NFPROTO);
    expression_equal(writer, &family, 1);
    expression_network_header(writer, offset, size);
    expression_equal(writer, value, size);
    expression_return(writer);
    rule_end(writer, message, list);
}

/// The nf_tables table and chain of the header comment, in one transaction.
static int add_capture_rules(uint16_t port) {
    char buffer[2048] __attribute__((aligned(4)));
    nl_writer writer = { buffer, sizeof buffer, 0, 0 };
    uint32_t sequence = 1;
    nft_batch_marker(&writer, NFNL_MSG_BATCH_BEGIN, sequence++);

    size_t message = nft_begin(&writer, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK, sequence++);
    nl_put_string(&writer, NFTA_TABLE_NAME, table_name);
    nl_end_message(&writer, message);

    message = nft_begin(&writer, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_ACK, sequence++);
    nl_put_string(&writer, NFTA_CHAIN_TABLE, table_name);
    nl_put_string(&writer, NFTA_CHAIN_NAME, chain_name);
    size_t hook = nl_begin_nest(&writer, NFTA_CHAIN_HOOK);
    nl_put_be32(&writer, NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
    nl_put_be32(&writer, NFTA_HOOK_PRIORITY, (uint32_t)-100);
    nl_end_nest(&writer, hook);
    nl_put_be32(&writer, NFTA_CHAIN_POLICY, NF_ACCEPT);
    nl_put_string(&writer, NFTA_CHAIN_TYPE, "nat");
    nl_end_message(&writer, message);

    // ip daddr 127.0.0.0/8 return; ip6 daddr ::1 return: the step's own loopback stays its own.
    uint8_t loopback_net = 127, tcp = IPPROTO_TCP;
    struct in6_addr loopback6 = IN6ADDR_LOOPBACK_INIT;
    add_return_rule(&writer, sequence++, NFPROTO_IPV4, 16, &loopback_net, 1);
    add_return_rule(&writer, sequence++, NFPROTO_IPV6, 24, &loopback6, 16);
    size_t list;
    // meta l4proto tcp redirect to :port
    rule_begin(&writer, sequence++, &message, &list);
    expression_meta(&writer, NFT_META_L4PROTO);
    expression_equal(&writer, &tcp, 1);
    expression_redirect(&writer, port);
    rule_end(&writer, message, list);

    nft_batch_marker(&writer, NFNL_MSG_BATCH_END, sequence++);
    return nl_talk(NETLINK_NETFILTER, &writer, 5);
}

/// Writes `value` to the sysctl file `path` of the namespace; best effort (where the setting is
/// missing the kernel's default stays). A step running as uid 0 (mapped to itself) can write it
/// back: the kernel checks sysctl writes by uid, not capability. That slows only its own connections.
static void write_setting(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, value, strlen(value)) < 0) { /* the kernel's default stays */ }
    close(fd);
}

// Two settings of the step's namespace for steps that open many connections:
// - A connection that ended keeps its NAT entry in the connection-tracking table for TIME_WAIT,
//   120 s by default, and the table holds nf_conntrack_max entries (262,144 by default) per
//   namespace: over about 2,000 connections a second for two minutes would fill it, and new
//   connections would be dropped. Inside the namespace a late segment of an ended connection has
//   nowhere useful to go, so TIME_WAIT is 5 s (room for over 50,000 connections a second).
// - tcp_tw_reuse 1: every connection the step opens ends at stepguard's listener in the namespace,
//   but the kernel's default (2) reuses a port in TIME_WAIT only towards loopback addresses, so a
//   client dialling one captured host:port over and over ran out of ports and each connect()
//   searched the whole range (measured: 12,400 → 18,900 connections a second, p99 42 → 5 ms).
//   With TCP timestamps (on by default) reuse is as safe here as the kernel's loopback case.
static void tune_for_many_connections(void) {
    write_setting("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait", "5");
    write_setting("/proc/sys/net/ipv4/tcp_tw_reuse", "1");
}

sg_capture_stage sg_capture_setup(uint16_t port, int *error) {
    // lo is the first interface of a new network namespace.
    const int loopback_index = 1;
    if ((*error = add_local_default_route(AF_INET, loopback_index))) return SG_CAPTURE_ROUTE;
    // Without IPv6 (absent or disabled) IPv4 is captured alone: an IPv6 connection then finds no
    // route and fails, as it did before capture.
    (void)add_local_default_route(AF_INET6, loopback_index);
    if ((*error = add_capture_rules(port))) return SG_CAPTURE_RULES;
    tune_for_many_connections();
    return SG_CAPTURE_NONE;
}

/// A socket of `type` bound to `address`; listening when it is a stream socket. -1 with errno set.
static int bound_socket(int family, int type, int protocol, const void *address, socklen_t length, int only_ipv6) {
    int fd = socket(family, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -1;
    int one = 1;
    if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (only_ipv6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, address, length) != 0 || (type == SOCK_STREAM && listen(fd, 1024) != 0)) {
        int error = errno;
        close(fd);
        errno = error;
        return -1;
    }
    return fd;
}

int sg_capture_sockets(int fds[SG_CAPTURE_SOCKETS]) {
    for (int i = 0; i < SG_CAPTURE_SOCKETS; i++) fds[i] = -1;
    struct sockaddr_in capture4 = { .sin_family = AF_INET, .sin_port = htons(SG_CAPTURE_PORT), .sin_addr = { htonl(INADDR_LOOPBACK) } };
    struct sockaddr_in6 capture6 = { .sin6_family = AF_INET6, .sin6_port = htons(SG_CAPTURE_PORT), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    struct sockaddr_in dns4 = { .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = { htonl(INADDR_ANY) } };
    struct sockaddr_in6 dns6 = { .sin6_family = AF_INET6, .sin6_port = htons(53), .sin6_addr = IN6ADDR_ANY_INIT };
    struct sockaddr_in dns_tcp = { .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = { htonl(SG_CAPTURE_RESOLVER) } };
    fds[SG_CAPTURE_LISTENER4] = bound_socket(AF_INET, SOCK_STREAM, 0, &capture4, sizeof capture4, 0);
    if (fds[SG_CAPTURE_LISTENER4] < 0) return errno;
    fds[SG_CAPTURE_DNS_UDP4] = bound_socket(AF_INET, SOCK_DGRAM, 0, &dns4, sizeof dns4, 0);
    if (fds[SG_CAPTURE_DNS_UDP4] < 0) return errno;
    fds[SG_CAPTURE_DNS_TCP] = bound_socket(AF_INET, SOCK_STREAM, 0, &dns_tcp, sizeof dns_tcp, 0);
    if (fds[SG_CAPTURE_DNS_TCP] < 0) return errno;
    fds[SG_CAPTURE_RAW_UDP4] = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fds[SG_CAPTURE_RAW_UDP4] < 0) return errno;
    // IPv6 is optional (see sg_capture_setup): without it these stay -1.
    fds[SG_CAPTURE_LISTENER6] = bound_socket(AF_INET6, SOCK_STREAM, 0, &capture6, sizeof capture6, 1);
    fds[SG_CAPTURE_DNS_UDP6] = bound_socket(AF_INET6, SOCK_DGRAM, 0, &dns6, sizeof dns6, 1);
    fds[SG_CAPTURE_RAW_UDP6] = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
    return 0;
}
